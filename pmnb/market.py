"""Market snapshots: spots, forward curves, rates, funding, marks and vol surfaces at one instant.

A :class:`Market` is an immutable value: everything a valuation needs, each field with its
:class:`Provenance` (where it came from and when it was observed). Nothing here fetches data; the
constructors take shipped snapshots (:meth:`Market.from_deribit`) or plain dicts
(:meth:`Market.from_dict`).

Forward curves interpolate **log-forwards linearly in time** between quoted expiries, anchored at
the spot at T = 0: :math:`\\ln F(T) = \\ln F_i + (T - T_i)/(T_{i+1} - T_i)\\,(\\ln F_{i+1} - \\ln F_i)`,
i.e. a piecewise-constant annualised carry between quotes (the usual convention for futures
curves; Hull, *Options, Futures and Other Derivatives*, ch. 5, cost-of-carry). Beyond the last
quote the last segment's carry is kept (flat carry extrapolation).

Time is ACT/365 in seconds from the market timestamp (crypto expiries are at 08:00 UTC and
dailies are common, so whole days are not enough).

Examples
--------
>>> import pmnb
>>> m = pmnb.Market.from_dict("2025-12-31T09:00Z", spots={"BTC": 88_000.0},
...                           forwards={"BTC": {"2026-03-27T08:00Z": 89_500.0}},
...                           vols={"BTC": 0.45})
>>> round(m.forward("BTC", "2026-03-27T08:00Z"), 2)
89500.0
>>> round(float(m.vol("BTC", 95_000.0, "2026-03-27T08:00Z")), 2)
0.45
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pmnb.errors import StaleDataError, ValidationError

__all__ = ["FlatVol", "ForwardCurve", "Market", "Provenance", "VolSurface", "year_fraction"]

_YEAR_SECONDS = 365.0 * 86400.0


def _utc(ts: Any, field: str = "timestamp") -> pd.Timestamp:
    try:
        t = pd.Timestamp(ts)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field}: cannot read {ts!r} as a timestamp ({exc}); accepted: an "
                              "ISO-8601 string, datetime or pandas Timestamp, UTC", field=field
                              ) from None
    if t is pd.NaT:
        raise ValidationError(f"{field}: got NaT; accepted: a UTC timestamp", field=field)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


#: Funding histories shipped in :mod:`pmnb.datasets`: (venue, symbol, underlying).
_SHIPPED_FUNDING = (("deribit", "BTC-PERPETUAL", "BTC"), ("binance", "BTCUSDT", "BTC"))


def year_fraction(start: Any, end: Any) -> np.ndarray | float:
    """ACT/365 year fraction from ``start`` to ``end`` in seconds (naive times are UTC).

    Examples
    --------
    >>> year_fraction("2025-12-31T08:00Z", "2026-01-01T08:00Z") * 365
    1.0
    """
    s = _utc(start, "start")
    if isinstance(end, pd.DatetimeIndex) and end.tz is not None:
        # fast path (hot in valuation): integer nanoseconds, NaT stays NaN
        ns = end.as_unit("ns").asi8
        out = (ns - s.as_unit("ns").value) / 1e9 / _YEAR_SECONDS
        return np.where(ns == np.iinfo(np.int64).min, np.nan, out)
    e = pd.to_datetime(end, utc=True)
    if isinstance(e, pd.Timestamp):
        return (e - s).total_seconds() / _YEAR_SECONDS
    delta = (pd.DatetimeIndex(e) - s).total_seconds().to_numpy()
    return delta / _YEAR_SECONDS


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a market field came from and when it was observed.

    Examples
    --------
    >>> p = Provenance("deribit index", pd.Timestamp("2025-12-31T09:18:28Z"))
    >>> p.age(pd.Timestamp("2025-12-31T09:28:28Z"))
    Timedelta('0 days 00:10:00')
    """

    source: str
    as_of: pd.Timestamp
    note: str = ""

    def age(self, now: pd.Timestamp) -> pd.Timedelta:
        """Age of the value at ``now``."""
        return now - self.as_of


class VolSurface(Protocol):
    """What a Market needs from a vol surface: Black implied vols at strikes and year fractions."""

    def implied_vol(self, K: Any, T: Any) -> np.ndarray:  # pragma: no cover - protocol
        ...


@dataclasses.dataclass(frozen=True)
class FlatVol:
    """The same implied volatility at every strike and expiry (annualised decimal).

    Examples
    --------
    >>> FlatVol(0.6).implied_vol([90.0, 110.0], 0.5)
    array([0.6, 0.6])
    """

    sigma: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sigma) and 0 <= self.sigma <= 100):
            raise ValidationError(f"sigma: got {self.sigma!r}; accepted: finite, 0 <= sigma <= 100",
                                  field="sigma")

    def implied_vol(self, K: Any, T: Any) -> np.ndarray:
        """``sigma`` broadcast to the shape of ``K`` and ``T``."""
        return np.broadcast_to(np.float64(self.sigma), np.broadcast_shapes(np.shape(K),
                                                                           np.shape(T))).copy()


@dataclasses.dataclass(frozen=True)
class ForwardCurve:
    """Forward prices of one underlying: spot at T = 0 and quoted expiries, log-linear in T.

    Parameters
    ----------
    underlying : str
    spot : float
        Index/spot price at T = 0 (USD).
    T : array_like
        Year fractions of the quoted expiries (> 0, strictly increasing after sorting).
    forwards : array_like
        Forward prices at those expiries (USD, > 0).

    Examples
    --------
    >>> c = ForwardCurve("BTC", 100.0, [0.5, 1.0], [101.0, 103.0])
    >>> c.forward([0.0, 0.5, 0.75, 2.0]).round(4)
    array([100.    , 101.    , 101.9951, 107.1196])
    >>> round(float(c.carry(1.0)), 6)  # annualised log-basis ln(F/S)/T
    0.029559
    """

    underlying: str
    spot: float
    T: np.ndarray
    forwards: np.ndarray

    def __post_init__(self) -> None:
        T = np.atleast_1d(np.asarray(self.T, dtype=np.float64))
        F = np.atleast_1d(np.asarray(self.forwards, dtype=np.float64))
        if T.shape != F.shape:
            raise ValidationError(f"forwards: {len(F)} values for {len(T)} expiries", field="forwards")
        if not (np.isfinite(self.spot) and self.spot > 0):
            raise ValidationError(f"spot: {self.underlying} has {self.spot!r}; accepted: finite, > 0",
                                  field="spot")
        order = np.argsort(T, kind="stable")
        T, F = T[order], F[order]
        for name, arr, ok in (("T", T, np.isfinite(T) & (T > 0)),
                              ("forwards", F, np.isfinite(F) & (F > 0))):
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise ValidationError.for_field(f"{name}[{self.underlying}]", row=i,
                                                value=float(arr[i]), accepted="finite, > 0")
        if len(T) > 1 and not (np.diff(T) > 0).all():
            raise ValidationError(f"T: {self.underlying} has two forwards for the same expiry; "
                                  "accepted: one forward per expiry", field="T")
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "forwards", F)
        object.__setattr__(self, "spot", float(self.spot))

    def forward(self, T: Any) -> np.ndarray:
        """Forward at year fractions ``T`` (≥ 0), log-linear between quotes, flat carry beyond."""
        t = np.asarray(T, dtype=np.float64)
        if not (np.isfinite(t) & (t >= 0)).all():
            raise ValidationError(f"T: forward of {self.underlying} asked at {t[~(t >= 0)][:3]}; "
                                  "accepted: finite, >= 0", field="T")
        knots_t = np.concatenate(([0.0], self.T))
        knots_l = np.log(np.concatenate(([self.spot], self.forwards)))
        logf = np.interp(t, knots_t, knots_l)
        if len(self.T):
            slope = (knots_l[-1] - knots_l[-2]) / (knots_t[-1] - knots_t[-2])
            beyond = t > knots_t[-1]
            logf = np.where(beyond, knots_l[-1] + slope * (t - knots_t[-1]), logf)
        return np.where(t == 0, self.spot, np.exp(logf))

    def carry(self, T: Any) -> np.ndarray:
        """Annualised log-basis ``ln(F(T)/S)/T`` (the implied carry / funding of the curve)."""
        t = np.asarray(T, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.log(self.forward(t) / self.spot) / t
        if len(self.T):
            first = np.log(self.forwards[0] / self.spot) / self.T[0]
            c = np.where(t > 0, c, first)
        return c


@dataclasses.dataclass(frozen=True)
class _ShiftedVol:
    """A surface whose vols are shifted in parallel by ``shift`` at fixed strike (floored at 0)."""

    base: Any
    shift: float

    def implied_vol(self, K: Any, T: Any) -> np.ndarray:
        return np.maximum(np.asarray(self.base.implied_vol(K, T), dtype=float) + self.shift, 0.0)


def _freeze(d: Mapping | None) -> Mapping:
    return MappingProxyType(dict(d or {}))


@dataclasses.dataclass(frozen=True)
class Market:
    """An immutable market snapshot at ``timestamp`` (UTC).

    Attributes
    ----------
    timestamp : pandas.Timestamp
    spots : mapping underlying -> float
        Index / spot prices in USD.
    curves : mapping underlying -> ForwardCurve
    rates : mapping currency -> float
        Continuously compounded discount rates (annualised decimal); a missing currency is 0
        only if ``default_rate`` says so (it is 0.0 by default, as Deribit's own greeks use).
    vols : mapping underlying -> VolSurface
    marks : mapping "venue:symbol" -> float
        Venue mark prices (futures, perpetuals, spot) in the instrument's quote currency.
    funding : mapping "venue:symbol" -> float
        Current funding rate per funding interval (fraction), with ``funding_hours`` beside it.
    provenance : mapping key -> Provenance
        Keys ``spot:BTC``, ``forward:BTC``, ``vol:BTC``, ``rate:USD``, ``mark:binance:BTCUSDT``,
        ``funding:binance:BTCUSDT``.
    """

    timestamp: pd.Timestamp
    spots: Mapping[str, float] = dataclasses.field(default_factory=dict)
    curves: Mapping[str, ForwardCurve] = dataclasses.field(default_factory=dict)
    rates: Mapping[str, float] = dataclasses.field(default_factory=dict)
    vols: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    marks: Mapping[str, float] = dataclasses.field(default_factory=dict)
    funding: Mapping[str, float] = dataclasses.field(default_factory=dict)
    funding_hours: Mapping[str, float] = dataclasses.field(default_factory=dict)
    provenance: Mapping[str, Provenance] = dataclasses.field(default_factory=dict)
    default_rate: float | None = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "timestamp", _utc(self.timestamp))
        for name in ("spots", "curves", "rates", "vols", "marks", "funding", "funding_hours",
                     "provenance"):
            object.__setattr__(self, name, _freeze(getattr(self, name)))
        for u, s in self.spots.items():
            if not (np.isfinite(s) and s > 0):
                raise ValidationError(f"spots: {u} has {s!r}; accepted: finite, > 0", field="spots")

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, timestamp: Any, *, spots: Mapping[str, float],
                  forwards: Mapping[str, Mapping[Any, float]] | None = None,
                  rates: Mapping[str, float] | None = None,
                  vols: Mapping[str, Any] | None = None,
                  marks: Mapping[str, float] | None = None,
                  funding: Mapping[str, tuple[float, float]] | None = None,
                  source: str = "user", as_of: Any = None) -> "Market":
        """Build a Market from plain mappings.

        Parameters
        ----------
        timestamp : timestamp-like
            Valuation time (UTC).
        spots : mapping
            ``{"BTC": 88_000.0, ...}``.
        forwards : mapping, optional
            ``{"BTC": {expiry: forward, ...}}``; without it the curve is flat at the spot.
        rates : mapping, optional
            ``{"USD": 0.04}``.
        vols : mapping, optional
            ``{"BTC": 0.5}`` (a flat vol) or an object with ``implied_vol(K, T)``.
        marks : mapping, optional
            ``{"binance:BTCUSDT": 88_010.0}``.
        funding : mapping, optional
            ``{"binance:BTCUSDT": (0.0001, 8)}``: rate per interval and the interval in hours.
        source, as_of
            Provenance recorded for every field (``as_of`` defaults to ``timestamp``).

        Examples
        --------
        >>> m = Market.from_dict("2026-01-01", spots={"ETH": 3000.0}, rates={"USD": 0.04})
        >>> m.forward("ETH", "2026-07-02"), m.rate("USD")
        (3000.0, 0.04)
        """
        ts = _utc(timestamp)
        seen = _utc(as_of, "as_of") if as_of is not None else ts
        prov: dict[str, Provenance] = {}
        curves = {}
        for u, s in spots.items():
            prov[f"spot:{u}"] = Provenance(source, seen)
            quotes = (forwards or {}).get(u, {})
            exp = [_utc(e, f"forwards[{u}]") for e in quotes]
            T = np.array([(e - ts).total_seconds() / _YEAR_SECONDS for e in exp])
            curves[u] = ForwardCurve(u, s, T, np.array(list(quotes.values()), dtype=float))
            prov[f"forward:{u}"] = Provenance(source, seen, "" if quotes else "flat at spot")
        for c in rates or {}:
            prov[f"rate:{c}"] = Provenance(source, seen)
        vol_objs = {}
        for u, v in (vols or {}).items():
            vol_objs[u] = FlatVol(float(v)) if np.isscalar(v) else v
            prov[f"vol:{u}"] = Provenance(source, seen)
        for k in marks or {}:
            prov[f"mark:{k}"] = Provenance(source, seen)
        fr, fh = {}, {}
        for k, (rate, hours) in (funding or {}).items():
            fr[k], fh[k] = float(rate), float(hours)
            prov[f"funding:{k}"] = Provenance(source, seen)
        return cls(ts, spots=dict(spots), curves=curves, rates=dict(rates or {}), vols=vol_objs,
                   marks=dict(marks or {}), funding=fr, funding_hours=fh, provenance=prov)

    @classmethod
    def from_deribit(cls, snapshot: str = "2025-12-31", *, currencies: tuple[str, ...] | None = None,
                     fit_vols: bool = True) -> "Market":
        """The shipped Deribit snapshot as a Market (no network).

        Spots are Deribit's index; the forward curve uses each expiry's option ``underlying_price``
        (futures marks and Deribit's synthetic forwards, from the shipped forwards file, or the
        median per expiry of the option chain for the 2020 snapshots); perpetual marks come from
        the nearest 1-minute trade. With ``fit_vols`` each currency gets an SVI surface fitted to
        the chain (:mod:`pmnb.vol`). Funding rates are the last settled rate before the snapshot
        from the shipped histories (Deribit BTC-PERPETUAL hourly, 2019-04 to 2021-02; Binance
        BTCUSDT 8-hourly, 2019-09 to 2026-02), with that settlement time as their provenance, so
        their age shows; a history that does not reach the snapshot gives no rate.

        Examples
        --------
        >>> m = Market.from_deribit("2025-12-31", fit_vols=False)
        >>> sorted(m.spots), m.timestamp
        (['BTC', 'ETH'], Timestamp('2025-12-31 09:18:28+0000', tz='UTC'))
        >>> round(m.forward("BTC", "2026-03-27T08:00Z"), 2)
        89486.83
        >>> m.funding_hours["binance:BTCUSDT"], str(m.age("funding:binance:BTCUSDT"))
        (8.0, '0 days 01:18:28')
        """
        from pmnb import datasets  # data layer: raw rows, no dependency back on market

        chain = datasets.load_deribit_chain(snapshot)
        ts = _utc(chain["snapshot"].iloc[0])
        cur = tuple(currencies) if currencies else tuple(sorted(chain["currency"].astype(str).unique()))
        unknown = set(cur) - set(chain["currency"].astype(str))
        if unknown:
            raise ValidationError(f"currencies: {sorted(unknown)} not in the {snapshot} snapshot; "
                                  f"accepted: {sorted(set(chain['currency'].astype(str)))}",
                                  field="currencies")
        try:
            fwd = datasets.load_deribit_forwards(snapshot)
        except ValidationError:
            fwd = None
        src = f"deribit snapshot {snapshot}"
        spots, curves, marks, prov, vols = {}, {}, {}, {}, {}
        for c in cur:
            rows = chain[chain["currency"].astype(str) == c]
            spots[c] = float(rows["index_price"].median())
            prov[f"spot:{c}"] = Provenance(f"{src}: median index_price", ts)
            if fwd is not None:
                f = fwd[(fwd["currency"].astype(str) == c) & fwd["expiry"].notna()]
                exp, F = f["expiry"], f["forward_from_option_underlying"].to_numpy()
                note = "futures marks and synthetic forwards (option underlying_price)"
                perp = fwd[(fwd["currency"].astype(str) == c) & (fwd["kind"].astype(str) == "perpetual")]
                for _, p in perp.iterrows():
                    marks[f"deribit:{p['instrument_name']}"] = float(p["futures_last_trade_1m"])
                    prov[f"mark:deribit:{p['instrument_name']}"] = Provenance(
                        f"{src}: nearest 1-minute trade", ts)
            else:
                g = rows.groupby("expiry")["underlying_price"].median()
                exp, F = g.index.to_series(), g.to_numpy()
                note = "median option underlying_price per expiry"
            T = (pd.DatetimeIndex(exp) - ts).total_seconds().to_numpy() / _YEAR_SECONDS
            curves[c] = ForwardCurve(c, spots[c], T, F)
            prov[f"forward:{c}"] = Provenance(f"{src}: {note}", ts)
            if fit_vols:
                from pmnb.vol import fit_svi_surface  # same layer as market (pricing <- vol)

                vols[c] = fit_svi_surface(chain, currency=c)[0]
                prov[f"vol:{c}"] = Provenance(f"{src}: SVI fit per expiry", ts)
        funding, funding_hours = {}, {}
        for venue, symbol, coin in _SHIPPED_FUNDING:
            if coin not in cur:
                continue
            hist = datasets.load_funding(venue)
            hist = hist[(hist["symbol"].astype(str) == symbol) & (hist["time"] <= ts)]
            if not len(hist):
                continue
            last = hist.iloc[-1]
            hours = float(last["interval_hours"])
            if ts - last["time"] > pd.Timedelta(hours=2 * hours):
                continue        # the shipped history does not reach this snapshot
            key = f"{venue}:{symbol}"
            funding[key], funding_hours[key] = float(last["funding_rate"]), hours
            prov[f"funding:{key}"] = Provenance(
                f"{venue} funding history (shipped): last settled rate before the snapshot",
                last["time"])
        return cls(ts, spots=spots, curves=curves, rates={}, vols=vols, marks=marks,
                   funding=funding, funding_hours=funding_hours, provenance=prov)

    # --- access ------------------------------------------------------------------------------
    def _missing(self, what: str, key: str, have: Mapping) -> ValidationError:
        return ValidationError(f"market: no {what} for {key!r} at {self.timestamp}; the market has "
                               f"{sorted(have) or 'none'}", field=what)

    def T(self, expiry: Any) -> np.ndarray | float:
        """Year fraction from the market timestamp to ``expiry`` (ACT/365 seconds).

        Examples
        --------
        >>> Market.from_dict("2026-01-01T08:00Z", spots={"BTC": 1.0}).T("2026-01-02T08:00Z") * 365
        1.0
        """
        return year_fraction(self.timestamp, expiry)

    def spot(self, underlying: str) -> float:
        """Spot / index price of ``underlying``.

        Examples
        --------
        >>> Market.from_dict("2026-01-01", spots={"BTC": 90_000.0}).spot("BTC")
        90000.0
        """
        if underlying not in self.spots:
            raise self._missing("spot", underlying, self.spots)
        return float(self.spots[underlying])

    def forward(self, underlying: str, expiry: Any) -> Any:
        """Forward of ``underlying`` for ``expiry`` (a timestamp or an array of them).

        Examples
        --------
        >>> m = Market.from_dict("2026-01-01", spots={"BTC": 100.0},
        ...                      forwards={"BTC": {"2027-01-01": 105.0}})
        >>> round(m.forward("BTC", "2026-07-02T12:00Z"), 4)
        102.4695
        """
        if underlying not in self.curves:
            raise self._missing("forward", underlying, self.curves)
        T = self.T(expiry)
        if np.any(np.asarray(T) < 0):
            raise ValidationError(f"expiry: {expiry!r} is before the market time {self.timestamp}",
                                  field="expiry")
        F = self.curves[underlying].forward(T)
        return float(F) if np.ndim(F) == 0 else F

    def vol(self, underlying: str, K: Any, expiry: Any) -> np.ndarray:
        """Implied vol of ``underlying`` at strikes ``K`` and ``expiry`` from its surface.

        Examples
        --------
        >>> Market.from_dict("2026-01-01", spots={"BTC": 1.0}, vols={"BTC": 0.5}).vol(
        ...     "BTC", [1.0, 2.0], "2026-02-01")
        array([0.5, 0.5])
        """
        if underlying not in self.vols:
            raise self._missing("vol", underlying, self.vols)
        return np.asarray(self.vols[underlying].implied_vol(K, self.T(expiry)), dtype=np.float64)

    def rate(self, currency: str = "USD") -> float:
        """Discount rate of ``currency`` (``default_rate`` when absent, unless that is None).

        Examples
        --------
        >>> Market.from_dict("2026-01-01", spots={"BTC": 1.0}).rate("USD")
        0.0
        """
        if currency in self.rates:
            return float(self.rates[currency])
        if self.default_rate is None:
            raise self._missing("rate", currency, self.rates)
        return float(self.default_rate)

    def mark(self, venue: str, symbol: str) -> float:
        """Venue mark price of ``symbol`` (its provenance says whether it was substituted).

        Examples
        --------
        >>> Market.from_dict("2026-01-01", spots={"BTC": 1.0},
        ...                  marks={"binance:BTCUSDT": 90_000.0}).mark("binance", "BTCUSDT")
        90000.0
        """
        key = f"{venue}:{symbol}"
        if key not in self.marks:
            raise self._missing("mark", key, self.marks)
        return float(self.marks[key])

    def with_marks(self, marks: Mapping[str, float], *, source: str, note: str = "") -> "Market":
        """A copy with extra venue marks and their provenance (e.g. a documented substitution).

        Examples
        --------
        >>> m = Market.from_dict("2026-01-01", spots={"BTC": 90_000.0})
        >>> m2 = m.with_marks({"binance:BTCUSDT": 90_000.0}, source="deribit index",
        ...                   note="substituted: no Binance mark in the snapshot")
        >>> m2.provenance["mark:binance:BTCUSDT"].note
        'substituted: no Binance mark in the snapshot'
        """
        prov = dict(self.provenance)
        for k in marks:
            prov[f"mark:{k}"] = Provenance(source, self.timestamp, note)
        return dataclasses.replace(self, marks={**self.marks, **marks}, provenance=prov)

    def shocked(self, spot_shock: float = 0.0, vol_shock: float = 0.0, *,
                stable: tuple[str, ...] = ("USD", "USDC", "USDT", "DAI")) -> "Market":
        """A copy where every non-stable price moves by ``spot_shock`` (relative) and every
        implied vol by ``vol_shock`` (absolute, sticky strike, floored at 0).

        Spots, whole forward curves and venue marks scale by ``1 + spot_shock`` together (one
        common move, as in :func:`pmnb.book.scenario_grid`); stablecoin spots stay put. The
        provenance notes say the market is shocked.

        Examples
        --------
        >>> m = Market.from_dict("2026-01-01", spots={"BTC": 100.0, "USDC": 1.0},
        ...                      vols={"BTC": 0.5}, marks={"binance:BTCUSDT": 101.0})
        >>> s = m.shocked(-0.2, 0.1)
        >>> s.spot("BTC"), s.spot("USDC"), s.mark("binance", "BTCUSDT"), float(s.vol("BTC", 90.0, "2026-06-01"))
        (80.0, 1.0, 80.8, 0.6)
        """
        if not (np.isfinite(spot_shock) and spot_shock > -1):
            raise ValidationError(f"spot_shock: got {spot_shock!r}; accepted: > -1", field="spot_shock")
        f = 1.0 + spot_shock
        spots = {u: (p if u.upper() in stable else p * f) for u, p in self.spots.items()}
        curves = {u: ForwardCurve(u, c.spot * f, c.T, c.forwards * f)
                  for u, c in self.curves.items()}
        marks = {k: p * f for k, p in self.marks.items()}
        vols = {u: (_ShiftedVol(v, vol_shock) if vol_shock else v) for u, v in self.vols.items()}
        note = f"shocked: spot {spot_shock:+.4g}, vol {vol_shock:+.4g}"
        prov = {k: dataclasses.replace(p, note=(p.note + "; " if p.note else "") + note)
                for k, p in self.provenance.items()}
        return dataclasses.replace(self, spots=spots, curves=curves, marks=marks, vols=vols,
                                   provenance=prov)

    def age(self, key: str) -> pd.Timedelta:
        """Age of a field (``"spot:BTC"``, ``"mark:binance:BTCUSDT"``, ...) at the market time.

        Examples
        --------
        >>> m = Market.from_dict("2026-01-01T00:10Z", spots={"BTC": 1.0}, as_of="2026-01-01T00:00Z")
        >>> m.age("spot:BTC")
        Timedelta('0 days 00:10:00')
        """
        if key not in self.provenance:
            raise self._missing("provenance", key, self.provenance)
        return self.provenance[key].age(self.timestamp)

    def require_fresh(self, max_age: Any, keys: Any = None, *, allow_stale: bool = False) -> None:
        """Raise :class:`~pmnb.errors.StaleDataError` if any field is older than ``max_age``.

        Stale data is never used silently: callers either refresh, or pass ``allow_stale=True``
        and show the ages (``age``) beside their results.

        Examples
        --------
        >>> m = Market.from_dict("2026-01-01T01:00Z", spots={"BTC": 1.0}, as_of="2026-01-01T00:00Z")
        >>> m.require_fresh("30min")
        Traceback (most recent call last):
        ...
        pmnb.errors.StaleDataError: spot:BTC is 0 days 01:00:00 old at 2026-01-01 01:00:00+00:00 (source: user); accepted: at most 0 days 00:30:00, or allow_stale=True
        """
        limit = pd.Timedelta(max_age)
        for key in (self.provenance if keys is None else keys):
            age = self.age(key)
            if age > limit and not allow_stale:
                raise StaleDataError(f"{key} is {age} old at {self.timestamp} (source: "
                                     f"{self.provenance[key].source}); accepted: at most {limit}, "
                                     "or allow_stale=True")

    def provenance_frame(self) -> pd.DataFrame:
        """Every field's source, observation time, age and note, as a DataFrame.

        Examples
        --------
        >>> Market.from_dict("2026-01-01", spots={"BTC": 1.0}).provenance_frame().columns.tolist()
        ['key', 'source', 'as_of', 'age', 'note']
        """
        rows = [{"key": k, "source": p.source, "as_of": p.as_of, "age": p.age(self.timestamp),
                 "note": p.note} for k, p in self.provenance.items()]
        return pd.DataFrame(rows, columns=["key", "source", "as_of", "age", "note"])
