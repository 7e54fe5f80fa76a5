r"""SPAN-style scenario-grid margin (CME's Standard Portfolio Analysis of Risk), for any venue.

CME Group, "SPAN components", http://www.cme.com/clearing/rmspan/span/components.html and
"SPAN overview", http://cmegroup.com/clearing/risk-management/span-overview.html (as collected in
the project's research notes, reference/margin.md §6.1). In the margin currency (the quote for
linear products, the coin for inverse ones)::

    risk array      a_ij = loss (positive) of ONE LONG contract i in scenario j over the look-ahead
    scenarios       16, CME's order (:func:`scenario_table`): price move 0, +1/3, -1/3, +2/3,
                    -2/3, +3/3, -3/3 of the price scan range, each with vol up then vol down
                    (± the vol scan range, absolute), then the two extreme moves ±X × scan range
                    at unchanged vol, of which only the covered fraction counts
    scanning risk   max_j  w_j Σ_i q_i a_ij           (q signed: short < 0; w = 1, or the cover
                    fraction for the extremes) — the worst scenario of the SUM, not Σ of worsts
    spread charge   n_spreads × intermonth_spread_charge   (see :func:`intermonth_spreads`)
    short option    n_short_options × short_option_minimum
    total           max(scanning risk + spread charge − inter-commodity credit, short option min)

per combined commodity (here: per underlying), summed over underlyings. pmnb grants no
inter-commodity credit (0). The combination rule and the components are the ones listed in
reference/margin.md §6.1 ("On top of the scanning risk come the short option minimum,
intra-commodity spread charges and inter-commodity credits"). The ``max(…, short option minimum)``
combination is the standard SPAN form as commonly described; it was not checked against a CME
document in the research notes, so treat it as this model's documented choice.

Valuation of the risk arrays:

* options: full revaluation by the compiled kernel :func:`pmnb.scenarios.revalue_grid` at the
  shocked forward ``F (1 + s_j)``, the shocked vol ``max(σ + v_j, 0)`` (absolute shift, passed as
  a per-scenario ``sigma_matrix``) and ``T - lookahead``; the base value is at ``(F, σ, T)``, so
  the arrays include one look-ahead of time decay, as SPAN's do. Linear options in USD (quote),
  inverse options in coin.
* futures and perpetuals, closed form: linear ``-q F s``; inverse (USD-sized, coin P&L)
  ``-(q / F)(1 - 1/(1 + s))`` (reference/margin.md §7.1), ``F`` the position's mark.

**Parameters are structure, not a venue's numbers.** The scenario structure (16 scenarios, their
order, thirds of the scan range, the extreme move and its cover fraction) is CME's. The scan ranges
and charges are per venue and product: the defaults are illustrative only (a price scan range of
16 %, the outermost move of Deribit's and Paradex's published BTC grids, reference/margin.md
§1.3/§6.2; a vol scan range of 10 vol points; no spread charge and no short-option minimum).
**Set them for a real venue** — pmnb does not invent venue numbers.

**Simplifications** (each noted in the report when it applies):

* the intermonth spread charge forms spreads from the net delta per expiry, pro rata (no
  whole-spread rounding, one tier per expiry, one charge for every pair of tiers; CME uses tiers,
  priorities and per-tier-pair charges);
* delta is the kernel's delta per contract (Black delta × contract size for linear options, the
  coin delta for inverse ones, the contract's coin exposure for futures);
* no inter-commodity credits, no delivery-month charge, no option-value credit.

Examples
--------
>>> from pmnb.margin.span import SpanParams, aggregate, scenario_table
>>> tab = scenario_table(SpanParams(price_scan_range=0.1, vol_scan_range=0.05))
>>> tab[["price_move", "vol_move", "weight"]].iloc[[0, 1, 2, 14, 15]].round(4).values.tolist()
[[0.0, 0.05, 1.0], [0.0, -0.05, 1.0], [0.0333, 0.05, 1.0], [0.3, 0.0, 0.35], [-0.3, 0.0, 0.35]]
>>> r = aggregate([[1.0] * 16, [-1.0] * 16], [1.0, 1.0])   # a perfect hedge: no scanning risk
>>> r.scanning_risk, r.total
(0.0, 0.0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError
from pmnb.margin import MarginModel, MarginParams, MarginReport, register, wallet_balance

__all__ = ["N_SCENARIOS", "Span", "SpanParams", "SpanResult", "aggregate", "future_risk_arrays",
           "intermonth_spreads", "option_risk_arrays", "risk_arrays", "scenario_table"]

_SPAN_SOURCE = ("CME Group SPAN methodology: http://www.cme.com/clearing/rmspan/span/"
                "components.html; http://cmegroup.com/clearing/risk-management/span-overview.html "
                "(reference/margin.md §6.1)")
N_SCENARIOS = 16
# CME's order: (price move in scan ranges, vol move in vol scan ranges); 15/16 are the extremes
_PRICE_THIRDS = (0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3)
_VOL_SIGNS = (1, -1) * 7


@dataclasses.dataclass(frozen=True)
class SpanParams(MarginParams):
    """SPAN-style parameters (override any field; see the module docstring).

    Scan ranges and charges take a float (every underlying) or a mapping underlying -> float,
    where the key ``"*"`` is the fallback.

    Attributes
    ----------
    price_scan_range : float or mapping
        Price scan range as a fraction of the underlying (0.16 = ±16 %). **Illustrative default:
        set it for the venue and product.**
    vol_scan_range : float or mapping
        Vol scan range, absolute (0.10 = ±10 vol points). **Illustrative default.**
    extreme_move_multiple : float
        Extreme move in price scan ranges (CME: 3; reference/margin.md §6.1 also reports 2 in an
        NSE-flavoured text).
    extreme_cover_fraction : float
        Fraction of the extreme scenarios' loss that counts (CME: 35 %; a CME advisory lists 0.33
        for some products, reference/margin.md §6.1).
    intermonth_spread_charge : float or mapping
        Charge per intermonth spread (margin currency); 0 = none. Venue-specific.
    spread_delta_unit : float
        Delta (underlying units) of one leg of one spread (1.0: a spread is one unit of delta
        long in one expiry against one unit short in another).
    short_option_minimum : float or mapping
        Charge per short option contract (margin currency); 0 = none. Venue-specific.
    lookahead_days : float
        Look-ahead of the risk arrays (CME: one day).
    maintenance_ratio : float
        Maintenance = ratio × total. **Venue-specific**; default 1.0 (CME clearing-member
        maintenance equals the SPAN requirement — a label, not from the reference notes; set
        the venue's own ratio).
    currency : str or None
        The margined currency; required when the account holds positions margined in several.
    """

    rule_version: str = "cme-span-16-scenarios"
    source: str = _SPAN_SOURCE
    price_scan_range: Any = 0.16
    vol_scan_range: Any = 0.10
    extreme_move_multiple: float = 3.0
    extreme_cover_fraction: float = 0.35
    intermonth_spread_charge: Any = 0.0
    spread_delta_unit: float = 1.0
    short_option_minimum: Any = 0.0
    lookahead_days: float = 1.0
    maintenance_ratio: float = 1.0
    currency: str | None = None


def _per(name: str, value: Any, underlying: str | None) -> float:
    if isinstance(value, Mapping):
        if underlying in value:
            out = value[underlying]
        elif "*" in value:
            out = value["*"]
        else:
            raise ValidationError(f"{name}: no value for underlying {underlying!r}; accepted: a "
                                  f"float, or a mapping with that key or '*' (has {sorted(value)})",
                                  field=name)
    else:
        out = value
    try:
        out = float(out)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: got {out!r}; accepted: a number", field=name) from None
    if not np.isfinite(out) or out < 0:
        raise ValidationError(f"{name}: got {out}; accepted: a finite number >= 0", field=name)
    return out


def _check_params(p: SpanParams, underlying: str | None = None) -> tuple[float, float]:
    psr = _per("price_scan_range", p.price_scan_range, underlying)
    vsr = _per("vol_scan_range", p.vol_scan_range, underlying)
    x = float(p.extreme_move_multiple)
    if not (x >= 1.0 and psr * x < 1.0):
        raise ValidationError(f"extreme_move_multiple: got {x} with price_scan_range {psr}; "
                              "accepted: multiple >= 1 and multiple × scan range < 1",
                              field="extreme_move_multiple")
    _check_common(p)
    return psr, vsr


def _check_common(p: SpanParams) -> None:
    if not (0.0 <= p.extreme_cover_fraction <= 1.0):
        raise ValidationError(f"extreme_cover_fraction: got {p.extreme_cover_fraction}; "
                              "accepted: 0 <= fraction <= 1", field="extreme_cover_fraction")
    if not (0.0 <= p.lookahead_days < 3650.0):
        raise ValidationError(f"lookahead_days: got {p.lookahead_days}; accepted: 0 <= days",
                              field="lookahead_days")
    if not p.spread_delta_unit > 0:
        raise ValidationError(f"spread_delta_unit: got {p.spread_delta_unit}; accepted: > 0",
                              field="spread_delta_unit")


def scenario_table(params: SpanParams | None = None, underlying: str | None = None
                   ) -> pd.DataFrame:
    """The 16 SPAN scenarios in CME's order (reference/margin.md §6.1).

    Returns
    -------
    DataFrame
        Indexed 1..16 (``scenario``): ``label``, ``price_scans`` (multiple of the price scan
        range), ``vol_scans`` (+1 up, −1 down, 0), ``price_move`` (relative), ``vol_move``
        (absolute), ``weight`` (1; the cover fraction for 15 and 16), ``extreme``.

    Examples
    --------
    >>> scenario_table()["label"].tolist()[:4] + scenario_table()["label"].tolist()[-2:]
    ['0 vol up', '0 vol down', '+1/3 vol up', '+1/3 vol down', '+3 (extreme)', '-3 (extreme)']
    """
    p = params if params is not None else SpanParams()
    psr, vsr = _check_params(p, underlying)
    x = float(p.extreme_move_multiple)
    scans = np.array([t / 3.0 for t in _PRICE_THIRDS] + [x, -x])
    vols = np.array(list(_VOL_SIGNS) + [0, 0], dtype=float)
    weight = np.ones(N_SCENARIOS)
    weight[14:] = p.extreme_cover_fraction
    frac = {0: "0", 1: "+1/3", -1: "-1/3", 2: "+2/3", -2: "-2/3", 3: "+3/3", -3: "-3/3"}
    labels = [f"{frac[t]} vol {'up' if v > 0 else 'down'}"
              for t, v in zip(_PRICE_THIRDS, _VOL_SIGNS)] + [f"{s}{x:g} (extreme)" for s in "+-"]
    return pd.DataFrame({"label": labels, "price_scans": scans, "vol_scans": vols,
                         "price_move": scans * psr + 0.0, "vol_move": vols * vsr + 0.0,
                         "weight": weight, "extreme": np.arange(N_SCENARIOS) >= 14},
                        index=pd.RangeIndex(1, N_SCENARIOS + 1, name="scenario"))


def option_risk_arrays(F: Any, K: Any, T: Any, sigma: Any, option_type: Any, contract_size: Any = 1.0,
                       params: SpanParams | None = None, *, underlying: str | None = None,
                       r: float = 0.0, settlement: str = "linear",
                       n_threads: int | None = None) -> np.ndarray:
    """Loss-positive risk arrays of long option contracts, shape ``(n, 16)``.

    ``a_ij = -contract_size × (price(F(1+s_j), K, T - dt, max(σ + v_j, 0)) - price(F, K, T, σ))``
    by :func:`pmnb.scenarios.revalue_grid` (Black-76; ``dt`` the look-ahead in years).

    Examples
    --------
    >>> a = option_risk_arrays(100.0, 100.0, 0.25, 0.5, "call", params=SpanParams(lookahead_days=0))
    >>> a.shape, bool(a[0, 10] < 0 < a[0, 12])     # +3/3 is a gain, -3/3 a loss for a long call
    ((1, 16), True)
    """
    from pmnb.scenarios import revalue_grid

    p = params if params is not None else SpanParams()
    tab = scenario_table(p, underlying)
    sig = np.atleast_1d(np.asarray(sigma, dtype=float))
    n = np.broadcast(np.atleast_1d(np.asarray(F, dtype=float)), np.atleast_1d(np.asarray(K, dtype=float)),
                     np.atleast_1d(np.asarray(T, dtype=float)), sig).shape[0]
    sig_b = np.broadcast_to(sig, (n,))
    with np.errstate(invalid="ignore"):
        sm = np.maximum(sig_b[:, None] + tab["vol_move"].to_numpy()[None, :], 0.0)
    pnl = revalue_grid(F, K, T, sigma, r, option_type=option_type, qty=contract_size,
                       settlement=settlement, spot_shocks=tab["price_move"].to_numpy(),
                       vol_shocks=0.0, sigma_matrix=sm, time_shift=p.lookahead_days / 365.0,
                       n_threads=n_threads)
    return -pnl + 0.0


def future_risk_arrays(F: Any, contract_size: Any = 1.0, params: SpanParams | None = None, *,
                       underlying: str | None = None, settlement: str = "linear") -> np.ndarray:
    """Loss-positive risk arrays of long futures/perpetual contracts, shape ``(n, 16)``.

    Linear: ``-c F s``; inverse (``c`` USD, coin P&L): ``-(c / F)(1 - 1/(1+s))``.

    Examples
    --------
    >>> future_risk_arrays(100.0, params=SpanParams(price_scan_range=0.1))[0, [0, 10, 12]].tolist()
    [0.0, -10.0, 10.0]
    """
    if settlement not in ("linear", "inverse"):
        raise ValidationError(f"settlement: got {settlement!r}; accepted: linear, inverse",
                              field="settlement")
    s = scenario_table(params, underlying)["price_move"].to_numpy()
    F_, c = np.broadcast_arrays(np.atleast_1d(np.asarray(F, dtype=float)),
                                np.atleast_1d(np.asarray(contract_size, dtype=float)))
    if not (np.isfinite(F_).all() and (F_ > 0).all()):
        raise ValidationError("F: accepted: finite prices > 0", field="F")
    if settlement == "inverse":
        return -(c / F_)[:, None] * (1.0 - 1.0 / (1.0 + s))[None, :] + 0.0
    return -(c * F_)[:, None] * s[None, :] + 0.0


def risk_arrays(book: pd.DataFrame, market, params: SpanParams | None = None) -> pd.DataFrame:
    """Risk arrays (loss of one long contract, ``size`` = 1) of every position of a book.

    Rows indexed like the book (validated here), columns the scenarios 1..16. Options through
    :func:`option_risk_arrays`, futures and perpetuals through :func:`future_risk_arrays`, each
    with its underlying's scan ranges; expired positions carry zeros. In each row's margin
    currency (quote for linear, coin for inverse).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
    ...                           marks={"binance:BTCUSDT": 100_000.0})
    >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                      "size": [1.0], "entry_price": [100_000.0]})
    >>> float(risk_arrays(book, m).loc[0, 13])         # -3/3 of 16 %: loses 16,000 USDT
    16000.0
    """
    from pmnb.book import validate_positions

    p = params if params is not None else SpanParams()
    book = validate_positions(book)
    Span(p).check_supported(book)
    return pd.DataFrame(_arrays(book, market, p)[0], index=book.index,
                        columns=pd.RangeIndex(1, N_SCENARIOS + 1, name="scenario"))


def _arrays(book: pd.DataFrame, market, p: SpanParams):
    """Per-contract risk arrays and per-contract deltas (underlying units) of a validated book."""
    from pmnb.book import _expiry_T, _option_inputs, position_greeks, value_positions

    n = len(book)
    A = np.zeros((n, N_SCENARIOS))
    delta = np.zeros(n)
    if n == 0:
        return A, delta, np.zeros(n, bool)
    T = _expiry_T(book, market)
    expired = np.nan_to_num(T, nan=1.0) < 0
    kind = book["kind"].astype(str).to_numpy()
    inverse = (book["settlement"].astype(str) == "inverse").to_numpy()
    und = book["underlying"].astype(str).to_numpy()
    c = book["contract_size"].to_numpy(dtype=float)
    price = value_positions(book, market)["price"].to_numpy(dtype=float)
    r = market.rate("USD")
    for u in pd.unique(und):
        for inv in (False, True):
            sel = (und == u) & (inverse == inv) & ~expired
            st = "inverse" if inv else "linear"
            opt = np.flatnonzero(sel & (kind == "option"))
            if len(opt):
                F, K, Tt, sigma = _option_inputs(book, market, opt, T)
                w = np.where(book["option_type"].astype(str).to_numpy()[opt] == "call", 1.0, -1.0)
                A[opt] = option_risk_arrays(F, K, Tt, sigma, w, c[opt], p, underlying=u, r=r,
                                            settlement=st)
            fut = np.flatnonzero(sel & np.isin(kind, ("future", "perpetual")))
            if len(fut):
                A[fut] = future_risk_arrays(price[fut], c[fut], p, underlying=u, settlement=st)
    size = book["size"].to_numpy(dtype=float)
    live = ~expired
    if live.any():
        d = position_greeks(book, market)["delta_coin"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            per = np.where(size != 0, d / size, 0.0)
        delta[live] = np.nan_to_num(per[live])
    return A, delta, expired


def intermonth_spreads(deltas: Any, tiers: Any, spread_delta_unit: float = 1.0) -> float:
    """Number of intermonth spreads formed from net deltas per expiry (tier).

    **Simplification** of CME's delta-based spread formation: with ``D_t`` the net delta of tier
    ``t``, ``n = min(Σ max(D_t, 0), Σ max(-D_t, 0)) / spread_delta_unit`` (pro rata, any pair of
    tiers, no priorities).

    Examples
    --------
    >>> intermonth_spreads([2.0, -1.5, 0.5], ["MAR", "JUN", "JUN"])   # MAR +2, JUN -1
    1.0
    """
    d = np.atleast_1d(np.asarray(deltas, dtype=float))
    t = np.broadcast_to(np.asarray(tiers, dtype=object), d.shape)
    if len(d) == 0:
        return 0.0
    codes, _ = pd.factorize(pd.Series(t).astype(str))
    net = np.bincount(codes, weights=d)
    return float(min(np.maximum(net, 0.0).sum(), np.maximum(-net, 0.0).sum()) / spread_delta_unit)


@dataclasses.dataclass(frozen=True)
class SpanResult:
    """Result of :func:`aggregate` (margin currency); per-underlying pieces keyed by underlying.

    ``scenario_loss[u]`` is the weighted summed loss per scenario (16), ``worst[u]`` the 1-based
    binding scenario, ``total = Σ_u max(scan_u + spread_u - credit_u, som_u)``.
    """

    scenario_loss: Mapping[str, np.ndarray]
    worst: Mapping[str, int]
    scanning: Mapping[str, float]
    n_spreads: Mapping[str, float]
    spread: Mapping[str, float]
    n_short: Mapping[str, float]
    short_option_min: Mapping[str, float]
    by_underlying: Mapping[str, float]
    scanning_risk: float
    spread_charge: float
    short_option_minimum: float
    total: float


def aggregate(risk_arrays: Any, quantities: Any, params: SpanParams | None = None, *,
              underlyings: Any = None, deltas: Any = None, tiers: Any = None,
              is_option: Any = None) -> SpanResult:
    """SPAN aggregation of user-supplied risk arrays with signed quantities.

    Parameters
    ----------
    risk_arrays : array_like, shape (n, 16)
        Loss (positive) of one long contract per scenario, CME's order (:func:`scenario_table`).
    quantities : array_like, shape (n,)
        Signed contracts (short < 0).
    params : SpanParams, optional
        Cover fraction (extremes' weight), spread and short-option charges.
    underlyings : array_like, optional
        Combined commodity of each row (default: one, ``"*"``): scanning risk and charges are per
        underlying, summed (no inter-commodity credit).
    deltas, tiers : array_like, optional
        Delta per contract and expiry label per row, for the intermonth spread charge (none
        without them).
    is_option : array_like of bool, optional
        Option rows, for the short-option minimum (none without it).

    Returns
    -------
    SpanResult
        ``scanning = max(0, max_j w_j Σ_i q_i a_ij)`` — the worst scenario of the sum;
        ``total = max(scanning + spread charge - 0, short-option minimum)`` per underlying.

    Examples
    --------
    A hedged pair: each leg alone loses 10 in some scenario, together at most 2.

    >>> a = np.zeros((2, 16)); a[0, :14] = [10, -10] * 7; a[1, :14] = [-8, 10] * 7
    >>> aggregate(a, [1, 1]).scanning_risk
    2.0
    """
    p = params if params is not None else SpanParams()
    _check_common(p)
    A = np.asarray(risk_arrays, dtype=float)
    if A.ndim == 1:
        A = A[None, :]
    if A.ndim != 2 or A.shape[1] != N_SCENARIOS:
        raise ValidationError(f"risk_arrays: got shape {A.shape}; accepted: (n_positions, 16)",
                              field="risk_arrays")
    n = A.shape[0]
    q = np.asarray(quantities, dtype=float)
    q = np.broadcast_to(q, (n,)) if q.ndim <= 1 and q.size in (1, n) else None
    if q is None:
        raise ValidationError(f"quantities: accepted: {n} signed quantities (one per risk array)",
                              field="quantities")
    if not (np.isfinite(A).all() and np.isfinite(q).all()):
        raise ValidationError("risk_arrays, quantities: accepted: finite numbers",
                              field="risk_arrays")
    und = (np.full(n, "*", dtype=object) if underlyings is None
           else np.broadcast_to(np.asarray(underlyings, dtype=object), (n,)).astype(str))
    d = None if deltas is None else np.broadcast_to(np.asarray(deltas, dtype=float), (n,))
    t = None if tiers is None else np.broadcast_to(np.asarray(tiers, dtype=object), (n,))
    opt = (np.zeros(n, bool) if is_option is None
           else np.broadcast_to(np.asarray(is_option, dtype=bool), (n,)))
    w = np.ones(N_SCENARIOS)
    w[14:] = p.extreme_cover_fraction
    out: dict[str, dict] = {k: {} for k in ("loss", "worst", "scan", "ns", "spread", "nshort",
                                            "som", "tot")}
    for u in pd.unique(und):
        m = und == u
        ukey = None if u == "*" else str(u)
        loss = w * (q[m] @ A[m]) + 0.0
        j = int(np.argmax(loss))
        scan = max(float(loss[j]), 0.0)
        ns = 0.0
        if d is not None and t is not None:
            ns = intermonth_spreads(q[m] * d[m], t[m], p.spread_delta_unit)
        spread = ns * _per("intermonth_spread_charge", p.intermonth_spread_charge, ukey)
        nshort = float(np.maximum(-q[m & opt], 0.0).sum())
        som = nshort * _per("short_option_minimum", p.short_option_minimum, ukey)
        credit = 0.0  # no inter-commodity credit
        for k, v in zip(out, (loss, j + 1, scan, ns, spread, nshort, som,
                              max(scan + spread - credit, som))):
            out[k][str(u)] = v
    tot = out["tot"]
    return SpanResult(out["loss"], out["worst"], out["scan"], out["ns"], out["spread"],
                      out["nshort"], out["som"], tot, float(sum(out["scan"].values())),
                      float(sum(out["spread"].values())), float(sum(out["som"].values())),
                      float(sum(tot.values())))


@register("span")
class Span(MarginModel):
    """SPAN-style margin (see the module docstring), for any venue's parameters.

    The report's ``scenarios`` has one row per scenario (1..16): the table's ``label``,
    ``price_scans``, ``vol_scans``, ``weight``, and ``loss`` (weighted summed loss, all
    underlyings) plus ``loss_<underlying>`` per underlying; ``worst_scenario`` is the label of the
    binding scenario (a dict underlying -> label when several). ``positions`` holds each
    position's contracts, per-contract delta, loss in its underlying's worst scenario, and the
    margin allocated by those losses (``initial``; ``maintenance`` = ratio × it).
    """

    name = "span"
    kinds = ("option", "future", "perpetual")
    params_type = SpanParams

    def _select(self, book: pd.DataFrame, collateral) -> tuple[str, np.ndarray, list[str]]:
        want, keep, cur = self.margin_currency(book, collateral, default="USD")
        notes = []
        if not keep.all():
            notes.append(f"positions margined in {sorted(set(cur[~keep].tolist()))} left out "
                         "(one report per currency)")
        return str(want), keep, notes

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        from pmnb.book import _asset_prices, value_positions

        p = self.params
        _check_common(p)
        if orders is not None and len(orders):
            raise ValidationError("orders: span does not margin open orders; pass orders=None",
                                  field="orders")
        currency, keep, notes = self._select(book, collateral)
        book = book[keep]
        n = len(book)
        notes.append("scan ranges and charges are user parameters (pmnb's defaults are "
                      "illustrative, not any venue's)")
        A, delta, expired = _arrays(book, market, p)
        if expired.any():
            notes.append(f"{int(expired.sum())} expired position(s) carry no scenario risk")
        size = book["size"].to_numpy(dtype=float)
        kind = book["kind"].astype(str).to_numpy()
        und = book["underlying"].astype(str).to_numpy()
        exp = pd.DatetimeIndex(book["expiry"])
        tiers = np.where(exp.isna(), "perpetual", exp.astype(str)).astype(object)
        live = ~expired
        res = aggregate(A[live], size[live], p, underlyings=und[live], deltas=delta[live],
                        tiers=tiers[live], is_option=(kind == "option")[live])
        if res.spread_charge > 0:
            notes.append("intermonth spread charge: delta-based spread formation simplified "
                         "(pro rata, one tier per expiry, one charge)")
        if any(res.short_option_min[u] > res.scanning[u] + res.spread[u] for u in res.scanning):
            notes.append("the short option minimum binds")
        total = res.total
        tab = scenario_table(p, str(und[live][0]) if live.any() else None)
        scen = tab[["label", "price_scans", "vol_scans", "weight"]].copy()
        loss = np.zeros(N_SCENARIOS)
        for u, v in res.scenario_loss.items():
            scen[f"loss_{u}"] = v
            loss = loss + v
        scen.insert(4, "loss", loss)
        labels = tab["label"].tolist()
        worst = {u: labels[j - 1] for u, j in res.worst.items()}
        worst_scenario = next(iter(worst.values())) if len(worst) == 1 else (worst or None)

        # per position: loss in its underlying's worst scenario; allocation by those losses
        pos_loss = np.zeros(n)
        alloc = np.zeros(n)
        for u, j in res.worst.items():
            m = (und == u) & live
            pos_loss[m] = size[m] * A[m, j - 1] * (1.0 if j <= 14 else p.extreme_cover_fraction)
            pl = np.maximum(pos_loss[m], 0.0)
            share = pl / pl.sum() if pl.sum() > 0 else np.full(m.sum(), 1.0 / max(m.sum(), 1))
            alloc[m] = share * res.by_underlying[u]
        value = value_positions(book, market) if n else pd.DataFrame(
            {"value": [], "value_currency": []}, index=book.index)
        val = np.where(value["value_currency"].astype(str).to_numpy() == currency,
                       value["value"].to_numpy(dtype=float), 0.0) if n else np.zeros(0)
        positions = pd.DataFrame({"contracts": size, "delta_per_contract": delta,
                                  "loss_worst": pos_loss + 0.0, "value": val + 0.0,
                                  "initial": alloc, "maintenance": p.maintenance_ratio * alloc},
                                 index=book.index)
        balance = wallet_balance(collateral, currency, notes, f"margin currency {currency}")
        usd = float(_asset_prices(np.array([currency]), market)[0][0])
        return MarginReport(self.name, p.rule_version, account, currency, float(total),
                            float(p.maintenance_ratio * total), balance + float(val.sum()), usd,
                            positions, scenarios=scen, worst_scenario=worst_scenario,
                            delta_total={u: float((size * delta)[(und == u) & live].sum())
                                         for u in pd.unique(und[live])},
                            notes=tuple(notes))
