"""Shared helpers of the explorers: friendly error messages and timing.

Nothing here computes finance: it formats messages and measures time.
"""

from __future__ import annotations

import html
import time
from contextlib import contextmanager

import pmnb

__all__ = ["friendly_message", "status_html", "timer"]


def friendly_message(exc: BaseException) -> str:
    """A one-line message for the user: pmnb's own messages name the field, row and accepted
    range; anything else gets its type and text, never a traceback."""
    if isinstance(exc, pmnb.PmnbError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def status_html(message: str | None, kind: str = "error") -> str:
    """HTML for the status line: empty when all is well."""
    if not message:
        return ""
    color = {"error": "#b00020", "info": "#555555"}.get(kind, "#555555")
    prefix = "Invalid input — showing the last good state. " if kind == "error" else ""
    return (f'<div class="pmnb-status pmnb-{kind}" style="color:{color};">'
            f"{html.escape(prefix + message)}</div>")


@contextmanager
def timer(store: dict, key: str):
    """Record the elapsed wall time of the block in ``store[key]`` (milliseconds)."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        store[key] = (time.perf_counter() - t0) * 1e3
