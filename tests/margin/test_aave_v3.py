"""aave.v3: the Aave vectors of reference/margin.md §5 (A1–A7), close-factor boundaries, bonus
and fee arithmetic, and the MarginReport mapping."""

import math

import numpy as np
import pandas as pd
import pytest

import pmnb
import pmnb.margin
from pmnb.errors import ValidationError
from pmnb.margin.aave_v3 import (
    AaveV3,
    EModeCategory,
    Reserve,
    close_factor,
    liquidation_outcome,
    max_debt_to_cover,
)


def lending_book(rows, account="u"):
    """rows: (kind, asset, amount)."""
    kinds, assets, amounts = zip(*rows)
    sign = [1.0 if k == "lending_supply" else -1.0 for k in kinds]
    return pd.DataFrame({"account": account, "venue": "aave",
                         "symbol": [f"{k[8:]}-{a}" for k, a in zip(kinds, assets)],
                         "kind": list(kinds), "asset": list(assets), "amount": list(amounts),
                         "size": [s * a for s, a in zip(sign, amounts)]})


def market(eth, **more):
    return pmnb.Market.from_dict("2026-01-01", spots={"ETH": eth, **more})


A2_BOOK = [("lending_supply", "WETH", 10.0), ("lending_supply", "USDC", 10_000.0),
           ("lending_borrow", "USDC", 25_000.0)]
WITH_LTV = {"WETH": Reserve(0.825, ltv=0.80, liquidation_bonus=1.05,
                            liquidation_protocol_fee=0.10),
            "USDC": Reserve(0.78, ltv=0.75)}


def hf_of(report):
    hf = report.positions["health_factor"].iloc[0]
    assert report.notes[0] == f"health_factor = {hf:.6g}"
    return hf


def test_registered():
    assert "aave.v3" in pmnb.margin.models()
    m = pmnb.margin.get("aave.v3")
    assert isinstance(m, AaveV3) and m.params.version == "3.3"
    assert m.params.rule_version and "aave.com" in m.params.source


def test_A1_published_health_factor():
    # [P] $10,000 ETH at LT 80%, $6,000 GHO debt -> 1.333
    model = pmnb.margin.get("aave.v3", reserves={"WETH": Reserve(0.80)})
    r = pmnb.margin.compute(lending_book([("lending_supply", "WETH", 5.0),
                                          ("lending_borrow", "GHO", 6_000.0)]),
                            market(2_000.0, GHO=1.0), model, account="u")
    assert round(hf_of(r), 3) == 1.333
    assert hf_of(r) == pytest.approx(8_000 / 6_000, rel=1e-15)
    assert r.notes[0] == "health_factor = 1.33333"


@pytest.mark.parametrize("eth, hf", [(2_000.0, 0.972), (1_800.0, 0.906)], ids=["A2", "A3"])
def test_A2_A3_health_factor(eth, hf):
    r = pmnb.margin.compute(lending_book(A2_BOOK), market(eth), "aave.v3", account="u")
    assert round(hf_of(r), 3) == hf
    assert hf_of(r) == pytest.approx((10 * eth * 0.825 + 7_800) / 25_000, rel=1e-15)
    assert r.margin_ratio > 1  # HF < 1 <=> margin ratio > 1


def test_A4_liquidation_price():
    # [C] 10 ETH, LT 82.5%, debt 12,000: ETH price at HF = 1 is 1,454.5455
    r = pmnb.margin.compute(lending_book([("lending_supply", "WETH", 10.0),
                                          ("lending_borrow", "USDC", 12_000.0)]),
                            market(3_000.0), "aave.v3", account="u")
    p = r.positions
    assert round(p["liquidation_price"].iloc[0], 4) == 1454.5455
    # at that price the health factor is 1 and the report sits on the boundary
    at = pmnb.margin.compute(lending_book([("lending_supply", "WETH", 10.0),
                                           ("lending_borrow", "USDC", 12_000.0)]),
                             market(float(p["liquidation_price"].iloc[0])), "aave.v3")
    assert hf_of(at) == pytest.approx(1.0, rel=1e-12)
    assert at.margin_ratio == pytest.approx(1.0, rel=1e-12)


def test_A5_partial_liquidation():
    # [C] A2 (HF 0.972), USDC debt at 1, ETH @ 2000, bonus 5%, fee 10%
    hf = 0.972
    assert close_factor(hf, debt_usd=25_000.0, collateral_usd=20_000.0) == 0.5
    cover = max_debt_to_cover(hf, 25_000.0, 20_000.0)
    assert cover == 12_500.0
    o = liquidation_outcome(cover, debt_price=1.0, collateral_price=2_000.0,
                            liquidation_bonus=1.05, liquidation_protocol_fee=0.10,
                            collateral_balance=10.0, debt_balance=25_000.0)
    assert o.debt_repaid == 12_500.0
    assert o.collateral_seized == pytest.approx(6.5625, abs=1e-12)
    assert o.bonus == pytest.approx(0.3125, abs=1e-12)
    assert o.protocol_fee == pytest.approx(0.03125, abs=1e-12)
    assert o.liquidator_receives == pytest.approx(6.53125, abs=1e-12)
    assert o.leaves_dust is False
    after = lending_book([("lending_supply", "WETH", 10.0 - o.collateral_seized),
                          ("lending_supply", "USDC", 10_000.0),
                          ("lending_borrow", "USDC", 25_000.0 - o.debt_repaid)])
    r = pmnb.margin.compute(after, market(2_000.0), "aave.v3")
    assert round(hf_of(r), 5) == 1.07775


def test_A6_full_close_factor():
    # [C] A3 (HF 0.906): 100%
    assert close_factor(0.906, debt_usd=25_000.0, collateral_usd=18_000.0) == 1.0
    assert max_debt_to_cover(0.906, 25_000.0, 18_000.0) == 25_000.0


@pytest.mark.parametrize("bonus, ratio", [(1.10, 1.090), (1.15, 1.135)], ids=["A7-10%", "A7-15%"])
def test_A7_received_over_repaid(bonus, ratio):
    o = liquidation_outcome(1_000.0, debt_price=1.0, collateral_price=1.0,
                            liquidation_bonus=bonus, liquidation_protocol_fee=0.10)
    assert round(o.liquidator_receives / o.debt_repaid, 3) == ratio
    # hand check: receives/repaid = B - (B - 1) * fee
    assert o.liquidator_receives / o.debt_repaid == pytest.approx(bonus - (bonus - 1) * 0.10)


@pytest.mark.parametrize("hf, debt, coll, v, cf", [
    (0.95 + 1e-9, 25_000, 20_000, "3.3", 0.5),   # just above the threshold
    (0.95, 25_000, 20_000, "3.3", 1.0),          # at it: 100% (cap needs HF > 0.95)
    (0.95 - 1e-9, 25_000, 20_000, "3.3", 1.0),   # just below
    (1.0, 25_000, 20_000, "3.3", 0.0),           # not liquidatable
    (1.0 - 1e-12, 25_000, 20_000, "3.3", 0.5),
    (0.99, 1_999.99, 20_000, "3.3", 1.0),        # debt reserve below 2,000: dust, all
    (0.99, 20_000, 1_999.99, "3.3", 1.0),        # collateral reserve below 2,000
    (0.99, 2_000.0, 2_000.0, "3.3", 0.5),        # exactly 2,000 each: the cap applies
    (0.99, 1_000.0, 1_000.0, "3.2", 0.5),        # no dust rule before 3.3
    (0.94, 1e9, 1e9, "3.0", 1.0),
    (math.inf, 0.0, 1e6, "3.3", 0.0),            # no debt
], ids=["above", "at", "below", "hf1", "hf<1", "debt-dust", "coll-dust", "2000", "v3.2",
        "v3.0-below", "no-debt"])
def test_close_factor_boundaries(hf, debt, coll, v, cf):
    assert close_factor(hf, debt_usd=debt, collateral_usd=coll, version=v) == cf


def test_close_factor_vectorised_and_validated():
    out = close_factor(np.array([0.99, 0.9]), debt_usd=np.array([5_000.0, 5_000.0]),
                       collateral_usd=3_000.0)
    assert out.tolist() == [0.5, 1.0]
    with pytest.raises(ValidationError, match="version"):
        close_factor(0.9, version="2")
    with pytest.raises(ValidationError, match="hf"):
        close_factor(-0.1)


def test_max_debt_to_cover_versions():
    # v3.3: 50% of the total debt, capped at the reserve's debt; v3.2: 50% of the reserve's debt
    assert max_debt_to_cover(0.97, 10_000.0, 50_000.0, total_debt_usd=30_000.0) == 10_000.0
    assert max_debt_to_cover(0.97, 20_000.0, 50_000.0, total_debt_usd=30_000.0) == 15_000.0
    assert max_debt_to_cover(0.97, 20_000.0, 50_000.0, total_debt_usd=30_000.0,
                             version="3.2") == 10_000.0


def test_liquidation_caps_at_collateral_balance_and_flags_dust():
    # 1 ETH only: the whole balance is seized and the debt repaid shrinks to its value / bonus
    o = liquidation_outcome(5_000.0, debt_price=1.0, collateral_price=2_000.0,
                            liquidation_bonus=1.05, liquidation_protocol_fee=0.10,
                            collateral_balance=1.0, debt_balance=10_000.0)
    assert o.collateral_seized == 1.0
    assert o.debt_repaid == pytest.approx(2_000.0 / 1.05)
    assert o.leaves_dust is False  # collateral reserve cleared
    # leftover debt 500 USD < 1,000 with collateral left: Aave reverts (v3.3), not before
    kw = {"debt_price": 1.0, "collateral_price": 2_000.0, "liquidation_bonus": 1.05,
          "liquidation_protocol_fee": 0.10, "collateral_balance": 10.0, "debt_balance": 5_500.0}
    assert liquidation_outcome(5_000.0, **kw).leaves_dust is True
    assert liquidation_outcome(5_500.0, **kw).leaves_dust is False  # debt fully repaid
    assert liquidation_outcome(4_500.0, **kw).leaves_dust is False  # 1,000 left
    assert liquidation_outcome(5_000.0, version="3.2", **kw).leaves_dust is False
    # leftover collateral below 1,000 USD
    kw.update(collateral_balance=3.0, debt_balance=20_000.0)
    assert liquidation_outcome(5_000.0, **kw).leaves_dust is True  # 0.375 ETH = 750 USD left
    with pytest.raises(ValidationError, match="liquidation_bonus"):
        liquidation_outcome(1.0, debt_price=1.0, collateral_price=1.0, liquidation_bonus=0.95)


def test_report_mapping_on_small_book():
    model = pmnb.margin.get("aave.v3", reserves=WITH_LTV)
    r = pmnb.margin.compute(lending_book(A2_BOOK), market(2_000.0), model, account="u")
    assert (r.currency, r.usd_per_unit, r.account) == ("USD", 1.0, "u")
    c, d = 30_000.0, 25_000.0
    assert r.equity == pytest.approx(c - d)
    assert r.maintenance == pytest.approx(20_000 * 0.175 + 10_000 * 0.22)
    assert r.initial == pytest.approx(20_000 * 0.20 + 10_000 * 0.25)
    # excess = available borrows (negative here), equity - maintenance = D (HF - 1)
    assert r.excess == pytest.approx(20_000 * 0.8 + 10_000 * 0.75 - d)
    assert r.equity - r.maintenance == pytest.approx(d * (0.972 - 1))
    p = r.positions
    assert p.index.equals(lending_book(A2_BOOK).index)
    assert p["side"].tolist() == ["supply", "supply", "borrow"]
    assert p["value_usd"].tolist() == [20_000.0, 10_000.0, -25_000.0]
    assert p["weighted_collateral"].tolist() == pytest.approx([16_500.0, 7_800.0, 0.0])
    assert p["borrowing_power"].tolist() == pytest.approx([16_000.0, 7_500.0, 0.0])
    assert p["initial"].sum() == pytest.approx(r.initial)
    assert p["maintenance"].sum() == pytest.approx(r.maintenance)
    assert "available_borrows_usd = 0" in r.notes
    assert r.delta_total == {"ETH": 10.0}
    assert any("1 USD" in n for n in r.notes)  # USDC priced at 1, said so


def test_healthy_account_and_no_debt():
    model = pmnb.margin.get("aave.v3", reserves=WITH_LTV)
    r = pmnb.margin.compute(lending_book([("lending_supply", "WETH", 10.0),
                                          ("lending_borrow", "USDC", 8_000.0)]),
                            market(2_000.0), model)
    assert hf_of(r) == pytest.approx(16_500 / 8_000)
    assert r.margin_ratio < 1 and r.excess == pytest.approx(16_000 - 8_000)
    assert "available_borrows_usd = 8000" in r.notes
    r = pmnb.margin.compute(lending_book([("lending_supply", "USDC", 1_000.0)]),
                            market(2_000.0), model)
    assert math.isinf(hf_of(r)) and r.maintenance == 0.0 and r.margin_ratio == 0.0
    assert r.excess == pytest.approx(750.0)  # borrowing power


def test_missing_ltv_gives_nan_initial_with_note():
    r = pmnb.margin.compute(lending_book(A2_BOOK), market(2_000.0), "aave.v3")
    assert math.isnan(r.initial)
    assert any("no LTV for USDC, WETH" in n for n in r.notes)


def test_unknown_asset_asks_for_params():
    book = lending_book([("lending_supply", "WBTC", 1.0), ("lending_borrow", "USDC", 1.0)])
    with pytest.raises(ValidationError, match="no reserve parameters for 'WBTC'.*reserves="):
        pmnb.margin.compute(book, market(2_000.0, BTC=60_000.0), "aave.v3")


def test_emode_category():
    reserves = {"WETH": Reserve(0.825, 0.80, 1.05, 0.10, emode_category=1),
                "WSTETH": Reserve(0.81, 0.785, 1.06, 0.10, emode_category=1)}
    cats = {1: EModeCategory(ltv=0.93, liquidation_threshold=0.95, liquidation_bonus=1.01)}
    book = lending_book([("lending_supply", "WETH", 10.0), ("lending_borrow", "WETH", 8.0)])
    m = market(2_000.0)
    plain = pmnb.margin.compute(book, m, pmnb.margin.get("aave.v3", reserves=reserves))
    em = pmnb.margin.compute(book, m, pmnb.margin.get("aave.v3", reserves=reserves,
                                                      emode_categories=cats, emode=1))
    assert hf_of(plain) == pytest.approx(10 * 0.825 / 8)
    assert hf_of(em) == pytest.approx(10 * 0.95 / 8)
    assert em.initial == pytest.approx(20_000 * 0.07)
    # same underlying on both sides: no price makes HF = 1
    assert em.positions["liquidation_price"].isna().all()
    with pytest.raises(ValidationError, match="emode"):
        pmnb.margin.get("aave.v3", reserves=reserves, emode=2).reserve("WETH")


def test_unsupported_kind_lists_supported():
    book = pd.DataFrame({"account": ["u"], "venue": ["binance"], "symbol": ["BTCUSDT"],
                         "size": [1.0], "entry_price": [60_000.0]})
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
                              marks={"binance:BTCUSDT": 60_000.0})
    with pytest.raises(ValidationError, match="lending_supply, lending_borrow"):
        pmnb.margin.compute(book, m, "aave.v3")


def test_orders_rejected_and_unknown_param():
    with pytest.raises(ValidationError, match="orders"):
        pmnb.margin.compute(lending_book(A2_BOOK), market(2_000.0), "aave.v3",
                            orders=pd.DataFrame({"x": [1]}))
    with pytest.raises(ValidationError, match="unknown parameter"):
        pmnb.margin.get("aave.v3", close_factor=0.5)
