r"""Trade ledgers to positions: signed size, average entry, realised P&L and fees per position.

:func:`positions_from_trades` walks a ledger of fills (one row per fill) in time order and returns
one row per position, keyed by ``(account, venue, symbol)``. Contract facts (settlement, contract
size, kind) are columns of the ledger: this module parses no venue symbols.

Accounting
----------
Average-cost accounting, per position, fill by fill (stable on equal times):

* a fill **in the direction** of the position (or opening it) moves the average entry;
* a fill **against** it realises P&L on the closed contracts at the fill price, and leaves the
  average entry of the rest unchanged;
* a fill **through zero** (a flip) realises P&L on the whole old position and opens the remainder
  at the fill price.

How the average and the P&L are taken depends on the contract. Fills ``i`` of ``n_i`` contracts at
:math:`P_i` build the open position; closing ``n`` of its contracts at :math:`P_x` realises (for a
long; the sign flips for a short), with contract size ``c``:

inverse future / perpetual (USD-denominated contracts, coin-settled)
    Average entry is the contract-weighted **harmonic** mean,
    :math:`\bar P = \sum n_i / \sum (n_i / P_i)`; realised P&L, in coin,
    :math:`n\,c\,(1/\bar P - 1/P_x)` with ``c`` in USD per contract.
linear future / perpetual, spot (quote-settled)
    Contract-weighted **arithmetic** mean, :math:`\bar P = \sum n_i P_i / \sum n_i`; realised
    P&L, in the quote, :math:`n\,c\,(P_x - \bar P)` with ``c`` in coin per contract.
option, inverse (Deribit: premium in coin per 1-coin contract) or linear (premium in quote)
    Arithmetic mean of the premium; realised P&L :math:`n\,c\,(P_x - \bar P)` in the premium's
    unit: coin for inverse, quote for linear options.

Sources:

* Deribit, *Example (futures)*, https://www.deribit.com/docs/example-futures/ : 100 contracts of
  10 USD bought at 600 and sold at 700 make 1000/600 − 1000/700 = 0.238095 BTC, i.e.
  :math:`n\,c\,(1/P_{entry} - 1/P_{exit})`; Deribit, *Futures* and *Deribit Perpetual* contract
  specifications, https://legacy.deribit.com/pages/docs/futures and
  https://www.deribit.com/pages/docs/perpetual :
  "1 USD per Index Point, with contract size USD 10", cash settlement in BTC.
* BitMEX, *Inverse Perpetuals Guide*, https://www.bitmex.com/app/inversePerpetualsGuide : "PnL =
  # Contracts * Multiplier * (1/Entry Price - 1/Exit Price)", PnL denominated in bitcoin.
* Bybit Help Center, *average entry price* (article 000001113, read at
  https://testnet.bybit.com/en/help-center/article?id=000001113): inverse contracts, "Average entry
  price = Total quantity of contracts / Total contract value" with contract value
  :math:`\sum Q_i/P_i` (50 @ 10,000 and 50 @ 15,000 average 12,000); USDT contracts, the
  contract-weighted arithmetic mean.
* Binance, *A Beginner's Guide to Futures Trading*,
  https://www.binance.com/en-IN/support/announcement/a-beginner-s-guide-to-futures-trading-360039304272
  : USDⓈ-M "Unrealized PNL = Position Size * Order Direction * (Mark Price - Entry Price)"; COIN-M
  "Unrealized PNL = position_size * contract_multiplier * Order Direction * (1 / Entry Price -
  1 / Mark Price)", realised at the exit price when a fill closes. (Binance states the P&L; the
  arithmetic contract-weighted average used for linear contracts is the rule Bybit documents.)
* Deribit, *Inverse Options*,
  https://support.deribit.com/hc/en-us/articles/25944688327069-Inverse-Options : "inverse options
  are priced in the base currency", contract multiplier 1; Deribit, *Options*,
  https://www.deribit.com/pages/docs/options : a call bought for 0.05 BTC and settled at 0.2 BTC
  makes 0.15 BTC, i.e. premium P&L in coin, linear in the premium.

Realised P&L accumulates over the whole ledger (it is not reset when a position goes flat, unlike
BitMEX's front end: "Realised PNL is reset to 0" on close,
https://blog.bitmex.com/site_announcement/notice-of-change-in-realised-pnl-accounting/) and is
**gross**: fees are reported separately, per currency, because venues charge them in currencies
other than the P&L's (BNB discounts on Binance, for example). Funding
payments and expiry settlement are not fills; record a delivery as a fill at the delivery price to
realise it (an option expiring worthless is a fill at price 0, accepted for options only).

Sizes are snapped to zero when a fill leaves less than ``1e-10`` of the larger of the position and
the fill (so that 0.1 + 0.2 − 0.3 contracts is flat, not 5.6e-17 contracts).

Complexity: validation is vectorised; fills are ordered with one ``np.lexsort`` (O(n log n)); the
ledger itself is sequential within a position, so it is one Python-level step per fill (O(n),
about 0.3 µs per fill here). A million fills over 150 positions take about 1.5 s in all.

Examples
--------
>>> import pandas as pd
>>> from pmnb.ledger import positions_from_trades
>>> trades = pd.DataFrame({
...     "time": pd.to_datetime(["2025-01-02T08:00Z", "2025-01-03T08:00Z",
...                             "2025-01-04T08:00Z", "2025-01-05T08:00Z"]),
...     "account": "main", "venue": "deribit", "symbol": "BTC-PERPETUAL",
...     "side": ["buy", "buy", "sell", "sell"], "size": [100, 100, 150, 100],
...     "price": [40_000.0, 60_000.0, 50_000.0, 60_000.0],
...     "settlement": "inverse", "contract_size": 10.0, "kind": "perpetual"})
>>> pos = positions_from_trades(trades)
>>> pos[["symbol", "size", "entry_price", "realised_pnl", "pnl_currency", "n_trades"]]
          symbol  size  entry_price  realised_pnl pnl_currency  n_trades
0  BTC-PERPETUAL -50.0      60000.0      0.003333         coin         4

The first two buys average 200 / (100/40,000 + 100/60,000) = 48,000 (harmonic); selling 150 at
50,000 realises 150 × 10 × (1/48,000 − 1/50,000) = 0.00125 BTC; the last sell closes 50 at 60,000
(+0.00208333 BTC) and opens a 50-contract short at 60,000.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError

__all__ = ["POSITION_COLUMNS", "TRADABLE_KINDS", "TRADE_COLUMNS", "TRADE_OPTIONAL_COLUMNS",
           "positions_from_trades", "trade_at_mark"]

#: Columns every trades frame must have.
TRADE_COLUMNS: tuple[str, ...] = ("time", "account", "venue", "symbol", "size", "price",
                                  "settlement", "contract_size", "kind")
#: Columns read when present (``fee_currency`` is required once ``fee`` is given).
TRADE_OPTIONAL_COLUMNS: tuple[str, ...] = ("trade_id", "side", "fee", "fee_currency",
                                           "pnl_currency")
#: Columns of the positions frame, in order.
POSITION_COLUMNS: tuple[str, ...] = ("account", "venue", "symbol", "kind", "settlement",
                                     "contract_size", "size", "entry_price", "realised_pnl",
                                     "pnl_currency", "fees", "n_trades", "first_trade", "opened",
                                     "last_trade")

_SIDES = ("buy", "sell")
_SETTLEMENTS = ("inverse", "linear")
_KINDS = ("future", "perpetual", "option", "spot")
_SNAP = 1e-10  # relative size below which a position is flat
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "UCT", "Etc/UCT", "Zulu", "Etc/Zulu", "Universal",
                        "Etc/Universal", "GMT", "Etc/GMT", "GMT0", "Etc/GMT0", "Etc/GMT+0",
                        "Etc/GMT-0"})
_TIME_ACCEPTED = ("UTC times: a tz-aware datetime column in UTC, or ISO-8601 strings ending in 'Z' "
                  "or '+00:00' (convert others with pd.to_datetime(..., utc=True) or "
                  ".dt.tz_convert('UTC'))")


# --------------------------------------------------------------------------------------------------
# validation helpers

def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _raise_first(field: str, bad: np.ndarray, shown: Any, labels: pd.Index, accepted: str) -> None:
    """Raise the standard ValidationError for the first True of ``bad`` (positions), if any."""
    pos = np.flatnonzero(bad)
    if len(pos) == 0:
        return
    first = int(pos[0])
    value = shown.iloc[first] if isinstance(shown, pd.Series) else shown[first]
    err = ValidationError.for_field(field, row=_plain(labels[first]), value=_plain(value),
                                    accepted=accepted, n_bad=len(pos))
    err.rows = [_plain(labels[i]) for i in pos]
    raise err


def _numbers(df: pd.DataFrame, col: str) -> np.ndarray:
    return pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _words(df: pd.DataFrame, col: str, accepted: tuple[str, ...], labels: pd.Index,
           ) -> np.ndarray:
    """Lower-cased, stripped labels checked against ``accepted`` (any case).

    Normalises the few distinct values (``pandas.factorize``), not every row.
    """
    codes, uniques = pd.factorize(df[col], use_na_sentinel=True)
    spelled_u = [u.strip().lower() if isinstance(u, str) else None for u in uniques]
    known = np.array([u in accepted for u in spelled_u] + [False])
    bad = ~known[codes]
    spelled = (" or ".join(map(repr, accepted)) if len(accepted) == 2
               else "one of " + ", ".join(map(repr, accepted)))
    _raise_first(col, bad, df[col], labels, spelled + " (any case)")
    # fixed-width unicode: comparisons on it are vectorised, unlike on object arrays
    return np.array(spelled_u + [""], dtype=f"U{max(map(len, accepted))}")[codes]


def _is_utc(tz: Any) -> bool:
    return tz is not None and (tz is _dt.timezone.utc or str(tz) in _UTC_NAMES)


def _times(df: pd.DataFrame, labels: pd.Index) -> pd.Series:
    """The ``time`` column as a UTC datetime Series, or ValidationError on the first bad row."""
    raw = df["time"]
    parsed = None
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        if not _is_utc(raw.dt.tz):
            _raise_first("time", np.ones(len(raw), bool), raw, labels,
                         _TIME_ACCEPTED + f"; the column's time zone is {raw.dt.tz}")
        parsed = raw
    elif pd.api.types.infer_dtype(raw, skipna=True) in ("string", "datetime", "empty"):
        try:
            cand = pd.to_datetime(raw, format="ISO8601")
        except (TypeError, ValueError, OverflowError):
            cand = None
        if cand is not None and isinstance(cand.dtype, pd.DatetimeTZDtype) and _is_utc(cand.dt.tz):
            parsed = cand
    if parsed is not None:
        _raise_first("time", parsed.isna().to_numpy(), raw, labels, _TIME_ACCEPTED)
        return parsed
    # slow path (errors, or a column pandas cannot parse in one go): one value at a time
    stamps: list = []
    bad = np.zeros(len(raw), bool)
    for i, v in enumerate(raw.tolist()):
        try:
            t = pd.Timestamp(v) if isinstance(v, (str, _dt.datetime, np.datetime64)) else pd.NaT
        except (TypeError, ValueError, OverflowError):
            t = pd.NaT
        bad[i] = t is pd.NaT or not _is_utc(t.tzinfo)
        stamps.append(t)
    _raise_first("time", bad, raw, labels, _TIME_ACCEPTED)
    return pd.Series(pd.to_datetime(stamps, utc=True), index=raw.index)


def _group_ids(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    try:
        return df.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    except TypeError:  # keys of mixed, unorderable types: order of first appearance
        return df.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()


def _same_per_instrument(col: str, values: np.ndarray, inst: np.ndarray, shown: pd.Series,
                         venue: pd.Series, symbol: pd.Series, labels: pd.Index) -> None:
    """Every fill of one (venue, symbol) must carry the same ``col``."""
    firstpos = pd.Series(np.arange(len(inst))).groupby(inst).transform("first").to_numpy()
    bad = values != values[firstpos]
    pos = np.flatnonzero(bad)
    if len(pos):
        i, j = int(pos[0]), int(firstpos[pos[0]])
        _raise_first(col, bad, shown, labels,
                     f"one {col} per (venue, symbol); ({_plain(venue.iloc[i])!r}, "
                     f"{_plain(symbol.iloc[i])!r}) has {_plain(shown.iloc[j])!r} at row "
                     f"{_plain(labels[j])!r}")


# --------------------------------------------------------------------------------------------------
# the ledger walk

def _walk(pid: list[int], d: list[float], q: list[float], n_pos: int):
    """Average-cost walk over fills sorted by (position, time, row).

    ``d`` is the signed size, ``q`` the averaged price transform (``1/P`` for inverse futures,
    ``P`` otherwise). Returns per-position size, mean of ``q`` over the open size (NaN if flat),
    the realised sum of ``sign(s) * closed * (q_exit - q_mean)`` and the sorted index of the fill
    that opened the current position (-1 if flat).
    """
    size = [0.0] * n_pos
    qbar = [float("nan")] * n_pos
    raw = [0.0] * n_pos
    opened = [-1] * n_pos
    n = len(d)
    i = 0
    while i < n:
        k = pid[i]
        s, qb, pnl, op = 0.0, float("nan"), 0.0, -1
        while i < n and pid[i] == k:
            di, qi = d[i], q[i]
            if s == 0.0:
                s, qb, op = di, qi, i
            elif (s > 0.0) == (di > 0.0):
                a, b = abs(s), abs(di)
                qb = (a * qb + b * qi) / (a + b)
                s += di
            else:
                a, b = abs(s), abs(di)
                closed = a if a < b else b
                pnl += (closed if s > 0.0 else -closed) * (qi - qb)
                s_new = s + di
                if abs(s_new) <= _SNAP * (a if a > b else b):
                    s, qb, op = 0.0, float("nan"), -1
                elif b > a:  # flip: the remainder opens at the fill price
                    s, qb, op = s_new, qi, i
                else:
                    s = s_new
            i += 1
        size[k], qbar[k], raw[k], opened[k] = s, qb, pnl, op
    return size, qbar, raw, opened


def _empty_positions(time_dtype: Any) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in POSITION_COLUMNS})
    for c in ("contract_size", "size", "entry_price", "realised_pnl"):
        out[c] = out[c].astype(np.float64)
    out["n_trades"] = out["n_trades"].astype(np.int64)
    for c in ("first_trade", "opened", "last_trade"):
        out[c] = out[c].astype(time_dtype)
    return out


# --------------------------------------------------------------------------------------------------

def positions_from_trades(trades: pd.DataFrame) -> pd.DataFrame:
    r"""Positions from a ledger of fills: signed size, average entry, realised P&L, fees.

    Parameters
    ----------
    trades : pandas.DataFrame
        One row per fill. Other columns are ignored. Row labels (the index) name rows in errors.

        ``time``
            UTC time of the fill: a tz-aware datetime column in UTC, or ISO-8601 strings ending in
            ``Z`` or ``+00:00``. Naive or other-zone times are rejected (ambiguous or easy to get
            wrong); convert with ``pd.to_datetime(..., utc=True)`` or ``.dt.tz_convert("UTC")``.
        ``account``, ``venue``, ``symbol``
            The position key; any non-missing labels (``symbol`` as the venue spells it, e.g.
            ``"BTC-PERPETUAL"`` on Deribit, ``"BTCUSDT"`` on Binance).
        ``side`` (optional)
            ``"buy"`` or ``"sell"`` (any case). When given, it sets the direction and ``size``
            must be positive (a negative size is accepted on a ``"sell"`` row, where it agrees,
            and rejected on a ``"buy"`` row). Without it, ``size`` is signed: positive buys,
            negative sells.
        ``size``
            Contracts, finite and non-zero (see ``side``).
        ``price``
            Fill price in the instrument's quote: USD per coin for futures, perpetuals and spot;
            coin per option for Deribit inverse options; USD (quote) per option for linear options.
            Finite and ``> 0``; options also accept ``0`` (an option expiring worthless).
        ``fee`` (optional), ``fee_currency``
            Fee paid on the fill, ``>= 0``, in ``fee_currency`` (required once ``fee`` is given;
            may be missing on rows whose fee is 0). Without ``fee``, fees are zero.
        ``settlement``
            ``"inverse"`` (coin-settled) or ``"linear"`` (quote-settled), any case. Spot is linear.
        ``contract_size``
            Finite, ``> 0``: USD per contract for inverse futures and perpetuals (Deribit BTC: 10;
            BitMEX XBTUSD: 1); coin per contract otherwise (Binance USDⓈ-M and Deribit
            inverse options: 1).
        ``kind``
            ``"future"``, ``"perpetual"``, ``"option"`` or ``"spot"``, any case.
        ``pnl_currency`` (optional)
            The currency P&L is paid in (``"BTC"``, ``"USDT"``, ...). Without it, the output says
            ``"coin"`` for inverse and ``"quote"`` for linear instruments.
        ``trade_id`` (optional)
            Unique among non-missing values.

        ``settlement``, ``contract_size``, ``kind`` and ``pnl_currency`` must be the same on every
        fill of one ``(venue, symbol)``.

    Returns
    -------
    pandas.DataFrame
        One row per ``(account, venue, symbol)``, sorted by those keys, with a fresh RangeIndex and
        the columns :data:`POSITION_COLUMNS`:

        ``account``, ``venue``, ``symbol``, ``kind``, ``settlement``, ``contract_size``
            The key and the contract facts, carried over (``kind`` and ``settlement`` lower-cased).
        ``size``
            Open signed contracts (0.0 when flat).
        ``entry_price``
            Average entry of the open size in the price's unit (harmonic for inverse futures and
            perpetuals, arithmetic otherwise; see the module docstring); NaN when flat.
        ``realised_pnl``, ``pnl_currency``
            Realised P&L over the whole ledger, before fees: coin for inverse, quote for linear.
        ``fees``
            A dict ``{fee_currency: total}`` of the fees paid (non-zero fees only; ``{}`` if none),
            in order of first payment. Net P&L in the P&L currency is
            ``realised_pnl - fees.get(pnl_currency, 0)``; ``pos.fees.apply(pd.Series)`` widens the
            column into one column per currency.
        ``n_trades``
            Number of fills.
        ``first_trade``, ``opened``, ``last_trade``
            Times of the first fill, of the fill that opened the current position (the last one
            that left zero, a flip included; NaT when flat) and of the last fill.

    Raises
    ------
    ValidationError
        Naming the column, the first bad row (index label) and what is accepted: a missing column;
        a missing, non-finite or non-positive ``price``, ``size`` or ``contract_size``; an unknown
        ``side``, ``settlement`` or ``kind`` (or inverse spot); a negative or missing ``fee``, or
        a fee without ``fee_currency``; a non-UTC, naive, missing or unparseable ``time``; a
        duplicated ``trade_id``; a ``(venue, symbol)`` whose fills disagree on ``settlement``,
        ``contract_size``, ``kind`` or ``pnl_currency``.

    Notes
    -----
    Fills are applied in ``time`` order, ties in row order. Formulas, sources and complexity are in
    the module docstring (:mod:`pmnb.ledger`).

    Examples
    --------
    A Binance USDⓈ-M BTCUSDT position, signed sizes (no ``side`` column): 0.5 BTC bought at 60,000
    and 1.5 at 64,000 average (30,000 + 96,000) / 2 = 63,000; selling 1.0 at 66,000 realises
    +3,000 USDT, and the remaining 1.0 stays at 63,000.

    >>> import pandas as pd
    >>> trades = pd.DataFrame({
    ...     "time": ["2025-03-01T00:00Z", "2025-03-01T01:00Z", "2025-03-01T02:00Z"],
    ...     "account": "a1", "venue": "binance", "symbol": "BTCUSDT",
    ...     "size": [0.5, 1.5, -1.0], "price": [60_000.0, 64_000.0, 66_000.0],
    ...     "fee": [15.0, 48.0, 33.0], "fee_currency": "USDT", "pnl_currency": "USDT",
    ...     "settlement": "linear", "contract_size": 1.0, "kind": "perpetual"})
    >>> pos = positions_from_trades(trades)
    >>> pos[["symbol", "size", "entry_price", "realised_pnl", "pnl_currency", "fees"]]
        symbol  size  entry_price  realised_pnl pnl_currency            fees
    0  BTCUSDT   1.0      63000.0        3000.0         USDT  {'USDT': 96.0}
    >>> pos.loc[0, "opened"]
    Timestamp('2025-03-01 00:00:00+0000', tz='UTC')
    """
    if not isinstance(trades, pd.DataFrame):
        raise ValidationError(f"trades: got {type(trades).__name__}; accepted: a pandas DataFrame "
                              f"with columns {', '.join(TRADE_COLUMNS)}", field="trades")
    cols = set(trades.columns)
    missing = [c for c in TRADE_COLUMNS if c not in cols]
    if "fee" in cols and "fee_currency" not in cols:
        missing.append("fee_currency")
    if missing:
        raise ValidationError(
            f"{missing[0]}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))}; accepted: a DataFrame with columns "
            f"{', '.join(TRADE_COLUMNS)} (optional: {', '.join(TRADE_OPTIONAL_COLUMNS)}; "
            "fee_currency is required with fee)", field=missing[0])
    df = trades
    labels = df.index
    n = len(df)

    # ---- row-wise checks (vectorised), first bad row named ----
    for key in ("account", "venue", "symbol"):
        _raise_first(key, df[key].isna().to_numpy(), df[key], labels, "a non-missing label")
    settlement = _words(df, "settlement", _SETTLEMENTS, labels)
    kind = _words(df, "kind", _KINDS, labels)
    _raise_first("settlement", (kind == "spot") & (settlement == "inverse"), df["settlement"],
                 labels, "'linear' for kind 'spot' ('inverse' is for futures, perpetuals and "
                 "options)")
    is_option = kind == "option"

    price = _numbers(df, "price")
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(price) & ((price > 0) | (is_option & (price == 0))))
    _raise_first("price", bad, df["price"], labels,
                 "finite, > 0 (options: >= 0), in the instrument's quote")

    size = _numbers(df, "size")
    if "side" in cols:
        side = _words(df, "side", _SIDES, labels)
        sell = side == "sell"
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(size) & ((size > 0) | (sell & (size < 0))))
        _raise_first("size", bad, df["size"], labels,
                     "finite contracts, > 0 when side is given (a negative size only on a 'sell' "
                     "row)")
        signed = np.where(sell, -np.abs(size), size)
    else:
        bad = ~(np.isfinite(size) & (size != 0))
        _raise_first("size", bad, df["size"], labels,
                     "finite, non-zero signed contracts (> 0 buy, < 0 sell; or give a side column)")
        signed = size

    contract_size = _numbers(df, "contract_size")
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(contract_size) & (contract_size > 0))
    _raise_first("contract_size", bad, df["contract_size"], labels,
                 "finite, > 0 (USD per contract for inverse futures/perpetuals, coin otherwise)")

    if "fee" in cols:
        fee = _numbers(df, "fee")
        with np.errstate(invalid="ignore"):
            bad = ~(np.isfinite(fee) & (fee >= 0))
        _raise_first("fee", bad, df["fee"], labels, "finite, >= 0, in fee_currency")
        fee_ccy = df["fee_currency"]
        _raise_first("fee_currency", fee_ccy.isna().to_numpy() & (fee > 0), fee_ccy, labels,
                     "a currency label on every row whose fee is > 0")
    else:
        fee, fee_ccy = np.zeros(n), pd.Series([None] * n, index=labels, dtype=object)

    if "pnl_currency" in cols:
        _raise_first("pnl_currency", df["pnl_currency"].isna().to_numpy(), df["pnl_currency"],
                     labels, "a currency label (e.g. 'BTC', 'USDT') on every row")

    time = _times(df, labels)

    # ---- cross-row checks ----
    if "trade_id" in cols:
        ids = df["trade_id"]
        dup = (ids.duplicated(keep="first") & ids.notna()).to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            j = int(np.flatnonzero((ids == ids.iloc[i]).to_numpy())[0])
            _raise_first("trade_id", dup, ids, labels,
                         f"unique trade ids (or missing); {_plain(ids.iloc[i])!r} first appears at "
                         f"row {_plain(labels[j])!r}")
    inst = _group_ids(df, ["venue", "symbol"])
    _same_per_instrument("settlement", settlement, inst, df["settlement"], df["venue"],
                         df["symbol"], labels)
    _same_per_instrument("kind", kind, inst, df["kind"], df["venue"], df["symbol"], labels)
    _same_per_instrument("contract_size", contract_size, inst, df["contract_size"], df["venue"],
                         df["symbol"], labels)
    if "pnl_currency" in cols:
        _same_per_instrument("pnl_currency", df["pnl_currency"].to_numpy(dtype=object), inst,
                             df["pnl_currency"], df["venue"], df["symbol"], labels)

    if n == 0:
        return _empty_positions(time.dtype)

    # ---- order: position, then time, then row ----
    pid = _group_ids(df, ["account", "venue", "symbol"])
    t_ns = time.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[ns]"
                                                                              ).view(np.int64)
    order = np.lexsort((np.arange(n), t_ns, pid))
    pid_s = pid[order]
    n_pos = int(pid.max()) + 1
    starts = np.flatnonzero(np.r_[True, pid_s[1:] != pid_s[:-1]])
    ends = np.r_[starts[1:], n]
    head = order[starts]  # original row of each position's first fill

    inverse_futures = (settlement == "inverse") & ((kind == "future") | (kind == "perpetual"))
    q = price.copy()
    q[inverse_futures] = 1.0 / price[inverse_futures]  # > 0 there: zero prices are options only
    size_o, qbar, raw_pnl, opened_s = _walk(pid_s.tolist(), signed[order].tolist(),
                                            q[order].tolist(), n_pos)
    qbar = np.asarray(qbar)
    inv_pos = inverse_futures[head]
    cs_pos = contract_size[head]
    entry = qbar.copy()
    entry[inv_pos] = 1.0 / qbar[inv_pos]  # NaN when flat; never 0 (inverse prices are > 0)
    realised = np.asarray(raw_pnl) * cs_pos * np.where(inv_pos, -1.0, 1.0)

    # ---- fees per currency, in order of first payment ----
    fees: list[dict] = [{} for _ in range(n_pos)]
    paid = order[fee[order] > 0]  # in time order, so groups come in order of first payment
    if len(paid):
        totals = (pd.DataFrame({"p": pid[paid], "c": fee_ccy.to_numpy(dtype=object)[paid],
                                "f": fee[paid]})
                  .groupby(["p", "c"], sort=False)["f"].sum())
        for (p, c), f in totals.items():
            fees[p][_plain(c)] = float(f)

    if "pnl_currency" in cols:
        pnl_ccy = df["pnl_currency"].to_numpy(dtype=object)[head]
    else:
        pnl_ccy = np.where(settlement[head] == "inverse", "coin", "quote").astype(object)

    opened_s = np.asarray(opened_s)
    opened_rows = np.where(opened_s >= 0, order[np.maximum(opened_s, 0)], -1)
    tarr = time.array

    def _at(rows: np.ndarray) -> pd.Series:
        return pd.Series(tarr.take(rows, allow_fill=True), dtype=time.dtype)

    out = pd.DataFrame({
        "account": df["account"].to_numpy(dtype=object)[head],
        "venue": df["venue"].to_numpy(dtype=object)[head],
        "symbol": df["symbol"].to_numpy(dtype=object)[head],
        "kind": kind[head].astype(object),
        "settlement": settlement[head].astype(object),
        "contract_size": cs_pos,
        "size": np.asarray(size_o, dtype=np.float64),
        "entry_price": entry,
        "realised_pnl": realised,
        "pnl_currency": pnl_ccy,
        "fees": pd.Series(fees, dtype=object),
        "n_trades": (ends - starts).astype(np.int64),
        "first_trade": _at(head),
        "opened": _at(opened_rows),
        "last_trade": _at(order[ends - 1]),
    })
    return out


# --------------------------------------------------------------------------------------------------
# what-if trades at the market's marks

#: Kinds :func:`trade_at_mark` trades (lending and LP positions are not traded at a mark).
TRADABLE_KINDS: tuple[str, ...] = ("future", "perpetual", "option", "spot")
_USD_LIKE = ("USD", "USDT", "USDC", "DAI")


def _cash_asset(value_currency: str, held: list[str]) -> str:
    """The collateral asset that pays a trade valued in ``value_currency``: that asset when the
    account holds it; a USD amount settles in the account's only USD stablecoin when it holds
    exactly one (a Hyperliquid perpetual is quoted in USD and settles in USDC); else a new
    balance in ``value_currency``."""
    if value_currency in held:
        return value_currency
    if value_currency.upper() in _USD_LIKE:
        stables = [a for a in held if a.upper() in _USD_LIKE]
        if len(stables) == 1:
            return stables[0]
    return value_currency


def trade_at_mark(book: pd.DataFrame, collateral: pd.DataFrame, trades: pd.DataFrame,
                  market) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    r"""What-if trades filled at the market's marks: the new book, collateral and the fills.

    Each trade of ``trades`` (columns ``account``, ``venue``, ``symbol``, ``size``: signed
    contracts, buys positive) is filled at its instrument's mark in ``market`` (the ``price`` of
    :func:`pmnb.book.value_positions`), with no fee and no slippage:

    * the position's new size and average entry come from :func:`positions_from_trades` on the
      two fills (the open position at its entry, then the trade), so entries average per venue
      convention (harmonic for inverse futures and perpetuals) and a flip re-opens at the mark;
    * the account's collateral pays the change of the position's value at the mark,
      :math:`V_{before} - V_{after}` in the position's value currency: for futures and
      perpetuals that is exactly the P&L realised by average-cost accounting (nothing is paid
      to open or add), for options the premium (paid on a buy, received on a sell), for spot
      the purchase price. Equity at the mark is therefore unchanged by a trade; only margin
      requirements move. A USD amount settles in the account's only USD stablecoin when the
      account holds exactly one (see ``_cash_asset``).

    A position closed to zero leaves the book; a new one gets a fresh ``position_id``
    (``T0001``, ...). A position without an entry price is taken as entered at the mark.

    Parameters
    ----------
    book : DataFrame
        Positions (validated or raw, see :func:`pmnb.book.validate_positions`).
    collateral : DataFrame
        Long-format balances ``account, asset, balance`` (:func:`pmnb.book.validate_accounts`).
    trades : DataFrame
        One row per trade; several trades of one instrument are applied in row order.
    market : pmnb.Market

    Returns
    -------
    (book, collateral, fills)
        The validated book and the collateral after the trades, and one row per trade:
        ``account, venue, symbol, size, price, cash, cash_asset, realised_pnl, size_after,
        entry_after``.

    Raises
    ------
    ValidationError
        A trade with a missing column, a non-finite or zero size, an unknown symbol, a kind
        outside :data:`TRADABLE_KINDS`, or an instrument held in several rows of the account.

    Examples
    --------
    Sell 2 Binance BTCUSDT contracts out of a 3-contract long entered at 90,000, at a mark of
    95,000: 2 × (95,000 − 90,000) = 10,000 USDT realised into the collateral.

    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 95_000.0},
    ...                           marks={"binance:BTCUSDT": 95_000.0})
    >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                      "size": [3.0], "entry_price": [90_000.0]})
    >>> coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [1_000.0]})
    >>> trade = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                       "size": [-2.0]})
    >>> new, cash, fills = trade_at_mark(book, coll, trade, m)
    >>> float(new["size"].iloc[0]), float(new["entry_price"].iloc[0]), float(cash["balance"].iloc[0])
    (1.0, 90000.0, 11000.0)
    """
    from pmnb import book as _book   # valuation layer (the ledger itself parses nothing)

    missing = [c for c in ("account", "venue", "symbol", "size") if c not in trades]
    if missing:
        raise ValidationError(f"trades: missing column(s) {missing}; required: account, venue, "
                              "symbol, size", field=missing[0])
    size = pd.to_numeric(trades["size"], errors="coerce").to_numpy(dtype=float)
    _raise_first("size", ~np.isfinite(size) | (size == 0), trades["size"], trades.index,
                 "a finite, non-zero number of contracts (buys > 0, sells < 0)")
    v = _book.validate_positions(book)
    coll = collateral.copy()
    if not len(coll):
        coll = pd.DataFrame({"account": pd.Series(dtype=object), "asset": pd.Series(dtype=object),
                             "balance": pd.Series(dtype=float)})
    onchain = trades["venue"].astype(str).str.strip().str.lower().isin(("aave", "uniswap"))
    _raise_first("kind", onchain.to_numpy(), trades["venue"], trades.index,
                 f"a trade in one of {list(TRADABLE_KINDS)} (lending and LP positions are not "
                 "traded at a mark)")
    probe = _book.validate_positions(pd.DataFrame({   # indexed like trades: errors name its rows
        "position_id": [f"trade-{i}" for i in range(len(trades))],
        "account": trades["account"].astype(str).to_numpy(),
        "venue": trades["venue"].astype(str).to_numpy(),
        "symbol": trades["symbol"].astype(str).to_numpy(), "size": 1.0, "entry_price": 1.0},
        index=trades.index))
    kinds = probe["kind"].astype(str).to_numpy()
    _raise_first("kind", ~np.isin(kinds, TRADABLE_KINDS), pd.Series(kinds, index=trades.index),
                 trades.index, f"a trade in one of {list(TRADABLE_KINDS)}")
    marks = _book.value_positions(probe, market)["price"].to_numpy()
    rows = v.copy()
    fills = []
    next_id = 1
    t0 = pd.Timestamp("2000-01-01", tz="UTC")
    for i, label in enumerate(trades.index):
        acc, ven, sym = (str(probe[c].iloc[i]) for c in ("account", "venue", "symbol"))
        same = np.flatnonzero((rows["account"].astype(str) == acc).to_numpy()
                              & (rows["venue"].astype(str) == ven).to_numpy()
                              & (rows["symbol"].astype(str) == sym).to_numpy())
        if len(same) > 1:
            raise ValidationError(f"trades: row {label!r} trades {sym} on {acc}, held in "
                                  f"{len(same)} rows of the book; accepted: one position per "
                                  "instrument and account", field="symbol", row=label)
        P = float(marks[i])
        fill = {"time": t0 + pd.Timedelta(seconds=1), "size": size[i], "price": P}
        if len(same):
            j = same[0]
            old = rows.iloc[[j]]
            e0 = float(old["entry_price"].iloc[0])
            ledger = [{"time": t0, "size": float(old["size"].iloc[0]),
                       "price": e0 if np.isfinite(e0) else P}, fill]
        else:
            j, old = None, probe.iloc[[i]].assign(size=0.0)
            ledger = [fill]
        facts = {"account": acc, "venue": ven, "symbol": sym, "kind": kinds[i],
                 "settlement": str(probe["settlement"].iloc[i]),
                 "contract_size": float(probe["contract_size"].iloc[i])}
        pos = positions_from_trades(pd.DataFrame([{**facts, **f} for f in ledger])).iloc[0]
        new_size = float(pos["size"])
        entry = float(pos["entry_price"]) if new_size != 0 else np.nan
        after = old.assign(size=new_size, entry_price=entry if new_size != 0 else P)
        val = _book.value_positions(pd.concat([old.assign(
            entry_price=ledger[0]["price"] if j is not None else P), after]), market)
        value = val["value"].to_numpy(dtype=float)
        # futures and perpetuals: the realised P&L (equal to the value change at the mark under
        # average-cost accounting; tests check both); options and spot: premium / purchase
        cash = (float(pos["realised_pnl"]) if kinds[i] in ("future", "perpetual")
                else value[0] - value[1])
        asset = _cash_asset(str(val["value_currency"].iloc[0]),
                            coll.loc[coll["account"].astype(str) == acc, "asset"]
                            .astype(str).tolist())
        hit = (coll["account"].astype(str) == acc).to_numpy() & (
            coll["asset"].astype(str) == asset).to_numpy()
        if hit.any():
            coll.loc[coll.index[hit][0], "balance"] = float(coll.loc[coll.index[hit][0],
                                                                      "balance"]) + cash
        else:
            coll = pd.concat([coll, pd.DataFrame({"account": [acc], "asset": [asset],
                                                  "balance": [cash]})], ignore_index=True)
        if j is not None and new_size == 0:
            rows = rows.drop(index=rows.index[j])
        elif j is not None:
            rows.loc[rows.index[j], ["size", "entry_price"]] = [new_size, entry]
        else:
            ids = set(rows["position_id"].astype(str))
            while f"T{next_id:04d}" in ids:
                next_id += 1
            new_row = probe.iloc[[i]].assign(size=new_size, entry_price=entry,
                                             position_id=f"T{next_id:04d}")
            label_new = (int(rows.index.max()) + 1 if len(rows) and
                         pd.api.types.is_integer_dtype(rows.index) else f"T{next_id:04d}")
            rows = pd.concat([rows.astype({"position_id": str}),
                              new_row.astype({"position_id": str}).set_axis([label_new])])
        fills.append({"account": acc, "venue": ven, "symbol": sym, "size": size[i], "price": P,
                      "cash": cash, "cash_asset": asset,
                      "realised_pnl": float(pos["realised_pnl"]),
                      "size_after": new_size, "entry_after": entry})
    return (_book.validate_positions(rows), coll.reset_index(drop=True),
            pd.DataFrame(fills, index=trades.index))
