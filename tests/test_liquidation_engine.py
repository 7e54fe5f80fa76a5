"""Liquidation-engine simulation (pmnb.liquidation.simulate_liquidation)."""

import numpy as np
import pandas as pd
import pytest

import pmnb
from pmnb.errors import ValidationError
from pmnb.liquidation import liquidation_prices, simulate_liquidation


def _times(n, freq="1min"):
    return pd.date_range("2026-01-01", periods=n, freq=freq, tz="UTC")


def _binance():
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
                              marks={"binance:BTCUSDT": 60_000.0})
    book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
                         "size": [1.0], "entry_price": [60_000.0],
                         "isolated_margin": [3_000.0]})
    path = pd.Series(np.arange(60_000.0, 54_999.0, -250.0), name="BTC")
    path.index = _times(len(path))
    return m, book, path


def _hyperliquid(step_fall=60.0, n=30, size=5.0):
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 100_000.0},
                              marks={"hyperliquid:BTC": 100_000.0})
    book = pd.DataFrame({"account": ["h"], "venue": ["hyperliquid"], "symbol": ["BTC"],
                         "size": [size], "entry_price": [100_000.0]})
    coll = pd.DataFrame({"account": ["h"], "asset": ["USDC"], "balance": [10_000.0]})
    path = pd.Series(99_200.0 - step_fall * np.arange(n), index=_times(n, "10s"), name="BTC")
    return m, book, coll, path


def _aave():
    m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 2_000.0})
    book = pd.DataFrame({"account": "u", "venue": "aave", "symbol": ["aWETH", "vUSDC"],
                         "kind": ["lending_supply", "lending_borrow"], "asset": ["WETH", "USDC"],
                         "amount": [10.0, 14_000.0], "size": [10.0, -14_000.0]})
    path = pd.Series([2_000.0, 1_800.0, 1_700.0, 1_650.0], index=_times(4, "1h"), name="ETH")
    return m, book, path


def test_binance_isolated_long_full_close_at_first_step_below_liquidation_price():
    m, book, path = _binance()
    lp = float(liquidation_prices(book, m, "binance.usdm").table["price"].iloc[0])
    assert lp == pytest.approx(57_236.1809, abs=1e-3)        # margin.md L2
    log = simulate_liquidation(book, m, path, "binance.usdm", insurance_fund=1_000.0)
    assert len(log) == 1
    ev = log.iloc[0]
    first_below = int(np.flatnonzero(path.to_numpy() < lp)[0])
    assert ev["step"] == first_below and ev["time"] == path.index[first_below]
    assert ev["size_closed"] == 1.0 and ev["size_after"] == 0.0
    # remaining isolated margin (at mark) goes to the insurance fund
    remaining = 3_000.0 + (ev["price"] - 60_000.0)
    assert ev["insurance_flow"] == pytest.approx(remaining)
    assert ev["insurance_fund"] == pytest.approx(1_000.0 + remaining)
    assert ev["equity"] == pytest.approx(0.0) and ev["fee"] == 0.0


def test_binance_fee_and_deficit_drawn_from_fund():
    m, book, _ = _binance()
    path = pd.Series([59_000.0, 56_000.0], index=_times(2), name="BTC")  # gap through LP
    log = simulate_liquidation(book, m, path, "binance.usdm", insurance_fund=500.0,
                               liquidation_fee_rate=0.005)
    ev = log.iloc[0]
    # equity at 56,000 = 3,000 - 4,000 = -1,000: no fee can be paid, deficit drawn
    assert ev["fee"] == 0.0
    assert ev["insurance_flow"] == pytest.approx(-1_000.0)
    assert ev["insurance_fund"] == pytest.approx(-500.0)
    assert "auto-deleveraging" in ev["note"]
    path = pd.Series([57_200.0], index=_times(1), name="BTC")   # equity 200 <= MM 236
    ev = simulate_liquidation(book, m, path, "binance.usdm", liquidation_fee_rate=1e-4).iloc[0]
    assert ev["fee"] == pytest.approx(1e-4 * 57_200.0)
    assert ev["insurance_flow"] == pytest.approx(200.0 - ev["fee"])


def test_hyperliquid_large_position_sliced_20pct_with_cooldown():
    m, book, coll, path = _hyperliquid(step_fall=150.0, n=12)
    log = simulate_liquidation(book, m, path, "hyperliquid", collateral=coll)
    liq = log[log["event"] == "liquidation"]
    assert len(liq) >= 3
    big = liq[liq["size_before"] * liq["price"] > 100_000.0]
    np.testing.assert_allclose(big["size_closed"] / big["size_before"], 0.2)
    gaps = np.diff(liq["time"].to_numpy()).astype("timedelta64[s]").astype(float)
    assert (gaps >= 30.0).all()
    assert (gaps == 30.0).any()          # the cooldown is what spaces the slices
    # without the cooldown the same path is sliced more often
    fast = simulate_liquidation(book, m, path, "hyperliquid", collateral=coll,
                                hl_cooldown=pd.Timedelta(0))
    assert (fast["event"] == "liquidation").sum() > len(liq)
    assert "approximation" in liq["note"].iloc[0]


def test_hyperliquid_small_position_full_close_and_backstop():
    m, book, coll, _ = _hyperliquid(size=0.5)
    coll = coll.assign(balance=1_000.0)
    path = pd.Series([98_200.0], index=_times(1), name="BTC")
    rep = pmnb.margin.compute(book, m.shocked(98_200.0 / 100_000 - 1), "hyperliquid",
                              account="h", collateral=coll)
    # equity 100 < 2/3 of MM 613.75: backstop
    assert rep.equity == pytest.approx(100.0) and rep.equity < 2 / 3 * rep.maintenance
    log = simulate_liquidation(book, m, path, "hyperliquid", collateral=coll, insurance_fund=0.0)
    ev = log.iloc[0]
    assert ev["event"] == "backstop" and ev["size_after"] == 0.0
    assert ev["insurance_flow"] == pytest.approx(rep.equity)
    # equity 425, MM 617.8 (2/3: 411.9), notional 49,425 < 100k: full market close,
    # the margin stays with the user
    path = pd.Series([98_850.0], index=_times(1), name="BTC")
    ev = simulate_liquidation(book, m, path, "hyperliquid", collateral=coll).iloc[0]
    assert ev["event"] == "liquidation" and ev["size_after"] == 0.0
    assert ev["insurance_flow"] == 0.0 and ev["equity"] == pytest.approx(425.0)


def test_aave_close_factor_and_bonus_on_falling_eth():
    from pmnb.margin.aave_v3 import close_factor

    m, book, path = _aave()
    log = simulate_liquidation(book, m, path, "aave.v3")
    assert len(log) == 1
    ev = log.iloc[0]
    assert ev["step"] == 3 and ev["price"] == 1_650.0
    hf = 10 * 1_650.0 * 0.825 / 14_000.0
    assert close_factor(hf, 14_000.0, 16_500.0) == 0.5
    repaid = 0.5 * 14_000.0
    seized = repaid * 1.05 / 1_650.0
    assert ev["size_closed"] == pytest.approx(seized)
    assert ev["fee"] == pytest.approx((seized - seized / 1.05) * 1_650.0)   # the bonus, USD
    fb = log.attrs["book"]
    assert fb["amount"].tolist() == pytest.approx([10.0 - seized, 14_000.0 - repaid])
    assert "protocol fee" in ev["note"]


@pytest.mark.parametrize("case", ["binance", "hl", "hl_short", "aave"])
def test_conservation_and_sizes_only_shrink(case):
    if case == "binance":
        m, book, path = _binance()
        log = simulate_liquidation(book, m, path, "binance.usdm", insurance_fund=100.0,
                                   liquidation_fee_rate=2e-4)
        model, coll = "binance.usdm", None
    elif case.startswith("hl"):
        m, book, coll, path = _hyperliquid(step_fall=150.0, n=20)
        if case == "hl_short":
            book = book.assign(size=-5.0)
            path = pd.Series(100_800.0 + 150.0 * np.arange(20), index=path.index, name="BTC")
        log = simulate_liquidation(book, m, path, "hyperliquid", collateral=coll,
                                   liquidation_fee_rate=1e-4)
        model = "hyperliquid"
    else:
        m, book, path = _aave()
        path = pd.concat([path, pd.Series([1_500.0, 1_400.0], index=_times(2, "1h") +
                                          pd.Timedelta(hours=4))]).rename("ETH")
        log = simulate_liquidation(book, m, path, "aave.v3")
        model, coll = "aave.v3", None
    assert len(log) >= 1
    # equity before = equity after + fees + insurance-fund flows, per event
    np.testing.assert_allclose(log["equity_before"],
                               log["equity"] + log["fee"] + log["insurance_flow"],
                               rtol=0, atol=1e-6)
    # insurance fund balance is the running sum of its flows
    start = log["insurance_fund"].iloc[0] - log["insurance_flow"].iloc[0]
    np.testing.assert_allclose(log["insurance_fund"], start + log["insurance_flow"].cumsum())
    # no sign change, sizes only shrink
    assert (log["size_before"] * log["size_after"] >= 0).all()
    assert (log["size_after"].abs() <= log["size_before"].abs() + 1e-12).all()
    # final state recomputed independently agrees with the last logged equity
    last = log.iloc[-1]
    p0 = m.spot(path.name)
    fin = pmnb.margin.compute(log.attrs["book"], m.shocked(path.loc[last["time"]] / p0 - 1),
                              model, collateral=(log.attrs["collateral"]
                                                 if len(log.attrs["collateral"]) else None))
    assert fin.equity == pytest.approx(last["equity"], abs=1e-6)


def test_unsupported_model_raises_naming_supported():
    m = pmnb.Market.from_dict("2026-01-01", spots={"ETH": 3_000.0},
                              marks={"dydx:ETH-USD": 3_000.0})
    book = pd.DataFrame({"account": ["d"], "venue": ["dydx"], "symbol": ["ETH-USD"],
                         "size": [1.0], "entry_price": [3_000.0]})
    path = pd.Series([2_900.0], index=_times(1), name="ETH")
    with pytest.raises(ValidationError, match=r"not supported yet.*binance\.usdm.*hyperliquid"
                                              r".*dydx\.v4.*deribit\.standard"):
        simulate_liquidation(book, m, path, "span")


def test_bad_path_rejected():
    m, book, _ = _binance()
    with pytest.raises(ValidationError, match="price_path"):
        simulate_liquidation(book, m, pd.Series([1.0, 2.0]), "binance.usdm")
