/* pmnb pricing kernels: generalized Black-Scholes-Merton / Black-76 greeks.
 *
 * Hot loops over raw __restrict__ pointers, compiled with -O3 -ffast-math (never linked with it) so
 * that gcc calls glibc's libmvec SIMD erfc/exp/log, and dispatched at run time by CPU through
 * target_clones (x86-64-v4 / x86-64-v3 / baseline). Fast-math assumes finite inputs: the caller
 * validates every row (pmnb_check_inputs) and routes the sigma*sqrt(T) ~ 0 rows to the exact
 * limit path (pmnb_greeks_limit) before calling the vector loops.
 */
#ifndef PMNB_KERNEL_H
#define PMNB_KERNEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* Output levels. */
#define PMNB_LEVEL_PRICE 0  /* price */
#define PMNB_LEVEL_FIRST 1  /* price delta gamma vega theta rho */
#define PMNB_LEVEL_ALL   2  /* + vanna volga charm veta speed zomma color ultima */
#define PMNB_NOUT 14

/* Rows whose sigma*sqrt(T) is below this go to the exact limit path. */
#define PMNB_SST_MIN 1e-30

/* out[k] for k in 0..13: price delta gamma vega theta rho vanna volga charm veta speed zomma color ultima.
 * model: 0 = bsm (x = spot, carry b = r - q), 1 = black76 (x = forward, b = 0),
 *        2 = bsm with every q = 0 (the caller guarantees it; q is not read).
 * inverse: 0 = linear (USD), 1 = inverse (coin, V_coin = V_usd / F). */
void pmnb_greeks(long n, int model, int inverse, int level,
                 const double *x, const double *K, const double *T, const double *sigma,
                 const double *r, const double *q, const double *w, double **out);

/* Exact limits for rows with sigma*sqrt(T) < PMNB_SST_MIN (T = 0 or sigma = 0); no fast-math. */
void pmnb_greeks_limit(long n, int model, int inverse, int level,
                       const double *x, const double *K, const double *T, const double *sigma,
                       const double *r, const double *q, const double *w, double **out);

/* Validation in one pass (compiled without fast-math, so NaN compares are honoured).
 * Returns a bit mask of the fields with at least one bad row (bit 0 x, 1 K, 2 T, 3 sigma, 4 r, 5 q,
 * 6 w) and writes the number of limit-path rows into *n_limit. */
int pmnb_check_inputs(long n, const double *x, const double *K, const double *T, const double *sigma,
                      const double *r, const double *q, const double *w, long *n_limit);

/* Check and price block by block (in cache); returns n on success, else the start of the first
 * block holding a bad or limit-path row (rows before it are priced, the rest untouched). */
long pmnb_greeks_checked(long n, int model, int inverse, int level, const double *x,
                         const double *K, const double *T, const double *sigma, const double *r,
                         const double *q, const double *w, double **out);

/* Which kernel clone the dispatcher picks on this CPU: "x86-64-v4", "x86-64-v3", "default" or "native". */
const char *pmnb_isa(void);
/* The flags the fast-math kernel was compiled with. */
const char *pmnb_build_flags(void);

#ifdef __cplusplus
}
#endif
#endif
