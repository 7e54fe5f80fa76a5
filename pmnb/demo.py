"""The demo portfolio: accounts, book and market of 2025-12-31 09:18 UTC, ready to use.

A facade like :mod:`pmnb.accessor` (top of the import graph). Everything comes from the shipped
data (:mod:`pmnb.datasets`): the Deribit snapshot gives spots, forward curves, perpetual marks and
SVI surfaces; Binance, Hyperliquid and dYdX marks are not in the shipped data, so they are set to
the Deribit index and each substitution is recorded in the market's provenance.

Examples
--------
>>> import pmnb.demo
>>> accounts, collateral, book, market = pmnb.demo.portfolio()
>>> len(book), market.provenance["mark:binance:BTCUSDT"].note
(15, 'substituted: the shipped data has no Binance mark at this time; Deribit index used')
"""

from __future__ import annotations

import functools

import pandas as pd

from pmnb import book as _book
from pmnb import datasets
from pmnb.market import Market

__all__ = ["market", "portfolio"]

_SUBSTITUTES = (("binance", "BTCUSDT", "BTC", "Binance"), ("binance", "ETHUSDT", "ETH", "Binance"),
                ("hyperliquid", "BTC", "BTC", "Hyperliquid"),
                ("hyperliquid", "ETH", "ETH", "Hyperliquid"),
                ("dydx", "BTC-USD", "BTC", "dYdX"), ("dydx", "ETH-USD", "ETH", "dYdX"))


@functools.lru_cache(maxsize=2)
def market(fit_vols: bool = True) -> Market:
    """The 2025-12-31 09:18 UTC Deribit market with the documented mark substitutions.

    Examples
    --------
    >>> m = market(fit_vols=False)
    >>> m.mark("hyperliquid", "ETH") == m.spot("ETH")
    True
    """
    m = Market.from_deribit("2025-12-31", fit_vols=fit_vols)
    for venue, symbol, underlying, name in _SUBSTITUTES:
        m = m.with_marks({f"{venue}:{symbol}": m.spot(underlying)},
                         source=f"deribit index {underlying}",
                         note=f"substituted: the shipped data has no {name} mark at this time; "
                              "Deribit index used")
    return m


def portfolio(fit_vols: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, Market]:
    """``(accounts, collateral, book, market)``: validated demo accounts and book, and the market.

    Examples
    --------
    >>> accounts, collateral, book, m = portfolio(fit_vols=False)
    >>> sorted(book["kind"].astype(str).unique())
    ['future', 'lending_borrow', 'lending_supply', 'lp', 'option', 'perpetual']
    """
    accounts, collateral = _book.validate_accounts(*datasets.load_demo_accounts())
    book = _book.read_positions(datasets.load_demo_book(), accounts)
    return accounts, collateral, book, market(fit_vols)
