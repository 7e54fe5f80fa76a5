/*
 * pmnb/_core/ivfast.h -- vectorised implied Black volatility with Let's Be Rational as fallback.
 *
 * pmnb_iv_fast_array() inverts undiscounted Black-76 prices with a SIMD version of Peter Jaeckel's
 * "Let's Be Rational" (same four-branch transformed rational initial guess, same branch objectives,
 * Householder(3) steps at a fixed count), compiled -O3 -ffast-math so that gcc calls glibc libmvec's
 * vector erfc/exp/log/cbrt, with run-time ISA dispatch (target_clones). Every row the vector
 * iteration cannot certify is recomputed by the exact scalar pmnb_lbr_implied_vol() (lbr.h).
 *
 * Pure function of its inputs: no global mutable state, no allocation, thread-safe, callable with
 * the Python GIL released; the result of a row does not depend on its position in the arrays, so
 * splitting the rows across threads gives bit-identical output.
 */
#ifndef PMNB_CORE_IVFAST_H
#define PMNB_CORE_IVFAST_H

#ifdef __cplusplus
extern "C" {
#endif

/* Same contract as pmnb_lbr_implied_vol_array (undiscounted Black-76 prices; F,K,T>0 finite; w=±1;
   price finite >= 0). Writes sigma and reason code per row (codes as in lbr.h: 0 ok, 1 below
   intrinsic -> NaN, 2 above maximum -> NaN, 3 no time value -> 0.0, 4 failure -> NaN). Rows the
   vector iteration cannot certify (bounds violations, no/low time value, wings, non-convergence)
   are delegated to pmnb_lbr_implied_vol, so results are always at least as good as LBR. */
void pmnb_iv_fast_array(long n, const double *price, const double *F, const double *K, const double *T,
                        const double *w, double *out_sigma, int *out_code);

/* Statistics hook for tests/benchmarks: same as pmnb_iv_fast_array, and additionally returns the
   number of rows that were delegated to pmnb_lbr_implied_vol (bounds violations, i.e. codes 1 and 2,
   are not counted; n_fallback may be NULL). */
void pmnb_iv_fast_array_stats(long n, const double *price, const double *F, const double *K,
                              const double *T, const double *w, double *out_sigma, int *out_code,
                              long *n_fallback);

/* 1 if this build/CPU runs the vector path (x86-64-v3 or better with gcc + glibc libmvec), 0 if
   pmnb_iv_fast_array simply calls pmnb_lbr_implied_vol_array. */
int pmnb_iv_fast_vectorized(void);

#ifdef __cplusplus
}
#endif

#endif /* PMNB_CORE_IVFAST_H */
