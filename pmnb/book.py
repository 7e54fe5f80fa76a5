"""The book: positions as a validated DataFrame, and their valuation and greeks by kind.

One row per position. The schema (``POSITION_SCHEMA``) is documented column by column below;
:func:`read_positions` turns a CSV/Parquet file or a DataFrame into a validated book, filling the
structured fields from the venue symbol where they are missing (:mod:`pmnb.instruments`).

======================  ==========================  ================================================
column                  dtype                       meaning
======================  ==========================  ================================================
position_id             category (text, unique)     generated as ``P0000…`` when absent
account                 category (text)             the venue account (margin runs per account)
venue                   category (text)             deribit, binance, okx, hyperliquid, dydx, aave,
                                                    uniswap
symbol                  category (text)             the venue's instrument name
kind                    category                    option, future, perpetual, spot,
                                                    lending_supply, lending_borrow, lp
underlying              category (text)             BTC, ETH, …
quote                   category (text)             USD, USDT, USDC, …
settlement              category                    inverse (coin-settled) or linear
strike                  float64                     options only (USD per coin)
expiry                  datetime64[ns, UTC]         options and futures; Deribit at 08:00 UTC
option_type             category                    call / put (options only)
size                    float64                     signed, in contracts (short < 0)
contract_size           float64                     coins per contract (linear, options) or USD
                                                    per contract (inverse futures/perpetuals)
entry_price             float64                     average entry in the instrument's quote:
                                                    USD (futures, linear options), coin per
                                                    contract (inverse options); NaN if unknown
isolated_margin         float64 (optional)          margin posted to an isolated position
leverage                float64 (optional)          venue leverage setting
settlement_price        float64 (optional)          settles an expired option/future to cash
asset, amount           category (text), float64    lending rows: the token and its current
                                                    (accrued) balance, > 0; ``size`` becomes
                                                    +amount (supply) or −amount (borrow)
pool, liquidity,        category (text), float64    Uniswap v3 LP rows: pool name, raw on-chain
tick_lower, tick_upper,                             liquidity L, tick range, token decimals;
decimals0, decimals1                                token0 = underlying, token1 = quote
======================  ==========================  ================================================

Text columns other than ``position_id`` are pandas categoricals whose categories are the distinct
strings, sorted (``category (text)``): a book holds few distinct accounts, venues, symbols and
coins, so validation and valuation work on their codes. They compare and convert like strings
(``book["underlying"] == "BTC"``, ``.astype(str)``).

Valuation conventions (per position, ``q = size × contract_size``):

* options: Black-76 on the market's forward for the expiry, the surface vol at the strike, the
  market's USD rate (:mod:`pmnb.pricing`). ``value`` is the premium's worth: ``q × V`` in coin for
  inverse options (``V = V_usd / F``), in USD for linear ones;
* futures and perpetuals: ``value`` is the unrealised P&L against ``entry_price`` at the venue
  mark (the market's ``mark:venue:symbol``; a future without one is marked at the curve's
  forward and ``mark_source`` says so). Inverse (USD contracts): ``q × (1/entry − 1/mark)`` coin;
  linear: ``q × (mark − entry)`` USD (Deribit, "Inverse Futures"; Binance USDⓈ-M "PnL");
* spot: ``q × spot`` USD;
* lending (Aave v3 style): ``±amount × price`` USD (supply positive, borrow negative), the
  price of wrapped tokens being their coin's index (WETH → ETH);
* Uniswap v3 LP: the position's token amounts at the pool price (whitepaper §6.3,
  :mod:`pmnb.defi`), valued in token1; the pool price is taken as the market's spot of token0
  in token1.

Stablecoins (USDC, USDT, DAI, …) are the numeraire: valued at the market's spot when it has
one, else at 1 USD, which ``mark_source`` states on every row concerned; they carry no delta.

Every value is given both in its settlement unit and in USD (coin × the market's index).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pmnb import pricing
from pmnb.errors import ValidationError

__all__ = ["ACCOUNT_SCHEMA", "COLLATERAL_SCHEMA", "KINDS", "POSITION_SCHEMA", "exposures",
           "pnl_explain", "position_greeks", "read_positions", "scenario_grid", "validate_accounts",
           "validate_positions",
           "value_positions"]

KINDS = ("option", "future", "perpetual", "spot", "lending_supply", "lending_borrow", "lp")
_SETTLEMENTS = ("inverse", "linear")
_OPTION_TYPES = ("call", "put")

#: Column -> dtype of a validated book (optional columns are added as NaN when absent).
POSITION_SCHEMA: dict[str, Any] = {
    "position_id": "category", "account": "category", "venue": "category", "symbol": "category",
    "kind": pd.CategoricalDtype(KINDS), "underlying": "category", "quote": "category",
    "settlement": pd.CategoricalDtype(_SETTLEMENTS), "strike": "float64",
    "expiry": "datetime64[ns, UTC]", "option_type": pd.CategoricalDtype(_OPTION_TYPES),
    "size": "float64", "contract_size": "float64", "entry_price": "float64",
    "isolated_margin": "float64", "leverage": "float64", "settlement_price": "float64",
    "asset": "category", "amount": "float64",
    "pool": "category", "liquidity": "float64", "tick_lower": "float64", "tick_upper": "float64",
    "decimals0": "float64", "decimals1": "float64",
}
_LENDING = ("lending_supply", "lending_borrow")
_STABLES = ("USD", "USDC", "USDT", "DAI", "USDE", "FDUSD", "PYUSD")
_WRAPPED = {"WETH": "ETH", "WBTC": "BTC", "CBBTC": "BTC", "WSTETH": "WSTETH", "STETH": "ETH"}
_REQUIRED = ("account", "venue", "symbol", "size")
_STRUCTURED = ("kind", "underlying", "quote", "settlement", "strike", "expiry", "option_type",
               "contract_size")


def _bad(field: str, frame: pd.DataFrame, mask: Any, accepted: str) -> None:
    mask = np.asarray(mask, dtype=bool)
    if mask.any():
        pos = np.flatnonzero(mask)
        label = frame.index[pos[0]]
        value = frame[field].iloc[pos[0]] if field in frame else None
        if isinstance(value, (np.generic,)):
            value = value.item()
        raise ValidationError.for_field(field, row=label, value=value, accepted=accepted,
                                        n_bad=len(pos))


MARGIN_MODES = ("cross", "isolated", "portfolio")
POSITION_MODES = ("one-way", "hedge")

#: One row per venue account; margin models run per account (not per venue).
ACCOUNT_SCHEMA: dict[str, Any] = {
    "account": "string", "venue": "string", "margin_mode": pd.CategoricalDtype(MARGIN_MODES),
    "position_mode": pd.CategoricalDtype(POSITION_MODES), "fee_tier": "string",
    "settlement_currency": "string",
}
#: Collateral in long format: one row per (account, asset) wallet balance, in units of the asset.
COLLATERAL_SCHEMA: dict[str, Any] = {"account": "string", "asset": "string", "balance": "float64"}


def validate_accounts(accounts: pd.DataFrame, collateral: pd.DataFrame | None = None
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate the accounts frame and the long-format collateral balances.

    ``accounts`` columns (:data:`ACCOUNT_SCHEMA`): ``account`` (unique), ``venue``,
    ``margin_mode`` (cross / isolated / portfolio), ``position_mode`` (one-way / hedge),
    ``fee_tier``, ``settlement_currency``. ``collateral`` columns (:data:`COLLATERAL_SCHEMA`):
    ``account``, ``asset``, ``balance`` (wallet balance in the asset's units, e.g. BTC or USDT;
    negative only for a borrowed balance), one row per (account, asset).

    Returns
    -------
    (accounts, collateral)
        Typed copies; ``collateral`` is empty when not given.

    Examples
    --------
    >>> import pandas as pd
    >>> acc, col = validate_accounts(
    ...     pd.DataFrame({"account": ["pm"], "venue": ["deribit"], "margin_mode": ["portfolio"],
    ...                   "position_mode": ["one-way"], "fee_tier": ["1"],
    ...                   "settlement_currency": ["BTC"]}),
    ...     pd.DataFrame({"account": ["pm"], "asset": ["BTC"], "balance": [2.5]}))
    >>> acc["margin_mode"].tolist(), float(col["balance"].sum())
    (['portfolio'], 2.5)
    """
    for name, frame, schema in (("accounts", accounts, ACCOUNT_SCHEMA),
                                ("collateral", collateral, COLLATERAL_SCHEMA)):
        if frame is None:
            continue
        if not isinstance(frame, pd.DataFrame):
            raise ValidationError(f"{name}: got {type(frame).__name__}; accepted: a DataFrame",
                                  field=name)
        missing = [c for c in schema if c not in frame]
        if missing:
            raise ValidationError(f"{name}: missing column(s) {missing}; required: {list(schema)}",
                                  field=missing[0])
    acc = accounts.copy()
    _bad("account", acc, acc["account"].isna() | (acc["account"].astype(str).str.strip() == ""),
         "a non-empty account name")
    _bad("account", acc, acc["account"].duplicated(), "one row per account")
    for c, dtype in ACCOUNT_SCHEMA.items():
        if isinstance(dtype, pd.CategoricalDtype):
            v = acc[c].astype("string").str.lower()
            _bad(c, acc, ~v.isin(dtype.categories).fillna(False).astype(bool),
                 f"one of {list(dtype.categories)}")
            acc[c] = v.astype(dtype)
        else:
            acc[c] = acc[c].astype(dtype)
    _bad("venue", acc, acc["venue"].isna(), "a venue name")
    if collateral is None:
        col = pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLLATERAL_SCHEMA.items()})
    else:
        col = collateral.copy()
        col["balance"] = pd.to_numeric(col["balance"], errors="coerce")
        _bad("balance", col, ~np.isfinite(col["balance"].to_numpy(dtype=float)), "a finite number")
        col = col.astype(COLLATERAL_SCHEMA)
        _bad("account", col, ~col["account"].isin(acc["account"]).to_numpy(dtype=bool),
             f"an account of the accounts frame ({sorted(acc['account'].astype(str))})")
        _bad("asset", col, col.duplicated(["account", "asset"]).to_numpy(), "one row per "
             "(account, asset)")
    return acc, col


def _check_accounts(df: pd.DataFrame, accounts: pd.DataFrame) -> None:
    acc, _ = validate_accounts(accounts)
    known = acc.set_index("account")["venue"].astype(str)
    _bad("account", df, ~df["account"].isin(known.index).to_numpy(dtype=bool),
         f"an account of the accounts frame ({sorted(known.index.astype(str))})")
    venue = known.reindex(df["account"].astype(str)).to_numpy()
    _bad("venue", df, venue != df["venue"].astype(str).to_numpy(),
         "the venue of the position's account in the accounts frame")


def _fill_onchain(df: pd.DataFrame, onchain: np.ndarray) -> pd.DataFrame:
    """Defaults of on-chain rows: lending from ``asset``/``amount``, LP rows one unit each."""
    for c in ("kind", "underlying", "quote", "settlement", "contract_size", "asset", "amount"):
        if c not in df:
            df[c] = pd.Series(pd.NA, index=df.index, dtype=object)
        df[c] = df[c].astype(object)
    idx = df.index[onchain]
    kind = df.loc[idx, "kind"].astype("string").str.lower()
    _bad("kind", df.loc[idx], ~kind.isin(_LENDING + ("lp",)).fillna(False).to_numpy(dtype=bool),
         "lending_supply, lending_borrow or lp on aave/uniswap rows")
    lend = idx[kind.isin(_LENDING).to_numpy(dtype=bool)]
    if len(lend):
        amount = pd.to_numeric(df.loc[lend, "amount"], errors="coerce")
        _bad("amount", df.loc[lend], ~(amount > 0).to_numpy(dtype=bool),
             "> 0 (the token balance) on lending rows")
        asset = df.loc[lend, "asset"].astype("string").str.upper()
        _bad("asset", df.loc[lend], asset.isna().to_numpy(dtype=bool), "a token symbol")
        sign = np.where(kind.loc[lend] == "lending_supply", 1.0, -1.0)
        s = df["size"]
        size = s.to_numpy(dtype=np.float64 if s.dtype == np.float64 else object, copy=True)
        size[np.flatnonzero(onchain)[kind.isin(_LENDING).to_numpy(dtype=bool)]] = (
            sign * amount.to_numpy())
        df["size"] = size  # a new column: the input's is never written in place
        df.loc[lend, "underlying"] = [_WRAPPED.get(a, a) for a in asset]
    for c, default in (("quote", "USD"), ("settlement", "linear"), ("contract_size", 1.0)):
        fill = idx[df.loc[idx, c].isna().to_numpy()]
        df.loc[fill, c] = default
    return df


_CODES_NA = -1
_ID_CACHE: np.ndarray = np.empty(0, dtype=object)
_ID_DTYPES: dict[int, tuple[pd.CategoricalDtype, np.ndarray]] = {}


def _default_ids(n: int) -> pd.Categorical:
    """``P0000, P0001, ...`` as a Categorical (strings and dtypes are made once and cached)."""
    global _ID_CACHE
    if len(_ID_CACHE) < n:
        start = len(_ID_CACHE)
        _ID_CACHE = np.concatenate(
            (_ID_CACHE, np.array([f"P{i:04d}" for i in range(start, max(n, 2 * start))],
                                 dtype=object)))
    if n not in _ID_DTYPES:              # text categories are sorted ("P10000" < "P1001")
        if len(_ID_DTYPES) > 8:
            _ID_DTYPES.clear()
        order = np.argsort(_ID_CACHE[:n].astype(str), kind="stable")
        codes = np.empty(n, dtype=np.int64)
        codes[order] = np.arange(n)
        _ID_DTYPES[n] = (pd.CategoricalDtype(pd.Index(_ID_CACHE[:n][order], dtype=str)), codes)
    dtype, codes = _ID_DTYPES[n]
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 where missing) and the distinct values (object array) of a column."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return np.asarray(s.array.codes), np.asarray(s.cat.categories, dtype=object)
    if s.dtype == np.float64 and np.isnan(s.to_numpy()).all():   # an absent (all-NaN) column
        return np.full(len(s), -1, dtype=np.int64), np.empty(0, dtype=object)
    codes, uniq = pd.factorize(s.to_numpy(dtype=object), use_na_sentinel=True)
    return codes, np.asarray(uniq, dtype=object)


def _recode(codes: np.ndarray, ucodes: np.ndarray) -> np.ndarray:
    """``ucodes[codes]`` keeping -1 (missing) as -1."""
    return np.append(np.asarray(ucodes, dtype=np.int64), _CODES_NA)[codes]


def _str_categorical(s: pd.Series) -> tuple[pd.Categorical, bool, bool]:
    """A text column as a Categorical of its strings (sorted categories), computed on codes.

    Returns the categorical, whether every non-missing value was already a ``str`` (values
    that are not are converted with ``str``, as ``astype("string")`` does) and whether the
    column already was such a categorical."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if ((cats.dtype != object and pd.api.types.is_string_dtype(cats.dtype))  # str by dtype
                or all(isinstance(c, str) for c in cats)):
            return s.array, True, True
    codes, uniq = _codes(s)
    strs = [u if isinstance(u, str) else str(u) for u in uniq]
    all_str = all(isinstance(u, str) for u in uniq)
    cats = sorted(set(strs))
    pos = {c: i for i, c in enumerate(cats)}
    dtype = pd.CategoricalDtype(pd.Index(cats, dtype=str))
    return (pd.Categorical.from_codes(_recode(codes, [pos[x] for x in strs]), dtype=dtype),
            all_str, False)


def _fixed_categorical(s: pd.Series, dtype: pd.CategoricalDtype) -> tuple[pd.Categorical,
                                                                           np.ndarray]:
    """A column as ``dtype`` (values lower-cased), and the mask of values outside its categories."""
    if s.dtype == dtype:
        return s.array, np.zeros(len(s), dtype=bool)
    codes, uniq = _codes(s)
    pos = {c: i for i, c in enumerate(dtype.categories)}
    low = [(u if isinstance(u, str) else str(u)).lower() for u in uniq]
    ucodes = np.array([pos.get(x, -2) for x in low], dtype=np.int64)
    codes = _recode(codes, ucodes)
    bad = codes == -2
    return pd.Categorical.from_codes(np.where(bad, _CODES_NA, codes), dtype=dtype), bad


def _merge_str_categoricals(a: pd.Categorical, b: pd.Categorical, take_b: np.ndarray
                            ) -> pd.Categorical:
    """``a`` with the rows of ``take_b`` taken from ``b`` (categories: the sorted union)."""
    ca, cb = list(a.categories), list(b.categories)
    if ca == cb:
        return pd.Categorical.from_codes(np.where(take_b, b.codes, a.codes), dtype=a.dtype)
    cats = sorted(set(ca) | set(cb))
    pos = {c: i for i, c in enumerate(cats)}
    dtype = pd.CategoricalDtype(pd.Index(cats, dtype=str))
    codes = np.where(take_b, _recode(b.codes, [pos[c] for c in cb]),
                     _recode(a.codes, [pos[c] for c in ca]))
    return pd.Categorical.from_codes(codes, dtype=dtype)


def _parse_unique(df: pd.DataFrame, off: np.ndarray, sym: pd.Categorical, ven: pd.Categorical,
                  exact: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """Parse each distinct (symbol, venue) pair of the rows ``off`` once.

    Returns the parsed frame of the distinct pairs and, per row of ``off``, its pair's row.
    On any parse error (or non-text symbols/venues, ``exact=False``) the rows are parsed through
    :func:`pmnb.instruments.parse_symbols` as given, so the error names the frame's row."""
    from pmnb import instruments  # same low layer: symbol grammar only

    sc, vc = sym.codes[off].astype(np.int64), ven.codes[off].astype(np.int64)
    nv = len(ven.categories)
    pair = sc * nv + vc
    if len(sym.categories) * nv <= 4 * len(pair) + 64:
        used = np.flatnonzero(np.bincount(pair, minlength=len(sym.categories) * nv))
        where = np.full(len(sym.categories) * nv, -1, dtype=np.int64)
        where[used] = np.arange(len(used))
        inv, upair = where[pair], used
    else:
        inv, upair = pd.factorize(pair)
    if exact:
        scats = np.asarray(sym.categories, dtype=object)
        vcats = np.asarray(ven.categories, dtype=object)
        try:
            return instruments.parse_symbols(scats[upair // nv], vcats[upair % nv]), inv
        except ValidationError:
            pass  # parse again below, row by row, for the error message
    parsed = instruments.parse_symbols(df["symbol"].iloc[off], df["venue"].iloc[off])
    return parsed.reset_index(drop=True), np.arange(len(off))


def validate_positions(frame: pd.DataFrame, accounts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Validate a positions frame and return a typed copy (the input is never modified).

    Parameters
    ----------
    frame : DataFrame
        One row per position with at least ``account``, ``venue``, ``symbol`` and ``size``;
        structured fields missing from it are parsed from the venue symbols.
    accounts : DataFrame, optional
        When given (:func:`validate_accounts`), every position's account must be one of its rows
        and carry that account's venue.

    Returns
    -------
    DataFrame
        Columns of :data:`POSITION_SCHEMA` (plus any extra columns of the input), same index.

    Raises
    ------
    ValidationError
        Naming the column, the row label and what is accepted: missing columns, duplicated
        ``position_id``, unknown kind or settlement, non-finite size, non-positive contract size,
        options without strike/expiry/type, futures without expiry.

    Notes
    -----
    Text columns are checked and converted on their distinct values (categorical codes), and
    each distinct (symbol, venue) pair is parsed once; a frame that already has the schema's
    dtypes (a validated book) is not converted again, but every value check still runs.

    Examples
    --------
    >>> import pandas as pd
    >>> book = pd.DataFrame({"account": ["main"], "venue": ["deribit"],
    ...                      "symbol": ["BTC-27MAR26-100000-C"], "size": [-5.0]})
    >>> v = validate_positions(book)
    >>> v.loc[0, ["position_id", "kind", "option_type", "settlement"]].tolist()
    ['P0000', 'option', 'call', 'inverse']
    >>> float(v.loc[0, "strike"])
    100000.0
    >>> str(v.loc[0, "expiry"])
    '2026-03-27 08:00:00+00:00'
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError(f"positions: got {type(frame).__name__}; accepted: a DataFrame, "
                              "or a CSV/Parquet path through read_positions", field="positions")
    missing = [c for c in _REQUIRED if c not in frame]
    if missing:
        raise ValidationError(f"positions: missing column(s) {missing}; required: "
                              f"{list(_REQUIRED)}", field=missing[0])
    # copy-on-write: the columns are shared with the input until replaced, never written in place
    df = frame.copy(deep=False)
    n = len(df)
    new: dict[str, Any] = {}          # typed columns that replace (or add to) the input's
    exact = True
    for c in ("account", "venue", "symbol"):
        cat, is_str, same = _str_categorical(df[c])
        exact &= is_str
        empty = np.array([not x.strip() for x in cat.categories] + [True], dtype=bool)
        _bad(c, df, empty[cat.codes], "a non-empty string")
        if not same:
            new[c] = cat
    if "position_id" not in df or df["position_id"].isna().all():
        new["position_id"] = _default_ids(n)          # unique by construction
    else:
        pid, _, same = _str_categorical(df["position_id"])
        codes = np.asarray(pid.codes)
        _bad("position_id", df, codes < 0, "a non-empty id on every row")
        # unique ids: each category's code on at most one row (decided on codes, O(n))
        if len(codes) and np.bincount(codes, minlength=len(pid.categories)).max() > 1:
            _bad("position_id", df, pd.Series(codes).duplicated(keep="first").to_numpy(),
                 "unique ids")
        if not same:
            new["position_id"] = pid
    if accounts is not None:
        _check_accounts(df, accounts)
    need = [c for c in _STRUCTURED if c not in df or df[c].isna().any()]
    parsed: dict[str, Any] = {}
    if need:
        ven = new.get("venue", df["venue"].array)
        vlow = np.array([v.lower() in ("aave", "uniswap") for v in ven.categories] + [False])
        onchain = vlow[ven.codes]
        if onchain.any():
            df = _fill_onchain(df, onchain)
        off = np.flatnonzero(~onchain)
        if len(off):
            sym = new.get("symbol", df["symbol"].array)
            ptab, inv = _parse_unique(df, off, sym, ven, exact)
            parsed = {"_rows": off, "_inv": inv, "_frame": ptab}
    for c, dtype in POSITION_SCHEMA.items():
        if c in new or c == "position_id":      # position_id: checked and typed above
            continue
        s = df[c] if c in df else pd.Series(np.nan, index=df.index)
        changed = c not in df
        fill = None
        if parsed and c in need:
            fill = np.zeros(n, dtype=bool)
            fill[parsed["_rows"]] = True
            fill &= s.isna().to_numpy()
            if not fill.any():
                fill = None
        if c == "expiry":
            if s.dtype == dtype:
                out = s.array
            else:
                changed = True
                try:
                    out = pd.to_datetime(s, utc=True).astype(dtype).array
                except (TypeError, ValueError):
                    bad = pd.to_datetime(s, utc=True, errors="coerce").isna() & s.notna()
                    _bad(c, df, bad, "a UTC timestamp")
            if fill is not None:
                rows = parsed["_rows"]
                f = fill[rows]
                ns = out.asi8.copy()
                pe = pd.DatetimeIndex(parsed["_frame"][c]).as_unit("ns").asi8[parsed["_inv"]]
                ns[rows[f]] = pe[f]
                out = pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC").array
                changed = True
        elif isinstance(dtype, pd.CategoricalDtype):
            out, bad = _fixed_categorical(s, dtype)
            _bad(c, df, bad, f"one of {list(dtype.categories)}")
            changed |= s.dtype != dtype
            if fill is not None:
                pc = _fixed_categorical(parsed["_frame"][c], dtype)[0].codes[parsed["_inv"]]
                codes = out.codes.copy()
                codes[parsed["_rows"]] = np.where(fill[parsed["_rows"]], pc,
                                                  codes[parsed["_rows"]])
                out = pd.Categorical.from_codes(codes, dtype=dtype)
                changed = True
        elif dtype == "float64":
            if s.dtype == np.float64:
                out = s.to_numpy()
            else:
                changed = True
                num = pd.to_numeric(s, errors="coerce")
                _bad(c, df, num.isna() & s.notna(), "a number")
                out = num.astype("float64").to_numpy()
            if fill is not None:
                out = out.copy()
                rows = parsed["_rows"]
                out[rows] = np.where(fill[rows], parsed["_frame"][c].to_numpy()[parsed["_inv"]],
                                     out[rows])
                changed = True
        elif dtype == "category":
            out, _, same = _str_categorical(s)
            changed |= not same
            if fill is not None:
                rows = parsed["_rows"]
                pcat = _str_categorical(parsed["_frame"][c])[0]
                pcodes = np.full(n, _CODES_NA, dtype=np.int64)
                pcodes[rows] = pcat.codes[parsed["_inv"]]
                out = _merge_str_categoricals(out, pd.Categorical.from_codes(
                    pcodes, dtype=pcat.dtype), fill)
                changed = True
        else:
            changed |= s.dtype != pd.api.types.pandas_dtype(dtype)
            out = s.astype(dtype).array if changed else s.array
        if changed:
            new[c] = out
    def get(c: str) -> Any:
        return new[c] if c in new else df[c].array

    kind, size = get("kind"), np.asarray(get("size"), dtype=float)
    kc = np.asarray(kind.codes)
    _bad("kind", df, kc < 0, f"one of {list(KINDS)}")
    _bad("size", df, ~np.isfinite(size), "a finite signed number of contracts")
    cs = np.asarray(get("contract_size"), dtype=float)
    _bad("contract_size", df, ~(cs > 0), "finite, > 0")
    is_opt = kc == KINDS.index("option")
    dated = is_opt | (kc == KINDS.index("future"))
    _bad("strike", df, is_opt & ~(np.asarray(get("strike"), dtype=float) > 0),
         "> 0 on option rows")
    _bad("option_type", df, is_opt & np.asarray(pd.isna(get("option_type"))),
         "call or put on options")
    _bad("expiry", df, dated & np.asarray(pd.isna(get("expiry"))),
         "a UTC expiry on options and futures")
    _bad("settlement", df, np.asarray(pd.isna(get("settlement"))) & (kc != KINDS.index("spot")),
         "inverse or linear")
    ep = np.asarray(get("entry_price"), dtype=float)
    _bad("entry_price", df, ~np.isnan(ep) & ~(ep > 0), "> 0, or NaN when unknown")
    order = list(POSITION_SCHEMA) + [c for c in df.columns if c not in POSITION_SCHEMA]
    if not new:
        return df if list(df.columns) == order else df[order]
    out = pd.DataFrame({c: (new[c] if c in new else df[c].array) for c in order},
                       index=df.index, copy=False)
    return out.__finalize__(frame)


def read_positions(source: str | Path | pd.DataFrame,
                   accounts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read a book from CSV, Parquet or a DataFrame and validate it.

    Examples
    --------
    >>> import io
    >>> csv = io.StringIO("account,venue,symbol,size,entry_price\\n"
    ...                   "hl,hyperliquid,BTC,0.5,87000\\n")
    >>> read_positions(csv)[["kind", "settlement", "quote"]].iloc[0].tolist()
    ['perpetual', 'linear', 'USD']
    """
    if isinstance(source, pd.DataFrame):
        return validate_positions(source, accounts)
    if isinstance(source, (str, Path)) and str(source).endswith((".parquet", ".pq")):
        return validate_positions(pd.read_parquet(source), accounts)
    return validate_positions(pd.read_csv(source), accounts)


# Frozen books: validated frames that their owner (the ``df.pm`` accessor's cache) never hands
# out nor mutates, so what is derived from them alone (expiry codes, instrument groups, ...) can
# be kept beside them. Keyed by id, guarded by a weak reference (ids are reused after death).
_FROZEN: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}


def _freeze(book: pd.DataFrame) -> None:
    """Mark ``book`` as immutable: its derived data may be memoised until it is collected.

    Only for frames the caller owns and never exposes (a user could mutate an exposed one)."""
    key = id(book)
    _FROZEN[key] = (weakref.ref(book, lambda _ref, k=key: _FROZEN.pop(k, None)), {})


def _memo(book: pd.DataFrame, name: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, memoised under ``name`` when ``book`` is frozen (see :func:`_freeze`)."""
    entry = _FROZEN.get(id(book))
    if entry is None or entry[0]() is not book:
        return fn()
    if name not in entry[1]:
        entry[1][name] = fn()
    return entry[1][name]


def _expiry_codes(book: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]:
    """Rows with an expiry, each one's code and the distinct expiries."""
    ns = pd.DatetimeIndex(book["expiry"]).as_unit("ns").asi8
    has = ns != np.iinfo(np.int64).min          # NaT
    codes, uniq = pd.factorize(ns[has])
    return has, codes, pd.DatetimeIndex(uniq.view("datetime64[ns]")).tz_localize("UTC")


def _expiry_T(book: pd.DataFrame, market) -> np.ndarray:
    """Year fraction to each row's expiry (NaN without one), one per distinct expiry."""
    T = np.full(len(book), np.nan)
    has, codes, uniq = _memo(book, "expiry_codes", lambda: _expiry_codes(book))
    if len(uniq):
        T[has] = market.T(uniq)[codes]
    return T


def _per_underlying(book: pd.DataFrame, fn) -> np.ndarray:
    codes, uniq = _codes(book["underlying"])
    out = np.full(len(book), np.nan)
    if len(book) == 0:
        return out
    if (codes < 0).any():   # as ``astype(str)`` names missing values
        uniq = np.append(uniq, str(book["underlying"].astype(str).iloc[int(np.argmin(codes))]))
        codes = np.where(codes < 0, len(uniq) - 1, codes)
    per = np.full(len(uniq), np.nan)
    for u in pd.unique(codes):      # in order of appearance, each distinct underlying once
        per[u] = fn(str(uniq[u]), np.flatnonzero(codes == u))
    return per[codes]


def _check_expired(book: pd.DataFrame, T: np.ndarray) -> np.ndarray:
    expired = np.nan_to_num(T, nan=1.0) < 0
    unsettled = expired & book["settlement_price"].isna().to_numpy()
    if unsettled.any():
        i = int(np.flatnonzero(unsettled)[0])
        raise ValidationError(
            f"expiry: position {book['position_id'].iloc[i]!r} (row {book.index[i]!r}, "
            f"{book['symbol'].iloc[i]}) expired at {book['expiry'].iloc[i]}, before the valuation "
            "time; accepted: a settlement_price for expired positions, or remove them",
            field="expiry", row=book.index[i])
    return expired


def _instruments(book: pd.DataFrame, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``idx`` grouped by instrument: ``(rep, inv)`` with ``rep`` one row of each distinct
    (underlying, expiry, strike, option_type, settlement) and ``inv`` each row's group.

    Groups by the symbol's codes when every row of a symbol has the same fields (checked), else
    by the fields themselves."""
    n = len(idx)
    fields = [book["strike"].to_numpy()[idx].view(np.int64),
              pd.DatetimeIndex(book["expiry"]).as_unit("ns").asi8[idx]]
    fields += [_codes(book[c])[0][idx] for c in ("underlying", "option_type", "settlement")]
    sym = book["symbol"]
    if isinstance(sym.dtype, pd.CategoricalDtype) and n:
        codes = np.asarray(sym.array.codes)[idx].astype(np.int64)
        count = np.bincount(codes + 1, minlength=len(sym.cat.categories) + 1)
        used = np.flatnonzero(count)
        where = np.zeros(len(count), dtype=np.int64)
        where[used] = np.arange(len(used))
        inv = where[codes + 1]
        rep = np.empty(len(used), dtype=np.int64)
        rep[inv] = np.arange(n)
        if all(np.array_equal(f[rep][inv], f) for f in fields):
            return rep, inv
    key = np.zeros(n, dtype=np.int64)
    for f in fields:
        c, u = pd.factorize(f)
        key = key * (len(u) + 1) + c
        key = pd.factorize(key)[0]
    inv, _ = pd.factorize(key)
    rep = np.empty(inv.max() + 1 if n else 0, dtype=np.int64)
    rep[inv] = np.arange(n)
    return rep, inv


def _is_value(s: pd.Series, values: Sequence[str], *, upper: bool = False) -> np.ndarray:
    """Rows of ``s`` whose text (``astype(str)``, upper-cased if asked) is one of ``values``,
    decided on the distinct values only."""
    codes, uniq = _codes(s)
    if (codes < 0).any():
        uniq = np.append(uniq, str(s.astype(str).iloc[int(np.argmin(codes))]))
        codes = np.where(codes < 0, len(uniq) - 1, codes)
    hit = np.array([(str(u).upper() if upper else str(u)) in values for u in uniq] + [False])
    return hit[codes]


def _kind_masks(book: pd.DataFrame):
    """``is_kind(*kinds)``: the rows of the book of any of ``kinds``, from the kind's codes."""
    codes, uniq = _codes(book["kind"])
    names = np.append(np.array([str(u) for u in uniq], dtype=object), None)

    def is_kind(*kinds: str) -> np.ndarray:
        return np.array([k in kinds for k in names])[codes]
    return is_kind


def _text_where(cond: np.ndarray, a: pd.Series, b: pd.Series) -> pd.Categorical:
    """``np.where(cond, a.astype(str), b.astype(str))`` as a Categorical of the texts (sorted
    categories), built from codes: no per-row string objects."""
    parts = []
    for s in (a, b):
        codes, uniq = _codes(s)
        if (codes < 0).any():
            uniq = np.append(uniq, str(s.astype(str).iloc[int(np.argmin(codes))]))
            codes = np.where(codes < 0, len(uniq) - 1, codes)
        parts.append((codes, [str(u) for u in uniq]))
    cats = sorted(set(parts[0][1]) | set(parts[1][1]))
    pos = {c: i for i, c in enumerate(cats)}
    ca, cb = (np.array([pos[t] for t in text] + [-1], dtype=np.int64)[codes]
              for codes, text in parts)
    return pd.Categorical.from_codes(np.where(cond, ca, cb),
                                     dtype=pd.CategoricalDtype(pd.Index(cats, dtype=str)))


def _option_inputs(book: pd.DataFrame, market, idx: np.ndarray, T: np.ndarray, *,
                   distinct: bool = False):
    """Forward, strike, time and surface vol of the option rows ``idx`` (each distinct
    instrument looked up once; ``distinct=True``: the rows already are distinct instruments)."""
    if distinct:
        rep, inv = np.arange(len(idx)), np.arange(len(idx))
    else:
        rep, inv = _instruments(book, idx)
    rows = idx[rep]
    F = np.empty(len(rows))
    sigma = np.empty(len(rows))
    K = book["strike"].to_numpy()[rows]
    expiry = pd.DatetimeIndex(book["expiry"])[rows]
    ucodes, unames = _codes(book["underlying"])
    ucodes = ucodes[rows]
    for u in pd.unique(ucodes):         # each underlying once, in order of appearance
        j = np.flatnonzero(ucodes == u)
        name = str(unames[u]) if u >= 0 else "nan"
        F[j] = np.atleast_1d(market.forward(name, expiry[j]))
        sigma[j] = market.vol(name, K[j], expiry[j])
    return F[inv], K[inv], np.maximum(T[rows], 0.0)[inv], sigma[inv]


def _asset_prices(assets: np.ndarray, market) -> tuple[np.ndarray, np.ndarray]:
    """USD price of each asset: the market's spot; stablecoins at 1 USD when it has none."""
    px = np.empty(len(assets))
    src = np.empty(len(assets), dtype=object)
    for a in np.unique(assets):
        m = assets == a
        if a in market.spots:
            px[m], src[m] = market.spot(a), f"index {a}"
        elif a.upper() in _STABLES:
            px[m], src[m] = 1.0, "stablecoin at 1 USD (no market price)"
        else:
            px[m] = market.spot(a)  # raises, naming the missing spot
    return px, src


def _lp_prices(sub: pd.DataFrame, market) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool price (token1 per token0), USD per token1, and the source of the price."""
    base, base_src = _asset_prices(sub["underlying"].astype(str).to_numpy(), market)
    quote, quote_src = _asset_prices(sub["quote"].astype(str).to_numpy(), market)
    src = np.array([f"pool price from {b} / {q}" for b, q in zip(base_src, quote_src)], dtype=object)
    return base / quote, quote, src


def _lp_args(sub: pd.DataFrame):
    cols = ("liquidity", "tick_lower", "tick_upper", "decimals0", "decimals1")
    for c in cols:
        _bad(c, sub, ~np.isfinite(sub[c].to_numpy(dtype=float)), "a number on LP rows")
    return tuple(sub[c].to_numpy(dtype=float) for c in cols)


def _option_groups(book: pd.DataFrame, market, opt: np.ndarray, T: np.ndarray):
    """Option rows by settlement: ``(rows, F, K, T, sigma, w, settlement)`` per group, with the
    market's forward and surface vol of each row (``w`` = +1 call, -1 put)."""
    F, K, Tt, sigma = _option_inputs(book, market, opt, T)
    w = np.where(book["option_type"].to_numpy()[opt] == "call", 1.0, -1.0)
    inverse = (book["settlement"].astype(str) == "inverse").to_numpy()[opt]
    for inv in (False, True):
        j = inverse == inv
        if j.any():
            yield opt[j], F[j], K[j], Tt[j], sigma[j], w[j], "inverse" if inv else "linear"


def value_positions(book: pd.DataFrame, market) -> pd.DataFrame:
    """Mark every position to the market (see the module docstring for each kind).

    Parameters
    ----------
    book : DataFrame
        A validated book (:func:`validate_positions`).
    market : pmnb.Market

    Returns
    -------
    DataFrame
        Aligned to ``book.index``: ``price`` (model or venue mark per contract, in the quote),
        ``mark_source``, ``value`` (in ``value_currency``), ``value_usd``, ``value_coin``,
        ``unrealised_pnl`` (in ``value_currency``; options: against ``entry_price``).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0}, vols={"BTC": 0.5},
    ...                           marks={"deribit:BTC-PERPETUAL": 100_000.0})
    >>> book = validate_positions(pd.DataFrame({
    ...     "account": ["a", "a"], "venue": ["deribit", "deribit"],
    ...     "symbol": ["BTC-PERPETUAL", "BTC-27MAR26-100000-P"], "size": [10_000.0, 2.0],
    ...     "entry_price": [80_000.0, 0.05]}))
    >>> v = value_positions(book, m)
    >>> v[["value", "value_currency"]].round(6).values.tolist()
    [[0.25, 'BTC'], [0.192053, 'BTC']]
    """
    T = _expiry_T(book, market)
    expired = _check_expired(book, T)
    n = len(book)
    kind = book["kind"].astype(str).to_numpy()
    inverse = (book["settlement"].astype(str) == "inverse").to_numpy()
    q = book["size"].to_numpy() * book["contract_size"].to_numpy()
    spot = _per_underlying(book, lambda u, idx: _asset_prices(np.array([u]), market)[0][0])
    price = np.full(n, np.nan)
    source = np.full(n, "", dtype=object)
    value = np.zeros(n)
    entry = book["entry_price"].to_numpy()

    opt = np.flatnonzero((kind == "option") & ~expired)
    for rows, F, K, Tt, sigma, w, settlement in _option_groups(book, market, opt, T):
        price[rows] = pricing.price(F, K, Tt, sigma, market.rate("USD"), option_type=w,
                                    settlement=settlement)
    if len(opt):
        source[opt] = "model: black76 on forward and surface vol"
        value[opt] = q[opt] * price[opt]

    settled = np.flatnonzero(expired)
    if len(settled):
        sp = book["settlement_price"].to_numpy()[settled]
        k_ = book["kind"].astype(str).to_numpy()[settled]
        K = book["strike"].to_numpy()[settled]
        wv = np.where(book["option_type"].astype(str).to_numpy()[settled] == "call", 1.0, -1.0)
        intrinsic = np.maximum(wv * (sp - K), 0.0)
        px = np.where(k_ == "option", np.where(inverse[settled], intrinsic / sp, intrinsic), sp)
        price[settled] = px
        source[settled] = "settled at settlement_price"
        value[settled] = np.where(k_ == "option", q[settled] * px, 0.0)

    fut = np.flatnonzero(np.isin(kind, ("future", "perpetual")) & ~expired)
    for i in fut:
        venue, sym, u = book["venue"].iloc[i], book["symbol"].iloc[i], str(book["underlying"].iloc[i])
        key = f"{venue}:{sym}"
        if key in market.marks:
            price[i], source[i] = market.marks[key], f"mark {key}"
        elif kind[i] == "future":
            price[i] = market.forward(u, book["expiry"].iloc[i])
            source[i] = "model: forward curve (no venue mark)"
        else:
            raise ValidationError(f"market: no mark for perpetual {key!r} (position "
                                  f"{book['position_id'].iloc[i]!r}); add it with "
                                  "Market.with_marks", field="mark", row=book.index[i])
    for idx in (fut, settled[np.isin(kind[settled], ("future", "perpetual"))]):
        if len(idx):
            e, p = entry[idx], price[idx]
            _bad("entry_price", book.iloc[idx], np.isnan(e), "> 0 on futures and perpetuals")
            value[idx] = np.where(inverse[idx], q[idx] * (1.0 / e - 1.0 / p), q[idx] * (p - e))

    sp_idx = np.flatnonzero(kind == "spot")
    price[sp_idx] = spot[sp_idx]
    source[sp_idx] = "index"
    value[sp_idx] = q[sp_idx] * spot[sp_idx]

    lend = np.flatnonzero(np.isin(kind, _LENDING))
    if len(lend):
        px, src = _asset_prices(book["underlying"].astype(str).to_numpy()[lend], market)
        price[lend], source[lend] = px, src
        value[lend] = book["size"].to_numpy()[lend] * px
    lp = np.flatnonzero(kind == "lp")
    if len(lp):
        from pmnb import defi  # closed-form Uniswap v3 math (same low layer)

        P, _, src = _lp_prices(book.iloc[lp], market)
        price[lp], source[lp] = P, src
        args = _lp_args(book.iloc[lp])
        value[lp] = book["size"].to_numpy()[lp] * defi.lp_value(*args[:3], P, *args[3:])
    coin_valued = inverse & (kind != "spot")
    usd_per_quote = np.ones(n)
    if len(lp):
        usd_per_quote[lp] = _lp_prices(book.iloc[lp], market)[1]
    value_usd = np.where(coin_valued, value * spot, value * usd_per_quote)
    value_coin = np.where(coin_valued, value, value / spot)
    currency = np.where(coin_valued, book["underlying"].astype(str).to_numpy(),
                        book["quote"].astype(str).to_numpy())
    upnl = value.copy()
    upnl[np.isin(kind, _LENDING + ("lp",))] = np.nan  # no entry basis for on-chain positions
    opt_all = kind == "option"
    upnl[opt_all] = np.where(np.isnan(entry[opt_all]), np.nan,
                             q[opt_all] * (price[opt_all] - entry[opt_all]))
    upnl[kind == "spot"] = np.where(np.isnan(entry[kind == "spot"]), np.nan,
                                    q[kind == "spot"] * (spot[kind == "spot"] - entry[kind == "spot"]))
    return pd.DataFrame({"price": price, "mark_source": source, "value": value,
                         "value_currency": currency, "value_usd": value_usd,
                         "value_coin": value_coin, "unrealised_pnl": upnl}, index=book.index)


_GREEK_COLS = ("delta_coin", "delta_usd", "gamma", "gamma_1pct_usd", "vega", "theta", "vanna",
               "volga")


def position_greeks(book: pd.DataFrame, market, *, units: str = "desk") -> pd.DataFrame:
    """Greeks of every position, scaled by size × contract size, aligned to ``book.index``.

    Deltas are taken with respect to each position's own forward (the future of its expiry), as
    Deribit reports them; a perpetual or spot position's forward is the index.
    ``delta_coin`` is the position's exposure in coins of its underlying: Black delta × q for
    linear options, the coin (net transactional) delta for inverse options (it includes the
    premium's own exposure), q for linear futures/perps and spot, and ``q / mark`` for inverse
    futures/perps (USD contracts). ``delta_usd = delta_coin × spot`` (cash delta);
    ``gamma`` is coins per USD, ``gamma_1pct_usd`` the change of the cash delta for a 1% move
    (``gamma × S² / 100``). ``vega``/``theta`` are in the value currency of the position, per vol
    point and per calendar day with ``units="desk"`` (per 1.00 and per year with ``"raw"``).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0}, vols={"BTC": 0.5})
    >>> book = validate_positions(pd.DataFrame({"account": ["a"], "venue": ["deribit"],
    ...     "symbol": ["BTC-27MAR26-100000-C"], "size": [1.0]}))
    >>> g = position_greeks(book, m)
    >>> round(float(g.loc[0, "delta_coin"]), 4), round(float(g.loc[0, "vega"]), 6)
    (0.452, 0.001911)
    """
    pricing._choice("units", units, ("raw", "desk"))
    T = _expiry_T(book, market)
    expired = _check_expired(book, T)
    n = len(book)
    is_kind = _kind_masks(book)
    inverse = _is_value(book["settlement"], ("inverse",))
    q = book["size"].to_numpy() * book["contract_size"].to_numpy()
    spot = _per_underlying(book, lambda u, idx: _asset_prices(np.array([u]), market)[0][0])
    block = np.zeros((len(_GREEK_COLS), n))      # one 2-D block: the frame wraps it, no copy
    out = dict(zip(_GREEK_COLS, block))
    all_opt = is_kind("option")
    opt = np.flatnonzero(all_opt & ~expired)
    all_opt = np.flatnonzero(all_opt)
    names = ("delta", "gamma", "vega", "theta", "vanna", "volga")
    if len(opt):
        # each distinct instrument priced once, then scaled by each row's q
        if len(opt) == len(all_opt):        # no expired option: the book's own grouping
            rep, inv = _memo(book, "option_instruments", lambda: _instruments(book, opt))
        else:
            rep, inv = _instruments(book, opt)
        rows = opt[rep]
        F, K, Tt, sigma = _option_inputs(book, market, rows, T, distinct=True)
        w = np.where(_is_value(book["option_type"], ("call",))[rows], 1.0, -1.0)
        G = {name: np.empty(len(rows)) for name in names}
        for invs in (False, True):
            j = inverse[rows] == invs
            if j.any():
                g = pricing.greeks(F[j], K[j], Tt[j], sigma[j], market.rate("USD"),
                                   option_type=w[j], settlement="inverse" if invs else "linear",
                                   greeks=names, units=units)
                for name in names:
                    G[name][j] = g[name]
        qo = q[opt]
        for name in names:
            out["delta_coin" if name == "delta" else name][opt] = qo * G[name][inv]
    lin = np.flatnonzero(is_kind("future", "perpetual", "spot") & ~inverse & ~expired)
    out["delta_coin"][lin] = q[lin]
    invf = np.flatnonzero(is_kind("future", "perpetual") & inverse & ~expired)
    if len(invf):
        marks = value_positions(book.iloc[invf], market)["price"].to_numpy()
        out["delta_coin"][invf] = q[invf] / marks
        # coin P&L q (1/e - 1/F): its coin delta F d/dF = q/F changes by -q/F^2 per USD
        out["gamma"][invf] = -q[invf] / marks**2
    lend = np.flatnonzero(is_kind(*_LENDING))
    if len(lend):
        stable = _is_value(book["underlying"], _STABLES, upper=True)
        out["delta_coin"][lend] = np.where(stable[lend], 0.0, q[lend])
    lp = np.flatnonzero(is_kind("lp"))
    if len(lp):
        from pmnb import defi

        P, usd_per_quote, _ = _lp_prices(book.iloc[lp], market)
        args = _lp_args(book.iloc[lp])
        size = book["size"].to_numpy()[lp]
        out["delta_coin"][lp] = size * defi.lp_delta(*args[:3], P, *args[3:])
        # gamma: token0 per (token1 per token0); one token1 is usd_per_quote USD
        out["gamma"][lp] = size * defi.lp_gamma(*args[:3], P, *args[3:]) / usd_per_quote
    np.multiply(out["delta_coin"], spot, out=out["delta_usd"])
    np.multiply(out["gamma"], spot * spot / 100.0, out=out["gamma_1pct_usd"])
    res = pd.DataFrame(block.T, index=book.index, columns=list(_GREEK_COLS), copy=False)
    coin = inverse & ~is_kind("spot")
    res["greeks_currency"] = _memo(book, "greeks_currency", lambda: _text_where(
        coin, book["underlying"], book["quote"])).copy()   # the frame owns its copy
    return res


def exposures(book: pd.DataFrame, market, by: Sequence[str] = ("underlying", "expiry"), *,
              units: str = "desk") -> pd.DataFrame:
    """Net greeks summed by groups of the book (e.g. underlying and expiry).

    Returns delta in coins and USD (cash delta), gamma (coins per USD) and gamma per 1% in USD,
    and vega/theta in USD and in coins of each position's underlying (converted at the index),
    one row per group. Summing coin columns across underlyings mixes coins: group by
    ``underlying`` for them.

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0}, vols={"BTC": 0.5},
    ...                           marks={"binance:BTCUSDT": 100_000.0})
    >>> book = validate_positions(pd.DataFrame({"account": ["a", "b"],
    ...     "venue": ["deribit", "binance"], "symbol": ["BTC-27MAR26-100000-C", "BTCUSDT"],
    ...     "size": [10.0, -4.0], "entry_price": [0.05, 95_000.0]}))
    >>> exposures(book, m, by=["underlying"])["delta_coin"].round(3).tolist()
    [0.52]
    """
    g = position_greeks(book, market, units=units)
    spot = _per_underlying(book, lambda u, idx: _asset_prices(np.array([u]), market)[0][0])
    coin = _same_text(g["greeks_currency"], book["underlying"])
    vega, theta = g["vega"].to_numpy(), g["theta"].to_numpy()
    cols = {
        "delta_coin": g["delta_coin"].to_numpy(), "delta_usd": g["delta_usd"].to_numpy(),
        "gamma": g["gamma"].to_numpy(), "gamma_1pct_usd": g["gamma_1pct_usd"].to_numpy(),
        "vega_usd": np.where(coin, vega * spot, vega),
        "theta_usd": np.where(coin, theta * spot, theta),
        "vega_coin": np.where(coin, vega, vega / spot),
        "theta_coin": np.where(coin, theta, theta / spot),
    }
    by = list(by)
    if all(k == "expiry" or isinstance(book[k].dtype, pd.CategoricalDtype) for k in by):
        return _grouped_sum(book, cols, by)
    keys = [book[k] if k != "expiry" else book[k].astype(object).where(book[k].notna(), "none")
            for k in by]
    return pd.DataFrame(cols, index=book.index).groupby(keys, observed=True, sort=True).sum()


def _same_text(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``a.astype(str) == b.astype(str)`` row by row, decided on the distinct values."""
    (ca, ua), (cb, ub) = _codes(a), _codes(b)
    text = {t: i for i, t in enumerate(sorted({str(u) for u in ua} | {str(u) for u in ub}))}
    ma = np.array([text[str(u)] for u in ua] + [-1], dtype=np.int64)[ca]
    mb = np.array([text[str(u)] for u in ub] + [-2], dtype=np.int64)[cb]
    return ma == mb


def _grouped_sum(book: pd.DataFrame, cols: dict[str, np.ndarray], by: list[str]) -> pd.DataFrame:
    """``DataFrame(cols).groupby(by, sort=True).sum()`` for categorical and expiry keys, on
    integer codes (no per-row objects): text levels as ``string``, expiry levels as timestamps
    with ``"none"`` (last) for rows without an expiry."""
    n = len(book)
    gid = np.zeros(n, dtype=np.int64)
    levels: list[tuple[np.ndarray, Any]] = []
    for k in by:
        if k == "expiry":
            has, codes, uniq = _memo(book, "expiry_codes", lambda: _expiry_codes(book))
            order = np.argsort(uniq.asi8, kind="stable")
            labels = np.array(list(uniq[order]) + ["none"], dtype=object)
            dtype: Any = object
        else:
            codes, uniq = _codes(book[k])
            has = codes >= 0
            codes = codes[has]
            text = np.array([str(u) for u in uniq], dtype=object)
            order = np.argsort(text, kind="stable")
            labels = text[order]
            dtype = "string"
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        c = np.full(n, len(labels) - 1 if k == "expiry" else -1, dtype=np.int64)
        c[has] = rank[codes]
        if (c < 0).any():        # rows with a missing key are dropped, as groupby does
            keep = c >= 0
            c, gid = np.where(keep, c, 0), np.where(keep, gid, -1)
        gid = np.where(gid < 0, -1, gid * len(labels) + c)
        levels.append((labels, dtype))
    space = int(np.prod([len(lab) for lab, _ in levels], dtype=np.float64))
    valid = gid >= 0
    if space <= 4 * n + 1024:
        used = np.flatnonzero(np.bincount(gid[valid], minlength=space))
        where = np.full(space, -1, dtype=np.int64)
        where[used] = np.arange(len(used))
        inv = where[gid[valid]]
    else:
        used, inv = np.unique(gid[valid], return_inverse=True)
    sums = {c: np.bincount(inv, weights=v[valid], minlength=len(used)) for c, v in cols.items()}
    arrays, rest = [], used.copy()
    for labels, dtype in reversed(levels):
        arrays.append(pd.array(labels[rest % len(labels)], dtype=dtype))
        rest //= len(labels)
    arrays.reverse()
    index = (pd.Index(arrays[0], name=by[0]) if len(by) == 1
             else pd.MultiIndex.from_arrays(arrays, names=by))
    return pd.DataFrame(sums, index=index)


_EXPLAIN_TERMS = ("delta", "gamma", "vega", "theta", "vanna", "volga", "funding")


def pnl_explain(book: pd.DataFrame, market_t0, market_t1) -> pd.DataFrame:
    """Explain each position's P&L between two markets by greeks, against full revaluation.

    Second-order Taylor expansion in the forward F, the implied vol σ and calendar time t, with
    greeks taken at ``market_t0`` (raw units), in each position's value currency (coin for
    inverse positions):

    ``delta = V_F dF``, ``gamma = ½ V_FF dF²``, ``vega = V_σ dσ``, ``theta = V_t dt``,
    ``vanna = V_Fσ dF dσ``, ``volga = ½ V_σσ dσ²``, ``funding`` = perpetual funding paid over
    the period at ``market_t0``'s rate (longs pay a positive rate: ``−q · rate · hours/interval``
    in the quote, ``÷ mark`` in coin for inverse perpetuals), and
    ``residual = full − Σ terms`` where ``full`` is the change of the revalued position value
    (plus funding). For inverse options the coin greeks give ``V_F = delta/F``,
    ``V_FF = (gamma − delta/F)/F`` and ``V_Fσ = vanna/F`` (see :mod:`pmnb.pricing`). The
    residual holds the third- and higher-order terms and the cross terms with time; it shrinks
    like h³ for moves of size h (tested).

    Returns
    -------
    DataFrame
        Aligned to ``book.index``: the terms above, ``explained``, ``full``, ``residual`` and
        ``currency``.

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m0 = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0}, vols={"BTC": 0.5})
    >>> m1 = pmnb.Market.from_dict("2026-01-02T08:00Z", spots={"BTC": 101_000.0}, vols={"BTC": 0.52})
    >>> book = validate_positions(pd.DataFrame({"account": ["a"], "venue": ["deribit"],
    ...     "symbol": ["BTC-27MAR26-100000-C"], "size": [10.0]}))
    >>> e = pnl_explain(book, m0, m1)
    >>> e.loc[0, ["delta", "vega", "theta", "full", "residual"]].astype(float).round(5).tolist()
    [0.0452, 0.03822, -0.00562, 0.07773, -0.00024]
    """
    dt = (market_t1.timestamp - market_t0.timestamp).total_seconds() / (365.0 * 86400.0)
    T0 = _expiry_T(book, market_t0)
    _check_expired(book, T0)
    T1 = _expiry_T(book, market_t1)
    _check_expired(book, T1)
    n = len(book)
    kind = book["kind"].astype(str).to_numpy()
    inverse = (book["settlement"].astype(str) == "inverse").to_numpy()
    q = book["size"].to_numpy() * book["contract_size"].to_numpy()
    terms = {t: np.zeros(n) for t in _EXPLAIN_TERMS}
    v0 = value_positions(book, market_t0)["value"].to_numpy()
    v1 = value_positions(book, market_t1)["value"].to_numpy()
    full = v1 - v0

    opt = np.flatnonzero(kind == "option")
    if len(opt):
        F0, K, Ta, s0 = _option_inputs(book, market_t0, opt, T0)
        F1, _, _, s1 = _option_inputs(book, market_t1, opt, T1)
        w = np.where(book["option_type"].to_numpy()[opt] == "call", 1.0, -1.0)
        r = market_t0.rate("USD")
        dF, ds = F1 - F0, s1 - s0
        for inv in (False, True):
            j = inverse[opt] == inv
            if not j.any():
                continue
            g = pricing.greeks(F0[j], K[j], Ta[j], s0[j], r, option_type=w[j],
                               settlement="inverse" if inv else "linear", greeks="all")
            f = F0[j]
            if inv:
                vF, vFF, vFs = g["delta"] / f, (g["gamma"] - g["delta"] / f) / f, g["vanna"] / f
            else:
                vF, vFF, vFs = g["delta"], g["gamma"], g["vanna"]
            rows, qq = opt[j], q[opt[j]]
            terms["delta"][rows] = qq * vF * dF[j]
            terms["gamma"][rows] = qq * 0.5 * vFF * dF[j] ** 2
            terms["vega"][rows] = qq * g["vega"] * ds[j]
            terms["theta"][rows] = qq * g["theta"] * dt
            terms["vanna"][rows] = qq * vFs * dF[j] * ds[j]
            terms["volga"][rows] = qq * 0.5 * g["volga"] * ds[j] ** 2

    fut = np.flatnonzero(np.isin(kind, ("future", "perpetual")))
    if len(fut):
        p0 = value_positions(book.iloc[fut], market_t0)["price"].to_numpy()
        p1 = value_positions(book.iloc[fut], market_t1)["price"].to_numpy()
        dP = p1 - p0
        inv = inverse[fut]
        qq = q[fut]
        # linear: V = q (P - e); inverse: V = q (1/e - 1/P), V_P = q/P², V_PP = -2q/P³
        terms["delta"][fut] = np.where(inv, qq / p0**2 * dP, qq * dP)
        terms["gamma"][fut] = np.where(inv, -qq / p0**3 * dP**2, 0.0)
        hours = dt * 365.0 * 24.0
        for k, i in enumerate(fut):
            key = f"{book['venue'].iloc[i]}:{book['symbol'].iloc[i]}"
            if kind[i] == "perpetual" and key in market_t0.funding:
                periods = hours / market_t0.funding_hours[key]
                paid = qq[k] * market_t0.funding[key] * periods
                terms["funding"][i] = -(paid / p0[k] if inv[k] else paid * p0[k])
        full[fut] += terms["funding"][fut]

    spot_rows = np.flatnonzero(kind == "spot")
    terms["delta"][spot_rows] = full[spot_rows]
    explained = sum(terms[t] for t in _EXPLAIN_TERMS)
    out = pd.DataFrame(terms, index=book.index)
    out["explained"] = explained
    out["full"] = full
    out["residual"] = full - explained
    out["currency"] = value_positions(book, market_t0)["value_currency"].to_numpy()
    return out


def scenario_grid(book: pd.DataFrame, market, spot_shocks: Any, vol_shocks: Any = 0.0, *,
                  horizon: Any = None) -> pd.DataFrame:
    """Full revaluation of every position on a spot × vol shock grid, as a tidy DataFrame.

    Every underlying's spot and forwards move by the same relative ``spot_shock``
    (``x' = x (1 + s)``); implied vols shift in parallel by ``vol_shock`` (absolute, 0.05 = +5
    vol points, floored at 0) at fixed strike (sticky strike); ``horizon`` (a Timedelta, a
    string like ``"7D"`` or years as a float) rolls calendar time forward, and options and
    futures that expire inside it settle at intrinsic value on the shocked forward. Options are
    revalued by the compiled scenario kernel (:func:`pmnb.scenarios.revalue_grid`); futures,
    perpetuals, spot, lending and LP rows by their closed forms (no carry roll-down for futures).

    Returns
    -------
    DataFrame
        One row per (position, scenario): ``position`` (the book's index label),
        ``position_id``, ``spot_shock``, ``vol_shock``, ``horizon_years``, ``pnl`` (in the
        position's value currency), ``currency``, ``pnl_usd`` (change of the USD value, coin
        amounts converted at the shocked index).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0}, vols={"BTC": 0.5},
    ...                           marks={"binance:BTCUSDT": 100_000.0})
    >>> book = validate_positions(pd.DataFrame({"account": ["a"], "venue": ["binance"],
    ...     "symbol": ["BTCUSDT"], "size": [2.0], "entry_price": [90_000.0]}))
    >>> scenario_grid(book, m, [-0.1, 0.1])[["spot_shock", "pnl"]].values.tolist()
    [[-0.1, -20000.0], [0.1, 20000.0]]
    """
    from pmnb import scenarios  # pricing-level kernel module

    s = np.atleast_1d(np.asarray(spot_shocks, dtype=float))
    dv = np.atleast_1d(np.asarray(vol_shocks, dtype=float))
    if horizon is None:
        dt = 0.0
    elif isinstance(horizon, (int, float, np.floating)):
        dt = float(horizon)
    else:
        dt = pd.Timedelta(horizon).total_seconds() / (365.0 * 86400.0)
    if not (np.isfinite(dt) and dt >= 0):
        raise ValidationError(f"horizon: got {horizon!r}; accepted: >= 0 (Timedelta or years)",
                              field="horizon")
    ss = np.repeat(s, len(dv))          # spot-major scenario order, as revalue_grid
    vv = np.tile(dv, len(s))
    nsc = len(ss)
    T = _expiry_T(book, market)
    expired = _check_expired(book, T)
    n = len(book)
    kind = book["kind"].astype(str).to_numpy()
    inverse = (book["settlement"].astype(str) == "inverse").to_numpy()
    q = book["size"].to_numpy() * book["contract_size"].to_numpy()
    pnl = np.zeros((n, nsc))
    base = value_positions(book, market)
    price = base["price"].to_numpy()

    opt = np.flatnonzero((kind == "option") & ~expired)
    for rows, F, K, Tt, sigma, w, settlement in _option_groups(book, market, opt, T):
        pnl[rows] = scenarios.revalue_grid(F, K, Tt, sigma, market.rate("USD"), option_type=w,
                                           qty=q[rows], settlement=settlement, spot_shocks=s,
                                           vol_shocks=dv, time_shift=dt)
    fut = np.flatnonzero(np.isin(kind, ("future", "perpetual")) & ~expired)
    if len(fut):
        P, P1 = price[fut][:, None], price[fut][:, None] * (1.0 + ss[None, :])
        qq = q[fut][:, None]
        pnl[fut] = np.where(inverse[fut][:, None], qq * (1.0 / P - 1.0 / P1), qq * (P1 - P))
    lin = np.flatnonzero(np.isin(kind, ("spot",) + _LENDING))
    if len(lin):
        stable = np.isin(book["underlying"].astype(str).str.upper().to_numpy()[lin], _STABLES)
        vals = base["value"].to_numpy()[lin]
        pnl[lin] = np.where(stable[:, None], 0.0, vals[:, None] * ss[None, :])
    lp = np.flatnonzero(kind == "lp")
    if len(lp):
        from pmnb import defi

        P, _, _ = _lp_prices(book.iloc[lp], market)
        args = _lp_args(book.iloc[lp])
        size = book["size"].to_numpy()[lp][:, None]
        shocked = defi.lp_value(*(a[:, None] for a in args[:3]), P[:, None] * (1 + ss[None, :]),
                                *(a[:, None] for a in args[3:]))
        pnl[lp] = size * shocked - base["value"].to_numpy()[lp][:, None]

    pnl += 0.0  # no negative zeros in the report
    spot = _per_underlying(book, lambda u, idx: _asset_prices(np.array([u]), market)[0][0])
    coin = inverse & (kind != "spot")
    v0 = base["value"].to_numpy()[:, None]
    usd_per_quote = np.where(kind == "lp", base["value_usd"].to_numpy() / np.where(
        base["value"].to_numpy() == 0, 1.0, base["value"].to_numpy()), 1.0)[:, None]
    pnl_usd = np.where(coin[:, None], (v0 + pnl) * spot[:, None] * (1 + ss[None, :])
                       - v0 * spot[:, None], pnl * usd_per_quote)
    return pd.DataFrame({
        "position": np.repeat(book.index.to_numpy(), nsc),
        "position_id": np.repeat(book["position_id"].to_numpy(), nsc),
        "spot_shock": np.tile(ss, n), "vol_shock": np.tile(vv, n),
        "horizon_years": dt, "pnl": pnl.reshape(-1),
        "currency": np.repeat(base["value_currency"].to_numpy(), nsc),
        "pnl_usd": pnl_usd.reshape(-1),
    })
