#!/usr/bin/env python3
"""Benchmark printout (not a test): Deribit standard margin and liquidation prices on BTC option
books, pmnb against plain numpy implementations of the same computations, in one run.

    .venv/bin/python benchmarks/margin.py                  # 1,000 and 100,000 positions
    .venv/bin/python benchmarks/margin.py --reps 5 --no-reference

Issue targets (#14 §5): standard margin for 100,000 positions <= 10 ms; all liquidation prices of
a 1,000-position cross account with options <= 2 ms. Books are drawn from the shipped Deribit
chain (620 BTC options, 2025-12-31) on the demo market (fitted SVI vols), so 100,000 positions
hold at most 620 distinct instruments. What each row times (minimum over --reps, stages
interleaved so they see the same machine load):

  from a raw DataFrame        pmnb.margin.compute(raw, ...): validation + prepare + report
  from a validated book       the same on a validated book (validation re-checks every value)
  prepare (validated book)    DeribitStandard.prepare: grouping per symbol, market look-ups
  prepared .compute()         the full MarginReport (per-position frame) on the prepared book
  prepared .evaluate()        equity, IM, MM only (one compiled pass over distinct instruments)
  previous (row-wise) path    DeribitStandard._compute_reference, last session's implementation
  numpy                       the same netting, Black-76 prices (scipy.special.ndtr) and margin
                              formula in numpy, per position, from the looked-up F, K, T, sigma

  liquidation_prices, raw / validated / prepared: the public call from a raw DataFrame, from a
  validated book, and on an account prepared once (pmnb.margin.prepare); numpy: the same grid
  (n_grid log-spaced moves) and scipy brentq on a numpy equity - maintenance function.
Results are compared before timing (IM to 1e-9 relative, liquidation price to 1e-9).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import ndtr

import pmnb
import pmnb.demo
import pmnb.margin
from pmnb.book import _expiry_T, _option_inputs, validate_positions
from pmnb.liquidation import liquidation_prices


def make_book(btc, rng, n):
    syms = btc.instrument_name.to_numpy()[rng.integers(0, len(btc), n)]
    return pd.DataFrame({"account": "d", "venue": "deribit", "symbol": syms,
                         "size": np.round(rng.normal(0, 5, n), 1) + 0.1})


def numpy_inputs(book, m):
    """Per-position arrays the numpy version starts from (market looked up per instrument)."""
    T = _expiry_T(book, m)
    F, K, Tt, sigma = _option_inputs(book, m, np.arange(len(book)), T)
    w = np.where(book["option_type"].to_numpy() == "call", 1.0, -1.0)
    q = (book["size"] * book["contract_size"]).to_numpy(dtype=float)
    codes = np.asarray(book["symbol"].array.codes)
    return F, K, Tt, sigma, w, q, codes, m.rate("USD")


def numpy_standard(F, K, T, sigma, w, q, codes, r, f=1.0, balance=0.0):
    """Deribit standard margin of inverse options in numpy: (equity, IM, MM), netted per symbol."""
    x = F * f
    sst = sigma * np.sqrt(T)
    d1 = (np.log(x / K) + 0.5 * sst * sst) / sst
    V = np.exp(-r * T) * w * (x * ndtr(w * d1) - K * ndtr(w * (d1 - sst))) / x
    k = codes.max() + 1
    net = np.bincount(codes, weights=q, minlength=k)
    first = np.full(k, len(q))
    first[codes[::-1]] = np.arange(len(q))[::-1]
    used = first[first < len(q)]
    Vg, xg, Kg, wg, ng = V[used], x[used], K[used], w[used], net[codes[used]]
    otm = np.where(wg > 0, np.maximum(Kg - xg, 0.0), np.maximum(xg - Kg, 0.0))
    base = np.maximum(0.15 - otm / xg, 0.10) + Vg
    mm = np.where(wg > 0, 0.075 + Vg, np.maximum(0.075, 0.075 * Vg) + Vg)
    im = np.where(wg > 0, base, np.maximum(base, mm))
    short = ng < 0
    a = np.abs(ng)
    return balance + float(q @ V), float((a * im)[short].sum()), float((a * mm)[short].sum())


def timeit(runs, reps):
    times = {k: float("inf") for k in runs}
    for _ in range(reps):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k] = min(times[k], time.perf_counter() - t0)
    return times


def table(times, ref_key, title):
    ref = times[ref_key]
    print(f"\n{title}")
    print(f"{'':56s} {'ms':>10s} {'numpy/x':>8s}")
    for k, t in times.items():
        print(f"{k:56s} {t * 1e3:10.3f} {ref / t:8.1f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,100000")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--n-grid", type=int, default=48)
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the previous row-wise path (about 1 s per call at 100,000)")
    a = ap.parse_args(argv)

    chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    btc = chain[chain.currency == "BTC"]
    m = pmnb.demo.market(fit_vols=True)
    rng = np.random.default_rng(1)
    coll = pd.DataFrame({"account": ["d"], "asset": ["BTC"], "balance": [5000.0]})
    model = pmnb.margin.get("deribit.standard")
    print(f"pmnb {pmnb.__version__}  numpy {np.__version__}  python {platform.python_version()}  "
          f"{platform.machine()}  cores {len(os.sched_getaffinity(0))}  "
          f"isa {pmnb.pricing.build_info()['isa']}  load {os.getloadavg()[0]:.2f}")

    for n in (int(float(x)) for x in a.sizes.split(",")):
        raw = make_book(btc, rng, n)
        book = validate_positions(raw)
        prep = model.prepare(book, m, collateral=coll)
        args = numpy_inputs(book, m)
        rep = prep.compute()
        eq, im, mm = numpy_standard(*args, balance=5000.0)
        assert abs(rep.initial - im) <= 1e-9 * abs(im) and abs(rep.maintenance - mm) <= 1e-9 * mm
        assert abs(rep.equity - eq) <= 1e-9 * abs(eq)
        runs = {
            "compute from a raw DataFrame": lambda: pmnb.margin.compute(raw, m, model,
                                                                        collateral=coll),
            "compute from a validated book": lambda: pmnb.margin.compute(book, m, model,
                                                                         collateral=coll),
            "prepare (validated book)": lambda: model.prepare(book, m, collateral=coll),
            "prepared .compute() (full report)": prep.compute,
            "prepared .evaluate() (equity, IM, MM)": prep.evaluate,
            "numpy (per position, same netting and formula)": lambda: numpy_standard(
                *args, balance=5000.0),
        }
        times = timeit(runs, a.reps)
        if not a.no_reference:
            reps = 1 if n > 10_000 else 3
            times.update(timeit({"previous row-wise path (_compute_reference)": lambda:
                                 model._compute_reference(book, m, collateral=coll)}, reps))
        table(times, "numpy (per position, same netting and formula)",
              f"deribit.standard, {n:,} positions ({len(prep.og)} distinct instruments), "
              f"IM {rep.initial:.6f} BTC")

    # liquidation prices of a 1,000-position cross account
    raw = make_book(btc, rng, 1000)
    book = validate_positions(raw)
    prep = pmnb.margin.prepare(raw, m, model, collateral=coll)
    args = numpy_inputs(book, m)
    res = liquidation_prices(prep, n_grid=a.n_grid)
    g = np.exp(np.linspace(np.log1p(-0.95), np.log1p(4.0), a.n_grid)) - 1.0
    g = np.unique(np.concatenate([g, [0.0]]))

    def numpy_gap(s):
        e, _, mm_ = numpy_standard(*args, f=1.0 + s, balance=5000.0)
        return e - mm_

    def numpy_liq():
        gaps = np.array([numpy_gap(s) for s in g])
        out = []
        for i in np.flatnonzero(np.sign(gaps[:-1]) != np.sign(gaps[1:])):
            out.append(brentq(numpy_gap, g[i], g[i + 1], xtol=1e-12,
                              rtol=4 * np.finfo(float).eps))
        return out

    ref = numpy_liq()
    got = res.table["spot_shock"].tolist()
    assert len(ref) == len(got) and np.allclose(ref, got, rtol=0, atol=1e-9), (ref, got)
    runs = {
        "liquidation_prices from a raw DataFrame": lambda: liquidation_prices(
            raw, m, model, collateral=coll, n_grid=a.n_grid),
        "liquidation_prices from a validated book": lambda: liquidation_prices(
            book, m, model, collateral=coll, n_grid=a.n_grid),
        "liquidation_prices(prepared account)": lambda: liquidation_prices(prep,
                                                                          n_grid=a.n_grid),
        "  of which the bracketing grid (maintenance_gap)": lambda: prep.maintenance_gap(g),
        "numpy: same grid + brentq on numpy equity - MM": numpy_liq,
    }
    times = timeit(runs, a.reps)
    if not a.no_reference:
        from pmnb.margin.prepared import PreparedMargin

        slow = PreparedMargin(model, prep.book, m, collateral=prep.collateral,
                              compute_fn=model._compute_reference)
        times.update(timeit({"previous path (row-wise model at each move)": lambda:
                             liquidation_prices(slow, n_grid=a.n_grid)}, 1))
    table(times, "numpy: same grid + brentq on numpy equity - MM",
          f"liquidation prices, 1,000 positions ({len(prep.og)} distinct instruments), "
          f"n_grid {a.n_grid}: {res.status}, shocks {np.round(got, 6).tolist()}")
    print(f"\nload at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
