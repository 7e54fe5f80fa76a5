/*
 * pmnb/_core/ivfast.c -- vectorised "Let's Be Rational" implied Black volatility (see ivfast.h).
 *
 * Compiled -O3 -ffast-math (static library pmnb_fastmath, never linked with -ffast-math) so that gcc
 * turns the two loops below into SIMD code calling glibc libmvec's exp/log/cbrt (_ZGV* symbols);
 * target_clones selects the AVX-512 or AVX2 clone at run time. On CPUs below x86-64-v3 (where gcc
 * cannot vectorise this code) and with other compilers, every row goes to the scalar LBR.
 *
 * Algorithm: P. Jaeckel, "Let's Be Rational", Wilmott Magazine, January 2015, pp. 40-53 (and the
 * revised 2016 version, www.jaeckel.org), transcribed branch-free from the scalar port in lbr.c:
 *   - the same four-branch initial guess: rational cubic interpolation of s(beta) between the
 *     inflection point s_c = sqrt(2|x|) and the tangent points s_l, s_h, and of the lower/upper
 *     "f maps" outside [b_l, b_h], inverted through the normal quantile (Wichura's AS241);
 *   - the same branch objectives: 1/ln(b) - 1/ln(beta) below b_l, ln((b_max-beta)/(b_max-b))
 *     above max(b_h, b_max/2), b - beta in between, and the same two Householder(3) steps, written
 *     in the dimensionless form ds/s so that no intermediate can overflow for small s.
 *   The four branches run as one straight-line path with per-lane selects; each transcendental is
 *   called once per step with per-lane selected arguments.
 *   The normalised Black function b(x,s) (x = -|ln(F/K)| <= 0, s = sigma sqrt(T)) is evaluated as
 *   in lbr.c: for t = s/2 < tau = 2 eps^(1/16) by Jaeckel's 12th-order small-t expansion, otherwise
 *   by the erfcx form (region 4), or through b_max - b when h + t > 0; ln b = ln(e_ht) + ln(b/e_ht)
 *   never underflows. erfcx is W. J. Cody's rational approximation made branch-free, so the only
 *   libmvec calls are one exp and one log per Householder step (plus 2 exp, 2 log, 1 cbrt in the
 *   initial guess and one log, one exp in the pre-pass).
 *
 * Fast-math assumes that no NaN or Inf ever arises. All edge cases are decided before the vector
 * loop (bounds, zero time value, extreme F/K, |ln F/K| > 30, beta < 1e-300 or within 1e-6 of its
 * maximum), and inside it every denominator, log argument and exponent is clamped to a finite
 * range; each clamp that bites marks the row uncertified (tests check that the loops raise no
 * invalid/divide-by-zero/overflow flag on adversarial inputs). A row is certified when no clamp bit
 * is set and the last Householder(3) step is |ds| <= IVF_CERT_TOL * s: with quartic convergence the
 * error left after it is below the rounding noise (checked against 40-digit roots down to the
 * conditioning of the price). Uncertified rows are recomputed by the exact pmnb_lbr_implied_vol
 * (lbr.c, compiled without fast-math).
 *
 * The vector loops run over full, aligned vectors only (inputs copied to 64-byte aligned block
 * buffers padded to a multiple of 16 rows), so no row ever goes through a peeled or remainder
 * iteration: a row's result does not depend on its position, and any split over threads gives
 * identical bits.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>

#include "ivfast.h"
#include "lbr.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(PMNB_NATIVE)
#define IVF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define IVF_CLONES
#endif
#define IVF_INLINE static inline __attribute__((always_inline))

typedef double *__restrict__ dptr;
typedef const double *__restrict__ cdptr;

/* ---------------------------------------------------------------------------------------------- */
/* Constants                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

#define ONE_OVER_SQRT_TWO             0.7071067811865475244008443621048490392848359376887
#define ONE_OVER_SQRT_TWO_PI          0.3989422804014326779399460599343818684758586311649
#define SQRT_PI_OVER_TWO              1.253314137315500251207882642405522626503493370305
#define TWO_PI                        6.283185307179586476925286766559005768394338798750
#define SQRT_THREE                    1.732050807568877293527446341505872366942805253810
#define SQRT_ONE_OVER_THREE           0.577350269189625764509148780501957455647601751270
#define SQRT_TWO_PI                   2.506628274631000502415765284811045253006986740610
#define TWO_PI_OVER_SQRT_TWENTY_SEVEN 1.209199576156145233729385505094770488189377498728
#define PI_OVER_SIX                   0.523598775598298873077107230546583814032861566563
#define SQRT_DBL_EPSILON              1.4901161193847656e-08
#define SQRT_DBL_MAX                  1.3407807929942596e+154
/* tau = 2 eps^(1/16): below it (in t = s/2) the small-t expansion is used, as in lbr.c. */
#define SMALL_T_THRESHOLD             0.21022410381342863
#define RC_MIN (-(1.0 - SQRT_DBL_EPSILON))          /* rational cubic control parameter bounds */
#define RC_MAX (2.0 / (DBL_EPSILON * DBL_EPSILON))

/* Domain of the vector path (rows outside it go to LBR). */
#define IVF_BLOCK     256      /* rows per block (stack buffers; multiple of IVF_PAD)              */
#define IVF_PAD       16       /* packed rows are padded to a multiple of this                     */
#define IVF_F_MIN     1e-150   /* F, K range (F/K, sqrt(F K) stay far from over/underflow)         */
#define IVF_F_MAX     1e150
#define IVF_X_MAX     30.0     /* |ln(F/K)|                                                        */
#define IVF_BETA_MIN  1e-300   /* normalised OTM price beta = p_otm / sqrt(F K)                    */
#define IVF_TOP_MARGIN 1e-6    /* beta < b_max (1 - margin): s below ~10, where s is well conditioned */
/* Clamps inside the vector loop (each one that bites uncertifies the row). */
#define IVF_S_LO      1e-301   /* s = sigma sqrt(T); b(x,s) <= s/sqrt(2 pi), so s >= 2.5e-300      */
#define IVF_S_HI      20.0     /* b_max - b(s = 20) ~ 1e-23 b_max: far beyond the top margin       */
#define IVF_H_MAX     40.0     /* |h| = |x|/s (beta >= 1e-300 means |h| < 37.2 at the root)         */
#define IVF_TINY      1e-290
#define IVF_BIG       1e50
#define IVF_NU_MAX    1e3      /* |Newton step| / s                                                 */
/* Certificate on the last Householder(3) step. */
#define IVF_CERT_TOL  1e-5
#define IVF_NITER     2        /* Householder(3) steps, as in LBR                                  */

/* ---------------------------------------------------------------------------------------------- */
/* Branch-free building blocks (always inlined into the vector loops)                              */
/* ---------------------------------------------------------------------------------------------- */

/* Per-lane select by bit masks (c is 0 or 1). Written without ?: so that gcc does not build control
   flow (which its if-conversion cannot always undo after jump threading): the loops stay
   straight-line code and vectorise. Conditions are long 0/1 values combined with & and |. */
IVF_INLINE double sel(long c, double a, double b) {
    union { double d; long l; } A, B, R;
    A.d = a;
    B.d = b;
    const long m = -c;
    R.l = (A.l & m) | (B.l & ~m);
    return R.d;
}
IVF_INLINE double vmax(double a, double b) { return __builtin_fmax(a, b); }
IVF_INLINE double vmin(double a, double b) { return __builtin_fmin(a, b); }
IVF_INLINE long is_zero(double v) { return fabs(v) < DBL_MIN; }
/* a/b for finite a, b, with |b| floored (sign kept) so that |a/b| <= 1e200 and b = 0 is harmless:
   used where lbr.c divides by quantities that are only guarded against exact zero. */
IVF_INLINE double sdiv(double a, double b) {
    const double m = vmax(fabs(a) * 1e-200, 1e-300);
    return a / sel(fabs(b) < m, sel(b < 0, -m, m), b);
}

/* Wichura's AS241 (PPND16) inverse normal cdf for u in (0, 1) (lbr.c): the three rational pieces
   are evaluated for every lane and one quotient is taken of the selected numerator/denominator. */
IVF_INLINE double inverse_norm_cdf(double u) {
    const double q = u - 0.5;
    const double r = 0.180625 - q * q;
    const double na = q * (((((((2.5090809287301226727E+3 * r + 3.3430575583588128105E+4) * r + 6.7265770927008700853E+4) * r +
                              4.5921953931549871457E+4) * r + 1.3731693765509461125E+4) * r + 1.9715909503065514427E+3) * r +
                           1.3314166789178437745E+2) * r + 3.3871328727963666080E0);
    const double da = (((((((5.2264952788528545610E+3 * r + 2.8729085735721942674E+4) * r + 3.9307895800092710610E+4) * r +
                           2.1213794301586595867E+4) * r + 5.3941960214247511077E+3) * r + 6.8718700749205790830E+2) * r +
                        4.2313330701600911252E+1) * r + 1.0);
    const double p = vmax(vmin(u, 1.0 - u), 1e-300);
    const double rr = sqrt(-log(p));
    const double a = rr - 1.6, b = rr - 5.0;
    const double nc = (((((((7.74545014278341407640E-4 * a + 2.27238449892691845833E-2) * a + 2.41780725177450611770E-1) * a +
                           1.27045825245236838258E0) * a + 3.64784832476320460504E0) * a + 5.76949722146069140550E0) * a +
                        4.63033784615654529590E0) * a + 1.42343711074968357734E0);
    const double dc = (((((((1.05075007164441684324E-9 * a + 5.47593808499534494600E-4) * a + 1.51986665636164571966E-2) * a +
                           1.48103976427480074590E-1) * a + 6.89767334985100004550E-1) * a + 1.67638483018380384940E0) * a +
                        2.05319162663775882187E0) * a + 1.0);
    const double ne = (((((((2.01033439929228813265E-7 * b + 2.71155556874348757815E-5) * b + 1.24266094738807843860E-3) * b +
                           2.65321895265761230930E-2) * b + 2.96560571828504891230E-1) * b + 1.78482653991729133580E0) * b +
                        5.46378491116411436990E0) * b + 6.65790464350110377720E0);
    const double de = (((((((2.04426310338993978564E-15 * b + 1.42151175831644588870E-7) * b + 1.84631831751005468180E-5) * b +
                           7.86869131145613259100E-4) * b + 1.48753612908506148525E-2) * b + 1.36929880922735805310E-1) * b +
                        5.99832206555887937690E-1) * b + 1.0);
    const long central = fabs(q) <= 0.425, mid = rr < 5.0;
    const double nt = sel(mid, nc, ne) * sel(q < 0.0, -1.0, 1.0), dt = sel(mid, dc, de);
    return sel(central, na, nt) / sel(central, da, dt);
}

/* Jaeckel's small-t expansion of b / (exp(-(h^2+t^2)/2) / sqrt(2 pi)) for h <= 0, t < tau:
   2 t (a + w (...)), a = 1 + h Y(h), w = t^2, h2 = h^2 (lbr.c, small_t_expansion_of_normalized_black_call). */
IVF_INLINE double small_t_expansion(double a, double h2, double w, double t) {
    return 2*t*(a+w*((-1+3*a+a*h2)/6+w*((-7+15*a+h2*(-1+10*a+a*h2))/120+w*((-57+105*a+h2*(-18+105*a+h2*(-1+21*a+a*h2)))/5040+w*((-561+945*a+h2*(-285+1260*a+h2*(-33+378*a+h2*(-1+36*a+a*h2))))/362880+w*((-6555+10395*a+h2*(-4680+17325*a+h2*(-840+6930*a+h2*(-52+990*a+h2*(-1+55*a+a*h2)))))/39916800+((-89055+135135*a+h2*(-82845+270270*a+h2*(-20370+135135*a+h2*(-1926+25740*a+h2*(-75+2145*a+h2*(-1+78*a+a*h2))))))*w)/6227020800.0))))));
}

/* W. J. Cody's erfcx(y) = exp(y^2) erfc(y) for y >= 0 (CALERF, JINT = 2; coefficients as in lbr.c),
   branch-free: the three rational approximations are brought to the form N/D and one quotient
   is taken of the selected pair:
     y <= 0.46875:  exp(y^2) (Ds - y Ns)/Ds        (erf = y Ns/Ds in y^2; exp(y^2 <= 0.22) by Taylor)
     y <= 4:        Nm(y)/Dm(y)
     y >  4:        (Y Q/sqrt(pi) - P)/(y Y Q), Y = y^2, with P(Y) = Y^5 Nl(1/Y), Q(Y) = Y^5 Dl(1/Y)
                    (Cody's (1/sqrt(pi) - Nl/(Y Dl))/y with the polynomials in 1/Y reversed).
   Relative accuracy ~1e-16 and no exponential for y > 0.46875 (what keeps Y(h) and b(x,s) accurate
   in the wings, cf. lbr.c). Valid for 0 <= y <= 1e30. */
IVF_INLINE double erfcx_pos(double y) {
    const double Y = y * y;
    double ns = 1.85777706184603153e-1 * Y, ds = Y;
    ns = (ns + 3.16112374387056560e00) * Y; ds = (ds + 2.36012909523441209e01) * Y;
    ns = (ns + 1.13864154151050156e02) * Y; ds = (ds + 2.44024637934444173e02) * Y;
    ns = (ns + 3.77485237685302021e02) * Y; ds = (ds + 1.28261652607737228e03) * Y;
    ns = ns + 3.20937758913846947e03;       ds = ds + 2.84423683343917062e03;
    const double v = vmin(Y, 0.25);
    const double ex = 1.0 + v * (1.0 + v * (1.0 / 2 + v * (1.0 / 6 + v * (1.0 / 24 + v * (1.0 / 120 + v * (1.0 / 720 +
                      v * (1.0 / 5040 + v * (1.0 / 40320 + v * (1.0 / 362880 + v * (1.0 / 3628800 + v * (1.0 / 39916800 +
                      v * (1.0 / 479001600 + v * (1.0 / 6227020800.0)))))))))))));
    double nm = 2.15311535474403846e-8 * y, dm = y;
    nm = (nm + 5.64188496988670089e-1) * y; dm = (dm + 1.57449261107098347e01) * y;
    nm = (nm + 8.88314979438837594e00) * y; dm = (dm + 1.17693950891312499e02) * y;
    nm = (nm + 6.61191906371416295e01) * y; dm = (dm + 5.37181101862009858e02) * y;
    nm = (nm + 2.98635138197400131e02) * y; dm = (dm + 1.62138957456669019e03) * y;
    nm = (nm + 8.81952221241769090e02) * y; dm = (dm + 3.29079923573345963e03) * y;
    nm = (nm + 1.71204761263407058e03) * y; dm = (dm + 4.36261909014324716e03) * y;
    nm = (nm + 2.05107837782607147e03) * y; dm = (dm + 3.43936767414372164e03) * y;
    nm = nm + 1.23033935479799725e03;       dm = dm + 1.23033935480374942e03;
    const double Yl = vmin(Y, 1e60);
    const double P = 1.63153871373020978e-2 + Yl * (3.05326634961232344e-1 + Yl * (3.60344899949804439e-1 +
                     Yl * (1.25781726111229246e-1 + Yl * (1.60837851487422766e-2 + Yl * 6.58749161529837803e-4))));
    const double Q = 1.0 + Yl * (2.56852019228982242e00 + Yl * (1.87295284992346047e00 +
                     Yl * (5.27905102951428412e-1 + Yl * (6.05183413124413191e-2 + Yl * 2.33520497626869185e-3))));
    const long i1 = y <= 0.46875, i3 = y > 4.0;
    const double YQ = Yl * Q;
    const double N = sel(i1, ex * (ds - y * ns), sel(i3, 5.6418958354775628695e-1 * YQ - P, nm));
    const double D = sel(i1, ds, sel(i3, y * YQ, dm));
    return N / D;
}

/* Normalised Black call b(x,s) for x <= 0 (h = x/s, t = s/2, e = exp(x/2)), its vega
   bp = db/ds = e_ht/sqrt(2 pi), e_ht = exp(-(h^2+t^2)/2), bmb = b_max - b, and, where h + t <= 0 or
   t < tau, the scaled bt = b/e_ht with lnE = ln(e_ht) (so that ln b = lnE + ln bt never underflows;
   *bt_ok = 0 elsewhere). As in lbr.c:
     t <  tau:       bt = small_t_expansion(a = 1 + h sqrt(pi/2) erfcx(-h/sqrt2)) / sqrt(2 pi)
     h + t <= 0:     bt = [erfcx(-(h+t)/sqrt2) - erfcx((t-h)/sqrt2)] / 2                  (region 4)
     h + t >  0:     b_max - b = e_ht [erfcx((h+t)/sqrt2) + erfcx((t-h)/sqrt2)] / 2, b = e - that
   using e^{-(h+t)^2/2} = e_ht/e, e^{-(h-t)^2/2} = e_ht e. One exp, two erfcx. h >= -IVF_H_MAX. */
IVF_INLINE void black_and_vega(double h, double s, double e, double *bt, long *bt_ok, double *lnE, double *b,
                               double *bmb, double *bp) {
    const double t = 0.5 * s, h2 = h * h, w = t * t;
    const double lE = -0.5 * (h2 + w), eht = exp(lE);
    *lnE = lE;
    *bp = ONE_OVER_SQRT_TWO_PI * eht;
    const long small = t < SMALL_T_THRESHOLD;
    const double u = ONE_OVER_SQRT_TWO * (h + t);
    const long up = u > 0;
    const double X1 = erfcx_pos(sel(small, -ONE_OVER_SQRT_TWO * h, fabs(u)));
    const double X2 = erfcx_pos(ONE_OVER_SQRT_TWO * (t - h));
    const double btS = ONE_OVER_SQRT_TWO_PI * small_t_expansion(1.0 + h * (SQRT_PI_OVER_TWO * X1), h2, w, t);
    const double btD = 0.5 * (X1 - X2);
    const double mU = 0.5 * eht * (X1 + X2);
    const long diff = small | !up;
    const double bd = sel(small, btS, btD);
    *bt = sel(diff, bd, 1.0);
    *bt_ok = diff;
    *b = sel(diff, eht * bd, e - mU);
    *bmb = sel(diff, e - eht * bd, mU);
}

/* Minimum rational cubic control parameter for shape preservation (lbr.c, after Delbourgo-Gregory). */
IVF_INLINE double minimum_rc_parameter(double dl, double dr, double s, long prefer) {
    const long sp = s >= 0, sn = s <= 0; /* mono: dl s >= 0 and dr s >= 0, without the products */
    const long mono = ((sp & (dl >= 0)) | (sn & (dl <= 0))) & ((sp & (dr >= 0)) | (sn & (dr <= 0))), convex = (dl <= s) & (s <= dr), concave = (dl >= s) & (s >= dr);
    const double pref = sel(prefer, RC_MAX, -DBL_MAX);
    const double r1a = sel(!is_zero(s), sdiv(dr + dl, s), pref);
    const double r1 = sel(mono, r1a, -DBL_MAX);
    const double smd = s - dl, drms = dr - s, drmdl = dr - dl;
    const double r2cc = sel(!(is_zero(smd) | is_zero(drms)), vmax(fabs(sdiv(drmdl, drms)), fabs(sdiv(drmdl, smd))), pref);
    const double r2o = sel(mono & prefer, RC_MAX, -DBL_MAX);
    const double r2 = sel(convex | concave, r2cc, r2o);
    return sel(!(mono | convex | concave), RC_MIN, vmax(RC_MIN, vmax(r1, r2)));
}

/* ---------------------------------------------------------------------------------------------- */
/* Vector kernel: m rows (multiple of IVF_PAD, 64-byte aligned buffers) of x <= 0, beta, e = b_max.  */
/* Writes s and ok (1.0 certified / 0.0 not).                                                       */
/* ---------------------------------------------------------------------------------------------- */

/* One Householder(3) step on the lane's objective (objL: 1/ln(b) - 1/ln(beta), objU:
   ln((b_max-beta)/(b_max-b)), else b - beta), in the dimensionless form of lbr.c's iteration:
   nu = newton/s, ha = halley*s, h3 = hh3*s^2, ds/s = nu (1 + ha nu/2) / (1 + nu (ha + h3 nu/6)),
   ds >= -s/2. Returns the new s, writes |ds|/s to *rel and ORs clamp bits into *bad.
   lnbeta is ln(beta) on objL lanes (-1 elsewhere), ilnbeta its reciprocal, lnmb = ln(b_max - beta)
   on objU lanes. Three divisions (1/s, one shared reciprocal, the Householder quotient) + erfcx. */
IVF_INLINE double householder_step(double s, double x, double beta, double e, double lnbeta, double ilnbeta,
                                   double lnmb, long objL, long objU, double *rel, long *bad) {
    const double is = 1.0 / s, xs = x * is;
    *bad |= xs < -IVF_H_MAX;
    const double h = vmax(xs, -IVF_H_MAX);
    double bt, lE, b, bmb, bp;
    long bt_ok;
    black_and_vega(h, s, e, &bt, &bt_ok, &lE, &b, &bmb, &bp);
    *bad |= (objL & ((bt < IVF_TINY) | !bt_ok)) | (objU & (bmb < IVF_TINY));
    bt = vmax(bt, IVF_TINY);
    bmb = vmax(bmb, IVF_TINY);
    const double N0 = sel(objL, bt, sel(objU, bmb, 1.0));        /* b/e_ht, b_max - b, or 1 */
    const double lg = log(N0);
    const double lnb = vmin(lE + lg, -1e-3);                    /* ln b on objL lanes */
    const double bps = bp * s;
    const double D0 = sel(objL, ONE_OVER_SQRT_TWO_PI * s, bps); /* s b' (/e_ht on objL lanes) */
    const double P3 = D0 * N0;
    *bad |= P3 < IVF_TINY;
    const double qq = 1.0 / (vmax(P3, IVF_TINY) * lnb);         /* 1/(D0 N0 lnb) */
    const double q = qq * lnb, ilnb = qq * vmax(P3, IVF_TINY);
    /* PG = D0/N0: s b'/b (lower) or s b'/(b_max - b) (upper); ipg = N0/D0 (= 1/(s b') on plain lanes) */
    const double PG0 = D0 * D0 * q;
    *bad |= (objL | objU) & (PG0 > IVF_BIG);
    const double PG = vmin(PG0, IVF_BIG), ipg = N0 * N0 * q;
    const double Hs = h * h - 0.25 * s * s;                     /* s b2/b1 (b_k = d^k b/ds^k) */
    const double H3s = Hs * Hs - 3.0 * h * h - 0.25 * s * s;    /* s^2 b3/b1                  */
    /* lower objective */
    const double c2 = 1.0 + 2.0 * ilnb;
    const double nuL = (lnbeta - lnb) * lnb * ilnbeta * ipg;
    const double haL = Hs - PG * c2;
    const double h3L = H3s + 2.0 * PG * PG * (1.0 + 3.0 * ilnb * (1.0 + ilnb)) - 3.0 * Hs * PG * c2;
    /* upper objective */
    const double nuU = -(lnmb - lg) * ipg;
    const double haU = Hs + PG;
    const double h3U = H3s + PG * (2.0 * PG + 3.0 * Hs);
    /* plain objective */
    const double nuP = (beta - b) * ipg;
    const double nuM = sel(objU, nuU, nuP), haM = sel(objU, haU, Hs), h3M = sel(objU, h3U, H3s);
    double nu = sel(objL, nuL, nuM);
    const double ha = sel(objL, haL, haM);
    const double h3 = sel(objL, h3L, h3M);
    *bad |= fabs(nu) > IVF_NU_MAX;
    nu = vmin(vmax(nu, -IVF_NU_MAX), IVF_NU_MAX);
    const double den = 1.0 + nu * (ha + h3 * nu * (1.0 / 6.0));
    *bad |= fabs(den) < 1e-200;
    double r = nu * (1.0 + 0.5 * ha * nu) / sel(fabs(den) < 1e-200, 1.0, den);
    r = vmax(r, -0.5); /* lbr.c: ds >= -s/2 */
    *bad |= r > 1e100;
    r = vmin(r, 1e100);
    *rel = fabs(r);
    double sn = s + s * r;
    *bad |= sn > IVF_S_HI;
    sn = vmin(sn, IVF_S_HI);
    *bad |= sn < IVF_S_LO;
    return vmax(sn, IVF_S_LO);
}

#ifdef IVF_DEBUG
#define IVF_DBG_ARGS , dptr REL, dptr BAD, dptr S0G
#else
#define IVF_DBG_ARGS
#endif
IVF_CLONES static void ivf_solve(long m, cdptr X0, cdptr B0, cdptr E0, dptr S0, dptr OK0 IVF_DBG_ARGS) {
    const double *X = __builtin_assume_aligned(X0, 64);
    const double *B = __builtin_assume_aligned(B0, 64);
    const double *E = __builtin_assume_aligned(E0, 64);
    double *S = __builtin_assume_aligned(S0, 64);
    double *OK = __builtin_assume_aligned(OK0, 64);
    m &= ~(long)(IVF_PAD - 1);
    for (long i = 0; i < m; i++) {
        const double x = X[i], beta = B[i], e = E[i], ax = -x, ie = 1.0 / e;
        long bad = 0;
        /* ---- inflection point s_c and the tangents' zero / b_max crossings s_l, s_h ---- */
        const double sc = sqrt(-2.0 * x);
        /* b(s_c) = e/2 - e^{-x/2} Phi(-s_c) = e/2 (1 - erfcx(s_c/sqrt2)) since h+t = 0 and s_c^2 = -2x */
        const double bc = 0.5 * e * (1.0 - erfcx_pos(ONE_OVER_SQRT_TWO * sc));
        const double ivc = SQRT_TWO_PI * ie;                              /* 1/b'(s_c) */
        const long lo = beta < bc;
        const double sl = sc - bc * ivc, sh = sc + (e - bc) * ivc;
        double ss = sel(lo, sl, sh);
        bad |= ss < 1e-150;
        ss = vmax(ss, 1e-150);
        const double iss = 1.0 / ss;
        double bs, mbs, vs, bts, lEs;
        long bts_ok;
        {
            const double xs = x * iss;
            bad |= xs < -IVF_H_MAX;
            black_and_vega(vmax(xs, -IVF_H_MAX), ss, e, &bts, &bts_ok, &lEs, &bs, &mbs, &vs);
        }
        bad |= vs < 1e-200;
        vs = vmax(vs, 1e-200);
        const long L = lo & (beta < bs), U = !lo & (beta > bs), MH = !lo & !(beta > bs);
        /* ---- lower map at s_l (L) / upper map at s_h (U): one erfcx, two exp ----
           Arguments are sanitised so that lanes of the other branches stay finite. */
        bad |= L & ((ss < 1e-30) | (ax < 1e-20));
        const double sm = sel(L, vmax(ss, 1e-30), sel(U, ss, 1.0));
        const double ism = sel(L, sel(ss < 1e-30, 1e30, iss), sel(U, iss, 1.0));
        const double z0 = sel(L, SQRT_ONE_OVER_THREE * ax * ism, 0.0);
        bad |= L & (z0 > 10.0);
        const double z = vmin(z0, 10.0), y = z * z, s2 = sm * sm;
        const double wu = sel(U, (x * ism) * (x * ism), 0.0);   /* U: s_h >= sqrt(2|x|), so wu <= |x|/2 */
        const double EA = exp(sel(L, -0.5 * y, 0.5 * wu));
        const double EB = exp(sel(L, y, wu) + 0.125 * s2);
        /* L: Phi(-z) = erfcx(z/sqrt2) e^{-z^2/2}/2, Phi(-z)/phi(z) = sqrt(pi/2) erfcx(z/sqrt2);
           U: Phi(-s/2) = erfcx(s/sqrt8) e^{-s^2/8}/2 with e^{-s^2/8} = EA^2/EB */
        const double Xm = erfcx_pos(ONE_OVER_SQRT_TWO * sel(L, z, 0.5 * sm));
        const double Phi = 0.5 * Xm * sel(L, EA, EA * EA / EB);
        const double fppL = PI_OVER_SIX * y * (ism * ism * ism) * Phi *
                            (8 * SQRT_THREE * sm * ax + (3 * s2 * (s2 - 8) - 8 * x * x) * (SQRT_PI_OVER_TWO * Xm)) * (EB * EB);
        const double fpL = TWO_PI * y * Phi * Phi * EB;
        const double fL = TWO_PI_OVER_SQRT_TWENTY_SEVEN * ax * (Phi * Phi * Phi);
        const double fU = Phi, fpU = -0.5 * EA, fppU = SQRT_PI_OVER_TWO * EB * wu * ism;
        const long u_fit = (fppU > -SQRT_DBL_MAX) & (fppU < SQRT_DBL_MAX);
        /* ---- one rational cubic interpolation, end points per branch ---- */
        /*            L          ML        MH        U                                   */
        /* x_l        0          b_l       b_c       b_h                                 */
        /* x_r        b_l        b_c       b_h       b_max                               */
        /* y_l        0          s_l       s_c       f_upper(s_h)                        */
        /* y_r        f_lower    s_c       s_h       0                                   */
        /* d_l        1          1/v_l     1/v_c     f_upper'                            */
        /* d_r        f_lower'   1/v_c     1/v_h     -1/2                                */
        const double ivs = 1.0 / vs;
        const double xl = sel(L, 0.0, sel(MH, bc, bs));
        const double xr = sel(lo, sel(L, bs, bc), sel(U, e, bs));
        const double yl = sel(lo, sel(L, 0.0, ss), sel(U, fU, sc));
        const double yr = sel(lo, sel(L, fL, sc), sel(U, 0.0, ss));
        const double dl = sel(lo, sel(L, 1.0, ivs), sel(U, fpU, ivc));
        const double dr = sel(lo, sel(L, fpL, ivc), sel(U, -0.5, ivs));
        const double d2 = sel(L, fppL, sel(U, fppU, 0.0));
        const long right = lo, prefer = L | U;
        double hh = xr - xl;
        bad |= !(hh > IVF_TINY);
        hh = sel(hh > IVF_TINY, hh, 1.0);
        const double ihh = 1.0 / hh;
        const double num = 0.5 * hh * d2 + (dr - dl);
        const double slope = (yr - yl) * ihh;
        const double den = sel(right, dr - slope, slope - dl);
        const double rlim = sel(num > 0, RC_MAX, RC_MIN);
        const double rfit = sel(is_zero(num), 0.0, sel(is_zero(den), rlim, sdiv(num, den)));
        const double rc = vmax(rfit, minimum_rc_parameter(dl, dr, slope, prefer));
        const double tt = vmin(vmax((beta - xl) * ihh, 0.0), 1.0), omt = 1.0 - tt;
        const double cubic = (yr * tt * tt * tt + (rc * yr - hh * dr) * tt * tt * omt + (rc * yl + hh * dl) * tt * omt * omt +
                              yl * omt * omt * omt) / (1.0 + (rc - 3.0) * tt * omt);
        double f = sel(rc >= RC_MAX, yr * tt + yl * omt, cubic);
        /* fall-backs to quadratic interpolation (lbr.c): t = beta/b_l (L), (beta - b_h)/(b_max - b_h) (U) */
        const double hU = e - bs;
        bad |= (L & (bs < IVF_TINY)) | (U & (hU < IVF_TINY));
        const double tq = sel(L, beta, beta - bs) / vmax(sel(L, bs, hU), IVF_TINY);
        const double fLq = (fL * tq + bs * (1.0 - tq)) * tq;
        const double fUq = (fU * (1.0 - tq) + 0.5 * hU * tq) * (1.0 - tq);
        const double fLs = sel(f > 0, f, fLq), fUs = sel(u_fit & (f > 0), f, fUq);
        f = sel(L, fLs, sel(U, fUs, f));
        /* ---- inverse maps through one normal quantile ---- */
        const double axs = vmax(ax, IVF_TINY), iax = 1.0 / axs;
        const double uL = cbrt(vmax(f, IVF_TINY) * (iax * (1.0 / TWO_PI_OVER_SQRT_TWENTY_SEVEN)));
        const double u = sel(L, uL, sel(U, f, 0.25));
        bad |= (L | U) & !((u > 1e-300) & (u < 0.5));
        const double iq = inverse_norm_cdf(vmin(vmax(u, 1e-300), 0.5));
        double s = sel(L, ax / vmax(SQRT_THREE * fabs(iq), IVF_TINY), sel(U, -2.0 * iq, f));
        bad |= L & (ax < IVF_TINY);
        bad |= !((s > IVF_S_LO) & (s < IVF_S_HI));
        s = vmin(vmax(s, IVF_S_LO), IVF_S_HI);
        /* ---- Householder(3) iterations on the branch objective ---- */
        const long objL = L, objU = U & (beta > 0.5 * e);
        const double lgb = log(sel(objL, beta, sel(objU, e - beta, 1.0)));
        const double lnbeta = sel(objL, lgb, -1.0), ilnbeta = 1.0 / lnbeta;
        double rel = 1.0;
#ifdef IVF_DEBUG
        S0G[i] = s; BAD[i] = (double)bad + 2.0 * (double)L + 4.0 * (double)U + 8.0 * (double)MH;
#endif
        s = householder_step(s, x, beta, e, lnbeta, ilnbeta, lgb, objL, objU, &rel, &bad);
#if IVF_NITER >= 2
        s = householder_step(s, x, beta, e, lnbeta, ilnbeta, lgb, objL, objU, &rel, &bad);
#endif
#if IVF_NITER >= 3
        s = householder_step(s, x, beta, e, lnbeta, ilnbeta, lgb, objL, objU, &rel, &bad);
#endif
#ifdef IVF_DEBUG
        REL[i] = rel; BAD[i] += 16.0 * (double)bad;
#endif
        S[i] = s;
        OK[i] = sel(!bad & (rel <= IVF_CERT_TOL), 1.0, 0.0);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Pre-pass: classification and normalisation (same decisions as pmnb_lbr_implied_vol)              */
/* ---------------------------------------------------------------------------------------------- */

/* cls: 0 vector path, 1 below intrinsic, 2 at/above maximum, 3 no time value (price == intrinsic),
   5 delegated to LBR. For cls 0 rows also writes x_eff = -|ln(F/K)| <= 0, beta and e = exp(x_eff/2). */
IVF_CLONES static void ivf_prepass(long n, cdptr P0, cdptr F0, cdptr K0, cdptr W0, dptr XE0, dptr BE0, dptr EE0,
                                   dptr CLS0) {
    const double *P = __builtin_assume_aligned(P0, 64), *F = __builtin_assume_aligned(F0, 64);
    const double *K = __builtin_assume_aligned(K0, 64), *W = __builtin_assume_aligned(W0, 64);
    double *XE = __builtin_assume_aligned(XE0, 64), *BE = __builtin_assume_aligned(BE0, 64);
    double *EE = __builtin_assume_aligned(EE0, 64), *CLS = __builtin_assume_aligned(CLS0, 64);
    n &= ~(long)(IVF_PAD - 1);
    for (long i = 0; i < n; i++) {
        const double p = P[i], f = F[i], k = K[i], q = sel(W[i] < 0, -1.0, 1.0);
        const double intrinsic = vmax(sel(q < 0, k - f, f - k), 0.0);
        const double max_price = sel(q < 0, k, f);
        const long below = p < intrinsic, above = p >= max_price;
        const long in_range = (f >= IVF_F_MIN) & (f <= IVF_F_MAX) & (k >= IVF_F_MIN) & (k <= IVF_F_MAX);
        const long valid = in_range & !below & !above;
        const double fs = sel(valid, f, 1.0), ks = sel(valid, k, 1.0), ps = sel(valid, p, 0.5);
        const double r = fs / ks;
        const double x = log(r);
        const long itm = ((q > 0) & (r > 1.0)) | ((q < 0) & (r < 1.0)); /* q ln(F/K) > 0, as in lbr.c */
        const double potm = sel(itm, ps - sel(valid, intrinsic, 0.0), ps);
        const double beta = potm / (sqrt(fs) * sqrt(ks));
        const double xe = -fabs(x);
        const double e = exp(0.5 * xe);
        const long fast = valid & (fabs(x) <= IVF_X_MAX) & (beta >= IVF_BETA_MIN) & (beta < e * (1.0 - IVF_TOP_MARGIN));
        XE[i] = xe;
        BE[i] = beta;
        EE[i] = e;
        double c = sel(fast, 0.0, 5.0);
        c = sel(potm == 0.0, 3.0, c);
        c = sel(in_range, c, 5.0);
        c = sel(above, 2.0, c);
        CLS[i] = sel(below, 1.0, c);
    }
}

/* ---------------------------------------------------------------------------------------------- */
/* Driver                                                                                           */
/* ---------------------------------------------------------------------------------------------- */

#define IVF_ALIGNED __attribute__((aligned(64)))

/* 1 when the vector path pays off: the x86-64-v3/v4 clones (AVX2/AVX-512 libmvec) are selected, or
   a -march=native build has AVX2+FMA. Elsewhere (baseline x86-64, where gcc cannot vectorise the
   kernel and the scalar transcription of the all-branches code is ~2x slower than LBR; other
   compilers or architectures) every row goes to the scalar LBR. */
int pmnb_iv_fast_vectorized(void) {
#if defined(PMNB_NATIVE)
#if defined(__AVX2__) && defined(__FMA__)
    return 1;
#else
    return 0;
#endif
#elif defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v3") != 0;
#else
    return 0;
#endif
}

void pmnb_iv_fast_array_stats(long n, const double *price, const double *F, const double *K,
                              const double *T, const double *w, double *out_sigma, int *out_code,
                              long *n_fallback) {
    /* Block buffers on the stack (~23 kB): inputs copied to aligned, padded arrays so that both
       vector loops run over full, aligned vectors only (no peeled or remainder iterations, whose
       scalar libm results would make a row's bits depend on its position). */
    double pp[IVF_BLOCK] IVF_ALIGNED, ff[IVF_BLOCK] IVF_ALIGNED, kk[IVF_BLOCK] IVF_ALIGNED, ww[IVF_BLOCK] IVF_ALIGNED;
    double xe[IVF_BLOCK] IVF_ALIGNED, be[IVF_BLOCK] IVF_ALIGNED, ee[IVF_BLOCK] IVF_ALIGNED, cls[IVF_BLOCK] IVF_ALIGNED;
    double X[IVF_BLOCK] IVF_ALIGNED, B[IVF_BLOCK] IVF_ALIGNED, E[IVF_BLOCK] IVF_ALIGNED;
    double S[IVF_BLOCK] IVF_ALIGNED, OK[IVF_BLOCK] IVF_ALIGNED;
    int idx[IVF_BLOCK];
    long nfb = 0;
    if (!pmnb_iv_fast_vectorized()) {
        pmnb_lbr_implied_vol_array(n, price, F, K, T, w, out_sigma, out_code);
        if (n_fallback) *n_fallback = n;
        return;
    }
    for (long i0 = 0; i0 < n; i0 += IVF_BLOCK) {
        const long nb = n - i0 < IVF_BLOCK ? n - i0 : IVF_BLOCK;
        const long nbp = (nb + IVF_PAD - 1) & ~(long)(IVF_PAD - 1);
        for (long j = 0; j < nb; j++) {
            pp[j] = price[i0 + j];
            ff[j] = F[i0 + j];
            kk[j] = K[i0 + j];
            ww[j] = w[i0 + j];
        }
        for (long j = nb; j < nbp; j++) { /* benign padding rows (never read back) */
            pp[j] = 0.05;
            ff[j] = 1.0;
            kk[j] = 1.25;
            ww[j] = 1.0;
        }
        ivf_prepass(nbp, pp, ff, kk, ww, xe, be, ee, cls);
        long m = 0;
        for (long j = 0; j < nb; j++) {
            if (cls[j] == 0.0) {
                idx[m] = (int)j;
                X[m] = xe[j];
                B[m] = be[j];
                E[m] = ee[j];
                m++;
            } else if (cls[j] == 3.0) {
                out_sigma[i0 + j] = 0.0;
                out_code[i0 + j] = PMNB_LBR_NO_TIME_VALUE;
            } else { /* bounds (exact NaN results) and out-of-domain rows */
                out_sigma[i0 + j] = pmnb_lbr_implied_vol(price[i0 + j], F[i0 + j], K[i0 + j], T[i0 + j],
                                                         w[i0 + j], &out_code[i0 + j]);
                nfb += cls[j] == 5.0;
            }
        }
        if (m == 0) continue;
        const long mp = (m + IVF_PAD - 1) & ~(long)(IVF_PAD - 1);
        for (long k = m; k < mp; k++) { /* benign padding rows (never read back) */
            X[k] = -0.25;
            B[k] = 0.05;
            E[k] = 0.8824969025845955; /* exp(-0.125) */
        }
#ifdef IVF_DEBUG
        double d1[IVF_BLOCK] IVF_ALIGNED, d2[IVF_BLOCK] IVF_ALIGNED, d3[IVF_BLOCK] IVF_ALIGNED;
        ivf_solve(mp, X, B, E, S, OK, d1, d2, d3);
#else
        ivf_solve(mp, X, B, E, S, OK);
#endif
        for (long k = 0; k < m; k++) {
            const long j = i0 + idx[k];
            if (OK[k] != 0.0) {
                out_sigma[j] = S[k] / sqrt(T[j]);
                out_code[j] = PMNB_LBR_OK;
            } else {
                out_sigma[j] = pmnb_lbr_implied_vol(price[j], F[j], K[j], T[j], w[j], &out_code[j]);
                nfb++;
            }
        }
    }
    if (n_fallback) *n_fallback = nfb;
}

#ifdef IVF_DEBUG
/* Test hooks (debug builds only): buffers must be 64-byte aligned, m and n multiples of 16. */
void pmnb_ivf_debug_solve(long m, const double *X, const double *B, const double *E, double *S, double *OK,
                          double *REL, double *BAD, double *S0G) {
    ivf_solve(m, X, B, E, S, OK, REL, BAD, S0G);
}
void pmnb_ivf_debug_prepass(long n, const double *P, const double *F, const double *K, const double *W,
                            double *XE, double *BE, double *EE, double *CLS) {
    ivf_prepass(n, P, F, K, W, XE, BE, EE, CLS);
}
#endif

void pmnb_iv_fast_array(long n, const double *price, const double *F, const double *K, const double *T,
                        const double *w, double *out_sigma, int *out_code) {
    pmnb_iv_fast_array_stats(n, price, F, K, T, w, out_sigma, out_code, NULL);
}
