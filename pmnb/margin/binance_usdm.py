"""Binance USDⓈ-M futures: tiered maintenance brackets, cross and isolated, one-way and hedge.

Maintenance margin per position (Binance, "Leverage and Margin of USDⓈ-M Futures" and
"How to Calculate Liquidation Price of USDⓈ-M Futures Contracts",
https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93)::

    notional = |size × contract_size| × mark
    MM = notional × MMR(bracket of notional) − cum(bracket)
    cum_0 = 0, cum_n = cum_{n−1} + floor_n × (MMR_n − MMR_{n−1})

Initial margin is ``notional / leverage`` with the position's ``leverage`` column, or the
bracket's maximum leverage when the column is empty (documented default; Binance applies the
leverage the user set). Brackets come from ``GET /fapi/v1/leverageBracket``; the shipped default
is the BTCUSDT table of Binance's announcement of 2021-03-18 — a dated snapshot: pass current
brackets with ``pmnb.margin.get("binance.usdm", brackets={...})``. Symbols without brackets raise
(pmnb never invents a tier table).

Cross: equity = wallet balance (USDT or USDC collateral of the account) + unrealised P&L of all
positions at mark. Isolated: each position's ``isolated_margin`` + its unrealised P&L. Hedge mode
positions (long and short of one symbol) are margined separately, as Binance does.

Examples
--------
>>> import pmnb.margin
>>> m = pmnb.margin.get("binance.usdm")
>>> [b.mmr for b in m.params.brackets["BTCUSDT"][:3]]
[0.004, 0.005, 0.01]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError
from pmnb.margin import (MarginModel, MarginParams, MarginReport, delta_by_underlying,
                         perp_equity, register, usd_per_unit, wallet_balance)

__all__ = ["Bracket", "BinanceUSDMParams", "BinanceUSDM", "brackets_with_cum"]


@dataclasses.dataclass(frozen=True)
class Bracket:
    """One notional tier: ``[floor, cap)`` in USDT, maintenance rate, max leverage, ``cum``."""

    floor: float
    cap: float
    mmr: float
    max_leverage: float
    cum: float


def brackets_with_cum(rows: list[tuple[float, float, float, float]]) -> tuple[Bracket, ...]:
    """Build brackets from ``(floor, cap, mmr, max_leverage)`` rows, computing ``cum``.

    ``cum_n = cum_{n-1} + floor_n (MMR_n - MMR_{n-1})`` keeps MM continuous in notional.

    Examples
    --------
    >>> [b.cum for b in brackets_with_cum([(0, 5e4, 0.004, 125), (5e4, 2.5e5, 0.005, 100),
    ...                                     (2.5e5, 1e6, 0.01, 50)])]
    [0.0, 50.0, 1300.0]
    """
    out, cum, prev = [], 0.0, None
    for floor, cap, mmr, lev in rows:
        if prev is not None:
            cum += floor * (mmr - prev)
        out.append(Bracket(float(floor), float(cap), float(mmr), float(lev), round(cum, 8)))
        prev = mmr
    return tuple(out)


#: BTCUSDT, Binance announcement "Updates to Leverage and Margin Tiers", 2021-03-18 (snapshot).
BTCUSDT_2021 = brackets_with_cum([
    (0, 50_000, 0.004, 125), (50_000, 250_000, 0.005, 100), (250_000, 1_000_000, 0.01, 50),
    (1_000_000, 10_000_000, 0.025, 20), (10_000_000, 20_000_000, 0.05, 10),
    (20_000_000, 50_000_000, 0.10, 5), (50_000_000, 100_000_000, 0.125, 4),
    (100_000_000, 200_000_000, 0.15, 3), (200_000_000, 300_000_000, 0.25, 2),
    (300_000_000, 500_000_000, 0.50, 1)])


@dataclasses.dataclass(frozen=True)
class BinanceUSDMParams(MarginParams):
    """Binance USDⓈ-M parameters: brackets per symbol (override with current API tables)."""

    rule_version: str = "binance-usdm-brackets-2021-03-18"
    source: str = ("https://www.binance.com/en/support/announcement/"
                   "86cf9aa472574b8cb2e05bb751c2a9a6 (BTCUSDT tiers, 2021-03-18)")
    brackets: Any = dataclasses.field(default_factory=lambda: {"BTCUSDT": BTCUSDT_2021})


def bracket_of(brackets: tuple[Bracket, ...], notional: np.ndarray) -> np.ndarray:
    """Index of the bracket holding each notional (``floor <= notional < cap``).

    Examples
    --------
    >>> bracket_of(BTCUSDT_2021, np.array([0.0, 50_000.0, 264_000.0])).tolist()
    [0, 1, 2]
    """
    floors = np.array([b.floor for b in brackets])
    idx = np.searchsorted(floors, notional, side="right") - 1
    cap = brackets[-1].cap
    if np.any(notional >= cap):
        raise ValidationError(f"notional: {float(np.max(notional)):,.2f} USDT is above the last "
                              f"bracket's cap {cap:,.0f}; accepted: below it (or pass brackets)",
                              field="notional")
    return idx


@register("binance.usdm")
class BinanceUSDM(MarginModel):
    """Binance USDⓈ-M futures margin (see the module docstring)."""

    name = "binance.usdm"
    kinds = ("perpetual", "future")
    params_type = BinanceUSDMParams

    def maintenance(self, symbol: str, notional: Any) -> np.ndarray:
        """Maintenance margin (USDT) of positions of ``symbol`` at these notionals.

        Examples
        --------
        >>> round(float(BinanceUSDM().maintenance("BTCUSDT", 3_500_032.458)), 5)
        71200.81145
        """
        brackets = self._brackets(symbol)
        n = np.abs(np.asarray(notional, dtype=float))
        i = bracket_of(brackets, n)
        mmr = np.array([b.mmr for b in brackets])[i]
        cum = np.array([b.cum for b in brackets])[i]
        return n * mmr - cum

    def _brackets(self, symbol: str) -> tuple[Bracket, ...]:
        table = self.params.brackets
        if symbol not in table:
            raise ValidationError(f"binance.usdm: no brackets for {symbol!r}; pass the venue's "
                                  f"current table: pmnb.margin.get('binance.usdm', brackets="
                                  f"{{...}}); available: {sorted(table)}", field="brackets")
        return tuple(table[symbol])

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        from pmnb.book import value_positions

        if orders is not None and len(orders):
            raise ValidationError("orders: binance.usdm does not margin open orders in this "
                                  "version; pass orders=None", field="orders")
        val = value_positions(book, market)
        q = (book["size"] * book["contract_size"]).to_numpy()
        mark = val["price"].to_numpy()
        notional = np.abs(q) * mark
        mm = np.zeros(len(book))
        im = np.zeros(len(book))
        for sym, idx in book.groupby(book["symbol"].astype(str), sort=False).indices.items():
            mm[idx] = self.maintenance(sym, notional[idx])
            brackets = self._brackets(sym)
            lev = book["leverage"].to_numpy()[idx]
            max_lev = np.array([b.max_leverage for b in brackets])[bracket_of(brackets,
                                                                            notional[idx])]
            use = np.where(np.isnan(lev), max_lev, lev)
            if np.any(use > max_lev + 1e-12):
                j = int(np.flatnonzero(use > max_lev + 1e-12)[0])
                raise ValidationError.for_field("leverage", row=book.index[idx[j]],
                                                value=float(use[j]),
                                                accepted=f"<= {max_lev[j]:g}x at this notional")
            im[idx] = notional[idx] / use
        upnl = val["value"].to_numpy()
        quote = sorted(set(book["quote"].astype(str))) or ["USDT"]
        currency = quote[0] if len(quote) == 1 else "USDT"
        isolated = ~np.isnan(book["isolated_margin"].to_numpy())
        notes: list[str] = []
        wallet = wallet_balance(collateral, currency, notes)
        equity = perp_equity(wallet, upnl, book["isolated_margin"].to_numpy())
        usd = usd_per_unit(market, currency, notes)
        positions = pd.DataFrame({"notional": notional, "initial": im, "maintenance": mm,
                                  "unrealised_pnl": upnl,
                                  "mode": np.where(isolated, "isolated", "cross")},
                                 index=book.index)
        delta = delta_by_underlying(book, q)
        return MarginReport(self.name, self.params.rule_version, account, currency,
                            float(im.sum()), float(mm.sum()), equity, usd, positions,
                            delta_total=delta, notes=tuple(notes))
