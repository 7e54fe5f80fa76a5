"""pmnb: crypto-derivatives portfolios for Jupyter.

The public face: pricing and greeks of linear and inverse options from a compiled core, the
error types, and the shipped datasets (:mod:`pmnb.datasets`).

Examples
--------
>>> import pmnb
>>> float(pmnb.price(100.0, 100.0, 1.0, 0.2, option_type="call")).__round__(6)
7.965567
"""

from pmnb import datasets, market, pricing
from pmnb._version import __version__
from pmnb.errors import ChainError, DataError, PmnbError, StaleDataError, ValidationError
from pmnb.market import ForwardCurve, Market
from pmnb.pricing import GREEKS, ImpliedVol, IVReason, greeks, implied_vol, price

__all__ = [
    "ChainError",
    "DataError",
    "ForwardCurve",
    "GREEKS",
    "IVReason",
    "ImpliedVol",
    "Market",
    "PmnbError",
    "StaleDataError",
    "ValidationError",
    "__version__",
    "datasets",
    "greeks",
    "implied_vol",
    "market",
    "price",
    "pricing",
]
