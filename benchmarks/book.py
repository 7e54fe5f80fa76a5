"""Benchmark printout (not a test): the book layer on 100,000 positions (issue target: df.pm.greeks <= 10 ms).

Run in the development venv: ``.venv/bin/python benchmarks/book.py``.

``df.pm`` caches the validated book per frame while the frame is unchanged (pmnb.accessor), so
the first call on a frame pays validation and later calls do not. Both are reported:
- "first call": a fresh copy of the raw frame each repetition (validation + greeks);
- "repeated": the same frame asked again, against a different (shocked) market each time, the
  interactive case (a slider moves the market, the book stays).
"""

import time

import numpy as np
import pandas as pd

import pmnb
import pmnb.demo

a, c, b, m = pmnb.demo.portfolio(fit_vols=True)
chain = pmnb.datasets.load_deribit_chain("2025-12-31")
rng = np.random.default_rng(0)
n = 100_000
syms = chain.instrument_name.to_numpy()[rng.integers(0, len(chain), n)]
book = pd.DataFrame(
    {
        "account": "deribit-pm",
        "venue": "deribit",
        "symbol": syms,
        "size": rng.normal(0, 10, n),
    }
)
markets = [m.shocked(spot_shock=s) for s in np.linspace(-0.05, 0.05, 7)]


def best(f, k=7, setup=None):
    ts = []
    for i in range(k):
        arg = setup() if setup else None
        t = time.perf_counter()
        f(arg, i)
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3, float(np.median(ts)) * 1e3


def show(label, res):
    print(f"{label:<52s} best {res[0]:7.1f} ms   median {res[1]:7.1f} ms")


v = pmnb.book.validate_positions(book)
show("validate_positions(raw frame)", best(lambda _, i: pmnb.book.validate_positions(book)))
show("validate_positions(validated book)", best(lambda _, i: pmnb.book.validate_positions(v)))
show("position_greeks(validated book) [no cache]",
     best(lambda _, i: pmnb.book.position_greeks(v, markets[i % 7])))
show("df.pm.greeks, first call on a raw frame",
     best(lambda f, i: f.pm.greeks(markets[i % 7]), setup=lambda: book.copy()))
show("df.pm.greeks, first call on a validated book",
     best(lambda f, i: f.pm.greeks(markets[i % 7]), setup=lambda: v.copy()))
book.pm.greeks(m)
show("df.pm.greeks, repeated (same frame, new market)",
     best(lambda _, i: book.pm.greeks(markets[i % 7])))
show("df.pm.exposures by underlying/expiry, repeated",
     best(lambda _, i: book.pm.exposures(markets[i % 7])))
