"""The ``df.pm`` accessor caches the validated book per frame: every kind of edit to the frame
must be seen (validated again), and nothing the user gets back can corrupt the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pmnb
from pmnb import accessor


@pytest.fixture()
def market():
    return pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
                                 vols={"BTC": 0.5}, marks={"binance:BTCUSDT": 100_000.0})


@pytest.fixture()
def frame():
    return pd.DataFrame({"account": ["a", "a", "b"], "venue": ["deribit", "deribit", "binance"],
                         "symbol": ["BTC-27MAR26-100000-C", "BTC-27MAR26-90000-P", "BTCUSDT"],
                         "size": [1.0, -2.0, 0.5], "entry_price": [0.05, 0.03, 95_000.0]})


def fresh(frame, market):
    """What an uncached validation gives."""
    return pmnb.book.position_greeks(pmnb.book.validate_positions(frame.copy()), market)


def test_repeated_calls_reuse_the_validated_book(frame, market, monkeypatch):
    calls = []
    real = pmnb.book.validate_positions
    monkeypatch.setattr(pmnb.book, "validate_positions",
                        lambda f, *a: calls.append(1) or real(f, *a))
    g1 = frame.pm.greeks(market)
    g2 = frame.pm.greeks(market.shocked(spot_shock=0.1))
    frame.pm.exposures(market)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(g1, fresh(frame, market))
    assert not np.allclose(g1["delta_usd"], g2["delta_usd"])


@pytest.mark.parametrize("edit", [
    lambda f: f.__setitem__("size", [3.0, -2.0, 0.5]),               # replaced column
    lambda f: f.loc.__setitem__((0, "size"), 7.0),                     # written cell
    lambda f: f.iloc.__setitem__((1, 2), "BTC-27MAR26-110000-C"),      # written text cell
    lambda f: f.__setitem__("leverage", 5.0),                          # added column
    lambda f: f.__delitem__("entry_price"),                            # removed column
    lambda f: setattr(f, "index", pd.Index([10, 11, 12])),             # new index
    lambda f: setattr(f, "columns", [*f.columns[:-1], "isolated_margin"]),  # renamed
])
def test_any_edit_is_validated_again(frame, market, edit):
    frame.pm.greeks(market)                       # cached
    edit(frame)
    pd.testing.assert_frame_equal(frame.pm.greeks(market), fresh(frame, market))


def test_a_bad_edit_raises_after_a_cached_call(frame, market):
    frame.pm.greeks(market)
    frame.loc[1, "size"] = np.nan
    with pytest.raises(pmnb.ValidationError, match="size"):
        frame.pm.greeks(market)
    frame.loc[1, "size"] = -2.0                   # fixed: valid again
    frame.loc[0, "account"] = ""
    with pytest.raises(pmnb.ValidationError, match="account"):
        frame.pm.validate()


def test_returned_frames_cannot_corrupt_the_cache(frame, market):
    v = frame.pm.validate()
    v.loc[0, "size"] = 100.0                      # the user's copy, not the cache
    g = frame.pm.greeks(market)
    g.loc[0, "delta_coin"] = 1e9
    g["greeks_currency"] = g["greeks_currency"].cat.add_categories("X")
    g.loc[1, "greeks_currency"] = "X"
    pd.testing.assert_frame_equal(frame.pm.greeks(market), fresh(frame, market))
    assert frame.pm.validate().loc[0, "size"] == 1.0


def test_cache_is_bounded_and_drops_dead_frames(market):
    for i in range(accessor.CACHE_SIZE + 5):
        f = pd.DataFrame({"account": ["a"], "venue": ["binance"], "symbol": ["BTCUSDT"],
                          "size": [float(i + 1)]})
        f.pm.validate()
    assert len(accessor._VALIDATED) <= accessor.CACHE_SIZE
    del f
    import gc

    gc.collect()
    assert all(ref() is not None for ref, *_ in accessor._VALIDATED.values())
