"""Tests of pmnb.datasets: the shipped files, their loaders, and what data/README.md says of them.

The expected numbers (row counts, ranges, plausibility values) are copied from data/README.md, so a
test failing here means either the loader or the README is wrong.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import math
import pathlib
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pandas as pd
import pytest

import pmnb.datasets as ds
from pmnb.datasets import (
    data_path,
    list_datasets,
    load_deribit_chain,
    load_deribit_forwards,
    load_dvol,
    load_funding,
    load_prices,
    load_stress_events,
)
from pmnb.errors import DataError, ValidationError

UTC_NS = "datetime64[ns, UTC]"
SNAPSHOTS = ("2020-05-14", "2020-05-21", "2025-12-31")
VENUES = ("binance", "bitmex", "deribit")


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def raw_csv(name: str) -> pd.DataFrame:
    """The shipped file as plain text columns: an independent view to compare the loaders with."""
    return pd.read_csv(data_path(name), dtype=str, keep_default_na=False)


def datetime_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])]


FRAMES = {
    "prices/aggregate": lambda: load_prices(),
    "prices/binance": lambda: load_prices("binance"),
    "dvol": lambda: load_dvol(),
    "forwards": lambda: load_deribit_forwards(),
    "stress": lambda: load_stress_events(),
    **{f"funding/{v}": (lambda v=v: load_funding(v)) for v in VENUES},
    **{f"chain/{s}": (lambda s=s: load_deribit_chain(s)) for s in SNAPSHOTS},
}


# --------------------------------------------------------------------------------------------------
# Public face
# --------------------------------------------------------------------------------------------------
def test_public_names():
    assert sorted(ds.__all__) == sorted([
        "data_path", "list_datasets", "load_deribit_chain", "load_deribit_forwards", "load_dvol",
        "load_funding", "load_prices", "load_stress_events", "load_demo_accounts",
        "load_demo_book"])
    for name in ds.__all__:
        assert getattr(ds, name).__doc__, name


@pytest.mark.parametrize("key", sorted(FRAMES))
def test_every_timestamp_column_is_utc_ns(key):
    df = FRAMES[key]()
    cols = datetime_columns(df)
    assert cols, f"{key} has no timestamp column"
    for c in cols:
        assert str(df[c].dtype) == UTC_NS, (key, c, df[c].dtype)
        assert str(df[c].dt.tz) == "UTC"
    # nothing left as unparsed text that looks like a date
    for c in df.columns:
        if c not in cols and (c == "date" or c.endswith(("_date", "_utc", "time"))):
            pytest.fail(f"{key}: column {c} is not parsed as a timestamp")


@pytest.mark.parametrize("key", sorted(FRAMES))
def test_frames_have_a_fresh_range_index(key):
    df = FRAMES[key]()
    assert isinstance(df.index, pd.RangeIndex)
    assert df.index.start == 0 and df.index.step == 1 and len(df.index) == len(df)


# --------------------------------------------------------------------------------------------------
# Prices
# --------------------------------------------------------------------------------------------------
PRICE_RANGES = {  # README: symbol, first day, last day, rows
    "BTC": ("2017-01-01", "2025-12-31", 3287),
    "ETH": ("2017-01-01", "2025-11-19", 3245),
    "SOL": ("2020-04-10", "2025-12-31", 2092),
    "BNB": ("2017-11-09", "2025-11-19", 2933),
}


def test_prices_schema():
    px = load_prices()
    assert list(px.columns) == ["date", "symbol", "open", "high", "low", "close", "volume_usd",
                                "source"]
    assert str(px["date"].dtype) == UTC_NS
    assert isinstance(px["symbol"].dtype, pd.CategoricalDtype)
    assert isinstance(px["source"].dtype, pd.CategoricalDtype)
    for c in ["open", "high", "low", "close", "volume_usd"]:
        assert px[c].dtype == np.float64, c
    assert len(px) == sum(n for *_, n in PRICE_RANGES.values()) == 11557
    assert set(px["source"]) == {"yf_nasc", "yf_mimi", "yf_kaus", "yf_fed"}
    assert (px["date"] == px["date"].dt.normalize()).all()  # midnight UTC


@pytest.mark.parametrize("symbol", sorted(PRICE_RANGES))
def test_prices_ranges_and_no_gaps(symbol):
    first, last, rows = PRICE_RANGES[symbol]
    s = load_prices().query("symbol == @symbol")
    assert len(s) == rows
    assert s["date"].iloc[0] == ts(first) and s["date"].iloc[-1] == ts(last)
    assert (s["date"].diff().iloc[1:] == pd.Timedelta(days=1)).all()


@pytest.mark.parametrize("symbol, day, column, value", [
    ("BTC", "2020-03-12", "close", 4970.79),
    ("BTC", "2021-11-10", "close", 64995.23),
    ("BTC", "2021-11-10", "high", 68789.63),
    ("ETH", "2022-06-18", "close", 993.64),
    ("BTC", "2025-10-10", "low", 104582.41),
    ("BTC", "2020-03-13", "low", 4106.98),
])
def test_prices_readme_plausibility_values(symbol, day, column, value):
    px = load_prices()
    row = px[(px["symbol"] == symbol) & (px["date"] == ts(day))]
    assert len(row) == 1
    assert row[column].iloc[0] == pytest.approx(value, abs=0.0051)  # README rounds to cents


@pytest.mark.parametrize("source", ["aggregate", "binance"])
def test_prices_ohlc_consistency(source):
    px = load_prices(source)
    oc_max = np.maximum(px["open"], px["close"])
    oc_min = np.minimum(px["open"], px["close"])
    assert (px["high"] >= oc_max).all()
    assert (px["low"] <= oc_min).all()
    assert (px["low"] > 0).all()
    vol = "volume_usd" if source == "aggregate" else "volume_btc"
    assert (px[vol] >= 0).all()
    assert not px[["open", "high", "low", "close", vol]].isna().any().any()


def test_prices_binance():
    bn = load_prices("binance")
    assert list(bn.columns) == ["date", "symbol", "open", "high", "low", "close", "volume_btc"]
    assert len(bn) == 2932
    assert bn["date"].iloc[0] == ts("2017-08-17") and bn["date"].iloc[-1] == ts("2025-08-26")
    assert (bn["date"].diff().iloc[1:] == pd.Timedelta(days=1)).all()
    assert set(bn["symbol"]) == {"BTCUSDT"}
    # README: exchange-level low on Black Thursday is deeper than the aggregate's
    low = bn.loc[bn["date"] == ts("2020-03-13"), "low"].iloc[0]
    assert low == pytest.approx(3782.13, abs=0.005)


def test_prices_volume_read_as_float_not_inferred_int():
    # the file stores whole numbers; an inferring reader would return int64
    assert load_prices()["volume_usd"].dtype == np.float64
    assert raw_csv("prices_daily")["volume_usd"].str.fullmatch(r"\d+").all()


@pytest.mark.parametrize("bad", ["yahoo", "", None, 3])
def test_prices_unknown_source(bad):
    with pytest.raises(ValidationError) as info:
        load_prices(bad)
    assert info.value.field == "source"
    assert "'aggregate'" in str(info.value) and "'binance'" in str(info.value)


def test_prices_source_is_case_insensitive():
    pd.testing.assert_frame_equal(load_prices(" Binance "), load_prices("binance"))


# --------------------------------------------------------------------------------------------------
# Funding
# --------------------------------------------------------------------------------------------------
EXTRA_FUNDING_COLUMNS = {
    "binance": [],
    "bitmex": ["funding_rate_daily"],
    "deribit": ["index_price", "prev_index_price", "interest_8h"],
}


@pytest.mark.parametrize("venue", VENUES)
def test_funding_uniform_schema(venue):
    fr = load_funding(venue)
    assert list(fr.columns) == (["time", "symbol", "funding_rate", "interval_hours"]
                                + EXTRA_FUNDING_COLUMNS[venue])
    assert str(fr["time"].dtype) == UTC_NS
    assert isinstance(fr["symbol"].dtype, pd.CategoricalDtype)
    for c in fr.columns[2:]:
        assert fr[c].dtype == np.float64, c
    assert fr["time"].is_monotonic_increasing and fr["time"].is_unique
    assert fr["funding_rate"].notna().all()
    # a fraction per interval, not percent (BitMEX hit its 1.125 %/8 h cap in June 2016)
    assert fr["funding_rate"].abs().max() <= 0.01125


def test_funding_binance():
    fr = load_funding("binance")
    assert len(fr) == 7028
    assert fr["time"].iloc[0] == ts("2019-09-10T08:00")
    assert fr["time"].iloc[-1] == ts("2026-02-07T16:00")
    t = fr["time"]
    assert set(t.dt.hour) == {0, 8, 16}
    assert (t.dt.minute == 0).all() and (t.dt.second == 0).all()
    assert (t.diff().iloc[1:] == pd.Timedelta(hours=8)).all()  # no missing 8-hour stamp
    assert (fr["interval_hours"] == 8.0).all()
    assert set(fr["symbol"]) == {"BTCUSDT"}
    assert fr["funding_rate"].min() == pytest.approx(-0.003)
    assert fr["funding_rate"].max() == pytest.approx(0.003)


def test_funding_bitmex():
    fr = load_funding("bitmex")
    assert len(fr) == 4866
    assert fr["time"].iloc[0] == ts("2016-05-14T12:00")
    assert fr["time"].iloc[-1] == ts("2020-11-05T04:00")
    assert set(fr["symbol"]) == {"XBTUSD"}
    # 24-hourly for the first 22 rows, then 8-hourly, as in the file
    assert (fr["interval_hours"].iloc[:22] == 24.0).all()
    assert (fr["interval_hours"].iloc[22:] == 8.0).all()
    gaps = fr["time"].diff().iloc[1:].dt.total_seconds().to_numpy() / 3600.0
    np.testing.assert_array_equal(gaps[:21], 24.0)
    np.testing.assert_array_equal(gaps[21:], 8.0)
    # funding_rate_daily is BitMEX's daily equivalent: rate * 24 / interval
    nz = fr["funding_rate"] != 0
    np.testing.assert_allclose(fr.loc[nz, "funding_rate_daily"],
                               fr.loc[nz, "funding_rate"] * 24.0 / fr.loc[nz, "interval_hours"],
                               rtol=1e-9)


def test_funding_deribit():
    fr = load_funding("deribit")
    assert len(fr) == 16008
    assert fr["time"].iloc[0] == ts("2019-04-30T10:00")
    assert fr["time"].iloc[-1] == ts("2021-02-25T11:00")
    assert set(fr["symbol"]) == {"BTC-PERPETUAL"}
    assert (fr["interval_hours"] == 1.0).all()
    # hourly grid; exactly the two hours the README reports are missing
    full = pd.date_range(fr["time"].iloc[0], fr["time"].iloc[-1], freq="h")
    missing = full.difference(pd.DatetimeIndex(fr["time"]))
    assert list(missing) == [ts("2020-08-27T06:00"), ts("2020-08-27T07:00")]
    # each hour's prev_index_price is the previous hour's index_price (checks the DST re-sort)
    consecutive = fr["time"].diff() == pd.Timedelta(hours=1)
    np.testing.assert_array_equal(fr.loc[consecutive, "prev_index_price"].to_numpy(),
                                  fr["index_price"].shift(1)[consecutive].to_numpy())
    assert math.isnan(fr["prev_index_price"].iloc[0])


def test_funding_deribit_matches_file_and_epoch_ms():
    fr = load_funding("deribit")
    raw = raw_csv("funding_btc_perpetual_deribit_1h")
    from_ms = pd.to_datetime(raw["timestamp_ms"].astype("int64"), unit="ms", utc=True)
    by_time = pd.Series(raw["interest_1h"].astype(float).to_numpy(), index=from_ms).sort_index()
    np.testing.assert_array_equal(pd.DatetimeIndex(fr["time"]), by_time.index)
    np.testing.assert_array_equal(fr["funding_rate"].to_numpy(), by_time.to_numpy())
    # the file itself is out of order once (2019-10-27, DST end in Europe); the loader sorts
    assert not from_ms.is_monotonic_increasing


def test_funding_per_hour_rates_are_comparable():
    # the same economic quantity on three venues should be of the same order per hour
    per_hour = {v: (lambda f: (f["funding_rate"] / f["interval_hours"]).abs().median())(
        load_funding(v)) for v in VENUES}
    for v, x in per_hour.items():
        assert 1e-7 < x < 1e-4, (v, x)


@pytest.mark.parametrize("bad", ["ftx", "bybit", "", None, 8])
def test_funding_unknown_venue(bad):
    with pytest.raises(ValidationError) as info:
        load_funding(bad)
    err = info.value
    assert err.field == "venue"
    assert str(err).startswith("venue")
    for v in VENUES:
        assert repr(v) in str(err)


def test_funding_venue_is_case_insensitive():
    pd.testing.assert_frame_equal(load_funding("BitMEX"), load_funding("bitmex"))


# --------------------------------------------------------------------------------------------------
# DVOL
# --------------------------------------------------------------------------------------------------
def test_dvol():
    dv = load_dvol()
    assert list(dv.columns) == ["date", "dvol_close", "source"]
    assert len(dv) == 1769
    assert dv["date"].iloc[0] == ts("2021-03-24") and dv["date"].iloc[-1] == ts("2026-04-20")
    assert dv["date"].is_monotonic_increasing and dv["date"].is_unique
    span = (dv["date"].iloc[-1] - dv["date"].iloc[0]).days + 1
    assert span - len(dv) == 85  # README: 85 days missing
    assert dv["source"].value_counts().to_dict() == {"isayggyo": 1594, "kalyar197": 175}
    assert dv["dvol_close"].dtype == np.float64
    assert dv["dvol_close"].between(20, 250).all()  # annualised percent, not a decimal
    assert dv.loc[dv["date"] == ts("2021-03-24"), "dvol_close"].iloc[0] == 95.04


# --------------------------------------------------------------------------------------------------
# Deribit chains
# --------------------------------------------------------------------------------------------------
CHAIN_COLUMNS = [
    "snapshot", "timestamp", "currency", "instrument_name", "option_type", "strike", "expiry",
    "underlying_index", "underlying_price", "index_price", "estimated_delivery_price",
    "interest_rate", "mark_price", "mark_iv_pct", "best_bid_price", "best_bid_amount",
    "best_ask_price", "best_ask_amount", "bid_iv_pct", "ask_iv_pct", "last_price",
    "settlement_price", "open_interest", "volume_24h", "volume_24h_usd",
    "delta", "gamma", "vega", "theta", "rho",
]
CHAIN_FILES = {
    "2020-05-14": "deribit_btc_options_20200514T0541Z",
    "2020-05-21": "deribit_btc_options_20200521T2319Z",
    "2025-12-31": "deribit_options_20251231T0918Z",
}


def test_chain_columns_and_dtypes_identical_across_snapshots():
    frames = [load_deribit_chain(s) for s in SNAPSHOTS]
    for df in frames:
        assert list(df.columns) == CHAIN_COLUMNS
    pd.testing.assert_series_equal(frames[0].dtypes, frames[2].dtypes)
    pd.testing.assert_series_equal(frames[0].dtypes, frames[1].dtypes)
    df = frames[2]
    for c in ["snapshot", "timestamp", "expiry"]:
        assert str(df[c].dtype) == UTC_NS
    assert list(df["currency"].cat.categories) == ["BTC", "ETH"]
    assert list(df["option_type"].cat.categories) == ["call", "put"]
    text = {"snapshot", "timestamp", "expiry", "currency", "option_type", "instrument_name",
            "underlying_index"}
    for c in set(CHAIN_COLUMNS) - text:
        assert df[c].dtype == np.float64, c
    # the categories are the same across snapshots, so frames concatenate without losing dtype
    both = pd.concat(frames, ignore_index=True)
    assert isinstance(both["currency"].dtype, pd.CategoricalDtype)
    assert isinstance(both["option_type"].dtype, pd.CategoricalDtype)


@pytest.mark.parametrize("snapshot, counts, n_expiries", [
    ("2020-05-14", {"BTC": 310}, 7),
    ("2020-05-21", {"BTC": 326}, 7),
    ("2025-12-31", {"BTC": 620, "ETH": 666}, 12),
])
def test_chain_counts(snapshot, counts, n_expiries):
    ch = load_deribit_chain(snapshot)
    assert ch.groupby("currency", observed=True).size().to_dict() == counts
    assert ch.groupby("currency", observed=True)["expiry"].nunique().eq(n_expiries).all()
    assert ch["instrument_name"].is_unique
    # every strike listed as call and put
    assert (ch["option_type"] == "call").sum() == (ch["option_type"] == "put").sum()


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_chain_expiries_at_0800_utc_and_after_the_snapshot(snapshot):
    ch = load_deribit_chain(snapshot)
    e = ch["expiry"]
    assert ((e.dt.hour == 8) & (e.dt.minute == 0) & (e.dt.second == 0)).all()
    assert (e > ch["timestamp"]).all()


@pytest.mark.parametrize("snapshot, first, last", [
    ("2020-05-14", "2020-05-14T05:41:36", "2020-05-14T05:44:07"),
    ("2020-05-21", "2020-05-21T23:19:53", "2020-05-21T23:22:36"),
    ("2025-12-31", "2025-12-31T09:18:28", "2025-12-31T09:18:28"),
])
def test_chain_timestamps(snapshot, first, last):
    ch = load_deribit_chain(snapshot)
    t = ch["timestamp"]
    assert t.min().floor("s") == ts(first)
    assert t.max().ceil("s") == ts(last)
    assert ch["snapshot"].nunique() == 1
    assert ch["snapshot"].iloc[0] == t.min()


@pytest.mark.parametrize("snapshot", ["2020-05-14", "2020-05-21"])
def test_chain_2020_row_timestamps_match_file(snapshot):
    ch = load_deribit_chain(snapshot)
    raw = raw_csv(CHAIN_FILES[snapshot])
    text = pd.to_datetime(raw["timestamp_utc"], format="ISO8601", utc=True)
    np.testing.assert_array_equal(pd.DatetimeIndex(ch["timestamp"]), pd.DatetimeIndex(text))


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_chain_instrument_names_agree_with_columns(snapshot):
    ch = load_deribit_chain(snapshot)
    parts = ch["instrument_name"].str.split("-", expand=True)
    assert (parts[0] == ch["currency"].astype(str)).all()
    np.testing.assert_array_equal(parts[2].astype(float), ch["strike"])
    assert (parts[3].map({"C": "call", "P": "put"}) == ch["option_type"].astype(str)).all()
    expiry_code = pd.to_datetime(parts[1], format="%d%b%y", utc=True) + pd.Timedelta(hours=8)
    np.testing.assert_array_equal(pd.DatetimeIndex(expiry_code), pd.DatetimeIndex(ch["expiry"]))


@pytest.mark.parametrize("snapshot, bid_nan, ask_nan", [
    ("2020-05-14", 26, 26),
    ("2020-05-21", 64, 49),
    ("2025-12-31", 23, 0),
])
def test_chain_no_quote_is_nan_not_zero(snapshot, bid_nan, ask_nan):
    ch = load_deribit_chain(snapshot)
    for c in ["best_bid_price", "best_ask_price", "bid_iv_pct", "ask_iv_pct"]:
        assert not (ch[c] == 0).any(), c
    assert ch["best_bid_price"].isna().sum() == bid_nan
    assert ch["best_ask_price"].isna().sum() == ask_nan
    quoted = ch["best_bid_price"].notna() & ch["best_ask_price"].notna()
    assert (ch.loc[quoted, "best_bid_price"] <= ch.loc[quoted, "best_ask_price"]).all()


@pytest.mark.parametrize("snapshot", ["2020-05-14", "2020-05-21"])
def test_chain_2020_zero_conversion_matches_file(snapshot):
    ch = load_deribit_chain(snapshot)
    raw = raw_csv(CHAIN_FILES[snapshot])
    pairs = {"best_bid_price": "best_bid_price_btc", "best_ask_price": "best_ask_price_btc",
             "bid_iv_pct": "bid_iv_pct", "ask_iv_pct": "ask_iv_pct"}
    for col, raw_col in pairs.items():
        values = raw[raw_col].astype(float)
        np.testing.assert_array_equal(ch[col].isna(), values == 0, err_msg=col)
        np.testing.assert_array_equal(ch[col].dropna(), values[values != 0], err_msg=col)
    # quote sizes are missing exactly where the quote is
    np.testing.assert_array_equal(ch["best_bid_amount"].isna(), ch["best_bid_price"].isna())
    np.testing.assert_array_equal(ch["best_ask_amount"].isna(), ch["best_ask_price"].isna())
    assert (ch["best_bid_amount"].dropna() > 0).all()
    # a zero bid IV next to a real bid exists (no implied vol), and it is NaN too
    assert (ch["bid_iv_pct"].isna() & ch["best_bid_price"].notna()).any()


def test_chain_2025_absent_fields():
    ch = load_deribit_chain("2025-12-31")
    for c in ["gamma", "theta", "rho", "bid_iv_pct", "ask_iv_pct", "best_bid_amount",
              "best_ask_amount", "last_price", "settlement_price", "estimated_delivery_price"]:
        assert ch[c].isna().all(), c
    assert (ch["interest_rate"] == 0.0).all()
    assert ch["volume_24h_usd"].notna().all()
    assert (ch["timestamp"] == ch["snapshot"]).all()
    idx = ch.groupby("currency", observed=True)["index_price"].agg(["min", "max"])
    assert idx.loc["BTC", "min"] >= 88473 and idx.loc["BTC", "max"] <= 88488
    assert idx.loc["ETH", "min"] >= 2970.3 and idx.loc["ETH", "max"] <= 2970.71


@pytest.mark.parametrize("snapshot", ["2020-05-14", "2020-05-21"])
def test_chain_2020_fields(snapshot):
    ch = load_deribit_chain(snapshot)
    assert (ch["interest_rate"] == 0.0).all()
    assert ch["volume_24h_usd"].isna().all()
    for c in ["gamma", "theta", "rho", "delta", "vega", "estimated_delivery_price"]:
        assert ch[c].notna().all(), c
    assert (ch["currency"] == "BTC").all()


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-x / math.sqrt(2.0))


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_chain_units_follow_deribit_black76_conventions(snapshot):
    """Independent check of the documented units: coin prices, IV in percent, Black delta/vega."""
    ch = load_deribit_chain(snapshot)
    F = ch["underlying_price"].to_numpy()
    K = ch["strike"].to_numpy()
    T = ((ch["expiry"] - ch["timestamp"]).dt.total_seconds() / (365.0 * 86400.0)).to_numpy()
    sigma = ch["mark_iv_pct"].to_numpy() / 100.0
    call = (ch["option_type"] == "call").to_numpy()
    sd = sigma * np.sqrt(T)
    d1 = (np.log(F / K) + 0.5 * sd**2) / sd
    d2 = d1 - sd
    usd = np.where(call, F * _norm_cdf(d1) - K * _norm_cdf(d2),
                   K * _norm_cdf(-d2) - F * _norm_cdf(-d1))
    coin = usd / F
    delta = np.where(call, _norm_cdf(d1), _norm_cdf(d1) - 1.0)
    vega = F * np.exp(-0.5 * d1**2) / math.sqrt(2.0 * math.pi) * np.sqrt(T) / 100.0
    assert np.median(np.abs(coin - ch["mark_price"].to_numpy())) < 1e-4
    assert np.median(np.abs(delta - ch["delta"].to_numpy())) < 1e-3
    has_vega = ch["vega"].to_numpy() > 0
    rel_vega = np.abs(vega[has_vega] / ch["vega"].to_numpy()[has_vega] - 1.0)
    assert np.median(rel_vega) < 1e-3


@pytest.mark.parametrize("alias", [
    "2020-05-14", " 2020-05-14 ", "20200514", "20200514T0541Z", "20200514t0541z",
    "2020-05-14T05:41Z",
    pd.Timestamp("2020-05-14"), pd.Timestamp("2020-05-14 23:59", tz="UTC"),
    pd.Timestamp("2020-05-14 07:00", tz="Europe/Berlin"),
    dt.date(2020, 5, 14), dt.datetime(2020, 5, 14, 5, 41), np.datetime64("2020-05-14"),
])
def test_chain_snapshot_aliases(alias):
    pd.testing.assert_frame_equal(load_deribit_chain(alias), load_deribit_chain("2020-05-14"))


@pytest.mark.parametrize("bad", [
    "2021-01-01", "2020-05-15", "2020", "latest", "", None, 20200514,
    pd.Timestamp("2020-05-13 23:00", tz="UTC"), pd.Timestamp("2020-05-14 20:00", tz="US/Pacific"),
])
def test_chain_unknown_snapshot(bad):
    with pytest.raises(ValidationError) as info:
        load_deribit_chain(bad)
    err = info.value
    assert err.field == "snapshot"
    assert str(err).startswith("snapshot")
    for s in SNAPSHOTS:
        assert repr(s) in str(err)


# --------------------------------------------------------------------------------------------------
# Deribit forwards
# --------------------------------------------------------------------------------------------------
def test_forwards():
    fw = load_deribit_forwards()
    assert list(fw.columns) == ["snapshot", "currency", "instrument_name", "kind", "expiry",
                                "forward_from_option_underlying", "futures_last_trade_1m",
                                "index_price"]
    assert len(fw) == 26
    assert fw.groupby(["currency", "kind"], observed=True).size().to_dict() == {
        ("BTC", "future"): 8, ("BTC", "perpetual"): 1, ("BTC", "synthetic"): 4,
        ("ETH", "future"): 8, ("ETH", "perpetual"): 1, ("ETH", "synthetic"): 4}
    assert (fw["snapshot"] == ts("2025-12-31T09:18:28")).all()
    perp = fw["kind"] == "perpetual"
    assert fw.loc[perp, "expiry"].isna().all()
    assert (fw.loc[~perp, "expiry"].dt.hour == 8).all()
    assert fw.loc[perp, "forward_from_option_underlying"].isna().all()
    assert fw.loc[fw["kind"] == "synthetic", "futures_last_trade_1m"].isna().all()
    assert fw.loc[fw["kind"] == "future", "futures_last_trade_1m"].notna().all()
    pd.testing.assert_frame_equal(load_deribit_forwards("20251231T0918Z"), fw)


def test_forwards_agree_with_chain_and_are_in_contango():
    fw = load_deribit_forwards().dropna(subset=["expiry"])
    ch = load_deribit_chain("2025-12-31")
    und = ch.groupby("underlying_index")["underlying_price"].agg(["min", "max"])
    assert set(fw["instrument_name"]) == set(und.index)
    f = fw.set_index("instrument_name")["forward_from_option_underlying"]
    assert ((f >= und.loc[f.index, "min"]) & (f <= und.loc[f.index, "max"])).all()
    for _, curve in fw.sort_values("expiry").groupby("currency", observed=True):
        assert curve["forward_from_option_underlying"].is_monotonic_increasing
        assert (curve["forward_from_option_underlying"] > curve["index_price"]).all()


@pytest.mark.parametrize("bad", ["2020-05-14", "2020-05-21", "2026-01-01", None])
def test_forwards_unknown_snapshot(bad):
    with pytest.raises(ValidationError) as info:
        load_deribit_forwards(bad)
    assert info.value.field == "snapshot"
    assert "'2025-12-31'" in str(info.value)


# --------------------------------------------------------------------------------------------------
# Stress events
# --------------------------------------------------------------------------------------------------
STRESS_DATE_COLUMNS = [
    "anchor_date", "window_start", "window_end", "close_ret_1d_worst_date",
    "low_vs_prev_close_1d_worst_date", "close_ret_7d_worst_end", "peak_date", "trough_date",
    "window_min_low_date", "iv_pre_date", "iv_peak_date",
]
STRESS_TEXT_COLUMNS = ["event_id", "name", "asset", "iv_measure", "liquidations_reported",
                       "iv_reported", "price_source", "sources"]


def test_stress_events_schema():
    ev = load_stress_events()
    assert len(ev) == 14
    assert ev["event_id"].nunique() == 7
    pairs = ev.groupby("event_id")["asset"].apply(lambda a: ",".join(sorted(map(str, a))))
    assert (pairs == "BTC,ETH").all()
    assert sorted(datetime_columns(ev)) == sorted(STRESS_DATE_COLUMNS)
    for c in ev.columns:
        if c not in STRESS_DATE_COLUMNS and c not in STRESS_TEXT_COLUMNS:
            assert ev[c].dtype == np.float64, c
    assert isinstance(ev["asset"].dtype, pd.CategoricalDtype)
    assert (ev["window_start"] <= ev["anchor_date"]).all()
    assert (ev["anchor_date"] <= ev["window_end"]).all()
    for c in ["close_ret_1d_worst", "low_vs_prev_close_1d_worst", "close_ret_7d_worst",
              "peak_to_trough_7d"]:
        assert ev[c].between(-1, 0).all(), c  # fractions, not percent
    assert (ev["low_vs_prev_close_1d_worst"] <= ev["close_ret_1d_worst"] + 1e-12).all()
    # the IV columns exist together or not at all
    np.testing.assert_array_equal(ev["iv_pre"].isna(), ev["iv_measure"].isna())
    iv = ev.dropna(subset=["iv_pre"])
    np.testing.assert_allclose(iv["iv_change_pts"], iv["iv_peak"] - iv["iv_pre"], atol=0.011)


def test_stress_events_recomputed_from_prices():
    """README: price statistics are computed from prices_daily.csv; check three of them."""
    px = load_prices()
    for _, e in load_stress_events().iterrows():
        p = px[px["symbol"] == e["asset"]].set_index("date")
        window = p.loc[e["window_start"]:e["window_end"]]
        assert p.loc[e["window_start"] - pd.Timedelta(days=1), "close"] == pytest.approx(
            e["pre_close"], rel=1e-5)
        assert window["low"].min() == pytest.approx(e["window_min_low"], rel=1e-5)
        assert window["low"].idxmin() == e["window_min_low_date"]
        assert window["close"].iloc[-1] == pytest.approx(e["window_end_close"], rel=1e-5)


def test_stress_events_readme_values():
    ev = load_stress_events().set_index(["event_id", "asset"])
    row = ev.loc[("tariff_liquidations_2025", "BTC")]
    assert row["window_min_low"] == pytest.approx(104582, abs=1)
    assert row["window_min_low_date"] == ts("2025-10-10")
    assert row["liquidations_usd_reported"] == pytest.approx(19.13e9)
    row = ev.loc[("black_thursday_2020", "BTC")]
    assert row["close_ret_1d_worst"] == pytest.approx(-0.372, abs=5e-4)
    assert row["binance_btcusdt_window_min_low"] == pytest.approx(3782.13)
    assert ev.loc[("black_thursday_2020", "ETH"), "binance_btcusdt_window_min_low"] != \
        ev.loc[("black_thursday_2020", "ETH"), "binance_btcusdt_window_min_low"]  # NaN for ETH


# --------------------------------------------------------------------------------------------------
# Cache and copies
# --------------------------------------------------------------------------------------------------
LOADERS = {
    "prices": lambda: load_prices(),
    "prices_binance": lambda: load_prices("binance"),
    "funding_deribit": lambda: load_funding("deribit"),
    "dvol": load_dvol,
    "chain_2020": lambda: load_deribit_chain("2020-05-14"),
    "chain_2025": lambda: load_deribit_chain("2025-12-31"),
    "forwards": load_deribit_forwards,
    "stress": load_stress_events,
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_returned_frames_are_independent_of_the_cache(name):
    load = LOADERS[name]
    first = load()
    pristine = first.copy(deep=True)
    second = load()
    assert first is not second
    pd.testing.assert_frame_equal(first, second)
    num = first.select_dtypes("number").columns[0]
    assert not np.shares_memory(first[num].to_numpy(), second[num].to_numpy())
    # mutate every way a notebook user might
    first.loc[0, num] = -12345.0
    first.iloc[1:3, 0] = first.iloc[0, 0]
    first["extra"] = 1
    first.columns = [f"renamed_{c}" for c in first.columns]
    del first["renamed_extra"]
    third = load()
    pd.testing.assert_frame_equal(third, pristine)
    pd.testing.assert_frame_equal(second, pristine)


def test_loaders_are_cached():
    load_funding("deribit")
    before = ds._funding.cache_info().hits
    load_funding("deribit")
    assert ds._funding.cache_info().hits == before + 1


def test_changed_file_header_fails_loudly(tmp_path, monkeypatch):
    bad = tmp_path / "dvol_btc_daily.csv"
    bad.write_text("date,dvol,source\n2021-03-24,95.04,isayggyo\n")
    monkeypatch.setattr(ds, "_resource", lambda file: tmp_path / file)
    ds._dvol.cache_clear()
    try:
        with pytest.raises(DataError, match="dvol_btc_daily.csv"):
            load_dvol()
    finally:
        ds._dvol.cache_clear()


def test_unexpected_label_fails_loudly(tmp_path, monkeypatch):
    bad = tmp_path / "dvol_btc_daily.csv"
    bad.write_text("date,dvol_close,source\n2021-03-24,95.04,somebody\n")
    monkeypatch.setattr(ds, "_resource", lambda file: tmp_path / file)
    ds._dvol.cache_clear()
    try:
        with pytest.raises(DataError, match="somebody"):
            load_dvol()
    finally:
        ds._dvol.cache_clear()


# --------------------------------------------------------------------------------------------------
# list_datasets, data_path, what is shipped
# --------------------------------------------------------------------------------------------------
def shipped_files() -> set[str]:
    folder = importlib.resources.files("pmnb.datasets") / "data"
    return {p.name for p in folder.iterdir() if p.is_file()}


def test_list_datasets():
    ld = list_datasets()
    assert list(ld.columns) == ["name", "file", "rows", "description"]
    assert ld["rows"].dtype == np.int64
    assert ld["name"].is_unique and ld["file"].is_unique
    assert set(ld["file"]) == {f for f in shipped_files() if f.endswith(".csv")}
    assert (ld["file"] == ld["name"] + ".csv").all()
    assert ld["description"].str.len().gt(20).all()


def test_list_datasets_rows_match_the_loaders():
    rows = list_datasets().set_index("name")["rows"]
    expected = {
        "prices_daily": len(load_prices()),
        "prices_btcusdt_binance_daily": len(load_prices("binance")),
        "funding_btcusdt_binance_8h": len(load_funding("binance")),
        "funding_xbtusd_bitmex_8h": len(load_funding("bitmex")),
        "funding_btc_perpetual_deribit_1h": len(load_funding("deribit")),
        "dvol_btc_daily": len(load_dvol()),
        "deribit_btc_options_20200514T0541Z": len(load_deribit_chain("2020-05-14")),
        "deribit_btc_options_20200521T2319Z": len(load_deribit_chain("2020-05-21")),
        "deribit_options_20251231T0918Z": len(load_deribit_chain("2025-12-31")),
        "deribit_forwards_20251231T0918Z": len(load_deribit_forwards()),
        "stress_events": len(load_stress_events()),
        "demo_accounts": len(ds.load_demo_accounts()[0]),
        "demo_collateral": len(ds.load_demo_accounts()[1]),
        "demo_book": len(ds.load_demo_book()),
    }
    assert rows.to_dict() == expected


@pytest.mark.parametrize("name", ["prices_daily", "prices_daily.csv", "stress_events",
                                  "deribit_options_20251231T0918Z.csv"])
def test_data_path(name):
    p = data_path(name)
    assert isinstance(p, pathlib.Path)
    assert p.is_file()
    assert p.name == (name if name.endswith(".csv") else name + ".csv")
    assert p.parent.name == "data" and p.parent.parent.name == "datasets"


@pytest.mark.parametrize("bad", ["prices", "nope.csv", "", None, "../errors.py"])
def test_data_path_unknown_name(bad):
    with pytest.raises(ValidationError) as info:
        data_path(bad)
    assert info.value.field == "name"
    assert "'prices_daily'" in str(info.value)


def test_readme_is_shipped_and_attributes_every_file():
    readme = data_path("README.md")
    assert readme == data_path("README")
    text = readme.read_text(encoding="utf-8")
    for f in list_datasets()["file"]:
        assert f"`{f}`" in text or f"**`{f}`**" in text, f
    # attribution and licence caveats kept
    assert "Licence warning" in text
    assert "demo" in text and "attribution" in text
    for repo in ["nascimento-fisica/Poeira_Cantor_Bin", "sky1241/HSBC-algo-genetic",
                 "nearridge/Hehmeyer", "schepal/deribit_data_collector",
                 "znmahbub/SVCJ-Deribit-Inverse-Options-Pricer", "isayggyo/new"]:
        assert repo in text, repo


def test_macro_daily_is_not_shipped():
    assert "macro_daily.csv" not in shipped_files()
    assert "macro_daily" not in set(list_datasets()["name"])
    for name in ["macro_daily", "macro_daily.csv"]:
        with pytest.raises(ValidationError, match="user-supplied") as info:
            data_path(name)
        assert info.value.field == "name"
    text = data_path("README.md").read_text(encoding="utf-8")
    assert "## Macro series: `macro_daily.csv` — NOT SHIPPED" in text
    assert "deliberately NOT shipped" in text


def test_loaders_work_from_a_zip_import(tmp_path):
    """importlib.resources, not the source tree: the package imported from a zip archive."""
    src = pathlib.Path(ds.__file__).parent
    archive = tmp_path / "pmnb_zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pmnb/__init__.py", "")
        zf.write(src.parent / "errors.py", "pmnb/errors.py")
        zf.write(src / "__init__.py", "pmnb/datasets/__init__.py")
        for f in (src / "data").iterdir():
            zf.write(f, f"pmnb/datasets/data/{f.name}")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(archive)!r})
        import pmnb.datasets as ds
        assert ds.__file__.startswith({str(archive)!r}), ds.__file__
        p = ds.data_path("dvol_btc_daily")
        assert p.is_file() and not str(p).startswith({str(archive)!r}), p
        assert len(ds.load_dvol()) == 1769
        assert int(ds.list_datasets()["rows"].sum()) > 40000
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
