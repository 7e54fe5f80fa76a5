"""pmnb.vol: raw SVI fit, arbitrage checks, surface interpolation, and fits of real Deribit chains.

Independent references: the quasi-explicit inner solve against scipy's bounded linear least squares;
Gatheral–Jacquier's g(k) against the density obtained by finite differences of pmnb call prices;
the real fits against the market's own bid/ask implied-vol bands with strikes held out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import lsq_linear

import pmnb
from pmnb.errors import ValidationError
from pmnb.vol import (SVIParams, SVISlice, SVISurface, butterfly_check, chain_quotes, fit_svi,
                      fit_svi_surface, svi_total_variance)
from pmnb.vol.svi import LEE_SLOPE, _inner, fit_svi_slices

VOGT = SVIParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)  # GJ 2014, §2.2
BENIGN = SVIParams(a=0.04, b=0.4, rho=-0.4, m=0.0, sigma=0.1)

TRUE_SETS = [
    SVIParams(0.02, 0.3, -0.5, 0.05, 0.2),          # a > 0, equity-like skew
    SVIParams(-0.01, 0.5, 0.3, -0.1, 0.3),          # a < 0, right skew
    SVIParams(1e-4, 0.002, -0.6, 0.01, 0.02),       # one-day crypto smile (tiny variance)
    SVIParams(0.1, 1.2, 0.5, 0.3, 0.05),            # sharp vertex, steep wings
    SVIParams(-0.05, 0.15, -0.08, 0.05, 0.6),       # long expiry, wide vertex
]


# --------------------------------------------------------------------------------------------
# synthetic: parameter recovery and the quasi-explicit inner problem
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("true", TRUE_SETS, ids=range(len(TRUE_SETS)))
def test_recovers_exact_smile(true, rng):
    k = np.sort(rng.uniform(-0.9, 0.7, 25))
    w = true.total_variance(k)
    fit = fit_svi(k, w)
    assert np.abs(fit.as_array() - true.as_array()).max() < 1e-8, (fit, true)
    # arbitrary positive weights change nothing for exact data
    fit_w = fit_svi(k, w, weights=rng.uniform(0.1, 10.0, k.size))
    assert np.abs(fit_w.as_array() - true.as_array()).max() < 1e-8


def test_batched_fit_equals_single_fits(rng):
    ks = [np.sort(rng.uniform(-0.5, 0.5, n)) for n in (7, 19, 40)]
    sl = [(k, p.total_variance(k), None) for k, p in zip(ks, TRUE_SETS)]
    batch = fit_svi_slices(sl)
    for (k, w, _), b, p in zip(sl, batch, TRUE_SETS):
        assert np.abs(b.as_array() - p.as_array()).max() < 1e-8
        assert np.abs(b.as_array() - fit_svi(k, w).as_array()).max() < 1e-10


def test_quasi_explicit_inner_matches_bounded_lstsq(rng):
    """For fixed (m, sigma) the inner problem is a box-constrained linear least squares in
    (a, U, V); compare with scipy.optimize.lsq_linear on random data and candidates."""
    n = 30
    k = np.sort(rng.uniform(-0.6, 0.6, n))
    wt = rng.uniform(0.2, 2.0, n)
    wt /= wt.sum()
    for trial in range(40):
        v = 0.05 + 0.3 * (k - rng.uniform(-0.2, 0.2)) ** 2 + rng.normal(0, 0.01, n)
        if trial % 3 == 0:  # slopes beyond Lee's bound: the box becomes active
            v = 0.05 + 3.0 * np.abs(k) + rng.normal(0, 0.01, n)
        m, s = rng.uniform(-0.3, 0.3), rng.uniform(0.01, 1.0)
        a, U, V, f = (x[0, 0] for x in _inner(k[None, None], v[None, None], wt[None, None],
                                               np.array([[m]]), np.array([[s]])))
        x = k - m
        R = np.sqrt(x * x + s * s)
        A = np.column_stack([np.ones(n), 0.5 * (R + x), 0.5 * (R - x)]) * np.sqrt(wt)[:, None]
        ref = lsq_linear(A, v * np.sqrt(wt), bounds=([-np.inf, 0, 0], [np.inf, LEE_SLOPE,
                                                                       LEE_SLOPE]),
                         method="bvls", tol=1e-14)
        if ref.x[0] + s * np.sqrt(ref.x[1] * ref.x[2]) < 0:
            continue  # reference violates the vertex constraint; pmnb must then be worse-or-equal
        assert 0 <= U <= LEE_SLOPE and 0 <= V <= LEE_SLOPE
        assert a + s * np.sqrt(U * V) >= 0
        assert np.allclose([a, U, V], ref.x, atol=1e-8), (trial, [a, U, V], ref.x)
        assert f == pytest.approx(2 * ref.cost, rel=1e-8, abs=1e-15)


def test_fit_respects_bounds_on_noisy_data(rng):
    k = np.linspace(-0.4, 0.4, 21)
    for _ in range(10):
        true = SVIParams(rng.uniform(0.001, 0.02), rng.uniform(0.02, 0.3), rng.uniform(-0.8, 0.8),
                         rng.uniform(-0.1, 0.1), rng.uniform(0.02, 0.3))
        w = true.total_variance(k) * np.exp(rng.normal(0, 0.05, k.size))
        p = fit_svi(k, w)
        assert p.b >= 0 and abs(p.rho) < 1 and p.sigma > 0
        assert p.min_total_variance >= -1e-14
        assert p.b * (1 + abs(p.rho)) <= LEE_SLOPE + 1e-12
        # the fit is at least as good as the truth that generated the data
        assert np.sum((p.total_variance(k) - w) ** 2) <= np.sum((true.total_variance(k) - w) ** 2)


def test_fit_validation():
    k = np.linspace(-0.2, 0.2, 4)
    with pytest.raises(ValidationError, match="accepted: >= 5") as e:
        fit_svi(k, 0.01 + k ** 2)
    assert e.value.field == "k"
    k = np.linspace(-0.2, 0.2, 6)
    with pytest.raises(ValidationError, match="total_variance: row 2") as e:
        fit_svi(k, np.array([0.01, 0.01, -0.01, 0.01, 0.01, 0.01]))
    assert e.value.row == 2
    with pytest.raises(ValidationError, match="weights"):
        fit_svi(k, 0.01 + k ** 2, weights=-np.ones(6))


@pytest.mark.parametrize("kwargs, field", [
    (dict(a=0.01, b=-0.1, rho=0.0, m=0.0, sigma=0.1), "b"),
    (dict(a=0.01, b=0.1, rho=1.0, m=0.0, sigma=0.1), "rho"),
    (dict(a=0.01, b=0.1, rho=0.0, m=0.0, sigma=0.0), "sigma"),
    (dict(a=-0.02, b=0.1, rho=0.0, m=0.0, sigma=0.1), "a"),
    (dict(a=np.nan, b=0.1, rho=0.0, m=0.0, sigma=0.1), "a"),
])
def test_params_validation(kwargs, field):
    with pytest.raises(ValidationError) as e:
        SVIParams(**kwargs)
    assert e.value.field == field and "accepted" in str(e.value)


# --------------------------------------------------------------------------------------------
# arbitrage checks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [BENIGN, VOGT], ids=["benign", "vogt"])
def test_g_is_the_density_of_call_prices(p):
    """GJ 2014 eq. 2.1: d²C/dK² at K = e^k (F = 1) equals g(k) φ(d₋) / (K √w); checked against
    finite differences of pmnb's Black-76 prices."""
    k = np.linspace(-1.0, 1.0, 41)
    K, T, h = np.exp(k), 1.0, 1e-4

    def call(K):
        return pmnb.price(1.0, K, T, np.sqrt(p.total_variance(np.log(K)) / T), option_type="call")

    d2 = (call(K * (1 + h)) - 2 * call(K) + call(K * (1 - h))) / (K * h) ** 2
    w = p.total_variance(k)
    dm = -k / np.sqrt(w) - np.sqrt(w) / 2
    dens = p.g(k) * np.exp(-dm ** 2 / 2) / np.sqrt(2 * np.pi * w)
    assert np.allclose(K * d2, dens, atol=1e-5)


def test_butterfly_flags_vogt_and_passes_benign():
    k = np.linspace(-1.5, 1.5, 3001)
    rep = butterfly_check([VOGT, BENIGN], k=k)
    assert list(rep.ok) == [False, True]
    vogt = rep.iloc[0]
    assert vogt.min_g < -0.03 and 0.6 < vogt.k_from < vogt.k_at_min_g < vogt.k_to < 1.3
    assert 0 < vogt.share_bad < 0.25
    assert rep.iloc[1].min_g > 0 and np.isnan(rep.iloc[1].k_from)
    # the same verdict from the default grid and from the parameters' own method
    assert not butterfly_check(VOGT).ok[0] and butterfly_check(BENIGN).ok[0]
    assert VOGT.g(vogt.k_at_min_g) < 0 < BENIGN.g(k).min()


def test_butterfly_flags_lee_wing_bound():
    steep = SVIParams(a=0.01, b=1.5, rho=0.5, m=0.0, sigma=0.1)  # right wing slope 2.25 > 2
    rep = butterfly_check(steep, k=np.linspace(-8, 8, 4001))
    assert not rep.lee_ok[0] and not rep.ok[0] and rep.max_slope[0] == pytest.approx(2.25)
    # and g itself turns negative far in that wing (slope > 2 => g -> 1/4 - slope²/16 < 0)
    assert steep.g(np.array([50.0]))[0] < 0


def test_calendar_check_flags_crossing_slices():
    k = np.linspace(-1, 1, 401)
    s1 = SVISlice(0.1, 100.0, SVIParams(0.004, 0.05, 0.3, 0.0, 0.1), k_range=(-0.3, 0.3))
    ok2 = SVISlice(0.2, 100.0, SVIParams(0.008, 0.06, 0.3, 0.0, 0.1), k_range=(-0.3, 0.3))
    cross = SVISlice(0.2, 100.0, SVIParams(0.008, 0.05, -0.5, 0.0, 0.1), k_range=(-0.3, 0.3))
    good = SVISurface([s1, ok2]).check_calendar(k=k)
    assert good.ok.all() and good.min_dw[0] > 0 and np.isnan(good.k_from[0])
    bad = SVISurface([s1, cross]).check_calendar(k=k)
    assert not bad.ok[0]
    dw = cross.total_variance(k) - s1.total_variance(k)
    assert bad.min_dw[0] == pytest.approx(dw.min())
    assert bad.k_from[0] == pytest.approx(k[dw < 0][0]) and bad.k_to[0] == pytest.approx(1.0)
    assert bad.share_bad[0] == pytest.approx((dw < 0).mean())
    # the crossing (k > 0.1) lies partly inside the quotes' range (-0.3, 0.3)
    assert bad.ok_in_quotes[0] == False  # noqa: E712 (pandas nullable boolean)
    assert bad.min_dw_in_quotes[0] == pytest.approx(dw[np.abs(k) <= 0.3].min())


def test_checks_report_never_alter_parameters():
    surf = SVISurface([SVISlice(1.0, 1.0, VOGT)])
    before = surf.to_frame().copy()
    assert not surf.check_butterfly().ok[0]
    pd.testing.assert_frame_equal(surf.to_frame(), before)


# --------------------------------------------------------------------------------------------
# surface interpolation and scenario rules
# --------------------------------------------------------------------------------------------
@pytest.fixture
def surface():
    slices = [SVISlice(0.05, 100.2, SVIParams(0.002, 0.03, -0.3, 0.0, 0.08)),
              SVISlice(0.25, 101.0, SVIParams(0.012, 0.08, -0.35, 0.01, 0.15)),
              SVISlice(0.75, 103.0, SVIParams(0.04, 0.15, -0.4, 0.02, 0.25)),
              SVISlice(1.50, 106.0, SVIParams(0.08, 0.22, -0.4, 0.03, 0.35))]
    return SVISurface(slices, spot=100.0)


def test_vol_at_fitted_expiry_equals_slice(surface):
    K = np.linspace(60.0, 160.0, 51)
    k = np.linspace(-0.8, 0.6, 51)
    for s in surface.slices:
        assert np.array_equal(surface.implied_vol(K, s.T), s.implied_vol(K))
        assert np.array_equal(surface.implied_vol(k=k, T=s.T), s.implied_vol(k=k))
        assert np.array_equal(surface.total_variance(k, s.T), s.total_variance(k))
        assert surface.forward(s.T) == s.forward
    assert surface.forward(0.0) == 100.0


def test_total_variance_linear_in_T_between_expiries(surface):
    k = np.linspace(-0.8, 0.6, 29)[:, None]
    T = surface.T
    for i in range(len(T) - 1):
        theta = np.linspace(0.0, 1.0, 11)
        t = T[i] + theta * (T[i + 1] - T[i])
        w = surface.total_variance(k, t)
        lo = surface.slices[i].total_variance(k)
        hi = surface.slices[i + 1].total_variance(k)
        assert np.allclose(w, (1 - theta) * lo + theta * hi, rtol=1e-13, atol=1e-16)
        assert np.allclose(np.diff(w, 2, axis=1), 0.0, atol=1e-14)  # straight in T


def test_extrapolation_is_flat_vol_and_calendar_free(surface):
    k = np.linspace(-1.0, 1.0, 41)[:, None]
    first, last = surface.slices[0], surface.slices[-1]
    early = np.array([0.0, 0.001, 0.01, 0.049])
    late = np.array([1.6, 2.0, 5.0])
    assert np.allclose(surface.implied_vol(k=k, T=early),
                       first.implied_vol(k=k) * np.ones(early.size), rtol=1e-14)
    assert np.allclose(surface.implied_vol(k=k, T=late), last.implied_vol(k=k) * np.ones(late.size),
                       rtol=1e-14)
    assert surface.check_calendar(k=k[:, 0]).ok.all()
    T = np.linspace(0.0, 5.0, 501)
    w = surface.total_variance(k, T)
    assert (np.diff(w, axis=1) >= -1e-15).all()  # never decreasing in T at fixed k


def test_vectorised_call_matches_elementwise(surface):
    K = np.array([55.0, 80.0, 99.0, 100.0, 101.0, 130.0, 170.0])
    T = np.array([0.0, 0.02, 0.05, 0.1, 0.25, 0.6, 0.75, 1.2, 1.5, 2.5])
    grid = surface.implied_vol(K[None, :], T[:, None])
    loop = np.array([[float(surface.implied_vol(Ki, Ti)) for Ki in K] for Ti in T])
    assert grid.shape == (T.size, K.size)
    assert np.array_equal(grid, loop)
    shocks = np.array([-0.3, 0.0, 0.25])
    for rule in ("sticky_strike", "sticky_moneyness"):
        v = surface.vol_for_scenario(K[None, :, None], T[:, None, None], shocks, rule=rule)
        ref = np.array([[[float(surface.vol_for_scenario(Ki, Ti, sh, rule=rule)) for sh in shocks]
                         for Ki in K] for Ti in T])
        assert np.array_equal(v, ref)


def test_scenario_rules(surface):
    K = np.array([80.0, 100.0, 125.0])
    T = 0.4
    base = surface.implied_vol(K, T)
    for shock in (-0.2, 0.0, 0.15):
        strike = surface.vol_for_scenario(K, T, shock, rule="sticky_strike")
        money = surface.vol_for_scenario(K, T, shock, rule="sticky_moneyness")
        assert np.array_equal(strike, base)
        assert np.allclose(money, surface.implied_vol(K / (1 + shock), T), rtol=1e-14)
    # after a sell-off, sticky moneyness moves the (downward) skew with the forward: the
    # at-the-money-today strike now sits to the right of the money, at a lower vol
    assert surface.vol_for_scenario(100.0, T, -0.2, "sticky_moneyness") < base[1]
    with pytest.raises(ValidationError, match="rule"):
        surface.vol_for_scenario(K, T, 0.1, rule="sticky_delta")
    with pytest.raises(ValidationError, match="spot_shock") as e:
        surface.vol_for_scenario(K, T, [0.1, -1.0])
    assert e.value.row == 1


def test_surface_validation(surface):
    with pytest.raises(ValidationError, match="K: row 1"):
        surface.implied_vol([100.0, -5.0], 0.5)
    with pytest.raises(ValidationError, match="T: row"):
        surface.implied_vol(100.0, [0.5, -0.1])
    with pytest.raises(ValidationError, match="exactly one"):
        surface.implied_vol(T=0.5)
    with pytest.raises(ValidationError, match="strictly increasing"):
        SVISurface(list(surface.slices[::-1]))
    with pytest.raises(ValidationError, match="forward"):
        SVISlice(0.5, 0.0, BENIGN)


def test_svi_total_variance_broadcasts():
    P = np.array([p.as_array() for p in TRUE_SETS])
    k = np.linspace(-0.5, 0.5, 9)
    W = svi_total_variance(P[:, None, :], k)
    assert W.shape == (len(P), k.size)
    for p, row in zip(TRUE_SETS, W):
        assert np.array_equal(row, p.total_variance(k))


# --------------------------------------------------------------------------------------------
# real chains: Deribit 2025-12-31, BTC and ETH
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chain():
    return pmnb.datasets.load_deribit_chain("2025-12-31")


def _held_out(q: pd.DataFrame) -> pd.Index:
    """Every fifth quoted strike of each expiry (by strike: the 5th, 10th, ...)."""
    quoted = q[q.quoted]
    return quoted.index[(quoted.groupby("expiry").cumcount() % 5) == 4]


@pytest.mark.parametrize("currency", ["BTC", "ETH"])
def test_real_chain_held_out_strikes_inside_bid_ask(chain, currency):
    q = chain_quotes(chain, currency=currency)
    held = _held_out(q)
    surface, report = fit_svi_surface(chain.drop(index=held), currency=currency)
    assert len(surface.slices) == 12 and report.fitted.all()
    h = q.loc[held]
    vol = surface.implied_vol(h.strike.to_numpy(), h["T"].to_numpy())
    inside = (vol >= h.bid_iv.to_numpy()) & (vol <= h.ask_iv.to_numpy())
    err = pd.DataFrame({"expiry": h.expiry.dt.strftime("%Y-%m-%d"), "err": 100 * (vol - h.mid_iv),
                        "inside": inside})
    by = err.groupby("expiry").agg(n=("err", "size"), rmse_volpts=("err", lambda e: np.sqrt(
        np.mean(e ** 2))), inside=("inside", "mean"))
    print(f"\n{currency}: held-out inside band {inside.mean():.3f} of {len(h)}\n{by.round(3)}")
    print(report[["expiry", "n_quoted", "n_mark", "rmse_mid_volpts", "inside_band",
                  "butterfly_ok", "calendar_ok", "calendar_ok_in_quotes", "min_dw"]].round(
                      {"rmse_mid_volpts": 3, "inside_band": 3, "min_dw": 5}))
    assert len(h) >= 50
    assert inside.mean() >= 0.90
    assert by.rmse_volpts.max() < 2.0


@pytest.mark.parametrize("currency", ["BTC", "ETH"])
def test_real_chain_fit_report(chain, currency):
    surface, rep = fit_svi_surface(chain, currency=currency)
    c = chain[chain.currency == currency]
    # conventions: T in ACT/365 seconds, forward = median underlying_price of the expiry
    fwd = c.groupby("expiry", observed=True).underlying_price.median()
    assert np.allclose(rep.forward, fwd.loc[rep.expiry].to_numpy(), rtol=0, atol=0)
    T = (rep.expiry - c.timestamp.iloc[0]).dt.total_seconds() / (365 * 86400)
    assert np.allclose(rep["T"], T, rtol=1e-15)
    assert rep.n_dropped.sum() == 0 and rep.attrs["n_dropped"] == 0
    assert (rep.n_quoted + rep.n_mark == rep.n_otm).all()
    # in-sample: fitted vols in the band for most quotes, small errors, no butterfly arbitrage
    share = (rep.inside_band * rep.n_quoted).sum() / rep.n_quoted.sum()
    assert share >= 0.95 and rep.inside_band.min() >= 0.85
    assert rep.rmse_mid_volpts.median() < 0.5 and rep.rmse_mid_volpts.max() < 2.0
    assert rep.butterfly_ok.all()
    assert rep.calendar_ok.isna().sum() == 1  # the first expiry has no predecessor
    # the report's flags are the surface's own checks
    cal = surface.check_calendar()
    assert list(rep.calendar_ok.iloc[1:]) == list(cal.ok)
    # fitted parameters are within the documented bounds
    P = surface.to_frame()
    assert (P.b >= 0).all() and (P.rho.abs() < 1).all() and (P.sigma > 0).all()
    assert (P.a + P.b * P.sigma * np.sqrt(1 - P.rho ** 2) >= 0).all()


def test_weighted_fit_beats_an_unweighted_one(chain):
    """Weighting by the bid/ask band matters: the same machinery fitted to the same targets with
    equal weights puts fewer quotes inside the band."""
    q = chain_quotes(chain, currency="BTC")
    rows = q[q.weight > 0]
    codes, _ = pd.factorize(rows.expiry, sort=True)
    sl = [(g.k.to_numpy(), (g.target_iv ** 2 * g["T"]).to_numpy(), None)
          for _, g in rows.groupby(codes)]
    plain = fit_svi_slices(sl)
    vol = np.concatenate([np.sqrt(p.total_variance(g.k) / g["T"]) for p, (_, g)
                          in zip(plain, rows.groupby(codes))])
    quoted = rows.quoted.to_numpy()
    inside = (vol >= rows.bid_iv.to_numpy()) & (vol <= rows.ask_iv.to_numpy())
    _, rep = fit_svi_surface(chain, currency="BTC")
    weighted = (rep.inside_band * rep.n_quoted).sum() / rep.n_quoted.sum()
    assert weighted > inside[quoted].mean() + 0.05


def test_rows_without_vol_are_dropped_and_counted(chain):
    c = chain[chain.currency == "ETH"].copy()
    exp = c.expiry.sort_values().unique()[6]
    q = chain_quotes(c)
    victims = q[(q.expiry == exp)].index[:3]
    c.loc[victims, ["best_bid_price", "best_ask_price", "mark_iv_pct"]] = np.nan
    # a bid above the forward's value in coin has no implied vol: that row falls back to mark
    other = q[(q.expiry == exp) & q.quoted].index[5]
    c.loc[other, "best_ask_price"] = 2.0
    q2 = chain_quotes(c)
    assert (q2.loc[victims, "source"] == "").all() and q2.loc[other, "source"] == "mark"
    assert np.isnan(q2.loc[other, "ask_iv"])
    _, rep = fit_svi_surface(c)
    row = rep[rep.expiry == exp].iloc[0]
    assert row.n_dropped == 3 and rep.attrs["n_dropped"] == 3
    assert row.n_quoted == q[(q.expiry == exp)].quoted.sum() - 1 - q.loc[victims, "quoted"].sum()


def test_chain_validation(chain):
    with pytest.raises(ValidationError, match="currency") as e:
        fit_svi_surface(chain)
    assert e.value.field == "currency"
    with pytest.raises(ValidationError, match="currency: got 'SOL'"):
        chain_quotes(chain, currency="SOL")
    with pytest.raises(ValidationError, match="missing column"):
        chain_quotes(chain.drop(columns=["mark_iv_pct"]), currency="BTC")


def test_thin_expiry_is_reported_not_fitted(chain):
    c = chain[chain.currency == "BTC"]
    q = chain_quotes(c)
    exp = q.expiry.sort_values().unique()[3]
    keep = q[q.expiry == exp].index[:4]
    thin = c.drop(index=q[q.expiry == exp].index.difference(keep))
    surface, rep = fit_svi_surface(thin)
    row = rep[rep.expiry == exp].iloc[0]
    assert not row.fitted and np.isnan(row.rmse_mid_volpts) and np.isnan(row.a)
    assert pd.isna(row.butterfly_ok) and pd.isna(row.calendar_ok)
    assert len(surface.slices) == 11 and exp not in surface.expiries
    # the next expiry's calendar check is against the previous *fitted* one
    nxt = rep.index[rep.expiry == exp][0] + 1
    cal = surface.check_calendar()
    assert rep.calendar_ok[nxt] == cal.ok[nxt - 2]
    with pytest.raises(ValidationError, match="no expiry has >= 5"):
        fit_svi_surface(c.groupby("expiry", observed=True).head(4))
