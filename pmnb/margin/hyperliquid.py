"""Hyperliquid perpetuals: margin tiers by notional, cross and isolated, USDC collateral.

Margining (Hyperliquid docs, "Margining", https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margining,
and "Margin tiers", https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers)::

    notional = |size × contract_size| × mark
    initial_margin = notional / leverage                 (leverage 1 … max_leverage of the tier)
    mmr(tier) = 1 / (2 × max_leverage(tier))             ("half of the initial margin at max leverage")
    maintenance_margin = notional × mmr(tier) − deduction(tier)
    deduction_0 = 0, deduction_n = deduction_{n−1} + lower_bound_n × (mmr_n − mmr_{n−1})

A position is in the highest tier whose lower bound it *exceeds* (the page prints "0–150M: 40x,
>150M: 20x"); maintenance margin is continuous at the bounds, so only the initial margin at max
leverage of a notional exactly on a bound depends on this choice. The maintenance rate depends on
the tier only, never on the leverage the user picked.

Initial margin uses the position's ``leverage`` column, or the tier's maximum leverage when the
column is empty (documented default; Hyperliquid applies the leverage the user set).

Cross: equity (account value) = USDC collateral of the account + unrealised P&L of the cross
positions at mark. Isolated (``isolated_margin`` set): the position's isolated margin + its
unrealised P&L, counted in the account's equity too.

Liquidation (Hyperliquid docs, "Liquidations",
https://hyperliquid.gitbook.io/hyperliquid-docs/trading/liquidations), at the mark price::

    liq_price = price − side × margin_available / position_size / (1 − l × side)
    l = mmr of the tier holding the position value at the liquidation price; side = ±1
    margin_available = account_value (cross) or isolated_margin (isolated) − maintenance_margin

:func:`liquidation_price` solves ``equity + side·|s|·(P − mark) = MM(P)`` in closed form, which
is the formula above with ``price`` the current mark (reference/margin.md §3.2).

The shipped tiers are the mainnet table of the margin-tiers page for every asset it lists
(a snapshot: BTC at 40x; live values from the ``info`` endpoint ``meta`` / ``marginTable``). Pass
current tables with ``pmnb.margin.get("hyperliquid", tiers={...})``. Coins without tiers raise
(pmnb never invents a tier table).

Examples
--------
>>> import pmnb.margin
>>> m = pmnb.margin.get("hyperliquid")
>>> [(t.max_leverage, t.mmr, t.deduction) for t in m.params.tiers["BTC"]]
[(40.0, 0.0125, 0.0), (20.0, 0.025, 1875000.0)]
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError
from pmnb.margin import (MarginModel, MarginParams, MarginReport, delta_by_underlying,
                         perp_equity, register, usd_per_unit, wallet_balance)

__all__ = [
    "Hyperliquid",
    "HyperliquidParams",
    "Tier",
    "liquidation_price",
    "tier_of",
    "tiers_from_leverage",
]


@dataclasses.dataclass(frozen=True)
class Tier:
    """One margin tier: applies above ``lower_bound`` (USDC notional); its rate and deduction."""

    lower_bound: float
    max_leverage: float
    mmr: float
    deduction: float


def tiers_from_leverage(rows: list[tuple[float, float]]) -> tuple[Tier, ...]:
    """Build tiers from ``(lower_bound, max_leverage)`` rows.

    ``mmr = 1 / (2 max_leverage)``; ``deduction_n = deduction_{n-1} + lower_n (mmr_n - mmr_{n-1})``
    keeps the maintenance margin continuous in notional.

    Examples
    --------
    >>> [(t.mmr, t.deduction) for t in tiers_from_leverage([(0, 40), (150e6, 20)])]
    [(0.0125, 0.0), (0.025, 1875000.0)]
    """
    out, ded, prev = [], 0.0, None
    for lower, lev in rows:
        if not lev >= 1:
            raise ValidationError(f"tiers: max leverage {lev!r}; accepted: >= 1", field="tiers")
        mmr = 1.0 / (2.0 * float(lev))
        if prev is not None:
            ded += float(lower) * (mmr - prev)
        out.append(Tier(float(lower), float(lev), mmr, round(ded, 8)))
        prev = mmr
    if out[0].lower_bound != 0.0 or any(b.lower_bound <= a.lower_bound
                                         for a, b in itertools.pairwise(out)):
        raise ValidationError("tiers: lower bounds must start at 0 and increase", field="tiers")
    return tuple(out)


def _two(lev1: float, bound: float, lev2: float) -> tuple[Tier, ...]:
    return tiers_from_leverage([(0, lev1), (bound, lev2)])


_M = 1_000_000
#: Mainnet tiers of the margin-tiers page (reference/margin.md §3.1), keyed by coin.
MAINNET_TIERS: dict[str, tuple[Tier, ...]] = {
    "BTC": _two(40, 150 * _M, 20), "ETH": _two(25, 100 * _M, 15),
    "SOL": _two(20, 70 * _M, 10), "XRP": _two(20, 40 * _M, 10),
    **{c: _two(10, 20 * _M, 5) for c in (
        "DOGE", "kPEPE", "SUI", "WLD", "TRUMP", "LTC", "ENA", "POPCAT", "WIF", "AAVE", "kBONK",
        "LINK", "CRV", "AVAX", "ADA", "UNI", "NEAR", "TIA", "APT", "BCH", "HYPE", "FARTCOIN")},
    **{c: _two(10, 3 * _M, 5) for c in (
        "OP", "ARB", "LDO", "TON", "MKR", "ONDO", "JUP", "INJ", "kSHIB", "SEI", "TRX", "BNB",
        "DOT")},
}


@dataclasses.dataclass(frozen=True)
class HyperliquidParams(MarginParams):
    """Hyperliquid parameters: margin tiers per coin (override with the API's ``marginTable``)."""

    rule_version: str = "hyperliquid-mainnet-margin-tiers-btc40x"
    source: str = ("https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers and "
                   "https://hyperliquid.gitbook.io/hyperliquid-docs/trading/margining "
                   "(mainnet tiers, BTC 40x snapshot)")
    tiers: Any = dataclasses.field(default_factory=lambda: dict(MAINNET_TIERS))


def tier_of(tiers: tuple[Tier, ...], notional: Any) -> np.ndarray:
    """Index of the tier of each notional: the last whose lower bound the notional exceeds.

    Examples
    --------
    >>> tier_of(MAINNET_TIERS["BTC"], np.array([0.0, 150e6, 150e6 + 1])).tolist()
    [0, 0, 1]
    """
    lower = np.array([t.lower_bound for t in tiers])
    idx = np.searchsorted(lower, np.asarray(notional, dtype=float), side="left") - 1
    return np.maximum(idx, 0)


def liquidation_price(mark: Any, size: Any, equity: Any, *, tiers: tuple[Tier, ...] | None = None,
                      mmr: float | None = None, maintenance_other: Any = 0.0) -> Any:
    """Mark price at which a position's equity falls to its maintenance margin.

    Solves ``equity + side·|s|·(P − mark) = |s|·P·l − deduction + maintenance_other`` for ``P``::

        P = (mark − side·(equity − maintenance_other + deduction) / |s|) / (1 − side·l)

    which is Hyperliquid's ``liq_price = price − side·margin_available/position_size/(1 − l·side)``
    with ``price`` the mark at which ``equity`` is measured (Hyperliquid docs, "Liquidations").
    With ``tiers``, ``l`` and ``deduction`` are those of the tier holding ``|s|·P`` (found by
    evaluating the margin surplus at the tier bounds: it is monotone in ``P``).

    Parameters
    ----------
    mark : float or array
        Current mark price (USDC per coin).
    size : float or array
        Signed position size in coins (short < 0).
    equity : float or array
        At ``mark``: the account value (cross) or ``isolated_margin`` + unrealised P&L (isolated).
    tiers : tuple of Tier, optional
        The coin's margin tiers. Give either ``tiers`` or a flat ``mmr``.
    mmr : float, optional
        Flat maintenance rate ``l`` (``1 / (2 max_leverage)``), no deduction.
    maintenance_other : float or array
        Cross: maintenance margin of the account's other positions, held fixed.

    Returns
    -------
    float or ndarray
        USDC per coin; NaN for a zero size. A long's value ``<= 0`` means it is never liquidated
        (the API's ``liquidationPx`` is then null); a short's ``<= 0`` means it is liquidatable at
        every price.

    Examples
    --------
    Isolated long 1 BTC at 100,000 with 10,000 isolated margin, ``l = 1/80``:

    >>> round(liquidation_price(100_000.0, 1.0, 10_000.0, mmr=1 / 80), 4)
    91139.2405
    >>> round(liquidation_price(3_000.0, 2.0, 1_500.0, tiers=MAINNET_TIERS["ETH"]), 4)
    2295.9184
    """
    if (tiers is None) == (mmr is None):
        raise ValidationError("liquidation_price: give exactly one of tiers= or mmr=",
                              field="tiers")
    if tiers is None:
        if not 0.0 <= mmr < 1.0:
            raise ValidationError(f"mmr: {mmr!r}; accepted: 0 <= mmr < 1", field="mmr")
        tiers = (Tier(0.0, 1.0 / (2.0 * mmr) if mmr > 0 else np.inf, float(mmr), 0.0),)
    mark_, size_, eq_, mo_ = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                                    (mark, size, equity, maintenance_other)))
    if np.any(~(mark_ > 0)):
        raise ValidationError(f"mark: {mark!r}; accepted: > 0", field="mark")
    rates = np.array([t.mmr for t in tiers])
    ded = np.array([t.deduction for t in tiers])
    side = np.sign(size_)
    s = np.abs(size_)
    e = eq_ - mo_
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.zeros(size_.shape, dtype=int)
        for j in range(1, len(tiers)):
            b = tiers[j].lower_bound / s
            surplus = e + side * s * (b - mark_) - (rates[j] * s * b - ded[j])
            k += (side * surplus < 0)
        p = (mark_ - side * (e + ded[k]) / s) / (1.0 - side * rates[k])
    p = np.where(size_ == 0, np.nan, p)
    return float(p) if p.ndim == 0 else p


@register("hyperliquid")
class Hyperliquid(MarginModel):
    """Hyperliquid perpetuals margin (see the module docstring).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 100_000.0},
    ...                           marks={"hyperliquid:BTC": 100_000.0})
    >>> book = pd.DataFrame({"account": ["h"], "venue": ["hyperliquid"], "symbol": ["BTC"],
    ...                      "size": [1.0], "entry_price": [100_000.0], "leverage": [10.0]})
    >>> coll = pd.DataFrame({"account": ["h"], "asset": ["USDC"], "balance": [20_000.0]})
    >>> r = pmnb.margin.compute(book, m, "hyperliquid", account="h", collateral=coll)
    >>> r.initial, r.maintenance, r.equity
    (10000.0, 1250.0, 20000.0)
    """

    name = "hyperliquid"
    kinds = ("perpetual",)
    params_type = HyperliquidParams

    def maintenance(self, symbol: str, notional: Any) -> np.ndarray:
        """Maintenance margin (USDC) of positions of ``symbol`` at these notionals.

        Examples
        --------
        >>> Hyperliquid().maintenance("BTC", [100e6, 150e6, 200e6]).tolist()
        [1250000.0, 1875000.0, 3125000.0]
        """
        tiers = self.tiers(symbol)
        n = np.abs(np.asarray(notional, dtype=float))
        i = tier_of(tiers, n)
        return n * np.array([t.mmr for t in tiers])[i] - np.array([t.deduction for t in tiers])[i]

    def tiers(self, symbol: str) -> tuple[Tier, ...]:
        """The margin tiers of ``symbol`` (raises naming how to pass them when absent)."""
        table: Mapping[str, Any] = self.params.tiers
        if symbol not in table:
            raise ValidationError(f"hyperliquid: no margin tiers for {symbol!r}; pass the venue's "
                                  f"current table: pmnb.margin.get('hyperliquid', tiers={{...}}) "
                                  f"(see tiers_from_leverage); available: {sorted(table)}",
                                  field="tiers")
        return tuple(table[symbol])

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        from pmnb.book import value_positions

        if orders is not None and len(orders):
            raise ValidationError("orders: hyperliquid does not margin open orders in this "
                                  "version; pass orders=None", field="orders")
        for sym in book["symbol"].astype(str).unique():
            self.tiers(sym)  # unknown coins raise before any pricing
        val = value_positions(book, market)
        q = (book["size"] * book["contract_size"]).to_numpy(dtype=float)
        notional = np.abs(q) * val["price"].to_numpy(dtype=float)
        n = len(book)
        mm, im, mmr, lev_used = (np.zeros(n) for _ in range(4))
        lev_col = book["leverage"].to_numpy(dtype=float)
        for sym, idx in book.groupby(book["symbol"].astype(str), sort=False).indices.items():
            tiers = self.tiers(sym)
            i = tier_of(tiers, notional[idx])
            mmr[idx] = np.array([t.mmr for t in tiers])[i]
            mm[idx] = self.maintenance(sym, notional[idx])
            max_lev = np.array([t.max_leverage for t in tiers])[i]
            use = np.where(np.isnan(lev_col[idx]), max_lev, lev_col[idx])
            bad = (use > max_lev + 1e-12) | (use < 1.0)
            if bad.any():
                j = int(np.flatnonzero(bad)[0])
                raise ValidationError.for_field("leverage", row=book.index[idx[j]],
                                                value=float(use[j]),
                                                accepted=f"1 to {max_lev[j]:g}x at this notional")
            lev_used[idx] = use
            im[idx] = notional[idx] / use
        upnl = val["value"].to_numpy(dtype=float)
        iso_m = book["isolated_margin"].to_numpy(dtype=float)
        isolated = ~np.isnan(iso_m)
        currency = "USDC"
        notes = []
        wallet = wallet_balance(collateral, currency, notes)
        equity = perp_equity(wallet, upnl, iso_m)
        usd = usd_per_unit(market, currency, notes)
        if np.isnan(lev_col).any():
            notes.append("initial margin at the tier's max leverage where the leverage column "
                         "is empty")
        positions = pd.DataFrame({"notional": notional, "initial": im, "maintenance": mm,
                                  "unrealised_pnl": upnl, "leverage": lev_used, "mmr": mmr,
                                  "mode": np.where(isolated, "isolated", "cross")},
                                 index=book.index)
        delta = delta_by_underlying(book, q)
        return MarginReport(self.name, self.params.rule_version, account, currency,
                            float(im.sum()), float(mm.sum()), equity, usd, positions,
                            delta_total=delta, notes=tuple(notes))
