"""Deribit standard margin: futures and perpetuals (inverse and linear), inverse options.

Futures and perpetuals (Deribit support, "Linear Perpetual",
https://support.deribit.com/hc/en-us/articles/25944738177565-Linear-Perpetual, and the legacy
futures page https://test.deribit.com/pages/docs/futures)::

    IM_rate = IM_base + |Q| × IM_slope        Q = position size in base coin
    MM_rate = MM_base + |Q| × MM_slope
    IM = |Q| × IM_rate,  MM = |Q| × MM_rate   (coin)

Linear (USDC) products are margined in USDC: ``IM_USDC = IM × index`` (the page: "This is done
on the **index price** of the underlying"). Inverse products hold USD contracts; Q is the USD
size converted to coin at the instrument's mark (``coin_price="mark"``, the default; the pages
do not say which price, ``coin_price="index"`` uses the index). Shipped rates: BTC (2% + 0.005%
per BTC, MM 1% + 0.005% per BTC) and SOL (4% + 0.0005% per SOL, MM 2% + 0.0005%). ETH and any
other underlying have no documented rates: pass them, e.g.
``pmnb.margin.get("deribit.standard", futures={**DEFAULT_FUTURES, "ETH": FuturesRates(...)})``;
pmnb never invents them.

Inverse (coin-settled) options, per contract of 1 coin, in coin (Deribit's formula as quoted by
TSLab's Deribit margin documentation,
https://doc.tslab.pro/tslab/eng/data-providers/connection-to-broker/deribit-cryptocurrency-exchange/deribit-margin-requirements-calculation;
Deribit "Inverse Options",
https://support.deribit.com/hc/en-us/articles/25944688327069-Inverse-Options)::

    OTM_call = max(K − F, 0)      OTM_put = max(F − K, 0)      m = option mark (coin)
    short call:  IM = max(0.15 − OTM/F, 0.10) + m               MM = 0.075 + m
    short put:   IM = max(max(0.15 − OTM/F, 0.10) + m, MM)      MM = max(0.075, 0.075 m) + m
    long call/put: IM = MM = 0 beyond the premium paid

F is the "Underlying Mark Price": the mark of the option's underlying future. pmnb takes the
market's forward for the option's expiry (``market.forward(underlying, expiry)``), the same F the
option is valued on, and m is the option's Black-76 coin price on that forward
(:func:`pmnb.book.value_positions`). ``long_options="mark"`` applies the legacy Deribit FAQ rule
(IM = MM = option mark) instead. Linear (USDC) options are not margined: Deribit's constants for
them were not found.

Margin is segregated per currency: inverse positions are margined in their coin, linear ones in
USDC. One report covers one currency: when an account holds several, pass ``currency=`` (a
parameter: ``pmnb.margin.get("deribit.standard", currency="BTC")``). Positions of one
instrument are netted (Deribit holds one position per instrument); the requirement of the net
position is shared among its rows in proportion to their size.

Equity (Deribit: balance + futures unrealised P&L + options value) = the account's collateral
balance in the margin currency + the value of its options (long positive, short negative) + the
unrealised P&L of its futures and perpetuals at mark. ``delta_total`` is Deribit's DeltaTotal:
the sum of coin deltas (net transactional delta of inverse options, ``q / mark`` of inverse
futures, ``q`` of linear ones; :func:`pmnb.book.position_greeks`).

Open orders (``compute(..., orders=...)``) add initial margin: Deribit charges initial margin on
the open orders of a standard-margin account (Deribit, "18 August 2022" release notes,
https://support.deribit.com/hc/en-us/articles/25944782257949-18-August-2022) but publishes no
formula (reference/margin.md §1.2). pmnb's **labelled approximation**: the orders' initial margin
is the larger, over the buy side and the sell side, of the initial margin with every order of
that side filled (at its limit price) minus the initial margin without, floored at 0 — so a
reduce-only order adds nothing and opposite orders are not both charged. Maintenance margin and
equity are those of the positions (an order is not a position).

Examples
--------
>>> import pmnb.margin
>>> m = pmnb.margin.get("deribit.standard")
>>> [float(x) for x in m.futures_margin("BTC", 25.0)]  # D2: 2.125 %, 1.125 % of 25 BTC
[0.53125, 0.28125]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pmnb.errors import ValidationError
from pmnb.margin import (MarginModel, MarginParams, MarginReport, distinct_text, register,
                         text_codes, usd_per_unit, wallet_balance)
from pmnb.margin.prepared import SHOCK_STABLE, MarginState, PreparedMargin

__all__ = ["DEFAULT_FUTURES", "DeribitStandard", "DeribitStandardParams", "FuturesRates",
           "futures_margin", "short_option_margin"]


@dataclasses.dataclass(frozen=True)
class FuturesRates:
    """Size-dependent margin rates of one underlying: ``rate = base + |Q| × slope`` (Q in coin)."""

    im_base: float
    im_slope: float
    mm_base: float
    mm_slope: float


#: BTC and SOL: Deribit "Linear Perpetual" page
#: (https://support.deribit.com/hc/en-us/articles/25944738177565-Linear-Perpetual). ETH:
#: Deribit "11 January 2022" margin change (https://support.deribit.com/hc/en-us/articles/
#: 25944826427293-11-January-2022): IM 2% + size in ETH × 0.0004%, MM 1% + size in ETH ×
#: 0.0004% — the latest ETH rates Deribit published that pmnb found (later changes, if any, are
#: not in the sources: override with the venue's current rates).
DEFAULT_FUTURES: Mapping[str, FuturesRates] = {
    "BTC": FuturesRates(im_base=0.02, im_slope=0.00005, mm_base=0.01, mm_slope=0.00005),
    "ETH": FuturesRates(im_base=0.02, im_slope=0.000004, mm_base=0.01, mm_slope=0.000004),
    "SOL": FuturesRates(im_base=0.04, im_slope=0.000005, mm_base=0.02, mm_slope=0.000005),
}


@dataclasses.dataclass(frozen=True)
class DeribitStandardParams(MarginParams):
    """Deribit standard-margin parameters (override any field; see the module docstring).

    Attributes
    ----------
    futures : mapping
        Underlying -> :class:`FuturesRates`.
    option_im_addon, option_im_floor, option_mm_addon : float
        The 0.15, 0.10 and 0.075 of the inverse-option formulas.
    long_options : {"zero", "mark"}
        Long options: no margin beyond the premium (default), or IM = MM = option mark (legacy).
    coin_price : {"mark", "index"}
        Price converting inverse futures' USD size to coin for the size-dependent rate.
    currency : str or None
        Margin currency of the report (BTC, ETH, USDC, ...); required when the account holds
        positions margined in several currencies.
    """

    rule_version: str = "deribit-standard-2025"
    source: str = ("https://support.deribit.com/hc/en-us/articles/25944738177565-Linear-Perpetual "
                   "(BTC, SOL futures rates); https://support.deribit.com/hc/en-us/articles/"
                   "25944826427293-11-January-2022 (ETH futures rates); https://doc.tslab.pro/tslab/eng/data-providers/"
                   "connection-to-broker/deribit-cryptocurrency-exchange/"
                   "deribit-margin-requirements-calculation (inverse options, quoting Deribit)")
    futures: Any = dataclasses.field(default_factory=lambda: dict(DEFAULT_FUTURES))
    option_im_addon: float = 0.15
    option_im_floor: float = 0.10
    option_mm_addon: float = 0.075
    long_options: str = "zero"
    coin_price: str = "mark"
    currency: str | None = None


def futures_margin(Q: Any, rates: FuturesRates) -> tuple[np.ndarray, np.ndarray]:
    """Initial and maintenance margin (coin) of futures positions of ``Q`` coins.

    Examples
    --------
    >>> im, mm = futures_margin([0.0, 25.0, 350.0], DEFAULT_FUTURES["BTC"])
    >>> im.round(8).tolist(), mm.round(8).tolist()
    ([0.0, 0.53125, 13.125], [0.0, 0.28125, 9.625])
    """
    q = np.abs(np.asarray(Q, dtype=float))
    return (q * (rates.im_base + q * rates.im_slope), q * (rates.mm_base + q * rates.mm_slope))


def short_option_margin(option_type: Any, K: Any, F: Any, mark: Any, *, im_addon: float = 0.15,
                        im_floor: float = 0.10, mm_addon: float = 0.075
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Initial and maintenance margin (coin) of one short inverse option contract (1 coin).

    Parameters
    ----------
    option_type : "call"/"put" or array of them
    K, F : array_like
        Strike and underlying future's mark, USD.
    mark : array_like
        Option mark, coin per contract.

    Examples
    --------
    >>> im, mm = short_option_margin(["call", "put"], [110_000, 95_000], 100_000, [0.01, 0.015])
    >>> im.round(6).tolist(), mm.round(6).tolist()   # T1, T4
    ([0.11, 0.115], [0.085, 0.09])
    """
    t = np.asarray(option_type).astype(str)
    K, F, m = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (K, F, mark)))
    t = np.broadcast_to(t, K.shape)
    if not np.all(np.isin(t, ("call", "put"))):
        raise ValidationError(f"option_type: got {sorted(set(t.ravel()) - {'call', 'put'})}; "
                              "accepted: call, put", field="option_type")
    call = t == "call"
    otm = np.where(call, np.maximum(K - F, 0.0), np.maximum(F - K, 0.0))
    base = np.maximum(im_addon - otm / F, im_floor) + m
    mm = np.where(call, mm_addon + m, np.maximum(mm_addon, mm_addon * m) + m)
    im = np.where(call, base, np.maximum(base, mm))
    return im, mm


def _choice(name: str, value: Any, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise ValidationError(f"{name}: got {value!r}; accepted: {', '.join(accepted)}",
                              field=name)


@register("deribit.standard")
class DeribitStandard(MarginModel):
    """Deribit standard (segregated) margin (see the module docstring)."""

    name = "deribit.standard"
    margin_modes = ("cross", "isolated")
    kinds = ("future", "perpetual", "option")
    params_type = DeribitStandardParams

    def rates(self, underlying: str) -> FuturesRates:
        """The futures rates of ``underlying``; raises when none are documented or given.

        Examples
        --------
        >>> DeribitStandard().rates("BTC").im_base
        0.02
        >>> DeribitStandard().rates("ETH").im_slope   # 0.0004 % per ETH (Deribit, 2022-01-11)
        4e-06
        >>> try:
        ...     DeribitStandard().rates("XRP")
        ... except ValueError as e:
        ...     print(str(e)[:52])
        deribit.standard: no futures margin rates for 'XRP'
        """
        table = self.params.futures
        if underlying not in table:
            raise ValidationError(
                f"deribit.standard: no futures margin rates for {underlying!r} (not documented "
                "in the sources pmnb ships); pass the venue's current rates: pmnb.margin.get("
                "'deribit.standard', futures={**DEFAULT_FUTURES, "
                f"{underlying!r}: FuturesRates(im_base, im_slope, mm_base, mm_slope)}}); "
                f"available: {sorted(table)}", field="futures")
        return table[underlying]

    def futures_margin(self, underlying: str, Q: Any) -> tuple[np.ndarray, np.ndarray]:
        """IM and MM (coin) of futures positions of ``Q`` coins of ``underlying``.

        Examples
        --------
        >>> im, mm = DeribitStandard().futures_margin("SOL", 6_000.0)   # D5
        >>> round(float(im), 6), round(float(mm), 6)
        (420.0, 300.0)
        """
        return futures_margin(Q, self.rates(underlying))

    def option_margin(self, option_type: Any, K: Any, F: Any, mark: Any, size: Any
                      ) -> tuple[np.ndarray, np.ndarray]:
        """IM and MM (coin) of inverse option positions of signed ``size`` coins.

        Examples
        --------
        >>> im, mm = DeribitStandard().option_margin(["put", "call"], [90_000, 120_000],
        ...                                          100_000, [0.02, 0.03], [-2.0, 1.0])
        >>> im.round(6).tolist(), mm.round(6).tolist()
        ([0.24, 0.0], [0.19, 0.0])
        """
        p = self.params
        _choice("long_options", p.long_options, ("zero", "mark"))
        im, mm = short_option_margin(option_type, K, F, mark, im_addon=p.option_im_addon,
                                     im_floor=p.option_im_floor, mm_addon=p.option_mm_addon)
        size = np.broadcast_to(np.asarray(size, dtype=float), im.shape)
        m = np.broadcast_to(np.asarray(mark, dtype=float), im.shape)
        long_ = m if p.long_options == "mark" else np.zeros(im.shape)
        short = size < 0
        q = np.abs(size)
        return q * np.where(short, im, long_), q * np.where(short, mm, long_)

    # --- the account ------------------------------------------------------------------------
    def _checks(self, book, orders):
        """The checks and notes that precede any computation; returns ``(kind, inverse, notes)``
        with ``kind`` a function giving the kind of every row as text (built on demand)."""
        p = self.params
        _choice("coin_price", p.coin_price, ("mark", "index"))
        _choice("long_options", p.long_options, ("zero", "mark"))
        if orders is not None and len(orders):
            raise ValidationError(
                "orders: a prepared deribit.standard account margins positions only; pass "
                "open orders to compute(..., orders=...)", field="orders")
        kc, kt = text_codes(book["kind"])
        sc, st = text_codes(book["settlement"])
        inverse = (st == "inverse")[sc]
        lin_opt = (kt == "option")[kc] & ~inverse

        def kind():
            return kt[kc]
        if lin_opt.any():
            i = int(np.flatnonzero(lin_opt)[0])
            raise ValidationError(
                f"deribit.standard: position {book['position_id'].iloc[i]!r} (row "
                f"{book.index[i]!r}) is a linear (USDC) option; Deribit's constants for them "
                "were not found; this model margins: inverse options, inverse and linear "
                "futures and perpetuals", field="settlement", row=book.index[i])
        notes: list[str] = []
        venues = sorted(set(distinct_text(book["venue"])) - {"deribit"})
        if venues:
            notes.append(f"positions of {venues} margined with Deribit's rules")
        return kind, inverse, notes

    def _segregate(self, book, collateral, notes: list[str]):
        """The margin currency and the rows margined in it (the others are noted as left out:
        Deribit segregates margin per currency)."""
        currency, keep, cur_all = self.margin_currency(book, collateral)
        if not keep.all():
            others = sorted(set(cur_all[~keep].tolist()))
            notes.append(f"positions margined in {others} left out (segregated: one report per "
                         "currency)")
        return currency, keep

    def prepare(self, book, market, *, account=None, collateral=None, orders=None):
        """The account prepared for repeated evaluation (see :mod:`pmnb.margin.prepared`):
        options and futures aggregated per instrument, forwards, vols and marks looked up once,
        each evaluation one compiled pass over the distinct instruments.

        ``book`` is a validated book (:func:`pmnb.margin.prepare` validates a raw one).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> from pmnb.book import validate_positions
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> b = validate_positions(pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...     "symbol": ["BTC-27MAR26-90000-P"], "size": [-1.0]}))
        >>> prep = DeribitStandard().prepare(b, m)
        >>> prep.compiled, round(prep.evaluate().maintenance, 6)
        (True, 0.124735)
        """
        from pmnb.margin.prepared import PreparedMargin

        kind, inverse, notes = self._checks(book, orders)
        currency, keep = self._segregate(book, collateral, notes)
        sub = book if keep.all() else book[keep]
        prep = _PreparedStandard.build(self, sub, market, account, collateral, currency, notes)
        if prep is None:
            return PreparedMargin(self, book, market, account=account, collateral=collateral,
                                  orders=orders, compute_fn=self._compute_reference)
        prep.account_book = book
        return prep

    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        """Margin report of a validated book (the compiled per-instrument path; a book it does
        not cover goes through :meth:`_compute_reference`).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> from pmnb.book import validate_positions
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> b = validate_positions(pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...     "symbol": ["BTC-27MAR26-90000-P"], "size": [-1.0]}))
        >>> round(DeribitStandard().compute(b, m).initial, 6)
        0.149735
        """
        if orders is not None and len(orders):
            return self._with_orders(book, market, account, collateral, orders)
        return self.prepare(book, market, account=account, collateral=collateral).compute()

    def _with_orders(self, book, market, account, collateral, orders) -> MarginReport:
        """The positions' report plus the initial margin of the worse side of the open orders
        (see the module docstring: a labelled approximation)."""
        from pmnb.book import validate_positions

        if not isinstance(orders, pd.DataFrame):
            raise ValidationError(f"orders: got {type(orders).__name__}; accepted: a DataFrame "
                                  "with symbol, size (signed: buys > 0) and price", field="orders")
        missing = [c for c in ("symbol", "size", "price") if c not in orders]
        if missing:
            raise ValidationError(f"orders: missing column(s) {missing}; required: symbol, size "
                                  "(signed contracts, buys > 0), price (limit, > 0)",
                                  field=missing[0])
        size = pd.to_numeric(orders["size"], errors="coerce").to_numpy(dtype=float)
        price = pd.to_numeric(orders["price"], errors="coerce").to_numpy(dtype=float)
        for name, bad, accepted in (
                ("size", ~np.isfinite(size) | (size == 0), "finite, non-zero (buys > 0)"),
                ("price", ~(price > 0) | ~np.isfinite(price), "a finite limit price > 0")):
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValidationError(f"orders: {name} of row {orders.index[i]!r} is "
                                      f"{orders[name].iloc[i]!r}; accepted: {accepted}",
                                      field=name, row=orders.index[i])
        acc = account if account is not None else (
            str(book["account"].iloc[0]) if len(book) else "orders")
        as_positions = pd.DataFrame({
            "position_id": [f"order:{label}" for label in orders.index],
            "account": orders["account"].astype(str).to_numpy() if "account" in orders else acc,
            "venue": orders["venue"].astype(str).to_numpy() if "venue" in orders else "deribit",
            "symbol": orders["symbol"].astype(str).to_numpy(), "size": size,
            "entry_price": price}, index=[f"order:{label}" for label in orders.index])
        base = self.compute(book, market, account=account, collateral=collateral)
        extra, side = 0.0, None
        for name, mask in (("buy", size > 0), ("sell", size < 0)):
            if not mask.any():
                continue
            filled = validate_positions(pd.concat([book.astype({"position_id": str}),
                                                   as_positions[mask]]))
            rep = self.compute(filled, market, account=account, collateral=collateral)
            if rep.initial - base.initial > extra:
                extra, side = rep.initial - base.initial, name
        note = ("open orders: initial margin of the worse side filled at its limit price minus "
                f"without ({side or 'neither'} side binds: +{extra:.9g} {base.currency}); a "
                "labelled approximation, Deribit publishes no formula for open orders")
        return dataclasses.replace(base, initial=base.initial + extra,
                                   notes=base.notes + (note,))

    def _compute_reference(self, book, market, *, account=None, collateral=None, orders=None):
        """The row-by-row computation (pandas valuation, one netting loop per symbol): the
        validated reference the compiled path is tested against."""
        from pmnb.book import position_greeks, value_positions

        p = self.params
        kind, inverse, notes = self._checks(book, orders)
        kind = kind()
        currency, keep = self._segregate(book, collateral, notes)
        book = book[keep]
        kind, inverse = kind[keep], inverse[keep]
        n = len(book)
        val = value_positions(book, market) if n else pd.DataFrame(
            {"price": [], "value": []}, index=book.index)
        price = val["price"].to_numpy(dtype=float)
        value = val["value"].to_numpy(dtype=float)
        q = (book["size"] * book["contract_size"]).to_numpy(dtype=float)
        und = book["underlying"].astype(str).to_numpy()
        expired = np.zeros(n, dtype=bool)
        if n:
            T = np.full(n, np.nan)
            has = book["expiry"].notna().to_numpy()
            T[has] = (pd.DatetimeIndex(book["expiry"][has]) - market.timestamp).total_seconds()
            expired = np.nan_to_num(T, nan=1.0) < 0
        if expired.any():
            notes.append(f"{int(expired.sum())} expired position(s) carry no margin (settled at "
                         "settlement_price)")

        ref = np.full(n, np.nan)     # F for options, the coin conversion price for futures
        qcoin = np.zeros(n)
        fut = np.isin(kind, ("future", "perpetual")) & ~expired
        spot = np.array([market.spot(u) for u in und]) if n else np.zeros(0)
        if fut.any():
            conv = price if p.coin_price == "mark" else spot
            ref[fut] = np.where(inverse[fut], conv[fut], spot[fut])
            qcoin[fut] = np.where(inverse[fut], q[fut] / conv[fut], q[fut])
        opt = (kind == "option") & ~expired
        if opt.any():
            for u in set(und[opt]):
                j = np.flatnonzero(opt & (und == u))
                ref[j] = np.atleast_1d(market.forward(u, pd.DatetimeIndex(book["expiry"].iloc[j])))
            qcoin[opt] = q[opt]

        im = np.zeros(n)
        mm = np.zeros(n)
        symbols = book["symbol"].astype(str).to_numpy()
        for sym in dict.fromkeys(symbols[fut | opt]):
            j = np.flatnonzero((symbols == sym) & (fut | opt))
            net = float(qcoin[j].sum())
            i0 = j[0]
            if fut[i0]:
                a, b = self.futures_margin(und[i0], net)
                if not inverse[i0]:
                    a, b = a * spot[i0], b * spot[i0]   # linear: USDC at the index
            else:
                a, b = self.option_margin(str(book["option_type"].iloc[i0]),
                                          float(book["strike"].iloc[i0]), ref[i0], price[i0], net)
            w = np.abs(qcoin[j])
            share = w / w.sum() if w.sum() > 0 else np.full(len(j), 1.0 / len(j))
            im[j] = float(a) * share
            mm[j] = float(b) * share
            if len(j) > 1:
                notes.append(f"{sym}: {len(j)} rows netted to one position")

        balance = wallet_balance(collateral, currency, notes, f"segregated {currency} margin")
        equity = balance + float(value.sum())
        delta: dict[str, float] = {}
        if n:
            g = position_greeks(book, market)["delta_coin"].to_numpy()
            for u in dict.fromkeys(und):
                delta[u] = float(g[und == u].sum())
        usd = usd_per_unit(market, currency, notes)
        positions = pd.DataFrame({"size_coin": qcoin, "reference_price": ref, "mark": price,
                                  "value": value, "initial": im, "maintenance": mm},
                                 index=book.index)
        return MarginReport(self.name, p.rule_version, account, currency, float(im.sum()),
                            float(mm.sum()), equity, usd, positions, delta_total=delta,
                            notes=tuple(notes))


# --- the compiled path ----------------------------------------------------------------------
def _first_order(codes: np.ndarray, k: int) -> np.ndarray:
    """The distinct codes (0..k-1) of ``codes`` in order of first appearance."""
    n = len(codes)
    first = np.full(k, n, dtype=np.int64)
    first[codes[::-1]] = np.arange(n - 1, -1, -1, dtype=np.int64)
    used = np.flatnonzero(first < n)
    return used[np.argsort(first[used], kind="stable")]


class _PreparedStandard(PreparedMargin):
    """Deribit standard margin on per-instrument arrays (see :meth:`DeribitStandard.prepare`).

    Positions are netted per symbol (as the model does); each symbol's forward, surface vol,
    mark and index are looked up once. At a move ``s`` every forward, mark and index is scaled by
    ``f = 1 + s`` (vols sticky-strike), the net option positions are revalued and margined in
    one compiled pass (:func:`pmnb._core._margin.std`), the futures in closed form."""

    compiled = True

    @classmethod
    def build(cls, model, book, market, account, collateral, currency, notes):
        """The prepared account, or None when the book needs the generic path."""
        from pmnb.book import _bad, _expiry_T, value_positions
        from pmnb.margin.prepared import option_table, shock_factor, symbol_groups

        n = len(book)
        if n == 0:
            return None
        rep, inv, consistent = symbol_groups(book)
        if not consistent:
            return None
        sub = book.iloc[rep]
        und_g = sub["underlying"].astype(str).to_numpy()
        if not shock_factor(set(und_g)):
            return None
        self = cls(model, book, market, account=account, collateral=collateral)
        p = model.params
        self.currency = currency
        self.rate = market.rate("USD")
        kind_g = sub["kind"].astype(str).to_numpy()
        inverse_g = (sub["settlement"].astype(str) == "inverse").to_numpy()
        T_g = _expiry_T(sub, market)
        expired_g = np.nan_to_num(T_g, nan=1.0) < 0
        G = len(rep)
        q = book["size"].to_numpy(dtype=float) * book["contract_size"].to_numpy(dtype=float)
        expired = expired_g[inv]
        self.q, self.inv, self.G = q, inv, G
        self.exp_rows = np.flatnonzero(expired)
        self.exp_price = self.exp_value = np.zeros(0)
        if len(self.exp_rows):
            ve = value_positions(book.iloc[self.exp_rows], market)
            self.exp_price = ve["price"].to_numpy(dtype=float)
            self.exp_value = ve["value"].to_numpy(dtype=float)
            notes.append(f"{len(self.exp_rows)} expired position(s) carry no margin (settled at "
                         "settlement_price)")
        # options: one row of the instrument table per symbol
        self.og = np.flatnonzero((kind_g == "option") & ~expired_g)
        net = np.bincount(inv, weights=q, minlength=G)
        self.inst = np.zeros((10, 0))
        self.lim0 = np.zeros(0, np.uint8)
        if len(self.og):
            inst, lim0, F, sigma, Tt = option_table(sub.iloc[self.og], market, T_g[self.og])
            inst[4] = net[self.og]
            self.inst, self.lim0 = np.ascontiguousarray(inst), lim0
            self.opt_F = F
            self.opt_T = Tt
            self.opt_sigma = sigma
            self.opt_K = inst[8]
            self.opt_w = inst[2]
        # futures and perpetuals: closed forms on per-symbol sums
        fg = np.flatnonzero(np.isin(kind_g, ("future", "perpetual")) & ~expired_g)
        self.fg = fg
        spot_g = np.full(G, np.nan)
        for u in dict.fromkeys(und_g):
            spot_g[und_g == u] = market.spot(u)
        if len(fg):
            rows = np.flatnonzero(np.isin(inv, fg))
            entry = book["entry_price"].to_numpy(dtype=float)
            _bad("entry_price", book.iloc[rows], np.isnan(entry[rows]),
                 "> 0 on futures and perpetuals")
            price0 = value_positions(sub.iloc[fg], market)["price"].to_numpy(dtype=float)
            rates = [model.rates(u) for u in und_g[fg]]
            self.f_rates = np.array([[r.im_base, r.im_slope, r.mm_base, r.mm_slope]
                                     for r in rates]).T.copy()
            inv_f = inverse_g[fg]
            spot_f = spot_g[fg]
            self.f_price0, self.f_spot0, self.f_inverse = price0, spot_f, inv_f
            self.f_conv0 = np.where(inv_f, price0 if p.coin_price == "mark" else spot_f, spot_f)
            where = np.full(G, -1)
            where[fg] = np.arange(len(fg))
            fr = where[inv[rows]]
            qr, er = q[rows], entry[rows]
            self.f_rows, self.f_grp = rows, fr
            self.f_S = np.bincount(fr, weights=qr, minlength=len(fg))
            with np.errstate(divide="ignore", invalid="ignore"):
                self.f_A = np.bincount(fr, weights=np.where(inv_f[fr], qr / er, 0.0),
                                       minlength=len(fg))
            self.f_E = np.bincount(fr, weights=np.where(inv_f[fr], 0.0, qr * er),
                                   minlength=len(fg))
            self.f_entry = er
        live = np.concatenate([self.og, fg])
        counts = np.bincount(inv, minlength=G)
        syms = sub["symbol"].astype(str).to_numpy()
        for g in np.sort(live):
            if counts[g] > 1:
                notes.append(f"{syms[g]}: {counts[g]} rows netted to one position")
        self.live_g = np.zeros(G, bool)
        self.live_g[live] = True
        self.counts = counts
        # each row's share of its symbol's net requirement: |q| / sum |q| (the price converting
        # an inverse future's USD size to coin cancels), equal shares when the net is zero
        aq = np.abs(q)
        wsum = np.bincount(inv, weights=aq, minlength=G)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.share = np.where(wsum[inv] > 0, aq / wsum[inv], 1.0 / counts[inv])
        self.share[~self.live_g[inv]] = 0.0
        self.kind_g, self.inverse_g, self.spot_g = kind_g, inverse_g, spot_g
        balance = wallet_balance(collateral, currency, notes, f"segregated {currency} margin")
        self.balance = balance
        self.const_equity = balance + float(self.exp_value.sum())
        self.notes = notes
        # underlyings in order of first appearance (delta_total)
        uc = book["underlying"]
        if isinstance(uc.dtype, pd.CategoricalDtype) and not uc.isna().any():
            ucodes, cats = np.asarray(uc.array.codes, dtype=np.int64), uc.cat.categories
        else:
            ucodes, cats = pd.factorize(uc.astype(str))
            ucodes = ucodes.astype(np.int64)
        order = _first_order(ucodes, len(cats))
        self.u_codes, self.u_order = ucodes, order
        self.u_names = [str(cats[c]) for c in order]
        self.currency_moves = currency.upper() not in SHOCK_STABLE
        return self

    # --- numbers only -----------------------------------------------------------------------
    def _futures(self, f: np.ndarray):
        """(value, im, mm) of the futures at factors ``f`` (arrays of len(f))."""
        if not len(self.fg):
            z = np.zeros(len(f))
            return z, z, z
        fc = f[:, None]
        inv_f = self.f_inverse
        conv = self.f_conv0 * fc
        net = np.where(inv_f, self.f_S / conv, self.f_S)
        Q = np.abs(net)
        imb, ims, mmb, mms = self.f_rates
        scale = np.where(inv_f, 1.0, self.f_spot0 * fc)
        im = Q * (imb + Q * ims) * scale
        mm = Q * (mmb + Q * mms) * scale
        with np.errstate(divide="ignore", invalid="ignore"):
            val = np.where(inv_f, self.f_A - self.f_S / (self.f_price0 * fc),
                           self.f_S * (self.f_price0 * fc) - self.f_E)
        return val.sum(axis=1), im.sum(axis=1), mm.sum(axis=1)

    def _options(self, f: np.ndarray, per_instrument: bool = False):
        from pmnb._core import _margin

        p = self.model.params
        out = np.empty((len(f), 3))
        m = len(self.og)
        v = im = mm = None
        if per_instrument:
            v, im, mm = np.empty(m), np.empty(m), np.empty(m)
        _margin.std(np.ascontiguousarray(f, dtype=float), self.inst, self.lim0, self.rate,
                    p.option_im_addon, p.option_im_floor, p.option_mm_addon,
                    p.long_options == "mark", out, v, im, mm,
                    self.kernel_threads(m * len(f)))
        return out, v, im, mm

    def maintenance_gap(self, spot_shocks):
        """``equity - maintenance`` at each move (one compiled pass per move).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...                      "symbol": ["BTC-27MAR26-90000-P"], "size": [-10.0]})
        >>> coll = pd.DataFrame({"account": ["a"], "asset": ["BTC"], "balance": [5.0]})
        >>> prep = pmnb.margin.prepare(book, m, "deribit.standard", collateral=coll)
        >>> prep.maintenance_gap([0.0, -0.3]).round(4).tolist()
        [3.2553, -1.8833]
        """
        from pmnb.margin.prepared import _shocks

        st = self.evaluate_many(_shocks(spot_shocks))
        return st.equity - st.maintenance

    def evaluate_many(self, spot_shocks) -> MarginState:
        """:class:`MarginState` of arrays, one entry per move (validated moves > -1)."""
        f = 1.0 + np.asarray(spot_shocks, dtype=float)
        o = self._options(f)[0]
        fv, fi, fm = self._futures(f)
        return MarginState(self.const_equity + o[:, 0] + fv, o[:, 1] + fi, o[:, 2] + fm)

    def evaluate(self, spot_shock: float = 0.0) -> MarginState:
        """Equity, initial and maintenance margin at the move ``spot_shock`` (floats).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...                      "symbol": ["BTC-27MAR26-90000-P"], "size": [-10.0]})
        >>> prep = pmnb.margin.prepare(book, m, "deribit.standard")
        >>> eq, im, mm = prep.evaluate(0.0)
        >>> [round(x, 6) for x in (eq, im, mm)]
        [-0.497353, 1.497353, 1.247353]
        >>> mark = -eq / 10      # 10 short 90k puts on F = 100k: IM = 0.10 + m, MM = 0.075 + m
        >>> abs(im - 10 * (0.10 + mark)) < 1e-12, abs(mm - 10 * (0.075 + mark)) < 1e-12
        (True, True)
        """
        from pmnb.margin.prepared import _shock

        st = self.evaluate_many(np.array([_shock(spot_shock)]))
        return MarginState(float(st.equity[0]), float(st.initial[0]), float(st.maintenance[0]))

    # --- the report -------------------------------------------------------------------------
    def compute(self, spot_shock: float = 0.0) -> MarginReport:
        """The full report at the move ``spot_shock`` (as ``model.compute`` on
        ``market.shocked(spot_shock)``).

        Examples
        --------
        >>> import pandas as pd, pmnb
        >>> m = pmnb.Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 100_000.0},
        ...                           vols={"BTC": 0.5})
        >>> book = pd.DataFrame({"account": ["a"], "venue": ["deribit"],
        ...                      "symbol": ["BTC-27MAR26-90000-P"], "size": [-10.0]})
        >>> prep = pmnb.margin.prepare(book, m, "deribit.standard")
        >>> prep.compute(-0.1).positions[["reference_price", "initial"]].round(4).values.tolist()
        [[90000.0, 2.4603]]
        """
        from pmnb import pricing
        from pmnb.margin.prepared import _shock

        s = _shock(spot_shock)
        f = 1.0 + s
        p = self.model.params
        notes = list(self.notes)
        n, G, inv, q = len(self.book), self.G, self.inv, self.q
        ref_g = np.full(G, np.nan)     # F for options, the coin conversion price for futures
        price_g = np.full(G, np.nan)   # mark per contract
        im_g = np.zeros(G)
        mm_g = np.zeros(G)
        qf_g = np.zeros(G)             # size_coin per unit of q
        dd_g = np.zeros(G)             # delta_coin per unit of q
        og, fg = self.og, self.fg
        if len(og):
            _, v, im, mm = self._options(np.array([f]), per_instrument=True)
            Fs = self.opt_F * f
            ref_g[og], price_g[og], im_g[og], mm_g[og] = Fs, v, im, mm
            qf_g[og] = 1.0
            dd_g[og] = pricing.greeks(Fs, self.opt_K, self.opt_T, self.opt_sigma, self.rate,
                                      option_type=self.opt_w, settlement="inverse",
                                      greeks=("delta",))["delta"]
        if len(fg):
            inv_f = self.f_inverse
            price = self.f_price0 * f
            conv = self.f_conv0 * f
            spot = self.f_spot0 * f
            ref_g[fg] = np.where(inv_f, conv, spot)
            price_g[fg] = price
            qf_g[fg] = np.where(inv_f, 1.0 / conv, 1.0)
            dd_g[fg] = np.where(inv_f, 1.0 / price, 1.0)
            net = np.where(inv_f, self.f_S / conv, self.f_S)
            Q = np.abs(net)
            imb, ims, mmb, mms = self.f_rates
            scale = np.where(inv_f, 1.0, spot)
            im_g[fg] = Q * (imb + Q * ims) * scale
            mm_g[fg] = Q * (mmb + Q * mms) * scale
        cols = np.empty((6, n))
        size_coin, ref, mark, value, im_r, mm_r = cols
        np.multiply(q, qf_g.take(inv), out=size_coin)
        ref_g.take(inv, out=ref)
        price_g.take(inv, out=mark)
        np.multiply(q, mark, out=value)
        np.multiply(im_g.take(inv), self.share, out=im_r)
        np.multiply(mm_g.take(inv), self.share, out=mm_r)
        delta = q * dd_g.take(inv)
        if len(fg):
            rows, fr = self.f_rows, self.f_grp
            qr, er, pr = q[rows], self.f_entry, price[fr]
            value[rows] = np.where(self.f_inverse[fr], qr * (1.0 / er - 1.0 / pr),
                                   qr * (pr - er))
        if len(self.exp_rows):
            mark[self.exp_rows] = self.exp_price
            value[self.exp_rows] = self.exp_value
        equity = self.balance + float(value.sum())
        dsum = np.bincount(self.u_codes, weights=delta, minlength=int(self.u_codes.max()) + 1)
        delta_total = {u: float(dsum[c]) for u, c in zip(self.u_names, self.u_order)}
        usd = usd_per_unit(self.market, self.currency, notes)
        if self.currency in self.market.spots and self.currency_moves:
            usd = usd * f
        positions = pd.DataFrame(cols.T, index=self.book.index, copy=False,
                                 columns=["size_coin", "reference_price", "mark", "value",
                                          "initial", "maintenance"])
        return MarginReport(self.model.name, p.rule_version, self.account, self.currency,
                            float(im_r.sum()), float(mm_r.sum()), equity, float(usd), positions,
                            delta_total=delta_total, notes=tuple(notes))
