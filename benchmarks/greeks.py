#!/usr/bin/env python3
"""Benchmark of pmnb's greeks and implied-vol core against numpy, py_vollib_vectorized and QuantLib.

Run from anywhere with the system Python:

    python3 benchmarks/greeks.py            # full run: N = 1e3, 1e5, 1e6 on 1 and all threads
    python3 benchmarks/greeks.py --quick    # smoke run (small N, fewer repetitions)

The script first makes sure ``benchmarks/.venv-bench`` exists with the pinned peers
(``requirements.txt``, then ``requirements-nodeps.txt`` force-reinstalled without dependencies) and
with pmnb built from the repository's current source (a snapshot copy, so the working tree is not
touched; rebuilt whenever the source hash changes), then re-executes itself inside that venv.
Method: the shared research notes (reference/pricing.md) §1 (see benchmarks/README.md). Results are printed and
written to ``benchmarks/results/greeks-<UTC timestamp>.json``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-bench"
REQ = HERE / "requirements.txt"
REQ_NODEPS = HERE / "requirements-nodeps.txt"
STAMP = VENV / "pmnb-bench-stamp.json"
RESULTS = HERE / "results"
SEED = 20261124
IV_SEED = SEED + 1

# run in the bench venv after installing the peers: both LBR layouts import, 1.0.1 is the numba one
VERIFY_PEERS = """
from importlib.metadata import version
import lets_be_rational, py_lets_be_rational, vollib, py_vollib_vectorized, QuantLib
assert version("py_lets_be_rational") == "1.0.1", version("py_lets_be_rational")
import py_lets_be_rational.lets_be_rational as m
assert "cody_special" not in open(m.__file__).read(), "py_lets_be_rational/ holds 1.1.2 shims, not 1.0.1"
print("peers OK: py_lets_be_rational", version("py_lets_be_rational"), "lets_be_rational",
      version("lets_be_rational"), "py_vollib_vectorized", version("py_vollib_vectorized"))
"""

TARGETS = {
    "ns_1thread": 10.0,     # ns/option, price + 5 greeks, one thread
    "ns_nthreads": 5.0,     # ns/option on 2 threads
    "x_numpy": 4.0,         # numpy / pmnb
    "x_pyvv": 100.0,        # py_vollib_vectorized / pmnb
    "x_quantlib": 1000.0,   # QuantLib / pmnb
    "iv_ns": 200.0,         # implied vol, ns/option
}


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if part:
            out.append(int(float(part)))
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of positive integers, got {text!r}")
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: N = 1e3,1e4, small subsamples, 3 repetitions")
    p.add_argument("--sizes", type=_int_list, default=None,
                   help="comma-separated option counts (default 1e3,1e5,1e6; --quick 1e3,1e4)")
    p.add_argument("--threads", type=_int_list, default=None,
                   help="comma-separated thread counts (default 1,<all available cores>)")
    p.add_argument("--ql-rows", type=int, default=None,
                   help="QuantLib per-option loop subsample (default 2000; --quick 200)")
    p.add_argument("--brentq-rows", type=int, default=None,
                   help="scipy brentq IV subsample (default 2000; --quick 200)")
    p.add_argument("--iv-exact-rows", type=int, default=None,
                   help="options priced with 40-digit mpmath for the IV accuracy check (default 10000)")
    p.add_argument("--mp-rows", type=int, default=None,
                   help="options checked against 40-digit mpmath greeks (default 2000)")
    p.add_argument("--wait-idle", type=float, default=120.0,
                   help="seconds to wait at start for other processes to leave the CPUs idle (default 120)")
    p.add_argument("--retries", type=int, default=3,
                   help="attempts per measurement when other processes contend for the CPUs (default 3)")
    p.add_argument("--rebuild", action="store_true", help="rebuild and reinstall pmnb in the bench venv")
    p.add_argument("--reinstall", action="store_true", help="reinstall the pinned peers in the bench venv")
    p.add_argument("--no-venv", action="store_true",
                   help="run in the current interpreter (needs the peers and pmnb importable)")
    p.add_argument("--output", type=Path, default=None, help="JSON path (default benchmarks/results/...)")
    a = p.parse_args(argv)
    if a.sizes is None:
        a.sizes = [1_000, 10_000] if a.quick else [1_000, 100_000, 1_000_000]
    a.sizes = sorted(set(a.sizes))
    if a.ql_rows is None:
        a.ql_rows = 200 if a.quick else 2_000
    if a.brentq_rows is None:
        a.brentq_rows = 200 if a.quick else 2_000
    if a.iv_exact_rows is None:
        a.iv_exact_rows = 2_000 if a.quick else 10_000
    if a.mp_rows is None:
        a.mp_rows = 200 if a.quick else 2_000
    return a


# ------------------------------------------------------------------------------------------------
# Bootstrap: the bench venv (standard library only; runs under any python3)
# ------------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _in_bench_venv() -> bool:
    try:
        return Path(sys.prefix).resolve() == VENV.resolve()
    except OSError:
        return False


def source_files() -> list[str]:
    """Files of the repository that make up pmnb's source (as git sees them, minus benchmarks/)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], check=True, capture_output=True).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        skip_dirs = {".git", "build", "dist", "benchmarks", "__pycache__", "node_modules"}
        files = []
        for root, dirs, names in os.walk(REPO):
            dirs[:] = [d for d in dirs if d not in skip_dirs and not d.startswith(".venv")
                       and not d.endswith(".egg-info")]
            for n in names:
                if not n.endswith((".so", ".o", ".a", ".pyc")):
                    files.append(os.path.relpath(os.path.join(root, n), REPO))
    keep = []
    for f in sorted(set(files)):
        if f.startswith("benchmarks/") or f.endswith(".so") or f == "pmnb/_core/_kernels.c":
            continue
        if (REPO / f).is_file():
            keep.append(f)
    return keep


def source_hash(files: list[str]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.encode() + b"\0")
        h.update((REPO / f).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _req_hash() -> str:
    h = hashlib.sha256()
    for p in (REQ, REQ_NODEPS):
        h.update(p.read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def _run(cmd: list[str], **kw) -> None:
    _log("$ " + " ".join(str(c) for c in cmd))
    sys.stderr.flush()
    # installer output goes to stderr: stdout carries only the report
    subprocess.run([str(c) for c in cmd], check=True, stdout=sys.stderr, **kw)


def ensure_venv(args: argparse.Namespace) -> dict:
    py = _venv_python()
    if not py.exists():
        _log(f"creating {VENV}")
        _run([sys.executable, "-m", "venv", VENV])
    stamp = {}
    if STAMP.exists():
        try:
            stamp = json.loads(STAMP.read_text())
        except ValueError:
            stamp = {}
    rh = _req_hash()
    if args.reinstall or stamp.get("requirements") != rh:
        _run([py, "-m", "pip", "install", "--disable-pip-version-check", "-r", REQ])
        for line in REQ_NODEPS.read_text().splitlines():
            spec = line.split("#", 1)[0].strip()
            if spec:
                _run([py, "-m", "pip", "install", "--disable-pip-version-check", "--force-reinstall",
                      "--no-deps", spec])
        _run([py, "-c", VERIFY_PEERS])
        stamp = {"requirements": rh}
        STAMP.write_text(json.dumps(stamp))
    files = source_files()
    sh = source_hash(files)
    if args.rebuild or stamp.get("pmnb_source") != sh:
        with tempfile.TemporaryDirectory(prefix="pmnb-bench-src-") as tmp:
            for f in files:
                dst = Path(tmp) / f
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / f, dst)
            _log(f"building pmnb from a snapshot of {len(files)} source files (sha256 {sh[:12]})")
            env = dict(os.environ)
            t0 = time.perf_counter()
            _run([py, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps",
                  "--no-build-isolation", "--force-reinstall", tmp], env=env)
            stamp["pmnb_build_seconds"] = round(time.perf_counter() - t0, 1)
        stamp["pmnb_source"] = sh
        stamp["pmnb_built_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        stamp["pmnb_build_env"] = {k: v for k, v in os.environ.items()
                                   if k.startswith(("PMNB_", "CC", "CFLAGS", "LDFLAGS"))}
        STAMP.write_text(json.dumps(stamp, indent=1))
    return stamp


def bootstrap(argv: list[str], args: argparse.Namespace) -> None:
    if args.no_venv or _in_bench_venv():
        return
    ensure_venv(args)
    env = dict(os.environ)
    env["PMNB_BENCH_REEXEC"] = "1"
    py = str(_venv_python())
    _log(f"re-executing in {VENV}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(py, [py, str(Path(__file__).resolve()), *argv], env)


# ------------------------------------------------------------------------------------------------
# Everything below runs inside the bench venv
# ------------------------------------------------------------------------------------------------

def make_inputs(n: int, seed: int):
    """Reference §1: one seeded set; smaller N are prefixes of it."""
    import numpy as np
    rng = np.random.default_rng(seed)
    S = rng.uniform(20_000.0, 120_000.0, n)
    K = S * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    days = np.floor(np.exp(rng.uniform(0.0, math.log(731.0), n))).clip(1, 730)  # log-uniform 1..730
    T = days / 365.0
    sigma = rng.uniform(0.20, 1.50, n)
    r = rng.uniform(0.0, 0.05, n)
    q = np.zeros(n)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    return {"S": S, "K": K, "days": days.astype(np.int64), "T": T, "sigma": sigma, "r": r, "q": q, "w": w}


def numpy_greeks(S, K, T, sigma, r, q, w):
    """Plain numpy + scipy.special.ndtr BSM price and raw (QuantLib-unit) greeks; N(-x) = ndtr(-x)."""
    import numpy as np
    from scipy.special import ndtr
    sqt = np.sqrt(T)
    sst = sigma * sqt
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / sst
    d2 = d1 - sst
    DF = np.exp(-r * T)
    A = np.exp(-q * T)
    N1 = ndtr(w * d1)
    N2 = ndtr(w * d2)
    n1 = np.exp(-0.5 * d1 * d1) * 0.398942280401432677939946059934
    SA = S * A
    KD = K * DF
    price = w * (SA * N1 - KD * N2)
    delta = w * A * N1
    gamma = A * n1 / (S * sst)
    vega = SA * n1 * sqt
    theta = -SA * n1 * sigma / (2.0 * sqt) + q * w * SA * N1 - r * w * KD * N2
    rho = w * KD * T * N2
    return price, delta, gamma, vega, theta, rho


def bs_price_scalar(S, K, T, sigma, r, q, w):
    sst = sigma * math.sqrt(T)
    d1 = (math.log(S / K) + (r - q + 0.5 * sigma * sigma) * T) / sst
    d2 = d1 - sst
    return w * (S * math.exp(-q * T) * 0.5 * math.erfc(-w * d1 * 0.7071067811865476)
                - K * math.exp(-r * T) * 0.5 * math.erfc(-w * d2 * 0.7071067811865476))


def mp_values(S, K, T, sigma, r, q, w, dps=40):
    """40-digit mpmath price, greeks (raw units), the call/put pair and the OTM twin."""
    import mpmath as mp
    with mp.workdps(dps):
        S, K, T, s, r, q = (mp.mpf(float(v)) for v in (S, K, T, sigma, r, q))
        w = int(w)
        sqt = mp.sqrt(T)
        sst = s * sqt
        d1 = (mp.log(S / K) + (r - q + s * s / 2) * T) / sst
        d2 = d1 - sst
        A, DF = mp.exp(-q * T), mp.exp(-r * T)
        Nw1, Nw2 = mp.ncdf(w * d1), mp.ncdf(w * d2)
        n1 = mp.npdf(d1)
        price = w * (S * A * Nw1 - K * DF * Nw2)
        call = S * A * mp.ncdf(d1) - K * DF * mp.ncdf(d2)
        put = K * DF * mp.ncdf(-d2) - S * A * mp.ncdf(-d1)
        F = S * mp.exp((r - q) * T)
        otm = call if K >= F else put
        out = {
            "price": price, "delta": w * A * Nw1, "gamma": A * n1 / (S * sst), "vega": S * A * n1 * sqt,
            "theta": -S * A * n1 * s / (2 * sqt) + q * w * S * A * Nw1 - r * w * K * DF * Nw2,
            "rho": w * K * T * DF * Nw2, "otm": otm,
        }
        return {k: float(v) for k, v in out.items()}


class Contention:
    """CPU contention from other processes during a measurement (the machine is shared).

    Signals: Linux PSI ``/proc/pressure/cpu`` "some" stall time (µs resolution: time in which at least
    one runnable task waited for a CPU), and /proc/stat busy time minus this process's own CPU time
    (10 ms resolution), plus hypervisor steal time.
    """

    def __init__(self):
        self.clk = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.has_psi = Path("/proc/pressure/cpu").exists()

    def snap(self) -> dict:
        d = {"wall": time.perf_counter(), "self_cpu": sum(os.times()[:2])}
        try:
            f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
            v = [int(x) for x in f]
            d["busy"] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
            d["steal"] = v[7]
        except (OSError, ValueError, IndexError):
            pass
        if self.has_psi:
            try:
                line = Path("/proc/pressure/cpu").read_text().split("\n", 1)[0]
                d["psi_some_us"] = int(line.rsplit("total=", 1)[1])
            except (OSError, ValueError, IndexError):
                pass
        return d

    def diff(self, a: dict, b: dict) -> dict:
        wall = max(b["wall"] - a["wall"], 1e-9)
        out = {"wall_s": wall}
        if "busy" in a and "busy" in b:
            other = (b["busy"] - a["busy"]) / self.clk - (b["self_cpu"] - a["self_cpu"])
            out["other_cores"] = max(0.0, other / wall)
            out["steal_cores"] = (b["steal"] - a["steal"]) / self.clk / wall
        if "psi_some_us" in a and "psi_some_us" in b:
            out["psi_some_frac"] = (b["psi_some_us"] - a["psi_some_us"]) / 1e6 / wall
        return out

    @staticmethod
    def score(c: dict) -> float:
        """Contention measure used to accept / retry: PSI 'some' stall fraction (else other cores)."""
        return c["psi_some_frac"] if "psi_some_frac" in c else c.get("other_cores", 0.0)

    def wait_idle(self, timeout: float, threshold: float = 0.01, window: float = 0.5) -> dict:
        """Sleep in `window` steps until one window shows score < threshold and < 0.1 other cores."""
        t_end = time.perf_counter() + timeout
        last: dict = {}
        while True:
            a = self.snap()
            time.sleep(window)
            last = self.diff(a, self.snap())
            if self.score(last) < threshold and last.get("other_cores", 0.0) < 0.1:
                last["idle"] = True
                return last
            if time.perf_counter() >= t_end:
                last["idle"] = False
                return last


class Timer:
    """min over `reps` repetitions; each repetition runs `number` calls (autoranged to >= min_time).

    The whole measurement is repeated (up to `attempts` times, after waiting up to `wait` s for the
    machine to go idle) when other processes contended for the CPUs during it (PSI 'some' stall
    fraction > `threshold`); the least contended attempt is kept and its contention recorded.
    """

    def __init__(self, min_time: float = 0.005, attempts: int = 3, threshold: float = 0.05,
                 wait: float = 30.0):
        self.min_time = min_time
        self.attempts = max(1, attempts)
        self.threshold = threshold
        self.wait = wait
        self.mon = Contention()

    def _once(self, fn, reps: int) -> dict:
        gc.collect()
        t0 = time.perf_counter()
        fn()  # warm-up (JIT, OpenMP pool, page faults of reused buffers); also calibrates
        single = time.perf_counter() - t0
        number = 1 if single >= self.min_time else max(1, min(100_000, int(self.min_time / max(single, 1e-7))))
        times = []
        was = gc.isenabled()
        gc.disable()
        try:
            for _ in range(reps):
                t0 = time.perf_counter_ns()
                for _ in range(number):
                    fn()
                times.append((time.perf_counter_ns() - t0) / number)
        finally:
            if was:
                gc.enable()
        return {"min_ns": min(times), "all_ns": times, "number": number, "reps": reps}

    def __call__(self, fn, reps: int) -> dict:
        best = None
        for attempt in range(self.attempts):
            a = self.mon.snap()
            res = self._once(fn, reps)
            c = self.mon.diff(a, self.mon.snap())
            res["contention"] = c
            res["attempt"] = attempt + 1
            if best is None or self.mon.score(c) < self.mon.score(best["contention"]):
                best = res
            if self.mon.score(c) <= self.threshold:
                break
            if attempt + 1 < self.attempts:
                _log(f"    contended (PSI some {self.mon.score(c):.0%}, other cores "
                     f"{c.get('other_cores', float('nan')):.2f}); waiting for idle and retrying")
                self.mon.wait_idle(self.wait)
        best["contended"] = self.mon.score(best["contention"]) > self.threshold
        best["attempts"] = attempt + 1
        return best


def _rel_stats(x, ref):
    """max abs, max rel and median rel of x vs ref; rel only where |ref| >= 1e-10 max|ref| (ref. §1)."""
    import numpy as np
    x = np.asarray(x, dtype=float)
    ref = np.asarray(ref, dtype=float)
    fin = np.isfinite(ref)
    absd = np.abs(x - ref)
    scale = np.max(np.abs(ref[fin])) if fin.any() else 0.0
    m = fin & (np.abs(ref) >= 1e-10 * scale) & (ref != 0)
    rel = absd[m] / np.abs(ref[m])
    return {
        "max_abs": float(np.nanmax(absd[fin])) if fin.any() else float("nan"),
        "max_rel": float(rel.max()) if rel.size else float("nan"),
        "median_rel": float(np.median(rel)) if rel.size else float("nan"),
        "n_nonfinite": int((~np.isfinite(x[fin])).sum()),
        "n": int(fin.sum()),
    }


GREEK_NAMES = ("price", "delta", "gamma", "vega", "theta", "rho")


# ---------------------------------------------------------------- environment record

def _cmd(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError as exc:
        return f"unavailable ({exc})"


def machine_info() -> dict:
    info: dict = {"platform": platform.platform(), "machine": platform.machine()}
    try:
        txt = Path("/proc/cpuinfo").read_text()
        first = txt.split("\n\n")[0]
        fields = dict(re.findall(r"^([^\t:]+?)\s*:\s*(.*)$", first, flags=re.M))
        flags = set(fields.get("flags", "").split())
        info.update({
            "cpu_model": fields.get("model name"),
            "cpu_family": fields.get("cpu family"),
            "cpu_model_id": fields.get("model"),
            "vendor": fields.get("vendor_id"),
            "flags": {f: f in flags for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq",
                                              "avx512vl", "avx512bw")},
            "hypervisor": "hypervisor" in flags,
        })
    except OSError:
        pass
    info["logical_cpus"] = os.cpu_count()
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["affinity_cpus"] = os.cpu_count()
    lscpu = _cmd(["lscpu"])
    for key in ("Thread(s) per core", "Core(s) per socket", "Socket(s)", "L2 cache", "L3 cache",
                "Hypervisor vendor"):
        m = re.search(rf"^{re.escape(key)}:\s*(.*)$", lscpu, flags=re.M)
        if m:
            info[key] = m.group(1).strip()
    return info


def software_info() -> dict:
    from importlib import metadata
    pkgs = {}
    for name in ("numpy", "scipy", "QuantLib", "py_vollib_vectorized", "py_vollib", "vollib",
                 "py_lets_be_rational", "lets_be_rational", "numba", "llvmlite", "mpmath",
                 "threadpoolctl", "pandas", "Cython", "setuptools", "pmnb"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        glibc = " ".join(platform.libc_ver())
    import sysconfig
    return {
        "python": sys.version,
        "python_executable": sys.executable,
        "gcc_version": _cmd(["gcc", "--version"]).splitlines()[0] if _cmd(["gcc", "--version"]) else None,
        "python_build_cc": sysconfig.get_config_var("CC"),
        "glibc": glibc,
        "packages": pkgs,
    }


def thread_info() -> dict:
    from threadpoolctl import threadpool_info
    env = {k: v for k, v in sorted(os.environ.items())
           if k.startswith(("OMP_", "OPENBLAS_", "MKL_", "NUMBA_", "GOMP_", "KMP_", "PMNB_"))}
    info = {"env": env, "threadpoolctl": threadpool_info()}
    try:
        import numba
        info["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
        info["numba_threading_layer_default"] = numba.config.THREADING_LAYER
    except Exception as exc:  # noqa: BLE001
        info["numba"] = repr(exc)
    return info


def pmnb_info() -> dict:
    import pmnb
    import pmnb._core._kernels as k
    so = Path(k.__file__)
    nm = _cmd(["nm", "-D", "--undefined-only", str(so)])
    syms = sorted({line.split()[-1] for line in nm.splitlines() if "_ZGV" in line})
    ldd = _cmd(["ldd", str(so)])
    stamp = {}
    if STAMP.exists():
        try:
            stamp = json.loads(STAMP.read_text())
        except ValueError:
            pass
    cur = source_hash(source_files())
    return {
        "version": pmnb.__version__,
        "file": pmnb.__file__,
        "kernels_so": str(so),
        "build_info": pmnb.pricing.build_info(),
        "libmvec_symbols": syms,
        "links_libmvec": "libmvec" in ldd,
        "ldd": ldd.splitlines(),
        "source_sha256_built": stamp.get("pmnb_source"),
        "source_sha256_now": cur,
        "built_utc": stamp.get("pmnb_built_utc"),
        "build_seconds": stamp.get("pmnb_build_seconds"),
        "build_env": stamp.get("pmnb_build_env"),
        "repo_git_head": _cmd(["git", "-C", str(REPO), "rev-parse", "--verify", "-q", "HEAD"]) or None,
    }


# ---------------------------------------------------------------- peers

def quantlib_loop_factory(inp, rows: int):
    """One EuropeanOption + AnalyticEuropeanEngine per row, quotes updated (ref. §2)."""
    import numpy as np
    import QuantLib as ql
    today = ql.Date(24, 11, 2026)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    cal = ql.NullCalendar()
    spot, rq, qq, vq = ql.SimpleQuote(1.0), ql.SimpleQuote(0.0), ql.SimpleQuote(0.0), ql.SimpleQuote(0.2)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(qq), dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(rq), dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, cal, ql.QuoteHandle(vq), dc)))
    engine = ql.AnalyticEuropeanEngine(process)
    S = inp["S"][:rows].tolist()
    K = inp["K"][:rows].tolist()
    days = inp["days"][:rows].tolist()
    sig = inp["sigma"][:rows].tolist()
    r = inp["r"][:rows].tolist()
    q = inp["q"][:rows].tolist()
    w = inp["w"][:rows].tolist()
    CALL, PUT = ql.Option.Call, ql.Option.Put

    def run():
        out = np.empty((6, rows))
        for i in range(rows):
            spot.setValue(S[i])
            rq.setValue(r[i])
            qq.setValue(q[i])
            vq.setValue(sig[i])
            opt = ql.EuropeanOption(ql.PlainVanillaPayoff(CALL if w[i] > 0 else PUT, K[i]),
                                    ql.EuropeanExercise(today + int(days[i])))
            opt.setPricingEngine(engine)
            out[0, i] = opt.NPV()
            out[1, i] = opt.delta()
            out[2, i] = opt.gamma()
            out[3, i] = opt.vega()
            out[4, i] = opt.theta()
            out[5, i] = opt.rho()
        return out

    return run


def brentq_loop_factory(prices, S, K, T, r, q, w):
    import numpy as np
    from scipy.optimize import brentq
    rows = list(zip(prices.tolist(), S.tolist(), K.tolist(), T.tolist(), r.tolist(), q.tolist(),
                    w.tolist()))

    def run():
        out = np.empty(len(rows))
        for i, (p, s_, k_, t_, r_, q_, w_) in enumerate(rows):
            try:
                out[i] = brentq(lambda v: bs_price_scalar(s_, k_, t_, v, r_, q_, w_) - p,
                                1e-6, 10.0, xtol=1e-15, maxiter=200)
            except (ValueError, RuntimeError, ZeroDivisionError, OverflowError):
                out[i] = np.nan
        return out

    return run


# ---------------------------------------------------------------- same-machine C anchor (anchor.c)

ANCHOR_VARIANTS = (("native", ["-march=native"]), ("x86-64-v3", ["-march=x86-64-v3"]))


def subnormals_ok() -> bool:
    """False if something in the process set flush-to-zero / denormals-are-zero (crtfastmath.o)."""
    import numpy as np
    tiny = float(np.float64(2.2250738585072014e-308))
    return (tiny / 4.0) != 0.0 and float(np.divide(np.float64(tiny), 4.0)) != 0.0


def build_anchors() -> dict:
    """Compile anchor.c with gcc (fast-math at compile time only) and load it with ctypes."""
    import ctypes
    gcc = shutil.which("gcc")
    src = HERE / "anchor.c"
    info: dict = {"available": False}
    if gcc is None or not src.exists():
        info["reason"] = "gcc or anchor.c missing"
        return info
    outdir = (VENV / "anchor") if VENV.exists() else Path(tempfile.mkdtemp(prefix="pmnb-anchor-"))
    outdir.mkdir(parents=True, exist_ok=True)
    info.update({"available": True, "variants": {}})
    for name, march in ANCHOR_VARIANTS:
        obj, so = outdir / f"anchor-{name}.o", outdir / f"anchor-{name}.so"
        cflags = ["-O3", "-ffast-math", "-fPIC", "-fopenmp", *march]
        try:
            subprocess.run([gcc, "-c", *cflags, str(src), "-o", str(obj)], check=True, capture_output=True)
            # linked WITHOUT -ffast-math: no crtfastmath.o, no flush-to-zero for the process
            subprocess.run([gcc, "-shared", "-fopenmp", str(obj), "-o", str(so), "-lm"], check=True,
                           capture_output=True)
        except subprocess.CalledProcessError as exc:
            info["variants"][name] = {"error": exc.stderr.decode(errors="replace")[-2000:]}
            continue
        lib = ctypes.CDLL(str(so))
        fns = {}
        for fname in ("anchor_greeks", "anchor_floor"):
            f = getattr(lib, fname)
            f.argtypes = [ctypes.c_long] + [ctypes.c_void_p] * 7 + [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int]
            f.restype = None
            fns[fname] = f
        nm = _cmd(["nm", "-D", "--undefined-only", str(so)])
        info["variants"][name] = {
            "cflags": " ".join(cflags), "ldflags": "-shared -fopenmp -lm", "so": str(so),
            "libmvec_symbols": sorted({ln.split()[-1] for ln in nm.splitlines() if "_ZGV" in ln}),
            "_fns": fns}
    return info


def anchor_call(fn, arrays, outs, nt):
    """Bind pointers once (outside the timed region); returns a zero-argument callable."""
    import ctypes
    n = arrays[0].shape[0]
    ptrs = [ctypes.c_void_p(a.ctypes.data) for a in arrays]
    optr = (ctypes.c_void_p * 6)(*[o.ctypes.data for o in outs])
    keep = (arrays, outs)  # keep buffers alive

    def call():
        fn(n, *ptrs, optr, nt)
        return keep
    return call


# ---------------------------------------------------------------- measurement

def run_benchmark(args: argparse.Namespace) -> dict:
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    from threadpoolctl import threadpool_limits

    import pmnb
    import pmnb._core._kernels as K_
    import numba
    from py_vollib_vectorized import (get_all_greeks, vectorized_black_scholes_merton,
                                      vectorized_implied_volatility)

    pinfo = pmnb_info()
    if VENV.exists() and not args.no_venv and not str(Path(pmnb.__file__).resolve()).startswith(
            str(VENV.resolve())):
        raise SystemExit(f"pmnb imported from {pmnb.__file__}, not from the bench venv {VENV}")
    if pinfo["source_sha256_built"] and pinfo["source_sha256_built"] != pinfo["source_sha256_now"]:
        _log("WARNING: repository source changed since pmnb was built in the bench venv "
             "(run without --no-venv or with --rebuild to rebuild)")

    sub_before = subnormals_ok()
    anchors = build_anchors()
    sub_after = subnormals_ok()
    if anchors.get("available"):
        _log("C anchors: " + ", ".join(f"{k}: {len(v.get('libmvec_symbols', []))} libmvec symbols"
                                        for k, v in anchors["variants"].items()))

    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = args.threads or sorted({1, ncpu})
    sizes = args.sizes
    nmax = max(sizes)
    reps_fast = 3 if args.quick else 7
    reps_slow = 3
    timer = Timer(0.002 if args.quick else 0.005, attempts=args.retries, wait=30.0)
    idle_at_start = {}
    if args.wait_idle > 0:
        _log(f"waiting up to {args.wait_idle:.0f} s for an idle machine (PSI /proc/pressure/cpu, /proc/stat)")
        idle_at_start = timer.mon.wait_idle(args.wait_idle)
        _log(f"  idle={idle_at_start.get('idle')} {idle_at_start}")

    _log(f"inputs: {nmax:,} options, seed {SEED}")
    inp = make_inputs(nmax, SEED)
    flags_all = np.where(inp["w"] > 0, "c", "p")
    wstr_all = np.where(inp["w"] > 0, "call", "put")

    # py_vollib_vectorized: warm up its numba JIT (first use compiles for seconds; ref. §8 pitfall 4)
    t0 = time.perf_counter()
    sl = slice(0, 16)
    vectorized_black_scholes_merton(flags_all[sl], inp["S"][sl], inp["K"][sl], inp["T"][sl], inp["r"][sl],
                                    inp["sigma"][sl], inp["q"][sl], return_as="numpy")
    get_all_greeks(flags_all[sl], inp["S"][sl], inp["K"][sl], inp["T"][sl], inp["r"][sl], inp["sigma"][sl],
                   inp["q"][sl], model="black_scholes_merton", return_as="dict")
    p16 = numpy_greeks(*(inp[k][sl] for k in ("S", "K", "T", "sigma", "r", "q", "w")))[0]
    vectorized_implied_volatility(p16, inp["S"][sl], inp["K"][sl], inp["T"][sl], inp["r"][sl], flags_all[sl],
                                  q=inp["q"][sl], model="black_scholes_merton", return_as="numpy",
                                  on_error="ignore")
    jit_warmup_s = time.perf_counter() - t0
    _log(f"py_vollib_vectorized JIT warm-up {jit_warmup_s:.1f} s")

    greeks_t: list[dict] = []
    iv_t: list[dict] = []
    pool_settings: dict = {}

    def rec(store, method, n, nt, res, rows=None, **extra):
        d = {"method": method, "N": n, "threads": nt, "rows_timed": rows or n,
             "ns_per_option": res["min_ns"] / (rows or n), **res, **extra}
        store.append(d)
        c = res.get("contention", {})
        _log(f"  {method:<38} N={n:>9,} thr={nt} {d['ns_per_option']:>12,.1f} ns/option "
             f"(x{res['number']}, {res['reps']} reps, attempt {res.get('attempts')}, "
             f"PSI {c.get('psi_some_frac', float('nan')):.1%}, other cores {c.get('other_cores', float('nan')):.2f})"
             + (" CONTENDED" if res.get("contended") else ""))

    # exact-ish prices of the main set for IV timing (numpy reference, accurate to ~1e-15 rel)
    ref_full = numpy_greeks(*(inp[k] for k in ("S", "K", "T", "sigma", "r", "q", "w")))
    # far-OTM prices can round to tiny negatives (w*(a - b) with a, b ~ 1e-300): clip at 0 for IV input
    prices_full = np.maximum(ref_full[0], 0.0)

    for nt in threads:
        with threadpool_limits(limits=nt):
            try:
                numba.set_num_threads(min(nt, numba.config.NUMBA_NUM_THREADS))
            except Exception:  # noqa: BLE001
                pass
            from threadpoolctl import threadpool_info
            pool_settings[str(nt)] = {"threadpoolctl": threadpool_info(),
                                      "numba_get_num_threads": numba.get_num_threads(),
                                      "pmnb_n_threads": nt}
            pool = ThreadPoolExecutor(max_workers=nt) if nt > 1 else None
            for n in sizes:
                _log(f"greeks: N={n:,}, threads={nt}")
                a = {k: np.ascontiguousarray(v[:n]) for k, v in inp.items()}
                S, Kk, T, sg, r, q, w = (a[k] for k in ("S", "K", "T", "sigma", "r", "q", "w"))
                flags = flags_all[:n].copy()
                wstr = wstr_all[:n].copy()
                outd = {g: np.empty(n) for g in GREEK_NAMES}
                outs = tuple(np.empty(n) for _ in GREEK_NAMES)
                big = n >= 1_000_000

                rec(greeks_t, "pmnb greeks() plain", n, nt, timer(
                    lambda: pmnb.greeks(S, Kk, T, sg, r, q, option_type=w, model="bsm", n_threads=nt),
                    reps_fast))
                rec(greeks_t, "pmnb greeks(out=)", n, nt, timer(
                    lambda: pmnb.greeks(S, Kk, T, sg, r, q, option_type=w, model="bsm", out=outd,
                                        n_threads=nt), reps_fast))
                rec(greeks_t, "pmnb kernel only (_kernels.greeks)", n, nt, timer(
                    lambda: K_.greeks(0, 0, 1, S, Kk, T, sg, r, q, w, outs, nt), reps_fast))
                rec(greeks_t, "pmnb check_inputs only", n, nt, timer(
                    lambda: K_.check_inputs(S, Kk, T, sg, r, q, w), reps_fast))
                rec(greeks_t, "pmnb plain, q=0.0 scalar", n, nt, timer(
                    lambda: pmnb.greeks(S, Kk, T, sg, r, option_type=w, model="bsm", n_threads=nt),
                    reps_fast))
                rec(greeks_t, "pmnb plain, option_type 'call'/'put'", n, nt, timer(
                    lambda: pmnb.greeks(S, Kk, T, sg, r, q, option_type=wstr, model="bsm",
                                        n_threads=nt), reps_fast))

                rec(greeks_t, "numpy + scipy ndtr", n, nt, timer(
                    lambda: numpy_greeks(S, Kk, T, sg, r, q, w), reps_slow if big else reps_fast))
                if pool is not None:
                    bounds = [(n * c) // nt for c in range(nt + 1)]
                    chunks = [slice(bounds[c], bounds[c + 1]) for c in range(nt)]

                    def np_threads():
                        return list(pool.map(lambda s: numpy_greeks(S[s], Kk[s], T[s], sg[s], r[s],
                                                                    q[s], w[s]), chunks))
                    rec(greeks_t, f"numpy + ndtr, {nt} py-threads", n, nt,
                        timer(np_threads, reps_slow if big else reps_fast))

                def pyvv():
                    p = vectorized_black_scholes_merton(flags, S, Kk, T, r, sg, q, return_as="numpy")
                    g = get_all_greeks(flags, S, Kk, T, r, sg, q, model="black_scholes_merton",
                                       return_as="dict")
                    return p, {k: np.asarray(v, dtype=np.float64) for k, v in g.items()}
                rec(greeks_t, "py_vollib_vectorized", n, nt,
                    timer(pyvv, reps_slow if n >= 100_000 else reps_fast))

                qrows = min(n, args.ql_rows)
                rec(greeks_t, "QuantLib loop", n, nt,
                    timer(quantlib_loop_factory(inp, qrows), reps_slow), rows=qrows)

                if anchors.get("available"):
                    arrs = (S, Kk, T, sg, r, q, w)
                    aouts = tuple(np.empty(n) for _ in GREEK_NAMES)
                    for vname, v in anchors["variants"].items():
                        if "_fns" in v:
                            rec(greeks_t, f"C anchor -O3 -ffast-math -march={vname}", n, nt, timer(
                                anchor_call(v["_fns"]["anchor_greeks"], arrs, aouts, nt), reps_fast))
                    v0 = next((v for v in anchors["variants"].values() if "_fns" in v), None)
                    if v0 is not None:
                        rec(greeks_t, "C memory floor (7 in, 6 out)", n, nt, timer(
                            anchor_call(v0["_fns"]["anchor_floor"], arrs, aouts, nt), reps_fast))

                # implied vol on the same inputs (prices from the numpy reference)
                _log(f"implied vol: N={n:,}, threads={nt}")
                pr = np.ascontiguousarray(prices_full[:n])
                rec(iv_t, "pmnb implied_vol(errors='nan')", n, nt, timer(
                    lambda: pmnb.implied_vol(pr, S, Kk, T, r, q, option_type=w, model="bsm",
                                             errors="nan", n_threads=nt), reps_fast))
                F = S * np.exp((r - q) * T)
                undisc = pr / np.exp(-r * T)
                vol = np.empty(n)
                code = np.empty(n, dtype=np.intc)
                rec(iv_t, "pmnb LBR kernel only", n, nt, timer(
                    lambda: K_.implied_vol(undisc, F, Kk, T, w, vol, code, nt), reps_fast))
                rec(iv_t, "py_vollib_vectorized IV", n, nt, timer(
                    lambda: vectorized_implied_volatility(pr, S, Kk, T, r, flags, q=q,
                                                          model="black_scholes_merton",
                                                          return_as="numpy", on_error="ignore"),
                    reps_slow if n >= 100_000 else reps_fast))
                brows = min(n, args.brentq_rows)
                rec(iv_t, "scipy brentq loop", n, nt, timer(
                    brentq_loop_factory(pr[:brows], S[:brows], Kk[:brows], T[:brows], r[:brows],
                                        q[:brows], w[:brows]), reps_slow), rows=brows)
            if pool is not None:
                pool.shutdown()

    # ------------------------------------------------------------ accuracy
    _log("accuracy checks")
    acc: dict = {}
    n = nmax
    ref = dict(zip(GREEK_NAMES, ref_full))
    a = inp
    for nt in threads:
        g = pmnb.greeks(a["S"], a["K"], a["T"], a["sigma"], a["r"], a["q"], option_type=a["w"], model="bsm",
                        n_threads=nt)
        acc[f"pmnb_vs_numpy_N{n}_threads{nt}"] = {k: _rel_stats(g[k], ref[k]) for k in GREEK_NAMES}
    gk = pmnb.greeks(a["S"], a["K"], a["T"], a["sigma"], a["r"], a["q"], option_type=a["w"], model="bsm")

    if anchors.get("available"):
        for vname, v in anchors["variants"].items():
            if "_fns" in v:
                aouts = tuple(np.empty(n) for _ in GREEK_NAMES)
                anchor_call(v["_fns"]["anchor_greeks"], tuple(a[k] for k in ("S", "K", "T", "sigma", "r", "q", "w")),
                            aouts, 1)()
                acc[f"C_anchor_{vname}_vs_numpy_N{n}"] = {k: _rel_stats(aouts[i], ref[k])
                                                         for i, k in enumerate(GREEK_NAMES)}

    # py_vollib_vectorized vs numpy (units rescaled: vega, rho x100; theta is a one-day difference x365)
    m = min(n, 100_000)
    sl = slice(0, m)
    pv = vectorized_black_scholes_merton(flags_all[sl], a["S"][sl], a["K"][sl], a["T"][sl], a["r"][sl],
                                         a["sigma"][sl], a["q"][sl], return_as="numpy")
    pg = get_all_greeks(flags_all[sl], a["S"][sl], a["K"][sl], a["T"][sl], a["r"][sl], a["sigma"][sl],
                        a["q"][sl], model="black_scholes_merton", return_as="dict")
    pvv = {"price": pv, "delta": np.asarray(pg["delta"]), "gamma": np.asarray(pg["gamma"]),
           "vega": np.asarray(pg["vega"]) * 100, "theta": np.asarray(pg["theta"]) * 365,
           "rho": np.asarray(pg["rho"]) * 100}
    acc[f"py_vollib_vectorized_vs_numpy_N{m}"] = {k: _rel_stats(pvv[k], ref[k][sl]) for k in GREEK_NAMES}
    acc[f"py_vollib_vectorized_vs_numpy_N{m}"]["note"] = (
        "numerical greeks; vega, rho x100, theta = one-day difference x365 (differs by definition)")

    # QuantLib vs pmnb on the subsample
    qrows = min(n, args.ql_rows)
    qo = quantlib_loop_factory(inp, qrows)()
    acc[f"pmnb_vs_quantlib_N{qrows}"] = {k: _rel_stats(gk[k][:qrows], qo[i]) for i, k in enumerate(GREEK_NAMES)}
    acc[f"pmnb_vs_quantlib_N{qrows}"]["note"] = ("QuantLib is not a relative-accuracy reference for far-OTM "
                                                 "puts (N(-x) = 1 - N(x)); compare max_abs")

    # 40-digit mpmath on a subsample
    mrows = min(n, args.mp_rows)
    t0 = time.perf_counter()
    mpv = [mp_values(*(a[k][i] for k in ("S", "K", "T", "sigma", "r", "q", "w"))) for i in range(mrows)]
    mpref = {k: np.array([d[k] for d in mpv]) for k in GREEK_NAMES}
    acc[f"pmnb_vs_mpmath40_N{mrows}"] = {k: _rel_stats(gk[k][:mrows], mpref[k]) for k in GREEK_NAMES}
    acc[f"numpy_vs_mpmath40_N{mrows}"] = {k: _rel_stats(ref[k][:mrows], mpref[k]) for k in GREEK_NAMES}
    _log(f"  mpmath greeks on {mrows:,} options: {time.perf_counter() - t0:.1f} s")

    # ------------------------------------------------------------ implied vol accuracy on exact prices
    _log(f"implied vol accuracy: {args.iv_exact_rows:,} fresh options priced with 40-digit mpmath")
    niv = args.iv_exact_rows
    iv_in = make_inputs(niv, IV_SEED)
    t0 = time.perf_counter()
    mpi = [mp_values(*(iv_in[k][i] for k in ("S", "K", "T", "sigma", "r", "q", "w"))) for i in range(niv)]
    _log(f"  mpmath prices: {time.perf_counter() - t0:.1f} s")
    px = np.array([d["price"] for d in mpi])
    otm = np.array([d["otm"] for d in mpi])
    tradable = otm >= 1e-4 * iv_in["S"]
    pos = px > 0
    S, Kk, T, r, q, w, sig = (iv_in[k] for k in ("S", "K", "T", "r", "q", "w", "sigma"))
    iv_flags = np.where(w > 0, "c", "p")
    iv_exact: dict = {"n": niv, "n_positive_price": int(pos.sum()), "n_tradable": int(tradable.sum()),
                      "tradable_rule": "OTM twin (40-digit mpmath) >= 1e-4 * spot", "methods": {}}

    def iv_stats(est, mask_rows=slice(None)):
        est = np.asarray(est, dtype=float)
        tr = tradable[mask_rows]
        err = np.abs(est - sig[mask_rows])
        errt = err[tr]
        fin = np.isfinite(errt)
        nt_ = ~tr & pos[mask_rows]
        wrong_nontradable = int((np.isfinite(est[nt_]) & (err[nt_] > 1e-3)).sum())
        return {"rows": int(np.asarray(est).size), "tradable_rows": int(tr.sum()),
                "nan_all": int(np.isnan(est).sum()), "nan_tradable": int((~fin).sum()),
                "max_abs_err_tradable": float(errt[fin].max()) if fin.any() else float("nan"),
                "median_abs_err_tradable": float(np.median(errt[fin])) if fin.any() else float("nan"),
                "wrong_finite_nontradable_gt_1e-3": wrong_nontradable,
                "zero_returned": int((est == 0).sum())}

    nt1 = threads[0]
    res = pmnb.implied_vol(px, S, Kk, T, r, q, option_type=w, model="bsm", errors="nan", n_threads=nt1)
    tm = timer(lambda: pmnb.implied_vol(px, S, Kk, T, r, q, option_type=w, model="bsm", errors="nan",
                                        n_threads=nt1), reps_fast)
    iv_exact["methods"]["pmnb implied_vol"] = {**iv_stats(res.vol), "ns_per_option": tm["min_ns"] / niv,
                                               "threads": nt1}
    pyv = vectorized_implied_volatility(px, S, Kk, T, r, iv_flags, q=q, model="black_scholes_merton",
                                        return_as="numpy", on_error="ignore")
    tm = timer(lambda: vectorized_implied_volatility(px, S, Kk, T, r, iv_flags, q=q, model="black_scholes_merton",
                                                     return_as="numpy", on_error="ignore"), reps_fast)
    iv_exact["methods"]["py_vollib_vectorized IV"] = {**iv_stats(pyv), "ns_per_option": tm["min_ns"] / niv,
                                                      "threads": 1}
    brows = min(niv, args.brentq_rows)
    bf = brentq_loop_factory(px[:brows], S[:brows], Kk[:brows], T[:brows], r[:brows], q[:brows], w[:brows])
    best = bf()
    tm = timer(bf, reps_slow)
    iv_exact["methods"]["scipy brentq"] = {**iv_stats(best, slice(0, brows)),
                                           "ns_per_option": tm["min_ns"] / brows, "threads": 1}

    return {
        "config": {"sizes": sizes, "threads": threads, "seed": SEED, "iv_seed": IV_SEED,
                   "reps_fast": reps_fast, "reps_slow": reps_slow, "min_time_per_rep_s": timer.min_time,
                   "contention_threshold_psi_some": timer.threshold, "attempts_max": timer.attempts,
                   "idle_at_start": idle_at_start,
                   "ql_rows": args.ql_rows, "brentq_rows": args.brentq_rows,
                   "iv_exact_rows": args.iv_exact_rows, "mp_rows": args.mp_rows, "quick": args.quick,
                   "model": "bsm", "greeks": list(GREEK_NAMES), "units": "raw (QuantLib units)",
                   "inputs": "spot U(20k,120k); strike = spot*exp(U(ln .5, ln 2)); T = floor(exp(U(0, ln 731)))"
                             " days (1..730) / 365; vol U(20%,150%); r U(0,5%); q = 0; call/put 50/50"},
        "pmnb": pinfo,
        "c_anchor": {k: v for k, v in anchors.items() if k != "variants"} | {
            "variants": {vn: {kk: vv for kk, vv in v.items() if kk != "_fns"}
                         for vn, v in anchors.get("variants", {}).items()}},
        "subnormals_ok": {"before_anchor_load": sub_before, "after_anchor_load": sub_after,
                          "at_end": subnormals_ok()},
        "py_vollib_vectorized_jit_warmup_s": jit_warmup_s,
        "threadpool_per_setting": pool_settings,
        "greeks_timings": greeks_t,
        "iv_timings": iv_t,
        "accuracy": acc,
        "iv_exact": iv_exact,
    }


# ---------------------------------------------------------------- report

def _fmt_ns(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _lookup(rows, method, n, nt):
    for d in rows:
        if d["method"] == method and d["N"] == n and d["threads"] == nt:
            return d["ns_per_option"]
    return float("nan")


def build_ratios(out: dict) -> dict:
    cfg = out["config"]
    ratios = {}
    for nt in cfg["threads"]:
        for n in cfg["sizes"]:
            base = _lookup(out["greeks_timings"], "pmnb greeks() plain", n, nt)
            base_out = _lookup(out["greeks_timings"], "pmnb greeks(out=)", n, nt)
            base_k = _lookup(out["greeks_timings"], "pmnb kernel only (_kernels.greeks)", n, nt)
            for d in out["greeks_timings"]:
                if d["N"] == n and d["threads"] == nt:
                    d["x_vs_pmnb_plain"] = d["ns_per_option"] / base
                    d["x_vs_pmnb_out"] = d["ns_per_option"] / base_out
                    d["x_vs_pmnb_kernel"] = d["ns_per_option"] / base_k
            ib = _lookup(out["iv_timings"], "pmnb implied_vol(errors='nan')", n, nt)
            for d in out["iv_timings"]:
                if d["N"] == n and d["threads"] == nt:
                    d["x_vs_pmnb"] = d["ns_per_option"] / ib
            ratios[f"N{n}_threads{nt}"] = {
                d["method"]: d["x_vs_pmnb_plain"] for d in out["greeks_timings"]
                if d["N"] == n and d["threads"] == nt}
    return ratios


def build_targets(out: dict) -> list[dict]:
    cfg = out["config"]
    G, I = out["greeks_timings"], out["iv_timings"]
    one = 1 if 1 in cfg["threads"] else min(cfg["threads"])
    many = max(cfg["threads"])
    rows = []

    def add(name, values, ok):
        rows.append({"target": name, "values": values,
                     "pass": {str(n): (None if not math.isfinite(v) else bool(ok(v))) for n, v in values.items()}})

    for variant in ("pmnb greeks() plain", "pmnb greeks(out=)", "pmnb kernel only (_kernels.greeks)"):
        short = variant.replace("pmnb ", "").replace(" (_kernels.greeks)", "")
        add(f"<= {TARGETS['ns_1thread']:g} ns/opt, {one} thread [{short}]",
            {n: _lookup(G, variant, n, one) for n in cfg["sizes"]}, lambda v: v <= TARGETS["ns_1thread"])
    if many > 1:
        for variant in ("pmnb greeks() plain", "pmnb greeks(out=)", "pmnb kernel only (_kernels.greeks)"):
            short = variant.replace("pmnb ", "").replace(" (_kernels.greeks)", "")
            add(f"<= {TARGETS['ns_nthreads']:g} ns/opt, {many} threads [{short}]",
                {n: _lookup(G, variant, n, many) for n in cfg["sizes"]}, lambda v: v <= TARGETS["ns_nthreads"])
    for key, peer, label in (("x_numpy", "numpy + scipy ndtr", "numpy"),
                             ("x_pyvv", "py_vollib_vectorized", "py_vollib_vectorized"),
                             ("x_quantlib", "QuantLib loop", "QuantLib")):
        add(f">= {TARGETS[key]:g}x {label}, {one} thread [plain]",
            {n: _lookup(G, peer, n, one) / _lookup(G, "pmnb greeks() plain", n, one) for n in cfg["sizes"]},
            lambda v, t=TARGETS[key]: v >= t)
    for nt_ in sorted({one, many}):
        add(f"(info) pmnb kernel / C anchor native, {nt_} thr",
            {n: _lookup(G, "pmnb kernel only (_kernels.greeks)", n, nt_)
             / _lookup(G, "C anchor -O3 -ffast-math -march=native", n, nt_) for n in cfg["sizes"]},
            lambda v: True)
    add(f"IV <= {TARGETS['iv_ns']:g} ns/opt, {one} thread [implied_vol]",
        {n: _lookup(I, "pmnb implied_vol(errors='nan')", n, one) for n in cfg["sizes"]},
        lambda v: v <= TARGETS["iv_ns"])
    add(f"IV <= {TARGETS['iv_ns']:g} ns/opt, {one} thread [LBR kernel]",
        {n: _lookup(I, "pmnb LBR kernel only", n, one) for n in cfg["sizes"]},
        lambda v: v <= TARGETS["iv_ns"])
    return rows


def print_report(out: dict) -> None:
    cfg = out["config"]
    sizes, threads = cfg["sizes"], cfg["threads"]
    m, s, p = out["machine"], out["software"], out["pmnb"]
    W = 40
    colw = 18
    print()
    print("=" * (W + colw * len(sizes)))
    print(f"pmnb greeks benchmark  {out['timestamp_utc']}")
    print(f"CPU {m.get('cpu_model')} (family {m.get('cpu_family')}, model {m.get('cpu_model_id')}), "
          f"{m.get('affinity_cpus')} cpus; avx2={m.get('flags', {}).get('avx2')} "
          f"avx512f={m.get('flags', {}).get('avx512f')}")
    print(f"{s['gcc_version']}; {s['glibc']}; Python {s['python'].split()[0]}; "
          f"numpy {s['packages']['numpy']}, scipy {s['packages']['scipy']}, QuantLib {s['packages']['QuantLib']}, "
          f"py_vollib_vectorized {s['packages']['py_vollib_vectorized']} "
          f"(LBR {s['packages']['py_lets_be_rational']}, numba {s['packages']['numba']})")
    print(f"pmnb {p['version']}: isa={p['build_info']['isa']!r} cflags={p['build_info']['cflags']!r}")
    print(f"libmvec imports: {' '.join(p['libmvec_symbols']) or 'NONE'}")
    for vn, v in out.get("c_anchor", {}).get("variants", {}).items():
        print(f"C anchor {vn}: {v.get('cflags', v.get('error', ''))}; libmvec: "
              f"{' '.join(x.split('@')[0] for x in v.get('libmvec_symbols', [])) or 'NONE'}")
    print(f"subnormals preserved (no FTZ/DAZ in process): {out['subnormals_ok']}")
    allm = out["greeks_timings"] + out["iv_timings"]
    ncont = sum(1 for d in allm if d.get("contended"))
    nretry = sum(1 for d in allm if (d.get("attempts") or 1) > 1)
    idle = cfg.get("idle_at_start", {})
    print(f"machine load: idle at start={idle.get('idle')}; {nretry} of {len(allm)} measurements retried "
          f"for CPU contention by other processes, {ncont} still contended (marked *)")
    print(f"model bsm, price + delta gamma vega theta rho (raw units); min of {cfg['reps_fast']} reps "
          f"({cfg['reps_slow']} for slow peers / N>=1e6); QuantLib on {cfg['ql_rows']:,}-row subsample, "
          f"brentq on {cfg['brentq_rows']:,}")

    def table(title, rows, methods, ratio_key, note):
        print()
        print(title)
        for nt in threads:
            print(f"  threads = {nt}   [ns/option ({note})]")
            hdr = f"  {'method':<{W}}" + "".join(f"{'N=' + format(n, ','):>{colw}}" for n in sizes)
            print(hdr)
            for meth in methods:
                cells = []
                anyv = False
                for n in sizes:
                    d = next((x for x in rows if x["method"] == meth and x["N"] == n and x["threads"] == nt), None)
                    if d is None:
                        cells.append("")
                        continue
                    anyv = True
                    ns = _fmt_ns(d["ns_per_option"]) + ("*" if d.get("contended") else "")
                    rk = d.get(ratio_key)
                    if rk is not None and meth not in ("pmnb greeks() plain", "pmnb implied_vol(errors='nan')"):
                        ns += f" ({rk:,.1f}x)" if rk < 100 else f" ({rk:,.0f}x)"
                    cells.append(ns)
                if anyv:
                    print(f"  {meth:<{W}}" + "".join(f"{c:>{colw}}" for c in cells))

    gm = ["pmnb greeks() plain", "pmnb greeks(out=)", "pmnb kernel only (_kernels.greeks)",
          "pmnb check_inputs only", "pmnb plain, q=0.0 scalar", "pmnb plain, option_type 'call'/'put'",
          "numpy + scipy ndtr"] + [f"numpy + ndtr, {nt} py-threads" for nt in threads if nt > 1] + [
          "py_vollib_vectorized", "QuantLib loop"] + [
          f"C anchor -O3 -ffast-math -march={vn}" for vn, _ in ANCHOR_VARIANTS] + [
          "C memory floor (7 in, 6 out)"]
    table("GREEKS (price + 5 greeks)", out["greeks_timings"], gm, "x_vs_pmnb_plain",
          "x = method time / pmnb greeks() plain, same N and threads; * = other processes contended")
    im = ["pmnb implied_vol(errors='nan')", "pmnb LBR kernel only", "py_vollib_vectorized IV",
          "scipy brentq loop"]
    table("IMPLIED VOL (prices from the numpy reference on the same inputs)", out["iv_timings"], im,
          "x_vs_pmnb", "x = method time / pmnb implied_vol")

    ie = out["iv_exact"]
    print()
    print(f"IMPLIED VOL ACCURACY: {ie['n']:,} fresh options, 40-digit mpmath prices; "
          f"{ie['n_tradable']:,} tradable (OTM twin >= 1e-4*spot)")
    print(f"  {'method':<28}{'rows':>7}{'ns/opt':>10}{'max|err| trad.':>16}{'median':>10}"
          f"{'NaN trad.':>11}{'NaN all':>9}{'0.0 ret':>9}{'wrong>1e-3 non-trad.':>22}")
    for name, d in ie["methods"].items():
        print(f"  {name:<28}{d['rows']:>7,}{_fmt_ns(d['ns_per_option']):>10}{d['max_abs_err_tradable']:>16.2e}"
              f"{d['median_abs_err_tradable']:>10.1e}{d['nan_tradable']:>11}{d['nan_all']:>9}"
              f"{d['zero_returned']:>9}{d['wrong_finite_nontradable_gt_1e-3']:>22}")

    print()
    print("ACCURACY SPOT-CHECK (max rel diff where |ref| >= 1e-10 max|ref|; max abs in brackets)")
    print(f"  {'comparison':<44}" + "".join(f"{g:>18}" for g in GREEK_NAMES))
    for key, d in out["accuracy"].items():
        cells = "".join(f"{d[g]['max_rel']:>9.1e} [{d[g]['max_abs']:.0e}]".rjust(18) for g in GREEK_NAMES)
        print(f"  {key:<44}{cells}")
    bad = [k for k, d in out["accuracy"].items() if k.startswith("pmnb_vs_numpy")
           and any(d[g]["max_rel"] > 1e-9 or d[g]["n_nonfinite"] for g in GREEK_NAMES)]
    print("  pmnb vs numpy: " + ("MISMATCH in " + ", ".join(bad) if bad else "OK (all max rel <= 1e-9, all finite)"))

    print()
    print("TARGETS (shown, not asserted)")
    print(f"  {'target':<52}" + "".join(f"{'N=' + format(n, ','):>{colw}}" for n in sizes))
    for t in out["targets"]:
        cells = []
        for n in sizes:
            v = t["values"][n] if n in t["values"] else t["values"].get(str(n), float("nan"))
            ok = t["pass"][str(n)]
            if t["target"].startswith("(info)"):
                cells.append(f"{v:.2f}x" if math.isfinite(v) else "-")
                continue
            isx = t["target"].startswith(">=")
            val = (f"{v:,.1f}x" if v < 100 else f"{v:,.0f}x") if isx else _fmt_ns(v)
            cells.append(f"{val} {'PASS' if ok else ('MISS' if ok is not None else '-')}")
        print(f"  {t['target']:<52}" + "".join(f"{c:>{colw}}" for c in cells))
    print()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    bootstrap(argv, args)
    # inside the bench venv from here on
    started = _dt.datetime.now(_dt.timezone.utc)
    out: dict = {"timestamp_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "argv": argv,
                 "machine": machine_info(), "software": software_info(), "threads_info": thread_info()}
    t0 = time.perf_counter()
    out.update(run_benchmark(args))
    # threadpoolctl only sees libraries already loaded: record it after the run (numpy, scipy, pmnb's libgomp)
    out["threads_info"]["threadpoolctl"] = thread_info()["threadpoolctl"]
    out["threads_info"]["threadpoolctl_note"] = ("recorded after the run with default limits; the limits "
                                                 "in force per thread setting are in threadpool_per_setting")
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)
    out["ratios_vs_pmnb_plain"] = build_ratios(out)
    out["targets"] = build_targets(out)
    out["target_definitions"] = TARGETS
    print_report(out)
    path = args.output or RESULTS / f"greeks-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    for t in out["targets"]:
        t["values"] = {str(k): v for k, v in t["values"].items()}
    path.write_text(json.dumps(out, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
