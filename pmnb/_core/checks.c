/* pmnb exact (non-fast-math) helpers: input validation and the sigma*sqrt(T) -> 0 limits.
 * Compiled with plain -O3 so that NaN comparisons are honoured. See kernel.h. */
#include <math.h>
#include "kernel.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(PMNB_NATIVE)
#define PMNB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PMNB_CLONES
#endif

#define X_MIN 1e-12
#define X_MAX 1e12
#define T_MAX 100.0
#define SIGMA_MAX 100.0
#define RATE_MAX 2.0

PMNB_CLONES int pmnb_check_inputs(long n, const double *restrict x, const double *restrict K,
                      const double *restrict T, const double *restrict sigma,
                      const double *restrict r, const double *restrict q,
                      const double *restrict w, long *n_limit)
{
    int bx = 0, bk = 0, bt = 0, bs = 0, br = 0, bq = 0, bw = 0;
    long lim = 0;
    for (long i = 0; i < n; i++) {
        /* written as !(in range) so that NaN counts as bad; & and | (not && and ||) keep the loop
         * free of branches so that it vectorizes */
        bx |= !((x[i] >= X_MIN) & (x[i] <= X_MAX));
        bk |= !((K[i] >= X_MIN) & (K[i] <= X_MAX));
        bt |= !((T[i] >= 0.0) & (T[i] <= T_MAX));
        bs |= !((sigma[i] >= 0.0) & (sigma[i] <= SIGMA_MAX));
        br |= !((r[i] >= -RATE_MAX) & (r[i] <= RATE_MAX));
        bq |= !((q[i] >= -RATE_MAX) & (q[i] <= RATE_MAX));
        bw |= !((w[i] == 1.0) | (w[i] == -1.0));
        lim += (sigma[i] * sigma[i] * T[i] < PMNB_SST_MIN * PMNB_SST_MIN);  /* sigma^2 T */
    }
    *n_limit = lim;
    return bx | bk << 1 | bt << 2 | bs << 3 | br << 4 | bq << 5 | bw << 6;
}

/* Limits as sigma*sqrt(T) -> 0: the option is worth its discounted forward intrinsic value;
 * N(w d1), N(w d2) -> 1 in the money, 0 out of the money, 1/2 at F = K; every term carrying the
 * density n(d1) vanishes (at exactly F = K gamma-type limits diverge or depend on the path; 0 is
 * returned there, as documented in pmnb.pricing). */
void pmnb_greeks_limit(long n, int model, int inverse, int level, const double *x, const double *K,
                       const double *T, const double *sigma, const double *r, const double *q,
                       const double *w, double **o)
{
    (void)sigma;
    const int b76 = model == 1;  /* model 2 is bsm with q = 0 */
    for (long i = 0; i < n; i++) {
        const double S = x[i], k = K[i], t = T[i], rr = r[i], ww = w[i];
        const double qq = b76 ? rr : (model == 2 ? 0.0 : q[i]);
        const double b = rr - qq;
        const double DF = exp(-rr * t);
        const double A = b76 ? DF : exp(-qq * t);
        const double F = b76 ? S : S * exp(b * t);
        const double m = ww * (F - k);
        const double ind = m > 0 ? 1.0 : (m == 0 ? 0.5 : 0.0);
        const double SA = S * A, KD = k * DF;
        const double V = ww * ind * (SA - KD);
        const double delta = ww * A * ind;
        const double theta = qq * ww * SA * ind - rr * ww * KD * ind;
        const double rho = b76 ? -t * V : ww * KD * t * ind;
        const double charm = qq * delta;
        double vals[PMNB_NOUT] = {V, delta, 0, 0, theta, rho, 0, 0, charm, 0, 0, 0, 0, 0};
        if (inverse) {
            const double h = b76 ? 1.0 : exp(-b * t);
            const double g = h / S;
            const double D = ww * g * KD * ind;
            const double gc = -D / S;
            const double thc = g * (theta + b * V);
            const double chc = h * (charm + b * delta) - thc;
            const double inv[PMNB_NOUT] = {g * V, D, gc, 0, thc, b76 ? g * rho : g * (rho - t * V),
                                           0, 0, chc, 0, -gc / S + D / (S * S), 0, -chc / S, 0};
            for (int j = 0; j < PMNB_NOUT; j++) vals[j] = inv[j];
        }
        const int nout = level == PMNB_LEVEL_PRICE ? 1 : (level == PMNB_LEVEL_FIRST ? 6 : PMNB_NOUT);
        for (int j = 0; j < nout; j++) o[j][i] = vals[j];
    }
}

/* Validate and price block by block, so each block is checked while it is still in cache (a
 * separate validation pass over 10^6 rows costs as much memory traffic as the kernel itself).
 * Stops before the first block that has a bad row or a limit-path row and returns its start;
 * returns n when every row was priced. The caller then falls back to the full check. */
#define PMNB_BLOCK 512
long pmnb_greeks_checked(long n, int model, int inverse, int level, const double *x,
                         const double *K, const double *T, const double *sigma, const double *r,
                         const double *q, const double *w, double **out)
{
    double *o[PMNB_NOUT];
    for (long i0 = 0; i0 < n; i0 += PMNB_BLOCK) {
        const long m = n - i0 < PMNB_BLOCK ? n - i0 : PMNB_BLOCK;
        long lim = 0;
        if (pmnb_check_inputs(m, x + i0, K + i0, T + i0, sigma + i0, r + i0, q + i0, w + i0, &lim)
            || lim)
            return i0;
        for (int j = 0; j < PMNB_NOUT; j++) o[j] = out[j] ? out[j] + i0 : (double *)0;
        pmnb_greeks(m, model, inverse, level, x + i0, K + i0, T + i0, sigma + i0, r + i0, q + i0,
                    w + i0, o);
    }
    return n;
}
