"""pmnb.instruments: venue symbol parsing against the shipped Deribit snapshots (every instrument
name, checked against the snapshot's own strike/expiry/option_type/currency columns), one example
per supported format with every field, malformed symbols, contract-size rules and the vectorised
path."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

import pmnb.instruments as ins
from pmnb.datasets import load_deribit_chain, load_deribit_forwards
from pmnb.errors import ValidationError
from pmnb.instruments import (
    CONTRACT_SPECS,
    INSTRUMENT_COLUMNS,
    ContractSpec,
    Instrument,
    Kind,
    OptionType,
    Settlement,
    SpecKey,
    contract_spec,
    parse_symbol,
    parse_symbols,
)

UTC8 = "08:00:00+00:00"
CHAINS = ["2020-05-14", "2020-05-21", "2025-12-31"]


def ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(f"{day} {UTC8}")


# ---------------------------------------------------------------------------------------------
# 1. Every instrument name in the shipped Deribit data
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("snapshot", CHAINS)
def test_every_shipped_option_name_matches_its_chain_columns(snapshot):
    chain = load_deribit_chain(snapshot)
    chain.index = chain.index * 3 + 7  # a non-default index, to check alignment by label
    df = parse_symbols(chain["instrument_name"], "deribit")
    assert len(df) == len(chain) > 300
    assert df.index.equals(chain.index)
    assert (df["symbol"] == chain["instrument_name"]).all()
    np.testing.assert_array_equal(df["strike"].to_numpy(), chain["strike"].to_numpy())
    assert df["expiry"].dtype == "datetime64[ns, UTC]"
    assert (df["expiry"] == chain["expiry"]).all()
    assert (df["option_type"].astype(str) == chain["option_type"].astype(str)).all()
    assert (df["underlying"].astype(str) == chain["currency"].astype(str)).all()
    assert (df["kind"] == "option").all() and (df["settlement"] == "inverse").all()
    assert (df["quote"] == "USD").all()
    assert (df["settlement_currency"].astype(str) == chain["currency"].astype(str)).all()
    # Deribit BTC and ETH options: one coin per contract
    assert (df["contract_size"] == 1.0).all()
    assert (df["contract_size_unit"].astype(str) == chain["currency"].astype(str)).all()
    # every expiry at 08:00 UTC
    assert (df["expiry"].dt.hour == 8).all() and (df["expiry"].dt.minute == 0).all()


def test_shipped_chain_has_one_digit_days():
    names = load_deribit_chain("2025-12-31")["instrument_name"]
    one_digit = names[names.str.match(r"^[A-Z]+-\d[A-Z]{3}\d{2}-")]
    assert len(one_digit) > 100
    assert "BTC-1JAN26-82000-C" in set(one_digit)
    inst = parse_symbol("BTC-1JAN26-82000-C", "deribit")
    assert (inst.expiry, inst.strike, inst.option_type) == (ts("2026-01-01"), 82000.0,
                                                            OptionType.call)


@pytest.mark.parametrize("snapshot", CHAINS)
def test_every_shipped_underlying_index_parses_to_the_options_expiry(snapshot):
    chain = load_deribit_chain(snapshot)
    df = parse_symbols(chain["underlying_index"], "deribit")
    assert set(df["kind"].astype(str)) <= {"future", "synthetic"}
    assert (df["kind"] == "synthetic").any() and (df["kind"] == "future").any()
    assert (df["expiry"] == chain["expiry"]).all()
    assert (df["underlying"].astype(str) == chain["currency"].astype(str)).all()
    syn = df["kind"] == "synthetic"
    assert chain.loc[syn, "underlying_index"].str.startswith("SYN.").all()
    assert df.loc[syn, "contract_size"].isna().all()  # not tradable


def test_every_shipped_forward_name_matches_its_columns():
    fwd = load_deribit_forwards()
    df = parse_symbols(fwd["instrument_name"], "deribit")
    assert len(df) == len(fwd) == 26
    assert (df["kind"].astype(str) == fwd["kind"].astype(str)).all()
    assert (df["underlying"].astype(str) == fwd["currency"].astype(str)).all()
    same = (df["expiry"] == fwd["expiry"]) | (df["expiry"].isna() & fwd["expiry"].isna())
    assert same.all()
    perp = fwd["kind"] == "perpetual"
    assert perp.sum() == 2 and df.loc[perp, "expiry"].isna().all()
    fut = df[df["kind"].isin(["future", "perpetual"])]
    btc, eth = fut[fut["underlying"] == "BTC"], fut[fut["underlying"] == "ETH"]
    assert (btc["contract_size"] == 10.0).all() and (btc["contract_size_unit"] == "USD").all()
    assert (eth["contract_size"] == 1.0).all() and (eth["contract_size_unit"] == "USD").all()
    assert (fut["settlement"] == "inverse").all() and (fut["strike"].isna()).all()


# ---------------------------------------------------------------------------------------------
# 2. One example per supported format, every field
# ---------------------------------------------------------------------------------------------
# symbol, venue, kind, underlying, quote, settlement, settlement currency, strike, expiry,
# option type, contract size, contract size unit
EXAMPLES = [
    ("BTC-27DEC24-60000-C", "deribit", "option", "BTC", "USD", "inverse", "BTC", 60000.0,
     "2024-12-27", "call", 1.0, "BTC"),
    ("ETH-5AUG23-1850-P", "deribit", "option", "ETH", "USD", "inverse", "ETH", 1850.0,
     "2023-08-05", "put", 1.0, "ETH"),
    ("BTC-1JAN26-82000-C", "deribit", "option", "BTC", "USD", "inverse", "BTC", 82000.0,
     "2026-01-01", "call", 1.0, "BTC"),
    ("BTC_USDC-27DEC24-60000-C", "deribit", "option", "BTC", "USDC", "linear", "USDC", 60000.0,
     "2024-12-27", "call", 1.0, "BTC"),
    ("XRP_USDC-30JUN23-0d625-C", "deribit", "option", "XRP", "USDC", "linear", "USDC", 0.625,
     "2023-06-30", "call", 1000.0, "XRP"),
    ("SOL_USDC-29MAR24-180-P", "deribit", "option", "SOL", "USDC", "linear", "USDC", 180.0,
     "2024-03-29", "put", 10.0, "SOL"),
    ("BTC-PERPETUAL", "deribit", "perpetual", "BTC", "USD", "inverse", "BTC", None, None, None,
     10.0, "USD"),
    ("ETH-PERPETUAL", "deribit", "perpetual", "ETH", "USD", "inverse", "ETH", None, None, None,
     1.0, "USD"),
    ("BTC-27DEC24", "deribit", "future", "BTC", "USD", "inverse", "BTC", None, "2024-12-27", None,
     10.0, "USD"),
    ("ETH_USDC-PERPETUAL", "deribit", "perpetual", "ETH", "USDC", "linear", "USDC", None, None,
     None, 1.0, "ETH"),
    ("BTC_USDC-27DEC24", "deribit", "future", "BTC", "USDC", "linear", "USDC", None, "2024-12-27",
     None, 1.0, "BTC"),
    ("BTC_USDC", "deribit", "spot", "BTC", "USDC", "linear", "USDC", None, None, None, 1.0, "BTC"),
    ("SYN.BTC-1JAN26", "deribit", "synthetic", "BTC", "USD", "inverse", "BTC", None, "2026-01-01",
     None, math.nan, ""),
    ("BTCUSDT", "binance", "perpetual", "BTC", "USDT", "linear", "USDT", None, None, None, 1.0,
     "BTC"),
    ("BTCUSDC", "binance", "perpetual", "BTC", "USDC", "linear", "USDC", None, None, None, 1.0,
     "BTC"),
    ("1000PEPEUSDT", "binance", "perpetual", "1000PEPE", "USDT", "linear", "USDT", None, None, None,
     1.0, "1000PEPE"),
    ("BTCUSDT_241227", "binance", "future", "BTC", "USDT", "linear", "USDT", None, "2024-12-27",
     None, 1.0, "BTC"),
    ("BTC-USD-241227-60000-C", "okx", "option", "BTC", "USD", "inverse", "BTC", 60000.0,
     "2024-12-27", "call", 0.01, "BTC"),
    ("ETH-USD-250328-2500-P", "okx", "option", "ETH", "USD", "inverse", "ETH", 2500.0,
     "2025-03-28", "put", 0.1, "ETH"),
    ("BTC-USDT-SWAP", "okx", "perpetual", "BTC", "USDT", "linear", "USDT", None, None, None, 0.01,
     "BTC"),
    ("ETH-USDT-SWAP", "okx", "perpetual", "ETH", "USDT", "linear", "USDT", None, None, None, 0.1,
     "ETH"),
    ("BTC-USD-SWAP", "okx", "perpetual", "BTC", "USD", "inverse", "BTC", None, None, None, 100.0,
     "USD"),
    ("ETH-USD-SWAP", "okx", "perpetual", "ETH", "USD", "inverse", "ETH", None, None, None, 10.0,
     "USD"),
    ("BTC-USD-241227", "okx", "future", "BTC", "USD", "inverse", "BTC", None, "2024-12-27", None,
     100.0, "USD"),
    ("BTC-USDT-241227", "okx", "future", "BTC", "USDT", "linear", "USDT", None, "2024-12-27", None,
     0.01, "BTC"),
    ("DOGE-USDC-SWAP", "okx", "perpetual", "DOGE", "USDC", "linear", "USDC", None, None, None,
     math.nan, "DOGE"),
    ("BTC-USDT", "okx", "spot", "BTC", "USDT", "linear", "USDT", None, None, None, 1.0, "BTC"),
    ("BTC", "hyperliquid", "perpetual", "BTC", "USD", "linear", "USDC", None, None, None, 1.0,
     "BTC"),
    ("kPEPE", "hyperliquid", "perpetual", "kPEPE", "USD", "linear", "USDC", None, None, None, 1.0,
     "kPEPE"),
    ("BTC-USD", "dydx", "perpetual", "BTC", "USD", "linear", "USDC", None, None, None, 1.0, "BTC"),
]


def _same(a, b) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) \
        or a == b


@pytest.mark.parametrize("row", EXAMPLES, ids=[f"{e[1]}:{e[0]}" for e in EXAMPLES])
def test_venue_format_examples(row):
    sym, venue, kind, und, quote, sett, sccy, strike, expiry, opt, size, unit = row
    inst = parse_symbol(sym, venue)
    assert inst.venue == venue and inst.symbol == sym
    assert inst.kind is Kind(kind) and isinstance(inst.kind, Kind)
    assert (inst.underlying, inst.quote, inst.settlement_currency) == (und, quote, sccy)
    assert inst.settlement is Settlement(sett)
    assert inst.is_inverse == (sett == "inverse")
    assert inst.strike == strike
    assert inst.expiry == (None if expiry is None else ts(expiry))
    if inst.expiry is not None:
        assert str(inst.expiry.tz) == "UTC"
    assert inst.option_type == (None if opt is None else OptionType(opt))
    assert _same(inst.contract_size, size), inst.contract_size
    assert inst.contract_size_unit == unit


def test_examples_as_one_frame_match_parse_symbol():
    syms = [e[0] for e in EXAMPLES]
    venues = [e[1].upper() if i % 2 else e[1] for i, e in enumerate(EXAMPLES)]  # any case
    df = parse_symbols(syms, venues)
    assert list(df.columns) == list(INSTRUMENT_COLUMNS)
    for pos, e in enumerate(EXAMPLES):
        inst = parse_symbol(e[0], e[1])
        got = df.iloc[pos]
        assert got["venue"] == inst.venue and got["kind"] == inst.kind.value
        assert got["underlying"] == inst.underlying and got["quote"] == inst.quote
        assert got["settlement"] == inst.settlement.value
        assert got["settlement_currency"] == inst.settlement_currency
        assert _same(got["strike"], math.nan if inst.strike is None else inst.strike)
        assert (pd.isna(got["expiry"]) and inst.expiry is None) or got["expiry"] == inst.expiry
        assert (pd.isna(got["option_type"]) and inst.option_type is None) \
            or got["option_type"] == inst.option_type.value
        assert _same(got["contract_size"], inst.contract_size)
        assert got["contract_size_unit"] == inst.contract_size_unit


def test_frame_dtypes():
    df = parse_symbols([e[0] for e in EXAMPLES], [e[1] for e in EXAMPLES])
    cats = ["venue", "kind", "underlying", "quote", "settlement", "settlement_currency",
            "option_type", "contract_size_unit"]
    for c in cats:
        assert isinstance(df[c].dtype, pd.CategoricalDtype), c
    assert list(df["kind"].cat.categories) == [k.value for k in Kind]
    assert list(df["settlement"].cat.categories) == ["inverse", "linear"]
    assert list(df["option_type"].cat.categories) == ["call", "put"]
    for c in ["strike", "contract_size", "tick_size"]:
        assert df[c].dtype == np.float64, c
    assert df["expiry"].dtype == "datetime64[ns, UTC]"
    assert pd.api.types.is_string_dtype(df["symbol"]) or df["symbol"].dtype == object


def test_documented_tick_sizes():
    assert parse_symbol("BTC-PERPETUAL", "deribit").tick_size == 0.5
    assert parse_symbol("BTC-27DEC24-60000-C", "deribit").tick_size == 0.0001
    assert parse_symbol("BTC-USD-SWAP", "okx").tick_size == 0.1
    assert parse_symbol("BTC-USDT-SWAP", "okx").tick_size == 0.1
    assert parse_symbol("BTCUSDT", "binance").tick_size is None  # not in the cited source


def test_symbols_and_venues_are_case_insensitive():
    a = parse_symbol("btc-27dec24-60000-c", "DeRiBiT")
    b = parse_symbol("BTC-27DEC24-60000-C", "deribit")
    assert (a.kind, a.underlying, a.strike, a.expiry, a.option_type) == \
        (b.kind, b.underlying, b.strike, b.expiry, b.option_type)
    assert a.symbol == "btc-27dec24-60000-c"  # as given
    assert parse_symbol(" btc-usdt-swap ", "OKX").underlying == "BTC"
    assert parse_symbol("eth", "hyperliquid").underlying == "ETH"
    assert parse_symbol("kSHIB", "hyperliquid").underlying == "kSHIB"


# ---------------------------------------------------------------------------------------------
# 3. Malformed symbols and venues
# ---------------------------------------------------------------------------------------------
BAD = [
    ("BTC-27DEX24-60000-C", "deribit", "month 'DEX'"),
    ("BTC-31APR24", "deribit", "day 31 does not exist in APR 2024"),
    ("BTC-30FEB24-60000-P", "deribit", "day 30 does not exist in FEB 2024"),
    ("BTC-29FEB23", "deribit", "day 29 does not exist in FEB 2023"),
    ("BTC-0JAN25", "deribit", "day 0 does not exist"),
    ("BTC-27DEC24-0-C", "deribit", "strike '0' is not > 0"),
    ("BTC-27DEC24-0d0-C", "deribit", "is not > 0"),
    ("BTC-27DEC24-6e4-C", "deribit", "strike '6E4'"),
    ("BTC-27DEC24-60000-X", "deribit", "option type 'X'"),
    ("BTC-27DEC24-60000", "deribit", "3 dash-separated parts"),
    ("BTC-PERP", "deribit", "neither PERPETUAL nor a DMONYY expiry"),
    ("BTC_EUR-PERPETUAL", "deribit", "linear quote 'EUR'"),
    ("BTC", "deribit", "missing -PERPETUAL"),
    ("SYN.BTC-PERPETUAL", "deribit", "not a perpetual"),
    ("BTC-2024DEC27", "deribit", "not DMONYY"),
    ("BTCUSDT_241331", "binance", "month 13"),
    ("BTCUSDT_240931", "binance", "day 31 does not exist in SEP 2024"),
    ("BTCUSDT_PERP", "binance", "not YYMMDD"),
    ("BTCUSD_PERP", "binance", "COIN-M"),
    ("BTCEUR", "binance", "not COINUSDT/COINUSDC"),
    ("BTC-USD-SWAPX", "okx", "neither SWAP nor a YYMMDD expiry"),
    ("BTC-EUR-SWAP", "okx", "quote 'EUR'"),
    ("BTC-USD-241227-0-C", "okx", "strike '0' is not > 0"),
    ("BTC-USD-241227--60000-C", "okx", "6 dash-separated parts"),
    ("BTC-USD-240230-60000-C", "okx", "day 30 does not exist in FEB 2024"),
    ("BTC-USD-241227-60000-CALL", "okx", "option type 'CALL'"),
    ("BTC-USDT-241227-60000-C", "okx", "coin-margined COIN-USD family"),
    ("BTC-USD", "hyperliquid", "name the coin alone"),
    ("xyz:TSLA", "hyperliquid", "HIP-3"),
    ("BTC-PERP", "dydx", "not COIN-USD"),
    ("BTC-USDT", "dydx", "not COIN-USD"),
    ("", "okx", "empty"),
]


@pytest.mark.parametrize("sym,venue,reason", BAD, ids=[f"{v}:{s}" for s, v, _ in BAD])
def test_malformed_symbol_raises_naming_row_symbol_and_format(sym, venue, reason):
    with pytest.raises(ValidationError) as exc:
        parse_symbol(sym, venue)
    msg = str(exc.value)
    assert exc.value.field == "symbol"
    assert repr(sym) in msg and reason in msg, msg
    assert f"accepted: {venue}: {ins._FORMATS[venue]}" in msg
    # in a frame: the row is named by its position ...
    good = EXAMPLES[0][0] if venue == "deribit" else next(e[0] for e in EXAMPLES if e[1] == venue)
    with pytest.raises(ValidationError) as exc:
        parse_symbols([good, good, sym, good, sym], venue)
    msg = str(exc.value)
    assert msg.startswith(f"symbol: row 2 has {sym!r}: ") and reason in msg, msg
    assert "(2 bad rows in all)" in msg and ins._FORMATS[venue] in msg
    assert exc.value.row == 2 and exc.value.rows == [2, 4]
    # ... or by its index label when a Series is given
    s = pd.Series([good, sym, good], index=["pos-a", "pos-b", "pos-c"])
    with pytest.raises(ValidationError) as exc:
        parse_symbols(s, venue)
    assert str(exc.value).startswith(f"symbol: row 'pos-b' has {sym!r}: ")
    assert exc.value.row == "pos-b" and exc.value.rows == ["pos-b"]


def test_unknown_venue_names_row_and_accepted_venues():
    with pytest.raises(ValidationError, match=r"venue: got 'bybit': unknown venue; accepted: "
                                              r"'deribit', 'binance', 'okx', 'hyperliquid', "
                                              r"'dydx'") as exc:
        parse_symbol("BTCUSDT", "bybit")
    assert exc.value.field == "venue"
    venues = pd.Series(["okx", "okx", "Bybit", "okx"], index=[10, 20, 30, 40])
    with pytest.raises(ValidationError) as exc:
        parse_symbols(["BTC-USD-SWAP"] * 4, venues)
    assert str(exc.value).startswith(
        "venue: row 30 has 'Bybit': unknown venue; accepted: 'deribit'")
    assert exc.value.row == 30 and exc.value.field == "venue"
    with pytest.raises(ValidationError, match=r"venue: row 0 has 'ftx'.*\(3 bad rows in all\)"):
        parse_symbols(["BTC-PERPETUAL"] * 3, "ftx")


def test_missing_and_non_string_symbols_are_rejected_with_their_row():
    with pytest.raises(ValidationError, match=r"symbol: row 1 has None: missing"):
        parse_symbols(["BTC-PERPETUAL", None], "deribit")
    with pytest.raises(ValidationError, match=r"symbol: row 'b' has None: missing"):
        parse_symbols(pd.Series(["BTC-PERPETUAL", np.nan], index=["a", "b"]), "deribit")
    with pytest.raises(ValidationError, match=r"symbol: row 0 has 42: not a string"):
        parse_symbols([42], "deribit")
    with pytest.raises(ValidationError, match=r"venues: got 2 values for 3 symbols"):
        parse_symbols(["BTC", "ETH", "SOL"], ["hyperliquid", "hyperliquid"])
    with pytest.raises(ValidationError, match=r"symbols: got str"):
        parse_symbols("BTC-PERPETUAL", "deribit")


def test_empty_input_gives_an_empty_typed_frame():
    df = parse_symbols([], "deribit")
    assert df.shape == (0, len(INSTRUMENT_COLUMNS)) and list(df.columns) == list(INSTRUMENT_COLUMNS)
    assert df["expiry"].dtype == "datetime64[ns, UTC]"
    assert isinstance(df["kind"].dtype, pd.CategoricalDtype)


# ---------------------------------------------------------------------------------------------
# 4. Vectorised over distinct symbols, aligned to the input index
# ---------------------------------------------------------------------------------------------
def test_100k_rows_with_repeated_symbols_parse_each_pair_once_and_align(monkeypatch, rng):
    pairs = [(e[0], e[1]) for e in EXAMPLES] + [("BTC-PERPETUAL", "DERIBIT")]
    n = 100_000
    pick = rng.integers(0, len(pairs), n)
    syms = np.array([p[0] for p in pairs], dtype=object)[pick]
    venues = np.array([p[1] for p in pairs], dtype=object)[pick]
    labels = rng.permutation(n) * 7 + 3  # non-monotonic labels
    s = pd.Series(syms, index=labels)

    calls = []
    real = ins._parse_one

    def counting(symbol, venue, *args, **kw):
        calls.append((symbol, venue))
        return real(symbol, venue, *args, **kw)

    monkeypatch.setattr(ins, "_parse_one", counting)
    df = parse_symbols(s, venues)
    assert len(calls) == len(set(zip(syms, venues))) <= len(pairs)  # once per distinct pair
    assert df.index.equals(s.index) and len(df) == n
    assert (df["symbol"].to_numpy() == syms).all()
    # row by row equal to the scalar parser (checked through the distinct pairs)
    ref = {p: parse_symbol(*p) for p in set(pairs)}
    kinds = np.array([ref[p].kind.value for p in pairs], dtype=object)[pick]
    strikes = np.array([np.nan if ref[p].strike is None else ref[p].strike for p in pairs])[pick]
    sizes = np.array([ref[p].contract_size for p in pairs])[pick]
    assert (df["kind"].astype(str).to_numpy() == kinds).all()
    np.testing.assert_array_equal(df["strike"].to_numpy(), strikes)
    np.testing.assert_array_equal(df["contract_size"].to_numpy(), sizes)
    assert (df["venue"].astype(str).to_numpy() == np.char.lower(venues.astype(str))).all()
    lbl = labels[123]
    assert df.loc[lbl, "symbol"] == s.loc[lbl]


def test_100k_rows_parse_each_distinct_symbol_once(monkeypatch):
    """No per-row Python loop: the grammar runs once per distinct (symbol, venue) pair (speed
    itself is measured in benchmarks/book.py, never asserted here)."""
    import pmnb.instruments as inst

    calls = []
    real = inst._parse_one
    monkeypatch.setattr(inst, "_parse_one", lambda *a: calls.append(a[0]) or real(*a))
    chain = load_deribit_chain("2025-12-31")["instrument_name"].to_numpy()
    syms = np.resize(chain, 100_000)
    df = parse_symbols(pd.Series(syms, index=pd.RangeIndex(100_000, 200_000)), "deribit")
    assert df.index[0] == 100_000 and df["symbol"].iloc[-1] == syms[-1]
    assert sorted(calls) == sorted(set(chain))


# ---------------------------------------------------------------------------------------------
# 5. Contract-size rules
# ---------------------------------------------------------------------------------------------
def test_every_default_rule_has_a_source_and_unverified_ones_are_flagged():
    for key, spec in CONTRACT_SPECS.items():
        assert isinstance(key, SpecKey) and key.venue in ins.VENUES
        assert spec.source, key
        assert math.isnan(spec.contract_size) or spec.contract_size > 0
        if math.isnan(spec.contract_size):
            assert not spec.verified, key
    unverified = {(k.venue, k.underlying) for k, s in CONTRACT_SPECS.items()
                  if not s.verified and not math.isnan(s.contract_size)}
    assert ("deribit", "ETH") in unverified and ("okx", "ETH") in unverified
    verified = {tuple(k): s.contract_size for k, s in CONTRACT_SPECS.items() if s.verified}
    assert verified[("deribit", "inverse", "perpetual", "USD", "BTC")] == 10.0
    assert verified[("okx", "inverse", "perpetual", "USD", "BTC")] == 100.0
    assert verified[("okx", "linear", "perpetual", "USDT", "BTC")] == 0.01
    assert verified[("okx", "inverse", "option", "USD", "BTC")] == 0.01
    assert verified[("hyperliquid", "linear", "perpetual", "*", "*")] == 1.0


def test_contract_spec_resolves_units_and_specificity():
    spec = contract_spec("deribit", "inverse", "option", "USD", "ETH")
    assert (spec.contract_size, spec.contract_size_unit, spec.verified) == (1.0, "ETH", True)
    # a kind rule (synthetic) beats an underlying rule (ETH inverse futures: 1 USD)
    assert math.isnan(contract_spec("deribit", "inverse", "synthetic", "USD", "ETH").contract_size)
    spec = contract_spec("binance", "linear", "future", "USDT", "1000PEPE")
    assert (spec.contract_size, spec.contract_size_unit) == (1.0, "1000PEPE")
    spec = contract_spec("OKX", "linear", "perpetual", "USDT", "SOL")
    assert math.isnan(spec.contract_size) and spec.contract_size_unit == "SOL"
    assert "specs=" in spec.source


def test_specs_override_contract_sizes():
    specs = {("okx", "linear", "*", "*", "DOGE"): 1000,
             SpecKey("deribit", "inverse", "*", "USD", "ETH"): ContractSpec(5.0, "USD",
                                                                           source="test")}
    df = parse_symbols(["DOGE-USDT-SWAP", "DOGE-USDC-241227", "ETH-PERPETUAL", "BTC-PERPETUAL"],
                       ["okx", "okx", "deribit", "deribit"], specs=specs)
    assert df["contract_size"].tolist() == [1000.0, 1000.0, 5.0, 10.0]
    assert df["contract_size_unit"].astype(str).tolist() == ["DOGE", "DOGE", "USD", "USD"]
    inst = parse_symbol("DOGE-USDT-SWAP", "okx", specs=specs)
    assert inst.contract_size == 1000.0
    with pytest.raises(ValidationError, match=r"specs: contract size .* is -1"):
        parse_symbol("BTC-PERPETUAL", "deribit", specs={("deribit", "*", "*", "*", "BTC"): -1})
    with pytest.raises(ValidationError, match=r"specs: key .* is not a SpecKey"):
        parse_symbol("BTC-PERPETUAL", "deribit", specs={"BTC-PERPETUAL": 10})


# ---------------------------------------------------------------------------------------------
# 6. Instrument built by hand
# ---------------------------------------------------------------------------------------------
def test_instrument_constructor_validates_and_coerces():
    inst = Instrument("OKX", "BTC-USD-241227-60000-C", "option", "BTC", "USD", "inverse", "BTC",
                      strike=60000, expiry=pd.Timestamp("2024-12-27 16:00", tz="Asia/Hong_Kong"),
                      option_type="call", contract_size=0.01, contract_size_unit="BTC")
    assert inst.venue == "okx" and inst.kind is Kind.option and inst.option_type is OptionType.call
    assert inst.expiry == ts("2024-12-27") and str(inst.expiry.tz) == "UTC"
    with pytest.raises(ValidationError, match=r"kind: got 'swap'; accepted: 'option'"):
        Instrument("okx", "X", "swap", "BTC", "USD", "inverse", "BTC")
    with pytest.raises(ValidationError, match=r"strike: got -1"):
        Instrument("okx", "X", "option", "BTC", "USD", "inverse", "BTC", strike=-1,
                   option_type="put")
    with pytest.raises(ValidationError, match=r"options need both"):
        Instrument("okx", "X", "option", "BTC", "USD", "inverse", "BTC", strike=1.0)
    with pytest.raises(ValidationError, match=r"expiry: got naive"):
        Instrument("okx", "X", "future", "BTC", "USD", "inverse", "BTC",
                   expiry=pd.Timestamp("2024-12-27 08:00"))


def test_public_names_are_exported():
    for name in ins.__all__:
        assert hasattr(ins, name), name
    assert {"parse_symbol", "parse_symbols", "Instrument", "Kind", "Settlement",
            "OptionType"} <= set(ins.__all__)
    assert re.fullmatch(r"[a-z_]+", Kind.lending_supply.value)
