r"""VolSurfaceExplorer: fitted SVI smiles over the market's bid/ask implied vols, the surface as a
heatmap or a 3-D view, and the butterfly / calendar arbitrage checks highlighted.

Every number comes from :mod:`pmnb.vol`: the quotes and their bid/ask/mark vols from
:func:`pmnb.vol.chain_quotes`, the fit and its per-expiry report from
:func:`pmnb.vol.fit_svi_surface` (raw SVI, Gatheral 2004), vols from the fitted
:class:`pmnb.vol.SVISlice`, the density factor :math:`g(k)` from :meth:`pmnb.vol.SVIParams.g`
(Gatheral & Jacquier 2014, eq. 2.1), total variance from :meth:`pmnb.vol.SVISlice.total_variance`
and the violation intervals from :meth:`pmnb.vol.SVISurface.check_butterfly` and
:meth:`~pmnb.vol.SVISurface.check_calendar`. This module chooses grids, selects rows, compares
signs and draws with plotly ``FigureWidget`` s (traces updated in place).

Two summary numbers are computed here where pmnb offers no public function for them: the fit
statistics of a user-supplied surface against a chain, and of held-out strikes against the fit
that did not see them. Both use exactly :func:`pmnb.vol.fit_svi_surface`'s definitions:
RMSE (vol points) of the fitted vol minus the mid of the bid/ask vols over the quoted strikes,
and the share of quoted strikes whose fitted vol lies within [bid vol, ask vol].
"""

from __future__ import annotations

import dataclasses
import html
import math

import ipywidgets as W
import numpy as np
import pandas as pd
import plotly.graph_objects as go

import pmnb
from pmnb.errors import ValidationError
from pmnb.vol import SVISurface, chain_quotes, fit_svi_surface

from ._common import friendly_message, status_html, timer

__all__ = ["HOLDOUT_EVERY", "VIEWS", "VolSurfaceExplorer"]

#: View toggle values: the smile of one expiry, the surface as a heatmap, the surface in 3-D.
VIEWS = ("smile", "heatmap", "3-D surface")
#: "Hold out every 5th strike": per expiry, the 5th, 10th, ... usable strike (by strike).
HOLDOUT_EVERY = 5
_N_SMILE = 401        # points of the dense smile grid
_N_SURFACE = 161      # points of the surface grid along k or strike
_DEMO_SNAPSHOT = "2025-12-31"
_VARIANTS = ("all", "holdout")

EXPLANATION = (
    "<b>Reading the plots.</b> The line is the raw SVI smile fitted to the out-of-the-money "
    "quotes (Gatheral 2004), weighted by the inverse width of each quote's bid/ask band in "
    "vol, so tight quotes weigh more. Triangles are the bid and ask implied vols, dots "
    "Deribit's mark vol. <span style='color:#d62728'>Red</span> marks arbitrage: "
    "<b>butterfly</b> where the density factor g(k) &lt; 0 (Gatheral &amp; Jacquier 2014), "
    "<b>calendar</b> where total variance w = σ²T at fixed log-moneyness decreases from one "
    "expiry to the next. Shaded bands cover the drawn points where a check fails; the table lists "
    "pmnb's intervals (first to last failing point of its check grid, not always one piece)."
)


@dataclasses.dataclass
class _Model:
    """One fitted surface of one underlying with everything the views read (no plotting)."""

    surface: SVISurface | None
    stats: pd.DataFrame          # one row per expiry (dropdown entry)
    quotes: pd.DataFrame | None  # chain_quotes rows with 'row' (stats row) and 'held_out'
    butterfly: pd.DataFrame
    calendar: pd.DataFrame
    arbitrage: pd.DataFrame
    origin: str


def _expiry_key(expiry, T: float):
    """Dropdown value of an expiry: its timestamp, or a label when a user slice has none."""
    if expiry is None or (not isinstance(expiry, str) and pd.isna(expiry)):
        return f"T={T:.6g}y"
    return pd.Timestamp(expiry)


def _expiry_label(key, T: float, note: str = "") -> str:
    name = f"{key:%Y-%m-%d}" if isinstance(key, pd.Timestamp) else str(key)
    return f"{name} ({T * 365:.1f} d){note}"


def _band_stats(fit_iv: np.ndarray, q: pd.DataFrame) -> tuple[int, float, float]:
    """(n quoted, RMSE of fit - mid in vol points, share inside [bid, ask]) over quoted rows,
    with the definitions of :func:`pmnb.vol.fit_svi_surface`'s report."""
    quoted = q["quoted"].to_numpy(bool)
    n = int(quoted.sum())
    if n == 0:
        return 0, math.nan, math.nan
    f = fit_iv[quoted]
    e = f - q["mid_iv"].to_numpy(float)[quoted]
    inside = (f >= q["bid_iv"].to_numpy(float)[quoted]) & (f <= q["ask_iv"].to_numpy(float)[quoted])
    return n, float(100.0 * np.sqrt(np.mean(e * e))), float(inside.mean())


def _arbitrage_table(surface: SVISurface, bf: pd.DataFrame, cal: pd.DataFrame) -> pd.DataFrame:
    """The failed rows of the two checks as one table (pmnb's numbers, relabelled)."""
    F = surface.forwards
    rows = []
    for i, r in bf.iterrows():
        inside = None if pd.isna(r["ok_in_quotes"]) else not bool(r["ok_in_quotes"])
        if not bool(r["lee_ok"]):
            rows.append({"check": "Lee wing slope > 2", "expiry": _expiry_key(r["expiry"], r["T"]),
                         "expiry_to": None, "k_from": math.nan, "k_to": math.nan,
                         "strike_from": math.nan, "strike_to": math.nan,
                         "worst": float(r["max_slope"]), "k_at_worst": math.nan,
                         "within_quotes": inside})
        if not math.isnan(r["k_from"]):
            rows.append({"check": "butterfly: g(k) < 0",
                         "expiry": _expiry_key(r["expiry"], r["T"]), "expiry_to": None,
                         "k_from": float(r["k_from"]), "k_to": float(r["k_to"]),
                         "strike_from": float(F[i] * np.exp(r["k_from"])),
                         "strike_to": float(F[i] * np.exp(r["k_to"])),
                         "worst": float(r["min_g"]), "k_at_worst": float(r["k_at_min_g"]),
                         "within_quotes": inside})
    for i, r in cal.iterrows():
        if bool(r["ok"]):
            continue
        inside = None if pd.isna(r["ok_in_quotes"]) else not bool(r["ok_in_quotes"])
        rows.append({"check": "calendar: w(k) decreases in T",
                     "expiry": _expiry_key(r["expiry_from"], r["T_from"]),
                     "expiry_to": _expiry_key(r["expiry_to"], r["T_to"]),
                     "k_from": float(r["k_from"]), "k_to": float(r["k_to"]),
                     "strike_from": float(F[i + 1] * np.exp(r["k_from"])),
                     "strike_to": float(F[i + 1] * np.exp(r["k_to"])),
                     "worst": float(r["min_dw"]), "k_at_worst": float(r["k_at_min"]),
                     "within_quotes": inside})
    cols = ["check", "expiry", "expiry_to", "k_from", "k_to", "strike_from", "strike_to",
            "worst", "k_at_worst", "within_quotes"]
    return pd.DataFrame(rows, columns=cols)


def _runs(k: np.ndarray, mask: np.ndarray) -> list[tuple[float, float]]:
    """Contiguous runs of ``mask`` on the grid ``k`` as (first k, last k) pairs."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    starts = np.flatnonzero(np.diff(m) == 1)
    ends = np.flatnonzero(np.diff(m) == -1) - 1
    return [(float(k[a]), float(k[b])) for a, b in zip(starts, ends)]


def _holdout_mask(q: pd.DataFrame) -> np.ndarray:
    """Every HOLDOUT_EVERY-th usable strike of each expiry (quotes sorted by expiry, strike)."""
    use = q["weight"].to_numpy(float) > 0
    codes = pd.factorize(q["expiry"])[0]
    rank = np.full(len(q), -1)
    for c in np.unique(codes):  # a dozen expiries
        idx = np.flatnonzero((codes == c) & use)
        rank[idx] = np.arange(len(idx))
    return use & (rank % HOLDOUT_EVERY == HOLDOUT_EVERY - 1)


class VolSurfaceExplorer(W.VBox):
    """Fitted SVI smiles over bid/ask IVs, the surface as heatmap or 3-D, arbitrage highlighted.

    Parameters
    ----------
    source : pandas.DataFrame, pmnb.Market or None
        A Deribit option chain (as :func:`pmnb.datasets.load_deribit_chain` returns; one SVI
        surface is fitted per currency by :func:`pmnb.vol.fit_svi_surface`), or a Market whose
        ``vols`` hold :class:`pmnb.vol.SVISurface` s (shown as they are). Default: the shipped
        2025-12-31 Deribit chain.
    chain : pandas.DataFrame, optional
        With a Market: the chain whose quotes are drawn over the market's surfaces and whose
        fit statistics are shown (and refitted for the held-out check).
    underlying : str, optional
        Initial underlying (default: BTC if present, else the first).
    expiry : timestamp-like, optional
        Initial expiry (default: the fitted expiry with the most quoted strikes).
    x_axis : {"k", "strike"}
        Log-moneyness :math:`k = \\ln(K/F)` or strike (USD).
    view : {"smile", "heatmap", "3-D surface"}
    holdout : bool
        Fit without every 5th strike and show the held-out quotes apart.
    beyond_quotes : bool
        Draw the SVI beyond the quoted strikes, out to every arbitrage interval of the expiry.

    Attributes
    ----------
    fig : plotly.graph_objects.FigureWidget
        The plot of the selected view. Smile traces: 0 SVI fit, 1 bid IV, 2 ask IV, 3 mark IV,
        4 held-out strikes, 5 butterfly and 6 calendar violations. Heatmap: 0 the heatmap,
        1 butterfly and 2 calendar violations; 3-D: 0 the surface, 1 and 2 likewise.
    stats : pandas.DataFrame
        Per expiry of the current underlying: ``n_quoted``, ``rmse_mid_volpts``,
        ``inside_band`` (and ``n_heldout``, ``heldout_rmse_mid_volpts``,
        ``heldout_inside_band`` with ``holdout``).
    arbitrage : pandas.DataFrame
        The failed butterfly / calendar / Lee checks of the current surface.
    last_timing : dict
        ``compute_ms`` and ``render_ms`` of the last update.

    Examples
    --------
    >>> import pandas as pd
    >>> from pmnb_widgets import VolSurfaceExplorer
    >>> ex = VolSurfaceExplorer()
    >>> ex.expiry.value = pd.Timestamp("2026-06-26 08:00", tz="UTC")
    >>> d = ex.figure_data()
    >>> d["underlying"], d["expiry"].date().isoformat(), d["n_quoted"], d["inside_band"] > 0.9
    ('BTC', '2026-06-26', 41, True)
    >>> ex.view.value = "heatmap"
    >>> ex.fig.data[0].z.shape
    (12, 161)
    """

    def __init__(self, source=None, *, chain: pd.DataFrame | None = None,
                 underlying: str | None = None, expiry=None, x_axis: str = "k",
                 view: str = "smile", holdout: bool = False, beyond_quotes: bool = False) -> None:
        style = {"description_width": "90px"}
        self.underlying = W.Dropdown(options=["BTC"], description="Underlying", style=style,
                                     layout=W.Layout(width="200px"))
        self.expiry = W.Dropdown(options=[], description="Expiry", style=style,
                                 layout=W.Layout(width="340px"))
        self.x_axis = W.ToggleButtons(options=[("log-moneyness k", "k"), ("strike", "strike")],
                                      value=x_axis, description="x-axis", style=style)
        self.view = W.ToggleButtons(options=list(VIEWS), value=view, description="View",
                                    style=style)
        self.holdout = W.Checkbox(value=bool(holdout), indent=False,
                                  description=f"hold out every {HOLDOUT_EVERY}th strike")
        self.beyond_quotes = W.Checkbox(value=bool(beyond_quotes), indent=False,
                                        description="draw beyond the quotes (wings, arbitrage)")
        self.status = W.HTML(value="")
        self.readout = W.HTML(value="")
        self.stats_view = W.HTML(value="", layout=W.Layout(overflow="auto"))
        self.arbitrage_view = W.HTML(value="", layout=W.Layout(overflow="auto"))
        self.explanation = W.HTML(value=EXPLANATION, layout=W.Layout(max_width="900px"))
        self.fig: go.FigureWidget | None = None  # built at the first update (see _render)
        self._shown_view: str | None = None
        self.plot_box = W.Box([], layout=W.Layout(width="100%"))
        self.last_timing: dict[str, float] = {}
        self.stats = pd.DataFrame()
        self.arbitrage = pd.DataFrame()
        self._models: dict[tuple[str, str], _Model] = {}
        self._errors: dict[str, str] = {}
        self._chain: pd.DataFrame | None = None
        self._market = None
        self._data: dict | None = None
        self._syncing = False
        self.error = ""  # the last message shown in the status line (plain text)
        super().__init__([
            W.HBox([self.underlying, self.expiry, self.holdout]),
            W.HBox([self.x_axis, self.beyond_quotes]),
            W.HBox([self.view]),
            self.status, self.plot_box, self.readout,
            W.HTML("<b>Fit quality per expiry</b> (vol points; share of quoted strikes whose "
                   "fitted vol is inside the bid/ask band)"), self.stats_view,
            W.HTML("<b>Arbitrage checks</b>"), self.arbitrage_view, self.explanation,
        ])
        if not self.set_source(source, chain=chain, underlying=underlying, expiry=expiry):
            raise ValueError(f"VolSurfaceExplorer: the initial data are invalid: {self.error}")
        self.underlying.observe(self._on_underlying, names="value")
        for w in (self.expiry, self.x_axis, self.view, self.holdout, self.beyond_quotes):
            w.observe(self._on_change, names="value")

    @property
    def widget(self) -> W.VBox:
        """The displayable widget (the explorer itself)."""
        return self

    # ---- figures --------------------------------------------------------------------------
    @staticmethod
    def _template(view: str) -> go.Figure:
        """The traces of one view as a plain ``go.Figure`` (no data yet; the layout keys are
        :meth:`_view_layout`)."""
        red, dark = "#d62728", "#8b0000"
        if view == "smile":
            fig = go.Figure(data=[
                go.Scatter(name="SVI fit", mode="lines", line=dict(color="#1f77b4", width=2)),
                go.Scatter(name="bid IV", mode="markers",
                           marker=dict(symbol="triangle-up", size=8, color="#2ca02c")),
                go.Scatter(name="ask IV", mode="markers",
                           marker=dict(symbol="triangle-down", size=8, color="#ff7f0e")),
                go.Scatter(name="mark IV", mode="markers",
                           marker=dict(symbol="circle", size=5, color="#555555")),
                go.Scatter(name="held-out strike: mid, bid–ask", mode="markers",
                           marker=dict(symbol="star", size=11, color="#9467bd"),
                           error_y=dict(type="data", symmetric=False, color="#9467bd")),
                go.Scatter(name="butterfly g(k) < 0", mode="markers",
                           marker=dict(symbol="x", size=7, color=red)),
                go.Scatter(name="calendar: w below earlier expiry", mode="markers",
                           marker=dict(symbol="diamond-open", size=7, color=dark)),
            ])
        elif view == "heatmap":
            fig = go.Figure(data=[
                go.Heatmap(name="SVI implied vol (%)", colorscale="Viridis",
                           colorbar=dict(title=dict(text="IV %"))),
                go.Scatter(name="butterfly g(k) < 0", mode="markers",
                           marker=dict(symbol="x", size=6, color=red)),
                go.Scatter(name="calendar: w below earlier expiry", mode="markers",
                           marker=dict(symbol="diamond-open", size=6, color=red)),
            ])
        else:
            fig = go.Figure(data=[
                go.Surface(name="SVI implied vol (%)", colorscale="Viridis",
                           colorbar=dict(title=dict(text="IV %"))),
                go.Scatter3d(name="butterfly g(k) < 0", mode="markers",
                             marker=dict(symbol="x", size=3, color=red)),
                go.Scatter3d(name="calendar: w below earlier expiry", mode="markers",
                             marker=dict(symbol="diamond", size=3, color=red)),
            ])
        return fig

    @staticmethod
    def _view_layout(view: str) -> dict:
        """The layout keys of one view; each view sets every key any view sets."""
        common = dict(scene=dict(yaxis=dict(title=dict(text="days to expiry")),
                                 zaxis=dict(title=dict(text="IV (%)"))),
                      xaxis=dict(autorange=True), shapes=[])
        if view == "smile":
            return dict(height=460, margin=dict(l=60, r=20, t=50, b=50),
                        yaxis=dict(title=dict(text="implied vol (%)"), type="linear",
                                   autorange=True),
                        legend=dict(orientation="v", x=1.02, y=1.0, font=dict(size=10)),
                        **common)
        if view == "heatmap":
            return dict(height=460, margin=dict(l=100, r=20, t=50, b=50),
                        yaxis=dict(title=dict(text="expiry"), type="category", autorange=True),
                        legend=dict(orientation="h", x=0.0, y=-0.2, font=dict(size=10)),
                        **common)
        return dict(height=560, margin=dict(l=0, r=0, t=50, b=0),
                    yaxis=dict(title=dict(text=""), type="linear", autorange=True),
                    legend=dict(orientation="h", x=0.0, y=-0.05, font=dict(size=10)), **common)

    # ---- data -------------------------------------------------------------------------------
    def set_source(self, source=None, *, chain: pd.DataFrame | None = None,
                   underlying: str | None = None, expiry=None) -> bool:
        """Replace the data (a chain, or a Market with an optional chain) and fit once per
        underlying; on failure keep the last good state, show the message and return False.

        Examples
        --------
        >>> import pmnb
        >>> from pmnb_widgets import VolSurfaceExplorer
        >>> ex = VolSurfaceExplorer()
        >>> bad = pmnb.Market.from_dict("2025-12-31", spots={"BTC": 1.0}, vols={"BTC": 0.5})
        >>> ex.set_source(bad), "SVISurface" in ex.status.value, ex.underlying.value
        (False, True, 'BTC')
        """
        timing: dict[str, float] = {}
        try:
            with timer(timing, "fit_ms"):
                models, errors, new_chain, market = self._build(source, chain)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            self._fail(friendly_message(exc))
            return False
        old = (self._models, self._errors, self._chain, self._market)
        controls = (self.underlying.options, self.underlying.value, self.expiry.options,
                    self.expiry.value, self.holdout.value, self.holdout.disabled)
        self._models, self._errors, self._chain, self._market = models, errors, new_chain, market
        names = sorted({u for u, _ in models} | set(errors))
        want = underlying or (self.underlying.value if self._data else None)
        if want not in names:
            want = "BTC" if "BTC" in names else names[0]
        self._syncing = True
        try:
            self.underlying.options = names  # options first, then value (not held:
            self.underlying.value = want      # ipywidgets cross-validates held pairs wrongly)
            self._set_expiry_options(expiry)
            self.holdout.disabled = new_chain is None
            if new_chain is None:
                self.holdout.value = False
        finally:
            self._syncing = False
        if not self.update():
            message = self.status.value
            self._models, self._errors, self._chain, self._market = old
            self._syncing = True
            try:
                self.underlying.options, self.underlying.value = controls[:2]
                self.expiry.options, self.expiry.value = controls[2:4]
                self.holdout.value, self.holdout.disabled = controls[4:]
            finally:
                self._syncing = False
            self.status.value = message
            return False
        self.last_timing.update(timing)
        return True

    def _build(self, source, chain):
        market = None
        if source is None and chain is None:
            chain = pmnb.datasets.load_deribit_chain(_DEMO_SNAPSHOT)
        elif isinstance(source, pd.DataFrame):
            if chain is not None:
                raise ValidationError("chain: give the chain once (as source or as chain=)",
                                      field="chain")
            chain = source
        elif isinstance(source, pmnb.Market):
            market = source
        elif source is not None:
            raise ValidationError(
                f"source: got {type(source).__name__}; accepted: a chain DataFrame "
                "(pmnb.datasets.load_deribit_chain), a pmnb.Market with SVI surfaces, or None",
                field="source")
        if chain is not None:
            if not isinstance(chain, pd.DataFrame):
                raise ValidationError(f"chain: got {type(chain).__name__}; accepted: a DataFrame "
                                      "as pmnb.datasets.load_deribit_chain returns", field="chain")
            if "currency" not in chain.columns:
                raise ValidationError("chain: missing column(s) ['currency']; accepted: the "
                                      "columns of pmnb.datasets.load_deribit_chain",
                                      field="chain")
            chain = chain.reset_index(drop=True)  # positions: held-out rows are blanked by them
        models: dict[tuple[str, str], _Model] = {}
        errors: dict[str, str] = {}
        if market is not None:
            surfaces = {}
            for u, v in market.vols.items():
                if not isinstance(v, SVISurface):
                    raise ValidationError(
                        f"market: vols[{u!r}] is a {type(v).__name__}; accepted: an SVISurface "
                        "(pmnb.vol.fit_svi_surface, or Market.from_deribit with fit_vols=True)",
                        field="vols")
                surfaces[str(u)] = v
            if not surfaces:
                raise ValidationError("market: no vol surfaces; accepted: a Market whose vols "
                                      "hold SVISurfaces (Market.from_deribit)", field="vols")
            for u, surf in surfaces.items():
                quotes = None
                if chain is not None and u in set(chain["currency"].astype(str)):
                    quotes = chain_quotes(chain, currency=u)
                models[u, "all"] = self._model_from_surface(surf, quotes)
        else:
            for u in sorted(pd.unique(chain["currency"].astype(str))):
                try:
                    surf, report = fit_svi_surface(chain, currency=u)
                    quotes = chain_quotes(chain, currency=u)
                except Exception as exc:  # noqa: BLE001 - this underlying only
                    errors[u] = f"{u}: " + friendly_message(exc)
                    continue
                models[u, "all"] = self._model_from_fit(surf, report, quotes, None,
                                                        "fitted to the chain")
        if chain is not None:
            for u in sorted({u for u, _ in models}):
                if u not in set(chain["currency"].astype(str)):
                    continue
                try:
                    models[u, "holdout"] = self._fit_holdout(chain, u)
                except Exception as exc:  # noqa: BLE001 - shown when the box is ticked
                    errors[u + ":holdout"] = f"{u}, holding out every {HOLDOUT_EVERY}th " \
                        f"strike: " + friendly_message(exc)
        if not models:
            raise ValidationError("chain: no underlying could be fitted: " +
                                  "; ".join(errors.values()), field="chain")
        return models, errors, chain, market

    @staticmethod
    def _fit_holdout(chain: pd.DataFrame, u: str) -> _Model:
        quotes = chain_quotes(chain, currency=u)
        held = _holdout_mask(quotes)
        blanked = chain.copy()
        rows = quotes.index[held]
        blanked.loc[rows, ["best_bid_price", "best_ask_price", "mark_iv_pct"]] = np.nan
        surf, report = fit_svi_surface(blanked, currency=u)
        return VolSurfaceExplorer._model_from_fit(
            surf, report, quotes, held,
            f"fitted without every {HOLDOUT_EVERY}th strike ({int(held.sum())} held out)")

    @staticmethod
    def _model_from_fit(surf, report, quotes, held, origin) -> _Model:
        slice_of = np.cumsum(report["fitted"].to_numpy(bool)) - 1
        stats = pd.DataFrame({
            "key": [_expiry_key(e, t) for e, t in zip(report["expiry"], report["T"])],
            "expiry": report["expiry"], "T": report["T"].to_numpy(float),
            "forward": report["forward"].to_numpy(float),
            "slice": np.where(report["fitted"].to_numpy(bool), slice_of, -1),
            "n_usable": (report["n_quoted"] + report["n_mark"]).to_numpy(int),
            "n_quoted": report["n_quoted"].to_numpy(int),
            "rmse_mid_volpts": report["rmse_mid_volpts"].to_numpy(float),
            "inside_band": report["inside_band"].to_numpy(float)})
        return VolSurfaceExplorer._finish(surf, stats, quotes, held, origin)

    @staticmethod
    def _model_from_surface(surf: SVISurface, quotes) -> _Model:
        keys = {_expiry_key(e, t): (i, t, f) for i, (e, t, f) in
                enumerate(zip(surf.expiries, surf.T, surf.forwards))}
        qkeys = {}
        if quotes is not None:
            for e, grp in quotes.groupby("expiry", sort=True, observed=True):
                t = float(grp["T"].median())
                qkeys[_expiry_key(e, t)] = (t, float(grp["forward"].iloc[0]), grp)
        rows = []
        for key in set(keys) | set(qkeys):
            i, T, F = keys.get(key, (-1, math.nan, math.nan))
            n_q = n_use = 0
            rmse = inside = math.nan
            if key in qkeys:
                Tq, Fq, grp = qkeys[key]
                T = Tq if i < 0 else T
                F = Fq if i < 0 else F
                n_use = int((grp["weight"] > 0).sum())
                if i >= 0:
                    fit = surf.slices[i].implied_vol(k=grp["k"].to_numpy(float))
                    n_q, rmse, inside = _band_stats(fit, grp)
                else:
                    n_q = int(grp["quoted"].sum())
            rows.append({"key": key, "expiry": key if isinstance(key, pd.Timestamp) else pd.NaT,
                         "T": T, "forward": F, "slice": i, "n_usable": n_use, "n_quoted": n_q,
                         "rmse_mid_volpts": rmse, "inside_band": inside})
        stats = pd.DataFrame(rows).sort_values("T", kind="stable").reset_index(drop=True)
        return VolSurfaceExplorer._finish(surf, stats, quotes, None, "from the market")

    @staticmethod
    def _finish(surf, stats, quotes, held, origin) -> _Model:
        if quotes is not None:
            quotes = quotes.copy()
            qk = [_expiry_key(e, t) for e, t in zip(quotes["expiry"], quotes["T"])]
            pos = {k: j for j, k in enumerate(stats["key"])}
            quotes["row"] = [pos.get(k, -1) for k in qk]
            quotes["held_out"] = held if held is not None else np.zeros(len(quotes), bool)
            if held is not None:
                n_h, rm_h, in_h = [], [], []
                for j, r in stats.iterrows():
                    grp = quotes[(quotes["row"] == j) & quotes["held_out"]]
                    if r["slice"] < 0 or grp.empty:
                        n_h.append(0), rm_h.append(math.nan), in_h.append(math.nan)
                        continue
                    n, rmse, inside = _band_stats(
                        surf.slices[int(r["slice"])].implied_vol(k=grp["k"].to_numpy(float)),
                        grp)
                    n_h.append(n), rm_h.append(rmse), in_h.append(inside)
                stats["n_heldout"] = n_h
                stats["heldout_rmse_mid_volpts"] = rm_h
                stats["heldout_inside_band"] = in_h
        bf = surf.check_butterfly()
        cal = surf.check_calendar()
        return _Model(surf, stats, quotes, bf, cal, _arbitrage_table(surf, bf, cal), origin)

    def _set_expiry_options(self, expiry=None) -> None:
        model = self._models.get((self.underlying.value, "all"))
        if model is None:
            return
        st = model.stats
        options = [(_expiry_label(k, t, "" if s >= 0 else " — not fitted"), k)
                   for k, t, s in zip(st["key"], st["T"], st["slice"])]
        keys = [k for _, k in options]
        want = self.expiry.value if expiry is None else expiry
        if expiry is not None and not isinstance(expiry, str):
            want = pd.Timestamp(expiry)
            want = want.tz_localize("UTC") if want.tzinfo is None else want
        if want not in keys:
            fitted = st[st["slice"] >= 0]
            want = fitted["key"].iloc[int(np.argmax(fitted["n_quoted"].to_numpy()))] \
                if len(fitted) else keys[0]
        self.expiry.options = options  # callers hold self._syncing: no update per step
        self.expiry.value = want

    # ---- events -----------------------------------------------------------------------------
    def _on_underlying(self, change) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self._set_expiry_options()
        finally:
            self._syncing = False
        self.update()

    def _on_change(self, change) -> None:
        if not self._syncing:
            self.update()

    # ---- compute ----------------------------------------------------------------------------
    def _model(self) -> _Model:
        u = self.underlying.value
        variant = "holdout" if self.holdout.value else "all"
        if (u, variant) in self._models:
            return self._models[u, variant]
        key = u + (":holdout" if variant == "holdout" else "")
        if key in self._errors:
            raise ValidationError(self._errors[key], field="underlying")
        if variant == "holdout":
            raise ValidationError(f"holdout: {u} has no chain to refit; accepted: a chain "
                                  "(as source, or chain= beside a Market)", field="holdout")
        raise ValidationError(f"underlying: {u!r} has no surface; accepted: "
                              f"{sorted({v for v, _ in self._models})}", field="underlying")

    def _compute(self) -> dict:
        model = self._model()
        st = model.stats
        key = self.expiry.value
        hit = np.flatnonzero([k == key for k in st["key"]]) if key is not None else []
        if len(hit) == 0:
            raise ValidationError(f"expiry: {key!r} is not an expiry of "
                                  f"{self.underlying.value}; accepted: one of the dropdown",
                                  field="expiry")
        j = int(hit[0])
        row = st.iloc[j]
        if row["slice"] < 0 and model.origin == "from the market":
            raise ValidationError(
                f"expiry: {_expiry_label(key, row['T'])} of {self.underlying.value} is quoted in "
                f"the chain but the market's surface has no slice there; accepted: one of its "
                f"{len(model.surface.slices)} expiries", field="expiry", row=j)
        if row["slice"] < 0:
            raise ValidationError(
                f"expiry: {_expiry_label(key, row['T'])} of {self.underlying.value} has "
                f"{int(row['n_usable'])} strikes with a vol (bid/ask or mark) in this fit; "
                f"accepted: >= 5 (raw SVI has 5 parameters) — no smile is fitted there",
                field="expiry", row=j)
        surf = model.surface
        i = int(row["slice"])
        sl = surf.slices[i]
        strike_axis = self.x_axis.value == "strike"
        q = None
        if model.quotes is not None:
            q = model.quotes[model.quotes["row"] == j]
        k_lo, k_hi = self._smile_range(model, i, q)
        k = np.linspace(k_lo, k_hi, _N_SMILE)
        K = sl.forward * np.exp(k)
        iv = sl.implied_vol(K=K) if strike_axis else sl.implied_vol(k=k)
        g = sl.params.g(k)
        w = sl.total_variance(k)
        cal_bad = np.zeros(k.shape, bool)
        if i > 0:
            cal_bad |= w < surf.slices[i - 1].total_variance(k)
        if i + 1 < len(surf.slices):
            cal_bad |= surf.slices[i + 1].total_variance(k) < w
        arb = model.arbitrage
        mine = arb[(arb["expiry"].map(lambda e: e == key)) |
                   (arb["expiry_to"].map(lambda e: e == key))]
        data = {
            "underlying": self.underlying.value, "expiry": key, "T": sl.T,
            "forward": sl.forward, "x_axis": self.x_axis.value, "view": self.view.value,
            "holdout": bool(self.holdout.value), "origin": model.origin,
            "beyond_quotes": bool(self.beyond_quotes.value),
            "curve": {"k": k, "x": K if strike_axis else k, "iv": iv},
            "butterfly_k": k[g < 0], "calendar_k": k[cal_bad],
            "shaded": _runs(k, g < 0) + _runs(k, cal_bad),
            "violations": mine.reset_index(drop=True),
            "n_quoted": int(row["n_quoted"]), "rmse_mid_volpts": float(row["rmse_mid_volpts"]),
            "inside_band": float(row["inside_band"]),
        }
        if "n_heldout" in st.columns:
            data.update(n_heldout=int(row["n_heldout"]),
                        heldout_rmse_mid_volpts=float(row["heldout_rmse_mid_volpts"]),
                        heldout_inside_band=float(row["heldout_inside_band"]))
        if q is not None:
            data["quotes"] = {c: q[c].to_numpy() for c in
                              ("k", "strike", "bid_iv", "ask_iv", "mid_iv", "mark_iv",
                               "target_iv", "held_out")}
            data["quotes"]["index"] = q.index.to_numpy()
        data["surface"] = self._surface_grid(model, strike_axis)
        data["stats"] = st
        data["arbitrage"] = arb
        data["selected_row"] = j
        return data

    def _smile_range(self, model: _Model, i: int, q) -> tuple[float, float]:
        """Plot range in k: the quotes (or the slice's fitted range) plus 15% each side; with
        ``beyond_quotes`` widened to every violation interval of this expiry and to twice the
        quoted span."""
        sl = model.surface.slices[i]
        lo = hi = None
        if q is not None and len(q):
            lo, hi = float(q["k"].min()), float(q["k"].max())
        elif sl.k_range is not None and all(map(math.isfinite, sl.k_range)):
            lo, hi = sl.k_range
        if lo is None:
            half = max(0.25, 3.0 * math.sqrt(max(float(sl.total_variance(0.0)), 1e-12)))
            lo, hi = -half, half
        span = max(hi - lo, 0.02)
        lo, hi = lo - 0.15 * span, hi + 0.15 * span
        if self.beyond_quotes.value:
            lo, hi = lo - 0.5 * span, hi + 0.5 * span
            key = model.stats["key"].iloc[int(np.flatnonzero(model.stats["slice"] == i)[0])]
            arb = model.arbitrage
            mine = arb[(arb["expiry"].map(lambda e: e == key)) |
                       (arb["expiry_to"].map(lambda e: e == key))]
            for a, b in zip(mine["k_from"], mine["k_to"]):
                if math.isfinite(a):  # pmnb's check grid may end inside the violation
                    pad = 0.5 * max(b - a, 0.02)
                    lo, hi = min(lo, a - pad), max(hi, b + pad)
        return lo, hi

    def _surface_grid(self, model: _Model, strike_axis: bool) -> dict:
        """Vol of every fitted slice on one grid of k (or strike); NaN outside each slice's
        quoted range unless ``beyond_quotes``."""
        surf = model.surface
        ranges = []
        for s in surf.slices:
            r = s.k_range if s.k_range is not None else (math.nan, math.nan)
            ranges.append(r)
        ranges = np.array(ranges, dtype=float)
        if model.quotes is not None:  # a user surface: the quotes' range per slice
            st = model.stats
            for j, i in enumerate(st["slice"]):
                qq = model.quotes[model.quotes["row"] == j]
                if i >= 0 and len(qq) and not np.isfinite(ranges[i]).all():
                    ranges[i] = (qq["k"].min(), qq["k"].max())
        known = np.isfinite(ranges).all(axis=1)
        if known.any():
            lo, hi = float(ranges[known, 0].min()), float(ranges[known, 1].max())
        else:
            lo, hi = -1.0, 1.0
        if self.beyond_quotes.value:
            for a, b in zip(model.arbitrage["k_from"], model.arbitrage["k_to"]):
                if math.isfinite(a):
                    lo, hi = min(lo, a), max(hi, b)
        F = surf.forwards
        if strike_axis:
            x = np.geomspace(F.min() * math.exp(lo), F.max() * math.exp(hi), _N_SURFACE)
            kk = np.log(x[None, :] / F[:, None])
        else:
            x = np.linspace(lo, hi, _N_SURFACE)
            kk = np.broadcast_to(x, (len(F), x.size))
        iv = np.empty(kk.shape)
        bfly = np.zeros(kk.shape, bool)
        cal = np.zeros(kk.shape, bool)
        for i, s in enumerate(surf.slices):
            iv[i] = s.implied_vol(K=x) if strike_axis else s.implied_vol(k=x)
            bfly[i] = s.params.g(kk[i]) < 0
            if i > 0:
                cal[i] = s.total_variance(kk[i]) < surf.slices[i - 1].total_variance(kk[i])
        shown = np.ones(kk.shape, bool)
        if not self.beyond_quotes.value:
            r = np.where(np.isfinite(ranges), ranges, [[-np.inf, np.inf]])
            shown = (kk >= r[:, :1]) & (kk <= r[:, 1:])
        iv = np.where(shown, iv, np.nan)
        keys = [_expiry_key(e, t) for e, t in zip(surf.expiries, surf.T)]
        labels = [f"{k:%Y-%m-%d}" if isinstance(k, pd.Timestamp) else str(k) for k in keys]
        return {"x": x, "k": kk, "T": surf.T, "days": surf.T * 365.0, "labels": labels,
                "keys": keys, "iv": iv, "butterfly": bfly & shown, "calendar": cal & shown}

    # ---- update -----------------------------------------------------------------------------
    def update(self) -> bool:
        """Recompute the view from the cached fits and redraw; on failure keep the last good
        state, show why and return False. Never refits."""
        timing: dict[str, float] = {}
        try:
            with timer(timing, "compute_ms"):
                data = self._compute()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message
            self._fail(friendly_message(exc))
            return False
        try:
            with timer(timing, "render_ms"):
                self._render(data)
        except Exception as exc:  # noqa: BLE001
            self._fail("drawing failed: " + friendly_message(exc))
            return False
        self._data = data
        self.status.value = ""
        self.error = ""
        self.last_timing = timing
        return True

    def _fail(self, message: str) -> None:
        """Show ``message`` in the status line; the figure and the numbers stay as they were."""
        self.error = message
        self.status.value = status_html(message)

    def figure_data(self) -> dict:
        """What is drawn: ``curve`` (``k``, ``x``, ``iv`` decimal), ``quotes`` (``k``,
        ``strike``, ``bid_iv``, ``ask_iv``, ``mid_iv``, ``mark_iv``, ``target_iv`` (what the
        fit aims at: mid, else mark), ``held_out``),
        ``butterfly_k`` / ``calendar_k`` (curve points in violation), ``surface`` (grid ``x``,
        ``days``, ``iv`` with NaN outside the quotes, violation masks), the numbers shown
        (``n_quoted``, ``rmse_mid_volpts``, ``inside_band`` and the held-out ones) and the
        ``stats`` / ``arbitrage`` tables."""
        return self._data

    def _render(self, d: dict) -> None:
        self.stats = d["stats"]
        self.arbitrage = d["arbitrage"]
        view = d["view"]
        draw = {"smile": self._draw_smile, "heatmap": self._draw_heatmap,
                "3-D surface": self._draw_3d}[view]
        if self.fig is None or self._shown_view != view:
            # One FigureWidget for the three views (each one ships plotly's 5 MB widget
            # bundle to the browser). A FigureWidget syncs its whole state only when it is
            # constructed; later edits travel as messages, which a page that connects afterwards
            # (Voila renders the notebook first) never receives. So the first view is drawn
            # into a plain figure and wrapped once, complete; a view switch replaces the traces
            # and the layout keys; everything else edits the traces in place.
            tpl = self._template(view)
            draw(d, tpl)
            if self.fig is None:
                tpl.update_layout(self._view_layout(view))
                self.fig = go.FigureWidget(tpl)
                self.plot_box.children = (self.fig,)
            else:
                self.fig.data = []
                self.fig.add_traces(list(tpl.data))
                self.fig.update_layout(self._view_layout(view))
                self.fig.layout.title.text = tpl.layout.title.text
                self.fig.layout.xaxis.title.text = tpl.layout.xaxis.title.text
                self.fig.layout.scene.xaxis.title.text = tpl.layout.scene.xaxis.title.text
                self.fig.layout.shapes = tpl.layout.shapes
            self._shown_view = view
        else:
            draw(d, self.fig)
        self.readout.value = self._readout_html(d)
        self.stats_view.value = self._stats_html(d)
        self.arbitrage_view.value = self._arbitrage_html(d)

    def _xlabel(self, d) -> str:
        return "strike (USD)" if d["x_axis"] == "strike" else "log-moneyness k = ln(K/F)"

    def _draw_smile(self, d: dict, fig) -> None:
        strike_axis = d["x_axis"] == "strike"
        F = d["forward"]
        to_x = (lambda k: F * np.exp(k)) if strike_axis else (lambda k: k)
        c = d["curve"]
        q = d.get("quotes")
        shapes = [dict(type="rect", xref="x", yref="paper", x0=to_x(a), x1=to_x(b), y0=0, y1=1,
                       fillcolor="#d62728", opacity=0.12, line=dict(width=0), layer="below")
                  for a, b in d["shaded"]]
        shapes.append(dict(type="line", xref="x", yref="paper", x0=to_x(0.0), x1=to_x(0.0),
                           y0=0, y1=1, line=dict(color="grey", width=1, dash="dot")))
        iv_b = np.interp(d["butterfly_k"], c["k"], c["iv"]) if len(d["butterfly_k"]) else []
        iv_c = np.interp(d["calendar_k"], c["k"], c["iv"]) if len(d["calendar_k"]) else []
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y = c["x"], 100.0 * c["iv"]
            if q is not None:
                keep = ~q["held_out"]
                xq = q["strike"] if strike_axis else q["k"]
                fig.data[1].x, fig.data[1].y = xq[keep], 100.0 * q["bid_iv"][keep]
                fig.data[2].x, fig.data[2].y = xq[keep], 100.0 * q["ask_iv"][keep]
                fig.data[3].x, fig.data[3].y = xq, 100.0 * q["mark_iv"]
                h = q["held_out"]
                mid = 100.0 * q["target_iv"][h]  # mid of bid/ask, or the mark if unquoted
                fig.data[4].x, fig.data[4].y = xq[h], mid
                fig.data[4].error_y.array = 100.0 * q["ask_iv"][h] - mid
                fig.data[4].error_y.arrayminus = mid - 100.0 * q["bid_iv"][h]
            else:
                for t in fig.data[1:5]:
                    t.x, t.y = [], []
            fig.data[4].visible = bool(d["holdout"]) and q is not None
            fig.data[5].x, fig.data[5].y = to_x(d["butterfly_k"]), 100.0 * np.asarray(iv_b)
            fig.data[6].x, fig.data[6].y = to_x(d["calendar_k"]), 100.0 * np.asarray(iv_c)
            fig.layout.shapes = shapes
            fig.layout.xaxis.title.text = self._xlabel(d)
            fig.layout.title.text = (f"{d['underlying']} {self._name(d)}: SVI smile, "
                                     f"F = {F:,.2f}" + self._tag(d))

    @staticmethod
    def _tag(d) -> str:
        """Short title suffix for a surface that is not the plain fit of the chain."""
        if d["holdout"]:
            return " · refit without every 5th strike"
        return " · the market's surface" if d["origin"] == "from the market" else ""

    @staticmethod
    def _name(d) -> str:
        e = d["expiry"]
        return f"{e:%Y-%m-%d}" if isinstance(e, pd.Timestamp) else str(e)

    def _draw_heatmap(self, d: dict, fig) -> None:
        s = d["surface"]
        rows, cols = np.nonzero(s["butterfly"])
        rc, cc = np.nonzero(s["calendar"])
        labels = np.array(s["labels"], dtype=object)
        sel = d["surface"]["keys"].index(d["expiry"]) if d["expiry"] in s["keys"] else None
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y, fig.data[0].z = s["x"], s["labels"], 100.0 * s["iv"]
            fig.data[1].x, fig.data[1].y = s["x"][cols], labels[rows]
            fig.data[2].x, fig.data[2].y = s["x"][cc], labels[rc]
            fig.layout.xaxis.title.text = self._xlabel(d)
            fig.layout.shapes = [] if sel is None else [dict(
                type="rect", xref="paper", yref="y", x0=0, x1=1, y0=sel - 0.5, y1=sel + 0.5,
                line=dict(color="white", width=2))]
            fig.layout.title.text = (f"{d['underlying']} SVI implied vol (%) by expiry"
                                     + self._tag(d) + ("" if d["beyond_quotes"]
                                                       else " · blank beyond the quotes"))

    def _draw_3d(self, d: dict, fig) -> None:
        s = d["surface"]
        days = s["days"]
        rows, cols = np.nonzero(s["butterfly"])
        rc, cc = np.nonzero(s["calendar"])
        z = 100.0 * s["iv"]
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y, fig.data[0].z = s["x"], days, z
            fig.data[1].x, fig.data[1].y, fig.data[1].z = s["x"][cols], days[rows], z[rows, cols]
            fig.data[2].x, fig.data[2].y, fig.data[2].z = s["x"][cc], days[rc], z[rc, cc]
            fig.layout.scene.xaxis.title.text = self._xlabel(d)
            fig.layout.title.text = f"{d['underlying']} SVI implied vol (%)" + self._tag(d)

    # ---- text ---------------------------------------------------------------------------------
    @staticmethod
    def _pct(x: float) -> str:
        return "n/a" if not math.isfinite(x) else f"{100 * x:.1f}%"

    @staticmethod
    def _num(x: float) -> str:
        return "n/a" if not math.isfinite(x) else f"{x:.3f}"

    def _readout_html(self, d: dict) -> str:
        parts = [f"<b>{html.escape(d['underlying'])} {html.escape(self._name(d))}</b> "
                 f"({d['T'] * 365:.1f} days, F = {d['forward']:,.2f}; surface "
                 f"{html.escape(d['origin'])}): "]
        if d["n_quoted"]:
            fitted = "fitted" if d["holdout"] else "quoted"
            parts.append(f"RMSE of the fit vs mid <b>{self._num(d['rmse_mid_volpts'])}</b> vol "
                         f"points over {d['n_quoted']} {fitted} strikes; inside the bid/ask band "
                         f"<b>{self._pct(d['inside_band'])}</b>. ")
        else:
            parts.append("no bid/ask quotes to compare with (pass chain= beside a Market). ")
        if d["holdout"] and "n_heldout" in d:
            parts.append(f"Held-out strikes ({d['n_heldout']}, stars): RMSE "
                         f"<b>{self._num(d['heldout_rmse_mid_volpts'])}</b> vol points, inside "
                         f"the band <b>{self._pct(d['heldout_inside_band'])}</b>. ")
        v = d["violations"]
        if v.empty:
            parts.append("No butterfly or calendar arbitrage involves this expiry.")
        else:
            shown = len(d["butterfly_k"]) + len(d["calendar_k"]) > 0
            parts.append(f"<span style='color:#d62728'><b>{len(v)} arbitrage "
                         f"violation(s)</b> involve this expiry</span>")
            parts.append(": marked in red on the smile." if shown else
                         " — outside the plotted range (tick 'draw beyond the quotes').")
        return "<div class='pmnb-readout'>" + "".join(parts) + "</div>"

    @staticmethod
    def _stats_html(d: dict) -> str:
        st = d["stats"]
        cols = {"key": "expiry", "T": "days", "n_quoted": "quoted",
                "rmse_mid_volpts": "RMSE (vol pts)", "inside_band": "inside band"}
        if d["holdout"]:
            cols.update({"n_heldout": "held out", "heldout_rmse_mid_volpts": "held-out RMSE",
                         "heldout_inside_band": "held-out inside"})
        t = st[[c for c in cols if c in st.columns]].rename(columns=cols).copy()
        t["expiry"] = [f"{k:%Y-%m-%d}" if isinstance(k, pd.Timestamp) else str(k)
                       for k in st["key"]]
        t["days"] = st["T"] * 365.0
        for c in ("inside band", "held-out inside"):
            if c in t.columns:
                t[c] = [VolSurfaceExplorer._pct(x) for x in t[c]]
        for c in ("RMSE (vol pts)", "held-out RMSE"):
            if c in t.columns:
                t[c] = [VolSurfaceExplorer._num(x) for x in t[c]]
        t.insert(0, "", ["▶" if j == d["selected_row"] else "" for j in range(len(t))])
        return t.to_html(index=False, float_format=lambda v: f"{v:,.1f}", na_rep="",
                         classes="pmnb-table", border=0)

    @staticmethod
    def _arbitrage_html(d: dict) -> str:
        a = d["arbitrage"]
        if a.empty:
            return ("<div class='pmnb-ok'>No butterfly (g(k) &lt; 0), Lee wing or calendar "
                    "(total variance decreasing in T) violation on pmnb's check grids.</div>")
        t = a.copy()
        name = (lambda k: "" if k is None or (not isinstance(k, str) and pd.isna(k)) else
                (f"{k:%Y-%m-%d}" if isinstance(k, pd.Timestamp) else str(k)))
        t["expiry"] = [name(e) + (f" → {name(f)}" if name(f) else "")
                       for e, f in zip(a["expiry"], a["expiry_to"])]
        t["within_quotes"] = ["unknown" if w is None else ("yes" if w else "no (wings)")
                              for w in a["within_quotes"]]
        t = t.drop(columns=["expiry_to"]).rename(columns={
            "k_from": "k from", "k_to": "k to", "strike_from": "strike from",
            "strike_to": "strike to", "worst": "worst g or Δw", "k_at_worst": "at k",
            "within_quotes": "within the quotes"})
        rows = t.to_html(index=False, float_format=lambda v: f"{v:,.4g}", na_rep="",
                         classes="pmnb-table", border=0)
        return f"<div style='color:#8b0000'>{len(a)} violation(s):</div>" + rows
