r"""Fit an SVI surface to a Deribit option chain, as :func:`pmnb.datasets.load_deribit_chain`
returns it.

Conventions
-----------
* ``T = (expiry - timestamp)`` in seconds / (365 × 86,400) (ACT/365, as :mod:`pmnb.pricing`).
* Forward of an expiry: the median ``underlying_price`` of its rows; ``k = ln(K / F)``.
* Out-of-the-money options only: puts with ``K < F``, calls with ``K >= F`` (one quote per strike,
  the liquid side, which also avoids the put–call parity noise of in-the-money quotes).
* Bid and ask implied vols: :func:`pmnb.implied_vol` of the coin prices (``price_unit="coin"``,
  ``errors="nan"``; Black-76 on each row's own ``underlying_price``, rate ``interest_rate``). A
  row is **quoted** when both its bid and ask have a vol.
* Target vol: the mid of the bid and ask vols on quoted rows; Deribit's mark vol
  (``mark_iv_pct / 100``) otherwise. Rows with neither are dropped, and counted.
* Weights: the vol residual is divided by the half width ``h`` of the row's bid/ask vol band
  (floored at ``min_half_width``). Since the vol band is the price band divided by vega, this is
  the price residual ≈ vega × vol residual over the price half spread: quotes are weighted by vega
  and by their bid/ask width. Mark-only rows get ``h = mark_width_factor`` × the median half width
  of the expiry's quoted rows: they are mostly far wings without a bid, where the mark is
  Deribit's own extrapolation, so they anchor the wings without overriding quotes (on the
  2025-12-31 BTC chain a factor of 2 instead of 5 puts 94.7% instead of 96.3% of quoted strikes
  inside their band, 81% instead of 91% on the worst expiry). In total variance (what SVI is linear in) the weight is
  :math:`1/(2\sigma T h)^2`, since :math:`\delta w \approx 2\sigma T\,\delta\sigma`.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

import pmnb.pricing
from pmnb.errors import ValidationError
from pmnb.vol.surface import SVISlice, SVISurface
from pmnb.vol.svi import _MIN_POINTS, SVIParams, _fit_padded, svi_total_variance

__all__ = ["chain_quotes", "fit_svi_surface"]

_YEAR = 365.0 * 86400.0
_REQUIRED = ("currency", "expiry", "timestamp", "strike", "option_type", "underlying_price",
             "mark_iv_pct", "best_bid_price", "best_ask_price")


def _select(chain: pd.DataFrame, currency) -> pd.DataFrame:
    if not isinstance(chain, pd.DataFrame):
        raise ValidationError(f"chain: got {type(chain).__name__}; accepted: a DataFrame as "
                              "pmnb.datasets.load_deribit_chain returns", field="chain")
    missing = [c for c in _REQUIRED if c not in chain.columns]
    if missing:
        raise ValidationError(f"chain: missing column(s) {missing}; accepted: the columns of "
                              "pmnb.datasets.load_deribit_chain", field="chain")
    cur = chain["currency"].astype(str)
    found = sorted(pd.unique(cur))
    if currency is None:
        if len(found) != 1:
            raise ValidationError(f"currency: the chain holds {found}; accepted: one of them "
                                  "(pass currency=...)", field="currency")
        return chain
    if currency not in found:
        raise ValidationError(f"currency: got {currency!r}; accepted: one of {found}",
                              field="currency")
    return chain[cur.to_numpy() == currency]


_SPELLINGS = {"call": 1.0, "c": 1.0, "put": -1.0, "p": -1.0}


def _option_sign(option_type: pd.Series, index) -> np.ndarray:
    """+1 for calls, -1 for puts, through the few distinct labels (no per-row Python loop)."""
    codes, uniq = pd.factorize(option_type, use_na_sentinel=True)
    signs = np.array([_SPELLINGS.get(str(u).lower(), 0.0) for u in uniq] + [0.0])
    out = signs[codes]  # code -1 (missing) -> the appended 0.0
    if (out == 0).any():
        first = int(np.flatnonzero(out == 0)[0])
        raise ValidationError.for_field("option_type", row=index[first],
                                        value=option_type.iloc[first],
                                        accepted="'call'/'put'/'c'/'p' (any case)",
                                        n_bad=int((out == 0).sum()))
    return out


def chain_quotes(chain: pd.DataFrame, *, currency: str | None = None,
                 min_half_width: float = 0.001, mark_width_factor: float = 5.0) -> pd.DataFrame:
    """Out-of-the-money quotes of a Deribit chain, with bid/ask/mid/mark vols and fit weights.

    Parameters
    ----------
    chain : pandas.DataFrame
        As :func:`pmnb.datasets.load_deribit_chain` returns (columns used: ``currency``,
        ``expiry``, ``timestamp``, ``strike``, ``option_type``, ``underlying_price``,
        ``mark_iv_pct``, ``best_bid_price``, ``best_ask_price``, and ``interest_rate`` if present).
    currency : str, optional
        Required when the chain holds more than one currency.
    min_half_width : float, default 0.001
        Floor of the bid/ask half width in vol (0.001 = 0.1 vol point) used for weights.
    mark_width_factor : float, default 5
        Half width given to mark-only rows, as a multiple of the expiry's median quoted one.

    Returns
    -------
    pandas.DataFrame
        One row per OTM option (index of ``chain``), sorted by expiry and strike, with
        ``expiry``, ``T``, ``forward`` (per-expiry median), ``strike``, ``option_type``, ``k``,
        ``bid_iv``, ``ask_iv``, ``mid_iv``, ``mark_iv`` (decimals; NaN = none), ``quoted`` (both
        bid and ask vols exist), ``target_iv``, ``source`` (``"mid"``, ``"mark"`` or ``""`` =
        dropped), ``half_width`` and ``weight`` (of the squared total-variance residual).

    Examples
    --------
    >>> import pmnb
    >>> from pmnb.vol import chain_quotes
    >>> q = chain_quotes(pmnb.datasets.load_deribit_chain("2025-12-31"), currency="BTC")
    >>> len(q), int(q.quoted.sum()), q.source.value_counts().to_dict()
    (310, 300, {'mid': 300, 'mark': 10})
    >>> share = ((q.mark_iv >= q.bid_iv) & (q.mark_iv <= q.ask_iv))[q.quoted].mean()
    >>> round(float(share), 2)  # Deribit's own mark vol lies inside the band
    0.98
    """
    for name, value in (("min_half_width", min_half_width),
                        ("mark_width_factor", mark_width_factor)):
        if not (np.isfinite(value) and value > 0):
            raise ValidationError(f"{name}: got {value!r}; accepted: finite, > 0", field=name)
    c = _select(chain, currency)
    T = (c["expiry"] - c["timestamp"]).dt.total_seconds().to_numpy() / _YEAR
    bad = ~(T > 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValidationError.for_field("expiry", row=c.index[first], value=str(
            c["expiry"].iloc[first]), accepted="after the row's timestamp (T > 0)",
            n_bad=int(bad.sum()))
    codes, uniq = pd.factorize(c["expiry"], sort=True)
    Fq = c["underlying_price"].to_numpy(dtype=np.float64)
    F_exp = pd.Series(Fq).groupby(codes).median().to_numpy()[codes]
    K = c["strike"].to_numpy(dtype=np.float64)
    sign = _option_sign(c["option_type"], c.index)
    otm = ((sign < 0) & (K < F_exp)) | ((sign > 0) & (K >= F_exp))
    idx = np.flatnonzero(otm)
    c, T, F_exp, K, sign, Fq, codes = (c.iloc[idx], T[idx], F_exp[idx], K[idx], sign[idx],
                                       Fq[idx], codes[idx])
    r = (c["interest_rate"].fillna(0.0).to_numpy(dtype=np.float64)
         if "interest_rate" in c.columns else 0.0)
    n = len(c)
    # one implied-vol call for bids, asks and (fallback) marks together
    prices = np.concatenate([c["best_bid_price"].to_numpy(dtype=np.float64),
                             c["best_ask_price"].to_numpy(dtype=np.float64)])
    have = np.isfinite(prices) & (prices > 0)
    vols = np.full(2 * n, np.nan)
    if have.any():
        rep = lambda a: np.tile(np.broadcast_to(a, (n,)), 2)[have]  # noqa: E731
        vols[have] = pmnb.pricing.implied_vol(
            prices[have], rep(Fq), rep(K), rep(T), rep(r), option_type=rep(sign),
            price_unit="coin", errors="nan").vol
    bid_iv, ask_iv = vols[:n], vols[n:]
    quoted = np.isfinite(bid_iv) & np.isfinite(ask_iv) & (ask_iv >= bid_iv)
    mid = np.where(quoted, 0.5 * (bid_iv + ask_iv), np.nan)
    mark = c["mark_iv_pct"].to_numpy(dtype=np.float64) / 100.0
    mark = np.where(np.isfinite(mark) & (mark > 0), mark, np.nan)
    target = np.where(quoted, mid, mark)
    source = np.where(quoted, "mid", np.where(np.isfinite(mark), "mark", ""))
    hw = np.where(quoted, np.maximum(0.5 * (ask_iv - bid_iv), min_half_width), np.nan)
    med = pd.Series(hw).groupby(codes).median().to_numpy()
    med = np.where(np.isfinite(med), med, 0.01)[codes]
    hw = np.where(quoted, hw, np.where(source == "mark", mark_width_factor * med, np.nan))
    with np.errstate(invalid="ignore"):
        weight = np.where(np.isfinite(target), 1.0 / (2.0 * target * T * hw) ** 2, 0.0)
    out = pd.DataFrame({
        "expiry": c["expiry"].to_numpy(), "T": T, "forward": F_exp, "strike": K,
        "option_type": c["option_type"].to_numpy(), "k": np.log(K / F_exp), "bid_iv": bid_iv,
        "ask_iv": ask_iv, "mid_iv": mid, "mark_iv": mark, "quoted": quoted, "target_iv": target,
        "source": source, "half_width": hw, "weight": weight}, index=c.index)
    out["expiry"] = out["expiry"].astype(c["expiry"].dtype)
    order = np.lexsort((K, codes))
    return out.iloc[order]


def fit_svi_surface(chain: pd.DataFrame, *, currency: str | None = None, polish: bool = True,
                    min_half_width: float = 0.001, mark_width_factor: float = 5.0):
    r"""Fit one raw SVI slice per expiry of a Deribit chain; return the surface and a fit report.

    Quotes are prepared by :func:`chain_quotes` (OTM options, mid vol of the bid/ask vols where
    both exist, else mark vol, weighted by the inverse bid/ask half width in vol); every expiry is
    fitted by the quasi-explicit + Levenberg–Marquardt fit of :func:`pmnb.vol.fit_svi`, all expiries
    in one vectorised pass.

    Parameters
    ----------
    chain : pandas.DataFrame
        As :func:`pmnb.datasets.load_deribit_chain` returns; one valuation ``timestamp`` (the
        first row's is used for the surface).
    currency : str, optional
        Required when the chain holds more than one currency.
    polish : bool, default True
        Polish all five parameters after the quasi-explicit start.
    min_half_width, mark_width_factor : float
        Weighting, see :func:`chain_quotes`.

    Returns
    -------
    surface : SVISurface
        Slices of the expiries with at least 5 usable strikes (T of a slice: the median T of its
        rows); ``spot`` = median ``index_price`` if the chain has it.
    report : pandas.DataFrame
        One row per expiry: ``expiry``, ``T``, ``forward``, ``n_otm`` (OTM rows), ``n_quoted``
        (fitted to mid), ``n_mark`` (fitted to mark), ``n_dropped`` (no vol at all; not fitted),
        ``fitted``, ``rmse_mid_volpts`` (fitted vs mid over quoted rows, vol points),
        ``rmse_mark_volpts`` (vs mark over all used rows), ``inside_band`` (share of quoted
        strikes whose fitted vol lies within [bid vol, ask vol]), ``butterfly_ok`` and
        ``butterfly_ok_in_quotes`` (g >= 0 on the default dense grid / within the quotes' k
        range), ``min_g``, ``k_at_min_g``, ``calendar_ok`` and ``calendar_ok_in_quotes``
        (total variance against the previous fitted expiry, at fixed k), ``min_dw``,
        ``k_at_min_dw`` and the SVI parameters ``a, b, rho, m, sigma``. Flags are pandas
        nullable booleans (``<NA>`` where not applicable). Where and how much: see
        ``surface.check_butterfly()`` and ``surface.check_calendar()``. ``report.attrs`` holds
        ``n_dropped`` (total) and ``fit_seconds``.

    Examples
    --------
    >>> import pmnb
    >>> from pmnb.vol import fit_svi_surface
    >>> chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    >>> surface, report = fit_svi_surface(chain, currency="BTC")
    >>> len(surface.slices), int(report.n_quoted.sum()), report.attrs["n_dropped"]
    (12, 300, 0)
    >>> float(report.inside_band.min()) > 0.85
    True
    >>> float(surface.implied_vol(90_000.0, 0.25)).__round__(2)
    0.42
    """
    t0 = time.perf_counter()
    q = chain_quotes(chain, currency=currency, min_half_width=min_half_width,
                     mark_width_factor=mark_width_factor)
    c = _select(chain, currency)
    codes, expiries = pd.factorize(q["expiry"], sort=True)
    E = len(expiries)
    use = q["weight"].to_numpy() > 0
    n_use = np.bincount(codes[use], minlength=E)
    # distinct strikes per expiry (OTM rows have one option per strike)
    fitted = n_use >= _MIN_POINTS
    # one T per expiry (rows of older snapshots carry their own ticker times): the median
    T_e = q.groupby(codes)["T"].median().to_numpy()
    F_e = q.groupby(codes)["forward"].first().to_numpy()
    fe = np.flatnonzero(fitted)
    # padded arrays (expiry, row) without a Python loop over rows
    sel = use & fitted[codes]
    qc = codes[sel]
    remap = np.full(E, -1)
    remap[fe] = np.arange(len(fe))
    row_e = remap[qc]
    pos = np.arange(len(qc)) - np.searchsorted(qc, qc)  # rank within expiry (q sorted by expiry)
    nmax = int(n_use[fe].max()) if len(fe) else 0
    kq = q["k"].to_numpy()[sel]
    Tq = T_e[codes]
    vq = (q["target_iv"].to_numpy() ** 2 * Tq)[sel]
    wq = (q["weight"].to_numpy() * (q["T"].to_numpy() / Tq) ** 2)[sel]  # 1/(2 sigma T_e h)^2
    kp = np.zeros((len(fe), nmax))
    vp = np.zeros((len(fe), nmax))
    wp = np.zeros((len(fe), nmax))
    kp[row_e, pos] = kq
    vp[row_e, pos] = vq
    wp[row_e, pos] = wq
    # padding repeats a real k of the slice (weight 0) to keep the grids finite
    pad_k = np.zeros(len(fe))
    pad_k[row_e[::-1]] = kq[::-1]
    kp = np.where(wp > 0, kp, pad_k[:, None])
    P = _fit_padded(kp, vp, wp, polish=polish)[0] if len(fe) else np.empty((0, 5))
    # per-row fitted vol and statistics
    kmin = np.full(E, np.nan)
    kmax = np.full(E, np.nan)
    np.fmin.at(kmin, qc, kq)
    np.fmax.at(kmax, qc, kq)
    slices = tuple(SVISlice(T=T_e[e], forward=F_e[e], params=SVIParams(*P[j]),
                            expiry=expiries[e], k_range=(kmin[e], kmax[e]))
                   for j, e in enumerate(fe))
    spot = None
    if "index_price" in c.columns and np.isfinite(c["index_price"]).any():
        spot = float(np.nanmedian(c["index_price"].to_numpy(dtype=np.float64)))
    ts = c["timestamp"].iloc[0] if len(c) else None
    cur = str(c["currency"].iloc[0]) if len(c) else currency
    if not slices:
        raise ValidationError(f"chain: no expiry has >= {_MIN_POINTS} strikes with a vol "
                              f"(usable rows per expiry: {dict(zip(map(str, expiries), n_use))}); "
                              "accepted: at least one expiry with 5 quoted or marked OTM strikes",
                              field="chain")
    surface = SVISurface(slices, spot=spot, currency=cur, timestamp=ts)

    Pfull = np.full((E, 5), np.nan)
    Pfull[fe] = P
    kk = q["k"].to_numpy()
    with np.errstate(invalid="ignore"):
        fit_iv = np.sqrt(svi_total_variance(Pfull[codes], kk) / T_e[codes])
        quoted = q["quoted"].to_numpy()
        inside = quoted & (fit_iv >= q["bid_iv"].to_numpy()) & (fit_iv <= q["ask_iv"].to_numpy())
    e_mid = np.where(quoted, fit_iv - q["mid_iv"].to_numpy(), 0.0)
    mark_ok = use & np.isfinite(q["mark_iv"].to_numpy())
    e_mark = np.where(mark_ok, fit_iv - q["mark_iv"].to_numpy(), 0.0)

    def count(x):
        return np.bincount(codes, weights=np.asarray(x, dtype=np.float64), minlength=E)

    n_quoted = count(quoted)
    n_mark_ok = count(mark_ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        report = pd.DataFrame({
            "expiry": expiries, "T": T_e, "forward": F_e,
            "n_otm": np.bincount(codes, minlength=E),
            "n_quoted": n_quoted.astype(int),
            "n_mark": count(use & (q["source"].to_numpy() == "mark")).astype(int),
            "n_dropped": count(~use).astype(int), "fitted": fitted,
            "rmse_mid_volpts": np.where(fitted, 100 * np.sqrt(count(e_mid ** 2) / n_quoted),
                                        np.nan),
            "rmse_mark_volpts": np.where(fitted, 100 * np.sqrt(count(e_mark ** 2) / n_mark_ok),
                                         np.nan),
            "inside_band": np.where(fitted & (n_quoted > 0), count(inside) / n_quoted, np.nan)})
    bf = surface.check_butterfly()
    cal = surface.check_calendar()
    for col, src, frame, off in (("butterfly_ok", "ok", bf, 0),
                                 ("butterfly_ok_in_quotes", "ok_in_quotes", bf, 0),
                                 ("min_g", "min_g", bf, 0), ("k_at_min_g", "k_at_min_g", bf, 0),
                                 ("calendar_ok", "ok", cal, 1),
                                 ("calendar_ok_in_quotes", "ok_in_quotes", cal, 1),
                                 ("min_dw", "min_dw", cal, 1), ("k_at_min_dw", "k_at_min", cal, 1)):
        boolean = col.endswith(("_ok", "_in_quotes"))
        vals = pd.array([None] * E, dtype="boolean") if boolean else np.full(E, np.nan)
        vals[fe[off:]] = frame[src].to_numpy()
        report[col] = vals
    for i, name in enumerate(("a", "b", "rho", "m", "sigma")):
        report[name] = Pfull[:, i]
    report.attrs["n_dropped"] = int(report.n_dropped.sum())
    report.attrs["fit_seconds"] = time.perf_counter() - t0
    return surface, report
