"""Headless tests of MarginWhatIf and LiquidationLadder: drive the controls, compare every number
shown with a direct call of pmnb's public API on a book built here, independently of the widget."""

import threading
import time

import numpy as np
import pandas as pd
import pytest

import pmnb
import pmnb.demo
from pmnb.liquidation import distance_to_liquidation, liquidation_prices
from pmnb_widgets.liquidation_ladder import LiquidationLadder
from pmnb_widgets.margin_whatif import (METRICS, LatestOnly, MarginWhatIf, fmt_amount,
                                        venue_instruments)


@pytest.fixture(scope="module")
def demo():
    return pmnb.demo.portfolio()


def _account(demo, acc):
    _, coll, book, _ = demo
    b = book[book["account"].astype(str) == acc].copy()
    c = coll[coll["account"].astype(str) == acc][["account", "asset", "balance"]].copy()
    c["balance"] = c["balance"].astype(float)
    return b, c


def _direct(book, coll, market, model, acc):
    return pmnb.margin.compute(book, market, model, account=acc,
                               collateral=coll if len(coll) else None)


def _assert_column(ex, model, phase, rep):
    shown = ex.results[model, phase]
    for k in ("equity", "initial", "maintenance", "margin_ratio", "excess"):
        assert shown[k] == pytest.approx(getattr(rep, k), rel=1e-12, abs=1e-12), k


def _nearest(res, und):
    t = res.table[res.table["underlying"] == und]
    down = t.loc[t["direction"] == "down", "price"]
    up = t.loc[t["direction"] == "up", "price"]
    return (down.max() if len(down) else np.nan), (up.min() if len(up) else np.nan)


def _assert_liquidation(ex, model, phase, res, und):
    down, up = _nearest(res, und)
    np.testing.assert_allclose([ex.results.loc["liquidation_down", (model, phase)],
                                ex.results.loc["liquidation_up", (model, phase)]],
                               [down, up], rtol=1e-12)


# ---- MarginWhatIf ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deribit_ex():
    ex = MarginWhatIf()
    assert ex.wait()
    return ex


def test_deribit_standard_vs_portfolio_side_by_side(deribit_ex, demo):
    ex = deribit_ex
    _, _, _, market = demo
    assert ex.account.value == "deribit-pm" and list(ex.results.index) == list(METRICS)
    book, coll = _account(demo, "deribit-pm")
    for model in ("deribit.portfolio", "deribit.standard"):
        rep = _direct(book, coll, market, model, "deribit-pm")
        _assert_column(ex, model, "before", rep)
        _assert_column(ex, model, "after", rep)
        res = liquidation_prices(book, market, model, account="deribit-pm", collateral=coll)
        _assert_liquidation(ex, model, "before", res, "BTC")
        assert f"{rep.maintenance:,.6f}" in ex.table.value
    # portfolio margin nets the hedges: a lower requirement than position-by-position margin
    r = ex.results
    assert r.loc["initial", ("deribit.portfolio", "before")] < \
        r.loc["initial", ("deribit.standard", "before")]
    assert "standard margin" in ex.explanation.value and ex.status.value == ""


def test_add_option_pays_premium_and_keeps_equity(demo):
    _, _, _, market = demo
    ex = MarginWhatIf(account="deribit-pm")
    sym = "BTC-27MAR26-90000-P"
    assert sym in ex.add_symbol.options
    ex.add_symbol.value, ex.add_size.value = sym, "10"
    ex.add_button.click()
    assert ex.status.value == ""
    new = ex.book[ex.book["symbol"].astype(str) == sym]
    assert len(new) == 1 and float(new["size"].iloc[0]) == 10.0
    # independent premium: Black-76 coin price on the market's forward and surface vol
    expiry = pd.Timestamp("2026-03-27T08:00Z")
    F = market.forward("BTC", expiry)
    sigma = float(market.vol("BTC", 90_000.0, expiry))
    prem = float(pmnb.price(F, 90_000.0, market.T(expiry), sigma, option_type="put",
                            settlement="inverse"))
    assert float(new["entry_price"].iloc[0]) == pytest.approx(prem, rel=1e-12)
    book0, coll0 = _account(demo, "deribit-pm")
    coll1 = coll0.copy()
    coll1["balance"] -= 10 * prem
    pd.testing.assert_frame_equal(ex.collateral.reset_index(drop=True),
                                  coll1.reset_index(drop=True))
    book1 = pd.concat([book0, pd.DataFrame({
        "position_id": ["X"], "account": ["deribit-pm"], "venue": ["deribit"], "symbol": [sym],
        "size": [10.0], "entry_price": [prem]})], ignore_index=True)
    for model in ("deribit.portfolio", "deribit.standard"):
        rep = _direct(book1, coll1, market, model, "deribit-pm")
        _assert_column(ex, model, "after", rep)
        # a trade at mark moves the requirement, not the equity
        assert rep.equity == pytest.approx(ex.results.loc["equity", (model, "before")],
                                           rel=1e-12)
        mm0 = ex.results.loc["maintenance", (model, "before")]
        if model == "deribit.standard":   # Deribit SM: a long option needs no margin
            assert rep.maintenance == pytest.approx(mm0, rel=1e-12)
        else:                             # PM revalues it with the book: the hedge counts
            assert rep.maintenance != pytest.approx(mm0, rel=1e-6)
    ex.runner.cancel()
    assert ex.wait()


def test_resize_binance_matches_direct_compute_and_liquidation(demo):
    _, _, _, market = demo
    ex = MarginWhatIf(account="binance-usdm")
    assert ex.wait()
    ex._row_widgets["B-BTCUSDT"].value = "-5"     # the row's size field, as a user types it
    assert ex.status.value == "" and ex.wait()
    book, coll = _account(demo, "binance-usdm")
    mark = market.mark("binance", "BTCUSDT")
    entry = float(book["entry_price"].iloc[0])
    # Binance: UPnL = size × (mark − entry); trading −1.5 at mark realises nothing, so the cash
    # moves by minus the change in UPnL and equity is unchanged
    coll["balance"] -= (-5.0 - -3.5) * (mark - entry)
    book["size"] = -5.0
    rep = _direct(book, coll, market, "binance.usdm", "binance-usdm")
    _assert_column(ex, "binance.usdm", "after", rep)
    assert ex.results.loc["equity", ("binance.usdm", "after")] == pytest.approx(
        ex.results.loc["equity", ("binance.usdm", "before")], rel=1e-12)
    res = liquidation_prices(book, market, "binance.usdm", account="binance-usdm",
                             collateral=coll)
    _assert_liquidation(ex, "binance.usdm", "after", res, "BTC")
    assert res.table["direction"].tolist() == ["up"]
    up = float(res.table["price"].iloc[0])
    assert up < ex.results.loc["liquidation_up", ("binance.usdm", "before")]  # bigger short
    assert f"{up:,.2f}" in ex.table.value
    assert f"{rep.maintenance:,.2f}" in ex.table.value


def test_remove_and_add_hyperliquid(demo):
    _, _, _, market = demo
    ex = MarginWhatIf(account="hyperliquid")
    assert ex.wait()
    before = ex.results[("hyperliquid", "before")].copy()
    # Hyperliquid's closed form (docs, "Liquidations"): liq = price − side × margin_available
    # / size / (1 − l × side), margin_available = equity − maintenance, l = maintenance rate
    mark = market.mark("hyperliquid", "ETH")
    l_rate = before["maintenance"] / (40.0 * mark)
    liq = mark - (before["equity"] - before["maintenance"]) / 40.0 / (1.0 - l_rate)
    assert before["liquidation_down"] == pytest.approx(liq, rel=1e-9)
    assert ex.add_trade("BTC", "0.5") and ex.wait()
    assert ex.remove("HL-ETH") and ex.wait()
    assert list(ex.book["symbol"].astype(str)) == ["BTC"]
    book, coll = _account(demo, "hyperliquid")
    eth_mark = market.mark("hyperliquid", "ETH")
    coll["balance"] += 40.0 * (eth_mark - 2851.5)          # closing ETH at mark realises its P&L
    new = pd.DataFrame({"position_id": ["N"], "account": ["hyperliquid"],
                        "venue": ["hyperliquid"], "symbol": ["BTC"], "size": [0.5],
                        "entry_price": [market.mark("hyperliquid", "BTC")]})
    rep = _direct(new, coll, market, "hyperliquid", "hyperliquid")
    _assert_column(ex, "hyperliquid", "after", rep)
    assert rep.equity == pytest.approx(before["equity"], rel=1e-12)
    res = liquidation_prices(new, market, "hyperliquid", account="hyperliquid", collateral=coll)
    _assert_liquidation(ex, "hyperliquid", "after", res, "BTC")
    # the "after" liquidation prices are BTC's now: the account holds BTC only
    assert ex.liquidation_underlying == {"before": "ETH", "after": "BTC"}
    assert ex.reset() and ex.wait()
    pd.testing.assert_series_equal(ex.results[("hyperliquid", "after")], before,
                                   check_names=False)


def test_bad_size_and_unsupported_trade_keep_last_state(demo):
    ex = MarginWhatIf(account="deribit-pm")
    ex.runner.cancel()
    good_book, good_coll = ex.book.copy(), ex.collateral.copy()
    good = ex.results.copy()
    field = ex._row_widgets["D-BTC-C96-JAN"]
    field.value = "twenty"
    assert "not a number" in ex.status.value and "D-BTC-C96-JAN" in ex.status.value
    assert "accepted" in ex.status.value and "Traceback" not in ex.status.value
    assert field.value == "-25"                         # the field shows the kept size again
    pd.testing.assert_frame_equal(ex.book, good_book)
    assert not ex.add_trade("ETH-PERPETUAL", "1000")    # ETH in a BTC portfolio-margin account
    assert "ETH" in ex.status.value and "Traceback" not in ex.status.value
    pd.testing.assert_frame_equal(ex.book, good_book)
    pd.testing.assert_frame_equal(ex.collateral, good_coll)
    pd.testing.assert_frame_equal(ex.results, good, check_exact=False)
    assert not ex.add_trade("BTC-NOT-A-SYMBOL", "1")
    assert "symbol" in ex.status.value
    assert ex.resize("D-BTC-C96-JAN", "-30")            # recovers
    assert ex.status.value == ""
    ex.runner.cancel()
    assert ex.wait()


def _without_eth_rates(monkeypatch):
    """Make the ETH standard-margin account unmarginable: its futures rates withdrawn."""
    import pmnb.margin.deribit_standard as ds

    monkeypatch.delitem(ds.DEFAULT_FUTURES, "ETH")


def test_account_with_margin_error_then_fixed_by_an_edit(demo, monkeypatch):
    _, _, _, market = demo
    _without_eth_rates(monkeypatch)
    ex = MarginWhatIf(account="binance-usdm")
    ex.account.value = "deribit-sm"
    assert "no futures margin rates for 'ETH'" in ex.status.value.replace("&#x27;", "'")
    assert ex.results[("deribit.standard", "before")].isna().all()
    assert "error" in ex.table.value and "Traceback" not in ex.table.value
    assert not ex.resize("D-ETH-C3200-JAN", "-200")     # still has the ETH future: refused
    assert ex.remove("D-ETH-FUT-MAR") and ex.wait()     # options only: standard margin works
    book, coll = _account(demo, "deribit-sm")
    book = book[book["position_id"] != "D-ETH-FUT-MAR"]
    v = book.iloc[:0]  # noqa: F841 - nothing else changes
    fut = _account(demo, "deribit-sm")[0].query("position_id == 'D-ETH-FUT-MAR'")
    # closing the inverse future at mark realises q (1/entry − 1/mark) ETH (Deribit's formula)
    mark = market.forward("ETH", pd.Timestamp("2026-03-27T08:00Z"))
    coll["balance"] += float(fut["size"].iloc[0]) * (1 / 3045.0 - 1 / mark)
    rep = _direct(book, coll, market, "deribit.standard", "deribit-sm")
    _assert_column(ex, "deribit.standard", "after", rep)
    res = liquidation_prices(book, market, "deribit.standard", account="deribit-sm",
                             collateral=coll)
    _assert_liquidation(ex, "deribit.standard", "after", res, "ETH")


def test_instruments_and_formats(demo):
    _, _, _, market = demo
    assert venue_instruments(market, "hyperliquid") == ["BTC", "ETH"]
    deribit = venue_instruments(market, "deribit")
    assert "BTC-PERPETUAL" in deribit and "ETH-27MAR26" in deribit
    assert len(deribit) > 1000 and len(set(deribit)) == len(deribit)
    assert venue_instruments(market, "aave") == []
    assert fmt_amount(2376.296, "USDC") == "2,376.30" and fmt_amount(1.5, "ETH") == "1.500000"


def test_latest_only_never_runs_stale_work():
    release, ran = threading.Event(), []
    r = LatestOnly()

    def job(name, block=False):
        def run(is_stale):
            if block:
                release.wait(10)
            ran.append((name, is_stale()))
        return run

    r.submit(job("first", block=True))
    time.sleep(0.05)
    r.submit(job("second"))            # replaced before it starts
    r.submit(job("third"))
    release.set()
    assert r.wait(10)
    assert ran == [("first", True), ("third", False)]
    inline = LatestOnly(background=False)
    inline.submit(job("now"))
    assert ran[-1] == ("now", False)


def test_whatif_edit_never_waits_for_the_liquidation_search(monkeypatch):
    """The edit path computes margin only; the liquidation search runs on the worker thread
    (speed itself is measured, never asserted: see the note of issue #15)."""
    import pmnb_widgets.margin_whatif as mw

    ex = MarginWhatIf(account="binance-usdm")
    assert ex.wait()
    gate, threads = threading.Event(), []
    real = mw.liquidation_prices

    def gated(*args, **kwargs):
        threads.append(threading.current_thread())
        gate.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(mw, "liquidation_prices", gated)
    assert ex.resize("B-BTCUSDT", -3.6)            # returns while the search is held
    r = ex.results["binance.usdm"]
    assert np.isfinite(r.loc["maintenance", "after"])
    assert not gate.is_set()
    gate.set()
    assert ex.wait()
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert set(ex.last_timing) >= {"compute_ms"}


# ---- LiquidationLadder -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ladder():
    lad = LiquidationLadder(account="hyperliquid", move_range_pct=(-60, 60), n_points=41)
    assert lad.wait()
    return lad


def test_ladder_curve_points_equal_direct_calls(ladder, demo):
    _, coll, book, market = demo
    c = ladder.curve
    assert len(c) == 41 and np.isclose(c["spot_shock"], 0.0).any()
    spot = market.spot("ETH")
    np.testing.assert_allclose(c["price"], spot * (1 + c["spot_shock"]), rtol=1e-15)
    for i in (0, 7, 20, 40):
        s = float(c["spot_shock"].iloc[i])
        rep = pmnb.margin.compute(book, market.shocked(s), "hyperliquid", account="hyperliquid",
                                  collateral=coll)
        assert c["equity"].iloc[i] == pytest.approx(rep.equity, rel=1e-12)
        assert c["maintenance"].iloc[i] == pytest.approx(rep.maintenance, rel=1e-12)
    eq, mm = ladder.traces[0], ladder.traces[1]
    assert eq.labels == ["equity"] and mm.labels == ["maintenance margin"]
    assert ladder.fig.marks == ladder.traces
    np.testing.assert_allclose(np.asarray(eq.x, float), c["price"])
    np.testing.assert_allclose(np.asarray(eq.y, float), c["equity"])
    np.testing.assert_allclose(np.asarray(mm.y, float), c["maintenance"])


def _markers(lad):
    """The liquidation segments drawn: one vertical [p, p] segment per price."""
    tr = lad.traces[3]
    if not tr.visible:
        return np.array([])
    xs = np.asarray(tr.x, float).reshape(-1, 2)
    assert (xs[:, 0] == xs[:, 1]).all()
    return np.unique(xs[:, 0])


def test_ladder_markers_where_equity_meets_maintenance(ladder, demo):
    _, coll, book, market = demo
    res = liquidation_prices(book, market, "hyperliquid", account="hyperliquid",
                             collateral=coll)
    pd.testing.assert_frame_equal(ladder.liquidation.table, res.table)
    shown = _markers(ladder)
    np.testing.assert_allclose(shown, res.table["price"], rtol=1e-12)
    c = ladder.curve
    gap = c["gap"].to_numpy()
    flips = np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))
    assert len(flips) == len(shown) == 1
    for p, i in zip(shown, flips):
        assert c["price"].iloc[i] <= p <= c["price"].iloc[i + 1]
        # and at the marker equity equals maintenance (direct call)
        rep = pmnb.margin.compute(book, market.shocked(p / market.spot("ETH") - 1),
                                  "hyperliquid", account="hyperliquid", collateral=coll)
        assert abs(rep.equity - rep.maintenance) < 1e-6 * rep.maintenance
    d = distance_to_liquidation(res, market)
    pd.testing.assert_frame_equal(ladder.distances, d)
    assert f"{d['distance_daily_sigmas'].iloc[0]:,.2f}" in ladder.table.value
    assert f"{d['distance_usd'].iloc[0]:,.2f}" in ladder.table.value


def test_ladder_move_slider_units_and_model(ladder, demo, monkeypatch):
    import pmnb_widgets.liquidation_ladder as ll

    _, coll, book, market = demo
    searched = []
    monkeypatch.setattr(ll, "liquidation_prices", lambda *a, **k: searched.append(1))
    ladder.move.value = -25.0
    assert not searched                               # a move is one margin computation
    monkeypatch.undo()
    rep = pmnb.margin.compute(book, market.shocked(-0.25), "hyperliquid", account="hyperliquid",
                              collateral=coll)
    assert ladder.move_report.equity == pytest.approx(rep.equity, rel=1e-12)
    assert f"{rep.equity:,.2f}" in ladder.readout.value
    assert ladder.traces[5].x[0] == pytest.approx(market.spot("ETH") * 0.75)
    assert "move_ms" in ladder.last_timing            # measured, not asserted
    ladder.units.value = "USD"
    np.testing.assert_allclose(np.asarray(ladder.traces[0].y, float),
                               ladder.curve["equity_usd"])
    ladder.units.value = "margin currency"
    assert ladder.model.options == ("hyperliquid",)


def test_ladder_deribit_standard_crossing(demo):
    _, coll, book, market = demo
    lad = LiquidationLadder(account="deribit-pm", model="deribit.standard",
                            move_range_pct=(-20, 60), n_points=17)
    assert lad.wait()
    gap = lad.curve["gap"].to_numpy()
    flips = np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))
    shown = _markers(lad)
    assert len(flips) == len(shown) == 1
    assert lad.curve["price"].iloc[flips[0]] <= shown[0] <= lad.curve["price"].iloc[flips[0] + 1]
    rep = pmnb.margin.compute(book, market.shocked(shown[0] / market.spot("BTC") - 1),
                              "deribit.standard", account="deribit-pm", collateral=coll)
    assert abs(rep.equity - rep.maintenance) < 1e-8 * rep.maintenance


def test_ladder_errors_keep_last_state(ladder, monkeypatch):
    _without_eth_rates(monkeypatch)
    before_y = tuple(ladder.traces[0].y)
    ladder.account.value = "deribit-sm"               # its margin cannot be computed
    assert "deribit-sm" in ladder.status.value and "Still showing hyperliquid" in \
        ladder.status.value
    assert ladder.account.value == "hyperliquid" and tuple(ladder.traces[0].y) == before_y
    ladder.range.value = (5, 60)                      # a range that does not contain 0
    assert "accepted" in ladder.status.value and ladder.range.value == (-60, 60)
    assert ladder.wait() and tuple(ladder.traces[0].y) == before_y
