"""pmnb: crypto-derivatives portfolios for Jupyter.

The public face: pricing and greeks of linear and inverse options from a compiled core, the
error types, and the shipped datasets (:mod:`pmnb.datasets`).

Examples
--------
>>> import pmnb
>>> float(pmnb.price(100.0, 100.0, 1.0, 0.2, option_type="call")).__round__(6)
7.965567
"""

from pmnb import accessor as _accessor  # noqa: F401 - importing it registers df.pm
from pmnb import (adl, book, datasets, defi, demo, instruments, ledger, liquidation, margin,
                  market, pricing, scenarios, vol)
from pmnb._version import __version__
from pmnb.errors import ChainError, DataError, PmnbError, StaleDataError, ValidationError
from pmnb.book import read_positions, validate_positions
from pmnb.instruments import Instrument, parse_symbol, parse_symbols
from pmnb.ledger import positions_from_trades
from pmnb.market import ForwardCurve, Market
from pmnb.pricing import GREEKS, ImpliedVol, IVReason, greeks, implied_vol, price

__all__ = [
    "ChainError",
    "DataError",
    "ForwardCurve",
    "GREEKS",
    "IVReason",
    "ImpliedVol",
    "Instrument",
    "Market",
    "PmnbError",
    "StaleDataError",
    "ValidationError",
    "__version__",
    "adl",
    "book",
    "datasets",
    "defi",
    "demo",
    "greeks",
    "implied_vol",
    "instruments",
    "ledger",
    "liquidation",
    "margin",
    "market",
    "parse_symbol",
    "parse_symbols",
    "positions_from_trades",
    "price",
    "pricing",
    "read_positions",
    "scenarios",
    "validate_positions",
    "vol",
]
