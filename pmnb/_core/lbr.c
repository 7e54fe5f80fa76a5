/*
 * pmnb/_core/lbr.c -- implied Black volatility by Peter Jaeckel's "Let's Be Rational".
 *
 * Self-contained C99 port (pure C + libm, no global mutable state, thread-safe, correct
 * without -ffast-math) of Peter Jaeckel's reference implementation LetsBeRational
 * (lets_be_rational.cpp, rationalcubic.cpp, normaldistribution.cpp, erf_cody.cpp), which
 * resides at www.jaeckel.org/LetsBeRational.7z .
 *
 * Sources:
 *   [1] P. Jaeckel, "Let's Be Rational", Wilmott Magazine, January 2015, pp. 40-53.
 *   [2] P. Jaeckel, "Let's Be Rational", revised version of [1] (2016), www.jaeckel.org.
 *   [3] W. J. Cody, "Rational Chebyshev approximations for the error function",
 *       Mathematics of Computation 23 (1969), pp. 631-638  (erf / erfc / erfcx, CALERF).
 *   [4] M. J. Wichura, "Algorithm AS 241: The percentage points of the normal distribution",
 *       Applied Statistics 37(3) (1988), pp. 477-484  (inverse normal cdf, PPND16).
 *   [5] R. Delbourgo, J. A. Gregory, "Shape preserving piecewise rational interpolation",
 *       SIAM J. Sci. Stat. Comput. 6 (1985)  (rational cubic interpolation).
 *   [6] M. Abramowitz, I. Stegun, Handbook of Mathematical Functions, (26.2.12).
 *
 * The algorithm (four-branch transformed rational initial guess followed by two
 * Householder(3) iterations on branch-specific objective functions) and all numerical
 * constants are those of the reference code; only the C++ -> C99 transcription, the
 * argument/result conventions of the pmnb_* entry points (reason codes, NaN results) and
 * some purely arithmetical inlining are new.  The reference code's global (atomic)
 * iteration-count switch is replaced by the compile-time constant 2.
 *
 * Licence notice of the ported reference code (preserved as required):
 *
 * ======================================================================================
 * Copyright © 2013-2014 Peter Jäckel.
 *
 * Permission to use, copy, modify, and distribute this software is freely granted,
 * provided that this notice is preserved.
 *
 * WARRANTY DISCLAIMER
 * The Software is provided "as is" without warranty of any kind, either express or implied,
 * including without limitation any implied warranties of condition, uninterrupted use,
 * merchantability, fitness for a particular purpose, or non-infringement.
 * ======================================================================================
 */

#include "lbr.h"

#include <float.h>
#include <math.h>

#if defined(__GNUC__) || defined(__clang__)
#define LBR_QNAN (__builtin_nan(""))
#define LBR_INLINE static inline __attribute__((always_inline))
#else
#define LBR_QNAN (NAN)
#define LBR_INLINE static inline
#endif

/* ------------------------------------------------------------------------------------ */
/* Constants (reference values; the derived ones are the correctly rounded doubles)      */
/* ------------------------------------------------------------------------------------ */

#define ONE_OVER_SQRT_TWO             0.7071067811865475244008443621048490392848359376887
#define ONE_OVER_SQRT_TWO_PI          0.3989422804014326779399460599343818684758586311649
#define SQRT_TWO_PI                   2.506628274631000502415765284811045253006986740610
#define TWO_PI                        6.283185307179586476925286766559005768394338798750
#define SQRT_PI_OVER_TWO              1.253314137315500251207882642405522626503493370305 /* sqrt(pi/2) */
#define SQRT_THREE                    1.732050807568877293527446341505872366942805253810
#define SQRT_ONE_OVER_THREE           0.577350269189625764509148780501957455647601751270
#define TWO_PI_OVER_SQRT_TWENTY_SEVEN 1.209199576156145233729385505094770488189377498728 /* 2*pi/sqrt(27) */
#define PI_OVER_SIX                   0.523598775598298873077107230546583814032861566563

#define SQRT_DBL_EPSILON           1.4901161193847656e-08  /* sqrt(DBL_EPSILON) = 2^-26  */
#define FOURTH_ROOT_DBL_EPSILON    1.220703125e-04         /* DBL_EPSILON^(1/4) = 2^-13   */
#define SIXTEENTH_ROOT_DBL_EPSILON 0.10511205190671433     /* DBL_EPSILON^(1/16)          */
#define SQRT_DBL_MIN               1.4916681462400413e-154 /* sqrt(DBL_MIN) = 2^-511      */
#define SQRT_DBL_MAX               1.3407807929942596e+154 /* sqrt(DBL_MAX), rounded      */

/* Set this to 0 if you want positive results for (positive) denormalized inputs, else to DBL_MIN.
   Note that you cannot achieve full machine accuracy from denormalized inputs! */
#define DENORMALIZATION_CUTOFF 0.0

/* Number of Householder(3) iterations: two, as in the paper (reference default). */
#define IMPLIED_VOLATILITY_MAXIMUM_ITERATIONS 2

/* η */
#define ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD (-10.0)
/* τ := 2·ε^(1/16) */
#define SMALL_T_EXPANSION_OF_NORMALIZED_BLACK_THRESHOLD (2.0 * SIXTEENTH_ROOT_DBL_EPSILON)

/* Rational cubic control parameter bounds: -(1-sqrt(DBL_EPSILON)) and 2/DBL_EPSILON^2. */
#define MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE (-(1.0 - SQRT_DBL_EPSILON))
#define MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE (2.0 / (DBL_EPSILON * DBL_EPSILON))

/* norm_cdf() switches to the asymptotic expansion (26.2.12) below these thresholds. */
#define NORM_CDF_ASYMPTOTIC_EXPANSION_FIRST_THRESHOLD (-10.0)
#define NORM_CDF_ASYMPTOTIC_EXPANSION_SECOND_THRESHOLD (-1.0 / SQRT_DBL_EPSILON)

LBR_INLINE double lbr_max(double a, double b) { return a < b ? b : a; } /* == std::max(a,b) */
LBR_INLINE double square(double x) { return x * x; }
LBR_INLINE int is_below_horizon(double x) { return fabs(x) < DENORMALIZATION_CUTOFF; }
LBR_INLINE int is_zero(double x) { return fabs(x) < DBL_MIN; }

/* ------------------------------------------------------------------------------------ */
/* W. J. Cody's erfc / erfcx (CALERF, [3]), IEEE double machine constants                */
/* ------------------------------------------------------------------------------------ */

#define CODY_XINF   1.79e308
#define CODY_XNEG   (-26.628)
#define CODY_XSMALL 1.11e-16
#define CODY_XBIG   26.543
#define CODY_XHUGE  6.71e7
#define CODY_XMAX   2.53e307
#define CODY_SQRPI  5.6418958354775628695e-1 /* 1/sqrt(pi) */
#define CODY_THRESH 0.46875

/* Coefficients for approximation to erf in first interval */
static const double cody_a[5] = {3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
                                 3.20937758913846947e03, 1.85777706184603153e-1};
static const double cody_b[4] = {2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
                                 2.84423683343917062e03};
/* Coefficients for approximation to erfc in second interval */
static const double cody_c[9] = {5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
                                 2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
                                 2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8};
static const double cody_d[8] = {1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
                                 1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
                                 3.43936767414372164e03, 1.23033935480374942e03};
/* Coefficients for approximation to erfc in third interval */
static const double cody_p[6] = {3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
                                 1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2};
static const double cody_q[5] = {2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
                                 6.05183413124413191e-2, 2.33520497626869185e-3};

/* AINT(v) for |v| < 2^31: truncation towards zero (identical to the reference d_int()). */
LBR_INLINE double cody_aint(double v) { return (double)(long)v; }

/* Rational approximation on the first interval |x| <= 0.46875: returns erf(x). */
LBR_INLINE double cody_erf_small(double x, double y) {
    const double ysq = y > CODY_XSMALL ? y * y : 0.0;
    double xnum = cody_a[4] * ysq, xden = ysq;
    xnum = (xnum + cody_a[0]) * ysq; xden = (xden + cody_b[0]) * ysq;
    xnum = (xnum + cody_a[1]) * ysq; xden = (xden + cody_b[1]) * ysq;
    xnum = (xnum + cody_a[2]) * ysq; xden = (xden + cody_b[2]) * ysq;
    return x * (xnum + cody_a[3]) / (xden + cody_b[3]);
}

/* Second interval 0.46875 < y <= 4: returns erfcx(y). */
LBR_INLINE double cody_erfcx_mid(double y) {
    double xnum = cody_c[8] * y, xden = y;
    xnum = (xnum + cody_c[0]) * y; xden = (xden + cody_d[0]) * y;
    xnum = (xnum + cody_c[1]) * y; xden = (xden + cody_d[1]) * y;
    xnum = (xnum + cody_c[2]) * y; xden = (xden + cody_d[2]) * y;
    xnum = (xnum + cody_c[3]) * y; xden = (xden + cody_d[3]) * y;
    xnum = (xnum + cody_c[4]) * y; xden = (xden + cody_d[4]) * y;
    xnum = (xnum + cody_c[5]) * y; xden = (xden + cody_d[5]) * y;
    xnum = (xnum + cody_c[6]) * y; xden = (xden + cody_d[6]) * y;
    return (xnum + cody_c[7]) / (xden + cody_d[7]);
}

/* Third interval 4 < y < XHUGE: returns erfcx(y). */
LBR_INLINE double cody_erfcx_large(double y) {
    const double ysq = 1.0 / (y * y);
    double xnum = cody_p[5] * ysq, xden = ysq;
    xnum = (xnum + cody_p[0]) * ysq; xden = (xden + cody_q[0]) * ysq;
    xnum = (xnum + cody_p[1]) * ysq; xden = (xden + cody_q[1]) * ysq;
    xnum = (xnum + cody_p[2]) * ysq; xden = (xden + cody_q[2]) * ysq;
    xnum = (xnum + cody_p[3]) * ysq; xden = (xden + cody_q[3]) * ysq;
    const double result = ysq * (xnum + cody_p[4]) / (xden + cody_q[4]);
    return (CODY_SQRPI - result) / y;
}

/* exp(-y*y) evaluated as Cody does, splitting y = ysq + (y-ysq) with ysq = AINT(16y)/16. */
LBR_INLINE double cody_exp_minus_square(double y) {
    const double ysq = cody_aint(y * 16.0) / 16.0, del = (y - ysq) * (y + ysq);
    return exp(-ysq * ysq) * exp(-del);
}

/* erfc(x)  (CALERF with JINT = 1) */
static double erfc_cody(double x) {
    const double y = fabs(x);
    double result;
    if (y <= CODY_THRESH)
        return 1.0 - cody_erf_small(x, y);
    else if (y <= 4.0)
        result = cody_erfcx_mid(y) * cody_exp_minus_square(y);
    else if (y >= CODY_XBIG)
        result = 0.0;
    else
        result = cody_erfcx_large(y) * cody_exp_minus_square(y);
    return x < 0.0 ? 2.0 - result : result;
}

/* erfcx(x) = exp(x*x)*erfc(x)  (CALERF with JINT = 2) */
static double erfcx_cody(double x) {
    const double y = fabs(x);
    double result;
    if (y <= CODY_THRESH) {
        const double ysq = y > CODY_XSMALL ? y * y : 0.0;
        return exp(ysq) * (1.0 - cody_erf_small(x, y));
    } else if (y <= 4.0) {
        result = cody_erfcx_mid(y);
    } else if (y >= CODY_XBIG) {
        if (y >= CODY_XMAX)
            result = 0.0;
        else if (y >= CODY_XHUGE)
            result = CODY_SQRPI / y;
        else
            result = cody_erfcx_large(y);
    } else {
        result = cody_erfcx_large(y);
    }
    if (x < 0.0) {
        if (x < CODY_XNEG) {
            result = CODY_XINF;
        } else {
            const double ysq = cody_aint(x * 16.0) / 16.0, del = (x - ysq) * (x + ysq);
            const double e = exp(ysq * ysq) * exp(del);
            result = (e + e) - result;
        }
    }
    return result;
}

/* ------------------------------------------------------------------------------------ */
/* Normal distribution (normaldistribution.cpp)                                          */
/* ------------------------------------------------------------------------------------ */

LBR_INLINE double norm_pdf(double x) { return ONE_OVER_SQRT_TWO_PI * exp(-0.5 * x * x); }

static double norm_cdf(double z) {
    if (z <= NORM_CDF_ASYMPTOTIC_EXPANSION_FIRST_THRESHOLD) {
        /* Asymptotic expansion for very negative z following (26.2.12) on page 408 of [6]. */
        double sum = 1;
        if (z >= NORM_CDF_ASYMPTOTIC_EXPANSION_SECOND_THRESHOLD) {
            double zsqr = z * z, i = 1, g = 1, x, y, a = DBL_MAX, lasta;
            do {
                lasta = a;
                x = (4 * i - 3) / zsqr;
                y = x * ((4 * i - 1) / zsqr);
                a = g * (x - y);
                sum -= a;
                g *= y;
                ++i;
                a = fabs(a);
            } while (lasta > a && a >= fabs(sum * DBL_EPSILON));
        }
        return -norm_pdf(z) * sum / z;
    }
    return 0.5 * erfc_cody(-z * ONE_OVER_SQRT_TWO);
}

/* ALGORITHM AS241 APPL. STATIST. (1988) VOL. 37, NO. 3 ([4]).
   Produces the normal deviate Z corresponding to a given lower tail area of u;
   Z is accurate to about 1 part in 10**16. */
static double inverse_norm_cdf(double u) {
    static const double split1 = 0.425, split2 = 5.0, const1 = 0.180625, const2 = 1.6;
    /* Coefficients for P close to 0.5 */
    static const double A0 = 3.3871328727963666080E0, A1 = 1.3314166789178437745E+2,
                        A2 = 1.9715909503065514427E+3, A3 = 1.3731693765509461125E+4,
                        A4 = 4.5921953931549871457E+4, A5 = 6.7265770927008700853E+4,
                        A6 = 3.3430575583588128105E+4, A7 = 2.5090809287301226727E+3,
                        B1 = 4.2313330701600911252E+1, B2 = 6.8718700749205790830E+2,
                        B3 = 5.3941960214247511077E+3, B4 = 2.1213794301586595867E+4,
                        B5 = 3.9307895800092710610E+4, B6 = 2.8729085735721942674E+4,
                        B7 = 5.2264952788528545610E+3;
    /* Coefficients for P not close to 0, 0.5 or 1. */
    static const double C0 = 1.42343711074968357734E0, C1 = 4.63033784615654529590E0,
                        C2 = 5.76949722146069140550E0, C3 = 3.64784832476320460504E0,
                        C4 = 1.27045825245236838258E0, C5 = 2.41780725177450611770E-1,
                        C6 = 2.27238449892691845833E-2, C7 = 7.74545014278341407640E-4,
                        D1 = 2.05319162663775882187E0, D2 = 1.67638483018380384940E0,
                        D3 = 6.89767334985100004550E-1, D4 = 1.48103976427480074590E-1,
                        D5 = 1.51986665636164571966E-2, D6 = 5.47593808499534494600E-4,
                        D7 = 1.05075007164441684324E-9;
    /* Coefficients for P very close to 0 or 1 */
    static const double E0 = 6.65790464350110377720E0, E1 = 5.46378491116411436990E0,
                        E2 = 1.78482653991729133580E0, E3 = 2.96560571828504891230E-1,
                        E4 = 2.65321895265761230930E-2, E5 = 1.24266094738807843860E-3,
                        E6 = 2.71155556874348757815E-5, E7 = 2.01033439929228813265E-7,
                        F1 = 5.99832206555887937690E-1, F2 = 1.36929880922735805310E-1,
                        F3 = 1.48753612908506148525E-2, F4 = 7.86869131145613259100E-4,
                        F5 = 1.84631831751005468180E-5, F6 = 1.42151175831644588870E-7,
                        F7 = 2.04426310338993978564E-15;
    if (u <= 0) return log(u);
    if (u >= 1) return log(1 - u);
    const double q = u - 0.5;
    if (fabs(q) <= split1) {
        const double r = const1 - q * q;
        return q * (((((((A7 * r + A6) * r + A5) * r + A4) * r + A3) * r + A2) * r + A1) * r + A0) /
               (((((((B7 * r + B6) * r + B5) * r + B4) * r + B3) * r + B2) * r + B1) * r + 1.0);
    } else {
        double r = q < 0.0 ? u : 1.0 - u, ret;
        r = sqrt(-log(r));
        if (r < split2) {
            r = r - const2;
            ret = (((((((C7 * r + C6) * r + C5) * r + C4) * r + C3) * r + C2) * r + C1) * r + C0) /
                  (((((((D7 * r + D6) * r + D5) * r + D4) * r + D3) * r + D2) * r + D1) * r + 1.0);
        } else {
            r = r - split2;
            ret = (((((((E7 * r + E6) * r + E5) * r + E4) * r + E3) * r + E2) * r + E1) * r + E0) /
                  (((((((F7 * r + F6) * r + F5) * r + F4) * r + F3) * r + F2) * r + F1) * r + 1.0);
        }
        return q < 0.0 ? -ret : ret;
    }
}

/* ------------------------------------------------------------------------------------ */
/* Rational cubic interpolation (rationalcubic.cpp, after [5])                           */
/* ------------------------------------------------------------------------------------ */

static double rational_cubic_interpolation(double x, double x_l, double x_r, double y_l, double y_r,
                                           double d_l, double d_r, double r) {
    const double h = (x_r - x_l);
    if (fabs(h) <= 0) return 0.5 * (y_l + y_r);
    /* r should be greater than -1. We do not use assert(r > -1) here in order to allow values
       such as NaN to be propagated as they should. */
    const double t = (x - x_l) / h;
    if (!(r >= MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE)) {
        const double omt = 1 - t, t2 = t * t, omt2 = omt * omt;
        /* Formula (2.4) divided by formula (2.5) */
        return (y_r * t2 * t + (r * y_r - h * d_r) * t2 * omt + (r * y_l + h * d_l) * t * omt2 +
                y_l * omt2 * omt) /
               (1 + (r - 3) * t * omt);
    }
    /* Linear interpolation without over-or underflow. */
    return y_r * t + y_l * (1 - t);
}

static double rational_cubic_control_parameter_to_fit_second_derivative_at_left_side(
    double x_l, double x_r, double y_l, double y_r, double d_l, double d_r, double second_derivative_l) {
    const double h = (x_r - x_l), numerator = 0.5 * h * second_derivative_l + (d_r - d_l);
    if (is_zero(numerator)) return 0;
    const double denominator = (y_r - y_l) / h - d_l;
    if (is_zero(denominator))
        return numerator > 0 ? MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE
                             : MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
    return numerator / denominator;
}

static double rational_cubic_control_parameter_to_fit_second_derivative_at_right_side(
    double x_l, double x_r, double y_l, double y_r, double d_l, double d_r, double second_derivative_r) {
    const double h = (x_r - x_l), numerator = 0.5 * h * second_derivative_r + (d_r - d_l);
    if (is_zero(numerator)) return 0;
    const double denominator = d_r - (y_r - y_l) / h;
    if (is_zero(denominator))
        return numerator > 0 ? MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE
                             : MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
    return numerator / denominator;
}

static double minimum_rational_cubic_control_parameter(double d_l, double d_r, double s,
                                                       int preferShapePreservationOverSmoothness) {
    const int monotonic = d_l * s >= 0 && d_r * s >= 0, convex = d_l <= s && s <= d_r,
              concave = d_l >= s && s >= d_r;
    if (!monotonic && !convex && !concave) /* If 3==r_non_shape_preserving_target, this means revert to standard cubic. */
        return MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE;
    const double d_r_m_d_l = d_r - d_l, d_r_m_s = d_r - s, s_m_d_l = s - d_l;
    double r1 = -DBL_MAX, r2 = r1;
    /* If monotonicity on this interval is possible, set r1 to satisfy the monotonicity condition (3.8). */
    if (monotonic) {
        if (!is_zero(s)) /* (3.8), avoiding division by zero. */
            r1 = (d_r + d_l) / s; /* (3.8) */
        else if (preferShapePreservationOverSmoothness) /* If division by zero would occur, and shape preservation is preferred, set value to enforce linear interpolation. */
            r1 = MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE; /* This value enforces linear interpolation. */
    }
    if (convex || concave) {
        if (!(is_zero(s_m_d_l) || is_zero(d_r_m_s))) /* (3.18), avoiding division by zero. */
            r2 = lbr_max(fabs(d_r_m_d_l / d_r_m_s), fabs(d_r_m_d_l / s_m_d_l));
        else if (preferShapePreservationOverSmoothness)
            r2 = MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE; /* This value enforces linear interpolation. */
    } else if (monotonic && preferShapePreservationOverSmoothness)
        r2 = MAXIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE; /* This enforces linear interpolation along segments that are inconsistent with the slopes on the boundaries, e.g., a perfectly horizontal segment that has negative slopes on either edge. */
    return lbr_max(MINIMUM_RATIONAL_CUBIC_CONTROL_PARAMETER_VALUE, lbr_max(r1, r2));
}

static double convex_rational_cubic_control_parameter_to_fit_second_derivative_at_left_side(
    double x_l, double x_r, double y_l, double y_r, double d_l, double d_r, double second_derivative_l,
    int preferShapePreservationOverSmoothness) {
    const double r = rational_cubic_control_parameter_to_fit_second_derivative_at_left_side(
        x_l, x_r, y_l, y_r, d_l, d_r, second_derivative_l);
    const double r_min = minimum_rational_cubic_control_parameter(d_l, d_r, (y_r - y_l) / (x_r - x_l),
                                                                  preferShapePreservationOverSmoothness);
    return lbr_max(r, r_min);
}

static double convex_rational_cubic_control_parameter_to_fit_second_derivative_at_right_side(
    double x_l, double x_r, double y_l, double y_r, double d_l, double d_r, double second_derivative_r,
    int preferShapePreservationOverSmoothness) {
    const double r = rational_cubic_control_parameter_to_fit_second_derivative_at_right_side(
        x_l, x_r, y_l, y_r, d_l, d_r, second_derivative_r);
    const double r_min = minimum_rational_cubic_control_parameter(d_l, d_r, (y_r - y_l) / (x_r - x_l),
                                                                  preferShapePreservationOverSmoothness);
    return lbr_max(r, r_min);
}

/* ------------------------------------------------------------------------------------ */
/* Normalised Black function (lets_be_rational.cpp)                                      */
/* ------------------------------------------------------------------------------------ */

static double householder_factor(double newton, double halley, double hh3) {
    return (1 + 0.5 * halley * newton) / (1 + newton * (halley + hh3 * newton / 6));
}

static double normalised_intrinsic(double x, double q /* q=±1 */) {
    if (q * x <= 0) return 0;
    const double x2 = x * x;
    if (x2 < 98 * FOURTH_ROOT_DBL_EPSILON) /* The factor 98 is computed from last coefficient: √√92897280 = 98.1749 */
        return fabs(lbr_max((q < 0 ? -1 : 1) * x *
                                (1 + x2 * ((1.0 / 24.0) +
                                           x2 * ((1.0 / 1920.0) + x2 * ((1.0 / 322560.0) + (1.0 / 92897280.0) * x2)))),
                            0.0));
    const double b_max = exp(0.5 * x), one_over_b_max = 1 / b_max;
    return fabs(lbr_max((q < 0 ? -1 : 1) * (b_max - one_over_b_max), 0.));
}

static double normalised_intrinsic_call(double x) { return normalised_intrinsic(x, 1); }

/* Asymptotic expansion of
 *
 *              b  =  Φ(h+t)·exp(x/2) - Φ(h-t)·exp(-x/2)
 * with
 *              h  =  x/s   and   t  =  s/2
 * which makes
 *              b  =  Φ(h+t)·exp(h·t) - Φ(h-t)·exp(-h·t)
 *
 *                    exp(-(h²+t²)/2)
 *                 =  ---------------  ·  [ Y(h+t) - Y(h-t) ]
 *                        √(2π)
 * with
 *           Y(z) := Φ(z)/φ(z)
 *
 * for large negative (t-|h|) by the aid of Abramowitz & Stegun (26.2.12) where Φ(z) = φ(z)/|z|·[1-1/z^2+...].
 * We define
 *                     r
 *         A(h,t) :=  --- · [ Y(h+t) - Y(h-t) ]
 *                     t
 *
 * with r := (h+t)·(h-t) and give an expansion for A(h,t) in q:=(h/r)² expressed in terms of e:=(t/h)² .
 */
LBR_INLINE double asymptotic_expansion_of_normalized_black_call(double h, double t, double e_ht) {
    const double e = (t / h) * (t / h), r = ((h + t) * (h - t)), q = (h / r) * (h / r);
    /* 17th order asymptotic expansion of A(h,t) in q, sufficient for Φ(h) [and thus y(h)] to have relative
       accuracy of 1.64E-16 for h <= η  with  η:=-10. */
    const double asymptotic_expansion_sum = (2.0+q*(-6.0E0-2.0*e+3.0*q*(1.0E1+e*(2.0E1+2.0*e)+5.0*q*(-1.4E1+e*(-7.0E1+e*(-4.2E1-2.0*e))+7.0*q*(1.8E1+e*(1.68E2+e*(2.52E2+e*(7.2E1+2.0*e)))+9.0*q*(-2.2E1+e*(-3.3E2+e*(-9.24E2+e*(-6.6E2+e*(-1.1E2-2.0*e))))+1.1E1*q*(2.6E1+e*(5.72E2+e*(2.574E3+e*(3.432E3+e*(1.43E3+e*(1.56E2+2.0*e)))))+1.3E1*q*(-3.0E1+e*(-9.1E2+e*(-6.006E3+e*(-1.287E4+e*(-1.001E4+e*(-2.73E3+e*(-2.1E2-2.0*e))))))+1.5E1*q*(3.4E1+e*(1.36E3+e*(1.2376E4+e*(3.8896E4+e*(4.862E4+e*(2.4752E4+e*(4.76E3+e*(2.72E2+2.0*e)))))))+1.7E1*q*(-3.8E1+e*(-1.938E3+e*(-2.3256E4+e*(-1.00776E5+e*(-1.84756E5+e*(-1.51164E5+e*(-5.4264E4+e*(-7.752E3+e*(-3.42E2-2.0*e))))))))+1.9E1*q*(4.2E1+e*(2.66E3+e*(4.0698E4+e*(2.3256E5+e*(5.8786E5+e*(7.05432E5+e*(4.0698E5+e*(1.08528E5+e*(1.197E4+e*(4.2E2+2.0*e)))))))))+2.1E1*q*(-4.6E1+e*(-3.542E3+e*(-6.7298E4+e*(-4.90314E5+e*(-1.63438E6+e*(-2.704156E6+e*(-2.288132E6+e*(-9.80628E5+e*(-2.01894E5+e*(-1.771E4+e*(-5.06E2-2.0*e))))))))))+2.3E1*q*(5.0E1+e*(4.6E3+e*(1.0626E5+e*(9.614E5+e*(4.08595E6+e*(8.9148E6+e*(1.04006E7+e*(6.53752E6+e*(2.16315E6+e*(3.542E5+e*(2.53E4+e*(6.0E2+2.0*e)))))))))))+2.5E1*q*(-5.4E1+e*(-5.85E3+e*(-1.6146E5+e*(-1.77606E6+e*(-9.37365E6+e*(-2.607579E7+e*(-4.01166E7+e*(-3.476772E7+e*(-1.687257E7+e*(-4.44015E6+e*(-5.9202E5+e*(-3.51E4+e*(-7.02E2-2.0*e))))))))))))+2.7E1*q*(5.8E1+e*(7.308E3+e*(2.3751E5+e*(3.12156E6+e*(2.003001E7+e*(6.919458E7+e*(1.3572783E8+e*(1.5511752E8+e*(1.0379187E8+e*(4.006002E7+e*(8.58429E6+e*(9.5004E5+e*(4.7502E4+e*(8.12E2+2.0*e)))))))))))))+2.9E1*q*(-6.2E1+e*(-8.99E3+e*(-3.39822E5+e*(-5.25915E6+e*(-4.032015E7+e*(-1.6934463E8+e*(-4.1250615E8+e*(-6.0108039E8+e*(-5.3036505E8+e*(-2.8224105E8+e*(-8.870433E7+e*(-1.577745E7+e*(-1.472562E6+e*(-6.293E4+e*(-9.3E2-2.0*e))))))))))))))+3.1E1*q*(6.6E1+e*(1.0912E4+e*(4.74672E5+e*(8.544096E6+e*(7.71342E7+e*(3.8707344E8+e*(1.14633288E9+e*(2.07431664E9+e*(2.33360622E9+e*(1.6376184E9+e*(7.0963464E8+e*(1.8512208E8+e*(2.7768312E7+e*(2.215136E6+e*(8.184E4+e*(1.056E3+2.0*e)))))))))))))))+3.3E1*(-7.0E1+e*(-1.309E4+e*(-6.49264E5+e*(-1.344904E7+e*(-1.4121492E8+e*(-8.344518E8+e*(-2.9526756E9+e*(-6.49588632E9+e*(-9.0751353E9+e*(-8.1198579E9+e*(-4.6399188E9+e*(-1.6689036E9+e*(-3.67158792E8+e*(-4.707164E7+e*(-3.24632E6+e*(-1.0472E5+e*(-1.19E3-2.0*e)))))))))))))))))*q)))))))))))))))));
    const double b = ONE_OVER_SQRT_TWO_PI * e_ht /* exp((-0.5*(h*h+t*t))) */ * (t / r) * asymptotic_expansion_sum;
    return fabs(lbr_max(b, 0.));
}

/* Given h = x/s and t = s/2, the normalised Black function can be written as
 *
 *     b(x,s)  =  Φ(x/s+s/2)·exp(x/2)  -   Φ(x/s-s/2)·exp(-x/2)
 *             =  Φ(h+t)·exp(h·t)      -   Φ(h-t)·exp(-h·t) .
 *
 * Using Cody's scaled complementary error function erfcx(z) = exp(z²)·erfc(z) [3], which needs no
 * exponential for z > 4, and  Φ(z) = exp(-z²/2)·erfcx(-z/√2)/2 , this becomes
 *
 *   b   =  ½ · exp(-½(h²+t²)) · [ erfcx(-(h+t)/√2) -  erfcx(-(h-t)/√2) ]
 *
 * which involves only one exponential, instead of three, when |h|+|t| > 5.66, and the difference inside
 * the square bracket retains (nearly) full accuracy (cf. Marsaglia, "Evaluating the Normal Distribution",
 * J. Stat. Softw. 11(5), 2004, section 4).
 */
LBR_INLINE double normalised_black_call_using_erfcx(double h, double t, double e_ht) {
    const double b = 0.5 * e_ht /* exp(-0.5*(h*h+t*t)) */ *
                     (erfcx_cody(-ONE_OVER_SQRT_TWO * (h + t)) - erfcx_cody(-ONE_OVER_SQRT_TWO * (h - t)));
    return fabs(lbr_max(b, 0.0));
}

/* Calculation of
 *
 *              b  =  Φ(h+t)·exp(h·t) - Φ(h-t)·exp(-h·t)
 *
 *                    exp(-(h²+t²)/2)
 *                 =  --------------- ·  [ Y(h+t) - Y(h-t) ]
 *                        √(2π)
 * with
 *           Y(z) := Φ(z)/φ(z)
 *
 * using an expansion of Y(h+t)-Y(h-t) for small t to twelvth order in t.
 * Theoretically accurate to (better than) precision  ε = 2.23E-16  when  h<=0  and  t < τ  with  τ := 2·ε^(1/16) ≈ 0.21.
 * The main bottleneck for precision is the coefficient a:=1+h·Y(h) when |h|>1 .
 */
LBR_INLINE double small_t_expansion_of_normalized_black_call(double h, double t, double e_ht) {
    /* Y(h) := Φ(h)/φ(h) = √(π/2)·erfcx(-h/√2)
       a := 1+h·Y(h)  --- Note that due to h<0, and h·Y(h) -> -1 (from above) as h -> -∞, we also have that a>0 and a -> 0 as h -> -∞
       w := t² , h2 := h² */
    const double a = 1 + h * (0.5 * SQRT_TWO_PI) * erfcx_cody(-ONE_OVER_SQRT_TWO * h), w = t * t, h2 = h * h;
    const double expansion = 2*t*(a+w*((-1+3*a+a*h2)/6+w*((-7+15*a+h2*(-1+10*a+a*h2))/120+w*((-57+105*a+h2*(-18+105*a+h2*(-1+21*a+a*h2)))/5040+w*((-561+945*a+h2*(-285+1260*a+h2*(-33+378*a+h2*(-1+36*a+a*h2))))/362880+w*((-6555+10395*a+h2*(-4680+17325*a+h2*(-840+6930*a+h2*(-52+990*a+h2*(-1+55*a+a*h2)))))/39916800+((-89055+135135*a+h2*(-82845+270270*a+h2*(-20370+135135*a+h2*(-1926+25740*a+h2*(-75+2145*a+h2*(-1+78*a+a*h2))))))*w)/6227020800.0))))));
    const double b = ONE_OVER_SQRT_TWO_PI * e_ht /* exp((-0.5*(h*h+t*t))) */ * expansion;
    return fabs(lbr_max(b, 0.0));
}

/*     b(x,s)  =  Φ(x/s+s/2)·exp(x/2)  -   Φ(x/s-s/2)·exp(-x/2)
 *             =  Φ(h+t)·exp(x/2)      -   Φ(h-t)·exp(-x/2)
 * with
 *              h  =  x/s   and   t  =  s/2
 */
static double normalized_black_call_using_norm_cdf(double x, double s) {
    const double h = x / s, t = 0.5 * s, b_max = exp(0.5 * x),
                 b = norm_cdf(h + t) * b_max - norm_cdf(h - t) / b_max;
    return fabs(lbr_max(b, 0.0));
}

static double normalised_vega(double x, double s) {
    const double ax = fabs(x);
    return (ax <= 0) ? ONE_OVER_SQRT_TWO_PI * exp(-0.125 * s * s)
                     : ((s <= 0 || s <= ax * SQRT_DBL_MIN)
                            ? 0
                            : ONE_OVER_SQRT_TWO_PI * exp(-0.5 * (square(x / s) + square(0.5 * s))));
}

/* normalised_black_call(x,s) of the reference; if vega != NULL, also writes normalised_vega(x,s).
 * In regions 1, 2 and 4 the Gaussian factor exp(-½(h²+t²)) with h = x/s, t = s/2 is exactly the
 * exponential of normalised_vega() [same operands, same operations], so it is evaluated once and
 * shared; results are bit-for-bit those of the separate reference calls. */
LBR_INLINE double normalised_black_call_impl(double x, double s, double *vega) {
    double intrinsic = 0;
    if (x > 0) { /* reference: normalised_intrinsic_call(x) + normalised_black_call(-x,s) */
        intrinsic = normalised_intrinsic_call(x);
        x = -x;
    }
    const double ax = fabs(x);
    if (s <= ax * DENORMALIZATION_CUTOFF) {
        if (vega) *vega = normalised_vega(x, s);
        return intrinsic + normalised_intrinsic_call(x);
    }
    /* Denote h := x/s and t := s/2.
       We evaluate the condition |h|>|η|, i.e., h<η  &&  t < τ+|h|-|η|  avoiding any divisions by s, where
       η = asymptotic_expansion_accuracy_threshold  and τ = small_t_expansion_of_normalized_black_threshold . */
    const int region1 = x < s * ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD &&
                        0.5 * s * s + x < s * (SMALL_T_EXPANSION_OF_NORMALIZED_BLACK_THRESHOLD +
                                               ASYMPTOTIC_EXPANSION_ACCURACY_THRESHOLD);
    const int region2 = !region1 && 0.5 * s < SMALL_T_EXPANSION_OF_NORMALIZED_BLACK_THRESHOLD;
    /* When b is more than, say, about 85% of b_max=exp(x/2), then b is dominated by the first of the two terms in
       the Black formula, and we retain more accuracy by not attempting to combine the two terms in any way.
       We evaluate the condition h+t>0.85  avoiding any divisions by s. */
    if (!region1 && !region2 && x + 0.5 * s * s > s * 0.85) {
        /* Region 3. */
        if (vega) *vega = normalised_vega(x, s);
        return intrinsic + normalized_black_call_using_norm_cdf(x, s);
    }
    const double h = x / s, t = 0.5 * s, e_ht = exp(-0.5 * (h * h + t * t));
    if (vega) /* == normalised_vega(x,s), sharing the exponential */
        *vega = (ax <= 0) ? ONE_OVER_SQRT_TWO_PI * exp(-0.125 * s * s)
                          : ((s <= 0 || s <= ax * SQRT_DBL_MIN) ? 0 : ONE_OVER_SQRT_TWO_PI * e_ht);
    if (region1) /* Region 1. */
        return intrinsic + asymptotic_expansion_of_normalized_black_call(h, t, e_ht);
    if (region2) /* Region 2. */
        return intrinsic + small_t_expansion_of_normalized_black_call(h, t, e_ht);
    /* Region 4. */
    return intrinsic + normalised_black_call_using_erfcx(h, t, e_ht);
}

static double normalised_black_call(double x, double s) { return normalised_black_call_impl(x, s, 0); }

static double normalised_black_call_and_vega(double x, double s, double *vega) {
    return normalised_black_call_impl(x, s, vega);
}


static double normalised_black(double x, double s, double q /* q=±1 */) {
    return normalised_black_call(q < 0 ? -x : x, s); /* Reciprocal-strike call-put equivalence */
}

static void compute_f_lower_map_and_first_two_derivatives(const double x, const double s, double *f, double *fp,
                                                          double *fpp) {
    const double ax = fabs(x), z = SQRT_ONE_OVER_THREE * ax / s, y = z * z, s2 = s * s, Phi = norm_cdf(-z),
                 phi = norm_pdf(z);
    *fpp = PI_OVER_SIX * y / (s2 * s) * Phi * (8 * SQRT_THREE * s * ax + (3 * s2 * (s2 - 8) - 8 * x * x) * Phi / phi) *
           exp(2 * y + 0.25 * s2);
    if (is_below_horizon(s)) {
        *fp = 1;
        *f = 0;
    } else {
        const double Phi2 = Phi * Phi;
        *fp = TWO_PI * y * Phi2 * exp(y + 0.125 * s * s);
        if (is_below_horizon(x))
            *f = 0;
        else
            *f = TWO_PI_OVER_SQRT_TWENTY_SEVEN * ax * (Phi2 * Phi);
    }
}

static double inverse_f_lower_map(const double x, const double f) {
    return is_below_horizon(f)
               ? 0
               : fabs(x / (SQRT_THREE * inverse_norm_cdf(pow(f / (TWO_PI_OVER_SQRT_TWENTY_SEVEN * fabs(x)), 1. / 3.))));
}

static void compute_f_upper_map_and_first_two_derivatives(const double x, const double s, double *f, double *fp,
                                                          double *fpp) {
    *f = norm_cdf(-0.5 * s);
    if (is_below_horizon(x)) {
        *fp = -0.5;
        *fpp = 0;
    } else {
        const double w = square(x / s);
        *fp = -0.5 * exp(0.5 * w);
        *fpp = SQRT_PI_OVER_TWO * exp(w + 0.125 * s * s) * w / s;
    }
}

static double inverse_f_upper_map(double f) { return -2. * inverse_norm_cdf(f); }

/* See http://en.wikipedia.org/wiki/Householder%27s_method for a detailed explanation of the third order
 * Householder iteration.
 *
 * Given the objective function g(s) whose root x such that 0 = g(s) we seek, iterate
 *
 *     s_n+1  =  s_n  -  (g/g') · [ 1 - (g''/g')·(g/g') ] / [ 1 - (g/g')·( (g''/g') - (g'''/g')·(g/g')/6 ) ]
 *
 * Denoting  newton:=-(g/g'), halley:=(g''/g'), and hh3:=(g'''/g'), this reads
 *
 *     s_n+1  =  s_n  +  newton · [ 1 + halley·newton/2 ] / [ 1 + newton·( halley + hh3·newton/6 ) ]
 *
 * Returns 0 for beta <= 0 and +DBL_MAX for beta >= b_max (no further safety checks; the caller handles those).
 */
static double unchecked_normalised_implied_volatility_from_a_transformed_rational_guess_with_limited_iterations(
    double beta, double x, double q /* q=±1 */, int N) {
    /* Subtract intrinsic. */
    if (q * x > 0) {
        beta = fabs(lbr_max(beta - normalised_intrinsic(x, q), 0.));
        q = -q;
    }
    /* Map puts to calls */
    if (q < 0) {
        x = -x;
        q = -q;
    }
    if (beta <= 0) /* For negative or zero prices we return 0. */
        return 0;
    if (beta < DENORMALIZATION_CUTOFF) /* For positive but denormalized (a.k.a. 'subnormal') prices, we return 0 since it would be impossible to converge to full machine accuracy anyway. */
        return 0;
    const double b_max = exp(0.5 * x);
    if (beta >= b_max) return DBL_MAX;
    int iterations = 0, direction_reversal_count = 0;
    double f = -DBL_MAX, s = -DBL_MAX, ds = s, ds_previous = 0, s_left = DBL_MIN, s_right = DBL_MAX;
    /* The temptation is great to use the optimised form b_c = exp(x/2)/2-exp(-x/2)·Phi(sqrt(-2·x)) but that would
       require implementing all of the above types of round-off and over/underflow handling for this expression, too. */
    double v_c;
    const double s_c = sqrt(fabs(2 * x)), b_c = normalised_black_call_and_vega(x, s_c, &v_c);
    /* Four branches. */
    if (beta < b_c) {
        const double s_l = s_c - b_c / v_c, b_l = normalised_black_call(x, s_l);
        if (beta < b_l) {
            double f_lower_map_l, d_f_lower_map_l_d_beta, d2_f_lower_map_l_d_beta2;
            compute_f_lower_map_and_first_two_derivatives(x, s_l, &f_lower_map_l, &d_f_lower_map_l_d_beta,
                                                          &d2_f_lower_map_l_d_beta2);
            const double r_ll = convex_rational_cubic_control_parameter_to_fit_second_derivative_at_right_side(
                0., b_l, 0., f_lower_map_l, 1., d_f_lower_map_l_d_beta, d2_f_lower_map_l_d_beta2, 1);
            f = rational_cubic_interpolation(beta, 0., b_l, 0., f_lower_map_l, 1., d_f_lower_map_l_d_beta, r_ll);
            if (!(f > 0)) { /* This can happen due to roundoff truncation for extreme values such as |x|>500. */
                /* We switch to quadratic interpolation using f(0)≡0, f(b_l), and f'(0)≡1 to specify the quadratic. */
                const double t = beta / b_l;
                f = (f_lower_map_l * t + b_l * (1 - t)) * t;
            }
            s = inverse_f_lower_map(x, f);
            s_right = s_l;
            /*
             * In this branch, which comprises the lowest segment, the objective function is
             *     g(s) = 1/ln(b(x,s)) - 1/ln(beta)
             *          ≡ 1/ln(b(s)) - 1/ln(beta)
             * This makes
             *              g'               =   -b'/(b·ln(b)²)
             *              newton = -g/g'   =   (ln(beta)-ln(b))·ln(b)/ln(beta)·b/b'
             *              halley = g''/g'  =   b''/b'  -  b'/b·(1+2/ln(b))
             *              hh3    = g'''/g' =   b'''/b' +  2(b'/b)²·(1+3/ln(b)·(1+1/ln(b)))  -  3(b''/b)·(1+2/ln(b))
             *
             * The Householder(3) iteration is
             *     s_n+1  =  s_n  +  newton · [ 1 + halley·newton/2 ] / [ 1 + newton·( halley + hh3·newton/6 ) ]
             */
            for (; iterations < N && fabs(ds) > DBL_EPSILON * s; ++iterations) {
                if (ds * ds_previous < 0) ++direction_reversal_count;
                if (iterations > 0 && (3 == direction_reversal_count || !(s > s_left && s < s_right))) {
                    /* If looping inefficently, or the forecast step takes us outside the bracket, or onto its edges,
                       switch to binary nesting.
                       NOTE that this can only really happen for very extreme values of |x|, such as |x| = |ln(F/K)| > 500. */
                    s = 0.5 * (s_left + s_right);
                    if (s_right - s_left <= DBL_EPSILON * s) break;
                    direction_reversal_count = 0;
                    ds = 0;
                }
                ds_previous = ds;
                double bp;
                const double b = normalised_black_call_and_vega(x, s, &bp);
                if (b > beta && s < s_right)
                    s_right = s;
                else if (b < beta && s > s_left)
                    s_left = s; /* Tighten the bracket if applicable. */
                if (b <= 0 || bp <= 0) /* Numerical underflow. Switch to binary nesting for this iteration. */
                    ds = 0.5 * (s_left + s_right) - s;
                else {
                    const double ln_b = log(b), ln_beta = log(beta), bpob = bp / b, h = x / s,
                                 b_halley = h * h / s - s / 4, newton = (ln_beta - ln_b) * ln_b / ln_beta / bpob,
                                 halley = b_halley - bpob * (1 + 2 / ln_b);
                    const double b_hh3 = b_halley * b_halley - 3 * square(h / s) - 0.25,
                                 hh3 = b_hh3 + 2 * square(bpob) * (1 + 3 / ln_b * (1 + 1 / ln_b)) -
                                       3 * b_halley * bpob * (1 + 2 / ln_b);
                    ds = newton * householder_factor(newton, halley, hh3);
                }
                s += ds = lbr_max(-0.5 * s, ds);
            }
            return s;
        } else {
            const double v_l = normalised_vega(x, s_l),
                         r_lm = convex_rational_cubic_control_parameter_to_fit_second_derivative_at_right_side(
                             b_l, b_c, s_l, s_c, 1 / v_l, 1 / v_c, 0.0, 0);
            s = rational_cubic_interpolation(beta, b_l, b_c, s_l, s_c, 1 / v_l, 1 / v_c, r_lm);
            s_left = s_l;
            s_right = s_c;
        }
    } else {
        const double s_h = v_c > DBL_MIN ? s_c + (b_max - b_c) / v_c : s_c, b_h = normalised_black_call(x, s_h);
        if (beta <= b_h) {
            const double v_h = normalised_vega(x, s_h),
                         r_hm = convex_rational_cubic_control_parameter_to_fit_second_derivative_at_left_side(
                             b_c, b_h, s_c, s_h, 1 / v_c, 1 / v_h, 0.0, 0);
            s = rational_cubic_interpolation(beta, b_c, b_h, s_c, s_h, 1 / v_c, 1 / v_h, r_hm);
            s_left = s_c;
            s_right = s_h;
        } else {
            double f_upper_map_h, d_f_upper_map_h_d_beta, d2_f_upper_map_h_d_beta2;
            compute_f_upper_map_and_first_two_derivatives(x, s_h, &f_upper_map_h, &d_f_upper_map_h_d_beta,
                                                          &d2_f_upper_map_h_d_beta2);
            if (d2_f_upper_map_h_d_beta2 > -SQRT_DBL_MAX && d2_f_upper_map_h_d_beta2 < SQRT_DBL_MAX) {
                const double r_hh = convex_rational_cubic_control_parameter_to_fit_second_derivative_at_left_side(
                    b_h, b_max, f_upper_map_h, 0., d_f_upper_map_h_d_beta, -0.5, d2_f_upper_map_h_d_beta2, 1);
                f = rational_cubic_interpolation(beta, b_h, b_max, f_upper_map_h, 0., d_f_upper_map_h_d_beta, -0.5, r_hh);
            }
            if (f <= 0) {
                const double h = b_max - b_h, t = (beta - b_h) / h;
                /* We switch to quadratic interpolation using f(b_h), f(b_max)≡0, and f'(b_max)≡-1/2 to specify the quadratic. */
                f = (f_upper_map_h * (1 - t) + 0.5 * h * t) * (1 - t);
            }
            s = inverse_f_upper_map(f);
            s_left = s_h;
            if (beta > 0.5 * b_max) { /* Else we better drop through and let the objective function be g(s) = b(x,s)-beta. */
                /*
                 * In this branch, which comprises the upper segment, the objective function is
                 *     g(s) = ln(b_max-beta)-ln(b_max-b(x,s))
                 *          ≡ ln((b_max-beta)/(b_max-b(s)))
                 * This makes
                 *              g'               =   b'/(b_max-b)
                 *              newton = -g/g'   =   ln((b_max-b)/(b_max-beta))·(b_max-b)/b'
                 *              halley = g''/g'  =   b''/b'  +  b'/(b_max-b)
                 *              hh3    = g'''/g' =   b'''/b' +  g'·(2g'+3b''/b')
                 * and the iteration is
                 *     s_n+1  =  s_n  +  newton · [ 1 + halley·newton/2 ] / [ 1 + newton·( halley + hh3·newton/6 ) ].
                 */
                for (; iterations < N && fabs(ds) > DBL_EPSILON * s; ++iterations) {
                    if (ds * ds_previous < 0) ++direction_reversal_count;
                    if (iterations > 0 && (3 == direction_reversal_count || !(s > s_left && s < s_right))) {
                        /* If looping inefficently, or the forecast step takes us outside the bracket, or onto its
                           edges, switch to binary nesting. */
                        s = 0.5 * (s_left + s_right);
                        if (s_right - s_left <= DBL_EPSILON * s) break;
                        direction_reversal_count = 0;
                        ds = 0;
                    }
                    ds_previous = ds;
                    double bp;
                const double b = normalised_black_call_and_vega(x, s, &bp);
                    if (b > beta && s < s_right)
                        s_right = s;
                    else if (b < beta && s > s_left)
                        s_left = s; /* Tighten the bracket if applicable. */
                    if (b >= b_max || bp <= DBL_MIN) /* Numerical underflow. Switch to binary nesting for this iteration. */
                        ds = 0.5 * (s_left + s_right) - s;
                    else {
                        const double b_max_minus_b = b_max - b, g = log((b_max - beta) / b_max_minus_b),
                                     gp = bp / b_max_minus_b;
                        const double b_halley = square(x / s) / s - s / 4,
                                     b_hh3 = b_halley * b_halley - 3 * square(x / (s * s)) - 0.25;
                        const double newton = -g / gp, halley = b_halley + gp, hh3 = b_hh3 + gp * (2 * gp + 3 * b_halley);
                        ds = newton * householder_factor(newton, halley, hh3);
                    }
                    s += ds = lbr_max(-0.5 * s, ds);
                }
                return s;
            }
        }
    }
    /* In this branch, which comprises the two middle segments, the objective function is g(s) = b(x,s)-beta, or
     * g(s) = b(s) - beta, for short. This makes
     *              newton = -g/g'   =  -(b-beta)/b'
     *              halley = g''/g'  =    b''/b'    =  x²/s³-s/4
     *              hh3    = g'''/g' =    b'''/b'   =  halley² - 3·(x/s²)² - 1/4
     * and the iteration is
     *     s_n+1  =  s_n  +  newton · [ 1 + halley·newton/2 ] / [ 1 + newton·( halley + hh3·newton/6 ) ].
     */
    for (; iterations < N && fabs(ds) > DBL_EPSILON * s; ++iterations) {
        if (ds * ds_previous < 0) ++direction_reversal_count;
        if (iterations > 0 && (3 == direction_reversal_count || !(s > s_left && s < s_right))) {
            /* If looping inefficently, or the forecast step takes us outside the bracket, or onto its edges,
               switch to binary nesting. */
            s = 0.5 * (s_left + s_right);
            if (s_right - s_left <= DBL_EPSILON * s) break;
            direction_reversal_count = 0;
            ds = 0;
        }
        ds_previous = ds;
        double bp;
                const double b = normalised_black_call_and_vega(x, s, &bp);
        if (b > beta && s < s_right)
            s_right = s;
        else if (b < beta && s > s_left)
            s_left = s; /* Tighten the bracket if applicable. */
        const double newton = (beta - b) / bp, halley = square(x / s) / s - s / 4,
                     hh3 = halley * halley - 3 * square(x / (s * s)) - 0.25;
        s += ds = lbr_max(-0.5 * s, newton * householder_factor(newton, halley, hh3));
    }
    return s;
}

/* ------------------------------------------------------------------------------------ */
/* Public entry points                                                                   */
/* ------------------------------------------------------------------------------------ */

/* x = ln(F/K).  Deviation from the reference (which uses log(F/K)): for K/2 <= F <= 2K the
   difference F-K is exact (Sterbenz) and log1p((F-K)/K) has an absolute error of O(eps*|x|)
   instead of O(eps); this matters for the relative accuracy of far-wing prices at small s,
   where d(ln b)/dx ~ h/s is large. */
LBR_INLINE double log_moneyness(double F, double K) {
    if (F >= 0.5 * K && F <= 2.0 * K) return log1p((F - K) / K);
    return log(F / K);
}

double pmnb_lbr_implied_vol(double price, double F, double K, double T, double w, int *code) {
    const double q = w < 0 ? -1.0 : 1.0;
    const double intrinsic = fabs(lbr_max((q < 0 ? K - F : F - K), 0.0));
    if (price < intrinsic) {
        *code = PMNB_LBR_BELOW_INTRINSIC;
        return LBR_QNAN;
    }
    const double max_price = (q < 0 ? K : F);
    if (price >= max_price) {
        *code = PMNB_LBR_ABOVE_MAXIMUM;
        return LBR_QNAN;
    }
    const double x = log(F / K);
    double qq = q;
    /* Map in-the-money to out-of-the-money (put-call parity on the forward). */
    if (qq * x > 0) {
        price = fabs(lbr_max(price - intrinsic, 0.0));
        qq = -qq;
    }
    const double beta = price / (sqrt(F) * sqrt(K));
    if (!(beta > 0)) { /* price == intrinsic (or time value underflows): no time value identifiable */
        *code = PMNB_LBR_NO_TIME_VALUE;
        return 0.0;
    }
    /* Returns DBL_MAX when beta >= b_max = exp(-|x|/2), i.e. when the OTM price is at/above its
       maximum after normalisation round-off. */
    const double s = unchecked_normalised_implied_volatility_from_a_transformed_rational_guess_with_limited_iterations(
        beta, x, qq, IMPLIED_VOLATILITY_MAXIMUM_ITERATIONS);
    if (s >= DBL_MAX) {
        *code = PMNB_LBR_ABOVE_MAXIMUM;
        return LBR_QNAN;
    }
    const double sigma = s / sqrt(T);
    if (!(sigma > 0) || !(sigma < HUGE_VAL)) {
        *code = PMNB_LBR_FAILURE;
        return LBR_QNAN;
    }
    *code = PMNB_LBR_OK;
    return sigma;
}

void pmnb_lbr_implied_vol_array(long n, const double *price, const double *F, const double *K, const double *T,
                                const double *w, double *out_sigma, int *out_code) {
    long i;
    for (i = 0; i < n; ++i) out_sigma[i] = pmnb_lbr_implied_vol(price[i], F[i], K[i], T[i], w[i], &out_code[i]);
}

double pmnb_lbr_black(double F, double K, double sigma, double T, double w) {
    double q = w < 0 ? -1.0 : 1.0;
    const double intrinsic = fabs(lbr_max((q < 0 ? K - F : F - K), 0.0));
    double extra = 0.0;
    /* Map in-the-money to out-of-the-money */
    if (q * (F - K) > 0) {
        extra = intrinsic;
        q = -q;
    }
    /* OTM twin: its intrinsic is 0, so the reference's max(intrinsic, ...) reduces to the bare value. */
    const double otm = lbr_max(0.0, (sqrt(F) * sqrt(K)) * normalised_black(log_moneyness(F, K), sigma * sqrt(T), q));
    return extra > 0 ? extra + otm : lbr_max(intrinsic, otm);
}
