"""Small real market data shipped with pmnb, and typed loaders for it.

The files in ``pmnb/datasets/data/`` are real public data (daily prices, perpetual funding, Deribit
DVOL, three Deribit option-chain snapshots with a forward curve, and a stress-event table), copied
from public GitHub repositories. They are shipped as **demo and test fixtures with attribution**:
``data/README.md`` (``data_path("README.md")``) names the repository and commit of every file, the
units of every column and the licence caveats; read it before using the numbers for anything else.
``macro_daily.csv`` (S&P 500, VIX, dollar, yields, gold, oil) is deliberately *not* shipped: it
stays a user-supplied file.

Conventions of every loader:

* every timestamp column is ``datetime64[ns, UTC]`` (daily files: midnight UTC of the UTC day);
* prices, rates and greeks are ``float64``; missing values are ``NaN`` / ``NaT``;
* small closed sets of labels (symbols, currencies, option types, sources) are ``category``; other
  text uses pandas' default string dtype (``str`` in pandas 3, ``object`` in pandas 2);
* the files are read with explicit dtypes (no inference) and their header is checked, so a changed
  file fails loudly with :class:`pmnb.errors.DataError` instead of loading silently wrong;
* parsed frames are cached; each call returns a fresh copy, so callers may modify what they get.

Examples
--------
>>> from pmnb.datasets import list_datasets, load_prices
>>> "prices_daily" in set(list_datasets()["name"])
True
>>> px = load_prices()
>>> btc = px[px["symbol"] == "BTC"]
>>> float(btc.loc[btc["date"] == "2020-03-12", "close"].iloc[0])
4970.79
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime as _dt
import functools
import importlib.resources
import pathlib
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import DataError, ValidationError

__all__ = [
    "data_path",
    "list_datasets",
    "load_deribit_chain",
    "load_deribit_forwards",
    "load_dvol",
    "load_funding",
    "load_prices",
    "load_demo_accounts",
    "load_demo_book",
    "load_stress_events",
]

_UTC = "datetime64[ns, UTC]"
_F8 = "float64"
_I8 = "int64"
_TXT = str  # read as pandas' default string dtype; converted where a category fits

# pandas 3 reads floats correctly rounded by default (and deprecates the option); pandas 2's default
# C parser may be one ulp off, so ask it for round-trip parsing.
_READ_KW: dict[str, Any] = (
    {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"})

_NOT_SHIPPED = {
    "macro_daily": "macro_daily.csv is not shipped with pmnb (S&P 500, VIX and Yahoo series carry "
                   "reproduction restrictions); it stays a user-supplied file, see data/README.md",
}


# --------------------------------------------------------------------------------------------------
# Registry of shipped files
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Dataset:
    name: str
    file: str
    description: str


_DATASETS: tuple[_Dataset, ...] = (
    _Dataset("prices_daily", "prices_daily.csv",
             "Daily OHLCV in USD, BTC/ETH/SOL/BNB, 2017-01-01 to 2025-12-31, Yahoo Finance "
             "(CoinMarketCap aggregate) UTC days; load_prices('aggregate')"),
    _Dataset("prices_btcusdt_binance_daily", "prices_btcusdt_binance_daily.csv",
             "Binance BTC/USDT daily klines, 2017-08-17 to 2025-08-26; load_prices('binance')"),
    _Dataset("funding_btcusdt_binance_8h", "funding_btcusdt_binance_8h.csv",
             "Binance USDT-M BTCUSDT perpetual funding, 8-hourly, 2019-09-10 to 2026-02-07; "
             "load_funding('binance')"),
    _Dataset("funding_xbtusd_bitmex_8h", "funding_xbtusd_bitmex_8h.csv",
             "BitMEX XBTUSD perpetual funding, 8-hourly (24-hourly until 2016-06-04), "
             "2016-05-14 to 2020-11-05; load_funding('bitmex')"),
    _Dataset("funding_btc_perpetual_deribit_1h", "funding_btc_perpetual_deribit_1h.csv",
             "Deribit BTC-PERPETUAL funding, hourly, 2019-04-30 to 2021-02-25; "
             "load_funding('deribit')"),
    _Dataset("dvol_btc_daily", "dvol_btc_daily.csv",
             "Deribit BTC DVOL daily close (annualised %), 2021-03-24 to 2026-04-20; load_dvol()"),
    _Dataset("deribit_btc_options_20200514T0541Z", "deribit_btc_options_20200514T0541Z.csv",
             "Deribit BTC option chain with all greeks, 2020-05-14 05:41 UTC; "
             "load_deribit_chain('2020-05-14')"),
    _Dataset("deribit_btc_options_20200521T2319Z", "deribit_btc_options_20200521T2319Z.csv",
             "Deribit BTC option chain with all greeks, 2020-05-21 23:19 UTC; "
             "load_deribit_chain('2020-05-21')"),
    _Dataset("deribit_options_20251231T0918Z", "deribit_options_20251231T0918Z.csv",
             "Deribit BTC and ETH option chains (delta and vega only), 2025-12-31 09:18 UTC; "
             "load_deribit_chain('2025-12-31')"),
    _Dataset("deribit_forwards_20251231T0918Z", "deribit_forwards_20251231T0918Z.csv",
             "Deribit BTC and ETH forward curves (futures, perpetual, synthetic), "
             "2025-12-31 09:18 UTC; load_deribit_forwards('2025-12-31')"),
    _Dataset("stress_events", "stress_events.csv",
             "Stress-scenario library: 7 crypto crash events x BTC, ETH (price moves, implied vol, "
             "reported liquidations); load_stress_events()"),
    _Dataset("demo_accounts", "demo_accounts.csv",
             "Demo venue accounts (invented): Deribit portfolio and standard margin, Binance, "
             "Hyperliquid, dYdX, Aave v3, Uniswap v3; load_demo_accounts()"),
    _Dataset("demo_collateral", "demo_collateral.csv",
             "Demo wallet balances per account and asset (long format); load_demo_accounts()"),
    _Dataset("demo_book", "demo_book.csv",
             "Demo book (invented positions on real instruments of the 2025-12-31 snapshot); "
             "load_demo_book()"),
)
_BY_NAME = {d.name: d for d in _DATASETS}
_README = "README.md"


def _accepted(values) -> str:
    return ", ".join(repr(v) for v in values)


def _resource(file: str):
    """Traversable of a shipped file (works for a source tree, an installed wheel, a zip)."""
    return importlib.resources.files(__name__) / "data" / file


_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


@functools.lru_cache(maxsize=None)
def _path(file: str) -> pathlib.Path:
    res = _resource(file)
    if not res.is_file():
        raise DataError(f"{file}: shipped data file is missing from the pmnb installation "
                        f"(looked in {res})")
    if isinstance(res, pathlib.Path):
        return res
    # Package imported from a zip archive: extract once, removed at interpreter exit.
    return _EXTRACTED.enter_context(importlib.resources.as_file(res))


def data_path(name: str) -> pathlib.Path:
    """Filesystem path of a file shipped in ``pmnb/datasets/data``.

    The path is found through :mod:`importlib.resources`, so it works from an installed wheel as
    well as from a source checkout (a package imported from a zip file is extracted once to a
    temporary file that is removed when the interpreter exits).

    Parameters
    ----------
    name : str
        A dataset name from :func:`list_datasets` (``"prices_daily"``), the same with its
        extension (``"prices_daily.csv"``), or ``"README"`` / ``"README.md"`` for the data
        documentation (sources, units, licence caveats).

    Returns
    -------
    pathlib.Path
        Path of the file; read it with the ``load_*`` functions rather than by hand, they set
        the dtypes and fix the quirks described in their Notes.

    Raises
    ------
    pmnb.errors.ValidationError
        If ``name`` is not a shipped file (``field="name"``); the message lists the accepted names.
        ``"macro_daily"`` is rejected with a note that it is a user-supplied file.
    pmnb.errors.DataError
        If the file is missing from a broken installation.

    Examples
    --------
    >>> from pmnb.datasets import data_path
    >>> data_path("prices_daily").name
    'prices_daily.csv'
    >>> data_path("README.md").is_file()
    True
    """
    if not isinstance(name, str):
        raise ValidationError(f"name: got {name!r}; accepted: a dataset name, one of "
                              f"{_accepted(_BY_NAME)}, or 'README.md'", field="name")
    key = name.strip()
    stem = key.rsplit(".", 1)[0] if key.lower().endswith((".csv", ".md")) else key
    if stem.upper() == "README":
        return _path(_README)
    if stem in _BY_NAME:
        return _path(_BY_NAME[stem].file)
    if stem in _NOT_SHIPPED:
        raise ValidationError(f"name: {_NOT_SHIPPED[stem]}; accepted: {_accepted(_BY_NAME)}, "
                              "'README.md'", field="name")
    raise ValidationError(f"name: {name!r} is not a shipped dataset; accepted: "
                          f"{_accepted(_BY_NAME)}, 'README.md'", field="name")


def _count_rows(file: str) -> int:
    data = _resource(file).read_bytes()
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    return lines - 1  # header


def list_datasets() -> pd.DataFrame:
    """Describe the data files shipped with pmnb.

    Returns
    -------
    pandas.DataFrame
        One row per shipped file, columns ``name`` (accepted by :func:`data_path`), ``file``,
        ``rows`` (data rows, header excluded; ``int64``) and ``description`` (content, range and
        the loader call that reads it).

    Notes
    -----
    Sources, column units and licence caveats of every file are in ``data/README.md``
    (``data_path("README.md")``). ``macro_daily.csv`` is not shipped.

    Examples
    --------
    >>> from pmnb.datasets import list_datasets
    >>> print(list_datasets()[["name", "rows"]].to_string(index=False))
                                  name  rows
                          prices_daily 11557
          prices_btcusdt_binance_daily  2932
            funding_btcusdt_binance_8h  7028
              funding_xbtusd_bitmex_8h  4866
      funding_btc_perpetual_deribit_1h 16008
                        dvol_btc_daily  1769
    deribit_btc_options_20200514T0541Z   310
    deribit_btc_options_20200521T2319Z   326
        deribit_options_20251231T0918Z  1286
       deribit_forwards_20251231T0918Z    26
                         stress_events    14
                         demo_accounts     7
                       demo_collateral     5
                             demo_book    15
    """
    return pd.DataFrame({
        "name": [d.name for d in _DATASETS],
        "file": [d.file for d in _DATASETS],
        "rows": np.array([_count_rows(d.file) for d in _DATASETS], dtype=np.int64),
        "description": [d.description for d in _DATASETS],
    })


# --------------------------------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------------------------------
def _read_csv(file: str, dtypes: dict[str, Any]) -> pd.DataFrame:
    """Read a shipped CSV with explicit dtypes; only empty fields are missing values."""
    with _resource(file).open("rb") as fh:
        df = pd.read_csv(fh, dtype=dtypes, keep_default_na=False, na_values=[""],
                         encoding="utf-8", **_READ_KW)
    if list(df.columns) != list(dtypes):
        raise DataError(f"{file}: columns {list(df.columns)}; expected {list(dtypes)}")
    return df


def _utc(values, file: str, column: str, *, fmt: str = "ISO8601") -> pd.Series:
    try:
        out = pd.to_datetime(values, format=fmt, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{file}: column {column} is not a UTC timestamp ({fmt}): {exc}") from exc
    return pd.Series(out, name=column).astype(_UTC)


def _day(values, file: str, column: str) -> pd.Series:
    return _utc(values, file, column, fmt="%Y-%m-%d")


def _category(values, categories, file: str, column: str) -> pd.Series:
    s = pd.Series(values, name=column)
    bad = ~s.isin(list(categories)) & s.notna()
    if bad.any():
        first = s[bad].iloc[0]
        raise DataError(f"{file}: column {column} has unexpected value {first!r}; "
                        f"expected one of {_accepted(categories)}")
    return s.astype(pd.CategoricalDtype(list(categories)))


def _const_category(value: str, n: int) -> pd.Categorical:
    return pd.Categorical([value] * n, categories=[value])


def _choice(field: str, value, accepted: tuple[str, ...], what: str) -> str:
    key = value.strip().lower() if isinstance(value, str) else None
    if key not in accepted:
        raise ValidationError(f"{field}: {value!r} is not {what}; accepted: {_accepted(accepted)}",
                              field=field)
    return key


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------------------
_PRICE_SOURCES = ("aggregate", "binance")
_PRICE_SYMBOLS = ("BTC", "ETH", "SOL", "BNB")
_PRICE_SOURCE_CODES = ("yf_nasc", "yf_mimi", "yf_kaus", "yf_fed")


@functools.lru_cache(maxsize=None)
def _prices(source: str) -> pd.DataFrame:
    if source == "aggregate":
        file = "prices_daily.csv"
        raw = _read_csv(file, {"date": _TXT, "symbol": _TXT, "open": _F8, "high": _F8,
                               "low": _F8, "close": _F8, "volume_usd": _F8, "source": _TXT})
        raw["date"] = _day(raw["date"], file, "date")
        raw["symbol"] = _category(raw["symbol"], _PRICE_SYMBOLS, file, "symbol")
        raw["source"] = _category(raw["source"], _PRICE_SOURCE_CODES, file, "source")
        return _finish(raw)
    file = "prices_btcusdt_binance_daily.csv"
    raw = _read_csv(file, {"date": _TXT, "open": _F8, "high": _F8, "low": _F8, "close": _F8,
                           "volume_btc": _F8})
    raw["date"] = _day(raw["date"], file, "date")
    raw.insert(1, "symbol", _const_category("BTCUSDT", len(raw)))
    return _finish(raw)


def load_prices(source: str = "aggregate") -> pd.DataFrame:
    """Daily OHLCV bars, one row per (symbol, day), in long format.

    Parameters
    ----------
    source : {"aggregate", "binance"}, default "aggregate"
        ``"aggregate"``: Yahoo Finance ``XXX-USD`` bars (CoinMarketCap aggregate feed) for BTC
        (2017-01-01 to 2025-12-31, 3,287 days), ETH (to 2025-11-19), SOL (from 2020-04-10) and BNB
        (from 2017-11-09), prices in USD. ``"binance"``: Binance BTC/USDT spot klines,
        2017-08-17 to 2025-08-26 (2,932 days), prices in USDT; exchange-level intraday extremes
        (e.g. the 2020-03-13 low) are deeper than in the aggregate.

    Returns
    -------
    pandas.DataFrame
        ``"aggregate"``: ``date`` (``datetime64[ns, UTC]``, midnight starting the UTC day of the
        bar), ``symbol`` (category: BTC, ETH, SOL, BNB), ``open``, ``high``, ``low``, ``close``
        (USD, float64), ``volume_usd`` (USD as reported by Yahoo, float64), ``source`` (category,
        code of the third-party copy, see ``data/README.md``). Sorted by symbol, then date.
        ``"binance"``: ``date``, ``symbol`` (category, always ``"BTCUSDT"``), ``open``, ``high``,
        ``low``, ``close`` (USDT), ``volume_btc`` (base-asset volume, BTC). Sorted by date.

    Raises
    ------
    pmnb.errors.ValidationError
        If ``source`` is not one of the accepted values (``field="source"``).

    Notes
    -----
    No day is missing inside each symbol's range and ``low <= min(open, close)``,
    ``high >= max(open, close)`` holds on every row. Source: see ``data/README.md``; Yahoo Finance,
    CoinMarketCap and Binance terms apply to the numbers.

    Examples
    --------
    >>> from pmnb.datasets import load_prices
    >>> px = load_prices()
    >>> px.dtypes
    date          datetime64[ns, UTC]
    symbol                   category
    open                      float64
    high                      float64
    low                       float64
    close                     float64
    volume_usd                float64
    source                   category
    dtype: object
    >>> px.groupby("symbol", observed=True).size()
    symbol
    BTC    3287
    ETH    3245
    SOL    2092
    BNB    2933
    dtype: int64
    >>> bn = load_prices("binance")
    >>> float(bn.loc[bn["date"] == "2020-03-13", "low"].iloc[0])
    3782.13
    """
    key = _choice("source", source, _PRICE_SOURCES, "a shipped price source")
    return _prices(key).copy(deep=True)


# --------------------------------------------------------------------------------------------------
# Funding
# --------------------------------------------------------------------------------------------------
_VENUES = ("binance", "bitmex", "deribit")


@functools.lru_cache(maxsize=None)
def _funding(venue: str) -> pd.DataFrame:
    if venue == "binance":
        file = "funding_btcusdt_binance_8h.csv"
        raw = _read_csv(file, {"funding_time_utc": _TXT, "funding_rate": _F8})
        n = len(raw)
        out = pd.DataFrame({
            "time": _utc(raw["funding_time_utc"], file, "funding_time_utc"),
            "symbol": _const_category("BTCUSDT", n),
            "funding_rate": raw["funding_rate"],
            "interval_hours": np.full(n, 8.0),
        })
    elif venue == "bitmex":
        file = "funding_xbtusd_bitmex_8h.csv"
        raw = _read_csv(file, {"funding_time_utc": _TXT, "symbol": _TXT, "interval_hours": _F8,
                               "funding_rate": _F8, "funding_rate_daily": _F8})
        out = pd.DataFrame({
            "time": _utc(raw["funding_time_utc"], file, "funding_time_utc"),
            "symbol": _category(raw["symbol"], ("XBTUSD",), file, "symbol"),
            "funding_rate": raw["funding_rate"],
            "interval_hours": raw["interval_hours"],
            "funding_rate_daily": raw["funding_rate_daily"],
        })
    else:
        file = "funding_btc_perpetual_deribit_1h.csv"
        raw = _read_csv(file, {"time_utc": _TXT, "timestamp_ms": _I8, "index_price": _F8,
                               "prev_index_price": _F8, "interest_1h": _F8, "interest_8h": _F8})
        n = len(raw)
        out = pd.DataFrame({
            "time": _utc(raw["time_utc"], file, "time_utc"),
            "symbol": _const_category("BTC-PERPETUAL", n),
            "funding_rate": raw["interest_1h"],
            "interval_hours": np.full(n, 1.0),
            "index_price": raw["index_price"],
            "prev_index_price": raw["prev_index_price"],
            "interest_8h": raw["interest_8h"],
        })
        # The source file was ordered by local (CET/CEST) time, which puts 2019-10-27 01:00 UTC
        # before 00:00 UTC (the DST change); sort by the UTC time.
        out = out.sort_values("time", kind="stable")
    if out["time"].duplicated().any():
        raise DataError(f"{file}: duplicated funding times")
    return _finish(out)


def load_funding(venue: str) -> pd.DataFrame:
    """Perpetual-swap funding history of one venue, in a uniform layout.

    Parameters
    ----------
    venue : {"binance", "bitmex", "deribit"}
        ``"binance"``: USDT-M BTCUSDT (linear), every 8 h on the 00/08/16 UTC grid,
        2019-09-10 08:00 to 2026-02-07 16:00 UTC, 7,028 rows, none missing.
        ``"bitmex"``: XBTUSD (inverse, margined in BTC), 2016-05-14 12:00 to 2020-11-05 04:00 UTC,
        4,866 rows; every 24 h for the first 22 rows, then every 8 h (04/12/20 UTC).
        ``"deribit"``: BTC-PERPETUAL (inverse), hourly, 2019-04-30 10:00 to 2021-02-25 11:00 UTC,
        16,008 rows (2020-08-27 06:00 and 07:00 missing).

    Returns
    -------
    pandas.DataFrame
        Always ``time`` (``datetime64[ns, UTC]``, the funding timestamp), ``symbol`` (category),
        ``funding_rate`` (fraction of notional paid by longs to shorts over one interval; 0.0001 is
        0.01 %) and ``interval_hours`` (float64: 8 for Binance; 24 or 8 for BitMEX, as in the file;
        1 for Deribit), sorted by time. Extra columns: BitMEX ``funding_rate_daily`` (BitMEX's own
        daily-equivalent field); Deribit ``index_price`` and ``prev_index_price`` (USD, the BTC
        index at this and the previous hour; the first is NaN) and ``interest_8h`` (Deribit's
        8-hour rate field).

    Raises
    ------
    pmnb.errors.ValidationError
        If ``venue`` is not one of the accepted values (``field="venue"``).

    Notes
    -----
    Deribit's ``funding_rate`` is the ``interest_1h`` field of its
    ``public/get_funding_rate_history`` endpoint. That source listed two rows in local-time order
    around the 2019-10-27 DST change; they are returned sorted by UTC time. A rate per hour,
    comparable across venues, is ``funding_rate / interval_hours``. Sources: ``data/README.md``.

    Examples
    --------
    >>> from pmnb.datasets import load_funding
    >>> fr = load_funding("binance")
    >>> len(fr), str(fr["time"].iloc[0])
    (7028, '2019-09-10 08:00:00+00:00')
    >>> list(load_funding("deribit").columns)
    ['time', 'symbol', 'funding_rate', 'interval_hours', 'index_price', 'prev_index_price',
     'interest_8h']
    >>> load_funding("bitmex")["interval_hours"].value_counts().sort_index()
    interval_hours
    8.0     4844
    24.0      22
    Name: count, dtype: int64
    """
    key = _choice("venue", venue, _VENUES, "a venue with shipped funding data")
    return _funding(key).copy(deep=True)


# --------------------------------------------------------------------------------------------------
# DVOL
# --------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _dvol() -> pd.DataFrame:
    file = "dvol_btc_daily.csv"
    raw = _read_csv(file, {"date": _TXT, "dvol_close": _F8, "source": _TXT})
    raw["date"] = _day(raw["date"], file, "date")
    raw["source"] = _category(raw["source"], ("isayggyo", "kalyar197"), file, "source")
    return _finish(raw)


def load_dvol() -> pd.DataFrame:
    """Deribit BTC DVOL (30-day implied-volatility index), daily close.

    Returns
    -------
    pandas.DataFrame
        ``date`` (``datetime64[ns, UTC]``, the UTC day of the daily candle), ``dvol_close``
        (float64, annualised volatility in **percent**, value at the end of that day: divide by 100
        for pmnb's decimal convention), ``source`` (category: ``isayggyo`` or ``kalyar197``, the
        repository copy, see ``data/README.md``). 1,769 rows, 2021-03-24 to 2026-04-20, sorted.

    Notes
    -----
    85 days are missing (32 scattered in 2021-22, the rest after 2025-11-10); nothing is filled.

    Examples
    --------
    >>> from pmnb.datasets import load_dvol
    >>> dv = load_dvol()
    >>> len(dv), float(dv["dvol_close"].max())
    (1769, 156.2)
    """
    return _dvol().copy(deep=True)


# --------------------------------------------------------------------------------------------------
# Deribit option chains and forwards
# --------------------------------------------------------------------------------------------------
# day key -> (file stamp, file)
_CHAIN_FILES: dict[str, tuple[str, str]] = {
    "2020-05-14": ("20200514T0541Z", "deribit_btc_options_20200514T0541Z.csv"),
    "2020-05-21": ("20200521T2319Z", "deribit_btc_options_20200521T2319Z.csv"),
    "2025-12-31": ("20251231T0918Z", "deribit_options_20251231T0918Z.csv"),
}
_FORWARD_FILES: dict[str, tuple[str, str]] = {
    "2025-12-31": ("20251231T0918Z", "deribit_forwards_20251231T0918Z.csv"),
}
_CURRENCIES = ("BTC", "ETH")
_OPTION_TYPES = ("call", "put")
_FORWARD_KINDS = ("future", "perpetual", "synthetic")

_CHAIN_COLUMNS = (
    "snapshot", "timestamp", "currency", "instrument_name", "option_type", "strike", "expiry",
    "underlying_index", "underlying_price", "index_price", "estimated_delivery_price",
    "interest_rate", "mark_price", "mark_iv_pct", "best_bid_price", "best_bid_amount",
    "best_ask_price", "best_ask_amount", "bid_iv_pct", "ask_iv_pct", "last_price",
    "settlement_price", "open_interest", "volume_24h", "volume_24h_usd",
    "delta", "gamma", "vega", "theta", "rho",
)

_CHAIN_2020_DTYPES = {
    "timestamp_ms": _I8, "timestamp_utc": _TXT, "instrument_name": _TXT, "option_type": _TXT,
    "strike": _F8, "expiry_utc": _TXT, "underlying_index": _TXT, "underlying_price": _F8,
    "index_price": _F8, "estimated_delivery_price": _F8, "interest_rate": _F8,
    "mark_price_btc": _F8, "mark_iv_pct": _F8, "bid_iv_pct": _F8, "ask_iv_pct": _F8,
    "best_bid_price_btc": _F8, "best_bid_amount": _F8, "best_ask_price_btc": _F8,
    "best_ask_amount": _F8, "last_price_btc": _F8, "settlement_price_btc": _F8,
    "open_interest": _F8, "volume_24h": _F8, "delta": _F8, "gamma": _F8, "vega": _F8,
    "theta": _F8, "rho": _F8,
}
_CHAIN_2025_DTYPES = {
    "snapshot_utc": _TXT, "currency": _TXT, "instrument_name": _TXT, "option_type": _TXT,
    "strike": _F8, "expiry_utc": _TXT, "underlying_index": _TXT, "underlying_price": _F8,
    "index_price": _F8, "mark_price": _F8, "mark_iv_pct": _F8, "best_bid_price": _F8,
    "best_ask_price": _F8, "open_interest": _F8, "volume_24h": _F8, "volume_24h_usd": _F8,
    "delta": _F8, "vega": _F8,
}


def _snapshot_key(snapshot, files: dict[str, tuple[str, str]], hint: str = "") -> str:
    """Map "2020-05-14", "20200514T0541Z", a Timestamp/date of that UTC day to a key of files."""
    ts = None
    if isinstance(snapshot, str):
        text = snapshot.strip()
        if text in files:
            return text
        for key, (stamp, _) in files.items():
            if text.upper() == stamp:
                return key
        try:
            ts = pd.Timestamp(text)
        except (ValueError, TypeError, OverflowError):
            ts = None
    elif isinstance(snapshot, (_dt.date, np.datetime64)):  # includes datetime and pd.Timestamp
        ts = pd.Timestamp(snapshot)
    if ts is not None and not pd.isna(ts):
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC")
        key = ts.strftime("%Y-%m-%d")
        if key in files:
            return key
    accepted = _accepted(files) + " (or the file stamps " + _accepted(
        s for s, _ in files.values()) + ", or a Timestamp/date of those UTC days)"
    raise ValidationError(f"snapshot: {snapshot!r} is not a shipped snapshot; accepted: "
                          f"{accepted}{hint}", field="snapshot")


def _no_quote(values: pd.Series) -> pd.Series:
    """0 means "no quote" in Deribit's ticker fields: turn it into NaN."""
    return values.mask(values == 0.0)


@functools.lru_cache(maxsize=None)
def _chain(key: str) -> pd.DataFrame:
    _, file = _CHAIN_FILES[key]
    if key.startswith("2020"):
        raw = _read_csv(file, _CHAIN_2020_DTYPES)
        n = len(raw)
        ts = pd.Series(pd.to_datetime(raw["timestamp_ms"], unit="ms", utc=True)).astype(_UTC)
        currency = raw["instrument_name"].str.split("-", n=1).str[0]
        bid = _no_quote(raw["best_bid_price_btc"])
        ask = _no_quote(raw["best_ask_price_btc"])
        out = pd.DataFrame({
            "snapshot": pd.Series(np.repeat(ts.min(), n)).astype(_UTC),
            "timestamp": ts,
            "currency": _category(currency, _CURRENCIES, file, "instrument_name"),
            "instrument_name": raw["instrument_name"],
            "option_type": _category(raw["option_type"], _OPTION_TYPES, file, "option_type"),
            "strike": raw["strike"],
            "expiry": _utc(raw["expiry_utc"], file, "expiry_utc"),
            "underlying_index": raw["underlying_index"],
            "underlying_price": raw["underlying_price"],
            "index_price": raw["index_price"],
            "estimated_delivery_price": raw["estimated_delivery_price"],
            "interest_rate": raw["interest_rate"],
            "mark_price": raw["mark_price_btc"],
            "mark_iv_pct": raw["mark_iv_pct"],
            "best_bid_price": bid,
            "best_bid_amount": raw["best_bid_amount"].mask(bid.isna()),
            "best_ask_price": ask,
            "best_ask_amount": raw["best_ask_amount"].mask(ask.isna()),
            "bid_iv_pct": _no_quote(raw["bid_iv_pct"]),
            "ask_iv_pct": _no_quote(raw["ask_iv_pct"]),
            "last_price": raw["last_price_btc"],
            "settlement_price": raw["settlement_price_btc"],
            "open_interest": raw["open_interest"],
            "volume_24h": raw["volume_24h"],
            "volume_24h_usd": np.full(n, np.nan),
            "delta": raw["delta"], "gamma": raw["gamma"], "vega": raw["vega"],
            "theta": raw["theta"], "rho": raw["rho"],
        })
    else:
        raw = _read_csv(file, _CHAIN_2025_DTYPES)
        n = len(raw)
        snap = _utc(raw["snapshot_utc"], file, "snapshot_utc")
        bid = _no_quote(raw["best_bid_price"])
        ask = _no_quote(raw["best_ask_price"])
        out = pd.DataFrame({
            "snapshot": snap,
            "timestamp": snap.copy(),
            "currency": _category(raw["currency"], _CURRENCIES, file, "currency"),
            "instrument_name": raw["instrument_name"],
            "option_type": _category(raw["option_type"], _OPTION_TYPES, file, "option_type"),
            "strike": raw["strike"],
            "expiry": _utc(raw["expiry_utc"], file, "expiry_utc"),
            "underlying_index": raw["underlying_index"],
            "underlying_price": raw["underlying_price"],
            "index_price": raw["index_price"],
            "estimated_delivery_price": np.full(n, np.nan),
            "interest_rate": np.full(n, 0.0),
            "mark_price": raw["mark_price"],
            "mark_iv_pct": raw["mark_iv_pct"],
            "best_bid_price": bid,
            "best_bid_amount": np.full(n, np.nan),
            "best_ask_price": ask,
            "best_ask_amount": np.full(n, np.nan),
            "bid_iv_pct": np.full(n, np.nan),
            "ask_iv_pct": np.full(n, np.nan),
            "last_price": np.full(n, np.nan),
            "settlement_price": np.full(n, np.nan),
            "open_interest": raw["open_interest"],
            "volume_24h": raw["volume_24h"],
            "volume_24h_usd": raw["volume_24h_usd"],
            "delta": raw["delta"], "gamma": np.full(n, np.nan), "vega": raw["vega"],
            "theta": np.full(n, np.nan), "rho": np.full(n, np.nan),
        })
    assert tuple(out.columns) == _CHAIN_COLUMNS
    return _finish(out)


def load_deribit_chain(snapshot) -> pd.DataFrame:
    """A Deribit option-chain snapshot, in one layout for all shipped snapshots.

    Parameters
    ----------
    snapshot : str, datetime.date, datetime.datetime, pandas.Timestamp or numpy.datetime64
        Which snapshot: ``"2020-05-14"`` (BTC, 310 instruments, 7 expiries, tickers pulled
        05:41:36-05:44:06 UTC), ``"2020-05-21"`` (BTC, 326 instruments, 7 expiries,
        23:19:53-23:22:35 UTC) or ``"2025-12-31"`` (BTC 620 + ETH 666 instruments, 12 expiries
        each, 09:18:28 UTC). The file stamps (``"20200514T0541Z"``, ...) and any date or timestamp
        falling on those UTC days are accepted too.

    Returns
    -------
    pandas.DataFrame
        One row per option, in the file's order (currency, expiry, strike, call before put), with
        these columns (money in **coin** means BTC for BTC options, ETH for ETH options):

        ================================  =======================================================
        ``snapshot``                      time of the snapshot (UTC): the 2025 file's stamp; for
                                          the 2020 files, the first ticker's time
        ``timestamp``                     time of this row's ticker (UTC); equal to ``snapshot`` in
                                          the 2025 file (one stamp for the whole chain)
        ``currency``                      category: ``BTC``, ``ETH``
        ``instrument_name``               e.g. ``BTC-26JUN20-9000-C``
        ``option_type``                   category: ``call``, ``put``
        ``strike``                        USD
        ``expiry``                        UTC; always 08:00
        ``underlying_index``              future (``BTC-26JUN20``) or synthetic forward
                                          (``SYN.BTC-15MAY20``) the option is priced on
        ``underlying_price``              forward F of that underlying, USD
        ``index_price``                   spot index, USD
        ``estimated_delivery_price``      USD (2020 only; NaN in 2025)
        ``interest_rate``                 Deribit's rate input, 0.0 in the 2020 files; 0.0 (not in
                                          the file, Deribit's default) for 2025
        ``mark_price``                    coin
        ``mark_iv_pct``                   mark implied vol, annualised **percent** (as Deribit
                                          shows it; divide by 100 for pmnb's decimal convention)
        ``best_bid_price``                coin; NaN = no bid
        ``best_bid_amount``               contracts (1 contract = 1 coin); NaN when no bid
                                          (2025: not in the file, NaN)
        ``best_ask_price``                coin; NaN = no ask
        ``best_ask_amount``               as ``best_bid_amount``
        ``bid_iv_pct``, ``ask_iv_pct``    percent; NaN = no quote or no implied vol (2025: NaN)
        ``last_price``                    coin, last trade (2020 only; NaN = none)
        ``settlement_price``              coin, previous settlement (2020 only)
        ``open_interest``                 contracts
        ``volume_24h``                    contracts (2020: NaN where the API gave none)
        ``volume_24h_usd``                USD (2025 only; NaN in 2020)
        ``delta``                         plain Black-76 forward delta, not premium-adjusted
        ``gamma``                         per USD (2020 only; NaN in 2025)
        ``vega``                          USD per vol point
        ``theta``                         USD per calendar day (2020 only; NaN in 2025)
        ``rho``                           Deribit's rho as published (2020 only; NaN in 2025)
        ================================  =======================================================

        Timestamps are ``datetime64[ns, UTC]``; ``instrument_name`` and ``underlying_index`` are
        text; every other column is float64.

    Raises
    ------
    pmnb.errors.ValidationError
        If ``snapshot`` is not a shipped snapshot (``field="snapshot"``); the message lists them.

    Notes
    -----
    Cleaning applied: in the 2020 files Deribit's 0 in ``best_bid_price``/``best_ask_price``
    means "no quote" and becomes NaN (and so does the matching amount, which is 0 too); a 0 in
    ``bid_iv_pct``/``ask_iv_pct`` means no quote *or* a price with no implied vol (e.g. a bid below
    intrinsic value) and becomes NaN. An ``ask_iv_pct`` of 500 is Deribit's display cap, kept as
    is. Zeros in ``mark_price`` (worthless options) are real and kept. The 2025 source did not
    save gamma, theta, rho, quote sizes or quote IVs: those columns are NaN.

    Conventions checked on these files (``data/README.md``): with F = ``underlying_price``,
    T = (``expiry`` - ``timestamp``) / 365 days, sigma = ``mark_iv_pct`` / 100 and r = 0,
    ``mark_price`` = Black-76 price / F, ``delta`` = N(d1) (calls) or N(d1) - 1 (puts),
    ``vega`` = F phi(d1) sqrt(T) / 100 and ``theta`` = -F phi(d1) sigma / (2 sqrt(T)) / 365;
    Deribit rounds gamma to 5 decimals. Source: Deribit public API dumps, see ``data/README.md``.

    Examples
    --------
    >>> from pmnb.datasets import load_deribit_chain
    >>> chain = load_deribit_chain("2025-12-31")
    >>> chain.groupby("currency", observed=True).agg(rows=("strike", "size"),
    ...                                              expiries=("expiry", "nunique"))
              rows  expiries
    currency
    BTC        620        12
    ETH        666        12
    >>> old = load_deribit_chain("20200514T0541Z")
    >>> row = old[old["instrument_name"] == "BTC-26JUN20-9000-C"].iloc[0]
    >>> str(row["expiry"]), row["option_type"]
    ('2020-06-26 08:00:00+00:00', 'call')
    >>> int(old["best_bid_price"].isna().sum())  # the file's zero bids
    26
    """
    key = _snapshot_key(snapshot, _CHAIN_FILES)
    return _chain(key).copy(deep=True)


@functools.lru_cache(maxsize=None)
def _forwards(key: str) -> pd.DataFrame:
    _, file = _FORWARD_FILES[key]
    raw = _read_csv(file, {"snapshot_utc": _TXT, "currency": _TXT, "instrument_name": _TXT,
                           "kind": _TXT, "expiry_utc": _TXT, "forward_from_option_underlying": _F8,
                           "futures_last_trade_1m": _F8, "index_price": _F8})
    out = pd.DataFrame({
        "snapshot": _utc(raw["snapshot_utc"], file, "snapshot_utc"),
        "currency": _category(raw["currency"], _CURRENCIES, file, "currency"),
        "instrument_name": raw["instrument_name"],
        "kind": _category(raw["kind"], _FORWARD_KINDS, file, "kind"),
        "expiry": _utc(raw["expiry_utc"], file, "expiry_utc"),
        "forward_from_option_underlying": raw["forward_from_option_underlying"],
        "futures_last_trade_1m": raw["futures_last_trade_1m"],
        "index_price": raw["index_price"],
    })
    return _finish(out)


def load_deribit_forwards(snapshot="2025-12-31") -> pd.DataFrame:
    """Deribit BTC and ETH forward curves at an option-chain snapshot.

    Parameters
    ----------
    snapshot : str, datetime.date, datetime.datetime, pandas.Timestamp or numpy.datetime64
        Only ``"2025-12-31"`` (09:18:28 UTC, the stamp of the 2025 chain) is shipped; its file
        stamp ``"20251231T0918Z"`` or any date/timestamp of that UTC day is accepted too. For the
        2020 chains use their ``underlying_price`` per ``underlying_index``.

    Returns
    -------
    pandas.DataFrame
        26 rows (13 per currency: 8 futures, the perpetual, 4 synthetic forwards), columns
        ``snapshot`` (UTC), ``currency`` (category), ``instrument_name``, ``kind`` (category:
        ``future``, ``perpetual``, ``synthetic``), ``expiry`` (UTC, 08:00; NaT for the perpetual),
        ``forward_from_option_underlying`` (USD: the ``underlying_price`` of that expiry's options,
        i.e. the futures mark or Deribit's synthetic forward; NaN for the perpetual),
        ``futures_last_trade_1m`` (USD, last trade of the nearest 1-minute candle; NaN for
        synthetics) and ``index_price`` (USD).

    Raises
    ------
    pmnb.errors.ValidationError
        If ``snapshot`` is not a shipped forward snapshot (``field="snapshot"``).

    Examples
    --------
    >>> from pmnb.datasets import load_deribit_forwards
    >>> fw = load_deribit_forwards()
    >>> fw.groupby(["currency", "kind"], observed=True).size()
    currency  kind
    BTC       future       8
              perpetual    1
              synthetic    4
    ETH       future       8
              perpetual    1
              synthetic    4
    dtype: int64
    """
    key = _snapshot_key(snapshot, _FORWARD_FILES,
                        hint="; the 2020 chains have no forward file: use their underlying_price")
    return _forwards(key).copy(deep=True)


# --------------------------------------------------------------------------------------------------
# Stress events
# --------------------------------------------------------------------------------------------------
_STRESS_DATES = (
    "anchor_date", "window_start", "window_end", "close_ret_1d_worst_date",
    "low_vs_prev_close_1d_worst_date", "close_ret_7d_worst_end", "peak_date", "trough_date",
    "window_min_low_date", "iv_pre_date", "iv_peak_date",
)
_STRESS_TEXT = (
    "event_id", "name", "asset", "iv_measure", "liquidations_reported", "iv_reported",
    "price_source", "sources",
)
_STRESS_COLUMNS = (
    "event_id", "name", "anchor_date", "window_start", "window_end", "asset", "pre_close",
    "close_ret_1d_worst", "close_ret_1d_worst_date", "low_vs_prev_close_1d_worst",
    "low_vs_prev_close_1d_worst_date", "close_ret_7d_worst", "close_ret_7d_worst_end",
    "peak_to_trough_7d", "peak_high", "peak_date", "trough_low", "trough_date", "window_min_low",
    "window_min_low_date", "window_end_close", "binance_btcusdt_window_min_low",
    "binance_btcusdt_low_vs_prev_close_1d_worst", "binance_btcusdt_peak_to_trough_7d",
    "iv_measure", "iv_pre", "iv_pre_date", "iv_peak", "iv_peak_date", "iv_change_pts",
    "liquidations_usd_reported", "liquidations_reported", "iv_reported", "price_source", "sources",
)


@functools.lru_cache(maxsize=None)
def _stress() -> pd.DataFrame:
    file = "stress_events.csv"
    dtypes = {c: (_TXT if c in _STRESS_DATES or c in _STRESS_TEXT else _F8)
              for c in _STRESS_COLUMNS}
    raw = _read_csv(file, dtypes)
    for c in _STRESS_DATES:
        raw[c] = _day(raw[c], file, c)
    raw["asset"] = _category(raw["asset"], _CURRENCIES, file, "asset")
    return _finish(raw)


def load_stress_events() -> pd.DataFrame:
    """Library of seven crypto stress events, for BTC and ETH (14 rows).

    Returns
    -------
    pandas.DataFrame
        Events (``event_id``: ``black_thursday_2020``, ``may19_2021``, ``luna_ust_2022``,
        ``celsius_3ac_2022``, ``ftx_2022``, ``yen_carry_2024``, ``tariff_liquidations_2025``) by
        ``asset`` (category: BTC, ETH). Date columns (``anchor_date``, ``window_start``,
        ``window_end``, ``*_date``, ``close_ret_7d_worst_end``) are ``datetime64[ns, UTC]`` (UTC
        days); the numeric columns are float64: prices in USD (``pre_close``, ``peak_high``,
        ``trough_low``, ``window_min_low``, ``window_end_close``,
        ``binance_btcusdt_window_min_low``),
        returns as fractions (``close_ret_1d_worst``, ``low_vs_prev_close_1d_worst``,
        ``close_ret_7d_worst``, ``peak_to_trough_7d``, ``binance_btcusdt_*``; -0.37 is -37 %),
        implied vol in percent (``iv_pre``, ``iv_peak``) and points (``iv_change_pts``),
        ``liquidations_usd_reported`` in USD. Text columns: ``name``, ``iv_measure``,
        ``liquidations_reported``, ``iv_reported``, ``price_source``, ``sources`` (URLs
        separated by ``" ; "``).

    Notes
    -----
    Price statistics are computed from :func:`load_prices` (aggregate daily bars; exchange-level
    intraday extremes are deeper). Liquidation totals and the 2020 implied vol are *as reported* by
    the cited, mostly secondary, sources. Binance columns are NaN for ETH; the IV columns are NaN
    where no series was available. Column definitions: ``data/README.md``.

    Examples
    --------
    >>> from pmnb.datasets import load_stress_events
    >>> ev = load_stress_events()
    >>> btc = ev[ev["asset"] == "BTC"].set_index("event_id")
    >>> round(float(btc.loc["black_thursday_2020", "close_ret_1d_worst"]), 4)
    -0.3717
    >>> str(btc.loc["tariff_liquidations_2025", "window_min_low_date"].date())
    '2025-10-10'
    """
    return _stress().copy(deep=True)


# --------------------------------------------------------------------------------------------------
# Demo accounts and book
# --------------------------------------------------------------------------------------------------
_DEMO_ACCOUNT_DTYPES = {"account": _TXT, "venue": _TXT, "margin_mode": _TXT,
                        "position_mode": _TXT, "fee_tier": _TXT, "settlement_currency": _TXT}
_DEMO_COLLATERAL_DTYPES = {"account": _TXT, "asset": _TXT, "balance": _F8}
_DEMO_BOOK_DTYPES = {"position_id": _TXT, "account": _TXT, "venue": _TXT, "symbol": _TXT,
                     "kind": _TXT, "size": _F8, "entry_price": _F8, "asset": _TXT, "amount": _F8,
                     "pool": _TXT, "liquidity": _F8, "tick_lower": _F8, "tick_upper": _F8,
                     "decimals0": _F8, "decimals1": _F8, "underlying": _TXT, "quote": _TXT}


@functools.lru_cache(maxsize=None)
def _demo(file: str, dtypes_key: str) -> pd.DataFrame:
    dtypes = {"accounts": _DEMO_ACCOUNT_DTYPES, "collateral": _DEMO_COLLATERAL_DTYPES,
              "book": _DEMO_BOOK_DTYPES}[dtypes_key]
    return _read_csv(file, dtypes)


def load_demo_accounts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo venue accounts and their collateral (long format: account, asset, balance).

    Invented for demonstrations and tests (no real person's accounts): a Deribit portfolio-margin
    account (BTC) and a standard-margin one (ETH), a Binance USDⓈ-M cross account (USDT),
    Hyperliquid and dYdX cross accounts (USDC), an Aave v3 position and a Uniswap v3 LP. Validate
    with ``pmnb.book.validate_accounts``.

    Examples
    --------
    >>> from pmnb.datasets import load_demo_accounts
    >>> accounts, collateral = load_demo_accounts()
    >>> accounts["account"].tolist()[:3], float(collateral["balance"].iloc[0])
    (['deribit-pm', 'deribit-sm', 'binance-usdm'], 14.0)
    """
    return (_demo("demo_accounts.csv", "accounts").copy(deep=True),
            _demo("demo_collateral.csv", "collateral").copy(deep=True))


def load_demo_book() -> pd.DataFrame:
    """The demo book: invented positions on real instruments of the 2025-12-31 Deribit snapshot.

    BTC and ETH inverse options, futures and perpetuals on the Deribit accounts, a Binance
    BTCUSDT perpetual, a Hyperliquid ETH perpetual, a dYdX BTC-USD perpetual, an Aave v3 WETH
    supply / USDC borrow pair and a Uniswap v3 WETH/USDC LP position (raw liquidity and ticks;
    token0 WETH with 18 decimals, token1 USDC with 6). The raw frame: validate and value it
    with ``pmnb.read_positions(load_demo_book())`` and ``df.pm``.

    Examples
    --------
    >>> from pmnb.datasets import load_demo_book
    >>> book = load_demo_book()
    >>> len(book), book["position_id"].is_unique
    (15, True)
    """
    return _demo("demo_book.csv", "book").copy(deep=True)
