#!/usr/bin/env python3
"""Benchmark printout (not a test): Deribit portfolio margin of a BTC options book, pmnb against a
plain numpy implementation of the same scenario matrix, in one run.

    .venv/bin/python benchmarks/deribit_pm.py                 # 1,000 positions
    .venv/bin/python benchmarks/deribit_pm.py --positions 5000 --reps 50

Issue target: PM of a 1,000-position BTC options book <= 0.2 ms and >= 4x numpy. The book is
drawn from the shipped Deribit chain (pmnb.datasets, 2025-12-31) on the demo market (fitted
vols); the risk matrix is 9 moves x 3 vols + 8 extended = 35 scenarios, so 35,000 inverse
Black-76 revaluations. Timed (minimum over --reps, all stages interleaved so they see the same
machine load):

  compute (validate + model)   pmnb.margin.compute(book, market, "deribit.portfolio")
  model on a validated book    DeribitPortfolio.compute: valuation, greeks, matrix, report
  arrays: PM                   option_scenario_pnl + risk_matrix on prepared arrays
                               (vol shocks, kernel call with validation, aggregation, counting)
  kernel: revalue_grid         the public kernel call with a precomputed sigma matrix and out=
  kernel: _scenario.grid       the compiled loop alone on prepared buffers
  numpy: PM                    the same vol shocks, matrix (numpy + scipy.special.ndtr),
                               aggregation and counting, in numpy

The numpy and pmnb risk-matrix results are compared before timing.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
from scipy.special import ndtr

import pmnb
import pmnb.demo
import pmnb.margin
from pmnb._core import _scenario
from pmnb.book import _expiry_T, _option_inputs, validate_positions
from pmnb.margin.deribit_portfolio import (
    BTC_PM,
    _layout,
    count_scenarios,
    option_scenario_pnl,
    risk_matrix,
    shocked_vols,
)
from pmnb.scenarios import revalue_grid


def numpy_pm(F, K, T, sigma, w, q, r, index, cp=BTC_PM):
    """The same risk-matrix worst case in plain numpy (vol shocks, grid, aggregation, counting)."""
    moves, vol, is_ext = _layout(cp)
    dte = np.maximum(T * 365.0, 1.0)
    f = (30.0 / dte) ** np.where(dte < 30.0, cp.short_term_vega_power, cp.long_term_vega_power)
    up = sigma + np.maximum(sigma, cp.min_volatility_for_shock_up) * cp.volatility_range_up * f
    down = np.maximum(sigma * (1.0 - cp.volatility_range_down * f), 0.0)
    sm = np.stack([up, sigma, down], axis=1)[:, vol]
    Kc, Tc, wc, sc = K[:, None], T[:, None], w[:, None], sigma[:, None]
    disc = np.exp(-r * Tc)

    def value(x, s):
        sst = s * np.sqrt(Tc)
        d1 = (np.log(x / Kc) + 0.5 * sst * sst) / sst
        return disc * wc * (x * ndtr(wc * d1) - Kc * ndtr(wc * (d1 - sst))) / x

    pnl = q[:, None] * (value(F[:, None] * (1.0 + moves[None, :]), sm) - value(F[:, None], sc))
    agg = pnl.sum(axis=0)
    n_std = int((~is_ext).sum())
    std = np.where(agg[:n_std] < 0, agg[:n_std], np.minimum(cp.pnl_offset * np.maximum(
        agg[:n_std], 0.0), (cp.max_offsetable_pnl or np.inf) / index))
    w_ext = cp.extended_table_factor * cp.price_range / np.abs(moves[n_std:])
    ext = np.minimum(w_ext * agg[n_std:] + cp.extended_dampener / index, 0.0)
    return round(-min(std.min(), ext.min()), 9)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args(argv)

    chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    btc = chain[chain.currency == "BTC"]
    m = pmnb.demo.market(fit_vols=True)
    rng = np.random.default_rng(20261125)
    n = a.positions
    syms = btc.instrument_name.to_numpy()[rng.integers(0, len(btc), n)]
    raw = pd.DataFrame({"account": "d", "venue": "deribit", "symbol": syms,
                        "size": np.round(rng.normal(0, 5, n), 1) + 0.1})
    book = validate_positions(raw)
    book = book[book["kind"] == "option"]
    n = len(book)
    model = pmnb.margin.get("deribit.portfolio")
    T = _expiry_T(book, m)
    F, K, Tt, sigma = _option_inputs(book, m, np.arange(n), T)
    w = np.where(book["option_type"].to_numpy() == "call", 1.0, -1.0)
    q = (book["size"] * book["contract_size"]).to_numpy(dtype=float)
    r = m.rate("USD")
    index = m.spot("BTC")
    moves, vol, _ = _layout(BTC_PM)
    ns = len(moves)

    print(f"pmnb {pmnb.__version__}  numpy {np.__version__}  python {platform.python_version()}  "
          f"{platform.machine()}  cores {len(os.sched_getaffinity(0))}  "
          f"isa {pmnb.pricing.build_info()['isa']}  load {os.getloadavg()[0]:.2f}")
    print(f"{n:,} BTC option positions x {ns} scenarios = {n * ns:,} revaluations "
          "(Black-76 inverse, coin)")

    # the same answer three ways
    rep = model.compute(book, m)
    arr = risk_matrix(option_scenario_pnl(F, K, Tt, sigma, w, q, r=r), index=index)
    ref = numpy_pm(F, K, Tt, sigma, w, q, r, index)
    print(f"worst case: model {rep.scenarios['counted'].min() * -1:.9f}  arrays {arr.worst_case:.9f}"
          f"  numpy {ref:.9f} BTC  (initial {rep.initial:.6f}, worst {rep.worst_scenario})")
    assert abs(arr.worst_case - ref) <= 2e-9 * max(1.0, abs(ref)), (arr.worst_case, ref)

    sm = np.ascontiguousarray(shocked_vols(sigma, Tt)[:, vol])
    out = np.empty((n, ns))
    rr = np.full(n, r)
    q0 = np.zeros(n)
    s_j = np.ascontiguousarray(moves)
    dt_j = np.zeros(ns)
    threads = len(os.sched_getaffinity(0))
    runs = {
        "compute (validate + model)": lambda: pmnb.margin.compute(raw, m, model),
        "model on a validated book": lambda: model.compute(book, m),
        "arrays: PM (1 thread)": lambda: risk_matrix(
            option_scenario_pnl(F, K, Tt, sigma, w, q, r=r, n_threads=1), index=index),
        f"arrays: PM ({threads} threads)": lambda: risk_matrix(
            option_scenario_pnl(F, K, Tt, sigma, w, q, r=r, n_threads=threads), index=index),
        "kernel: revalue_grid(sigma_matrix, out) (1 thread)": lambda: revalue_grid(
            F, K, Tt, sigma, r, option_type=w, qty=q, settlement="inverse", spot_shocks=moves,
            sigma_matrix=sm, out=out, n_threads=1),
        "kernel: _scenario.grid (1 thread)": lambda: _scenario.grid(
            1, 1, F, K, Tt, sigma, rr, q0, w, q, s_j, None, dt_j, sm, out, 1),
        f"kernel: _scenario.grid ({threads} threads)": lambda: _scenario.grid(
            1, 1, F, K, Tt, sigma, rr, q0, w, q, s_j, None, dt_j, sm, out, threads),
        "aggregation + counting only": lambda: count_scenarios(out.sum(axis=0), index=index),
        "numpy: PM (1 thread)": lambda: numpy_pm(F, K, Tt, sigma, w, q, r, index),
    }
    times = {k: float("inf") for k in runs}
    for _ in range(a.reps):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k] = min(times[k], time.perf_counter() - t0)
    np_t = times["numpy: PM (1 thread)"]
    print(f"{'':52s} {'ms':>9s} {'numpy/x':>8s}")
    for k, t in times.items():
        print(f"{k:52s} {t * 1e3:9.3f} {np_t / t:8.1f}")
    arr1 = times["arrays: PM (1 thread)"]
    kern = times["kernel: _scenario.grid (1 thread)"]
    print(f"array-path overhead around the compiled loop (vol shocks, validation, aggregation): "
          f"{(arr1 - kern) * 1e3:.3f} ms; model overhead (valuation, greeks, frames) over the "
          f"array path: {(times['model on a validated book'] - arr1) * 1e3:.3f} ms")
    print(f"load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
