r"""Scenario revaluation: positions × scenarios full repricing of European options.

One compiled kernel (:mod:`pmnb._core._scenario`, C in ``scenario.c``) reprices every position
under every scenario of a grid and returns the P&L matrix. It is the engine under risk-matrix
margin (Deribit's portfolio margin simulates a grid of underlying moves × vol moves and takes the
worst loss) and under scenario and simulation risk.

Scenarios
---------
A scenario moves the market of every position at once:

``spot_shock`` :math:`s` (relative)
    :math:`x' = x\,(1 + s)`, where ``x`` is the position's ``S_or_F``: the forward for Black-76,
    the spot for BSM. Spot and forwards move together (same relative shock), so a Black-76 book
    on several expiries keeps its term structure of basis.
``vol_shock`` :math:`\Delta\sigma` (absolute, annualised decimal)
    :math:`\sigma' = \max(\sigma + \Delta\sigma, 0)`: a parallel shift of every vol
    (``0.1`` = +10 vol points). For rules that depend on moneyness or expiry (sticky moneyness,
    Deribit's vol shocks scaled by expiry), the caller computes the full positions × scenarios
    matrix of shocked vols and passes it as ``sigma_matrix``.
``time_shift`` :math:`\Delta t` (years, one value for the whole grid)
    :math:`T' = T - \Delta t`. A position with :math:`T' \le 0` expires inside the horizon: it is
    worth its intrinsic value on the shocked forward, :math:`w\,(x' - K)^+` (coin:
    :math:`/x'`), with no discounting or drift between its expiry and the horizon. Rows whose
    shocked :math:`\sigma'^2 T'` is below :math:`10^{-60}` (σ' = 0 or T' = 0) take the exact
    limit of :mod:`pmnb.pricing` (discounted forward intrinsic value), outside the fast-math loop.

The grid is the product ``spot_shocks × vol_shocks`` in **spot-major order**: scenario
``j = i_spot * n_vol + i_vol`` (the vol shock varies fastest), so that
``pnl.reshape(n_positions, n_spot, n_vol)[i, a, b]`` is position ``i`` under spot shock ``a`` and
vol shock ``b``. :func:`grid_frame` turns the matrix into a tidy DataFrame.

P&L and units
-------------
``pnl[i, j] = qty[i] * (V'_ij - V0_i)`` where ``V0`` is the value at the unshocked inputs and
``V'`` at the shocked ones, both computed by the same compiled code path (a zero scenario gives
exactly 0). ``qty`` is the signed position size × contract size (short < 0).

* ``settlement="linear"``: V in USD (the quote currency), so the P&L is USD.
* ``settlement="inverse"``: V is the coin value :math:`V_c = V_{usd}/F` at the *shocked*
  forward (Deribit's mark), so the P&L is in **coin**. The coin P&L is not the USD P&L converted
  at any one price, because the coin itself moves: the USD value changes by
  :math:`q\,(V'_c F' - V_{0,c} F) = q\,(V'_{usd} - V_{0,usd})`, while
  ``pnl_coin × F'`` :math:`= q\,(V'_{usd} - V_{0,usd}) - q\,V_{0,c}\,(F' - F)`. The difference is
  the coin premium's own exposure to the coin price. For the USD P&L of an inverse option, run
  the same grid with ``settlement="linear"`` (:math:`V_{usd} = V_c F` exactly).

Model and settlement are per call: a book that mixes them is revalued in one call per group.

Speed (``benchmarks/scenarios.py``): 10,000 positions × 861 scenarios (41 spot × 21 vol shocks,
8.6 million revaluations, Black-76 inverse) take about 85 ms on one core of the 2-core AVX-512
development machine (≈10 ns per revaluation), 4.5–5× the same grid written in NumPy +
``scipy.special.ndtr`` measured in the same run; a second thread nearly halves it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pmnb._core import _scenario
from pmnb.errors import ValidationError, row_labels, row_name
from pmnb.pricing import (_FIELDS, _MODELS, _SETTLEMENTS, _as_float, _broadcast, _check, _choice,
                          _option_sign, _threads)

__all__ = ["grid_frame", "revalue_grid"]

_SPOT_RANGE = (-1.0, 100.0)    # exclusive low: x' = x (1 + s) must stay > 0
_VOL_RANGE = (-100.0, 100.0)
_DT_RANGE = (0.0, 100.0)
_ACCEPTED = {
    "qty": "finite (signed size × contract size)",
    "spot_shocks": "a non-empty 1-D array of finite values, -1 < spot_shock <= 100 (relative)",
    "vol_shocks": "a non-empty 1-D array of finite values, -100 <= vol_shock <= 100 (absolute)",
    "time_shift": "one finite number, 0 <= time_shift <= 100 (years)",
    "sigma_matrix": ("finite, 0 <= sigma <= 100, shape (n_positions, n_spot * n_vol) or "
                     "broadcastable to it"),
}


def _axis(name: str, value: Any) -> np.ndarray:
    """A scenario axis as a contiguous 1-D float64 array (scalars become one scenario)."""
    a = _as_float(name, value)
    if a.ndim > 1 or a.size == 0:
        raise ValidationError(f"{name}: got shape {a.shape}; accepted: {_ACCEPTED[name]}",
                              field=name)
    a = np.ascontiguousarray(a.reshape(-1))
    lo, hi = _SPOT_RANGE if name == "spot_shocks" else _VOL_RANGE
    with np.errstate(invalid="ignore"):
        ok = ((a > lo) if name == "spot_shocks" else (a >= lo)) & (a <= hi)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise ValidationError.for_field(name, row=int(bad[0]), value=float(a[bad[0]]),
                                        accepted=_ACCEPTED[name], n_bad=len(bad))
    return a


def _scalar_dt(value: Any) -> float:
    a = _as_float("time_shift", value)
    if a.ndim != 0 or not (_DT_RANGE[0] <= float(a) <= _DT_RANGE[1]):
        raise ValidationError(f"time_shift: got {value!r}; accepted: {_ACCEPTED['time_shift']}",
                              field="time_shift")
    return float(a)


def revalue_grid(S_or_F, K, T, sigma, r=0.0, q=0.0, *, option_type, qty=1.0,
                 model: str = "black76", settlement: str = "linear", spot_shocks,
                 vol_shocks=0.0, time_shift=0.0, sigma_matrix=None,
                 out: np.ndarray | None = None, n_threads: int | None = None) -> np.ndarray:
    r"""P&L of every position under every scenario of a spot × vol grid, compiled.

    Parameters
    ----------
    S_or_F, K, T, sigma, r, q, option_type
        The positions, as in :func:`pmnb.greeks` (forward for ``model="black76"``, spot for
        ``"bsm"``; years; annualised decimals); they broadcast together to one dimension
        (``n_positions``; scalars give one position).
    qty : array_like, default 1.0
        Signed size × contract size per position (broadcasts with the others).
    model : {"black76", "bsm"}
    settlement : {"linear", "inverse"}
        ``"inverse"`` values in coin at the shocked forward: the P&L is then in coin (see the
        module docstring on why it differs from the USD P&L).
    spot_shocks : array_like
        Relative moves of ``S_or_F``, ``-1 < s <= 100`` (``-0.1`` = down 10%); 1-D or scalar.
    vol_shocks : array_like, default 0.0
        Absolute vol moves, ``-100 <= dv <= 100`` (``0.05`` = +5 vol points); shocked vols are
        floored at 0. With ``sigma_matrix`` they only label (and count) the vol axis.
    time_shift : float, default 0.0
        Horizon in years, ``0 <= dt <= 100``, applied to every scenario: ``T' = T - dt``;
        positions with ``T' <= 0`` settle at intrinsic value on the shocked forward.
    sigma_matrix : array_like, optional
        Shocked vols computed by the caller (sticky moneyness, venue-specific vol shocks),
        shape ``(n_positions, n_spot * n_vol)`` in the grid's order (or broadcastable to it);
        replaces ``max(sigma + vol_shock, 0)`` in the scenarios. ``sigma`` still values the base.
    out : ndarray, optional
        Preallocated C-contiguous float64 array of shape ``(n_positions, n_scenarios)``.
    n_threads : int, optional
        Most threads (``None``: every available core); the positions are split in blocks of 512,
        at most one thread per 20,000 revaluations. Results do not depend on the thread count.

    Returns
    -------
    ndarray
        ``(n_positions, n_spot * n_vol)`` float64, C-contiguous: ``qty * (V' - V0)``, scenario
        ``j = i_spot * n_vol + i_vol`` (vol fastest). USD for linear, coin for inverse.

    Raises
    ------
    ValidationError
        Naming the field, the first bad row (position, scenario index, or ``(position,
        scenario)`` for ``sigma_matrix``) and the accepted range; also for positions that do not
        broadcast to one dimension, and for an unknown model or settlement.

    Notes
    -----
    Every revaluation is :func:`pmnb.price` at the shocked inputs (the same compiled price loop,
    Haug 2007 §1.1–2.1 and Black 1976), so ``pnl[i, j] = qty[i] * (price(x'_j, K, T', σ'_ij) -
    price(x, K, T, σ))``. Positions are processed in cache-sized blocks, scenarios inside.

    Examples
    --------
    A long 100k call and a short 90k put on a BTC forward of 100k, one month, 60% vol:
    three spot moves × two vol moves.

    >>> import numpy as np
    >>> from pmnb.scenarios import revalue_grid
    >>> pnl = revalue_grid(100_000.0, [100_000.0, 90_000.0], 30 / 365, 0.6,
    ...                    option_type=["call", "put"], qty=[1.0, -2.0],
    ...                    spot_shocks=[-0.1, 0.0, 0.1], vol_shocks=[0.0, 0.1])
    >>> pnl.shape
    (2, 6)
    >>> pnl.reshape(2, 3, 2)[0].round(2)    # the call: rows spot -10%, 0, +10%; columns vol +0, +10
    array([[-4162.37, -3242.41],
           [    0.  ,  1138.77],
           [ 6416.32,  7463.49]])

    Inverse (coin-settled) options: the P&L is in coin. Seven days later, the 95k call that
    expires in 3 days is valued at intrinsic on the shocked forward.

    >>> pnl = revalue_grid(100_000.0, [95_000.0, 110_000.0], [3 / 365, 30 / 365], 0.6,
    ...                    option_type="call", settlement="inverse", spot_shocks=[0.0, 0.1],
    ...                    time_shift=7 / 365)
    >>> pnl.round(5)
    array([[-0.00492,  0.08145],
           [-0.00749,  0.02733]])
    >>> expired = (110_000 - 95_000) / 110_000 - (100_000 - 95_000) / 100_000  # intrinsic, coin
    >>> bool(np.isclose(pnl[0, 1] - pnl[0, 0], expired, rtol=1e-14))
    True
    """
    model_i = _choice("model", model, _MODELS)
    inverse = _choice("settlement", settlement, _SETTLEMENTS)
    spot = _axis("spot_shocks", spot_shocks)
    vols = _axis("vol_shocks", vol_shocks)
    dt = _scalar_dt(time_shift)

    raw = (S_or_F, K, T, sigma, r, q, option_type)
    vals = [_as_float(n, v) for n, v in zip(_FIELDS[:-1], raw[:-1])]
    vals.append(_option_sign(option_type))
    vals.append(_as_float("qty", qty))
    shape, flat = _broadcast(_FIELDS + ("qty",), vals)
    if len(shape) > 1:
        raise ValidationError(f"positions: the inputs broadcast to shape {shape}; accepted: one "
                              "dimension (one row per position) or scalars", field="S_or_F")
    flat, qf = flat[:-1], flat[-1]
    labels = row_labels(raw + (qty,))
    _check(raw, shape, flat)
    if not np.isfinite(qf).all():
        first = int(np.flatnonzero(~np.isfinite(qf))[0])
        raise ValidationError.for_field("qty", row=row_name(first, shape, labels),
                                        value=float(qf[first]), accepted=_ACCEPTED["qty"],
                                        n_bad=int((~np.isfinite(qf)).sum()))
    n = flat[0].shape[0]
    n_spot, n_vol = spot.shape[0], vols.shape[0]
    ns = n_spot * n_vol
    s_j = np.ascontiguousarray(np.repeat(spot, n_vol))
    v_j = np.ascontiguousarray(np.tile(vols, n_spot))
    dt_j = np.full(ns, dt)

    sm = None
    if sigma_matrix is not None:
        sm = _as_float("sigma_matrix", sigma_matrix)
        try:
            sm = np.ascontiguousarray(np.broadcast_to(sm, (n, ns)))
        except ValueError:
            raise ValidationError(f"sigma_matrix: got shape {sm.shape}; accepted: "
                                  f"{_ACCEPTED['sigma_matrix']} = ({n}, {ns})",
                                  field="sigma_matrix") from None
        with np.errstate(invalid="ignore"):
            ok = (sm >= 0.0) & (sm <= 100.0)
        if not ok.all():
            bad = np.flatnonzero(~ok)
            i, j = divmod(int(bad[0]), ns)
            raise ValidationError.for_field(
                "sigma_matrix", row=(row_name(i, shape, labels), j), value=float(sm[i, j]),
                accepted=_ACCEPTED["sigma_matrix"], n_bad=len(bad))

    if out is None:
        res = np.empty((n, ns))
    else:
        if (not isinstance(out, np.ndarray) or out.dtype != np.float64 or out.shape != (n, ns)
                or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValidationError(f"out: accepted: a writeable C-contiguous float64 array of "
                                  f"shape {(n, ns)}", field="out")
        res = out
    threads = _threads(n_threads, n * ns)
    threads = min(threads, -(-n // _scenario.BLOCK)) if n else 1
    kmodel = model_i
    if model_i == _MODELS["bsm"] and not flat[5].any():
        kmodel = 2  # bsm specialised for q = 0 (q is then not read)
    _scenario.grid(kmodel, inverse, *flat, qf, s_j, None if sm is not None else v_j, dt_j, sm,
                   res, threads)
    return res


def grid_frame(pnl, spot_shocks, vol_shocks=0.0, *, time_shift=0.0, index=None):
    """The P&L matrix of :func:`revalue_grid` as a tidy (long) DataFrame.

    Parameters
    ----------
    pnl : array_like
        ``(n_positions, n_spot * n_vol)`` matrix from :func:`revalue_grid`.
    spot_shocks, vol_shocks, time_shift
        The grid that produced ``pnl`` (as passed to :func:`revalue_grid`).
    index : array_like, optional
        Position labels (e.g. the book's index or ``position_id``); default ``0 .. n - 1``.

    Returns
    -------
    pandas.DataFrame
        One row per (position, scenario), positions outer, scenarios in the grid's order:
        columns ``position``, ``scenario`` (index ``j``), ``spot_shock``, ``vol_shock``,
        ``time_shift``, ``pnl``.

    Examples
    --------
    >>> from pmnb.scenarios import grid_frame, revalue_grid
    >>> spots, vols = [-0.1, 0.1], [0.0, 0.05]
    >>> pnl = revalue_grid(100_000.0, 100_000.0, 0.1, 0.5, option_type="put",
    ...                    spot_shocks=spots, vol_shocks=vols)
    >>> grid_frame(pnl, spots, vols, index=["BTC-P-100k"]).round(2)
         position  scenario  spot_shock  vol_shock  time_shift      pnl
    0  BTC-P-100k         0        -0.1       0.00         0.0  5962.76
    1  BTC-P-100k         1        -0.1       0.05         0.0  6450.14
    2  BTC-P-100k         2         0.1       0.00         0.0 -3521.52
    3  BTC-P-100k         3         0.1       0.05         0.0 -2962.58
    """
    import pandas as pd  # a runtime dependency; imported here to keep `import pmnb` light

    spot = _axis("spot_shocks", spot_shocks)
    vols = _axis("vol_shocks", vol_shocks)
    dt = _scalar_dt(time_shift)
    p = np.asarray(pnl, dtype=np.float64)
    ns = spot.shape[0] * vols.shape[0]
    if p.ndim != 2 or p.shape[1] != ns:
        raise ValidationError(f"pnl: got shape {p.shape}; accepted: (n_positions, {ns}) for "
                              f"{spot.shape[0]} spot × {vols.shape[0]} vol shocks", field="pnl")
    n = p.shape[0]
    if index is None:
        pos = np.arange(n)
    else:
        pos = np.asarray(index)
        if pos.shape != (n,):
            raise ValidationError(f"index: got {pos.shape[0] if pos.ndim else 'a scalar'} "
                                  f"labels; accepted: one per position ({n})", field="index")
    return pd.DataFrame({
        "position": np.repeat(pos, ns),
        "scenario": np.tile(np.arange(ns), n),
        "spot_shock": np.tile(np.repeat(spot, vols.shape[0]), n),
        "vol_shock": np.tile(np.tile(vols, spot.shape[0]), n),
        "time_shift": np.full(n * ns, dt),
        "pnl": p.reshape(-1),
    })

