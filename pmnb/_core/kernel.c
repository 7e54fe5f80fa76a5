/* pmnb fast-math kernels (see kernel.h). Compiled with -O3 -ffast-math; never linked with it.
 *
 * Formulas (generalized Black-Scholes-Merton with cost of carry b; Black-76 is b = 0 on x = F):
 *   Haug, E. G., "The Complete Guide to Option Pricing Formulas", 2nd ed., McGraw-Hill 2007,
 *   ch. 1 and 2.1 (price, delta, gamma, vega, theta, rho, vanna, volga/DvegaDvol, charm/DdeltaDtime,
 *   color/DgammaDtime, veta/DvegaDtime, speed, zomma, ultima); Black, F., "The pricing of commodity
 *   contracts", J. Financial Economics 3 (1976).
 *   Inverse (coin-settled) greeks differentiate V_coin = V_usd / F with F = x e^{bT}: see
 *   pmnb/pricing.py for the derivation; coin delta = F dV_coin/dF = Deribit's net transactional delta.
 * Time greeks (theta, charm, color, veta) are -d/dT: the change as calendar time passes, per year.
 * N(-x) is computed through erfc, never as 1 - N(x).
 */
#include <math.h>
#include <stddef.h>
#include "kernel.h"

#define INV_SQRT_2PI 0.398942280401432677939946059934
#define SQRT1_2 0.707106781186547524400844362105

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(PMNB_NATIVE)
#define PMNB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PMNB_CLONES
#endif

typedef double *__restrict__ dptr;
typedef const double *__restrict__ cdptr;

static inline __attribute__((always_inline)) void
body(long n, const int b76, const int q0, const int inv, const int level,
     cdptr x, cdptr K, cdptr T, cdptr sg, cdptr r, cdptr q, cdptr w,
     dptr o_p, dptr o_d, dptr o_g, dptr o_v, dptr o_t, dptr o_r,
     dptr o_va, dptr o_vo, dptr o_ch, dptr o_ve, dptr o_sp, dptr o_zo, dptr o_co, dptr o_ul)
{
    for (long i = 0; i < n; i++) {
        const double S = x[i], k = K[i], t = T[i], s = sg[i], rr = r[i], ww = w[i];
        const double qq = b76 ? rr : (q0 ? 0.0 : q[i]);
        const double b = rr - qq;                       /* carry; 0 for Black-76 */
        const double sqt = sqrt(t);
        const double sst = s * sqt;
        const double isst = 1.0 / sst;
        const double DF = exp(-rr * t);
        const double A = b76 ? DF : (q0 ? 1.0 : exp(-qq * t));   /* e^{(b-r)T} */
        const double d1 = (log(S / k) + (b + 0.5 * s * s) * t) * isst;
        const double d2 = d1 - sst;
        const double N1 = 0.5 * erfc(-ww * d1 * SQRT1_2);   /* N(w d1) */
        const double N2 = 0.5 * erfc(-ww * d2 * SQRT1_2);   /* N(w d2) */
        const double SA = S * A, KD = k * DF;
        const double V = ww * (SA * N1 - KD * N2);
        double delta = 0, gamma = 0, vega = 0, theta = 0, rho = 0, n1 = 0;
        if (level >= 1) {
            n1 = exp(-0.5 * d1 * d1) * INV_SQRT_2PI;
            delta = ww * A * N1;
            gamma = A * n1 * isst / S;
            vega = SA * n1 * sqt;
            theta = -0.5 * SA * n1 * s * s * isst + qq * ww * SA * N1 - rr * ww * KD * N2;
            rho = b76 ? -t * V : ww * KD * t * N2;
        }
        double vanna = 0, volga = 0, charm = 0, veta = 0, speed = 0, zomma = 0, color = 0, ultima = 0;
        if (level >= 2) {
            const double dd1 = b * isst - d2 / (2.0 * t);   /* d(d1)/dT */
            const double d12 = d1 * d2;
            vanna = -A * n1 * d2 / s;
            volga = vega * d12 / s;
            charm = qq * delta - A * n1 * dd1;     /* -(b-r) delta - A n d(d1)/dT, (b-r) = -q */
            color = -gamma * (-qq - d1 * dd1 - 0.5 / t);
            veta = -vega * (-qq - d1 * dd1 + 0.5 / t);
            speed = -gamma / S * (1.0 + d1 * isst);
            zomma = gamma * (d12 - 1.0) / s;
            ultima = -vega / (s * s) * (d12 * (1.0 - d12) + d1 * d1 + d2 * d2);
        }
        if (inv) {
            /* V_c = g V with g = h / x, h = e^{-bT}; D = coin delta = F dV_c/dF = w g K DF N(w d2). */
            const double h = b76 ? 1.0 : exp(-b * t);
            const double g = h / S;
            const double Vc = g * V;
            o_p[i] = Vc;
            if (level >= 1) {
                const double D = ww * g * KD * N2;
                const double gc = h * gamma - D / S;
                const double thc = g * (theta + b * V);
                o_d[i] = D;
                o_g[i] = gc;
                o_v[i] = g * vega;
                o_t[i] = thc;
                o_r[i] = b76 ? g * rho : g * (rho - t * V);
                if (level >= 2) {
                    const double vac = h * vanna - g * vega;
                    const double chc = h * (charm + b * delta) - thc;
                    o_va[i] = vac;
                    o_vo[i] = g * volga;
                    o_ch[i] = chc;
                    o_ve[i] = g * (veta + b * vega);
                    o_sp[i] = h * speed - gc / S + D / (S * S);
                    o_zo[i] = h * zomma - vac / S;
                    o_co[i] = h * (color + b * gamma) - chc / S;
                    o_ul[i] = g * ultima;
                }
            }
        } else {
            o_p[i] = V;
            if (level >= 1) {
                o_d[i] = delta; o_g[i] = gamma; o_v[i] = vega; o_t[i] = theta; o_r[i] = rho;
                if (level >= 2) {
                    o_va[i] = vanna; o_vo[i] = volga; o_ch[i] = charm; o_ve[i] = veta;
                    o_sp[i] = speed; o_zo[i] = zomma; o_co[i] = color; o_ul[i] = ultima;
                }
            }
        }
    }
}

#define KERNEL(name, B76, Q0, INV, LEVEL)                                                          \
    PMNB_CLONES static void name(long n, cdptr x, cdptr K, cdptr T, cdptr s, cdptr r, cdptr q,     \
                                 cdptr w, double **o)                                            \
    {                                                                                              \
        body(n, B76, Q0, INV, LEVEL, x, K, T, s, r, q, w, o[0], o[1], o[2], o[3], o[4], o[5],      \
             o[6], o[7], o[8], o[9], o[10], o[11], o[12], o[13]);                                  \
    }

/* model 0: bsm; 1: black76; 2: bsm with q = 0 (one exp fewer per row) */
KERNEL(k_bsm_lin_0, 0, 0, 0, 0)
KERNEL(k_bsm_lin_1, 0, 0, 0, 1)
KERNEL(k_bsm_lin_2, 0, 0, 0, 2)
KERNEL(k_bsm_inv_0, 0, 0, 1, 0)
KERNEL(k_bsm_inv_1, 0, 0, 1, 1)
KERNEL(k_bsm_inv_2, 0, 0, 1, 2)
KERNEL(k_b76_lin_0, 1, 0, 0, 0)
KERNEL(k_b76_lin_1, 1, 0, 0, 1)
KERNEL(k_b76_lin_2, 1, 0, 0, 2)
KERNEL(k_b76_inv_0, 1, 0, 1, 0)
KERNEL(k_b76_inv_1, 1, 0, 1, 1)
KERNEL(k_b76_inv_2, 1, 0, 1, 2)
KERNEL(k_bq0_lin_0, 0, 1, 0, 0)
KERNEL(k_bq0_lin_1, 0, 1, 0, 1)
KERNEL(k_bq0_lin_2, 0, 1, 0, 2)
KERNEL(k_bq0_inv_0, 0, 1, 1, 0)
KERNEL(k_bq0_inv_1, 0, 1, 1, 1)
KERNEL(k_bq0_inv_2, 0, 1, 1, 2)

typedef void (*kfn)(long, cdptr, cdptr, cdptr, cdptr, cdptr, cdptr, cdptr, double **);
static const kfn KERNELS[3][2][3] = {
    {{k_bsm_lin_0, k_bsm_lin_1, k_bsm_lin_2}, {k_bsm_inv_0, k_bsm_inv_1, k_bsm_inv_2}},
    {{k_b76_lin_0, k_b76_lin_1, k_b76_lin_2}, {k_b76_inv_0, k_b76_inv_1, k_b76_inv_2}},
    {{k_bq0_lin_0, k_bq0_lin_1, k_bq0_lin_2}, {k_bq0_inv_0, k_bq0_inv_1, k_bq0_inv_2}},
};

void pmnb_greeks(long n, int model, int inverse, int level, const double *x, const double *K,
                 const double *T, const double *sigma, const double *r, const double *q,
                 const double *w, double **out)
{
    KERNELS[model == 1 ? 1 : (model == 2 ? 2 : 0)][inverse != 0][level](n, x, K, T, sigma, r, q, w,
                                                                      out);
}

#ifndef PMNB_FAST_CFLAGS
#define PMNB_FAST_CFLAGS "unknown"
#endif
const char *pmnb_build_flags(void) { return PMNB_FAST_CFLAGS; }

const char *pmnb_isa(void)
{
#if defined(PMNB_NATIVE)
    return "native";
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
    return "default";
#else
    return "default";
#endif
}
