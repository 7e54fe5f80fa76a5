"""Every Voila app in a real browser (Debian chromium through Playwright).

Per app (specs in :mod:`tests.browser.apps`): open it from a running ``pmnb dashboards``, wait
until its widgets are visible and the kernel is idle, assert that no error or traceback is shown,
save a screenshot to ``screenshots/<app>.png``, move one control and assert that the displayed
numbers change to the values pmnb's API gives at the new control value. First render and the
interaction round-trip (input event -> DOM update, measured in the page) are recorded in
``screenshots/timings.json`` and printed in the terminal summary, never asserted against their
targets; only a generous sanity bound is asserted, so that a hang fails.

``PMNB_DOCS_SCREENSHOTS=1`` also copies each screenshot to ``docs/screenshots/<app>.png`` (the
committed README images).
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # the browser fixture fails with the install command
    PlaywrightTimeout = TimeoutError

from .apps import APPS, AppSpec, agrees
from .conftest import ROOT, SANITY_MS, VIEWPORT, copy_to_docs

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000

# Text that means a cell failed: Voila's message when tracebacks are hidden, or a traceback.
ERROR_TEXTS = ("Traceback (most recent call last)", "There was an error when executing cell",
               "Error in cell", "Widget Javascript not detected", "Error displaying widget",
               "Failed to load model class", "Invalid input — showing the last good state")

# True once every selector has a visible element (images: loaded), Voila's loading spinner is
# gone, and the page has finished streaming; returns performance.now(), i.e. ms since navigation.
READY_JS = """(selectors) => {
  if (document.readyState !== 'complete' || document.getElementById('loading')) return false;
  for (const sel of selectors) {
    const els = Array.from(document.querySelectorAll(sel));
    const ok = els.some(el => el.getClientRects().length > 0 &&
      (el.tagName !== 'IMG' || (el.complete && el.naturalWidth > 0)));
    if (!ok) return false;
  }
  return performance.now();
}"""

MISSING_JS = """(selectors) => {
  const out = document.getElementById('loading') ? ['#loading spinner still shown'] : [];
  for (const sel of selectors)
    if (!Array.from(document.querySelectorAll(sel)).some(el => el.getClientRects().length > 0))
      out.push(sel);
  return out;
}"""

# Records the time of the last input event (key, change, input, pointer release) and the first
# DOM change of the watched element's text after it; the element may be replaced by a re-render.
ARM_JS = """(sel) => {
  const old = document.querySelector(sel).innerText;
  const st = window.__pmnbRT = {t0: null, t1: null, old: old};
  const mark = () => { if (st.t1 === null) st.t0 = performance.now(); };
  for (const ev of ['keydown', 'change', 'input', 'pointerup'])
    document.addEventListener(ev, mark, true);
  const obs = new MutationObserver(() => {
    if (st.t1 !== null || st.t0 === null) return;
    const cur = document.querySelector(sel);
    if (cur && cur.innerText !== st.old) { st.t1 = performance.now(); obs.disconnect(); }
  });
  obs.observe(document.body, {subtree: true, childList: true, characterData: true,
                              attributes: true});
  return old;
}"""


def _control(page, label: str, within: str):
    """The ipywidgets control whose description label is exactly ``label`` inside ``within``."""
    loc = page.locator(within).locator(".widget-inline-hbox").filter(
        has=page.locator("label.widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")))
    n = loc.count()
    assert n == 1, f"control {label!r} inside {within!r}: found {n} matches, expected 1"
    return loc.first


def _displayed_text(page, label: str, within: str) -> str:
    """What the user sees as the value of a control: a slider's readout, an input's value or a
    dropdown's selected option."""
    ctl = _control(page, label, within)
    if ctl.locator(".widget-readout").count():
        return ctl.locator(".widget-readout").inner_text()
    if ctl.locator("select").count():
        return ctl.locator("select").evaluate("s => s.options[s.selectedIndex].text")
    if ctl.locator("input").count():
        return ctl.locator("input").first.input_value()
    raise AssertionError(f"control {label!r}: no readout, input or select to read")


def _move(page, spec: AppSpec) -> None:
    c = spec.control
    ctl = _control(page, c.label, c.within)
    if c.kind == "slider":
        readout = ctl.locator(".widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(str(c.value))
        page.keyboard.press("Enter")
    elif c.kind == "slider_keys":
        ctl.locator(".noUi-handle").focus()
        key = "ArrowRight" if int(c.value) > 0 else "ArrowLeft"
        for _ in range(abs(int(c.value))):
            page.keyboard.press(key)
    elif c.kind == "text":
        box = ctl.locator("input").first
        box.fill(str(c.value))
        box.press("Enter")
    elif c.kind == "dropdown":
        select = ctl.locator("select")
        labels = select.evaluate("s => Array.from(s.options).map(o => o.text)")
        match = [t for t in labels if t.startswith(str(c.value))]
        assert match, f"dropdown {c.label!r}: no option starts with {c.value!r}: {labels}"
        select.select_option(label=match[0])


def _page_errors(page) -> list[str]:
    problems = []
    text = page.evaluate("document.body.innerText")
    for needle in ERROR_TEXTS:
        if needle in text:
            i = text.index(needle)
            problems.append(f"page shows {needle!r}: ...{text[max(0, i - 200):i + 300]}...")
    stderr = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')
    for i in range(stderr.count()):
        problems.append("stderr output: " + stderr.nth(i).inner_text()[:500])
    errors = page.locator('[data-mime-type="application/vnd.jupyter.error"], .pmnb-error')
    for i in range(errors.count()):
        problems.append("error output: " + errors.nth(i).inner_text()[:500])
    return problems


def _kernel_idle(page, base: str, deadline: float) -> None:
    kernel_id = json.loads(page.inner_text("#jupyter-config-data"))["kernelId"]
    while True:
        r = page.request.get(f"{base}/api/kernels/{kernel_id}")
        assert r.status == 200, f"kernel {kernel_id}: HTTP {r.status} {r.text()[:300]}"
        if r.json()["execution_state"] == "idle":
            return
        assert time.monotonic() < deadline, f"kernel {kernel_id} still busy after the deadline"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def app_page(request, browser, dashboards, timings):
    """The app ``request.param`` opened in a fresh browser context, rendered, kernel idle."""
    spec = APPS[request.param]
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    js_errors: list[str] = []
    page.on("pageerror", lambda exc: js_errors.append(str(exc)))
    record = timings.setdefault(spec.name, {})
    t0 = time.perf_counter()
    page.goto(dashboards + spec.url_path, wait_until="commit", timeout=TIMEOUT_MS)
    try:
        visible = page.wait_for_function(READY_JS, arg=list(spec.ready), timeout=TIMEOUT_MS,
                                         polling="raf").json_value()
    except PlaywrightTimeout:
        missing = page.evaluate(MISSING_JS, list(spec.ready))
        context.close()
        pytest.fail(f"{spec.notebook}: not rendered within {TIMEOUT_MS / 1e3:.0f} s; "
                    f"not visible: {missing}", pytrace=False)
    _kernel_idle(page, dashboards, time.monotonic() + TIMEOUT_MS / 1e3)
    record["first_render_ms"] = (time.perf_counter() - t0) * 1e3
    record["widgets_visible_ms"] = float(visible)
    try:
        yield spec, page, js_errors
    finally:
        context.close()


@pytest.mark.parametrize("app_page", sorted(APPS), indirect=True)
def test_app_renders_without_errors(app_page, timings, screenshots_dir):
    spec, page, js_errors = app_page
    t = timings[spec.name]
    assert t["first_render_ms"] < SANITY_MS["first_render_ms"], t
    problems = _page_errors(page)
    assert not problems, f"{spec.notebook}:\n" + "\n".join(problems)
    assert not js_errors, f"{spec.notebook}: JavaScript errors: {js_errors}"
    png = screenshots_dir / f"{spec.name}.png"
    if spec.screenshot:  # the app's widget area scrolled to the top, cut at the viewport
        area = page.locator(spec.screenshot).first
        area.evaluate("el => el.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        box = area.bounding_box()
        top = max(box["y"], 0.0)
        page.screenshot(path=str(png), clip={
            "x": box["x"], "y": top, "width": box["width"],
            "height": min(box["y"] + box["height"], VIEWPORT["height"]) - top})
    else:
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(png))
    assert png.stat().st_size > 10_000, f"{png}: {png.stat().st_size} bytes, nothing rendered?"
    if os.environ.get("PMNB_DOCS_SCREENSHOTS") == "1":
        copy_to_docs(png, spec.name)


_INTERACTIVE = sorted(name for name, spec in APPS.items() if spec.control is not None)


@pytest.mark.parametrize("app_page", _INTERACTIVE, indirect=True)
def test_control_moves_numbers_to_api_values(app_page, timings):
    spec, page, js_errors = app_page
    c = spec.control
    assert spec.checks, f"{spec.name}: a control without a number to check"

    def shown_numbers() -> list[str]:
        out = []
        for check in spec.checks:
            text = page.locator(check.selector).first.inner_text()
            m = re.search(check.pattern, text)
            assert m, f"{spec.name}: {check.pattern!r} not found in {check.selector}: {text!r}"
            out.append(m.group(1))
        return out

    before_value = _displayed_text(page, c.label, c.within)
    before = shown_numbers()
    page.evaluate(ARM_JS, spec.checks[0].selector)
    w0 = time.perf_counter()
    _move(page, spec)
    page.wait_for_function("window.__pmnbRT.t1 !== null", timeout=SANITY_MS["roundtrip_ms"],
                           polling="raf")
    wall = (time.perf_counter() - w0) * 1e3
    rt = page.evaluate("window.__pmnbRT.t1 - window.__pmnbRT.t0")
    timings[spec.name].update(roundtrip_ms=float(rt), roundtrip_wall_ms=wall)

    after_value = _displayed_text(page, c.label, c.within)
    assert after_value != before_value, f"{spec.name}: {c.label!r} did not move ({before_value})"

    def read(label: str) -> str:
        return _displayed_text(page, label, c.within)

    # numbers may arrive in more than one DOM update: poll briefly until all agree
    deadline = time.monotonic() + 10
    while True:
        after = shown_numbers()
        expected = [check.expected(after_value, read) for check in spec.checks]
        ok = [agrees(s, e) for s, e in zip(after, expected)]
        if all(ok) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    report = "\n".join(f"  {chk.pattern}: before {b}, shown {a}, API {e!r}"
                       for chk, b, a, e in zip(spec.checks, before, after, expected))
    assert all(ok), f"{spec.name} at {c.label} = {after_value}:\n{report}"
    assert any(b != a for b, a in zip(before, after)), f"{spec.name}: nothing changed\n{report}"
    assert not _page_errors(page) and not js_errors, (_page_errors(page), js_errors)


def test_every_notebook_has_a_spec():
    """A new app without a browser spec fails here, with what to add."""
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    specs = sorted(spec.notebook for spec in APPS.values())
    missing = sorted(set(notebooks) - set(specs))
    assert not missing, (f"notebooks without a browser spec: {missing}; add an AppSpec to "
                         f"tests/browser/apps.py")
    assert not set(specs) - set(notebooks), f"specs without a notebook: {set(specs) - set(notebooks)}"
    for spec in APPS.values():
        assert spec.control is not None or spec.static_reason, (
            f"{spec.notebook}: no control to move and no static_reason saying why")


def test_screenshot_folder_is_git_ignored():
    text = (ROOT / ".gitignore").read_text()
    assert re.search(r"^/?screenshots/\s*$", text, re.M), ".gitignore must list screenshots/"


def test_docs_screenshots_are_small_pngs():
    """README images (docs/screenshots): one per app up to three apps, each <= 300 KB."""
    pngs = sorted((ROOT / "docs" / "screenshots").glob("*.png"))
    need = min(3, len(APPS))
    assert len(pngs) >= need, f"docs/screenshots holds {len(pngs)} PNGs; the README needs {need}"
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png.name} is not a PNG"
        assert len(data) <= 300_000, f"{png.name}: {len(data)} bytes > 300 KB"
        assert png.stem in APPS, f"{png.name}: not an app of tests/browser/apps.py"
