"""PositionExplorer: the book as a grid with per-row greeks, exposures by a chosen key, coin/USD.

Every number comes from ``df.pm.value``, ``df.pm.greeks`` and ``df.pm.exposures``; this module
selects, sorts, filters and renders columns.
"""

from __future__ import annotations

import html

import ipywidgets as W
import pandas as pd

import pmnb

from ._common import friendly_message, status_html, timer

__all__ = ["PositionExplorer", "GROUP_KEYS"]

GROUP_KEYS = ("underlying", "expiry", "venue", "account")
_ID_COLUMNS = ["position_id", "account", "venue", "symbol", "kind", "underlying", "expiry", "size"]
# Per-currency column choice (columns as pmnb names them); gamma/vega/theta per row are in the
# row's greeks_currency, which is shown beside them.
_ROW_COLUMNS = {"coin": ["value_coin", "delta_coin"], "USD": ["value_usd", "delta_usd"]}
_ROW_COMMON = ["gamma", "gamma_1pct_usd", "vega", "theta", "greeks_currency"]
_EXPO_COLUMNS = {"coin": ["delta_coin", "gamma", "gamma_1pct_usd", "vega_coin", "theta_coin"],
                 "USD": ["delta_usd", "gamma", "gamma_1pct_usd", "vega_usd", "theta_usd"]}


def _html_table(frame: pd.DataFrame, index: bool) -> str:
    return frame.to_html(index=index, float_format=lambda v: f"{v:,.4f}", na_rep="",
                         classes="pmnb-table", border=0)


class PositionExplorer(W.VBox):
    """The book with per-row value and greeks, and exposures aggregated by a dropdown key.

    Parameters
    ----------
    book, market : optional
        A positions frame and a :class:`pmnb.Market`; default: :func:`pmnb.demo.portfolio`.
    group_by : {"underlying", "expiry", "venue", "account"}
    currency : {"coin", "USD"}

    Attributes
    ----------
    table : pandas.DataFrame
        The per-position grid shown (after filter and sort).
    exposures : pandas.DataFrame
        The aggregated exposures shown (``df.pm.exposures(market, by=[group_by])`` columns for
        the chosen currency).
    last_timing : dict
        ``compute_ms`` (pmnb calls) and ``render_ms`` (HTML) of the last update.

    Examples
    --------
    >>> from pmnb_widgets import PositionExplorer
    >>> ex = PositionExplorer()
    >>> ex.group_by.value = "venue"
    >>> ex.exposures.index.name
    'venue'
    """

    def __init__(self, book: pd.DataFrame | None = None, market=None,
                 group_by: str = "underlying", currency: str = "USD") -> None:
        if book is None or market is None:
            _, _, demo_book, demo_market = pmnb.demo.portfolio()
            book = demo_book if book is None else book
            market = demo_market if market is None else market
        self.group_by = W.Dropdown(options=list(GROUP_KEYS), value=group_by,
                                   description="Exposures by")
        self.currency = W.ToggleButtons(options=["coin", "USD"], value=currency,
                                        description="Currency")
        self.sort_by = W.Dropdown(options=["(book order)"], value="(book order)",
                                  description="Sort by")
        self.ascending = W.Checkbox(value=False, description="ascending", indent=False)
        self.filter = W.Text(value="", placeholder="account, venue, symbol or underlying",
                             description="Filter", continuous_update=False)
        self.status = W.HTML(value="")
        self.grid = W.HTML(value="", layout=W.Layout(overflow="auto", max_height="420px"))
        self.exposure_view = W.HTML(value="", layout=W.Layout(overflow="auto"))
        self.exposure_view.add_class("pmnb-exposures")
        self.last_timing: dict[str, float] = {}
        self.table = pd.DataFrame()
        self.exposures = pd.DataFrame()
        self._rows: pd.DataFrame | None = None
        self._book = self._market = None
        super().__init__([
            W.HBox([self.group_by, self.currency]),
            W.HBox([self.filter, self.sort_by, self.ascending]),
            self.status,
            W.HTML("<b>Positions</b>"), self.grid,
            W.HTML("<b>Exposures</b>"), self.exposure_view,
        ])
        self.set_data(book, market)
        if self._rows is None:
            raise ValueError(f"PositionExplorer: the initial book or market is invalid: "
                             f"{self.status.value}")
        self.group_by.observe(self._on_group, names="value")
        for w in (self.currency, self.sort_by, self.ascending, self.filter):
            w.observe(self._on_view, names="value")

    @property
    def widget(self) -> W.VBox:
        """The displayable widget (the explorer itself)."""
        return self

    @property
    def book(self) -> pd.DataFrame:
        return self._book

    @property
    def market(self):
        return self._market

    # ---- data -------------------------------------------------------------------------------
    def set_data(self, book: pd.DataFrame | None = None, market=None) -> bool:
        """Replace the book and/or market and recompute; on failure keep the last good state,
        show the message and return False."""
        book = self._book if book is None else book
        market = self._market if market is None else market
        timing: dict[str, float] = {}
        try:
            with timer(timing, "compute_ms"):
                values = book.pm.value(market)
                greeks = book.pm.greeks(market)
                expo = book.pm.exposures(market, by=[self.group_by.value])
                ids = book.pm.validate()[_ID_COLUMNS]
                rows = pd.concat([ids, values[["value_coin", "value_usd"]], greeks], axis=1)
        except Exception as exc:  # noqa: BLE001 - shown as a message, never a traceback
            self.status.value = status_html(friendly_message(exc))
            return False
        self._book, self._market, self._rows, self._expo = book, market, rows, expo
        numeric = [c for c in rows.columns if pd.api.types.is_numeric_dtype(rows[c])]
        with self.sort_by.hold_trait_notifications():
            current = self.sort_by.value
            self.sort_by.options = ["(book order)", *numeric]
            self.sort_by.value = current if current in self.sort_by.options else "(book order)"
        self.status.value = ""
        self._render(timing)
        return True

    def _on_group(self, change) -> None:
        timing: dict[str, float] = {}
        try:
            with timer(timing, "compute_ms"):
                expo = self._book.pm.exposures(self._market, by=[change["new"]])
        except Exception as exc:  # noqa: BLE001
            self.status.value = status_html(friendly_message(exc))
            return
        self._expo = expo
        self.status.value = ""
        self._render(timing)

    def _on_view(self, change) -> None:
        self._render({"compute_ms": 0.0})

    # ---- view -------------------------------------------------------------------------------
    def _render(self, timing: dict) -> None:
        cur = self.currency.value
        rows = self._rows
        text = self.filter.value.strip().lower()
        if text:
            keys = rows[["account", "venue", "symbol", "underlying"]].astype(str)
            mask = keys.apply(lambda c: c.str.lower().str.contains(text, regex=False)).any(axis=1)
            rows = rows[mask]
        if self.sort_by.value != "(book order)":
            rows = rows.sort_values(self.sort_by.value, ascending=self.ascending.value,
                                    kind="stable")
        with timer(timing, "render_ms"):
            self.table = rows[_ID_COLUMNS + _ROW_COLUMNS[cur] + _ROW_COMMON].copy()
            self.exposures = self._expo[_EXPO_COLUMNS[cur]].copy()
            self.grid.value = _html_table(self.table, index=False)
            self.exposure_view.value = _html_table(self.exposures, index=True)
            if self.table.empty:
                self.grid.value += (f"<i>No position matches "
                                    f"{html.escape(self.filter.value)!s}.</i>")
        self.last_timing = timing
