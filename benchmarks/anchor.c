/* Same-machine anchors for benchmarks/greeks.py (reference pricing.md §1 "C anchor"):
 *
 *   anchor_greeks: the plain BSM price + delta gamma vega theta rho loop over __restrict__ pointers,
 *                  the same formula as numpy_greeks() in greeks.py. Built by greeks.py with gcc
 *                  -O3 -ffast-math and -march=native or -march=x86-64-v3 (compiled with fast-math,
 *                  linked WITHOUT it, so crtfastmath.o never sets flush-to-zero in the process), so
 *                  gcc calls glibc's libmvec SIMD erfc/exp/log. It is the practical hardware limit
 *                  of this CPU for this formula, measured in the same run as pmnb.
 *   anchor_floor:  reads the 7 input arrays and writes 6 outputs with trivial arithmetic: the
 *                  memory-bandwidth floor for the same traffic.
 * Both split the rows into n_threads static chunks with OpenMP when n_threads > 1, like pmnb.
 */
#include <math.h>
#include <omp.h>

typedef double *__restrict__ dptr;
typedef const double *__restrict__ cdptr;

#define INV_SQRT_2PI 0.398942280401432677939946059934
#define SQRT1_2 0.707106781186547524400844362105

static void greeks_loop(long n, cdptr S, cdptr K, cdptr T, cdptr sg, cdptr r, cdptr q, cdptr w,
                        dptr o_p, dptr o_d, dptr o_g, dptr o_v, dptr o_t, dptr o_r)
{
    for (long i = 0; i < n; i++) {
        const double s = sg[i], t = T[i], ww = w[i], rr = r[i], qq = q[i];
        const double sqt = sqrt(t);
        const double sst = s * sqt;
        const double d1 = (log(S[i] / K[i]) + (rr - qq + 0.5 * s * s) * t) / sst;
        const double d2 = d1 - sst;
        const double DF = exp(-rr * t);
        const double A = exp(-qq * t);
        const double N1 = 0.5 * erfc(-ww * d1 * SQRT1_2);
        const double N2 = 0.5 * erfc(-ww * d2 * SQRT1_2);
        const double n1 = exp(-0.5 * d1 * d1) * INV_SQRT_2PI;
        const double SA = S[i] * A, KD = K[i] * DF;
        o_p[i] = ww * (SA * N1 - KD * N2);
        o_d[i] = ww * A * N1;
        o_g[i] = A * n1 / (S[i] * sst);
        o_v[i] = SA * n1 * sqt;
        o_t[i] = -SA * n1 * s / (2.0 * sqt) + qq * ww * SA * N1 - rr * ww * KD * N2;
        o_r[i] = ww * KD * t * N2;
    }
}

static void floor_loop(long n, cdptr S, cdptr K, cdptr T, cdptr sg, cdptr r, cdptr q, cdptr w,
                       dptr o_p, dptr o_d, dptr o_g, dptr o_v, dptr o_t, dptr o_r)
{
    for (long i = 0; i < n; i++) {
        o_p[i] = S[i] + K[i];
        o_d[i] = T[i] + sg[i];
        o_g[i] = r[i] + q[i];
        o_v[i] = w[i] + S[i];
        o_t[i] = K[i] + T[i];
        o_r[i] = sg[i] + w[i];
    }
}

typedef void (*loop_fn)(long, cdptr, cdptr, cdptr, cdptr, cdptr, cdptr, cdptr,
                        dptr, dptr, dptr, dptr, dptr, dptr);

static void run(loop_fn f, long n, const double *S, const double *K, const double *T,
                const double *sg, const double *r, const double *q, const double *w, double **o,
                int n_threads)
{
    if (n_threads <= 1) {
        f(n, S, K, T, sg, r, q, w, o[0], o[1], o[2], o[3], o[4], o[5]);
        return;
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (int c = 0; c < n_threads; c++) {
        const long lo = (n * c) / n_threads, hi = (n * (c + 1)) / n_threads;
        f(hi - lo, S + lo, K + lo, T + lo, sg + lo, r + lo, q + lo, w + lo,
          o[0] + lo, o[1] + lo, o[2] + lo, o[3] + lo, o[4] + lo, o[5] + lo);
    }
}

void anchor_greeks(long n, const double *S, const double *K, const double *T, const double *sg,
                   const double *r, const double *q, const double *w, double **o, int n_threads)
{
    run(greeks_loop, n, S, K, T, sg, r, q, w, o, n_threads);
}

void anchor_floor(long n, const double *S, const double *K, const double *T, const double *sg,
                  const double *r, const double *q, const double *w, double **o, int n_threads)
{
    run(floor_loop, n, S, K, T, sg, r, q, w, o, n_threads);
}
