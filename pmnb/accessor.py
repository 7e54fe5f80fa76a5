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

from collections.abc import Sequence

import pandas as pd

from pmnb import book as _book

__all__ = ["PmAccessor"]


@pd.api.extensions.register_dataframe_accessor("pm")
class PmAccessor:
    """``df.pm``: validation, valuation, greeks and exposures of a positions frame.

    Every method validates the frame first (:func:`pmnb.book.validate_positions`) and returns a
    DataFrame aligned to the input's index (or grouped, for exposures).
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
        return _book.validate_positions(self._frame)

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
        return _book.value_positions(self.validate(), market)

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
        return _book.position_greeks(self.validate(), market, units=units)

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
        return _book.exposures(self.validate(), market, by=list(by), units=units)

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
        return _book.scenario_grid(self.validate(), market, spot_shocks, vol_shocks,
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
        return _book.pnl_explain(self.validate(), market_t0, market_t1)
