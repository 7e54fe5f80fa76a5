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


def _gap(book, market, model, account, collateral, s: float) -> float:
    """Equity minus maintenance at a common move ``s`` (``book`` validated and checked once by
    the caller, ``collateral`` already that account's)."""
    rep = model.compute(book, market.shocked(s), account=account, collateral=collateral)
    return rep.equity - rep.maintenance


def liquidation_prices(book: pd.DataFrame, market, model: Any, *, account: str | None = None,
                       collateral: pd.DataFrame | None = None, lower: float = -0.95,
                       upper: float = 4.0, n_grid: int = 96,
                       xtol: float = 1e-12) -> LiquidationResult:
    """Every common price move at which the account's equity equals its maintenance margin.

    Parameters
    ----------
    book, market, model, account, collateral
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
    """
    if not (-1 < lower < 0 < upper) or n_grid < 8:
        raise ValidationError(f"lower, upper, n_grid: got {lower}, {upper}, {n_grid}; accepted: "
                              "-1 < lower < 0 < upper and n_grid >= 8", field="lower")
    mdl = _margin.get(model) if isinstance(model, str) else model
    g = np.exp(np.linspace(np.log1p(lower), np.log1p(upper), n_grid)) - 1.0
    g = np.unique(np.concatenate([g, [0.0]]))
    from pmnb.book import validate_positions

    v = validate_positions(book)
    if account is not None:
        v = v[v["account"].astype(str) == account]
        if collateral is not None:
            collateral = collateral[collateral["account"].astype(str) == account]
    mdl.check_supported(v)
    # isolated positions are margined alone (their isolated margin is their whole equity);
    # everything else shares the cross wallet
    isolated = v["isolated_margin"].notna().to_numpy()
    groups = [("cross", v[~isolated], collateral)] if (~isolated).any() else []
    groups += [(str(v["position_id"].iloc[i]), v.iloc[[i]], None) for i in np.flatnonzero(isolated)]
    unders = [u for u in dict.fromkeys(v["underlying"].astype(str))
              if u in market.spots and u.upper() not in ("USD", "USDC", "USDT", "DAI")]
    records, below = [], []
    for label, sub, coll in groups:
        gaps = np.array([_gap(sub, market, mdl, account, coll, s) for s in g])
        if gaps[g == 0.0][0] <= 0:
            below.append(label)
        for i in range(len(g) - 1):
            a, b = gaps[i], gaps[i + 1]
            if a == 0.0 or np.sign(a) == np.sign(b):
                continue
            s = brentq(lambda x: _gap(sub, market, mdl, account, coll, x), g[i], g[i + 1],
                       xtol=xtol, rtol=4 * np.finfo(float).eps)
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
SIMULATED_ENGINES = ("binance.usdm", "hyperliquid", "aave.v3")
#: Hyperliquid partial liquidation (reference/margin.md §3.2, tagged [3P]: third-party summary).
HL_PARTIAL_THRESHOLD_USD = 100_000.0
HL_SLICE = 0.20
HL_COOLDOWN = pd.Timedelta(seconds=30)
HL_BACKSTOP_RATIO = 2.0 / 3.0
_STABLE = ("USD", "USDC", "USDT", "DAI")
_LOG_COLUMNS = ["time", "step", "position", "event", "size_before", "size_closed", "size_after",
                "price", "fee", "insurance_flow", "insurance_fund", "equity_before", "equity",
                "maintenance", "note"]


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


def _perp_close(st: _State, i, frac: float, mark: float, currency: str) -> tuple[float, float]:
    """Close ``frac`` of row ``i`` at ``mark``; realised P&L to the isolated margin (isolated)
    or the wallet (cross). Returns (size closed, notional closed)."""
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
                         liquidation_fee_rate: float = 0.0,
                         hl_partial_threshold: float = HL_PARTIAL_THRESHOLD_USD,
                         hl_slice: float = HL_SLICE,
                         hl_cooldown: pd.Timedelta = HL_COOLDOWN,
                         aave_version: str | None = None) -> pd.DataFrame:
    """Run a venue's liquidation engine on one account along a path of index prices.

    ``price_path`` holds **index prices** (not returns) of one underlying, indexed by UTC time.
    At each step the market is moved by ``Market.shocked(price / spot - 1)`` — every non-stable
    spot, forward and venue mark moves by the same relative amount (the market's timestamp is
    held) — and :func:`pmnb.margin.compute` recomputes equity and maintenance. When a margin
    group (each isolated position alone; the cross positions together) has ``equity <=
    maintenance`` (Aave: health factor < 1) the venue's engine acts:

    ``binance.usdm``
        The whole group is closed at the **mark price** (simplification: Binance's engine
        closes at the bankruptcy price and the fill lands near mark; cross groups are closed
        at once, not position by position). A liquidation fee of ``liquidation_fee_rate`` ×
        notional is charged (reference/margin.md gives no rate: default 0, pass the venue's);
        the remaining margin goes to the insurance fund, a deficit is drawn from it.
    ``hyperliquid``
        Market liquidation at mark: positions above ``hl_partial_threshold`` USD notional lose
        ``hl_slice`` (20%) of their size per slice, with ``hl_cooldown`` (30 s) between slices
        of one position; smaller ones close fully; the remaining margin stays with the user.
        Backstop when equity < 2/3 of maintenance: the positions and the margin go to the
        liquidator vault (counted as ``insurance_flow``; the maintenance margin is not
        returned). Threshold, slice and cooldown are tagged [3P] in margin.md §3.2 and are
        labelled approximations in ``note``; no liquidation fee is documented (default 0).
    ``aave.v3``
        One liquidation call per step: the largest debt reserve is repaid against the largest
        collateral reserve, up to :func:`pmnb.margin.aave_v3.max_debt_to_cover` (close factor),
        seizing collateral with the reserve's bonus (:func:`~pmnb.margin.aave_v3.
        liquidation_outcome`); ``fee`` is the bonus (USD), the note gives the protocol fee part.
        v3.3 dust: a call that would leave dust repays the whole reserve debt instead.

    Conservation, per event: ``equity_before = equity + fee + insurance_flow`` (equities from
    :func:`pmnb.margin.compute` before and after the event); sizes only shrink and never change
    sign. When the insurance fund goes negative the note says so (auto-deleveraging is not
    simulated).

    Parameters
    ----------
    book, market, model, account, collateral
        As in :func:`pmnb.margin.compute`; one account is simulated.
    price_path : Series
        Index prices of ``underlying`` (USD), DatetimeIndex (naive = UTC), increasing.
    insurance_fund : float
        Insurance-fund (Hyperliquid: liquidator vault) balance at the start.
    underlying : str, optional
        The path's underlying; default ``price_path.name`` or the book's only non-stable one.
    liquidation_fee_rate : float
        Fee per notional closed (perps), charged to the account; default 0.
    hl_partial_threshold, hl_slice, hl_cooldown
        Hyperliquid partial-liquidation parameters.
    aave_version : str, optional
        Aave close-factor rule; default the model's ``version``.

    Returns
    -------
    DataFrame
        One row per liquidation event: ``time, step, position, event, size_before,
        size_closed, size_after, price, fee, insurance_flow, insurance_fund, equity_before,
        equity, maintenance, note`` (equity and maintenance after the event, in the model's
        currency). ``attrs["book"]`` / ``attrs["collateral"]`` hold the final state.

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
    """
    mdl = _margin.get(model) if isinstance(model, str) else model
    if mdl.name not in SIMULATED_ENGINES:
        raise ValidationError(f"model: the liquidation engine of {mdl.name!r} is not supported "
                              f"yet; supported: {list(SIMULATED_ENGINES)}", field="model")
    if not (np.isfinite(liquidation_fee_rate) and 0.0 <= liquidation_fee_rate < 1.0):
        raise ValidationError(f"liquidation_fee_rate: got {liquidation_fee_rate!r}; accepted: "
                              "0 <= rate < 1", field="liquidation_fee_rate")
    if not 0.0 < hl_slice <= 1.0:
        raise ValidationError(f"hl_slice: got {hl_slice!r}; accepted: 0 < slice <= 1",
                              field="hl_slice")
    path = _check_path(price_path)
    st = _State(book, collateral, account, mdl)
    und = _path_underlying(st.book, path, market, underlying)
    spot0 = market.spot(und)
    fund = float(insurance_fund)
    rows: list[dict] = []
    last_slice: dict = {}
    for step, (t, px) in enumerate(path.items()):
        mkt = market.shocked(px / spot0 - 1.0)
        rep = st.report(mkt)
        if mdl.name == "aave.v3":
            fund = _aave_step(st, mkt, rep, t, step, fund, rows, aave_version)
            continue
        marks = rep.positions["notional"] / np.maximum(
            np.abs(st.book["size"] * st.book["contract_size"]), 1e-300)
        for members, eq, mm, mode in _groups(st, rep):
            if mm <= 0 or eq > mm:
                continue
            if mdl.name == "binance.usdm":
                fund = _binance_group(st, mkt, rep, members, eq, mode, marks, t, step, fund,
                                      rows, liquidation_fee_rate)
            else:
                fund = _hl_group(st, mkt, rep, members, eq, mm, mode, marks, t, step, fund, rows,
                                 liquidation_fee_rate, hl_partial_threshold, hl_slice,
                                 hl_cooldown, last_slice)
    log = pd.DataFrame(rows, columns=_LOG_COLUMNS)
    log.attrs["book"] = st.book
    log.attrs["collateral"] = st.coll
    log.attrs["model"] = mdl.name
    return log


def _row(st, mkt, t, step, i, event, size_before, closed, price, fee, flow, fund, eq_before,
         note) -> dict:
    after = st.report(mkt)
    pid = st.book.at[i, "position_id"] if i is not None else ""
    return {"time": t, "step": step, "position": pid, "event": event,
            "size_before": size_before, "size_closed": closed,
            "size_after": float(st.book.at[i, "size"]) if i is not None else np.nan,
            "price": price, "fee": fee, "insurance_flow": flow, "insurance_fund": fund,
            "equity_before": eq_before, "equity": after.equity, "maintenance": after.maintenance,
            "note": note}


def _fund_note(fund: float) -> str:
    return ("; insurance fund negative: auto-deleveraging would apply (not simulated)"
            if fund < 0 else "")


def _close_all(st, members, marks, cur: str, mode: str) -> dict:
    """Close every member at its mark; an isolated member's margin, or the cross wallet, goes
    with it. Returns the sizes before closing."""
    sizes = {i: float(st.book.at[i, "size"]) for i in members}
    for i in members:
        _perp_close(st, i, 1.0, float(marks[i]), cur)
        if mode == "isolated":
            st.book.at[i, "isolated_margin"] = 0.0
    if mode == "cross":
        st.credit(cur, -st.wallet(cur))
    return sizes


def _binance_group(st, mkt, rep, members, eq, mode, marks, t, step, fund, rows, fee_rate):
    cur = rep.currency
    eq_before = rep.equity
    notional = float(rep.positions.loc[members, "notional"].sum())
    fee = min(fee_rate * notional, max(eq, 0.0))
    flow = eq - fee
    sizes = _close_all(st, members, marks, cur, mode)
    fund += flow
    note = (f"{mode} group closed in full at mark (simplification: Binance fills at the "
            f"bankruptcy price); remaining margin {flow:,.2f} {cur} to the insurance fund"
            + ("" if fee_rate else "; no liquidation fee (margin.md gives none: pass "
               "liquidation_fee_rate)") + _fund_note(fund))
    for k, i in enumerate(members):
        last = k == len(members) - 1
        r = _row(st, mkt, t, step, i, "liquidation", sizes[i], sizes[i], float(marks[i]),
                 fee if last else 0.0, flow if last else 0.0, fund,
                 eq_before if k == 0 else rows[-1]["equity"], note)
        rows.append(r)
    return fund


def _hl_group(st, mkt, rep, members, eq, mm, mode, marks, t, step, fund, rows, fee_rate,
              threshold, slice_, cooldown, last_slice):
    cur = rep.currency
    if eq < HL_BACKSTOP_RATIO * mm:
        eq_before = rep.equity
        sizes = _close_all(st, members, marks, cur, mode)
        fund += eq
        note = ("backstop liquidation: equity < 2/3 maintenance, positions and margin "
                f"({eq:,.2f} USDC) to the liquidator vault, maintenance not returned "
                "(margin.md §3.2; approximation: checked before market liquidation)"
                + _fund_note(fund))
        for k, i in enumerate(members):
            last = k == len(members) - 1
            rows.append(_row(st, mkt, t, step, i, "backstop", sizes[i], sizes[i],
                             float(marks[i]), 0.0, eq if last else 0.0, fund,
                             eq_before if k == 0 else rows[-1]["equity"], note))
        return fund
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
        if not fee_rate:
            note += "; no liquidation fee documented (pass liquidation_fee_rate)"
        rows.append(_row(st, mkt, t, step, i, "liquidation", size, q, float(marks[i]), fee, 0.0,
                         fund, eq_before, note))
    return fund


def _aave_step(st, mkt, rep, t, step, fund, rows, version):
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
