"""README command 1 end to end (without a browser): `pmnb dashboards` serves the notebooks with
Voila on 127.0.0.1, renders them on shipped data, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 120.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        assert resp.status == 200
        return resp.read().decode()


@pytest.mark.slow
def test_pmnb_dashboards_serves_rendered_notebooks(tmp_path):
    port = _free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = tmp_path / "dashboards.log"  # a file, not a pipe: an undrained pipe would block Voila
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "pmnb.cli", "dashboards", "--port",
                                 str(port), "--notebooks", str(ROOT / "notebooks")],
                                stdout=sink, stderr=subprocess.STDOUT, text=True, env=env,
                                start_new_session=True,
                                # a shell's background job inherits SIGINT ignored: restore it
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while True:
            try:
                tree = _get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.time() < deadline, "voila did not start: " + log.read_text()
                time.sleep(0.5)
        assert f"http://127.0.0.1:{port}/" in log.read_text().splitlines()[0]
        notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
        for name in notebooks:
            assert name in tree
        page = _get(f"http://127.0.0.1:{port}/voila/render/greeks_school.ipynb")
        assert "median |mark error|" in page          # an output computed on shipped data
        assert "pmnb.greeks(" not in page             # sources are stripped
        assert "Traceback" not in page
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    out = log.read_text()
    assert proc.returncode == 0, out
    assert "pmnb dashboards: stopped" in out


def _start_ignoring_sigint(tmp_path):
    """`pmnb dashboards` started the way a shell starts a background job: SIGINT ignored."""
    port = _free_port()
    log = tmp_path / "dashboards.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "pmnb.cli", "dashboards", "--port",
                                 str(port), "--notebooks", str(ROOT / "notebooks")],
                                stdout=sink, stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.time() + 120
    while True:
        try:
            _get(f"http://127.0.0.1:{port}/", timeout=5)
            return proc, log
        except OSError:
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, "voila did not start: " + log.read_text()
            time.sleep(0.5)


def _group_gone(pgid: int, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_dashboards_stop_with_voila_on_sigint_and_sigterm(tmp_path, signum):
    proc, log = _start_ignoring_sigint(tmp_path)
    try:
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0, log.read_text()
        assert "pmnb dashboards: stopped" in log.read_text()
        assert _group_gone(proc.pid), "voila outlived pmnb dashboards"
    finally:
        if not _group_gone(proc.pid, timeout=0.1):
            os.killpg(proc.pid, signal.SIGKILL)
