"""MarginWhatIf: resize, remove and add trades on one account and see its margin before → after.

Every number comes from pmnb's public API: :func:`pmnb.margin.compute` (equity, initial and
maintenance margin, margin ratio, excess), :func:`pmnb.liquidation.liquidation_prices` (the
liquidation prices down and up) and :func:`pmnb.ledger.trade_at_mark` (a trade filled at
the mark: new size, average entry, cash). This module edits a copy of the account's book and
collateral through those functions and lays the results out; it computes no finance of its own.

What an edit means (stated in the widget too):

* derivatives (options, futures, perpetuals) trade **at the current mark**
  (:func:`pmnb.ledger.trade_at_mark`): entries average per venue convention, a reduction
  realises P&L into the collateral, an option's premium is paid or received (USD amounts in the
  account's stable margin currency, e.g. USDC on Hyperliquid). A trade at mark therefore leaves
  equity unchanged and moves only the margin requirement (the tests check this identity);
* lending rows (Aave supply / borrow) change their token amount only: a deposit from outside or
  a borrow withdrawn from the account (equity moves by its value);
* a size of 0 removes the position; adding a symbol the account already holds resizes that row
  (venues hold one position per instrument).

Heavy work (the liquidation-price searches) runs on one background thread that keeps only the
latest request: an edit made while a search runs supersedes it, and stale results are never
shown (:class:`LatestOnly`).
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as W
import numpy as np
import pandas as pd

import pmnb
import pmnb.demo
from pmnb.errors import ValidationError
from pmnb.liquidation import liquidation_prices

from ._common import demo_defaults, friendly_message, status_html, timer

__all__ = ["Cancellable", "Cancelled", "DERIBIT_MODELS", "LatestOnly", "MarginWhatIf", "METRICS", "account_models",
           "venue_instruments"]

#: Rows of :attr:`MarginWhatIf.results`, in display order.
METRICS = ("equity", "initial", "maintenance", "margin_ratio", "excess", "liquidation_down",
           "liquidation_up")
#: The two Deribit rule sets shown side by side for a Deribit account.
DERIBIT_MODELS = ("deribit.standard", "deribit.portfolio")
_TRADED = ("option", "future", "perpetual")        # traded at mark, cash-settled against value
_LENDING = ("lending_supply", "lending_borrow")
_STABLE = ("USD", "USDC", "USDT", "DAI")
_LABELS = {"equity": "Equity", "initial": "Initial margin (IM)",
           "maintenance": "Maintenance margin (MM)", "margin_ratio": "Margin ratio (MM / equity)",
           "excess": "Excess (equity − IM)", "liquidation_down": "Liquidation price, down",
           "liquidation_up": "Liquidation price, up"}

EXPLANATION = (
    "<b>How to read this.</b> <i>Equity</i> is what the account is worth to the venue (collateral "
    "+ option values + unrealised P&amp;L). The <i>initial margin</i> must be covered to open risk "
    "(excess = equity − IM); the <i>maintenance margin</i> is the floor: when equity falls to it "
    "(margin ratio MM / equity reaches 100 %) the venue's engine starts liquidating. The "
    "<i>liquidation prices</i> are where that happens if every price moves together (full "
    "revaluation, options included). <b>Edits trade at the current mark</b>: the position's "
    "change in value is paid from or credited to collateral, so equity does not move — only the "
    "requirement does. Lending rows change their amount (a deposit or a borrow taken out). "
    "For a Deribit account both rule sets are shown: <i>standard margin</i> adds up a "
    "requirement per position; <i>portfolio margin</i> revalues the whole account in a grid of "
    "price and vol scenarios and charges the worst loss, so hedges offset each other.")


# ---- helpers that choose inputs (no finance) ------------------------------------------------
def account_models(accounts: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Models shown per account: the account's own model first (chosen as
    :func:`pmnb.margin.compute_accounts` does, from
    :data:`pmnb.margin.DEFAULT_ACCOUNT_MODELS`), then, for Deribit accounts, the other Deribit
    rule set. Accounts no margin applies to (e.g. a Uniswap LP) are left out.

    Examples
    --------
    >>> import pmnb.demo
    >>> accounts, _, _, _ = pmnb.demo.portfolio(fit_vols=False)
    >>> account_models(accounts)["deribit-pm"]
    ('deribit.portfolio', 'deribit.standard')
    >>> "uniswap-v3" in account_models(accounts)
    False
    """
    table = pmnb.margin.DEFAULT_ACCOUNT_MODELS
    out: dict[str, tuple[str, ...]] = {}
    for _, row in accounts.iterrows():
        venue, mode = str(row["venue"]).lower(), str(row["margin_mode"])
        key = (venue, mode) if (venue, mode) in table else (venue, "*")
        own = table.get(key)
        if own is None:
            continue
        others = tuple(m for m in DERIBIT_MODELS if m != own) if own in DERIBIT_MODELS else ()
        out[str(row["account"])] = (own, *others)
    return out


def default_account(models: Mapping[str, tuple]) -> str:
    """The account an explorer opens on: the first portfolio-margin Deribit account, else the
    first account with a model (``models`` as :func:`account_models` returns it).

    Examples
    --------
    >>> default_account({"b": ("binance.usdm",), "d": ("deribit.portfolio", "deribit.standard")})
    'd'
    """
    pm = [a for a, m in models.items() if m[0] == "deribit.portfolio"]
    return pm[0] if pm else next(iter(models))


def venue_instruments(market, venue: str) -> list[str]:
    """Symbols a what-if trade can use on ``venue``: the market's venue marks (perpetuals), and
    for Deribit the futures and options of the shipped snapshot taken at the market's own time
    (:func:`pmnb.datasets.load_deribit_forwards`, :func:`pmnb.datasets.load_deribit_chain`),
    unexpired, on underlyings the market prices.

    Examples
    --------
    >>> import pmnb.demo
    >>> m = pmnb.demo.market(fit_vols=False)
    >>> venue_instruments(m, "binance")
    ['BTCUSDT', 'ETHUSDT']
    >>> syms = venue_instruments(m, "deribit")
    >>> syms[:3], "BTC-27MAR26-100000-C" in syms
    (['BTC-PERPETUAL', 'ETH-PERPETUAL', 'BTC-2JAN26'], True)
    """
    venue = str(venue).lower()
    out = sorted(k.split(":", 1)[1] for k in market.marks if k.split(":", 1)[0].lower() == venue)
    if venue != "deribit":
        return out
    day = market.timestamp.strftime("%Y-%m-%d")
    try:
        fwd = pmnb.datasets.load_deribit_forwards(day)
        chain = pmnb.datasets.load_deribit_chain(day)
    except ValidationError:  # no shipped snapshot on that day: the marks are all we know
        return out
    if pd.Timestamp(chain["snapshot"].iloc[0]) != market.timestamp:
        return out
    for frame, kinds in ((fwd, ("future",)), (chain, None)):
        keep = frame["expiry"] > market.timestamp
        keep &= frame["currency"].astype(str).isin(list(market.spots))
        if kinds is not None:
            keep &= frame["kind"].astype(str).isin(kinds)
        out += [s for s in frame.loc[keep, "instrument_name"].astype(str) if s not in out]
    return out


def _is_stable(currency: str) -> bool:
    return str(currency).upper() in _STABLE


def fmt_amount(value: float, currency: str) -> str:
    """Display format of an amount: 2 decimals for USD stablecoins, 6 for coins.

    Examples
    --------
    >>> fmt_amount(1234.5, "USDT"), fmt_amount(0.5, "BTC"), fmt_amount(float("nan"), "BTC")
    ('1,234.50', '0.500000', '—')
    """
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:,.2f}" if _is_stable(currency) else f"{value:,.6f}"


def fmt_ratio(value: float) -> str:
    """Margin ratio as a percentage.

    Examples
    --------
    >>> fmt_ratio(0.109855), fmt_ratio(float("inf"))
    ('10.99 %', '∞')
    """
    if value is None or np.isnan(value):
        return "—"
    return "∞" if np.isinf(value) else f"{100.0 * value:.2f} %"


def fmt_price(price: float, spot: float) -> str:
    """A liquidation price with its distance from the spot.

    Examples
    --------
    >>> fmt_price(60_694.158, 88_480.77)
    '60,694.16 (−31.40 %)'
    """
    d = 100.0 * (price / spot - 1.0)
    return f"{price:,.2f} ({d:+.2f} %)".replace("-", "−")


def _note_html(message: str, color: str = "#b00020") -> str:
    if not message:
        return ""
    return (f'<div class="pmnb-status pmnb-note" style="color:{color};">'
            f"{html.escape(message)}</div>")


class LatestOnly:
    """Run jobs one at a time on a daemon thread, keeping only the latest request.

    ``submit(job)`` bumps a generation number; ``job(is_stale)`` runs later on the worker (or at
    once when ``background=False``) and must stop, and publish nothing, once ``is_stale()`` is
    true. A job submitted while another runs replaces any job still waiting, so the kernel never
    works through a queue of stale requests.

    Examples
    --------
    >>> seen = []
    >>> r = LatestOnly()
    >>> r.submit(lambda is_stale: seen.append(is_stale()))
    >>> r.wait(10)
    True
    >>> seen
    [False]
    """

    def __init__(self, background: bool = True) -> None:
        self.background = bool(background)
        self.generation = 0
        self._lock = threading.Lock()
        self._pending: tuple[int, Callable] | None = None
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()

    def is_stale(self, generation: int) -> bool:
        """True once a newer job has been submitted."""
        return generation != self.generation

    def cancel(self) -> None:
        """Make the running and waiting jobs stale (they stop at their next check)."""
        with self._lock:
            self.generation += 1
            self._pending = None

    def submit(self, job: Callable[[Callable[[], bool]], None]) -> None:
        """Schedule ``job(is_stale)``, superseding every earlier job."""
        with self._lock:
            self.generation += 1
            gen = self.generation
            if not self.background:
                self._pending = None
            else:
                self._pending = (gen, job)
                self._idle.clear()
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, daemon=True,
                                                    name="pmnb-widgets-worker")
                    self._thread.start()
                return
        job(lambda: self.is_stale(gen))

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._pending is None:
                    self._thread = None
                    self._idle.set()
                    return
                gen, job = self._pending
                self._pending = None
            try:
                job(lambda: self.is_stale(gen))
            except Exception:  # noqa: BLE001 - jobs report their own errors in the widget
                pass

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no job runs or waits; False if ``timeout`` (s) passed first."""
        return self._idle.wait(timeout)


class Cancelled(Exception):
    """Raised inside a background search once its request is stale."""


class Cancellable(pmnb.margin.MarginModel):
    """A margin model that delegates to ``inner`` and raises :class:`Cancelled` at its next
    evaluation once ``is_stale()`` is true, so a long :func:`pmnb.liquidation.liquidation_prices`
    search stops within one margin computation of being superseded. Numbers are the inner
    model's, unchanged.

    Examples
    --------
    >>> m = Cancellable(pmnb.margin.get("binance.usdm"), lambda: False)
    >>> m.name, m.kinds == pmnb.margin.get("binance.usdm").kinds
    ('binance.usdm', True)
    """

    def __init__(self, inner, is_stale: Callable[[], bool]) -> None:  # no super(): no params
        self.inner = pmnb.margin.get(inner) if isinstance(inner, str) else inner
        self.name = self.inner.name
        self.kinds = self.inner.kinds
        self.margin_modes = self.inner.margin_modes
        self.params = self.inner.params
        self._is_stale = is_stale

    def check_supported(self, book):
        return self.inner.check_supported(book)

    def margin_currency(self, *args, **kwargs):
        return self.inner.margin_currency(*args, **kwargs)

    def compute(self, book, market, **kwargs):
        if self._is_stale():
            raise Cancelled()
        return self.inner.compute(book, market, **kwargs)

    def prepare(self, book, market, **kwargs):
        """The inner model's prepared form (where pmnb has one), its evaluations checked for
        staleness the same way."""
        return _StaleChecked(self.inner.prepare(book, market, **kwargs), self._is_stale)


class _StaleChecked:
    """Proxy of a prepared margin object whose ``evaluate`` / ``compute`` raise
    :class:`Cancelled` once stale; everything else is the inner object's."""

    def __init__(self, inner, is_stale: Callable[[], bool]) -> None:
        self._inner = inner
        self._is_stale = is_stale

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name in ("evaluate", "compute") and callable(attr):
            def checked(*args, **kwargs):
                if self._is_stale():
                    raise Cancelled()
                return attr(*args, **kwargs)
            return checked
        return attr


# ---- the explorer ---------------------------------------------------------------------------
class MarginWhatIf(W.VBox):
    """Pick an account, resize, remove or add trades, and see margin and liquidation prices
    before → after; Deribit accounts show standard and portfolio margin side by side.

    Parameters
    ----------
    accounts, collateral, book, market : optional
        As returned by :func:`pmnb.demo.portfolio` (the default).
    account : str, optional
        Initial account (default: the first Deribit portfolio-margin account, else the first).
    instruments : mapping venue -> list of symbols, optional
        Symbols offered in the "add trade" row (default :func:`venue_instruments`).
    background : bool
        Run the liquidation-price searches on a background thread (default); ``False`` runs
        them inline (scripts, tests).
    liquidation_kwargs : mapping, optional
        Passed to :func:`pmnb.liquidation.liquidation_prices` (``lower``, ``upper``, ``n_grid``).

    Attributes
    ----------
    book, collateral : DataFrame
        The account's positions and collateral after the edits (what is margined).
    reports : dict
        ``(model, "before" | "after") -> MarginReport`` (or the exception it raised).
    liquidations : dict
        ``(model, "before" | "after") -> LiquidationResult`` once searched.
    results : DataFrame
        The numbers shown: rows :data:`METRICS`, columns ``(model, "before" | "after")``, in the
        model's margin currency (``margin_ratio`` as a fraction; liquidation prices in USD of
        the account's first underlying, ``liquidation_underlying[phase]``; NaN while searching or
        when there is none).
    last_timing : dict
        ``compute_ms`` (edit + margin of every model) and ``render_ms`` of the last update.

    Examples
    --------
    >>> from pmnb_widgets import MarginWhatIf
    >>> ex = MarginWhatIf(account="binance-usdm")
    >>> ex.resize("B-BTCUSDT", -5.0)
    True
    >>> ex.wait()
    True
    >>> r = ex.results["binance.usdm"]
    >>> bool(r.loc["maintenance", "after"] > r.loc["maintenance", "before"])
    True
    >>> bool(abs(r.loc["equity", "after"] - r.loc["equity", "before"]) < 1e-6)
    True
    """

    def __init__(self, accounts: pd.DataFrame | None = None,
                 collateral: pd.DataFrame | None = None, book: pd.DataFrame | None = None,
                 market=None, account: str | None = None,
                 instruments: Mapping[str, Sequence[str]] | None = None,
                 background: bool = True,
                 liquidation_kwargs: Mapping | None = None) -> None:
        accounts, collateral, book, market = demo_defaults(accounts, collateral, book, market)
        self.accounts, collateral = pmnb.book.validate_accounts(accounts, collateral)
        self._all_book = pmnb.validate_positions(book)
        self._all_coll = collateral
        self.market = market
        self.models = account_models(self.accounts)
        if not self.models:
            raise ValidationError("accounts: no account has a margin model; accepted: accounts "
                                  "of venues in pmnb.margin.DEFAULT_ACCOUNT_MODELS",
                                  field="accounts")
        self.skipped = [str(a) for a in self.accounts["account"] if str(a) not in self.models]
        self._instruments = dict(instruments) if instruments is not None else {}
        self._liq_kwargs = dict(liquidation_kwargs or {})
        self.runner = LatestOnly(background)
        self._lock = threading.RLock()
        self._before_cache: dict[str, dict] = {}
        self._liq_cache: dict[tuple[str, str], object] = {}
        self._syncing = False
        self.reports: dict = {}
        self.liquidations: dict = {}
        self.results = pd.DataFrame()
        self.last_timing: dict[str, float] = {}
        self._liq_state: dict = {}

        account = default_account(self.models) if account is None else account
        style = {"description_width": "80px"}
        self.account = W.Dropdown(options=list(self.models), value=account,
                                  description="Account", style=style,
                                  layout=W.Layout(width="300px"))
        self.model_info = W.HTML()
        self.status = W.HTML()
        self.rows_box = W.VBox(layout=W.Layout(max_height="330px", overflow="auto"))
        self.add_symbol = W.Combobox(placeholder="symbol, e.g. BTC-PERPETUAL", options=[],
                                     ensure_option=False, continuous_update=False,
                                     description="Add trade", style=style,
                                     layout=W.Layout(width="340px"))
        self.add_size = W.Text(value="1", description="size", continuous_update=False,
                               style={"description_width": "40px"},
                               layout=W.Layout(width="150px"))
        self.add_button = W.Button(description="Add", icon="plus", button_style="",
                                   layout=W.Layout(width="80px"))
        self.reset_button = W.Button(description="Reset edits", icon="undo",
                                     layout=W.Layout(width="120px"))
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="160px"))
        self.busy_label = W.HTML()
        self.busy = W.HBox([self.progress, self.busy_label],
                           layout=W.Layout(visibility="hidden"))
        self.table = W.HTML(layout=W.Layout(overflow="auto"))
        self.explanation = W.HTML(EXPLANATION, layout=W.Layout(max_width="820px"))
        self._row_widgets: dict[str, W.Text] = {}
        super().__init__([
            W.HBox([self.account, self.model_info]), self.status,
            W.HTML("<b>Positions</b> (size in contracts; edit and press Enter)"), self.rows_box,
            W.HBox([self.add_symbol, self.add_size, self.add_button, self.reset_button]),
            self.busy, self.table, self.explanation,
        ])
        self.account.observe(self._on_account, names="value")
        self.add_button.on_click(lambda _: self._on_add())
        self.reset_button.on_click(lambda _: self.reset())
        self._load_account(account)

    @property
    def widget(self) -> W.VBox:
        """The displayable widget (the explorer itself)."""
        return self

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Wait for the background liquidation searches; False on timeout."""
        return self.runner.wait(timeout)

    # ---- account ----------------------------------------------------------------------------
    def instruments(self, venue: str) -> list[str]:
        """Symbols offered in the "add trade" row for ``venue``."""
        if venue not in self._instruments:
            self._instruments[venue] = venue_instruments(self.market, venue)
        return list(self._instruments[venue])

    def _on_account(self, change) -> None:
        if not self._syncing:
            self._load_account(change["new"])

    def _load_account(self, account: str) -> None:
        acc = str(account)
        self._acc = acc
        self._venue = str(self.accounts.loc[self.accounts["account"].astype(str) == acc,
                                            "venue"].iloc[0]).lower()
        self._base_book = self._all_book[self._all_book["account"].astype(str) == acc].copy()
        self._base_coll = self._all_coll[self._all_coll["account"].astype(str) == acc][
            ["account", "asset", "balance"]].copy()
        self._base_coll["balance"] = self._base_coll["balance"].astype(float)
        models = self.models[acc]
        if acc not in self._before_cache:
            self._before_cache[acc] = {m: self._report(self._base_book, self._base_coll, m)
                                       for m in models}
        syms = self.instruments(self._venue)
        with self.add_symbol.hold_trait_notifications():
            self.add_symbol.options = syms
            self.add_symbol.value = syms[0] if syms else ""
        can_add = bool(syms)
        self.add_symbol.disabled = self.add_size.disabled = self.add_button.disabled = not can_add
        if not can_add:
            self.add_symbol.placeholder = f"no tradable instruments for {self._venue} here"
        own = models[0]
        info = f"model: <b>{own}</b>"
        if len(models) > 1:
            info += " (the account's) beside " + ", ".join(f"<b>{m}</b>" for m in models[1:])
        self.model_info.value = info
        self._commit(self._base_book.copy(), self._base_coll.copy(), rebuild=True)

    def _report(self, book, coll, model):
        try:
            return pmnb.margin.compute(book, self.market, model, account=self._acc,
                                       collateral=coll if len(coll) else None)
        except Exception as exc:  # noqa: BLE001 - shown per model column
            return exc

    # ---- edits ------------------------------------------------------------------------------
    @staticmethod
    def _number(text, pid: str) -> float:
        try:
            v = float(str(text).replace(",", "").replace("_", "").strip())
        except ValueError:
            v = float("nan")
        if not math.isfinite(v):
            raise ValidationError(f"size: {text!r} (row {pid}) is not a number; accepted: a "
                                  "finite number of contracts, e.g. -25 (0 removes the "
                                  "position)", field="size", row=pid)
        return v

    def _row_index(self, pid: str):
        hit = self.book.index[self.book["position_id"].astype(str) == str(pid)]
        if not len(hit):
            raise ValidationError(f"position_id: {pid!r} is not in account {self._acc!r}; "
                                  f"accepted: {list(self.book['position_id'].astype(str))}",
                                  field="position_id")
        return hit[0]

    def _trade(self, symbol: str, size: float):
        """The book and collateral after trading ``size`` contracts of ``symbol`` at the mark
        (:func:`pmnb.ledger.trade_at_mark`: average-cost entries, realised P&L or premium paid
        from the collateral, equity unchanged)."""
        trade = pd.DataFrame({"account": [self._acc], "venue": [self._venue],
                              "symbol": [symbol], "size": [float(size)]})
        book, coll, _ = pmnb.ledger.trade_at_mark(self.book, self.collateral, trade,
                                                  self.market)
        return book, coll

    def _resized(self, pid: str, size: float):
        """The book and collateral with row ``pid`` at ``size`` (0 removes it), traded at mark."""
        book = self.book
        i = self._row_index(pid)
        kind = str(book.at[i, "kind"])
        if kind in _LENDING:
            sign = 1.0 if kind == "lending_supply" else -1.0
            if size != 0 and np.sign(size) != sign:
                raise ValidationError(
                    f"size: {size:g} (row {pid}, {kind}) has the wrong sign; accepted: "
                    f"{'> 0 (a supply)' if sign > 0 else '< 0 (a borrow)'}, or 0 to remove",
                    field="size", row=pid)
            if size == 0:
                return book.drop(index=i), self.collateral
            new = book.copy()
            new.loc[i, "size"] = float(size)
            new.loc[i, "amount"] = abs(float(size))
            return new, self.collateral
        if kind not in _TRADED:
            raise ValidationError(f"kind: row {pid} is a {kind} position; accepted for "
                                  f"what-if edits: {', '.join(_TRADED + _LENDING)}",
                                  field="kind", row=pid)
        change = float(size) - float(book.at[i, "size"])
        if change == 0:
            return book, self.collateral
        return self._trade(str(book.at[i, "symbol"]), change)

    def _added(self, symbol: str, size: float):
        symbol = str(symbol).strip()
        if not symbol:
            raise ValidationError("symbol: empty; accepted: one of the venue's instruments "
                                  f"({len(self.instruments(self._venue))} offered)",
                                  field="symbol")
        if size == 0:
            raise ValidationError(f"size: 0 (new trade {symbol}); accepted: a non-zero number "
                                  "of contracts", field="size", row=symbol)
        return self._trade(symbol, size)

    def resize(self, position_id: str, size) -> bool:
        """Set a position's size (contracts; a string is parsed, 0 removes it). Returns False,
        keeping the last good state and showing why, when the size or the result is invalid."""
        return self._edit(lambda: self._resized(str(position_id),
                                                self._number(size, str(position_id))))

    def remove(self, position_id: str) -> bool:
        """Close a position at mark (its value goes to collateral)."""
        return self._edit(lambda: self._resized(str(position_id), 0.0))

    def add_trade(self, symbol: str, size) -> bool:
        """Trade ``size`` contracts of ``symbol`` at the current mark."""
        return self._edit(lambda: self._added(symbol, self._number(size, str(symbol))))

    def reset(self) -> bool:
        """Drop every edit: back to the account's book and collateral."""
        return self._edit(lambda: (self._base_book.copy(), self._base_coll.copy()))

    def _edit(self, make) -> bool:
        timing: dict[str, float] = {}
        try:
            with timer(timing, "compute_ms"):
                book, coll = make()
                reports = self._after_reports(book, coll)
                own = reports[self.models[self._acc][0]]
                if isinstance(own, Exception):
                    raise own
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            self.status.value = status_html(friendly_message(exc))
            self._sync_rows()
            return False
        self._commit(book, coll, reports=reports, timing=timing)
        return True

    def _after_reports(self, book, coll) -> dict:
        return {m: self._report(book, coll, m) for m in self.models[self._acc]}

    # ---- state -> view ----------------------------------------------------------------------
    def _commit(self, book, coll, reports=None, timing=None, rebuild=False) -> None:
        timing = {} if timing is None else timing
        acc = self._acc
        if reports is None:
            with timer(timing, "compute_ms"):
                reports = self._after_reports(book, coll)
        with self._lock:
            rebuild |= (not hasattr(self, "book") or
                        list(book["position_id"].astype(str)) !=
                        list(self.book["position_id"].astype(str)))
            self.book, self.collateral = book, coll
            edited = not (book.equals(self._base_book) and coll.equals(self._base_coll))
            self.reports = {}
            for m in self.models[acc]:
                self.reports[m, "before"] = self._before_cache[acc][m]
                self.reports[m, "after"] = self._before_cache[acc][m] if not edited \
                    else reports[m]
            self.liquidations = {}
            for m in self.models[acc]:
                if (acc, m) in self._liq_cache:
                    self.liquidations[m, "before"] = self._liq_cache[acc, m]
                    if not edited:
                        self.liquidations[m, "after"] = self._liq_cache[acc, m]
            self._edited = edited
            own = self.reports[self.models[acc][0], "before"]
            if isinstance(own, Exception):
                self.status.value = _note_html(
                    f"{acc}: its margin cannot be computed as booked — {friendly_message(own)}"
                    " — edit or remove positions to see what-if numbers.")
            else:
                self.status.value = ""
            with timer(timing, "render_ms"):
                if rebuild:
                    self._build_rows()
                else:
                    self._sync_rows()
                self._fill_results()
            self.last_timing = timing
        self._start_liquidation()

    def _build_rows(self) -> None:
        rows, self._row_widgets = [], {}
        head = W.HTML("<div style='display:flex;gap:8px;font-weight:bold'>"
                      "<span style='width:150px'>position</span>"
                      "<span style='width:200px'>symbol</span>"
                      "<span style='width:110px'>kind</span><span>size</span></div>")
        rows.append(head)
        for i in self.book.index:
            pid = str(self.book.at[i, "position_id"])
            size = W.Text(value=f"{float(self.book.at[i, 'size']):g}", continuous_update=False,
                          layout=W.Layout(width="130px"))
            size.observe(lambda ch, pid=pid: self._on_size(pid, ch), names="value")
            rm = W.Button(description="", icon="trash", tooltip=f"close {pid} at mark",
                          layout=W.Layout(width="40px"))
            rm.on_click(lambda _, pid=pid: self.remove(pid))
            self._row_widgets[pid] = size
            rows.append(W.HBox([
                W.HTML(f"<span style='display:inline-block;width:150px'>{html.escape(pid)}"
                       "</span>"),
                W.HTML(f"<span style='display:inline-block;width:200px'>"
                       f"{html.escape(str(self.book.at[i, 'symbol']))}</span>"),
                W.HTML(f"<span style='display:inline-block;width:110px'>"
                       f"{html.escape(str(self.book.at[i, 'kind']))}</span>"),
                size, rm]))
        if len(self.book) == 0:
            rows.append(W.HTML("<i>No positions: add a trade below.</i>"))
        self.rows_box.children = rows

    def _sync_rows(self) -> None:
        """Show the committed sizes in the row fields (reverting a rejected entry)."""
        self._syncing = True
        try:
            sizes = dict(zip(self.book["position_id"].astype(str), self.book["size"]))
            for pid, w in self._row_widgets.items():
                if pid in sizes:
                    w.value = f"{float(sizes[pid]):g}"
        finally:
            self._syncing = False

    def _on_size(self, pid: str, change) -> None:
        if self._syncing:
            return
        self.resize(pid, change["new"])

    def _on_add(self) -> None:
        self.add_trade(self.add_symbol.value, self.add_size.value)

    def _underlying(self, book: pd.DataFrame) -> str | None:
        """The first priced, non-stable underlying of ``book``: the one whose price the
        liquidation rows show (all prices move together, so one names the move)."""
        for u in dict.fromkeys(book["underlying"].astype(str)):
            if u in self.market.spots and not _is_stable(u):
                return u
        return None

    def _fill_results(self) -> None:
        cols, data = [], {}
        before = self._underlying(self._base_book)
        self.liquidation_underlying = {"before": before,
                                       "after": self._underlying(self.book) or before}
        for m in self.models[self._acc]:
            for phase in ("before", "after"):
                rep = self.reports[m, phase]
                vals = dict.fromkeys(METRICS, np.nan)
                if not isinstance(rep, Exception):
                    vals.update(equity=rep.equity, initial=rep.initial,
                                maintenance=rep.maintenance, margin_ratio=rep.margin_ratio,
                                excess=rep.excess)
                    liq = self.liquidations.get((m, phase))
                    if liq is not None and not isinstance(liq, Exception):
                        vals.update(_nearest(liq, self.liquidation_underlying[phase]))
                cols.append((m, phase))
                data[m, phase] = [vals[k] for k in METRICS]
        self.results = pd.DataFrame(data, index=list(METRICS),
                                    columns=pd.MultiIndex.from_tuples(cols))
        self.table.value = self._table_html()

    def _table_html(self) -> str:
        models = self.models[self._acc]
        u = self.liquidation_underlying["before"] or self.liquidation_underlying["after"]
        head1 = "<th></th>" + "".join(
            f"<th colspan='2' style='text-align:center'>{html.escape(m)}"
            f"{' (account)' if k == 0 and len(models) > 1 else ''}<br>"
            f"<span style='font-weight:normal'>{html.escape(self._currency(m))}</span></th>"
            for k, m in enumerate(models))
        head2 = "<th></th>" + "<th>before</th><th>after</th>" * len(models)
        body = []
        for metric in METRICS:
            cells = []
            for m in models:
                for phase in ("before", "after"):
                    cells.append(self._cell(metric, m, phase, u))
            label = _LABELS[metric]
            if metric.startswith("liquidation") and u:
                label += f" ({u}, USD)"
            body.append(f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
                        + "".join(f"<td style='text-align:right'>{c}</td>" for c in cells)
                        + "</tr>")
        errors = []
        for m in models:
            for phase in ("before", "after"):
                rep = self.reports[m, phase]
                if isinstance(rep, Exception) and (phase == "after" or not self._edited):
                    errors.append(f"{m} ({phase}): {friendly_message(rep)}")
        err = "".join(f"<li>{html.escape(e)}</li>" for e in dict.fromkeys(errors))
        return ("<table class='pmnb-table pmnb-whatif' style='border-collapse:collapse'>"
                f"<thead><tr>{head1}</tr><tr>{head2}</tr></thead><tbody>{''.join(body)}"
                "</tbody></table>"
                + (f"<ul style='color:#b00020'>{err}</ul>" if err else ""))

    def _currency(self, model: str) -> str:
        for phase in ("after", "before"):
            rep = self.reports.get((model, phase))
            if rep is not None and not isinstance(rep, Exception):
                return rep.currency
        return ""

    def _cell(self, metric: str, model: str, phase: str, header_u: str | None) -> str:
        rep = self.reports[model, phase]
        if isinstance(rep, Exception):
            return "<span title='see the message below' style='color:#b00020'>error</span>"
        v = float(self.results.loc[metric, (model, phase)])
        if metric == "margin_ratio":
            return fmt_ratio(v)
        if metric.startswith("liquidation"):
            liq = self.liquidations.get((model, phase))
            if liq is None:
                return "<i>searching…</i>"
            if isinstance(liq, Exception):
                return ("<span style='color:#b00020' title='" + html.escape(
                    friendly_message(liq), quote=True) + "'>error</span>")
            if liq.status.startswith("already"):
                return "<b style='color:#b00020'>now</b>"
            if not np.isfinite(v):
                return "none"
            u = self.liquidation_underlying[phase]
            text = fmt_price(v, self.market.spot(u))
            return text if u == header_u else f"{u} {text}"
        return fmt_amount(v, rep.currency)

    # ---- heavy work: liquidation prices -------------------------------------------------------
    def _start_liquidation(self) -> None:
        acc, book, coll, edited = self._acc, self.book, self.collateral, self._edited
        tasks = []
        for m in self.models[acc]:
            for phase in ("before", "after"):
                rep = self.reports[m, phase]
                if isinstance(rep, Exception):
                    continue
                if phase == "before" or not edited:
                    if (acc, m) not in self._liq_cache:
                        tasks.append((m, "before", self._base_book, self._base_coll))
                elif phase == "after":
                    tasks.append((m, "after", book, coll))
        tasks = list({(t[0], t[1]): t for t in tasks}.values())
        if not tasks:
            self.runner.cancel()          # whatever still runs is stale now
            self._show_busy(0, 0, "")
            return
        self._show_busy(0, len(tasks), "searching liquidation prices…")
        kw = self._liq_kwargs
        market = self.market

        def job(is_stale):
            found = {}
            for k, (m, phase, b, c) in enumerate(tasks):
                if is_stale():
                    return
                self._show_busy(k, len(tasks), f"searching liquidation prices: {m}, {phase} "
                                f"({k + 1}/{len(tasks)})…", is_stale)
                try:
                    res = liquidation_prices(b, market, Cancellable(m, is_stale), account=acc,
                                             collateral=c if len(c) else None, **kw)
                except Cancelled:
                    return
                except Exception as exc:  # noqa: BLE001 - shown in the cell
                    res = exc
                found[m, phase] = res
                if phase == "before":
                    self._liq_cache[acc, m] = res      # valid whatever happens next
            self._publish(acc, found, is_stale)

        self.runner.submit(job)

    def _publish(self, acc, found, is_stale) -> None:
        with self._lock:
            if is_stale() or acc != self._acc:
                return
            for m in self.models[acc]:
                if (acc, m) in self._liq_cache:
                    self.liquidations[m, "before"] = self._liq_cache[acc, m]
                    if not self._edited:
                        self.liquidations[m, "after"] = self._liq_cache[acc, m]
                if (m, "after") in found:
                    self.liquidations[m, "after"] = found[m, "after"]
            self._fill_results()
            self._show_busy(0, 0, "")

    def _show_busy(self, done: int, total: int, text: str, is_stale=None) -> None:
        if is_stale is not None and is_stale():
            return
        self.progress.max = max(total, 1)
        self.progress.value = min(done, self.progress.max)
        self.busy_label.value = html.escape(text)
        self.busy.layout.visibility = "visible" if text else "hidden"


def _nearest(result, underlying: str | None) -> dict[str, float]:
    """Highest liquidation price below and lowest above the spot (first met moving down / up)
    of ``underlying`` in a :class:`~pmnb.liquidation.LiquidationResult` table."""
    t = result.table
    if underlying is not None and len(t):
        t = t[t["underlying"].astype(str) == underlying]
    down = t.loc[t["direction"] == "down", "price"]
    up = t.loc[t["direction"] == "up", "price"]
    return {"liquidation_down": float(down.max()) if len(down) else np.nan,
            "liquidation_up": float(up.min()) if len(up) else np.nan}
