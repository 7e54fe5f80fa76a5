"""GreeksExplorer: teach option greeks, linear (USD-settled) beside inverse (coin-settled).

Every number comes from :func:`pmnb.greeks` (Black-76 on the forward, as Deribit prices its
options); this module only chooses the inputs, adds legs up by their sizes and draws.

Drawn with bqplot (2-D marks whose ``x``/``y`` are widget state: the kernel sends the new
arrays and the browser redraws), chosen from ``benchmarks/plotting.py``'s measurements in Voila
and Debian's chromium: first render 3.5 s and a slider update 20 ms, against 9.5 s / 48 ms for a
plotly ``FigureWidget``, 4.2 s / 137 ms for ipympl and 4.7 s / 112 ms for the previous
matplotlib PNG (plotly is kept for 3-D, in the VolSurfaceExplorer).
"""

from __future__ import annotations

import math

import ipywidgets as W
import numpy as np

import pmnb

from ._common import friendly_message, status_html, timer

__all__ = ["GreeksExplorer", "STRATEGIES"]

#: Strategy name -> legs ``(option_type, strike_rule, size, expiry_rule)``.
#: ``strike_rule``: "K", "K-W", "K+W" (centre strike K, wing width W) or "underlying";
#: ``expiry_rule``: "T" (the days slider) or "T+gap" (calendar far leg).
#: The underlying leg of the covered call is priced by pmnb itself as a call struck at the
#: smallest accepted strike (1e-12), i.e. the discounted forward, so the widget computes nothing.
STRATEGIES: dict[str, tuple[tuple[str, str, float, str], ...]] = {
    "call": (("call", "K", 1.0, "T"),),
    "put": (("put", "K", 1.0, "T"),),
    "straddle": (("call", "K", 1.0, "T"), ("put", "K", 1.0, "T")),
    "strangle": (("put", "K-W", 1.0, "T"), ("call", "K+W", 1.0, "T")),
    "call spread": (("call", "K", 1.0, "T"), ("call", "K+W", -1.0, "T")),
    "put spread": (("put", "K", 1.0, "T"), ("put", "K-W", -1.0, "T")),
    "risk reversal": (("put", "K-W", -1.0, "T"), ("call", "K+W", 1.0, "T")),
    "covered call": (("call", "underlying", 1.0, "T"), ("call", "K", -1.0, "T")),
    "calendar": (("call", "K", -1.0, "T"), ("call", "K", 1.0, "T+gap")),
}

_UNDERLYING_STRIKE = 1e-12  # smallest strike pmnb accepts: a zero-strike call is the forward

EXPLANATION = (
    "<b>Why inverse differs.</b> A linear option pays USD; an inverse (coin-settled, Deribit-style) "
    "option pays the same USD amount converted to coin at expiry, so its value in coin is "
    "V<sub>coin</sub> = V<sub>USD</sub> / F. The premium you hold is itself coin, so when the "
    "price rises the coin you already hold is worth more in USD, and fewer coins are needed to "
    "hedge: the <i>coin delta</i> (Deribit's net transactional delta) is "
    "<b>Black delta − premium in coin</b>. A deep in-the-money call therefore has a coin delta "
    "near K/F instead of 1, and a put's coin delta is more negative than its Black delta."
)


def _years(days: float) -> float:
    return float(days) / 365.0


class GreeksExplorer(W.VBox):
    """One option or a strategy, linear vs inverse side by side.

    Parameters
    ----------
    strategy : str
        A key of :data:`STRATEGIES`.
    spot : float
        Underlying (forward) price, USD per coin.
    strike, width : float
        Centre strike and wing width (USD) for spreads, strangles and risk reversals.
    vol_pct, days, rate_pct : float
        Volatility (%), days to the first expiry, discount rate (%).
    greek : str
        The greek drawn under the value curves; any of :data:`pmnb.GREEKS` except "price".
    calendar_gap_days : float
        Days between the near and the far leg of the calendar.
    n_points : int
        Points on the spot axis.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The explorer itself (``display(explorer.widget)`` or ``display(explorer)``).
    figure : ipywidgets.GridBox
        Six bqplot figures, linear (left, USD) beside inverse (right, coin): value and payoff vs
        spot, the greek vs spot, the greek vs time to the first expiry; ``None`` with
        ``render=False``. ``marks[(settlement, key)]`` holds each drawn mark (keys of
        :attr:`MARKS`), ``figures[(settlement, row)]`` each figure.
    last_timing : dict
        ``compute_ms`` (pmnb calls) and ``render_ms`` (figure update) of the last update.

    Examples
    --------
    >>> from pmnb_widgets import GreeksExplorer
    >>> ex = GreeksExplorer(strategy="straddle", render=False)
    >>> ex.spot.value = 90_000.0
    >>> data = ex.figure_data()
    >>> data["spot_now"], sorted(data["linear"])
    (90000.0, ['greek', 'greek_vs_time', 'payoff', 'value'])
    """

    def __init__(self, strategy: str = "call", spot: float = 100_000.0,
                 strike: float = 100_000.0, width: float = 10_000.0, vol_pct: float = 60.0,
                 days: float = 30.0, rate_pct: float = 0.0, greek: str = "delta",
                 calendar_gap_days: float = 30.0, n_points: int = 121,
                 n_time_points: int = 61, render: bool = True) -> None:
        cu = dict(continuous_update=False)  # drags only recompute on release
        style = {"description_width": "110px"}
        lay = W.Layout(width="360px")
        self.strategy = W.Dropdown(options=list(STRATEGIES), value=strategy,
                                   description="Strategy", style=style, layout=lay)
        self.greek = W.Dropdown(options=[g for g in pmnb.GREEKS if g != "price"], value=greek,
                                description="Greek", style=style, layout=lay)
        self.spot = W.FloatSlider(value=spot, min=1_000.0, max=300_000.0, step=100.0,
                                  description="Spot / fwd F", readout_format=",.0f",
                                  style=style, layout=lay, **cu)
        self.vol = W.FloatSlider(value=vol_pct, min=1.0, max=300.0, step=0.5,
                                 description="Vol (%)", style=style, layout=lay, **cu)
        self.days = W.FloatSlider(value=days, min=0.5, max=730.0, step=0.5,
                                  description="Days to expiry", style=style, layout=lay, **cu)
        self.rate = W.FloatSlider(value=rate_pct, min=-5.0, max=20.0, step=0.25,
                                  description="Rate (%)", style=style, layout=lay, **cu)
        self.strike = W.FloatText(value=strike, description="Strike K", style=style,
                                  layout=lay, **cu)
        self.width = W.FloatText(value=width, description="Wing width W", style=style,
                                 layout=lay, **cu)
        self.gap = W.FloatText(value=calendar_gap_days, description="Calendar gap (d)",
                               style=style, layout=lay, **cu)
        self.status = W.HTML(value="")
        self.readout = W.HTML(value="")
        self.explanation = W.HTML(value=EXPLANATION, layout=W.Layout(max_width="760px"))
        self.n_points = int(n_points)
        self.n_time_points = int(n_time_points)
        self.render_enabled = bool(render)
        self.last_timing: dict[str, float] = {}
        self._data: dict | None = None
        self.figure = None
        controls = W.HBox([W.VBox([self.strategy, self.greek, self.strike, self.width, self.gap]),
                           W.VBox([self.spot, self.vol, self.days, self.rate])])
        self.update()
        if self._data is None:
            raise ValueError(f"GreeksExplorer: the initial inputs are invalid: "
                             f"{self.status.value}")
        self.marks: dict = {}
        self.figures: dict = {}
        if self.render_enabled:
            self.figure = self._make_figure()
            self._render(self._data)
        parts = [controls, self.status] + ([self.figure] if self.figure is not None else [])
        super().__init__(parts + [self.readout, self.explanation])
        for w in (self.strategy, self.greek, self.spot, self.vol, self.days, self.rate,
                  self.strike, self.width, self.gap):
            w.observe(self._on_change, names="value")

    @property
    def widget(self) -> W.VBox:
        """The displayable widget (the explorer itself)."""
        return self

    # ---- inputs -> legs ------------------------------------------------------------------
    def legs(self) -> list[dict]:
        """The current strategy as legs: option_type, strike (USD), size, T (years)."""
        K, Wd = float(self.strike.value), float(self.width.value)
        T = _years(self.days.value)
        out = []
        for option_type, strike_rule, size, expiry_rule in STRATEGIES[self.strategy.value]:
            strike = {"K": K, "K-W": K - Wd, "K+W": K + Wd,
                      "underlying": _UNDERLYING_STRIKE}[strike_rule]
            t = T + (_years(self.gap.value) if expiry_rule == "T+gap" else 0.0)
            out.append({"option_type": option_type, "strike": strike, "size": size, "T": t})
        return out

    def _strategy_greeks(self, x, legs, settlement: str, names, at_first_expiry: bool = False,
                         elapsed=None):
        """Size-weighted sum over legs of :func:`pmnb.greeks` on the spot grid ``x`` (or, with
        ``elapsed`` (years), at spot ``x[0]`` with every leg's time shortened by ``elapsed``)."""
        x = np.asarray(x, dtype=float)
        K = np.array([[leg["strike"]] for leg in legs])
        T = np.array([[leg["T"]] for leg in legs])
        if at_first_expiry:
            T = T - T.min()
        if elapsed is not None:
            T = np.maximum(T - np.asarray(elapsed, dtype=float)[None, :], 0.0)
            x = np.full(T.shape[1], x[0])
        size = np.array([[leg["size"]] for leg in legs])
        types = np.array([[leg["option_type"]] for leg in legs])
        g = pmnb.greeks(x[None, :], K, T, self.vol.value / 100.0, self.rate.value / 100.0,
                        option_type=types, model="black76", settlement=settlement,
                        greeks=names, units="desk")
        return {name: (size * g[name]).sum(axis=0) for name in names}

    # ---- update ---------------------------------------------------------------------------
    def _on_change(self, change) -> None:
        self.update()

    def _validate(self) -> None:
        for w, name in ((self.strike, "Strike K"), (self.width, "Wing width W"),
                        (self.gap, "Calendar gap")):
            v = float(w.value)
            if not math.isfinite(v):
                raise ValueError(f"{name}: {v} is not a finite number")
        if float(self.width.value) < 0:
            raise ValueError(f"Wing width W: {self.width.value} is negative; accepted: W >= 0")
        if float(self.gap.value) <= 0 and self.strategy.value == "calendar":
            raise ValueError(f"Calendar gap: {self.gap.value} days; accepted: > 0 days")

    def update(self) -> None:
        """Recompute through pmnb and redraw; on failure keep the last good state and show why."""
        timing: dict[str, float] = {}
        try:
            with timer(timing, "compute_ms"):
                self._validate()
                legs = self.legs()
                S = float(self.spot.value)
                strikes = [leg["strike"] for leg in legs if leg["strike"] > _UNDERLYING_STRIKE]
                lo = 0.5 * min([S, *strikes])
                hi = 1.5 * max([S, *strikes])
                x = np.linspace(lo, hi, self.n_points)
                greek = self.greek.value
                names = ("price", greek) if greek != "price" else ("price",)
                first = min(leg["T"] for leg in legs)
                elapsed = np.linspace(0.0, first, self.n_time_points)
                data = {"spot": x, "spot_now": S, "greek_name": greek,
                        "strategy": self.strategy.value, "legs": legs,
                        "days_left": (first - elapsed) * 365.0}
                for settlement in ("linear", "inverse"):
                    curve = self._strategy_greeks(x, legs, settlement, names)
                    in_time = self._strategy_greeks([S], legs, settlement, (greek,),
                                                    elapsed=elapsed)
                    payoff = self._strategy_greeks(x, legs, settlement, ("price",),
                                                   at_first_expiry=True)
                    now = self._strategy_greeks([S], legs, settlement, ("price", "delta"))
                    data[settlement] = {"value": curve["price"], "greek": curve[greek],
                                        "payoff": payoff["price"],
                                        "greek_vs_time": in_time[greek]}
                    data[settlement + "_now"] = {k: float(v[0]) for k, v in now.items()}
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a traceback
            self.status.value = status_html(friendly_message(exc))
            return
        self._data = data
        self.status.value = ""
        self.readout.value = self._readout_html(data)
        if self.figure is not None:
            try:
                with timer(timing, "render_ms"):
                    self._render(data)
            except Exception as exc:  # noqa: BLE001
                self.status.value = status_html("drawing failed: " + friendly_message(exc))
        self.last_timing = timing

    def figure_data(self) -> dict:
        """The arrays drawn: ``spot`` grid and, per settlement ("linear" in USD, "inverse" in
        coin), ``value``, ``greek`` (desk units), ``payoff`` (value at the first expiry) and
        ``greek_vs_time`` (the greek at the current spot against ``days_left`` to the first
        expiry); ``linear_now`` / ``inverse_now`` hold price and delta at the current spot."""
        return self._data

    @staticmethod
    def _readout_html(d: dict) -> str:
        lin, inv = d["linear_now"], d["inverse_now"]
        return ("<div class='pmnb-readout'>At F = {:,.0f}: Black (linear) delta "
                "<b>{:.4f}</b>; premium in coin <b>{:.6f}</b>; coin (inverse) delta "
                "<b>{:.4f}</b>; linear value <b>{:,.2f} USD</b>.</div>").format(
                    d["spot_now"], lin["delta"], inv["price"], inv["delta"], lin["price"])

    #: Drawn marks per settlement: key -> (row of the figure, label).
    MARKS = {"value": (0, "value now"), "payoff": (0, "value at first expiry"),
             "now": (0, "spot now"), "greek": (1, "greek vs spot"),
             "greek_vs_time": (2, "greek vs time")}
    _COLORS = {"value": "#1f77b4", "payoff": "#ff7f0e", "now": "grey", "greek": "#2ca02c",
               "greek_vs_time": "#9467bd"}

    def _make_figure(self) -> W.GridBox:
        import bqplot as bq

        cells = []
        for row in range(3):
            for settlement in ("linear", "inverse"):
                xs = bq.LinearScale(reverse=row == 2)
                ys = bq.LinearScale()
                marks = []
                for key, (r, label) in self.MARKS.items():
                    if r != row:
                        continue
                    if key == "now":
                        mark = bq.Scatter(x=[0.0], y=[0.0], scales={"x": xs, "y": ys},
                                          colors=[self._COLORS[key]], default_size=48,
                                          labels=[label], display_legend=False)
                    else:
                        mark = bq.Lines(x=[0.0], y=[0.0], scales={"x": xs, "y": ys},
                                        colors=[self._COLORS[key]], labels=[label],
                                        line_style="dashed" if key == "payoff" else "solid",
                                        display_legend=row == 0 and settlement == "linear")
                    self.marks[settlement, key] = mark
                    marks.append(mark)
                xlabel = ("days to first expiry" if row == 2 else
                          "underlying (forward) price, USD")
                fig = bq.Figure(marks=marks, axes=[
                    bq.Axis(scale=xs, label=xlabel, num_ticks=5, tick_format=",.0f"),
                    bq.Axis(scale=ys, side="left", num_ticks=5)],
                    fig_margin=dict(top=30, bottom=45, left=65, right=15),
                    legend_location="top-left", animation_duration=0,
                    layout=W.Layout(width="100%", height="250px"))
                self.figures[settlement, row] = fig
                cells.append(fig)
        return W.GridBox(cells, layout=W.Layout(grid_template_columns="1fr 1fr",
                                                width="100%", max_width="1000px"))

    def _render(self, d: dict) -> None:
        g, strat, F = d["greek_name"], d["strategy"], d["spot_now"]
        titles = {0: f"{strat} value", 1: f"{g} vs spot", 2: f"{g} vs time at F = {F:,.0f}"}
        for settlement, unit in (("linear", "USD"), ("inverse", "coin")):
            for key in self.MARKS:
                mark = self.marks[settlement, key]
                with mark.hold_sync():
                    if key == "now":
                        mark.x, mark.y = [F], [d[settlement + "_now"]["price"]]
                    elif key == "greek_vs_time":
                        mark.x, mark.y = d["days_left"], d[settlement][key]
                    else:
                        mark.x, mark.y = d["spot"], d[settlement][key]
            for row in range(3):
                self.figures[settlement, row].title = (
                    f"{settlement} ({unit}): {titles[row]}")
