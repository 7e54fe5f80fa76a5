"""pmnb.pricing against independent references: 50-digit mpmath, Haug's published tables, QuantLib,
finite differences of pmnb's own prices, parity identities and hypothesis properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pmnb
from pmnb import GREEKS, ValidationError

from . import mp_reference as mpr

def assert_close(got, ref, rtol, atol, msg=""):
    """|got - ref| <= rtol |ref| + atol elementwise (atol may be an array)."""
    got, ref = np.asarray(got), np.asarray(ref)
    bad = np.flatnonzero(~(np.abs(got - ref) <= rtol * np.abs(ref) + atol))
    assert not len(bad), (msg, [(int(i), got.flat[i], ref.flat[i]) for i in bad[:5]])


COMBOS = list(itertools.product(["bsm", "black76"], ["linear", "inverse"]))

# ---------------------------------------------------------------------------------------------
# 1. 50-digit mpmath: price and all 13 greeks, both models, both settlements, calls and puts
# ---------------------------------------------------------------------------------------------
F0 = 100_000.0
GRID = list(itertools.product([0.5, 0.9, 1.0, 1.1, 2.0],          # K / x
                              [1 / 8760, 7 / 365, 1.0, 4.0],       # T: one hour ... four years
                              [0.05, 0.6, 3.0],                    # sigma 5% ... 300%
                              [1.0, -1.0]))                        # call, put


@pytest.mark.slow
@pytest.mark.parametrize("model,settlement", COMBOS)
def test_all_greeks_match_mpmath(model, settlement):
    K = np.array([F0 * k for k, *_ in GRID])
    T = np.array([g[1] for g in GRID])
    s = np.array([g[2] for g in GRID])
    w = np.array([g[3] for g in GRID])
    r, q = 0.03, 0.01
    got = pmnb.greeks(F0, K, T, s, r, q, option_type=w, model=model, settlement=settlement,
                      greeks="all")
    refs = [mpr.all_greeks(F0, k, t, ss, r, q, ww, model, settlement)
            for k, t, ss, ww in zip(K, T, s, w)]
    for name in GREEKS:
        ref = np.array([x[name] for x in refs])
        # "tiny" is judged against the largest value of the same greek at the same (T, sigma)
        scale = np.zeros_like(ref)
        for key in set(zip(T, s)):
            m = (T == key[0]) & (s == key[1])
            scale[m] = np.abs(ref[m]).max()
        err = np.abs(got[name] - ref)
        tol = 1e-12 * np.abs(ref) + 1e-14 * scale
        bad = np.flatnonzero(err > tol)
        assert not len(bad), (name, [(K[i] / F0, T[i], s[i], w[i], got[name][i], ref[i])
                                     for i in bad[:5]])


# ---------------------------------------------------------------------------------------------
# 2. Haug (1998/2007) tables as reproduced in QuantLib's test-suite/europeanoption.cpp
#    (../shared/reference/pricing.md §6). "exact" = 40-digit values.
# ---------------------------------------------------------------------------------------------
HAUG_PRICES = [
    # type, S, K, q, r, T, sigma, exact
    ("call", 60, 65, 0.00, 0.08, 0.25, 0.30, 2.133368444916),
    ("put", 100, 95, 0.05, 0.10, 0.50, 0.20, 2.464787646756),
    ("call", 1.56, 1.60, 0.08, 0.06, 0.50, 0.12, 0.029099253149),
    ("put", 75, 70, 0.05, 0.10, 0.50, 0.35, 4.086953828635),
    ("call", 42, 40, 0.08, 0.04, 0.75, 0.35, 5.097547717726),
    ("call", 90, 100, 0.10, 0.10, 0.10, 0.15, 0.020490148536),
    ("put", 110, 100, 0.10, 0.10, 0.10, 0.15, 0.040779057998),
    ("call", 110, 100, 0.10, 0.10, 0.50, 0.35, 15.308599761080),
    ("put", 90, 100, 0.10, 0.10, 0.50, 0.35, 14.445171675530),
]


@pytest.mark.parametrize("row", HAUG_PRICES)
def test_haug_prices(row):
    typ, S, K, q, r, T, s, exact = row
    got = float(pmnb.price(S, K, T, s, r, q, option_type=typ, model="bsm"))
    assert got == pytest.approx(exact, rel=1e-11)


def test_haug_black76_and_greeks():
    # Black-76, F = 19, K = 19, T = 0.75, r = 10%, sigma = 28% (Haug p. 2-8): call = put
    p = pmnb.price(19.0, 19.0, 0.75, 0.28, 0.10, option_type=["call", "put"])
    np.testing.assert_allclose(p, 1.701050725236, rtol=1e-11)
    # delta, b = 0 (futures option via BSM with q = r): 0.594628659730 / -0.356600764771
    d = pmnb.greeks(105.0, 100.0, 0.5, 0.36, 0.10, 0.10, option_type=["call", "put"],
                    model="bsm", greeks=("delta",))["delta"]
    np.testing.assert_allclose(d, [0.594628659730, -0.356600764771], rtol=1e-11)
    g = pmnb.greeks(55.0, 60.0, 0.75, 0.30, 0.10, 0.0, option_type="call", model="bsm",
                    greeks=("gamma", "vega"))
    assert float(g["gamma"]) == pytest.approx(0.027821160477, rel=1e-11)
    assert float(g["vega"]) == pytest.approx(18.935777349618, rel=1e-11)
    th = pmnb.greeks(430.0, 405.0, 1 / 12, 0.20, 0.07, 0.05, option_type="put", model="bsm",
                     greeks=("theta",))
    assert float(th["theta"]) == pytest.approx(-31.192350304271, rel=1e-11)
    th_day = pmnb.greeks(430.0, 405.0, 1 / 12, 0.20, 0.07, 0.05, option_type="put", model="bsm",
                         greeks=("theta",), units="desk")
    assert float(th_day["theta"]) == pytest.approx(-31.192350304271 / 365, rel=1e-11)
    rho = pmnb.greeks(72.0, 75.0, 1.0, 0.19, 0.09, 0.0, option_type="call", model="bsm",
                      greeks=("rho",))
    assert float(rho["rho"]) == pytest.approx(38.732505017329, rel=1e-11)


# ---------------------------------------------------------------------------------------------
# 3. QuantLib AnalyticEuropeanEngine (conventions and absolute values; whole-day T)
# ---------------------------------------------------------------------------------------------
def test_quantlib_engine(rng):
    ql = pytest.importorskip("QuantLib")  # installed by the test extra; never skipped in CI
    n = 300
    S = rng.uniform(20_000, 120_000, n)
    K = S * np.exp(rng.uniform(np.log(0.6), np.log(1.6), n))
    days = np.rint(np.exp(rng.uniform(0, np.log(730), n))).astype(int)
    T = days / 365.0
    s = rng.uniform(0.2, 1.5, n)
    r = rng.uniform(0, 0.05, n)
    q = rng.uniform(0, 0.02, n)
    call = rng.random(n) < 0.5
    got = pmnb.greeks(S, K, T, s, r, q, option_type=call, model="bsm")
    today = ql.Date(25, 11, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    for i in range(n):
        spot = ql.QuoteHandle(ql.SimpleQuote(S[i]))
        rts = ql.YieldTermStructureHandle(ql.FlatForward(today, r[i], dc))
        qts = ql.YieldTermStructureHandle(ql.FlatForward(today, q[i], dc))
        vts = ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), s[i], dc))
        proc = ql.BlackScholesMertonProcess(spot, qts, rts, vts)
        opt = ql.EuropeanOption(
            ql.PlainVanillaPayoff(ql.Option.Call if call[i] else ql.Option.Put, K[i]),
            ql.EuropeanExercise(today + int(days[i])))
        opt.setPricingEngine(ql.AnalyticEuropeanEngine(proc))
        ref = {"price": opt.NPV(), "delta": opt.delta(), "gamma": opt.gamma(),
               "vega": opt.vega(), "theta": opt.theta(), "rho": opt.rho()}
        for name, v in ref.items():
            # QuantLib builds N(-d) as 1 - N(d): absolute agreement, not relative in far tails
            scale = {"price": K[i], "delta": 1.0, "gamma": 1.0 / S[i], "vega": S[i],
                     "theta": S[i], "rho": K[i]}[name]
            assert got[name][i] == pytest.approx(v, rel=1e-8, abs=1e-12 * scale), (name, i)


# ---------------------------------------------------------------------------------------------
# 4. Central finite differences of pmnb's own prices (and of its lower greeks for third order)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,settlement", COMBOS)
def test_finite_differences(model, settlement, rng):
    n = 200
    x = rng.uniform(50, 150, n)
    K = x * np.exp(rng.uniform(-0.4, 0.4, n))
    T = rng.uniform(0.05, 2.0, n)
    s = rng.uniform(0.2, 1.2, n)
    r = rng.uniform(-0.01, 0.06, n)
    q = rng.uniform(0.0, 0.03, n)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    kw = dict(option_type=w, model=model, settlement=settlement, greeks="all")

    def G(**ch):
        a = dict(x=x, K=K, T=T, s=s, r=r, q=q)
        a.update(ch)
        return pmnb.greeks(a["x"], a["K"], a["T"], a["s"], a["r"], a["q"], **kw)

    g = G()

    def fd(name, var, h):
        """Five-point central stencil (truncation O(h^4))."""
        base = dict(x=x, K=K, T=T, s=s, r=r, q=q)[var]
        f = [G(**{var: base + k * h})[name] for k in (-2, -1, 1, 2)]
        return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)

    def dx(name):
        return fd(name, "x", 1e-3 * x)

    def ds(name):
        return fd(name, "s", 1e-3)

    def dT(name):
        return fd(name, "T", 1e-4)

    def dr(name):
        return fd(name, "r", 1e-4)

    inverse = settlement == "inverse"
    # the "delta" of an inverse option is x dV/dx (coin delta); spot greeks differentiate delta
    checks = {
        "delta": dx("price") * (x if inverse else 1.0),
        "gamma": dx("delta"), "speed": dx("gamma"),
        "vega": ds("price"), "volga": ds("vega"), "ultima": ds("volga"),
        "vanna": ds("delta"), "zomma": ds("gamma"),
        "theta": -dT("price"), "charm": -dT("delta"), "color": -dT("gamma"), "veta": -dT("vega"),
    }
    checks["rho"] = dr("price")
    for name, fdv in checks.items():
        scale = np.abs(g[name]).max()
        np.testing.assert_allclose(g[name], fdv, rtol=1e-7, atol=1e-9 * scale, err_msg=name)


# ---------------------------------------------------------------------------------------------
# 5. Identities and properties
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["bsm", "black76"])
def test_put_call_parity(model, rng):
    n = 1000
    x = rng.uniform(1, 1e5, n)
    K = x * np.exp(rng.uniform(-1, 1, n))
    T = rng.uniform(0, 5, n)
    s = rng.uniform(0, 3, n)
    r = rng.uniform(-0.02, 0.1, n)
    q = rng.uniform(0, 0.05, n)
    F = x if model == "black76" else x * np.exp((r - q) * T)
    df = np.exp(-r * T)
    kw = dict(model=model, greeks=("price", "delta", "gamma", "vega"))
    c = pmnb.greeks(x, K, T, s, r, q, option_type="call", **kw)
    p = pmnb.greeks(x, K, T, s, r, q, option_type="put", **kw)
    assert_close(c["price"] - p["price"], df * (F - K), 1e-12, 1e-12 * np.maximum(F, K))
    np.testing.assert_allclose(c["delta"] - p["delta"], df * F / x, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(c["gamma"], p["gamma"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(c["vega"], p["vega"], rtol=1e-12, atol=0)
    ci = pmnb.greeks(x, K, T, s, r, q, option_type="call", settlement="inverse", **kw)
    pi = pmnb.greeks(x, K, T, s, r, q, option_type="put", settlement="inverse", **kw)
    # coin parity: C_c - P_c = e^{-rT} (1 - K/F); coin deltas differ by e^{-rT} K/F
    assert_close(ci["price"] - pi["price"], df * (1 - K / F), 1e-12, 1e-12 * np.maximum(1, K / F))
    np.testing.assert_allclose(ci["delta"] - pi["delta"], df * K / F, rtol=1e-12, atol=1e-15)


def test_inverse_is_usd_over_forward_and_ntd(rng):
    n = 500
    F = rng.uniform(1000, 1e5, n)
    K = F * np.exp(rng.uniform(-0.7, 0.7, n))
    T = rng.uniform(1e-3, 2, n)
    s = rng.uniform(0.1, 2, n)
    lin = pmnb.greeks(F, K, T, s, option_type="put", greeks=("price", "delta", "vega"))
    inv = pmnb.greeks(F, K, T, s, option_type="put", settlement="inverse",
                      greeks=("price", "delta", "vega"))
    np.testing.assert_allclose(inv["price"], lin["price"] / F, rtol=1e-13)
    # Deribit: net transactional delta = Black delta - mark price in coin
    np.testing.assert_allclose(inv["delta"], lin["delta"] - lin["price"] / F, rtol=1e-11,
                               atol=1e-14)
    np.testing.assert_allclose(inv["vega"], lin["vega"] / F, rtol=1e-13)


finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(F=st.floats(1e-3, 1e7, **finite), m=st.floats(-2.5, 2.5, **finite),
       T=st.floats(1e-4, 10, **finite), s=st.floats(0.01, 4, **finite),
       r=st.floats(-0.05, 0.2, **finite))
def test_bounds_and_monotonicity(F, m, T, s, r):
    K = F * math.exp(m)
    df = math.exp(-r * T)
    c = float(pmnb.price(F, K, T, s, r, option_type="call"))
    p = float(pmnb.price(F, K, T, s, r, option_type="put"))
    tol = 1e-12 * max(F, K)
    assert df * max(F - K, 0) - tol <= c <= df * F + tol
    assert df * max(K - F, 0) - tol <= p <= df * K + tol
    # calls decrease and puts increase in K; both increase in sigma and (r = 0) in T
    c2 = float(pmnb.price(F, K * 1.01, T, s, r, option_type="call"))
    p2 = float(pmnb.price(F, K * 1.01, T, s, r, option_type="put"))
    assert c2 <= c + tol and p2 >= p - tol
    assert float(pmnb.price(F, K, T, s * 1.01, r, option_type="call")) >= c - tol
    c0 = float(pmnb.price(F, K, T, s, option_type="call"))
    assert float(pmnb.price(F, K, T * 1.01, s, option_type="call")) >= c0 - tol


@settings(max_examples=200, deadline=None)
@given(F=st.floats(1e-2, 1e6, **finite), m=st.floats(-2, 2, **finite),
       T=st.floats(1e-3, 5, **finite), s=st.floats(0.01, 3, **finite))
def test_black76_put_call_symmetry(F, m, T, s):
    # at r = 0, swapping F and K turns a call into a put: C(F, K) = P(K, F)
    K = F * math.exp(m)
    c = float(pmnb.price(F, K, T, s, option_type="call"))
    p = float(pmnb.price(K, F, T, s, option_type="put"))
    assert c == pytest.approx(p, rel=1e-11, abs=1e-13 * max(F, K))


# ---------------------------------------------------------------------------------------------
# 6. Units, limits, threads, out=
# ---------------------------------------------------------------------------------------------
def test_desk_units_scale_raw(rng):
    n = 50
    args = (rng.uniform(90, 110, n), 100.0, rng.uniform(0.1, 1, n), 0.5, 0.02, 0.01)
    raw = pmnb.greeks(*args, option_type="call", model="bsm", greeks="all")
    desk = pmnb.greeks(*args, option_type="call", model="bsm", greeks="all", units="desk")
    factor = {"price": 1, "delta": 1, "gamma": 1, "speed": 1, "vega": 100, "vanna": 100,
              "zomma": 100, "rho": 100, "volga": 1e4, "ultima": 1e6, "theta": 365,
              "charm": 365, "color": 365, "veta": 36500}
    for name, f in factor.items():
        np.testing.assert_allclose(desk[name] * f, raw[name], rtol=1e-14, err_msg=name)


@pytest.mark.parametrize("model,settlement", COMBOS)
def test_expiry_and_zero_vol_limits(model, settlement):
    x = np.array([120.0, 80.0, 100.0])
    K = 100.0
    kw = dict(model=model, settlement=settlement, greeks="all")
    for w in (1.0, -1.0):
        lim = pmnb.greeks(x, K, 0.0, 0.7, 0.03, 0.01, option_type=w, **kw)
        near = pmnb.greeks(x, K, 1e-14, 0.7, 0.03, 0.01, option_type=w, **kw)
        assert all(np.isfinite(v).all() for v in lim.values())
        intrinsic = np.maximum(w * (x - K), 0)
        expect = intrinsic / x if settlement == "inverse" else intrinsic
        np.testing.assert_allclose(lim["price"], expect, atol=1e-15)
        # away from the money, T -> 0 is continuous for price and delta
        np.testing.assert_allclose(lim["price"][:2], near["price"][:2], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(lim["delta"][:2], near["delta"][:2], rtol=1e-12, atol=1e-15)
        # at the money the delta limit is half the step
        atm = pmnb.greeks(100.0, 100.0, 0.0, 0.7, option_type=w, model=model, greeks=("delta",))
        assert float(atm["delta"]) == pytest.approx(0.5 * w)
        # sigma = 0 with time left: deterministic discounted forward intrinsic value
        z = pmnb.greeks(x, K, 0.5, 0.0, 0.03, 0.01, option_type=w, **kw)
        tiny = pmnb.greeks(x, K, 0.5, 1e-9, 0.03, 0.01, option_type=w, **kw)
        for name in ("price", "delta", "theta", "rho", "charm"):
            np.testing.assert_allclose(z[name][:2], tiny[name][:2], rtol=1e-9, atol=1e-12,
                                       err_msg=name)


def test_limit_rows_mixed_with_regular_rows():
    T = np.array([0.0, 0.5, 0.0, 0.25])
    s = np.array([0.5, 0.5, 0.0, 0.0])
    got = pmnb.greeks(110.0, 100.0, T, s, option_type="call", greeks="all")
    one = [pmnb.greeks(110.0, 100.0, t, v, option_type="call", greeks="all") for t, v in zip(T, s)]
    for name in GREEKS:
        np.testing.assert_array_equal(got[name], [float(o[name]) for o in one])


def test_threads_give_identical_results(rng):
    n = 50_001
    args = (rng.uniform(1e3, 1e5, n), rng.uniform(1e3, 1e5, n), rng.uniform(0, 2, n),
            rng.uniform(0.1, 2, n))
    a = pmnb.greeks(*args, option_type="call", greeks="all", n_threads=1)
    b = pmnb.greeks(*args, option_type="call", greeks="all", n_threads=2)
    c = pmnb.greeks(*args, option_type="call", greeks="all")
    for name in GREEKS:
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(a[name], c[name])


def test_out_buffers_and_broadcast_shape():
    out = {name: np.empty((3, 2)) for name in ("price", "delta")}
    res = pmnb.greeks([[90.0], [100.0], [110.0]], [95.0, 105.0], 0.5, 0.6, option_type="put",
                      greeks=("price", "delta"), out=out)
    assert res["price"].shape == (3, 2)
    assert np.shares_memory(res["price"], out["price"])
    np.testing.assert_array_equal(out["delta"], res["delta"])
    ref = pmnb.greeks(100.0, 105.0, 0.5, 0.6, option_type="put", greeks=("price",))["price"]
    # the price-only kernel and the greeks kernel may round the last bit differently
    assert out["price"][1, 1] == pytest.approx(float(ref), rel=1e-15)


def test_pandas_inputs_and_option_type_spellings():
    pd = pytest.importorskip("pandas")
    s = pd.Series([100.0, 100.0, 100.0, 100.0], index=list("abcd"))
    types = pd.Series(["Call", "P", "c", "PUT"], index=list("abcd"))
    got = pmnb.price(s, 90.0, 0.5, 0.5, option_type=types)
    ref = pmnb.price(100.0, 90.0, 0.5, 0.5, option_type=[1, -1, 1, -1])
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(ref, pmnb.price(100.0, 90.0, 0.5, 0.5,
                                                  option_type=[True, False, True, False]))


# ---------------------------------------------------------------------------------------------
# 7. Bad input: every validation path names the field, the row and the accepted range
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,pos,value", [
    ("S_or_F", 0, -1.0), ("S_or_F", 0, np.nan), ("K", 1, 0.0), ("K", 1, np.inf),
    ("T", 2, -0.1), ("T", 2, np.nan), ("sigma", 1, -0.2), ("sigma", 2, 1e9), ("r", 0, np.nan),
    ("r", 1, 3.0), ("q", 2, -np.inf),
])
def test_validation_names_field_and_row(field, pos, value):
    args = {"S_or_F": [100.0] * 3, "K": [100.0] * 3, "T": [0.5] * 3, "sigma": [0.5] * 3,
            "r": [0.0] * 3, "q": [0.0] * 3}
    args[field] = list(args[field])
    args[field][pos] = value
    with pytest.raises(ValidationError) as ei:
        pmnb.greeks(*args.values(), option_type="call", model="bsm")
    msg = str(ei.value)
    assert ei.value.field == field and ei.value.row == pos
    assert msg.startswith(f"{field}: row {pos} has ") and "accepted:" in msg


def test_validation_other_paths():
    with pytest.raises(ValidationError, match=r"option_type: row 1 has 'straddle'"):
        pmnb.price(100.0, 100.0, 1.0, 0.5, option_type=["call", "straddle"])
    with pytest.raises(ValidationError, match=r"option_type: row 0 has 2"):
        pmnb.price(100.0, 100.0, 1.0, 0.5, option_type=2)
    with pytest.raises(ValidationError, match="do not broadcast"):
        pmnb.price([1.0, 2.0], [1.0, 2.0, 3.0], 1.0, 0.5, option_type="call")
    with pytest.raises(ValidationError, match="model: got 'heston'"):
        pmnb.price(100.0, 100.0, 1.0, 0.5, option_type="call", model="heston")
    with pytest.raises(ValidationError, match="settlement"):
        pmnb.price(100.0, 100.0, 1.0, 0.5, option_type="call", settlement="quanto")
    with pytest.raises(ValidationError, match="greeks: unknown"):
        pmnb.greeks(100.0, 100.0, 1.0, 0.5, option_type="call", greeks=("delta", "lambda"))
    with pytest.raises(ValidationError, match="units"):
        pmnb.greeks(100.0, 100.0, 1.0, 0.5, option_type="call", units="bps")
    with pytest.raises(ValidationError, match="black76"):
        pmnb.greeks(100.0, 100.0, 1.0, 0.5, option_type="call", model="bsm", units="deribit")
    with pytest.raises(ValidationError, match="n_threads"):
        pmnb.price(100.0, 100.0, 1.0, 0.5, option_type="call", n_threads=0)
    with pytest.raises(ValidationError, match=r"S_or_F: cannot be read as numbers"):
        pmnb.price("abc", 100.0, 1.0, 0.5, option_type="call")
    with pytest.raises(ValidationError, match=r"out\['price'\]"):
        pmnb.greeks(100.0, [1.0, 2.0], 1.0, 0.5, option_type="call", greeks=("price",),
                    out={"price": np.empty(3)})
    # a 2-D input names the row as an index tuple; a Series by its label
    with pytest.raises(ValidationError, match=r"sigma: row \(1, 0\) has -1.0"):
        pmnb.price(100.0, 100.0, 1.0, [[0.5, 0.5], [-1.0, 0.5]], option_type="call")
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValidationError, match=r"K: row 'b' has -5.0"):
        pmnb.price(100.0, pd.Series([100.0, -5.0], index=["a", "b"]), 1.0, 0.5,
                   option_type="call")


def test_subnormals_survive_import_and_kernels():
    """Linking with -ffast-math would turn on flush-to-zero process-wide (crtfastmath.o)."""
    import subprocess
    import sys

    code = ("import numpy as np, pmnb\n"
            "pmnb.greeks(np.full(10_000, 100.0), 90.0, 0.5, 0.5, option_type='call', greeks='all')\n"
            "pmnb.implied_vol(12.0, 100.0, 100.0, 0.5, option_type='call')\n"
            "x = np.float64(2.2250738585072014e-308) / 4\n"
            "assert x > 0, x\n"
            "assert np.nextafter(0.0, 1.0) > 0\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_build_info_names_the_isa_clone():
    info = pmnb.pricing.build_info()
    assert info["isa"] in {"x86-64-v4", "x86-64-v3", "default", "native"}
    assert "-ffast-math" in info["cflags"] and "-O3" in info["cflags"]


# ---------------------------------------------------------------------------------------------
# 8. Implied volatility
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("model", ["black76", "bsm"])
def test_implied_vol_recovers_mpmath_prices(model, rng):
    n = 1500
    x = rng.uniform(1e3, 1e5, n)
    K = x * np.exp(rng.uniform(np.log(0.3), np.log(3), n))
    T = np.exp(rng.uniform(np.log(1 / 8760), np.log(5), n))
    s = rng.uniform(0.05, 3.0, n)
    r = rng.uniform(0, 0.05, n)
    q = rng.uniform(0, 0.02, n) if model == "bsm" else np.zeros(n)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    prices = np.array([float(mpr.usd_value(*a, model)) for a in zip(x, K, T, s, r, q, w)])
    res = pmnb.implied_vol(prices, x, K, T, r, q, option_type=w, model=model, errors="nan")
    F = x if model == "black76" else x * np.exp((r - q) * T)
    otm_twin = prices - np.exp(-r * T) * np.maximum(w * (F - K), 0)
    tradable = otm_twin >= 1e-4 * F
    assert tradable.sum() > 300
    assert np.all(res.reason[tradable] == pmnb.IVReason.OK)
    assert np.abs(res.vol - s)[tradable].max() <= 1e-12
    # coin prices give the same vols
    coin = pmnb.implied_vol(prices / F, x, K, T, r, q, option_type=w, model=model,
                            price_unit="coin", errors="nan")
    np.testing.assert_allclose(coin.vol[tradable], res.vol[tradable], rtol=0, atol=1e-12)


def test_implied_vol_round_trip_and_threads(rng):
    n = 60_000
    F = rng.uniform(2e4, 1.2e5, n)
    K = F * np.exp(rng.uniform(np.log(0.5), np.log(2), n))
    T = rng.integers(1, 731, n) / 365
    s = rng.uniform(0.2, 1.5, n)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    p = pmnb.price(F, K, T, s, option_type=w)
    a = pmnb.implied_vol(p, F, K, T, option_type=w, errors="nan", n_threads=1)
    b = pmnb.implied_vol(p, F, K, T, option_type=w, errors="nan", n_threads=2)
    np.testing.assert_array_equal(a.vol, b.vol)
    twin = p - np.maximum(w * (F - K), 0)
    ok = twin >= 1e-4 * F
    assert np.abs(a.vol - s)[ok].max() <= 1e-12


def test_implied_vol_bounds_and_reasons():
    F, K, T = 100_000.0, 80_000.0, 0.1
    intrinsic = F - K
    res = pmnb.implied_vol([intrinsic - 1.0, F + 1.0, intrinsic, 21_000.0], F, K, T,
                           option_type="call", errors="nan")
    assert [pmnb.IVReason(c) for c in res.reason] == [
        pmnb.IVReason.BELOW_INTRINSIC, pmnb.IVReason.ABOVE_MAXIMUM, pmnb.IVReason.NO_TIME_VALUE,
        pmnb.IVReason.OK]
    assert np.isnan(res.vol[:2]).all() and res.vol[2] == 0.0 and 0 < res.vol[3] < 3
    # a put above K is above its maximum
    put = pmnb.implied_vol(K + 1.0, F, K, T, option_type="put", errors="nan")
    assert put.reason == pmnb.IVReason.ABOVE_MAXIMUM
    # raise (default) names the rows and the reason
    with pytest.raises(pmnb.ValidationError) as ei:
        pmnb.implied_vol([21_000.0, intrinsic - 1.0, F + 1.0], F, K, T, option_type="call")
    msg = str(ei.value)
    assert "2 row(s)" in msg and "first row 1 (BELOW_INTRINSIC" in msg and ei.value.rows == [1, 2]
    # the tick rule: time value below one 0.0001-coin tick is not identifiable
    tick = pmnb.implied_vol(intrinsic + 0.5, F, K, T, option_type="call", errors="nan",
                            min_time_value=1e-4 * F)
    assert tick.reason == pmnb.IVReason.BELOW_TICK and np.isnan(tick.vol)


def test_implied_vol_validation():
    with pytest.raises(pmnb.ValidationError, match=r"T: row 1 has 0.0"):
        pmnb.implied_vol(10.0, 100.0, 100.0, [0.5, 0.0], option_type="call")
    with pytest.raises(pmnb.ValidationError, match=r"price: row 0 has nan"):
        pmnb.implied_vol([np.nan, 1.0], 100.0, 100.0, 0.5, option_type="call")
    with pytest.raises(pmnb.ValidationError, match=r"price: row 1 has -1.0"):
        pmnb.implied_vol([1.0, -1.0], 100.0, 100.0, 0.5, option_type="call")
    with pytest.raises(pmnb.ValidationError, match="price_unit"):
        pmnb.implied_vol(1.0, 100.0, 100.0, 0.5, option_type="call", price_unit="eur")
    with pytest.raises(pmnb.ValidationError, match="errors"):
        pmnb.implied_vol(1.0, 100.0, 100.0, 0.5, option_type="call", errors="ignore")
    with pytest.raises(pmnb.ValidationError, match="min_time_value"):
        pmnb.implied_vol(1.0, 100.0, 100.0, 0.5, option_type="call", min_time_value=-1)
    with pytest.raises(pmnb.ValidationError, match="do not broadcast"):
        pmnb.implied_vol([1.0, 2.0, 3.0], [100.0, 100.0], 100.0, 0.5, option_type="call")
    # price broadcasting against scalar other inputs
    v = pmnb.implied_vol([[5.0], [6.0]], 100.0, [100.0, 101.0], 0.5, option_type="call")
    assert v.shape == (2, 2)


@pytest.mark.parametrize("settlement", ["linear", "inverse"])
def test_bsm_zero_yield_kernel_matches_general_kernel(settlement, rng):
    """A scalar q = 0 selects a specialised kernel (one exp fewer); it must agree with the general
    kernel that reads q from an array, and with mpmath."""
    n = 2000
    S = rng.uniform(10, 1e5, n)
    args = (S, S * np.exp(rng.uniform(-1, 1, n)), rng.uniform(0, 3, n), rng.uniform(0.05, 2, n),
            rng.uniform(-0.02, 0.1, n))
    kw = dict(option_type=np.where(rng.random(n) < 0.5, 1.0, -1.0), model="bsm",
              settlement=settlement, greeks="all")
    special = pmnb.greeks(*args, 0.0, **kw)
    general = pmnb.greeks(*args, np.zeros(n), **kw)
    for name in GREEKS:
        scale = np.abs(general[name]).max()
        assert_close(special[name], general[name], 1e-13, 1e-15 * scale, name)
    one = mpr.all_greeks(S[0], args[1][0], args[2][0], args[3][0], args[4][0], 0.0,
                         kw["option_type"][0], "bsm", settlement)
    for name in GREEKS:
        assert special[name][0] == pytest.approx(one[name], rel=1e-12, abs=1e-14 * abs(S[0]))


def test_option_type_spellings_every_container():
    pd = pytest.importorskip("pandas")
    words = ["call", "Call", "CALL", "c", "C", "put", "Put", "PUT", "p", "P", "cal", "puts", "x", ""]
    expect = [1, 1, 1, 1, 1, -1, -1, -1, -1, -1, 0, 0, 0, 0]
    from pmnb.pricing import _option_sign

    for container in (np.array(words), np.array(words, dtype=object), pd.Series(words),
                      pd.Series(words, dtype="category"), pd.Series(words, dtype="string"),
                      np.array(words, dtype="U8"), np.array(words, dtype=">U4")):
        np.testing.assert_array_equal(_option_sign(container), expect, err_msg=str(container.dtype))
    # unrecognised spellings are rejected with the row named
    with pytest.raises(ValidationError, match=r"option_type: row 10 has 'cal'"):
        pmnb.price(100.0, 100.0, 1.0, 0.5, option_type=np.array(words))


def test_small_inputs_never_start_threads():
    from pmnb.pricing import _threads

    assert _threads(2, 1000) == 1 and _threads(None, 1000) == 1
    assert _threads(2, 100_000) == 2 and _threads(1, 10**6) == 1
    assert _threads(8, 50_000) == 2
