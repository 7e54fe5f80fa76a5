"""Tests of the vectorised implied volatility (pmnb/_core/ivfast.c, pmnb_iv_fast_array).

The package-level tests go through ``pmnb._core._kernels.implied_vol`` (what ``pmnb.implied_vol``
calls), whatever the build. The remaining tests compile ivfast.c (fast-math, as in setup.py) and
lbr.c (without fast-math) into a temporary shared library and drive them through ctypes: agreement
with the exact scalar Let's Be Rational, no floating-point exceptions inside the vector loop, the
fast path actually being taken, and the libmvec vector calls being emitted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

mp = pytest.importorskip("mpmath")

from pmnb._core import _kernels  # noqa: E402

from .. import mp_reference as mpr  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "pmnb" / "_core"
CC = os.environ.get("CC", "gcc")


def _simd_platform() -> bool:
    """The platform pmnb's SIMD paths are built for: x86-64 Linux, glibc >= 2.35 (libmvec's
    vector erfc), an AVX2 CPU (the x86-64-v3 clone). There the vector paths must be used."""
    if not (platform.system() == "Linux" and platform.machine() == "x86_64"):
        return False
    libc, version = platform.libc_ver()
    if libc != "glibc" or tuple(int(x) for x in version.split(".")[:2]) < (2, 35):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


SIMD_PLATFORM = _simd_platform()
SEED = 20260601
N_MP = 2500


def kernel_iv(price, F, K, T, w, n_threads=1):
    arrs = [np.ascontiguousarray(a, dtype=np.float64) for a in (price, F, K, T, w)]
    n = len(arrs[0])
    out = np.full(n, -7.0)
    code = np.full(n, -7, dtype=np.intc)
    _kernels.implied_vol(*arrs, out, code, n_threads)
    return out, code


def random_options(rng, n):
    """vol 5%..300%, T 1 hour..5 years, K/F 0.3..3 (all log-uniform), F 1e-2..1e5, calls and puts."""
    F = 10.0 ** rng.uniform(-2.0, 5.0, n)
    K = F * np.exp(rng.uniform(math.log(0.3), math.log(3.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    T = np.exp(rng.uniform(math.log(1.0 / 8760.0), math.log(5.0), n))
    w = rng.choice([-1.0, 1.0], n)
    return F, K, sigma, T, w


# --------------------------------------------------------------------------------------------
# against 50-digit mpmath prices, through the package's kernel entry point
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mp_sample():
    rng = np.random.default_rng(SEED)
    F, K, sigma, T, w = random_options(rng, N_MP)
    price = np.empty(N_MP)
    meaningful = np.empty(N_MP, dtype=bool)
    for i in range(N_MP):
        args = (float(F[i]), float(K[i]), float(T[i]), float(sigma[i]), 0.0, 0.0)
        price[i] = float(mpr.usd_value(*args, float(w[i]), "black76"))
        w_otm = 1.0 if K[i] >= F[i] else -1.0  # OTM twin: call if K >= F, put otherwise
        meaningful[i] = mpr.usd_value(*args, w_otm, "black76") >= mp.mpf(1e-4) * mp.mpf(float(F[i]))
    return dict(F=F, K=K, sigma=sigma, T=T, w=w, price=price, meaningful=meaningful)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_matches_mpmath(mp_sample, n_threads):
    s = mp_sample
    vol, code = kernel_iv(s["price"], s["F"], s["K"], s["T"], s["w"], n_threads)
    good = s["meaningful"]
    assert good.sum() >= 600, "sample has too few options with meaningful time value"
    assert np.all(code[good] == 0), np.unique(code[good], return_counts=True)
    err = np.abs(vol[good] - s["sigma"][good])
    assert np.all(np.isfinite(err))
    worst = np.flatnonzero(good)[err.argmax()]
    assert err.max() <= 1e-12, (
        f"max abs vol error {err.max():.3e} (median {np.median(err):.3e}) at row {worst}: "
        f"F={s['F'][worst]!r} K={s['K'][worst]!r} T={s['T'][worst]!r} w={s['w'][worst]} "
        f"sigma={s['sigma'][worst]!r}")
    assert np.median(err) <= 1e-15
    # no meaningful time value: never a failure; a positive finite vol, or 0.0 with code 3
    rest = ~good
    assert set(np.unique(code[rest]).tolist()) <= {0, 3}
    assert np.all(vol[rest][code[rest] == 3] == 0.0)
    assert np.all(np.isfinite(vol[rest]) & (vol[rest][code[rest] == 0] > 0.0).all())


def test_put_call_parity_consistent(mp_sample):
    """A call and a put priced at the same vol give the same implied vol (OTM-twin mapping)."""
    s = mp_sample
    idx = np.flatnonzero(s["meaningful"])[:300]
    F, K, T, sigma = s["F"][idx], s["K"][idx], s["T"][idx], s["sigma"][idx]
    pc = np.array([float(mpr.usd_value(f, k, t, v, 0, 0, 1, "black76")) for f, k, t, v in zip(F, K, T, sigma)])
    pp = np.array([float(mpr.usd_value(f, k, t, v, 0, 0, -1, "black76")) for f, k, t, v in zip(F, K, T, sigma)])
    vc, cc = kernel_iv(pc, F, K, T, np.ones_like(F))
    vp, cp = kernel_iv(pp, F, K, T, -np.ones_like(F))
    assert np.all(cc == 0) and np.all(cp == 0)
    assert np.abs(vc - sigma).max() <= 1e-12 and np.abs(vp - sigma).max() <= 1e-12


def _edge_cases():
    cases = []  # (price, F, K, T, w, expected_code)
    for F, K, T in [(100.0, 80.0, 0.5), (100.0, 125.0, 0.01), (0.37, 0.3701, 2.0), (65000.0, 20000.0, 1 / 8760),
                    (100.0, 100.0, 0.25)]:
        for w in (1.0, -1.0):
            intrinsic = max(w * (F - K), 0.0)
            mx = F if w > 0 else K
            cases.append((intrinsic - 1e-6 * F, F, K, T, w, 1))
            cases.append((-1e-300, F, K, T, w, 1))
            if intrinsic > 0:
                cases.append((np.nextafter(intrinsic, 0.0), F, K, T, w, 1))
                cases.append((0.5 * intrinsic, F, K, T, w, 1))
            cases.append((mx, F, K, T, w, 2))
            cases.append((np.nextafter(mx, np.inf), F, K, T, w, 2))
            cases.append((2.0 * mx, F, K, T, w, 2))
            cases.append((intrinsic, F, K, T, w, 3))
    return cases


def test_bounds_and_no_time_value():
    cases = _edge_cases()
    price, F, K, T, w, expected = (np.array(c, dtype=float) for c in zip(*cases))
    expected = expected.astype(int)
    # alone, and shuffled into ordinary rows (exercises the block / compress / scatter logic)
    rng = np.random.default_rng(SEED + 1)
    Fo, Ko, so, To, wo = random_options(rng, 1000)
    po = np.array([float(mpr.usd_value(f, k, t, v, 0, 0, ww, "black76")) for f, k, t, v, ww in
                   zip(Fo[:50], Ko[:50], To[:50], so[:50], wo[:50])])
    po = np.concatenate([po, np.maximum(wo[50:] * (Fo[50:] - Ko[50:]), 0.0) + 0.01 * np.minimum(Fo[50:], Ko[50:])])
    allp, allF, allK, allT, allw = (np.concatenate([a, b]) for a, b in
                                    zip((price, F, K, T, w), (po, Fo, Ko, To, wo)))
    perm = rng.permutation(len(allp))
    vol, code = kernel_iv(allp[perm], allF[perm], allK[perm], allT[perm], allw[perm])
    inv = np.argsort(perm)
    vol, code = vol[inv][: len(cases)], code[inv][: len(cases)]
    for i, exp_code in enumerate(expected):
        assert code[i] == exp_code, (cases[i], code[i], vol[i])
        if exp_code in (1, 2):
            assert math.isnan(vol[i]), (cases[i], vol[i])
        else:
            assert vol[i] == 0.0, (cases[i], vol[i])
    v1, c1 = kernel_iv(price, F, K, T, w)
    np.testing.assert_array_equal(c1, expected)
    np.testing.assert_array_equal(v1, vol)


def test_threads_bit_identical():
    """Splitting the rows over threads (different block and vector positions) gives identical bits."""
    rng = np.random.default_rng(SEED + 2)
    n = 200_003
    F, K, sigma, T, w = random_options(rng, n)
    d1 = (np.log(F / K) + 0.5 * sigma**2 * T) / (sigma * np.sqrt(T))
    d2 = d1 - sigma * np.sqrt(T)
    from scipy.special import ndtr
    price = w * (F * ndtr(w * d1) - K * ndtr(w * d2))
    price[::997] = np.maximum(w[::997] * (F[::997] - K[::997]), 0.0)  # some no-time-value rows
    price[5::1001] *= 3.0  # some above-maximum rows
    ref = kernel_iv(price, F, K, T, w, 1)
    assert (ref[1] == 0).mean() > 0.5
    for nt in (2, 3):
        vol, code = kernel_iv(price, F, K, T, w, nt)
        np.testing.assert_array_equal(code, ref[1])
        np.testing.assert_array_equal(vol, ref[0])
    # and sub-array calls at odd offsets
    lo, hi = 12_345, 150_001
    vol, code = kernel_iv(price[lo:hi], F[lo:hi], K[lo:hi], T[lo:hi], w[lo:hi])
    np.testing.assert_array_equal(vol, ref[0][lo:hi])
    np.testing.assert_array_equal(code, ref[1][lo:hi])


# --------------------------------------------------------------------------------------------
# standalone build (ctypes): agreement with exact LBR, FP exceptions, fast path taken
# --------------------------------------------------------------------------------------------


def _compile(tmp, debug):
    if shutil.which(CC) is None:
        # building pmnb needs a C compiler, so its absence is a broken environment, not a skip
        pytest.fail(f"C compiler {CC!r} not available (pmnb's build needs it)")
    objs = []
    for src, flags in ((CORE / "lbr.c", ["-O3", "-fPIC", "-fno-fast-math"]),
                       (CORE / "ivfast.c", ["-O3", "-ffast-math", "-fPIC", "-fno-semantic-interposition"]
                        + (["-DIVF_DEBUG"] if debug else []))):
        obj = tmp / (src.stem + ".o")
        cmd = [CC, "-std=gnu99", "-Wall", "-Wextra", f"-I{CORE}", *flags, "-c", str(src), "-o", str(obj)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        assert res.returncode == 0, f"compilation failed:\n{' '.join(cmd)}\n{res.stderr}"
        assert "warning" not in res.stderr, res.stderr
        objs.append(str(obj))
    lib = tmp / "libivfast_test.so"
    res = subprocess.run([CC, "-shared", *objs, "-o", str(lib), "-lm"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    L = ctypes.CDLL(str(lib))
    d = ctypes.c_double
    dp = np.ctypeslib.ndpointer(dtype=np.float64, ndim=1, flags="C_CONTIGUOUS")
    ip = np.ctypeslib.ndpointer(dtype=np.intc, ndim=1, flags="C_CONTIGUOUS")
    L.pmnb_iv_fast_vectorized.restype = ctypes.c_int
    L.pmnb_iv_fast_vectorized.argtypes = []
    L.pmnb_lbr_black.restype = d
    L.pmnb_lbr_black.argtypes = [d, d, d, d, d]
    L.pmnb_lbr_implied_vol_array.argtypes = [ctypes.c_long, dp, dp, dp, dp, dp, dp, ip]
    L.pmnb_iv_fast_array.argtypes = [ctypes.c_long, dp, dp, dp, dp, dp, dp, ip]
    L.pmnb_iv_fast_array_stats.argtypes = [ctypes.c_long, dp, dp, dp, dp, dp, dp, ip, ctypes.POINTER(ctypes.c_long)]
    if debug:
        L.pmnb_ivf_debug_solve.argtypes = [ctypes.c_long] + [ctypes.c_void_p] * 8
        L.pmnb_ivf_debug_prepass.argtypes = [ctypes.c_long] + [ctypes.c_void_p] * 8
    L.path = lib
    return L


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("ivfast"), debug=False)


@pytest.fixture(scope="module")
def dbglib(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("ivfast_dbg"), debug=True)


def _run(fn, price, F, K, T, w):
    arrs = [np.ascontiguousarray(a, dtype=np.float64) for a in (price, F, K, T, w)]
    n = len(arrs[0])
    vol = np.full(n, -7.0)
    code = np.full(n, -7, dtype=np.intc)
    fn(n, *arrs, vol, code)
    return vol, code


def test_agrees_with_exact_lbr(lib):
    """100k random options (test domain, plus bounds rows): same codes as lbr.c, and vols within
    1e-13 * max(1, sigma); the vector path must actually be taken for nearly all rows."""
    rng = np.random.default_rng(SEED + 3)
    n = 100_000
    F, K, sigma, T, w = random_options(rng, n)
    price = np.array([lib.pmnb_lbr_black(*a) for a in zip(F, K, sigma, T, w)])
    cases = _edge_cases()
    price, F, K, T, w = (np.concatenate([a, np.array(c, dtype=float)]) for a, c in
                         zip((price, F, K, T, w), list(zip(*cases))[:5]))
    v0, c0 = _run(lib.pmnb_lbr_implied_vol_array, price, F, K, T, w)
    v1, c1 = _run(lib.pmnb_iv_fast_array, price, F, K, T, w)
    np.testing.assert_array_equal(c1, c0)
    nan0, nan1 = np.isnan(v0), np.isnan(v1)
    np.testing.assert_array_equal(nan1, nan0)
    ok = ~nan0
    diff = np.abs(v1[ok] - v0[ok])
    tol = 1e-13 * np.maximum(1.0, v0[ok])
    assert np.all(diff <= tol), f"max |fast - lbr| = {diff.max():.3e} at sigma {v0[ok][diff.argmax()]!r}"
    # the vector path was used (not silently everything through the fallback)
    nfb = ctypes.c_long(-1)
    vol = np.empty(len(price))
    code = np.empty(len(price), dtype=np.intc)
    arrs = [np.ascontiguousarray(a) for a in (price, F, K, T, w)]
    lib.pmnb_iv_fast_array_stats(len(price), *arrs, vol, code, ctypes.byref(nfb))
    np.testing.assert_array_equal(vol, v1)
    if lib.pmnb_iv_fast_vectorized():
        assert 0 <= nfb.value <= 0.01 * len(price), nfb.value
    else:  # baseline CPU / non-gcc build: every row is delegated to LBR
        assert nfb.value == len(price)


def test_wide_domain_roundtrip_vs_lbr(lib):
    """Wider domain than the mpmath test (all four LBR branches, |ln F/K| <= 3, sigma*sqrt(T) up to ~16):
    same codes as lbr.c, and within the conditioning of the double price."""
    rng = np.random.default_rng(SEED + 4)
    n = 40_000
    F = 10.0 ** rng.uniform(-3.0, 6.0, n)
    K = F * np.exp(rng.uniform(-3.0, 3.0, n))
    sigma = np.exp(rng.uniform(math.log(0.01), math.log(5.0), n))
    T = np.exp(rng.uniform(math.log(1e-4), math.log(10.0), n))
    w = rng.choice([-1.0, 1.0], n)
    price = np.array([lib.pmnb_lbr_black(*a) for a in zip(F, K, sigma, T, w)])
    v0, c0 = _run(lib.pmnb_lbr_implied_vol_array, price, F, K, T, w)
    v1, c1 = _run(lib.pmnb_iv_fast_array, price, F, K, T, w)
    np.testing.assert_array_equal(c1, c0)
    assert not np.any(c1 == 4)
    otm = price - np.maximum(w * (F - K), 0.0)
    good = (otm >= 1e-6 * np.minimum(F, K)) & (sigma * np.sqrt(T) <= 3.0)
    assert good.sum() > n // 8
    assert np.all(c1[good] == 0)
    rel = np.abs(v1[good] - sigma[good]) / sigma[good]
    assert rel.max() <= 1e-10, rel.max()
    both = (c0 == 0) & (sigma * np.sqrt(T) <= 6.0)
    relb = np.abs(v1[both] - v0[both]) / v0[both]
    assert relb.max() <= 1e-11, relb.max()


def _aligned(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    buf = np.zeros(len(a) + 8)
    off = (-buf.ctypes.data % 64) // 8
    v = buf[off:off + len(a)]
    v[:] = a
    return v


@pytest.mark.skipif(platform.system() != "Linux", reason="fenv through glibc libm")
def test_vector_loop_raises_no_fp_exceptions(dbglib):
    """Adversarial inputs (x <= 0 down to -30, beta from 1e-300 up to b_max (1 - 1e-6)): no invalid,
    division-by-zero or overflow exception anywhere in the fast-math vector loops, i.e. no NaN or
    Inf ever arises inside them; uncertified rows are only ever flagged, never wrong."""
    libm = ctypes.CDLL(ctypes.util.find_library("m"))
    FE_INVALID, FE_DIVBYZERO, FE_OVERFLOW, FE_ALL = 0x01, 0x04, 0x08, 0x3F
    rng = np.random.default_rng(SEED + 5)
    m = 160_000
    x = -np.exp(rng.uniform(math.log(1e-300), math.log(30.0), m))
    x[:2000] = 0.0
    x[2000:3000] = -30.0
    # F = 1, K = e^{-x}; x recomputed as lbr.c's log-moneyness of that (F, K), so that the residual
    # check below through pmnb_lbr_black sees exactly the same x
    Kx = np.exp(-x)
    x = np.where(Kx <= 2.0, np.log1p((1.0 - Kx) / Kx), np.log(1.0 / Kx))
    x = np.minimum(x, 0.0)
    e = np.exp(0.5 * x)
    beta = np.where(rng.random(m) < 0.5, 10.0 ** rng.uniform(-300, 0, m) * e,
                    e * (1 - 10.0 ** rng.uniform(-6, 0, m)))
    beta = np.clip(beta, 1e-300, e * (1 - 1e-6))
    X, B, E = _aligned(x), _aligned(beta), _aligned(e)
    outs = [_aligned(np.zeros(m)) for _ in range(5)]
    libm.feclearexcept(FE_ALL)
    dbglib.pmnb_ivf_debug_solve(m, X.ctypes.data, B.ctypes.data, E.ctypes.data, *[o.ctypes.data for o in outs])
    flags = libm.fetestexcept(FE_ALL)
    assert not flags & (FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW), hex(flags)
    S, OK = outs[0], outs[1]
    assert np.all(np.isfinite(S)) and set(np.unique(OK).tolist()) <= {0.0, 1.0}
    assert OK.mean() > 0.5
    # certified rows reproduce beta through the exact lbr.c Black function (beta = price/sqrt(F K)),
    # within 1e-13 relative in s times d ln b/d ln s = s b'/b
    idx = np.flatnonzero(OK == 1.0)[::37]
    assert len(idx) > 1000
    for i in idx:
        xi, si, bi = float(x[i]), float(S[i]), float(beta[i])
        b = dbglib.pmnb_lbr_black(1.0, float(Kx[i]), si, 1.0, 1.0) / math.sqrt(float(Kx[i]))
        h, t = xi / si, 0.5 * si
        log_cond = math.log(si) - 0.5 * (h * h + t * t) - 0.5 * math.log(2 * math.pi) - math.log(bi)
        tol = 1e-13 * max(1.0, math.exp(min(log_cond, 700.0))) + 1e-14
        assert abs(b / bi - 1.0) <= tol, (xi, bi, si, b)
    # the pre-pass on arbitrary finite inputs
    n = 64_000
    P = 10.0 ** rng.uniform(-320, 308, n) * rng.choice([0.0, 1.0], n, p=[0.05, 0.95])
    F = 10.0 ** rng.uniform(-300, 300, n)
    K = 10.0 ** rng.uniform(-300, 300, n)
    W = rng.choice([-1.0, 1.0], n)
    ins = [_aligned(a) for a in (P, F, K, W)]
    pouts = [_aligned(np.zeros(n)) for _ in range(4)]
    libm.feclearexcept(FE_ALL)
    dbglib.pmnb_ivf_debug_prepass(n, *[a.ctypes.data for a in ins], *[o.ctypes.data for o in pouts])
    flags = libm.fetestexcept(FE_ALL)
    assert not flags & (FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW), hex(flags)


@pytest.mark.skipif(not SIMD_PLATFORM, reason="the vector path is built for x86-64 Linux with "
                    "glibc >= 2.35 on an AVX2 CPU; elsewhere pmnb_iv_fast_array delegates to LBR")
def test_fast_path_on_reference_distribution(lib):
    """Reference benchmark distribution: the vector path certifies (almost) every row."""
    assert lib.pmnb_iv_fast_vectorized(), "no vector path on a platform that should have one"
    rng = np.random.default_rng(SEED + 6)
    n = 50_000
    S = rng.uniform(20_000.0, 120_000.0, n)
    K = S * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    T = rng.integers(1, 731, n) / 365.0
    sigma = rng.uniform(0.20, 1.50, n)
    w = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    price = np.array([lib.pmnb_lbr_black(*a) for a in zip(S, K, sigma, T, w)])
    vol = np.empty(n)
    code = np.empty(n, dtype=np.intc)
    nfb = ctypes.c_long(-1)
    lib.pmnb_iv_fast_array_stats(n, price, S, K, T, w, vol, code, ctypes.byref(nfb))
    assert nfb.value <= 0.001 * n, nfb.value
    ok = code == 0
    assert ok.mean() > 0.99
    otm = price - np.maximum(w * (S - K), 0.0)
    good = ok & (otm >= 1e-4 * S)
    assert np.abs(vol[good] - sigma[good]).max() <= 1e-12


@pytest.mark.skipif(not SIMD_PLATFORM, reason="libmvec's vector ABI is x86-64 glibc >= 2.35 "
                    "specific (and the vector path needs an AVX2 CPU)")
def test_libmvec_vector_calls_emitted(lib):
    """The vector loops were vectorised: the library imports libmvec's SIMD exp/log/cbrt."""
    if shutil.which("nm") is None:
        pytest.fail("nm not available (binutils come with the C toolchain pmnb's build needs)")
    out = subprocess.run(["nm", "-D", str(lib.path)], capture_output=True, text=True).stdout
    assert "_ZGV" in out, "the compiler did not call libmvec on a platform that has it"
    for fn in ("exp", "log", "cbrt"):
        assert any(line.endswith(f"v_{fn}") or f"v_{fn}@" in line for line in out.splitlines()), fn
