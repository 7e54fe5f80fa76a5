"""Standalone tests of pmnb/_core/lbr.c (Jaeckel's "Let's Be Rational" implied Black volatility).

The C file is compiled on its own into a temporary shared library (``gcc -O3 -shared -fPIC ... -lm``,
no fast-math) and driven through ctypes, so these tests do not depend on the package build.
Reference prices are computed with mpmath at 40 significant digits.
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

mp = pytest.importorskip("mpmath")

ROOT = Path(__file__).resolve().parents[2]
LBR_C = ROOT / "pmnb" / "_core" / "lbr.c"
CC = os.environ.get("CC", "gcc")

EPS = 2.0**-52
SEED = 20150101
N_OPTIONS = 2000


# --------------------------------------------------------------------------------------------
# build + load
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which(CC) is None:
        # building pmnb needs a C compiler, so its absence is a broken environment, not a skip
        pytest.fail(f"C compiler {CC!r} not available (pmnb's build needs it)")
    out = tmp_path_factory.mktemp("lbr") / "liblbr_test.so"
    cmd = [CC, "-std=c99", "-O3", "-shared", "-fPIC", "-Wall", "-Wextra",
           f"-I{LBR_C.parent}", str(LBR_C), "-o", str(out), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, f"compilation failed:\n{' '.join(cmd)}\n{res.stderr}"
    L = ctypes.CDLL(str(out))

    d = ctypes.c_double
    L.pmnb_lbr_implied_vol.restype = d
    L.pmnb_lbr_implied_vol.argtypes = [d, d, d, d, d, ctypes.POINTER(ctypes.c_int)]
    L.pmnb_lbr_black.restype = d
    L.pmnb_lbr_black.argtypes = [d, d, d, d, d]
    dp = np.ctypeslib.ndpointer(dtype=np.float64, ndim=1, flags="C_CONTIGUOUS")
    ip = np.ctypeslib.ndpointer(dtype=np.intc, ndim=1, flags="C_CONTIGUOUS")
    L.pmnb_lbr_implied_vol_array.restype = None
    L.pmnb_lbr_implied_vol_array.argtypes = [ctypes.c_long, dp, dp, dp, dp, dp, dp, ip]
    return L


def iv_scalar(L, price, F, K, T, w):
    code = ctypes.c_int(-1)
    v = L.pmnb_lbr_implied_vol(price, F, K, T, w, ctypes.byref(code))
    return v, code.value


def iv_array(L, price, F, K, T, w):
    arrs = [np.ascontiguousarray(a, dtype=np.float64) for a in (price, F, K, T, w)]
    n = len(arrs[0])
    sig = np.full(n, -1.0)
    code = np.full(n, -1, dtype=np.intc)
    L.pmnb_lbr_implied_vol_array(n, *arrs, sig, code)
    return sig, code


# --------------------------------------------------------------------------------------------
# reference data (mpmath, 40 digits)
# --------------------------------------------------------------------------------------------


def mp_black_otm_and_price(F, K, sigma, T, w):
    """Exact (40-digit) undiscounted Black price and the value of its out-of-the-money twin."""
    with mp.workdps(40):
        F_, K_ = mp.mpf(F), mp.mpf(K)
        sd = mp.mpf(sigma) * mp.sqrt(mp.mpf(T))
        d1 = mp.log(F_ / K_) / sd + sd / 2
        d2 = d1 - sd
        q = -1 if F > K else 1  # OTM twin: put if F > K, call otherwise
        otm = q * (F_ * mp.ncdf(q * d1) - K_ * mp.ncdf(q * d2))
        intrinsic = max(w * (F_ - K_), mp.mpf(0))
        return otm, intrinsic + otm  # twin has zero intrinsic; ITM = intrinsic + OTM (parity)


@pytest.fixture(scope="module")
def sample():
    """2000 random options: K/F in [0.3, 3], vol 5%..300%, T 1h..5y (log-uniform), F 1e-2..1e5."""
    rng = np.random.default_rng(SEED)
    n = N_OPTIONS
    F = 10.0 ** rng.uniform(-2.0, 5.0, n)
    K = F * np.exp(rng.uniform(math.log(0.3), math.log(3.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    T = np.exp(rng.uniform(math.log(1.0 / 8760.0), math.log(5.0), n))
    w = rng.choice([-1.0, 1.0], n)
    otm = np.empty(n, dtype=object)
    P = np.empty(n, dtype=object)
    for i in range(n):
        otm[i], P[i] = mp_black_otm_and_price(float(F[i]), float(K[i]), float(sigma[i]), float(T[i]), float(w[i]))
    price = np.array([float(p) for p in P])  # correctly rounded to double
    return dict(F=F, K=K, sigma=sigma, T=T, w=w, otm=otm, P=P, price=price)


# --------------------------------------------------------------------------------------------
# implied volatility
# --------------------------------------------------------------------------------------------


def test_iv_matches_mpmath(lib, sample):
    s = sample
    sig, code = iv_array(lib, s["price"], s["F"], s["K"], s["T"], s["w"])
    meaningful = np.array([o >= mp.mpf(1e-4) * f for o, f in zip(s["otm"], s["F"])])
    assert meaningful.sum() >= 500, "sample has too few options with meaningful time value"

    assert np.all(code[meaningful] == 0), np.unique(code[meaningful], return_counts=True)
    err = np.abs(sig[meaningful] - s["sigma"][meaningful])
    assert np.all(np.isfinite(err))
    assert err.max() <= 1e-12, (
        f"max abs vol error {err.max():.3e} (median {np.median(err):.3e}) "
        f"at index {np.flatnonzero(meaningful)[err.argmax()]}"
    )

    # Options without meaningful time value: never a failure; code 0 with a positive finite vol,
    # or code 3 (price rounded onto intrinsic) with vol 0.
    rest = ~meaningful
    assert set(np.unique(code[rest])) <= {0, 3}
    assert np.all(np.isfinite(sig[rest]) & (sig[rest] >= 0.0))
    assert np.all(sig[rest][code[rest] == 3] == 0.0)
    assert np.all(sig[rest][code[rest] == 0] > 0.0)

    # The scalar entry point gives bit-identical results.
    for i in range(0, N_OPTIONS, 7):
        v, c = iv_scalar(lib, s["price"][i], s["F"][i], s["K"][i], s["T"][i], s["w"][i])
        assert c == code[i]
        assert v == sig[i] or (math.isnan(v) and math.isnan(sig[i]))


def test_iv_put_call_parity_consistent(lib, sample):
    """Call and put on the same (F, K) priced at the same vol invert to the same vol (OTM-twin mapping)."""
    s = sample
    for i in range(0, N_OPTIONS, 5):
        if s["otm"][i] < mp.mpf(1e-4) * s["F"][i]:
            continue
        F, K, T, sigma = s["F"][i], s["K"][i], s["T"][i], s["sigma"][i]
        _, P_call = mp_black_otm_and_price(F, K, sigma, T, 1.0)
        _, P_put = mp_black_otm_and_price(F, K, sigma, T, -1.0)
        vc, cc = iv_scalar(lib, float(P_call), F, K, T, 1.0)
        vp, cp = iv_scalar(lib, float(P_put), F, K, T, -1.0)
        assert cc == 0 and cp == 0
        assert abs(vc - sigma) <= 1e-12 and abs(vp - sigma) <= 1e-12


def test_iv_invalid_and_degenerate_prices(lib):
    cases = []  # (price, F, K, T, w, expected_code)
    for F, K, T in [(100.0, 80.0, 0.5), (100.0, 125.0, 0.01), (0.37, 0.3701, 2.0), (65000.0, 20000.0, 1 / 8760)]:
        for w in (1.0, -1.0):
            intrinsic = max(w * (F - K), 0.0)
            mx = F if w > 0 else K
            # below intrinsic -> 1
            cases.append((intrinsic - 1e-6 * F, F, K, T, w, 1))
            cases.append((-1e-300, F, K, T, w, 1))
            if intrinsic > 0:
                cases.append((np.nextafter(intrinsic, 0.0), F, K, T, w, 1))
                cases.append((0.5 * intrinsic, F, K, T, w, 1))
            # at / above maximum -> 2
            cases.append((mx, F, K, T, w, 2))
            cases.append((np.nextafter(mx, np.inf), F, K, T, w, 2))
            cases.append((2.0 * mx, F, K, T, w, 2))
            # exactly intrinsic -> 3 with sigma 0
            cases.append((intrinsic, F, K, T, w, 3))
    price, F, K, T, w, expected = (np.array(c, dtype=float) for c in zip(*cases))
    sig, code = iv_array(lib, price, F, K, T, w)
    for i, exp_code in enumerate(expected.astype(int)):
        assert code[i] == exp_code, (cases[i], code[i], sig[i])
        if exp_code in (1, 2):
            assert math.isnan(sig[i]), (cases[i], sig[i])
        else:
            assert sig[i] == 0.0, (cases[i], sig[i])
        v, c = iv_scalar(lib, *cases[i][:5])
        assert c == exp_code and (math.isnan(v) if exp_code in (1, 2) else v == 0.0)


def test_iv_roundtrip_wide_domain(lib):
    """Round trip through pmnb_lbr_black on a wider domain (all four LBR branches): no failures,
    and vol recovered to within the conditioning of the (double) price."""
    rng = np.random.default_rng(SEED + 1)
    n = 20000
    F = 10.0 ** rng.uniform(-3.0, 6.0, n)
    K = F * np.exp(rng.uniform(-3.0, 3.0, n))
    sigma = np.exp(rng.uniform(math.log(0.01), math.log(5.0), n))
    T = np.exp(rng.uniform(math.log(1e-4), math.log(10.0), n))
    w = rng.choice([-1.0, 1.0], n)
    price = np.array([lib.pmnb_lbr_black(*args) for args in zip(F, K, sigma, T, w)])
    sig, code = iv_array(lib, price, F, K, T, w)
    assert not np.any(code == 4)
    assert set(np.unique(code)) <= {0, 2, 3}
    intrinsic = np.maximum(w * (F - K), 0.0)
    otm = price - intrinsic
    good = (otm >= 1e-6 * np.minimum(F, K)) & (sigma * np.sqrt(T) <= 3.0)
    assert good.sum() > n // 8
    assert np.all(code[good] == 0)
    rel = np.abs(sig[good] - sigma[good]) / sigma[good]
    assert rel.max() <= 1e-10, rel.max()


def test_iv_array_thread_safe(lib, sample):
    """ctypes releases the GIL: run the array kernel concurrently and compare with a serial run."""
    s = sample
    args = [np.tile(s[k], 20) for k in ("price", "F", "K", "T", "w")]
    ref_sig, ref_code = iv_array(lib, *args)
    results = [None] * 4

    def work(j):
        results[j] = iv_array(lib, *args)

    threads = [threading.Thread(target=work, args=(j,)) for j in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sig, code in results:
        np.testing.assert_array_equal(code, ref_code)
        np.testing.assert_array_equal(sig, ref_sig)


# --------------------------------------------------------------------------------------------
# Black price
# --------------------------------------------------------------------------------------------


def test_black_matches_mpmath(lib, sample):
    """Relative error of pmnb_lbr_black against the 40-digit price, wherever price >= 1e-300.

    Tolerance: 1e-13, widened only in the far wings by the conditioning of the Black function
    with respect to its double inputs.  With h = ln(F/K)/(sigma*sqrt(T)), the relative price
    sensitivity to a relative perturbation of sigma*sqrt(T) (or of h) is ~h^2, so rounding the
    inputs alone (sigma*sqrt(T), h = x/s, h^2) costs O(eps*h^2) in any double-precision
    evaluation; far-wing prices near 1e-300 have h^2 ~ 1400, i.e. ~3e-13.  The bound
    1e-13 + 8*eps*h^2 is < 1.2e-13 for |h| <= 3.
    """
    s = sample
    n_checked = 0
    worst = (0.0, None)
    for i in range(N_OPTIONS):
        P = s["P"][i]
        if P < mp.mpf("1e-300"):
            continue
        F, K, sigma, T, w = (float(s[k][i]) for k in ("F", "K", "sigma", "T", "w"))
        b = lib.pmnb_lbr_black(F, K, sigma, T, w)
        rel = float(abs(mp.mpf(b) - P) / P)
        h = math.log(F / K) / (sigma * math.sqrt(T))
        tol = 1e-13 + 8.0 * EPS * h * h
        assert rel <= tol, f"i={i} F={F!r} K={K!r} sigma={sigma!r} T={T!r} w={w} rel={rel:.3e} tol={tol:.3e}"
        if abs(h) <= 3.0:
            assert rel <= 1e-13
        n_checked += 1
        if rel > worst[0]:
            worst = (rel, i)
    assert n_checked >= N_OPTIONS // 2


def test_black_parity_and_limits(lib):
    F, K, T = 100.0, 120.0, 0.75
    for sigma in (0.05, 0.3, 1.5):
        c = lib.pmnb_lbr_black(F, K, sigma, T, 1.0)
        p = lib.pmnb_lbr_black(F, K, sigma, T, -1.0)
        assert abs((c - p) - (F - K)) <= 1e-13 * K
    # zero vol -> intrinsic; huge vol -> maximum
    assert lib.pmnb_lbr_black(F, 80.0, 0.0, T, 1.0) == 20.0
    assert lib.pmnb_lbr_black(F, 120.0, 0.0, T, 1.0) == 0.0
    assert abs(lib.pmnb_lbr_black(F, K, 60.0, T, 1.0) - F) <= 1e-12 * F
