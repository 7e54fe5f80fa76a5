"""pmnb.market: snapshots, forward curves, provenance and staleness."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import pmnb
from pmnb import Market, StaleDataError, ValidationError
from pmnb.market import FlatVol, ForwardCurve, year_fraction


def test_forward_curve_is_log_linear_with_flat_carry_beyond():
    c = ForwardCurve("BTC", 100.0, [1.0, 0.25], [104.0, 101.0])  # unsorted input is sorted
    np.testing.assert_array_equal(c.T, [0.25, 1.0])
    # at quotes: exact; between: geometric interpolation by hand
    np.testing.assert_allclose(c.forward([0.25, 1.0]), [101.0, 104.0], rtol=1e-15)
    t = 0.5
    w = (t - 0.25) / 0.75
    np.testing.assert_allclose(c.forward(t), 101.0 ** (1 - w) * 104.0 ** w, rtol=1e-14)
    np.testing.assert_allclose(c.forward(0.1), 100.0 * (101.0 / 100.0) ** (0.1 / 0.25), rtol=1e-14)
    slope = np.log(104 / 101) / 0.75
    np.testing.assert_allclose(c.forward(3.0), 104.0 * np.exp(slope * 2.0), rtol=1e-14)
    assert c.forward(0.0) == 100.0


@pytest.mark.parametrize("kw,match", [
    (dict(spot=-1.0, T=[1.0], forwards=[1.0]), "spot"),
    (dict(spot=1.0, T=[0.0], forwards=[1.0]), r"T\[BTC\]: row 0"),
    (dict(spot=1.0, T=[1.0, 2.0], forwards=[1.0, np.nan]), r"forwards\[BTC\]: row 1"),
    (dict(spot=1.0, T=[1.0, 1.0], forwards=[1.0, 2.0]), "same expiry"),
    (dict(spot=1.0, T=[1.0], forwards=[1.0, 2.0]), "2 values for 1 expiries"),
])
def test_forward_curve_validation(kw, match):
    with pytest.raises(ValidationError, match=match):
        ForwardCurve("BTC", **kw)


def test_from_deribit_matches_the_shipped_files():
    m = Market.from_deribit("2025-12-31", fit_vols=False)
    fwd = pmnb.datasets.load_deribit_forwards("2025-12-31")
    quoted = fwd[fwd.expiry.notna()]
    for _, row in quoted.iterrows():
        assert m.forward(str(row.currency), row.expiry) == pytest.approx(
            row.forward_from_option_underlying, rel=1e-13)
    chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    assert m.spot("BTC") == pytest.approx(chain[chain.currency == "BTC"].index_price.median())
    assert m.mark("deribit", "BTC-PERPETUAL") == 88492.0
    assert "nearest 1-minute trade" in m.provenance["mark:deribit:BTC-PERPETUAL"].source
    # 2020 snapshots have no forwards file: the curve comes from the chain's underlying prices
    old = Market.from_deribit("2020-05-14", fit_vols=False)
    c = pmnb.datasets.load_deribit_chain("2020-05-14")
    med = c.groupby("expiry").underlying_price.median()
    for expiry, F in med.items():
        assert old.forward("BTC", expiry) == pytest.approx(F, rel=1e-13)
    with pytest.raises(ValidationError, match="currencies"):
        Market.from_deribit("2025-12-31", currencies=("SOL",), fit_vols=False)


def test_missing_fields_name_what_is_missing():
    m = Market.from_dict("2026-01-01", spots={"BTC": 90_000.0})
    for call, what in ((lambda: m.spot("ETH"), "spot"), (lambda: m.forward("ETH", "2026-02-01"), "forward"),
                       (lambda: m.vol("BTC", 1.0, "2026-02-01"), "vol"),
                       (lambda: m.mark("binance", "BTCUSDT"), "mark")):
        with pytest.raises(ValidationError, match=f"market: no {what} for") as ei:
            call()
        assert ei.value.field == what
    with pytest.raises(ValidationError, match="before the market time"):
        m.forward("BTC", "2025-12-01")
    with pytest.raises(ValidationError, match="rate"):
        dataclasses.replace(m, default_rate=None).rate("USD")


def test_staleness_is_flagged_never_silent():
    m = Market.from_dict("2026-01-01T01:00Z", spots={"BTC": 1.0}, as_of="2026-01-01T00:00Z")
    m.require_fresh("2h")
    with pytest.raises(StaleDataError, match=r"spot:BTC is 0 days 01:00:00 old"):
        m.require_fresh("10min")
    m.require_fresh("10min", allow_stale=True)
    frame = m.provenance_frame()
    assert frame.set_index("key").loc["spot:BTC", "age"] == pd.Timedelta("1h")


def test_market_is_immutable_and_substitutions_are_recorded():
    m = Market.from_dict("2026-01-01", spots={"BTC": 1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.timestamp = pd.Timestamp("2027-01-01", tz="UTC")
    with pytest.raises(TypeError):
        m.spots["BTC"] = 2.0
    m2 = m.with_marks({"hyperliquid:BTC": 1.0}, source="deribit index", note="substituted")
    assert "mark:hyperliquid:BTC" not in m.provenance
    assert m2.provenance["mark:hyperliquid:BTC"].note == "substituted"


def test_year_fraction_and_flat_vol():
    assert year_fraction("2026-01-01T00:00Z", "2026-01-01T06:00Z") == pytest.approx(0.25 / 365)
    np.testing.assert_allclose(year_fraction("2026-01-01", ["2026-01-02", "2027-01-01"]),
                               [1 / 365, 1.0])
    with pytest.raises(ValidationError, match="sigma"):
        FlatVol(-0.1)
    with pytest.raises(ValidationError, match="timestamp"):
        Market.from_dict("not a date", spots={"BTC": 1.0})


def test_shocked_market_moves_prices_together_and_records_it():
    m = Market.from_dict("2026-01-01", spots={"BTC": 100.0, "USDT": 1.0},
                         forwards={"BTC": {"2026-07-02": 104.0}}, vols={"BTC": 0.5},
                         marks={"binance:BTCUSDT": 100.5})
    s = m.shocked(0.25, -0.1)
    assert s.spot("BTC") == 125.0 and s.spot("USDT") == 1.0
    assert s.forward("BTC", "2026-07-02") == pytest.approx(130.0, rel=1e-14)
    assert s.forward("BTC", "2026-04-02") == pytest.approx(1.25 * m.forward("BTC", "2026-04-02"),
                                                           rel=1e-14)
    assert s.mark("binance", "BTCUSDT") == pytest.approx(125.625)
    assert float(s.vol("BTC", 100.0, "2026-06-01")) == pytest.approx(0.4)
    assert float(m.shocked(0.0, -0.9).vol("BTC", 100.0, "2026-06-01")) == 0.0  # floored
    assert "shocked: spot +0.25" in s.provenance["spot:BTC"].note
    assert m.spot("BTC") == 100.0  # the original is untouched
    with pytest.raises(ValidationError, match="spot_shock"):
        m.shocked(-1.0)


def test_from_deribit_loads_the_last_settled_funding_with_its_age():
    funding = pmnb.datasets.load_funding("binance")
    m = Market.from_deribit("2025-12-31", fit_vols=False)
    last = funding[funding["time"] <= m.timestamp].iloc[-1]
    assert m.funding["binance:BTCUSDT"] == last["funding_rate"]
    assert m.funding_hours["binance:BTCUSDT"] == 8.0
    assert m.age("funding:binance:BTCUSDT") == m.timestamp - last["time"]
    assert "deribit:BTC-PERPETUAL" not in m.funding     # the shipped hourly history ends in 2021
    with pytest.raises(StaleDataError, match="funding:binance:BTCUSDT"):
        m.require_fresh("1h", keys=["funding:binance:BTCUSDT"])
    old = Market.from_deribit("2020-05-14", fit_vols=False)
    hourly = pmnb.datasets.load_funding("deribit")
    assert old.funding["deribit:BTC-PERPETUAL"] == hourly[hourly["time"] <= old.timestamp].iloc[-1][
        "funding_rate"]
    assert old.funding_hours["deribit:BTC-PERPETUAL"] == 1.0
