"""Liquidation prices of whole accounts, by full revaluation under the venue's margin model.

An account is liquidatable when its equity falls to its maintenance margin. With options in the
account neither side is linear in the price, so pmnb finds every crossing numerically: all
non-stable prices of the market move together by a relative shock ``s`` (spots, forward curves
and venue marks; :meth:`pmnb.Market.shocked`), options are revalued on the market's vol surfaces
with **sticky-strike** vols (the surface is held fixed in strike; ``vol_shock`` shifts it), and
the margin model recomputes equity and maintenance margin at each shocked market. A log-spaced
grid in ``1 + s`` brackets every sign change of ``equity − maintenance``; Brent's method
(:func:`scipy.optimize.brentq`) refines each to ``xtol``. For single perpetual positions this
reproduces the venues' closed forms (tested against Binance, Hyperliquid and dYdX).

A book with no crossing in the searched range says so in ``status`` — never a NaN price.

Examples
--------
>>> import pandas as pd, pmnb
>>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
...                           marks={"binance:BTCUSDT": 60_000.0})
>>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
...                      "size": [1.0], "entry_price": [60_000.0], "isolated_margin": [3_000.0]})
>>> res = liquidation_prices(book, m, "binance.usdm")
>>> round(float(res.table["price"].iloc[0]), 4)
57236.1809
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from pmnb import margin as _margin
from pmnb.errors import ValidationError

__all__ = ["LiquidationResult", "distance_to_liquidation", "liquidation_prices"]


@dataclasses.dataclass(frozen=True)
class LiquidationResult:
    """Liquidation points of one account.

    Attributes
    ----------
    table : DataFrame
        One row per crossing: ``group`` (``"cross"`` for the account's shared wallet, or the
        ``position_id`` of an isolated position, which is margined alone), ``direction``
        (down / up), ``spot_shock``, ``underlying``, ``price`` (that underlying's index at the
        crossing), ``distance_pct``.
    status : str
        ``"liquidation prices found"``, ``"no liquidation price between … and …"`` or
        ``"already at or below maintenance: <groups>"``.
    model, account : str
    searched : tuple
        The shock range searched, ``(lower, upper)``.
    """

    table: pd.DataFrame
    status: str
    model: str
    account: str | None
    searched: tuple[float, float]

    def _repr_html_(self) -> str:
        return f"<p><b>{self.model}</b> {self.account or ''}: {self.status}</p>" + (
            self.table._repr_html_() if len(self.table) else "")


def _gap(prepared, s: float) -> float:
    """Equity minus maintenance at a common move ``s`` of a margin group prepared once
    (:func:`pmnb.margin.prepare`: validated, checked, looked up; compiled models evaluate from
    arrays, the others recompute on ``market.shocked(s)``)."""
    st = prepared.evaluate(s)
    return st.equity - st.maintenance


def _prepared_groups(mdl, v: pd.DataFrame, market, account, collateral, prepared=None) -> list:
    """``(label, prepared)`` margin groups: isolated positions are margined alone (their
    isolated margin is their whole equity), everything else shares the cross wallet. ``v`` is
    validated and checked; ``prepared`` the whole account already prepared, if any."""
    isolated = v["isolated_margin"].notna().to_numpy()
    if not isolated.any():
        if not len(v):
            return []
        return [("cross", prepared if prepared is not None else mdl.prepare(
            v, market, account=account, collateral=collateral))]
    groups = [("cross", mdl.prepare(v[~isolated], market, account=account,
                                    collateral=collateral))] if (~isolated).any() else []
    groups += [(str(v["position_id"].iloc[i]), mdl.prepare(v.iloc[[i]], market, account=account))
               for i in np.flatnonzero(isolated)]
    return groups


def liquidation_prices(book: Any, market=None, model: Any = None, *, account: str | None = None,
                       collateral: pd.DataFrame | None = None, lower: float = -0.95,
                       upper: float = 4.0, n_grid: int = 96,
                       xtol: float = 1e-12) -> LiquidationResult:
    """Every common price move at which the account's equity equals its maintenance margin.

    The book is validated and prepared once per margin group (:func:`pmnb.margin.prepare`);
    the bracketing grid and Brent's iterations then evaluate the prepared group: from
    per-instrument arrays with compiled kernels for ``deribit.standard`` and
    ``deribit.portfolio`` (no pandas inside the loop), by recomputing the model on
    ``market.shocked(s)`` for the others.

    Parameters
    ----------
    book : DataFrame or pmnb.margin.prepared.PreparedMargin
        The positions, or an account already prepared by :func:`pmnb.margin.prepare` (which
        carries its market, model, account and collateral: leave those arguments out).
    market, model, account, collateral
        As in :func:`pmnb.margin.compute`.
    lower, upper : float
        Relative price moves searched (``-0.95`` = −95%, ``4.0`` = +400%).
    n_grid : int
        Grid points (log-spaced in ``1 + s``) that bracket the crossings.
    xtol : float
        Tolerance of Brent's method on the shock.

    Returns
    -------
    LiquidationResult

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3_000.0},
    ...                           marks={"hyperliquid:ETH": 3_000.0})
    >>> book = pd.DataFrame({"account": ["h"], "venue": ["hyperliquid"], "symbol": ["ETH"],
    ...                      "size": [-10.0], "entry_price": [3_000.0]})
    >>> coll = pd.DataFrame({"account": ["h"], "asset": ["USDC"], "balance": [5_000.0]})
    >>> r = liquidation_prices(book, m, "hyperliquid", collateral=coll)
    >>> r.status, r.table["direction"].tolist()
    ('liquidation prices found', ['up'])

    A prepared account (searched again without re-validating or looking the market up):

    >>> prep = pmnb.margin.prepare(book, m, "hyperliquid", collateral=coll)
    >>> liquidation_prices(prep).table["price"].equals(r.table["price"])
    True
    """
    from pmnb.margin.prepared import PreparedMargin

    if not (-1 < lower < 0 < upper) or n_grid < 8:
        raise ValidationError(f"lower, upper, n_grid: got {lower}, {upper}, {n_grid}; accepted: "
                              "-1 < lower < 0 < upper and n_grid >= 8", field="lower")
    g = np.exp(np.linspace(np.log1p(lower), np.log1p(upper), n_grid)) - 1.0
    g = np.unique(np.concatenate([g, [0.0]]))
    if isinstance(book, PreparedMargin):
        given = [name for name, x in (("market", market), ("model", model), ("account", account),
                                      ("collateral", collateral)) if x is not None]
        if given:
            raise ValidationError(f"{given[0]}: a prepared account carries its market, model, "
                                  f"account and collateral; got {', '.join(given)} as well; "
                                  "accepted: liquidation_prices(prepared) alone",
                                  field=given[0])
        mdl, market, account, v = book.model, book.market, book.account, book.account_book
        groups = _prepared_groups(mdl, v, market, account, book.collateral, prepared=book)
    else:
        if market is None or model is None:
            raise ValidationError("market, model: required with a positions frame (or pass an "
                                  "account prepared by pmnb.margin.prepare)", field="market")
        mdl = _margin.get(model) if isinstance(model, str) else model
        from pmnb.book import validate_positions

        v = validate_positions(book)
        if account is not None:
            v = v[v["account"].astype(str) == account]
            if collateral is not None:
                collateral = collateral[collateral["account"].astype(str) == account]
        mdl.check_supported(v)
        groups = _prepared_groups(mdl, v, market, account, collateral)
    unders = [u for u in dict.fromkeys(_margin.text_values(v["underlying"]))
              if u in market.spots and u.upper() not in ("USD", "USDC", "USDT", "DAI")]
    records, below = [], []
    for label, prep in groups:
        gaps = prep.maintenance_gap(g)      # the whole bracketing grid in one call
        if gaps[g == 0.0][0] <= 0:
            below.append(label)
        for i in range(len(g) - 1):
            a, b = gaps[i], gaps[i + 1]
            if a == 0.0 or np.sign(a) == np.sign(b):
                continue
            s = brentq(lambda x: _gap(prep, x), g[i], g[i + 1], xtol=xtol,
                       rtol=4 * np.finfo(float).eps)
            records += [{"group": label, "direction": "down" if s < 0 else "up",
                         "spot_shock": s, "underlying": u, "price": market.spot(u) * (1 + s),
                         "distance_pct": 100.0 * s} for u in unders]
    table = pd.DataFrame(records, columns=["group", "direction", "spot_shock", "underlying",
                                           "price", "distance_pct"])
    if below:
        status = f"already at or below maintenance: {', '.join(below)}"
    elif records:
        status = "liquidation prices found"
    else:
        status = (f"no liquidation price between {lower:+.0%} and {upper:+.0%}: equity stays "
                  "above maintenance")
    return LiquidationResult(table, status, mdl.name, account, (lower, upper))


def distance_to_liquidation(result: LiquidationResult, market, *,
                            horizon_days: float = 30.0) -> pd.DataFrame:
    """Distance from the current index to each liquidation price: in %, in USD and in daily
    standard deviations (``ln(P_liq / S) / (σ √(1/365))`` with σ the surface's at-the-money vol
    ``horizon_days`` ahead).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3_000.0}, vols={"ETH": 0.73},
    ...                           marks={"hyperliquid:ETH": 3_000.0})
    >>> book = pd.DataFrame({"account": ["h"], "venue": ["hyperliquid"], "symbol": ["ETH"],
    ...                      "size": [-10.0], "entry_price": [3_000.0]})
    >>> coll = pd.DataFrame({"account": ["h"], "asset": ["USDC"], "balance": [5_000.0]})
    >>> d = distance_to_liquidation(liquidation_prices(book, m, "hyperliquid", collateral=coll), m)
    >>> d[["distance_pct", "distance_daily_sigmas"]].round(2).values.tolist()
    [[14.38, 3.52]]
    """
    t = result.table.copy()
    if t.empty:
        return t.assign(distance_usd=[], distance_daily_sigmas=[])
    spot = np.array([market.spot(u) for u in t["underlying"]])
    t["distance_usd"] = t["price"] - spot
    when = market.timestamp + pd.Timedelta(days=horizon_days)
    sig = []
    for u, S in zip(t["underlying"], spot):
        if u not in market.vols:
            raise ValidationError(f"market: no vol for {u!r} to express the distance in sigmas",
                                  field="vol")
        sig.append(float(market.vol(u, S, when)))
    t["distance_daily_sigmas"] = np.log(t["price"] / spot) / (np.array(sig) / np.sqrt(365.0))
    return t


# ---------------------------------------------------------------------------------------------
# Liquidation-engine simulation along a price path
# ---------------------------------------------------------------------------------------------

#: Models :func:`simulate_liquidation` knows the liquidation engine of.
SIMULATED_ENGINES = ("binance.usdm", "hyperliquid", "aave.v3", "dydx.v4", "deribit.standard",
                     "deribit.portfolio")
#: Hyperliquid partial liquidation (reference/margin.md §3.2, tagged [3P]: third-party summary).
HL_PARTIAL_THRESHOLD_USD = 100_000.0
HL_SLICE = 0.20
HL_COOLDOWN = pd.Timedelta(seconds=30)
HL_BACKSTOP_RATIO = 2.0 / 3.0
#: Binance liquidation fee per notional liquidated, "Liquidation" FAQ (2019 version,
#: https://binance.zendesk.com/hc/en-us/articles/360033525271-Liquidation): 0.3 % on BTCUSDT,
#: 0.5 % on all other perpetuals. A dated snapshot: current rates are per symbol.
BINANCE_CLEARANCE_FEE_2019 = {"BTCUSDT": 0.003, "*": 0.005}
#: Deribit liquidation fees (fraction of the underlying amount closed) by underlying:
#: (futures and perpetuals, options). Futures: Deribit "11 January 2022"
#: (https://support.deribit.com/hc/en-us/articles/25944826427293-11-January-2022: BTC 0.75 %,
#: ETH 0.9 %); options: the Deribit docs fee page (https://www.deribit.com/pages/docs,
#: "BTC and ETH options 0.2 %"), not restated since.
DERIBIT_LIQUIDATION_FEES = {"BTC": (0.0075, 0.002), "ETH": (0.009, 0.002)}
#: Deribit auto-liquidation increments ("Auto Liquidation",
#: https://www.deribit.com/docs/auto-liquidation/): up to 200 future contracts of $10 and
#: 1 option contract per round, 20 rounds per second.
DERIBIT_FUTURE_INCREMENT_USD = 2_000.0
DERIBIT_OPTION_INCREMENT = 1.0
DERIBIT_ROUNDS_PER_SECOND = 20.0
#: dYdX v4 maximum liquidation penalty (v4-documentation, liquidations.mdx: 1.5 %).
DYDX_MAX_PENALTY = 0.015
_STABLE = ("USD", "USDC", "USDT", "DAI")
_LOG_COLUMNS = ["time", "step", "position", "event", "size_before", "size_closed", "size_after",
                "price", "fee", "insurance_flow", "insurance_fund", "equity_before", "equity",
                "maintenance", "note", "account", "counterparty_flow", "adl_rank", "adl_score"]
_DEFAULT_ADL_RULE = {"binance.usdm": "binance", "hyperliquid": "hyperliquid", "dydx.v4": "dydx"}


def _path_underlying(v: pd.DataFrame, price_path: pd.Series, market, underlying) -> str:
    if underlying is None:
        underlying = price_path.name
    if underlying is None:
        unders = sorted({u for u in v["underlying"].astype(str) if u.upper() not in _STABLE})
        if len(unders) != 1:
            raise ValidationError(f"underlying: the book holds {unders}; name the path's "
                                  "underlying (underlying= or price_path.name)", field="underlying")
        underlying = unders[0]
    if str(underlying) not in market.spots:
        raise ValidationError(f"underlying: {underlying!r} has no spot in the market; accepted: "
                              f"{sorted(market.spots)}", field="underlying")
    return str(underlying)


def _check_path(price_path) -> pd.Series:
    if not isinstance(price_path, pd.Series) or not isinstance(price_path.index,
                                                                pd.DatetimeIndex):
        raise ValidationError("price_path: accepted: a pandas Series of index prices indexed by "
                              "a (UTC) DatetimeIndex", field="price_path")
    p = price_path.astype(float)
    if len(p) == 0 or not np.all(np.isfinite(p.to_numpy())) or (p <= 0).any():
        raise ValidationError("price_path: accepted: a non-empty Series of finite prices > 0",
                              field="price_path")
    if not p.index.is_monotonic_increasing:
        raise ValidationError("price_path: the index must be increasing in time",
                              field="price_path")
    idx = p.index.tz_localize("UTC") if p.index.tz is None else p.index.tz_convert("UTC")
    return pd.Series(p.to_numpy(), index=idx, name=price_path.name)


class _State:
    """Mutable copy of one account: validated book rows and collateral balances."""

    def __init__(self, book, collateral, account, mdl):
        from pmnb.book import validate_positions

        v = validate_positions(book)
        if account is not None:
            v = v[v["account"].astype(str) == account]
            if collateral is not None:
                collateral = collateral[collateral["account"].astype(str) == account]
        accs = sorted(set(v["account"].astype(str)))
        if len(accs) != 1:
            raise ValidationError(f"account: simulate one account at a time; the book holds "
                                  f"{accs} (pass account=)", field="account")
        self.account = accs[0]
        self.mdl = mdl
        self.book = v.copy()
        self.coll = (pd.DataFrame(columns=["account", "asset", "balance"]) if collateral is None
                     else collateral[["account", "asset", "balance"]].copy())
        self.coll["balance"] = self.coll["balance"].astype(float)

    def report(self, mkt):
        return _margin.compute(self.book, mkt, self.mdl, account=self.account,
                               collateral=self.coll if len(self.coll) else None)

    def credit(self, currency: str, amount: float) -> None:
        m = self.coll["asset"].astype(str) == currency
        if m.any():
            i = self.coll.index[m][0]
            self.coll.loc[i, "balance"] += amount
        else:
            self.coll = pd.concat([self.coll, pd.DataFrame(
                {"account": [self.account], "asset": [currency], "balance": [float(amount)]})],
                ignore_index=True)

    def wallet(self, currency: str) -> float:
        return float(self.coll.loc[self.coll["asset"].astype(str) == currency, "balance"].sum())

    def clone(self) -> _State:
        c = object.__new__(_State)
        c.account, c.mdl = self.account, self.mdl
        c.book, c.coll = self.book.copy(), self.coll.copy()
        return c


def _perp_close(st: _State, i, frac: float, mark: float, currency: str) -> tuple[float, float]:
    """Close ``frac`` of row ``i`` at ``mark`` (any fill price); realised P&L to the isolated
    margin (isolated) or the wallet (cross). Returns (size closed, notional closed)."""
    b = st.book
    size = float(b.at[i, "size"])
    q = size * frac
    cs = float(b.at[i, "contract_size"])
    pnl = q * cs * (mark - float(b.at[i, "entry_price"]))
    b.at[i, "size"] = size - q if frac < 1.0 else 0.0
    if np.isnan(b.at[i, "isolated_margin"]):
        st.credit(currency, pnl)
    else:
        b.at[i, "isolated_margin"] = float(b.at[i, "isolated_margin"]) + pnl
    return q, abs(q * cs) * mark


def _groups(st: _State, rep) -> list[tuple[list, float, float, str]]:
    """Margin groups of a perp account: each isolated position alone, the cross positions
    together. Returns (row labels, equity, maintenance, label)."""
    pos = rep.positions
    b = st.book
    live = b["size"].to_numpy(dtype=float) != 0
    iso = ~np.isnan(b["isolated_margin"].to_numpy(dtype=float))
    out = []
    for k, i in enumerate(b.index):
        if iso[k] and live[k]:
            eq = float(b.at[i, "isolated_margin"]) + float(pos.at[i, "unrealised_pnl"])
            out.append(([i], eq, float(pos.at[i, "maintenance"]), "isolated"))
    cross = [i for k, i in enumerate(b.index) if not iso[k] and live[k]]
    if cross:
        eq = st.wallet(rep.currency) + float(pos.loc[cross, "unrealised_pnl"].sum())
        out.append((cross, eq, float(pos.loc[cross, "maintenance"].sum()), "cross"))
    return out


def simulate_liquidation(book: pd.DataFrame, market, price_path: pd.Series, model: Any, *,
                         account: str | None = None, collateral: pd.DataFrame | None = None,
                         insurance_fund: float = 0.0, underlying: str | None = None,
                         liquidation_fee_rate: float | None = 0.0,
                         hl_partial_threshold: float = HL_PARTIAL_THRESHOLD_USD,
                         hl_slice: float = HL_SLICE,
                         hl_cooldown: pd.Timedelta = HL_COOLDOWN,
                         aave_version: str | None = None,
                         binance_engine: str = "mark",
                         counterparties: pd.DataFrame | None = None,
                         adl_rule: str | None = None, adl_seed: int = 0,
                         deribit_fee_rates: dict | None = None,
                         deribit_future_increment_usd: float = DERIBIT_FUTURE_INCREMENT_USD,
                         deribit_option_increment: float = DERIBIT_OPTION_INCREMENT,
                         dydx_smmr: float | None = None, dydx_ba: float | None = None,
                         dydx_max_penalty: float = DYDX_MAX_PENALTY) -> pd.DataFrame:
    """Run a venue's liquidation engine on one account along a path of index prices.

    ``price_path`` holds **index prices** (not returns) of one underlying, indexed by UTC time.
    At each step the market is moved by ``Market.shocked(price / spot - 1)`` — every non-stable
    spot, forward and venue mark moves by the same relative amount (the market's timestamp is
    held) — and :func:`pmnb.margin.compute` recomputes equity and maintenance. When a margin
    group (each isolated position alone; the cross positions together; Deribit: the whole
    account in its margin currency) has ``equity <= maintenance`` (Aave: health factor < 1) the
    venue's engine acts. Every approximation is written in the event's ``note`` and collected
    in ``attrs["notes"]``.

    ``binance.usdm``, ``binance_engine="mark"`` (default, unchanged behaviour)
        The whole group is closed at the **mark price**. A liquidation fee of
        ``liquidation_fee_rate`` × notional is charged (default 0); the remaining margin goes to
        the insurance fund, a deficit is drawn from it.
    ``binance.usdm``, ``binance_engine="protocol"``
        Binance's "Liquidation" / "Liquidation Protocol" pages
        (https://binance.zendesk.com/hc/en-us/articles/360033525271-Liquidation; current text
        as republished by Binance's TraderWagon,
        https://docs.traderwagon.com/faq/futures-trading-introduction/liquidation-protocol):
        open orders are cancelled (a book holds none), then the engine "attempts to reduce the
        user's margin … without fully liquidating" and stops as soon as the account is margin
        compliant after the realised loss and the liquidation fee; if still deficient the
        position is "closed at the **bankruptcy price** and the Insurance Fund takes over …
        a portion of the remaining collateral goes to the Insurance Fund; a negative wallet is
        balanced back to 0 by the fund". pmnb: while ``equity <= maintenance`` the position
        with the highest bracket (then the largest maintenance) is reduced to just below its
        bracket's floor, at mark, paying the liquidation (clearance) fee on the amount
        liquidated — the order is pmnb's labelled approximation (Binance publishes none); in a
        cross group a position already in the first bracket is closed in full; the last
        position of the group (or any step whose fee would exceed the equity) is closed at the
        bankruptcy price ``P_b = mark − equity × w / q`` (``w`` the position's notional share),
        the group's margin going to zero: the clearance fee ``min(rate × notional, equity)``
        in ``fee``, the rest of the margin (mark − bankruptcy fill) in ``insurance_flow``.
        ``liquidation_fee_rate=None`` uses :data:`BINANCE_CLEARANCE_FEE_2019` (labelled dated).
    ``hyperliquid``
        Market liquidation at mark: positions above ``hl_partial_threshold`` USD notional lose
        ``hl_slice`` (20%) of their size per slice, with ``hl_cooldown`` (30 s) between slices
        of one position; smaller ones close fully; the remaining margin stays with the user.
        Backstop when equity < 2/3 of maintenance: the positions and the margin go to the
        liquidator vault (counted as ``insurance_flow``; the maintenance margin is not
        returned). Threshold, slice and cooldown are tagged [3P] in margin.md §3.2 and are
        labelled approximations in ``note``; no liquidation fee is documented (default 0).
    ``dydx.v4``
        dYdX v4 docs, "Liquidations" (v4-documentation ``liquidations.mdx``): every position of
        the group is closed at the fillable price ``P × (1 − sign(S) × SMMR × MMF × ABR)``,
        ``ABR = clip(BA × (1 − Q), 0, 1)``, ``Q = V / TMMR`` (the docs print
        ``P × (1 − (SMMR × MMF) × (BA × (1 − Q)))`` "for both short and long"; the sign and the
        clip are v4-chain's ``GetFillablePrice``, x/clob/keeper/liquidations.go). The fill is
        assumed at the fillable price (the book's liquidity is not modelled); the price
        improvement given to the maker is ``counterparty_flow``. Then a penalty
        ``min(dydx_max_penalty × notional, remaining equity)`` (≤ 1.5 %) goes to the insurance
        fund (``insurance_flow``); the rest stays with the user; a negative remainder is paid
        by the fund. When the fund cannot cover it, the positions are deleveraged instead:
        closed at the bankruptcy price, the deficit taken from ``counterparties``.
        ``dydx_smmr`` and ``dydx_ba`` are required: their genesis values were not found
        (help.dydx.trade gives a maximum liquidation spread of 1.5 × MMR, i.e. SMMR 1.5;
        v4-chain's ``LiquidationsConfig_Default`` has SMMR 0.1, BA 1).
    ``deribit.standard``, ``deribit.portfolio``
        Incremental liquidation, a **labelled approximation** of Deribit's "Auto Liquidation"
        page (https://www.deribit.com/docs/auto-liquidation/: "a small part of the position
        will be closed in the market at market prices … up to 200 future contracts of $10 each
        and 1 option contract per step … 20 rounds per second … As soon as maintenance margin
        is again lower than equity, liquidation will stop. The system would first liquidate
        future positions and after that … option positions … striving for a delta neutral
        position"). pmnb closes, at mark (options at their model mark), increments of
        ``deribit_future_increment_usd`` / ``deribit_option_increment`` contracts of one
        position at a time — futures before options, the position whose delta has the sign of
        the account's net delta (largest first) before the others — and finds the smallest
        number of increments that restores ``equity > maintenance`` by bisection (assumes the
        margin falls as the position shrinks). Fee per increment:
        :data:`DERIBIT_LIQUIDATION_FEES` (futures on the underlying amount, options 0.2 % of
        the underlying per contract; override with ``deribit_fee_rates``), paid from the
        account's equity, capped at it. A negative equity is paid by the insurance fund (in the
        margin currency, coin for inverse accounts); auto-deleveraging is not simulated.
    ``aave.v3``
        One liquidation call per step: the largest debt reserve is repaid against the largest
        collateral reserve, up to :func:`pmnb.margin.aave_v3.max_debt_to_cover` (close factor),
        seizing collateral with the reserve's bonus (:func:`~pmnb.margin.aave_v3.
        liquidation_outcome`); ``fee`` is the bonus (USD), the note gives the protocol fee part.
        v3.3 dust: a call that would leave dust repays the whole reserve debt instead.

    **Auto-deleveraging** (Binance, Hyperliquid, dYdX): when a bankrupt group's loss would
    leave the insurance fund negative and ``counterparties`` is given, the uncovered deficit is
    taken from the opposite-side counterparties in the order of :func:`pmnb.adl.adl_ranking`
    (``adl_rule``; default per venue: ``binance``, ``hyperliquid``, ``dydx``): each gives up
    ``u`` units at the bankrupt position's bankruptcy price, losing ``u × |P_b − mark|``, which
    flows back to the fund; one ``"adl"`` event per counterparty reduced, with its
    ``adl_rank`` and ``adl_score``, and its own account's equity before and after. Hyperliquid
    says positions are closed "at the previous mark price"; pmnb uses the bankruptcy price
    there too so the deficit is covered (labelled). Without ``counterparties`` the note says
    auto-deleveraging would apply.

    Conservation, per event: ``equity_before = equity + fee + insurance_flow +
    counterparty_flow`` (the user's equities from :func:`pmnb.margin.compute` before and after
    the event; for ``adl`` events the counterparty's); the fund balance is the running sum of
    ``insurance_flow``; sizes only shrink and never change sign.

    Parameters
    ----------
    book, market, model, account, collateral
        As in :func:`pmnb.margin.compute`; one account is simulated.
    price_path : Series
        Index prices of ``underlying`` (USD), DatetimeIndex (naive = UTC), increasing.
    insurance_fund : float
        Insurance-fund (Hyperliquid: liquidator vault) balance at the start, in the model's
        margin currency.
    underlying : str, optional
        The path's underlying; default ``price_path.name`` or the book's only non-stable one.
    liquidation_fee_rate : float or None
        Fee per notional closed (Binance, Hyperliquid), charged to the account; default 0.
        ``None``: Binance's published 2019 rates with ``binance_engine="protocol"``, else 0.
    hl_partial_threshold, hl_slice, hl_cooldown
        Hyperliquid partial-liquidation parameters.
    aave_version : str, optional
        Aave close-factor rule; default the model's ``version``.
    binance_engine : {"mark", "protocol"}
        Binance: the simplified close at mark, or the liquidation protocol (see above).
    counterparties : DataFrame, optional
        Opposite-side positions for auto-deleveraging: ``account``, ``size`` (signed coins,
        != 0), ``entry_price`` (> 0), ``equity`` (the account's margin balance at the
        ``market``'s prices); optional ``position`` (id), ``symbol`` (venue symbol; default:
        any symbol), ``maintenance`` (at the ``market``; Binance's rule: default from the
        model's brackets), ``wallet_balance``. Equity moves with the path as ``equity +
        size × (mark − mark₀)``. Final state in ``attrs["counterparties"]``.
    adl_rule : str, optional
        Ranking rule (:data:`pmnb.adl.ADL_RULES`); default per venue.
    adl_seed : int
        Seed of the random dYdX queue.
    deribit_fee_rates : mapping, optional
        ``{underlying: (futures_rate, options_rate)}``; default :data:`DERIBIT_LIQUIDATION_FEES`.
    deribit_future_increment_usd, deribit_option_increment
        Deribit liquidation increments (USD of futures, option contracts).
    dydx_smmr, dydx_ba, dydx_max_penalty
        dYdX fillable-price parameters (SMMR, BA ≥ 1; required for ``dydx.v4``) and maximum
        penalty.

    Returns
    -------
    DataFrame
        One row per liquidation event: ``time, step, position, event, size_before,
        size_closed, size_after, price, fee, insurance_flow, insurance_fund, equity_before,
        equity, maintenance, note, account, counterparty_flow, adl_rank, adl_score`` (money in
        the model's margin currency; equity and maintenance after the event).
        ``attrs["book"]`` / ``attrs["collateral"]`` hold the final state, ``attrs["notes"]``
        every approximation used.

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
    ...                           marks={"binance:BTCUSDT": 60_000.0})
    >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                      "size": [1.0], "entry_price": [60_000.0], "isolated_margin": [3_000.0]})
    >>> path = pd.Series([59_000.0, 57_000.0, 56_000.0], name="BTC",
    ...                  index=pd.date_range("2026-01-01", periods=3, freq="1min", tz="UTC"))
    >>> log = simulate_liquidation(book, m, path, "binance.usdm")
    >>> log[["step", "event", "size_closed", "insurance_flow"]].values.tolist()
    [[1, 'liquidation', 1.0, 0.0]]

    The liquidation protocol at 57,100 (equity 100 <= maintenance 235.5): a partial reduction
    from tier 2 to tier 1 at mark, then, still deficient, the close at the bankruptcy price
    ``57,100 − 92.9 / 0.875657``:

    >>> path = pd.Series([59_000.0, 57_100.0], name="BTC", index=path.index[:2])
    >>> log = simulate_liquidation(book, m, path, "binance.usdm", binance_engine="protocol",
    ...                            liquidation_fee_rate=0.001)
    >>> log[["size_closed", "price", "fee", "insurance_flow"]].round(2).values.tolist()
    [[0.12, 57100.0, 7.1, 0.0], [0.88, 56993.91, 50.0, 42.9]]
    """
    mdl = _margin.get(model) if isinstance(model, str) else model
    if mdl.name not in SIMULATED_ENGINES:
        raise ValidationError(f"model: the liquidation engine of {mdl.name!r} is not supported "
                              f"yet; supported: {list(SIMULATED_ENGINES)}", field="model")
    if liquidation_fee_rate is not None and not (np.isfinite(liquidation_fee_rate)
                                                 and 0.0 <= liquidation_fee_rate < 1.0):
        raise ValidationError(f"liquidation_fee_rate: got {liquidation_fee_rate!r}; accepted: "
                              "0 <= rate < 1, or None", field="liquidation_fee_rate")
    if not 0.0 < hl_slice <= 1.0:
        raise ValidationError(f"hl_slice: got {hl_slice!r}; accepted: 0 < slice <= 1",
                              field="hl_slice")
    if binance_engine not in ("mark", "protocol"):
        raise ValidationError(f"binance_engine: got {binance_engine!r}; accepted: mark, protocol",
                              field="binance_engine")
    ctx = _Ctx(mdl, liquidation_fee_rate, binance_engine, adl_rule, adl_seed)
    if mdl.name.startswith("deribit."):
        ctx.deribit(deribit_fee_rates, deribit_future_increment_usd, deribit_option_increment)
    if mdl.name == "dydx.v4":
        ctx.dydx(dydx_smmr, dydx_ba, dydx_max_penalty)
    path = _check_path(price_path)
    st = _State(book, collateral, account, mdl)
    und = _path_underlying(st.book, path, market, underlying)
    if counterparties is not None:
        ctx.counterparties(counterparties)
    spot0 = market.spot(und)
    fund = float(insurance_fund)
    rows: list[dict] = []
    last_slice: dict = {}
    for step, (t, px) in enumerate(path.items()):
        ctx.factor = px / spot0
        mkt = market.shocked(px / spot0 - 1.0)
        rep = st.report(mkt)
        if mdl.name == "aave.v3":
            fund = _aave_step(st, mkt, rep, t, step, fund, rows, aave_version, ctx)
            continue
        if mdl.name.startswith("deribit."):
            fund = _deribit_step(st, mkt, rep, t, step, fund, rows, ctx)
            continue
        marks = rep.positions["notional"] / np.maximum(
            np.abs(st.book["size"] * st.book["contract_size"]), 1e-300)
        for members, eq, mm, mode in _groups(st, rep):
            if mm <= 0 or eq > mm:
                continue
            if mdl.name == "binance.usdm" and binance_engine == "protocol":
                fund = _binance_protocol(st, mkt, members, mode, marks, t, step, fund, rows, ctx)
            elif mdl.name == "binance.usdm":
                fund = _binance_group(st, mkt, rep, members, eq, mode, marks, t, step, fund,
                                      rows, ctx)
            elif mdl.name == "dydx.v4":
                fund = _dydx_group(st, mkt, rep, members, eq, mm, mode, marks, t, step, fund,
                                   rows, ctx)
            else:
                fund = _hl_group(st, mkt, rep, members, eq, mm, mode, marks, t, step, fund, rows,
                                 ctx, hl_partial_threshold, hl_slice, hl_cooldown, last_slice)
    log = pd.DataFrame(rows, columns=_LOG_COLUMNS)
    log.attrs["book"] = st.book
    log.attrs["collateral"] = st.coll
    log.attrs["model"] = mdl.name
    log.attrs["notes"] = list(ctx.notes)
    if ctx.cps is not None:
        log.attrs["counterparties"] = ctx.cps.drop(columns=["base", "wallet"])
    return log


def _row(st, mkt, t, step, i, event, size_before, closed, price, fee, flow, fund, eq_before,
         note, counterparty_flow: float = 0.0) -> dict:
    after = st.report(mkt)
    pid = st.book.at[i, "position_id"] if i is not None else ""
    return {"time": t, "step": step, "position": pid, "event": event,
            "size_before": size_before, "size_closed": closed,
            "size_after": float(st.book.at[i, "size"]) if i is not None else np.nan,
            "price": price, "fee": fee, "insurance_flow": flow, "insurance_fund": fund,
            "equity_before": eq_before, "equity": after.equity, "maintenance": after.maintenance,
            "note": note, "account": st.account, "counterparty_flow": counterparty_flow,
            "adl_rank": np.nan, "adl_score": np.nan}


def _fund_note(fund: float, ctx=None) -> str:
    if fund >= 0:
        return ""
    if ctx is not None and ctx.cps is not None and ctx.rule is not None:
        return "; insurance fund cannot cover: auto-deleveraging of counterparties follows"
    return "; insurance fund negative: auto-deleveraging would apply (pass counterparties=)"


def _close_all(st, members, marks, cur: str, mode: str) -> dict:
    """Close every member at ``marks[i]`` (any fill price); an isolated member's margin, or the
    cross wallet, goes with it. Returns the sizes before closing."""
    sizes = {i: float(st.book.at[i, "size"]) for i in members}
    for i in members:
        _perp_close(st, i, 1.0, float(marks[i]), cur)
        if mode == "isolated":
            st.book.at[i, "isolated_margin"] = 0.0
    if mode == "cross":
        st.credit(cur, -st.wallet(cur))
    return sizes


def _bankruptcy_prices(st, rep, members, eq: float, marks) -> dict:
    """Bankruptcy price of each live member: the fill at which the group's margin is exactly
    zero, ``P_b = mark − equity × w / q`` with ``w`` the member's share of the group notional
    (one position: ``w = 1``, the usual definition; several: pmnb's allocation)."""
    b = st.book
    live = [i for i in members if float(b.at[i, "size"]) != 0]
    notional = rep.positions.loc[live, "notional"].astype(float)
    tot = float(notional.sum())
    out = {}
    for i in live:
        q = float(b.at[i, "size"]) * float(b.at[i, "contract_size"])
        w = float(notional[i]) / tot if tot > 0 else 1.0 / len(live)
        out[i] = (q, float(marks[i]), float(marks[i]) - eq * w / q, w)
    return out


def _binance_group(st, mkt, rep, members, eq, mode, marks, t, step, fund, rows, ctx):
    cur = rep.currency
    fee_rate = ctx.fee_rate or 0.0
    eq_before = rep.equity
    notional = float(rep.positions.loc[members, "notional"].sum())
    fee = min(fee_rate * notional, max(eq, 0.0))
    flow = eq - fee
    bk = _bankruptcy_prices(st, rep, members, eq, marks)
    sizes = _close_all(st, members, marks, cur, mode)
    fund += flow
    note = (f"{mode} group closed in full at mark (simplification: Binance fills at the "
            f"bankruptcy price, binance_engine='protocol'); remaining margin {flow:,.2f} {cur} "
            "to the insurance fund"
            + ("" if fee_rate else "; no liquidation fee (margin.md gives none: pass "
               "liquidation_fee_rate)") + _fund_note(fund, ctx))
    ctx.note("binance.usdm: closed at mark, not at the bankruptcy price (binance_engine='mark')")
    for k, i in enumerate(members):
        first = k == 0
        r = _row(st, mkt, t, step, i, "liquidation", sizes[i], sizes[i], float(marks[i]),
                 fee if first else 0.0, flow if first else 0.0, fund,
                 eq_before if k == 0 else rows[-1]["equity"], note)
        rows.append(r)
    return _adl(st, ctx, t, step, bk, eq, fund, rows)


def _hl_group(st, mkt, rep, members, eq, mm, mode, marks, t, step, fund, rows, ctx,
              threshold, slice_, cooldown, last_slice):
    cur = rep.currency
    fee_rate = ctx.fee_rate or 0.0
    if eq < HL_BACKSTOP_RATIO * mm:
        eq_before = rep.equity
        bk = _bankruptcy_prices(st, rep, members, eq, marks)
        sizes = _close_all(st, members, marks, cur, mode)
        fund += eq
        note = ("backstop liquidation: equity < 2/3 maintenance, positions and margin "
                f"({eq:,.2f} USDC) to the liquidator vault, maintenance not returned "
                "(margin.md §3.2; approximation: checked before market liquidation)"
                + _fund_note(fund, ctx))
        ctx.note("hyperliquid: backstop checked before market liquidation (approximation)")
        for k, i in enumerate(members):
            first = k == 0
            rows.append(_row(st, mkt, t, step, i, "backstop", sizes[i], sizes[i],
                             float(marks[i]), 0.0, eq if first else 0.0, fund,
                             eq_before if k == 0 else rows[-1]["equity"], note))
        return _adl(st, ctx, t, step, bk, eq, fund, rows)
    for i in members:
        if i in last_slice and t - last_slice[i] < cooldown:
            continue
        eq_before = st.report(mkt).equity
        size = float(st.book.at[i, "size"])
        notional = float(rep.positions.at[i, "notional"])
        partial = notional > threshold and slice_ < 1.0
        frac = slice_ if partial else 1.0
        q, closed_notional = _perp_close(st, i, frac, float(marks[i]), cur)
        fee = fee_rate * closed_notional
        if np.isnan(st.book.at[i, "isolated_margin"]):
            st.credit(cur, -fee)
        else:
            st.book.at[i, "isolated_margin"] = float(st.book.at[i, "isolated_margin"]) - fee
        if partial:
            last_slice[i] = t
            note = (f"partial market liquidation: {slice_:.0%} slice (notional {notional:,.0f} "
                    f"> {threshold:,.0f} USDC), {cooldown.total_seconds():g} s cooldown — "
                    "approximation: threshold/slice/cooldown from a third-party summary [3P]")
        else:
            note = ("full market liquidation at mark (notional below the partial-liquidation "
                    "threshold, approximation [3P]); remaining margin stays with the user")
        ctx.note("hyperliquid: partial-liquidation threshold, slice and cooldown from a "
                 "third-party summary [3P]; fills at mark")
        if not fee_rate:
            note += "; no liquidation fee documented (pass liquidation_fee_rate)"
        rows.append(_row(st, mkt, t, step, i, "liquidation", size, q, float(marks[i]), fee, 0.0,
                         fund, eq_before, note))
    return fund


def _aave_step(st, mkt, rep, t, step, fund, rows, version, ctx=None):
    from pmnb.margin.aave_v3 import liquidation_outcome, max_debt_to_cover

    pos = rep.positions
    hf = float(pos["health_factor"].iloc[0]) if len(pos) else np.inf
    if not hf < 1.0:
        return fund
    version = str(version or st.mdl.params.version)
    sup = pos[(pos["side"] == "supply") & (pos["amount"] > 0)]
    bor = pos[(pos["side"] == "borrow") & (pos["amount"] > 0)]
    if sup.empty or bor.empty:
        return fund
    sup = sup.assign(bonus=[st.mdl.reserve(a).liquidation_bonus for a in sup["asset"]])
    sup = sup[sup["bonus"].notna()]
    if sup.empty:
        raise ValidationError("aave.v3: no collateral reserve with a liquidation_bonus; pass "
                              "reserves=... with the market's bonus", field="reserves")
    ci = sup["value_usd"].idxmax()
    di = (-bor["value_usd"]).idxmax()
    c, d = pos.loc[ci], pos.loc[di]
    r = st.mdl.reserve(c["asset"])
    pfee = r.liquidation_protocol_fee or 0.0
    total_debt = float(-bor["value_usd"].sum())
    cover_usd = float(max_debt_to_cover(hf, float(-d["value_usd"]), float(c["value_usd"]),
                                        total_debt, version=version))
    kw = {"debt_price": float(d["price"]), "collateral_price": float(c["price"]),
          "liquidation_bonus": float(r.liquidation_bonus), "liquidation_protocol_fee": pfee,
          "collateral_balance": float(c["amount"]), "debt_balance": float(d["amount"]),
          "version": version}
    o = liquidation_outcome(cover_usd / float(d["price"]), **kw)
    note = (f"HF {hf:.4f}: close factor repays up to {cover_usd:,.2f} USD of {d['asset']}; "
            f"bonus {r.liquidation_bonus - 1:.2%}, protocol fee "
            f"{float(o.protocol_fee) * float(c['price']):,.2f} USD (part of fee)")
    if bool(o.leaves_dust):
        o = liquidation_outcome(float(d["amount"]), **kw)
        note += "; v3.3 dust rule: whole reserve debt repaid instead"
    if pfee == 0.0 and r.liquidation_protocol_fee is None:
        note += "; no protocol fee known for the reserve (0 used)"
    note += "; approximation: one liquidation call per price step"
    if ctx is not None:
        ctx.note("aave.v3: one liquidation call per price step, largest debt against largest "
                 "collateral (approximation)")
    eq_before = rep.equity
    b = st.book
    for i, delta, sign in ((ci, float(o.collateral_seized), 1.0),
                           (di, float(o.debt_repaid), -1.0)):
        new = max(float(b.at[i, "amount"] if not pd.isna(b.at[i, "amount"])
                        else abs(b.at[i, "size"])) - delta, 0.0)
        b.at[i, "amount"] = new
        b.at[i, "size"] = sign * new
    fee = float(o.bonus) * float(c["price"])
    if (b.loc[[ci], "amount"] <= 0).all() and float(b.at[di, "amount"]) > 0:
        note += "; collateral exhausted with debt left (v3.3 books it as reserve deficit)"
    rows.append(_row(st, mkt, t, step, ci, "liquidation", float(c["amount"]),
                     float(o.collateral_seized), float(c["price"]), fee, 0.0, fund, eq_before,
                     note))
    return fund


__all__ += ["simulate_liquidation"]


# --- engine context, auto-deleveraging ---------------------------------------------------------
class _Ctx:
    """Parameters of one simulation, the counterparties' state and the notes collected."""

    def __init__(self, mdl, fee_rate, binance_engine, adl_rule, adl_seed):
        from pmnb.adl import ADL_RULES

        self.mdl = mdl
        self.fee_rate = fee_rate
        self.binance_engine = binance_engine
        if adl_rule is not None and adl_rule not in ADL_RULES:
            raise ValidationError(f"adl_rule: got {adl_rule!r}; accepted: "
                                  f"{', '.join(ADL_RULES)}", field="adl_rule")
        self.rule = adl_rule if adl_rule is not None else _DEFAULT_ADL_RULE.get(mdl.name)
        self.rng = np.random.default_rng(adl_seed)
        self.cps: pd.DataFrame | None = None
        self.cp_symbol = False
        self.factor = 1.0
        self.notes: dict[str, None] = {}

    def note(self, text: str) -> None:
        self.notes[text] = None

    def binance_fee(self, symbol: str) -> float:
        if self.fee_rate is not None:
            return float(self.fee_rate)
        self.note("binance.usdm: clearance fee from Binance's 2019 Liquidation FAQ (0.3 % "
                  "BTCUSDT, 0.5 % other perpetuals), a dated snapshot")
        return BINANCE_CLEARANCE_FEE_2019.get(symbol, BINANCE_CLEARANCE_FEE_2019["*"])

    def deribit(self, rates, inc_usd, inc_opt) -> None:
        for name, v in (("deribit_future_increment_usd", inc_usd),
                        ("deribit_option_increment", inc_opt)):
            if not (np.isfinite(v) and v > 0):
                raise ValidationError(f"{name}: got {v!r}; accepted: a number > 0", field=name)
        table = dict(DERIBIT_LIQUIDATION_FEES if rates is None else rates)
        for u, r in table.items():
            if len(tuple(r)) != 2 or not all(np.isfinite(x) and 0 <= x < 1 for x in r):
                raise ValidationError(f"deribit_fee_rates: {u!r} has {r!r}; accepted: "
                                      "(futures_rate, options_rate), each 0 <= rate < 1",
                                      field="deribit_fee_rates", row=u)
        self.deribit_fees = table
        self.inc_usd, self.inc_opt = float(inc_usd), float(inc_opt)

    def dydx(self, smmr, ba, penalty) -> None:
        if smmr is None or ba is None:
            raise ValidationError(
                "dydx_smmr, dydx_ba: required for dydx.v4 (the genesis values were not found; "
                "help.dydx.trade's 'maximum liquidation spread 1.5 × MMR' means SMMR 1.5, "
                "v4-chain's LiquidationsConfig_Default has SMMR 0.1 and BA 1); accepted: "
                "dydx_smmr >= 0, dydx_ba >= 1", field="dydx_smmr" if smmr is None else "dydx_ba")
        if not (np.isfinite(smmr) and smmr >= 0):
            raise ValidationError(f"dydx_smmr: got {smmr!r}; accepted: >= 0", field="dydx_smmr")
        if not (np.isfinite(ba) and ba >= 1):
            raise ValidationError(f"dydx_ba: got {ba!r}; accepted: >= 1 (liquidations.mdx)",
                                  field="dydx_ba")
        if not (np.isfinite(penalty) and 0 <= penalty < 1):
            raise ValidationError(f"dydx_max_penalty: got {penalty!r}; accepted: 0 <= p < 1",
                                  field="dydx_max_penalty")
        self.smmr, self.ba, self.penalty = float(smmr), float(ba), float(penalty)

    def counterparties(self, cps: pd.DataFrame) -> None:
        if not isinstance(cps, pd.DataFrame):
            raise ValidationError("counterparties: accepted: a DataFrame with columns account, "
                                  "size, entry_price, equity", field="counterparties")
        missing = [c for c in ("account", "size", "entry_price", "equity") if c not in cps]
        if missing:
            raise ValidationError(f"counterparties: missing column(s) {missing}; accepted: "
                                  "account, size, entry_price, equity (+ position, symbol, "
                                  "maintenance, wallet_balance)", field=missing[0])
        out = pd.DataFrame(index=cps.index)
        out["account"] = cps["account"].astype(str)
        out["position"] = (cps["position"].astype(str) if "position" in cps else
                           [f"{a}#{k}" for a, k in zip(out["account"], range(len(cps)))])
        for name, cond, acc in (("size", lambda x: np.isfinite(x) & (x != 0), "finite, != 0"),
                                ("entry_price", lambda x: np.isfinite(x) & (x > 0), "> 0"),
                                ("equity", np.isfinite, "finite"),
                                ("maintenance", lambda x: np.isfinite(x) & (x >= 0), ">= 0"),
                                ("wallet_balance", np.isfinite, "finite")):
            if name not in cps:
                continue
            x = pd.to_numeric(cps[name], errors="coerce").to_numpy(dtype=float)
            bad = ~cond(x)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                v = cps[name].iloc[j]
                raise ValidationError.for_field(f"counterparties.{name}", row=cps.index[j],
                                                value=v.item() if hasattr(v, "item") else v,
                                                accepted=acc,
                                                n_bad=int(bad.sum()))
            out[name] = x
        self.cp_symbol = "symbol" in cps
        if self.cp_symbol:
            out["symbol"] = cps["symbol"].astype(str)
        if self.rule == "binance" and "maintenance" not in out and not hasattr(self.mdl,
                                                                               "maintenance"):
            raise ValidationError("counterparties: the 'binance' ADL rule needs a maintenance "
                                  "column (the model cannot compute it)", field="maintenance")
        out["size0"] = out["size"]
        out["wallet"] = out.get("wallet_balance", np.nan)
        out["base"] = np.nan
        self.cps = out


def _adl(st, ctx, t, step, closed: dict, eq_group: float, fund: float, rows: list) -> float:
    """Deleverage counterparties for the part of a bankrupt group's loss the fund cannot cover.

    ``closed`` maps each closed row to ``(q, mark, bankruptcy price, notional share)``. The
    deficit ``min(−fund, −equity)`` is shared by notional; for each position, opposite-side
    counterparties (same symbol when given) are ranked by :func:`pmnb.adl.adl_ranking` and give
    up units at the bankruptcy price until the share is covered.
    """
    if fund >= 0 or ctx.cps is None or ctx.rule is None or eq_group >= 0:
        return fund
    from pmnb.adl import adl_ranking

    deficit = min(-fund, -eq_group)
    ctx.note(f"auto-deleveraging: {ctx.rule!r} ranking (pmnb.adl), counterparties closed at the "
             "bankrupt position's bankruptcy price; counterparty equity moves with the path as "
             "equity + size × (mark − mark₀) (their other holdings ignored)")
    if ctx.mdl.name == "hyperliquid":
        ctx.note("hyperliquid ADL: the docs close at the previous mark price; pmnb uses the "
                 "bankruptcy price so that the deficit is covered (approximation)")
    left = 0.0
    cps = ctx.cps
    for i, (q, mark, pb, w) in closed.items():
        per_unit = abs(pb - mark)
        need = deficit * w / per_unit if per_unit > 0 else 0.0
        if need <= 0:
            continue
        sym = str(st.book.at[i, "symbol"])
        elig = (np.sign(cps["size"]) == -np.sign(q)) & (cps["size"] != 0)
        if ctx.cp_symbol:
            elig &= cps["symbol"] == sym
        idx = cps.index[elig.to_numpy()]
        if not len(idx):
            left += need * per_unit
            continue
        mark0 = mark / ctx.factor
        fresh = idx[cps.loc[idx, "base"].isna().to_numpy()]
        cps.loc[fresh, "base"] = cps.loc[fresh, "equity"] - cps.loc[fresh, "size"] * mark0
        size = cps.loc[idx, "size"].to_numpy(dtype=float)
        entry = cps.loc[idx, "entry_price"].to_numpy(dtype=float)
        eq_t = cps.loc[idx, "base"].to_numpy(dtype=float) + size * mark
        frame = pd.DataFrame({"size": size, "entry_price": entry, "mark_price": mark,
                              "equity": eq_t}, index=idx)
        wallet = cps.loc[idx, "wallet"].to_numpy(dtype=float)
        frame["wallet_balance"] = np.where(np.isnan(wallet), eq_t - size * (mark - entry), wallet)
        if ctx.rule == "binance":
            if "maintenance" in cps:
                scale = np.abs(size) * mark / (np.abs(cps.loc[idx, "size0"].to_numpy()) * mark0)
                frame["maintenance"] = cps.loc[idx, "maintenance"].to_numpy() * scale
            else:
                frame["maintenance"] = ctx.mdl.maintenance(sym, np.abs(size) * mark)
        ranked = adl_ranking(frame, ctx.rule, seed=ctx.rng).sort_values("adl_rank")
        for j, r in ranked.iterrows():
            if need <= 1e-12:
                break
            s = float(r["size"])
            u = min(abs(s), need)
            c = np.sign(s) * u
            loss = u * per_unit
            e_before = float(r["equity"])
            cps.at[j, "base"] = float(cps.at[j, "base"]) + c * pb
            cps.at[j, "wallet"] = float(cps.at[j, "wallet"]) + c * (pb - float(r["entry_price"]))
            cps.at[j, "size"] = s - c if u < abs(s) else 0.0
            fund += loss
            need -= u
            rows.append({
                "time": t, "step": step, "position": cps.at[j, "position"], "event": "adl",
                "size_before": s, "size_closed": c, "size_after": float(cps.at[j, "size"]),
                "price": pb, "fee": 0.0, "insurance_flow": loss, "insurance_fund": fund,
                "equity_before": e_before, "equity": e_before - loss, "maintenance": np.nan,
                "note": (f"auto-deleveraged against {st.book.at[i, 'position_id']} at its "
                         f"bankruptcy price {pb:,.2f} (mark {mark:,.2f}), rank "
                         f"{int(r['adl_rank'])} by the {ctx.rule!r} rule; the profit given up "
                         "covers the deficit the insurance fund could not"),
                "account": cps.at[j, "account"], "counterparty_flow": 0.0,
                "adl_rank": float(r["adl_rank"]), "adl_score": float(r["adl_score"])})
        if need > 1e-12:
            left += need * per_unit
    if left > 1e-9:
        ctx.note(f"auto-deleveraging: counterparties exhausted, {left:,.2f} left uncovered "
                 "(insurance fund stays negative)")
    return fund


# --- Binance: liquidation protocol --------------------------------------------------------------
def _group_eq_mm(st, rep, members, mode) -> tuple[float, float, list]:
    pos, b = rep.positions, st.book
    live = [i for i in members if float(b.at[i, "size"]) != 0]
    mm = float(pos.loc[live, "maintenance"].sum()) if live else 0.0
    if mode == "isolated":
        i = members[0]
        eq = float(b.at[i, "isolated_margin"]) + float(pos.at[i, "unrealised_pnl"])
    else:
        eq = st.wallet(rep.currency) + float(pos.loc[live, "unrealised_pnl"].sum())
    return eq, mm, live


def _debit(st, i, mode, cur, amount) -> None:
    if mode == "isolated":
        st.book.at[i, "isolated_margin"] = float(st.book.at[i, "isolated_margin"]) - amount
    else:
        st.credit(cur, -amount)


def _binance_protocol(st, mkt, members, mode, marks, t, step, fund, rows, ctx):
    from pmnb.margin.binance_usdm import bracket_of

    ctx.note("binance.usdm protocol: reduction order (highest bracket, then largest "
             "maintenance; each step to just below the bracket floor, fills at mark) is pmnb's "
             "approximation — Binance does not publish it; no open orders to cancel in a book")
    for _ in range(256):
        rep = st.report(mkt)
        cur = rep.currency
        eq, mm, live = _group_eq_mm(st, rep, members, mode)
        if not live or mm <= 0 or eq > mm:
            break
        pos = rep.positions
        sym = {i: str(st.book.at[i, "symbol"]) for i in live}
        brk = {i: int(bracket_of(tuple(st.mdl.params.brackets[sym[i]]),
                                 np.array([float(pos.at[i, "notional"])]))[0]) for i in live}
        j = max(live, key=lambda i: (brk[i], float(pos.at[i, "maintenance"])))
        rate = ctx.binance_fee(sym[j])
        n_j = float(pos.at[j, "notional"])
        eq_before = rep.equity
        size = float(st.book.at[j, "size"])
        frac = None
        if brk[j] > 0:
            floor = float(st.mdl.params.brackets[sym[j]][brk[j]].floor)
            frac = 1.0 - floor * (1.0 - 1e-9) / n_j
            what = (f"partial liquidation: reduced from tier {brk[j] + 1} to tier {brk[j]} "
                    f"(notional {n_j:,.0f} → {floor:,.0f} {cur})")
        elif len(live) > 1:
            frac = 1.0
            what = "cross position in the first bracket closed in full"
        if frac is not None and rate * frac * n_j < eq:
            q, closed_n = _perp_close(st, j, frac, float(marks[j]), cur)
            fee = rate * closed_n
            _debit(st, j, mode, cur, fee)
            note = (f"{what} at mark {float(marks[j]):,.2f}, liquidation fee "
                    f"{rate:.3%} of the amount liquidated; stops once equity > maintenance")
            rows.append(_row(st, mkt, t, step, j, "liquidation", size, q, float(marks[j]), fee,
                             0.0, fund, eq_before, note))
            continue
        # bankrupt close: the insurance fund takes over at the bankruptcy price
        bk = _bankruptcy_prices(st, rep, live, eq, marks)
        fee = min(sum(ctx.binance_fee(sym[i]) * float(pos.at[i, "notional"]) for i in live),
                  max(eq, 0.0))
        flow = eq - fee
        sizes = _close_all(st, live, {i: bk[i][2] for i in live}, cur, mode)
        fund += flow
        note = ("closed at the bankruptcy price (margin exactly zero), taken over by the "
                f"insurance fund: clearance fee {fee:,.2f} {cur} (fee), the rest of the margin "
                f"{flow:,.2f} {cur} to the fund (mark − bankruptcy fill)" + _fund_note(fund, ctx))
        for k, i in enumerate(live):
            first = k == 0
            rows.append(_row(st, mkt, t, step, i, "liquidation", sizes[i], sizes[i], bk[i][2],
                             fee if first else 0.0, flow if first else 0.0, fund,
                             eq_before if k == 0 else rows[-1]["equity"], note))
        fund = _adl(st, ctx, t, step, bk, eq, fund, rows)
        break
    return fund


# --- dYdX v4 ------------------------------------------------------------------------------------
def _dydx_group(st, mkt, rep, members, eq, mm, mode, marks, t, step, fund, rows, ctx):
    cur = rep.currency
    pos, b = rep.positions, st.book
    live = [i for i in members if float(b.at[i, "size"]) != 0]
    abr = float(np.clip(ctx.ba * (1.0 - eq / mm), 0.0, 1.0))
    fill, slip = {}, {}
    for i in live:
        q = float(b.at[i, "size"]) * float(b.at[i, "contract_size"])
        P = float(marks[i])
        fill[i] = P * (1.0 - np.sign(q) * ctx.smmr * float(pos.at[i, "mmf"]) * abr)
        slip[i] = q * (P - fill[i])
    e_f = eq - sum(slip.values())
    eq_before = rep.equity
    ctx.note("dydx.v4: fills assumed at the fillable price (order-book liquidity not "
             "modelled); sign(S) and the clip of ABR to [0, 1] from v4-chain GetFillablePrice; "
             f"SMMR {ctx.smmr:g} and BA {ctx.ba:g} user-supplied (genesis values not found); "
             "whole position liquidated (MaxPositionPortionLiquidatedPpm 100 %)")
    if e_f >= 0 or fund + e_f >= 0:
        notional = sum(abs(float(b.at[i, "size"]) * float(b.at[i, "contract_size"])) * fill[i]
                       for i in live)
        flow = min(ctx.penalty * notional, e_f) if e_f >= 0 else e_f
        sizes = {i: float(b.at[i, "size"]) for i in live}
        for i in live:
            _perp_close(st, i, 1.0, fill[i], cur)
        _debit(st, live[0], mode, cur, flow)
        if mode == "isolated" and e_f < 0:
            b.at[live[0], "isolated_margin"] = 0.0
        fund += flow
        what = (f"penalty {flow:,.2f} USDC (≤ {ctx.penalty:.2%} of notional) to the insurance "
                "fund, the rest stays with the user" if e_f >= 0 else
                f"deficit {-e_f:,.2f} USDC paid by the insurance fund")
        note = (f"liquidated at the fillable price (ABR {abr:.4f}, SMMR {ctx.smmr:g}); maker's "
                f"price improvement {sum(slip.values()):,.2f} USDC (counterparty_flow); {what}"
                + _fund_note(fund, ctx))
        for k, i in enumerate(live):
            first = k == 0
            rows.append(_row(st, mkt, t, step, i, "liquidation", sizes[i], sizes[i], fill[i],
                             0.0, flow if first else 0.0, fund,
                             eq_before if k == 0 else rows[-1]["equity"], note,
                             counterparty_flow=sum(slip.values()) if first else 0.0))
        return fund
    bk = _bankruptcy_prices(st, rep, live, eq, marks)
    sizes = _close_all(st, live, {i: bk[i][2] for i in live}, cur, mode)
    fund += eq
    note = ("deleveraging: the insurance fund cannot cover the fillable-price loss; closed at "
            f"the bankruptcy price, the fund pays {-eq:,.2f} USDC" + _fund_note(fund, ctx))
    for k, i in enumerate(live):
        first = k == 0
        rows.append(_row(st, mkt, t, step, i, "deleveraging", sizes[i], sizes[i], bk[i][2], 0.0,
                         eq if first else 0.0, fund,
                         eq_before if k == 0 else rows[-1]["equity"], note))
    return _adl(st, ctx, t, step, bk, eq, fund, rows)


# --- Deribit: incremental liquidation -----------------------------------------------------------
def _deribit_pick(st, mkt, live) -> Any:
    """Futures before options; among them the position whose delta has the sign of the net
    delta (closing it reduces |delta|), largest |delta| first (approximation)."""
    from pmnb.book import position_greeks

    sub = st.book.loc[live]
    delta = position_greeks(sub, mkt)["delta_coin"].to_numpy(dtype=float)
    net = float(delta.sum())
    kind = sub["kind"].astype(str).to_numpy()
    fut = np.isin(kind, ("future", "perpetual"))
    pool = np.flatnonzero(fut) if fut.any() else np.arange(len(live))
    reducing = pool[np.sign(delta[pool]) == np.sign(net)] if net != 0 else pool[:0]
    use = reducing if len(reducing) else pool
    return live[int(use[np.argmax(np.abs(delta[use]))])]


def _deribit_close(st, rep, i, contracts: float, cur: str, ctx) -> tuple[float, float]:
    """Close ``contracts`` (same sign as the size) of row ``i`` at mark: the closed share of
    the position's value goes to the balance, the fee is paid from it. Returns (closed, fee)."""
    b = st.book
    size = float(b.at[i, "size"])
    frac = min(contracts / size, 1.0)
    c = size * frac
    value = float(rep.positions.at[i, "value"])
    und = str(b.at[i, "underlying"])
    if und not in ctx.deribit_fees:
        raise ValidationError(f"deribit_fee_rates: no liquidation fee for {und!r}; pass "
                              f"deribit_fee_rates={{{und!r}: (futures_rate, options_rate)}}; "
                              f"available: {sorted(ctx.deribit_fees)}", field="deribit_fee_rates")
    f_rate, o_rate = ctx.deribit_fees[und]
    cs = float(b.at[i, "contract_size"])
    inverse = str(b.at[i, "settlement"]) == "inverse"
    if str(b.at[i, "kind"]) == "option":
        ref = (1.0 if inverse else float(rep.positions.at[i, "reference_price"])
               if "reference_price" in rep.positions else np.nan)
        fee = o_rate * abs(c * cs) * ref
    else:
        mark = float(rep.positions.at[i, "mark"])
        fee = f_rate * (abs(c * cs) / mark if inverse else abs(c * cs) * mark)
    fee = min(fee, max(rep.equity, 0.0))
    st.credit(cur, frac * value - fee)
    b.at[i, "size"] = size - c if frac < 1.0 else 0.0
    return c, fee


def _deribit_step(st, mkt, rep, t, step, fund, rows, ctx):
    import math

    if rep.maintenance <= 0 or rep.equity > rep.maintenance:
        return fund
    ctx.note("deribit: incremental liquidation is a labelled approximation of Deribit's "
             "'Auto Liquidation' page: increments closed at mark within one path step, futures "
             "before options, delta-reducing positions first, smallest number of increments "
             "found by bisection (assumes margin falls as a position shrinks); the fund is in "
             "the margin currency; auto-deleveraging / socialised loss not simulated")
    for _ in range(64):
        rep = st.report(mkt)
        cur = rep.currency
        eq, mm = rep.equity, rep.maintenance
        live = [i for i in rep.positions.index if float(st.book.at[i, "size"]) != 0]
        if not live or eq > mm:
            break
        if eq <= 0:
            sizes = {}
            for i in live:
                sizes[i] = float(st.book.at[i, "size"])
                st.credit(cur, float(rep.positions.at[i, "value"]))
                st.book.at[i, "size"] = 0.0
            st.credit(cur, -st.wallet(cur))
            fund += eq
            note = (f"equity {eq:,.6g} {cur} <= 0: remaining positions closed at mark, the "
                    "insurance fund pays the negative balance"
                    + ("; fund negative (Deribit's socialised loss is not simulated)"
                       if fund < 0 else ""))
            for k, i in enumerate(live):
                first = k == 0
                rows.append(_row(st, mkt, t, step, i, "liquidation", sizes[i], sizes[i],
                                 float(rep.positions.at[i, "mark"]), 0.0, eq if first else 0.0,
                                 fund, eq if k == 0 else rows[-1]["equity"], note))
            break
        i = _deribit_pick(st, mkt, live)
        size = float(st.book.at[i, "size"])
        cs = float(st.book.at[i, "contract_size"])
        is_opt = str(st.book.at[i, "kind"]) == "option"
        inverse = str(st.book.at[i, "settlement"]) == "inverse"
        if is_opt:
            inc = ctx.inc_opt / cs
        else:
            inc = ctx.inc_usd / cs if inverse else ctx.inc_usd / (
                cs * float(rep.positions.at[i, "mark"]))
        n = max(math.ceil(abs(size) / inc - 1e-9), 1)

        def ok(k: int, rep=rep, i=i, size=size, inc=inc, cur=cur) -> bool:
            trial = st.clone()
            _deribit_close(trial, rep, i, np.sign(size) * min(k * inc, abs(size)), cur, ctx)
            r = trial.report(mkt)
            return r.equity > r.maintenance

        k = n
        if ok(n):
            lo, hi = 0, 1
            while hi < n and not ok(hi):
                lo, hi = hi, min(2 * hi, n)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if ok(mid) else (mid, hi)
            k = hi
        c, fee = _deribit_close(st, rep, i, np.sign(size) * min(k * inc, abs(size)), cur, ctx)
        unit = "option contracts" if is_opt else f"contracts, {ctx.inc_usd:,.0f} USD"
        note = (f"incremental liquidation: {k} increment(s) of {inc:g} {unit} at "
                f"mark, ~{k / DERIBIT_ROUNDS_PER_SECOND:g} s at 20 rounds/s; fee {fee:.6g} {cur}"
                + ("; liquidation stops: equity > maintenance" if k < n else ""))
        rows.append(_row(st, mkt, t, step, i, "liquidation", size, c,
                         float(rep.positions.at[i, "mark"]), fee, 0.0, fund, eq, note))
    return fund
