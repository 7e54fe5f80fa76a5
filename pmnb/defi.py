r"""Closed-form valuation of on-chain positions: Uniswap v3 liquidity and Aave v3 lending.

Pure NumPy (and pandas for the account summary), vectorised: every array argument broadcasts like
NumPy, every result is an array of the broadcast shape. Nothing here reads a chain; the readers in
``pmnb.data`` return the raw numbers these functions take.

Uniswap v3 concentrated liquidity
---------------------------------
Source: H. Adams, N. Zinsmeister, M. Salem, R. Keefer, D. Robinson, *Uniswap v3 Core* (March 2021),
§2 (real reserves), §6.1–6.4 (ticks, square-root price, liquidity, positions); the contract
``TickMath.sol`` of Uniswap/v3-core for the Q64.96 square-root prices.

Token order and price convention
    A pool holds ``token0`` and ``token1``, ordered by address (``token0 < token1``). Every price in
    this module is **token1 per token0** — the pool's own convention, ``P = y / x``. For the
    mainnet USDC/WETH pools token0 is USDC, so ``P`` is WETH per USDC (invert for USD per ETH); for
    WETH/USDC on Arbitrum token0 is WETH and ``P`` is USDC per WETH.
Raw and human units
    On chain, amounts are integers in each token's smallest unit and the *raw* price is raw token1
    per raw token0: :math:`p(i) = 1.0001^i` at tick ``i`` (whitepaper eq. 6.1). With token
    decimals ``decimals0``/``decimals1`` the *human* price (whole token1 per whole token0) is
    :math:`P = p \cdot 10^{d_0 - d_1}`. Every function takes ``decimals0=0, decimals1=0`` by
    default, i.e. raw units; given the real decimals, prices are read and amounts/values returned
    in whole tokens. ``liquidity`` is always the on-chain ``L`` (``uint128``, raw units: the
    geometric mean of raw virtual reserves, :math:`L = \sqrt{xy}`).
Position amounts (whitepaper §6.3, eqs. 6.29 for token1 and 6.30 for token0)
    With :math:`\sqrt{P_a} = 1.0001^{i_l/2}`, :math:`\sqrt{P_b} = 1.0001^{i_u/2}` and the pool
    price ``P``:

    * below the range, :math:`P \le P_a`: ``amount0`` :math:`= L(1/\sqrt{P_a} - 1/\sqrt{P_b})`,
      ``amount1`` :math:`= 0`;
    * inside, :math:`P_a < P < P_b`: ``amount0`` :math:`= L(1/\sqrt{P} - 1/\sqrt{P_b})` (6.30),
      ``amount1`` :math:`= L(\sqrt P - \sqrt{P_a})` (6.29);
    * above the range, :math:`P \ge P_b`: ``amount0`` :math:`= 0`,
      ``amount1`` :math:`= L(\sqrt{P_b} - \sqrt{P_a})`.

    The whitepaper selects the case by the current tick (:math:`i_l \le i_c < i_u` is "inside");
    the formulas are continuous in ``P``, so selecting by price gives the same amounts. Pass the
    price from ``slot0().sqrtPriceX96`` (:func:`sqrt_price_x96_to_price`), not from the tick, which
    is floored.
Value and greeks (derived here; value in token1)
    :math:`V(P) = x P + y`. Inside the range, with :math:`x, y` from the list above,

    .. math::
        V = 2L\sqrt P - L\left(\sqrt{P_a} + P/\sqrt{P_b}\right), \qquad
        \frac{dV}{dP} = \frac{L}{\sqrt P} - \frac{L}{\sqrt{P_b}} = x, \qquad
        \frac{d^2V}{dP^2} = -\frac{L}{2P^{3/2}}.

    Below the range :math:`V = x_{max} P` (delta :math:`x_{max}`, gamma 0); above it
    :math:`V = L(\sqrt{P_b} - \sqrt{P_a})` (delta 0, gamma 0). So **delta is amount0** everywhere
    (continuous at both edges) and gamma jumps at the edges: pmnb returns the value on the side
    where the pool counts the liquidity as active, :math:`P_a \le P < P_b` (core's
    ``tickLower <= tick < tickUpper``). In human units the same formulas hold with
    :math:`L_h = L \cdot 10^{-(d_0 + d_1)/2}`. Uncollected fees are not part of these values.

Aave v3 lending
---------------
Sources: Aave v3 documentation, *Tokenization*
(https://aave.com/docs/aave-v3/smart-contracts/tokenization: ``scaledBalanceOf``, ``balanceOf``)
and *Liquidations* (https://aave.com/docs/developers/liquidations: health factor); the Aave v3
Technical Paper (Aave, 2022); the protocol source aave-dao/aave-v3-origin
(``ReserveLogic.getNormalizedIncome/getNormalizedDebt``, ``MathUtils``, ``GenericLogic
.calculateUserAccountData``, ``helpers/TokenMath``).

* Balances are stored *scaled*: ``amount = scaledBalance × index / RAY`` with ``RAY = 1e27``, the
  reserve's liquidity index for aTokens (supply) and variable borrow index for variable debt.
* Between updates the indices accrue: supply linearly, :math:`I = I_0(1 + r\,\Delta t)`; debt with
  the 3-term expansion of :math:`e^{r\Delta t}` used by ``MathUtils.calculateCompoundedInterest``:
  :math:`I = I_0(1 + x + x^2/2 + x^3/6)`, :math:`x = r\,\Delta t`, with :math:`\Delta t` in
  years of 365 days (``SECONDS_PER_YEAR``).
* Health factor: :math:`HF = \sum_i c_i p_i LT_i / \sum_j d_j p_j` over collateral-enabled supply
  ``i`` and debts ``j`` in the oracle's base currency (USD); liquidatable below 1. With no debt
  the protocol returns ``type(uint256).max``; pmnb returns ``+inf``. In e-mode, collateral enabled
  in the user's category uses the category's liquidation threshold.

Units here follow pmnb: indices in RAY as read on chain, **rates as annualised decimals** (Aave's
RAY rates divided by 1e27), liquidation thresholds as decimals (Aave's basis points / 10,000),
prices in USD per whole token. Floating point replaces the protocol's integer rounding (at most one
unit of the token's smallest denomination).

Examples
--------
>>> import pmnb.defi as defi
>>> float(defi.tick_to_price(0)), int(defi.price_to_tick(2.0))   # 1.0001**6931 <= 2 < 1.0001**6932
(1.0, 6931)
>>> defi.tick_to_sqrt_price_x96(0) == 2 ** 96
True
>>> a = defi.lp_amounts(1e15, -198080, -194720, 3000.0, decimals0=18, decimals1=6)
>>> round(float(a.amount0), 6), round(float(a.amount1), 2)   # WETH, USDC
(1.349908, 4773.12)
>>> float(defi.aave_health_factor([10.0, 10_000.0], [2000.0, 1.0], [0.825, 0.78], 25_000.0, 1.0))
0.972
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError, row_labels, row_name

__all__ = [
    "LPAmounts",
    "MAX_SQRT_RATIO",
    "MAX_TICK",
    "MIN_SQRT_RATIO",
    "MIN_TICK",
    "Q96",
    "RAY",
    "SECONDS_PER_YEAR",
    "aave_account",
    "aave_balance",
    "aave_health_factor",
    "aave_normalized_debt",
    "aave_normalized_income",
    "lp_amounts",
    "lp_delta",
    "lp_gamma",
    "lp_impermanent_loss",
    "lp_value",
    "price_to_sqrt_price_x96",
    "price_to_tick",
    "sqrt_price_x96_to_price",
    "sqrt_price_x96_to_tick",
    "tick_to_price",
    "tick_to_sqrt_price_x96",
]

#: Smallest and largest tick (``TickMath.MIN_TICK/MAX_TICK``: log base 1.0001 of 2**-128, 2**128).
MIN_TICK: int = -887272
MAX_TICK: int = 887272
#: ``getSqrtRatioAtTick(MIN_TICK)`` and ``getSqrtRatioAtTick(MAX_TICK)`` (Q64.96).
MIN_SQRT_RATIO: int = 4295128739
MAX_SQRT_RATIO: int = 1461446703485210103287273052203988822378723970342
#: The Q64.96 scale of ``sqrtPriceX96``.
Q96: int = 2 ** 96
#: Aave's fixed-point unit for indices and rates (27 decimals).
RAY: int = 10 ** 27
#: Aave's year for interest accrual (``MathUtils.SECONDS_PER_YEAR``, leap years ignored).
SECONDS_PER_YEAR: int = 365 * 86_400

_LOG_BASE = math.log(1.0001)


def _ln_split() -> tuple[float, float]:
    """ln(1.0001) as hi + lo, hi with 32 significant bits so that tick x hi is exact in float64
    (|tick| < 2**20, half ticks included)."""
    with localcontext() as ctx:
        ctx.prec = 50
        ln = Decimal("1.0001").ln()
        m, e = math.frexp(float(ln))
        hi = math.ldexp(round(m * 2 ** 32), e - 32)
        return hi, float(ln - Decimal(hi))


_LN_HI, _LN_LO = _ln_split()
_RAW_PRICE_MIN = 2.0 ** -128  # TickMath: "Supports prices between 2**-128 and 2**128"
_RAW_PRICE_MAX = 2.0 ** 128
_UINT128_MAX = 2.0 ** 128


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------
def _as_float(name: str, value: Any, accepted: str) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise ValidationError(f"{name}: got {value!r}; accepted: {accepted}", field=name)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValidationError(f"{name}: cannot be read as numbers ({exc}); accepted: {accepted}",
                              field=name) from None


def _broadcast(arrays: Mapping[str, np.ndarray]) -> tuple[tuple[int, ...], dict[str, np.ndarray]]:
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{n}{tuple(a.shape)}" for n, a in arrays.items())
        raise ValidationError(f"inputs do not broadcast together: {shapes}") from None
    return shape, {n: np.broadcast_to(a, shape) for n, a in arrays.items()}


def _raise_first(name: str, bad: np.ndarray, values: np.ndarray, accepted: str, shape, labels,
                 integer: bool = False) -> None:
    """Raise the standard ValidationError for the first True of ``bad`` (if any)."""
    if not bad.any():
        return
    flat = np.flatnonzero(bad.reshape(-1))
    first = int(flat[0])
    value = float(np.broadcast_to(values, shape).reshape(-1)[first])
    if integer and math.isfinite(value) and value.is_integer():
        value = int(value)
    raise ValidationError.for_field(name, row=row_name(first, shape, labels), value=value,
                                    accepted=accepted, n_bad=len(flat))


def _finite_range(name: str, a: np.ndarray, lo: float, hi: float, accepted: str, shape, labels, *,
                  lo_open: bool = False, integer: bool = False) -> None:
    with np.errstate(invalid="ignore"):
        ok = (a > lo if lo_open else a >= lo) & (a <= hi)
        if integer:
            ok &= a == np.floor(a)
    _raise_first(name, ~ok, a, accepted, shape, labels, integer=integer)


_TICK_ACCEPTED = f"integer ticks, {MIN_TICK} <= tick <= {MAX_TICK}"
_DEC_ACCEPTED = "integer token decimals, 0 <= decimals <= 255"


def _pow10(k: np.ndarray) -> np.ndarray:
    """10.0**k for integer-valued k, exact where float allows (negative powers by division)."""
    return np.where(k >= 0, 10.0 ** np.abs(k), 1.0 / 10.0 ** np.abs(k))


def _prices(price: np.ndarray, d0: np.ndarray, d1: np.ndarray, shape, labels,
            name: str = "price") -> None:
    """Validate human prices: finite, > 0, and within TickMath's raw range after scaling."""
    accepted = (f"finite, {name} > 0 (token1 per token0), with the raw price "
                f"{name} x 10**(decimals1 - decimals0) within [2**-128, 2**128]")
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        raw = price * _pow10(d1 - d0)
        ok = (price > 0) & np.isfinite(price) & (raw >= _RAW_PRICE_MIN) & (raw <= _RAW_PRICE_MAX)
    _raise_first(name, ~ok, price, accepted, shape, labels)


# ---------------------------------------------------------------------------------------------
# ticks and prices
# ---------------------------------------------------------------------------------------------
def _pow_tick(tick: np.ndarray) -> np.ndarray:
    """1.0001**tick to about 2e-16 relative: exp(tick*hi) * exp(tick*lo) with tick*hi exact.

    ``np.power(1.0001, tick)`` errs by up to 1e-11 at the extreme ticks, since the float nearest
    to 1.0001 is off by 5e-17 and the error grows with the exponent.
    """
    return np.exp(tick * _LN_HI) * np.exp(tick * _LN_LO)


def _tick_price_unchecked(tick: np.ndarray, d0: np.ndarray, d1: np.ndarray) -> np.ndarray:
    return _pow_tick(tick) * _pow10(d0 - d1)


def tick_to_price(tick, decimals0=0, decimals1=0) -> np.ndarray:
    r"""Price at a tick, token1 per token0: :math:`1.0001^{tick} \cdot 10^{d_0 - d_1}`.

    Whitepaper §6.1, eq. 6.1 (:math:`p(i) = 1.0001^i`, raw units); the decimals turn it into
    whole token1 per whole token0. Computed as :math:`e^{tick \ln 1.0001}` with the logarithm
    split so that the product is exact: accurate to about 2e-16 relative at every tick (the naive
    ``1.0001 ** tick`` errs by up to 1e-11, the float 1.0001 being inexact).

    Parameters
    ----------
    tick : array_like of int
        ``MIN_TICK <= tick <= MAX_TICK``.
    decimals0, decimals1 : array_like of int, default 0
        ERC-20 decimals of token0 and token1 (0 and 0: raw units).

    Returns
    -------
    ndarray
        Float prices of the broadcast shape.

    Raises
    ------
    ValidationError
        Non-integer or out-of-range ticks or decimals (naming the field and first bad row).

    Examples
    --------
    A pool with token0 = WETH (18 decimals), token1 = USDC (6): USDC per WETH.

    >>> from pmnb.defi import tick_to_price
    >>> tick_to_price([-196257, -196256], decimals0=18, decimals1=6).round(2)
    array([2999.8, 3000.1])
    """
    t, d0, d1, shape, _ = _ticks_and_decimals({"tick": tick}, decimals0, decimals1)
    return _tick_price_unchecked(t["tick"], d0, d1).reshape(shape)


def _ticks_and_decimals(ticks: Mapping[str, Any], decimals0, decimals1, extra=None):
    """Convert, broadcast and validate named tick arrays, decimals and extra float arrays."""
    raw: dict[str, Any] = dict(ticks)
    raw["decimals0"], raw["decimals1"] = decimals0, decimals1
    if extra:
        raw.update(extra)
    accepted = {n: _TICK_ACCEPTED for n in ticks}
    accepted.update(decimals0=_DEC_ACCEPTED, decimals1=_DEC_ACCEPTED)
    arrays = {n: _as_float(n, v, accepted.get(n, "finite numbers")) for n, v in raw.items()}
    shape, b = _broadcast(arrays)
    labels = row_labels(raw.values())
    for n in ticks:
        _finite_range(n, b[n], MIN_TICK, MAX_TICK, _TICK_ACCEPTED, shape, labels, integer=True)
    for n in ("decimals0", "decimals1"):
        _finite_range(n, b[n], 0, 255, _DEC_ACCEPTED, shape, labels, integer=True)
    return {n: b[n] for n in ticks}, b["decimals0"], b["decimals1"], shape, (b, labels)


def price_to_tick(price, decimals0=0, decimals1=0) -> np.ndarray:
    r"""Greatest tick whose price is at most ``price``: :math:`\lfloor\log_{1.0001} p\rfloor`.

    ``price`` is token1 per token0 in whole tokens (raw when both decimals are 0). The floor is
    exact with respect to :func:`tick_to_price`: ``tick_to_price(t) <= price <
    tick_to_price(t + 1)``, so ``price_to_tick(tick_to_price(t)) == t``. This mirrors
    ``TickMath.getTickAtSqrtRatio`` (whitepaper §6.1: the current tick is the floor); use
    :func:`sqrt_price_x96_to_tick` for the bit-exact on-chain tick of a ``sqrtPriceX96``.

    Parameters
    ----------
    price : array_like
        Token1 per token0; the raw price must lie in TickMath's range
        ``tick_to_price(MIN_TICK) <= raw <= tick_to_price(MAX_TICK)``.
    decimals0, decimals1 : array_like of int, default 0

    Returns
    -------
    ndarray of int64

    Examples
    --------
    >>> from pmnb.defi import price_to_tick, tick_to_price
    >>> int(price_to_tick(3000.0, decimals0=18, decimals1=6))
    -196257
    >>> t = [-887272, -1, 0, 1, 887272]
    >>> price_to_tick(tick_to_price(t)).tolist() == t
    True
    """
    _, d0, d1, shape, (b, labels) = _ticks_and_decimals({}, decimals0, decimals1,
                                                        extra={"price": price})
    p = b["price"]
    lo = _tick_price_unchecked(np.float64(MIN_TICK), d0, d1)
    hi = _tick_price_unchecked(np.float64(MAX_TICK), d0, d1)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(p) & (p >= lo) & (p <= hi)
    _raise_first("price", ~ok, p, "finite, token1 per token0 with "
                 "tick_to_price(MIN_TICK) <= price <= tick_to_price(MAX_TICK)", shape, labels)
    with np.errstate(divide="ignore"):
        t = np.floor((np.log(p) - np.log(_pow10(d0 - d1))) / _LOG_BASE)
    t = np.clip(t, MIN_TICK, MAX_TICK)
    for _ in range(2):  # the log estimate is within one tick; settle it against tick_to_price
        up = (t < MAX_TICK) & (_tick_price_unchecked(t + 1, d0, d1) <= p)
        t = np.where(up, t + 1, t)
        down = (t > MIN_TICK) & (_tick_price_unchecked(t, d0, d1) > p)
        t = np.where(down, t - 1, t)
    return t.astype(np.int64).reshape(shape)


# --- Q64.96 square-root prices (exact integers) -----------------------------------------------
def _sqrt_ratio_factors() -> tuple[int, ...]:
    """``round(2**128 / sqrt(1.0001)**(2**k))`` for k = 0..19, the Q128.128 factors of
    ``getSqrtRatioAtTick`` (derived here at 100 digits; they equal the contract's constants)."""
    with localcontext() as ctx:
        ctx.prec = 100
        two128 = Decimal(2) ** 128
        return tuple(int((two128 / (Decimal("1.0001") ** (2 ** k)).sqrt()).to_integral_value())
                     for k in range(20))


_FACTORS = _sqrt_ratio_factors()


def _sqrt_ratio_at_tick(tick: int) -> int:
    """``TickMath.getSqrtRatioAtTick``: Q128.128 product of the factors of |tick|'s set bits,
    inverted for positive ticks, then rounded *up* to Q64.96."""
    a = abs(tick)
    ratio = _FACTORS[0] if a & 1 else 1 << 128
    for k in range(1, 20):
        if a >> k & 1:
            ratio = (ratio * _FACTORS[k]) >> 128
    if tick > 0:
        ratio = ((1 << 256) - 1) // ratio
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def _int_array(name: str, value: Any, accepted: str) -> tuple[np.ndarray, Any]:
    """Object array of exact Python ints (accepts ints, integral floats, decimal strings)."""
    labels = row_labels([value])
    a = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=object)
    out = np.empty(a.shape, dtype=object)
    flat, res = a.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat):
        try:
            if isinstance(v, (bool, np.bool_)):
                raise TypeError
            if isinstance(v, (float, np.floating)):
                if not (math.isfinite(v) and float(v).is_integer()):
                    raise ValueError
                res[i] = int(v)
            else:
                res[i] = int(v)
        except (TypeError, ValueError):
            raise ValidationError.for_field(name, row=row_name(i, a.shape, labels), value=v,
                                            accepted=accepted) from None
    return out, labels


def _map_unique(func, a: np.ndarray) -> np.ndarray:
    """Apply a scalar Python function once per distinct value of an object array."""
    cache: dict = {}
    out = np.empty(a.shape, dtype=object)
    res = out.reshape(-1)
    for i, v in enumerate(a.reshape(-1)):
        r = cache.get(v)
        if r is None:
            r = cache[v] = func(v)
        res[i] = r
    return out


def _scalar_or_array(out: np.ndarray) -> Any:
    return out.reshape(()).item() if out.ndim == 0 else out


def tick_to_sqrt_price_x96(tick) -> Any:
    r"""``sqrtPriceX96`` at a tick, bit-exact with ``TickMath.getSqrtRatioAtTick``.

    :math:`\sqrt{1.0001^{tick}} \cdot 2^{96}` as the contract computes it (whitepaper §6.1–6.2):
    the product, in Q128.128 fixed point, of the rounded factors
    :math:`2^{128}/\sqrt{1.0001}^{2^k}` for the set bits ``k`` of ``|tick|`` (each product
    truncated), inverted as :math:`\lfloor (2^{256}-1)/r \rfloor` for positive ticks, then
    converted to Q64.96 rounding up.

    Parameters
    ----------
    tick : int or array_like of int
        ``MIN_TICK <= tick <= MAX_TICK``.

    Returns
    -------
    int or ndarray of object
        A Python int for a scalar tick, else an object array of Python ints (``uint160`` values
        do not fit NumPy integer types).

    Examples
    --------
    Values from Uniswap/v3-core ``test/TickMath.spec.ts``:

    >>> from pmnb.defi import tick_to_sqrt_price_x96, MIN_TICK, MAX_TICK
    >>> tick_to_sqrt_price_x96(0) == 2 ** 96
    True
    >>> tick_to_sqrt_price_x96([MIN_TICK, MIN_TICK + 1]).tolist()
    [4295128739, 4295343490]
    >>> tick_to_sqrt_price_x96(MAX_TICK)
    1461446703485210103287273052203988822378723970342
    """
    ticks, labels = _int_array("tick", tick, _TICK_ACCEPTED)
    flat = ticks.reshape(-1)
    bad = [i for i, t in enumerate(flat) if not MIN_TICK <= t <= MAX_TICK]
    if bad:
        raise ValidationError.for_field("tick", row=row_name(bad[0], ticks.shape, labels),
                                        value=flat[bad[0]], accepted=_TICK_ACCEPTED,
                                        n_bad=len(bad))
    return _scalar_or_array(_map_unique(_sqrt_ratio_at_tick, ticks))


def _tick_at_sqrt_ratio(s: int) -> int:
    t = math.floor(2.0 * (math.log(s) - 96 * math.log(2.0)) / _LOG_BASE)
    t = min(max(t, MIN_TICK), MAX_TICK)
    while t < MAX_TICK and _sqrt_ratio_at_tick(t + 1) <= s:
        t += 1
    while _sqrt_ratio_at_tick(t) > s:
        t -= 1
    return t


def sqrt_price_x96_to_tick(sqrt_price_x96) -> Any:
    """Tick of a ``sqrtPriceX96``, bit-exact with ``TickMath.getTickAtSqrtRatio``.

    The greatest tick ``t`` with ``tick_to_sqrt_price_x96(t) <= sqrt_price_x96``.

    Parameters
    ----------
    sqrt_price_x96 : int, str or array_like
        Q64.96 square-root prices as Python ints (or decimal strings / integral floats),
        ``MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO`` (as the contract requires).

    Returns
    -------
    int or ndarray of int64

    Examples
    --------
    >>> from pmnb.defi import sqrt_price_x96_to_tick, MIN_SQRT_RATIO, MAX_SQRT_RATIO
    >>> sqrt_price_x96_to_tick(MIN_SQRT_RATIO), sqrt_price_x96_to_tick(MAX_SQRT_RATIO - 1)
    (-887272, 887271)
    >>> sqrt_price_x96_to_tick([2 ** 96, 2 ** 96 - 1]).tolist()
    [0, -1]
    """
    accepted = (f"integer Q64.96 square-root prices, {MIN_SQRT_RATIO} <= sqrt_price_x96 < "
                f"{MAX_SQRT_RATIO}")
    s, labels = _int_array("sqrt_price_x96", sqrt_price_x96, accepted)
    flat = s.reshape(-1)
    bad = [i for i, v in enumerate(flat) if not MIN_SQRT_RATIO <= v < MAX_SQRT_RATIO]
    if bad:
        raise ValidationError.for_field("sqrt_price_x96", row=row_name(bad[0], s.shape, labels),
                                        value=flat[bad[0]], accepted=accepted, n_bad=len(bad))
    out = _map_unique(_tick_at_sqrt_ratio, s)
    return int(out.reshape(()).item()) if out.ndim == 0 else out.astype(np.int64)


def sqrt_price_x96_to_price(sqrt_price_x96, decimals0=0, decimals1=0) -> np.ndarray:
    r"""Price from a Q64.96 square-root price: :math:`(s/2^{96})^2 \cdot 10^{d_0 - d_1}`.

    Whitepaper §6.2 (the pool stores :math:`\sqrt P` as ``sqrtPriceX96``). Token1 per token0.

    Parameters
    ----------
    sqrt_price_x96 : int, str or array_like
        ``slot0().sqrtPriceX96`` (Python ints keep all 160 bits until the float conversion).
    decimals0, decimals1 : array_like of int, default 0

    Returns
    -------
    ndarray
        Float prices (relative error about 1e-16).

    Examples
    --------
    USDC (6 decimals) as token0, WETH (18) as token1: WETH per USDC, and its inverse.

    >>> from pmnb.defi import sqrt_price_x96_to_price, tick_to_sqrt_price_x96
    >>> p = sqrt_price_x96_to_price(tick_to_sqrt_price_x96(196256), decimals0=6, decimals1=18)
    >>> round(float(p), 10), round(1 / float(p), 2)
    (0.0003333217, 3000.1)
    """
    accepted = "integer Q64.96 square-root prices, 0 < sqrt_price_x96 < 2**160"
    s, labels = _int_array("sqrt_price_x96", sqrt_price_x96, accepted)
    flat = s.reshape(-1)
    bad = [i for i, v in enumerate(flat) if not 0 < v < 2 ** 160]
    if bad:
        raise ValidationError.for_field("sqrt_price_x96", row=row_name(bad[0], s.shape, labels),
                                        value=flat[bad[0]], accepted=accepted, n_bad=len(bad))
    # one rounding: the exact rational s**2 / 2**192 to float
    raw = _map_unique(lambda v: float(Fraction(v * v, 1 << 192)), s).astype(np.float64)
    _, d0, d1, shape, _ = _ticks_and_decimals({}, decimals0, decimals1,
                                              extra={"sqrt_price_x96": raw})
    return (np.broadcast_to(raw, shape) * _pow10(d0 - d1)).reshape(shape)


def price_to_sqrt_price_x96(price, decimals0=0, decimals1=0) -> Any:
    r"""Q64.96 square-root price of a price: :math:`\lfloor\sqrt{p_{raw}}\, 2^{96}\rfloor`.

    The square root is exact for the float raw price :math:`p_{raw} = P \cdot 10^{d_1 - d_0}`
    (integer square root of the rational), like the ``encodePriceSqrt`` helper of Uniswap's tests.

    Parameters
    ----------
    price : array_like
        Token1 per token0; the raw price must lie within ``[2**-128, 2**128]``.
    decimals0, decimals1 : array_like of int, default 0

    Returns
    -------
    int or ndarray of object
        Python ints (object array for array input).

    Examples
    --------
    >>> from pmnb.defi import price_to_sqrt_price_x96, sqrt_price_x96_to_tick
    >>> price_to_sqrt_price_x96(1.0) == 2 ** 96, price_to_sqrt_price_x96(4.0) == 2 ** 97
    (True, True)
    >>> sqrt_price_x96_to_tick(price_to_sqrt_price_x96(3000.0, decimals0=18, decimals1=6))
    -196257
    """
    _, d0, d1, shape, (b, labels) = _ticks_and_decimals({}, decimals0, decimals1,
                                                        extra={"price": price})
    _prices(b["price"], d0, d1, shape, labels)
    with np.errstate(over="ignore", under="ignore"):
        raw = (b["price"] * _pow10(d1 - d0)).reshape(-1)

    def one(p: float) -> int:
        f = Fraction(p)
        return math.isqrt((f.numerator << 192) // f.denominator)

    out = np.empty(len(raw), dtype=object)
    for i, p in enumerate(raw):
        out[i] = one(float(p))
    return _scalar_or_array(out.reshape(shape))


# ---------------------------------------------------------------------------------------------
# liquidity positions
# ---------------------------------------------------------------------------------------------
class LPAmounts(NamedTuple):
    """Token amounts of a liquidity position (whitepaper eqs. 6.30 and 6.29)."""

    amount0: np.ndarray
    """Token0 held (raw units with zero decimals, else whole tokens)."""
    amount1: np.ndarray
    """Token1 held (same units convention)."""


_L_ACCEPTED = "finite, 0 <= liquidity <= 2**128 (the pool's uint128 L, raw units)"


def _lp_inputs(liquidity, tick_lower, tick_upper, price, decimals0, decimals1,
               price_name: str = "price"):
    """Validate and return human-unit (L_h, sqrt Pa, sqrt Pb, sqrt P, P) arrays and the shape."""
    t, d0, d1, shape, (b, labels) = _ticks_and_decimals(
        {"tick_lower": tick_lower, "tick_upper": tick_upper}, decimals0, decimals1,
        extra={"liquidity": liquidity, price_name: price})
    lo, hi = t["tick_lower"], t["tick_upper"]
    _raise_first("tick_upper", ~(hi > lo), hi,
                 f"tick_lower < tick_upper, both integers in [{MIN_TICK}, {MAX_TICK}]", shape,
                 labels, integer=True)
    L = b["liquidity"]
    _finite_range("liquidity", L, 0.0, _UINT128_MAX, _L_ACCEPTED, shape, labels)
    p = b[price_name]
    _prices(p, d0, d1, shape, labels, price_name)
    sa = np.sqrt(_tick_price_unchecked(lo, d0, d1))
    sb = np.sqrt(_tick_price_unchecked(hi, d0, d1))
    lh = L * np.sqrt(_pow10(-(d0 + d1)))
    return lh, sa, sb, np.sqrt(p), p, shape


def _amounts(lh, sa, sb, sp):
    s = np.clip(sp, sa, sb)  # below: s = sa, above: s = sb -> eqs. 6.29/6.30 in one expression
    return lh * (sb - s) / (s * sb), lh * (s - sa)


def lp_amounts(liquidity, tick_lower, tick_upper, price, decimals0=0, decimals1=0) -> LPAmounts:
    r"""Token amounts of a Uniswap v3 position (whitepaper §6.3, eqs. 6.29–6.30).

    ``amount0`` :math:`= L(1/\sqrt{s} - 1/\sqrt{P_b})`,
    ``amount1`` :math:`= L(\sqrt s - \sqrt{P_a})`
    with :math:`s = \min(\max(P, P_a), P_b)`: all token0 below the range, all token1 above it.

    Parameters
    ----------
    liquidity : array_like
        The position's ``L`` (``positions(tokenId).liquidity``, raw units).
    tick_lower, tick_upper : array_like of int
        The range ``[tick_lower, tick_upper)``, ``MIN_TICK <= tick_lower < tick_upper <= MAX_TICK``.
    price : array_like
        Pool price, token1 per token0 (whole tokens given decimals; see
        :func:`sqrt_price_x96_to_price`).
    decimals0, decimals1 : array_like of int, default 0
        Token decimals; with the defaults, price and amounts are raw (smallest units).

    Returns
    -------
    LPAmounts
        ``(amount0, amount1)`` arrays of the broadcast shape: raw units with zero decimals, whole
        tokens otherwise. Floats: the contract's integer amounts are rounded down (by < 1 unit).

    Raises
    ------
    ValidationError
        Bad ticks (non-integer, out of range, ``tick_lower >= tick_upper``), liquidity, price or
        decimals; the message names the field and the first bad row.

    Examples
    --------
    USDC (6) / WETH (18) with USDC as token0, the position of the on-chain test seed
    (``L = 1e15`` in ``[195000, 197500)``) below, inside and above its range, in raw units:

    >>> from pmnb.defi import lp_amounts, tick_to_price
    >>> a = lp_amounts(1e15, 195000, 197500, tick_to_price([190000, 196256, 199000]))
    >>> a.amount0.round(0)
    array([6.85282176e+09, 3.30294212e+09, 0.00000000e+00])
    >>> (a.amount1 / 1e18).round(6)                                   # WETH
    array([0.      , 1.111233, 2.282824])

    The same position in human units (USDC, WETH) at 3,000.10 USDC per WETH:

    >>> h = lp_amounts(1e15, 195000, 197500, 1 / 3000.1, decimals0=6, decimals1=18)
    >>> round(float(h.amount0), 2), round(float(h.amount1), 6)
    (3302.9, 1.111246)
    """
    lh, sa, sb, sp, _, shape = _lp_inputs(liquidity, tick_lower, tick_upper, price, decimals0,
                                          decimals1)
    a0, a1 = _amounts(lh, sa, sb, sp)
    return LPAmounts(a0.reshape(shape), a1.reshape(shape))


def lp_value(liquidity, tick_lower, tick_upper, price, decimals0=0, decimals1=0) -> np.ndarray:
    r"""Value of a Uniswap v3 position in token1: :math:`V = x P + y`.

    Inside the range this is the whitepaper's real-reserves form (§2, eq. 2.2 with
    :math:`x, y` from eqs. 6.29–6.30): :math:`V = 2L\sqrt P - L(\sqrt{P_a} + P/\sqrt{P_b})`.
    Below the range :math:`V = x_{max} P`; above it :math:`V = L(\sqrt{P_b} - \sqrt{P_a})`.
    Uncollected fees are not included.

    Parameters
    ----------
    liquidity, tick_lower, tick_upper, price, decimals0, decimals1
        As in :func:`lp_amounts`.

    Returns
    -------
    ndarray
        Token1 units (raw, or whole tokens given decimals). Multiply by token1's USD price for USD.

    Examples
    --------
    token0 = WETH (18), token1 = USDC (6): value in USDC across the range [-198080, -194720)
    (about 2,500–3,500 USDC per WETH).

    >>> from pmnb.defi import lp_value
    >>> lp_value(1e15, -198080, -194720, [2000.0, 3000.0, 4000.0], 18, 6).round(2)
    array([6185.67, 8822.84, 9146.18])
    """
    lh, sa, sb, sp, p, shape = _lp_inputs(liquidity, tick_lower, tick_upper, price, decimals0,
                                          decimals1)
    a0, a1 = _amounts(lh, sa, sb, sp)
    return (a0 * p + a1).reshape(shape)


def lp_delta(liquidity, tick_lower, tick_upper, price, decimals0=0, decimals1=0) -> np.ndarray:
    r"""dV/dP of a Uniswap v3 position: equal to ``amount0`` at every price.

    Inside the range, differentiating :math:`V = 2L\sqrt P - L(\sqrt{P_a} + P/\sqrt{P_b})`
    gives :math:`L/\sqrt P - L/\sqrt{P_b} = x` (eq. 6.30); below the range
    :math:`V = x_{max}P` gives :math:`x_{max}`; above it ``V`` is constant (delta 0). Delta is
    continuous at both edges.

    Parameters
    ----------
    liquidity, tick_lower, tick_upper, price, decimals0, decimals1
        As in :func:`lp_amounts`.

    Returns
    -------
    ndarray
        Token1 per unit of price (token1 per token0), i.e. token0 units: the position's exposure
        to token0, the amount to sell short to hedge it.

    Examples
    --------
    >>> from pmnb.defi import lp_delta, lp_amounts
    >>> d = lp_delta(1e15, -198080, -194720, [2000.0, 3000.0, 4000.0], 18, 6)
    >>> d.round(6)
    array([3.092835, 1.349908, 0.      ])
    >>> a = lp_amounts(1e15, -198080, -194720, [2000.0, 3000.0, 4000.0], 18, 6)
    >>> bool((d == a.amount0).all())
    True
    """
    return lp_amounts(liquidity, tick_lower, tick_upper, price, decimals0, decimals1).amount0


def lp_gamma(liquidity, tick_lower, tick_upper, price, decimals0=0, decimals1=0) -> np.ndarray:
    r"""d²V/dP² of a Uniswap v3 position: :math:`-L/(2P^{3/2})` inside the range, 0 outside.

    From :math:`dV/dP = L/\sqrt P - L/\sqrt{P_b}` inside the range. Gamma jumps at both edges;
    pmnb returns the value on the side where the pool counts the liquidity as active,
    :math:`P_a \le P < P_b` (``tickLower <= tick < tickUpper``). Always <= 0: a liquidity
    position is short convexity. In human units ``L`` is :math:`L\cdot10^{-(d_0+d_1)/2}`.

    Parameters
    ----------
    liquidity, tick_lower, tick_upper, price, decimals0, decimals1
        As in :func:`lp_amounts`.

    Returns
    -------
    ndarray
        Token1 per (price unit)², i.e. token0 per unit of price.

    Examples
    --------
    >>> from pmnb.defi import lp_gamma
    >>> lp_gamma(1e15, -198080, -194720, [2000.0, 3000.0, 4000.0], 18, 6).round(8)
    array([ 0.       , -0.0030429,  0.       ])
    """
    lh, sa, sb, sp, p, shape = _lp_inputs(liquidity, tick_lower, tick_upper, price, decimals0,
                                          decimals1)
    inside = (sp >= sa) & (sp < sb)
    return np.where(inside, -lh / (2.0 * p * sp), 0.0).reshape(shape)


def lp_impermanent_loss(tick_lower, tick_upper, price_entry, price, decimals0=0,
                        decimals1=0) -> np.ndarray:
    r"""Impermanent loss against holding the entry amounts: :math:`V_{LP}/V_{hold} - 1`.

    :math:`V_{hold} = x_0 P + y_0` with :math:`(x_0, y_0)` the position's amounts at
    ``price_entry``; both values are in token1 and proportional to ``L``, which cancels. Fees are
    not included. Always <= 0; for the full range it is the constant-product loss
    :math:`2\sqrt r/(1 + r) - 1`, :math:`r = P/P_{entry}`.

    Parameters
    ----------
    tick_lower, tick_upper : array_like of int
    price_entry, price : array_like
        Entry and current prices, token1 per token0.
    decimals0, decimals1 : array_like of int, default 0

    Returns
    -------
    ndarray
        Fractions (-0.05 = 5% less than holding).

    Examples
    --------
    >>> from pmnb.defi import lp_impermanent_loss, MIN_TICK, MAX_TICK
    >>> lp_impermanent_loss(MIN_TICK, MAX_TICK, 1.0, [1.0, 4.0]).round(6)   # 2*2/5 - 1
    array([ 0. , -0.2])
    >>> lp_impermanent_loss(-198080, -194720, 3000.0, [2500.0, 3500.0], 18, 6).round(6)
    array([-0.051032, -0.037021])
    """
    lh, sa, sb, s0, _, shape0 = _lp_inputs(1.0, tick_lower, tick_upper, price_entry, decimals0,
                                           decimals1, "price_entry")
    lh1, sa1, sb1, sp, p, shape = _lp_inputs(1.0, tick_lower, tick_upper, price, decimals0,
                                             decimals1)
    shape = np.broadcast_shapes(shape0, shape)
    x0, y0 = _amounts(lh, sa, sb, s0)
    x, y = _amounts(lh1, sa1, sb1, sp)
    x0, y0, x, y, p = np.broadcast_arrays(x0, y0, x, y, p)
    return ((x * p + y) / (x0 * p + y0) - 1.0).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Aave v3
# ---------------------------------------------------------------------------------------------
_INDEX_ACCEPTED = "finite RAY-scaled index (1e27 = 1.0), 1e27 <= index <= 2**128"
_RATE_ACCEPTED = "finite annualised decimal, 0 <= rate <= 100 (Aave's RAY rate / 1e27)"
_SECONDS_ACCEPTED = "finite, 0 <= seconds <= 3.2e9 (seconds since the index's last update)"


def _floats(values: Mapping[str, Any], accepted: Mapping[str, str]):
    arrays = {n: _as_float(n, v, accepted[n]) for n, v in values.items()}
    shape, b = _broadcast(arrays)
    return shape, b, row_labels(values.values())


def aave_balance(scaled_balance, index, decimals=0) -> np.ndarray:
    r"""Balance of an Aave v3 aToken or variable-debt position from its scaled balance.

    :math:`amount = scaledBalance \times index / RAY / 10^{decimals}`: ``index`` is the reserve's
    liquidity index (normalized income) for supply, its variable borrow index (normalized debt)
    for borrows. Aave docs, *Tokenization* (``scaledBalanceOf``: "the sum of all the updated
    stored balance divided by the reserve's liquidity index at the moment of the update");
    ``TokenMath.getATokenBalance/getVTokenBalance`` in aave-v3-origin, which round the result
    down (aTokens) or up (debt) to the token's smallest unit — ignored here.

    Parameters
    ----------
    scaled_balance : array_like
        ``scaledBalanceOf(user)`` in the token's smallest units (>= 0).
    index : array_like
        Current index in RAY (see :func:`aave_normalized_income`, :func:`aave_normalized_debt`).
    decimals : array_like of int, default 0
        Token decimals; the default returns smallest units.

    Returns
    -------
    ndarray
        Token amounts.

    Examples
    --------
    >>> from pmnb.defi import aave_balance
    >>> float(aave_balance(1_000_000_000, 1.05e27, decimals=6))     # 1,000 scaled USDC
    1050.0
    """
    acc = {"scaled_balance": "finite, >= 0 (token smallest units)", "index": _INDEX_ACCEPTED,
           "decimals": _DEC_ACCEPTED}
    shape, b, labels = _floats({"scaled_balance": scaled_balance, "index": index,
                                "decimals": decimals}, acc)
    _finite_range("scaled_balance", b["scaled_balance"], 0.0, np.inf, acc["scaled_balance"],
                  shape, labels)
    _finite_range("index", b["index"], 1e27, _UINT128_MAX, _INDEX_ACCEPTED, shape, labels)
    _finite_range("decimals", b["decimals"], 0, 255, _DEC_ACCEPTED, shape, labels, integer=True)
    with np.errstate(over="ignore"):
        out = b["scaled_balance"] * (b["index"] / 1e27) / _pow10(b["decimals"])
    _raise_first("scaled_balance", ~np.isfinite(out), b["scaled_balance"],
                 "values whose balance fits a float", shape, labels)
    return out.reshape(shape)


def _accrual_inputs(index, rate, seconds):
    acc = {"index": _INDEX_ACCEPTED, "rate": _RATE_ACCEPTED, "seconds": _SECONDS_ACCEPTED}
    shape, b, labels = _floats({"index": index, "rate": rate, "seconds": seconds}, acc)
    _finite_range("index", b["index"], 1e27, _UINT128_MAX, _INDEX_ACCEPTED, shape, labels)
    _finite_range("rate", b["rate"], 0.0, 100.0, _RATE_ACCEPTED, shape, labels)
    _finite_range("seconds", b["seconds"], 0.0, 3.2e9, _SECONDS_ACCEPTED, shape, labels)
    return b["index"], b["rate"] * b["seconds"] / SECONDS_PER_YEAR, shape


def aave_normalized_income(liquidity_index, liquidity_rate, seconds) -> np.ndarray:
    r"""Current liquidity index of an Aave v3 reserve: :math:`I_0 (1 + r\,\Delta t)`.

    ``ReserveLogic.getNormalizedIncome``: the stored ``liquidityIndex`` times
    ``MathUtils.calculateLinearInterest`` (simple interest at the current liquidity rate since
    ``lastUpdateTimestamp``; :math:`\Delta t` in years of ``SECONDS_PER_YEAR``).

    Parameters
    ----------
    liquidity_index : array_like
        ``getReserveData(asset).liquidityIndex`` (RAY).
    liquidity_rate : array_like
        ``currentLiquidityRate`` as an annualised decimal (the RAY value / 1e27).
    seconds : array_like
        ``block.timestamp - lastUpdateTimestamp``.

    Returns
    -------
    ndarray
        Index in RAY (floats).

    Examples
    --------
    A 3% supply rate for half a year on an index of 1.1:

    >>> from pmnb.defi import aave_normalized_income, SECONDS_PER_YEAR
    >>> float(aave_normalized_income(1.1e27, 0.03, SECONDS_PER_YEAR / 2)) / 1e27
    1.1165
    """
    i0, x, shape = _accrual_inputs(liquidity_index, liquidity_rate, seconds)
    return (i0 * (1.0 + x)).reshape(shape)


def aave_normalized_debt(variable_borrow_index, variable_borrow_rate, seconds) -> np.ndarray:
    r"""Current variable borrow index of an Aave v3 reserve: :math:`I_0(1 + x + x^2/2 + x^3/6)`.

    ``ReserveLogic.getNormalizedDebt``: the stored ``variableBorrowIndex`` times
    ``MathUtils.calculateCompoundedInterest``, the third-order expansion of :math:`e^x`,
    :math:`x = r\,\Delta t` (aave-v3-origin). Aave v3.0 (aave-v3-core) used the binomial form
    :math:`1 + nb + n(n-1)b^2/2 + n(n-1)(n-2)b^3/6` with :math:`b = r/SECONDS\_PER\_YEAR` per
    second, smaller by about :math:`x^2/(2n)` — far below a token unit for any real interval.

    Parameters
    ----------
    variable_borrow_index : array_like
        ``getReserveData(asset).variableBorrowIndex`` (RAY).
    variable_borrow_rate : array_like
        ``currentVariableBorrowRate`` as an annualised decimal (the RAY value / 1e27).
    seconds : array_like
        ``block.timestamp - lastUpdateTimestamp``.

    Returns
    -------
    ndarray
        Index in RAY (floats).

    Examples
    --------
    A 10% variable rate for one year: 1 + 0.1 + 0.005 + 0.000166667.

    >>> from pmnb.defi import aave_normalized_debt, SECONDS_PER_YEAR
    >>> float(aave_normalized_debt(1e27, 0.10, SECONDS_PER_YEAR)) / 1e27
    1.105166667
    """
    i0, x, shape = _accrual_inputs(variable_borrow_index, variable_borrow_rate, seconds)
    return (i0 * (1.0 + x + x * x / 2.0 + x * x * x / 6.0)).reshape(shape)


_AMOUNT_ACCEPTED = "finite, >= 0 (whole tokens)"
_PRICE_ACCEPTED = "finite, >= 0 (USD, or the oracle's base currency, per whole token)"
_LT_ACCEPTED = "finite decimal, 0 <= liquidation_threshold <= 1 (Aave's bps / 10,000)"


def _side(fields: Mapping[str, tuple[Any, str, float]]):
    """Broadcast one side (collateral or debt) of the health factor to (..., n) and check
    ``0 <= value <= upper`` for each ``name: (value, accepted, upper)``."""
    raw = {n: v for n, (v, _, _) in fields.items()}
    arrays = {n: np.atleast_1d(_as_float(n, v, a)) for n, (v, a, _) in fields.items()}
    shape, b = _broadcast(arrays)
    labels = row_labels(raw.values())
    for n, (_, accepted, upper) in fields.items():
        _finite_range(n, b[n], 0.0, upper, accepted, shape, labels)
    return b, shape


def aave_health_factor(collateral, collateral_price, liquidation_threshold, debt, debt_price, *,
                       emode_liquidation_threshold=None, in_emode=None) -> np.ndarray:
    r"""Health factor of a set of Aave v3 positions: :math:`\sum_i c_i p_i LT_i / \sum_j d_j p_j`.

    Aave docs, *Liquidations* (https://aave.com/docs/developers/liquidations) and
    ``GenericLogic.calculateUserAccountData`` (aave-v3-origin): collateral value times its
    liquidation threshold, summed, over total debt, both in the oracle's base currency. The sums
    run over the **last axis**; leading axes broadcast (e.g. price scenarios × assets).

    Parameters
    ----------
    collateral : array_like, shape (..., n)
        Supplied amounts used as collateral (whole tokens, see :func:`aave_balance`). Give
        collateral not enabled as such (``usageAsCollateralEnabled`` false) a threshold of 0.
    collateral_price : array_like, shape (..., n)
        Oracle prices, USD per whole token.
    liquidation_threshold : array_like, shape (..., n)
        Reserve liquidation thresholds as decimals (0.825 for Aave's 8250 bps).
    debt : array_like, shape (..., m)
        Borrowed amounts (whole tokens).
    debt_price : array_like, shape (..., m)
        Oracle prices, USD per whole token.
    emode_liquidation_threshold : array_like, optional
        The user's e-mode category threshold (decimal), broadcasting against the leading axes.
    in_emode : array_like of bool, shape (..., n), optional
        Collateral enabled in that category (uses ``emode_liquidation_threshold`` instead of its
        own). Default: every collateral asset when ``emode_liquidation_threshold`` is given.

    Returns
    -------
    ndarray
        Health factors, shape ``(...)``; ``+inf`` where there is no debt (Aave returns
        ``type(uint256).max``), liquidatable below 1.

    Examples
    --------
    10 ETH at 2,000 (LT 82.5%) and 10,000 USDC (LT 78%) against 25,000 USDC of debt, then the
    same under two ETH price scenarios (rows):

    >>> from pmnb.defi import aave_health_factor
    >>> float(aave_health_factor([10.0, 10_000.0], [2000.0, 1.0], [0.825, 0.78], 25_000.0, 1.0))
    0.972
    >>> aave_health_factor([10.0, 10_000.0], [[2000.0, 1.0], [1800.0, 1.0]], [0.825, 0.78],
    ...                    25_000.0, 1.0).round(4)
    array([0.972, 0.906])

    E-mode: ETH-correlated collateral at the category's 95% instead of 82.5%; no debt gives inf.

    >>> float(aave_health_factor(10.0, 2000.0, 0.825, 16.0, 1000.0,
    ...                          emode_liquidation_threshold=0.95))
    1.1875
    >>> float(aave_health_factor(10.0, 2000.0, 0.825, [], []))
    inf
    """
    c, cshape = _side({"collateral": (collateral, _AMOUNT_ACCEPTED, np.inf),
                       "collateral_price": (collateral_price, _PRICE_ACCEPTED, np.inf),
                       "liquidation_threshold": (liquidation_threshold, _LT_ACCEPTED, 1.0)})
    d, dshape = _side({"debt": (debt, _AMOUNT_ACCEPTED, np.inf),
                       "debt_price": (debt_price, _PRICE_ACCEPTED, np.inf)})
    lt = c["liquidation_threshold"]
    if emode_liquidation_threshold is not None:
        acc = "finite decimal, 0 <= emode_liquidation_threshold <= 1"
        e = _as_float("emode_liquidation_threshold", emode_liquidation_threshold, acc)
        _finite_range("emode_liquidation_threshold", e, 0.0, 1.0, acc, e.shape, None)
        mask = np.ones(cshape, dtype=bool) if in_emode is None else np.asarray(in_emode, bool)
        try:
            lt = np.where(mask, e[..., np.newaxis], lt)
        except ValueError:
            raise ValidationError(f"in_emode{mask.shape} / emode_liquidation_threshold{e.shape} "
                                  f"do not broadcast with the collateral {cshape}; accepted: "
                                  "in_emode of the collateral's shape, the threshold of its "
                                  "leading shape", field="in_emode") from None
    elif in_emode is not None:
        raise ValidationError("in_emode: given without emode_liquidation_threshold; accepted: "
                              "both or neither", field="in_emode")
    num = (c["collateral"] * c["collateral_price"] * lt).sum(axis=-1)
    den = (d["debt"] * d["debt_price"]).sum(axis=-1)
    try:
        num, den = np.broadcast_arrays(num, den)
    except ValueError:
        raise ValidationError(f"collateral{cshape} and debt{dshape}: leading axes do not "
                              "broadcast; accepted: the same leading (scenario) shape, assets "
                              "on the last axis") from None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)


_SIDES = {"supply": True, "collateral": True, "deposit": True, "borrow": False, "debt": False}


def aave_account(positions: pd.DataFrame, *, by: str | None = None,
                 emode_liquidation_threshold: float | None = None) -> pd.Series | pd.DataFrame:
    """Account summary of Aave v3 positions, one row each (like ``getUserAccountData``).

    Each row is a supply or a variable borrow held as a scaled balance; amounts follow
    :func:`aave_balance`, values are amount × price, and the health factor
    :func:`aave_health_factor`.

    Parameters
    ----------
    positions : pandas.DataFrame
        Columns:

        ``side``
            ``"supply"`` (aToken; also ``"collateral"``, ``"deposit"``) or ``"borrow"``
            (variable debt; also ``"debt"``), any case.
        ``scaled_balance``
            ``scaledBalanceOf`` in the token's smallest units.
        ``index``
            The reserve's current normalized income (supply rows) or normalized variable debt
            (borrow rows), RAY.
        ``price``
            Oracle price, USD per whole token.
        ``decimals`` (optional, default 0)
            Token decimals.
        ``liquidation_threshold``
            Decimal; required on supply rows, ignored on borrow rows.
        ``usage_as_collateral`` (optional, default True)
            False for supplies not used as collateral.
        ``in_emode`` (optional)
            True for collateral enabled in the user's e-mode category; default: every supply
            when ``emode_liquidation_threshold`` is given.
    by : str, optional
        Column naming the account; one summary row per account. ``None``: one account.
    emode_liquidation_threshold : float, optional
        The user's e-mode category threshold (decimal).

    Returns
    -------
    pandas.Series or pandas.DataFrame
        ``total_collateral_usd`` (collateral-enabled supplies with a threshold > 0, as Aave
        counts them), ``total_debt_usd``, ``liquidation_threshold`` (collateral-weighted average;
        NaN without collateral) and ``health_factor`` (``inf`` without debt). A Series when
        ``by`` is None, else a DataFrame indexed by account.

    Raises
    ------
    ValidationError
        Missing columns, unknown ``side`` values or out-of-range numbers, naming the column and the
        first bad row by its index label.

    Examples
    --------
    >>> import pandas as pd
    >>> from pmnb.defi import aave_account
    >>> pos = pd.DataFrame({
    ...     "side": ["supply", "supply", "borrow"],
    ...     "scaled_balance": [10e18, 10_000e6, 24_000e6],
    ...     "index": [1e27, 1e27, 1.05e27],
    ...     "decimals": [18, 6, 6],
    ...     "price": [2000.0, 1.0, 1.0],
    ...     "liquidation_threshold": [0.825, 0.78, float("nan")],
    ... }, index=["weth", "usdc", "usdc-debt"])
    >>> aave_account(pos).round(4)
    total_collateral_usd    30000.0000
    total_debt_usd          25200.0000
    liquidation_threshold       0.8100
    health_factor               0.9643
    dtype: float64
    """
    if not isinstance(positions, pd.DataFrame):
        raise ValidationError(f"positions: got {type(positions).__name__}; accepted: a pandas "
                              "DataFrame", field="positions")
    need = ["side", "scaled_balance", "index", "price"] + ([by] if by is not None else [])
    missing = [c for c in need if c not in positions.columns]
    if missing:
        raise ValidationError(f"positions: missing column(s) {missing}; accepted: columns side, "
                              "scaled_balance, index, price, liquidation_threshold (supply rows), "
                              "optional decimals, usage_as_collateral, in_emode",
                              field=missing[0])
    labels = positions.index
    n = len(positions)
    shape = (n,)
    side = positions["side"].astype(str).str.lower().map(_SIDES)
    if side.isna().any():
        first = int(np.flatnonzero(side.isna().to_numpy())[0])
        raise ValidationError.for_field("side", row=labels[first],
                                        value=positions["side"].iloc[first],
                                        accepted="'supply' (or 'collateral', 'deposit') or "
                                                 "'borrow' (or 'debt'), any case",
                                        n_bad=int(side.isna().sum()))
    supply = side.to_numpy(dtype=bool)
    decimals = positions["decimals"] if "decimals" in positions.columns else 0
    amount = aave_balance(positions["scaled_balance"], positions["index"], decimals)
    price = _as_float("price", positions["price"], _PRICE_ACCEPTED)
    _finite_range("price", price, 0.0, np.inf, _PRICE_ACCEPTED, shape, labels)
    if supply.any() and "liquidation_threshold" not in positions.columns:
        raise ValidationError("liquidation_threshold: column missing; accepted: decimals in "
                              "[0, 1] on every supply row", field="liquidation_threshold")
    lt = (_as_float("liquidation_threshold", positions["liquidation_threshold"], _LT_ACCEPTED)
          if "liquidation_threshold" in positions.columns else np.zeros(n))
    lt = np.where(supply, lt, 0.0)
    _finite_range("liquidation_threshold", lt, 0.0, 1.0, _LT_ACCEPTED, shape, labels)
    use = (positions["usage_as_collateral"].to_numpy(dtype=bool)
           if "usage_as_collateral" in positions.columns else np.ones(n, dtype=bool))
    if emode_liquidation_threshold is not None:
        acc = "finite decimal, 0 <= emode_liquidation_threshold <= 1"
        e = float(_as_float("emode_liquidation_threshold", emode_liquidation_threshold, acc))
        if not 0.0 <= e <= 1.0:
            raise ValidationError(f"emode_liquidation_threshold: got {e!r}; accepted: {acc}",
                                  field="emode_liquidation_threshold")
        emode = (positions["in_emode"].to_numpy(dtype=bool) if "in_emode" in positions.columns
                 else np.ones(n, dtype=bool))
        lt = np.where(emode & supply, e, lt)
    elif "in_emode" in positions.columns and positions["in_emode"].astype(bool).any():
        raise ValidationError("in_emode: True rows without emode_liquidation_threshold; accepted: "
                              "pass the category's threshold", field="in_emode")
    value = amount * price
    collat = np.where(supply & use & (lt > 0), value, 0.0)
    frame = pd.DataFrame({"collateral": collat, "weighted": collat * lt,
                          "debt": np.where(supply, 0.0, value)}, index=positions.index)
    if by is not None:
        sums = frame.groupby(positions[by].to_numpy(), sort=True).sum()
        sums.index.name = by
    else:
        sums = frame.sum().to_frame().T
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame({
            "total_collateral_usd": sums["collateral"],
            "total_debt_usd": sums["debt"],
            "liquidation_threshold": np.where(sums["collateral"] > 0,
                                              sums["weighted"] / sums["collateral"], np.nan),
            "health_factor": np.where(sums["debt"] > 0, sums["weighted"] / sums["debt"], np.inf),
        }, index=sums.index)
    return out.iloc[0].rename(None) if by is None else out
