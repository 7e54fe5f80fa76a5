"""The curated notebooks and their explorers in JupyterLab itself (light and dark themes).

JupyterLab is started on a free port over a scratch copy of ``notebooks/`` (nothing is written
into the repository), each notebook is opened and run with JupyterLab's own "run all cells"
command, and the test waits for the five explorers to draw: bqplot marks (GreeksExplorer,
LiquidationLadder), a plotly figure (VolSurfaceExplorer), the exposures table (PositionExplorer)
and MarginWhatIf's table of margins. No cell may print an error. Then the theme is switched to
JupyterLab Dark and the same widgets must still be visible; a screenshot of each notebook in
each theme goes to ``screenshots/lab-<theme>-<notebook>.png`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, _default_sigint, _free_port

pytestmark = pytest.mark.browser

#: Notebook -> CSS selectors that must be visible once every cell has run.
EXPLORERS = {
    "greeks_school.ipynb": (".bqplot path.line", ".pmnb-readout"),
    "portfolio_overview.ipynb": (".pmnb-exposures table.pmnb-table",),
    "vol_surface.ipynb": (".js-plotly-plot", ".pmnb-readout"),
    "margin_liquidation.ipynb": (".bqplot path.line", ".widget-button"),
}
THEMES = ("JupyterLab Light", "JupyterLab Dark")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Base URL of a JupyterLab (no token, app exposed to the page) over a copy of notebooks/."""
    root = tmp_path_factory.mktemp("lab")
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    port = _free_port()
    log = root / "lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0",
           "--ServerApp.allow_root=True"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", JUPYTER_CONFIG_DIR=str(root / ".jupyter"))
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True, preexec_fn=_default_sigint)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/api/status", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.5)
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _run_all(page, base: str, notebook: str) -> None:
    # a workspace of its own, reset: nothing is restored from the previous notebook
    ws = notebook.removesuffix(".ipynb")
    page.goto(f"{base}/lab/workspaces/{ws}/tree/{notebook}?reset", timeout=120_000)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           ".kernel", timeout=120_000)
    page.evaluate("""async () => {
        const nb = window.jupyterapp.shell.currentWidget;
        await nb.sessionContext.ready;
        await window.jupyterapp.commands.execute('notebook:run-all-cells');
    }""")
    # done when every code cell has an execution count and the kernel is idle, or when a
    # cell failed (run-all stops there; the caller reports the error)
    page.wait_for_function("""() => {
        const nb = window.jupyterapp.shell.currentWidget;
        if (document.querySelector('.jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'))
            return true;
        const k = nb.sessionContext.session && nb.sessionContext.session.kernel;
        if (!k || k.status !== 'idle') return false;
        const cells = nb.content.model.cells;
        for (let i = 0; i < cells.length; i++) {
            const c = cells.get(i);
            if (c.type === 'code' && !c.executionCount) return false;
        }
        return true;
    }""", timeout=240_000, polling=500)


def _errors(page) -> list[str]:
    return page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
                        ' .jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'
                        ).all_inner_texts()


@pytest.mark.parametrize("notebook", sorted(EXPLORERS))
def test_explorers_work_in_jupyterlab_light_and_dark(lab, browser, screenshots_dir, notebook):
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(EXPLORERS)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        _run_all(page, lab, notebook)
        for theme in THEMES:
            page.evaluate("t => window.jupyterapp.commands.execute('apputils:change-theme',"
                          " {theme: t})", theme)
            light = "true" if theme.endswith("Light") else "false"
            page.wait_for_function(
                f"document.body.dataset.jpThemeLight === '{light}'", timeout=60_000)
            for selector in EXPLORERS[notebook]:
                loc = page.locator(selector).first
                loc.scroll_into_view_if_needed(timeout=60_000)
                assert loc.is_visible(), f"{notebook} ({theme}): {selector} not visible"
            assert not _errors(page), f"{notebook} ({theme}): {_errors(page)}"
            tag = "dark" if light == "false" else "light"
            page.screenshot(path=str(screenshots_dir / f"lab-{tag}-{Path(notebook).stem}.png"))
    finally:
        context.close()
