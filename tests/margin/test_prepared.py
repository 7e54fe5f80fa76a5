"""Prepared margin (pmnb.margin.prepare) and the compiled margin kernels.

The compiled per-instrument paths of deribit.standard and deribit.portfolio are checked against
the previous row-wise implementation (``_compute_reference``: pandas valuation and the public
scenario kernel on every position, itself tested against hand formulas and Deribit's published
vectors) on shocked markets, against the published vectors directly, and the kernels against the
public pricing and scenario functions."""

import inspect

import numpy as np
import pandas as pd
import pytest

import pmnb
import pmnb.margin
from pmnb._core import _margin
from pmnb.book import validate_positions
from pmnb.errors import ValidationError
from pmnb.margin.deribit_portfolio import shocked_vols
from pmnb.margin.deribit_standard import short_option_margin
from pmnb.margin.prepared import MarginState, PreparedMargin, option_table, symbol_groups
from pmnb.scenarios import revalue_grid

TS = "2026-01-01T08:00Z"
SHOCKS = (0.0, -0.35, -0.08, 0.12, 0.9)


def _market(**kw):
    return pmnb.Market.from_dict(
        TS, spots={"BTC": 100_000.0, "ETH": 3_000.0},
        forwards={"BTC": {"2026-03-27T08:00Z": 101_000.0, "2026-06-26T08:00Z": 103_000.0}},
        vols={"BTC": 0.55, "ETH": 0.7},
        marks={"deribit:BTC-PERPETUAL": 100_050.0, "deribit:BTC-27MAR26": 100_900.0,
               "deribit:BTC_USDC-PERPETUAL": 99_990.0}, **kw)


def _btc_book():
    """Calls and puts long and short, several rows of one instrument (netting, one netting to
    zero), a perpetual, a dated future, an expired option with its settlement price."""
    syms = ["BTC-27MAR26-90000-P", "BTC-27MAR26-90000-P", "BTC-27MAR26-120000-C",
            "BTC-26JUN26-100000-C", "BTC-26JUN26-70000-P", "BTC-26JUN26-70000-P",
            "BTC-PERPETUAL", "BTC-27MAR26", "BTC-PERPETUAL", "BTC-26DEC25-80000-C",
            "BTC-27MAR26-150000-C"]
    size = [-3.0, -1.5, 2.0, -4.0, 1.0, -1.0, 30_000.0, -20_000.0, 5_000.0, -1.0, -6.0]
    entry = [0.02, 0.03, 0.05, 0.1, 0.01, 0.02, 95_000.0, 98_000.0, 101_000.0, 0.1, 0.001]
    return pd.DataFrame({"account": "d", "venue": "deribit", "symbol": syms, "size": size,
                         "entry_price": entry,
                         "settlement_price": [np.nan] * 9 + [87_000.0, np.nan]})


COLL = pd.DataFrame({"account": ["d", "d"], "asset": ["BTC", "USDC"], "balance": [4.0, 1_000.0]})


def _same_report(a, b, rtol=1e-10):
    assert (a.model, a.rule_version, a.account, a.currency) == (
        b.model, b.rule_version, b.account, b.currency)
    for f in ("initial", "maintenance", "equity", "usd_per_unit"):
        assert getattr(a, f) == pytest.approx(getattr(b, f), rel=rtol, abs=1e-12), f
    assert a.notes == b.notes
    assert a.delta_total.keys() == b.delta_total.keys()
    for k in a.delta_total:
        assert a.delta_total[k] == pytest.approx(b.delta_total[k], rel=1e-10, abs=1e-12)
    pd.testing.assert_frame_equal(a.positions, b.positions, rtol=rtol, atol=1e-12)
    assert a.worst_scenario == b.worst_scenario
    if a.scenarios is None:
        assert b.scenarios is None
    else:
        pd.testing.assert_frame_equal(a.scenarios, b.scenarios, rtol=rtol, atol=1e-12)


# --- deribit.standard ------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"long_options": "mark"}, {"coin_price": "index"}])
@pytest.mark.parametrize("s", SHOCKS)
def test_standard_prepared_equals_reference_on_shocked_markets(params, s):
    m = _market()
    mdl = pmnb.margin.get("deribit.standard", **params)
    v = validate_positions(_btc_book())
    prep = pmnb.margin.prepare(_btc_book(), m, mdl, account="d", collateral=COLL)
    assert prep.compiled
    ref = mdl._compute_reference(v, m.shocked(s) if s else m, account="d",
                                 collateral=COLL)
    _same_report(prep.compute(s), ref)
    st = prep.evaluate(s)
    assert isinstance(st, MarginState)
    assert st == pytest.approx((ref.equity, ref.initial, ref.maintenance), rel=1e-10)
    assert prep.maintenance_gap([s])[0] == pytest.approx(ref.equity - ref.maintenance,
                                                         rel=1e-10, abs=1e-12)


def test_standard_compute_goes_through_the_compiled_path():
    m = _market()
    v = validate_positions(_btc_book())
    mdl = pmnb.margin.get("deribit.standard")
    _same_report(pmnb.margin.compute(_btc_book(), m, mdl, collateral=COLL),
                 mdl._compute_reference(v, m, collateral=COLL))


def test_standard_linear_usdc_perpetual_in_usdc():
    m = _market()
    book = pd.DataFrame({"account": "d", "venue": "deribit",
                         "symbol": ["BTC_USDC-PERPETUAL", "BTC_USDC-PERPETUAL"],
                         "size": [12.0, 13.0], "entry_price": [90_000.0, 95_000.0]})
    coll = pd.DataFrame({"account": ["d"], "asset": ["USDC"], "balance": [50_000.0]})
    mdl = pmnb.margin.get("deribit.standard")
    prep = pmnb.margin.prepare(book, m, mdl, collateral=coll)
    assert prep.compiled
    for s in SHOCKS:
        _same_report(prep.compute(s), mdl._compute_reference(
            validate_positions(book), m.shocked(s) if s else m, collateral=coll))
    # D2 [P]: 25 BTC at index 100,000: IM 2.125 % = 53,125 USDC, MM 1.125 % (at the index)
    r = prep.compute()
    assert r.currency == "USDC"
    assert r.initial == pytest.approx(25 * (0.02 + 25 * 0.00005) * 100_000.0, rel=1e-12)
    assert r.maintenance == pytest.approx(25 * (0.01 + 25 * 0.00005) * 100_000.0, rel=1e-12)


def test_standard_short_option_vectors_by_hand():
    """T-vectors' formula (margin.md §1.2) with the option's own Black-76 mark as m."""
    m = _market()
    book = pd.DataFrame({"account": "d", "venue": "deribit",
                         "symbol": ["BTC-27MAR26-110000-C", "BTC-27MAR26-95000-P",
                                    "BTC-27MAR26-130000-P"], "size": [-2.0, -3.0, -1.0]})
    r = pmnb.margin.prepare(book, m, "deribit.standard").compute(-0.05)
    F = 101_000.0 * 0.95
    mk = r.positions["mark"].to_numpy()
    T = (pd.Timestamp("2026-03-27T08:00Z") - pd.Timestamp(TS)).total_seconds() / (365 * 86400)
    px = pmnb.price(F, [110_000.0, 95_000.0, 130_000.0], T, 0.55, option_type=["call", "put",
                    "put"], settlement="inverse")
    np.testing.assert_allclose(mk, px, rtol=1e-12)
    otm = np.array([110_000 - F, max(F - 95_000, 0.0), 0.0])
    im = np.array([max(0.15 - otm[0] / F, 0.10) + mk[0],
                   max(max(0.15 - otm[1] / F, 0.10) + mk[1], max(0.075, 0.075 * mk[1]) + mk[1]),
                   max(max(0.15, 0.10) + mk[2], max(0.075, 0.075 * mk[2]) + mk[2])])
    mm = np.array([0.075 + mk[0], max(0.075, 0.075 * mk[1]) + mk[1],
                   max(0.075, 0.075 * mk[2]) + mk[2]])
    q = np.array([2.0, 3.0, 1.0])
    np.testing.assert_allclose(r.positions["initial"], q * im, rtol=1e-12)
    np.testing.assert_allclose(r.positions["maintenance"], q * mm, rtol=1e-12)
    assert mk[2] > 0.2                      # deep ITM put: the IM = max(.., MM) clause
    assert r.equity == pytest.approx(-(q * mk).sum(), rel=1e-12)


@pytest.fixture(scope="module")
def demo_market():
    return pmnb.demo.market(fit_vols=True)


def test_standard_many_rows_netted_like_the_reference(demo_market):
    rng = np.random.default_rng(5)
    chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    btc = chain[chain.currency == "BTC"].instrument_name.to_numpy()
    m = demo_market
    n = 3_000
    book = pd.DataFrame({"account": "d", "venue": "deribit",
                         "symbol": btc[rng.integers(0, 40, n)],
                         "size": np.round(rng.normal(0, 3, n), 1)})
    mdl = pmnb.margin.get("deribit.standard")
    v = validate_positions(book)
    prep = mdl.prepare(v, m)
    assert prep.compiled and len(prep.og) <= 40
    for s in (0.0, -0.2):
        _same_report(prep.compute(s), mdl._compute_reference(v, m.shocked(s) if s else m),
                     rtol=1e-9)


def test_standard_inconsistent_symbol_rows_take_the_generic_path():
    """Two rows of one symbol with different strikes (a user override) cannot share one
    lookup: the prepared account falls back to the row-wise model, same results."""
    m = _market()
    book = pd.DataFrame({"account": "d", "venue": "deribit",
                         "symbol": ["BTC-27MAR26-90000-P", "BTC-27MAR26-90000-P"],
                         "strike": [90_000.0, 95_000.0], "size": [-1.0, -1.0]})
    mdl = pmnb.margin.get("deribit.standard")
    prep = pmnb.margin.prepare(book, m, mdl)
    assert not prep.compiled
    _same_report(prep.compute(-0.1), mdl._compute_reference(validate_positions(book),
                                                            m.shocked(-0.1)))


# --- deribit.portfolio -----------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {}, {"vol_shock_rule": "legacy"}, {"extended_fraction": "one", "roll_shock_rule": "floor"},
    {"mmp_margin": 0.01, "open_orders_margin": 0.002, "delta_shock_rule": "none"}])
@pytest.mark.parametrize("s", SHOCKS)
def test_portfolio_prepared_equals_reference_on_shocked_markets(params, s):
    m = _market()
    mdl = pmnb.margin.get("deribit.portfolio", **params)
    v = validate_positions(_btc_book())
    prep = pmnb.margin.prepare(_btc_book(), m, mdl, collateral=COLL)
    assert prep.compiled
    ref = mdl._compute_reference(v, m.shocked(s) if s else m, collateral=COLL)
    _same_report(prep.compute(s), ref)
    st = prep.evaluate(s)
    assert st.initial == pytest.approx(ref.initial, abs=2e-9)   # both rounded to 9 decimals
    assert st.maintenance == pytest.approx(ref.maintenance, rel=1e-10)
    assert st.equity == pytest.approx(ref.equity, rel=1e-10)


def test_portfolio_legacy_vol_rule_exercises_the_limit_path():
    """Low vols under the legacy absolute shock floor sigma_down at 0: those scenarios are
    priced by the exact limit (intrinsic), as in the public scenario kernel."""
    m = _market().shocked(0.0, -0.4)          # vols 0.15: 0.15 - 0.38 (30/DTE)^0.3 < 0
    mdl = pmnb.margin.get("deribit.portfolio", vol_shock_rule="legacy")
    prep = pmnb.margin.prepare(_btc_book(), m, mdl)
    assert prep.compiled and prep.lim[3].all() and not prep.lim[:3].any()
    for s in (0.0, -0.2):
        _same_report(prep.compute(s), mdl._compute_reference(validate_positions(_btc_book()),
                                                             m.shocked(s) if s else m))


def test_portfolio_offset_cap_and_delta_shock_match_reference():
    cp = pmnb.margin.deribit_portfolio.PMCurrencyParams(pnl_offset=0.4, max_offsetable_pnl=50_000.0,
                                                        delta_total_liq_shock_threshold=1e5)
    mdl = pmnb.margin.get("deribit.portfolio", currencies={"BTC": cp})
    book = _btc_book().assign(size=lambda d: d["size"] * 40)
    m = _market()
    prep = pmnb.margin.prepare(book, m, mdl)
    for s in (0.0, 0.3):
        ref = mdl._compute_reference(validate_positions(book), m.shocked(s) if s else m)
        assert any("delta shock" in n for n in ref.notes)
        _same_report(prep.compute(s), ref)
        assert prep.evaluate(s).maintenance == pytest.approx(ref.maintenance, rel=1e-10)


def test_pm1_published_vector_through_the_prepared_path():
    """PM1 [P] (reference/margin.md §1.3): Deribit's private/pme/simulate example."""
    index, q_perp, q_fut = 65_666.19, 0.314538364, -0.001187534
    ts = pd.Timestamp("2024-06-28T08:00Z") - pd.Timedelta(days=10.9)
    m = pmnb.Market.from_dict(ts, spots={"BTC": index}, vols={"BTC": 0.5},
                              marks={"deribit:BTC-PERPETUAL": index,
                                     "deribit:BTC-28JUN24": index})
    book = pd.DataFrame({"account": ["d", "d"], "venue": ["deribit"] * 2,
                         "symbol": ["BTC-PERPETUAL", "BTC-28JUN24"],
                         "size": [q_perp * index / 10, q_fut * index / 10],
                         "entry_price": [index, index]})
    mdl = pmnb.margin.get("deribit.portfolio", mmp_margin=0.06, open_orders_margin=0.000018212)
    prep = pmnb.margin.prepare(book, m, mdl, account="d")
    assert prep.compiled
    st = prep.evaluate()
    assert st.initial == 0.122861343                              # published (9 decimals)
    assert st.maintenance == pytest.approx(0.050274504784, abs=1e-15)
    r = prep.compute()
    assert r.initial == 0.122861343 and r.worst_scenario == "-16% vol up"
    assert r.scenarios["counted"].iloc[0] == pytest.approx(-0.05968587238095239, abs=1e-15)
    assert r.positions["roll_shock"].sum() == pytest.approx(0.00315725898, abs=1e-17)


def test_portfolio_thousand_options_like_reference(demo_market):
    rng = np.random.default_rng(11)
    chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    btc = chain[chain.currency == "BTC"].instrument_name.to_numpy()
    m = demo_market
    book = pd.DataFrame({"account": "d", "venue": "deribit",
                         "symbol": btc[rng.integers(0, len(btc), 1_000)],
                         "size": np.round(rng.normal(0, 5, 1_000), 1) + 0.1})
    mdl = pmnb.margin.get("deribit.portfolio")
    v = validate_positions(book)
    prep = mdl.prepare(v, m)
    for s in (0.0, -0.25):
        _same_report(prep.compute(s), mdl._compute_reference(v, m.shocked(s) if s else m),
                     rtol=1e-9)


# --- generic models, errors, API --------------------------------------------------------------
def test_generic_prepared_recomputes_the_model():
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
                              marks={"binance:BTCUSDT": 60_000.0})
    book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
                         "size": [1.0], "entry_price": [60_000.0]})
    coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [3_000.0]})
    prep = pmnb.margin.prepare(book, m, "binance.usdm", collateral=coll)
    assert type(prep) is PreparedMargin and not prep.compiled
    for s in (0.0, -0.04):
        r = pmnb.margin.compute(book, m.shocked(s), "binance.usdm", collateral=coll)
        assert prep.evaluate(s) == (r.equity, r.initial, r.maintenance)
    # bracket 2 of L2 [C]: maintenance 0.5 % - 50 at 57,600
    assert prep.evaluate(-0.04).maintenance == pytest.approx(57_600 * 0.005 - 50, rel=1e-12)


@pytest.mark.parametrize("model", ["deribit.standard", "deribit.portfolio", "binance.usdm"])
def test_bad_moves_are_named(model):
    m = _market().with_marks({"binance:BTCUSDT": 1e5}, source="test")
    book = (_btc_book() if model.startswith("deribit") else pd.DataFrame(
        {"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"], "size": [1.0],
         "entry_price": [1e5]}))
    prep = pmnb.margin.prepare(book, m, model)
    with pytest.raises(ValidationError, match="spot_shock.*-1.5.*> -1"):
        prep.evaluate(-1.5)
    with pytest.raises(ValidationError, match="spot_shock"):
        prep.compute(float("nan"))
    with pytest.raises(ValidationError, match=r"spot_shocks.*row 1.*> -1"):
        prep.maintenance_gap([0.0, -1.0])


def test_prepare_raises_like_compute():
    m = _market()
    from pmnb.margin.deribit_standard import DEFAULT_FUTURES

    no_eth = pmnb.margin.get("deribit.standard",
                             futures={k: v for k, v in DEFAULT_FUTURES.items() if k != "ETH"})
    with pytest.raises(ValidationError, match="no futures margin rates for 'ETH'"):
        pmnb.margin.prepare(pd.DataFrame({"account": "d", "venue": "deribit",
                                          "symbol": ["ETH-PERPETUAL"], "size": [10.0],
                                          "entry_price": [3_000.0]}),
                            m.with_marks({"deribit:ETH-PERPETUAL": 3e3}, source="t"), no_eth)
    with pytest.raises(ValidationError, match="orders"):
        pmnb.margin.prepare(_btc_book(), m, "deribit.portfolio",
                            orders=pd.DataFrame({"x": [1]}))
    with pytest.raises(ValidationError, match="expired"):
        pmnb.margin.prepare(_btc_book().assign(settlement_price=np.nan), m, "deribit.standard")
    with pytest.raises(ValidationError, match="account: 'zz'"):
        pmnb.margin.prepare(_btc_book(), m, "deribit.standard", account="zz")


def test_symbol_groups_and_option_table():
    v = validate_positions(_btc_book())
    rep, inv, ok = symbol_groups(v)
    assert ok and len(rep) == 8
    syms = v["symbol"].astype(str).to_numpy()
    assert (syms[rep][inv] == syms).all()
    assert list(rep) == sorted(rep)                 # first appearance order
    m = _market()
    sub = v.iloc[rep[:3]]
    T = pmnb.book._expiry_T(sub, m)
    inst, lim0, F, sigma, Tt = option_table(sub, m, T)
    assert np.allclose(inst[0], np.log(F / inst[8])) and np.allclose(inst[1] * F, inst[8])
    assert (lim0 == 0).all() and (sigma == 0.55).all()


def test_public_names_have_examples():
    from pmnb.margin import prepared

    for obj in [pmnb.margin.prepare, pmnb.margin.text_codes, pmnb.margin.text_values,
                pmnb.margin.distinct_text, pmnb.margin.MarginModel.prepare,
                pmnb.margin.deribit_standard.DeribitStandard.prepare,
                pmnb.margin.deribit_portfolio.DeribitPortfolio.prepare,
                *[getattr(prepared, n) for n in prepared.__all__],
                *[getattr(PreparedMargin, n) for n in ("compute", "evaluate", "maintenance_gap",
                                                        "market_at")]]:
        assert ">>> " in (inspect.getdoc(obj) or ""), obj


# --- the kernels against the public pricing and scenario functions ----------------------------
def _instruments(rng, k, limit_every=0):
    F = rng.uniform(20_000, 150_000, k)
    K = F * np.exp(rng.uniform(np.log(0.4), np.log(2.5), k))
    T = rng.uniform(1 / 365, 2.0, k)
    sigma = rng.uniform(0.1, 1.5, k)
    if limit_every:
        sigma[::limit_every] = 0.0
    w = np.where(rng.random(k) < 0.5, 1.0, -1.0)
    return F, K, T, sigma, w


def _table(F, K, T, sigma, w, r, qty):
    """The kernels' instrument table built by hand (as option_table does from a book)."""
    inst = np.empty((_margin.INST_ROWS, len(F)))
    sst = sigma * np.sqrt(T)
    lim0 = ~(sst >= 1e-30)
    inst[:] = [np.log(F / K), K / F, w, np.exp(-r * T), qty, np.where(lim0, 1.0, sst), sigma,
               F, K, T]
    return inst, lim0.astype(np.uint8)


@pytest.mark.parametrize("k,limit_every", [(7, 0), (1_500, 0), (2_600, 7)])
def test_pm_kernel_matches_revalue_grid(k, limit_every):
    """Aggregated risk matrix of the margin kernel = qty-weighted sums of the public scenario
    kernel's P&L matrix (independent code path: pmnb_greeks at shocked inputs), at a common move
    f, with limit rows (sigma = 0) and more than one block; bit-identical for 1 and 2 threads."""
    rng = np.random.default_rng(k)
    F, K, T, sigma, w = _instruments(rng, k, limit_every)
    qty = rng.normal(0, 3, k)
    r = 0.03
    moves = np.array([-0.16, -0.08, 0.0, 0.0, 0.08, 0.16, -0.66, 1.0, 5.0])
    vcol = np.array([0, 1, 2, 1, 1, 0, 0, 2, 0], dtype=np.intc)
    sv = shocked_vols(sigma, T)
    sv[::5, 2] = 0.0                                       # scenario vols at 0: limit path
    inst, lim0 = _table(F, K, T, sigma, w, r, qty)
    sst = sv * np.sqrt(T)[:, None]
    vols = np.ascontiguousarray(np.vstack([np.where(sst >= 1e-30, sst, 1.0).T, sv.T]))
    lim = np.ascontiguousarray(np.vstack([lim0, (~(sst >= 1e-30)).T]).astype(np.uint8))
    f = 0.85
    out = {}
    for threads in (1, 2):
        v0, d, agg, mat = np.empty(k), np.empty(k), np.empty(len(moves)), np.empty((9, k))
        _margin.pm(f, moves, vcol, inst, vols, lim, r, v0, d, agg, mat, threads)
        out[threads] = (v0, d, agg, mat)
    for a, b in zip(out[1], out[2]):
        assert np.array_equal(a, b)
    v0, d, agg, mat = out[1]
    ref = revalue_grid(F * f, K, T, sigma, r, option_type=w, qty=qty, settlement="inverse",
                       spot_shocks=moves, sigma_matrix=sv[:, vcol])
    np.testing.assert_allclose(mat.T, ref, rtol=1e-9, atol=1e-12 * np.abs(qty).max())
    np.testing.assert_allclose(agg, ref.sum(axis=0), rtol=1e-9, atol=1e-9)
    assert (mat[3] == 0).all() and agg[3] == 0.0           # move 0, base vol: exactly zero
    g = pmnb.greeks(F * f, K, T, sigma, r, option_type=w, settlement="inverse",
                    greeks=("price", "delta"))
    np.testing.assert_allclose(v0, g["price"], rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(d, g["delta"], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("long_mark", [False, True])
def test_std_kernel_matches_public_formulas(long_mark):
    rng = np.random.default_rng(3)
    k = 2_100
    F, K, T, sigma, w = _instruments(rng, k, limit_every=11)
    net = np.round(rng.normal(0, 4, k), 1)
    r = 0.01
    inst, lim0 = _table(F, K, T, sigma, w, r, net)
    fs = np.array([0.5, 1.0, 1.7])
    out = np.empty((3, 3))
    v, im, mm = np.empty(k), np.empty(k), np.empty(k)
    _margin.std(fs, inst, lim0, r, 0.15, 0.10, 0.075, long_mark, out, v, im, mm, 1)
    out2 = np.empty((3, 3))
    _margin.std(fs, inst, lim0, r, 0.15, 0.10, 0.075, long_mark, out2, None, None, None, 2)
    assert np.array_equal(out, out2)
    for j, f in enumerate(fs):
        px = pmnb.price(F * f, K, T, sigma, r, option_type=w, settlement="inverse")
        a, b = short_option_margin(np.where(w > 0, "call", "put"), K, F * f, px)
        lng = np.abs(net) * px if long_mark else 0.0
        ref_im = np.where(net < 0, np.abs(net) * a, lng)
        ref_mm = np.where(net < 0, np.abs(net) * b, lng)
        assert out[j] == pytest.approx([net @ px, ref_im.sum(), ref_mm.sum()], rel=1e-11)
        if j == 2:
            np.testing.assert_allclose(v, px, rtol=1e-11, atol=1e-15)
            np.testing.assert_allclose(im, ref_im, rtol=1e-11, atol=1e-15)
            np.testing.assert_allclose(mm, ref_mm, rtol=1e-11, atol=1e-15)


def test_kernel_argument_checks():
    inst = np.zeros((_margin.INST_ROWS, 2))
    with pytest.raises(ValueError, match="vol column"):
        _margin.pm(1.0, np.zeros(1), np.array([3], dtype=np.intc), inst, np.ones((6, 2)),
                   np.zeros((4, 2), np.uint8), 0.0, np.empty(2), None, np.empty(1), None, 1)
    with pytest.raises(ValueError, match="shape"):
        _margin.std(np.ones(1), inst, np.zeros(3, np.uint8), 0.0, 0.15, 0.1, 0.075, False,
                    np.empty((1, 3)), None, None, None, 1)


def test_subnormals_survive_the_margin_extension():
    """The margin extension links the fast-math library: it must not turn on flush-to-zero."""
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from pmnb._core import _margin\n"
            "x = np.float64(2.2250738585072014e-308) / 4\n"
            "assert x > 0, x\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("model", ["deribit.standard", "deribit.portfolio"])
def test_other_currency_rows_left_out_like_the_reference(model):
    m = _market()
    book = pd.concat([_btc_book(), pd.DataFrame({
        "account": "d", "venue": ["deribit", "okx"], "symbol": ["ETH-27MAR26-3000-C",
                                                               "BTC-USD-260327-100000-P"],
        "size": [-5.0, 2.0]})], ignore_index=True)
    mdl = pmnb.margin.get(model, currency="BTC")
    prep = pmnb.margin.prepare(book, m, mdl, collateral=COLL)
    assert prep.compiled and len(prep.account_book) == len(book) > len(prep.book)
    r = prep.compute(-0.1)
    assert any("left out" in n for n in r.notes) and any("okx" in n for n in r.notes)
    _same_report(r, mdl._compute_reference(validate_positions(book), m.shocked(-0.1),
                                           collateral=COLL))
