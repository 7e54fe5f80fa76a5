/*
 * pmnb/_core/lbr.h -- implied Black volatility by Peter Jaeckel's "Let's Be Rational".
 *
 * C99 port of Peter Jaeckel's reference implementation (www.jaeckel.org/LetsBeRational.7z).
 * See lbr.c for the sources and the licence notice of the ported code.
 *
 * All functions are pure (no global mutable state) and thread-safe; they may be
 * called with the Python GIL released.
 */
#ifndef PMNB_CORE_LBR_H
#define PMNB_CORE_LBR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Reason codes written by pmnb_lbr_implied_vol(). */
#define PMNB_LBR_OK              0 /* sigma returned                                        */
#define PMNB_LBR_BELOW_INTRINSIC 1 /* price < (w*(F-K))^+          -> NaN                    */
#define PMNB_LBR_ABOVE_MAXIMUM   2 /* price >= F (call) or K (put) -> NaN                    */
#define PMNB_LBR_NO_TIME_VALUE   3 /* price == intrinsic (no time value) -> 0.0              */
#define PMNB_LBR_FAILURE         4 /* should not happen              -> NaN                    */

/* Undiscounted Black-76: price = w*(F*N(w*d1) - K*N(w*d2)), w=+1 call, -1 put.
   Returns the implied vol sigma (annualised) for one option, writing a reason code:
   0 = ok; 1 = price below intrinsic (w*(F-K))^+ ; 2 = price above maximum (F for call, K for put);
   3 = price equals intrinsic / no time value identifiable (sigma returned 0.0, code 3);
   4 = other failure (should not happen). On codes 1,2,4 returns a quiet NaN.
   Inputs are validated by the caller: F>0, K>0, T>0, price finite, w = +1.0 or -1.0. */
double pmnb_lbr_implied_vol(double price, double F, double K, double T, double w, int *code);

/* Array loop over n contiguous rows (all inputs length n), writes out_sigma[i], out_code[i]. */
void pmnb_lbr_implied_vol_array(long n, const double *price, const double *F, const double *K,
                                const double *T, const double *w, double *out_sigma, int *out_code);

/* The undiscounted Black price used internally (same sign conventions), evaluated via
   Jaeckel's normalised_black with its asymptotic / small-t / erfcx-based branches, so that it
   stays accurate in the wings. */
double pmnb_lbr_black(double F, double K, double sigma, double T, double w);

#ifdef __cplusplus
}
#endif

#endif /* PMNB_CORE_LBR_H */
