"""pmnb.pricing against Deribit's own numbers on the shipped real snapshots.

Conventions (../shared/reference/pricing.md §7): Black-76 on F = ``underlying_price``, r =
``interest_rate`` (0 where absent), sigma = ``mark_iv_pct`` / 100, T = (expiry − row timestamp) in
seconds / (365 × 86,400); mark (coin) = B76_usd / F; ticker greeks are USD Black-76 greeks.
Rows were pulled one ticker at a time, so a few marks were computed at a slightly different forward
than the one stored beside them; the tolerances below say which statistics are exact.
"""

from __future__ import annotations

import numpy as np
import pytest

import pmnb

SNAPSHOTS = ["2020-05-14", "2020-05-21", "2025-12-31"]


def _chain(snapshot):
    c = pmnb.datasets.load_deribit_chain(snapshot)
    T = (c.expiry - c.timestamp).dt.total_seconds().to_numpy() / (365 * 86400)
    return c, c.underlying_price.to_numpy(), c.strike.to_numpy(), T


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_mark_price_in_coin(snapshot):
    c, F, K, T = _chain(snapshot)
    g = pmnb.greeks(F, K, T, c.mark_iv_pct / 100, c.interest_rate, option_type=c.option_type,
                    settlement="inverse", greeks=("price",))
    mark = c.mark_price.to_numpy()
    m = mark > 2e-4
    err = np.abs(g["price"] - mark)[m]
    within = err <= 5e-5 + 1e-4 * mark[m]
    assert np.median(err) <= 1e-5
    # 2025: every row; 2020: all but rows whose mark was struck at another forward (timing)
    assert within.mean() >= (1.0 if snapshot == "2025-12-31" else 0.97), within.mean()
    assert err.max() <= 1.5e-3


@pytest.mark.parametrize("snapshot", ["2020-05-14", "2020-05-21"])
def test_deribit_ticker_greeks_2020(snapshot):
    """All five ticker greeks, units="deribit" (USD; vega per vol point; Deribit's theta rule)."""
    c, F, K, T = _chain(snapshot)
    g = pmnb.greeks(F, K, T, c.mark_iv_pct / 100, c.interest_rate, option_type=c.option_type,
                    settlement="inverse", units="deribit",
                    greeks=("price", "delta", "gamma", "vega", "theta", "rho"))
    m = c.mark_price.to_numpy() > 2e-4

    def err(name):
        return np.abs(g[name] - c[name].to_numpy())[m]

    def rel(name):
        ref = np.abs(c[name].to_numpy())[m]
        ok = ref > 1e-3
        return err(name)[ok] / ref[ok]

    # Deribit rounds delta and gamma to 5 decimals
    assert np.median(err("delta")) <= 1e-5 and np.quantile(err("delta"), 0.99) <= 3e-4
    assert err("gamma").max() <= 5.1e-6 + 1e-6
    assert np.median(rel("vega")) <= 1e-4
    assert np.median(rel("rho")) <= 1e-4
    # theta: USD per day, min(1-day, lifetime, mark value); plain theta/365 would be off by
    # hundreds of USD on the dailies
    assert np.median(err("theta")) <= 1e-3 and np.median(rel("theta")) <= 1e-4
    short = m & (T < 1.4 / 365)
    plain = pmnb.greeks(F, K, T, c.mark_iv_pct / 100, option_type=c.option_type,
                        greeks=("theta",), units="desk")["theta"]
    assert np.abs(plain - c.theta.to_numpy())[short].max() > 10
    ref = np.abs(c.theta.to_numpy())[short]
    short_rel = np.abs(g["theta"] - c.theta.to_numpy())[short][ref > 1e-3] / ref[ref > 1e-3]
    assert np.median(short_rel) <= 1e-3  # hours to expiry: T itself moves within a ticker pull
    assert err("theta").max() <= 0.25  # USD per day, rows priced at another forward included


def test_deribit_ticker_greeks_2025():
    """The 2025 file kept delta and vega only; its forwards move within an expiry (reference §7)."""
    c, F, K, T = _chain("2025-12-31")
    g = pmnb.greeks(F, K, T, c.mark_iv_pct / 100, option_type=c.option_type,
                    settlement="inverse", units="deribit", greeks=("delta", "vega"))
    m = c.mark_price.to_numpy() > 2e-4
    d_err = np.abs(g["delta"] - c.delta.to_numpy())[m]
    assert np.median(d_err) <= 1e-4 and d_err.max() <= 3e-3
    ref = c.vega.to_numpy()[m]
    v_rel = np.abs(g["vega"][m] - ref)[ref > 1] / ref[ref > 1]
    assert np.median(v_rel) <= 1e-3


@pytest.mark.parametrize("snapshot", SNAPSHOTS)
def test_implied_vol_recovers_mark_iv(snapshot):
    c, F, K, T = _chain(snapshot)
    mark = c.mark_price.to_numpy()
    res = pmnb.implied_vol(mark, F, K, T, c.interest_rate, option_type=c.option_type,
                           price_unit="coin", errors="nan")
    iv_pts = res.vol * 100
    vega_coin_pt = pmnb.greeks(F, K, T, c.mark_iv_pct / 100, option_type=c.option_type,
                               settlement="inverse", greeks=("vega",))["vega"] / 100
    err = np.abs(iv_pts - c.mark_iv_pct.to_numpy())
    tol = 0.01 + 5e-5 / vega_coin_pt            # Deribit rounds IV to 0.01 pts and marks to 1e-8
    w = np.where(c.option_type == "call", 1.0, -1.0)
    time_value = mark - np.maximum(w * (F - K), 0) / F
    m = mark > 2e-4
    if snapshot != "2025-12-31":
        m &= time_value >= 2e-4    # 2020 marks of deep ITM options sit at intrinsic: no vol
    assert np.nanmedian(err[m]) <= 0.01
    assert (err[m] <= tol[m]).mean() >= 0.95
    # rows without a vol are flagged, never silent: exactly those at or below intrinsic value
    flagged = res.reason != pmnb.IVReason.OK
    assert np.all(time_value[flagged] <= 1e-12)
    assert np.all(np.isnan(res.vol[flagged & (res.reason != pmnb.IVReason.NO_TIME_VALUE)]))
    assert not np.isnan(res.vol[~flagged]).any()
