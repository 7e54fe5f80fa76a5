/* pmnb scenario kernel: positions x scenarios full revaluation of European options.
 *
 * For every position i and scenario j it writes
 *     out[i * n_scen + j] = qty[i] * (V(x_i (1 + s_j), K_i, max(T_i - dt_j, 0), sigma'_ij, r_i, q_i, w_i)
 *                                    - V(x_i, K_i, T_i, sigma_i, r_i, q_i, w_i))
 * with sigma'_ij = max(sigma_i + dv_j, 0), or sigma_matrix[i * n_scen + j] when a matrix is given.
 * V is pmnb_greeks' price (level 0) for the given model and settlement: USD for linear, coin for
 * inverse (V_coin = V_usd / F at the shocked forward).
 *
 * Compiled into the fast-math library. Rows whose shocked sigma^2 T falls below PMNB_SST_MIN^2
 * (in particular T - dt <= 0: the option expires inside the horizon) are priced by the exact
 * pmnb_greeks_limit (checks.c, no fast-math): discounted intrinsic value on the shocked forward,
 * i.e. plain intrinsic value w (x' - K)^+ when T' = 0.
 *
 * Positions are processed in blocks of PMNB_SCN_BLOCK rows (inputs and shocked-input buffers stay
 * in cache), scenarios in an inner loop, 8 at a time: the sigma matrix is read and the P&L written
 * through transposed 8 x block tiles, so each row's values are touched contiguously. A caller that splits the rows
 * across threads must split at multiples of PMNB_SCN_BLOCK so that every row sees the same block
 * layout (and so the same SIMD lane / tail path) whatever the thread count: results are then
 * bit-identical for any number of threads.
 *
 * Inputs must be validated by the caller (finite, in pmnb's accepted ranges; 1 + s_j > 0;
 * sigma_matrix finite and >= 0): the fast-math loops assume finite numbers.
 */
#ifndef PMNB_SCENARIO_H
#define PMNB_SCENARIO_H

#ifdef __cplusplus
extern "C" {
#endif

/* Positions per block. */
#define PMNB_SCN_BLOCK 512

/* model, inverse: as pmnb_greeks (model 0 bsm, 1 black76, 2 bsm with q = 0; inverse 0/1).
 * spot_shock, time_shift: n_scen values each (relative spot/forward shock, years).
 * vol_shock: n_scen absolute vol shocks, or NULL when sigma_matrix (n x n_scen, row-major) is given.
 * out: n x n_scen, row-major. */
void pmnb_scenario_grid(long n, long n_scen, int model, int inverse,
                        const double *x, const double *K, const double *T, const double *sigma,
                        const double *r, const double *q, const double *w, const double *qty,
                        const double *spot_shock, const double *vol_shock,
                        const double *time_shift, const double *sigma_matrix, double *out);

#ifdef __cplusplus
}
#endif
#endif
