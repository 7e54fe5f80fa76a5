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

Open orders are not margined: no Deribit rule for orders was found (see reference/margin.md
§1.2); an ``orders`` frame with rows raises.

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
from pmnb.margin import MarginModel, MarginParams, MarginReport, register, usd_per_unit

__all__ = ["DEFAULT_FUTURES", "DeribitStandard", "DeribitStandardParams", "FuturesRates",
           "futures_margin", "short_option_margin"]


@dataclasses.dataclass(frozen=True)
class FuturesRates:
    """Size-dependent margin rates of one underlying: ``rate = base + |Q| × slope`` (Q in coin)."""

    im_base: float
    im_slope: float
    mm_base: float
    mm_slope: float


#: Deribit "Linear Perpetual" page: BTC and SOL (the only underlyings it documents).
DEFAULT_FUTURES: Mapping[str, FuturesRates] = {
    "BTC": FuturesRates(im_base=0.02, im_slope=0.00005, mm_base=0.01, mm_slope=0.00005),
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
                   "(futures rates); https://doc.tslab.pro/tslab/eng/data-providers/"
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
        >>> try:
        ...     DeribitStandard().rates("ETH")
        ... except ValueError as e:
        ...     print(str(e)[:52])
        deribit.standard: no futures margin rates for 'ETH'
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
    def compute(self, book, market, *, account=None, collateral=None, orders=None):
        from pmnb.book import position_greeks, value_positions

        p = self.params
        _choice("coin_price", p.coin_price, ("mark", "index"))
        _choice("long_options", p.long_options, ("zero", "mark"))
        if orders is not None and len(orders):
            raise ValidationError(
                "orders: deribit.standard does not margin open orders (no Deribit rule for "
                "orders is documented in the sources; supported: positions of kinds "
                f"{', '.join(self.kinds)}); pass orders=None", field="orders")
        kind = book["kind"].astype(str).to_numpy()
        inverse = (book["settlement"].astype(str) == "inverse").to_numpy()
        lin_opt = (kind == "option") & ~inverse
        if lin_opt.any():
            i = int(np.flatnonzero(lin_opt)[0])
            raise ValidationError(
                f"deribit.standard: position {book['position_id'].iloc[i]!r} (row "
                f"{book.index[i]!r}) is a linear (USDC) option; Deribit's constants for them "
                "were not found; this model margins: inverse options, inverse and linear "
                "futures and perpetuals", field="settlement", row=book.index[i])
        notes: list[str] = []
        venues = sorted(set(book["venue"].astype(str)) - {"deribit"})
        if venues:
            notes.append(f"positions of {venues} margined with Deribit's rules")
        currency, keep, cur_all = self.margin_currency(book, collateral)
        if not keep.all():
            others = sorted(set(cur_all[~keep].tolist()))
            notes.append(f"positions margined in {others} left out (segregated: one report per "
                         "currency)")
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

        balance = 0.0
        if collateral is not None and len(collateral):
            assets = collateral["asset"].astype(str)
            balance = float(collateral.loc[(assets == currency).to_numpy(), "balance"].sum())
            others = sorted(set(assets) - {currency})
            if others:
                notes.append(f"collateral in {others} not counted (segregated {currency} margin)")
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
