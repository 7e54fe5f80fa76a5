"""Shared helpers of the explorers: friendly error messages and timing.

Nothing here computes finance: it formats messages and measures time.
"""

from __future__ import annotations

import html
import time
from contextlib import contextmanager

import pmnb

__all__ = ["demo_defaults", "friendly_message", "status_html", "timer"]


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


def demo_defaults(accounts=None, collateral=None, book=None, market=None):
    """``(accounts, collateral, book, market)`` with what is not given taken from
    :func:`pmnb.demo.portfolio` (loaded only when something is missing)."""
    if accounts is None or book is None or market is None:
        import pmnb.demo

        d_acc, d_coll, d_book, d_mkt = pmnb.demo.portfolio()
        accounts = d_acc if accounts is None else accounts
        collateral = d_coll if collateral is None else collateral
        book = d_book if book is None else book
        market = d_mkt if market is None else market
    return accounts, collateral, book, market
