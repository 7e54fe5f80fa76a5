"""Prepared margin: a book validated, checked and tabulated once, evaluated many times.

:func:`pmnb.margin.prepare` validates a book, selects the account and runs the model's checks
once, and returns a :class:`PreparedMargin`. Its :meth:`~PreparedMargin.compute` returns the same
:class:`~pmnb.margin.MarginReport` as :func:`pmnb.margin.compute`, and
:meth:`~PreparedMargin.evaluate` / :meth:`~PreparedMargin.maintenance_gap` return only the
numbers (equity, initial and maintenance margin) at any common price move, which is what
liquidation-price searches and what-if tools call many times.

A price move ``s`` means :meth:`pmnb.Market.shocked`: every non-stable spot, every forward curve
and every venue mark is scaled by ``1 + s``; implied vols are sticky-strike (the surface is held
fixed in strike). Models with a compiled path (``deribit.standard``, ``deribit.portfolio``) look
the market up once per distinct instrument (forward, surface vol, mark), aggregate the positions
per instrument, and revalue only the distinct instruments at each move
(:mod:`pmnb._core._margin`, C in ``margin.c``: Black-76 inverse prices as ``V = w e^{-rT}
(N(w d1) - (K/F') N(w d2))`` with ``ln(F'/K) = ln(F/K) + ln(1 + s)`` precomputed, Black 1976,
Haug 2007 §2.1). Every other model (and a book the compiled path does not cover) is prepared
generically: the validated book is kept and the model recomputes on the shocked market.

Examples
--------
>>> import pandas as pd, pmnb
>>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
...                           vols={"BTC": 0.5})
>>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
...                      "symbol": ["BTC-27MAR26-90000-P"], "size": [-10.0]})
>>> coll = pd.DataFrame({"account": ["a"], "asset": ["BTC"], "balance": [5.0]})
>>> prep = pmnb.margin.prepare(book, m, "deribit.standard", collateral=coll)
>>> st = prep.evaluate(-0.2)                       # the whole market 20 % lower
>>> rep = pmnb.margin.compute(book, m.shocked(-0.2), "deribit.standard", collateral=coll)
>>> abs(st.maintenance - rep.maintenance) < 1e-12, abs(st.equity - rep.equity) < 1e-12
(True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError

__all__ = ["MarginState", "PreparedMargin"]

#: Prices :meth:`pmnb.Market.shocked` holds fixed (its default ``stable``).
SHOCK_STABLE = ("USD", "USDC", "USDT", "DAI")


class MarginState(NamedTuple):
    """Equity, initial and maintenance margin of an account (margin currency), as floats or as
    arrays over several price moves.

    Examples
    --------
    >>> s = MarginState(10.0, 4.0, 3.0)
    >>> s.equity - s.maintenance
    7.0
    """

    equity: Any
    initial: Any
    maintenance: Any


def _shock(s: Any) -> float:
    try:
        v = float(s)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > -1):
        raise ValidationError(f"spot_shock: got {s!r}; accepted: a finite number > -1",
                              field="spot_shock")
    return v


def _shocks(s: Any) -> np.ndarray:
    a = np.atleast_1d(np.asarray(s, dtype=float)).reshape(-1)
    bad = ~(np.isfinite(a) & (a > -1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError.for_field("spot_shocks", row=i, value=float(a[i]),
                                        accepted="finite, > -1", n_bad=int(bad.sum()))
    return a


class PreparedMargin:
    """One account's validated book under one model and market, ready for repeated evaluation.

    Built by :func:`pmnb.margin.prepare` (or a model's ``prepare``). This generic version keeps
    the validated book and recomputes the model on :meth:`pmnb.Market.shocked` markets; the
    compiled models return subclasses that evaluate from arrays.

    Attributes
    ----------
    model : MarginModel
    book : DataFrame
        The validated positions of the account.
    market : pmnb.Market
    account : str or None
    collateral : DataFrame or None
    compiled : bool
        Whether evaluations run on the compiled array path.

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
    ...                           marks={"binance:BTCUSDT": 60_000.0})
    >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
    ...                      "size": [1.0], "entry_price": [60_000.0]})
    >>> coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [3_000.0]})
    >>> prep = pmnb.margin.prepare(book, m, "binance.usdm", collateral=coll)
    >>> prep.compiled, round(prep.evaluate().maintenance, 4)
    (False, 250.0)
    """

    compiled = False
    #: Most threads of the compiled kernels (None: every available core); they split the distinct
    #: instruments in blocks of ``pmnb._core._margin.BLOCK`` and start a second thread only above
    #: 20,000 revaluations (results do not depend on the thread count).
    n_threads: int | None = None

    def kernel_threads(self, work: int) -> int:
        """Threads for a kernel call of ``work`` revaluations (:attr:`n_threads`, at most one
        per 20,000 revaluations, as :func:`pmnb.price` does).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> p = PreparedMargin(pmnb.margin.get("binance.usdm"), pd.DataFrame(), None)
        >>> p.n_threads = 2
        >>> p.kernel_threads(10_000), p.kernel_threads(1_000_000)
        (1, 2)
        """
        from pmnb.pricing import _threads

        return _threads(self.n_threads, int(work))

    def __init__(self, model, book: pd.DataFrame, market, *, account: str | None = None,
                 collateral: pd.DataFrame | None = None, orders: pd.DataFrame | None = None,
                 compute_fn: Callable[..., Any] | None = None) -> None:
        self.model = model
        self.book = book
        #: the account's whole validated book (``book`` may hold only the rows the model
        #: margins, e.g. one currency of a segregated model)
        self.account_book = book
        self.market = market
        self.account = account
        self.collateral = collateral
        self.orders = orders
        self._compute_fn = compute_fn if compute_fn is not None else model.compute

    def market_at(self, spot_shock: float = 0.0):
        """The market moved by ``spot_shock`` (:meth:`pmnb.Market.shocked`; itself at 0).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 100.0})
        >>> PreparedMargin(pmnb.margin.get("binance.usdm"), pd.DataFrame(), m).market_at(
        ...     0.1).spot("BTC")
        110.00000000000001
        """
        s = _shock(spot_shock)
        return self.market if s == 0.0 else self.market.shocked(s)

    def compute(self, spot_shock: float = 0.0):
        """The full :class:`~pmnb.margin.MarginReport` at the market moved by ``spot_shock``
        (the same as :func:`pmnb.margin.compute` on ``market.shocked(spot_shock)``).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
        ...                           marks={"binance:BTCUSDT": 60_000.0})
        >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
        ...                      "size": [1.0], "entry_price": [60_000.0]})
        >>> pmnb.margin.prepare(book, m, "binance.usdm").compute(0.1).equity
        6000.0
        """
        return self._compute_fn(self.book, self.market_at(spot_shock), account=self.account,
                                collateral=self.collateral, orders=self.orders)

    def evaluate(self, spot_shock: float = 0.0) -> MarginState:
        """Equity, initial and maintenance margin at the market moved by ``spot_shock``.

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
        ...                           marks={"binance:BTCUSDT": 60_000.0})
        >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
        ...                      "size": [1.0], "entry_price": [60_000.0]})
        >>> pmnb.margin.prepare(book, m, "binance.usdm").evaluate(-0.1).equity
        -6000.0
        """
        r = self.compute(spot_shock)
        return MarginState(float(r.equity), float(r.initial), float(r.maintenance))

    def maintenance_gap(self, spot_shocks: Any) -> np.ndarray:
        """``equity - maintenance`` at each of ``spot_shocks`` (1-D array; liquidatable <= 0).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01", spots={"BTC": 60_000.0},
        ...                           marks={"binance:BTCUSDT": 60_000.0})
        >>> book = pd.DataFrame({"account": ["b"], "venue": ["binance"], "symbol": ["BTCUSDT"],
        ...                      "size": [1.0], "entry_price": [60_000.0]})
        >>> coll = pd.DataFrame({"account": ["b"], "asset": ["USDT"], "balance": [3_000.0]})
        >>> pmnb.margin.prepare(book, m, "binance.usdm", collateral=coll).maintenance_gap(
        ...     [0.0, -0.05]).round(2).tolist()
        [2750.0, -235.0]
        """
        out = []
        for s in _shocks(spot_shocks):
            st = self.evaluate(float(s))
            out.append(st.equity - st.maintenance)
        return np.array(out, dtype=float)

    def __repr__(self) -> str:
        path = "compiled" if self.compiled else "generic"
        return (f"<prepared margin {self.model.name} account={self.account!r} "
                f"positions={len(self.book)} ({path})>")


# --- shared by the compiled models -----------------------------------------------------------
def symbol_groups(book: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, bool]:
    """Rows grouped by symbol in order of first appearance: ``(rep, inv, consistent)``.

    ``rep`` is the first row of each group, ``inv`` each row's group; ``consistent`` is True when
    every row of a symbol has the same kind, venue, underlying, settlement, strike, expiry and
    option type (so one lookup per group is exact).

    Examples
    --------
    >>> import pandas as pd
    >>> from pmnb.book import validate_positions
    >>> b = validate_positions(pd.DataFrame({"account": "a", "venue": "deribit",
    ...     "symbol": ["BTC-PERPETUAL", "BTC-27MAR26-90000-P", "BTC-PERPETUAL"],
    ...     "size": [1.0, 2.0, 3.0]}))
    >>> rep, inv, ok = symbol_groups(b)
    >>> rep.tolist(), inv.tolist(), ok
    ([0, 1], [0, 1, 0], True)
    """
    n = len(book)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), True
    sym = book["symbol"]
    if isinstance(sym.dtype, pd.CategoricalDtype):
        codes = np.asarray(sym.array.codes, dtype=np.int64)
        k = len(sym.cat.categories)
    else:
        codes, uniq = pd.factorize(sym.astype(str))
        codes = codes.astype(np.int64)
        k = len(uniq)
    codes = np.where(codes < 0, k, codes)
    first = np.full(k + 1, n, dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)
    used = np.flatnonzero(first < n)
    used = used[np.argsort(first[used], kind="stable")]
    where = np.zeros(k + 1, dtype=np.int64)
    where[used] = np.arange(len(used))
    inv = where[codes]
    rep = first[used]
    fields = [np.asarray(book["strike"].to_numpy(dtype=float)).view(np.int64),
              pd.DatetimeIndex(book["expiry"]).as_unit("ns").asi8]
    for c in ("kind", "venue", "underlying", "settlement", "option_type"):
        s = book[c]
        fields.append(np.asarray(s.array.codes) if isinstance(s.dtype, pd.CategoricalDtype)
                      else pd.factorize(s.astype(str))[0])
    ok = all(np.array_equal(f[rep][inv], f) for f in fields)
    return rep, inv, bool(ok)


def option_table(sub: pd.DataFrame, market, T: np.ndarray):
    """Instrument table of the option rows ``sub`` (each a distinct instrument), for
    :mod:`pmnb._core._margin`: ``(inst, lim0, F, sigma, T)`` with the market's forward and
    surface vol looked up once per row; rows with ``sigma sqrt(T)`` below the kernel's limit
    threshold are flagged in ``lim0`` (priced by the exact limit path).

    Examples
    --------
    >>> import pandas as pd, pmnb
    >>> from pmnb.book import validate_positions
    >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 1e5}, vols={"BTC": 0.5})
    >>> b = validate_positions(pd.DataFrame({"account": "a", "venue": "deribit",
    ...     "symbol": ["BTC-27MAR26-90000-P"], "size": [1.0]}))
    >>> inst, lim0, F, sig, T = option_table(b, m, np.array([85 / 365]))
    >>> inst.shape, lim0.tolist(), float(sig[0])
    ((10, 1), [0], 0.5)
    """
    from pmnb._core import _margin
    from pmnb.book import _option_inputs

    k = len(sub)
    F, K, Tt, sigma = _option_inputs(sub, market, np.arange(k), T, distinct=True)
    F, K, Tt, sigma = (np.asarray(x, dtype=float) for x in (F, K, Tt, sigma))
    w = np.where(np.asarray(sub["option_type"].astype(str)) == "call", 1.0, -1.0)
    r = market.rate("USD")
    sst = sigma * np.sqrt(Tt)
    lim0 = ~(sst >= 1e-30)
    inst = np.empty((_margin.INST_ROWS, k))
    inst[0] = np.log(F / K)
    inst[1] = K / F
    inst[2] = w
    inst[3] = np.exp(-r * Tt)
    inst[4] = 0.0
    inst[5] = np.where(lim0, 1.0, sst)
    inst[6] = sigma
    inst[7], inst[8], inst[9] = F, K, Tt
    return inst, lim0.astype(np.uint8), F, sigma, Tt


def shock_factor(underlyings) -> bool:
    """True when every underlying moves with :meth:`pmnb.Market.shocked` (none is a stablecoin).

    Examples
    --------
    >>> shock_factor(["BTC", "ETH"]), shock_factor(["BTC", "USDC"])
    (True, False)
    """
    return not any(str(u).upper() in SHOCK_STABLE for u in underlyings)
