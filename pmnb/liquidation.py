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
        One row per crossing: ``direction`` (down / up), ``spot_shock``, ``underlying``,
        ``price`` (that underlying's index at the crossing), ``distance_pct``.
    status : str
        ``"liquidation prices found"``, ``"no liquidation price between … and …"`` or
        ``"already at or below maintenance"``.
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
    rep = _margin.compute(book, market.shocked(s), model, account=account, collateral=collateral)
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
    gaps = np.array([_gap(book, market, mdl, account, collateral, s) for s in g])
    base = gaps[g == 0.0][0]
    rows = []
    for i in range(len(g) - 1):
        a, b = gaps[i], gaps[i + 1]
        if a == 0.0 or np.sign(a) == np.sign(b):
            continue
        s = brentq(lambda x: _gap(book, market, mdl, account, collateral, x), g[i], g[i + 1],
                   xtol=xtol, rtol=4 * np.finfo(float).eps)
        rows.append(s)
    from pmnb.book import validate_positions

    v = validate_positions(book)
    if account is not None:
        v = v[v["account"].astype(str) == account]
    unders = [u for u in dict.fromkeys(v["underlying"].astype(str))
              if u in market.spots and u.upper() not in ("USD", "USDC", "USDT", "DAI")]
    table = pd.DataFrame([{"direction": "down" if s < 0 else "up", "spot_shock": s,
                           "underlying": u, "price": market.spot(u) * (1 + s),
                           "distance_pct": 100.0 * s} for s in rows for u in unders],
                         columns=["direction", "spot_shock", "underlying", "price",
                                  "distance_pct"])
    if base <= 0:
        status = "already at or below maintenance"
    elif rows:
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
