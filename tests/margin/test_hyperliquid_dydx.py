"""Hyperliquid and dYdX v4 margin models.

Vectors from reference/margin.md: Hyperliquid §3 — H1, H2 [P], H3, H4 [C], H5 [3P],
HL1–HL4 [C]; dYdX v4 §4 — Y1 [C], Y2 [P]. Every [C] value is also cross-checked independently
(equity equals maintenance at the computed liquidation price, tier continuity, bisection), and
both models run through ``pmnb.margin.compute`` on hand-computed books.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pmnb
import pmnb.margin
from pmnb import ValidationError
from pmnb.margin import dydx_v4, hyperliquid
from pmnb.margin.dydx_v4 import LARGE_CAP, MID_CAP, DydxV4, MarketTier, effective_imf
from pmnb.margin.hyperliquid import (
    MAINNET_TIERS,
    Hyperliquid,
    tier_of,
    tiers_from_leverage,
)

BTC, ETH = MAINNET_TIERS["BTC"], MAINNET_TIERS["ETH"]


def _bisect(f, lo, hi, n=200):
    """Root of a monotone f on [lo, hi] by bisection (independent of the closed forms)."""
    flo = f(lo)
    for _ in range(n):
        mid = 0.5 * (lo + hi)
        if (f(mid) > 0) == (flo > 0):
            lo, flo = mid, f(mid)
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --- Hyperliquid: tiers ---------------------------------------------------------------------

def test_registered():
    assert {"hyperliquid", "dydx.v4"} <= set(pmnb.margin.models())
    assert isinstance(pmnb.margin.get("hyperliquid"), Hyperliquid)
    assert isinstance(pmnb.margin.get("dydx.v4"), DydxV4)


def test_h1_h2_mmr_is_half_initial_at_max_leverage():
    # H1 [P]: 20x max -> 2.5%; H2 [P]: 40x -> 1.25%, 3x -> 16.67% (stated to 2 d.p. in %)
    assert tiers_from_leverage([(0, 20)])[0].mmr == pytest.approx(0.025, abs=1e-15)
    assert tiers_from_leverage([(0, 40)])[0].mmr == pytest.approx(0.0125, abs=1e-15)
    assert round(tiers_from_leverage([(0, 3)])[0].mmr * 100, 2) == 16.67


def test_h3_h4_btc_tier_deduction_and_continuity():
    # H3 [C]: tier 2 mmr 2.5%, deduction 150M x (2.5% - 1.25%) = 1,875,000
    assert (BTC[1].lower_bound, BTC[1].max_leverage, BTC[1].mmr) == (150e6, 20.0, 0.025)
    assert BTC[1].deduction == pytest.approx(150e6 * (0.025 - 0.0125), abs=1e-6)
    assert BTC[1].deduction == pytest.approx(1_875_000.0, abs=1e-6)
    # H4 [C]: MM at 100M / 150M / 200M
    mm = Hyperliquid().maintenance("BTC", [100e6, 150e6, 200e6])
    np.testing.assert_allclose(mm, [1_250_000.0, 1_875_000.0, 3_125_000.0], rtol=0, atol=1e-6)
    # independent: continuity at every bound of every shipped table (both tiers' formulas agree)
    for tiers in MAINNET_TIERS.values():
        for a, b in itertools.pairwise(tiers):
            L = b.lower_bound
            assert L * a.mmr - a.deduction == pytest.approx(L * b.mmr - b.deduction, rel=1e-12)
            assert b.mmr == 1 / (2 * b.max_leverage)
    # tier choice: ">150M" is tier 2 (the page's wording), 150M itself stays in tier 1
    assert tier_of(BTC, [150e6, 150e6 * (1 + 1e-12)]).tolist() == [0, 1]


def test_shipped_tiers_match_reference_table():
    assert [(t.lower_bound, t.max_leverage) for t in ETH] == [(0, 25), (100e6, 15)]
    assert [(t.lower_bound, t.max_leverage) for t in MAINNET_TIERS["SOL"]] == [(0, 20), (70e6, 10)]
    assert [(t.lower_bound, t.max_leverage) for t in MAINNET_TIERS["XRP"]] == [(0, 20), (40e6, 10)]
    assert [(t.lower_bound, t.max_leverage) for t in MAINNET_TIERS["kPEPE"]] == [(0, 10),
                                                                                  (20e6, 5)]
    assert [(t.lower_bound, t.max_leverage) for t in MAINNET_TIERS["DOT"]] == [(0, 10), (3e6, 5)]
    assert len(MAINNET_TIERS) == 4 + 22 + 13


def test_tiers_from_leverage_rejects_bad_tables():
    with pytest.raises(ValidationError, match="start at 0"):
        tiers_from_leverage([(10, 20), (5, 10)])
    with pytest.raises(ValidationError, match=">= 1"):
        tiers_from_leverage([(0, 0.5)])


# --- Hyperliquid: liquidation price ---------------------------------------------------------

@pytest.mark.parametrize("vid, size, expected, mm_at_liq", [
    ("HL1", 1.0, 91_139.2405, 1_139.2405),
    ("HL2", -1.0, 108_641.9753, 1_358.0247),
])
def test_hl1_hl2_isolated(vid, size, expected, mm_at_liq):
    # [C]: isolated 1 BTC at 100,000, 10x -> isolated margin 10,000, l = 1/80
    p = hyperliquid.liquidation_price(100_000.0, size, 10_000.0, mmr=1 / 80)
    assert round(p, 4) == expected
    # same with the shipped BTC tiers (the position stays in tier 1)
    assert hyperliquid.liquidation_price(100_000.0, size, 10_000.0, tiers=BTC) == pytest.approx(p)
    # independent: equity equals maintenance exactly at p (docs' own form gives the same number)
    equity = 10_000.0 + size * (p - 100_000.0)
    assert equity == pytest.approx(abs(size) * p / 80, rel=1e-12)
    assert round(equity, 4) == mm_at_liq
    side = np.sign(size)
    avail = 10_000.0 - abs(size) * 100_000.0 / 80
    assert 100_000.0 - side * avail / abs(size) / (1 - side / 80) == pytest.approx(p, rel=1e-12)


def test_hl3_hl4_cross():
    # HL3 [C]: account value 1,500, long 2 ETH at mark 3,000, l = 0.02 (ETH tier 1, 25x)
    p = hyperliquid.liquidation_price(3_000.0, 2.0, 1_500.0, mmr=0.02)
    assert round(p, 4) == 2_295.9184
    assert hyperliquid.liquidation_price(3_000.0, 2.0, 1_500.0, tiers=ETH) == pytest.approx(p)
    equity = 1_500.0 + 2.0 * (p - 3_000.0)
    assert equity == pytest.approx(2.0 * p * 0.02, rel=1e-12)
    assert round(equity, 4) == 91.8367
    # HL4 [C]: account value 25,000 -> -9,693.88, never liquidated (API returns null)
    p4 = hyperliquid.liquidation_price(3_000.0, 2.0, 25_000.0, tiers=ETH)
    assert round(p4, 2) == -9_693.88


@pytest.mark.parametrize("size, equity", [(1_600.0, 20e6), (-1_400.0, 16e6)])
def test_liquidation_crosses_a_tier(size, equity):
    # long 160M (tier 2) liquidated at ~88.6k (141.8M, tier 1); short 140M (tier 1) at ~110k
    m = Hyperliquid()
    p = hyperliquid.liquidation_price(100_000.0, size, equity, tiers=BTC)
    tier_now, tier_liq = tier_of(BTC, abs(size) * 1e5)[()], tier_of(BTC, abs(size) * p)[()]
    assert tier_now != tier_liq

    def surplus(P):
        return equity + size * (P - 100_000.0) - float(m.maintenance("BTC", abs(size) * P))

    assert p == pytest.approx(_bisect(surplus, 1.0, 1e6), rel=1e-10)
    assert surplus(p) == pytest.approx(0.0, abs=1e-6 * abs(size) * p)
    # the naive formula with today's tier would be wrong
    naive = hyperliquid.liquidation_price(100_000.0, size, equity + BTC[tier_now].deduction,
                                          mmr=BTC[tier_now].mmr)
    assert abs(naive - p) > 1.0


@given(size=st.floats(0.01, 3_000.0) | st.floats(-3_000.0, -0.01),
       mark=st.floats(1_000.0, 200_000.0), cushion=st.floats(0.0, 0.9),
       other=st.floats(0.0, 1e5), coin=st.sampled_from(["BTC", "ETH"]))
def test_equity_equals_maintenance_at_liquidation(size, mark, cushion, other, coin):
    m = Hyperliquid()
    tiers = MAINNET_TIERS[coin]
    notional = abs(size) * mark
    equity = float(m.maintenance(coin, notional)) + other + cushion * notional
    p = hyperliquid.liquidation_price(mark, size, equity, tiers=tiers, maintenance_other=other)
    if p > 0:
        lhs = equity + size * (p - mark)
        rhs = float(m.maintenance(coin, abs(size) * p)) + other
        assert lhs == pytest.approx(rhs, abs=1e-9 * (notional + equity))


def test_liquidation_price_broadcasts_and_validates():
    out = hyperliquid.liquidation_price(100_000.0, np.array([1.0, -1.0, 0.0]), 10_000.0,
                                        mmr=1 / 80)
    assert np.round(out[:2], 4).tolist() == [91_139.2405, 108_641.9753] and np.isnan(out[2])
    with pytest.raises(ValidationError, match="exactly one"):
        hyperliquid.liquidation_price(1.0, 1.0, 1.0)
    with pytest.raises(ValidationError, match="mark"):
        hyperliquid.liquidation_price(0.0, 1.0, 1.0, mmr=0.01)


# --- Hyperliquid: compute() -----------------------------------------------------------------

def _hl_market(**spots):
    return pmnb.Market.from_dict("2026-01-01", spots={"BTC": 100_000.0, "ETH": 3_000.0,
                                                      "SOL": 100.0, **spots},
                                 marks={"hyperliquid:BTC": 100_000.0, "hyperliquid:ETH": 3_000.0,
                                        "hyperliquid:SOL": 100.0, "hyperliquid:PURR": 0.2})


def _hl_book():
    return pd.DataFrame({
        "account": ["h", "h", "other"], "venue": ["hyperliquid"] * 3,
        "symbol": ["BTC", "ETH", "BTC"], "size": [2.0, -10.0, 5.0],
        "entry_price": [95_000.0, 3_100.0, 100_000.0], "leverage": [10.0, np.nan, 20.0],
        "isolated_margin": [np.nan, 2_000.0, np.nan]})


def test_hl_compute_hand_computed_book():
    coll = pd.DataFrame({"account": ["h", "h", "other"], "asset": ["USDC", "BTC", "USDC"],
                         "balance": [50_000.0, 1.0, 1e6]})
    r = pmnb.margin.compute(_hl_book(), _hl_market(), "hyperliquid", account="h",
                            collateral=coll)
    # BTC cross: notional 200,000, IM /10 = 20,000, MM /80 = 2,500, uPnL 2 x 5,000 = 10,000
    # ETH isolated: notional 30,000, IM /25 (max) = 1,200, MM x 0.02 = 600, uPnL 10 x 100 = 1,000
    p = r.positions
    assert p["notional"].tolist() == [200_000.0, 30_000.0]
    assert p["initial"].tolist() == pytest.approx([20_000.0, 1_200.0], abs=1e-9)
    assert p["maintenance"].tolist() == pytest.approx([2_500.0, 600.0], abs=1e-9)
    assert p["unrealised_pnl"].tolist() == pytest.approx([10_000.0, 1_000.0], abs=1e-9)
    assert p["mode"].tolist() == ["cross", "isolated"] and p["leverage"].tolist() == [10.0, 25.0]
    assert (r.currency, r.model) == ("USDC", "hyperliquid")
    assert r.initial == pytest.approx(21_200.0) and r.maintenance == pytest.approx(3_100.0)
    # equity: 50,000 USDC + 10,000 cross uPnL + (2,000 isolated + 1,000 uPnL)
    assert r.equity == pytest.approx(63_000.0)
    assert r.delta_total == {"BTC": 2.0, "ETH": -10.0}
    assert r.usd_per_unit == 1.0 and any("1 USD" in n for n in r.notes)
    assert any("BTC" in n and "ignored" in n for n in r.notes)
    # the isolated ETH short's liquidation price: its equity equals its MM there
    liq = hyperliquid.liquidation_price(3_000.0, -10.0, 3_000.0, tiers=ETH)
    assert 3_000.0 - 10.0 * (liq - 3_000.0) == pytest.approx(10.0 * liq * 0.02)


def test_hl_usdc_price_from_market():
    coll = pd.DataFrame({"account": ["h"], "asset": ["USDC"], "balance": [50_000.0]})
    r = pmnb.margin.compute(_hl_book(), _hl_market(USDC=0.9998), "hyperliquid", account="h",
                            collateral=coll)
    assert r.usd_per_unit == 0.9998
    assert r.summary()["equity_usd"] == pytest.approx(63_000.0 * 0.9998)
    assert not any("1 USD" in n for n in r.notes)


def test_h5_leverage_sets_initial_not_maintenance():
    # H5 [3P]: $10,000 position on a 20x-max asset (SOL, shipped tiers): 10x -> IM 1,000, MM 250;
    # at 20x (leverage column empty -> max leverage) IM 500, MM 250
    book = pd.DataFrame({"account": ["a", "b"], "venue": ["hyperliquid"] * 2,
                         "symbol": ["SOL", "SOL"], "size": [100.0, 100.0],
                         "entry_price": [100.0, 100.0], "leverage": [10.0, np.nan]})
    for acc, im in (("a", 1_000.0), ("b", 500.0)):
        r = pmnb.margin.compute(book, _hl_market(), "hyperliquid", account=acc)
        assert r.initial == pytest.approx(im, abs=1e-9)
        assert r.maintenance == pytest.approx(250.0, abs=1e-9)


def test_hl_leverage_above_tier_max_raises():
    book = _hl_book().assign(leverage=[50.0, np.nan, 20.0])
    with pytest.raises(ValidationError, match="leverage.*1 to 40x"):
        pmnb.margin.compute(book, _hl_market(), "hyperliquid", account="h")


def test_hl_parameter_override():
    model = pmnb.margin.get("hyperliquid", tiers={"BTC": tiers_from_leverage([(0, 50)])},
                            rule_version="hl-btc-50x")
    assert model.params.tiers["BTC"][0].mmr == 0.01
    assert pmnb.margin.get("hyperliquid").params.tiers["BTC"][0].mmr == 0.0125  # defaults intact
    r = pmnb.margin.compute(_hl_book(), _hl_market(), model, account="other")
    assert r.maintenance == pytest.approx(500_000.0 * 0.01)
    assert r.rule_version == "hl-btc-50x"
    with pytest.raises(ValidationError, match="no margin tiers for 'ETH'"):
        pmnb.margin.compute(_hl_book(), _hl_market(), model, account="h")
    with pytest.raises(ValidationError, match="unknown parameter"):
        pmnb.margin.get("hyperliquid", brackets={})


def test_hl_unknown_asset_raises():
    book = pd.DataFrame({"account": ["h"], "venue": ["hyperliquid"], "symbol": ["PURR"],
                         "size": [1_000.0], "entry_price": [0.2]})
    with pytest.raises(ValidationError, match=r"no margin tiers for 'PURR'.*tiers="):
        pmnb.margin.compute(book, _hl_market(), "hyperliquid", account="h")


def _option_book(venue, symbol):
    return pd.DataFrame({"account": ["x", "x"], "venue": [venue, "deribit"],
                         "symbol": [symbol, "BTC-27MAR26-100000-P"], "size": [1.0, 1.0],
                         "entry_price": [100_000.0, 0.05]})


@pytest.mark.parametrize("name, venue, symbol", [("hyperliquid", "hyperliquid", "BTC"),
                                                 ("dydx.v4", "dydx", "BTC-USD")])
def test_unsupported_kind_lists_supported(name, venue, symbol):
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 100_000.0}, vols={"BTC": 0.5},
                              marks={f"{venue}:{symbol}": 100_000.0})
    with pytest.raises(ValidationError, match=r"option.*this model margins: perpetual$"):
        pmnb.margin.compute(_option_book(venue, symbol), m, name, account="x")


def test_orders_not_supported():
    orders = pd.DataFrame({"symbol": ["BTC"]})
    for name in ("hyperliquid", "dydx.v4"):
        with pytest.raises(ValidationError, match="orders"):
            pmnb.margin.get(name).compute(pd.DataFrame(), None, orders=orders)


# --- dYdX v4 --------------------------------------------------------------------------------

def test_y1_open_interest_imf():
    # Y1 [C]: base IMF 20%, caps 25M / 50M
    out = effective_imf(0.2, [10e6, 25e6, 37.5e6, 50e6, 60e6], 25e6, 50e6)
    np.testing.assert_allclose(out, [0.2, 0.2, 0.6, 1.0, 1.0], rtol=0, atol=1e-12)
    # independent: linear interpolation between the caps, from base to 100%
    x = np.linspace(25e6, 50e6, 11)
    np.testing.assert_allclose(effective_imf(0.2, x, 25e6, 50e6),
                               np.interp(x, [25e6, 50e6], [0.2, 1.0]), atol=1e-12)
    with pytest.raises(ValidationError, match="upper_cap"):
        effective_imf(0.2, 1.0, 5.0, 5.0)


def test_y2_isolated_short_liquidation():
    # Y2 [P]: e 1,000; short 3 ETH at 3,000; MMF 5% -> p' = 10,000 / 3.15 = 3,174.60,
    # equity at p' = 476.2
    p = dydx_v4.liquidation_price(3_000.0, -3.0, 1_000.0, 0.05)
    assert round(p, 2) == 3_174.60
    assert p == pytest.approx(10_000.0 / 3.15, rel=1e-15)
    equity = 1_000.0 - 3.0 * (p - 3_000.0)
    assert round(equity, 1) == 476.2
    assert equity == pytest.approx(3.0 * p * 0.05, rel=1e-12)  # = maintenance there


def test_dydx_defaults_and_tiers():
    m = pmnb.margin.get("dydx.v4")
    assert dict(m.params.markets) == {"BTC-USD": LARGE_CAP}
    assert (LARGE_CAP, MID_CAP) == (MarketTier(0.05, 0.03), MarketTier(0.10, 0.05))
    with pytest.raises(ValidationError, match="mmf <= imf"):
        MarketTier(0.03, 0.05)


def _dydx_market(**spots):
    return pmnb.Market.from_dict("2026-01-01", spots={"BTC": 100_000.0, "ETH": 3_000.0, **spots},
                                 marks={"dydx:BTC-USD": 100_000.0, "dydx:ETH-USD": 3_000.0})


def _dydx_book():
    return pd.DataFrame({"account": ["d", "d"], "venue": ["dydx", "dydx"],
                         "symbol": ["BTC-USD", "ETH-USD"], "size": [1.0, -20.0],
                         "entry_price": [90_000.0, 3_200.0]})


def test_dydx_compute_hand_computed_cross_account():
    model = pmnb.margin.get("dydx.v4", markets={"BTC-USD": LARGE_CAP, "ETH-USD": (0.05, 0.03)})
    coll = pd.DataFrame({"account": ["d"], "asset": ["USDC"], "balance": [5_000.0]})
    r = pmnb.margin.compute(_dydx_book(), _dydx_market(USDC=1.0), model, account="d",
                            collateral=coll)
    # notionals 100,000 and 60,000; IM 5% -> 5,000 + 3,000; MM 3% -> 3,000 + 1,800
    p = r.positions
    assert p["notional"].tolist() == [100_000.0, 60_000.0]
    assert p["initial"].tolist() == pytest.approx([5_000.0, 3_000.0])
    assert p["maintenance"].tolist() == pytest.approx([3_000.0, 1_800.0])
    # uPnL: 1 x 10,000 + (-20) x (-200) = 14,000; equity 5,000 + 14,000
    assert p["unrealised_pnl"].tolist() == pytest.approx([10_000.0, 4_000.0])
    assert (r.initial, r.maintenance, r.equity) == pytest.approx((8_000.0, 4_800.0, 19_000.0))
    assert r.excess == pytest.approx(11_000.0)
    assert r.delta_total == {"BTC": 1.0, "ETH": -20.0}
    assert (r.currency, r.usd_per_unit) == ("USDC", 1.0)
    # cross liquidation price of the BTC long, ETH's requirement held fixed:
    # (19,000 - 100,000 - 1,800) / (0.03 - 1) = 85,360.82...
    liq = dydx_v4.liquidation_price(100_000.0, 1.0, r.equity, 0.03,
                                    maintenance_other=p["maintenance"].iloc[1])
    assert liq == pytest.approx(82_800.0 / 0.97, rel=1e-14)
    assert r.equity + (liq - 100_000.0) == pytest.approx(0.03 * liq + 1_800.0, rel=1e-12)


def test_dydx_isolated_and_usdc_default_note():
    book = _dydx_book().iloc[:1].assign(isolated_margin=2_000.0)
    r = pmnb.margin.compute(book, _dydx_market(), "dydx.v4", account="d")
    assert r.equity == pytest.approx(12_000.0)
    assert r.positions["mode"].tolist() == ["isolated"]
    assert r.usd_per_unit == 1.0 and any("1 USD" in n for n in r.notes)
    # isolated Y2-style check at this position: equity = MM at its liquidation price
    liq = dydx_v4.liquidation_price(100_000.0, 1.0, 12_000.0, 0.03)
    assert 12_000.0 + (liq - 100_000.0) == pytest.approx(0.03 * liq)


def test_dydx_unknown_market_raises():
    with pytest.raises(ValidationError, match=r"no IMF/MMF for 'ETH-USD'.*markets="):
        pmnb.margin.compute(_dydx_book(), _dydx_market(), "dydx.v4", account="d")
