# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled pricing kernels (private). Validation, broadcasting and documentation live in
:mod:`pmnb.pricing`; this module only moves contiguous float64 buffers into the C loops with the GIL
released, splitting the rows across OpenMP threads when asked to."""

from cython.parallel cimport prange

cdef extern from "kernel.h" nogil:
    int PMNB_NOUT
    void pmnb_greeks(long n, int model, int inverse, int level, const double *x, const double *K,
                     const double *T, const double *sigma, const double *r, const double *q,
                     const double *w, double **out)
    void pmnb_greeks_limit(long n, int model, int inverse, int level, const double *x,
                           const double *K, const double *T, const double *sigma, const double *r,
                           const double *q, const double *w, double **out)
    long pmnb_greeks_checked(long n, int model, int inverse, int level, const double *x,
                             const double *K, const double *T, const double *sigma,
                             const double *r, const double *q, const double *w, double **out)
    int pmnb_check_inputs(long n, const double *x, const double *K, const double *T,
                          const double *sigma, const double *r, const double *q, const double *w,
                          long *n_limit)
    const char *pmnb_isa()
    const char *pmnb_build_flags()

cdef extern from "ivfast.h" nogil:
    void pmnb_iv_fast_array(long n, const double *price, const double *F, const double *K,
                            const double *T, const double *w, double *out_sigma, int *out_code)

NOUT = 14


def isa():
    """Name of the kernel clone the run-time dispatcher selects on this CPU."""
    return pmnb_isa().decode()


def build_flags():
    """Compiler flags of the fast-math kernel (recorded by the benchmark)."""
    return pmnb_build_flags().decode()


def check_inputs(const double[::1] x, const double[::1] K, const double[::1] T,
                 const double[::1] sigma, const double[::1] r, const double[::1] q,
                 const double[::1] w):
    """Return (bad-field bit mask, number of rows for the exact limit path)."""
    cdef long n = x.shape[0], n_limit = 0
    cdef int mask
    if n == 0:
        return 0, 0
    with nogil:
        mask = pmnb_check_inputs(n, &x[0], &K[0], &T[0], &sigma[0], &r[0], &q[0], &w[0], &n_limit)
    return mask, n_limit


cdef int _fill_out(tuple outs, int level, long n, double **ptrs, long offset) except -1:
    cdef int j
    cdef int nout = 1 if level == 0 else (6 if level == 1 else 14)
    cdef double[::1] buf
    for j in range(14):
        ptrs[j] = NULL
    for j in range(nout):
        buf = outs[j]
        if buf.shape[0] != n:
            raise ValueError("output buffer has the wrong length")
        ptrs[j] = &buf[0] + offset
    return 0


def greeks(int model, int inverse, int level,
           const double[::1] x, const double[::1] K, const double[::1] T, const double[::1] sigma,
           const double[::1] r, const double[::1] q, const double[::1] w, tuple outs, int n_threads):
    """Fast path: every row must be validated and have sigma*sqrt(T) >= PMNB_SST_MIN."""
    cdef long n = x.shape[0]
    cdef double *ptrs[14]
    cdef double *chunk_ptrs[14]
    cdef long c, nchunks, lo, hi, j
    if n == 0:
        return
    _fill_out(outs, level, n, ptrs, 0)
    if n_threads <= 1:
        with nogil:
            pmnb_greeks(n, model, inverse, level, &x[0], &K[0], &T[0], &sigma[0], &r[0], &q[0],
                        &w[0], ptrs)
        return
    nchunks = n_threads
    for c in prange(nchunks, nogil=True, num_threads=n_threads, schedule="static"):
        _run_chunk(c, nchunks, n, model, inverse, level, &x[0], &K[0], &T[0], &sigma[0], &r[0],
                   &q[0], &w[0], ptrs)


cdef void _run_chunk(long c, long nchunks, long n, int model, int inverse, int level,
                     const double *x, const double *K, const double *T, const double *sigma,
                     const double *r, const double *q, const double *w, double **ptrs) noexcept nogil:
    cdef long lo = (n * c) // nchunks
    cdef long hi = (n * (c + 1)) // nchunks
    cdef double *cp[14]
    cdef int j
    for j in range(14):
        cp[j] = ptrs[j] + lo if ptrs[j] != NULL else NULL
    pmnb_greeks(hi - lo, model, inverse, level, x + lo, K + lo, T + lo, sigma + lo, r + lo, q + lo,
                w + lo, cp)


def greeks_checked(int model, int inverse, int level,
                   const double[::1] x, const double[::1] K, const double[::1] T,
                   const double[::1] sigma, const double[::1] r, const double[::1] q,
                   const double[::1] w, tuple outs, int n_threads):
    """Validate and price in cache-sized blocks. Returns True when every row was valid and off
    the limit path (all outputs written); False means: run the full check and the slow path."""
    cdef long n = x.shape[0]
    cdef double *ptrs[14]
    cdef long c, nchunks, done = 0
    cdef int nbad = 0
    if n == 0:
        return True
    _fill_out(outs, level, n, ptrs, 0)
    if n_threads <= 1:
        with nogil:
            done = pmnb_greeks_checked(n, model, inverse, level, &x[0], &K[0], &T[0], &sigma[0],
                                       &r[0], &q[0], &w[0], ptrs)
        return done == n
    nchunks = n_threads
    for c in prange(nchunks, nogil=True, num_threads=n_threads, schedule="static"):
        nbad += 1 - _checked_chunk(c, nchunks, n, model, inverse, level, &x[0], &K[0], &T[0],
                                   &sigma[0], &r[0], &q[0], &w[0], ptrs)
    return nbad == 0


cdef int _checked_chunk(long c, long nchunks, long n, int model, int inverse, int level,
                         const double *x, const double *K, const double *T, const double *sigma,
                         const double *r, const double *q, const double *w,
                         double **ptrs) noexcept nogil:
    cdef long lo = (n * c) // nchunks
    cdef long hi = (n * (c + 1)) // nchunks
    cdef double *cp[14]
    cdef int j
    for j in range(14):
        cp[j] = ptrs[j] + lo if ptrs[j] != NULL else NULL
    return pmnb_greeks_checked(hi - lo, model, inverse, level, x + lo, K + lo, T + lo, sigma + lo,
                               r + lo, q + lo, w + lo, cp) == hi - lo


def greeks_limit(int model, int inverse, int level,
                 const double[::1] x, const double[::1] K, const double[::1] T,
                 const double[::1] sigma, const double[::1] r, const double[::1] q,
                 const double[::1] w, tuple outs):
    """Exact sigma*sqrt(T) -> 0 limits (T = 0 or sigma = 0 rows)."""
    cdef long n = x.shape[0]
    cdef double *ptrs[14]
    if n == 0:
        return
    _fill_out(outs, level, n, ptrs, 0)
    with nogil:
        pmnb_greeks_limit(n, model, inverse, level, &x[0], &K[0], &T[0], &sigma[0], &r[0], &q[0],
                          &w[0], ptrs)


def implied_vol(const double[::1] price, const double[::1] F, const double[::1] K,
                const double[::1] T, const double[::1] w, double[::1] out, int[::1] code,
                int n_threads):
    """Implied vols of undiscounted Black-76 prices (SIMD Householder fast path certified per
    row, Let's Be Rational where it cannot certify); writes vols and reason codes."""
    cdef long n = price.shape[0]
    cdef long c, nchunks
    if n == 0:
        return
    if n_threads <= 1:
        with nogil:
            pmnb_iv_fast_array(n, &price[0], &F[0], &K[0], &T[0], &w[0], &out[0], &code[0])
        return
    nchunks = n_threads
    for c in prange(nchunks, nogil=True, num_threads=n_threads, schedule="static"):
        _iv_chunk(c, nchunks, n, &price[0], &F[0], &K[0], &T[0], &w[0], &out[0], &code[0])


cdef void _iv_chunk(long c, long nchunks, long n, const double *price, const double *F,
                    const double *K, const double *T, const double *w, double *out,
                    int *code) noexcept nogil:
    cdef long lo = (n * c) // nchunks
    cdef long hi = (n * (c + 1)) // nchunks
    pmnb_iv_fast_array(hi - lo, price + lo, F + lo, K + lo, T + lo, w + lo, out + lo,
                               code + lo)
