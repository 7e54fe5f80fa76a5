"""LiquidationLadder: an account's equity and maintenance margin against the spot, with its
liquidation prices marked and their distance in %, USD and daily sigmas.

Every number comes from pmnb's public API: each curve point is the margin report of the account
prepared once (:func:`pmnb.margin.prepare`) at the move ``s``, which equals
:func:`pmnb.margin.compute` on ``market.shocked(s)`` (every non-stable price moved by the same
relative ``s``, as :func:`pmnb.liquidation.liquidation_prices` moves them), the markers are
:func:`~pmnb.liquidation.liquidation_prices` and the table is
:func:`~pmnb.liquidation.distance_to_liquidation`. This module chooses the grid, calls those
functions and draws with bqplot (marks updated in place).

The curve and the liquidation search are heavy (one margin computation per point; a bracketing
search with Brent refinement): they run on a background thread that keeps only the latest
request (:class:`~pmnb_widgets.margin_whatif.LatestOnly`) and stop within one margin
computation when superseded; a progress bar shows them. The "move" slider is the light path:
one margin computation at the chosen move.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Mapping

import ipywidgets as W
import numpy as np
import pandas as pd
import bqplot as bq

import pmnb
import pmnb.demo
from pmnb.errors import ValidationError
from pmnb.liquidation import distance_to_liquidation, liquidation_prices

from ._common import demo_defaults, friendly_message, status_html, timer
from .margin_whatif import (Cancellable, Cancelled, LatestOnly, account_models, default_account,
                           fmt_amount)

__all__ = ["LiquidationLadder"]

_STABLE = ("USD", "USDC", "USDT", "DAI")
_DIST_COLUMNS = ["group", "direction", "underlying", "price", "distance_pct", "distance_usd",
                 "distance_daily_sigmas"]

EXPLANATION = (
    "<b>How to read the ladder.</b> Every price of the market moves together by the same "
    "percentage (the x axis shows the account's first underlying); at each point the venue's "
    "margin model revalues the whole account (options on the fitted vol surface, sticky strike). "
    "The account is liquidated where its <i>equity</i> meets its <i>maintenance margin</i>: the "
    "red lines are the prices <code>liquidation_prices</code> finds (bracketing + Brent), and "
    "they sit exactly where the two curves cross. The table gives each one's distance in %, in "
    "USD and in daily standard deviations (the at-the-money vol 30 days ahead, scaled to one "
    "day), which says how unusual a move it would take.")


class LiquidationLadder(W.VBox):
    """Equity and maintenance margin of one account vs the spot, liquidation prices marked.

    Parameters
    ----------
    accounts, collateral, book, market : optional
        As returned by :func:`pmnb.demo.portfolio` (the default).
    account : str, optional
        Initial account (default: the first Deribit portfolio-margin account).
    model : str, optional
        Margin model (default: the account's own; Deribit accounts offer both rule sets).
    move_range_pct : (float, float)
        Initial range of the common price move, % (−95 … +400).
    n_points : int
        Points on each curve.
    horizon_days : float
        Passed to :func:`pmnb.liquidation.distance_to_liquidation` (the vol's horizon).
    background : bool
        Run the curve and the search on a background thread (default); ``False`` runs inline.
    liquidation_kwargs : mapping, optional
        Passed to :func:`pmnb.liquidation.liquidation_prices`.

    Attributes
    ----------
    fig : bqplot.Figure
        The chart; ``traces`` its ``bqplot.Lines`` marks in order: ``equity``, ``maintenance
        margin``, ``initial margin``, ``liquidation`` (one vertical segment per price: 2-D
        ``x``/``y``), ``spot now`` and ``move``.
    curve : DataFrame
        ``spot_shock, price, equity, maintenance, initial, gap`` (margin currency) and the same
        in USD (``equity_usd``, ...), one row per point.
    liquidation : LiquidationResult
        The search over the full range (−95 % … +400 % by default).
    distances : DataFrame
        :func:`~pmnb.liquidation.distance_to_liquidation` of it.
    markers : ndarray
        Liquidation prices drawn (those inside the plotted range).
    move_report : MarginReport
        The margin at the "move" slider.
    last_timing : dict
        ``move_ms`` of the last slider move; ``curve_ms`` and ``search_ms`` of the heavy work.

    Examples
    --------
    >>> from pmnb_widgets import LiquidationLadder
    >>> lad = LiquidationLadder(account="hyperliquid", n_points=21)
    >>> lad.wait()
    True
    >>> [t.labels[0] for t in lad.traces][:3]
    ['equity', 'maintenance margin', 'initial margin']
    >>> lad.liquidation.table["direction"].tolist()
    ['down']
    """

    def __init__(self, accounts: pd.DataFrame | None = None,
                 collateral: pd.DataFrame | None = None, book: pd.DataFrame | None = None,
                 market=None, account: str | None = None, model: str | None = None,
                 move_range_pct: tuple[float, float] = (-60.0, 300.0), n_points: int = 61,
                 horizon_days: float = 30.0, background: bool = True,
                 liquidation_kwargs: Mapping | None = None) -> None:
        accounts, collateral, book, market = demo_defaults(accounts, collateral, book, market)
        self.accounts, self.collateral_all = pmnb.book.validate_accounts(accounts, collateral)
        self.book_all = pmnb.validate_positions(book)
        self.market = market
        self.models = account_models(self.accounts)
        if not self.models:
            raise ValidationError("accounts: no account has a margin model", field="accounts")
        if int(n_points) < 5:
            raise ValidationError(f"n_points: {n_points}; accepted: >= 5", field="n_points")
        self.n_points = int(n_points)
        self.horizon_days = float(horizon_days)
        self._liq_kwargs = dict(liquidation_kwargs or {})
        self.runner = LatestOnly(background)
        self._lock = threading.RLock()
        self._liq_cache: dict = {}
        self._curve_cache: dict = {}
        self._syncing = False
        self.curve = pd.DataFrame()
        self.liquidation = None
        self.distances = pd.DataFrame()
        self.markers = np.array([])
        self.move_report = None
        self.last_timing: dict[str, float] = {}
        self._state: tuple | None = None          # (account, model) last shown

        account = default_account(self.models) if account is None else account
        style = {"description_width": "90px"}
        self.account = W.Dropdown(options=list(self.models), value=account,
                                  description="Account", style=style,
                                  layout=W.Layout(width="280px"))
        models = self.models[account]
        self.model = W.Dropdown(options=list(models), value=model or models[0],
                                description="Model", style=style,
                                layout=W.Layout(width="300px"))
        lo, hi = move_range_pct
        self.range = W.IntRangeSlider(value=(int(lo), int(hi)), min=-95, max=400, step=5,
                                      description="Move range %", continuous_update=False,
                                      style=style, layout=W.Layout(width="480px"))
        self.move = W.FloatSlider(value=0.0, min=float(lo), max=float(hi), step=0.5,
                                  description="Move %", continuous_update=False,
                                  readout_format="+.1f", style=style,
                                  layout=W.Layout(width="480px"))
        self.units = W.ToggleButtons(options=["margin currency", "USD"],
                                     value="margin currency", description="Units",
                                     style=style)
        self.status = W.HTML()
        self.readout = W.HTML()
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="200px"))
        self.busy_label = W.HTML()
        self.busy = W.HBox([self.progress, self.busy_label],
                           layout=W.Layout(visibility="hidden"))
        self.table = W.HTML(layout=W.Layout(overflow="auto"))
        self.explanation = W.HTML(EXPLANATION, layout=W.Layout(max_width="820px"))
        # bqplot: marks whose x/y are widget state (what the page shows on connecting is the
        # current state); chosen for 2-D from benchmarks/plotting.py (see pmnb_widgets)
        self._xs, self._ys = bq.LinearScale(), bq.LinearScale()
        sc = {"x": self._xs, "y": self._ys}
        self.traces = []
        for name, color, style_, width in (("equity", "#1f77b4", "solid", 2),
                                           ("maintenance margin", "#d62728", "solid", 2),
                                           ("initial margin", "#ff7f0e", "dotted", 1),
                                           ("liquidation", "#b00020", "dashed", 1.5),
                                           ("spot now", "grey", "solid", 1),
                                           ("move", "#2ca02c", "solid", 1)):
            self.traces.append(bq.Lines(
                x=[0.0, 0.0], y=[0.0, 0.0], scales=sc, colors=[color], line_style=style_,
                stroke_width=width, labels=[name], visible=False,
                display_legend=name not in ("spot now", "move")))
        self._xaxis = bq.Axis(scale=self._xs, label="price, USD", tick_format=",.0f",
                              num_ticks=7)
        self._yaxis = bq.Axis(scale=self._ys, side="left", label="", num_ticks=6)
        self.fig = bq.Figure(marks=self.traces, axes=[self._xaxis, self._yaxis],
                             legend_location="top-left", animation_duration=0,
                             fig_margin=dict(top=40, bottom=50, left=80, right=20),
                             layout=W.Layout(width="100%", max_width="900px", height="420px"))
        # the first curve and search run inline: when the notebook has run (Voila renders
        # then), the chart is already drawn rather than still computing
        self.runner.background = False
        try:
            if not self._select(account, self.model.value):
                raise ValidationError(f"LiquidationLadder: the initial account cannot be "
                                      f"margined: {self.status.value}", field="account")
        finally:
            self.runner.background = bool(background)
        super().__init__([
            W.HBox([self.account, self.model, self.units]),
            self.range, self.move, self.status, self.busy, self.fig, self.readout,
            W.HTML("<b>Distance to liquidation</b>"), self.table, self.explanation])
        self.account.observe(self._on_account, names="value")
        self.model.observe(self._on_model, names="value")
        self.range.observe(self._on_range, names="value")
        self.move.observe(lambda ch: self._on_move(), names="value")
        self.units.observe(lambda ch: self._redraw(), names="value")

    @property
    def widget(self) -> W.VBox:
        """The displayable widget (the explorer itself)."""
        return self

    def wait(self, timeout: float | None = 180.0) -> bool:
        """Wait for the background curve and search; False on timeout."""
        return self.runner.wait(timeout)

    # ---- inputs ------------------------------------------------------------------------------
    def _sub(self, account: str):
        book = self.book_all[self.book_all["account"].astype(str) == account]
        coll = self.collateral_all[self.collateral_all["account"].astype(str) == account]
        return book, (coll if len(coll) else None)

    def _underlying(self, book) -> str:
        for u in dict.fromkeys(book["underlying"].astype(str)):
            if u in self.market.spots and u.upper() not in _STABLE:
                return u
        raise ValidationError("underlying: the account holds no priced non-stable underlying; "
                              f"the market prices {sorted(self.market.spots)}",
                              field="underlying")

    def shocks(self) -> np.ndarray:
        """The relative moves of the curve: ``n_points`` evenly spaced over the range, plus 0."""
        lo, hi = self.range.value
        return np.unique(np.concatenate([np.linspace(lo / 100.0, hi / 100.0, self.n_points),
                                         [0.0]]))

    def margin_at(self, spot_shock: float):
        """:func:`pmnb.margin.compute` of the shown account and model at ``market.shocked(s)``."""
        account, model = self._state
        book, coll = self._sub(account)
        return pmnb.margin.compute(book, self.market.shocked(float(spot_shock)), model,
                                   account=account, collateral=coll)

    # ---- selection ---------------------------------------------------------------------------
    def _on_account(self, change) -> None:
        if self._syncing:
            return
        acc = change["new"]
        models = self.models[acc]
        self._syncing = True
        try:
            self.model.options = list(models)
            self.model.value = models[0]
        finally:
            self._syncing = False
        self._select(acc, models[0])

    def _on_model(self, change) -> None:
        if not self._syncing:
            self._select(self.account.value, change["new"])

    def _revert(self) -> None:
        if self._state is None:
            return
        acc, model = self._state
        self._syncing = True
        try:
            self.account.value = acc
            self.model.options = list(self.models[acc])
            self.model.value = model
        finally:
            self._syncing = False

    def _select(self, account: str, model: str) -> bool:
        """Show ``account`` under ``model``: a quick check at the current market (light), then
        the curve and the search in the background. On failure keep the last state."""
        book, coll = self._sub(account)
        try:
            und = self._underlying(book)
            rep = pmnb.margin.compute(book, self.market, model, account=account,
                                      collateral=coll)
        except Exception as exc:  # noqa: BLE001 - shown as a message, never a traceback
            msg = f"{account} under {model}: {friendly_message(exc)}"
            if self._state is not None:
                msg += f" Still showing {self._state[0]} ({self._state[1]})."
            self.status.value = status_html(msg)
            self._revert()
            return False
        with self._lock:
            self._state = (account, model)
            self._und, self._spot0, self._currency = und, self.market.spot(und), rep.currency
            self.status.value = ""
            self.move_report = rep
            self._syncing = True
            try:
                self.move.value = 0.0
            finally:
                self._syncing = False
        self._start()
        self._on_move()
        return True

    def _on_range(self, change) -> None:
        lo, hi = change["new"]
        if not lo < 0 < hi:
            self.status.value = status_html(
                f"Move range: {lo:+d} % … {hi:+d} %; accepted: a range around 0 (lower < 0 < "
                "upper)")
            self._syncing = True
            try:
                self.range.value = change["old"]
            finally:
                self._syncing = False
            return
        if self._syncing:
            return
        self.status.value = ""
        with self.move.hold_trait_notifications():
            self.move.min, self.move.max = float(lo), float(hi)
        self._start()

    # ---- light path: one margin computation -------------------------------------------------
    def _on_move(self) -> None:
        if self._syncing or self._state is None:
            return
        timing: dict[str, float] = {}
        s = float(self.move.value) / 100.0
        try:
            with timer(timing, "move_ms"):
                rep = self.margin_at(s)
        except Exception as exc:  # noqa: BLE001
            self.status.value = status_html(f"move {s:+.1%}: {friendly_message(exc)}")
            return
        self.move_report = rep
        self.last_timing.update(timing)
        self.status.value = ""
        price = self._spot0 * (1.0 + s)
        cur = rep.currency
        gap = rep.equity - rep.maintenance
        state = ("<b style='color:#b00020'>liquidatable</b>" if gap <= 0 else
                 "above maintenance")
        self.readout.value = (
            f"<div class='pmnb-readout'>At {html.escape(self._und)} <b>{price:,.2f}</b> USD "
            f"({100 * s:+.1f} %): equity <b>{fmt_amount(rep.equity, cur)}</b> {cur}, "
            f"maintenance <b>{fmt_amount(rep.maintenance, cur)}</b> {cur}, initial "
            f"{fmt_amount(rep.initial, cur)} {cur}, margin ratio "
            f"<b>{100 * rep.margin_ratio:.2f} %</b> — {state}.</div>")
        self._draw_move()

    # ---- heavy path: curve and search ---------------------------------------------------------
    def _start(self) -> None:
        account, model = self._state
        shocks = self.shocks()
        key = (account, model, tuple(np.round(shocks, 12)))
        book, coll = self._sub(account)
        market, kw, horizon = self.market, self._liq_kwargs, self.horizon_days
        need_curve = key not in self._curve_cache
        need_liq = (account, model) not in self._liq_cache
        if not (need_curve or need_liq):
            self.runner.cancel()
            self._publish(account, model, key, lambda: False)
            return
        total = (len(shocks) if need_curve else 0) + (1 if need_liq else 0)
        self._busy(0, total, "computing…")
        und, spot0 = self._und, self._spot0

        def job(is_stale):
            done = 0
            t = {}
            try:
                if need_curve:
                    with timer(t, "curve_ms"):
                        rows = []
                        # validated and looked up once; each point = compute on the shocked market
                        prep = pmnb.margin.prepare(book, market, model, account=account,
                                                   collateral=coll)
                        for s in shocks:
                            if is_stale():
                                return
                            rep = prep.compute(float(s))
                            u = rep.usd_per_unit
                            rows.append((s, spot0 * (1.0 + s), rep.equity, rep.maintenance,
                                         rep.initial, rep.equity * u, rep.maintenance * u,
                                         rep.initial * u))
                            done += 1
                            self._busy(done, total, f"equity and margin at {done}/{len(shocks)} "
                                       "prices…", is_stale)
                    curve = pd.DataFrame(rows, columns=["spot_shock", "price", "equity",
                                                        "maintenance", "initial", "equity_usd",
                                                        "maintenance_usd", "initial_usd"])
                    curve["gap"] = curve["equity"] - curve["maintenance"]
                    curve.attrs["underlying"] = und
                    self._curve_cache[key] = curve
                if need_liq:
                    self._busy(done, total, "searching liquidation prices (bracketing + "
                               "Brent)…", is_stale)
                    with timer(t, "search_ms"):
                        res = liquidation_prices(book, market, Cancellable(model, is_stale),
                                                 account=account, collateral=coll, **kw)
                        dist = distance_to_liquidation(res, market, horizon_days=horizon)
                    self._liq_cache[account, model] = (res, dist)
            except Cancelled:
                return
            except Exception as exc:  # noqa: BLE001 - a message in the widget
                with self._lock:
                    if not is_stale():
                        self.status.value = status_html(friendly_message(exc))
                        self._busy(0, 0, "")
                return
            self.last_timing.update(t)
            self._publish(account, model, key, is_stale)

        self.runner.submit(job)

    def _publish(self, account, model, key, is_stale) -> None:
        with self._lock:
            if is_stale() or self._state != (account, model):
                return
            self.curve = self._curve_cache[key]
            self.liquidation, self.distances = self._liq_cache[account, model]
            self._busy(0, 0, "")
            self._redraw()

    def _busy(self, done: int, total: int, text: str, is_stale=None) -> None:
        if is_stale is not None and is_stale():
            return
        self.progress.max = max(total, 1)
        self.progress.value = min(done, self.progress.max)
        self.busy_label.value = html.escape(text)
        self.busy.layout.visibility = "visible" if text else "hidden"

    # ---- drawing -------------------------------------------------------------------------------
    def _cols(self) -> tuple[str, str, str, str]:
        usd = self.units.value == "USD"
        sfx = "_usd" if usd else ""
        return ("equity" + sfx, "maintenance" + sfx, "initial" + sfx,
                "USD" if usd else self._currency)

    def _redraw(self) -> None:
        c = self.curve
        if c.empty or self.liquidation is None:
            return
        eq, mm, im, unit = self._cols()
        lo, hi = float(c["price"].min()), float(c["price"].max())
        t = self.liquidation.table
        und = c.attrs.get("underlying", self._und)
        t = t[t["underlying"].astype(str) == und] if len(t) else t
        prices = t["price"].to_numpy(dtype=float) if len(t) else np.array([])
        self.markers = np.sort(prices[(prices >= lo) & (prices <= hi)])
        ys = np.concatenate([c[eq], c[mm], c[im]])
        ys = ys[np.isfinite(ys)]
        y0, y1 = (float(ys.min()), float(ys.max())) if len(ys) else (0.0, 1.0)
        price = c["price"].to_numpy(dtype=float)
        with self.fig.hold_sync():
            for tr, col in zip(self.traces[:3], (eq, mm, im)):
                tr.x, tr.y, tr.visible = price, c[col].to_numpy(dtype=float), True
            liq = self.traces[3]
            if len(self.markers):
                liq.x = np.array([[p, p] for p in self.markers])
                liq.y = np.array([[y0, y1]] * len(self.markers))
            liq.visible = bool(len(self.markers))
            self.traces[4].x, self.traces[4].y = [self._spot0, self._spot0], [y0, y1]
            self.traces[4].visible = True
            self._xaxis.label = f"{und} price, USD (every price moves together)"
            self._yaxis.label = unit
            self.fig.title = (f"{self._state[0]} under {self._state[1]}: equity and "
                              "margin vs spot")
        self._y = (y0, y1)
        self._draw_move()
        self.table.value = self._table_html()

    def _draw_move(self) -> None:
        if getattr(self, "_y", None) is None or self.move_report is None:
            return
        x = self._spot0 * (1.0 + float(self.move.value) / 100.0)
        with self.traces[5].hold_sync():
            self.traces[5].x, self.traces[5].y = [x, x], list(self._y)
            self.traces[5].visible = True

    def _table_html(self) -> str:
        res, d = self.liquidation, self.distances
        head = (f"<p>{html.escape(res.status)} (searched {res.searched[0]:+.0%} … "
                f"{res.searched[1]:+.0%}; model {html.escape(res.model)}).</p>")
        if d.empty:
            return head
        shown = d[[c for c in _DIST_COLUMNS if c in d.columns]]
        return head + shown.to_html(index=False, classes="pmnb-table", border=0,
                                    float_format=lambda v: f"{v:,.2f}")
