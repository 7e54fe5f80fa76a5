"""pmnb.ledger: trade ledger -> positions (average entry, realised P&L, fees) and validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pmnb
from pmnb.errors import ValidationError
from pmnb.ledger import POSITION_COLUMNS, positions_from_trades

T0 = pd.Timestamp("2026-01-05T00:00Z")

DERIBIT_PERP = dict(account="acc1", venue="deribit", symbol="BTC-PERPETUAL", settlement="inverse",
                    contract_size=10.0, kind="perpetual", pnl_currency="BTC")
BINANCE_PERP = dict(account="acc2", venue="binance", symbol="BTCUSDT", settlement="linear",
                    contract_size=1.0, kind="perpetual", pnl_currency="USDT")
DERIBIT_CALL = dict(account="acc1", venue="deribit", symbol="BTC-27MAR26-100000-C",
                    settlement="inverse", contract_size=1.0, kind="option", pnl_currency="BTC")


def _fills(spec, fills, hour0=0):
    """Rows of one instrument: (side, size, price, fee, fee_currency), one hour apart."""
    return [dict(spec, time=T0 + pd.Timedelta(hours=hour0 + h), side=side, size=size, price=price,
                 fee=fee, fee_currency=ccy)
            for h, (side, size, price, fee, ccy) in enumerate(fills)]


# (a) Deribit BTC-PERPETUAL, 10 USD contracts, harmonic average, P&L in BTC
PERP_FILLS = [
    ("buy", 1000, 40_000.0, 0.000125, "BTC"),  # long 1000 @ 40,000
    # + 1000 @ 60,000: entry = 2000 / (1000/40,000 + 1000/60,000) = 2000 / (0.025 + 0.0166667)
    #                        = 48,000 (the arithmetic mean would be 50,000)
    ("buy", 1000, 60_000.0, 0.0000833, "BTC"),
    # partial close 500 @ 50,000: 500 * 10 * (1/48,000 - 1/50,000) = 5000 * 2000 / 2.4e9
    #                           = +1/240 BTC = +0.00416667; left: long 1500 @ 48,000
    ("sell", 500, 50_000.0, 0.00005, "BTC"),
    # flip: sell 2500 @ 40,000 closes 1500: 1500 * 10 * (1/48,000 - 1/40,000) = -15000 * 8000
    #       / 1.92e9 = -0.0625 BTC; opens short 1000 @ 40,000
    ("sell", 2500, 40_000.0, 0.0003125, "BTC"),
    # partial close of the short, 400 @ 32,000: -400 * 10 * (1/40,000 - 1/32,000)
    #       = 4000 * 8000 / 1.28e9 = +0.025 BTC; left: short 600 @ 40,000
    ("buy", 400, 32_000.0, 0.0000625, "BTC"),
]
# total: 1/240 - 0.0625 + 0.025 = -1/30 BTC
PERP_PNL = 1 / 240 - 0.0625 + 0.025

# (b) Binance BTCUSDT, linear, 1 BTC contracts, arithmetic average, P&L in USDT
USDT_FILLS = [
    ("buy", 0.5, 60_000.0, 15.0, "USDT"),   # long 0.5 @ 60,000
    ("buy", 1.5, 64_000.0, 48.0, "USDT"),   # entry (0.5*60,000 + 1.5*64,000) / 2 = 63,000
    ("sell", 1.0, 66_000.0, 33.0, "USDT"),  # close 1.0: (66,000 - 63,000) * 1 = +3,000; long 1.0
    ("sell", 1.6, 61_000.0, 48.8, "USDT"),  # flip: 1.0 * (61,000 - 63,000) = -2,000;
                                            # short 0.6 @ 61,000
    ("buy", 0.2, 58_000.0, 0.01, "BNB"),    # close 0.2 of the short: -0.2 * (58,000 - 61,000)
                                            # = +600; left: short 0.4 @ 61,000
]
# total: 3,000 - 2,000 + 600 = 1,600 USDT; fees 15 + 48 + 33 + 48.8 = 144.8 USDT and 0.01 BNB
USDT_PNL = 1600.0

# (c) Deribit inverse call, premium in BTC per 1-BTC contract, arithmetic average of the premium
CALL_FILLS = [
    ("buy", 2.0, 0.05, 0.0006, "BTC"),   # long 2 @ 0.05
    ("buy", 1.0, 0.08, 0.0003, "BTC"),   # entry (2*0.05 + 1*0.08) / 3 = 0.06 (harmonic: 0.0571)
    ("sell", 1.5, 0.07, 0.00045, "BTC"),  # close 1.5: 1.5 * (0.07 - 0.06) = +0.015; long 1.5
    ("sell", 2.5, 0.04, 0.00075, "BTC"),  # flip: 1.5 * (0.04 - 0.06) = -0.03; short 1.0 @ 0.04
    ("buy", 0.4, 0.025, 0.00012, "BTC"),  # -0.4 * (0.025 - 0.04) = +0.006; left short 0.6 @ 0.04
]
# total: 0.015 - 0.03 + 0.006 = -0.009 BTC
CALL_PNL = -0.009


def _book():
    rows = (_fills(DERIBIT_PERP, PERP_FILLS) + _fills(BINANCE_PERP, USDT_FILLS, hour0=1)
            + _fills(DERIBIT_CALL, CALL_FILLS, hour0=2))
    df = pd.DataFrame(rows)
    df.index = [f"f{i}" for i in range(len(df))]
    return df


def _row(pos, symbol):
    sel = pos[pos.symbol == symbol]
    assert len(sel) == 1
    return sel.iloc[0]


def test_hand_worked_ledger_inverse_perp_linear_perp_inverse_option():
    pos = positions_from_trades(_book())
    assert tuple(pos.columns) == POSITION_COLUMNS
    assert pos.symbol.tolist() == ["BTC-27MAR26-100000-C", "BTC-PERPETUAL", "BTCUSDT"]  # sorted

    perp = _row(pos, "BTC-PERPETUAL")
    assert perp["size"] == -600.0
    assert perp.entry_price == pytest.approx(40_000.0, rel=1e-13)
    assert perp.realised_pnl == pytest.approx(PERP_PNL, rel=1e-12)
    assert perp.realised_pnl == pytest.approx(-1 / 30, rel=1e-12)
    assert perp.pnl_currency == "BTC" and perp.settlement == "inverse"
    assert perp.contract_size == 10.0 and perp.kind == "perpetual" and perp.n_trades == 5
    assert perp.fees == {"BTC": pytest.approx(0.000125 + 0.0000833 + 0.00005 + 0.0003125
                                              + 0.0000625, rel=1e-12)}
    assert perp.first_trade == T0
    assert perp.opened == T0 + pd.Timedelta(hours=3)  # the flip reopened it
    assert perp.last_trade == T0 + pd.Timedelta(hours=4)

    usdt = _row(pos, "BTCUSDT")
    assert usdt["size"] == pytest.approx(-0.4, rel=1e-12)
    assert usdt.entry_price == pytest.approx(61_000.0, rel=1e-13)
    assert usdt.realised_pnl == pytest.approx(USDT_PNL, rel=1e-12)
    assert usdt.pnl_currency == "USDT"
    assert list(usdt.fees) == ["USDT", "BNB"]  # order of first payment
    assert usdt.fees["USDT"] == pytest.approx(144.8, rel=1e-12) and usdt.fees["BNB"] == 0.01
    assert usdt.opened == T0 + pd.Timedelta(hours=4)

    call = _row(pos, "BTC-27MAR26-100000-C")
    assert call["size"] == pytest.approx(-0.6, rel=1e-12)
    assert call.entry_price == pytest.approx(0.04, rel=1e-13)
    assert call.realised_pnl == pytest.approx(CALL_PNL, rel=1e-12)
    assert call.pnl_currency == "BTC" and call.kind == "option"


def test_inverse_entry_is_harmonic_and_option_entry_arithmetic_before_any_close():
    df = _book()
    two = df.groupby("symbol").head(2)  # the two opening buys of each instrument
    pos = positions_from_trades(two)
    assert _row(pos, "BTC-PERPETUAL").entry_price == pytest.approx(48_000.0, rel=1e-13)
    assert _row(pos, "BTCUSDT").entry_price == pytest.approx(63_000.0, rel=1e-13)
    assert _row(pos, "BTC-27MAR26-100000-C").entry_price == pytest.approx(0.06, rel=1e-13)
    assert (pos.realised_pnl == 0).all()
    assert (pos.opened == pos.first_trade).all()


def test_deribit_documented_example():
    # Deribit "Example (futures)": 100 x 10 USD bought at 600, sold at 700 -> 1000/600 - 1000/700
    # = 0.238095 BTC.
    df = pd.DataFrame(_fills(DERIBIT_PERP, [("buy", 100, 600.0, 0.0, "BTC"),
                                            ("sell", 100, 700.0, 0.0, "BTC")]))
    p = positions_from_trades(df).iloc[0]
    assert p.realised_pnl == pytest.approx(1000 / 600 - 1000 / 700, rel=1e-14)
    assert round(p.realised_pnl, 6) == 0.238095
    assert p["size"] == 0.0 and np.isnan(p.entry_price) and p.opened is pd.NaT
    assert p.fees == {}


def test_bybit_documented_inverse_average():
    # Bybit help centre: 50 contracts at 10,000 and 50 at 15,000 average 12,000 (1 USD contracts)
    spec = dict(DERIBIT_PERP, contract_size=1.0)
    df = pd.DataFrame(_fills(spec, [("buy", 50, 10_000.0, 0, "BTC"),
                                    ("buy", 50, 15_000.0, 0, "BTC")]))
    assert positions_from_trades(df).entry_price.iloc[0] == pytest.approx(12_000.0, rel=1e-14)


def test_signed_size_without_side_matches_side_column():
    df = _book()
    signed = df.drop(columns="side").assign(size=np.where(df.side == "sell", -df["size"],
                                                          df["size"]))
    pd.testing.assert_frame_equal(positions_from_trades(signed), positions_from_trades(df))
    # a negative size on a sell row agrees with its side and is accepted
    neg = df.assign(size=np.where(df.side == "sell", -df["size"], df["size"]))
    pd.testing.assert_frame_equal(positions_from_trades(neg), positions_from_trades(df))


def test_order_is_by_time_not_rows():
    df = _book()
    shuffled = df.sample(frac=1.0, random_state=7)
    assert not shuffled.index.equals(df.index)
    pd.testing.assert_frame_equal(positions_from_trades(shuffled), positions_from_trades(df))
    # reversing the rows of a ledger whose order matters changes nothing either
    pd.testing.assert_frame_equal(positions_from_trades(df.iloc[::-1]), positions_from_trades(df))


def test_equal_times_keep_row_order():
    spec = dict(BINANCE_PERP)
    t1 = T0 + pd.Timedelta(hours=1)
    base = dict(spec, time=T0, side="buy", size=1.0, price=100.0)
    sell = dict(spec, time=t1, side="sell", size=1.0, price=110.0)
    buy = dict(spec, time=t1, side="buy", size=1.0, price=130.0)
    # sell first: flat with +10, then long 1 @ 130
    a = positions_from_trades(pd.DataFrame([base, sell, buy])).iloc[0]
    assert (a["size"], a.entry_price, a.realised_pnl) == (1.0, 130.0, 10.0)
    assert a.opened == t1
    # buy first: long 2 @ 115, then selling 1 @ 110 realises -5 and leaves long 1 @ 115
    b = positions_from_trades(pd.DataFrame([base, buy, sell])).iloc[0]
    assert (b["size"], b.entry_price, b.realised_pnl) == (1.0, 115.0, -5.0)
    assert b.opened == T0


def test_accounts_and_venues_are_separate_positions():
    df = _book()
    other = df[df.symbol == "BTC-PERPETUAL"].assign(account="acc9")
    other.index = [f"g{i}" for i in range(len(other))]
    pos = positions_from_trades(pd.concat([df, other]))
    perps = pos[pos.symbol == "BTC-PERPETUAL"]
    assert perps.account.tolist() == ["acc1", "acc9"]
    np.testing.assert_allclose(perps.realised_pnl, [PERP_PNL, PERP_PNL], rtol=1e-12)


def test_defaults_without_optional_columns():
    df = _book().drop(columns=["fee", "fee_currency", "pnl_currency"])
    pos = positions_from_trades(df)
    assert pos.set_index("symbol").pnl_currency.to_dict() == {
        "BTC-PERPETUAL": "coin", "BTCUSDT": "quote", "BTC-27MAR26-100000-C": "coin"}
    assert all(f == {} for f in pos.fees)
    assert _row(pos, "BTCUSDT").realised_pnl == pytest.approx(USDT_PNL, rel=1e-12)


def test_times_as_strings_and_spellings():
    df = _book()
    df["time"] = df.time.dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    df.loc["f0", "time"] = df.loc["f0", "time"].replace("+00:00", "Z")
    df["side"] = df.side.str.upper()
    df["settlement"] = df.settlement.str.title()
    pos = positions_from_trades(df)
    assert str(pos.first_trade.dt.tz) == "UTC"
    assert _row(pos, "BTC-PERPETUAL").realised_pnl == pytest.approx(PERP_PNL, rel=1e-12)
    assert set(pos.settlement) == {"inverse", "linear"}


def test_float_dust_is_flat_and_option_can_close_at_zero():
    spec = dict(DERIBIT_CALL)
    df = pd.DataFrame(_fills(spec, [("buy", 0.1, 0.01, 0, "BTC"), ("buy", 0.2, 0.01, 0, "BTC"),
                                    ("sell", 0.3, 0.0, 0, "BTC")]))  # expired worthless
    p = positions_from_trades(df).iloc[0]
    assert p["size"] == 0.0 and np.isnan(p.entry_price)  # 0.1 + 0.2 - 0.3 is not 0.0 in floats
    assert p.realised_pnl == pytest.approx(-0.003, rel=1e-12)


def test_empty_ledger():
    pos = positions_from_trades(_book().iloc[:0])
    assert tuple(pos.columns) == POSITION_COLUMNS and len(pos) == 0
    assert pos["size"].dtype == np.float64 and pos.n_trades.dtype == np.int64


# ---------------------------------------------------------------------------------- properties

SPECS = [DERIBIT_PERP, BINANCE_PERP, DERIBIT_CALL,
         dict(BINANCE_PERP, symbol="ETHUSDT_260327", kind="future", contract_size=0.1)]


@st.composite
def ledgers(draw):
    spec = draw(st.sampled_from(SPECS))
    lo, hi = (0.001, 0.3) if spec["kind"] == "option" else (1_000.0, 150_000.0)
    n = draw(st.integers(1, 12))
    sizes = draw(st.lists(st.integers(-50, 50).filter(bool), min_size=n, max_size=n))
    prices = draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))
    rows = [dict(spec, time=T0 + pd.Timedelta(minutes=i), size=float(s), price=p,
                 fee=abs(s) * 1e-4, fee_currency="BTC")
            for i, (s, p) in enumerate(zip(sizes, prices))]
    return spec, pd.DataFrame(rows)


def _scale(df):
    """Magnitude of the P&L terms, for an absolute tolerance."""
    q = np.where(df.settlement.eq("inverse") & df.kind.ne("option"), 1 / df.price, df.price)
    return float(np.abs(df["size"]).sum() * df.contract_size.iloc[0] * q.max())


@settings(max_examples=150, deadline=None)
@given(ledgers(), st.data())
def test_splitting_a_fill_at_the_same_price_changes_nothing(case, data):
    spec, df = case
    i = data.draw(st.integers(0, len(df) - 1))
    s = df["size"].iloc[i]
    if abs(s) < 2:
        return
    k = data.draw(st.integers(1, int(abs(s)) - 1))
    first = df.iloc[[i]].assign(size=np.sign(s) * k, fee=df.fee.iloc[i] * k / abs(s))
    second = df.iloc[[i]].assign(size=s - np.sign(s) * k, fee=df.fee.iloc[i] - first.fee.iloc[0])
    split = pd.concat([df.iloc[:i], first, second, df.iloc[i + 1:]], ignore_index=True)
    a, b = positions_from_trades(df).iloc[0], positions_from_trades(split).iloc[0]
    assert b["size"] == a["size"]
    if a["size"] == 0:
        assert np.isnan(b.entry_price) and np.isnan(a.entry_price)
    else:
        assert b.entry_price == pytest.approx(a.entry_price, rel=1e-12)
    assert b.realised_pnl == pytest.approx(a.realised_pnl, rel=1e-9, abs=1e-12 * _scale(df))
    assert b.fees["BTC"] == pytest.approx(a.fees["BTC"], rel=1e-12)
    assert b.n_trades == a.n_trades + 1


@settings(max_examples=150, deadline=None)
@given(ledgers())
def test_closing_at_the_average_entry_realises_nothing(case):
    spec, df = case
    a = positions_from_trades(df).iloc[0]
    if a["size"] == 0:
        return
    close = df.iloc[[-1]].assign(time=df.time.iloc[-1] + pd.Timedelta(minutes=1), size=-a["size"],
                                 price=a.entry_price, fee=0.5, fee_currency="XYZ")
    b = positions_from_trades(pd.concat([df, close], ignore_index=True)).iloc[0]
    assert b["size"] == 0.0 and np.isnan(b.entry_price) and b.opened is pd.NaT
    assert b.realised_pnl == pytest.approx(a.realised_pnl, rel=1e-12, abs=1e-12 * _scale(df))
    assert b.fees == {**a.fees, "XYZ": 0.5}  # only the fee changes


@settings(max_examples=100, deadline=None)
@given(ledgers(), st.randoms(use_true_random=False))
def test_row_order_is_irrelevant_when_times_differ(case, rnd):
    spec, df = case
    perm = list(range(len(df)))
    rnd.shuffle(perm)
    pd.testing.assert_frame_equal(positions_from_trades(df.iloc[perm]), positions_from_trades(df))


@settings(max_examples=100, deadline=None)
@given(ledgers())
def test_matches_a_reference_ledger(case):
    """An independent, lot-free restatement: realised + unrealised at a mark is the cash flow."""
    spec, df = case
    p = positions_from_trades(df).iloc[0]
    cs = spec["contract_size"]
    harmonic = spec["settlement"] == "inverse" and spec["kind"] != "option"
    q = 1 / df.price if harmonic else df.price
    sign = -1.0 if harmonic else 1.0
    mark_q = float(q.iloc[-1]) * 1.1
    # total P&L of all fills marked at `mark`: sum of size * c * sign * (q_mark - q_fill)
    total = float((df["size"] * cs * sign * (mark_q - q)).sum())
    entry_q = 0.0 if p["size"] == 0 else (1 / p.entry_price if harmonic else p.entry_price)
    unrealised = p["size"] * cs * sign * (mark_q - entry_q)
    assert p.realised_pnl + unrealised == pytest.approx(total, rel=1e-9, abs=1e-11 * _scale(df))
    assert p["size"] == pytest.approx(df["size"].sum(), abs=1e-9)


# ---------------------------------------------------------------------------------- validation

def _bad(changes):
    df = _book()
    for (col, row), value in changes.items():
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    return df


@pytest.mark.parametrize("df,match", [
    (_book().drop(columns="price"), r"price: missing column 'price'; accepted: .*time, account"),
    (_book().drop(columns=["kind", "size"]), r"size: missing columns 'size', 'kind'"),
    (_book().drop(columns="fee_currency"), r"fee_currency: missing column .*required with fee"),
    (_bad({("price", "f3"): np.nan}), r"price: row 'f3' has nan; accepted: finite, > 0"),
    (_bad({("price", "f1"): -5.0}), r"price: row 'f1' has -5.0; accepted: finite, > 0"),
    (_bad({("price", "f1"): 0.0}), r"price: row 'f1' has 0.0; .*options: >= 0"),
    (_bad({("price", "f2"): "abc"}), r"price: row 'f2' has 'abc'"),
    (_bad({("size", "f4"): np.nan}), r"size: row 'f4' has nan; accepted: .* > 0 when side"),
    (_bad({("size", "f4"): 0}), r"size: row 'f4' has 0; accepted"),
    (_bad({("size", "f0"): -3}), r"size: row 'f0' has -3; .*negative size only on a 'sell' row"),
    (_bad({("side", "f2"): "long"}), r"side: row 'f2' has 'long'; accepted: 'buy' or 'sell'"),
    (_bad({("side", "f2"): None}), r"side: row 'f2' has None; accepted: 'buy' or 'sell'"),
    (_bad({("fee", "f5"): -0.1}), r"fee: row 'f5' has -0.1; accepted: finite, >= 0"),
    (_bad({("fee", "f5"): np.nan}), r"fee: row 'f5' has nan"),
    (_bad({("fee_currency", "f5"): None}), r"fee_currency: row 'f5' has None; .*fee is > 0"),
    (_bad({("settlement", "f6"): "quanto"}), r"settlement: row 'f6' has 'quanto'; accepted: "
                                               r"'inverse' or 'linear'"),
    (_bad({("kind", "f6"): "swap"}),
     r"kind: row 'f6' has 'swap'; accepted: one of 'future', 'perpetual', 'option', 'spot' "
     r"\(any case\)"),
    (_bad({("contract_size", "f7"): 0.0}), r"contract_size: row 'f7' has 0.0; accepted: .*> 0"),
    (_bad({("account", "f8"): None}), r"account: row 'f8' has None; accepted: a non-missing"),
    (_bad({("pnl_currency", "f9"): None}), r"pnl_currency: row 'f9' has None"),
    (_bad({("time", "f9"): "yesterday"}), r"time: row 'f9' has 'yesterday'; accepted: UTC"),
    (_bad({("time", "f9"): None}), r"time: row 'f9' has None; accepted: UTC"),
    (_bad({("time", "f9"): "2026-01-05T10:00"}), r"time: row 'f9' has '2026-01-05T10:00'"),
    (_bad({("time", "f9"): "2026-01-05T10:00+02:00"}), r"time: row 'f9' has '2026-01-05T10:00\+02"),
    (_bad({("time", "f9"): 1767600000000}), r"time: row 'f9' has 1767600000000; accepted: UTC"),
    (_book().assign(time=lambda d: d.time.dt.tz_localize(None)),
     r"time: row 'f0' has .*\(15 bad rows in all\); accepted: UTC"),
    (_book().assign(time=lambda d: d.time.dt.tz_convert("Europe/London")),
     r"time: row 'f0' .*the column's time zone is Europe/London"),
    (_book().assign(trade_id=["a", "b", "c", "d", "e", "f", "g", "h", "c", "i", "j", "k", "l", "m",
                              "n"]),
     r"trade_id: row 'f8' has 'c'; accepted: unique trade ids \(or missing\); 'c' first appears "
     r"at row 'f2'"),
    (_bad({("contract_size", "f3"): 1.0}),
     r"contract_size: row 'f3' has 1.0; accepted: one contract_size per \(venue, symbol\); "
     r"\('deribit', 'BTC-PERPETUAL'\) has 10.0 at row 'f0'"),
    (_bad({("settlement", "f12"): "linear"}),
     r"settlement: row 'f12' has 'linear'; accepted: one settlement per \(venue, symbol\); "
     r"\('deribit', 'BTC-27MAR26-100000-C'\) has 'inverse' at row 'f10'"),
    (_bad({("kind", "f4"): "future"}), r"kind: row 'f4' has 'future'; accepted: one kind per"),
    (_bad({("pnl_currency", "f4"): "USD"}), r"pnl_currency: row 'f4' has 'USD'; accepted: one "),
    (_bad({("kind", "f5"): "spot", ("kind", "f6"): "spot", ("kind", "f7"): "spot",
             ("kind", "f8"): "spot", ("kind", "f9"): "spot", ("settlement", "f5"): "inverse",
             ("settlement", "f6"): "inverse", ("settlement", "f7"): "inverse",
             ("settlement", "f8"): "inverse", ("settlement", "f9"): "inverse"}),
     r"settlement: row 'f5' has 'inverse' \(5 bad rows in all\); accepted: 'linear' for kind "
     r"'spot'"),
])
def test_validation_names_column_row_and_accepted(df, match):
    with pytest.raises(ValidationError, match=match) as info:
        positions_from_trades(df)
    assert info.value.field == match.split(":")[0]


def test_validation_error_attributes_and_count():
    df = _bad({("price", "f3"): np.nan, ("price", "f7"): -1.0})
    with pytest.raises(ValidationError, match=r"\(2 bad rows in all\)") as info:
        positions_from_trades(df)
    assert (info.value.field, info.value.row, info.value.rows) == ("price", "f3", ["f3", "f7"])


def test_not_a_dataframe():
    with pytest.raises(ValidationError, match="trades: got list; accepted: a pandas DataFrame"):
        positions_from_trades([{"time": T0}])


def test_trade_ids_may_be_missing_but_not_repeated():
    df = _book().assign(trade_id=[None] * 3 + [f"t{i}" for i in range(12)])
    assert len(positions_from_trades(df)) == 3


def test_option_opened_and_closed_at_zero_premium():
    df = pd.DataFrame(_fills(DERIBIT_CALL, [("sell", 1.0, 0.0, 0, "BTC"),
                                            ("sell", 1.0, 0.002, 0, "BTC")]))
    p = positions_from_trades(df).iloc[0]
    assert (p["size"], p.entry_price, p.realised_pnl) == (-2.0, 0.001, 0.0)


# ---------------------------------------------------------------------------------------------
# trade_at_mark: what-if fills at the market's marks
# ---------------------------------------------------------------------------------------------
from pmnb.ledger import trade_at_mark  # noqa: E402


@pytest.fixture(scope="module")
def demo():
    import pmnb.demo

    return pmnb.demo.portfolio()


def _equity(book, coll, market, account):
    """Collateral plus position values at the mark, per value currency (stables together)."""
    v = pmnb.book.value_positions(book[book["account"].astype(str) == account], market)
    out = {}
    for cur, val in zip(v["value_currency"].astype(str), v["value"]):
        key = "USD" if cur.upper() in ("USD", "USDT", "USDC") else cur
        out[key] = out.get(key, 0.0) + float(val)
    for asset, bal in coll.loc[coll["account"].astype(str) == account, ["asset", "balance"]].values:
        key = "USD" if asset.upper() in ("USD", "USDT", "USDC") else asset
        out[key] = out.get(key, 0.0) + float(bal)
    return out


@pytest.mark.parametrize("account,venue,symbol,size", [
    ("deribit-pm", "deribit", "BTC-PERPETUAL", 5_000.0),        # reduce a short
    ("deribit-pm", "deribit", "BTC-PERPETUAL", 30_000.0),       # flip through zero
    ("deribit-pm", "deribit", "BTC-27MAR26", 50_000.0),         # add to an inverse future
    ("deribit-pm", "deribit", "BTC-30JAN26-96000-C", 10.0),     # buy back short calls
    ("deribit-pm", "deribit", "BTC-27MAR26-90000-C", -4.0),     # a new short option
    ("binance-usdm", "binance", "BTCUSDT", 5.0),                # flip a linear perp
    ("hyperliquid", "hyperliquid", "ETH", -40.0),               # close: USD pays into USDC
])
def test_a_trade_at_the_mark_leaves_equity_unchanged(demo, account, venue, symbol, size):
    _, coll, book, m = demo
    trade = pd.DataFrame({"account": [account], "venue": [venue], "symbol": [symbol],
                          "size": [size]})
    new, cash, fills = trade_at_mark(book, coll, trade, m)
    before, after = _equity(book, coll, m, account), _equity(new, cash, m, account)
    assert before.keys() == after.keys()
    for k in before:
        assert after[k] == pytest.approx(before[k], rel=1e-12, abs=1e-9)
    held = book[(book["account"].astype(str) == account) & (book["symbol"].astype(str) == symbol)]
    old = float(held["size"].iloc[0]) if len(held) else 0.0
    now = new[(new["account"].astype(str) == account) & (new["symbol"].astype(str) == symbol)]
    assert (float(now["size"].iloc[0]) if len(now) else 0.0) == pytest.approx(old + size)
    assert len(new) == len(book) + (0 if len(held) else 1) - (1 if old + size == 0 else 0)
    assert set(cash["asset"]) == set(coll["asset"])              # no stray USD balance


def test_futures_cash_is_the_realised_pnl_of_average_cost_accounting():
    # Deribit's futures example: 100 contracts of 10 USD bought at 600, sold at 700
    # realise 1000/600 - 1000/700 = 0.238095 BTC (https://www.deribit.com/docs/example-futures/)
    m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 700.0},
                              marks={"deribit:BTC-PERPETUAL": 700.0})
    book = pd.DataFrame({"account": ["d"], "venue": ["deribit"], "symbol": ["BTC-PERPETUAL"],
                         "size": [100.0], "entry_price": [600.0]})
    coll = pd.DataFrame({"account": ["d"], "asset": ["BTC"], "balance": [1.0]})
    trade = pd.DataFrame({"account": ["d"], "venue": ["deribit"], "symbol": ["BTC-PERPETUAL"],
                          "size": [-100.0]})
    new, cash, fills = trade_at_mark(book, coll, trade, m)
    assert len(new) == 0
    assert fills["cash"].iloc[0] == pytest.approx(1000 / 600 - 1000 / 700, rel=1e-12)
    assert fills["cash"].iloc[0] == pytest.approx(fills["realised_pnl"].iloc[0], rel=1e-12)
    assert cash["balance"].iloc[0] == pytest.approx(1.0 + 1000 / 600 - 1000 / 700, rel=1e-12)


def test_adding_averages_harmonically_and_options_pay_the_premium(demo):
    _, coll, book, m = demo
    perp = book[book["position_id"].astype(str) == "D-BTC-PERP"]
    P = pmnb.book.value_positions(perp, m)["price"].iloc[0]
    trade = pd.DataFrame({"account": ["deribit-pm"] * 2, "venue": "deribit",
                          "symbol": ["BTC-PERPETUAL", "BTC-30JAN26-82000-P"],
                          "size": [-10_000.0, 3.0]})
    new, cash, fills = trade_at_mark(book, coll, trade, m)
    row = new[new["position_id"].astype(str) == "D-BTC-PERP"].iloc[0]
    assert row["size"] == -30_000.0
    assert row["entry_price"] == pytest.approx(30_000 / (20_000 / 90_400.0 + 10_000 / P), rel=1e-13)
    premium = fills["price"].iloc[1]
    assert fills["cash"].iloc[1] == pytest.approx(-3.0 * premium, rel=1e-12)
    # the cash of a future equals the change of its value at the mark (the other route)
    moved = pmnb.book.value_positions(pd.concat([perp, new[new["position_id"].astype(str)
                                                            == "D-BTC-PERP"]]), m)["value"]
    assert moved.iloc[0] - moved.iloc[1] == pytest.approx(0.0, abs=1e-12)
    assert fills["cash"].iloc[0] == 0.0                      # adding realises nothing
    assert cash.loc[cash["account"] == "deribit-pm", "balance"].iloc[0] == pytest.approx(
        14.0 - 3.0 * premium, rel=1e-12)


def test_bad_trades_name_the_row(demo):
    _, coll, book, m = demo

    def trade(**kw):
        base = {"account": ["deribit-pm"], "venue": ["deribit"], "symbol": ["BTC-PERPETUAL"],
                "size": [1.0]}
        return pd.DataFrame({**base, **kw}, index=["t1"])

    with pytest.raises(ValidationError, match="size: row 't1'"):
        trade_at_mark(book, coll, trade(size=[0.0]), m)
    with pytest.raises(ValidationError, match="size: row 't1'"):
        trade_at_mark(book, coll, trade(size=[float("nan")]), m)
    with pytest.raises(ValidationError, match="symbol"):
        trade_at_mark(book, coll, trade(symbol=["BTC-99XXX26"]), m)
    with pytest.raises(ValidationError, match="kind: row 't1'"):
        trade_at_mark(book, coll, trade(account=["aave-v3"], venue=["aave"],
                                        symbol=["aEthWETH"]), m)
    with pytest.raises(ValidationError, match="missing column"):
        trade_at_mark(book, coll, trade().drop(columns="venue"), m)
    twice = pd.concat([book, book.iloc[[5]].assign(position_id="dup")])
    with pytest.raises(ValidationError, match="held in 2 rows"):
        trade_at_mark(twice, coll, trade(), m)
