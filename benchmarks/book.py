"""Benchmark printout (not a test): the book layer on 100,000 positions (issue target: df.pm.greeks <= 10 ms).

Run in the development venv: ``.venv/bin/python benchmarks/book.py``.
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


def best(f, k=5):
    ts = []
    for _ in range(k):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


v = book.pm.validate()
print("validate raw %.1f ms" % best(lambda: book.pm.validate()))
print("validate validated %.1f ms" % best(lambda: v.pm.validate()))
print(
    "position_greeks(validated) %.1f ms" % best(lambda: pmnb.book.position_greeks(v, m))
)
print("df.pm.greeks(validated) %.1f ms" % best(lambda: v.pm.greeks(m)))
print("df.pm.greeks(raw) %.1f ms" % best(lambda: book.pm.greeks(m)))
