"""Headless tests of VolSurfaceExplorer: drive every control, read the plotly traces, and compare
what is drawn and shown with pmnb.vol and with the chain's own columns, recomputed here."""

import html
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import pmnb
from pmnb.vol import SVIParams, SVISlice, SVISurface, chain_quotes, fit_svi_surface, \
    svi_total_variance
from pmnb_widgets.vol_surface_explorer import HOLDOUT_EVERY, VIEWS, VolSurfaceExplorer

UTC = "UTC"
MAR = pd.Timestamp("2026-03-27 08:00", tz=UTC)
JAN30 = pd.Timestamp("2026-01-30 08:00", tz=UTC)


@pytest.fixture(scope="module")
def chain():
    return pmnb.datasets.load_deribit_chain("2025-12-31")


@pytest.fixture(scope="module")
def fits(chain):
    """The reference fits, made here with pmnb.vol (deterministic, so equal to the widget's)."""
    return {u: fit_svi_surface(chain, currency=u) for u in ("BTC", "ETH")}


@pytest.fixture
def ex():
    return VolSurfaceExplorer()


def _status(ex) -> str:
    """The status line as the user reads it."""
    return html.unescape(ex.status.value)


def _slice(fits, u, expiry):
    surface, _ = fits[u]
    i = [j for j, e in enumerate(surface.expiries) if e == expiry][0]
    return surface.slices[i]


def _otm_rows(chain, u, expiry):
    """OTM rows of one expiry straight from the chain (forward: median underlying_price)."""
    c = chain[(chain.currency == u) & (chain.expiry == expiry)]
    F = c.underlying_price.median()
    otm = c[((c.option_type == "call") & (c.strike >= F)) | ((c.option_type == "put") & (c.strike < F))]
    return otm.sort_values("strike"), F


# ---- defaults and the smile ---------------------------------------------------------------
def test_defaults_on_shipped_data(ex):
    assert ex.widget is ex and ex.status.value == ""
    assert list(ex.underlying.options) == ["BTC", "ETH"]
    assert ex.view.value == "smile" and ex.x_axis.value == "k"
    assert ex.plot_box.children == (ex.fig,) and len(ex.fig.data) == 7
    d = ex.figure_data()
    # default expiry: the one with the most quoted strikes
    _, report = fit_svi_surface(pmnb.datasets.load_deribit_chain("2025-12-31"), currency="BTC")
    assert d["expiry"] == report.expiry[report.n_quoted.idxmax()] == MAR
    assert [v for _, v in ex.expiry.options] == list(report.expiry)


@pytest.mark.parametrize("u", ["BTC", "ETH"])
@pytest.mark.parametrize("expiry", [MAR, JAN30])
def test_curve_equals_pmnb_vol_at_the_same_k(ex, fits, u, expiry):
    ex.underlying.value = u
    ex.expiry.value = expiry
    sl = _slice(fits, u, expiry)
    curve = ex.fig.data[0]
    k = np.asarray(curve.x)
    assert k.size >= 200
    np.testing.assert_allclose(curve.y, 100 * sl.implied_vol(k=k), rtol=1e-12)
    # the same numbers from the raw SVI formula (Gatheral 2004), not through the slice object
    w = svi_total_variance(sl.params.as_array(), k)
    np.testing.assert_allclose(np.asarray(curve.y) / 100, np.sqrt(w / sl.T), rtol=1e-12)
    # the plotted range covers every quote of the expiry
    q = ex.figure_data()["quotes"]
    assert k.min() < q["k"].min() and k.max() > q["k"].max()


def test_strike_axis_curve_and_quotes(ex, fits):
    ex.x_axis.value = "strike"
    sl = _slice(fits, "BTC", MAR)
    curve = ex.fig.data[0]
    K = np.asarray(curve.x)
    assert K.min() > 0 and K.max() > sl.forward > K.min()
    np.testing.assert_allclose(curve.y, 100 * sl.implied_vol(K=K), rtol=1e-12)
    otm, _ = _otm_rows(pmnb.datasets.load_deribit_chain("2025-12-31"), "BTC", MAR)
    np.testing.assert_array_equal(ex.fig.data[1].x, otm.strike.to_numpy())
    assert "strike" in ex.fig.layout.xaxis.title.text


@pytest.mark.parametrize("u", ["BTC", "ETH"])
def test_bid_ask_and_mark_points_equal_the_chain_columns(ex, chain, u):
    ex.underlying.value = u
    ex.expiry.value = JAN30
    otm, F = _otm_rows(chain, u, JAN30)
    T = (otm.expiry - otm.timestamp).dt.total_seconds().to_numpy() / (365 * 86400)
    fig = ex.fig
    np.testing.assert_allclose(fig.data[1].x, np.log(otm.strike.to_numpy() / F), rtol=1e-14)
    for trace, col in ((fig.data[1], "best_bid_price"), (fig.data[2], "best_ask_price")):
        price = otm[col].to_numpy(float)
        have = np.isfinite(price) & (price > 0)
        iv = np.full(len(otm), np.nan)
        iv[have] = pmnb.implied_vol(price[have], otm.underlying_price.to_numpy()[have],
                                    otm.strike.to_numpy()[have], T[have],
                                    otm.interest_rate.fillna(0.0).to_numpy()[have],
                                    option_type=otm.option_type.to_numpy()[have],
                                    price_unit="coin", errors="nan").vol
        np.testing.assert_allclose(np.asarray(trace.y, float), 100 * iv, rtol=1e-12)
        assert np.isfinite(np.asarray(trace.y, float)).sum() >= 30
    np.testing.assert_allclose(np.asarray(fig.data[3].y, float), otm.mark_iv_pct.to_numpy(),
                               rtol=1e-14)
    assert len(fig.data[4].x) == 0 and not fig.data[4].visible  # no held-out points


# ---- the numbers shown ----------------------------------------------------------------------
def _band_numbers(q, fit_iv):
    """RMSE (vol points) vs mid and share inside [bid, ask], over quoted rows."""
    qd = q[q.quoted]
    f = fit_iv[q.quoted.to_numpy()]
    rmse = 100 * np.sqrt(np.mean((f - qd.mid_iv.to_numpy()) ** 2))
    inside = np.mean((f >= qd.bid_iv.to_numpy()) & (f <= qd.ask_iv.to_numpy()))
    return len(qd), rmse, inside


@pytest.mark.parametrize("u", ["BTC", "ETH"])
def test_rmse_and_inside_band_equal_direct_recomputation(ex, chain, fits, u):
    ex.underlying.value = u
    quotes = chain_quotes(chain, currency=u)
    surface, _ = fits[u]
    for e, (expiry, sl) in enumerate(zip(surface.expiries, surface.slices)):
        q = quotes[quotes.expiry == expiry]
        n, rmse, inside = _band_numbers(q, sl.implied_vol(k=q.k.to_numpy()))
        row = ex.stats.iloc[e]
        assert row["n_quoted"] == n
        assert row["rmse_mid_volpts"] == pytest.approx(rmse, rel=1e-12)
        assert row["inside_band"] == pytest.approx(inside, rel=1e-12)
    for expiry in (MAR, JAN30):
        ex.expiry.value = expiry
        sl = _slice(fits, u, expiry)
        q = quotes[quotes.expiry == expiry]
        n, rmse, inside = _band_numbers(q, sl.implied_vol(k=q.k.to_numpy()))
        d = ex.figure_data()
        assert (d["n_quoted"], d["rmse_mid_volpts"]) == (n, pytest.approx(rmse, rel=1e-12))
        assert d["inside_band"] == pytest.approx(inside, rel=1e-12)
        text = ex.readout.value
        assert f"<b>{rmse:.3f}</b> vol points over {n} quoted" in text
        assert f"<b>{100 * inside:.1f}%</b>" in text
        assert f"{rmse:.3f}" in ex.stats_view.value


def test_market_with_chain_shows_the_same_numbers_as_the_fit_report(chain, fits):
    market = pmnb.Market.from_deribit("2025-12-31")
    ex = VolSurfaceExplorer(market, chain=chain)
    for u in ("BTC", "ETH"):
        ex.underlying.value = u
        _, report = fits[u]
        np.testing.assert_allclose(ex.stats.rmse_mid_volpts, report.rmse_mid_volpts, rtol=1e-12)
        np.testing.assert_allclose(ex.stats.inside_band, report.inside_band, rtol=1e-12)
        assert "market's surface" in ex.fig.layout.title.text + ex.readout.value
        np.testing.assert_allclose(ex.fig.data[0].y, 100 * _slice(fits, u, MAR).implied_vol(
            k=np.asarray(ex.fig.data[0].x)), rtol=1e-12)


def test_market_surface_missing_a_quoted_expiry(chain, fits):
    surface, _ = fits["BTC"]
    partial = SVISurface(surface.slices[1:], spot=surface.spot, timestamp=surface.timestamp)
    market = pmnb.Market.from_dict(surface.timestamp, spots={"BTC": surface.spot},
                                   vols={"BTC": partial})
    ex = VolSurfaceExplorer(market, chain=chain)
    assert list(ex.underlying.options) == ["BTC"]
    good = ex.figure_data()
    ex.expiry.value = surface.expiries[0]
    assert "market's surface has no slice there" in _status(ex) and ex.figure_data() is good
    assert "no slice" in ex.error and "<" not in ex.error
    ex.expiry.value = JAN30
    assert ex.error == "" and ex.figure_data()["expiry"] == JAN30


def test_market_without_chain_draws_the_surface_only():
    market = pmnb.Market.from_deribit("2025-12-31", currencies=("ETH",))
    ex = VolSurfaceExplorer(market)
    assert list(ex.underlying.options) == ["ETH"] and ex.holdout.disabled
    sl = market.vols["ETH"].slices[0]
    ex.expiry.value = sl.expiry
    np.testing.assert_allclose(ex.fig.data[0].y,
                               100 * sl.implied_vol(k=np.asarray(ex.fig.data[0].x)),
                               rtol=1e-12)
    assert len(ex.fig.data[1].x) == 0 and "no bid/ask quotes" in ex.readout.value
    ex.holdout.value = True  # disabled in the UI; set programmatically it is refused
    assert "holdout" in ex.status.value and ex.figure_data()["holdout"] is False


# ---- hold-out -------------------------------------------------------------------------------
def test_holdout_every_fifth_strike(ex, chain):
    ex.holdout.value = True
    quotes = chain_quotes(chain, currency="BTC")  # index: the chain's rows
    q = quotes[quotes.expiry == MAR]
    use = q[q.weight > 0]
    held = use.iloc[HOLDOUT_EVERY - 1::HOLDOUT_EVERY]
    fig = ex.fig
    assert fig.data[4].visible
    np.testing.assert_allclose(fig.data[4].x, held.k.to_numpy(), rtol=1e-14)
    # mid of the bid/ask vols where quoted, else Deribit's mark (what the fit would have used)
    target = np.where(held.quoted, held.mid_iv, held.mark_iv)
    assert (~held.quoted).sum() >= 1  # this expiry holds out a mark-only wing strike too
    np.testing.assert_allclose(fig.data[4].y, 100 * target, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fig.data[4].y) + np.asarray(fig.data[4].error_y.array),
                               100 * held.ask_iv.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        np.asarray(fig.data[4].y) - np.asarray(fig.data[4].error_y.arrayminus),
        100 * held.bid_iv.to_numpy(), rtol=1e-12)
    assert not set(np.asarray(fig.data[1].x)) & set(held.k)  # bid/ask traces: fitted strikes
    assert len(fig.data[1].x) == len(q) - len(held)
    # the refit, made here independently: the chain without the held-out quotes
    all_held = pd.concat([g[g.weight > 0].iloc[HOLDOUT_EVERY - 1::HOLDOUT_EVERY]
                          for _, g in quotes.groupby("expiry", observed=True)])
    blanked = chain.copy()
    blanked.loc[all_held.index, ["best_bid_price", "best_ask_price", "mark_iv_pct"]] = np.nan
    surf, report = fit_svi_surface(blanked, currency="BTC")
    sl = surf.slices[[e for e in surf.expiries].index(MAR)]
    np.testing.assert_allclose(fig.data[0].y, 100 * sl.implied_vol(k=np.asarray(fig.data[0].x)),
                               rtol=1e-12)
    n, rmse, inside = _band_numbers(held, sl.implied_vol(k=held.k.to_numpy()))
    d = ex.figure_data()
    assert d["n_heldout"] == n == int(held.quoted.sum()) >= 8
    assert d["heldout_rmse_mid_volpts"] == pytest.approx(rmse, rel=1e-12)
    assert d["heldout_inside_band"] == pytest.approx(inside, rel=1e-12)
    assert f"<b>{rmse:.3f}</b>" in ex.readout.value and "held-out RMSE" in ex.stats_view.value
    assert d["rmse_mid_volpts"] == pytest.approx(
        float(report.rmse_mid_volpts[report.expiry == MAR].iloc[0]), rel=1e-12)
    ex.holdout.value = False
    assert not fig.data[4].visible and len(fig.data[1].x) == len(q)


# ---- heatmap and 3-D ------------------------------------------------------------------------
@pytest.mark.parametrize("x_axis", ["k", "strike"])
def test_heatmap_and_surface_equal_the_slices(ex, fits, x_axis):
    surface, _ = fits["BTC"]
    ex.x_axis.value = x_axis
    ex.view.value = "heatmap"
    assert [t.type for t in ex.fig.data] == ["heatmap", "scatter", "scatter"]
    assert ex.fig.layout.yaxis.type == "category"
    h = ex.fig.data[0]
    x, z = np.asarray(h.x), np.asarray(h.z, float)
    assert z.shape == (len(surface.slices), x.size)
    assert list(h.y) == [f"{e:%Y-%m-%d}" for e in surface.expiries]
    for i, sl in enumerate(surface.slices):
        k = np.log(x / sl.forward) if x_axis == "strike" else x
        ref = 100 * (sl.implied_vol(K=x) if x_axis == "strike" else sl.implied_vol(k=x))
        inside = (k >= sl.k_range[0]) & (k <= sl.k_range[1])
        assert inside.sum() >= 3
        np.testing.assert_allclose(z[i, inside], ref[inside], rtol=1e-12)
        assert np.isnan(z[i, ~inside]).all()  # blank outside the quotes
    ex.view.value = "3-D surface"
    assert [t.type for t in ex.fig.data] == ["surface", "scatter3d", "scatter3d"]
    s = ex.fig.data[0]
    np.testing.assert_allclose(np.asarray(s.z, float), z, rtol=0, equal_nan=True)
    np.testing.assert_allclose(s.y, surface.T * 365, rtol=1e-14)
    ex.beyond_quotes.value = True  # the SVI everywhere on the grid
    z3 = np.asarray(ex.fig.data[0].z, float)
    assert np.isfinite(z3).all()
    x3 = np.asarray(ex.fig.data[0].x)
    sl = surface.slices[-1]
    np.testing.assert_allclose(z3[-1], 100 * (sl.implied_vol(K=x3) if x_axis == "strike"
                                              else sl.implied_vol(k=x3)), rtol=1e-12)


def test_view_round_trip_restores_the_smile(ex, fits):
    ex.view.value = "3-D surface"
    ex.expiry.value = JAN30  # changed while another view is shown
    ex.view.value = "smile"
    fig = ex.fig
    assert [t.name for t in fig.data][:4] == ["SVI fit", "bid IV", "ask IV", "mark IV"]
    assert fig.layout.yaxis.type == "linear" and "2026-01-30" in fig.layout.title.text
    sl = _slice(fits, "BTC", JAN30)
    np.testing.assert_allclose(fig.data[0].y, 100 * sl.implied_vol(k=np.asarray(fig.data[0].x)),
                               rtol=1e-12)
    assert ex.plot_box.children == (fig,)  # one FigureWidget for every view


def test_expiry_switch_in_heatmap_moves_the_row_outline(ex):
    ex.view.value = "heatmap"
    ex.expiry.value = JAN30
    labels = list(ex.fig.data[0].y)
    shape = ex.fig.layout.shapes[0]
    assert (shape.y0 + shape.y1) / 2 == labels.index("2026-01-30")
    assert "▶" in ex.stats_view.value


# ---- arbitrage ------------------------------------------------------------------------------
VOGT = SVIParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)  # G&J 2014, §2.2


def _market(slices):
    ts = pd.Timestamp("2025-12-31 09:18", tz=UTC)
    surf = SVISurface(slices, spot=100.0, timestamp=ts)
    return pmnb.Market.from_dict(ts, spots={"BTC": 100.0}, vols={"BTC": surf})


def test_injected_butterfly_violation_is_listed_shaded_and_marked():
    e1, e2 = pd.Timestamp("2026-06-30 08:00", tz=UTC), pd.Timestamp("2026-12-31 08:00", tz=UTC)
    ok = SVIParams(0.002, 0.02, 0.0, 0.0, 0.2)  # below Vogt's variance everywhere: no calendar
    ex = VolSurfaceExplorer(_market([SVISlice(0.5, 100.0, ok, expiry=e1),
                                     SVISlice(0.99, 100.0, VOGT, expiry=e2)]),
                            beyond_quotes=True)
    arb = ex.arbitrage
    bf = arb[arb.check.str.startswith("butterfly")]
    assert len(bf) == 1 and bf.expiry.iloc[0] == e2 and len(arb) == 1
    ref = pmnb.vol.butterfly_check(VOGT)
    assert bf.k_from.iloc[0] == ref.k_from[0] and bf.worst.iloc[0] == ref.min_g[0]
    assert "butterfly: g(k) &lt; 0" in ex.arbitrage_view.value or \
        "butterfly: g(k) < 0" in ex.arbitrage_view.value
    ex.expiry.value = e1
    assert len(ex.fig.data[5].x) == 0 and not ex.fig.layout.shapes[:-1]
    ex.expiry.value = e2
    curve_k = np.asarray(ex.fig.data[0].x)
    bad = curve_k[VOGT.g(curve_k) < 0]
    assert bad.size > 10
    np.testing.assert_array_equal(ex.fig.data[5].x, bad)
    np.testing.assert_allclose(ex.fig.data[5].y,
                               100 * np.sqrt(VOGT.total_variance(bad) / 0.99), rtol=1e-12)
    rects = [s for s in ex.fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 1 and rects[0].x0 == bad.min() and rects[0].x1 == bad.max()
    # against the check on a fine wide grid: the marks start where g turns negative (the
    # default grid of butterfly_check, ±8 ATM deviations, ends at k = 1.056 inside the violation)
    wide = pmnb.vol.butterfly_check(VOGT, k=np.linspace(-3, 3, 60001))
    step = curve_k[1] - curve_k[0]
    assert abs(bad.min() - wide.k_from[0]) <= step
    assert ref.k_to[0] < bad.max() <= wide.k_to[0] + 1e-4
    assert "1 arbitrage violation(s)" in ex.readout.value
    ex.view.value = "heatmap"
    hx = np.asarray(ex.fig.data[1].x)
    assert hx.size > 0 and set(ex.fig.data[1].y) == {"2026-12-31"}
    np.testing.assert_array_less(VOGT.g(hx), 0.0)


def test_injected_calendar_violation_is_marked_where_total_variance_falls():
    e1, e2 = pd.Timestamp("2026-01-31 08:00", tz=UTC), pd.Timestamp("2026-03-02 08:00", tz=UTC)
    p1, p2 = SVIParams(0.004, 0.05, 0.3, 0.0, 0.1), SVIParams(0.008, 0.05, -0.5, 0.0, 0.1)
    ex = VolSurfaceExplorer(_market([SVISlice(0.1, 100.0, p1, expiry=e1, k_range=(-0.5, 0.5)),
                                     SVISlice(0.2, 100.0, p2, expiry=e2, k_range=(-0.5, 0.5))]))
    cal = ex.arbitrage[ex.arbitrage.check.str.startswith("calendar")]
    assert len(cal) == 1 and cal.expiry.iloc[0] == e1 and cal.expiry_to.iloc[0] == e2
    assert bool(cal.within_quotes.iloc[0]) is True
    for e in (e1, e2):  # the violation involves both expiries
        ex.expiry.value = e
        k = np.asarray(ex.fig.data[0].x)
        bad = k[p2.total_variance(k) < p1.total_variance(k)]
        assert bad.size > 10 and bad.min() > 0  # the right wing (rho flips from + to -)
        np.testing.assert_array_equal(ex.fig.data[6].x, bad)
        assert "calendar" in ex.fig.data[6].name
    ex.view.value = "heatmap"
    x = np.asarray(ex.fig.data[2].x)
    assert set(ex.fig.data[2].y) == {"2026-03-02"}
    np.testing.assert_array_less(p2.total_variance(x), p1.total_variance(x))


@pytest.mark.parametrize("u", ["BTC", "ETH"])
def test_real_calendar_violations_in_the_wings_are_listed(ex, fits, u):
    ex.underlying.value = u
    surface, _ = fits[u]
    ref = surface.check_calendar()
    bad = ref[~ref.ok]
    cal = ex.arbitrage[ex.arbitrage.check.str.startswith("calendar")]
    assert len(cal) == len(bad) >= 1
    np.testing.assert_allclose(cal.worst, bad.min_dw, rtol=1e-15)
    assert list(cal.within_quotes) == list(~bad.ok_in_quotes.astype(bool))
    assert "no (wings)" in ex.arbitrage_view.value
    # wings are drawn (and the violation marked) only beyond the quotes
    expiry = bad.expiry_to.iloc[0]
    ex.expiry.value = expiry
    assert len(ex.fig.data[6].x) == 0 and "outside the plotted range" in ex.readout.value
    ex.beyond_quotes.value = True
    assert len(ex.fig.data[6].x) > 0
    i = list(surface.expiries).index(expiry)
    k = np.asarray(ex.fig.data[6].x)
    w = surface.slices[i].total_variance(k)
    below_prev = w < surface.slices[i - 1].total_variance(k)
    above_next = (surface.slices[i + 1].total_variance(k) < w) if i + 1 < len(surface.slices) \
        else np.zeros_like(below_prev)
    assert (below_prev | above_next).all()


# ---- errors keep the last good state --------------------------------------------------------
def test_bad_market_shows_message_and_keeps_state(ex):
    ex.expiry.value = JAN30
    good = ex.figure_data()
    y = np.asarray(ex.fig.data[0].y).copy()
    bad = pmnb.Market.from_dict("2025-12-31", spots={"BTC": 1.0}, vols={"BTC": 0.5})
    assert ex.set_source(bad) is False
    assert "vols['BTC'] is a FlatVol" in _status(ex) and "accepted" in _status(ex)
    assert "Traceback" not in ex.status.value
    assert ex.figure_data() is good and np.array_equal(ex.fig.data[0].y, y)
    assert list(ex.underlying.options) == ["BTC", "ETH"] and ex.expiry.value == JAN30
    ex.expiry.value = MAR  # still works on the last good data
    assert ex.status.value == "" and ex.figure_data()["expiry"] == MAR
    assert ex.set_source([1, 2]) is False and "source: got list" in ex.status.value
    with pytest.raises(ValueError, match="initial data are invalid"):
        VolSurfaceExplorer(bad)


def test_expiry_with_too_few_quotes_shows_message_and_keeps_state(chain):
    thin = chain.copy()
    jan1 = pd.Timestamp("2026-01-01 08:00", tz=UTC)
    btc_jan1 = thin.index[(thin.currency == "BTC") & (thin.expiry == jan1)]
    thin = thin.drop(btc_jan1[3:])  # three strikes left (any side)
    ex = VolSurfaceExplorer(thin)
    labels = dict((v, lab) for lab, v in ex.expiry.options)
    assert "not fitted" in labels[jan1]
    good = ex.figure_data()
    ex.expiry.value = jan1
    assert "strikes with a vol" in _status(ex) and "accepted: >= 5" in _status(ex)
    assert "2026-01-01" in ex.status.value and ex.figure_data() is good
    ex.view.value = "heatmap"  # the other views still say why
    assert ex.figure_data() is good and ex.status.value
    ex.expiry.value = JAN30
    assert ex.status.value == "" and ex.figure_data()["expiry"] == JAN30
    assert len(ex.fig.data[0].y) == 11  # the unfitted expiry has no row


def test_underlying_that_cannot_be_fitted(chain):
    eth = chain.index[chain.currency == "ETH"]
    thin = chain.drop(eth[4:])  # four ETH options: no expiry can carry 5 SVI parameters
    ex = VolSurfaceExplorer(thin)
    assert list(ex.underlying.options) == ["BTC", "ETH"]
    good = ex.figure_data()
    ex.underlying.value = "ETH"
    assert "ETH" in ex.status.value and "accepted" in ex.status.value
    assert ex.figure_data() is good
    ex.underlying.value = "BTC"
    assert ex.status.value == ""


def test_bad_chain_type():
    with pytest.raises(ValueError, match="chain: got str"):
        VolSurfaceExplorer(pmnb.Market.from_deribit("2025-12-31", fit_vols=True,
                                                    currencies=("BTC",)), chain="nope")


# ---- interaction: no refit, fast, all controls ----------------------------------------------
def test_switching_never_refits_and_is_fast(ex, monkeypatch):
    import pmnb_widgets.vol_surface_explorer as mod

    def boom(*a, **k):
        raise AssertionError("refit during an interaction")

    monkeypatch.setattr(mod, "fit_svi_surface", boom)
    monkeypatch.setattr(mod, "chain_quotes", boom)
    expiries = [v for _, v in ex.expiry.options]
    for i in range(12):
        ex.underlying.value = ("BTC", "ETH")[i % 2]
        ex.expiry.value = expiries[i % len(expiries)]
        ex.view.value = VIEWS[i % 3]
        ex.x_axis.value = ("k", "strike")[i % 2]
        ex.holdout.value = bool(i % 3 == 1)
        ex.beyond_quotes.value = bool(i % 4 == 3)
        assert ex.status.value == "", ex.status.value
        d = ex.figure_data()
        assert (d["underlying"], d["expiry"], d["view"], d["x_axis"]) == (
            ex.underlying.value, ex.expiry.value, ex.view.value, ex.x_axis.value)
        # speed is measured (last_timing, reported in the issue note), never asserted
        assert {"compute_ms", "render_ms"} <= set(ex.last_timing)


def test_module_keeps_matplotlib_out():
    code = ("import sys; from pmnb_widgets.vol_surface_explorer import VolSurfaceExplorer; "
            "VolSurfaceExplorer().view.value = 'heatmap'; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_explanation_and_tables_are_plain_html(ex):
    assert "Gatheral" in ex.explanation.value
    assert re.search(r"<table", ex.stats_view.value) and re.search(r"<table", ex.arbitrage_view.value)
