"""Aave v3 lending: health factor, borrowing power, close factor and liquidation outcome.

Health factor (Aave, "Liquidations", https://aave.com/docs/developers/liquidations and
https://aave.com/help/borrowing/liquidations; ``GenericLogic.calculateUserAccountData``)::

    HF = Σ_i collateral_i × price_i × LT_i / Σ_j debt_j × price_j     (USD; +inf without debt)
    liquidatable when HF < 1
    available borrows = Σ_i collateral_i × price_i × LTV_i − Σ_j debt_j × price_j  (floor 0)

Liquidation (``LiquidationLogic``; constants ``DEFAULT_LIQUIDATION_CLOSE_FACTOR = 0.5e4``,
``CLOSE_FACTOR_HF_THRESHOLD = 0.95e18``; v3.3: ``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2000e8``,
``MIN_LEFTOVER_BASE = 1000e8``, https://governance.aave.com/t/bgd-aave-v3-3-feat-umbrella/20129)::

    close factor = 50% if HF > 0.95 (v3.3: and the collateral reserve and the debt reserve are
                   each worth >= 2,000 USD), else 100%; 0 when HF >= 1
    seized       = debt_price × debt_to_cover × liquidationBonus / collateral_price
    bonus part   = seized − seized / liquidationBonus
    protocol fee = bonus part × liquidationProtocolFee;  liquidator receives seized − fee

The health-factor arithmetic is :func:`pmnb.defi.aave_health_factor` (not repeated here).

Mapping to :class:`~pmnb.margin.MarginReport` (currency ``"USD"``, ``usd_per_unit`` 1), with
``C`` the USD value of every supply, ``D`` of every borrow::

    equity      = C − D                                   (net asset value of the account)
    initial     = Σ_i c_i (1 − LTV_i)                     so excess = Σ c·LTV − D = Aave's
                                                          available borrows (negative: no borrow)
    maintenance = Σ_i c_i (1 − LT_i)   (0 without debt)  so equity − maintenance = Σ c·LT − D
                                                          = D (HF − 1)

hence ``margin_ratio >= 1`` exactly when ``HF <= 1`` (Aave liquidates below 1; equality is the
boundary). Supplies not usable as collateral (LT 0) count fully in both. The positions frame
carries per row ``ltv``, ``liquidation_threshold``, ``weighted_collateral`` (c·LT),
``borrowing_power`` (c·LTV), the account's ``health_factor`` and ``liquidation_price`` (the
price of the row's underlying at which HF = 1, other prices fixed); ``notes`` start with
``health_factor = ...`` and ``available_borrows_usd = ...``.

Parameters are per reserve (:class:`Reserve`). Shipped defaults are **only** the numbers of the
project's research notes (reference/margin.md §5, vectors A2 and A5): WETH LT 82.5%, bonus 5%,
protocol fee 10%; USDC LT 78%. Those notes give no LTV and no e-mode category: such fields are
``None``, an ``initial`` that needs them is NaN with a note, and a liquidation that needs a
missing bonus raises. Pass the market's current configuration (``getReserveData``'s
configuration bitmap, or the Aave UI) with ``pmnb.margin.get("aave.v3", reserves={...})``.

Examples
--------
>>> import pmnb.margin
>>> m = pmnb.margin.get("aave.v3")
>>> m.params.reserves["WETH"].liquidation_threshold, m.params.reserves["WETH"].ltv
(0.825, None)
>>> close_factor(0.972, debt_usd=25_000.0, collateral_usd=20_000.0)
0.5
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pmnb import defi
from pmnb.errors import ValidationError
from pmnb.margin import MarginModel, MarginParams, MarginReport, register

__all__ = [
    "CLOSE_FACTOR_HF_THRESHOLD",
    "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD",
    "MIN_LEFTOVER_BASE",
    "AaveV3",
    "AaveV3Params",
    "EModeCategory",
    "LiquidationOutcome",
    "Reserve",
    "close_factor",
    "liquidation_outcome",
    "max_debt_to_cover",
]

#: Above this health factor (and, v3.3, above the dust thresholds) at most 50% is repaid.
CLOSE_FACTOR_HF_THRESHOLD: float = 0.95
#: v3.3: both reserves must be worth at least this (USD) for the 50% cap to apply.
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD: float = 2_000.0
#: v3.3: a partial liquidation may not leave less than this (USD) in either reserve.
MIN_LEFTOVER_BASE: float = 1_000.0
_DEFAULT_CLOSE_FACTOR = 0.5
_VERSIONS = ("3.0", "3.1", "3.2", "3.3")


@dataclasses.dataclass(frozen=True)
class Reserve:
    """Risk configuration of one Aave v3 reserve, as decimals (Aave's bps / 10,000).

    ``liquidation_bonus`` is the multiplier (1.05 for Aave's 10500, a 5% bonus);
    ``liquidation_protocol_fee`` the share of the bonus kept by the protocol (0.10 for 1000).
    ``None`` = not known (pmnb never invents it). ``emode_category`` is the e-mode category id
    the asset belongs to, if any.
    """

    liquidation_threshold: float
    ltv: float | None = None
    liquidation_bonus: float | None = None
    liquidation_protocol_fee: float | None = None
    emode_category: int | None = None


@dataclasses.dataclass(frozen=True)
class EModeCategory:
    """An e-mode category: LTV, LT and bonus replacing the reserve's for its assets."""

    ltv: float
    liquidation_threshold: float
    liquidation_bonus: float
    label: str = ""


_NOTES = "reference/margin.md §5 (vectors A2, A5); no LTV or e-mode documented there"

#: The reserve parameters reference/margin.md §5 states (A2, A5): not a live market snapshot.
MARGIN_MD_RESERVES: dict[str, Reserve] = {
    "WETH": Reserve(liquidation_threshold=0.825, liquidation_bonus=1.05,
                    liquidation_protocol_fee=0.10),
    "USDC": Reserve(liquidation_threshold=0.78),
}


@dataclasses.dataclass(frozen=True)
class AaveV3Params(MarginParams):
    """Aave v3 parameters: reserves by asset symbol, e-mode categories and the user's category.

    ``version`` selects the close-factor rule (``"3.3"``, or ``"3.0"``–``"3.2"``).
    """

    rule_version: str = "aave-v3.3 (margin.md §5 parameters)"
    source: str = ("https://aave.com/docs/developers/liquidations; "
                   "https://governance.aave.com/t/bgd-aave-v3-3-feat-umbrella/20129; " + _NOTES)
    reserves: Mapping[str, Reserve] = dataclasses.field(
        default_factory=lambda: dict(MARGIN_MD_RESERVES))
    emode_categories: Mapping[int, EModeCategory] = dataclasses.field(default_factory=dict)
    emode: int | None = None
    version: str = "3.3"


def _check_version(version: str) -> str:
    v = str(version)
    if v not in _VERSIONS:
        raise ValidationError(f"version: got {version!r}; accepted: {list(_VERSIONS)}",
                              field="version")
    return v


def _arr(name: str, value: Any, accepted: str, lo: float = 0.0) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: got {value!r}; accepted: {accepted}", field=name) from None
    bad = ~(np.isfinite(a) | (np.isinf(a) & (a > 0))) | (a < lo)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise ValidationError.for_field(name, row=i, value=float(a.reshape(-1)[i]),
                                        accepted=accepted, n_bad=int(bad.sum()))
    return a


def close_factor(hf, debt_usd=math.inf, collateral_usd=math.inf, *, version: str = "3.3"):
    """Largest share of debt one liquidation call may repay.

    Aave v3 ``LiquidationLogic`` (margin.md §5.2): 0 when ``HF >= 1`` (not liquidatable); 50%
    when ``HF > 0.95``; 100% when ``HF <= 0.95``. From v3.3 the 50% cap further requires the
    user's balance in the **debt reserve** and in the **collateral reserve** to be each worth at
    least 2,000 USD (``MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD``); below either, 100%. v3.3 applies
    the factor to the user's *total* debt, v3.0–3.2 to the debt in the chosen reserve (see
    :func:`max_debt_to_cover`).

    Parameters
    ----------
    hf : array_like
        Health factor(s), >= 0 (``inf`` without debt).
    debt_usd, collateral_usd : array_like, default inf
        USD value of the user's balance in the debt reserve and the collateral reserve being
        liquidated (v3.3 only; ignored before).
    version : {"3.3", "3.2", "3.1", "3.0"}

    Returns
    -------
    float or ndarray
        0.0, 0.5 or 1.0, broadcast over the inputs.

    Examples
    --------
    >>> close_factor([1.0, 0.9501, 0.95, 0.5])
    array([0. , 0.5, 1. , 1. ])
    >>> close_factor(0.972, debt_usd=1_999.99, collateral_usd=20_000.0)      # debt dust: all
    1.0
    >>> close_factor(0.972, debt_usd=1_999.99, collateral_usd=20_000.0, version="3.2")
    0.5
    """
    v = _check_version(version)
    h = _arr("hf", hf, "health factors >= 0 (inf without debt)")
    d = _arr("debt_usd", debt_usd, "USD values >= 0")
    c = _arr("collateral_usd", collateral_usd, "USD values >= 0")
    capped = h > CLOSE_FACTOR_HF_THRESHOLD
    if v == "3.3":
        capped = (capped & (d >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD)
                  & (c >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD))
    out = np.where(h >= 1.0, 0.0, np.where(capped, _DEFAULT_CLOSE_FACTOR, 1.0))
    return float(out) if out.ndim == 0 else out


def max_debt_to_cover(hf, reserve_debt_usd, reserve_collateral_usd, total_debt_usd=None, *,
                      version: str = "3.3"):
    """Most debt (USD) one liquidation call may repay in the chosen debt reserve.

    v3.3: ``min(reserve debt, close factor × total debt)`` — the factor applies to the user's
    total debt in base currency; v3.0–3.2: ``close factor × reserve debt`` (margin.md §5.2).

    Parameters
    ----------
    hf, reserve_debt_usd, reserve_collateral_usd : array_like
        See :func:`close_factor`.
    total_debt_usd : array_like, optional
        The user's total debt (USD); default the reserve debt (a single-debt account).
    version : {"3.3", "3.2", "3.1", "3.0"}

    Examples
    --------
    Vector A5: HF 0.972, 25,000 USDC of debt, 20,000 USD of ETH collateral:

    >>> max_debt_to_cover(0.972, 25_000.0, 20_000.0)
    12500.0
    >>> max_debt_to_cover(0.972, 5_000.0, 20_000.0, total_debt_usd=25_000.0)   # whole reserve
    5000.0
    """
    v = _check_version(version)
    rd = _arr("reserve_debt_usd", reserve_debt_usd, "USD values >= 0")
    td = rd if total_debt_usd is None else _arr("total_debt_usd", total_debt_usd,
                                                "USD values >= 0")
    cf = np.asarray(close_factor(hf, rd, reserve_collateral_usd, version=v))
    out = np.minimum(rd, cf * td) if v == "3.3" else cf * rd
    return float(out) if out.ndim == 0 else out


class LiquidationOutcome(NamedTuple):
    """One liquidation call: amounts in tokens (``debt_repaid`` in debt tokens, the rest in
    collateral tokens); ``leaves_dust`` (v3.3) marks a call Aave rejects
    (``MUST_NOT_LEAVE_DUST``)."""

    debt_repaid: Any
    collateral_seized: Any
    bonus: Any
    protocol_fee: Any
    liquidator_receives: Any
    leaves_dust: Any


def liquidation_outcome(debt_to_cover, *, debt_price, collateral_price, liquidation_bonus,
                        liquidation_protocol_fee=0.0, collateral_balance=None,
                        debt_balance=None, version: str = "3.3") -> LiquidationOutcome:
    """Collateral seized for repaying ``debt_to_cover``, with the bonus and the protocol fee.

    Aave v3 ``LiquidationLogic`` (margin.md §5.2)::

        seized       = debt_price × debt_to_cover × liquidation_bonus / collateral_price
        bonus        = seized − seized / liquidation_bonus
        protocol fee = bonus × liquidation_protocol_fee
        liquidator receives seized − protocol fee      (the user loses all of ``seized``)

    When ``collateral_balance`` is smaller than ``seized`` the whole balance is seized and the
    debt repaid shrinks to match, as Aave does. v3.3 dust rule: when neither reserve is cleared
    and either leftover is worth less than 1,000 USD (``MIN_LEFTOVER_BASE``), ``leaves_dust`` is
    True (the call reverts on chain; repay all, or less). Check ``debt_to_cover`` against
    :func:`max_debt_to_cover` first; this function does not cap it.

    Parameters
    ----------
    debt_to_cover : array_like
        Debt tokens the liquidator repays (whole tokens).
    debt_price, collateral_price : array_like
        Oracle prices, USD per whole token.
    liquidation_bonus : array_like
        Multiplier of the collateral reserve (1.05 for Aave's 10500), >= 1.
    liquidation_protocol_fee : array_like, default 0
        Share of the bonus kept by the protocol (0.10 for 1000 bps).
    collateral_balance, debt_balance : array_like, optional
        The user's balances in the two reserves (tokens); needed for the cap and the dust check.
    version : {"3.3", "3.2", "3.1", "3.0"}
        The dust rule exists from 3.3.

    Returns
    -------
    LiquidationOutcome
        Floats or arrays of the broadcast shape; ``leaves_dust`` is False when balances are not
        given.

    Examples
    --------
    Vector A5: 12,500 USDC repaid against ETH at 2,000, bonus 5%, protocol fee 10%:

    >>> o = liquidation_outcome(12_500.0, debt_price=1.0, collateral_price=2_000.0,
    ...                         liquidation_bonus=1.05, liquidation_protocol_fee=0.10)
    >>> [round(x, 8) for x in o[:5]]
    [12500.0, 6.5625, 0.3125, 0.03125, 6.53125]
    """
    v = _check_version(version)
    dtc = _arr("debt_to_cover", debt_to_cover, "debt tokens >= 0")
    dp = _arr("debt_price", debt_price, "USD per token > 0")
    cp = _arr("collateral_price", collateral_price, "USD per token > 0")
    for name, a in (("debt_price", dp), ("collateral_price", cp)):
        if (a <= 0).any() or np.isinf(a).any():
            raise ValidationError(f"{name}: got {a.tolist()!r}; accepted: finite USD per token > 0",
                                  field=name)
    lb = _arr("liquidation_bonus", liquidation_bonus, "multiplier >= 1 (1.05 = 5% bonus)", lo=1.0)
    fee = _arr("liquidation_protocol_fee", liquidation_protocol_fee, "share in [0, 1]")
    if (fee > 1).any() or np.isinf(lb).any():
        raise ValidationError("liquidation_protocol_fee / liquidation_bonus: out of range; "
                              "accepted: fee in [0, 1], finite bonus >= 1",
                              field="liquidation_protocol_fee")
    seized = dp * dtc * lb / cp
    repaid = dtc * np.ones_like(seized)
    if collateral_balance is not None:
        cb = _arr("collateral_balance", collateral_balance, "collateral tokens >= 0")
        over = seized > cb
        repaid = np.where(over, cb * cp / (dp * lb), repaid)
        seized = np.where(over, cb, seized)
    bonus = seized - seized / lb
    pfee = bonus * fee
    dust = np.zeros(np.shape(seized), dtype=bool)
    if v == "3.3" and collateral_balance is not None and debt_balance is not None:
        db = _arr("debt_balance", debt_balance, "debt tokens >= 0")
        left_debt = db - repaid
        left_coll = cb - seized
        partial = (left_debt > 0) & (left_coll > 0)
        dust = partial & ((left_debt * dp < MIN_LEFTOVER_BASE)
                          | (left_coll * cp < MIN_LEFTOVER_BASE))

    def out(a):
        a = np.asarray(a)
        return a.item() if a.ndim == 0 else a

    return LiquidationOutcome(out(repaid), out(seized), out(bonus), out(pfee),
                              out(seized - pfee), out(dust))


@register("aave.v3")
class AaveV3(MarginModel):
    """Aave v3 health factor and borrowing power as a margin report (see the module docstring).

    Examples
    --------
    Vector A2 — 10 WETH at 2,000 and 10,000 USDC supplied, 25,000 USDC borrowed:

    >>> import pandas as pd, pmnb, pmnb.margin
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 2_000.0})
    >>> book = pd.DataFrame({"account": "u", "venue": "aave", "symbol": ["aWETH", "aUSDC", "vUSDC"],
    ...                      "kind": ["lending_supply", "lending_supply", "lending_borrow"],
    ...                      "asset": ["WETH", "USDC", "USDC"],
    ...                      "amount": [10.0, 10_000.0, 25_000.0], "size": [10.0, 1e4, -2.5e4]})
    >>> r = pmnb.margin.compute(book, m, "aave.v3", account="u")
    >>> r.notes[0]
    'health_factor = 0.972'
    >>> r.equity, round(r.maintenance, 6), r.margin_ratio > 1
    (5000.0, 5700.0, True)
    """

    name = "aave.v3"
    kinds = ("lending_supply", "lending_borrow")
    params_type = AaveV3Params

    def reserve(self, asset: str) -> Reserve:
        """The effective configuration of ``asset`` (e-mode applied when the user is in one).

        Examples
        --------
        >>> AaveV3().reserve("weth").liquidation_threshold
        0.825
        >>> AaveV3(emode=1, emode_categories={1: EModeCategory(0.9, 0.93, 1.01, "ETH")},
        ...        reserves={"WETH": Reserve(0.825, 0.8, 1.05, 0.1, 1)}).reserve("WETH").ltv
        0.9
        """
        p = self.params
        table = {str(k).upper(): r for k, r in p.reserves.items()}
        key = str(asset).upper()
        if key not in table:
            raise ValidationError(
                f"aave.v3: no reserve parameters for {asset!r}; pass the market's configuration: "
                f"pmnb.margin.get('aave.v3', reserves={{..., {key!r}: Reserve("
                f"liquidation_threshold=..., ltv=..., liquidation_bonus=..., "
                f"liquidation_protocol_fee=...)}}); known: {sorted(table)}", field="reserves")
        r = table[key]
        if p.emode is not None and p.emode not in p.emode_categories:
            raise ValidationError(f"emode: category {p.emode!r} has no parameters; accepted: "
                                  f"{sorted(p.emode_categories)} (pass emode_categories=...)",
                                  field="emode")
        if p.emode is not None and r.emode_category == p.emode:
            e = p.emode_categories[p.emode]
            r = dataclasses.replace(r, ltv=e.ltv, liquidation_threshold=e.liquidation_threshold,
                                    liquidation_bonus=e.liquidation_bonus)
        return r

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        from pmnb.book import _STABLES, value_positions

        if orders is not None and len(orders):
            raise ValidationError("orders: aave.v3 has no open orders; pass orders=None",
                                  field="orders")
        notes: list[str] = []
        val = value_positions(book, market)
        price = val["price"].to_numpy(dtype=float)
        amount = np.abs(book["size"].to_numpy(dtype=float))
        supply = (book["kind"].astype(str) == "lending_supply").to_numpy()
        assets = book["asset"].astype(str).str.upper().to_numpy()
        res = {a: self.reserve(a) for a in np.unique(assets[supply])}
        lt = np.array([res[a].liquidation_threshold if s else np.nan
                       for a, s in zip(assets, supply)])
        ltv = np.array([(np.nan if res[a].ltv is None else res[a].ltv) if s else np.nan
                        for a, s in zip(assets, supply)])
        value = amount * price
        c_val = np.where(supply, value, 0.0)
        d_val = np.where(supply, 0.0, value)
        lt0 = np.where(supply, lt, 0.0)
        hf = float(defi.aave_health_factor(amount[supply], price[supply], lt[supply],
                                           amount[~supply], price[~supply]))
        weighted = c_val * lt0
        power = np.where(supply, c_val * ltv, 0.0)
        debt = float(d_val.sum())
        initial_pos = np.where(supply, c_val * (1.0 - ltv), 0.0)
        maint_pos = np.where(supply, c_val * (1.0 - lt0), 0.0) if debt > 0 else np.zeros(len(book))
        missing = sorted({a for a, s in zip(assets, supply) if s and res[a].ltv is None})
        if missing:
            notes_ltv = (f"initial: NaN, no LTV for {', '.join(missing)} (pass reserves=... "
                         "with the market's LTV)")
        equity = float(c_val.sum() - debt)
        available = float(np.nansum(power) - debt) if not missing else float("nan")
        notes.append(f"health_factor = {hf:.6g}")
        shown = available if missing else max(available, 0.0)
        notes.append(f"available_borrows_usd = {shown:.6g}")
        if missing:
            notes.append(notes_ltv)
        if debt == 0:
            notes.append("no debt: health factor infinite, maintenance 0 (nothing to liquidate)")
        if collateral is not None and len(collateral):
            notes.append("collateral frame ignored: Aave collateral is the lending_supply rows")
        notes.append("maintenance = Σ supply × (1 − LT), initial = Σ supply × (1 − LTV): "
                     "margin_ratio >= 1 iff HF <= 1, excess = available borrows")
        if val["mark_source"].astype(str).str.startswith("stablecoin").any():
            notes.append("stablecoins without a market price valued at 1 USD")
        # price of each underlying at which HF = 1, other prices fixed
        liq = np.full(len(book), np.nan)
        und = book["underlying"].astype(str).to_numpy()
        for u in np.unique(und):
            m = und == u
            w_u, d_u = weighted[m].sum(), d_val[m].sum()
            w_r, d_r = weighted[~m].sum(), d_val[~m].sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                x = (d_r - w_r) / (w_u - d_u) if w_u != d_u else np.nan
            if np.isfinite(x) and x > 0:
                liq[m] = price[m] * x
        positions = pd.DataFrame({
            "asset": assets, "side": np.where(supply, "supply", "borrow"), "amount": amount,
            "price": price, "value_usd": np.where(supply, value, -value),
            "ltv": ltv, "liquidation_threshold": lt, "weighted_collateral": weighted,
            "borrowing_power": power, "initial": initial_pos, "maintenance": maint_pos,
            "health_factor": hf, "liquidation_price": liq}, index=book.index)
        delta = {}
        for u in np.unique(und):
            if u.upper() not in _STABLES:
                delta[u] = float(book["size"].to_numpy(dtype=float)[und == u].sum())
        return MarginReport(self.name, self.params.rule_version, account, "USD",
                            float(initial_pos.sum()), float(maint_pos.sum()), equity, 1.0,
                            positions, delta_total=delta, notes=tuple(notes))
