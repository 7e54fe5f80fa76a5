/* pmnb margin kernels (see margin.h). Compiled with -O3 -ffast-math into pmnb_fastmath; never
 * linked with it. Limit rows (sigma sqrt(T) ~ 0) are priced by the exact pmnb_greeks_limit
 * (checks.c, compiled without fast-math).
 */
#include <math.h>
#include <stddef.h>
#include "kernel.h"
#include "margin.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(PMNB_NATIVE)
#define PMNB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PMNB_CLONES
#endif

#define SQRT1_2 0.707106781186547524400844362105
#define B PMNB_MRG_BLOCK

typedef double *__restrict__ dptr;
typedef const double *__restrict__ cdptr;

/* Coin values of m instruments at x = a + lf, K/F' = kf e (and the coin delta when d != NULL). */
PMNB_CLONES static void values(long m, double lf, double e, cdptr a, cdptr kf, cdptr sst,
                               cdptr w, cdptr df, dptr v)
{
    for (long i = 0; i < m; i++) {
        const double s = sst[i], ww = w[i];
        const double d1 = (a[i] + lf) / s + 0.5 * s;
        const double d2 = d1 - s;
        const double N1 = 0.5 * erfc(-ww * d1 * SQRT1_2);
        const double N2 = 0.5 * erfc(-ww * d2 * SQRT1_2);
        v[i] = ww * df[i] * (N1 - kf[i] * e * N2);
    }
}

/* Coin delta of m instruments (kept apart from values() so that the base value is computed by
 * exactly the loop the scenarios use). */
PMNB_CLONES static void deltas(long m, double lf, double e, cdptr a, cdptr kf, cdptr sst,
                               cdptr w, cdptr df, dptr d)
{
    for (long i = 0; i < m; i++) {
        const double s = sst[i], ww = w[i];
        const double d2 = (a[i] + lf) / s - 0.5 * s;
        d[i] = ww * df[i] * kf[i] * e * (0.5 * erfc(-ww * d2 * SQRT1_2));
    }
}

/* Exact limit (sigma sqrt(T) -> 0) of flagged rows at the forward F_i f' (f' = f (1 + s_j)). */
static void fix_limits(long m, double fj, const unsigned char *lim, const double *F,
                       const double *K, const double *T, const double *sig, const double *w,
                       double r, double *v, double *d)
{
    for (long i = 0; i < m; i++) {
        if (!lim[i]) continue;
        double x = F[i] * fj, z = 0.0, o[PMNB_NOUT];
        double *op[PMNB_NOUT];
        for (int k = 0; k < PMNB_NOUT; k++) op[k] = &o[k];
        pmnb_greeks_limit(1, 1, 1, d ? PMNB_LEVEL_FIRST : PMNB_LEVEL_PRICE, &x, K + i, T + i,
                          sig + i, &r, &z, w + i, op);
        v[i] = o[0];
        if (d) d[i] = o[1];
    }
}

static int any_flag(long m, const unsigned char *lim)
{
    for (long i = 0; i < m; i++)
        if (lim[i]) return 1;
    return 0;
}

PMNB_CLONES static double pnl_row(long m, cdptr qty, cdptr v, cdptr v0, dptr out)
{
    double acc = 0.0;
    if (out) {
        for (long i = 0; i < m; i++) {
            const double p = qty[i] * (v[i] - v0[i]);
            out[i] = p;
            acc += p;
        }
    } else {
        for (long i = 0; i < m; i++) acc += qty[i] * (v[i] - v0[i]);
    }
    return acc;
}

void pmnb_pm_block(long m, long ld, long n_scen, double f, const double *move, const int *vcol,
                   const double *a, const double *kf, const double *w, const double *df,
                   const double *qty, const double *sst0, const double *sig0,
                   const unsigned char *lim0, const double *sst, const double *sig,
                   const unsigned char *lim, const double *F, const double *K, const double *T,
                   double r, double *v0, double *delta, double *agg, double *mat)
{
    double vt[B] __attribute__((aligned(64)));
    const double lf = log(f), e = 1.0 / f;
    /* the base: the same loop as the scenarios, so a zero scenario gives exactly 0 */
    values(m, lf, e, a, kf, sst0, w, df, v0);
    if (delta) deltas(m, lf, e, a, kf, sst0, w, df, delta);
    if (any_flag(m, lim0)) fix_limits(m, f, lim0, F, K, T, sig0, w, r, v0, delta);
    for (long j = 0; j < n_scen; j++) {
        const long c = vcol[j];
        const double g = 1.0 + move[j];
        values(m, lf + log(g), 1.0 / (f * g), a, kf, sst + c * ld, w, df, vt);
        if (any_flag(m, lim + c * ld))
            fix_limits(m, f * g, lim + c * ld, F, K, T, sig + c * ld, w, r, vt, NULL);
        agg[j] = pnl_row(m, qty, vt, v0, mat ? mat + j * ld : NULL);
    }
}

PMNB_CLONES static void std_margins(long m, double e, cdptr kf, cdptr w, cdptr net, cdptr v,
                                    double im_addon, double im_floor, double mm_addon,
                                    int long_mark, dptr im_o, dptr mm_o, double *sums)
{
    double sv = 0.0, si = 0.0, sm = 0.0;
    for (long i = 0; i < m; i++) {
        const double ww = w[i], mk = v[i], n = net[i], q = fabs(n);
        const double otm = fmax(ww * (kf[i] * e - 1.0), 0.0);
        const double base = fmax(im_addon - otm, im_floor) + mk;
        const double call = ww > 0.0;
        const double mm = call ? mm_addon + mk : fmax(mm_addon, mm_addon * mk) + mk;
        const double im = call ? base : fmax(base, mm);
        const double lng = long_mark ? q * mk : 0.0;
        const double a = n < 0.0 ? q * im : lng;
        const double b = n < 0.0 ? q * mm : lng;
        im_o[i] = a;
        mm_o[i] = b;
        sv += n * mk;
        si += a;
        sm += b;
    }
    sums[0] = sv;
    sums[1] = si;
    sums[2] = sm;
}

void pmnb_std_block(long m, long n_f, const double *fs, const double *a, const double *kf,
                    const double *w, const double *df, const double *net, const double *sst0,
                    const double *sig0, const unsigned char *lim0, const double *F,
                    const double *K, const double *T, double r, double im_addon,
                    double im_floor, double mm_addon, int long_mark, double *out,
                    double *v_out, double *im_out, double *mm_out)
{
    double vt[B] __attribute__((aligned(64)));
    double it[B] __attribute__((aligned(64)));
    double mt[B] __attribute__((aligned(64)));
    const int has_lim = any_flag(m, lim0);
    for (long k = 0; k < n_f; k++) {
        const double f = fs[k], e = 1.0 / f;
        const int last = k == n_f - 1;
        double *v = (last && v_out) ? v_out : vt;
        double *im = (last && im_out) ? im_out : it;
        double *mm = (last && mm_out) ? mm_out : mt;
        values(m, log(f), e, a, kf, sst0, w, df, v);
        if (has_lim) fix_limits(m, f, lim0, F, K, T, sig0, w, r, v, NULL);
        std_margins(m, e, kf, w, net, v, im_addon, im_floor, mm_addon, long_mark, im, mm,
                    out + 3 * k);
    }
}
