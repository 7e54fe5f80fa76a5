"""SPAN-style margin (reference/margin.md §6.1): scenario table, aggregation on constructed risk
arrays, charges, and full revaluation of a book against pmnb.price."""

import numpy as np
import pandas as pd
import pytest

import pmnb
import pmnb.margin
from pmnb.errors import ValidationError
from pmnb.margin.span import (
    N_SCENARIOS,
    Span,
    SpanParams,
    aggregate,
    future_risk_arrays,
    intermonth_spreads,
    risk_arrays,
    scenario_table,
)

TS = "2026-01-01T08:00Z"


def _market(**kw):
    return pmnb.Market.from_dict(TS, spots={"BTC": 100_000.0}, vols={"BTC": 0.5}, **kw)


def _book(symbols, sizes, entries=None):
    n = len(symbols)
    return pd.DataFrame({"account": ["a"] * n, "venue": ["deribit"] * n, "symbol": symbols,
                         "size": sizes, "entry_price": entries or [np.nan] * n})


# --- the scenario table --------------------------------------------------------------------
def test_scenario_order_and_count():
    p = SpanParams(price_scan_range=0.12, vol_scan_range=0.08, extreme_move_multiple=3.0,
                   extreme_cover_fraction=0.35)
    tab = scenario_table(p)
    assert len(tab) == N_SCENARIOS == 16 and tab.index.tolist() == list(range(1, 17))
    thirds = [0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3]     # CME order (margin.md §6.1)
    np.testing.assert_allclose(tab["price_scans"].to_numpy()[:14], np.array(thirds) / 3.0)
    assert tab["vol_scans"].tolist() == [1, -1] * 7 + [0, 0]
    np.testing.assert_allclose(tab["price_move"], tab["price_scans"] * 0.12, rtol=1e-15)
    np.testing.assert_allclose(tab["price_move"].to_numpy()[14:], [0.36, -0.36], rtol=1e-15)
    np.testing.assert_allclose(tab["vol_move"], tab["vol_scans"] * 0.08, rtol=1e-15)
    assert tab["weight"].tolist() == [1.0] * 14 + [0.35, 0.35]
    assert tab["extreme"].sum() == 2 and tab["label"].is_unique


def test_params_defaults_are_structure_and_cite_cme():
    p = SpanParams()
    assert p.extreme_move_multiple == 3.0 and p.extreme_cover_fraction == 0.35
    assert p.maintenance_ratio == 1.0 and p.rule_version
    assert "cme" in p.source.lower() and "margin.md" in p.source
    assert pmnb.margin.get("span").params == p and "span" in pmnb.margin.models()
    with pytest.raises(ValidationError, match="extreme_move_multiple"):
        scenario_table(SpanParams(price_scan_range=0.4, extreme_move_multiple=3.0))
    with pytest.raises(ValidationError, match="price_scan_range"):
        scenario_table(SpanParams(price_scan_range={"ETH": 0.1}), "BTC")
    assert scenario_table(SpanParams(price_scan_range={"ETH": 0.1, "*": 0.2}), "BTC")[
        "price_move"].iloc[10] == pytest.approx(0.2)


# --- aggregation on user-supplied arrays ---------------------------------------------------
def test_worst_of_sum_differs_from_sum_of_worsts():
    a = np.zeros((2, 16))
    a[0] = np.linspace(-8.0, 7.0, 16)          # long future-like leg: loses when price falls
    a[1] = -a[0] + 1.0                         # its hedge, slightly worse than flat
    a[1, 15] = 30.0                            # the hedge blows up in the −extreme scenario
    q = np.array([2.0, 2.0])
    r = aggregate(a, q, SpanParams(extreme_cover_fraction=0.35))
    w = np.r_[np.ones(14), 0.35, 0.35]
    summed = w * (q @ a)
    assert r.scanning_risk == pytest.approx(summed.max())
    sum_of_worsts = sum(max((w * qi * ai).max(), 0.0) for qi, ai in zip(q, a))
    assert r.scanning_risk < sum_of_worsts - 1.0
    assert r.worst["*"] == int(np.argmax(summed)) + 1
    assert r.total == r.scanning_risk       # no charges by default


def test_signed_quantities_and_loss_positive():
    a = np.arange(16, dtype=float)[None, :] - 5.0
    assert aggregate(a, [1.0]).scanning_risk == pytest.approx(8.0)    # 14; extremes × 0.35
    assert aggregate(a, [-1.0]).scanning_risk == pytest.approx(5.0)        # scenario 1
    assert aggregate(-np.ones((1, 16)), [1.0]).scanning_risk == 0.0        # gains: no margin
    r = aggregate(np.vstack([a, a]), [1.0, 1.0], underlyings=["BTC", "ETH"])
    assert r.total == pytest.approx(16.0) and set(r.by_underlying) == {"BTC", "ETH"}
    with pytest.raises(ValidationError, match="risk_arrays"):
        aggregate(np.zeros((2, 15)), [1.0, 1.0])
    with pytest.raises(ValidationError, match="quantities"):
        aggregate(np.zeros((2, 16)), [1.0, 1.0, 1.0])


def test_short_option_minimum_and_spread_charge_in_aggregate():
    a = np.zeros((3, 16))
    a[0, :] = 0.1
    p = SpanParams(short_option_minimum=5.0, intermonth_spread_charge=2.0)
    r = aggregate(a, [-3.0, 1.0, -1.0], p, is_option=[True, False, False],
                  deltas=[0.0, 1.0, 1.0], tiers=["MAR", "MAR", "JUN"])
    assert r.short_option_minimum == 15.0 and r.n_spreads["*"] == 1.0 and r.spread_charge == 2.0
    assert r.total == 15.0                         # max(scan 0 + 2, 15): the minimum binds
    assert intermonth_spreads([1.0, -1.0], ["MAR", "MAR"]) == 0.0       # same month: no spread
    assert intermonth_spreads([3.0, -1.0, -0.5], ["A", "B", "C"]) == 1.5


# --- full book -----------------------------------------------------------------------------
def test_option_risk_arrays_equal_pmnb_price_at_shocked_inputs():
    m = _market()
    syms = ["BTC-27MAR26-100000-C", "BTC-27MAR26-80000-P", "BTC-26JUN26-130000-C"]
    book = _book(syms, [1.0, -2.0, 3.0])
    p = SpanParams(price_scan_range=0.15, vol_scan_range=0.12, lookahead_days=1.0)
    A = risk_arrays(book, m, p)
    assert A.shape == (3, 16) and A.index.tolist() == [0, 1, 2]
    tab = scenario_table(p)
    for i, sym in enumerate(syms):
        _, _, K, cp = sym.split("-")
        K = float(K)
        expiry = pd.Timestamp(sym.split("-")[1] + " 08:00", tz="UTC")
        T = (expiry - pd.Timestamp(TS)).total_seconds() / (365.0 * 86400.0)
        F = float(np.atleast_1d(m.forward("BTC", pd.DatetimeIndex([expiry])))[0])
        sigma = float(np.atleast_1d(m.vol("BTC", np.array([K]), pd.DatetimeIndex([expiry])))[0])
        otype = "call" if cp == "C" else "put"
        base = pmnb.price(F, K, T, sigma, option_type=otype, settlement="inverse")
        shocked = pmnb.price(F * (1.0 + tab["price_move"].to_numpy()), K, T - 1.0 / 365.0,
                             np.maximum(sigma + tab["vol_move"].to_numpy(), 0.0),
                             option_type=otype, settlement="inverse")
        expect = -(shocked - base)               # one long contract (contract size 1 coin)
        np.testing.assert_allclose(A.iloc[i].to_numpy(), expect, rtol=1e-9,
                                   atol=1e-9 * float(np.abs(expect).max()))


def test_futures_closed_form_and_report():
    m = _market()
    book = _book(["BTC-27MAR26", "BTC-27MAR26-100000-C"], [10_000.0, -1.0], [100_000.0, 0.05])
    p = SpanParams(price_scan_range=0.1)
    A = risk_arrays(book, m, p)
    F = float(np.atleast_1d(m.forward("BTC", pd.DatetimeIndex([pd.Timestamp("2026-03-27 08:00",
                                                                             tz="UTC")])))[0])
    s = scenario_table(p)["price_move"].to_numpy()
    np.testing.assert_allclose(A.iloc[0], -(10.0 / F) * (1 - 1 / (1 + s)), rtol=1e-12)
    np.testing.assert_allclose(A.iloc[0], future_risk_arrays(F, 10.0, p, settlement="inverse")[0])
    r = pmnb.margin.compute(book, m, pmnb.margin.get("span", price_scan_range=0.1,
                                                    maintenance_ratio=0.8))
    res = aggregate(A.to_numpy(), book["size"].to_numpy(), p)
    assert r.initial == pytest.approx(res.total, rel=1e-12)
    assert r.maintenance == pytest.approx(0.8 * r.initial, rel=1e-12)
    assert r.currency == "BTC" and len(r.scenarios) == 16
    assert r.worst_scenario == r.scenarios["label"].iloc[int(np.argmax(r.scenarios["loss"]))]
    assert r.positions["initial"].sum() == pytest.approx(r.initial, rel=1e-12)
    per_u = pmnb.margin.compute(book, m, pmnb.margin.get("span", price_scan_range={"BTC": 0.1}))
    assert per_u.initial == pytest.approx(r.initial, rel=1e-15)


def test_short_option_minimum_binds_far_otm_short():
    m = _market()
    book = _book(["BTC-27MAR26-400000-C"], [-5.0])
    r = pmnb.margin.compute(book, m, pmnb.margin.get("span", short_option_minimum=0.002))
    scan = float(r.scenarios["loss"].max())
    assert 0.0 <= scan < 0.01                        # far OTM: tiny scanning risk
    assert r.initial == pytest.approx(5 * 0.002, rel=1e-12)
    assert any("short option minimum binds" in n for n in r.notes)


def test_calendar_spread_charge():
    m = _market()
    book = _book(["BTC-27MAR26", "BTC-26JUN26"], [10_000.0, -10_000.0], [1e5, 1e5])
    fwd = m.forward("BTC", pd.DatetimeIndex([pd.Timestamp("2026-03-27 08:00", tz="UTC"),
                                             pd.Timestamp("2026-06-26 08:00", tz="UTC")]))
    no = pmnb.margin.compute(book, m, "span")
    charged = pmnb.margin.compute(book, m, pmnb.margin.get("span", intermonth_spread_charge=0.01))
    q_coin = 100_000.0 / np.asarray(fwd, dtype=float)  # each leg's coin delta (USD 100k / F)
    n_spreads = min(q_coin)
    assert charged.initial - no.initial == pytest.approx(0.01 * n_spreads, rel=1e-9)
    same = _book(["BTC-27MAR26", "BTC-27MAR26"], [10_000.0, -10_000.0], [1e5, 1e5])
    assert pmnb.margin.compute(same, m, pmnb.margin.get(
        "span", intermonth_spread_charge=0.01)).initial == pytest.approx(0.0, abs=1e-15)


def test_unsupported_kind_raises():
    book = pd.DataFrame({"account": ["d"], "venue": ["deribit"], "symbol": ["BTC_USDC"],
                         "kind": ["spot"], "underlying": ["BTC"], "quote": ["USDC"],
                         "settlement": ["linear"], "size": [1.0]})
    with pytest.raises(ValidationError, match="option, future, perpetual"):
        pmnb.margin.compute(book, _market(), "span")
    with pytest.raises(ValidationError, match="option, future, perpetual"):
        risk_arrays(book, _market())
    assert Span.kinds == ("option", "future", "perpetual")
