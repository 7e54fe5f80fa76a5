/* pmnb scenario kernel (see scenario.h). Compiled with -O3 -ffast-math into pmnb_fastmath; never
 * linked with it. Prices go through pmnb_greeks (kernel.c, level 0) on small shocked-input buffers,
 * one call per (block of positions, scenario); rows on the sigma*sqrt(T) -> 0 path through the
 * exact pmnb_greeks_limit (checks.c).
 */
#include <math.h>
#include <stddef.h>
#include "kernel.h"
#include "scenario.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(PMNB_NATIVE)
#define PMNB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PMNB_CLONES
#endif

#define B PMNB_SCN_BLOCK
#define SST2_MIN (PMNB_SST_MIN * PMNB_SST_MIN)

typedef double *__restrict__ dptr;
typedef const double *__restrict__ cdptr;

/* Shocked inputs of one block for one scenario. Rows on the limit path (sigma'^2 T' below
 * SST2_MIN, which includes T' = 0) get harmless stand-ins (sigma = T = 1) in the fast-path buffers
 * so that the vector loop stays finite; their flag is set and their price is replaced afterwards.
 * Returns the number of limit rows. */
PMNB_CLONES static long fill(long m, double f, double dv, double dt, cdptr x, cdptr T, cdptr sg,
                             dptr xs, dptr Ts, dptr ss, unsigned char *__restrict__ lim)
{
    long nl = 0;
    for (long i = 0; i < m; i++) {
        const double t = fmax(T[i] - dt, 0.0);
        const double s = fmax(sg[i] + dv, 0.0);
        const int l = s * s * t < SST2_MIN;
        xs[i] = x[i] * f;
        Ts[i] = l ? 1.0 : t;
        ss[i] = l ? 1.0 : s;
        lim[i] = (unsigned char)l;
        nl += l;
    }
    return nl;
}

/* Same with the scenario's vols given per row (sm: one column of the transposed matrix tile). */
PMNB_CLONES static long fill_matrix(long m, double f, double dt, cdptr x, cdptr T, cdptr sm,
                                    dptr xs, dptr Ts, dptr ss, unsigned char *__restrict__ lim)
{
    long nl = 0;
    for (long i = 0; i < m; i++) {
        const double t = fmax(T[i] - dt, 0.0);
        const double s = sm[i];
        const int l = s * s * t < SST2_MIN;
        xs[i] = x[i] * f;
        Ts[i] = l ? 1.0 : t;
        ss[i] = l ? 1.0 : s;
        lim[i] = (unsigned char)l;
        nl += l;
    }
    return nl;
}

/* Scenarios are taken G at a time: the matrix of vols is read and the P&L written through
 * transposed G x B tiles, so that each row touches G contiguous values (one cache line, one page)
 * per group instead of one strided value per scenario (a TLB miss each, rows being n_scen * 8
 * bytes apart). */
#define G 8

/* smt[jj][i] = sm[i * ld + jj] for jj < g */
PMNB_CLONES static void load_tile(long m, long g, long ld, cdptr sm, double (*__restrict__ smt)[B])
{
    for (long i = 0; i < m; i++)
        for (long jj = 0; jj < g; jj++) smt[jj][i] = sm[i * ld + jj];
}

/* out[i * ld + jj] = qty[i] * (vt[jj][i] - v0[i]) for jj < g */
PMNB_CLONES static void store_tile(long m, long g, long ld, cdptr qty, const double (*vt)[B],
                                   cdptr v0, dptr out)
{
    for (long i = 0; i < m; i++) {
        const double qi = qty[i], bi = v0[i];
        for (long jj = 0; jj < g; jj++) out[i * ld + jj] = qi * (vt[jj][i] - bi);
    }
}

/* Prices of one block at one scenario into v. sm: this scenario's vol per row, or NULL to use
 * sigma + dv. */
static void price_block(long m, int model, int inverse, double f, double dv, double dt,
                        const double *sm, const double *x, const double *K,
                        const double *T, const double *sigma, const double *r, const double *q,
                        const double *w, double *xs, double *Ts, double *ss,
                        unsigned char *lim, double *v)
{
    const long nl = sm ? fill_matrix(m, f, dt, x, T, sm, xs, Ts, ss, lim)
                       : fill(m, f, dv, dt, x, T, sigma, xs, Ts, ss, lim);
    double *o[PMNB_NOUT] = {v};
    pmnb_greeks(m, model, inverse, PMNB_LEVEL_PRICE, xs, K, Ts, ss, r, q, w, o);
    if (!nl) return;
    for (long i = 0; i < m; i++) {
        if (!lim[i]) continue;
        /* the true shocked inputs (the buffers hold stand-ins); exact path, no fast-math */
        const double t = fmax(T[i] - dt, 0.0);
        const double s = sm ? sm[i] : fmax(sigma[i] + dv, 0.0);
        double *oi[PMNB_NOUT] = {v + i};
        pmnb_greeks_limit(1, model, inverse, PMNB_LEVEL_PRICE, xs + i, K + i, &t, &s, r + i,
                          q + i, w + i, oi);
    }
}

void pmnb_scenario_grid(long n, long n_scen, int model, int inverse, const double *x,
                        const double *K, const double *T, const double *sigma, const double *r,
                        const double *q, const double *w, const double *qty,
                        const double *spot_shock, const double *vol_shock,
                        const double *time_shift, const double *sigma_matrix, double *out)
{
    double xs[B] __attribute__((aligned(64)));
    double Ts[B] __attribute__((aligned(64)));
    double ss[B] __attribute__((aligned(64)));
    double v0[B] __attribute__((aligned(64)));
    double vt[G][B] __attribute__((aligned(64)));
    double smt[G][B] __attribute__((aligned(64)));
    unsigned char lim[B] __attribute__((aligned(64)));
    for (long i0 = 0; i0 < n; i0 += B) {
        const long m = n - i0 < B ? n - i0 : B;
        const double *xb = x + i0, *Kb = K + i0, *Tb = T + i0, *sb = sigma + i0, *rb = r + i0,
                     *qb = q + i0, *wb = w + i0, *qtb = qty + i0;
        /* base value: the same code path as the scenarios, so a zero scenario gives exactly 0 */
        price_block(m, model, inverse, 1.0, 0.0, 0.0, NULL, xb, Kb, Tb, sb, rb, qb, wb, xs, Ts, ss,
                    lim, v0);
        for (long j0 = 0; j0 < n_scen; j0 += G) {
            const long g = n_scen - j0 < G ? n_scen - j0 : G;
            if (sigma_matrix) load_tile(m, g, n_scen, sigma_matrix + i0 * n_scen + j0, smt);
            for (long jj = 0; jj < g; jj++) {
                const long j = j0 + jj;
                price_block(m, model, inverse, 1.0 + spot_shock[j],
                            vol_shock ? vol_shock[j] : 0.0, time_shift[j],
                            sigma_matrix ? smt[jj] : NULL, xb, Kb, Tb, sb, rb, qb, wb, xs, Ts, ss,
                            lim, vt[jj]);
            }
            store_tile(m, g, n_scen, qtb, (const double (*)[B])vt, v0, out + i0 * n_scen + j0);
        }
    }
}
