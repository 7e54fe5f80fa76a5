"""pmnb.defi against independent references: Uniswap v3-core's TickMath test values, 50-digit
mpmath, hand-computed whitepaper amounts, the on-chain test seed's integer amounts, finite
differences of pmnb's own values, Aave's integer accrual formulas and hand-computed health factors
(margin.md §5.1), plus hypothesis properties for the identities."""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmnb import defi
from pmnb.defi import (
    MAX_SQRT_RATIO,
    MAX_TICK,
    MIN_SQRT_RATIO,
    MIN_TICK,
    RAY,
    SECONDS_PER_YEAR,
    aave_account,
    aave_balance,
    aave_health_factor,
    aave_normalized_debt,
    aave_normalized_income,
    lp_amounts,
    lp_delta,
    lp_gamma,
    lp_impermanent_loss,
    lp_value,
    price_to_sqrt_price_x96,
    price_to_tick,
    sqrt_price_x96_to_price,
    sqrt_price_x96_to_tick,
    tick_to_price,
    tick_to_sqrt_price_x96,
)
from pmnb.errors import ValidationError

mp.mp.dps = 50


def assert_close(got, ref, rtol, atol=0.0, msg=""):
    got, ref = np.asarray(got, dtype=float), np.asarray(ref, dtype=float)
    bad = np.flatnonzero(~(np.abs(got - ref) <= rtol * np.abs(ref) + atol))
    assert not len(bad), (msg, [(int(i), got.flat[i], ref.flat[i]) for i in bad[:5]])


# ---------------------------------------------------------------------------------------------
# 1. TickMath: known values from Uniswap/v3-core test/TickMath.spec.ts and TickMath.sol
# ---------------------------------------------------------------------------------------------
KNOWN_SQRT = {
    0: 2 ** 96,
    MIN_TICK: 4295128739,
    MIN_TICK + 1: 4295343490,
    MAX_TICK - 1: 1461373636630004318706518188784493106690254656249,
    MAX_TICK: 1461446703485210103287273052203988822378723970342,
}


def test_constants_match_tickmath_sol():
    assert (MIN_TICK, MAX_TICK) == (-887272, 887272)
    assert MIN_SQRT_RATIO == 4295128739
    assert MAX_SQRT_RATIO == 1461446703485210103287273052203988822378723970342
    assert (RAY, SECONDS_PER_YEAR) == (10 ** 27, 31_536_000)


@pytest.mark.parametrize("tick,expected", sorted(KNOWN_SQRT.items()))
def test_get_sqrt_ratio_at_tick_known_values(tick, expected):
    got = tick_to_sqrt_price_x96(tick)
    assert isinstance(got, int) and got == expected


def test_get_sqrt_ratio_at_tick_vectorised_and_extremes():
    ticks = np.array(sorted(KNOWN_SQRT))
    got = tick_to_sqrt_price_x96(ticks)
    assert got.dtype == object and got.shape == (5,)
    assert got.tolist() == [KNOWN_SQRT[t] for t in ticks]
    assert tick_to_sqrt_price_x96(MIN_TICK) == MIN_SQRT_RATIO
    assert tick_to_sqrt_price_x96(MAX_TICK) == MAX_SQRT_RATIO
    # same ticks in a 2-D layout, repeated values
    g2 = tick_to_sqrt_price_x96(np.array([[0, 0], [MIN_TICK, MAX_TICK]]))
    assert g2.shape == (2, 2) and g2[0, 1] == 2 ** 96 and g2[1, 1] == MAX_SQRT_RATIO


def test_sqrt_ratio_factors_are_the_rounded_powers():
    # the Q128.128 factors, recomputed independently at 100 digits with mpmath
    with mp.workdps(100):
        for k, f in enumerate(defi._FACTORS):
            exact = mp.mpf(2) ** 128 / mp.sqrt(mp.mpf("1.0001")) ** (2 ** k)
            assert f == int(mp.nint(exact)), k


@pytest.mark.parametrize("abs_tick", [50, 100, 250, 500, 1_000, 2_500, 3_000, 4_000, 5_000,
                                      50_000, 150_000, 250_000, 500_000, 738_203])
def test_sqrt_ratio_within_a_hundredth_of_a_bip(abs_tick):
    # TickMath.spec.ts: "is at most off by 1/100th of a bips"; we also hold it much tighter
    for tick in (-abs_tick, abs_tick):
        exact = mp.mpf("1.0001") ** (mp.mpf(tick) / 2) * mp.mpf(2) ** 96
        got = mp.mpf(tick_to_sqrt_price_x96(tick))
        assert abs(got - exact) / exact < 1e-6
        assert abs(got - exact) <= 1e-15 * exact + 1  # the result is an integer, rounded up


def test_get_tick_at_sqrt_ratio_known_values():
    assert sqrt_price_x96_to_tick(MIN_SQRT_RATIO) == MIN_TICK
    assert sqrt_price_x96_to_tick(4295343490) == MIN_TICK + 1
    assert sqrt_price_x96_to_tick(1461373636630004318706518188784493106690254656249) == MAX_TICK - 1
    assert sqrt_price_x96_to_tick(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    assert sqrt_price_x96_to_tick(2 ** 96) == 0
    assert sqrt_price_x96_to_tick(2 ** 96 + 1) == 0
    assert sqrt_price_x96_to_tick(2 ** 96 - 1) == -1
    assert sqrt_price_x96_to_tick("79228162514264337593543950336") == 0  # decimal string


@settings(max_examples=200, deadline=None)
@given(st.integers(MIN_TICK + 1, MAX_TICK - 1))
def test_tick_sqrt_ratio_round_trip(tick):
    s = tick_to_sqrt_price_x96(tick)
    assert sqrt_price_x96_to_tick(s) == tick
    assert sqrt_price_x96_to_tick(s - 1) == tick - 1
    assert tick_to_sqrt_price_x96(tick + 1) > s


def test_sqrt_price_x96_to_tick_array_and_tick_spec_ratios():
    # TickMath.spec.ts ratios: encodePriceSqrt(reserve1, reserve0) for 1e12:1 ... 1:1e12;
    # the tick is floor(log_1.0001(price)) within 1, and s lies in [sqrt(t), sqrt(t + 1))
    prices = [10 ** 12, 10 ** 6, 1 / 64, 1 / 8, 1 / 2, 1, 2, 8, 64, 1e-6, 1e-12]
    s = [price_to_sqrt_price_x96(p) for p in prices]
    ticks = sqrt_price_x96_to_tick(np.array(s, dtype=object))
    assert ticks.dtype == np.int64
    for p, si, t in zip(prices, s, ticks):
        assert abs(t - math.floor(mp.log(p) / mp.log(mp.mpf("1.0001")))) <= 1
        assert tick_to_sqrt_price_x96(int(t)) <= si < tick_to_sqrt_price_x96(int(t) + 1)


# ---------------------------------------------------------------------------------------------
# 2. Prices and ticks (floats)
# ---------------------------------------------------------------------------------------------
def test_tick_to_price_against_mpmath_and_decimals():
    ticks = np.array([MIN_TICK, -196256, -1, 0, 1, 13863, 196256, MAX_TICK])
    ref = [float(mp.mpf("1.0001") ** int(t)) for t in ticks]
    assert_close(tick_to_price(ticks), ref, 5e-16)
    # human units: raw x 10**(d0 - d1)
    assert_close(tick_to_price(ticks, 18, 6), np.array(ref) * 1e12, 1e-15)
    assert_close(tick_to_price(ticks, 6, 18), np.array(ref) / 1e12, 1e-15)
    # every tick of a fine sweep, to a few ulps (1.0001 ** tick in floats would miss by 1e-11)
    sweep = np.arange(MIN_TICK, MAX_TICK + 1, 4999)
    ref = [float(mp.mpf("1.0001") ** int(t)) for t in sweep]
    assert_close(tick_to_price(sweep), ref, 5e-16)
    # old TickMath spec: "tick for ratio ~2/1" at 13863 and ~4/1 at 27726 (square-root ratios)
    assert tick_to_sqrt_price_x96(13863) / 2 ** 96 == pytest.approx(2.0, rel=1e-4)
    assert tick_to_sqrt_price_x96(27726) / 2 ** 96 == pytest.approx(4.0, rel=1e-4)
    assert float(tick_to_price(13863)) == pytest.approx(4.0, rel=2e-4)


def test_price_to_tick_floor_semantics():
    t = np.arange(-1000, 1000, 7)
    p = tick_to_price(t)
    assert (price_to_tick(p) == t).all()
    assert (price_to_tick(p * (1 + 1e-9)) == t).all()
    assert (price_to_tick(p * (1 - 1e-9)) == t - 1).all()
    assert price_to_tick(tick_to_price(MIN_TICK)) == MIN_TICK
    assert price_to_tick(tick_to_price(MAX_TICK)) == MAX_TICK
    # human units: 3,000 USDC per WETH with token0 = WETH(18), token1 = USDC(6)
    t0 = int(price_to_tick(3000.0, 18, 6))
    assert tick_to_price(t0, 18, 6) <= 3000.0 < tick_to_price(t0 + 1, 18, 6)
    assert t0 == -196257


@settings(max_examples=200, deadline=None)
@given(st.floats(-80.0, 80.0), st.integers(0, 24), st.integers(0, 24))
def test_price_to_tick_brackets_price(log10p, d0, d1):
    p = 10.0 ** log10p
    lo, hi = tick_to_price(MIN_TICK, d0, d1), tick_to_price(MAX_TICK, d0, d1)
    if not lo <= p <= hi:
        with pytest.raises(ValidationError):
            price_to_tick(p, d0, d1)
        return
    t = int(price_to_tick(p, d0, d1))
    assert tick_to_price(t, d0, d1) <= p
    assert t == MAX_TICK or p < tick_to_price(t + 1, d0, d1)


def test_sqrt_price_conversions():
    assert price_to_sqrt_price_x96(1.0) == 2 ** 96
    assert price_to_sqrt_price_x96(0.25) == 2 ** 95
    s = price_to_sqrt_price_x96([2.0, 3000.0])
    assert s[0] == math.isqrt(2 << 192)  # floor(sqrt(2) * 2**96)
    # sqrtPriceX96 -> price, against the tick's float price (TickMath is within 1e-15 here)
    for t in (-196256, 0, 196256):
        assert float(sqrt_price_x96_to_price(tick_to_sqrt_price_x96(t))) == pytest.approx(
            float(tick_to_price(t)), rel=1e-14)
    # the on-chain seed (onchain.md App. B): USDC(6)/WETH(18) at tick 196256 = 3,000.10 USD/ETH
    p = float(sqrt_price_x96_to_price(tick_to_sqrt_price_x96(196256), 6, 18))
    assert 1 / p == pytest.approx(3000.1042904, rel=1e-9)
    # price -> sqrtPriceX96 -> price is the identity to float precision
    for price in (1e-30, 0.0003333, 1.0, 3000.1, 1e30):
        back = float(sqrt_price_x96_to_price(price_to_sqrt_price_x96(price)))
        assert back == pytest.approx(price, rel=1e-13)


# ---------------------------------------------------------------------------------------------
# 3. Liquidity positions: the whitepaper's amounts (eqs. 6.29 / 6.30) worked by hand
# ---------------------------------------------------------------------------------------------
# ETH/USDC-style pool with token0 = WETH (18 decimals), token1 = USDC (6 decimals); price = USDC
# per WETH. Position: L = 1e15 over ticks [-198080, -194720).
#   sqrt(Pa) = 1.0001**(-198080/2) = 4.99991359837e-5   (Pa = 2,499.9136 USDC/WETH after x 1e12)
#   sqrt(Pb) = 1.0001**(-194720/2) = 5.91453116663e-5   (Pb = 3,498.1679 USDC/WETH)
#   1/sqrt(Pa) = 20000.3456125, 1/sqrt(Pb) = 16907.5108716
# Raw price at 3,000 USDC/WETH: 3000 x 1e-12, sqrt(P) = 5.47722557505e-5, 1/sqrt(P) = 18257.4185835.
# Below (2,000):  x = L (1/sqrt(Pa) - 1/sqrt(Pb)) = 1e15 x 3092.8347409 = 3.09283474092e18 wei
#                 = 3.09283474092 WETH; y = 0                                          (6.30, 6.29)
# Inside (3,000): x = L (1/sqrt(P) - 1/sqrt(Pb)) = 1e15 x 1349.9077119 = 1.34990771195 WETH
#                 y = L (sqrt(P) - sqrt(Pa))     = 1e15 x 4.77311976679e-6 = 4,773.11976679 USDC
# Above (4,000):  x = 0; y = L (sqrt(Pb) - sqrt(Pa)) = 1e15 x 9.1461756826e-6 = 9,146.1756826 USDC
L0, TL, TU, D0, D1 = 1e15, -198080, -194720, 18, 6
HAND = {2000.0: (3.09283474092, 0.0), 3000.0: (1.34990771195, 4773.11976679),
        4000.0: (0.0, 9146.1756826)}


@pytest.mark.parametrize("price", sorted(HAND))
def test_whitepaper_amounts_hand_computed(price):
    a = lp_amounts(L0, TL, TU, price, D0, D1)
    x, y = HAND[price]
    assert float(a.amount0) == pytest.approx(x, rel=1e-10, abs=1e-12)
    assert float(a.amount1) == pytest.approx(y, rel=1e-10, abs=1e-9)
    # the raw-unit call gives the same amounts in wei / micro-USDC
    r = lp_amounts(L0, TL, TU, price * 1e-12)
    assert float(r.amount0) == pytest.approx(x * 1e18, rel=1e-10, abs=1e6)
    assert float(r.amount1) == pytest.approx(y * 1e6, rel=1e-10, abs=1e-3)


def _mp_amounts(L, tl, tu, P):
    sa, sb = mp.mpf("1.0001") ** (mp.mpf(tl) / 2), mp.mpf("1.0001") ** (mp.mpf(tu) / 2)
    sp = mp.sqrt(mp.mpf(P))
    s = min(max(sp, sa), sb)
    return L * (sb - s) / (s * sb), L * (s - sa)


def test_amounts_against_mpmath_grid():
    tl, tu = np.meshgrid([-5000, 0, 70000], [10, 500, 90000], indexing="ij")
    tu = tl + tu
    prices = np.array([1e-3, 0.7, 1.0, 1.3, 1e3, 1e5])[:, None, None]
    a = lp_amounts(123456.0, tl, tu, prices)
    assert a.amount0.shape == (6, 3, 3)
    for idx in np.ndindex(a.amount0.shape):
        x, y = _mp_amounts(mp.mpf(123456), int(tl[idx[1:]]), int(tu[idx[1:]]),
                           float(prices[idx[0], 0, 0]))
        assert_close(a.amount0[idx], float(x), 1e-12, 1e-300)
        assert_close(a.amount1[idx], float(y), 1e-12, 1e-300)


def test_on_chain_seed_integer_amounts():
    """onchain.md App. B: L = 1e15 in [195000, 197500) at tick 196256, integer formula."""
    q96 = 2 ** 96
    sa, sb = tick_to_sqrt_price_x96(195000), tick_to_sqrt_price_x96(197500)

    def integer_amounts(sp):  # the periphery's LiquidityAmounts logic, in exact integers
        L = 10 ** 15
        if sp <= sa:
            return (L * q96 * (sb - sa) // sb) // sa, 0
        if sp >= sb:
            return 0, L * (sb - sa) // q96
        return (L * q96 * (sb - sp) // sb) // sp, L * (sp - sa) // q96

    expected = {196256: (3302942121, 1111232528159857066), 190000: (6852821755, 0),
                199000: (0, 2282824474673933535)}
    for tick, amounts in expected.items():
        sp = tick_to_sqrt_price_x96(tick)
        assert integer_amounts(sp) == amounts
        a = lp_amounts(1e15, 195000, 197500, sqrt_price_x96_to_price(sp))
        assert_close([a.amount0, a.amount1], amounts, 1e-9, 1.0)
    # human units: 3,302.94 USDC and 1.1112 WETH
    h = lp_amounts(1e15, 195000, 197500, sqrt_price_x96_to_price(tick_to_sqrt_price_x96(196256),
                                                                  6, 18), 6, 18)
    assert (round(float(h.amount0), 2), round(float(h.amount1), 4)) == (3302.94, 1.1112)


def test_value_in_token1_and_real_reserves_identity():
    p = np.array([2600.0, 3000.0, 3400.0])
    v = lp_value(L0, TL, TU, p, D0, D1)
    a = lp_amounts(L0, TL, TU, p, D0, D1)
    assert_close(v, a.amount0 * p + a.amount1, 1e-15)
    # whitepaper real-reserves form, in human units L_h = L x 10**(-(d0 + d1)/2) = 1000
    lh = 1e15 * 1e-12
    sa = float(mp.sqrt(mp.mpf("1.0001") ** TL * 10 ** 12))
    sb = float(mp.sqrt(mp.mpf("1.0001") ** TU * 10 ** 12))
    assert_close(v, 2 * lh * np.sqrt(p) - lh * (sa + p / sb), 1e-13)
    # hand value at 3,000: 1.34990771195 x 3000 + 4773.11976679 = 8822.84290264
    assert float(lp_value(L0, TL, TU, 3000.0, D0, D1)) == pytest.approx(8822.84290264, rel=1e-10)


@settings(max_examples=300, deadline=None)
@given(st.integers(-400_000, 400_000), st.integers(1, 200_000), st.floats(-3.0, 3.0),
       st.floats(1.0, 1e25))
def test_amount_identities(tl, width, u, L):
    """Inside the range: the virtual reserves (x + L/sqrt(Pb))(y + L sqrt(Pa)) = L**2 with price
    (y + L sqrt(Pa)) / (x + L/sqrt(Pb)) = P (whitepaper eq. 2.2), and the real-reserves value."""
    tu = tl + width
    pa, pb = float(tick_to_price(tl)), float(tick_to_price(tu))
    P = pa * (pb / pa) ** ((u + 3.0) / 6.0)  # spans the range and a bit outside in log-price
    P = min(max(P, 2.0 ** -127), 2.0 ** 127)
    x, y = lp_amounts(L, tl, tu, P)
    v = float(lp_value(L, tl, tu, P))
    assert x >= 0 and y >= 0
    sa, sb, sp = math.sqrt(pa), math.sqrt(pb), math.sqrt(P)
    if pa < P < pb:
        X, Y = x + L / sb, y + L * sa
        assert X * Y == pytest.approx(L * L, rel=1e-9)
        assert Y / X == pytest.approx(P, rel=1e-9)
        assert v == pytest.approx(2 * L * sp - L * (sa + P / sb), rel=1e-9,
                                  abs=1e-9 * L * (sp + P / sb))
    # 1/sqrt(Pa) - 1/sqrt(Pb) cancels for narrow ranges (one tick: ~5e-5 relative), in this
    # reference as much as in the library, so the tolerance is that of the inside branch
    elif P <= pa:
        assert y == 0 and v == pytest.approx(L * (1 / sa - 1 / sb) * P, rel=1e-9)
    else:
        assert x == 0 and v == pytest.approx(L * (sb - sa), rel=1e-9)


def test_value_continuity_at_range_edges():
    for d0, d1, tl, tu, L in ((18, 6, TL, TU, L0), (0, 0, -100, 100, 1e6), (6, 18, 195000, 197500,
                                                                            1e15)):
        for edge_tick in (tl, tu):
            pe = float(tick_to_price(edge_tick, d0, d1))
            eps = 1e-9
            lo, at, hi = lp_value(L, tl, tu, [pe * (1 - eps), pe, pe * (1 + eps)], d0, d1)
            slope = float(lp_delta(L, tl, tu, pe, d0, d1)) * pe * eps
            assert abs(hi - at) <= 2 * abs(slope) + 1e-12 * abs(at)
            assert abs(at - lo) <= 2 * abs(slope) + 1e-12 * abs(at)
            # amounts are continuous too: one token is exactly exhausted at the edge
            a = lp_amounts(L, tl, tu, pe, d0, d1)
            if edge_tick == tl:
                assert float(a.amount1) <= 1e-12 * float(a.amount0) * pe
            else:
                assert float(a.amount0) * pe <= 1e-12 * float(a.amount1)


# ---------------------------------------------------------------------------------------------
# 4. Greeks: delta = amount0, gamma = -L / (2 P^1.5) inside, against central differences
# ---------------------------------------------------------------------------------------------
GREEK_CASES = [(L0, TL, TU, 18, 6), (1e15, 195000, 197500, 6, 18), (5e4, -3000, 2000, 0, 0),
               (1e20, 60, 120, 8, 18)]


@pytest.mark.parametrize("L,tl,tu,d0,d1", GREEK_CASES)
def test_delta_gamma_against_central_differences(L, tl, tu, d0, d1):
    pa, pb = float(tick_to_price(tl, d0, d1)), float(tick_to_price(tu, d0, d1))
    inside = pa * (pb / pa) ** np.linspace(0.05, 0.95, 9)
    outside = np.array([pa * 0.5, pa * 0.9, pb * 1.1, pb * 3.0])
    P = np.concatenate([inside, outside])
    v = lambda p: lp_value(L, tl, tu, p, d0, d1)  # noqa: E731
    h1 = P * 1e-5
    fd_delta = (v(P + h1) - v(P - h1)) / (2 * h1)
    delta = lp_delta(L, tl, tu, P, d0, d1)
    scale = float(np.abs(delta).max())
    assert_close(delta, fd_delta, 1e-7, 1e-9 * scale)
    h2 = P * 1e-3 * min(1.0, (pb / pa - 1) / 10)
    fd_gamma = (v(P + h2) - 2 * v(P) + v(P - h2)) / h2 ** 2
    gamma = lp_gamma(L, tl, tu, P, d0, d1)
    noise = 8 * np.finfo(float).eps * np.abs(v(P)) / h2 ** 2  # rounding in the 2nd difference
    assert_close(gamma, fd_gamma, 1e-4, noise + 1e-9 * float(np.abs(gamma).max()))
    # closed forms: delta is amount0, gamma = -L_h / (2 P^1.5) inside and exactly 0 outside
    assert (delta == lp_amounts(L, tl, tu, P, d0, d1).amount0).all()
    lh = L * 10.0 ** (-(d0 + d1) / 2)
    assert_close(gamma[:9], -lh / (2 * inside ** 1.5), 1e-12)
    assert (gamma[9:] == 0).all() and (gamma[:9] < 0).all()
    assert (delta[11:] == 0).all()  # above the range: all token1, no exposure


def test_gamma_edges_follow_active_range():
    pa, pb = float(tick_to_price(TL, D0, D1)), float(tick_to_price(TU, D0, D1))
    g = lp_gamma(L0, TL, TU, [pa, pb], D0, D1)
    assert g[0] == pytest.approx(-1000.0 / (2 * pa ** 1.5), rel=1e-12)  # tickLower is active
    assert g[1] == 0.0                                                   # tickUpper is not
    # delta is continuous at both edges
    d = lp_delta(L0, TL, TU, [pa * (1 - 1e-12), pa, pb, pb * (1 + 1e-12)], D0, D1)
    assert d[0] == pytest.approx(d[1], rel=1e-9) and d[2] == pytest.approx(0, abs=1e-9)


def test_greeks_broadcast_with_pandas_series():
    prices = pd.Series([2000.0, 3000.0, 4000.0], index=["lo", "mid", "hi"])
    d = lp_delta(L0, TL, TU, prices, D0, D1)
    assert isinstance(d, np.ndarray) and d.shape == (3,)
    assert_close(d, [HAND[2000.0][0], HAND[3000.0][0], 0.0], 1e-10, 1e-12)
    g = lp_gamma([L0, 2 * L0], TL, TU, [[3000.0], [3100.0]], D0, D1)
    assert g.shape == (2, 2) and g[0, 1] == pytest.approx(2 * g[0, 0], rel=1e-14)


# ---------------------------------------------------------------------------------------------
# 5. Impermanent loss
# ---------------------------------------------------------------------------------------------
def test_impermanent_loss_full_range_is_constant_product():
    r = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 10.0])
    il = lp_impermanent_loss(MIN_TICK, MAX_TICK, 1.0, r)
    assert_close(il, 2 * np.sqrt(r) / (1 + r) - 1, 1e-12, 1e-15)
    assert float(lp_impermanent_loss(MIN_TICK, MAX_TICK, 1.0, 4.0)) == pytest.approx(-0.2)


def test_impermanent_loss_concentrated_against_mpmath():
    p0, ps = 3000.0, [2000.0, 2600.0, 3000.0, 3400.0, 5000.0]
    il = lp_impermanent_loss(TL, TU, p0, ps, D0, D1)
    x0, y0 = _mp_amounts(1, TL, TU, mp.mpf(p0) * mp.mpf(10) ** -12)
    for p, got in zip(ps, il):
        pr = mp.mpf(p) * mp.mpf(10) ** -12
        x, y = _mp_amounts(1, TL, TU, pr)
        ref = (x * pr + y) / (x0 * pr + y0) - 1
        assert got == pytest.approx(float(ref), rel=1e-10, abs=1e-15)
    assert il[2] == 0.0 and (il <= 0).all()
    # narrower ranges lose more for the same move
    wide = lp_impermanent_loss(TL - 20000, TU + 20000, p0, 3400.0, D0, D1)
    assert il[3] < wide < 0


# ---------------------------------------------------------------------------------------------
# 6. Aave v3: scaled balances, accrual, health factor
# ---------------------------------------------------------------------------------------------
def _ray_mul(a: int, b: int) -> int:  # WadRayMath.rayMul, half up
    return (a * b + RAY // 2) // RAY


def _compounded(rate_ray: int, seconds: int) -> int:  # MathUtils (aave-v3-origin), integers
    if seconds == 0:
        return RAY
    x = rate_ray * seconds // SECONDS_PER_YEAR
    return RAY + x + _ray_mul(x, x // 2 + _ray_mul(x, x // 6))


def _linear(rate_ray: int, seconds: int) -> int:
    return RAY + rate_ray * seconds // SECONDS_PER_YEAR


def test_aave_accrual_hand_computed():
    # index 1.02, rate 5% for 30 days: x = 0.05 x 30/365 = 0.00410958904109589
    # income: 1.02 x (1 + x) = 1.02419178082192
    # debt:   1.02 x (1 + x + x^2/2 + x^3/6) = 1.02 x 1.00411804497 = 1.02420040586915
    t = 30 * 86400
    assert float(aave_normalized_income(1.02e27, 0.05, t)) / 1e27 == pytest.approx(
        1.02419178082192, rel=1e-14)
    assert float(aave_normalized_debt(1.02e27, 0.05, t)) / 1e27 == pytest.approx(
        1.02420040586915, rel=1e-14)
    # no time elapsed: the stored index
    assert float(aave_normalized_debt(1.3e27, 0.2, 0)) == 1.3e27


@pytest.mark.parametrize("rate_ray,seconds", [
    (3 * 10 ** 25, 1),
    (52_345_678_901_234_567_890_123_456, 12 * 3600),
    (10 ** 27, SECONDS_PER_YEAR),
    (2 * 10 ** 26, 400 * 86400),
])
def test_aave_accrual_matches_integer_formulas(rate_ray, seconds):
    idx = 1_034_567_891_234_567_890_123_456_789
    rate = rate_ray / 1e27
    inc = _ray_mul(_linear(rate_ray, seconds), idx)
    debt = _ray_mul(_compounded(rate_ray, seconds), idx)
    assert float(aave_normalized_income(idx, rate, seconds)) == pytest.approx(inc, rel=1e-15)
    assert float(aave_normalized_debt(idx, rate, seconds)) == pytest.approx(debt, rel=1e-15)
    # the third-order expansion stays below e^x, within x^4/24
    x = rate * seconds / SECONDS_PER_YEAR
    ratio = float(aave_normalized_debt(1e27, rate, seconds)) / 1e27
    assert 0 <= math.exp(x) - ratio <= x ** 4 / 24 * math.exp(x) + 1e-15


def test_aave_balance_scaled():
    # 1,000 USDC scaled (1e9 units, 6 decimals) at index 1.05 -> 1,050 USDC
    assert float(aave_balance(1_000_000_000, 1.05e27, 6)) == pytest.approx(1050.0, rel=1e-15)
    # raw units, and from integer chain reads (uint256) as Python ints
    got = aave_balance([10 ** 24, 123_456_789], [1_020_000_000_000_000_000_000_000_000, 10 ** 27])
    assert_close(got, [1.02e24, 123_456_789.0], 1e-15)
    # accrual then balance: the same scaled balance is worth more one year later
    i1 = aave_normalized_income(1e27, 0.04, SECONDS_PER_YEAR)
    assert float(aave_balance(5e18, i1, 18)) == pytest.approx(5.2, rel=1e-14)


# margin.md §5.1, table A1–A4; onchain.md App. B (20,000 USD collateral, LT 82.5%, 10,000 debt)
def test_health_factor_reference_cases():
    # A1: $10,000 ETH at LT 80%, $6,000 GHO debt -> 8,000 / 6,000 = 1.3333
    assert float(aave_health_factor(5.0, 2000.0, 0.80, 6000.0, 1.0)) == pytest.approx(4 / 3)
    # A2: 10 ETH @ 2,000 (LT 82.5%) + 10,000 USDC (LT 78%); debt 25,000
    #     (16,500 + 7,800) / 25,000 = 0.972
    hf = aave_health_factor([10.0, 10_000.0], [2000.0, 1.0], [0.825, 0.78], 25_000.0, 1.0)
    assert float(hf) == pytest.approx(0.972, rel=1e-14)
    # A3: ETH @ 1,800: (14,850 + 7,800) / 25,000 = 0.906
    hf = aave_health_factor([10.0, 10_000.0], [1800.0, 1.0], [0.825, 0.78], 25_000.0, 1.0)
    assert float(hf) == pytest.approx(0.906, rel=1e-14)
    # A4: 10 ETH, LT 82.5%, debt 12,000: HF = 1 at ETH = 12,000 / 8.25 = 1,454.5455
    assert float(aave_health_factor(10.0, 12_000 / 8.25, 0.825, 12_000.0, 1.0)) == pytest.approx(1)
    # onchain.md seed: HF 1.65e18 in WAD
    assert float(aave_health_factor(20_000.0, 1.0, 0.825, 10_000.0, 1.0)) == pytest.approx(1.65)


def test_health_factor_no_debt_scenarios_and_emode():
    assert float(aave_health_factor([1.0], [2000.0], [0.8], [0.0], [1.0])) == math.inf
    assert float(aave_health_factor(1.0, 2000.0, 0.8, [], [])) == math.inf
    assert float(aave_health_factor(0.0, 2000.0, 0.8, 100.0, 1.0)) == 0.0
    # scenarios x assets: prices (3 scenarios, 2 assets), debts in 2 assets
    prices = np.array([[2000.0, 1.0], [1500.0, 1.0], [1000.0, 0.99]])
    hf = aave_health_factor([10.0, 5000.0], prices, [0.825, 0.78], [8000.0, 2.0],
                            [[1.0, 2000.0], [1.0, 1500.0], [1.0, 1000.0]])
    num = 10 * prices[:, 0] * 0.825 + 5000 * prices[:, 1] * 0.78
    den = 8000 + 2 * prices[:, 0]
    assert hf.shape == (3,)
    assert_close(hf, num / den, 1e-14)
    # e-mode (hand): 10 wstETH @ 2,000 at the category's 93% instead of 81%, USDC at its own 78%,
    # debt 10 WETH @ 2,000: (18,600 + 7,800) / 20,000 = 1.32
    hf = aave_health_factor([10.0, 10_000.0], [2000.0, 1.0], [0.81, 0.78], 10.0, 2000.0,
                            emode_liquidation_threshold=0.93, in_emode=[True, False])
    assert float(hf) == pytest.approx(1.32, rel=1e-14)
    # default: every collateral asset in the category
    hf = aave_health_factor([10.0], [2000.0], [0.81], 10.0, 2000.0,
                            emode_liquidation_threshold=0.93)
    assert float(hf) == pytest.approx(0.93, rel=1e-14)


def test_aave_account_frame():
    pos = pd.DataFrame({
        "account": ["a", "a", "a", "b", "b", "b"],
        "side": ["supply", "Supply", "borrow", "supply", "supply", "debt"],
        # a: 10 WETH + 10,000 USDC, 25,000 USDC debt -> A2 (0.972); b: e-mode wstETH + idle USDC
        "scaled_balance": [10e18, 10_000e6, 25_000e6, 10e18, 10_000e6, 10e18],
        "index": [1e27, 1e27, 1e27, 1e27, 1e27, 1e27],
        "decimals": [18, 6, 6, 18, 6, 18],
        "price": [2000.0, 1.0, 1.0, 2000.0, 1.0, 2000.0],
        "liquidation_threshold": [0.825, 0.78, np.nan, 0.81, 0.78, np.nan],
        "usage_as_collateral": [True, True, False, True, False, False],
        "in_emode": [False, False, False, True, False, False],
    })
    # e-mode applies to account b only: evaluate each account with its own category
    a = aave_account(pos[pos.account == "a"].drop(columns="in_emode"))
    assert a["health_factor"] == pytest.approx(0.972, rel=1e-14)
    assert a["total_collateral_usd"] == pytest.approx(30_000.0)
    assert a["liquidation_threshold"] == pytest.approx(24_300 / 30_000)
    b = aave_account(pos[pos.account == "b"], emode_liquidation_threshold=0.93)
    # USDC not used as collateral: (10 x 2,000 x 0.93) / 20,000 = 0.93
    assert b["health_factor"] == pytest.approx(0.93, rel=1e-14)
    assert b["total_collateral_usd"] == pytest.approx(20_000.0)
    both = aave_account(pos.assign(in_emode=False), by="account")
    assert list(both.index) == ["a", "b"] and both.index.name == "account"
    assert both.loc["b", "health_factor"] == pytest.approx(0.81, rel=1e-14)
    # accrual through the index: the debt grows 5% -> HF falls by 1/1.05
    acc = aave_account(pos[pos.account == "a"].drop(columns="in_emode").assign(
        index=[1e27, 1e27, 1.05e27]))
    assert acc["health_factor"] == pytest.approx(0.972 / 1.05, rel=1e-14)
    # no debt
    only = aave_account(pos.iloc[:2].drop(columns="in_emode"))
    assert only["health_factor"] == math.inf and only["total_debt_usd"] == 0


# ---------------------------------------------------------------------------------------------
# 7. Validation: field, row and what is accepted
# ---------------------------------------------------------------------------------------------
def _raises(match, fn, *args, **kwargs):
    with pytest.raises(ValidationError, match=match) as info:
        fn(*args, **kwargs)
    return info.value


def test_validation_ticks():
    e = _raises(r"tick: row 1 has 887273.*accepted: integer ticks, -887272 <= tick <= 887272",
                tick_to_price, [0, 887273])
    assert (e.field, e.row) == ("tick", 1)
    _raises(r"tick: row 0 has 1\.5", tick_to_price, 1.5)
    _raises(r"tick: row 0 has -887273", tick_to_sqrt_price_x96, MIN_TICK - 1)
    _raises(r"tick: row 0 has 887273", tick_to_sqrt_price_x96, [MAX_TICK + 1])
    _raises(r"tick: row 0 has 0\.5", tick_to_sqrt_price_x96, 0.5)
    e = _raises(r"tick_upper: row 2 has 100.*tick_lower < tick_upper", lp_amounts,
                1.0, [0, 0, 100], [10, 20, 100], 1.0)
    assert e.row == 2
    _raises(r"tick_lower: row 0 has nan", lp_value, 1.0, np.nan, 10, 1.0)
    _raises(r"decimals0: row 0 has 6\.5.*integer token decimals", tick_to_price, 0, 6.5, 18)
    _raises(r"decimals1: row 0 has -1", lp_amounts, 1.0, 0, 10, 1.0, 0, -1)


def test_validation_prices_liquidity_and_labels():
    prices = pd.Series([3000.0, -1.0, 0.0], index=["eth", "bad", "zero"])
    e = _raises(r"price: row 'bad' has -1\.0 \(2 bad rows in all\); accepted: finite, price > 0",
                lp_value, 1e15, TL, TU, prices, 18, 6)
    assert e.row == "bad"
    _raises(r"price: row 0 has 1e\+40", lp_amounts, 1.0, 0, 10, 1e40)  # above 2**128 raw
    _raises(r"liquidity: row 1 has -5\.0.*0 <= liquidity <= 2\*\*128", lp_amounts,
            [1.0, -5.0], 0, 10, 1.0)
    _raises(r"liquidity: cannot be read as numbers", lp_amounts, [1.0, "lots"], 0, 10, 1.0)
    _raises(r"liquidity: got 'x'", lp_amounts, "x", 0, 10, 1.0)
    _raises(r"inputs do not broadcast together", lp_amounts, [1.0, 2.0], 0, 10, [1.0, 2.0, 3.0])
    _raises(r"price_entry: row 0 has 0\.0", lp_impermanent_loss, 0, 10, 0.0, 1.0)
    _raises(r"price: row 0 has", price_to_tick, 0.0)
    _raises(r"price: row 0 has", price_to_sqrt_price_x96, -2.0)
    # 2-D inputs name the row by its index tuple
    e = _raises(r"price: row \(1, 0\) has nan", lp_gamma, 1.0, 0, 10, [[1.0, 1.0], [np.nan, 1.0]])
    assert e.row == (1, 0)


def test_validation_sqrt_prices():
    _raises(r"sqrt_price_x96: row 0 has 4295128738.*4295128739 <= sqrt_price_x96",
            sqrt_price_x96_to_tick, MIN_SQRT_RATIO - 1)
    _raises(r"sqrt_price_x96: row 1 has 1461446703485210103287273052203988822378723970342",
            sqrt_price_x96_to_tick, [2 ** 96, MAX_SQRT_RATIO])
    _raises(r"sqrt_price_x96: row 0 has 1\.5", sqrt_price_x96_to_tick, 1.5)
    _raises(r"sqrt_price_x96: row 0 has 'abc'", sqrt_price_x96_to_tick, "abc")
    _raises(r"sqrt_price_x96: row 0 has 0", sqrt_price_x96_to_price, 0)


def test_validation_aave():
    # an index given as a decimal (1.05) instead of RAY
    _raises(r"index: row 0 has 1\.05; accepted: finite RAY-scaled index \(1e27 = 1\.0\)",
            aave_balance, 100.0, 1.05)
    # a RAY rate instead of an annualised decimal
    _raises(r"rate: row 0 has 3e\+25; accepted: finite annualised decimal.*RAY rate / 1e27",
            aave_normalized_debt, 1e27, 3e25, 10)
    _raises(r"seconds: row 1 has -1\.0", aave_normalized_income, 1e27, 0.03, [1, -1])
    _raises(r"scaled_balance: row 0 has -1\.0", aave_balance, -1.0, 1e27)
    # liquidation thresholds in basis points are refused with the conversion in the message
    e = _raises(r"liquidation_threshold: row 0 has 8250\.0; accepted: .*bps / 10,000",
                aave_health_factor, 1.0, 1.0, 8250, 1.0, 1.0)
    assert e.field == "liquidation_threshold"
    _raises(r"debt_price: row 0 has -1\.0", aave_health_factor, 1.0, 1.0, 0.8, 1.0, -1.0)
    _raises(r"collateral: row 1 has nan", aave_health_factor, [1.0, np.nan], 1.0, 0.8, 1.0, 1.0)
    _raises(r"emode_liquidation_threshold: row 0 has 9300\.0", aave_health_factor, 1.0, 1.0, 0.8,
            1.0, 1.0, emode_liquidation_threshold=9300)
    _raises(r"in_emode: given without emode_liquidation_threshold", aave_health_factor, 1.0, 1.0,
            0.8, 1.0, 1.0, in_emode=True)
    _raises(r"leading axes do not broadcast", aave_health_factor, np.ones((3, 2)), 1.0, 0.8,
            np.ones((4, 1)), 1.0)


def test_validation_aave_account():
    good = pd.DataFrame({"side": ["supply", "borrow"], "scaled_balance": [1e18, 1e6],
                         "index": [1e27, 1e27], "decimals": [18, 6], "price": [2000.0, 1.0],
                         "liquidation_threshold": [0.8, np.nan]}, index=["weth", "usdc"])
    assert aave_account(good)["health_factor"] == pytest.approx(1600.0)
    _raises(r"positions: got dict", aave_account, {"side": []})
    _raises(r"positions: missing column\(s\) \['price'\]", aave_account, good.drop(columns="price"))
    _raises(r"missing column\(s\) \['acct'\]", aave_account, good, by="acct")
    e = _raises(r"side: row 'usdc' has 'lend'; accepted: 'supply'", aave_account,
                good.assign(side=["supply", "lend"]))
    assert e.row == "usdc"
    _raises(r"index: row 'usdc' has 1\.0", aave_account, good.assign(index=[1e27, 1.0]))
    _raises(r"liquidation_threshold: row 'weth' has 82\.5", aave_account,
            good.assign(liquidation_threshold=[82.5, np.nan]))
    _raises(r"liquidation_threshold: column missing", aave_account,
            good.drop(columns="liquidation_threshold"))
    _raises(r"in_emode: True rows without emode_liquidation_threshold", aave_account,
            good.assign(in_emode=[True, False]))
    _raises(r"price: row 'weth' has -2000\.0", aave_account, good.assign(price=[-2000.0, 1.0]))
