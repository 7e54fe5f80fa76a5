"""Benchmark printout (not a test): SVI fit of the shipped 2025-12-31 Deribit chains.

Run: ``.venv/bin/python benchmarks/svi.py`` (in the development venv). Prints the best and median wall time of
``fit_svi_surface`` for one currency (12 expiries) and of its parts; the target is <= 100 ms per
chain.
"""

from __future__ import annotations


def main(repeat: int = 30) -> None:
    import time

    import numpy as np

    import pmnb
    import pmnb.vol.chain as chain_mod
    from pmnb.vol import chain_quotes, fit_svi_surface

    chain = pmnb.datasets.load_deribit_chain("2025-12-31")

    def timed(fn):
        fn()
        ts = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return 1e3 * min(ts), 1e3 * float(np.median(ts))

    print(f"pmnb {pmnb.__version__}, numpy {np.__version__}; best / median of {repeat} runs")
    for cur in ("BTC", "ETH"):
        surface, report = fit_svi_surface(chain, currency=cur)
        args = {}
        real = chain_mod._fit_padded

        def spy(*a, **kw):
            args["a"], args["kw"] = a, kw
            return real(*a, **kw)

        chain_mod._fit_padded = spy
        try:
            fit_svi_surface(chain, currency=cur)
        finally:
            chain_mod._fit_padded = real
        n = int(report.n_quoted.sum() + report.n_mark.sum())
        rows = [("fit_svi_surface (all)", lambda: fit_svi_surface(chain, currency=cur)),
                ("  chain_quotes (IVs, weights)", lambda: chain_quotes(chain, currency=cur)),
                ("  SVI core, all expiries", lambda: real(*args["a"], **args["kw"])),
                ("  butterfly + calendar checks",
                 lambda: (surface.check_butterfly(), surface.check_calendar()))]
        print(f"{cur}: {len(surface.slices)} expiries, {n} quotes")
        for name, fn in rows:
            best, med = timed(fn)
            print(f"  {name:<32s} {best:7.1f} ms  {med:7.1f} ms")
        K = np.linspace(0.5, 2.0, 1000) * surface.forwards[0]
        T = np.linspace(0.0, 1.2, 1000)[:, None]
        best, med = timed(lambda: surface.implied_vol(K, T))
        print(f"  {'implied_vol on 1000 x 1000 (K, T)':<32s} {best:7.1f} ms  {med:7.1f} ms")


if __name__ == "__main__":
    main()
