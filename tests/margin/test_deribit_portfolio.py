"""Deribit portfolio margin (risk matrix): vector PM1 of reference/margin.md §1.3, the published
clone vectors used by its approximations, full revaluation against pmnb.price, and accounts."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pmnb
import pmnb.margin
from pmnb.errors import ValidationError
from pmnb.margin.deribit_portfolio import (
    BTC_PM,
    DEFAULT_CURRENCIES,
    DeribitPortfolio,
    PMCurrencyParams,
    count_scenarios,
    extended_weights,
    future_scenario_pnl,
    price_moves,
    risk_matrix,
    roll_shock,
    scenario_labels,
    shocked_vols,
)

# --- PM1 [P]: Deribit's private/pme/simulate OpenAPI example -------------------------------
INDEX = 65_666.19
Q_PERP, Q_FUT = 0.314538364, -0.001187534
PERP_VECTOR = [-0.05991206933333334, -0.04289159509090909, -0.027351162086956524,
               -0.013105765166666668, 0.0, 0.012097629384615385, 0.023299138074074074,
               0.033700538999999995, 0.043384601931034494]
FUT_VECTOR_HEAD = [0.000226196952, 0.000161936454, 0.000103263826, 0.0000494805833, 0.0,
                   -0.0000456743846, -0.0000879654814, -0.000127235785, -0.000163797793]
AGG_VECTOR = [-0.05968587238095239, -0.04272965863636364, -0.02724789826086957,
              -0.013056284583333334, 0.0, 0.0, 0.0, 0.0, 0.0]
PM1_TS = pd.Timestamp("2024-06-28T08:00Z") - pd.Timedelta(days=10.9)   # the future: 10.9 days


def _decimals(x: float) -> float:
    """Half a unit of the last printed digit of a published number (its stated precision)."""
    s = repr(x).split("e")[0]
    d = len(s.split(".")[1]) if "." in s else 0
    return 0.5 * 10.0 ** -d * (10.0 ** int(repr(x).split("e")[1]) if "e" in repr(x) else 1.0)


def test_pm1_price_moves_and_layout():
    assert price_moves(BTC_PM).tolist() == pytest.approx(
        [-0.16, -0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16], abs=1e-15)
    labels = scenario_labels()
    assert len(labels) == 27 + 8 and len(set(labels)) == 35


def test_pm1_position_vectors():
    pnl = future_scenario_pnl([Q_PERP, Q_FUT])
    std = pnl[:, :27].reshape(2, 9, 3)
    assert (std == std[:, :, :1]).all()                  # the same in the three vol columns
    np.testing.assert_allclose(std[0, :, 0], PERP_VECTOR, rtol=0, atol=1e-15)
    for got, pub in zip(std[1, :, 0], FUT_VECTOR_HEAD):  # printed truncated ("…")
        assert got == pytest.approx(pub, abs=2 * _decimals(pub))
    np.testing.assert_allclose(std[1, :, 0], Q_FUT * (1 - 1 / (1 + price_moves())), atol=1e-18)
    # extended entries of a future = the boundary move of their side (observed)
    np.testing.assert_array_equal(pnl[:, 27:29], np.repeat(pnl[:, :1], 2, axis=1))
    np.testing.assert_array_equal(pnl[:, 29:], np.repeat(pnl[:, 26:27], 6, axis=1))
    assert pnl[0, 27] == pytest.approx(PERP_VECTOR[0], abs=1e-17)


def test_pm1_aggregation_and_margin_arrays():
    pnl = future_scenario_pnl([Q_PERP, Q_FUT])
    rm = risk_matrix(pnl, index=INDEX, fut_q_coin=[Q_PERP, Q_FUT], fut_T=[0.0, 10.9 / 365])
    np.testing.assert_allclose(rm.aggregated[:27:3][:4], AGG_VECTOR[:4], rtol=0, atol=1e-16)
    np.testing.assert_array_equal(rm.counted[:27:3][4:], 0.0)        # gains × pnl_offset 0
    np.testing.assert_array_equal(rm.counted[27:], 0.0)              # extended: all 0 [P]
    assert -rm.counted.min() == pytest.approx(0.05968587238095239, abs=1e-16)
    assert rm.worst_case == 0.059685872                              # rounded to 9 decimals
    assert rm.roll_shock == pytest.approx(0.00315725898, abs=1e-17)
    assert rm.delta_shock == 0.0
    assert rm.risk_matrix_margin == pytest.approx(0.06284313098, abs=1e-16)
    assert 0.8 * rm.risk_matrix_margin == pytest.approx(0.050274504784, abs=1e-16)


def _pm1_book_market():
    m = pmnb.Market.from_dict(PM1_TS, spots={"BTC": INDEX}, vols={"BTC": 0.5},
                              marks={"deribit:BTC-PERPETUAL": INDEX,
                                     "deribit:BTC-28JUN24": INDEX})
    book = pd.DataFrame({"account": ["d", "d"], "venue": ["deribit"] * 2,
                         "symbol": ["BTC-PERPETUAL", "BTC-28JUN24"],
                         "size": [Q_PERP * INDEX / 10, Q_FUT * INDEX / 10],   # 10 USD contracts
                         "entry_price": [INDEX, INDEX]})
    return book, m


def test_pm1_through_the_model():
    book, m = _pm1_book_market()
    mdl = pmnb.margin.get("deribit.portfolio", mmp_margin=0.06, open_orders_margin=0.000018212)
    r = pmnb.margin.compute(book, m, mdl, account="d")
    assert r.model == "deribit.portfolio" and r.currency == "BTC"
    assert r.initial == 0.122861343                                   # published, 9 decimals
    assert r.maintenance == pytest.approx(0.050274504784, abs=1e-15)  # published, not rounded
    assert r.worst_scenario.startswith("-16%")
    sc = r.scenarios
    assert len(sc) == 35 and list(sc["table"].unique()) == ["standard", "extended"]
    np.testing.assert_allclose(sc["pnl"].to_numpy()[:27:3], AGG_VECTOR[:4] + [0.0] + list(
        sc["pnl"].to_numpy()[15:27:3]), atol=1e-15)
    np.testing.assert_allclose(sc["counted"].to_numpy()[:27:3], AGG_VECTOR, atol=1e-15)
    assert (sc["counted"].to_numpy()[27:] == 0).all()
    assert r.positions["size_coin"].tolist() == pytest.approx([Q_PERP, Q_FUT], rel=1e-15)
    assert r.positions["roll_shock"].sum() == pytest.approx(0.00315725898, abs=1e-17)
    # no mmp/orders add-ons: initial = round(risk matrix, 9); allocations add up to it
    r0 = pmnb.margin.compute(book, m, "deribit.portfolio")
    assert r0.initial == round(0.06284313098, 9)
    assert r0.positions["initial"].sum() == pytest.approx(r0.initial, abs=1e-9)
    assert r0.delta_total["BTC"] == pytest.approx(Q_PERP + Q_FUT, rel=1e-12)


# --- published vectors of the clones the approximations follow ----------------------------
def test_extended_weights_match_paradex():
    # Paradex [P]: 24%, 48%, 32%, 16%, 8%, 5.33%, 4%, 3.20% (first two printed rounded)
    w = 100 * extended_weights()
    assert w[:2].round(0).tolist() == [24.0, 48.0]
    assert w[2:].round(2).tolist() == [32.0, 16.0, 8.0, 5.33, 4.0, 3.2]


def test_vol_shock_vectors():
    # Derive worked example: IV shock factor 1.628 (1.62845 [C]), 2-week expiry
    up, same, down = shocked_vols(0.6, 14 / 365)[0]
    assert up / 0.6 == pytest.approx(1.628, abs=5e-4) and same == 0.6
    assert down == pytest.approx(0.6 * (1 - 0.25 * (30 / 14) ** 0.3), rel=1e-15)
    # long-dated: the long-term power 0.13; below 50 % vol the up shock uses 50 %
    up, _, _ = shocked_vols(0.3, 90 / 365)[0]
    assert up == pytest.approx(0.3 + 0.5 * 0.5 * (30 / 90) ** 0.13, rel=1e-15)
    # legacy Deribit page: (30/15)^0.3 × 38% = 46.78% [C]
    assert shocked_vols(0.4, 15 / 365, rule="legacy")[0, 0] - 0.4 == pytest.approx(0.4678,
                                                                                 abs=5e-5)


def test_count_scenarios_offset_and_dampener():
    cp = PMCurrencyParams(pnl_offset=0.4, max_offsetable_pnl=1_000_000.0)
    agg = np.zeros(35)
    agg[0], agg[3], agg[30] = -1.0, 30.0, 400.0
    c = count_scenarios(agg, cp, index=100_000.0)
    assert c[0] == -1.0 and c[3] == 10.0                  # 0.4 × 30 capped at 1M USD = 10 coin
    assert c[30] == 0.0                                   # extended gains never count
    agg[31] = -400.0
    c = count_scenarios(agg, cp, index=100_000.0)
    assert c[31] == pytest.approx(-400 * 0.08 + 1.0)      # +200 %: 8 % beyond 1 coin dampener
    assert roll_shock([2.0], [1.0]) == pytest.approx(0.15)   # above the floor: 7.5 % × 1 year


# --- full revaluation: each scenario = pmnb.price at the shocked (F, σ) minus today's ---------
def _market():
    return pmnb.Market.from_dict(
        "2026-01-01T08:00Z", spots={"BTC": 100_000.0}, rates={"USD": 0.03},
        forwards={"BTC": {"2026-01-30T08:00Z": 100_400.0, "2026-03-27T08:00Z": 101_000.0,
                          "2026-06-26T08:00Z": 102_500.0}},
        vols={"BTC": 0.5}, marks={"deribit:BTC-PERPETUAL": 100_050.0,
                                  "deribit:BTC-27MAR26": 101_020.0})


def _book(rows):
    sym, size = zip(*rows)
    n = len(rows)
    return pd.DataFrame({"account": ["d"] * n, "venue": ["deribit"] * n, "symbol": list(sym),
                         "size": list(size), "entry_price": [np.nan if "-" in s[4:] and s.count(
                             "-") == 3 else 100_000.0 for s in sym]})


OPTIONS = [("BTC-30JAN26-80000-P", -3.0), ("BTC-30JAN26-130000-C", 2.0),
           ("BTC-27MAR26-100000-P", -1.5), ("BTC-27MAR26-90000-C", 0.7),
           ("BTC-26JUN26-150000-C", -4.0), ("BTC-26JUN26-60000-P", 1.0)]


def test_scenario_pnl_is_full_revaluation():
    m = _market()
    book = pmnb.book.validate_positions(_book(OPTIONS + [("BTC-PERPETUAL", -20_000.0),
                                                         ("BTC-27MAR26", 5_000.0)]))
    mdl = DeribitPortfolio()
    sp = mdl.scenario_pnl(book, m)
    assert sp.shape == (8, 35)
    moves = np.concatenate([np.repeat(price_moves(), 3), BTC_PM.extended_moves])
    vol_col = np.concatenate([np.tile([0, 1, 2], 9), np.zeros(8, int)])
    T = ((pd.DatetimeIndex(book["expiry"]) - m.timestamp).total_seconds() / (365 * 86400)
         ).to_numpy()
    r = m.rate("USD")
    checked = 0
    for i in range(len(OPTIONS)):
        row = book.iloc[i]
        F = float(m.forward("BTC", row["expiry"]))
        sig = float(m.vol("BTC", [row["strike"]], pd.DatetimeIndex([row["expiry"]]))[0])
        dte = max(T[i] * 365, 1.0)
        f = (30 / dte) ** (0.30 if dte < 30 else 0.13)
        vols = [sig + max(sig, 0.5) * 0.5 * f, sig, sig * (1 - 0.25 * f)]   # written out again
        v0 = float(pmnb.price(F, row["strike"], T[i], sig, r, option_type=row["option_type"],
                              settlement="inverse"))
        for j in range(35):
            v1 = float(pmnb.price(F * (1 + moves[j]), row["strike"], T[i], vols[vol_col[j]], r,
                                  option_type=row["option_type"], settlement="inverse"))
            want = row["size"] * (v1 - v0)
            got = sp.iloc[i, j]
            assert got == pytest.approx(want, rel=1e-9, abs=1e-15), (row["symbol"], j)
            checked += 1
    assert checked == 6 * 35
    # futures in closed form: q_usd (1/P - 1/P'), boundary moves in the extended table
    for i, P in ((6, 100_050.0), (7, 101_020.0)):
        qusd = book["size"].iloc[i] * 10.0
        s = np.where(np.arange(35) >= 27, np.sign(moves) * 0.16, moves)
        np.testing.assert_allclose(sp.iloc[i].to_numpy(), qusd * (1 / P - 1 / (P * (1 + s))),
                                   rtol=1e-12, atol=1e-15)
    # the report aggregates exactly these
    rep = pmnb.margin.compute(book, m, mdl)
    np.testing.assert_allclose(rep.scenarios["pnl"].to_numpy(), sp.sum(axis=0).to_numpy(),
                               rtol=1e-13, atol=1e-15)
    assert rep.initial == pytest.approx(-rep.scenarios["counted"].min() + rep.positions[
        "roll_shock"].sum(), abs=1e-9)
    assert any("vol shocks" in n and "approximation" in n for n in rep.notes)


# --- economics ----------------------------------------------------------------------------
def _hedged(symbols, sizes):
    """Options plus the BTC-PERPETUAL position that cancels their coin delta."""
    m = _market()
    n = len(symbols)
    opts = pd.DataFrame({"account": ["d"] * n, "venue": ["deribit"] * n, "symbol": symbols,
                         "size": sizes, "entry_price": [np.nan] * n})
    v = pmnb.book.validate_positions(opts)
    delta = pmnb.book.position_greeks(v, m)["delta_coin"].sum()
    perp = -delta * 100_050.0 / 10.0                   # USD contracts of 10 at the perp mark
    return pd.concat([opts, pd.DataFrame({"account": ["d"], "venue": ["deribit"],
                                          "symbol": ["BTC-PERPETUAL"], "size": [perp],
                                          "entry_price": [100_050.0]})], ignore_index=True), m


@pytest.mark.parametrize("symbols, sizes", [
    (["BTC-27MAR26-100000-P", "BTC-27MAR26-90000-P", "BTC-27MAR26-110000-C"],
     [-1.0, -0.5, -0.8]),                                                   # short strangle
    (["BTC-27MAR26-100000-P", "BTC-27MAR26-80000-P", "BTC-27MAR26-110000-C",
      "BTC-27MAR26-130000-C"], [-10.0, 10.0, -8.0, 8.0]),                  # short spreads
])
def test_delta_hedged_book_needs_less_than_standard_margin(symbols, sizes):
    book, m = _hedged(symbols, sizes)
    pm = pmnb.margin.compute(book, m, "deribit.portfolio")
    sm = pmnb.margin.compute(book, m, "deribit.standard")
    assert abs(pm.delta_total["BTC"]) < 1e-9
    assert 0 < pm.initial < 0.5 * sm.initial
    assert pm.maintenance == pytest.approx(0.8 * pm.initial, abs=1e-9)
    assert pm.equity == pytest.approx(sm.equity, rel=1e-12)          # same equity definition
    assert pm.delta_total["BTC"] == pytest.approx(sm.delta_total["BTC"], abs=1e-9)


def test_large_naked_short_puts_hit_the_extended_crash_scenario():
    # inverse puts are worth (K - F')/F' coin after a crash: -66 % turns 1 coin of ATM put
    # into ~1.9 coin; 10 contracts of a straddle exceed the dampener
    book, m = _hedged(["BTC-27MAR26-100000-P", "BTC-27MAR26-100000-C"], [-10.0, -10.0])
    r = pmnb.margin.compute(book, m, "deribit.portfolio")
    assert r.worst_scenario == "ext -66% vol up"
    assert any("extended table binds" in n for n in r.notes)
    sc = r.scenarios.loc["ext -66% vol up"]
    assert sc["counted"] == pytest.approx(min(0.0, sc["weight"] * sc["pnl"] + 100_000 / 1e5))


def _single(symbol, size):
    return _book([(symbol, size)])


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 500.0), st.floats(0.0, 500.0),
       st.sampled_from(["BTC-27MAR26-90000-P", "BTC-30JAN26-130000-C", "BTC-26JUN26-60000-P",
                        "BTC-PERPETUAL"]), st.sampled_from([-1.0, 1.0]))
def test_margin_non_decreasing_in_size(a, b, symbol, sign):
    lo, hi = sorted((a, b))
    scale = 1_000.0 if symbol == "BTC-PERPETUAL" else 1.0
    m = _market()
    r_lo = pmnb.margin.compute(_single(symbol, sign * lo * scale), m, "deribit.portfolio")
    r_hi = pmnb.margin.compute(_single(symbol, sign * hi * scale), m, "deribit.portfolio")
    assert r_lo.initial <= r_hi.initial and r_lo.maintenance <= r_hi.maintenance + 1e-15


def test_extended_table_binds_for_far_otm_short_calls():
    m = _market()
    r = pmnb.margin.compute(_single("BTC-30JAN26-130000-C", -2_000.0), m, "deribit.portfolio")
    assert r.worst_scenario.startswith("ext +")
    assert any("extended table binds" in n for n in r.notes)
    small = pmnb.margin.compute(_single("BTC-30JAN26-130000-C", -1.0), m, "deribit.portfolio")
    assert not small.worst_scenario.startswith("ext")            # the dampener absorbs it
    assert (small.scenarios["counted"].to_numpy()[27:] == 0).all()


def test_large_delta_gets_a_delta_shock():
    m = _market()
    r = pmnb.margin.compute(_single("BTC-PERPETUAL", 30_000_000.0), m, "deribit.portfolio")
    # 300M USD ≈ 2,998.5 BTC of delta, 20M USD ≈ 200 BTC threshold
    assert any("delta shock" in n for n in r.notes)
    off = pmnb.margin.compute(_single("BTC-PERPETUAL", 30_000_000.0), m,
                              pmnb.margin.get("deribit.portfolio", delta_shock_rule="none"))
    D = 300_000_000 / 100_050.0 - 20_000_000 / 100_000.0
    assert r.initial - off.initial == pytest.approx(D * min(0.00005 * D, 0.1), rel=1e-9)


# --- registry, errors, parameters ------------------------------------------------------------
def test_registered():
    assert "deribit.portfolio" in pmnb.margin.models()
    mdl = pmnb.margin.get("deribit.portfolio")
    assert isinstance(mdl, DeribitPortfolio)
    assert set(mdl.kinds) == {"option", "future", "perpetual"}
    assert mdl.params.rule_version and "pme/simulate" in mdl.params.source
    assert BTC_PM.rule_version and BTC_PM.source


def test_unsupported_kind_lists_supported():
    book = pd.DataFrame({"account": ["d"], "venue": ["deribit"], "symbol": ["BTC_USDC"],
                         "kind": ["spot"], "underlying": ["BTC"], "quote": ["USDC"],
                         "settlement": ["linear"], "size": [1.0]})
    with pytest.raises(ValidationError, match="option, future, perpetual"):
        pmnb.margin.compute(book, _market(), "deribit.portfolio")


def test_linear_and_orders_and_unknown_rules_raise():
    m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 1e5},
                              marks={"deribit:BTC_USDC-PERPETUAL": 1e5})
    lin = pd.DataFrame({"account": ["d"], "venue": ["deribit"],
                        "symbol": ["BTC_USDC-PERPETUAL"], "size": [1.0], "entry_price": [1e5]})
    with pytest.raises(ValidationError, match="linear"):
        pmnb.margin.compute(lin, m, "deribit.portfolio")
    orders = pd.DataFrame({"symbol": ["BTC-PERPETUAL"], "size": [10.0], "price": [99_000.0]})
    with pytest.raises(ValidationError, match="orders"):
        pmnb.margin.compute(_single("BTC-PERPETUAL", 1.0), _market(), "deribit.portfolio",
                            orders=orders)
    with pytest.raises(ValidationError, match="vol_shock_rule.*multiplicative, legacy"):
        pmnb.margin.compute(_single("BTC-PERPETUAL", 1.0), _market(),
                            pmnb.margin.get("deribit.portfolio", vol_shock_rule="cubic"))
    with pytest.raises(ValidationError, match="unknown parameter"):
        pmnb.margin.get("deribit.portfolio", price_range=0.2)


def test_eth_parameters_must_be_passed():
    m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"ETH": 3_000.0}, vols={"ETH": 0.6},
                              marks={"deribit:ETH-PERPETUAL": 3_000.0})
    book = pd.DataFrame({"account": ["e"], "venue": ["deribit"], "symbol": ["ETH-PERPETUAL"],
                         "size": [3_000.0], "entry_price": [3_000.0]})
    with pytest.raises(ValidationError, match="no portfolio-margin parameters for 'ETH'"):
        pmnb.margin.compute(book, m, "deribit.portfolio")
    eth = PMCurrencyParams(rule_version="user", source="illustrative", price_range=0.2)
    mdl = pmnb.margin.get("deribit.portfolio", currencies={**DEFAULT_CURRENCIES, "ETH": eth})
    r = pmnb.margin.compute(book, m, mdl)
    assert r.currency == "ETH"
    q = 3_000.0 / 3_000.0          # 3,000 × 1 USD at 3,000 = 1 ETH
    assert r.initial == pytest.approx(round(q * (1 / 0.8 - 1), 9) + q * 0.01, abs=1e-12)


def test_collateral_equity_and_mixed_currencies():
    m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 1e5, "ETH": 3e3},
                              vols={"BTC": 0.5}, marks={"deribit:BTC-PERPETUAL": 1e5,
                                                        "deribit:ETH-PERPETUAL": 3e3})
    book = pd.DataFrame({"account": ["d", "d"], "venue": ["deribit"] * 2,
                         "symbol": ["BTC-PERPETUAL", "ETH-PERPETUAL"], "size": [1e4, 1e3],
                         "entry_price": [9e4, 3e3]})
    coll = pd.DataFrame({"account": ["d", "d"], "asset": ["BTC", "ETH"], "balance": [2.0, 5.0]})
    with pytest.raises(ValidationError, match="currency=.*BTC.*ETH"):
        pmnb.margin.compute(book, m, "deribit.portfolio", account="d", collateral=coll)
    r = pmnb.margin.compute(book, m, pmnb.margin.get("deribit.portfolio", currency="BTC"),
                            account="d", collateral=coll)
    assert r.equity == pytest.approx(2.0 + 1e5 * (1 / 9e4 - 1 / 1e5))
    assert r.usd_per_unit == 1e5 and len(r.positions) == 1
    assert any("left out" in n for n in r.notes) and any("not counted" in n for n in r.notes)
