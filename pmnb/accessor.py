"""The ``df.pm`` pandas accessor: the book's questions as methods that read like sentences.

This facade sits at the top of pmnb's import graph: it may call every layer (book, market,
pricing; margin and stress arrive with their issues), while those layers never import it.
Registered on ``import pmnb``.

Examples
--------
>>> import pandas as pd, pmnb
>>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0}, vols={"BTC": 0.5})
>>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
...                      "symbol": ["BTC-27MAR26-110000-C"], "size": [2.0]})
>>> book.pm.greeks(m)[["delta_coin", "delta_usd"]].round(2)
   delta_coin  delta_usd
0        0.67   66670.76
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from pmnb import book as _book

__all__ = ["PmAccessor"]

#: How many frames keep their validated book cached (least recently used are dropped).
CACHE_SIZE = 8

_VALIDATED: OrderedDict[int, tuple[weakref.ref, tuple, pd.DataFrame, pd.DataFrame]] = OrderedDict()


def _address(values: Any) -> Any:
    """Address of the buffer behind a column block (object identity where there is none)."""
    for attr in ("codes", "asi8"):          # Categorical, DatetimeArray
        if hasattr(values, attr):
            values = getattr(values, attr)
            break
    try:
        return np.asarray(values).__array_interface__["data"][0]
    except (TypeError, ValueError, AttributeError):   # pragma: no cover - exotic arrays
        return id(values)


def _fingerprint(frame: pd.DataFrame) -> tuple:
    """What identifies the contents of ``frame`` while a shallow copy of it is alive.

    Under pandas copy-on-write, writing into a frame whose blocks another frame references
    copies the written block first, so an edited, replaced, added or removed column changes
    the buffer addresses or the column labels; a new index changes its identity."""
    try:
        arrays = frame._mgr.arrays          # the blocks (fast); public fallback below
    except AttributeError:                  # pragma: no cover - pandas internals moved
        arrays = [frame[c].array for c in frame.columns]
    return (tuple(frame.columns), id(frame.index), frame.shape,
            tuple((str(getattr(a, "dtype", "")), _address(a)) for a in arrays))


def _validated(frame: pd.DataFrame) -> pd.DataFrame:
    """The validated book of ``frame``, cached while ``frame`` is unchanged.

    The cache keeps a shallow copy of ``frame``: its reference makes pandas copy any block
    the user later writes into, which changes the fingerprint, so an edited frame is always
    validated again. The cached book itself is never handed out (callers get shallow copies)
    and is frozen for :mod:`pmnb.book`'s memoised derived data."""
    key, fp = id(frame), _fingerprint(frame)
    hit = _VALIDATED.get(key)
    if hit is not None and hit[0]() is frame and hit[1] == fp:
        _VALIDATED.move_to_end(key)
        return hit[3]
    book = _book.validate_positions(frame)          # raises on bad input: nothing cached
    _book._freeze(book)
    keeper = frame.copy(deep=False)                 # holds the blocks: writes must copy
    _VALIDATED[key] = (weakref.ref(frame, lambda _r, k=key: _VALIDATED.pop(k, None)), fp,
                       keeper, book)
    _VALIDATED.move_to_end(key)
    while len(_VALIDATED) > CACHE_SIZE:
        _VALIDATED.popitem(last=False)
    return book


@pd.api.extensions.register_dataframe_accessor("pm")
class PmAccessor:
    """``df.pm``: validation, valuation, greeks and exposures of a positions frame.

    Every method validates the frame first (:func:`pmnb.book.validate_positions`) and returns a
    DataFrame aligned to the input's index (or grouped, for exposures). The validated book is
    cached per frame (the last :data:`CACHE_SIZE` frames) and reused while the frame is
    unchanged: any edit (a written cell, a replaced, added or removed column, a new index) is
    detected and the frame is validated again.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def validate(self) -> pd.DataFrame:
        """The validated, typed book (a copy).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> pd.DataFrame({"account": ["a"], "venue": ["binance"], "symbol": ["BTCUSDT"],
        ...               "size": [1.0]}).pm.validate()["kind"].tolist()
        ['perpetual']
        """
        return _validated(self._frame).copy(deep=False)

    def value(self, market) -> pd.DataFrame:
        """Mark every position to ``market`` (see :func:`pmnb.book.value_positions`).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3000.0},
        ...                           marks={"binance:ETHUSDT": 3100.0})
        >>> pd.DataFrame({"account": ["a"], "venue": ["binance"], "symbol": ["ETHUSDT"],
        ...               "size": [2.0], "entry_price": [3000.0]}).pm.value(m)["value_usd"].tolist()
        [200.0]
        """
        return _book.value_positions(_validated(self._frame), market)

    def greeks(self, market, units: str = "desk") -> pd.DataFrame:
        """Per-position greeks scaled by size (see :func:`pmnb.book.position_greeks`).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3000.0},
        ...                           marks={"binance:ETHUSDT": 3000.0})
        >>> pd.DataFrame({"account": ["a"], "venue": ["binance"], "symbol": ["ETHUSDT"],
        ...               "size": [-2.0], "entry_price": [3000.0]}).pm.greeks(m)["delta_usd"].tolist()
        [-6000.0]
        """
        return _book.position_greeks(_validated(self._frame), market, units=units)

    def exposures(self, market, by: Sequence[str] = ("underlying", "expiry"),
                  units: str = "desk") -> pd.DataFrame:
        """Net delta (coin and USD), gamma, gamma per 1%, vega and theta (USD) by group.

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3000.0},
        ...                           marks={"binance:ETHUSDT": 3000.0, "dydx:ETH-USD": 3000.0})
        >>> book = pd.DataFrame({"account": ["a", "b"], "venue": ["binance", "dydx"],
        ...                      "symbol": ["ETHUSDT", "ETH-USD"], "size": [-2.0, 3.0],
        ...                      "entry_price": [3000.0, 2900.0]})
        >>> book.pm.exposures(m, by=["underlying"])["delta_coin"].tolist()
        [1.0]
        """
        return _book.exposures(_validated(self._frame), market, by=list(by), units=units)

    def scenario(self, market, spot_shocks, vol_shocks=0.0, horizon=None) -> pd.DataFrame:
        """Full revaluation on a spot × vol grid after ``horizon`` (tidy; see
        :func:`pmnb.book.scenario_grid`).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3000.0},
        ...                           marks={"binance:ETHUSDT": 3000.0})
        >>> grid = pd.DataFrame({"account": ["a"], "venue": ["binance"], "symbol": ["ETHUSDT"],
        ...     "size": [-1.0], "entry_price": [3000.0]}).pm.scenario(m, [-0.3, 0.0, 0.3])
        >>> grid["pnl"].tolist()
        [900.0, 0.0, -900.0]
        """
        return _book.scenario_grid(_validated(self._frame), market, spot_shocks, vol_shocks,
                                   horizon=horizon)

    def margin(self, market, accounts: pd.DataFrame, collateral: pd.DataFrame | None = None,
               models=None):
        """Margin report per account, each under its venue's model (see
        :func:`pmnb.margin.compute_accounts`); ``.summary()`` gives one row per account.

        Examples
        --------
        >>> import pmnb.demo
        >>> accounts, collateral, book, market = pmnb.demo.portfolio(fit_vols=False)
        >>> reports = book.pm.margin(market, accounts, collateral)
        >>> reports["binance-usdm"].model
        'binance.usdm'
        """
        from pmnb import margin  # the facade may reach every layer

        return margin.compute_accounts(self._frame, market, accounts, collateral, models)

    def pnl_explain(self, market_t0, market_t1) -> pd.DataFrame:
        """P&L from ``market_t0`` to ``market_t1`` by greek, with the residual against full
        revaluation (see :func:`pmnb.book.pnl_explain`).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m0 = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3000.0},
        ...                            marks={"binance:ETHUSDT": 3000.0})
        >>> m1 = pmnb.Market.from_dict("2026-01-02", spots={"ETH": 3100.0},
        ...                            marks={"binance:ETHUSDT": 3100.0})
        >>> pd.DataFrame({"account": ["a"], "venue": ["binance"], "symbol": ["ETHUSDT"],
        ...               "size": [2.0], "entry_price": [2950.0]}).pm.pnl_explain(m0, m1)[
        ...     ["delta", "residual"]].values.tolist()
        [[200.0, 0.0]]
        """
        return _book.pnl_explain(_validated(self._frame), market_t0, market_t1)
