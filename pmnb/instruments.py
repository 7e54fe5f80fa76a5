r"""Instrument kinds, settlement, contract specifications and venue symbol parsing.

An :class:`Instrument` is the structured reading of one venue symbol: what is traded (``kind``),
on what (``underlying`` quoted in ``quote``), how it settles (``settlement``: ``inverse`` = in the
coin, ``linear`` = in the quote or a stablecoin), its option terms (``strike``, ``expiry``,
``option_type``) and how much one contract is (``contract_size`` in ``contract_size_unit``).
:func:`parse_symbol` reads one symbol; :func:`parse_symbols` reads a column of them into a typed
DataFrame aligned to the input's index, parsing each distinct (symbol, venue) pair once.

This module sits low in the import graph: it imports only the standard library, NumPy, pandas and
:mod:`pmnb.errors`.

Supported formats
-----------------
Venue names are case-insensitive; symbols are read case-insensitively too (Hyperliquid's ``k``
prefix, as in ``kPEPE``, is kept). ``D`` is the day of month in one or two digits, ``MON`` the
three-letter English month, ``YY`` / ``YYMMDD`` the year and date, ``K`` the strike (Deribit
writes a decimal point as ``d``: ``0d625`` = 0.625). ``inv`` = inverse (settles in the coin),
``lin`` = linear (settles in the quote / stablecoin; Hyperliquid and dYdX in USDC).

===========  ===============================  ===============================  =========  ====
venue        format                           example                          kind       sett
===========  ===============================  ===============================  =========  ====
deribit      ``COIN-DMONYY-K-C|P``            ``BTC-27DEC24-60000-C``          option     inv
deribit      ``COIN_USDC-DMONYY-K-C|P``       ``XRP_USDC-30JUN23-0d625-C``     option     lin
deribit      ``COIN-PERPETUAL``               ``BTC-PERPETUAL``                perpetual  inv
deribit      ``COIN_USDC-PERPETUAL``          ``ETH_USDC-PERPETUAL``           perpetual  lin
deribit      ``COIN-DMONYY``                  ``BTC-27DEC24``, ``BTC-1JAN26``  future     inv
deribit      ``COIN_USDC-DMONYY``             ``BTC_USDC-27DEC24``             future     lin
deribit      ``BASE_QUOTE``                   ``BTC_USDC``                     spot       lin
deribit      ``SYN.COIN-DMONYY``              ``SYN.BTC-1JAN26``               synthetic  inv
binance      ``COINUSDT``, ``COINUSDC``       ``BTCUSDT``, ``BTCUSDC``         perpetual  lin
binance      ``COINUSDT_YYMMDD``              ``BTCUSDT_241227``               future     lin
okx          ``COIN-USD-YYMMDD-K-C|P``        ``BTC-USD-241227-60000-C``       option     inv
okx          ``COIN-USD-SWAP``                ``BTC-USD-SWAP``                 perpetual  inv
okx          ``COIN-USDT-SWAP`` (or USDC)     ``BTC-USDT-SWAP``                perpetual  lin
okx          ``COIN-USD-YYMMDD``              ``BTC-USD-241227``               future     inv
okx          ``COIN-USDT-YYMMDD`` (or USDC)   ``BTC-USDT-241227``              future     lin
okx          ``BASE-QUOTE``                   ``BTC-USDT``                     spot       lin
hyperliquid  ``COIN``                         ``BTC``, ``kPEPE``               perpetual  lin
dydx         ``COIN-USD``                     ``BTC-USD``                      perpetual  lin
===========  ===============================  ===============================  =========  ====

Binance symbols are read as USDⓈ-M futures (a bare ``BTCUSDT`` is the perpetual, not the spot
pair); COIN-M (``BTCUSD_PERP``) and Binance options are not supported and are rejected.
:attr:`Kind.lending_supply`, :attr:`Kind.lending_borrow` and :attr:`Kind.lp` describe DeFi
positions, which have no venue symbol to parse; they exist so that a book can type those rows.
:attr:`Kind.synthetic` is Deribit's synthetic forward (the ``underlying_index`` of option expiries
that have no listed future, e.g. ``SYN.BTC-1JAN26``): a price reference, not a tradable contract.

Expiries
--------
Every dated contract expires at **08:00 UTC** on its date:

* Deribit: "Expirations are always at 08.00 UTC", futures and options alike
  (https://www.deribit.com/docs/contract-specifications/,
  https://www.deribit.com/docs/contract-specifications-options/; daily, weekly, monthly and
  quarterly options "expire ... at 08:00 UTC",
  https://www.deribit.com/pages/information/Introduction_Policy).
* Binance USDⓈ-M delivery: "BTCUSDT Quarterly 0326 indicates that the expiration date is set for
  2021-03-26 8:00 AM (UTC)" (Binance FAQ, USDT-Margined Quarterly Contract Specification and
  Trading Rules, https://www.binance.com/en/support/faq/3ae441db4ae740e19af3fe9228eb6619).
* OKX futures: "Settlement time 4pm HKT" (= 08:00 UTC) (https://www.okx.com/help/7053702553613);
  OKX options at 08:00 UTC as well: reproductions of OKX's option specification state
  "Expiration Time: 08:00 UTC" (OKX's own page, https://www.okx.com/help/360037737011, could not be
  read in full, so this one is not checked against OKX itself).

Contract sizes
--------------
Defaults come from :data:`CONTRACT_SPECS`, one :class:`ContractSpec` per rule, each with its
``source`` and whether pmnb ``verified`` the number against that source. Unverified numbers are
explicit defaults, and where no safe default exists the size is ``NaN`` (value such rows only after
supplying one). Override any of them with ``specs=`` in :func:`parse_symbol` / :func:`parse_symbols`
(keys are :class:`SpecKey`, ``"*"`` matches anything):

========================================  ====================  ===  ===============================
instrument                                contract size         ok?  source
========================================  ====================  ===  ===============================
Deribit BTC options (coin-settled)        1 BTC                 yes  Deribit options contract spec
Deribit ETH options (coin-settled)        1 ETH                 yes  Deribit Insights (USDC options)
Deribit USDC options SOL, XRP, MATIC      10, 1000, 1000 coins  yes  Deribit Insights and support
Deribit USDC options, other coins         1 coin                no   default
Deribit BTC-PERPETUAL, BTC futures        10 USD                yes  Deribit perpetual/futures specs
Deribit ETH-PERPETUAL, ETH futures        1 USD                 no   default (see its source)
Deribit USDC perpetuals and futures       1 coin                yes  Deribit API docs (``amount``)
Binance USDⓈ-M perpetual and delivery     1 coin                yes  Binance USDⓈ-M contract specs
OKX BTC-USD-SWAP, BTC-USD futures         100 USD               yes  OKX perpetual, futures guides
OKX other COIN-USD (ETH ...)              10 USD                no   default (alt-coin face value)
OKX BTC-USDT-SWAP, BTC-USDT futures       0.01 BTC              yes  OKX perpetual, futures guides
OKX ETH-USDT-SWAP, ETH-USDT futures       0.1 ETH               no   default
OKX other USDT / USDC swaps and futures   NaN (supply one)      --   contract values vary by coin
OKX BTC-USD, ETH-USD options              0.01 BTC, 0.1 ETH     yes  OKX, Get started with Options
Hyperliquid perpetuals                    1 coin                yes  Hyperliquid contract specs
dYdX v4 perpetuals                        1 coin                yes  dYdX v4 docs (quantums)
========================================  ====================  ===  ===============================

The full citation (URL and quoted text) of every rule is in its ``ContractSpec.source``.
On Deribit, API ``amount``/``size`` of inverse futures and perpetuals is already in USD (a multiple
of the contract size), and of options and linear contracts in the coin.

Examples
--------
>>> from pmnb.instruments import parse_symbol, parse_symbols
>>> inst = parse_symbol("BTC-27DEC24-60000-C", "deribit")
>>> inst.kind, inst.settlement, inst.underlying, inst.strike
(<Kind.option: 'option'>, <Settlement.inverse: 'inverse'>, 'BTC', 60000.0)
>>> inst.expiry
Timestamp('2024-12-27 08:00:00+0000', tz='UTC')
>>> df = parse_symbols(["BTC-PERPETUAL", "BTC-USDT-SWAP", "BTC"], ["deribit", "okx", "hyperliquid"])
>>> df[["kind", "settlement", "settlement_currency", "contract_size", "contract_size_unit"]]
        kind settlement settlement_currency  contract_size contract_size_unit
0  perpetual    inverse                 BTC          10.00                USD
1  perpetual     linear                USDT           0.01                BTC
2  perpetual     linear                USDC           1.00                BTC
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import functools
import math
import re
import types
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError

__all__ = [
    "CONTRACT_SPECS",
    "INSTRUMENT_COLUMNS",
    "VENUES",
    "ContractSpec",
    "Instrument",
    "Kind",
    "OptionType",
    "Settlement",
    "SpecKey",
    "contract_spec",
    "parse_symbol",
    "parse_symbols",
]


# --------------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------------
class Kind(enum.StrEnum):
    """What an instrument (or a book row) is.

    Examples
    --------
    >>> Kind("perpetual") is Kind.perpetual, Kind.option == "option"
    (True, True)
    """

    option = "option"
    future = "future"
    perpetual = "perpetual"
    spot = "spot"
    lending_supply = "lending_supply"
    lending_borrow = "lending_borrow"
    lp = "lp"
    #: A venue's synthetic forward (Deribit ``SYN.BTC-1JAN26``): a price reference, not tradable.
    synthetic = "synthetic"


class Settlement(enum.StrEnum):
    """How profit and loss settle: ``inverse`` in the coin (Deribit ``BTC-PERPETUAL``), ``linear``
    in the quote currency or a stablecoin (Binance ``BTCUSDT``).

    Examples
    --------
    >>> [s.value for s in Settlement]
    ['inverse', 'linear']
    """

    inverse = "inverse"
    linear = "linear"


class OptionType(enum.StrEnum):
    """``call`` or ``put``.

    Examples
    --------
    >>> OptionType("put").value
    'put'
    """

    call = "call"
    put = "put"


#: Venue names accepted by the parsers (compared case-insensitively).
VENUES: tuple[str, ...] = ("deribit", "binance", "okx", "hyperliquid", "dydx")

_FORMATS: dict[str, str] = {
    "deribit": ("COIN-DMONYY-STRIKE-C|P (BTC-27DEC24-60000-C, BTC-1JAN26-82000-P), "
                "COIN_USDC-DMONYY-STRIKE-C|P (XRP_USDC-30JUN23-0d625-C), COIN-PERPETUAL, "
                "COIN_USDC-PERPETUAL, COIN-DMONYY (BTC-27DEC24), COIN_USDC-DMONYY, BASE_QUOTE spot "
                "(BTC_USDC), SYN.COIN-DMONYY; D = day 1-31 (1 or 2 digits), MON = JAN..DEC, "
                "YY = year, STRIKE > 0 (d = decimal point)"),
    "binance": ("USDⓈ-M futures: COINUSDT or COINUSDC perpetual (BTCUSDT), COINUSDT_YYMMDD "
                "delivery (BTCUSDT_241227)"),
    "okx": ("COIN-USD-YYMMDD-STRIKE-C|P option (BTC-USD-241227-60000-C), COIN-USD-SWAP, "
            "COIN-USDT-SWAP, COIN-USDC-SWAP, COIN-USD-YYMMDD, COIN-USDT-YYMMDD, COIN-USDC-YYMMDD, "
            "BASE-QUOTE spot (BTC-USDT)"),
    "hyperliquid": "perpetual named by its coin alone: BTC, ETH, kPEPE",
    "dydx": "v4 perpetual COIN-USD: BTC-USD, ETH-USD",
}

_MONTHS = {m: i for i, m in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_COIN = re.compile(r"[A-Z0-9]{1,20}")
_EXPIRY_HOUR_UTC = 8
_UTC = _dt.timezone.utc


# --------------------------------------------------------------------------------------------------
# Contract specifications (venue rules as data)
# --------------------------------------------------------------------------------------------------
class SpecKey(NamedTuple):
    """Key of a contract-size rule; ``"*"`` in any field matches every value.

    Examples
    --------
    >>> SpecKey("okx", "linear", "*", "USDT", "DOGE")
    SpecKey(venue='okx', settlement='linear', kind='*', quote='USDT', underlying='DOGE')
    """

    venue: str
    settlement: str
    kind: str
    quote: str
    underlying: str


@dataclasses.dataclass(frozen=True)
class ContractSpec:
    """Size of one contract, and where the number comes from.

    Parameters
    ----------
    contract_size : float
        Size of one contract in ``contract_size_unit``; ``NaN`` when pmnb has no safe default.
    contract_size_unit : str
        ``"USD"``, a coin, or the placeholders ``"{underlying}"`` / ``"{quote}"`` filled in from the
        instrument.
    tick_size : float or None
        Minimum price increment, in the instrument's price unit, where the source documents it.
    source : str
        The venue page (or other evidence) the numbers come from.
    verified : bool
        Whether the number was checked against ``source``; ``False`` marks an explicit default.

    Examples
    --------
    >>> spec = ContractSpec(1000.0, "DOGE", source="my venue export")
    >>> spec.contract_size, spec.verified
    (1000.0, True)
    """

    contract_size: float
    contract_size_unit: str
    tick_size: float | None = None
    source: str = ""
    verified: bool = True


_NAN = float("nan")
_SRC = types.SimpleNamespace(
    deribit_options="Deribit, Contract specifications options "
                    "(https://www.deribit.com/docs/contract-specifications-options/): "
                    "'Multiplier: 1 ... Each contract has as underlying only 1BTC'; "
                    "'minimum tick is 0.0001BTC'",
    deribit_eth_options="Deribit Insights, USDC-settled altcoin options "
                        "(https://insights.deribit.com/education/"
                        "usdc-settled-altcoin-options-live-trade-examples): 'The contract "
                        "multiplier for the existing BTC and ETH options has always been 1'",
    deribit_usdc_options="Deribit Insights (URL above) and Deribit support, Linear USDC Options "
                         "(https://support.deribit.com/hc/en-us/articles/"
                         "25944750999581-Linear-USDC-Options): multipliers SOL 10, XRP 1,000, "
                         "MATIC 1,000",
    deribit_usdc_default="unverified default: BTC_USDC/ETH_USDC and other USDC-settled options' "
                         "multiplier not confirmed in a Deribit document; override with specs=",
    deribit_perpetual="Deribit, Deribit Perpetual (https://www.deribit.com/pages/docs/perpetual): "
                      "'1 USD per Index Point, with contract size USD 10'; 'Minimum Tick Size 0.5'",
    deribit_futures="Deribit, Contract Specifications "
                    "(https://www.deribit.com/docs/contract-specifications/): 'Contract size "
                    "US $10'; 'Expirations are always at 08.00 UTC'",
    deribit_eth_inverse="unverified default: 1 USD per contract, as in a Deribit API instrument "
                        "record for ETH-PERPETUAL ('contractSize': 1) quoted in "
                        "github.com/instabot42/instabot-trader/issues/24 (2019); not found on a "
                        "Deribit page",
    deribit_linear="Deribit API docs, 'amount': 'For perpetual and inverse futures the amount is "
                   "in USD units. For options and linear futures it is the underlying base "
                   "currency coin' (https://docs.deribit.com)",
    deribit_inverse_other="no default: Deribit's coin-settled futures and options are BTC and ETH; "
                          "supply the size with specs=",
    synthetic="not tradable: a synthetic forward (Deribit underlying_index) has no contract size",
    spot="spot: one unit of the base asset",
    binance_usdm="Binance, USDⓈ-Margined Futures Contract Specifications "
                 "(https://www.binance.com/en/support/faq/360033161972): 'BTC/USDT, ETH/USDT, and "
                 "BCH/USDT Futures contracts represent only one unit of its respective base asset'",
    okx_options="OKX, Get started with Options "
                "(https://www.okx.com/help/get-started-with-okx-options): 'The contract multiplier "
                "of BTC options is 0.01 and that of ETH options is 0.1'",
    okx_options_other="no default: OKX lists BTC and ETH options only; supply the size with specs=",
    okx_swaps="OKX, I. Perpetual swaps (https://www.okx.com/help/7053456733325): BTCUSD contract "
              "size 100USD, tick 0.1; BTCUSDT contract size 0.01BTC, tick 0.1",
    okx_futures="OKX, I. Futures contracts (https://www.okx.com/help/7053702553613): BTCUSD "
                "contract size 100USD; BTCUSDT contract size 0.01BTC; settlement 4pm HKT",
    okx_inverse_other="unverified default: 10 USD, the face value OKX uses for crypto-margined "
                      "contracts other than BTC (e.g. OPUSD listing notice, May 2024); ETH-USD not "
                      "confirmed on an OKX page",
    okx_eth_linear="unverified default: 0.1 ETH per ETH-USDT contract; not confirmed on an OKX "
                   "page",
    okx_linear_other="no default: OKX USDT/USDC-margined contract values vary by coin; supply the "
                     "size with specs=",
    hyperliquid="Hyperliquid docs, Contract specifications (https://hyperliquid.gitbook.io/"
                "hyperliquid-docs/trading/contract-specifications): 'Instrument type Linear "
                "perpetual; Contract 1 unit of underlying spot asset'; USDC collateral (the oracle "
                "is USDT-denominated for most coins: quanto, no FX conversion; pmnb quotes it as "
                "USD)",
    dydx="dYdX v4 docs, Quantums and Subticks: position sizes are in the base asset "
         "(atomicResolution -10 for BTC means 1 quantum is 1e-10 BTC); all markets quoted in USD "
         "and settled in USDC",
)


def _spec(venue, settlement, kind, quote, underlying, size, unit, source, *, verified=True,
          tick=None):
    return (SpecKey(venue, settlement, kind, quote, underlying),
            ContractSpec(float(size), unit, tick, source, verified))


_U = "{underlying}"

#: Default contract-size rules (read-only). The most specific matching key wins; see
#: :func:`contract_spec`.
CONTRACT_SPECS: Mapping[SpecKey, ContractSpec] = types.MappingProxyType(dict([
    # Deribit
    _spec("deribit", "inverse", "option", "USD", "BTC", 1, "BTC", _SRC.deribit_options,
          tick=0.0001),
    _spec("deribit", "inverse", "option", "USD", "ETH", 1, "ETH", _SRC.deribit_eth_options),
    _spec("deribit", "inverse", "option", "*", "*", _NAN, _U, _SRC.deribit_inverse_other,
          verified=False),
    _spec("deribit", "linear", "option", "USDC", "SOL", 10, "SOL", _SRC.deribit_usdc_options),
    _spec("deribit", "linear", "option", "USDC", "XRP", 1000, "XRP", _SRC.deribit_usdc_options),
    _spec("deribit", "linear", "option", "USDC", "MATIC", 1000, "MATIC", _SRC.deribit_usdc_options),
    _spec("deribit", "linear", "option", "*", "*", 1, _U, _SRC.deribit_usdc_default,
          verified=False),
    _spec("deribit", "inverse", "perpetual", "USD", "BTC", 10, "USD", _SRC.deribit_perpetual,
          tick=0.5),
    _spec("deribit", "inverse", "future", "USD", "BTC", 10, "USD", _SRC.deribit_futures),
    _spec("deribit", "inverse", "*", "USD", "ETH", 1, "USD", _SRC.deribit_eth_inverse,
          verified=False),
    _spec("deribit", "inverse", "*", "*", "*", _NAN, "USD", _SRC.deribit_inverse_other,
          verified=False),
    _spec("deribit", "linear", "*", "*", "*", 1, _U, _SRC.deribit_linear),
    _spec("deribit", "*", "spot", "*", "*", 1, _U, _SRC.spot),
    _spec("deribit", "*", "synthetic", "*", "*", _NAN, "", _SRC.synthetic, verified=False),
    # Binance USDⓈ-M
    _spec("binance", "linear", "*", "*", "*", 1, _U, _SRC.binance_usdm),
    # OKX
    _spec("okx", "inverse", "option", "USD", "BTC", 0.01, "BTC", _SRC.okx_options),
    _spec("okx", "inverse", "option", "USD", "ETH", 0.1, "ETH", _SRC.okx_options),
    _spec("okx", "inverse", "option", "*", "*", _NAN, _U, _SRC.okx_options_other, verified=False),
    _spec("okx", "inverse", "perpetual", "USD", "BTC", 100, "USD", _SRC.okx_swaps, tick=0.1),
    _spec("okx", "inverse", "future", "USD", "BTC", 100, "USD", _SRC.okx_futures),
    _spec("okx", "inverse", "*", "USD", "*", 10, "USD", _SRC.okx_inverse_other, verified=False),
    _spec("okx", "linear", "perpetual", "USDT", "BTC", 0.01, "BTC", _SRC.okx_swaps, tick=0.1),
    _spec("okx", "linear", "future", "USDT", "BTC", 0.01, "BTC", _SRC.okx_futures),
    _spec("okx", "linear", "*", "USDT", "ETH", 0.1, "ETH", _SRC.okx_eth_linear, verified=False),
    _spec("okx", "linear", "*", "*", "*", _NAN, _U, _SRC.okx_linear_other, verified=False),
    _spec("okx", "*", "spot", "*", "*", 1, _U, _SRC.spot),
    # Hyperliquid, dYdX v4
    _spec("hyperliquid", "linear", "perpetual", "*", "*", 1, _U, _SRC.hyperliquid),
    _spec("dydx", "linear", "perpetual", "*", "*", 1, _U, _SRC.dydx),
]))

_NO_SPEC = ContractSpec(_NAN, _U, None, "no matching rule", False)
# Weight of each key field (venue, settlement, kind, quote, underlying) when ranking matches: a rule
# for a kind (synthetic, spot, option) beats one for an underlying, which beats one for a quote.
_WEIGHTS = (64, 1, 32, 4, 8)


def _score(key: tuple, want: tuple) -> int:
    """-1 if ``key`` does not match ``want``, else its specificity (higher = more specific)."""
    score = 0
    for k, w, weight in zip(key, want, _WEIGHTS):
        if k == "*":
            continue
        if k != w:
            return -1
        score += weight
    return score


def _best(table: Mapping, want: tuple) -> Any:
    best, best_score = None, -1
    for key, spec in table.items():
        s = _score(tuple(key), want)
        if s > best_score:
            best, best_score = spec, s
    return best


def _check_specs(specs: Mapping | None) -> dict:
    if specs is None:
        return {}
    if not isinstance(specs, Mapping):
        raise ValidationError(f"specs: got {type(specs).__name__}; accepted: a mapping of "
                              "SpecKey (venue, settlement, kind, quote, underlying) to "
                              "ContractSpec or a number", field="specs")
    out = {}
    for key, val in specs.items():
        if not (isinstance(key, tuple) and len(key) == 5 and all(isinstance(k, str) for k in key)):
            raise ValidationError(f"specs: key {key!r} is not a SpecKey; accepted: "
                                  "(venue, settlement, kind, quote, underlying), '*' = any",
                                  field="specs")
        key = SpecKey(key[0].lower(), *key[1:])
        if isinstance(val, ContractSpec):
            spec = val
        elif isinstance(val, (int, float, np.integer, np.floating)) and not isinstance(val, bool):
            spec = float(val)
        else:
            raise ValidationError(f"specs: value for {tuple(key)!r} is {val!r}; accepted: a "
                                  "ContractSpec or a number (contract size)", field="specs")
        size = spec.contract_size if isinstance(spec, ContractSpec) else spec
        if not (math.isnan(size) or (math.isfinite(size) and size > 0)):
            raise ValidationError(f"specs: contract size for {tuple(key)!r} is {size!r}; "
                                  "accepted: a finite number > 0 (or NaN)", field="specs")
        out[key] = spec
    return out


def contract_spec(venue: str, settlement: str, kind: str, quote: str, underlying: str, *,
                  specs: Mapping | None = None) -> ContractSpec:
    """Contract-size rule for one instrument, with the unit filled in.

    User rules in ``specs`` are tried first, then :data:`CONTRACT_SPECS`; within each, the matching
    key with the most specific fields wins (kind, then underlying, quote, settlement). A number in
    ``specs`` replaces only the size, keeping the default unit and tick size.

    Parameters
    ----------
    venue, settlement, kind, quote, underlying : str
        As in :class:`Instrument` (enum members are accepted).
    specs : mapping, optional
        Extra rules ``{SpecKey or 5-tuple: ContractSpec or number}``; ``"*"`` matches anything.

    Returns
    -------
    ContractSpec
        With ``contract_size_unit`` resolved (``"{underlying}"`` becomes e.g. ``"BTC"``).

    Examples
    --------
    >>> contract_spec("okx", "linear", "perpetual", "USDT", "BTC").contract_size
    0.01
    >>> spec = contract_spec("okx", "linear", "perpetual", "USDT", "DOGE")
    >>> spec.contract_size, spec.contract_size_unit, spec.verified
    (nan, 'DOGE', False)
    >>> contract_spec("okx", "linear", "perpetual", "USDT", "DOGE",
    ...               specs={("okx", "linear", "*", "USDT", "DOGE"): 1000}).contract_size
    1000.0
    """
    return _lookup(_check_specs(specs), str(venue).lower(), str(settlement), str(kind), str(quote),
                   str(underlying))


def _lookup(user: Mapping, venue: str, settlement: str, kind: str, quote: str,
            underlying: str, memo: dict | None = None) -> ContractSpec:
    want = (venue, settlement, kind, quote, underlying)
    if memo is not None:
        hit = memo.get(want)
        if hit is None:
            hit = memo[want] = _lookup(user, *want)
        return hit
    default = _best(CONTRACT_SPECS, want) or _NO_SPEC
    spec = _best(user, want) if user else None
    if spec is None:
        spec = default
    elif not isinstance(spec, ContractSpec):  # a bare number: keep the default's unit
        spec = dataclasses.replace(default, contract_size=float(spec),
                                   source="user override (specs=)", verified=True)
    unit = spec.contract_size_unit.replace("{underlying}", underlying).replace("{quote}", quote)
    return dataclasses.replace(spec, contract_size_unit=unit)


# --------------------------------------------------------------------------------------------------
# Instrument
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instrument:
    """One venue instrument, structured.

    Build it with :func:`parse_symbol`; constructing it directly validates the fields and coerces
    strings to the enums.

    Parameters
    ----------
    venue : str
        Lower-case venue name (one of :data:`VENUES`).
    symbol : str
        The symbol as given.
    kind : Kind
    underlying : str
        Coin the contract is on (``"BTC"``; Hyperliquid ``"kPEPE"`` as named by the venue).
    quote : str
        Currency prices are quoted in: ``"USD"``, ``"USDT"``, ``"USDC"`` ...
    settlement : Settlement
        ``inverse`` (settles in the coin) or ``linear`` (settles in the quote or a stablecoin).
    settlement_currency : str
        The coin for inverse contracts; the quote/stablecoin for linear ones.
    strike : float or None
        Option strike, in ``quote`` per coin.
    expiry : pandas.Timestamp or None
        Expiry (tz-aware, UTC); 08:00 UTC on the symbol's date for every supported venue.
    option_type : OptionType or None
    contract_size : float
        Size of one contract in ``contract_size_unit``; ``NaN`` where pmnb has no default
        (see :data:`CONTRACT_SPECS`).
    contract_size_unit : str
        ``"USD"`` (inverse futures/perpetuals) or a coin.
    tick_size : float or None
        Minimum price increment, where documented.

    Examples
    --------
    >>> inst = Instrument("deribit", "BTC-PERPETUAL", "perpetual", "BTC", "USD", "inverse", "BTC",
    ...                   contract_size=10.0, contract_size_unit="USD")
    >>> inst.kind, inst.is_inverse, inst.expiry is None
    (<Kind.perpetual: 'perpetual'>, True, True)
    """

    venue: str
    symbol: str
    kind: Kind
    underlying: str
    quote: str
    settlement: Settlement
    settlement_currency: str
    strike: float | None = None
    expiry: pd.Timestamp | None = None
    option_type: OptionType | None = None
    contract_size: float = _NAN
    contract_size_unit: str = ""
    tick_size: float | None = None

    def __post_init__(self) -> None:
        def setf(name, value):
            object.__setattr__(self, name, value)

        def enum_of(cls, name, value):
            try:
                return cls(value)
            except ValueError:
                accepted = ", ".join(repr(m.value) for m in cls)
                raise ValidationError(f"{name}: got {value!r}; accepted: {accepted}",
                                      field=name) from None

        setf("venue", str(self.venue).lower())
        setf("kind", enum_of(Kind, "kind", self.kind))
        setf("settlement", enum_of(Settlement, "settlement", self.settlement))
        if self.option_type is not None:
            setf("option_type", enum_of(OptionType, "option_type", self.option_type))
        if (self.kind is Kind.option) != (self.option_type is not None and self.strike is not None):
            raise ValidationError("option_type/strike: options need both, other kinds neither; "
                                  f"got kind={self.kind.value!r}, "
                                  f"option_type={self.option_type!r}, strike={self.strike!r}",
                                  field="strike")
        if self.strike is not None:
            strike = float(self.strike)
            if not (math.isfinite(strike) and strike > 0):
                raise ValidationError(f"strike: got {self.strike!r}; accepted: a finite number > 0",
                                      field="strike")
            setf("strike", strike)
        if self.expiry is not None:
            ts = pd.Timestamp(self.expiry)
            if ts is pd.NaT:
                ts = None
            elif ts.tzinfo is None:
                raise ValidationError(f"expiry: got naive {ts}; accepted: a tz-aware timestamp",
                                      field="expiry")
            setf("expiry", None if ts is None else ts.tz_convert("UTC"))
        setf("contract_size", float(self.contract_size))
        if self.tick_size is not None:
            setf("tick_size", float(self.tick_size))

    @classmethod
    def _trusted(cls, **fields: Any) -> "Instrument":
        """Build from fields the parsers already validated and typed (skips ``__post_init__``)."""
        inst = object.__new__(cls)
        for f in _FIELD_DEFAULTS:
            object.__setattr__(inst, f, fields.pop(f, _FIELD_DEFAULTS[f]))
        assert not fields, fields
        return inst

    @property
    def is_inverse(self) -> bool:
        """True for coin-settled (inverse) instruments."""
        return self.settlement is Settlement.inverse


#: Columns of :func:`parse_symbols`' frame, in order.
INSTRUMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Instrument))
_FIELD_DEFAULTS = {f.name: (None if f.default is dataclasses.MISSING else f.default)
                   for f in dataclasses.fields(Instrument)}


# --------------------------------------------------------------------------------------------------
# Parsing, one symbol
# --------------------------------------------------------------------------------------------------
class _Bad(Exception):
    """A symbol that does not parse; ``reason`` says why."""

    def __init__(self, reason: str, field: str = "symbol") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


_DERIBIT_DATE = re.compile(r"(\d{1,2})([A-Z]{3})(\d{2})")
_YYMMDD = re.compile(r"\d{6}")
_STRIKE = {".": re.compile(r"\d+(?:\.\d+)?"), "D": re.compile(r"\d+(?:D\d+)?")}
_BINANCE = re.compile(r"([A-Z0-9]+?)(USDT|USDC)(?:_(\w+))?")
_BINANCE_COINM = re.compile(r"[A-Z0-9]+USD_(PERP|\d{6})")
_HL_K = re.compile(r"k[A-Z0-9]+")
_HL = re.compile(r"k?[A-Z0-9]{1,20}")
_DYDX = re.compile(r"([A-Z0-9]+)-USD")


def _coin(text: str, what: str = "coin") -> str:
    if not _COIN.fullmatch(text):
        raise _Bad(f"{what} {text!r} is not 1-20 letters/digits")
    return text


@functools.lru_cache(maxsize=4096)
def _expiry(y: int, m: int, d: int) -> pd.Timestamp:
    try:
        return pd.Timestamp(_dt.datetime(y, m, d, _EXPIRY_HOUR_UTC, tzinfo=_UTC))
    except ValueError:
        mon = next(k for k, v in _MONTHS.items() if v == m)
        raise _Bad(f"day {d} does not exist in {mon} {y}") from None


def _deribit_date(text: str) -> pd.Timestamp:
    m = _DERIBIT_DATE.fullmatch(text)
    if not m:
        raise _Bad(f"expiry {text!r} is not DMONYY (e.g. 27DEC24, 1JAN26)")
    day, mon, yy = m.groups()
    if mon not in _MONTHS:
        raise _Bad(f"month {mon!r} is not one of JAN..DEC")
    return _expiry(2000 + int(yy), _MONTHS[mon], int(day))


def _yymmdd(text: str) -> pd.Timestamp:
    if not _YYMMDD.fullmatch(text):
        raise _Bad(f"expiry {text!r} is not YYMMDD (e.g. 241227)")
    y, m, d = 2000 + int(text[:2]), int(text[2:4]), int(text[4:])
    if not 1 <= m <= 12:
        raise _Bad(f"month {m:02d} in {text!r} is not 01..12")
    return _expiry(y, m, d)


def _strike(text: str, decimal: str) -> float:
    if not _STRIKE[decimal].fullmatch(text):
        raise _Bad(f"strike {text!r} is not a positive number"
                   + (" (use 'd' as the decimal point)" if decimal == "D" else ""))
    k = float(text.replace(decimal, "."))
    if not (math.isfinite(k) and k > 0):
        raise _Bad(f"strike {text!r} is not > 0")
    return k


def _option_type(text: str) -> OptionType:
    if text == "C":
        return OptionType.call
    if text == "P":
        return OptionType.put
    raise _Bad(f"option type {text!r} is not C or P")


def _parse_deribit(s: str) -> dict:
    syn = s.startswith("SYN.")
    body = s[4:] if syn else s
    parts = body.split("-")
    head = parts[0]
    base, _, q = head.partition("_")
    _coin(base)
    if len(parts) == 1:
        if syn or not q:
            raise _Bad("missing -PERPETUAL, -DMONYY expiry or -STRIKE-C|P suffix")
        _coin(q, "quote")
        return dict(kind=Kind.spot, underlying=base, quote=q, settlement=Settlement.linear,
                    settlement_currency=q)
    if q:
        if q not in ("USDC", "USDT"):
            raise _Bad(f"linear quote {q!r} is not USDC or USDT")
        fam = dict(underlying=base, quote=q, settlement=Settlement.linear, settlement_currency=q)
    else:
        fam = dict(underlying=base, quote="USD", settlement=Settlement.inverse,
                   settlement_currency=base)
    if len(parts) == 2:
        if parts[1] == "PERPETUAL":
            if syn:
                raise _Bad("SYN. names a dated synthetic forward, not a perpetual")
            return dict(kind=Kind.perpetual, **fam)
        if not syn and not parts[1][:1].isdigit():
            raise _Bad(f"suffix {parts[1]!r} is neither PERPETUAL nor a DMONYY expiry")
        kind = Kind.synthetic if syn else Kind.future
        return dict(kind=kind, expiry=_deribit_date(parts[1]), **fam)
    if len(parts) == 4 and not syn:
        return dict(kind=Kind.option, expiry=_deribit_date(parts[1]), strike=_strike(parts[2], "D"),
                    option_type=_option_type(parts[3]), **fam)
    raise _Bad(f"{len(parts)} dash-separated parts; expected 2 (future, perpetual) or 4 (option)")


def _parse_binance(s: str) -> dict:
    m = _BINANCE.fullmatch(s)
    if not m:
        if _BINANCE_COINM.fullmatch(s):
            raise _Bad("COIN-M (inverse) futures are not supported")
        if s.count("-") == 3:
            raise _Bad("Binance options are not supported")
        raise _Bad("not COINUSDT/COINUSDC, optionally followed by _YYMMDD")
    base, q, date = m.groups()
    _coin(base)
    fam = dict(underlying=base, quote=q, settlement=Settlement.linear, settlement_currency=q)
    if date is None:
        return dict(kind=Kind.perpetual, **fam)
    return dict(kind=Kind.future, expiry=_yymmdd(date), **fam)


_OKX_SPOT_QUOTES = ("USDT", "USDC", "USD", "EUR", "BTC", "ETH")


def _parse_okx(s: str) -> dict:
    parts = s.split("-")
    if len(parts) < 2:
        raise _Bad("expected dash-separated COIN-QUOTE[-SWAP|-YYMMDD[-STRIKE-C|P]]")
    base, q = _coin(parts[0]), parts[1]
    if len(parts) == 2:
        if q not in _OKX_SPOT_QUOTES:
            raise _Bad(f"spot quote {q!r} is not one of {', '.join(_OKX_SPOT_QUOTES)}")
        return dict(kind=Kind.spot, underlying=base, quote=q, settlement=Settlement.linear,
                    settlement_currency=q)
    if q == "USD":
        fam = dict(underlying=base, quote="USD", settlement=Settlement.inverse,
                   settlement_currency=base)
    elif q in ("USDT", "USDC"):
        fam = dict(underlying=base, quote=q, settlement=Settlement.linear, settlement_currency=q)
    else:
        raise _Bad(f"quote {q!r} is not USD (coin-margined), USDT or USDC")
    if len(parts) == 3:
        if parts[2] == "SWAP":
            return dict(kind=Kind.perpetual, **fam)
        if not parts[2][:1].isdigit():
            raise _Bad(f"suffix {parts[2]!r} is neither SWAP nor a YYMMDD expiry")
        return dict(kind=Kind.future, expiry=_yymmdd(parts[2]), **fam)
    if len(parts) == 5:
        if q != "USD":
            raise _Bad(f"options are on the coin-margined COIN-USD family, not {q!r}")
        return dict(kind=Kind.option, expiry=_yymmdd(parts[2]), strike=_strike(parts[3], "."),
                    option_type=_option_type(parts[4]), **fam)
    raise _Bad(f"{len(parts)} dash-separated parts; expected 3 (swap, future) or 5 (option)")


def _parse_hyperliquid(raw: str) -> dict:
    s = raw if _HL_K.fullmatch(raw) else raw.upper()
    if not _HL.fullmatch(s):
        hint = (" (HIP-3 dex perpetuals 'dex:COIN' are not supported)" if ":" in s else
                " (spot pairs are not supported)" if s.startswith("@") or "/" in s else
                " (name the coin alone, e.g. 'BTC')")
        raise _Bad(f"not a coin name{hint}")
    return dict(kind=Kind.perpetual, underlying=s, quote="USD", settlement=Settlement.linear,
                settlement_currency="USDC")


def _parse_dydx(s: str) -> dict:
    m = _DYDX.fullmatch(s)
    if not m:
        raise _Bad("not COIN-USD")
    return dict(kind=Kind.perpetual, underlying=_coin(m.group(1)), quote="USD",
                settlement=Settlement.linear, settlement_currency="USDC")


_PARSERS = {"deribit": _parse_deribit, "binance": _parse_binance, "okx": _parse_okx,
            "hyperliquid": _parse_hyperliquid, "dydx": _parse_dydx}


def _venue(venue: Any) -> str:
    if not isinstance(venue, str):
        raise _Bad("not a venue name", field="venue")
    v = venue.strip().lower()
    if v not in _PARSERS:
        raise _Bad("unknown venue", field="venue")
    return v


def _parse_one(symbol: Any, venue: Any, user_specs: Mapping,
               memo: dict | None = None) -> Instrument:
    """Parse one (symbol, venue) pair; raises :class:`_Bad`."""
    v = _venue(venue)
    if not isinstance(symbol, str):
        raise _Bad("missing" if symbol is None or symbol is pd.NA or (
            isinstance(symbol, float) and math.isnan(symbol)) else "not a string")
    s = symbol.strip()
    if not s:
        raise _Bad("empty")
    fields = _PARSERS[v](s if v == "hyperliquid" else s.upper())
    spec = _lookup(user_specs, v, fields["settlement"].value, fields["kind"].value, fields["quote"],
                   fields["underlying"], memo)
    return Instrument._trusted(venue=v, symbol=symbol, contract_size=spec.contract_size,
                               contract_size_unit=spec.contract_size_unit, tick_size=spec.tick_size,
                               **fields)


def _accepted(field: str, venue: Any) -> str:
    if field == "venue":
        return ", ".join(map(repr, VENUES)) + " (any case)"
    return f"{venue.strip().lower()}: {_FORMATS[venue.strip().lower()]}"


def _message(bad: _Bad, value: Any, venue: Any, row: Any = None, n_bad: int = 1) -> str:
    where = "" if row is None else f"row {row!r} " if isinstance(row, str) else f"row {row} "
    verb = "has" if row is not None else "got"
    more = f" ({n_bad} bad rows in all)" if n_bad > 1 else ""
    return (f"{bad.field}: {where}{verb} {value!r}: {bad.reason}{more}; accepted: "
            f"{_accepted(bad.field, venue)}")


def parse_symbol(symbol: str, venue: str, *, specs: Mapping | None = None) -> Instrument:
    """Parse one venue symbol into an :class:`Instrument`.

    Parameters
    ----------
    symbol : str
        Venue symbol, e.g. ``"BTC-27DEC24-60000-C"`` (formats in the module docstring).
    venue : str
        ``"deribit"``, ``"binance"``, ``"okx"``, ``"hyperliquid"`` or ``"dydx"`` (any case).
    specs : mapping, optional
        Contract-size overrides, ``{SpecKey: ContractSpec or number}``; see :func:`contract_spec`.

    Returns
    -------
    Instrument

    Raises
    ------
    pmnb.errors.ValidationError
        Unknown venue (``field="venue"``) or a symbol that does not parse (``field="symbol"``);
        the message says why and lists the venue's accepted formats.

    Examples
    --------
    >>> inst = parse_symbol("XRP_USDC-30JUN23-0d625-C", "Deribit")
    >>> inst.strike, inst.settlement_currency, inst.contract_size, inst.contract_size_unit
    (0.625, 'USDC', 1000.0, 'XRP')
    >>> parse_symbol("BTCUSDT_241227", "binance").expiry
    Timestamp('2024-12-27 08:00:00+0000', tz='UTC')
    >>> parse_symbol("BTC-31APR24", "deribit")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pmnb.errors.ValidationError: symbol: got 'BTC-31APR24': day 31 does not exist in APR 2024; ...
    """
    user = _check_specs(specs)
    try:
        return _parse_one(symbol, venue, user)
    except _Bad as bad:
        value = venue if bad.field == "venue" else symbol
        raise ValidationError(_message(bad, value, venue), field=bad.field) from None


# --------------------------------------------------------------------------------------------------
# Parsing, many symbols
# --------------------------------------------------------------------------------------------------
def _labels(*args: Any) -> pd.Index | None:
    for a in args:
        if isinstance(a, pd.Series):
            return a.index
    return None


def _as_objects(name: str, values: Any) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy(dtype=object, na_value=None)
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValidationError(f"{name}: got {type(values).__name__}; accepted: a sequence, array "
                              "or pandas Series of strings", field=name)
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=object)
    if arr.ndim != 1:
        raise ValidationError(f"{name}: got a {arr.ndim}-D array; accepted: one dimension",
                              field=name)
    return arr


def _factorize(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and uniques, missing values as one more unique (``None``)."""
    codes, uniques = pd.factorize(a, use_na_sentinel=True)
    uniques = np.asarray(uniques, dtype=object)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(uniques), codes)
        uniques = np.append(uniques, None)
    return codes.astype(np.int64, copy=False), uniques


def _categorical(values: list, inverse: np.ndarray,
                 categories: Iterable | None = None) -> pd.Categorical:
    """Categorical of ``values[inverse]`` built from codes, never per row."""
    if categories is None:
        categories = sorted({v for v in values if v is not None})
    cats = list(categories)
    pos = {c: i for i, c in enumerate(cats)}
    ucodes = np.array([-1 if v is None else pos[v] for v in values], dtype=np.int64)
    return pd.Categorical.from_codes(ucodes[inverse] if len(inverse) else ucodes[:0],
                                     categories=cats)


def _frame(insts: list[Instrument], inverse: np.ndarray, symbols: np.ndarray,
           index: pd.Index) -> pd.DataFrame:
    strike = np.array([np.nan if i.strike is None else i.strike for i in insts], dtype=np.float64)
    nat = np.iinfo(np.int64).min
    exp_ns = np.array([nat if i.expiry is None else i.expiry.value for i in insts], dtype=np.int64)
    size = np.array([i.contract_size for i in insts], dtype=np.float64)
    tick = np.array([np.nan if i.tick_size is None else i.tick_size for i in insts],
                    dtype=np.float64)
    expiry = pd.DatetimeIndex(exp_ns[inverse].view("datetime64[ns]")).tz_localize("UTC")
    cols = {
        "venue": _categorical([i.venue for i in insts], inverse, VENUES),
        "symbol": pd.Series(symbols, dtype=object).astype(str).array,
        "kind": _categorical([i.kind.value for i in insts], inverse, [k.value for k in Kind]),
        "underlying": _categorical([i.underlying for i in insts], inverse),
        "quote": _categorical([i.quote for i in insts], inverse),
        "settlement": _categorical([i.settlement.value for i in insts], inverse,
                                   [s.value for s in Settlement]),
        "settlement_currency": _categorical([i.settlement_currency for i in insts], inverse),
        "strike": strike[inverse],
        "expiry": expiry.array,
        "option_type": _categorical([None if i.option_type is None else i.option_type.value
                                     for i in insts], inverse, [o.value for o in OptionType]),
        "contract_size": size[inverse],
        "contract_size_unit": _categorical([i.contract_size_unit for i in insts], inverse),
        "tick_size": tick[inverse],
    }
    return pd.DataFrame(cols, index=index, columns=list(INSTRUMENT_COLUMNS))


def parse_symbols(symbols: Any, venues: Any, *, specs: Mapping | None = None) -> pd.DataFrame:
    """Parse a column of venue symbols into a typed DataFrame, one row per input.

    Each distinct (symbol, venue) pair is parsed once and the results are broadcast back by
    integer codes, so 100,000 rows holding a few hundred distinct symbols cost a few hundred parses.

    Parameters
    ----------
    symbols : sequence, array or pandas Series of str
        Venue symbols (formats in the module docstring).
    venues : str, or a sequence / array / Series of str of the same length
        Venue of every symbol (one name for all, or one per row), case-insensitive.
    specs : mapping, optional
        Contract-size overrides, ``{SpecKey: ContractSpec or number}``; see :func:`contract_spec`.

    Returns
    -------
    pandas.DataFrame
        Index: the index of ``symbols`` (or of ``venues``) when a Series is given, else a
        ``RangeIndex``. Columns (:data:`INSTRUMENT_COLUMNS`): ``venue``, ``kind``, ``underlying``,
        ``quote``, ``settlement``, ``settlement_currency``, ``option_type``,
        ``contract_size_unit`` as ``category``; ``symbol`` (as given) as text; ``strike``,
        ``contract_size``, ``tick_size`` as ``float64`` (``NaN`` where absent); ``expiry`` as
        ``datetime64[ns, UTC]`` (``NaT`` for perpetuals and spot).

    Raises
    ------
    pmnb.errors.ValidationError
        Naming the first bad row (position, or index label for a Series), its symbol, why it does
        not parse, how many rows are bad, and the venue's accepted formats; ``field`` is
        ``"symbol"`` or ``"venue"`` and ``rows`` lists every bad row.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.Series(["BTC-PERPETUAL", "BTC-27DEC24-60000-C", "BTC-PERPETUAL"], index=[10, 11, 12])
    >>> df = parse_symbols(s, "deribit")
    >>> df[["kind", "strike", "expiry", "option_type"]]
             kind   strike                    expiry option_type
    10  perpetual      NaN                       NaT         NaN
    11     option  60000.0 2024-12-27 08:00:00+00:00        call
    12  perpetual      NaN                       NaT         NaN
    >>> parse_symbols(pd.Series(["BTC-USD-SWAP", "BTC-USD-241231-1-X"], index=["a", "b"]),
    ...               "okx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pmnb.errors.ValidationError: symbol: row 'b' has 'BTC-USD-241231-1-X': option type 'X' ...
    """
    user = _check_specs(specs)
    sym = _as_objects("symbols", symbols)
    n = len(sym)
    labels = _labels(symbols, venues)
    index = labels if labels is not None and len(labels) == n else pd.RangeIndex(n)
    if isinstance(venues, str) or venues is None:
        vcodes, vuniq = np.zeros(n, dtype=np.int64), np.array([venues], dtype=object)
        ven = None
    else:
        ven = _as_objects("venues", venues)
        if len(ven) != n:
            raise ValidationError(f"venues: got {len(ven)} values for {n} symbols; accepted: one "
                                  "venue name, or one per symbol", field="venues")
        vcodes, vuniq = _factorize(ven)
    scodes, suniq = _factorize(sym)
    nv = len(vuniq)
    pair = scodes * nv + vcodes
    upairs, inverse = np.unique(pair, return_inverse=True)
    inverse = inverse.reshape(-1)
    insts: list[Instrument | None] = []
    errors: dict[int, _Bad] = {}
    memo: dict = {}
    for u, p in enumerate(upairs.tolist()):
        try:
            insts.append(_parse_one(suniq[p // nv], vuniq[p % nv], user, memo))
        except _Bad as bad:
            insts.append(None)
            errors[u] = bad
    if errors:
        bad_u = np.zeros(len(upairs), dtype=bool)
        bad_u[list(errors)] = True
        rows = np.flatnonzero(bad_u[inverse])
        first = int(rows[0])
        bad = errors[int(inverse[first])]
        row = index[first] if labels is not None else first
        venue = vuniq[0] if ven is None else ven[first]
        value = venue if bad.field == "venue" else sym[first]
        names = [index[r] for r in rows] if labels is not None else rows.tolist()
        raise ValidationError(_message(bad, value, venue, row, len(rows)), field=bad.field,
                              row=row, rows=names)
    return _frame(insts, inverse, sym, index)
