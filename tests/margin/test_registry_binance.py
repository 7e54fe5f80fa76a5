"""The margin registry (built-in and plugin models) and the Binance USDⓈ-M model.

Vectors from reference/margin.md §2 (Binance): B1–B4 [P], B6–B7 [C] (cross-checked by
continuity), and a hand-computed cross/isolated account."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pmnb
import pmnb.margin
from pmnb import ValidationError
from pmnb.margin.binance_usdm import BTCUSDT_2021, BinanceUSDM, bracket_of, brackets_with_cum

PLUGIN = Path(__file__).parent / "plugin"


def test_bracket_table_and_published_vectors():
    m = BinanceUSDM()
    assert [b.cum for b in BTCUSDT_2021] == [0, 50, 1300, 16300, 266300, 1266300, 2516300,
                                             5016300, 25016300, 100016300]
    # B1: a 264,000 USDT position is in the 1% tier; B2/B3: maintenance amount 1,300
    i = bracket_of(BTCUSDT_2021, np.array([264_000.0, 500_000.0]))
    assert [BTCUSDT_2021[j].mmr for j in i] == [0.01, 0.01]
    assert BTCUSDT_2021[i[1]].cum == 1300.0
    # B4 [P*]: notional 3,500,032.458, MMR 2.5%, cum 16,300 -> MM 71,200.81144 as published;
    # the exact product is 71,200.81145, so the page truncates at 5 decimals
    assert float(m.maintenance("BTCUSDT", 3_500_032.458)) == pytest.approx(71_200.81144,
                                                                           abs=1.5e-5)
    # B6 [C]: 264,000 -> 1,340; B7 [C]: continuity at 250,000 (both sides give 1,200)
    assert float(m.maintenance("BTCUSDT", 264_000.0)) == pytest.approx(1_340.0, abs=1e-9)
    assert 250_000 * 0.005 - 50 == pytest.approx(250_000 * 0.01 - 1_300)
    assert float(m.maintenance("BTCUSDT", 250_000.0)) == pytest.approx(1_200.0, abs=1e-9)
    # continuity at every bracket floor
    for b in BTCUSDT_2021[1:]:
        lo = float(m.maintenance("BTCUSDT", b.floor * (1 - 1e-12)))
        assert float(m.maintenance("BTCUSDT", b.floor)) == pytest.approx(lo, rel=1e-9)


def test_compute_cross_and_isolated_account():
    market = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
                                   marks={"binance:BTCUSDT": 62_000.0})
    book = pd.DataFrame({"account": "b", "venue": "binance", "symbol": ["BTCUSDT", "BTCUSDT"],
                         "size": [2.0, -5.0], "entry_price": [60_000.0, 61_000.0],
                         "leverage": [20.0, np.nan], "isolated_margin": [np.nan, 20_000.0]})
    coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [10_000.0]})
    r = pmnb.margin.compute(book, market, "binance.usdm", account="b", collateral=coll)
    n1, n2 = 2 * 62_000.0, 5 * 62_000.0
    assert r.positions["maintenance"].tolist() == pytest.approx([n1 * 0.005 - 50,
                                                                 n2 * 0.01 - 1_300])
    assert r.positions["initial"].tolist() == pytest.approx([n1 / 20, n2 / 50])  # max leverage
    upnl = [2 * 2_000.0, -5 * 1_000.0]
    assert r.equity == pytest.approx(10_000 + upnl[0] + 20_000 + upnl[1])
    assert r.excess == pytest.approx(r.equity - r.initial)
    assert r.margin_ratio == pytest.approx(r.maintenance / r.equity)
    assert r.delta_total == {"BTC": -3.0}
    assert "USDT valued at 1 USD" in r.notes[0]
    html = r._repr_html_()
    assert "binance.usdm" in html and "maintenance" in html
    with pytest.raises(ValidationError, match=r"leverage: row 0 has 200.0"):
        pmnb.margin.compute(book.assign(leverage=[200.0, np.nan]), market, "binance.usdm")


def test_overrides_unknown_symbols_and_unsupported_kinds():
    custom = brackets_with_cum([(0, 1e6, 0.01, 50), (1e6, 1e8, 0.02, 20)])
    m = pmnb.margin.get("binance.usdm", brackets={"ETHUSDT": custom},
                        rule_version="my-table-2026-11-25")
    assert m.params.rule_version == "my-table-2026-11-25"
    assert float(m.maintenance("ETHUSDT", 2e6)) == pytest.approx(2e6 * 0.02 - 1e4)
    with pytest.raises(ValidationError, match=r"no brackets for 'BTCUSDT'"):
        m.maintenance("BTCUSDT", 1.0)
    with pytest.raises(ValidationError, match="unknown parameter"):
        pmnb.margin.get("binance.usdm", bracket={})
    with pytest.raises(ValidationError, match="unknown margin model 'cme.span2'"):
        pmnb.margin.get("cme.span2")
    market = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0}, vols={"BTC": 0.5})
    opt = pd.DataFrame({"account": ["d"], "venue": ["deribit"], "symbol": ["BTC-27MAR26-60000-C"],
                        "size": [1.0]})
    with pytest.raises(ValidationError, match=r"is of kind 'option'; this model margins: perpetual, future"):
        pmnb.margin.compute(opt, market, "binance.usdm")
    with pytest.raises(ValidationError, match=r"account: 'nope'"):
        pmnb.margin.compute(opt, market, "binance.usdm", account="nope")


def test_third_party_plugin_through_the_entry_point(tmp_path, monkeypatch):
    """Install a tiny plugin distribution (metadata + module on sys.path) and use it by name."""
    dist = tmp_path / "pmnb_toy_margin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pmnb-toy-margin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[pmnb.margin_models]\ntoy.flat = "
                                           "pmnb_toy_margin:factory\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN))
    assert "toy.flat" in pmnb.margin.models()
    model = pmnb.margin.get("toy.flat", im_rate=0.2)
    market = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3_000.0},
                                   marks={"dydx:ETH-USD": 3_000.0})
    book = pd.DataFrame({"account": ["x"], "venue": ["dydx"], "symbol": ["ETH-USD"],
                         "size": [10.0], "entry_price": [2_900.0]})
    coll = pd.DataFrame({"account": ["x"], "asset": ["USDC"], "balance": [5_000.0]})
    r = pmnb.margin.compute(book, market, model, collateral=coll)
    assert (r.initial, r.maintenance, r.equity) == pytest.approx((6_000.0, 1_500.0, 6_000.0))
    assert "pmnb_toy_margin" in sys.modules


def test_margin_per_account_on_the_demo_portfolio():
    import pmnb.demo

    accounts, collateral, book, market = pmnb.demo.portfolio()
    reports = book.pm.margin(market, accounts, collateral)
    s = reports.summary()
    assert set(s.index) == set(accounts["account"].astype(str))   # no account dropped
    assert s.loc["binance-usdm", "model"] == "binance.usdm" and s.loc["binance-usdm", "status"] == "ok"
    # Binance: one BTCUSDT short of 3.5 at the (substituted) mark: ~309,700 USDT, tier 3 (1%)
    n = 3.5 * market.mark("binance", "BTCUSDT")
    assert 250_000 <= n < 1_000_000
    assert reports["binance-usdm"].maintenance == pytest.approx(n * 0.01 - 1_300)
    assert reports["binance-usdm"].equity == pytest.approx(
        180_000 + 3.5 * (94_210 - market.mark("binance", "BTCUSDT")))
    assert s.loc["uniswap-v3", "status"].startswith("no margin")
    assert s.loc["deribit-pm", "model"] == "deribit.portfolio" and s.loc["deribit-pm", "status"] == "ok"
    # the ETH standard-margin account: futures at Deribit's 2022-01-11 ETH rates, by hand
    sm = reports["deribit-sm"]
    assert s.loc["deribit-sm", "status"] == "ok" and sm.currency == "ETH"
    fut = sm.positions.loc[book.index[book["position_id"].astype(str) == "D-ETH-FUT-MAR"][0]]
    q = 100_000.0 / market.forward("ETH", pd.Timestamp("2026-03-27T08:00Z"))   # ETH of USD 1 x 100k
    assert fut["initial"] == pytest.approx(q * (0.02 + q * 0.000004), rel=1e-9)
    assert fut["maintenance"] == pytest.approx(q * (0.01 + q * 0.000004), rel=1e-9)
    # an explicit model per account overrides the venue default
    only = book.pm.margin(market, accounts, collateral, models={"deribit-pm": "binance.usdm"})
    assert "this model margins" in only.errors["deribit-pm"]


def test_inconsistent_margin_mode_is_a_clear_error():
    import pmnb.demo

    accounts, collateral, book, market = pmnb.demo.portfolio()
    r = book.pm.margin(market, accounts, collateral, models={"deribit-pm": "deribit.standard"})
    assert r.errors["deribit-pm"].startswith(
        "margin_mode: account 'deribit-pm' is 'portfolio' in the accounts frame, but "
        "deribit.standard applies to cross, isolated accounts")
