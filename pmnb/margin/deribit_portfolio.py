r"""Deribit Portfolio Margin, segregated ("Extended Risk Matrix" model): inverse options, futures
and perpetuals of one settlement currency.

Deribit support, "Portfolio Margin",
https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin; parameters from the
OpenAPI example of ``private/pme/simulate``
(https://docs.deribit.com/api-reference/account-management/private-simulate.md); algorithm as
reconstructed and checked against Deribit's published response (vector PM1) in the project's
research notes (reference/margin.md §1.3). In coin of the margined currency (BTC for BTC)::

    standard table   moves s_k = -R + k R / B, k = 0..2B        (BTC: R = 16 %, B = 4: 9 moves)
                     × vol scenarios up / same / down            27 scenarios, move-major
    extended table   moves -66 %, -33 %, +50 %, +100 %, +200 %, +300 %, +400 %, +500 %, vol up
    options          full revaluation at (F (1 + s), σ') by the compiled kernel
                     (:func:`pmnb.scenarios.revalue_grid`, ``settlement="inverse"``: coin P&L)
    futures, perps   q (1 - 1/(1 + s)),  q = USD size / mark (coin);  in the extended table the
                     value at the boundary move (-R for down moves, +R for up moves)  [observed]
    aggregation      agg_j = Σ_i pnl_ij;  gains count pnl_offset × agg_j (capped at
                     max_offsetable_pnl USD)                                          [verified]
    worst_case       -min_j counted_j, rounded to 9 decimals                          [verified]
    roll_shock       Σ_futures |q| × max(min_annualised_move, annualised_move_risk × T)
    risk_matrix      worst_case + roll_shock + delta_shock
    initial          round(risk_matrix + mmp_margin + open_orders_margin, 9)          [verified]
    maintenance      mm_factor × risk_matrix (0.8)                                    [verified]

Equity is as in ``deribit.standard``: the coin balance + the value of the options (long positive,
short negative) + the unrealised P&L of futures and perpetuals at mark; ``delta_total`` is
Deribit's DeltaTotal (:func:`pmnb.book.position_greeks`).

**Approximations** (Deribit does not publish these pieces; each is a parameter, and every report
that uses one says so in its ``notes``):

* vol shocks, ``vol_shock_rule="multiplicative"`` (default; the public formula of the
  Deribit-style clones Paradex and Derive, with Deribit's parameter names)::

      f(DTE) = (30 / max(DTE, 1 day)) ** p,  p = short_term_vega_power if DTE < 30 else long_term
      σ_up   = σ + max(σ, min_volatility_for_shock_up) × volatility_range_up × f
      σ_down = max(σ × (1 - volatility_range_down × f), 0)

  ``"legacy"``: the legacy Deribit PM page's absolute change ``±0.38 × (30/DTE)^0.30``.
* extended table: each aggregated extended P&L counts the fraction
  ``extended_table_factor × price_range / |move|`` (Paradex's published weights), and only the
  loss beyond ``extended_dampener`` (USD, converted at the index):
  ``counted = min(0, fraction × agg + dampener / index)``. This reproduces PM1's all-zero
  extended vector; the rule itself is unverified.
* roll shock above its floor: ``annualised_move_risk × T`` (years). Only the floor
  ``min_annualised_move`` is exercised by the published vectors (perpetual, 10.9-day future).
* delta shock: with ``D = |delta_total|`` (coin) and ``D0 = delta_total_liq_shock_threshold /
  index``, ``excess = max(D - D0, 0)``, ``delta_shock = excess × min(m_inc × excess,
  max_delta_shock)``; zero below the threshold (as in PM1).
* ``correlation_contingency`` (X:PM only) is not modelled; open orders are not margined (pass
  Deribit's ``open_orders_margin`` and ``mmp_margin`` as parameters to reproduce its totals).

Parameters are per currency (:class:`PMCurrencyParams`); pmnb ships BTC's. Other currencies'
values differ: read them from ``private/pme/simulate`` (``model_params``) and pass them with
``pmnb.margin.get("deribit.portfolio", currencies={**DEFAULT_CURRENCIES, "ETH": ...})``.

Examples
--------
>>> import pmnb.margin
>>> from pmnb.margin.deribit_portfolio import price_moves, future_scenario_pnl, BTC_PM
>>> price_moves(BTC_PM).round(2).tolist()
[-0.16, -0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16]
>>> pnl = future_scenario_pnl([0.314538364], BTC_PM)     # PM1: the perpetual, coin
>>> float(pnl[0, 0]), float(pnl[0, 27])                   # -16 % vol up; extended -66 %
(-0.05991206933333334, -0.05991206933333334)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError
from pmnb.margin import (MarginModel, MarginParams, MarginReport, distinct_text, register,
                         text_values, wallet_balance)
from pmnb.margin.prepared import MarginState, PreparedMargin
from pmnb.margin.deribit_standard import _choice

__all__ = ["BTC_PM", "DEFAULT_CURRENCIES", "DeribitPortfolio", "DeribitPortfolioParams",
           "PMCurrencyParams", "RiskMatrix", "count_scenarios", "delta_shock", "extended_weights",
           "future_scenario_pnl", "option_scenario_pnl", "price_moves", "risk_matrix",
           "roll_shock", "scenario_labels", "shocked_vols"]

_PME_SOURCE = ("https://docs.deribit.com/api-reference/account-management/private-simulate.md "
               "(model_params of the private/pme/simulate example); "
               "https://support.deribit.com/hc/en-us/articles/25944756247837-Portfolio-Margin")
_VOL_NAMES = ("up", "same", "down")
_YEAR_DAYS = 365.0


@dataclasses.dataclass(frozen=True)
class PMCurrencyParams:
    """Risk-matrix parameters of one currency (Deribit's ``currency`` and ``currency_pair``
    groups of ``model_params``). Money amounts (dampener, thresholds, caps) are USD.

    Attributes
    ----------
    price_range, buckets_count
        Largest move of the standard table and buckets per side (BTC: 0.16, 4).
    volatility_range_up, volatility_range_down, short_term_vega_power, long_term_vega_power,
    min_volatility_for_shock_up
        Vol-shock parameters (see the module docstring for how pmnb uses them).
    extended_moves, extended_table_factor, extended_dampener
        The extended table's moves, the factor on its counted fraction, the dampener (USD).
    pnl_offset, max_offsetable_pnl
        Fraction of an aggregated gain that counts, and its cap (USD; ``None``: no cap).
    min_annualised_move, annualised_move_risk
        Roll shock floor and slope (per coin of futures).
    delta_total_liq_shock_threshold, m_inc, max_delta_shock
        Delta shock parameters (threshold in USD of net delta).
    """

    rule_version: str = "deribit-pme-2024"
    source: str = _PME_SOURCE
    price_range: float = 0.16
    buckets_count: int = 4
    volatility_range_up: float = 0.5
    volatility_range_down: float = 0.25
    short_term_vega_power: float = 0.30
    long_term_vega_power: float = 0.13
    min_volatility_for_shock_up: float = 0.5
    extended_moves: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    extended_table_factor: float = 1.0
    extended_dampener: float = 100_000.0
    pnl_offset: float = 0.0
    max_offsetable_pnl: float | None = 0.0
    min_annualised_move: float = 0.01
    annualised_move_risk: float = 0.075
    delta_total_liq_shock_threshold: float = 20_000_000.0
    m_inc: float = 0.00005
    max_delta_shock: float = 0.1


#: BTC (btc_usd / btc_btc), the private/pme/simulate OpenAPI example.
BTC_PM = PMCurrencyParams()
DEFAULT_CURRENCIES: Mapping[str, PMCurrencyParams] = {"BTC": BTC_PM}


@dataclasses.dataclass(frozen=True)
class DeribitPortfolioParams(MarginParams):
    """Deribit portfolio-margin parameters (override any field; see the module docstring).

    Attributes
    ----------
    currencies : mapping
        Currency -> :class:`PMCurrencyParams`.
    mm_factor : float
        Maintenance = ``mm_factor`` × risk-matrix margin (Deribit's ``general.mm_factor``, 0.8).
    currency : str or None
        The margined currency (segregated PM: one report per currency); required when the
        account holds positions of several.
    mmp_margin, open_orders_margin : float
        Coin add-ons to the initial margin that pmnb does not compute (Deribit reports them in
        the account summary); default 0.
    vol_shock_rule : {"multiplicative", "legacy"}
    extended_fraction : {"range_over_move", "one"}
        Fraction of the extended table's P&L that counts: ``price_range/|move|`` or all of it
        (both × ``extended_table_factor``).
    delta_shock_rule : {"excess", "none"}
    roll_shock_rule : {"linear", "floor"}
        Above the floor: ``annualised_move_risk × T``, or the floor only.
    """

    rule_version: str = "deribit-pme-2024"
    source: str = _PME_SOURCE
    currencies: Any = dataclasses.field(default_factory=lambda: dict(DEFAULT_CURRENCIES))
    mm_factor: float = 0.8
    currency: str | None = None
    mmp_margin: float = 0.0
    open_orders_margin: float = 0.0
    vol_shock_rule: str = "multiplicative"
    extended_fraction: str = "range_over_move"
    delta_shock_rule: str = "excess"
    roll_shock_rule: str = "linear"


# --- the scenario grid ------------------------------------------------------------------------
def price_moves(cp: PMCurrencyParams = BTC_PM) -> np.ndarray:
    """The standard table's relative moves ``-R + k R/B``, ``k = 0..2B``.

    Examples
    --------
    >>> price_moves(PMCurrencyParams(price_range=0.1, buckets_count=2)).tolist()
    [-0.1, -0.05, 0.0, 0.05, 0.1]
    """
    b = int(cp.buckets_count)
    if b < 1 or not (0 < cp.price_range < 1):
        raise ValidationError(f"price_range, buckets_count: got {cp.price_range}, {b}; accepted: "
                              "0 < price_range < 1, buckets_count >= 1", field="buckets_count")
    k = np.arange(2 * b + 1)
    s = -cp.price_range + k * (cp.price_range / b)
    s[b] = 0.0
    return s


def scenario_labels(cp: PMCurrencyParams = BTC_PM) -> list[str]:
    """Names of the scenarios in the model's order: the standard table move-major (vol up, same,
    down), then the extended table (vol up).

    Examples
    --------
    >>> labels = scenario_labels()
    >>> len(labels), labels[0], labels[26], labels[27], labels[-1]
    (35, '-16% vol up', '+16% vol down', 'ext -66% vol up', 'ext +500% vol up')
    """
    std = [f"{s:+.0%} vol {v}".replace("+0%", "0%") for s in price_moves(cp) for v in _VOL_NAMES]
    return std + [f"ext {s:+.0%} vol up" for s in cp.extended_moves]


def _layout(cp: PMCurrencyParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per scenario: spot move, vol column (0 up, 1 same, 2 down), extended flag."""
    s = price_moves(cp)
    ext = np.asarray(cp.extended_moves, dtype=float)
    moves = np.concatenate([np.repeat(s, 3), ext])
    vol = np.concatenate([np.tile([0, 1, 2], len(s)), np.zeros(len(ext), dtype=int)])
    is_ext = np.concatenate([np.zeros(3 * len(s), bool), np.ones(len(ext), bool)])
    return moves, vol, is_ext


def shocked_vols(sigma: Any, T: Any, cp: PMCurrencyParams = BTC_PM, *,
                 rule: str = "multiplicative") -> np.ndarray:
    """Vols of the three vol scenarios (up, same, down), shape ``(n, 3)``.

    **Approximation** (Deribit does not publish its vol-shock formula; see the module docstring):
    ``"multiplicative"`` is Paradex's/Derive's public form with Deribit's parameters,
    ``"legacy"`` the legacy Deribit page's absolute ``±0.38 (30/DTE)^0.3``.

    Parameters
    ----------
    sigma : array_like
        Implied vols (annualised decimals).
    T : array_like
        Years to expiry; days to expiry ``DTE = 365 T``, floored at 1 day.

    Examples
    --------
    Derive's worked example (IV 60 %, 14 days): shock factor 1.628 (1.62845).

    >>> round(float(shocked_vols(0.6, 14 / 365)[0, 0] / 0.6), 5)
    1.62845
    >>> round(float(shocked_vols(0.2, 15 / 365, rule="legacy")[0, 0] - 0.2), 4)  # legacy: 46.78%
    0.4678
    """
    _choice("vol_shock_rule", rule, ("multiplicative", "legacy"))
    sig, t = np.broadcast_arrays(np.atleast_1d(np.asarray(sigma, dtype=float)),
                                 np.atleast_1d(np.asarray(T, dtype=float)))
    dte = np.maximum(t * _YEAR_DAYS, 1.0)
    if rule == "legacy":
        d = 0.38 * (30.0 / dte) ** 0.30
        return np.stack([sig + d, sig, np.maximum(sig - d, 0.0)], axis=1)
    p = np.where(dte < 30.0, cp.short_term_vega_power, cp.long_term_vega_power)
    f = (30.0 / dte) ** p
    up = sig + np.maximum(sig, cp.min_volatility_for_shock_up) * cp.volatility_range_up * f
    down = np.maximum(sig * (1.0 - cp.volatility_range_down * f), 0.0)
    return np.stack([up, sig, down], axis=1)


def extended_weights(cp: PMCurrencyParams = BTC_PM, rule: str = "range_over_move") -> np.ndarray:
    """Fraction of each extended scenario's P&L that counts (**approximation**, see the module
    docstring): ``extended_table_factor × price_range / |move|`` or ``extended_table_factor``.

    Examples
    --------
    Paradex's published weights (24 %, 48 %, 32 %, 16 %, 8 %, 5.33 %, 4 %, 3.2 %):

    >>> (100 * extended_weights()).round(2).tolist()
    [24.24, 48.48, 32.0, 16.0, 8.0, 5.33, 4.0, 3.2]
    """
    _choice("extended_fraction", rule, ("range_over_move", "one"))
    ext = np.abs(np.asarray(cp.extended_moves, dtype=float))
    if rule == "one":
        return np.full(len(ext), float(cp.extended_table_factor))
    return cp.extended_table_factor * cp.price_range / ext


def future_scenario_pnl(q_coin: Any, cp: PMCurrencyParams = BTC_PM) -> np.ndarray:
    """Coin P&L of inverse futures/perpetuals of ``q_coin`` coins (short < 0) in every scenario.

    ``q (1 - 1/(1 + s))``, the same in the three vol columns; an extended scenario takes the
    value of the boundary move of its side (as in Deribit's published responses).

    Examples
    --------
    >>> future_scenario_pnl([-0.001187534])[0, :3].round(15).tolist()   # PM1, BTC-28JUN24 -16 %
    [0.000226196952381, 0.000226196952381, 0.000226196952381]
    """
    q = np.atleast_1d(np.asarray(q_coin, dtype=float))
    moves, _, is_ext = _layout(cp)
    s = np.where(is_ext, np.sign(moves) * cp.price_range, moves)
    return q[:, None] * (1.0 - 1.0 / (1.0 + s))[None, :]


def option_scenario_pnl(F: Any, K: Any, T: Any, sigma: Any, option_type: Any, qty: Any,
                        cp: PMCurrencyParams = BTC_PM, *, r: float = 0.0,
                        vol_shock_rule: str = "multiplicative",
                        n_threads: int | None = None) -> np.ndarray:
    """Coin P&L of inverse options in every scenario, shape ``(n, 35)`` for BTC.

    Full revaluation at the shocked forward ``F (1 + s)`` and the scenario's vol
    (:func:`shocked_vols`) by :func:`pmnb.scenarios.revalue_grid` (``settlement="inverse"``): each
    entry is ``qty × (price(F', K, T, σ') - price(F, K, T, σ))`` in coin.

    Examples
    --------
    >>> pnl = option_scenario_pnl(100_000.0, 100_000.0, 30 / 365, 0.5, "put", -1.0)
    >>> pnl.shape, float(pnl[0, 13])          # scenario 13: move 0, vol same
    ((1, 35), 0.0)
    """
    from pmnb.scenarios import revalue_grid

    moves, vol, _ = _layout(cp)
    Tn = np.atleast_1d(np.asarray(T, dtype=float))
    sv = shocked_vols(sigma, Tn, cp, rule=vol_shock_rule)
    return revalue_grid(F, K, Tn, sigma, r, option_type=option_type, qty=qty,
                        settlement="inverse", spot_shocks=moves, vol_shocks=0.0,
                        sigma_matrix=sv[:, vol], n_threads=n_threads)


def count_scenarios(agg: Any, cp: PMCurrencyParams = BTC_PM, index: float = 1.0, *,
                    extended_fraction: str = "range_over_move") -> np.ndarray:
    """The counted value of each aggregated scenario P&L (coin).

    Standard table: losses in full, gains × ``pnl_offset`` (at most ``max_offsetable_pnl`` USD).
    Extended table (**approximation**): ``min(0, fraction × agg + extended_dampener / index)``.

    Examples
    --------
    A loss counts in full, a gain not at all (BTC's ``pnl_offset`` is 0); -3 and -30 coin at
    -66 % count 24.24 % beyond a dampener of 1 coin (100,000 USD at 100,000):

    >>> agg = np.r_[-1.0, 2.0, np.zeros(25), -3.0, -30.0, np.zeros(6)]
    >>> count_scenarios(agg, index=100_000.0)[[0, 1, 27, 28]].round(4).tolist()
    [-1.0, 0.0, 0.0, -13.5455]
    """
    a = np.asarray(agg, dtype=float)
    n_std = 3 * (2 * int(cp.buckets_count) + 1)
    std, ext = a[:n_std], a[n_std:]
    gain = cp.pnl_offset * np.maximum(std, 0.0)
    if cp.max_offsetable_pnl is not None:
        gain = np.minimum(gain, cp.max_offsetable_pnl / index)
    out_std = np.where(std < 0.0, std, gain)
    w = extended_weights(cp, extended_fraction)
    out_ext = np.minimum(w * ext + cp.extended_dampener / index, 0.0)
    return np.concatenate([out_std, out_ext])


def roll_shock(q_coin: Any, T: Any, cp: PMCurrencyParams = BTC_PM, *,
               rule: str = "linear") -> float:
    """Roll shock of futures/perpetuals (coin): ``Σ |q| max(min_annualised_move, slope)``.

    The slope above the floor is an **approximation** (``annualised_move_risk × T``; the floor is
    verified). A perpetual has ``T = 0``.

    Examples
    --------
    >>> roll_shock([0.314538364, -0.001187534], [0.0, 10.9 / 365])    # PM1
    0.00315725898
    """
    _choice("roll_shock_rule", rule, ("linear", "floor"))
    q = np.abs(np.atleast_1d(np.asarray(q_coin, dtype=float)))
    t = np.broadcast_to(np.asarray(T, dtype=float), q.shape)
    rate = np.full(q.shape, cp.min_annualised_move)
    if rule == "linear":
        rate = np.maximum(rate, cp.annualised_move_risk * np.maximum(t, 0.0))
    return float(q @ rate)


def delta_shock(delta_total: float, index: float, cp: PMCurrencyParams = BTC_PM, *,
                rule: str = "excess") -> float:
    """Delta shock (coin; **approximation**, see the module docstring); 0 below the threshold.

    Examples
    --------
    >>> delta_shock(0.31, 65_666.19)
    0.0
    >>> delta_shock(1_300.0, 20_000.0)    # 300 coin above 20M USD: 300 × min(0.015, 0.1)
    4.5
    """
    _choice("delta_shock_rule", rule, ("excess", "none"))
    if rule == "none":
        return 0.0
    excess = max(abs(float(delta_total)) - cp.delta_total_liq_shock_threshold / index, 0.0)
    return excess * min(cp.m_inc * excess, cp.max_delta_shock)


@dataclasses.dataclass(frozen=True)
class RiskMatrix:
    """Result of :func:`risk_matrix` (coin): aggregated and counted scenario vectors, the worst
    one's position, and the margin components."""

    aggregated: np.ndarray
    counted: np.ndarray
    worst_index: int
    worst_case: float
    roll_shock: float
    delta_shock: float
    risk_matrix_margin: float


def risk_matrix(pnl: Any, cp: PMCurrencyParams = BTC_PM, *, index: float, fut_q_coin: Any = (),
                fut_T: Any = (), delta_total: float = 0.0,
                extended_fraction: str = "range_over_move", delta_shock_rule: str = "excess",
                roll_shock_rule: str = "linear") -> RiskMatrix:
    """Risk-matrix margin of a scenario P&L matrix (positions × scenarios, coin).

    ``worst_case = round(-min(counted), 9)``; ``risk_matrix_margin = worst_case + roll_shock +
    delta_shock``.

    Examples
    --------
    PM1 (Deribit's published response): worst case 0.059685872, risk matrix 0.06284313098.

    >>> q = [0.314538364, -0.001187534]
    >>> rm = risk_matrix(future_scenario_pnl(q), index=65_666.19, fut_q_coin=q,
    ...                  fut_T=[0.0, 10.9 / 365])
    >>> rm.worst_case, round(rm.risk_matrix_margin, 12), rm.worst_index
    (0.059685872, 0.06284313098, 0)
    """
    p = np.asarray(pnl, dtype=float)
    agg = p.sum(axis=0) if p.ndim == 2 else p
    counted = count_scenarios(agg, cp, index, extended_fraction=extended_fraction)
    j = int(np.argmin(counted))
    worst = round(max(-float(counted[j]), 0.0), 9)
    roll = roll_shock(fut_q_coin, fut_T, cp, rule=roll_shock_rule) if len(fut_q_coin) else 0.0
    ds = delta_shock(delta_total, index, cp, rule=delta_shock_rule)
    return RiskMatrix(agg, counted, j, worst, roll, ds, worst + roll + ds)


# --- the model --------------------------------------------------------------------------------
def _totals(p, cp, rm, n_std: int, labels, fut_T, currency: str,
            notes: list[str]) -> tuple[float, float]:
    """Initial and maintenance margin from a risk matrix (``round(risk_matrix + mmp_margin +
    open_orders_margin, 9)`` and ``mm_factor × risk_matrix``), appending the notes of every
    approximation that took part (shared by the compiled and the reference paths)."""
    if rm.worst_index >= n_std:
        notes.append(f"the extended table binds ({labels[rm.worst_index]}): its fraction "
                     f"({p.extended_fraction!r}) and dampener rule are approximations")
    elif (rm.counted[n_std:] < 0).any():
        notes.append("extended-table losses counted with an approximated fraction and "
                     "dampener (not the binding scenario)")
    if len(fut_T) and p.roll_shock_rule == "linear" and (
            cp.annualised_move_risk * np.asarray(fut_T) > cp.min_annualised_move).any():
        notes.append("roll shock above its floor: annualised_move_risk × T is an "
                     "approximation (only the floor is verified)")
    if rm.delta_shock > 0:
        notes.append("delta shock: the 'excess' formula is an approximation (Deribit's is "
                     "not published)")
    if cp.pnl_offset > 0 and cp.max_offsetable_pnl is not None:
        notes.append("max_offsetable_pnl read as a USD cap on the counted gains "
                     "(unverified)")
    rmm = rm.risk_matrix_margin
    if p.mmp_margin or p.open_orders_margin:
        notes.append(f"initial includes user-supplied mmp_margin {p.mmp_margin} and "
                     f"open_orders_margin {p.open_orders_margin} {currency}")
    return round(rmm + p.mmp_margin + p.open_orders_margin, 9), p.mm_factor * rmm


@register("deribit.portfolio")
class DeribitPortfolio(MarginModel):
    """Deribit segregated portfolio margin (see the module docstring).

    The report's ``scenarios`` has one row per scenario (:func:`scenario_labels`): ``table``
    (standard/extended), ``spot_shock``, ``vol_scenario`` (up/same/down), ``pnl`` (aggregated coin
    P&L), ``weight`` (counted fraction of an extended scenario) and ``counted`` (after offset,
    fraction and dampener); ``worst_scenario`` is the label of the binding row. ``positions``
    holds each position's coin size, mark, value, P&L in the binding scenario (``pnl_worst``),
    roll shock, and the risk-matrix margin allocated by the positions' losses in that scenario
    (``initial``; ``maintenance`` = mm_factor × it). Without user add-ons the allocations sum to
    the initial margin up to its 9-decimal rounding.
    """

    name = "deribit.portfolio"
    margin_modes = ("portfolio",)
    kinds = ("option", "future", "perpetual")
    params_type = DeribitPortfolioParams

    def currency_params(self, currency: str) -> PMCurrencyParams:
        """The risk-matrix parameters of ``currency``; raises when pmnb has none.

        Examples
        --------
        >>> DeribitPortfolio().currency_params("BTC").price_range
        0.16
        """
        table = self.params.currencies
        if currency not in table:
            raise ValidationError(
                f"deribit.portfolio: no portfolio-margin parameters for {currency!r} (each "
                "currency has its own; pmnb ships only those it has a source for); pass the "
                "venue's model_params from private/pme/simulate: pmnb.margin.get("
                "'deribit.portfolio', currencies={**DEFAULT_CURRENCIES, "
                f"{currency!r}: PMCurrencyParams(...)}}); available: {sorted(table)}",
                field="currencies")
        return table[currency]

    def _check_rules(self) -> None:
        p = self.params
        _choice("vol_shock_rule", p.vol_shock_rule, ("multiplicative", "legacy"))
        _choice("extended_fraction", p.extended_fraction, ("range_over_move", "one"))
        _choice("delta_shock_rule", p.delta_shock_rule, ("excess", "none"))
        _choice("roll_shock_rule", p.roll_shock_rule, ("linear", "floor"))

    def _select(self, book: pd.DataFrame, collateral) -> tuple[str, np.ndarray, list[str]]:
        want, keep, cur = self.margin_currency(book, collateral)
        inverse = text_values(book["settlement"]) == "inverse"
        if (keep & ~inverse).any():
            i = int(np.flatnonzero(keep & ~inverse)[0])
            raise ValidationError(
                f"deribit.portfolio: position {book['position_id'].iloc[i]!r} (row "
                f"{book.index[i]!r}) is linear ({want}-settled); pmnb's portfolio margin covers "
                "inverse (coin-settled) options, futures and perpetuals; use deribit.standard",
                field="settlement", row=book.index[i])
        notes = []
        if not keep.all():
            notes.append(f"positions margined in {sorted(set(cur[~keep].tolist()))} left out "
                         "(segregated: one report per currency)")
        return str(want), keep, notes

    def _matrix(self, book, market, cp, T, expired, price):
        from pmnb.book import _option_inputs

        n = len(book)
        kind = book["kind"].astype(str).to_numpy()
        q = (book["size"] * book["contract_size"]).to_numpy(dtype=float)
        pnl = np.zeros((n, 3 * (2 * int(cp.buckets_count) + 1) + len(cp.extended_moves)))
        opt = np.flatnonzero((kind == "option") & ~expired)
        fut = np.flatnonzero(np.isin(kind, ("future", "perpetual")) & ~expired)
        qcoin = np.zeros(n)
        if len(opt):
            F, K, Tt, sigma = _option_inputs(book, market, opt, T)
            w = np.where(book["option_type"].to_numpy()[opt] == "call", 1.0, -1.0)
            pnl[opt] = option_scenario_pnl(F, K, Tt, sigma, w, q[opt], cp, r=market.rate("USD"),
                                           vol_shock_rule=self.params.vol_shock_rule)
            qcoin[opt] = q[opt]
        fut_T = np.zeros(len(fut))
        if len(fut):
            qcoin[fut] = q[fut] / price[fut]
            pnl[fut] = future_scenario_pnl(qcoin[fut], cp)
            fut_T = np.nan_to_num(np.maximum(T[fut], 0.0), nan=0.0)
        return pnl, qcoin, fut, fut_T, bool(len(opt))

    def scenario_pnl(self, book: pd.DataFrame, market) -> pd.DataFrame:
        """Coin P&L of every position (rows, indexed like the book) in every scenario (columns,
        :func:`scenario_labels`), before aggregation; the margined currency's positions only.

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5}, marks={"deribit:BTC-PERPETUAL": 1e5})
        >>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...                      "symbol": ["BTC-PERPETUAL"], "size": [10_000.0],
        ...                      "entry_price": [1e5]})
        >>> round(float(DeribitPortfolio().scenario_pnl(book, m).loc[0, "+16% vol up"]), 6)
        0.137931
        """
        from pmnb.book import _expiry_T, validate_positions, value_positions

        self._check_rules()
        book = validate_positions(book)
        self.check_supported(book)
        currency, keep, _ = self._select(book, None)
        cp = self.currency_params(currency)
        book = book[keep]
        T = _expiry_T(book, market)
        expired = np.nan_to_num(T, nan=1.0) < 0
        price = value_positions(book, market)["price"].to_numpy(dtype=float) if len(book) else (
            np.zeros(0))
        pnl = self._matrix(book, market, cp, T, expired, price)[0]
        return pd.DataFrame(pnl + 0.0, index=book.index,
                            columns=pd.Index(scenario_labels(cp), name="scenario"))

    def _start(self, book, collateral, orders):
        """Checks and notes before any computation: ``(currency, cp, book, notes)``."""
        self._check_rules()
        if orders is not None and len(orders):
            raise ValidationError(
                "orders: deribit.portfolio does not margin open orders (Deribit's rule for them "
                "is not documented in the sources); pass Deribit's own open_orders_margin as a "
                "parameter and orders=None", field="orders")
        currency, keep, notes = self._select(book, collateral)
        cp = self.currency_params(currency)
        book = book if keep.all() else book[keep]
        venues = sorted(set(distinct_text(book["venue"])) - {"deribit"})
        if venues:
            notes.append(f"positions of {venues} margined with Deribit's rules")
        return currency, cp, book, notes

    def prepare(self, book, market, *, account=None, collateral=None, orders=None):
        """The account prepared for repeated evaluation (see :mod:`pmnb.margin.prepared`):
        positions aggregated per instrument, forwards, vols, vol shocks and marks computed once;
        each evaluation prices the distinct options in all scenarios in one compiled pass
        (:func:`pmnb._core._margin.pm`) and aggregates them with the net sizes.

        ``book`` is a validated book (:func:`pmnb.margin.prepare` validates a raw one).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> from pmnb.book import validate_positions
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> b = validate_positions(pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...     "symbol": ["BTC-27MAR26-90000-P"], "size": [-1.0]}))
        >>> prep = DeribitPortfolio().prepare(b, m)
        >>> prep.compiled, round(prep.evaluate().initial, 6)
        (True, 0.131283)
        """
        from pmnb.margin.prepared import PreparedMargin

        currency, cp, sub, notes = self._start(book, collateral, orders)
        prep = _PreparedPortfolio.build(self, sub, market, account, collateral, currency, cp,
                                        notes)
        if prep is None:
            return PreparedMargin(self, book, market, account=account, collateral=collateral,
                                  orders=orders, compute_fn=self._compute_reference)
        prep.account_book = book
        return prep

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        """Margin report of a validated book (the compiled per-instrument path; a book it does
        not cover goes through :meth:`_compute_reference`).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> from pmnb.book import validate_positions
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> b = validate_positions(pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...     "symbol": ["BTC-27MAR26-90000-P"], "size": [-1.0]}))
        >>> r = DeribitPortfolio().compute(b, m)
        >>> r.worst_scenario, r.initial == round(-float(r.scenarios["counted"].min()), 9)
        ('-16% vol up', True)
        """
        return self.prepare(book, market, account=account, collateral=collateral,
                            orders=orders).compute()

    def _compute_reference(self, book, market, *, account=None, collateral=None, orders=None):
        """The row-by-row computation (pandas valuation, the public scenario kernel on every
        position): the validated reference the compiled path is tested against."""
        from pmnb.book import _expiry_T, position_greeks, value_positions

        p = self.params
        currency, cp, book, notes = self._start(book, collateral, orders)
        n = len(book)
        index = market.spot(currency)
        T = _expiry_T(book, market)
        expired = np.nan_to_num(T, nan=1.0) < 0
        val = value_positions(book, market) if n else pd.DataFrame(
            {"price": [], "value": []}, index=book.index)
        price = val["price"].to_numpy(dtype=float)
        value = val["value"].to_numpy(dtype=float)
        if expired.any():
            notes.append(f"{int(expired.sum())} expired position(s) carry no scenario risk "
                         "(settled at settlement_price)")

        labels = scenario_labels(cp)
        pnl, qcoin, fut, fut_T, has_opt = self._matrix(book, market, cp, T, expired, price)
        if has_opt:
            notes.append(f"vol shocks: {p.vol_shock_rule!r} rule, an approximation (Deribit "
                         "does not publish its vol-shock formula)")
        delta: dict[str, float] = {}
        dtot = 0.0
        if n:
            dtot = float(position_greeks(book, market)["delta_coin"].to_numpy().sum())
            delta[currency] = dtot
        rm = risk_matrix(pnl, cp, index=index, fut_q_coin=qcoin[fut], fut_T=fut_T,
                         delta_total=dtot, extended_fraction=p.extended_fraction,
                         delta_shock_rule=p.delta_shock_rule, roll_shock_rule=p.roll_shock_rule)
        n_std = 3 * (2 * cp.buckets_count + 1)
        initial, maintenance = _totals(p, cp, rm, n_std, labels, fut_T if len(fut) else (),
                                       currency, notes)

        # per-position: P&L in the binding scenario; the risk-matrix margin allocated by losses
        worst_pnl = pnl[:, rm.worst_index] if n else np.zeros(0)
        loss = np.maximum(-worst_pnl, 0.0)
        roll_i = np.zeros(n)
        if len(fut):
            rate = np.full(len(fut), cp.min_annualised_move)
            if p.roll_shock_rule == "linear":
                rate = np.maximum(rate, cp.annualised_move_risk * fut_T)
            roll_i[fut] = np.abs(qcoin[fut]) * rate
        share = loss / loss.sum() if loss.sum() > 0 else np.zeros(n)
        alloc = share * (rm.worst_case + rm.delta_shock) + roll_i
        positions = pd.DataFrame({"size_coin": qcoin, "mark": price, "value": value + 0.0,
                                  "pnl_worst": worst_pnl, "roll_shock": roll_i,
                                  "initial": alloc, "maintenance": p.mm_factor * alloc},
                                 index=book.index)
        moves, vol, is_ext = _layout(cp)
        wts = np.ones(len(labels))
        wts[n_std:] = extended_weights(cp, p.extended_fraction)
        scen = pd.DataFrame({
            "table": np.where(is_ext, "extended", "standard"), "spot_shock": moves,
            "vol_scenario": np.array(_VOL_NAMES)[vol], "pnl": rm.aggregated + 0.0,
            "weight": wts, "counted": rm.counted + 0.0}, index=pd.Index(labels, name="scenario"))

        balance = wallet_balance(collateral, currency, notes, f"segregated {currency} PM")
        equity = balance + float(value.sum())
        return MarginReport(self.name, p.rule_version, account, currency, float(initial),
                            float(maintenance), equity, float(index), positions, scenarios=scen,
                            worst_scenario=labels[rm.worst_index], delta_total=delta,
                            notes=tuple(notes))


# --- the compiled path ----------------------------------------------------------------------
class _PreparedPortfolio(PreparedMargin):
    """Deribit portfolio margin on per-instrument arrays (see :meth:`DeribitPortfolio.prepare`).

    Options are grouped per symbol (net size), their forward, surface vol and the three vol
    scenarios computed once. At a move ``s`` (every forward, mark and the index scaled by
    ``f = 1 + s``, vols sticky-strike) one compiled pass prices every distinct option in the base
    and in every scenario and returns the aggregated scenario P&L ``sum_i net_i (V_ij - V0_i)``
    (:func:`pmnb._core._margin.pm`); futures add ``(sum q / mark) / f`` coin times their
    scenario shape (:func:`future_scenario_pnl`)."""

    compiled = True

    @classmethod
    def build(cls, model, book, market, account, collateral, currency, cp, notes):
        """The prepared account, or None when the book needs the generic path."""
        from pmnb._core import _margin
        from pmnb.book import _bad, _expiry_T, value_positions
        from pmnb.margin.prepared import option_table, shock_factor, symbol_groups

        n = len(book)
        if n == 0:
            return None
        rep, inv, consistent = symbol_groups(book)
        if not consistent:
            return None
        sub = book.iloc[rep]
        und_g = sub["underlying"].astype(str).to_numpy()
        if not shock_factor(set(und_g) | {currency}):
            return None
        p = model.params
        self = cls(model, book, market, account=account, collateral=collateral)
        self.currency, self.cp = currency, cp
        self.rate = market.rate("USD")
        self.index0 = market.spot(currency)
        kind_g = sub["kind"].astype(str).to_numpy()
        T_g = _expiry_T(sub, market)
        expired_g = np.nan_to_num(T_g, nan=1.0) < 0
        G = len(rep)
        q = book["size"].to_numpy(dtype=float) * book["contract_size"].to_numpy(dtype=float)
        self.q, self.inv, self.G, self.n = q, inv, G, n
        self.exp_rows = np.flatnonzero(expired_g[inv])
        self.exp_price = self.exp_value = np.zeros(0)
        if len(self.exp_rows):
            ve = value_positions(book.iloc[self.exp_rows], market)
            self.exp_price = ve["price"].to_numpy(dtype=float)
            self.exp_value = ve["value"].to_numpy(dtype=float)
            notes.append(f"{len(self.exp_rows)} expired position(s) carry no scenario risk "
                         "(settled at settlement_price)")
        moves, vol, is_ext = _layout(cp)
        self.moves = np.ascontiguousarray(moves, dtype=float)
        self.vcol = np.ascontiguousarray(vol, dtype=np.intc)
        self.n_std = int((~is_ext).sum())
        self.ext_w = extended_weights(cp, p.extended_fraction)
        self.labels = scenario_labels(cp)
        wts = np.ones(len(self.labels))
        wts[self.n_std:] = self.ext_w
        self.scen_static = {"table": np.where(is_ext, "extended", "standard"),
                            "spot_shock": moves, "vol_scenario": np.array(_VOL_NAMES)[vol],
                            "weight": wts}
        self.fut_shape = future_scenario_pnl([1.0], cp)[0]
        # options
        og = np.flatnonzero((kind_g == "option") & ~expired_g)
        self.og = og
        net = np.bincount(inv, weights=q, minlength=G)
        k = len(og)
        self.inst = np.zeros((_margin.INST_ROWS, 0))
        self.vols = np.zeros((6, 0))
        self.lim = np.zeros((4, 0), np.uint8)
        if k:
            inst, lim0, F, sigma, Tt = option_table(sub.iloc[og], market, T_g[og])
            inst[4] = net[og]
            sv = shocked_vols(sigma, Tt, cp, rule=p.vol_shock_rule)      # (k, 3)
            sqt = np.sqrt(Tt)
            vols = np.empty((6, k))
            lim = np.empty((4, k), np.uint8)
            lim[0] = lim0
            for c in range(3):
                sst = sv[:, c] * sqt
                bad = ~(sst >= 1e-30)
                vols[c] = np.where(bad, 1.0, sst)
                vols[3 + c] = sv[:, c]
                lim[1 + c] = bad
            self.inst, self.vols, self.lim = inst, vols, lim
            self.opt_net = inst[4].copy()
        self.opt_rows = np.flatnonzero(np.isin(inv, og))
        # futures and perpetuals (inverse): coin size q / mark, scaled by 1/f at a move
        fg = np.flatnonzero(np.isin(kind_g, ("future", "perpetual")) & ~expired_g)
        self.fg = fg
        self.f_rows = np.flatnonzero(np.isin(inv, fg))
        self.f_Qp = 0.0
        self.f_R = 0.0
        self.f_A = self.f_S = np.zeros(0)
        if len(fg):
            rows = self.f_rows
            entry = book["entry_price"].to_numpy(dtype=float)
            _bad("entry_price", book.iloc[rows], np.isnan(entry[rows]),
                 "> 0 on futures and perpetuals")
            price0 = value_positions(sub.iloc[fg], market)["price"].to_numpy(dtype=float)
            where = np.full(G, -1)
            where[fg] = np.arange(len(fg))
            fr = where[inv[rows]]
            pr = price0[fr]
            qr = q[rows]
            self.f_price0, self.f_grp, self.f_entry = price0, fr, entry[rows]
            self.f_qp = qr / pr                            # coin size at the market (f = 1)
            self.f_T = np.nan_to_num(np.maximum(T_g[fg][fr], 0.0), nan=0.0)
            rate = np.full(len(rows), cp.min_annualised_move)
            if p.roll_shock_rule == "linear":
                rate = np.maximum(rate, cp.annualised_move_risk * self.f_T)
            self.f_rate = rate
            self.f_Qp = float(self.f_qp.sum())
            self.f_R = float(np.abs(self.f_qp) @ rate)
            self.f_S = np.bincount(fr, weights=qr, minlength=len(fg))
            self.f_A = np.bincount(fr, weights=qr / self.f_entry, minlength=len(fg))
        coll_notes: list[str] = []
        balance = wallet_balance(collateral, currency, coll_notes, f"segregated {currency} PM")
        self.coll_note = coll_notes[0] if coll_notes else None
        self.balance = balance
        self.const_equity = balance + float(self.exp_value.sum())
        self.notes = notes
        return self

    # --- numbers only -----------------------------------------------------------------------
    def _run(self, f: float, mat=None, inst=None):
        """One compiled pass at factor ``f``: ``(v0, delta, agg)`` (fresh arrays, so that one
        prepared account can be evaluated from several threads)."""
        from pmnb._core import _margin

        k = len(self.og)
        v0, delta, agg = np.empty(k), np.empty(k), np.empty(len(self.moves))
        _margin.pm(f, self.moves, self.vcol, self.inst if inst is None else inst, self.vols,
                   self.lim, self.rate, v0, delta, agg, mat,
                   self.kernel_threads(k * (len(self.moves) + 1)))
        return v0, delta, agg

    def _state(self, f: float, v0, delta, agg):
        """(equity, agg, dtot, index, roll) at factor ``f`` from :meth:`_run`'s arrays."""
        if len(self.fg):
            agg = agg + (self.f_Qp / f) * self.fut_shape
        eq = self.const_equity
        dtot = 0.0
        if len(self.og):
            eq += float(self.opt_net @ v0)
            dtot = float(self.opt_net @ delta)
        if len(self.fg):
            eq += float((self.f_A - self.f_S / (self.f_price0 * f)).sum())
            dtot += self.f_Qp / f
        return eq, agg, dtot, self.index0 * f, self.f_R / f

    def evaluate(self, spot_shock: float = 0.0) -> MarginState:
        """Equity, initial and maintenance margin at the move ``spot_shock`` (floats).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...                      "symbol": ["BTC-27MAR26-90000-P"], "size": [-10.0]})
        >>> prep = pmnb.margin.prepare(book, m, "deribit.portfolio")
        >>> [round(x, 6) for x in prep.evaluate(-0.1)]
        [-0.960264, 3.362344, 2.689875]
        """
        from pmnb.margin.prepared import _shock

        f = 1.0 + _shock(spot_shock)
        p, cp = self.model.params, self.cp
        eq, agg, dtot, index, roll = self._state(f, *self._run(f))
        std, ext = agg[:self.n_std], agg[self.n_std:]
        gain = cp.pnl_offset * np.maximum(std, 0.0)
        if cp.max_offsetable_pnl is not None:
            gain = np.minimum(gain, cp.max_offsetable_pnl / index)
        low = min(float(np.where(std < 0.0, std, gain).min()),
                  float(np.minimum(self.ext_w * ext + cp.extended_dampener / index, 0.0).min()))
        worst = round(max(-low, 0.0), 9)
        ds = delta_shock(dtot, index, cp, rule=p.delta_shock_rule)
        rmm = worst + roll + ds
        return MarginState(eq, float(round(rmm + p.mmp_margin + p.open_orders_margin, 9)),
                           float(p.mm_factor * rmm))

    def maintenance_gap(self, spot_shocks) -> np.ndarray:
        """``equity - maintenance`` at each move (one compiled pass per move).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...                      "symbol": ["BTC-27MAR26-90000-P"], "size": [-10.0]})
        >>> coll = pd.DataFrame({"account": ["a"], "asset": ["BTC"], "balance": [2.0]})
        >>> prep = pmnb.margin.prepare(book, m, "deribit.portfolio", collateral=coll)
        >>> prep.maintenance_gap([0.0, -0.3]).round(4).tolist()
        [-0.796, -4.7235]
        """
        from pmnb.margin.prepared import _shocks

        out = []
        for s in _shocks(spot_shocks):
            st = self.evaluate(float(s))
            out.append(st.equity - st.maintenance)
        return np.array(out, dtype=float)

    # --- the report -------------------------------------------------------------------------
    def compute(self, spot_shock: float = 0.0) -> MarginReport:
        """The full report at the move ``spot_shock`` (as ``model.compute`` on
        ``market.shocked(spot_shock)``).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...                      "symbol": ["BTC-27MAR26-90000-P"], "size": [-10.0]})
        >>> r = pmnb.margin.prepare(book, m, "deribit.portfolio").compute(-0.1)
        >>> r.worst_scenario, round(float(r.positions["pnl_worst"].iloc[0]), 6)
        ('ext -66% vol up', -18.453002)
        """
        from pmnb.margin.prepared import _shock

        f = 1.0 + _shock(spot_shock)
        p, cp = self.model.params, self.cp
        notes = list(self.notes)
        n, G, inv, q = self.n, self.G, self.inv, self.q
        og, fg = self.og, self.fg
        k = len(og)
        v0, delta, agg0 = self._run(f)
        eq, agg, dtot, index, roll = self._state(f, v0, delta, agg0)
        # per-unit P&L of each option in every scenario (for the per-position allocation)
        unit = np.empty((len(self.moves), k))
        if k:
            ones = self.inst.copy()
            ones[4] = 1.0
            self._run(f, mat=unit, inst=ones)
        cols = np.zeros((7, n))
        size_coin, mark, value, pnl_w, roll_i, alloc, mm_i = cols
        qcoin_f = np.zeros(0)
        if len(fg):
            qcoin_f = self.f_qp / f
        if k:
            where = np.full(G, -1)
            where[og] = np.arange(k)
            rows = self.opt_rows
            gi = where[inv[rows]]
            size_coin[rows] = q[rows]
            mark[rows] = v0[gi]
            value[rows] = q[rows] * v0[gi]
        if len(fg):
            rows, fr = self.f_rows, self.f_grp
            pr = self.f_price0[fr] * f
            size_coin[rows] = qcoin_f
            mark[rows] = pr
            value[rows] = q[rows] * (1.0 / self.f_entry - 1.0 / pr)
        if len(self.exp_rows):
            mark[self.exp_rows] = self.exp_price
            value[self.exp_rows] = self.exp_value
        if k:
            notes.append(f"vol shocks: {p.vol_shock_rule!r} rule, an approximation (Deribit "
                         "does not publish its vol-shock formula)")
        rm = risk_matrix(agg, cp, index=index, fut_q_coin=qcoin_f,
                         fut_T=self.f_T if len(fg) else (), delta_total=dtot,
                         extended_fraction=p.extended_fraction,
                         delta_shock_rule=p.delta_shock_rule, roll_shock_rule=p.roll_shock_rule)
        n_std = self.n_std
        initial, maintenance = _totals(p, cp, rm, n_std, self.labels,
                                       self.f_T if len(fg) else (), self.currency, notes)
        j = rm.worst_index
        if k:
            pnl_w[self.opt_rows] = q[self.opt_rows] * unit[j, gi] + 0.0
        if len(fg):
            pnl_w[self.f_rows] = qcoin_f * self.fut_shape[j]
            roll_i[self.f_rows] = np.abs(qcoin_f) * self.f_rate
        loss = np.maximum(-pnl_w, 0.0)
        total = loss.sum()
        share = loss / total if total > 0 else np.zeros(n)
        np.add(share * (rm.worst_case + rm.delta_shock), roll_i, out=alloc)
        np.multiply(alloc, p.mm_factor, out=mm_i)
        positions = pd.DataFrame(cols.T, index=self.book.index, copy=False,
                                 columns=["size_coin", "mark", "value", "pnl_worst",
                                          "roll_shock", "initial", "maintenance"])
        scen = pd.DataFrame({**self.scen_static, "pnl": rm.aggregated + 0.0,
                             "counted": rm.counted + 0.0},
                            index=pd.Index(self.labels, name="scenario"))
        scen = scen[["table", "spot_shock", "vol_scenario", "pnl", "weight", "counted"]]
        if self.coll_note:
            notes.append(self.coll_note)
        equity = self.balance + float(value.sum())
        return MarginReport(self.model.name, p.rule_version, self.account, self.currency,
                            float(initial), float(maintenance), equity, float(index), positions,
                            scenarios=scen, worst_scenario=self.labels[j],
                            delta_total={self.currency: dtot}, notes=tuple(notes))
