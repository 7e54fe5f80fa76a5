"""dYdX v4 (dYdX Chain) perpetuals: per-market IMF/MMF, cross account, USDC collateral.

Margin (dYdX v4 docs, "Margin", https://docs.dydx.exchange/concepts/trading/margin, source
dydxprotocol/v4-documentation ``docs/pages/concepts/trading/margin.mdx``)::

    notional_i = |S_i| × P_i                        (P = oracle price)
    initial = Σ_i notional_i × IMF_i;  maintenance = Σ_i notional_i × MMF_i
    equity (total account value) = Q_usdc + Σ_i S_i × P_i;  free collateral = equity − initial

pmnb books hold the deposit and the entry price, so ``Q_usdc + S·P`` is written
``collateral + S·(P − entry)``: USDC collateral of the account + unrealised P&L (equal when
``Q_usdc = collateral − S·entry``). The market's venue mark ``dydx:<symbol>`` is taken as the
oracle price. Positions with ``isolated_margin`` set are isolated subaccounts: their equity is
``isolated_margin`` + unrealised P&L.

Liquidity tiers (dYdX v4 docs, "Funding"): Large-Cap IMF 5% / MMF 3%, Mid-Cap 10% / 5%,
Long-Tail 20% / 10% (:data:`LARGE_CAP`, :data:`MID_CAP`, :data:`LONG_TAIL`). Only BTC-USD's tier
is documented in the reference (Large-Cap: "BTC: 600% × (5% − 3%)"), so it is the only default;
pass others with ``pmnb.margin.get("dydx.v4", markets={"ETH-USD": LARGE_CAP})`` after checking
the market's ``liquidity_tier`` on chain. Markets without parameters raise.

Open-interest-based IMF (:func:`effective_imf`) needs the market's open interest, which is
market data: compute it and pass the result as the market's IMF.

Liquidation (dYdX v4 docs, "Liquidations", ``liquidations.mdx``)::

    isolated:  p' = (e − s·p) / (|s|·MMF − s)
    cross:     p' = (e − s·p − MMR_o) / (|s|·MMF − s)

with ``e`` the equity measured at price ``p``, ``s`` the signed size and ``MMR_o`` the
maintenance requirement of the other positions (:func:`liquidation_price`).

Examples
--------
>>> import pmnb.margin
>>> pmnb.margin.get("dydx.v4").params.markets["BTC-USD"]
MarketTier(imf=0.05, mmf=0.03)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError
from pmnb.margin import (MarginModel, MarginParams, MarginReport, delta_by_underlying,
                         perp_equity, register, usd_per_unit, wallet_balance)

__all__ = [
    "LARGE_CAP",
    "LONG_TAIL",
    "MID_CAP",
    "DydxV4",
    "DydxV4Params",
    "MarketTier",
    "effective_imf",
    "liquidation_price",
]


@dataclasses.dataclass(frozen=True)
class MarketTier:
    """Initial and maintenance margin fractions of one market (decimals)."""

    imf: float
    mmf: float

    def __post_init__(self) -> None:
        if not (0.0 < self.mmf <= self.imf <= 1.0):
            raise ValidationError(f"markets: imf={self.imf!r}, mmf={self.mmf!r}; accepted: "
                                  "0 < mmf <= imf <= 1", field="markets")


#: Liquidity tiers of the dYdX v4 funding page.
LARGE_CAP = MarketTier(0.05, 0.03)
MID_CAP = MarketTier(0.10, 0.05)
LONG_TAIL = MarketTier(0.20, 0.10)


@dataclasses.dataclass(frozen=True)
class DydxV4Params(MarginParams):
    """dYdX v4 parameters: ``markets`` maps a market (``"BTC-USD"``) to its :class:`MarketTier`."""

    rule_version: str = "dydx-v4-liquidity-tiers-large-cap-5-3"
    source: str = ("https://docs.dydx.exchange/concepts/trading/margin and .../funding "
                   "(dydxprotocol/v4-documentation, margin.mdx, funding.mdx)")
    markets: Any = dataclasses.field(default_factory=lambda: {"BTC-USD": LARGE_CAP})


def effective_imf(base_imf: Any, open_notional: Any, lower_cap: float, upper_cap: float) -> Any:
    """Open-interest-scaled IMF: ``min(base + max(scaling·(1 − base), 0), 1)``.

    ``scaling = (open_notional − lower_cap) / (upper_cap − lower_cap)``, with ``open_notional``
    the market's open interest × oracle price (dYdX v4 docs, "Margin"). The MMF is unchanged.

    Examples
    --------
    >>> effective_imf(0.2, [10e6, 25e6, 37.5e6, 50e6, 60e6], 25e6, 50e6).round(6).tolist()
    [0.2, 0.2, 0.6, 1.0, 1.0]
    """
    if not upper_cap > lower_cap:
        raise ValidationError(f"upper_cap: {upper_cap!r}; accepted: > lower_cap ({lower_cap!r})",
                              field="upper_cap")
    base = np.asarray(base_imf, dtype=float)
    scaling = (np.asarray(open_notional, dtype=float) - lower_cap) / (upper_cap - lower_cap)
    out = np.minimum(base + np.maximum(scaling * (1.0 - base), 0.0), 1.0)
    return float(out) if out.ndim == 0 else out


def liquidation_price(price: Any, size: Any, equity: Any, mmf: Any, *,
                      maintenance_other: Any = 0.0) -> Any:
    """Oracle price at which the account's equity equals its maintenance requirement.

    ``p' = (e − s·p − MMR_o) / (|s|·MMF − s)`` (dYdX v4 docs, "Liquidations"): the solution of
    ``e + s·(p' − p) = |s|·p'·MMF + MMR_o``.

    Parameters
    ----------
    price : float or array
        Oracle price at which ``equity`` is measured.
    size : float or array
        Signed size in coins (short < 0).
    equity : float or array
        Account (or isolated subaccount) equity in USDC at ``price``.
    mmf : float or array
        The market's maintenance margin fraction.
    maintenance_other : float or array
        Cross: maintenance requirement of the other positions, held fixed (0 for isolated).

    Returns
    -------
    float or ndarray
        NaN for a zero size. A long's value ``<= 0`` means never liquidated; a short's ``<= 0``
        means liquidatable at every price.

    Examples
    --------
    >>> round(liquidation_price(3_000.0, -3.0, 1_000.0, 0.05), 2)
    3174.6
    """
    p, s, e, m, mo = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                           (price, size, equity, mmf, maintenance_other)))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (e - s * p - mo) / (np.abs(s) * m - s)
    out = np.where(s == 0, np.nan, out)
    return float(out) if out.ndim == 0 else out


@register("dydx.v4")
class DydxV4(MarginModel):
    """dYdX v4 perpetuals margin (see the module docstring).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 100_000.0},
    ...                           marks={"dydx:BTC-USD": 100_000.0})
    >>> book = pd.DataFrame({"account": ["d"], "venue": ["dydx"], "symbol": ["BTC-USD"],
    ...                      "size": [0.5], "entry_price": [90_000.0]})
    >>> coll = pd.DataFrame({"account": ["d"], "asset": ["USDC"], "balance": [1_000.0]})
    >>> r = pmnb.margin.compute(book, m, "dydx.v4", account="d", collateral=coll)
    >>> round(r.initial, 6), round(r.maintenance, 6), round(r.equity, 6)
    (2500.0, 1500.0, 6000.0)
    """

    name = "dydx.v4"
    kinds = ("perpetual",)
    params_type = DydxV4Params

    def market(self, symbol: str) -> MarketTier:
        """IMF/MMF of ``symbol`` (raises naming how to pass them when absent)."""
        table: Mapping[str, Any] = self.params.markets
        if symbol not in table:
            raise ValidationError(f"dydx.v4: no IMF/MMF for {symbol!r}; pass the market's "
                                  f"liquidity tier: pmnb.margin.get('dydx.v4', markets="
                                  f"{{{symbol!r}: MarketTier(imf, mmf)}}); available: "
                                  f"{sorted(table)}", field="markets")
        t = table[symbol]
        return t if isinstance(t, MarketTier) else MarketTier(*t)

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        from pmnb.book import value_positions

        if orders is not None and len(orders):
            raise ValidationError("orders: dydx.v4 does not margin open orders in this version; "
                                  "pass orders=None", field="orders")
        for sym in book["symbol"].astype(str).unique():
            self.market(sym)  # unknown markets raise before any pricing
        val = value_positions(book, market)
        q = (book["size"] * book["contract_size"]).to_numpy(dtype=float)
        notional = np.abs(q) * val["price"].to_numpy(dtype=float)
        n = len(book)
        imf, mmf = np.zeros(n), np.zeros(n)
        for sym, idx in book.groupby(book["symbol"].astype(str), sort=False).indices.items():
            t = self.market(sym)
            imf[idx], mmf[idx] = t.imf, t.mmf
        im, mm = notional * imf, notional * mmf
        upnl = val["value"].to_numpy(dtype=float)
        iso_m = book["isolated_margin"].to_numpy(dtype=float)
        isolated = ~np.isnan(iso_m)
        currency = "USDC"
        notes = ["oracle price taken from the market's venue mark"]
        wallet = wallet_balance(collateral, currency, notes)
        equity = perp_equity(wallet, upnl, iso_m)
        if (~np.isnan(book["leverage"].to_numpy(dtype=float))).any():
            notes.append("leverage column ignored: dYdX v4 margins at the market's IMF")
        usd = usd_per_unit(market, currency, notes)
        positions = pd.DataFrame({"notional": notional, "initial": im, "maintenance": mm,
                                  "unrealised_pnl": upnl, "imf": imf, "mmf": mmf,
                                  "mode": np.where(isolated, "isolated", "cross")},
                                 index=book.index)
        delta = delta_by_underlying(book, q)
        return MarginReport(self.name, self.params.rule_version, account, currency,
                            float(im.sum()), float(mm.sum()), equity, usd, positions,
                            delta_total=delta, notes=tuple(notes))
