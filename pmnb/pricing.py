r"""Prices, greeks and implied volatility of European options, linear and inverse (coin-settled).

A thin, validated NumPy API over the compiled kernels in :mod:`pmnb._core`. Inputs broadcast like
NumPy; every result is a float64 array of the broadcast shape.

Models
------
``model="black76"`` (default)
    Black (1976) on a forward or future ``F``: :math:`V = e^{-rT}\,w\,[F N(w d_1) - K N(w d_2)]`.
    This is what Deribit and OKX use, with ``F`` the option's ``underlying_price``.
``model="bsm"``
    Black–Scholes–Merton on spot ``S`` with rate ``r`` and continuous yield/carry ``q``
    (Merton 1973): forward :math:`F = S e^{(r-q)T}`.

Both are the generalized Black–Scholes model with cost of carry ``b`` (``b = r - q``, Black-76:
``b = 0`` on ``x = F``) in Haug, *The Complete Guide to Option Pricing Formulas*, 2nd ed. (2007),
§1.1–2.1, where every greek used here is tabulated. ``w = +1`` for calls, ``-1`` for puts;
:math:`d_{1,2} = [\ln(F/K) \pm \sigma^2 T/2] / (\sigma\sqrt T)`.

Settlement
----------
``settlement="linear"``
    Value and greeks in the quote currency (USD, USDC, USDT).
``settlement="inverse"``
    Coin-settled (Deribit/OKX inverse options). The value is :math:`V_c = V_{usd}/F` coins
    (Deribit's mark price, verified on its snapshots). Coin greeks differentiate :math:`V_c`:

    * ``delta`` is :math:`F\,\partial V_c/\partial F = \Delta_{usd} - V_c = w\,(K/F)\,e^{-rT} N(w d_2)`,
      the coin (premium-adjusted) delta: Deribit's *net transactional delta* of the option
      (Deribit API docs, ``delta_total``: "NTD = Black Scholes Delta − Mark Price of Options").
    * the spot-type greeks differentiate that delta: ``gamma`` = ∂delta/∂x (coin per USD),
      ``speed`` = ∂gamma/∂x, ``vanna`` = ∂delta/∂σ, ``zomma`` = ∂gamma/∂σ, ``charm`` and ``color``
      = −∂/∂T of delta and gamma;
    * the value-type greeks differentiate :math:`V_c`: ``vega``, ``volga``, ``ultima``, ``theta``,
      ``veta``, ``rho`` (coin per unit change of the input).

    With ``model="bsm"`` the same definitions hold with :math:`F = S e^{(r-q)T}`; derivatives are
    taken with respect to the model's inputs (spot, sigma, T, r) holding the others fixed.

Greeks and units
----------------
The kernels compute *raw* greeks; ``units`` rescales them:

========  ==============================  ===========================  =======================================
greek     definition (raw)                ``units="desk"``             ``units="deribit"``
========  ==============================  ===========================  =======================================
price     V                               V                            mark: coin if inverse, else USD
delta     ∂V/∂x                           same                         USD Black delta w·N(w d1)·e^{-rT}
gamma     ∂²V/∂x²                         same                         USD gamma
vega      ∂V/∂σ (per 1.00 vol)            per vol point (/100)         USD per vol point
theta     −∂V/∂T (per year)               per calendar day (/365)      −min(|Θ|/365, |Θ|·T, V_usd), USD/day
rho       ∂V/∂r (per 1.00)                per 1% (/100)                USD per 1%, BS rho w·K·T·e^{-rT}N(w d2)
vanna     ∂²V/∂x∂σ                        /100                         /100 (USD)
volga     ∂²V/∂σ²                         /100²                        /100² (USD)
charm     −∂²V/∂x∂T                       /365                         /365 (USD)
veta      −∂²V/∂σ∂T                       /(100·365)                   /(100·365) (USD)
speed     ∂³V/∂x³                         same                         same (USD)
zomma     ∂³V/∂x²∂σ                       /100                         /100 (USD)
color     −∂³V/∂x²∂T                      /365                         /365 (USD)
ultima    ∂³V/∂σ³                         /100³                        /100³ (USD)
========  ==============================  ===========================  =======================================

``desk`` divides by 100 for each derivative in σ or r and by 365 for each time derivative.
``deribit`` reproduces the greeks of Deribit's ticker (verified on the shipped 2020 and 2025
snapshots; requires ``model="black76"``): USD greeks on the forward, never premium-adjusted, even for
inverse options; theta is Deribit's "minimum of 1-day theta and lifetime theta", also capped at the
mark value in USD (observed on the 2020 data for options within ~1.4 days of expiry).

Time greeks (theta, charm, veta, color) are −∂/∂T: the change as calendar time passes.

Limits (T = 0 or σ = 0)
-----------------------
Rows with :math:`\sigma^2 T < 10^{-60}` take an exact path outside the fast-math loop: the value
is the discounted forward intrinsic value :math:`e^{-rT}(w(F-K))^+` (coins: divided by F); ``delta``
is the step :math:`w e^{(b-r)T}` in the money, 0 out of the money and half of it at ``F == K``;
theta, rho and charm keep their deterministic (intrinsic) parts; every term carrying the normal
density is 0. At exactly ``F == K`` gamma-type limits diverge; pmnb returns 0 there.

Accepted input ranges (anything else raises :class:`~pmnb.errors.ValidationError` naming the field
and the first bad row): ``1e-12 <= S_or_F, K <= 1e12``, ``0 <= T <= 100`` years,
``0 <= sigma <= 100`` (annualised decimal), ``-2 <= r, q <= 2``, ``option_type`` in
``{"call", "put", "c", "p"}`` (any case), ``True``/``False`` (call/put) or ``+1``/``-1``.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from pmnb._core import _kernels
from pmnb.errors import ValidationError, row_labels, row_name

__all__ = [
    "GREEKS",
    "FIRST_ORDER",
    "IVReason",
    "ImpliedVol",
    "build_info",
    "greeks",
    "implied_vol",
    "price",
]

#: Every greek the kernels compute, in kernel output order.
GREEKS: tuple[str, ...] = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "volga",
                           "charm", "veta", "speed", "zomma", "color", "ultima")
#: Price and the first-order set (plus gamma): the default of :func:`greeks`.
FIRST_ORDER: tuple[str, ...] = GREEKS[:6]

_MODELS = {"bsm": 0, "black76": 1}
_SETTLEMENTS = {"linear": 0, "inverse": 1}
_UNITS = ("raw", "desk", "deribit")
_FIELDS = ("S_or_F", "K", "T", "sigma", "r", "q", "option_type")
_ACCEPTED = {
    "S_or_F": "finite, 1e-12 <= S_or_F <= 1e12",
    "K": "finite, 1e-12 <= K <= 1e12",
    "T": "finite, 0 <= T <= 100 (years)",
    "sigma": "finite, 0 <= sigma <= 100 (annualised decimal)",
    "r": "finite, -2 <= r <= 2 (annualised decimal)",
    "q": "finite, -2 <= q <= 2 (annualised decimal)",
    "option_type": "'call'/'put'/'c'/'p' (any case), True/False or +1/-1",
}
_SST_MIN = 1e-30          # must equal PMNB_SST_MIN in kernel.h
_THREAD_MIN_ROWS = 20_000  # below this, thread start-up costs more than it saves
# (sigma exponent, time exponent, rate exponent) of each greek, for unit scaling
_DIMS = {"price": (0, 0, 0), "delta": (0, 0, 0), "gamma": (0, 0, 0), "vega": (1, 0, 0),
         "theta": (0, 1, 0), "rho": (0, 0, 1), "vanna": (1, 0, 0), "volga": (2, 0, 0),
         "charm": (0, 1, 0), "veta": (1, 1, 0), "speed": (0, 0, 0), "zomma": (1, 0, 0),
         "color": (0, 1, 0), "ultima": (3, 0, 0)}


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _threads(n_threads: int | None, n: int) -> int:
    """Threads to use: at most ``n_threads`` (default: every available core), and no more than one
    per 20,000 rows, below which starting a thread costs more than it saves."""
    if n_threads is None:
        n_threads = _cpu_count()
    elif (isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer))
          or n_threads < 1):
        raise ValidationError(f"n_threads: got {n_threads!r}; accepted: None or an integer >= 1",
                              field="n_threads")
    return max(1, min(int(n_threads), n // _THREAD_MIN_ROWS))


def _choice(name: str, value: Any, accepted: Mapping | Sequence) -> Any:
    if value not in accepted:
        raise ValidationError(f"{name}: got {value!r}; accepted: {', '.join(map(repr, accepted))}",
                              field=name)
    return accepted[value] if isinstance(accepted, Mapping) else value


_LITTLE = sys.byteorder == "little"
_SPELLINGS = {"call": 1.0, "c": 1.0, "put": -1.0, "p": -1.0}


def _sign_of_labels(labels: Sequence[Any]) -> np.ndarray:
    """+1/-1/0 for each distinct label (few of them), case-insensitive."""
    return np.array([_SPELLINGS.get(str(u).lower(), 0.0) for u in labels], dtype=np.float64)


def _sign_of_unicode(a: np.ndarray) -> np.ndarray:
    """Vectorised spelling match on a fixed-width unicode array of at most 4 characters.

    Each row's four UCS-4 code points are read as two 64-bit words; OR-ing 0x20 into every code
    point lower-cases ASCII letters (no other code point becomes one of "call"/"put"/"c"/"p"
    that way; padding NULs become spaces, on both sides of the comparison).
    """
    v = np.ascontiguousarray(a.astype("U4", copy=False)).view(np.uint64).reshape(a.shape + (2,))
    low = v | np.uint64(0x0000002000000020)
    out = np.zeros(a.shape)
    for word, sign in _SPELLINGS.items():
        cps = [ord(ch) | 0x20 for ch in word] + [0x20] * (4 - len(word))
        lo, hi = cps[0] | cps[1] << 32, cps[2] | cps[3] << 32
        out[(low[..., 0] == np.uint64(lo)) & (low[..., 1] == np.uint64(hi))] = sign
    return out


def _option_sign(option_type: Any) -> np.ndarray:
    """+1.0 for calls, -1.0 for puts; anything unrecognised becomes 0.0 (rejected by validation).

    Strings are mapped through their few distinct values (pandas categoricals by their codes,
    other text by ``pandas.factorize``), never by a per-row Python loop or ``np.char``.
    """
    cat = getattr(option_type, "cat", None)
    if cat is not None:  # pandas categorical Series
        codes = np.asarray(cat.codes)
        signs = np.append(_sign_of_labels(cat.categories), 0.0)  # code -1 (missing) -> 0
        return signs[codes]
    a = np.asarray(option_type)
    if a.dtype.kind in "US" or a.dtype == object:
        if a.ndim == 0:
            return np.asarray(_SPELLINGS.get(str(a.item()).lower(), 0.0))
        if (a.dtype.kind == "U" and a.dtype.itemsize <= 16
                and (a.dtype.byteorder == "<" or (a.dtype.byteorder == "=" and _LITTLE))):
            return _sign_of_unicode(a)
        import pandas as pd  # a runtime dependency; imported here to keep `import pmnb` light

        codes, uniques = pd.factorize(a.ravel(), use_na_sentinel=True)
        signs = np.append(_sign_of_labels(uniques), 0.0)
        return signs[codes].reshape(a.shape)
    if a.dtype == bool:
        return np.where(a, 1.0, -1.0)
    if a.dtype.kind in "iuf":
        return a.astype(np.float64, copy=False)
    return np.zeros(a.shape)


def _as_float(name: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{name}: cannot be read as numbers ({exc}); accepted: "
                              f"{_ACCEPTED.get(name, 'finite numbers')}", field=name) from None


def _broadcast(names: Sequence[str], values: Sequence[np.ndarray]) -> tuple[tuple[int, ...], list]:
    first = values[0].shape
    if all(v.shape == first for v in values) and all(v.flags.c_contiguous for v in values):
        return first, [v.reshape(-1) for v in values]  # the common case: no copies, no checks
    try:
        shape = np.broadcast_shapes(*(v.shape for v in values))
    except ValueError:
        shapes = ", ".join(f"{n}{tuple(v.shape)}" for n, v in zip(names, values))
        raise ValidationError(f"inputs do not broadcast together: {shapes}") from None
    flat = []
    for v in values:
        if v.shape == shape:
            flat.append(np.ascontiguousarray(v).reshape(-1))
        elif v.size == 1:
            flat.append(np.full(int(np.prod(shape)), v.reshape(()).item()))
        else:
            flat.append(np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(-1))
    return shape, flat


def _field_bad(name: str, a: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if name in ("S_or_F", "K"):
            return ~((a >= 1e-12) & (a <= 1e12))
        if name == "T":
            return ~((a >= 0) & (a <= 100))
        if name == "sigma":
            return ~((a >= 0) & (a <= 100))
        if name in ("r", "q"):
            return ~((a >= -2) & (a <= 2))
        return ~((a == 1.0) | (a == -1.0))


def _raise_bad(mask: int, flat: Sequence[np.ndarray], raw: Sequence[Any], shape, labels) -> None:
    for bit, name in enumerate(_FIELDS):
        if mask >> bit & 1:
            bad = _field_bad(name, flat[bit])
            pos = np.flatnonzero(bad)
            first = int(pos[0])
            value = flat[bit][first]
            if name == "option_type":
                src = np.asarray(raw[bit])
                value = (np.broadcast_to(src, shape).reshape(-1)[first] if src.ndim else src)
                value = value.item() if hasattr(value, "item") else value
            else:
                value = float(value)
            raise ValidationError.for_field(name, row=row_name(first, shape, labels), value=value,
                                            accepted=_ACCEPTED[name], n_bad=len(pos))


def _broadcast_inputs(x, K, T, sigma, r, q, option_type):
    raw = (x, K, T, sigma, r, q, option_type)
    vals = [_as_float(n, v) for n, v in zip(_FIELDS[:-1], raw[:-1])]
    vals.append(_option_sign(option_type))
    shape, flat = _broadcast(_FIELDS, vals)
    return raw, shape, flat


def _check(raw, shape, flat) -> int:
    """Validate every row (raising ValidationError); return the number of limit-path rows."""
    mask, n_limit = _kernels.check_inputs(*flat)
    if mask:
        _raise_bad(mask, flat, raw, shape, row_labels(raw))
    return n_limit


def _prepare(x, K, T, sigma, r, q, option_type):
    raw, shape, flat = _broadcast_inputs(x, K, T, sigma, r, q, option_type)
    return shape, flat, _check(raw, shape, flat), row_labels(raw)


def _level(names: Sequence[str]) -> int:
    if all(n == "price" for n in names):
        return 0
    return 1 if all(n in FIRST_ORDER for n in names) else 2


def _run(model: int, inverse: int, level: int, raw, shape, flat: list[np.ndarray],
         outs: tuple[np.ndarray, ...], n_threads: int) -> None:
    # fast path: validate and price in cache-sized blocks in one pass over memory
    if _kernels.greeks_checked(model, inverse, level, *flat, outs, n_threads):
        return
    n_limit = _check(raw, shape, flat)  # raises on a bad row
    with np.errstate(invalid="ignore"):
        lim = flat[3] * flat[3] * flat[2] < _SST_MIN * _SST_MIN  # as in checks.c
    li, ri = np.flatnonzero(lim), np.flatnonzero(~lim)
    assert len(li) == n_limit
    nout = len(outs)
    if len(ri):
        tmp = tuple(np.empty(len(ri)) for _ in range(nout))
        _kernels.greeks(model, inverse, level, *(a[ri] for a in flat), tmp, n_threads)
        for o, t in zip(outs, tmp):
            o[ri] = t
    tmp = tuple(np.empty(len(li)) for _ in range(nout))
    _kernels.greeks_limit(model, inverse, level, *(a[li] for a in flat), tmp)
    for o, t in zip(outs, tmp):
        o[li] = t


def greeks(S_or_F, K, T, sigma, r=0.0, q=0.0, *, option_type, model: str = "black76",
           settlement: str = "linear", greeks: Sequence[str] | str = FIRST_ORDER,
           units: str = "raw", out: Mapping[str, np.ndarray] | None = None,
           n_threads: int | None = None) -> dict[str, np.ndarray]:
    r"""Price and greeks of European options, vectorised, from the compiled core.

    Parameters
    ----------
    S_or_F : array_like
        Forward/future price for ``model="black76"``, spot for ``model="bsm"`` (USD per coin).
    K : array_like
        Strike (USD per coin).
    T : array_like
        Time to expiry in years (ACT/365: seconds / (365 × 86,400)). ``T = 0`` gives intrinsic
        value and the limits described in the module docstring.
    sigma : array_like
        Volatility, annualised decimal (0.6 = 60%).
    r : array_like, default 0.0
        Continuously compounded discount rate, annualised decimal.
    q : array_like, default 0.0
        Continuous yield / borrow rate of the underlying (``model="bsm"`` only; ignored by Black-76).
    option_type : str, bool or array_like
        ``"call"``/``"put"`` (or ``"c"``/``"p"``), ``True`` for call, or ``+1``/``-1``; broadcasts.
    model : {"black76", "bsm"}
    settlement : {"linear", "inverse"}
        ``"inverse"`` returns coin value and coin greeks (see the module docstring).
    greeks : sequence of str or "all"
        Names from :data:`GREEKS`. Default: price, delta, gamma, vega, theta, rho.
    units : {"raw", "desk", "deribit"}
        Unit preset, tabulated in the module docstring.
    out : mapping of str to ndarray, optional
        Preallocated C-contiguous float64 arrays of the broadcast shape to write results into.
    n_threads : int, optional
        Most threads for the compiled loop (``None``: every available core). At most one thread
        per 20,000 rows is started, since below that a thread costs more than it saves; ``1``
        runs on the calling thread only. For large arrays, preallocated ``out=`` buffers also save
        the first-touch cost of fresh memory (about 1.5 ns per option and output here).

    Returns
    -------
    dict of str to ndarray
        One float64 array of the broadcast shape per requested greek, in the requested order.

    Raises
    ------
    ValidationError
        If an input is outside its accepted range (naming the field and first bad row), inputs do
        not broadcast, or an option (greek name, model, settlement, units) is unknown.

    Notes
    -----
    Formulas: Haug (2007) §1.1–2.1 for the generalized BSM greeks; Black (1976) for the forward
    model; coin greeks by differentiating :math:`V_{usd}/F` (module docstring). :math:`N(-x)` is
    evaluated through ``erfc``, never as ``1 - N(x)``, so deep out-of-the-money values keep their
    relative accuracy.

    Examples
    --------
    Haug (2007) p. 2 (Black–Scholes 1973 call): S = 60, K = 65, T = 0.25, r = 8%, σ = 30%.

    >>> import pmnb
    >>> g = pmnb.greeks(60.0, 65.0, 0.25, 0.30, r=0.08, option_type="call", model="bsm")
    >>> round(float(g["price"]), 4), round(float(g["delta"]), 4)
    (2.1334, 0.3725)

    A Deribit-style inverse BTC call: value in coin and the coin (net transactional) delta.

    >>> c = pmnb.greeks(100_000.0, 110_000.0, 30 / 365, 0.55, option_type="call",
    ...                 settlement="inverse", greeks=("price", "delta"))
    >>> round(float(c["price"]), 6), round(float(c["delta"]), 6)
    (0.027647, 0.271932)

    Broadcasting: a strike ladder against one forward, per vol point and per day.

    >>> g = pmnb.greeks(100.0, [90.0, 100.0, 110.0], 0.5, 0.6, option_type="put",
    ...                 greeks=("vega", "theta"), units="desk")
    >>> g["vega"].round(4)
    array([0.2537, 0.2758, 0.2821])
    """
    model_i = _choice("model", model, _MODELS)
    inverse = _choice("settlement", settlement, _SETTLEMENTS)
    _choice("units", units, _UNITS)
    if units == "deribit" and model_i != _MODELS["black76"]:
        raise ValidationError("units: 'deribit' greeks are Black-76 on the forward; "
                              "use model='black76'", field="units")
    names = GREEKS if isinstance(greeks, str) and greeks == "all" else (
        (greeks,) if isinstance(greeks, str) else tuple(greeks))
    unknown = [g for g in names if g not in GREEKS]
    if unknown or not names:
        raise ValidationError(f"greeks: unknown {unknown or 'empty selection'}; accepted: "
                              f"{', '.join(GREEKS)} or 'all'", field="greeks")
    raw, shape, flat = _broadcast_inputs(S_or_F, K, T, sigma, r, q, option_type)
    n = flat[0].shape[0]
    need = set(names)
    deribit = units == "deribit"
    if deribit:
        need |= {"price", "theta"} | ({"delta"} if "rho" in need else set())
    level = _level(tuple(need))
    nout = (1, 6, 14)[level]
    kern_inverse = 0 if deribit else inverse
    bufs = []
    for j in range(nout):
        name = GREEKS[j]
        target = None if out is None else out.get(name)
        if target is not None and not deribit:
            if (not isinstance(target, np.ndarray) or target.dtype != np.float64
                    or target.shape != shape or not target.flags.c_contiguous):
                raise ValidationError(f"out[{name!r}]: accepted: a C-contiguous float64 array of "
                                      f"shape {shape}", field="out")
            bufs.append(target.reshape(-1))
        else:
            bufs.append(np.empty(n))
    kmodel = model_i
    if model_i == _MODELS["bsm"] and np.ndim(q) == 0 and _as_float("q", q) == 0.0:
        kmodel = 2  # the bsm kernel specialised for q = 0: one exp fewer per row
    _run(kmodel, kern_inverse, level, raw, shape, flat, tuple(bufs), _threads(n_threads, n))
    res = dict(zip(GREEKS[:nout], bufs))
    if deribit:
        _deribit_units(res, flat, inverse)
    elif units == "desk":
        for name in names:
            sv, tv, rv = _DIMS[name]
            factor = 100.0 ** (sv + rv) * 365.0 ** tv
            if factor != 1.0:
                res[name] /= factor
    result = {}
    for name in names:
        arr = res[name]
        if deribit and out is not None and name in out:
            out[name].reshape(-1)[:] = arr
            arr = out[name].reshape(-1)
        result[name] = arr.reshape(shape)
    return result


def _deribit_units(res: dict[str, np.ndarray], flat: list[np.ndarray], inverse: int) -> None:
    """Rescale linear Black-76 greeks to Deribit's ticker (see module docstring)."""
    F, T, r = flat[0], flat[2], flat[4]
    v_usd = res["price"].copy()
    if "rho" in res:
        # Deribit's rho is Black-Scholes rho w K T e^{-rT} N(w d2) = T (F delta - V), per 1%
        res["rho"] = T * (F * res["delta"] - v_usd) / 100.0
    th = np.abs(res["theta"])
    res["theta"] = -np.minimum(np.minimum(th / 365.0, th * T), np.abs(v_usd))
    for name in GREEKS[6:]:
        if name in res:
            sv, tv, rv = _DIMS[name]
            res[name] /= 100.0 ** (sv + rv) * 365.0 ** tv
    if "vega" in res:
        res["vega"] /= 100.0
    if inverse:
        res["price"] = v_usd / F
    del r


def price(S_or_F, K, T, sigma, r=0.0, q=0.0, *, option_type, model: str = "black76",
          settlement: str = "linear", n_threads: int | None = None) -> np.ndarray:
    """Option value only: USD for ``settlement="linear"``, coin for ``"inverse"``.

    Same parameters and validation as :func:`greeks`.

    Returns
    -------
    ndarray
        Values of the broadcast shape.

    Examples
    --------
    Black-76 (Haug 2007, p. 3): F = 19, K = 19, T = 0.75, r = 10%, σ = 28%.

    >>> import pmnb
    >>> pmnb.price(19.0, 19.0, 0.75, 0.28, r=0.10, option_type=["call", "put"]).round(4)
    array([1.7011, 1.7011])
    """
    return greeks(S_or_F, K, T, sigma, r, q, option_type=option_type, model=model,
                  settlement=settlement, greeks=("price",), n_threads=n_threads)["price"]


class IVReason(enum.IntEnum):
    """Why an implied volatility is what it is (one code per row)."""

    OK = 0
    #: price below the discounted intrinsic value: no volatility reproduces it
    BELOW_INTRINSIC = 1
    #: price above the no-arbitrage maximum (discounted F for a call, K for a put)
    ABOVE_MAXIMUM = 2
    #: price equals intrinsic value: sigma = 0 reproduces it, any larger vol does not
    NO_TIME_VALUE = 3
    #: the solver failed (not expected; please report)
    FAILED = 4
    #: the option's time value is below ``min_time_value``: not identifiable at that tick
    BELOW_TICK = 5


class ImpliedVol(NamedTuple):
    """Result of :func:`implied_vol` with ``errors="nan"``: vols (NaN where undefined) and reasons."""

    vol: np.ndarray
    reason: np.ndarray


_IV_FIELDS = ("price", "S_or_F", "K", "T", "r", "q", "option_type")


def implied_vol(price, S_or_F, K, T, r=0.0, q=0.0, *, option_type, model: str = "black76",
                price_unit: str = "usd", errors: str = "raise", min_time_value: float = 0.0,
                n_threads: int | None = None):
    r"""Implied volatility by Jäckel's "Let's Be Rational", compiled.

    The price is converted to an undiscounted Black-76 price on the forward (``price_unit="coin"``:
    USD value = coin price × F, the inverse convention of :func:`greeks`), then inverted with a C
    port of Jäckel's algorithm (P. Jäckel, "Let's Be Rational", *Wilmott* 2015(75), 40–53; revised
    2016): two Householder(3) steps from a rational-cubic initial guess on the out-of-the-money twin,
    to the attainable double precision.

    Parameters
    ----------
    price : array_like
        Option prices, USD (``price_unit="usd"``) or coin (``price_unit="coin"``).
    S_or_F, K, T, r, q, option_type, model
        As in :func:`greeks`; here ``T`` must be > 0.
    price_unit : {"usd", "coin"}
    errors : {"raise", "nan"}
        ``"raise"`` (default): a price outside the no-arbitrage bounds raises
        :class:`~pmnb.errors.ValidationError` naming the rows and the reason. ``"nan"``: return an
        :class:`ImpliedVol` ``(vol, reason)`` with NaN vols and an :class:`IVReason` per row.
    min_time_value : float, default 0
        Undiscounted USD time value (of the out-of-the-money twin) below which a vol is not
        identifiable, e.g. one premium tick × F; such rows get ``IVReason.BELOW_TICK``.
    n_threads : int, optional
        As in :func:`greeks`.

    Returns
    -------
    ndarray or ImpliedVol
        Vols (annualised decimal) of the broadcast shape; with ``errors="nan"`` the pair
        ``(vol, reason)``. A price equal to intrinsic value returns 0.0 with reason
        ``NO_TIME_VALUE`` (not an error).

    Examples
    --------
    >>> import pmnb
    >>> p = pmnb.price(100_000.0, 120_000.0, 0.25, 0.65, option_type="call")
    >>> float(pmnb.implied_vol(p, 100_000.0, 120_000.0, 0.25, option_type="call"))  # doctest: +NUMBER
    0.650000000000

    Deribit quotes inverse options in coin:

    >>> iv = pmnb.implied_vol(0.0276, 100_000.0, 110_000.0, 30 / 365, option_type="c",
    ...                       price_unit="coin")
    >>> round(float(iv), 4)
    0.5495

    Prices outside the bounds: raise, or NaN with a reason per row.

    >>> res = pmnb.implied_vol([5.0, 150_000.0], 100_000.0, 80_000.0, 0.1, option_type="call",
    ...                        errors="nan")
    >>> res.vol, [pmnb.IVReason(c).name for c in res.reason]
    (array([nan, nan]), ['BELOW_INTRINSIC', 'ABOVE_MAXIMUM'])
    """
    model_i = _choice("model", model, _MODELS)
    _choice("price_unit", price_unit, ("usd", "coin"))
    _choice("errors", errors, ("raise", "nan"))
    pv = _as_float("price", price)
    shape, flat, _, labels = _prepare(S_or_F, K, T, 0.0, r, q, option_type)
    try:
        shape2 = np.broadcast_shapes(shape, pv.shape)
    except ValueError:
        raise ValidationError(f"inputs do not broadcast together: price{pv.shape}, others{shape}"
                              ) from None
    if shape2 != shape:
        shape, flat2 = _broadcast(("price",) + _FIELDS,
                                  [pv] + [a.reshape(shape) for a in flat])
        pv_flat, flat = flat2[0], flat2[1:]
    else:
        pv_flat = np.ascontiguousarray(np.broadcast_to(pv, shape)).reshape(-1)
    if labels is None:
        labels = row_labels((price,))
    x, Kf, Tf, _, rf, qf, w = flat
    bad = ~np.isfinite(pv_flat) | (pv_flat < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValidationError.for_field("price", row=row_name(first, shape, labels),
                                        value=float(pv_flat[first]), accepted="finite, >= 0",
                                        n_bad=int(bad.sum()))
    if (Tf <= 0).any():
        first = int(np.flatnonzero(Tf <= 0)[0])
        raise ValidationError.for_field("T", row=row_name(first, shape, labels),
                                        value=float(Tf[first]),
                                        accepted="0 < T <= 100 (an expired option has no vol)")
    if not np.isfinite(min_time_value) or min_time_value < 0:
        raise ValidationError(f"min_time_value: got {min_time_value!r}; accepted: finite, >= 0",
                              field="min_time_value")
    F = x if model_i == 1 else x * np.exp((rf - qf) * Tf)
    df = np.exp(-rf * Tf)
    usd = pv_flat * F if price_unit == "coin" else pv_flat
    undisc = usd / df
    n = len(undisc)
    vol = np.empty(n)
    code = np.empty(n, dtype=np.intc)
    _kernels.implied_vol(undisc, np.ascontiguousarray(F), Kf, Tf, w, vol, code,
                         _threads(n_threads, n))
    if min_time_value > 0:
        intrinsic = np.maximum(w * (F - Kf), 0.0)
        tv = undisc - intrinsic
        small = (code == IVReason.OK) & (tv < min_time_value)
        code[small] = IVReason.BELOW_TICK
        vol[small] = np.nan
    reason = code.astype(np.int8).reshape(shape)
    vol = vol.reshape(shape)
    if errors == "raise":
        badrows = np.flatnonzero((code != IVReason.OK) & (code != IVReason.NO_TIME_VALUE))
        if len(badrows):
            first = int(badrows[0])
            names = [row_name(int(i), shape, labels) for i in badrows[:10]]
            why = IVReason(int(code[first])).name
            raise ValidationError(
                f"price: {len(badrows)} row(s) have no implied volatility, first row "
                f"{names[0]} ({why}: price {float(pv_flat[first])!r}); rows {names}"
                f"{' ...' if len(badrows) > 10 else ''}; accepted: discounted intrinsic value <= "
                "price <= discounted forward (call) / strike (put); use errors='nan' to get NaN "
                "and a reason per row", field="price", row=names[0], rows=names)
        return vol
    return ImpliedVol(vol, reason)


def build_info() -> dict[str, str]:
    """How the compiled core was built and which ISA clone runs on this CPU.

    Examples
    --------
    >>> import pmnb
    >>> sorted(pmnb.pricing.build_info())
    ['cflags', 'isa']
    """
    return {"isa": _kernels.isa(), "cflags": _kernels.build_flags()}
