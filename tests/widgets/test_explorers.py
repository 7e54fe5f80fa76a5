"""Headless tests of the explorers: drive the controls, compare the numbers shown with pmnb."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import pmnb
import pmnb.demo
from pmnb_widgets import STRATEGIES, GreeksExplorer, PositionExplorer


def _direct(ex, x, settlement, names, at_first_expiry=False):
    """Size-weighted legs through pmnb.greeks, one call per leg (independent of the widget's
    broadcasting)."""
    vol, r = ex.vol.value / 100.0, ex.rate.value / 100.0
    legs = ex.legs()
    t_min = min(leg["T"] for leg in legs)
    total = {n: np.zeros_like(x) for n in names}
    for leg in legs:
        T = leg["T"] - t_min if at_first_expiry else leg["T"]
        g = pmnb.greeks(x, leg["strike"], T, vol, r, option_type=leg["option_type"],
                        settlement=settlement, greeks=names, units="desk")
        for n in names:
            total[n] += leg["size"] * g[n]
    return total


# ---- GreeksExplorer -------------------------------------------------------------------------
@pytest.fixture
def gex():
    return GreeksExplorer(render=False)


def test_greeks_explorer_defaults_match_pmnb(gex):
    d = gex.figure_data()
    x = d["spot"]
    assert x.shape == (121,) and x.min() < d["spot_now"] < x.max()
    for settlement in ("linear", "inverse"):
        g = pmnb.greeks(x, 100_000.0, 30 / 365, 0.60, 0.0, option_type="call",
                        settlement=settlement, greeks=("price", "delta"), units="desk")
        np.testing.assert_allclose(d[settlement]["value"], g["price"], rtol=1e-12)
        np.testing.assert_allclose(d[settlement]["greek"], g["delta"], rtol=1e-12)
        np.testing.assert_allclose(d[settlement]["payoff"],
                                   pmnb.price(x, 100_000.0, 0.0, 0.60, option_type="call",
                                              settlement=settlement), rtol=1e-12, atol=1e-12)
    assert "Black delta − premium in coin" in gex.explanation.value


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_strategy_after_slider_moves(gex, strategy):
    gex.strategy.value = strategy
    gex.spot.value = 93_500.0
    gex.vol.value = 75.0
    gex.days.value = 45.0
    gex.rate.value = 2.0
    gex.greek.value = "gamma"
    d = gex.figure_data()
    assert d["strategy"] == strategy and d["spot_now"] == 93_500.0
    assert len(gex.legs()) == len(STRATEGIES[strategy])
    for settlement in ("linear", "inverse"):
        ref = _direct(gex, d["spot"], settlement, ("price", "gamma"))
        np.testing.assert_allclose(d[settlement]["value"], ref["price"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(d[settlement]["greek"], ref["gamma"], rtol=1e-10, atol=1e-18)
        pay = _direct(gex, d["spot"], settlement, ("price",), at_first_expiry=True)["price"]
        np.testing.assert_allclose(d[settlement]["payoff"], pay, rtol=1e-10, atol=1e-12)


def test_coin_delta_is_black_delta_minus_coin_premium(gex):
    gex.spot.value = 120_000.0
    gex.rate.value = 3.0
    d = gex.figure_data()
    lin, inv = d["linear_now"], d["inverse_now"]
    assert inv["delta"] == pytest.approx(lin["delta"] - inv["price"], rel=1e-9)
    assert f"{inv['delta']:.4f}" in gex.readout.value
    assert f"{lin['delta']:.4f}" in gex.readout.value


def test_negative_strike_shows_message_and_keeps_last_state(gex):
    gex.spot.value = 95_000.0
    good = gex.figure_data()
    gex.strike.value = -5.0
    assert "K:" in gex.status.value and "accepted" in gex.status.value
    assert "Traceback" not in gex.status.value
    assert gex.figure_data() is good
    assert gex.figure_data()["spot_now"] == 95_000.0
    gex.strike.value = 90_000.0  # recovers
    assert gex.status.value == ""
    assert gex.figure_data()["legs"][0]["strike"] == 90_000.0


def test_impossible_wings_and_nan_show_message(gex):
    gex.strategy.value = "strangle"
    good = gex.figure_data()
    gex.width.value = 150_000.0  # put wing struck below zero
    assert "accepted" in gex.status.value and gex.figure_data() is good
    gex.width.value = 10_000.0
    assert gex.status.value == ""
    good = gex.figure_data()
    gex.width.value = float("nan")
    assert "not a finite number" in gex.status.value and gex.figure_data() is good


def test_sliders_throttle_and_clamp(gex):
    for w in (gex.spot, gex.vol, gex.days, gex.rate):
        assert w.continuous_update is False
    gex.spot.value = 1e9  # impossible spot: the slider clamps to its range
    assert gex.spot.value == gex.spot.max
    assert gex.figure_data()["spot_now"] == gex.spot.max


def test_greeks_explorer_figure_shows_the_api_numbers():
    ex = GreeksExplorer(strategy="call spread", greek="gamma")
    ex.spot.value = 105_000.0
    d = ex.figure_data()
    assert ex.figure in ex.children and ex.widget is ex
    assert set(ex.last_timing) == {"compute_ms", "render_ms"}   # measured, not asserted
    for settlement in ("linear", "inverse"):
        mk = {key: ex.marks[settlement, key] for key in GreeksExplorer.MARKS}
        np.testing.assert_array_equal(mk["value"].x, d["spot"])
        np.testing.assert_array_equal(mk["value"].y, d[settlement]["value"])
        np.testing.assert_array_equal(mk["payoff"].y, d[settlement]["payoff"])
        np.testing.assert_array_equal(mk["greek"].y, d[settlement]["greek"])
        np.testing.assert_array_equal(mk["greek_vs_time"].x, d["days_left"])
        # greek vs time: the API at the current spot with both legs' time shortened
        for k in (0, 20, 45):
            T = d["days_left"][k] / 365.0
            direct = (pmnb.greeks(105_000.0, 100_000.0, T, 0.6, 0.0, option_type="call",
                                  model="black76", settlement=settlement, units="desk")["gamma"]
                      - pmnb.greeks(105_000.0, 110_000.0, T, 0.6, 0.0, option_type="call",
                                    model="black76", settlement=settlement,
                                    units="desk")["gamma"])
            assert mk["greek_vs_time"].y[k] == pytest.approx(float(direct), rel=1e-12,
                                                             abs=1e-18)
        assert list(mk["now"].x) == [105_000.0]
        assert mk["now"].y[0] == d[settlement + "_now"]["price"]
    assert "gamma vs spot" in ex.figures["linear", 1].title
    assert "inverse (coin)" in ex.figures["inverse", 2].title


# ---- PositionExplorer -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo():
    _, _, book, market = pmnb.demo.portfolio()
    return book, market


@pytest.fixture
def pex(demo):
    return PositionExplorer(*demo)


def test_position_table_matches_pm_greeks_and_value(pex, demo):
    book, market = demo
    g, v = book.pm.greeks(market), book.pm.value(market)
    t = pex.table
    assert len(t) == len(book) and list(t["position_id"]) == list(book["position_id"])
    for col in ("delta_usd", "gamma", "gamma_1pct_usd", "vega", "theta"):
        np.testing.assert_allclose(t[col].to_numpy(float), g[col].to_numpy(float), rtol=1e-12)
    np.testing.assert_allclose(t["value_usd"].to_numpy(float), v["value_usd"].to_numpy(float))
    assert "value_coin" not in t.columns
    assert "D-BTC-C96-JAN" in pex.grid.value


@pytest.mark.parametrize("key", ["underlying", "expiry", "venue", "account"])
@pytest.mark.parametrize("currency", ["coin", "USD"])
def test_exposures_by_dropdown_and_currency(pex, demo, key, currency):
    book, market = demo
    pex.currency.value = currency
    pex.group_by.value = key
    ref = book.pm.exposures(market, by=[key])
    shown = pex.exposures
    suffix = "_coin" if currency == "coin" else "_usd"
    assert shown.index.name == key and list(shown.index) == list(ref.index)
    assert [c for c in shown.columns if c.endswith(("_coin", "_usd")) and c != "gamma_1pct_usd"
            ] == [f"delta{suffix}", f"vega{suffix}", f"theta{suffix}"]
    pd.testing.assert_frame_equal(shown, ref[list(shown.columns)])
    first = f"{ref[f'delta{suffix}'].iloc[0]:,.4f}"
    assert first in pex.exposure_view.value


def test_currency_toggle_switches_row_columns(pex, demo):
    book, market = demo
    pex.currency.value = "coin"
    g, v = book.pm.greeks(market), book.pm.value(market)
    np.testing.assert_allclose(pex.table["delta_coin"].to_numpy(float),
                               g["delta_coin"].to_numpy(float))
    np.testing.assert_allclose(pex.table["value_coin"].to_numpy(float),
                               v["value_coin"].to_numpy(float))
    assert "delta_usd" not in pex.table.columns


def test_sort_and_filter(pex, demo):
    book, market = demo
    pex.sort_by.value = "delta_usd"
    pex.ascending.value = True
    assert list(pex.table["delta_usd"]) == sorted(book.pm.greeks(market)["delta_usd"])
    pex.filter.value = "deribit-pm"
    assert set(pex.table["account"]) == {"deribit-pm"} and len(pex.table) == 6
    pex.filter.value = "no-such-thing"
    assert pex.table.empty and "No position matches" in pex.grid.value


def test_invalid_book_shows_message_and_keeps_last_state(pex, demo):
    book, market = demo
    before_table, before_expo = pex.table.copy(), pex.exposures.copy()
    bad = book.copy()
    bad["strike"] = bad["strike"].astype(float)
    bad.loc[bad.index[0], "strike"] = -96_000.0
    assert pex.set_data(bad) is False
    assert pex.status.value and "Traceback" not in pex.status.value
    pd.testing.assert_frame_equal(pex.table, before_table)
    pd.testing.assert_frame_equal(pex.exposures, before_expo)
    assert pex.book is book
    pex.group_by.value = "venue"  # still works on the last good book
    assert pex.status.value == "" and pex.exposures.index.name == "venue"


def test_position_explorer_defaults_and_timing():
    ex = PositionExplorer()
    assert ex.widget is ex and len(ex.table) == 15
    ex.group_by.value = "expiry"
    assert set(ex.last_timing) == {"compute_ms", "render_ms"}


# ---- layering -------------------------------------------------------------------------------
def test_pmnb_does_not_import_widgets():
    code = ("import sys, pmnb, pmnb.demo; pmnb.demo.portfolio(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pmnb_widgets', 'ipywidgets', 'matplotlib')); print(bad); assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
