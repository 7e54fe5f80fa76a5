"""Deribit standard margin: the vectors of reference/margin.md §1.1–1.2, and an account."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pmnb
import pmnb.margin
from pmnb.errors import ValidationError
from pmnb.margin.deribit_standard import (
    DEFAULT_FUTURES,
    DeribitStandard,
    FuturesRates,
    futures_margin,
    short_option_margin,
)

BTC = DEFAULT_FUTURES["BTC"]
SOL = DEFAULT_FUTURES["SOL"]


# --- §1.1 futures and perpetuals: D1–D7 ([P] unless noted) ----------------------------------
@pytest.mark.parametrize("vid, rates, price, Q, im_rate, im_coin, im_quote, mm_rate, mm_coin, "
                         "mm_quote", [
    ("D1", BTC, 100_000, 0.0, 0.02, 0.0, 0.0, 0.01, 0.0, 0.0),                       # [P]
    ("D2", BTC, 100_000, 25.0, 0.02125, 0.53125, 53_125, 0.01125, 0.28125, 28_125),  # [P]
    ("D3", BTC, 100_000, 350.0, 0.0375, 13.125, 1_312_500, 0.0275, 9.625, 962_500),  # IM [P] MM [C]
    ("D4", SOL, 200, 25.0, 0.040125, 1.003125, 200.625, 0.020125, 0.503125, 100.625),  # [P]
    ("D5", SOL, 200, 6_000.0, 0.07, 420.0, 84_000, 0.05, 300.0, 60_000),            # IM [P] MM [C]
])
def test_futures_vectors(vid, rates, price, Q, im_rate, im_coin, im_quote, mm_rate, mm_coin,
                         mm_quote):
    im, mm = futures_margin(Q, rates)
    assert rates.im_base + Q * rates.im_slope == pytest.approx(im_rate, rel=1e-12)
    assert rates.mm_base + Q * rates.mm_slope == pytest.approx(mm_rate, rel=1e-12)
    assert float(im) == pytest.approx(im_coin, rel=1e-12, abs=1e-15)
    assert float(mm) == pytest.approx(mm_coin, rel=1e-12, abs=1e-15)
    assert float(im) * price == pytest.approx(im_quote, rel=1e-12, abs=1e-12)
    assert float(mm) * price == pytest.approx(mm_quote, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("vid, Q, im", [("D6", 25.0, 0.53125), ("D7", 350.0, 13.125)])
def test_legacy_futures_im_vectors(vid, Q, im):
    # legacy spec: 2.0% + 0.5% per 100 BTC: same IM as today's BTC rates [P]
    assert float(futures_margin(Q, BTC)[0]) == pytest.approx(im, rel=1e-12)
    legacy = FuturesRates(0.02, 0.005 / 100, 0.015, 0.005 / 100)
    assert float(futures_margin(Q, legacy)[0]) == pytest.approx(im, rel=1e-12)


# --- §1.2 inverse options: T1–T9 (all [C]; T8/T9 match a [3P] Lean test) ------------------
OPTION_VECTORS = [
    ("T1", "call", 100_000, 110_000, 0.010, 0.110, 0.085, 11_000, 8_500),
    ("T2", "call", 100_000, 105_000, 0.020, 0.120, 0.095, 12_000, 9_500),
    ("T3", "call", 100_000, 90_000, 0.120, 0.270, 0.195, 27_000, 19_500),
    ("T4", "put", 100_000, 95_000, 0.015, 0.115, 0.090, 11_500, 9_000),
    ("T5", "put", 100_000, 100_000, 0.040, 0.190, 0.115, 19_000, 11_500),
    ("T6", "put", 40_000, 100_000, 1.500, 1.650, 1.6125, 66_000, 64_500),
    ("T7", "put", 25_000, 100_000, 3.000, 3.225, 3.225, 80_625, 80_625),
    ("T8", "call", 10_000, 9_000, 0.025, 0.175, 0.100, 1_750, 1_000),
    ("T9", "put", 10_000, 9_000, 0.025, 0.125, 0.100, 1_250, 1_000),
]


@pytest.mark.parametrize("vid, typ, F, K, m, im, mm, im_usd, mm_usd", OPTION_VECTORS)
def test_option_vectors(vid, typ, F, K, m, im, mm, im_usd, mm_usd):
    a, b = short_option_margin(typ, K, F, m)
    assert float(a) == pytest.approx(im, abs=1e-12)
    assert float(b) == pytest.approx(mm, abs=1e-12)
    assert float(a) * F == pytest.approx(im_usd, abs=1e-6)
    assert float(b) * F == pytest.approx(mm_usd, abs=1e-6)
    # through the model: a short of 3 contracts needs 3x; a long needs nothing
    a3, b3 = DeribitStandard().option_margin(typ, K, F, m, -3.0)
    assert (float(a3), float(b3)) == pytest.approx((3 * im, 3 * mm), abs=1e-12)
    assert DeribitStandard().option_margin(typ, K, F, m, 2.0) == (0.0, 0.0)


def test_option_vectors_vectorised():
    typ, F, K, m, im, mm = (np.array([v[i] for v in OPTION_VECTORS]) for i in range(1, 7))
    a, b = short_option_margin(typ, K, F, m)
    np.testing.assert_allclose(a, im.astype(float), atol=1e-12)
    np.testing.assert_allclose(b, mm.astype(float), atol=1e-12)


def test_long_options_legacy_mark_rule():
    mdl = pmnb.margin.get("deribit.standard", long_options="mark")
    im, mm = mdl.option_margin("call", 110_000, 100_000, 0.01, 2.0)
    assert (float(im), float(mm)) == pytest.approx((0.02, 0.02))
    with pytest.raises(ValidationError, match="long_options"):
        pmnb.margin.get("deribit.standard", long_options="half").option_margin(
            "call", 1, 1, 0.1, 1.0)


# --- an account, computed by hand ---------------------------------------------------------
EXPIRY = "2026-03-27T08:00Z"
F_MAR = 101_000.0


def _market(perp=100_000.0):
    return pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0, "SOL": 200.0},
                                 forwards={"BTC": {EXPIRY: F_MAR}}, vols={"BTC": 0.5},
                                 marks={"deribit:BTC-PERPETUAL": perp,
                                        "deribit:BTC_USDC-PERPETUAL": 100_000.0,
                                        "deribit:SOL_USDC-PERPETUAL": 200.0})


def _black76_coin(typ, F, K, T, sigma):
    """Undiscounted (r = 0) Black-76 price divided by F: the inverse option's coin price."""
    N = lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
    d1 = (math.log(F / K) + 0.5 * sigma**2 * T) / (sigma * math.sqrt(T))
    d2 = d1 - sigma * math.sqrt(T)
    usd = F * N(d1) - K * N(d2) if typ == "call" else K * N(-d2) - F * N(-d1)
    return usd / F


def _book():
    return pd.DataFrame({
        "account": ["d"] * 3, "venue": ["deribit"] * 3,
        "symbol": ["BTC-PERPETUAL", "BTC-27MAR26-90000-P", "BTC-27MAR26-120000-C"],
        "size": [250_000.0, -2.0, 1.0],        # 2.5 M USD of perp = 25 BTC at 100,000
        "entry_price": [80_000.0, 0.03, 0.02]})


COLL = pd.DataFrame({"account": ["d", "d"], "asset": ["BTC", "USDC"], "balance": [1.0, 500.0]})


def test_compute_btc_account_by_hand():
    m = _market()
    r = pmnb.margin.compute(_book(), m, "deribit.standard", account="d", collateral=COLL)
    T = 85.0 / 365.0
    put = _black76_coin("put", F_MAR, 90_000, T, 0.5)
    call = _black76_coin("call", F_MAR, 120_000, T, 0.5)
    # perp: 25 BTC -> D2 rates; short put: OTM 11,000 -> 0.15 - 0.1089 < 0.10, floor binds
    im = 0.53125 + 2 * (0.10 + put)
    mm = 0.28125 + 2 * (0.075 + put)
    upnl = 2_500_000 * (1 / 80_000 - 1 / 100_000)            # 6.25 BTC
    equity = 1.0 + upnl - 2 * put + call                       # USDC collateral is segregated
    assert r.currency == "BTC" and r.usd_per_unit == 100_000.0
    assert r.initial == pytest.approx(im, rel=1e-9)
    assert r.maintenance == pytest.approx(mm, rel=1e-9)
    assert r.equity == pytest.approx(equity, rel=1e-9)
    assert r.positions["initial"].tolist() == pytest.approx([0.53125, 2 * (0.10 + put), 0.0])
    assert r.positions["reference_price"].tolist() == pytest.approx([100_000, F_MAR, F_MAR])
    g = pmnb.book.position_greeks(pmnb.book.validate_positions(_book()), m)["delta_coin"]
    assert r.delta_total["BTC"] == pytest.approx(float(g.sum()))
    assert float(g.iloc[0]) == pytest.approx(25.0)
    assert any("USDC" in n for n in r.notes)
    s = r.summary()
    assert s["initial_usd"] == pytest.approx(im * 100_000, rel=1e-9)


def test_coin_price_index_option():
    m = _market(perp=125_000.0)      # mark above index: 20 BTC at mark, 25 BTC at index
    book = _book().iloc[:1]
    at_mark = pmnb.margin.compute(book, m, "deribit.standard")
    at_index = pmnb.margin.compute(book, m, pmnb.margin.get("deribit.standard",
                                                            coin_price="index"))
    assert at_mark.initial == pytest.approx(20 * (0.02 + 20 * 0.00005))
    assert at_index.initial == pytest.approx(0.53125)


def test_linear_perps_margined_in_usdc_at_index():
    book = pd.DataFrame({"account": ["u", "u"], "venue": ["deribit"] * 2,
                         "symbol": ["BTC_USDC-PERPETUAL", "SOL_USDC-PERPETUAL"],
                         "size": [25.0, -25.0], "entry_price": [99_000.0, 210.0]})
    coll = pd.DataFrame({"account": ["u"], "asset": ["USDC"], "balance": [100_000.0]})
    r = pmnb.margin.compute(book, _market(), "deribit.standard", account="u", collateral=coll)
    assert r.currency == "USDC"
    assert r.initial == pytest.approx(53_125 + 200.625)             # D2 + D4
    assert r.maintenance == pytest.approx(28_125 + 100.625)
    assert r.equity == pytest.approx(100_000 + 25 * 1_000 + 25 * 10)
    assert r.delta_total == pytest.approx({"BTC": 25.0, "SOL": -25.0})


def test_several_currencies_need_currency_parameter():
    book = pd.concat([_book(), pd.DataFrame({"account": ["d"], "venue": ["deribit"],
                                             "symbol": ["BTC_USDC-PERPETUAL"], "size": [1.0],
                                             "entry_price": [100_000.0]})], ignore_index=True)
    with pytest.raises(ValidationError, match=r"currency=.*BTC.*USDC"):
        pmnb.margin.compute(book, _market(), "deribit.standard", account="d", collateral=COLL)
    r = pmnb.margin.compute(book, _market(), pmnb.margin.get("deribit.standard", currency="USDC"),
                            account="d", collateral=COLL)
    assert r.currency == "USDC" and len(r.positions) == 1
    assert r.equity == pytest.approx(500.0)
    assert r.initial == pytest.approx(1 * (0.02 + 0.00005) * 100_000)


def test_netting_of_rows_of_one_instrument():
    book = pd.DataFrame({"account": ["d"] * 2, "venue": ["deribit"] * 2,
                         "symbol": ["BTC-PERPETUAL"] * 2, "size": [150_000.0, 100_000.0],
                         "entry_price": [100_000.0, 100_000.0]})
    r = pmnb.margin.compute(book, _market(), "deribit.standard")
    assert r.initial == pytest.approx(0.53125)                      # one 25 BTC position
    assert r.positions["initial"].tolist() == pytest.approx([0.53125 * 0.6, 0.53125 * 0.4])


@given(st.floats(0.0, 5_000.0), st.floats(0.0, 5_000.0), st.sampled_from(["perp", "put", "call"]))
def test_margin_non_decreasing_in_size(a, b, what):
    lo, hi = sorted((a, b))
    mdl = DeribitStandard()
    if what == "perp":
        r_lo, r_hi = mdl.futures_margin("BTC", lo), mdl.futures_margin("BTC", hi)
    else:
        K = 90_000 if what == "put" else 120_000
        r_lo = mdl.option_margin(what, K, 101_000, 0.02, -lo)
        r_hi = mdl.option_margin(what, K, 101_000, 0.02, -hi)
    assert float(r_lo[0]) <= float(r_hi[0]) and float(r_lo[1]) <= float(r_hi[1])


def test_margin_non_decreasing_in_size_through_compute():
    ims = []
    for n in (0.0, 10_000.0, 250_000.0, 2_500_000.0, 3_500_000.0):  # x 10 USD
        book = _book().iloc[:1].assign(size=-n)
        ims.append(pmnb.margin.compute(book, _market(), "deribit.standard").initial)
    assert ims == sorted(ims) and ims[0] == 0.0
    assert ims[-1] == pytest.approx(13.125)                          # D3/D7: 350 BTC


# --- errors and parameters ----------------------------------------------------------------
def test_unsupported_kind_lists_supported():
    book = pd.DataFrame({"account": ["d"], "venue": ["deribit"], "symbol": ["BTC_USDC"],
                         "kind": ["spot"], "underlying": ["BTC"], "quote": ["USDC"],
                         "settlement": ["linear"], "size": [1.0]})
    with pytest.raises(ValidationError, match="future, perpetual, option"):
        pmnb.margin.compute(book, _market(), "deribit.standard")


def test_linear_options_not_supported():
    m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"SOL": 200.0}, vols={"SOL": 0.8})
    book = pd.DataFrame({"account": ["d"], "venue": ["deribit"],
                         "symbol": ["SOL_USDC-27MAR26-200-C"], "size": [-1.0]})
    with pytest.raises(ValidationError, match="linear .USDC. option"):
        pmnb.margin.compute(book, m, "deribit.standard")


def test_open_orders_add_the_initial_margin_of_the_worse_side():
    m, mdl = _market(), pmnb.margin.get("deribit.standard")
    base = pmnb.margin.compute(_book(), m, mdl, account="d", collateral=COLL)
    T = 85.0 / 365.0
    put = _black76_coin("put", F_MAR, 90_000, T, 0.5)
    # a sell order of 2 more puts: charged like two more short puts (floor binds, by hand)
    sell = pd.DataFrame({"symbol": ["BTC-27MAR26-90000-P"], "size": [-2.0], "price": [0.04]})
    r = pmnb.margin.compute(_book(), m, mdl, account="d", collateral=COLL, orders=sell)
    assert r.initial - base.initial == pytest.approx(2 * (0.10 + put), rel=1e-9)
    assert r.maintenance == base.maintenance and r.equity == base.equity
    assert any("open orders" in n and "approximation" in n for n in r.notes)
    # buy 5 BTC more of perp, and a sell that would close it: the buy side binds (not the sum)
    both = pd.DataFrame({"symbol": ["BTC-PERPETUAL"] * 2, "size": [50_000.0, -250_000.0],
                         "price": [99_000.0, 101_000.0]})
    r = pmnb.margin.compute(_book(), m, mdl, account="d", collateral=COLL, orders=both)
    grow = mdl.futures_margin("BTC", 30.0)[0] - mdl.futures_margin("BTC", 25.0)[0]
    assert r.initial - base.initial == pytest.approx(float(grow), rel=1e-9)
    assert "buy side binds" in r.notes[-1]
    # a reduce-only order adds nothing
    close = pd.DataFrame({"symbol": ["BTC-PERPETUAL"], "size": [-100_000.0], "price": [1e5]})
    r = pmnb.margin.compute(_book(), m, mdl, account="d", collateral=COLL, orders=close)
    assert r.initial == base.initial
    # empty orders: the positions' report
    assert pmnb.margin.compute(_book(), m, mdl, account="d", collateral=COLL,
                               orders=sell.iloc[:0]).initial == base.initial


@pytest.mark.parametrize("orders,match", [
    (pd.DataFrame({"symbol": ["BTC-PERPETUAL"], "size": [1.0], "price": [0.0]},
                  index=["o7"]), "price of row 'o7'"),
    (pd.DataFrame({"symbol": ["BTC-PERPETUAL"], "size": [0.0], "price": [1.0]},
                  index=["o8"]), "size of row 'o8'"),
    (pd.DataFrame({"symbol": ["BTC-PERPETUAL"], "size": [1.0]}), "missing column"),
    (pd.DataFrame({"symbol": ["BTC-NOPE"], "size": [1.0], "price": [1.0]}), "symbol"),
])
def test_bad_orders_are_named(orders, match):
    with pytest.raises(ValidationError, match=match):
        pmnb.margin.compute(_book(), _market(), "deribit.standard", account="d",
                            collateral=COLL, orders=orders)


def test_eth_rates_are_deribits_published_ones_and_others_must_be_passed():
    m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"ETH": 3_000.0},
                              marks={"deribit:ETH-PERPETUAL": 3_000.0})
    book = pd.DataFrame({"account": ["e"], "venue": ["deribit"], "symbol": ["ETH-PERPETUAL"],
                         "size": [30_000.0], "entry_price": [3_000.0]})
    # Deribit, "11 January 2022": ETH IM 2% + size in ETH x 0.0004%, MM 1% + size x 0.0004%
    r = pmnb.margin.compute(book, m, "deribit.standard")
    assert r.currency == "ETH"
    assert r.initial == pytest.approx(10 * (0.02 + 10 * 0.000004), rel=1e-12)
    assert r.maintenance == pytest.approx(10 * (0.01 + 10 * 0.000004), rel=1e-12)
    eth = FuturesRates(0.02, 0.0001, 0.01, 0.0001)     # user-supplied (illustrative) rates
    mdl = pmnb.margin.get("deribit.standard", futures={**DEFAULT_FUTURES, "ETH": eth})
    r = mdl.compute(pmnb.book.validate_positions(book), m)
    assert r.initial == pytest.approx(10 * (0.02 + 10 * 0.0001))
    no_eth = pmnb.margin.get("deribit.standard",
                             futures={k: v for k, v in DEFAULT_FUTURES.items() if k != "ETH"})
    with pytest.raises(ValidationError, match="no futures margin rates for 'ETH'"):
        no_eth.compute(pmnb.book.validate_positions(book), m)


def test_parameter_override_via_get():
    mdl = pmnb.margin.get("deribit.standard", option_im_floor=0.2, option_mm_addon=0.1)
    assert mdl.params.option_im_floor == 0.2
    assert mdl.params.rule_version == "deribit-standard-2025"
    im, mm = mdl.option_margin("call", 110_000, 100_000, 0.01, -1.0)   # T1 inputs
    assert (float(im), float(mm)) == pytest.approx((0.21, 0.11))
    assert "deribit.standard" in pmnb.margin.models()
    assert isinstance(pmnb.margin.get("deribit.standard"), DeribitStandard)
    with pytest.raises(ValidationError, match="accepted"):
        pmnb.margin.get("deribit.standard", im_base=0.03)
