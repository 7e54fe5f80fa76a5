# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled margin kernels (private). Validation, the instrument tables and documentation live in
:mod:`pmnb.margin.prepared` and the models; this module hands contiguous buffers to the C kernels
(``margin.c``) with the GIL released, splitting the instruments into blocks of ``BLOCK`` whose
partial sums are added in block order (results do not depend on ``n_threads``).

Instrument table ``inst`` (float64, ``(INST_ROWS, m)``, C-contiguous), one row per field:
``a = ln(F/K)``, ``kf = K/F``, ``w`` (+1 call, -1 put), ``df = exp(-r T)``, ``qty`` (P&L weight or
net size, coin), ``sst0 = sigma sqrt(T)`` (1.0 on limit rows), ``sig0`` (true sigma), ``F``, ``K``,
``T``."""

import numpy as np
from cython.parallel cimport prange

cdef extern from "margin.h" nogil:
    long PMNB_MRG_BLOCK
    void pmnb_pm_block(long m, long ld, long n_scen, double f, const double *move,
                       const int *vcol, const double *a, const double *kf, const double *w,
                       const double *df, const double *qty, const double *sst0,
                       const double *sig0, const unsigned char *lim0, const double *sst,
                       const double *sig, const unsigned char *lim, const double *F,
                       const double *K, const double *T, double r, double *v0, double *delta,
                       double *agg, double *mat)
    void pmnb_std_block(long m, long n_f, const double *fs, const double *a, const double *kf,
                        const double *w, const double *df, const double *net,
                        const double *sst0, const double *sig0, const unsigned char *lim0,
                        const double *F, const double *K, const double *T, double r,
                        double im_addon, double im_floor, double mm_addon, int long_mark,
                        double *out, double *v_out, double *im_out, double *mm_out)

BLOCK = PMNB_MRG_BLOCK
INST_ROWS = 10


cdef inline long _nblocks(long m) noexcept nogil:
    return (m + PMNB_MRG_BLOCK - 1) // PMNB_MRG_BLOCK


def pm(double f, const double[::1] move, const int[::1] vcol, const double[:, ::1] inst,
       const double[:, ::1] vols, const unsigned char[:, ::1] lim, double r,
       double[::1] v0, object delta, double[::1] agg, object mat, int n_threads):
    """Risk matrix at the common factor ``f``: ``v0`` (base coin values), ``delta`` (coin deltas,
    or None), ``agg[j] = sum_i qty_i (V_ij - V0_i)``, ``mat`` (``(n_scen, m)`` per-instrument
    P&L, or None). ``vols``: ``(2 n_vol, m)``, the stand-in-safe ``sigma' sqrt(T)`` of each vol
    column then the true ``sigma'``; ``lim``: ``(n_vol + 1, m)`` limit flags, base first."""
    cdef long m = inst.shape[1], ns = move.shape[0], nv = vols.shape[0] // 2
    cdef long nb, b, lo, mb, j
    cdef double[:, ::1] part
    cdef double[::1] dv
    cdef double[:, ::1] mv
    cdef double *pd = NULL
    cdef double *pm_ = NULL
    if inst.shape[0] != INST_ROWS or v0.shape[0] != m or vols.shape[1] != m:
        raise ValueError("instrument arrays differ in shape")
    if vcol.shape[0] != ns or agg.shape[0] != ns or lim.shape[0] != nv + 1 or lim.shape[1] != m:
        raise ValueError("scenario arrays have the wrong shape")
    for j in range(ns):
        if vcol[j] < 0 or vcol[j] >= nv:
            raise ValueError("vol column out of range")
    if delta is not None:
        dv = delta
        if dv.shape[0] != m:
            raise ValueError("delta has the wrong length")
        if m:
            pd = &dv[0]
    if mat is not None:
        mv = mat
        if mv.shape[0] != ns or mv.shape[1] != m:
            raise ValueError("mat has the wrong shape")
        if m and ns:
            pm_ = &mv[0, 0]
    if ns == 0:
        return
    if m == 0:
        agg[:] = 0.0
        return
    nb = _nblocks(m)
    part = np.empty((nb, ns))
    if n_threads <= 1 or nb == 1:
        with nogil:
            for b in range(nb):
                _pm(b, m, ns, f, &move[0], &vcol[0], &inst[0, 0], &vols[0, 0], &lim[0, 0], r,
                    &v0[0], pd, &part[b, 0], pm_, nv)
    else:
        for b in prange(nb, nogil=True, num_threads=n_threads, schedule="dynamic"):
            _pm(b, m, ns, f, &move[0], &vcol[0], &inst[0, 0], &vols[0, 0], &lim[0, 0], r,
                &v0[0], pd, &part[b, 0], pm_, nv)
    for j in range(ns):
        agg[j] = part[0, j]
    for b in range(1, nb):
        for j in range(ns):
            agg[j] += part[b, j]


cdef void _pm(long b, long m, long ns, double f, const double *move, const int *vcol,
              const double *inst, const double *vols, const unsigned char *lim, double r,
              double *v0, double *delta, double *part, double *mat, long nv) noexcept nogil:
    cdef long lo = b * PMNB_MRG_BLOCK
    cdef long mb = m - lo if m - lo < PMNB_MRG_BLOCK else PMNB_MRG_BLOCK
    pmnb_pm_block(mb, m, ns, f, move, vcol, inst + lo, inst + m + lo, inst + 2 * m + lo,
                  inst + 3 * m + lo, inst + 4 * m + lo, inst + 5 * m + lo, inst + 6 * m + lo,
                  lim + lo, vols + lo, vols + nv * m + lo, lim + m + lo, inst + 7 * m + lo,
                  inst + 8 * m + lo, inst + 9 * m + lo, r, v0 + lo,
                  delta + lo if delta != NULL else NULL, part,
                  mat + lo if mat != NULL else NULL)


def std(const double[::1] fs, const double[:, ::1] inst, const unsigned char[::1] lim0,
        double r, double im_addon, double im_floor, double mm_addon, bint long_mark,
        double[:, ::1] out, object v_out, object im_out, object mm_out, int n_threads):
    """Deribit standard margin of net inverse option positions at each factor ``fs[k]``:
    ``out[k] = (sum net V, sum IM, sum MM)``; ``v_out``, ``im_out``, ``mm_out`` (or None) receive
    the per-instrument price, IM and MM at the last factor."""
    cdef long m = inst.shape[1], nf = fs.shape[0], nb, b, k
    cdef double[::1] vv, iv, mv
    cdef double *pv = NULL
    cdef double *pi = NULL
    cdef double *pmm = NULL
    cdef double[:, ::1] part
    if inst.shape[0] != INST_ROWS or lim0.shape[0] != m:
        raise ValueError("instrument arrays differ in shape")
    if out.shape[0] != nf or out.shape[1] != 3:
        raise ValueError("out has the wrong shape")
    if v_out is not None:
        vv, iv, mv = v_out, im_out, mm_out
        if vv.shape[0] != m or iv.shape[0] != m or mv.shape[0] != m:
            raise ValueError("per-instrument outputs have the wrong length")
        if m:
            pv, pi, pmm = &vv[0], &iv[0], &mv[0]
    if nf == 0:
        return
    if m == 0:
        out[:, :] = 0.0
        return
    nb = _nblocks(m)
    part = np.empty((nb, 3 * nf))
    if n_threads <= 1 or nb == 1:
        with nogil:
            for b in range(nb):
                _std(b, m, nf, &fs[0], &inst[0, 0], &lim0[0], r, im_addon, im_floor, mm_addon,
                     long_mark, &part[b, 0], pv, pi, pmm)
    else:
        for b in prange(nb, nogil=True, num_threads=n_threads, schedule="dynamic"):
            _std(b, m, nf, &fs[0], &inst[0, 0], &lim0[0], r, im_addon, im_floor, mm_addon,
                 long_mark, &part[b, 0], pv, pi, pmm)
    for k in range(nf):
        out[k, 0] = part[0, 3 * k]
        out[k, 1] = part[0, 3 * k + 1]
        out[k, 2] = part[0, 3 * k + 2]
    for b in range(1, nb):
        for k in range(nf):
            out[k, 0] += part[b, 3 * k]
            out[k, 1] += part[b, 3 * k + 1]
            out[k, 2] += part[b, 3 * k + 2]


cdef void _std(long b, long m, long nf, const double *fs, const double *inst,
               const unsigned char *lim0, double r, double im_addon, double im_floor,
               double mm_addon, int long_mark, double *part, double *pv, double *pi,
               double *pmm) noexcept nogil:
    cdef long lo = b * PMNB_MRG_BLOCK
    cdef long mb = m - lo if m - lo < PMNB_MRG_BLOCK else PMNB_MRG_BLOCK
    pmnb_std_block(mb, nf, fs, inst + lo, inst + m + lo, inst + 2 * m + lo, inst + 3 * m + lo,
                   inst + 4 * m + lo, inst + 5 * m + lo, inst + 6 * m + lo, lim0 + lo,
                   inst + 7 * m + lo, inst + 8 * m + lo, inst + 9 * m + lo, r, im_addon,
                   im_floor, mm_addon, long_mark, part, pv + lo if pv != NULL else NULL,
                   pi + lo if pi != NULL else NULL, pmm + lo if pmm != NULL else NULL)
