"""pmnb.scenarios: the positions × scenarios revaluation kernel against pmnb.price at the shocked
inputs, intrinsic settlement inside the horizon, the sigma-matrix path, thread independence,
parity on the grid, the tidy frame and validation."""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pmnb
from pmnb import ValidationError
from pmnb._core import _scenario
from pmnb.scenarios import grid_frame, revalue_grid

COMBOS = list(itertools.product(["bsm", "black76"], ["linear", "inverse"]))
SPOT = np.array([-0.5, -0.2, -0.05, 0.0, 0.03, 0.25, 1.0])
VOLS = np.array([-0.8, -0.1, 0.0, 0.2])          # -0.8 floors every sigma <= 0.8 at 0


def book(rng, n=700):
    """Random positions: more than one 512-row block; hours to years; some sigma = 0 and T = 0."""
    F = rng.uniform(20_000.0, 120_000.0, n)
    K = F * np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    T = np.exp(rng.uniform(np.log(1 / 8760), np.log(3.0), n))
    T[:5] = 0.0
    sigma = rng.uniform(0.05, 1.5, n)
    sigma[5:10] = 0.0
    r = rng.uniform(-0.01, 0.06, n)
    q = rng.uniform(-0.02, 0.04, n)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    qty = rng.normal(0.0, 3.0, n)
    return F, K, T, sigma, r, q, w, qty


def shocked_reference(F, K, T, sigma, r, q, w, qty, *, model, settlement, spot, vols, dt,
                      sigma_matrix=None):
    """pmnb.price at every shocked input, in the grid's order: (P', P0) of shape (n, n_scen)."""
    n, ns = len(F), len(spot) * len(vols)
    s_j = np.repeat(spot, len(vols))
    v_j = np.tile(vols, len(spot))
    xs = F[:, None] * (1.0 + s_j)[None, :]
    Ts = np.broadcast_to(np.maximum(T - dt, 0.0)[:, None], (n, ns))
    if sigma_matrix is None:
        ss = np.maximum(sigma[:, None] + v_j[None, :], 0.0)
    else:
        ss = np.broadcast_to(sigma_matrix, (n, ns))
    bc = [np.broadcast_to(a[:, None], (n, ns)) for a in (K, r, q, w)]
    p1 = pmnb.price(xs, bc[0], Ts, ss, bc[1], bc[2], option_type=bc[3], model=model,
                    settlement=settlement)
    p0 = pmnb.price(F, K, T, sigma, r, q, option_type=w, model=model, settlement=settlement)
    return p1, np.broadcast_to(p0[:, None], (n, ns))


def assert_pnl(got, qty, p1, p0, notional, rtol=1e-12, ntol=1e-16):
    """|got - qty (P' - P0)| <= |qty| (rtol max(|P'|, |P0|) + ntol notional).

    Relative to the values, not to the P&L, which is a difference and may cancel. The notional
    term (1e-16 of max(x', K), in the value's unit) only matters in the far tails: there two
    evaluations of the same compiled formula differ by more than 1e-12 relative depending on
    whether a row falls in a SIMD lane or in the loop's scalar tail (erfc of libmvec vs libm; seen
    up to 5e-9 relative at prices ~1e-200, 1.2e-12 at 7.8e-10 USD on a 76k forward), since
    d1 = log(x/K)/(sigma sqrt T) + ... amplifies rounding there.
    """
    ref = qty[:, None] * (p1 - p0)
    scale = np.abs(qty)[:, None] * (rtol * np.maximum(np.abs(p1), np.abs(p0)) + ntol * notional)
    bad = np.argwhere(~(np.abs(got - ref) <= scale))
    assert not len(bad), [(tuple(ij), got[tuple(ij)], ref[tuple(ij)]) for ij in bad[:5]]


def notional(x, K, spot, vols, settlement):
    """max(x', K) per (position, scenario), in coin for inverse settlement."""
    x1 = x[:, None] * (1.0 + np.repeat(spot, len(vols)))[None, :]
    m = np.maximum(x1, K[:, None])
    return m / x1 if settlement == "inverse" else m


# ---------------------------------------------------------------------------------------------
# 1. the grid is pmnb.price at the shocked inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,settlement", COMBOS)
@pytest.mark.parametrize("dt", [0.0, 7 / 365])
def test_grid_equals_price_at_shocked_inputs(rng, model, settlement, dt):
    F, K, T, sigma, r, q, w, qty = book(rng)
    got = revalue_grid(F, K, T, sigma, r, q, option_type=w, qty=qty, model=model,
                       settlement=settlement, spot_shocks=SPOT, vol_shocks=VOLS, time_shift=dt)
    assert got.shape == (len(F), len(SPOT) * len(VOLS)) and got.flags.c_contiguous
    p1, p0 = shocked_reference(F, K, T, sigma, r, q, w, qty, model=model, settlement=settlement,
                               spot=SPOT, vols=VOLS, dt=dt)
    assert_pnl(got, qty, p1, p0, notional(F, K, SPOT, VOLS, settlement))


@pytest.mark.parametrize("settlement", ["linear", "inverse"])
def test_bsm_with_zero_carry_yield_scalar(rng, settlement):
    """q = 0 uses the specialised bsm kernel; results still match pmnb.price."""
    F, K, T, sigma, r, _, w, qty = book(rng, 300)
    got = revalue_grid(F, K, T, sigma, r, option_type=w, qty=qty, model="bsm",
                       settlement=settlement, spot_shocks=SPOT, vol_shocks=VOLS)
    p1, p0 = shocked_reference(F, K, T, sigma, r, np.zeros_like(F), w, qty, model="bsm",
                               settlement=settlement, spot=SPOT, vols=VOLS, dt=0.0)
    assert_pnl(got, qty, p1, p0, notional(F, K, SPOT, VOLS, settlement))


def test_string_option_types_and_scalar_inputs():
    pnl = revalue_grid(100.0, 100.0, 1.0, 0.2, option_type="call", spot_shocks=0.1)
    ref = pmnb.price(110.0, 100.0, 1.0, 0.2, option_type="c") - pmnb.price(100.0, 100.0, 1.0, 0.2,
                                                                            option_type="c")
    assert pnl.shape == (1, 1) and pnl[0, 0] == pytest.approx(float(ref), rel=1e-13)
    both = revalue_grid(100.0, 100.0, 1.0, 0.2, option_type=np.array(["call", "PUT"]),
                        spot_shocks=[0.0, 0.1])
    assert both.shape == (2, 2)


def test_zero_scenario_is_exactly_zero(rng):
    F, K, T, sigma, r, q, w, qty = book(rng)
    for model, settlement in COMBOS:
        pnl = revalue_grid(F, K, T, sigma, r, q, option_type=w, qty=qty, model=model,
                           settlement=settlement, spot_shocks=[0.0, 0.1], vol_shocks=[0.0, 0.1])
        assert np.all(pnl[:, 0] == 0.0)


def test_matches_an_independent_numpy_grid(rng):
    """Black-76 coin values written out with numpy + scipy.special.ndtr."""
    from scipy.special import ndtr

    F, K, T, sigma, r, _, w, qty = book(rng, 200)
    T[:5] = 0.5
    sigma[5:10] = 0.3
    spot, vols = np.array([-0.1, 0.0, 0.2]), np.array([-0.05, 0.1])
    got = revalue_grid(F, K, T, sigma, r, option_type=w, qty=qty, settlement="inverse",
                       spot_shocks=spot, vol_shocks=vols)

    def v(x, s):
        sst = s * np.sqrt(T)[:, None]
        d1 = (np.log(x / K[:, None]) + 0.5 * sst * sst) / sst
        d2 = d1 - sst
        ww = w[:, None]
        usd = np.exp(-r * T)[:, None] * ww * (x * ndtr(ww * d1) - K[:, None] * ndtr(ww * d2))
        return usd / x

    x1 = F[:, None] * (1 + np.repeat(spot, 2))[None, :]
    p1 = v(x1, sigma[:, None] + np.tile(vols, 3)[None, :])
    p0 = v(F[:, None], sigma[:, None])
    assert_pnl(got, qty, p1, np.broadcast_to(p0, p1.shape), notional(F, K, spot, vols, "inverse"),
               rtol=1e-11)


@pytest.mark.parametrize("model", ["bsm", "black76"])
def test_put_call_parity_on_the_grid(rng, model):
    """C - P = DF (F - K) in USD, so pnl_call - pnl_put = qty e^{(b-r)T} x s for dt = 0."""
    F, K, T, sigma, r, q, _, qty = book(rng, 300)
    kw = dict(qty=qty, model=model, spot_shocks=SPOT, vol_shocks=VOLS)
    c = revalue_grid(F, K, T, sigma, r, q, option_type="call", **kw)
    p = revalue_grid(F, K, T, sigma, r, q, option_type="put", **kw)
    A = np.exp(-r * T) if model == "black76" else np.exp(-q * T)
    s_j = np.repeat(SPOT, len(VOLS))
    ref = (qty * A * F)[:, None] * s_j[None, :]
    scale = np.abs(qty * F * np.maximum(A, 1.0))[:, None] * 4.0
    assert np.all(np.abs((c - p) - ref) <= 1e-13 * scale)


@settings(max_examples=200, deadline=None)
@given(F=st.floats(1e-3, 1e9), k=st.floats(0.2, 5.0), T=st.floats(0.0, 10.0),
       sigma=st.floats(0.0, 5.0), r=st.floats(-0.1, 0.3), q=st.floats(-0.1, 0.3),
       w=st.sampled_from([1.0, -1.0]), s=st.floats(-0.99, 3.0), dv=st.floats(-1.0, 1.0),
       dt=st.floats(0.0, 2.0), model=st.sampled_from(["bsm", "black76"]),
       settlement=st.sampled_from(["linear", "inverse"]))
def test_property_single_revaluation_is_price_at_shocked_inputs(F, k, T, sigma, r, q, w, s, dv,
                                                                dt, model, settlement):
    K = F * k
    pnl = revalue_grid(F, K, T, sigma, r, q, option_type=w, qty=-2.5, model=model,
                       settlement=settlement, spot_shocks=s, vol_shocks=dv, time_shift=dt)
    kw = dict(option_type=w, model=model, settlement=settlement)
    p1 = pmnb.price(F * (1.0 + s), K, max(T - dt, 0.0), max(sigma + dv, 0.0), r, q, **kw)
    p0 = pmnb.price(F, K, T, sigma, r, q, **kw)
    x1 = np.array([F]) * (1.0 + s)
    nominal = max(x1[0], K) / (x1[0] if settlement == "inverse" else 1.0)
    assert_pnl(pnl, np.array([-2.5]), np.array([[float(p1)]]), np.array([[float(p0)]]),
               np.array([[nominal]]))


# ---------------------------------------------------------------------------------------------
# 2. options expiring inside the horizon settle at intrinsic value on the shocked forward
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,settlement", COMBOS)
def test_expiring_inside_horizon_settles_at_intrinsic(model, settlement):
    x = np.array([100.0, 100.0, 100.0, 100.0, 80.0, 125.0])
    K = np.array([90.0, 110.0, 90.0, 110.0, 100.0, 100.0])
    T = np.array([0.01, 0.01, 0.02, 0.02, 0.05, 0.05])   # dt = 0.02: all expire, two at exactly T
    w = np.array([1.0, -1.0, -1.0, 1.0, 1.0, -1.0])
    qty = np.array([1.0, -2.0, 3.0, 0.5, 1.0, -1.5])
    spot = np.array([-0.3, -0.1, 0.0, 0.1, 0.3])
    vols = np.array([0.0, 0.5])
    dt = 0.05
    pnl = revalue_grid(x, K, T, 0.7, 0.05, 0.01, option_type=w, qty=qty, model=model,
                       settlement=settlement, spot_shocks=spot, vol_shocks=vols, time_shift=dt)
    x1 = x[:, None] * (1.0 + np.repeat(spot, 2))[None, :]
    intrinsic = np.maximum(w[:, None] * (x1 - K[:, None]), 0.0)
    if settlement == "inverse":
        intrinsic = intrinsic / x1
    p0 = pmnb.price(x, K, T, 0.7, 0.05, 0.01, option_type=w, model=model, settlement=settlement)
    assert_pnl(pnl, qty, intrinsic, np.broadcast_to(p0[:, None], intrinsic.shape),
               notional(x, K, spot, vols, settlement), rtol=1e-14, ntol=0.0)


def test_zero_shocked_vol_takes_the_exact_limit():
    """sigma + dv <= 0 floors at 0: discounted forward intrinsic value (pmnb's sigma = 0 limit)."""
    F, K, T, r = 100.0, np.array([90.0, 110.0]), 0.5, 0.04
    pnl = revalue_grid(F, K, T, 0.3, r, option_type="call", spot_shocks=[0.0, 0.2],
                       vol_shocks=[-0.3, -1.0])
    p0 = pmnb.price(F, K, T, 0.3, r, option_type="call")
    for j, x1 in enumerate([100.0, 100.0, 120.0, 120.0]):
        ref = np.exp(-r * T) * np.maximum(x1 - K, 0.0) - p0
        np.testing.assert_allclose(pnl[:, j], ref, rtol=1e-14, atol=0)


# ---------------------------------------------------------------------------------------------
# 3. sigma matrix (sticky moneyness and other caller-computed vol rules)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,settlement", COMBOS)
def test_sigma_matrix_path(rng, model, settlement):
    F, K, T, sigma, r, q, w, qty = book(rng)
    ns = len(SPOT) * len(VOLS)
    sm = rng.uniform(0.0, 2.0, (len(F), ns))
    sm[::7, ::3] = 0.0
    got = revalue_grid(F, K, T, sigma, r, q, option_type=w, qty=qty, model=model,
                       settlement=settlement, spot_shocks=SPOT, vol_shocks=VOLS,
                       sigma_matrix=sm, time_shift=1 / 365)
    p1, p0 = shocked_reference(F, K, T, sigma, r, q, w, qty, model=model, settlement=settlement,
                               spot=SPOT, vols=VOLS, dt=1 / 365, sigma_matrix=sm)
    assert_pnl(got, qty, p1, p0, notional(F, K, SPOT, VOLS, settlement))


def test_sigma_matrix_of_the_parallel_shift_is_identical(rng):
    F, K, T, sigma, r, q, w, qty = book(rng)
    sm = np.maximum(sigma[:, None] + np.tile(VOLS, len(SPOT))[None, :], 0.0)
    kw = dict(option_type=w, qty=qty, spot_shocks=SPOT, vol_shocks=VOLS, settlement="inverse")
    a = revalue_grid(F, K, T, sigma, r, q, **kw)
    b = revalue_grid(F, K, T, sigma, r, q, **kw, sigma_matrix=sm)
    assert np.array_equal(a, b)


def test_sigma_matrix_broadcasts_from_one_row():
    sm = np.array([[0.5, 0.6, 0.7]])
    pnl = revalue_grid(100.0, [90.0, 110.0], 0.25, 0.5, option_type="put", spot_shocks=0.0,
                       vol_shocks=[0.0, 0.1, 0.2], sigma_matrix=sm)
    ref = revalue_grid(100.0, [90.0, 110.0], 0.25, 0.5, option_type="put", spot_shocks=0.0,
                       vol_shocks=[0.0, 0.1, 0.2])
    np.testing.assert_allclose(pnl, ref, rtol=1e-13, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# 4. threads and preallocated output
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sigma_matrix", [False, True])
def test_threads_give_identical_results(rng, sigma_matrix):
    F, K, T, sigma, r, q, w, qty = book(rng, 2_100)   # 5 blocks, the last one partial
    ns = len(SPOT) * len(VOLS)
    sm = rng.uniform(0.0, 2.0, (len(F), ns)) if sigma_matrix else None
    kw = dict(option_type=w, qty=qty, spot_shocks=SPOT, vol_shocks=VOLS, time_shift=0.01,
              sigma_matrix=sm, settlement="inverse")
    one = revalue_grid(F, K, T, sigma, r, q, **kw, n_threads=1)
    two = revalue_grid(F, K, T, sigma, r, q, **kw, n_threads=2)
    assert np.array_equal(one, two)
    # the compiled wrapper itself, forced to 2 and 3 threads regardless of size
    out = np.empty_like(one)
    s_j, v_j = np.repeat(SPOT, len(VOLS)), np.tile(VOLS, len(SPOT))
    for t in (2, 3):
        out[:] = np.nan
        _scenario.grid(1, 1, F, K, T, sigma, r, q, w, qty, s_j, None if sigma_matrix else v_j,
                       np.full(ns, 0.01), sm, out, t)
        assert np.array_equal(one, out)


def test_out_is_filled_and_returned(rng):
    F, K, T, sigma, r, q, w, qty = book(rng, 50)
    ref = revalue_grid(F, K, T, sigma, option_type=w, spot_shocks=SPOT, vol_shocks=VOLS)
    out = np.full(ref.shape, np.nan)
    res = revalue_grid(F, K, T, sigma, option_type=w, spot_shocks=SPOT, vol_shocks=VOLS, out=out)
    assert res is out and np.array_equal(out, ref)


def test_empty_book():
    pnl = revalue_grid(np.array([]), 100.0, 1.0, 0.5, option_type="call", spot_shocks=[0.1, 0.2])
    assert pnl.shape == (0, 2)


# ---------------------------------------------------------------------------------------------
# 5. tidy frame
# ---------------------------------------------------------------------------------------------
def test_grid_frame_order_matches_reshape(rng):
    F, K, T, sigma, r, q, w, qty = book(rng, 20)
    spot, vols = [-0.1, 0.0, 0.1], [-0.05, 0.05]
    pnl = revalue_grid(F, K, T, sigma, option_type=w, spot_shocks=spot, vol_shocks=vols)
    ids = [f"P{i:04d}" for i in range(20)]
    df = grid_frame(pnl, spot, vols, time_shift=0.0, index=ids)
    assert list(df.columns) == ["position", "scenario", "spot_shock", "vol_shock", "time_shift",
                                "pnl"]
    assert len(df) == 20 * 6
    cube = pnl.reshape(20, 3, 2)
    for row in df.sample(25, random_state=1).itertuples():
        i = ids.index(row.position)
        a, b = spot.index(row.spot_shock), vols.index(row.vol_shock)
        assert row.scenario == a * 2 + b and cube[i, a, b] == row.pnl
    piv = df.pivot_table(index="position", columns=["spot_shock", "vol_shock"], values="pnl")
    np.testing.assert_array_equal(piv.to_numpy(), pnl)


def test_grid_frame_validation():
    pnl = np.zeros((2, 6))
    with pytest.raises(ValidationError, match=r"pnl: got shape \(2, 6\).*\(n_positions, 4\)"):
        grid_frame(pnl, [0.1, 0.2], [0.0, 0.1])
    with pytest.raises(ValidationError, match="index: got 3 labels"):
        grid_frame(pnl, [0.1, 0.2, 0.3], [0.0, 0.1], index=["a", "b", "c"])


# ---------------------------------------------------------------------------------------------
# 6. validation
# ---------------------------------------------------------------------------------------------
BASE = dict(S_or_F=[100.0, 100.0], K=[90.0, 110.0], T=0.5, sigma=0.5)


def call(**over):
    kw = dict(BASE, option_type="call", spot_shocks=[-0.1, 0.1], vol_shocks=[0.0, 0.1])
    kw.update(over)
    return revalue_grid(kw.pop("S_or_F"), kw.pop("K"), kw.pop("T"), kw.pop("sigma"), **kw)


@pytest.mark.parametrize("over,field,pattern", [
    (dict(K=[90.0, -1.0]), "K", r"K: row 1 has -1.0; accepted: finite, 1e-12 <= K"),
    (dict(sigma=[0.5, np.nan]), "sigma", r"sigma: row 1 has nan"),
    (dict(T=[0.5, 101.0]), "T", r"T: row 1 has 101.0"),
    (dict(option_type=["call", "straddle"]), "option_type", r"option_type: row 1 has 'straddle'"),
    (dict(qty=[1.0, np.inf]), "qty", r"qty: row 1 has inf; accepted: finite"),
    (dict(spot_shocks=[0.1, -1.0]), "spot_shocks", r"spot_shocks: row 1 has -1.0; accepted:.*-1 <"),
    (dict(spot_shocks=[np.nan]), "spot_shocks", r"spot_shocks: row 0 has nan"),
    (dict(spot_shocks=[]), "spot_shocks", r"spot_shocks: got shape \(0,\)"),
    (dict(spot_shocks=[[0.1]]), "spot_shocks", r"spot_shocks: got shape \(1, 1\)"),
    (dict(spot_shocks="up"), "spot_shocks", r"spot_shocks: cannot be read as numbers"),
    (dict(vol_shocks=[0.0, 101.0]), "vol_shocks", r"vol_shocks: row 1 has 101.0"),
    (dict(time_shift=-0.1), "time_shift", r"time_shift: got -0.1; accepted: one finite number"),
    (dict(time_shift=[0.1, 0.2]), "time_shift", r"time_shift: got \[0.1, 0.2\]"),
    (dict(time_shift=np.nan), "time_shift", r"time_shift: got nan"),
    (dict(sigma_matrix=np.ones((2, 3))), "sigma_matrix", r"sigma_matrix: got shape \(2, 3\).*\(2, 4\)"),
    (dict(sigma_matrix=np.array([[0.5] * 4, [0.5, 0.5, -0.1, 0.5]])), "sigma_matrix",
     r"sigma_matrix: row \(1, 2\) has -0.1"),
    (dict(sigma_matrix=np.full((2, 4), np.nan)), "sigma_matrix",
     r"sigma_matrix: row \(0, 0\) has nan \(8 bad rows in all\)"),
    (dict(S_or_F=np.full((2, 2), 100.0)), "S_or_F", r"positions: the inputs broadcast to shape \(2, 2\)"),
    (dict(K=[90.0, 100.0, 110.0]), None, r"inputs do not broadcast together"),
    (dict(model="heston"), "model", r"model: got 'heston'; accepted: 'bsm', 'black76'"),
    (dict(settlement="coin"), "settlement", r"settlement: got 'coin'"),
    (dict(n_threads=0), "n_threads", r"n_threads: got 0"),
    (dict(out=np.empty((2, 3))), "out", r"out: accepted: a writeable C-contiguous float64 array of shape \(2, 4\)"),
    (dict(out=np.empty((4, 2)).T), "out", r"out: accepted"),
])
def test_validation_names_field_row_and_accepted(over, field, pattern):
    with pytest.raises(ValidationError, match=pattern) as exc:
        call(**over)
    assert exc.value.field == field


def test_validation_uses_pandas_labels():
    K = pd.Series([90.0, 0.0], index=["BTC-90k", "BTC-0"])
    with pytest.raises(ValidationError, match=r"K: row 'BTC-0' has 0.0") as exc:
        revalue_grid(100.0, K, 0.5, 0.5, option_type="call", spot_shocks=0.1)
    assert exc.value.row == "BTC-0"
    qty = pd.Series([1.0, np.nan], index=["a", "b"])
    with pytest.raises(ValidationError, match=r"qty: row 'b' has nan"):
        revalue_grid(100.0, [90.0, 95.0], 0.5, 0.5, option_type="call", qty=qty, spot_shocks=0.1)


def test_compiled_wrapper_rejects_wrong_shapes():
    a = np.ones(3)
    s = np.zeros(2)
    with pytest.raises(ValueError, match="differ in length"):
        _scenario.grid(1, 0, a, a, a, a, a, a, a, np.ones(2), s, s, s, None, np.empty((3, 2)), 1)
    with pytest.raises(ValueError, match="wrong shape"):
        _scenario.grid(1, 0, a, a, a, a, a, a, a, a, s, s, s, None, np.empty((3, 3)), 1)
    with pytest.raises(ValueError, match="required"):
        _scenario.grid(1, 0, a, a, a, a, a, a, a, a, s, None, s, None, np.empty((3, 2)), 1)


def test_public_functions_have_runnable_examples():
    import pmnb.scenarios as mod

    for name in mod.__all__:
        assert ">>> " in (inspect.getdoc(getattr(mod, name)) or ""), name


def test_subnormals_survive_the_scenario_extension():
    """The new extension links the fast-math library too: it must not turn on flush-to-zero."""
    import subprocess
    import sys

    code = ("import numpy as np\n"
            "from pmnb.scenarios import revalue_grid\n"
            "revalue_grid(np.full(600, 100.0), 90.0, 0.5, 0.5, option_type='call',\n"
            "             spot_shocks=[-0.1, 0.1], vol_shocks=[0.0, 0.1], n_threads=2)\n"
            "x = np.float64(2.2250738585072014e-308) / 4\n"
            "assert x > 0, x\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
