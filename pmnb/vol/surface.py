r"""An SVI volatility surface: per-expiry raw SVI slices, interpolation, arbitrage checks and the
sticky-strike / sticky-moneyness rules for scenario revaluation.

Interpolation (between fitted expiries)
---------------------------------------
At fixed log-forward-moneyness :math:`k = \ln(K/F(T))` total variance is linear in :math:`T`
between the two neighbouring slices :math:`T_i \le T \le T_{i+1}`:

.. math:: w(k, T) = (1-\theta)\,w_i(k) + \theta\,w_{i+1}(k),\qquad
          \theta = \frac{T - T_i}{T_{i+1} - T_i}.

If the slices are free of calendar arbitrage (:math:`w_{i+1}(k) \ge w_i(k)` for every k) so is the
interpolated surface: :math:`\partial w/\partial T = (w_{i+1} - w_i)/(T_{i+1} - T_i) \ge 0`. This is
the total-variance interpolation of Gatheral (*The Volatility Surface*, Wiley 2006, ch. 3) and of
Gatheral & Jacquier (2014, §5 discuss why butterfly-freeness of the slices does not carry over to
every interpolation in general; :meth:`SVISurface.check_butterfly` checks the fitted slices).

Extrapolation (before the first / after the last expiry)
--------------------------------------------------------
**Flat implied vol at fixed k** from the nearest slice: :math:`\sigma(k, T) = \sigma_1(k)` for
:math:`T < T_1` and :math:`\sigma(k, T) = \sigma_n(k)` for :math:`T > T_n`, i.e.
:math:`w(k, T) = w_1(k)\,T/T_1` and :math:`w_n(k)\,T/T_n`. Both are non-decreasing in :math:`T`, so
the extrapolation adds no calendar arbitrage; it meets the interpolation continuously at
:math:`T_1` and :math:`T_n`. Holding total variance constant beyond :math:`T_n` is not used: it
would make vol decay like :math:`1/\sqrt T` for no reason in the data.

Forwards
--------
``K`` is turned into :math:`k = \ln(K/F(T))` with :math:`\ln F` linear in :math:`T` between the
fitted forwards (constant carry per segment), from ``spot`` at :math:`T = 0` if the surface has one
(else flat at the first forward), and continuing the last segment's carry after the last expiry
(flat for a single slice without spot).

Scenario rules
--------------
:meth:`SVISurface.vol_for_scenario` returns the vol to revalue an option of strike K and expiry T
after a relative move ``spot_shock`` of spot, the forwards moving with it
(:math:`F' = F\,(1 + \text{shock})`, carry unchanged):

``"sticky_strike"``
    the smile stays put in strike: :math:`\sigma'(K) = \sigma(K)`. Moneyness changes with the move,
    so an option rolls along the smile.
``"sticky_moneyness"``
    the smile moves with the forward: :math:`\sigma'(K) = \sigma(K / (1 + \text{shock}))`, i.e. the
    vol of today's surface at :math:`k' = \ln(K / F')` (a.k.a. sticky delta for a fixed T).

See Derman (1999), "Regimes of volatility", *Risk* 12(4), 55–59.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError
from pmnb.vol.svi import SVIParams, _in_range, _violations, butterfly_check, default_k_grid, \
    svi_total_variance

__all__ = ["SVISlice", "SVISurface"]

_RULES = ("sticky_strike", "sticky_moneyness")


@dataclasses.dataclass(frozen=True)
class SVISlice:
    """One expiry of an SVI surface.

    Parameters
    ----------
    T : float
        Time to expiry in years (ACT/365), > 0.
    forward : float
        Forward of that expiry (USD), > 0; log-moneyness is ``ln(K / forward)``.
    params : SVIParams
        Raw SVI parameters of total variance.
    expiry : pandas.Timestamp, optional
        Calendar expiry, for reports.
    k_range : (float, float), optional
        Log-moneyness range of the quotes the slice was fitted to (widens the arbitrage-check
        grids to cover them).

    Examples
    --------
    >>> from pmnb.vol import SVIParams, SVISlice
    >>> s = SVISlice(T=0.25, forward=100.0, params=SVIParams(0.01, 0.1, -0.3, 0.0, 0.1))
    >>> s.implied_vol([90.0, 100.0, 110.0]).round(4)
    array([0.3328, 0.2828, 0.2895])
    """

    T: float
    forward: float
    params: SVIParams
    expiry: Any = None
    k_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        T, F = float(self.T), float(self.forward)
        if not (math.isfinite(T) and 0 < T <= 100):
            raise ValidationError(f"T: got {self.T!r}; accepted: 0 < T <= 100 (years)", field="T")
        if not (math.isfinite(F) and F > 0):
            raise ValidationError(f"forward: got {self.forward!r}; accepted: finite, > 0",
                                  field="forward")
        if not isinstance(self.params, SVIParams):
            raise ValidationError(f"params: got {type(self.params).__name__}; accepted: SVIParams",
                                  field="params")
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "forward", F)
        if self.k_range is not None:
            lo, hi = (float(x) for x in self.k_range)
            object.__setattr__(self, "k_range", (lo, hi))

    def total_variance(self, k) -> np.ndarray:
        """Total variance at log-moneyness ``k``."""
        return self.params.total_variance(k)

    def implied_vol(self, K=None, *, k=None) -> np.ndarray:
        """Vol at strikes ``K`` (USD) or at log-moneyness ``k`` (exactly one of them)."""
        k = _k_of(K, k, self.forward)
        return np.sqrt(self.params.total_variance(k) / self.T)


def _k_of(K, k, F):
    if (K is None) == (k is None):
        raise ValidationError("K, k: give exactly one of strike K (USD) or log-moneyness k",
                              field="K")
    if k is not None:
        k = np.asarray(k, dtype=np.float64)
        if not np.all(np.isfinite(k)):
            raise ValidationError.for_field("k", row=_first(~np.isfinite(k)), value=float(
                k.reshape(-1)[_first_flat(~np.isfinite(k))]), accepted="finite ln(K/F)")
        return k
    return np.log(_check_K(K) / F)


def _check_K(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    bad = ~(np.isfinite(K) & (K > 0))
    if bad.any():
        raise ValidationError.for_field("K", row=_first(bad), value=float(
            K.reshape(-1)[_first_flat(bad)]), accepted="finite, > 0 (USD)", n_bad=int(bad.sum()))
    return K


def _first_flat(bad: np.ndarray) -> int:
    return int(np.flatnonzero(np.asarray(bad).reshape(-1))[0])


def _first(bad: np.ndarray):
    bad = np.asarray(bad)
    pos = _first_flat(bad)
    return pos if bad.ndim <= 1 else tuple(int(i) for i in np.unravel_index(pos, bad.shape))


def _check_T(T) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    bad = ~(np.isfinite(T) & (T >= 0) & (T <= 100))
    if bad.any():
        raise ValidationError.for_field("T", row=_first(bad), value=float(T.reshape(-1)[
            _first_flat(bad)]), accepted="finite, 0 <= T <= 100 (years)", n_bad=int(bad.sum()))
    return T


@dataclasses.dataclass(frozen=True)
class SVISurface:
    r"""Raw SVI slices on increasing expiries, with total-variance interpolation in T.

    Parameters
    ----------
    slices : sequence of SVISlice
        At least one; strictly increasing ``T``.
    spot : float, optional
        Spot (index) price, anchoring the forward curve at T = 0.
    currency : str, optional
    timestamp : pandas.Timestamp, optional
        Valuation time the ``T`` of the slices are measured from.

    Notes
    -----
    Interpolation, extrapolation, forwards and scenario rules are documented in
    :mod:`pmnb.vol.surface`. Every method broadcasts its array arguments like NumPy and loops over
    no rows in Python.

    Examples
    --------
    >>> from pmnb.vol import SVIParams, SVISlice, SVISurface
    >>> s1 = SVISlice(0.1, 100.0, SVIParams(0.004, 0.05, -0.3, 0.0, 0.1))
    >>> s2 = SVISlice(0.5, 101.0, SVIParams(0.02, 0.15, -0.3, 0.0, 0.2))
    >>> surf = SVISurface((s1, s2), spot=99.8)
    >>> float(surf.implied_vol(100.0, 0.1)) == float(s1.implied_vol(100.0))
    True
    >>> surf.implied_vol([90.0, 100.0, 110.0], [[0.05], [0.3], [1.0]]).round(4)
    array([[0.3577, 0.2998, 0.3082],
           [0.3472, 0.3144, 0.3115],
           [0.3503, 0.32  , 0.3119]])

    After a spot move of −10%/0/+10%: sticky strike keeps the vol of K = 100; sticky moneyness
    reads today's smile at K / (1 + shock).

    >>> surf.vol_for_scenario(100.0, 0.5, [-0.1, 0.0, 0.1]).round(4)
    array([0.3178, 0.3178, 0.3178])
    >>> surf.vol_for_scenario(100.0, 0.5, [-0.1, 0.0, 0.1], rule="sticky_moneyness").round(4)
    array([0.3129, 0.3178, 0.3425])
    >>> s2.implied_vol([100 / 0.9, 100 / 1.1]).round(4)
    array([0.3129, 0.3425])
    """

    slices: tuple[SVISlice, ...]
    spot: float | None = None
    currency: str | None = None
    timestamp: Any = None

    def __post_init__(self) -> None:
        slices = tuple(self.slices)
        if not slices or not all(isinstance(s, SVISlice) for s in slices):
            raise ValidationError("slices: accepted: a non-empty sequence of SVISlice",
                                  field="slices")
        T = np.array([s.T for s in slices])
        if np.any(np.diff(T) <= 0):
            row = int(np.flatnonzero(np.diff(T) <= 0)[0]) + 1
            raise ValidationError.for_field("slices", row=row, value=float(T[row]),
                                            accepted="strictly increasing T")
        object.__setattr__(self, "slices", slices)
        if self.spot is not None:
            spot = float(self.spot)
            if not (math.isfinite(spot) and spot > 0):
                raise ValidationError(f"spot: got {self.spot!r}; accepted: None or finite, > 0",
                                      field="spot")
            object.__setattr__(self, "spot", spot)
        object.__setattr__(self, "_T", T)
        object.__setattr__(self, "_F", np.array([s.forward for s in slices]))
        object.__setattr__(self, "_P", np.array([s.params.as_array() for s in slices]))
        # forward-curve nodes: (0, ln spot) if known, then the slices
        tn = np.concatenate([[0.0], T]) if self.spot is not None else T
        fv = np.concatenate([[self.spot], self._F]) if self.spot is not None else self._F
        object.__setattr__(self, "_fwd_nodes", (tn, np.log(fv), fv))

    # -- basic views ---------------------------------------------------------------------------
    @property
    def T(self) -> np.ndarray:
        """Times to expiry of the slices (years)."""
        return self._T.copy()

    @property
    def forwards(self) -> np.ndarray:
        """Forwards of the slices (USD)."""
        return self._F.copy()

    @property
    def expiries(self) -> list:
        """Calendar expiries of the slices (None where unknown)."""
        return [s.expiry for s in self.slices]

    def to_frame(self):
        """One row per slice: expiry, T, forward and the raw SVI parameters.

        Examples
        --------
        >>> from pmnb.vol import SVIParams, SVISlice, SVISurface
        >>> surf = SVISurface([SVISlice(0.5, 100.0, SVIParams(0.02, 0.1, -0.3, 0.0, 0.2))])
        >>> surf.to_frame()[["T", "forward", "a", "rho"]]
             T  forward     a  rho
        0  0.5    100.0  0.02 -0.3
        """
        return pd.DataFrame({"expiry": self.expiries, "T": self._T, "forward": self._F,
                             **{n: self._P[:, i] for i, n in
                                enumerate(("a", "b", "rho", "m", "sigma"))}})

    def forward(self, T) -> np.ndarray:
        """Forward at ``T`` (years): ln F linear in T between nodes (module docstring).

        Examples
        --------
        >>> from pmnb.vol import SVIParams, SVISlice, SVISurface
        >>> p = SVIParams(0.02, 0.1, -0.3, 0.0, 0.2)
        >>> surf = SVISurface([SVISlice(0.5, 101.0, p), SVISlice(1.0, 102.0, p)], spot=100.0)
        >>> surf.forward([0.0, 0.5, 0.75, 1.5]).round(3)
        array([100.   , 101.   , 101.499, 103.01 ])
        """
        T = _check_T(T)
        tn, lf, fv = self._fwd_nodes
        if len(tn) == 1:
            return np.full(T.shape, fv[0])
        lfT = np.interp(T, tn, lf)  # flat before the first node (no spot): F(T) = F_1
        slope = (lf[-1] - lf[-2]) / (tn[-1] - tn[-2])
        lfT = np.where(T > tn[-1], lf[-1] + slope * (T - tn[-1]), lfT)
        F = np.exp(lfT)
        # exactly the stored forward (not exp(log F)) on the nodes
        i = np.clip(np.searchsorted(tn, T), 0, len(tn) - 1)
        return np.where(tn[i] == T, fv[i], F)

    # -- interpolation -------------------------------------------------------------------------
    def _w_and_vol(self, k: np.ndarray, T: np.ndarray):
        k, T = np.broadcast_arrays(k, T)
        Ts, P = self._T, self._P
        n = len(Ts)
        if n == 1:
            w0 = svi_total_variance(P[0], k)
            return w0 * (T / Ts[0]), np.sqrt(w0 / Ts[0])
        i = np.clip(np.searchsorted(Ts, T, side="right") - 1, 0, n - 2)
        t0, t1 = Ts[i], Ts[i + 1]
        w_lo = svi_total_variance(P[i], k)
        w_hi = svi_total_variance(P[i + 1], k)
        theta = (T - t0) / (t1 - t0)
        w = (1.0 - theta) * w_lo + theta * w_hi
        before, after = T < Ts[0], T > Ts[-1]
        # flat vol at fixed k outside [T_1, T_n]: w = w_edge(k) * T / T_edge
        vol_edge = np.sqrt(np.where(before, w_lo / Ts[0], w_hi / Ts[-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            vol = np.where(before | after, vol_edge, np.sqrt(w / T))
        w = np.where(before | after, vol_edge * vol_edge * T, w)
        return w, vol

    def total_variance(self, k, T) -> np.ndarray:
        """Total variance :math:`w(k, T)` at log-forward-moneyness ``k`` and ``T`` (broadcast)."""
        return self._w_and_vol(_k_of(None, k, 1.0), _check_T(T))[0]

    def implied_vol(self, K=None, T=None, *, k=None) -> np.ndarray:
        """Implied vol (annualised decimal) at strikes ``K`` or log-moneyness ``k``, and ``T``.

        Parameters
        ----------
        K : array_like, optional
            Strikes (USD); log-moneyness is taken on :meth:`forward` at each ``T``.
        T : array_like
            Times to expiry (years, ``0 <= T <= 100``); broadcasts against ``K`` / ``k``.
        k : array_like, optional
            Log-forward-moneyness ``ln(K/F(T))`` instead of ``K``.

        Returns
        -------
        ndarray of the broadcast shape.
        """
        if T is None:
            raise ValidationError("T: missing; accepted: times to expiry in years", field="T")
        T = _check_T(T)
        if (K is None) == (k is None):
            raise ValidationError("K, k: give exactly one of strike K (USD) or log-moneyness k",
                                  field="K")
        k = np.log(_check_K(K) / self.forward(T)) if k is None else _k_of(None, k, 1.0)
        return self._w_and_vol(k, T)[1]

    def vol_for_scenario(self, K, T, spot_shock, rule: str = "sticky_strike") -> np.ndarray:
        """Vol for revaluing strike ``K``, expiry ``T`` after spot moves by ``spot_shock``.

        Parameters
        ----------
        K, T : array_like
            Strikes (USD) and times to expiry (years).
        spot_shock : array_like
            Relative move of spot and of every forward (``-0.2`` = −20%); ``> -1``.
        rule : {"sticky_strike", "sticky_moneyness"}
            ``"sticky_strike"``: the vol of strike K is unchanged. ``"sticky_moneyness"``: the
            vol of today's surface at ``K / (F(T) (1 + shock))``. See :mod:`pmnb.vol.surface`.

        Returns
        -------
        ndarray
            Vols of the broadcast shape of ``K``, ``T`` and ``spot_shock``.
        """
        if rule not in _RULES:
            raise ValidationError(f"rule: got {rule!r}; accepted: {', '.join(map(repr, _RULES))}",
                                  field="rule")
        shock = np.asarray(spot_shock, dtype=np.float64)
        bad = ~(np.isfinite(shock) & (shock > -1))
        if bad.any():
            raise ValidationError.for_field("spot_shock", row=_first(bad), value=float(
                shock.reshape(-1)[_first_flat(bad)]), accepted="finite, > -1 (relative move)",
                n_bad=int(bad.sum()))
        T = _check_T(T)
        k = np.log(_check_K(K) / self.forward(T))
        if rule == "sticky_moneyness":
            k = k - np.log1p(shock)
        else:
            k = k + np.zeros_like(shock)
        return self._w_and_vol(k, T)[1]

    # -- arbitrage checks ----------------------------------------------------------------------
    def _k_ranges(self) -> np.ndarray:
        return np.array([s.k_range if s.k_range is not None else (np.nan, np.nan)
                         for s in self.slices], dtype=np.float64)

    def _grids(self, k, n: int = 2001) -> np.ndarray:
        if k is not None:
            g = np.atleast_1d(_k_of(None, k, 1.0))
            if g.ndim != 1:
                raise ValidationError(f"k: got shape {g.shape}; accepted: a 1-D grid",
                                      field="k")
            return np.broadcast_to(g, (len(self.slices), g.size))
        return default_k_grid(self._P, self._k_ranges(), n=n)

    def check_butterfly(self, k=None, *, tol: float = 0.0):
        """Gatheral–Jacquier g(k) >= 0 and Lee's wing bound on every slice.

        Parameters
        ----------
        k : array_like, optional
            1-D log-moneyness grid; default per slice: ±8 ATM standard deviations (capped at ±3),
            widened to the fitted quotes.
        tol : float, default 0

        Returns
        -------
        pandas.DataFrame
            ``expiry``, ``T`` and the columns of :func:`pmnb.vol.butterfly_check`, including
            ``ok_in_quotes`` / ``min_g_in_quotes`` over each slice's fitted ``k_range`` (NaN
            where unknown).
        """
        rep = butterfly_check(self._P, self._grids(k), tol=tol, k_range=self._k_ranges())
        rep.insert(0, "T", self._T)
        rep.insert(0, "expiry", self.expiries)
        return rep

    def check_calendar(self, k=None, *, tol: float = 0.0):
        r"""No-calendar-arbitrage check: :math:`w_{i+1}(k) \ge w_i(k)` at fixed log-moneyness.

        Compares each pair of consecutive slices on a dense grid of k (each slice's k on its own
        forward). Reports, never alters.

        Parameters
        ----------
        k : array_like, optional
            1-D grid; default: the union of both slices' butterfly-check ranges.
        tol : float, default 0
            Total-variance decrease tolerated before flagging.

        Returns
        -------
        pandas.DataFrame
            One row per consecutive pair: ``expiry_from``, ``expiry_to``, ``T_from``, ``T_to``,
            ``ok``, ``min_dw`` (most negative :math:`w_{i+1} - w_i`), ``k_at_min``, ``k_from`` /
            ``k_to`` (first and last grid point where it is below ``-tol``; the violation need
            not be one interval), ``share_bad``, and ``ok_in_quotes`` / ``min_dw_in_quotes``:
            the check restricted to the k covered by the quotes of both slices (NaN if unknown).

        Examples
        --------
        Two slices whose smiles cross (the later one has less variance in the right wing):

        >>> from pmnb.vol import SVIParams, SVISlice, SVISurface
        >>> s1 = SVISlice(0.1, 100.0, SVIParams(0.004, 0.05, 0.3, 0.0, 0.1))
        >>> s2 = SVISlice(0.2, 100.0, SVIParams(0.008, 0.05, -0.5, 0.0, 0.1))
        >>> rep = SVISurface([s1, s2]).check_calendar(k=np.linspace(-1, 1, 201))
        >>> bool(rep.ok[0]), round(float(rep.k_from[0]), 2), round(float(rep.min_dw[0]), 4)
        (False, 0.1, -0.036)
        """
        n = len(self.slices)
        cols = ["expiry_from", "expiry_to", "T_from", "T_to", "ok", "min_dw", "k_at_min",
                "k_from", "k_to", "share_bad", "ok_in_quotes", "min_dw_in_quotes"]
        if n < 2:
            return pd.DataFrame(columns=cols)
        if k is None:
            G = self._grids(None)
            lo = np.minimum(G[:-1, 0], G[1:, 0])
            hi = np.maximum(G[:-1, -1], G[1:, -1])
            grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, G.shape[1])
        else:
            grid = self._grids(k)[:-1]
        P = self._P
        dw = svi_total_variance(P[1:, None, :], grid) - svi_total_variance(P[:-1, None, :], grid)
        bad, dmin, kmin, k_from, k_to, share = _violations(grid, dw, tol)
        kr = self._k_ranges()
        both = np.stack([np.maximum(kr[:-1, 0], kr[1:, 0]), np.minimum(kr[:-1, 1], kr[1:, 1])],
                        axis=1)
        ok_q, min_q = _in_range(grid, dw, both, tol)
        ex = self.expiries
        return pd.DataFrame({"expiry_from": ex[:-1], "expiry_to": ex[1:], "T_from": self._T[:-1],
                             "T_to": self._T[1:], "ok": ~bad, "min_dw": dmin, "k_at_min": kmin,
                             "k_from": k_from, "k_to": k_to, "share_bad": share,
                             "ok_in_quotes": ok_q, "min_dw_in_quotes": min_q})
