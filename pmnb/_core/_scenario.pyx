# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled scenario revaluation (private). Validation, the scenario grid and documentation live
in :mod:`pmnb.scenarios`; this module only hands contiguous float64 buffers to the C kernel
(``scenario.c``) with the GIL released, splitting the positions across OpenMP threads in blocks of
``BLOCK`` rows when asked to (the block layout does not depend on the thread count, so results are
bit-identical for any ``n_threads``)."""

from cython.parallel cimport prange

cdef extern from "scenario.h" nogil:
    long PMNB_SCN_BLOCK
    void pmnb_scenario_grid(long n, long n_scen, int model, int inverse, const double *x,
                            const double *K, const double *T, const double *sigma,
                            const double *r, const double *q, const double *w,
                            const double *qty, const double *spot_shock,
                            const double *vol_shock, const double *time_shift,
                            const double *sigma_matrix, double *out)

BLOCK = PMNB_SCN_BLOCK


def grid(int model, int inverse,
         const double[::1] x, const double[::1] K, const double[::1] T, const double[::1] sigma,
         const double[::1] r, const double[::1] q, const double[::1] w, const double[::1] qty,
         const double[::1] spot_shock, object vol_shock, const double[::1] time_shift,
         object sigma_matrix, double[:, ::1] out, int n_threads):
    """P&L grid ``out[i, j] = qty[i] (V'_ij - V0_i)``; inputs must be validated by the caller.

    ``vol_shock``: float64 array of ``n_scen`` values, or None when ``sigma_matrix`` (float64,
    C-contiguous, ``n x n_scen``) gives every scenario's vol."""
    cdef long n = x.shape[0], ns = spot_shock.shape[0]
    cdef const double[::1] vs
    cdef const double[:, ::1] sm
    cdef const double *pvs = NULL
    cdef const double *psm = NULL
    cdef long nblocks, c
    if (K.shape[0] != n or T.shape[0] != n or sigma.shape[0] != n or r.shape[0] != n
            or q.shape[0] != n or w.shape[0] != n or qty.shape[0] != n):
        raise ValueError("position arrays differ in length")
    if time_shift.shape[0] != ns or out.shape[0] != n or out.shape[1] != ns:
        raise ValueError("scenario arrays or output have the wrong shape")
    if sigma_matrix is not None:
        sm = sigma_matrix
        if sm.shape[0] != n or sm.shape[1] != ns:
            raise ValueError("sigma_matrix has the wrong shape")
        if n and ns:
            psm = &sm[0, 0]
    elif vol_shock is not None:
        vs = vol_shock
        if vs.shape[0] != ns:
            raise ValueError("vol_shock has the wrong length")
        if ns:
            pvs = &vs[0]
    else:
        raise ValueError("vol_shock or sigma_matrix is required")
    if n == 0 or ns == 0:
        return
    nblocks = (n + PMNB_SCN_BLOCK - 1) // PMNB_SCN_BLOCK
    if n_threads <= 1 or nblocks == 1:
        with nogil:
            pmnb_scenario_grid(n, ns, model, inverse, &x[0], &K[0], &T[0], &sigma[0], &r[0],
                               &q[0], &w[0], &qty[0], &spot_shock[0], pvs, &time_shift[0], psm,
                               &out[0, 0])
        return
    for c in prange(nblocks, nogil=True, num_threads=n_threads, schedule="dynamic"):
        _block(c, n, ns, model, inverse, &x[0], &K[0], &T[0], &sigma[0], &r[0], &q[0], &w[0],
               &qty[0], &spot_shock[0], pvs, &time_shift[0], psm, &out[0, 0])


cdef void _block(long c, long n, long ns, int model, int inverse, const double *x,
                 const double *K, const double *T, const double *sigma, const double *r,
                 const double *q, const double *w, const double *qty, const double *spot_shock,
                 const double *vol_shock, const double *time_shift, const double *sigma_matrix,
                 double *out) noexcept nogil:
    cdef long lo = c * PMNB_SCN_BLOCK
    cdef long m = n - lo if n - lo < PMNB_SCN_BLOCK else PMNB_SCN_BLOCK
    pmnb_scenario_grid(m, ns, model, inverse, x + lo, K + lo, T + lo, sigma + lo, r + lo, q + lo,
                       w + lo, qty + lo, spot_shock, vol_shock, time_shift,
                       sigma_matrix + lo * ns if sigma_matrix != NULL else NULL, out + lo * ns)
