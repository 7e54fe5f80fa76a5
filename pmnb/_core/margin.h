/* pmnb margin kernels: price-only revaluation of inverse (coin-settled) Black-76 options per
 * distinct instrument, fused with the venue margin arithmetic that follows it.
 *
 * Instruments are given relative to their forward, so that a common price move f = 1 + s (every
 * forward scaled by f, vols sticky-strike: pmnb.Market.shocked) and a scenario move s_j cost no
 * log, exp or division per revaluation:
 *     a_i = ln(F_i / K_i),  kf_i = K_i / F_i,  sst_i = sigma_i sqrt(T_i),  df_i = exp(-r T_i)
 *     x   = a_i + ln(f (1 + s_j))          e = 1 / (f (1 + s_j))      (= K / F' with kf_i)
 *     d1  = x / sst + sst / 2,  d2 = d1 - sst
 *     V   = w df (N(w d1) - kf e N(w d2))                 coin value = Black-76 V_usd(F') / F'
 *     D   = w df kf e N(w d2)                             coin (net transactional) delta
 * (Black 1976; Haug 2007 §1.1 and 2.1; the inverse form as in kernel.c: V_coin = V_usd / F.)
 *
 * Compiled into the fast-math library: inputs must be finite and validated by the caller. Rows whose
 * sigma sqrt(T) is below PMNB_SST_MIN are flagged by the caller (lim != 0) and given a harmless
 * stand-in sst (1.0); their value is replaced by the exact pmnb_greeks_limit (checks.c, no
 * fast-math) on the true inputs (F, K, T, sigma, r).
 *
 * Sums over instruments are taken block by block (PMNB_MRG_BLOCK instruments) into per-block
 * partial sums, which the caller adds in block order: results do not depend on the thread count.
 */
#ifndef PMNB_MARGIN_H
#define PMNB_MARGIN_H

#ifdef __cplusplus
extern "C" {
#endif

#define PMNB_MRG_BLOCK 1024

/* Deribit portfolio-margin risk matrix of m instruments (one block) at the common factor f.
 * n_scen scenarios: relative moves move[j] (> -1) and vol columns vcol[j] in 0..n_vol-1;
 * sst: n_vol * ld stand-in-safe sigma' sqrt(T) (vol-major, row stride ld), sig: the true sigma'
 * (same layout), lim: n_vol * ld limit flags; sst0/sig0/lim0: the base (unshocked vol) inputs.
 * Outputs: v0[i] base coin value, delta[i] base coin delta (or NULL),
 * agg[j] = sum_i qty_i (V_ij - V0_i), mat[j * ld + i] = qty_i (V_ij - V0_i) (or NULL). */
void pmnb_pm_block(long m, long ld, long n_scen, double f, const double *move, const int *vcol,
                   const double *a, const double *kf, const double *w, const double *df,
                   const double *qty, const double *sst0, const double *sig0,
                   const unsigned char *lim0, const double *sst, const double *sig,
                   const unsigned char *lim, const double *F, const double *K, const double *T,
                   double r, double *v0, double *delta, double *agg, double *mat);

/* Deribit standard margin of m net inverse option positions (one block) at n_f common factors
 * fs[k]. net[i]: net size in coin (short < 0). Per factor: out[3k] = sum net_i V_i (coin value),
 * out[3k+1] = sum IM_i, out[3k+2] = sum MM_i, with (per contract, coin; m = V):
 *     OTM/F' = max(w (K/F' - 1), 0),  base = max(im_addon - OTM/F', im_floor) + m
 *     call: IM = base, MM = mm_addon + m;  put: MM = max(mm_addon, mm_addon m) + m, IM = max(base, MM)
 *     short: |net| IM, |net| MM;  long: |net| m if long_mark else 0.
 * When v_out/im_out/mm_out are not NULL they receive the per-instrument values of the last factor
 * (price per contract, IM, MM of the net position). */
void pmnb_std_block(long m, long n_f, const double *fs, const double *a, const double *kf,
                    const double *w, const double *df, const double *net, const double *sst0,
                    const double *sig0, const unsigned char *lim0, const double *F,
                    const double *K, const double *T, double r, double im_addon,
                    double im_floor, double mm_addon, int long_mark, double *out,
                    double *v_out, double *im_out, double *mm_out);

#ifdef __cplusplus
}
#endif
#endif
