"""The ``pmnb`` command line.

``pmnb dashboards`` serves the curated notebooks in ``notebooks/`` as Voila apps on 127.0.0.1, with
Voila's tree page as the landing page listing them, on shipped demo data (no network needed).

Examples
--------
>>> from pmnb.cli import build_parser
>>> args = build_parser().parse_args(["dashboards", "--port", "8899", "--dry-run"])
>>> (args.command, args.port, args.dry_run)
('dashboards', 8899, True)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from pmnb.errors import PmnbError

__all__ = ["build_parser", "main", "voila_command"]

DEFAULT_PORT = 8866


def _default_notebooks() -> Path:
    """``./notebooks`` if present, else the repository's ``notebooks/`` beside the package source."""
    here = Path.cwd() / "notebooks"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "notebooks"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pmnb`` command.

    Examples
    --------
    >>> build_parser().prog
    'pmnb'
    """
    p = argparse.ArgumentParser(prog="pmnb", description="pmnb command line")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dashboards", help="serve the curated notebooks as Voila dashboards")
    d.add_argument("--port", type=int, default=int(os.environ.get("PMNB_PORT", DEFAULT_PORT)),
                   help=f"port on 127.0.0.1 (default {DEFAULT_PORT}, or $PMNB_PORT)")
    d.add_argument("--notebooks", type=Path, default=None,
                   help="folder of notebooks to serve (default: ./notebooks)")
    d.add_argument("--dry-run", action="store_true", help="print the Voila command and exit")
    return p


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def voila_command(notebooks: Path, port: int) -> list[str]:
    """The Voila invocation used by ``pmnb dashboards``.

    Sources are stripped, the server binds 127.0.0.1 only, never opens a browser and never moves
    to another port when the requested one is busy (``port_retries=0``). The committed
    ``voila.json`` in the notebooks folder holds the same settings for a plain ``voila`` run.

    Kernels are preheated (one per notebook, which runs the notebook before anyone asks): on this
    2-core machine, measured in Debian's chromium a minute after start, navigation to drawn
    widgets took 2.1–3.6 s per app with preheating against 5.1–11.2 s without.

    Examples
    --------
    >>> cmd = voila_command(Path("notebooks"), 8866)
    >>> "--Voila.port_retries=0" in cmd and "--strip_sources=True" in cmd
    True
    >>> "--VoilaConfiguration.preheat_kernel=True" in cmd
    True
    """
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    exe = [voila] if voila else [sys.executable, "-m", "voila"]
    return exe + [str(notebooks), "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
                  "--Voila.port_retries=0", "--strip_sources=True",
                  "--show_tracebacks=False", "--theme=light",
                  "--classic_tree=True",
                  "--VoilaConfiguration.preheat_kernel=True",
                  "--VoilaConfiguration.default_pool_size=1"]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and ``kill`` (SIGTERM) both stop Voila and then this process: SIGINT is
    restored even when the shell started us with it ignored (a background job), and SIGTERM
    takes the same path instead of leaving Voila running on its own."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _dashboards(args: argparse.Namespace) -> int:
    nb = (args.notebooks or _default_notebooks()).resolve()
    if not nb.is_dir() or not any(nb.glob("*.ipynb")):
        raise PmnbError(f"notebooks: no notebooks found in {nb}; pass --notebooks PATH")
    if not 1 <= args.port <= 65535:
        raise PmnbError(f"port: got {args.port}; accepted: 1..65535")
    cmd = voila_command(nb, args.port)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    if not _port_free(args.port):
        raise PmnbError(f"port: 127.0.0.1:{args.port} is already in use; stop what uses it or "
                        f"pass --port N (or set PMNB_PORT)")
    print(f"pmnb dashboards: serving {nb} at http://127.0.0.1:{args.port}/  (Ctrl-C stops)",
          flush=True)
    _stop_on_signals()
    proc = subprocess.Popen(cmd, cwd=nb)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        print("pmnb dashboards: stopped", flush=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pmnb`` console script; returns the process exit code.

    Errors are printed as one line naming what was wrong (exit code 2), never as a traceback.

    Examples
    --------
    >>> main(["dashboards", "--port", "70000"])
    2
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "dashboards":
            return _dashboards(args)
    except PmnbError as exc:
        print(f"pmnb: error: {exc}", file=sys.stderr)
        return 2
    return 1  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
