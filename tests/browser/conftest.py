"""Fixtures of the browser tests: `pmnb dashboards` on a free port, Debian's chromium through
Playwright (sync API), and the timings table written to ``screenshots/timings.json``.

A missing chromium or Playwright is a test failure with the install command, never a skip.
The server is started as README command 1 starts it (the ``pmnb dashboards`` console script of
this environment), logs to a file (an undrained pipe would block Voila), runs in its own session
and is stopped by its PID: SIGINT (``pmnb dashboards`` then stops Voila), SIGKILL of its process
group only if it does not stop within 30 s.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"          # git-ignored output of these tests
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("PMNB_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags chromium tries to reach Google services at start-up,
# and this machine's closed network then refuses the connections it needs.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
TARGETS_MS = {"first_render_ms": 5000.0, "roundtrip_ms": 300.0}  # reported, never asserted
SANITY_MS = {"first_render_ms": 120_000.0, "roundtrip_ms": 60_000.0}  # a hang fails

_TIMINGS = pytest.StashKey[dict]()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A shell starts background jobs
    with SIGINT ignored, the ignore survives exec, and a Python started that way never raises
    KeyboardInterrupt, so `pmnb dashboards` would not stop on SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _missing_browser_message() -> str | None:
    if not Path(CHROMIUM).exists():
        return (f"chromium not found at {CHROMIUM}: the browser tests need Debian's chromium. "
                f"Install it with `apt-get install -y --no-install-recommends chromium` "
                f"(`./dev.sh test` does this when it is missing) or set PMNB_CHROMIUM to a "
                f"chromium executable. Playwright's own browser download is not used.")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return (f"playwright is not importable ({exc}); install the test extra: "
                f"pip install -e '.[test]' (do not run `playwright install`).")
    return None


@pytest.fixture(scope="session")
def timings(request) -> dict:
    """Per-app timings in ms, written to ``screenshots/timings.json`` at the end of the session
    and printed in the terminal summary."""
    store = request.config.stash.setdefault(_TIMINGS, {})
    yield store
    if store:
        SCREENSHOTS.mkdir(exist_ok=True)
        payload = {"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                   "chromium": _chromium_version(), "viewport": VIEWPORT,
                   "targets_ms": TARGETS_MS, "apps": store}
        (SCREENSHOTS / "timings.json").write_text(json.dumps(payload, indent=2) + "\n")


def _chromium_version() -> str:
    try:
        return subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@pytest.fixture(scope="session")
def dashboards(tmp_path_factory) -> str:
    """Base URL of a running ``pmnb dashboards --port N`` serving ``notebooks/``."""
    port = _free_port()
    log = tmp_path_factory.mktemp("dashboards") / "dashboards.log"
    script = Path(sys.executable).parent / "pmnb"
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "pmnb.cli"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as sink:
        proc = subprocess.Popen(exe + ["dashboards", "--port", str(port),
                                       "--notebooks", str(ROOT / "notebooks")],
                                stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True, preexec_fn=_default_sigint)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"pmnb dashboards exited with {proc.returncode}:\n{log.read_text()}",
                            pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"pmnb dashboards did not answer within 120 s:\n{log.read_text()}",
                            pytrace=False)
            time.sleep(0.5)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                pytest.fail(f"pmnb dashboards did not stop on SIGINT within 30 s (killed):\n"
                            f"{log.read_text()}", pytrace=False)


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright's sync API."""
    problem = _missing_browser_message()
    if problem:
        pytest.fail(problem, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def screenshots_dir() -> Path:
    """``screenshots/`` at the repository root (git-ignored)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


def copy_to_docs(png: Path, name: str, limit: int = 300_000) -> Path:
    """Copy a screenshot to ``docs/screenshots/<name>.png`` (committed, for the README); PNGs
    over ``limit`` bytes are stored as a 256-colour palette PNG."""
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dest = DOCS_SCREENSHOTS / f"{name}.png"
    shutil.copyfile(png, dest)
    if dest.stat().st_size > limit:
        from PIL import Image

        with Image.open(png) as im:
            im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
                dest, optimize=True)
    return dest


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    store = config.stash.get(_TIMINGS, None)
    if not store:
        return
    tr = terminalreporter
    tr.section("pmnb browser timings (ms; targets: first render <= 5000, round-trip <= 300; "
               "measured, not asserted)")
    tr.write_line(f"{'app':<22}{'first render':>14}{'widgets visible':>17}{'round-trip':>12}"
                  f"{'round-trip (wall)':>19}")
    for name, t in sorted(store.items()):
        def cell(key, width):
            v = t.get(key)
            return f"{v:>{width},.0f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"
        tr.write_line(f"{name:<22}{cell('first_render_ms', 14)}{cell('widgets_visible_ms', 17)}"
                      f"{cell('roundtrip_ms', 12)}{cell('roundtrip_wall_ms', 19)}")
    tr.write_line(f"written to {SCREENSHOTS / 'timings.json'}")
