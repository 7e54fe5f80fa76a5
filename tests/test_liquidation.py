"""Liquidation prices by full revaluation, against the venues' closed forms and by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pmnb
import pmnb.margin
from pmnb.liquidation import distance_to_liquidation, liquidation_prices
from pmnb.margin import dydx_v4, hyperliquid


def _binance(side, isolated=3_000.0):
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
                              marks={"binance:BTCUSDT": 60_000.0})
    book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
                         "size": [side * 1.0], "entry_price": [60_000.0],
                         "isolated_margin": [isolated]})
    return m, book


@pytest.mark.parametrize("side,expected", [(1, 57_236.1809), (-1, 62_736.3184)])
def test_binance_isolated_vectors_L2_L3(side, expected):
    """margin.md L2/L3 [C]: isolated BTCUSDT, WB 3,000, Q 1, EP 60,000, tier 2 (0.5%, cum 50);
    cross-checked: equity equals maintenance at the price found."""
    m, book = _binance(side)
    res = liquidation_prices(book, m, "binance.usdm")
    assert res.status == "liquidation prices found" and len(res.table) == 1
    P = float(res.table["price"].iloc[0])
    assert P == pytest.approx(expected, abs=1e-4)
    rep = pmnb.margin.compute(book, m.shocked(P / 60_000.0 - 1), "binance.usdm")
    assert rep.equity == pytest.approx(rep.maintenance, abs=1e-6)
    # closed form of the Binance FAQ, one-way single position
    Q, EP, WB, mmr, cum = 1.0, 60_000.0, 3_000.0, 0.005, 50.0
    assert P == pytest.approx((WB + cum - side * Q * EP) / (Q * mmr - side * Q), rel=1e-12)


def test_hyperliquid_and_dydx_match_their_closed_forms():
    m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3_000.0, "BTC": 90_000.0},
                              marks={"hyperliquid:ETH": 3_000.0, "dydx:BTC-USD": 90_000.0})
    hl = pd.DataFrame({"account": ["h"], "venue": ["hyperliquid"], "symbol": ["ETH"],
                       "size": [-10.0], "entry_price": [3_000.0]})
    coll = pd.DataFrame({"account": ["h", "d"], "asset": ["USDC", "USDC"],
                         "balance": [5_000.0, 20_000.0]})
    r = liquidation_prices(hl, m, "hyperliquid", collateral=coll[coll.account == "h"])
    model = pmnb.margin.get("hyperliquid")
    closed = hyperliquid.liquidation_price(3_000.0, -10.0, 5_000.0, tiers=model.tiers("ETH"))
    assert float(r.table["price"].iloc[0]) == pytest.approx(float(closed), rel=1e-10)
    dy = pd.DataFrame({"account": ["d"], "venue": ["dydx"], "symbol": ["BTC-USD"],
                       "size": [2.0], "entry_price": [90_000.0]})
    r = liquidation_prices(dy, m, "dydx.v4", collateral=coll[coll.account == "d"])
    mmf = pmnb.margin.get("dydx.v4").market("BTC-USD").mmf
    closed = dydx_v4.liquidation_price(90_000.0, 2.0, 20_000.0, mmf)
    assert float(r.table["price"].iloc[0]) == pytest.approx(float(closed), rel=1e-10)


def test_more_collateral_moves_the_liquidation_price_away_and_none_found_is_explicit():
    m, book = _binance(1)
    p1 = float(liquidation_prices(book, m, "binance.usdm").table["price"].iloc[0])
    p2 = float(liquidation_prices(book.assign(isolated_margin=[6_000.0]), m,
                                  "binance.usdm").table["price"].iloc[0])
    assert p2 < p1
    huge = liquidation_prices(book.assign(isolated_margin=[1e6]), m, "binance.usdm")
    assert huge.table.empty and huge.status.startswith("no liquidation price between -95%")
    broke = liquidation_prices(book.assign(isolated_margin=[100.0], entry_price=[70_000.0]), m,
                               "binance.usdm")
    assert broke.status == "already at or below maintenance: P0000"


def test_options_account_under_deribit_standard_margin():
    """A short-put BTC account: the crossing is found by full revaluation; equity equals
    maintenance there, and the distance is reported in sigmas."""
    m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
                              forwards={"BTC": {"2026-03-27T08:00Z": 101_000.0}},
                              vols={"BTC": 0.55}, marks={"deribit:BTC-PERPETUAL": 100_000.0})
    book = pd.DataFrame({"account": "d", "venue": "deribit",
                         "symbol": ["BTC-27MAR26-90000-P", "BTC-PERPETUAL"],
                         "size": [-20.0, 20_000.0], "entry_price": [0.03, 100_000.0]})
    coll = pd.DataFrame({"account": ["d"], "asset": ["BTC"], "balance": [8.0]})
    res = liquidation_prices(book, m, "deribit.standard", collateral=coll)
    assert res.status == "liquidation prices found"
    down = res.table[res.table.direction == "down"]
    s = float(down["spot_shock"].iloc[0])
    rep = pmnb.margin.compute(book, m.shocked(s), "deribit.standard", collateral=coll)
    assert rep.equity == pytest.approx(rep.maintenance, rel=1e-8, abs=1e-10)
    d = distance_to_liquidation(res, m)
    assert np.all(np.isfinite(d["distance_daily_sigmas"]))
    assert (np.sign(d["distance_usd"]) == np.sign(d["spot_shock"])).all()


def test_isolated_positions_get_their_own_liquidation_price():
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
                              marks={"binance:BTCUSDT": 60_000.0})
    book = pd.DataFrame({"account": "b", "venue": "binance", "symbol": ["BTCUSDT", "BTCUSDT"],
                         "position_id": ["iso", "crossed"], "size": [1.0, -2.0],
                         "entry_price": [60_000.0, 60_000.0],
                         "isolated_margin": [3_000.0, np.nan]})
    coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [10_000.0]})
    res = liquidation_prices(book, m, "binance.usdm", collateral=coll)
    t = res.table.set_index("group")
    assert t.loc["iso", "price"] == pytest.approx(57_236.1809, abs=1e-4)  # L2, alone
    # the cross short alone: 10,000 - 2 (P - 60,000) = 2 P (0.5%) - 50 (tier 2 at ~64.7k)
    P = (10_000 + 120_000 + 50) / (2 + 2 * 0.005)
    assert t.loc["cross", "price"] == pytest.approx(P, rel=1e-10)


# --- the prepared (compiled) path against the row-wise models ----------------------------------
def _option_account(n=60, seed=4):
    rng = np.random.default_rng(seed)
    chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    btc = chain[chain.currency == "BTC"].instrument_name.to_numpy()
    book = pd.DataFrame({"account": "d", "venue": "deribit",
                         "symbol": np.append(btc[rng.integers(0, len(btc), n - 1)],
                                             "BTC-PERPETUAL"),
                         "size": np.append(np.round(rng.normal(-1, 5, n - 1), 1), -40_000.0),
                         "entry_price": np.append(np.full(n - 1, np.nan), 88_000.0)})
    coll = pd.DataFrame({"account": ["d"], "asset": ["BTC"], "balance": [100.0]})
    return book, coll


@pytest.fixture(scope="module")
def demo_market():
    import pmnb.demo

    return pmnb.demo.market(fit_vols=True)


@pytest.mark.parametrize("model", ["deribit.standard", "deribit.portfolio"])
def test_compiled_liquidation_prices_equal_the_row_wise_search(model, demo_market):
    """The same grid and Brent search run on the compiled prepared account and on the row-wise
    model recomputed at market.shocked(s) (the previous implementation) find the same moves;
    at each, the row-wise model's equity equals its maintenance."""
    from pmnb.margin.prepared import PreparedMargin

    book, coll = _option_account()
    m = demo_market
    mdl = pmnb.margin.get(model)
    fast = liquidation_prices(book, m, mdl, collateral=coll, n_grid=24)
    prep = pmnb.margin.prepare(book, m, mdl, collateral=coll)
    assert prep.compiled
    slow_prep = PreparedMargin(mdl, prep.book, m, collateral=prep.collateral,
                               compute_fn=mdl._compute_reference)
    slow = liquidation_prices(slow_prep, n_grid=24)
    assert fast.status == slow.status == "liquidation prices found"
    np.testing.assert_allclose(fast.table["spot_shock"], slow.table["spot_shock"], rtol=0,
                               atol=1e-9)
    for s in fast.table["spot_shock"]:
        r = mdl._compute_reference(prep.book, m.shocked(s), collateral=prep.collateral)
        assert r.equity == pytest.approx(r.maintenance, rel=1e-7, abs=1e-7)
    assert liquidation_prices(prep, n_grid=24).table.equals(fast.table)


def test_prepared_account_input_and_its_checks():
    m, book = _binance(1)
    two = pd.concat([book, book.assign(isolated_margin=np.nan, size=-2.0)], ignore_index=True)
    coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [10_000.0]})
    prep = pmnb.margin.prepare(two, m, "binance.usdm", collateral=coll)
    a = liquidation_prices(prep)
    b = liquidation_prices(two, m, "binance.usdm", collateral=coll)
    assert a.table.equals(b.table) and set(a.table["group"]) == {"P0000", "cross"}
    with pytest.raises(pmnb.errors.ValidationError, match="market: a prepared account"):
        liquidation_prices(prep, m)
    with pytest.raises(pmnb.errors.ValidationError, match="market, model: required"):
        liquidation_prices(two)
