r"""Raw SVI smiles: the formula, Gatheral–Jacquier's butterfly test and a robust, vectorised fit.

Raw SVI (Gatheral 2004, "A parsimonious arbitrage-free implied volatility parameterization with
application to the valuation of volatility derivatives", Global Derivatives & Risk Management,
Madrid; also Gatheral & Jacquier 2014, eq. 3.1) gives the total implied variance
:math:`w = \sigma_{imp}^2 T` of one expiry as a function of the log-forward-moneyness
:math:`k = \ln(K/F)`:

.. math:: w(k) = a + b\,\bigl(\rho\,(k - m) + \sqrt{(k - m)^2 + \sigma^2}\bigr).

Parameter bounds (enforced by :class:`SVIParams` and by the fit): :math:`b \ge 0`,
:math:`|\rho| < 1`, :math:`\sigma > 0` and :math:`a + b\sigma\sqrt{1-\rho^2} \ge 0` (the minimum of
:math:`w`, so the variance is never negative). The fit also keeps Lee's (2004, "The moment formula
for implied volatility at extreme strikes", Math. Finance 14) wing bound
:math:`b(1 + |\rho|) \le 2`: the SVI wings are straight lines of slopes :math:`b(1 \pm \rho)` and a
slope above 2 is an arbitrage.

Butterfly arbitrage
-------------------
A slice is free of butterfly arbitrage iff the implied density is non-negative, i.e. (Gatheral &
Jacquier 2014, "Arbitrage-free SVI volatility surfaces", Quantitative Finance 14(1), eq. 2.1 and
Lemma 2.2)

.. math:: g(k) = \Bigl(1 - \frac{k w'}{2w}\Bigr)^2 - \frac{w'^2}{4}\Bigl(\frac1w + \frac14\Bigr)
          + \frac{w''}{2} \;\ge\; 0

(with, in addition, :math:`d_+(k) \to -\infty` as :math:`k \to \infty`, which raw SVI with
:math:`b(1+\rho) < 2` satisfies). :func:`butterfly_check` evaluates :math:`g` on a dense grid
and reports where and by how much it is negative; nothing is ever "repaired".

Fit
---
:func:`fit_svi` minimises :math:`\sum_i \omega_i\,(w(k_i) - w_i)^2`. Starting values come from the
quasi-explicit calibration of De Marco & Martini (Zeliade Systems white paper ZWP-0005, 2009,
"Quasi-explicit calibration of Gatheral's SVI model", §3): for fixed :math:`(m, \sigma)` and
:math:`y = (k - m)/\sigma`, :math:`w = a + d\,y + c\sqrt{y^2 + 1}` with :math:`c = b\sigma`,
:math:`d = \rho b\sigma` is linear in :math:`(a, d, c)`. pmnb writes the linear part as
:math:`w = a + U\,P + V\,Q` with :math:`U = b(1+\rho)`, :math:`V = b(1-\rho)` (the two wing slopes),
:math:`P, Q = (\sqrt{(k-m)^2+\sigma^2} \pm (k-m))/2`, which turns the Zeliade domain into the box
:math:`0 \le U, V \le 2` (Lee's bound); :math:`a` is profiled out exactly and the box-constrained
2×2 least-squares problem is solved in closed form (interior or edge optimum). This inner solve is
evaluated for a grid of :math:`(m, \sigma)` for every slice at once (broadcast arrays, no Python
loop over candidates or slices); from the three best local minima of the grid a compass search on
:math:`(m, \ln\sigma)` refines the profiled (inner-optimal) objective, and a batched
Levenberg–Marquardt polish of all five parameters finishes, with the bounds kept by projection and
the minimum-variance constraint by step rejection. The best polished start wins. Starting from
several grid minima is what avoids the local minima that single-start fits fall into on short
expiries.

With the minimum-variance constraint :math:`a + \sigma\sqrt{UV} \ge 0` active, the inner solve
only considers its closed-form candidates that satisfy it (a feasible, possibly slightly
sub-optimal point), and the polish rejects steps that would cross it. Smiles fitted to real markets
are far from that constraint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError

__all__ = ["SVIParams", "butterfly_check", "fit_svi", "svi_total_variance"]

#: Lee's bound on the wing slopes b(1 ± rho) of total variance.
LEE_SLOPE = 2.0
_MIN_POINTS = 5


@dataclasses.dataclass(frozen=True)
class SVIParams:
    r"""Raw SVI parameters of one expiry (Gatheral 2004), for total variance in log-moneyness.

    Parameters
    ----------
    a : float
        Level of total variance.
    b : float
        Angle between the wings, ``b >= 0``.
    rho : float
        Rotation (skew), ``-1 < rho < 1``.
    m : float
        Horizontal shift, in log-moneyness.
    sigma : float
        Smoothness of the vertex, ``sigma > 0``.

    Raises
    ------
    ValidationError
        If a parameter is not finite or outside its bound, or if the minimum total variance
        :math:`a + b\sigma\sqrt{1-\rho^2}` is negative (beyond 1e-12 of rounding).

    Examples
    --------
    >>> from pmnb.vol import SVIParams
    >>> p = SVIParams(a=0.04, b=0.4, rho=-0.4, m=0.0, sigma=0.1)
    >>> p.total_variance([-0.2, 0.0, 0.2]).round(6)
    array([0.161443, 0.08    , 0.097443])
    >>> round(p.min_total_variance, 6), bool(p.g([0.0]).min() > 0)
    (0.076661, True)
    >>> SVIParams(a=0.04, b=-0.1, rho=0.0, m=0.0, sigma=0.1)
    Traceback (most recent call last):
    ...
    pmnb.errors.ValidationError: b: got -0.1; accepted: b >= 0 (finite)
    """

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def __post_init__(self) -> None:
        for name in ("a", "b", "rho", "m", "sigma"):
            value = getattr(self, name)
            try:
                fv = float(value)
            except (TypeError, ValueError):
                raise ValidationError(f"{name}: got {value!r}; accepted: a finite number",
                                      field=name) from None
            object.__setattr__(self, name, fv)
        checks = (("a", math.isfinite(self.a), "finite"),
                  ("b", math.isfinite(self.b) and self.b >= 0, "b >= 0 (finite)"),
                  ("rho", -1 < self.rho < 1, "-1 < rho < 1"),
                  ("m", math.isfinite(self.m), "finite"),
                  ("sigma", math.isfinite(self.sigma) and self.sigma > 0, "sigma > 0 (finite)"))
        for name, ok, accepted in checks:
            if not ok:
                raise ValidationError(f"{name}: got {getattr(self, name)!r}; accepted: {accepted}",
                                      field=name)
        wmin = self.min_total_variance
        if wmin < -1e-12 * max(1.0, abs(self.a)):
            raise ValidationError(
                f"a: a + b*sigma*sqrt(1 - rho^2) = {wmin!r} (negative total variance at the "
                f"vertex); accepted: a >= {-(wmin - self.a)!r} for these b, rho, sigma", field="a")

    @property
    def min_total_variance(self) -> float:
        """Minimum of w(k): :math:`a + b\\sigma\\sqrt{1-\\rho^2}`."""
        return self.a + self.b * self.sigma * math.sqrt(1.0 - self.rho * self.rho)

    @property
    def wing_slopes(self) -> tuple[float, float]:
        """Asymptotic slopes of w: ``(b(1 - rho), b(1 + rho))`` for k → −∞ and k → +∞."""
        return self.b * (1.0 - self.rho), self.b * (1.0 + self.rho)

    def as_array(self) -> np.ndarray:
        """``[a, b, rho, m, sigma]`` as a float64 array."""
        return np.array([self.a, self.b, self.rho, self.m, self.sigma])

    def total_variance(self, k) -> np.ndarray:
        """Total implied variance w(k) at log-forward-moneyness ``k`` (broadcasts)."""
        return svi_total_variance(self.as_array(), _as_k(k))

    def implied_vol(self, k, T) -> np.ndarray:
        """Implied vol ``sqrt(w(k) / T)`` (annualised decimal) for time to expiry ``T`` (years)."""
        T = np.asarray(T, dtype=np.float64)
        if not np.all(np.isfinite(T) & (T > 0)):
            raise ValidationError("T: accepted: finite, > 0 (years)", field="T")
        return np.sqrt(self.total_variance(k) / T)

    def derivatives(self, k) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(w, w', w'')`` with respect to k."""
        return _w_derivs(self.as_array(), _as_k(k))

    def g(self, k) -> np.ndarray:
        r"""Gatheral–Jacquier (2014, eq. 2.1) density factor :math:`g(k)`; the slice is free of
        butterfly arbitrage iff :math:`g \ge 0` everywhere."""
        return _g(self.as_array(), _as_k(k))


def _as_k(k) -> np.ndarray:
    a = np.asarray(k, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValidationError("k: accepted: finite log-moneyness ln(K/F)", field="k")
    return a


def svi_total_variance(params, k) -> np.ndarray:
    r"""Raw SVI total variance, vectorised over parameter sets and log-moneyness.

    Parameters
    ----------
    params : array_like, shape (..., 5)
        ``[a, b, rho, m, sigma]`` along the last axis; leading axes broadcast against ``k``.
    k : array_like
        Log-forward-moneyness :math:`\ln(K/F)`.

    Returns
    -------
    ndarray
        :math:`w(k) = a + b(\rho(k-m) + \sqrt{(k-m)^2+\sigma^2})`.

    Examples
    --------
    >>> import numpy as np
    >>> from pmnb.vol import svi_total_variance
    >>> P = np.array([[0.04, 0.4, -0.4, 0.0, 0.1], [0.02, 0.2, 0.0, 0.1, 0.2]])
    >>> svi_total_variance(P[:, None, :], np.array([-0.1, 0.1])).round(5)  # doctest: +NUMBER
    array([[0.11257, 0.08057],
           [0.07657, 0.06   ]])
    """
    p = np.asarray(params, dtype=np.float64)
    a, b, rho, m, s = (p[..., i] for i in range(5))
    x = np.asarray(k, dtype=np.float64) - m
    return a + b * (rho * x + np.sqrt(x * x + s * s))


def _w_derivs(p: np.ndarray, k: np.ndarray):
    a, b, rho, m, s = (p[..., i] for i in range(5))
    x = k - m
    R = np.sqrt(x * x + s * s)
    w = a + b * (rho * x + R)
    w1 = b * (rho + x / R)
    w2 = b * s * s / (R * R * R)
    return w, w1, w2


def _g(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    w, w1, w2 = _w_derivs(p, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = (1.0 - k * w1 / (2.0 * w)) ** 2 - 0.25 * w1 * w1 * (1.0 / w + 0.25) + 0.5 * w2
    # w = 0 at a point makes the density undefined there; report it as a violation (-inf)
    return np.where(w > 0, g, -np.inf)


def _violations(k: np.ndarray, value: np.ndarray, tol: float):
    """Summaries of ``value < -tol`` along the last axis of a (slices, grid) array."""
    bad = value < -tol
    any_bad = bad.any(axis=-1)
    imin = np.argmin(value, axis=-1)
    kk = np.broadcast_to(k, value.shape)
    rows = np.arange(value.shape[0])
    vmin = value[rows, imin]
    kmin = kk[rows, imin]
    big = np.where(bad, kk, np.inf)
    small = np.where(bad, kk, -np.inf)
    k_from = np.where(any_bad, big.min(axis=-1), np.nan)
    k_to = np.where(any_bad, small.max(axis=-1), np.nan)
    share = bad.mean(axis=-1)
    return any_bad, vmin, kmin, k_from, k_to, share


def default_k_grid(params, k_range=None, *, n: int = 2001, n_std: float = 8.0) -> np.ndarray:
    """Dense log-moneyness grid(s) for the arbitrage checks.

    Per slice: ``n`` points spanning ±``n_std`` "standard deviations" :math:`\\sqrt{w(0)}` around
    the money, widened to cover ``k_range`` (the fitted data) and capped at ±3 (strikes from 5% to
    20 times the forward). Returns shape ``(n_slices, n)``.
    """
    P = np.atleast_2d(np.asarray(params, dtype=np.float64))
    half = np.minimum(n_std * np.sqrt(np.maximum(svi_total_variance(P, 0.0), 1e-12)), 3.0)
    lo, hi = -half, half
    if k_range is not None:
        kr = np.atleast_2d(np.asarray(k_range, dtype=np.float64))
        lo = np.minimum(lo, np.nan_to_num(kr[:, 0], nan=0.0))
        hi = np.maximum(hi, np.nan_to_num(kr[:, 1], nan=0.0))
    t = np.linspace(0.0, 1.0, n)
    return lo[:, None] + (hi - lo)[:, None] * t


def butterfly_check(params, k=None, *, tol: float = 0.0, k_range=None):
    r"""Gatheral–Jacquier butterfly-arbitrage check of one or more raw SVI slices.

    Evaluates :math:`g(k)` (Gatheral & Jacquier 2014, eq. 2.1) on a dense grid and Lee's wing bound
    :math:`b(1+|\rho|) \le 2`; reports violations, never alters the parameters.

    Parameters
    ----------
    params : SVIParams, sequence of SVIParams, or array_like of shape (5,) or (n, 5)
        ``[a, b, rho, m, sigma]`` per slice.
    k : array_like, optional
        Grid, shape ``(n_grid,)`` for every slice or ``(n_slices, n_grid)``. Default:
        :func:`default_k_grid` (±8 ATM standard deviations, capped at ±3).
    tol : float, default 0
        :math:`g` below ``-tol`` counts as a violation.
    k_range : array_like of shape (n_slices, 2), optional
        Log-moneyness range of each slice's quotes; adds ``ok_in_quotes`` and
        ``min_g_in_quotes`` (the check restricted to grid points inside the range; NaN rows
        ignored). The default grid is widened to cover it.

    Returns
    -------
    pandas.DataFrame
        One row per slice: ``ok`` (no violation on the grid and Lee's bound holds), ``min_g``,
        ``k_at_min_g``, ``k_from``/``k_to`` (first and last grid point where ``g < -tol``; NaN if
        none; the violation need not be one interval), ``share_bad`` (fraction of the grid),
        ``lee_ok``, the largest wing slope ``max_slope`` and, with ``k_range``, the two
        in-quotes columns.

    Examples
    --------
    Axel Vogt's example (Gatheral & Jacquier 2014, §2.2, Fig. 1) has butterfly arbitrage:

    >>> from pmnb.vol import SVIParams, butterfly_check
    >>> vogt = SVIParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)
    >>> r = butterfly_check(vogt, k=np.linspace(-1.5, 1.5, 3001))
    >>> bool(r.ok[0]), round(float(r.min_g[0]), 3), round(float(r.k_at_min_g[0]), 2)
    (False, -0.033, 0.88)
    """
    P = _params_2d(params)
    kr = None
    if k_range is not None:
        kr = np.asarray(k_range, dtype=np.float64).reshape(len(P), 2)
    if k is None:
        grid = default_k_grid(P, kr)
    else:
        grid = np.atleast_1d(_as_k(k))
        if grid.ndim == 1:
            grid = np.broadcast_to(grid, (len(P), grid.size))
        elif grid.shape[0] != len(P):
            raise ValidationError(f"k: got shape {grid.shape}; accepted: (n_grid,) or "
                                  f"({len(P)}, n_grid)", field="k")
    g = _g(P[:, None, :], grid)
    bad, gmin, kmin, k_from, k_to, share = _violations(grid, g, tol)
    slope = P[:, 1] * (1.0 + np.abs(P[:, 2]))
    lee = slope <= LEE_SLOPE
    out = pd.DataFrame({"ok": ~bad & lee, "min_g": gmin, "k_at_min_g": kmin, "k_from": k_from,
                        "k_to": k_to, "share_bad": share, "lee_ok": lee, "max_slope": slope})
    if kr is not None:
        ok_q, min_q = _in_range(grid, g, kr, tol)
        out["ok_in_quotes"] = ok_q
        out["min_g_in_quotes"] = min_q
    return out


def _in_range(grid: np.ndarray, value: np.ndarray, kr: np.ndarray, tol: float):
    """(ok, min) of ``value`` over grid points inside each row's [lo, hi] (NaN if none)."""
    with np.errstate(invalid="ignore"):
        inside = (grid >= kr[:, :1]) & (grid <= kr[:, 1:])
    vmin = np.where(inside, value, np.inf).min(axis=-1)
    vmin = np.where(inside.any(axis=-1), vmin, np.nan)
    ok = pd.array(np.where(np.isnan(vmin), None, vmin >= -tol), dtype="boolean")
    return ok, vmin


def _params_2d(params) -> np.ndarray:
    if isinstance(params, SVIParams):
        return params.as_array()[None, :]
    if isinstance(params, Sequence) and params and isinstance(params[0], SVIParams):
        return np.array([p.as_array() for p in params])
    P = np.atleast_2d(np.asarray(params, dtype=np.float64))
    if P.ndim != 2 or P.shape[1] != 5 or not np.all(np.isfinite(P)):
        raise ValidationError(f"params: got shape {P.shape}; accepted: finite [a, b, rho, m, "
                              "sigma] of shape (5,) or (n, 5), or SVIParams", field="params")
    return P


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------
_GRID_M = 15       # m candidates per slice
_GRID_S = 14       # sigma candidates per slice
_N_STARTS = 3      # grid local minima polished per slice
_GRID_S_LO, _GRID_S_HI = 2e-3, 3.0   # sigma grid, in units of the slice's k span
_GRID_LOG_STEP = float(np.log(_GRID_S_HI / _GRID_S_LO) / (_GRID_S - 1))
_REFINE_ITER = 12
_TINY = 1e-300


def _inner(k, v, wt, m, s):
    """Quasi-explicit inner solve for candidates (m, s).

    k, v, wt: (E, 1, n) data (wt = 0 on padding, sum of wt = 1 per slice); m, s: (E, C).
    Returns a, U, V (E, C) and the objective f (E, C); f = inf where no feasible point was found.
    """
    x = k - m[..., None]
    R = np.sqrt(x * x + (s * s)[..., None])
    P = 0.5 * (R + x)
    Q = 0.5 * (R - x)
    Pb = (wt * P).sum(-1)
    Qb = (wt * Q).sum(-1)
    vb = (wt * v).sum(-1)            # (E, 1)
    Pc = P - Pb[..., None]
    Qc = Q - Qb[..., None]
    vc = v - vb[..., None]
    wP = wt * Pc
    wQ = wt * Qc
    Spp = (wP * Pc).sum(-1)
    Sqq = (wQ * Qc).sum(-1)
    Spq = (wP * Qc).sum(-1)
    Spv = (wP * vc).sum(-1)
    Sqv = (wQ * vc).sum(-1)
    Svv = (wt * vc * vc).sum(-1)

    def f(U, V):
        return Svv - 2.0 * (U * Spv + V * Sqv) + U * U * Spp + 2.0 * U * V * Spq + V * V * Sqq

    hi = LEE_SLOPE
    with np.errstate(divide="ignore", invalid="ignore"):
        det = Spp * Sqq - Spq * Spq
        okd = det > 1e-14 * np.maximum(Spp * Sqq, _TINY)
        Ui = np.where(okd, (Spv * Sqq - Sqv * Spq) / det, np.nan)
        Vi = np.where(okd, (Sqv * Spp - Spv * Spq) / det, np.nan)
        sq = np.maximum(Sqq, _TINY)
        sp = np.maximum(Spp, _TINY)
        cands = [
            (Ui, Vi),
            (np.zeros_like(Spp), np.clip(Sqv / sq, 0.0, hi)),
            (np.full_like(Spp, hi), np.clip((Sqv - hi * Spq) / sq, 0.0, hi)),
            (np.clip(Spv / sp, 0.0, hi), np.zeros_like(Spp)),
            (np.clip((Spv - hi * Spq) / sp, 0.0, hi), np.full_like(Spp, hi)),
        ]
    best_f = np.full(Spp.shape, np.inf)
    best_U = np.zeros(Spp.shape)
    best_V = np.zeros(Spp.shape)
    for U, V in cands:
        inbox = (U >= 0) & (U <= hi) & (V >= 0) & (V <= hi)  # False for NaN
        Uz = np.where(inbox, U, 0.0)
        Vz = np.where(inbox, V, 0.0)
        a = vb - Uz * Pb - Vz * Qb
        feasible = inbox & (a + s * np.sqrt(Uz * Vz) >= 0)
        fv = np.where(feasible, f(Uz, Vz), np.inf)
        take = fv < best_f
        best_f = np.where(take, fv, best_f)
        best_U = np.where(take, Uz, best_U)
        best_V = np.where(take, Vz, best_V)
    a = vb - best_U * Pb - best_V * Qb
    return a, best_U, best_V, best_f


def _model(theta, k):
    """w and its Jacobian for theta = (a, U, V, m, s) of shape (B, 5), k of shape (B, n)."""
    a, U, V, m, s = (theta[:, i:i + 1] for i in range(5))
    x = k - m
    R = np.sqrt(x * x + s * s)
    P = 0.5 * (R + x)
    Q = 0.5 * (R - x)
    w = a + U * P + V * Q
    J = np.empty(k.shape + (5,))
    J[..., 0] = 1.0
    J[..., 1] = P
    J[..., 2] = Q
    xr = x / R
    J[..., 3] = -0.5 * (U - V) - 0.5 * (U + V) * xr
    J[..., 4] = 0.5 * (U + V) * s / R
    return w, J


def _cost(theta, k, v, rw):
    w, _ = _model(theta, k)
    r = rw * (w - v)
    return (r * r).sum(-1)


def _polish(theta, k, v, rw, lo, hi, *, n_starts: int = 1, max_iter: int = 60):
    """Batched, projected Levenberg–Marquardt on theta = (a, U, V, m, s).

    Rows come in groups of ``n_starts`` starts of the same slice; after 10 iterations a start more
    than 5% above the best of its group is abandoned (it is crawling down a worse valley).
    """
    B = theta.shape[0]
    lam = np.full(B, 1e-3)
    w, J = _model(theta, k)
    r = rw * (w - v)
    cost = (r * r).sum(-1)
    done = np.zeros(B, dtype=bool)
    eye = np.eye(5)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        Jw = J * rw[..., None]
        A = np.matmul(Jw.transpose(0, 2, 1), Jw)
        gr = np.matmul(Jw.transpose(0, 2, 1), r[..., None])[..., 0]
        D = np.diagonal(A, axis1=1, axis2=2)
        D = np.maximum(D, 1e-12 * D.max(axis=1, keepdims=True) + _TINY)
        M = A + (lam[:, None] * D)[:, :, None] * eye
        step = -np.linalg.solve(M, gr[..., None])[..., 0]
        new = np.clip(theta + step, lo, hi)
        feasible = new[:, 0] + new[:, 4] * np.sqrt(new[:, 1] * new[:, 2]) >= 0
        w_n, J_n = _model(new, k)
        r_n = rw * (w_n - v)
        cost_n = np.where(feasible, (r_n * r_n).sum(-1), np.inf)
        accept = (cost_n < cost) & ~done
        small = (np.abs(new - theta) <= 1e-13 * (np.abs(theta) + 1e-10)).all(axis=1)
        rel = np.where(accept, (cost - cost_n) <= 1e-15 * cost, False)
        theta = np.where(accept[:, None], new, theta)
        r = np.where(accept[:, None], r_n, r)
        J = np.where(accept[:, None, None], J_n, J)
        cost = np.where(accept, cost_n, cost)
        lam = np.clip(np.where(accept, lam / 3.0, lam * 4.0), 1e-15, 1e15)
        done |= rel | small | (lam >= 1e15) | (cost <= 1e-30)
        if n_starts > 1 and n_iter >= 10:
            best = cost.reshape(-1, n_starts).min(axis=1)
            done |= cost > 1.05 * np.repeat(best, n_starts)
        if done.all():
            break
    return theta, cost, n_iter


def _grid(kmin, kmax):
    span = np.maximum(kmax - kmin, 1e-3)
    t = np.linspace(-0.5, 1.5, _GRID_M)
    mg = kmin[:, None] + span[:, None] * t
    sg = span[:, None] * np.geomspace(_GRID_S_LO, _GRID_S_HI, _GRID_S)
    M = np.repeat(mg, _GRID_S, axis=1)
    S = np.tile(sg, (1, _GRID_M))
    return M, S, span


_STENCIL_M = np.array([-1.0, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
_STENCIL_S = np.array([-1.0, 0.0, 1.0, -1.0, 1.0, -1.0, 0.0, 1.0])


def _refine(k, v, wn, m, s, a, U, V, f, hm, hs, bounds, *, n_iter: int = _REFINE_ITER):
    """Compass search on the profiled objective: (m, ln sigma) moves to the best of its 8
    neighbours, or halves its step when none is better. Vectorised over starts."""
    m_lo, m_hi, s_lo, s_hi = bounds
    rows = np.arange(len(m))
    for _ in range(n_iter):
        Mc = np.clip(m[:, None] + hm[:, None] * _STENCIL_M, m_lo[:, None], m_hi[:, None])
        Sc = np.clip(s[:, None] * np.exp(hs[:, None] * _STENCIL_S), s_lo[:, None], s_hi[:, None])
        ac, Uc, Vc, fc = _inner(k, v, wn, Mc, Sc)
        j = np.argmin(fc, axis=1)
        fb = fc[rows, j]
        better = fb < f
        m = np.where(better, Mc[rows, j], m)
        s = np.where(better, Sc[rows, j], s)
        a = np.where(better, ac[rows, j], a)
        U = np.where(better, Uc[rows, j], U)
        V = np.where(better, Vc[rows, j], V)
        f = np.where(better, fb, f)
        hm = np.where(better, hm, 0.5 * hm)
        hs = np.where(better, hs, 0.5 * hs)
    return m, s, a, U, V, f


def _local_minima(f: np.ndarray, n: int) -> np.ndarray:
    """Flat indices of the ``n`` best local minima of f on the (m, sigma) grid, per slice."""
    E = f.shape[0]
    F = f.reshape(E, _GRID_M, _GRID_S)
    pad = np.pad(F, ((0, 0), (1, 1), (1, 1)), constant_values=np.inf)
    is_min = np.isfinite(F)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                is_min &= F <= pad[:, 1 + di:1 + di + _GRID_M, 1 + dj:1 + dj + _GRID_S]
    score = np.where(is_min, F, np.inf).reshape(E, -1)
    order = np.argsort(score, axis=1, kind="stable")[:, :n]
    best = np.argmin(f, axis=1)
    # slices with fewer than n local minima: repeat the global grid optimum
    take = np.take_along_axis(score, order, axis=1)
    return np.where(np.isfinite(take), order, best[:, None])


def _fit_padded(k, v, wt, *, polish: bool = True):
    """Fit E slices at once. k, v, wt: (E, n) with wt = 0 on padding; returns (E, 5) raw params,
    the weighted objective and the number of LM iterations."""
    E, n = k.shape
    wsum = wt.sum(axis=1, keepdims=True)
    wn = wt / wsum
    big = np.where(wt > 0, k, np.inf).min(axis=1)
    kmax = np.where(wt > 0, k, -np.inf).max(axis=1)
    kmin = big
    M, S, span = _grid(kmin, kmax)
    a, U, V, f = _inner(k[:, None, :], v[:, None, :], wn[:, None, :], M, S)
    if not np.isfinite(f).any(axis=1).all():
        bad = int(np.flatnonzero(~np.isfinite(f).any(axis=1))[0])
        raise ValidationError(f"no feasible SVI start for slice {bad}; accepted: total variances "
                              "> 0 at >= 5 distinct strikes", field="total_variance", row=bad)
    idx = _local_minima(f, _N_STARTS)
    K = idx.shape[1]
    take = lambda X: np.take_along_axis(X, idx, axis=1).reshape(-1)  # noqa: E731
    rep = lambda X: np.repeat(X, K, axis=0)  # noqa: E731
    kb, vb, wb = rep(k), rep(v), rep(wn)
    spb, kl, kh = rep(span), rep(kmin), rep(kmax)
    m_lo, m_hi, s_lo, s_hi = kl - 2 * spb, kh + 2 * spb, spb * 1e-6, spb * 10.0
    # pattern search on the profiled objective f(m, sigma), from the grid's local minima
    m, s, a, U, V, f = _refine(kb[:, None, :], vb[:, None, :], wb[:, None, :], take(M), take(S),
                               take(a), take(U), take(V), take(f), spb * 2.0 / (_GRID_M - 1),
                               np.full(E * K, _GRID_LOG_STEP), (m_lo, m_hi, s_lo, s_hi))
    theta = np.stack([a, U, V, m, s], axis=1)
    n_iter = 0
    cost = f
    if polish:
        lo = np.stack([np.full(E * K, -np.inf), np.zeros(E * K), np.zeros(E * K), m_lo, s_lo],
                      axis=1)
        hi = np.stack([np.full(E * K, np.inf), np.full(E * K, LEE_SLOPE),
                       np.full(E * K, LEE_SLOPE), m_hi, s_hi], axis=1)
        theta, cost, n_iter = _polish(theta, kb, vb, np.sqrt(wb), lo, hi, n_starts=K)
    cost = cost.reshape(E, K)
    j = np.argmin(cost, axis=1)
    theta = theta.reshape(E, K, 5)[np.arange(E), j]
    cost = cost[np.arange(E), j]
    a, U, V, m, s = theta.T
    b = 0.5 * (U + V)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(b > 0, (U - V) / (U + V), 0.0)
    rho = np.clip(rho, -1 + 1e-12, 1 - 1e-12)
    # keep the vertex constraint exact after the change of variables
    a = np.maximum(a, -b * s * np.sqrt(1 - rho * rho))
    return np.stack([a, b, rho, m, s], axis=1), cost * wsum[:, 0], n_iter


def _pad(groups):
    n = max(len(g[0]) for g in groups)
    E = len(groups)
    k = np.zeros((E, n))
    v = np.zeros((E, n))
    wt = np.zeros((E, n))
    for e, (kk, vv, ww) in enumerate(groups):
        k[e, :len(kk)] = kk
        k[e, len(kk):] = kk[0] if len(kk) else 0.0
        v[e, :len(kk)] = vv
        wt[e, :len(kk)] = ww
    return k, v, wt


def _check_slice(k, w, weights, row=None):
    k = np.asarray(k, dtype=np.float64).reshape(-1)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    wt = np.ones_like(k) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    where = "" if row is None else f" (slice {row})"
    if not (k.shape == w.shape == wt.shape):
        raise ValidationError(f"k, total_variance, weights: shapes {k.shape}, {w.shape}, "
                              f"{wt.shape}{where}; accepted: equal 1-D lengths", field="k", row=row)
    for name, arr, ok in (("k", k, np.isfinite(k)), ("total_variance", w, np.isfinite(w) & (w > 0)),
                          ("weights", wt, np.isfinite(wt) & (wt >= 0))):
        if not ok.all():
            first = int(np.flatnonzero(~ok)[0])
            acc = {"k": "finite", "total_variance": "finite, > 0",
                   "weights": "finite, >= 0"}[name]
            raise ValidationError(f"{name}: row {first}{where} has {float(arr[first])!r}; "
                                  f"accepted: {acc}", field=name, row=first)
    use = wt > 0
    if np.unique(k[use]).size < _MIN_POINTS:
        raise ValidationError(f"k: {np.unique(k[use]).size} distinct strikes with weight > 0"
                              f"{where}; accepted: >= {_MIN_POINTS} (raw SVI has 5 parameters)",
                              field="k", row=row)
    return k[use], w[use], wt[use]


def fit_svi(k, total_variance, weights=None, *, polish: bool = True) -> SVIParams:
    r"""Fit one raw SVI smile to total variances by weighted least squares.

    Minimises :math:`\sum_i \omega_i (w(k_i) - w_i)^2` within the bounds listed in the module
    docstring: quasi-explicit (Zeliade 2009) solutions on an :math:`(m, \sigma)` grid, refined
    from the three best grid minima by a compass search on :math:`(m, \ln\sigma)`, then a
    Levenberg–Marquardt polish of all five parameters.

    Parameters
    ----------
    k : array_like, 1-D
        Log-forward-moneyness :math:`\ln(K/F)`.
    total_variance : array_like, 1-D
        Market total variance :math:`\sigma_{imp}^2 T` (> 0).
    weights : array_like, 1-D, optional
        Non-negative weights of the squared residuals (default 1). To fit vols within bid/ask
        bands, use :math:`1/(2\sigma_{imp} T h)^2` with ``h`` the band's half width in vol:
        the w residual divided by :math:`2\sigma T` is the vol residual to first order.
    polish : bool, default True
        ``False`` returns the refined quasi-explicit solution without the final 5-parameter
        polish.

    Returns
    -------
    SVIParams

    Raises
    ------
    ValidationError
        Non-finite inputs, non-positive variances, negative weights, or fewer than 5 distinct
        strikes with positive weight.

    Examples
    --------
    Noise-free data are recovered to rounding:

    >>> import numpy as np
    >>> from pmnb.vol import SVIParams, fit_svi
    >>> true = SVIParams(a=0.02, b=0.3, rho=-0.5, m=0.05, sigma=0.2)
    >>> k = np.linspace(-0.8, 0.6, 15)
    >>> fit = fit_svi(k, true.total_variance(k))
    >>> bool(np.abs(fit.as_array() - true.as_array()).max() < 1e-9)
    True
    """
    kk, ww, wt = _check_slice(k, total_variance, weights)
    P, _, _ = _fit_padded(kk[None], ww[None], wt[None], polish=polish)
    return SVIParams(*P[0])


def fit_svi_slices(slices, *, polish: bool = True) -> list[SVIParams]:
    """Fit several independent smiles at once (one vectorised pass).

    Parameters
    ----------
    slices : sequence of (k, total_variance, weights)
        As the arguments of :func:`fit_svi`; ``weights`` may be None.
    polish : bool, default True

    Returns
    -------
    list of SVIParams, in input order.

    Examples
    --------
    >>> import numpy as np
    >>> from pmnb.vol import SVIParams
    >>> from pmnb.vol.svi import fit_svi_slices
    >>> k = np.linspace(-0.5, 0.5, 11)
    >>> p1 = SVIParams(0.01, 0.1, -0.3, 0.0, 0.1)
    >>> p2 = SVIParams(0.03, 0.2, -0.2, 0.02, 0.2)
    >>> fits = fit_svi_slices([(k, p1.total_variance(k), None), (k, p2.total_variance(k), None)])
    >>> [round(f.rho, 6) for f in fits]
    [-0.3, -0.2]
    """
    groups = [_check_slice(k, w, wt, row=i) for i, (k, w, wt) in enumerate(slices)]
    if not groups:
        return []
    P, _, _ = _fit_padded(*_pad(groups), polish=polish)
    return [SVIParams(*p) for p in P]
