#!/usr/bin/env python3
"""Which plotting library for pmnb's Voila apps? First render and update latency in a real page.

Run from anywhere with the system Python (Debian's chromium must be at /usr/bin/chromium, or
pass ``--chromium``):

    python3 benchmarks/plotting.py               # N = 20 updates, 3 page loads per library
    python3 benchmarks/plotting.py --quick       # 8 updates, 2 page loads

The same 2-D figure (4 curves of 400 points, fixed axis ranges, about 800 x 450 px) is built
with

* ``plotly``   — ``plotly.graph_objects.FigureWidget`` (anywidget), ``batch_update`` of ``y``;
* ``bqplot``   — one ``bqplot.Lines`` mark with a (4, 400) ``y``, ``animation_duration=0``;
* ``ipympl``   — a matplotlib figure on the ipympl canvas, ``set_ydata`` + ``draw_idle``;
* ``mpl-png``  — what pmnb_widgets does today: an Agg figure rendered to PNG bytes and set as
  the value of an ``ipywidgets.Image``.

Each notebook has one ``IntSlider`` whose observer updates the curves in Python. The script
serves the notebooks with Voila (same flags as ``pmnb dashboards``) and drives Debian's
chromium through Playwright:

* **first render**: a fresh browser context navigates to the app; time (``performance.now()``,
  i.e. since navigation start) until the figure is visible: 4 SVG paths of the full curves
  (plotly, bqplot), the first canvas ``drawImage`` (ipympl) or a decoded ``<img>`` (mpl-png).
  It includes Voila's kernel start and notebook execution, as a user sees it.
* **update latency**: the slider handle is focused and ArrowRight pressed; time from that
  ``keydown`` (in the page) to the last change of the figure's DOM (a MutationObserver on the
  figure, ``load`` events of images, and canvas ``drawImage``/``putImageData`` calls) once the
  figure has been quiet for 300 ms. Median of N.

It also checks that a plotly 3-D ``Surface`` (WebGL) renders: a GL canvas exists, plotly shows
no "WebGL is not supported" message, and the plot's pixels are not blank; if it fails with the
test suite's chromium flags it is retried with ``--enable-unsafe-swiftshader``.

bqplot and ipympl are not pmnb dependencies: the script creates ``benchmarks/.venv-plotting``
(git-ignored by ``.venv-*/``), installs :data:`REQUIREMENTS` there with pip (redone when they
change), and re-executes itself inside it. Results: a table on stdout and
``benchmarks/results/plotting-<UTC timestamp>.json`` (git-ignored).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-plotting"
STAMP = VENV / "pmnb-plotting-stamp.json"
RESULTS = HERE / "results"

# Pinned: the versions of pmnb's dev environment where they overlap, the current releases of
# bqplot and ipympl otherwise.
REQUIREMENTS = [
    "voila==0.5.13",
    "ipywidgets==8.1.9",
    "ipykernel==7.4.0",
    "jupyter_server==2.21.1",
    "plotly==7.1.0",
    "anywidget==0.11.0",
    "matplotlib==3.11.2",
    "numpy==2.4.6",
    "pillow==13.0.0",
    "bqplot==0.13.1",
    "ipympl==0.10.0",
    "playwright==1.65.2",
]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SWIFTSHADER_ARGS = ["--enable-unsafe-swiftshader"]
VIEWPORT = {"width": 1280, "height": 900}
QUIET_MS = 300
TARGETS_MS = {"first_render": 5000.0, "update": 300.0}

# ------------------------------------------------------------------------------------------------
# Bootstrap (standard library only)
# ------------------------------------------------------------------------------------------------


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv(reinstall: bool) -> None:
    want = {"requirements": REQUIREMENTS, "python": platform.python_version()}
    py = VENV / "bin" / "python"
    if not py.exists():
        print(f"[plotting] creating {VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        reinstall = True
    if not reinstall and STAMP.exists() and json.loads(STAMP.read_text()) == want:
        return
    print("[plotting] installing " + " ".join(REQUIREMENTS), flush=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *REQUIREMENTS], check=True)
    STAMP.write_text(json.dumps(want))


# ------------------------------------------------------------------------------------------------
# The notebooks
# ------------------------------------------------------------------------------------------------

COMMON = '''
import numpy as np
import ipywidgets as W
x = np.linspace(0.0, 10.0, 400)
def curves(shift):
    return [np.sin(x + 0.5 * k + 0.05 * shift) * (1.0 + 0.1 * k) for k in range(4)]
slider = W.IntSlider(value=0, min=0, max=10_000, description="shift")
'''

LIBS: dict[str, dict] = {
    "plotly": {
        "what": "plotly go.FigureWidget (anywidget), batch_update of 4 Scatter traces",
        "code": '''
import plotly.graph_objects as go
fig = go.FigureWidget([go.Scatter(x=x, y=y, mode="lines", name=f"curve {k}")
                       for k, y in enumerate(curves(0))])
fig.update_layout(width=800, height=450, margin=dict(l=40, r=10, t=20, b=30),
                  yaxis_range=[-1.5, 1.5], xaxis_range=[0, 10])
def on_change(change):
    ys = curves(change["new"])
    with fig.batch_update():
        for trace, y in zip(fig.data, ys):
            trace.y = y
slider.observe(on_change, names="value")
W.VBox([slider, fig])
''',
        "figure": ".js-plotly-plot",
        "ready": ["svg", ".scatterlayer path.js-line", 200],  # plotly simplifies the lines
    },
    "bqplot": {
        "what": "bqplot Lines mark with y of shape (4, 400), animation_duration=0",
        "code": '''
import bqplot as bq
xs, ys = bq.LinearScale(min=0.0, max=10.0), bq.LinearScale(min=-1.5, max=1.5)
lines = bq.Lines(x=x, y=np.vstack(curves(0)), scales={"x": xs, "y": ys},
                 colors=["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"])
fig = bq.Figure(marks=[lines], axes=[bq.Axis(scale=xs), bq.Axis(scale=ys, side="left")],
                animation_duration=0, layout=W.Layout(width="800px", height="450px"))
def on_change(change):
    lines.y = np.vstack(curves(change["new"]))
slider.observe(on_change, names="value")
W.VBox([slider, fig])
''',
        "figure": ".bqplot",
        "ready": ["svg", "path.line", 2000],
    },
    "ipympl": {
        "what": "ipympl canvas (matplotlib), set_ydata + draw_idle",
        "code": '''
import matplotlib
matplotlib.use("module://ipympl.backend_nbagg")
import matplotlib.pyplot as plt
plt.ioff()
fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
lines = [ax.plot(x, y)[0] for y in curves(0)]
ax.set_ylim(-1.5, 1.5)
fig.canvas.header_visible = False
def on_change(change):
    for line, y in zip(lines, curves(change["new"])):
        line.set_ydata(y)
    fig.canvas.draw_idle()
slider.observe(on_change, names="value")
W.VBox([slider, fig.canvas])
''',
        "figure": ".jupyter-matplotlib",
        "ready": ["canvas", "canvas", 0],
    },
    "mpl-png": {
        "what": "matplotlib Agg figure -> PNG bytes -> ipywidgets.Image (pmnb_widgets today)",
        "code": '''
import io
from matplotlib.figure import Figure
from matplotlib.backends.backend_agg import FigureCanvasAgg
fig = Figure(figsize=(8, 4.5), dpi=100)
FigureCanvasAgg(fig)
ax = fig.subplots()
lines = [ax.plot(x, y)[0] for y in curves(0)]
ax.set_ylim(-1.5, 1.5)
def png():
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()
image = W.Image(value=png(), format="png")
def on_change(change):
    for line, y in zip(lines, curves(change["new"])):
        line.set_ydata(y)
    image.value = png()
slider.observe(on_change, names="value")
W.VBox([slider, image])
''',
        "figure": "img.widget-image",
        "ready": ["img", "img", 0],
    },
}

SURFACE = '''
import numpy as np
import plotly.graph_objects as go
u = np.linspace(-2, 2, 60)
X, Y = np.meshgrid(u, u)
fig = go.FigureWidget(go.Surface(x=u, y=u, z=np.exp(-(X**2 + Y**2)) * np.cos(3 * X)))
fig.update_layout(width=700, height=500, margin=dict(l=0, r=0, t=20, b=0))
fig
'''


def _notebook(code: str) -> dict:
    cell = {"cell_type": "code", "id": "figure", "execution_count": None, "metadata": {},
            "outputs": [],
            "source": code.strip().splitlines(keepends=True)}
    return {"cells": [cell], "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                         "display_name": "Python 3"}},
            "nbformat": 4, "nbformat_minor": 5}


def write_notebooks(folder: Path) -> None:
    for name, lib in LIBS.items():
        (folder / f"{name}.ipynb").write_text(json.dumps(_notebook(COMMON + lib["code"])))
    (folder / "surface3d.ipynb").write_text(json.dumps(_notebook(SURFACE)))


# ------------------------------------------------------------------------------------------------
# Voila server
# ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Voila:
    """Voila on 127.0.0.1 serving ``folder``; log to a file; stopped by PID (SIGINT, then kill)."""

    def __init__(self, folder: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = folder / "voila.log"
        voila = Path(sys.executable).parent / "voila"
        cmd = [str(voila), str(folder), "--no-browser", "--Voila.ip=127.0.0.1",
               f"--port={self.port}", "--Voila.port_retries=0", "--strip_sources=True",
               "--show_tracebacks=True", "--theme=light"]
        with open(self.log, "w") as sink:
            self.proc = subprocess.Popen(  # SIGINT reset: a background shell job ignores it
                cmd, cwd=folder, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(self.base + "/", timeout=5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("voila did not start:\n" + self.log.read_text())
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)


# ------------------------------------------------------------------------------------------------
# In-page instrumentation
# ------------------------------------------------------------------------------------------------

# Before any page script: count canvas draws (ipympl paints PNG frames on a canvas, which no
# MutationObserver sees) and forward them to the update detector when it is armed.
INIT_JS = """
(() => {
  window.__draws = 0;
  const wrap = (proto, name) => {
    const orig = proto[name];
    proto[name] = function (...args) {
      window.__draws += 1;
      if (window.__onDraw) window.__onDraw();
      return orig.apply(this, args);
    };
  };
  wrap(CanvasRenderingContext2D.prototype, 'drawImage');
  wrap(CanvasRenderingContext2D.prototype, 'putImageData');
})();
"""

READY_JS = """([sel, kind, inner, minLen]) => {
  if (document.getElementById('loading')) return false;
  const c = document.querySelector(sel);
  if (!c || c.getClientRects().length === 0) return false;
  if (kind === 'svg') {
    const long = Array.from(c.querySelectorAll(inner))
      .filter(p => (p.getAttribute('d') || '').length > minLen);
    if (long.length < 4) return false;
  } else if (kind === 'canvas') {
    if (!c.querySelector('canvas') || window.__draws < 1) return false;
  } else if (kind === 'img') {
    const img = c.tagName === 'IMG' ? c : c.querySelector('img');
    if (!img || !img.complete || img.naturalWidth === 0) return false;
  }
  return performance.now();
}"""

ARM_JS = """(sel) => {
  const c = document.querySelector(sel);
  const st = window.__upd = {t0: null, last: null, n: 0};
  document.addEventListener('keydown', () => { st.t0 = performance.now(); st.last = null;
                                               st.n = 0; }, true);
  const hit = () => { if (st.t0 !== null) { st.last = performance.now(); st.n += 1; } };
  new MutationObserver(hit).observe(c, {subtree: true, childList: true, attributes: true,
                                        characterData: true});
  c.addEventListener('load', hit, true);
  window.__onDraw = hit;
}"""

SETTLED_JS = f"""() => {{
  const st = window.__upd;
  return st.last !== null && performance.now() - st.last > {QUIET_MS};
}}"""


def _median(xs):
    return statistics.median(xs) if xs else None


def measure_lib(browser, base: str, name: str, renders: int, updates: int) -> dict:
    lib = LIBS[name]
    first, errors, lat, counts = [], [], [], []
    for i in range(renders):
        ctx = browser.new_context(viewport=VIEWPORT)
        ctx.add_init_script(INIT_JS)
        page = ctx.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{base}/voila/render/{name}.ipynb", wait_until="commit", timeout=120_000)
        t = page.wait_for_function(READY_JS, arg=[lib["figure"], *lib["ready"]],
                                   timeout=120_000, polling="raf").json_value()
        first.append(float(t))
        text = page.evaluate("document.body.innerText")
        if "Traceback" in text or "Error" in text:
            errors.append(text[:2000])
        if i == renders - 1:
            page.wait_for_timeout(1000)        # let late layout settle before the first update
            page.evaluate(ARM_JS, lib["figure"])
            handle = page.locator(".widget-slider .noUi-handle").first
            handle.focus()
            for _ in range(updates):
                page.keyboard.press("ArrowRight")
                page.wait_for_function(SETTLED_JS, timeout=60_000, polling=50)
                st = page.evaluate("window.__upd")
                lat.append(st["last"] - st["t0"])
                counts.append(st["n"])
            shown = page.locator(".widget-slider .widget-readout").first.inner_text()
            if shown.replace(",", "") != str(updates):
                errors.append(f"slider shows {shown!r} after {updates} ArrowRight presses")
            page.locator(lib["figure"]).first.screenshot(path=str(RESULTS / f"plotting-{name}.png"))
        ctx.close()
    return {"what": lib["what"], "first_render_ms": first, "update_ms": lat,
            "dom_changes_per_update": counts, "first_render_median_ms": _median(first),
            "update_median_ms": _median(lat),
            "update_p90_ms": (sorted(lat)[int(0.9 * (len(lat) - 1))] if lat else None),
            "errors": errors}


def check_surface(playwright, chromium: str, base: str) -> dict:
    from PIL import Image

    out = {}
    for label, extra in (("test flags", []), ("+ --enable-unsafe-swiftshader", SWIFTSHADER_ARGS)):
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS + extra)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            t0 = time.perf_counter()
            page.goto(f"{base}/voila/render/surface3d.ipynb", timeout=120_000)
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            page.wait_for_timeout(2000)
            text = page.evaluate("document.body.innerText")
            webgl = page.evaluate("""() => { const c = document.createElement('canvas');
                                     return !!(c.getContext('webgl2') || c.getContext('webgl')); }""")
            gl_canvases = page.locator(".js-plotly-plot .gl-container canvas").count()
            png = RESULTS / f"plotting-surface3d{'-swiftshader' if extra else ''}.png"
            page.locator(".js-plotly-plot").first.screenshot(path=str(png))
            with Image.open(png) as im:
                colours = len(im.convert("RGB").resize((200, 150)).getcolors(maxcolors=30_000))
            ok = (webgl and gl_canvases > 0 and "WebGL is not supported" not in text
                  and colours > 200)
            out[label] = {"renders": bool(ok), "webgl_context": bool(webgl),
                          "gl_canvases": gl_canvases, "distinct_colours": colours,
                          "webgl_message": "WebGL is not supported" in text,
                          "seconds": round(time.perf_counter() - t0, 2), "screenshot": png.name}
        finally:
            browser.close()
        if out[label]["renders"]:
            break
    return out


def _versions() -> dict:
    from importlib.metadata import version

    return {p.split("==")[0]: version(p.split("==")[0]) for p in REQUIREMENTS}


def measure(args) -> int:
    from playwright.sync_api import sync_playwright

    if not Path(args.chromium).exists():
        print(f"chromium not found at {args.chromium}: apt-get install -y "
              f"--no-install-recommends chromium", file=sys.stderr)
        return 2
    RESULTS.mkdir(exist_ok=True)
    libs = [name for name in LIBS if not args.only or name in args.only.split(",")]
    result = {"utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(),
                          "load_avg_start": os.getloadavg()},
              "chromium": subprocess.run([args.chromium, "--version"], capture_output=True,
                                         text=True).stdout.strip(),
              "chromium_args": CHROMIUM_ARGS, "versions": _versions(),
              "config": {"renders": args.renders, "updates": args.updates,
                         "quiet_ms": QUIET_MS, "points": 400, "curves": 4},
              "targets_ms": TARGETS_MS, "libs": {}}
    with tempfile.TemporaryDirectory(prefix="pmnb-plotting-") as tmp:
        folder = Path(tmp)
        write_notebooks(folder)
        server = Voila(folder)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                try:
                    for name in libs:
                        print(f"[plotting] {name} ...", flush=True)
                        result["libs"][name] = measure_lib(browser, server.base, name,
                                                           args.renders, args.updates)
                finally:
                    browser.close()
                if not args.no_surface:
                    print("[plotting] plotly 3-D surface ...", flush=True)
                    result["surface3d"] = check_surface(p, args.chromium, server.base)
        finally:
            server.stop()
    result["machine"]["load_avg_end"] = os.getloadavg()
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = Path(args.output) if args.output else RESULTS / f"plotting-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwritten to {path}")
    return 0


def print_table(result: dict) -> None:
    cfg = result["config"]
    print(f"\n2-D figure, {cfg['curves']} curves x {cfg['points']} points, in Voila + "
          f"{result['chromium']}; first render = median of {cfg['renders']} page loads "
          f"(navigation -> figure visible); update = keydown on the slider -> last figure DOM "
          f"change, median of {cfg['updates']} (p90)")
    print("| library | first render ms (min-max) | update ms median (p90) | errors |")
    print("|---|---:|---:|---|")
    for name, r in result["libs"].items():
        fr = r["first_render_ms"]
        print(f"| {name}: {r['what']} | {r['first_render_median_ms']:,.0f} "
              f"({min(fr):,.0f}-{max(fr):,.0f}) | {r['update_median_ms']:,.0f} "
              f"({r['update_p90_ms']:,.0f}) | {len(r['errors']) or 'none'} |")
    for label, s in result.get("surface3d", {}).items():
        print(f"plotly 3-D Surface with {label}: {'renders' if s['renders'] else 'DOES NOT render'}"
              f" (WebGL context {s['webgl_context']}, GL canvases {s['gl_canvases']}, "
              f"{s['distinct_colours']} colours)")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 updates, 2 page loads per library")
    ap.add_argument("--renders", type=int, default=3, help="page loads per library (3)")
    ap.add_argument("--updates", type=int, default=20, help="slider updates per library (20)")
    ap.add_argument("--only", default="", help="comma-separated libraries: " + ",".join(LIBS))
    ap.add_argument("--no-surface", action="store_true", help="skip the 3-D surface check")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--reinstall", action="store_true", help="reinstall the venv's packages")
    ap.add_argument("--output", default="", help="JSON path (default benchmarks/results/...)")
    args = ap.parse_args(argv)
    if args.quick:
        args.renders, args.updates = 2, 8
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not _in_venv():
        ensure_venv(args.reinstall)
        py = VENV / "bin" / "python"
        return subprocess.run([str(py), str(Path(__file__).resolve()), *argv]).returncode
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
