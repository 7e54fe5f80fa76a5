#!/usr/bin/env python3
"""Benchmark of pmnb's scenario kernel (pmnb.scenarios.revalue_grid) against plain numpy.

    python benchmarks/scenarios.py                # 10,000 positions x 41 spot x 21 vol shocks
    python benchmarks/scenarios.py --positions 2000 --reps 3

Runs in the current interpreter (pmnb built and importable; scipy for the numpy reference).
Inputs as in reference/pricing.md §1: forward U(20k, 120k); strike = forward·exp(U(ln 0.5, ln 2));
T whole days log-uniform 1…730 / 365; vol U(20%, 150%); r U(0, 5%); call/put 50/50; qty N(0, 1).
Model Black-76, inverse (coin) settlement: Deribit's portfolio-margin risk matrix. Spot shocks
linspace(−30%, +30%, 41), vol shocks linspace(−15, +15 vol points, 21): no shocked vol reaches 0,
so every revaluation is on the fast path in both implementations.

Timed (minimum over --reps repetitions, pmnb and numpy interleaved so that both see the same
machine load):
  pmnb revalue_grid        the public call: validation, grid expansion, output allocation, kernel
  pmnb revalue_grid(out=)  same with a preallocated output
  pmnb kernel only         pmnb._core._scenario.grid on prepared buffers
  numpy + ndtr             the same grid as (n, 1) x (1, n_scen) broadcasts, N(−x) as ndtr(−x)
Also timed: the same pmnb grid with a one-day time shift (the options expiring within a day, about
10% of them, take the exact intrinsic path), with a caller-computed sigma matrix (validated, 8.6
million values) and on all cores. The numpy and pmnb grids are compared (max relative
difference) before timing.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from scipy.special import ndtr

import pmnb
from pmnb._core import _scenario
from pmnb.scenarios import revalue_grid

SEED = 20261124


def inputs(n: int):
    rng = np.random.default_rng(SEED)
    F = rng.uniform(20_000.0, 120_000.0, n)
    K = F * np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    T = np.floor(np.exp(rng.uniform(0.0, np.log(731.0), n))) / 365.0
    sigma = rng.uniform(0.2, 1.5, n)
    r = rng.uniform(0.0, 0.05, n)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    qty = rng.normal(size=n)
    return F, K, T, sigma, r, w, qty


def numpy_values(F, K, T, sigma, r, w, spot, vols, dt=0.0):
    """Black-76 coin values (V', V0) on the spot-major grid, numpy + scipy.special.ndtr."""
    Kc, Tc, sc, rc, wc = (a[:, None] for a in (K, T, sigma, r, w))

    def value(x, t, s):
        sst = s * np.sqrt(t)
        d1 = (np.log(x / Kc) + 0.5 * s * s * t) / sst
        d2 = d1 - sst
        return np.exp(-rc * t) * wc * (x * ndtr(wc * d1) - Kc * ndtr(wc * d2)) / x

    s_j = np.repeat(spot, len(vols))[None, :]
    v_j = np.tile(vols, len(spot))[None, :]
    v0 = value(F[:, None], Tc, sc)
    v1 = value(F[:, None] * (1.0 + s_j), np.maximum(Tc - dt, 0.0), np.maximum(sc + v_j, 0.0))
    return v1, v0


def numpy_grid(F, K, T, sigma, r, w, qty, spot, vols, dt=0.0):
    """The P&L grid qty (V' - V0), positions x spot-major scenarios, in numpy."""
    v1, v0 = numpy_values(F, K, T, sigma, r, w, spot, vols, dt)
    return qty[:, None] * (v1 - v0)


def best(fn, reps):
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=10_000)
    ap.add_argument("--n-spot", type=int, default=41)
    ap.add_argument("--n-vol", type=int, default=21)
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args(argv)

    n = a.positions
    F, K, T, sigma, r, w, qty = inputs(n)
    spot = np.linspace(-0.3, 0.3, a.n_spot)
    vols = np.linspace(-0.15, 0.15, a.n_vol)
    ns = len(spot) * len(vols)
    nrev = n * ns
    kw = dict(option_type=w, qty=qty, model="black76", settlement="inverse", spot_shocks=spot,
              vol_shocks=vols)

    print(f"pmnb {pmnb.__version__}  numpy {np.__version__}  python {platform.python_version()}  "
          f"{platform.machine()}  cores {len(os.sched_getaffinity(0))}  "
          f"isa {pmnb.pricing.build_info()['isa']}  load {os.getloadavg()[0]:.2f}")
    print(f"{n:,} positions x {len(spot)} spot x {len(vols)} vol = {nrev:,} revaluations; "
          "Black-76 inverse (coin)")

    got = revalue_grid(F, K, T, sigma, r, **kw, n_threads=1)
    v1, v0 = numpy_values(F, K, T, sigma, r, w, spot, vols)
    err = np.abs(got - qty[:, None] * (v1 - v0))
    scale = np.abs(qty)[:, None] * np.maximum(np.abs(v1), np.abs(v0))
    big = scale > 1e-8 * np.abs(qty)[:, None]          # values above 1e-8 coin
    print(f"pmnb vs numpy: max |diff| / |qty| = {np.max(err / np.abs(qty)[:, None]):.1e} coin; "
          f"max |diff| / (|qty| max(|V'|, |V0|)) where that value > 1e-8 coin: "
          f"{np.max(err[big] / scale[big]):.1e}")
    del got, v1, v0, err, scale, big

    out = np.empty((n, ns))
    s_j = np.repeat(spot, len(vols))
    v_j = np.tile(vols, len(spot))
    dt_j = np.zeros(ns)
    q0 = np.zeros(n)
    threads = len(os.sched_getaffinity(0))
    sm = np.maximum(sigma[:, None] + v_j[None, :], 0.0)   # caller-computed vols (same values)
    runs = {
        "pmnb revalue_grid (1 thread)":
            lambda: revalue_grid(F, K, T, sigma, r, **kw, n_threads=1),
        "pmnb revalue_grid(out=) (1 thread)":
            lambda: revalue_grid(F, K, T, sigma, r, **kw, out=out, n_threads=1),
        "pmnb kernel only (1 thread)":
            lambda: _scenario.grid(1, 1, F, K, T, sigma, r, q0, w, qty, s_j, v_j, dt_j, None, out,
                                   1),
        "pmnb revalue_grid(out=), time_shift 1 day (1 thread)":
            lambda: revalue_grid(F, K, T, sigma, r, **kw, time_shift=1 / 365, out=out,
                                 n_threads=1),
        "pmnb revalue_grid(out=, sigma_matrix=) (1 thread)":
            lambda: revalue_grid(F, K, T, sigma, r, **kw, sigma_matrix=sm, out=out, n_threads=1),
        f"pmnb revalue_grid(out=) ({threads} threads)":
            lambda: revalue_grid(F, K, T, sigma, r, **kw, out=out, n_threads=threads),
        "numpy + ndtr (1 thread)":
            lambda: numpy_grid(F, K, T, sigma, r, w, qty, spot, vols),
    }
    times = {k: float("inf") for k in runs}
    for _ in range(a.reps):  # interleaved: every implementation sees the same load
        for k, fn in runs.items():
            times[k] = min(times[k], best(fn, 1))
    np_t = times["numpy + ndtr (1 thread)"]
    print(f"{'':55s} {'ms':>9s} {'ns/reval':>9s} {'numpy/x':>8s}")
    for k, t in times.items():
        print(f"{k:55s} {t * 1e3:9.1f} {t / nrev * 1e9:9.2f} {np_t / t:8.1f}")
    print(f"load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
