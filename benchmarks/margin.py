"""Benchmark printout (not a test): margin and liquidation on Deribit option books (issue targets:
standard margin for 100,000 positions <= 10 ms; liquidation prices of a 1,000-position account <= 2 ms).

Run in the development venv: ``.venv/bin/python benchmarks/margin.py``.
"""

import time

import numpy as np
import pandas as pd

import pmnb
import pmnb.demo
import pmnb.margin
from pmnb.liquidation import liquidation_prices

chain = pmnb.datasets.load_deribit_chain("2025-12-31")
btc = chain[chain.currency == "BTC"]
m = pmnb.demo.market(fit_vols=True)
rng = np.random.default_rng(1)


def book(n):
    syms = btc.instrument_name.to_numpy()[rng.integers(0, len(btc), n)]
    return pd.DataFrame(
        {
            "account": "d",
            "venue": "deribit",
            "symbol": syms,
            "size": np.round(rng.normal(0, 5, n), 1) + 0.1,
        }
    )


coll = pd.DataFrame({"account": ["d"], "asset": ["BTC"], "balance": [5000.0]})
for n in (1000, 100_000):
    b = book(n)
    t = time.perf_counter()
    r = pmnb.margin.compute(b, m, "deribit.standard", collateral=coll)
    dt = time.perf_counter() - t
    print(f"deribit.standard {n} positions: {dt * 1e3:.0f} ms (IM {r.initial:.1f} BTC)")
b = book(1000)
t = time.perf_counter()
res = liquidation_prices(b, m, "deribit.standard", collateral=coll, n_grid=48)
dt = time.perf_counter() - t
print(f"liquidation_prices 1000 options: {dt * 1e3:.0f} ms; {res.status}")
