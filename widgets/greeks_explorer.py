"""GreeksExplorer: teach option greeks, linear (USD-settled) beside inverse (coin-settled).

Every number comes from :func:`pmnb.greeks` (Black-76 on the forward, as Deribit prices its
options); this module only chooses the inputs, adds legs up by their sizes and draws.

Drawn with a plotly ``FigureWidget`` updated in place (the browser redraws the traces; the
kernel only sends the new arrays), chosen over a matplotlib PNG after measuring both: see
``benchmarks/plotting.py``.
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
    figure : plotly.graph_objects.FigureWidget
        Value and payoff vs spot, the greek vs spot and the greek vs time to the first expiry,
        linear (left, USD) beside inverse (right, coin); ``None`` with ``render=False``.
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
        if self.render_enabled:
            # drawn before it becomes a widget: a FigureWidget sends its whole state once, when
            # the page connects, so a figure filled only after construction can show up empty
            # in Voila
            import plotly.graph_objects as go

            plain = self._make_figure()
            self._render(self._data, plain)
            self.figure = go.FigureWidget(plain)
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
                    self._render(data, self.figure)
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

    #: Trace order of :attr:`figure`, per settlement column: (row, key).
    TRACES = ((1, "value"), (1, "payoff"), (1, "now"), (2, "greek"), (3, "greek_vs_time"))

    def _make_figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=3, cols=2, horizontal_spacing=0.1, vertical_spacing=0.11,
                            subplot_titles=["linear: value (USD)", "inverse: value (coin)",
                                            "linear: greek vs spot", "inverse: greek vs spot",
                                            "linear: greek vs time", "inverse: greek vs time"])
        style = {"value": dict(color="#1f77b4"), "payoff": dict(color="#ff7f0e", dash="dash"),
                 "greek": dict(color="#2ca02c"), "greek_vs_time": dict(color="#9467bd")}
        names = {"value": "value now", "payoff": "value at first expiry", "now": "spot now",
                 "greek": "greek vs spot", "greek_vs_time": "greek vs time"}
        for col in (1, 2):
            for row, key in self.TRACES:
                trace = (go.Scatter(x=[], y=[], mode="markers", marker=dict(size=9, color="grey"),
                                    name=names[key], showlegend=col == 1)
                         if key == "now" else
                         go.Scatter(x=[], y=[], mode="lines", line=style[key], name=names[key],
                                    showlegend=col == 1))
                fig.add_trace(trace, row=row, col=col)
            fig.update_xaxes(title_text="underlying (forward) price, USD", row=2, col=col)
            fig.update_xaxes(title_text="days to first expiry", autorange="reversed", row=3,
                             col=col)
        fig.update_layout(height=760, margin=dict(l=50, r=20, t=40, b=40),
                          legend=dict(orientation="h", y=-0.08), template="plotly_white")
        return fig

    def _render(self, d: dict, fig) -> None:
        x = d["spot"]
        with fig.batch_update():
            i = 0
            for settlement, unit in (("linear", "USD"), ("inverse", "coin")):
                for _, key in self.TRACES:
                    tr = fig.data[i]
                    i += 1
                    if key == "now":
                        tr.x, tr.y = [d["spot_now"]], [d[settlement + "_now"]["price"]]
                    elif key == "greek_vs_time":
                        tr.x, tr.y = d["days_left"], d[settlement][key]
                    else:
                        tr.x, tr.y = x, d[settlement][key]
            g, strat = d["greek_name"], d["strategy"]
            for ann, text in zip(fig.layout.annotations,
                                 [f"linear: {strat} value (USD)", f"inverse: {strat} value (coin)",
                                  f"linear (USD-settled): {g} vs spot",
                                  f"inverse (coin-settled): {g} vs spot",
                                  f"linear: {g} vs time at F = {d['spot_now']:,.0f}",
                                  f"inverse: {g} vs time at F = {d['spot_now']:,.0f}"]):
                ann.text = text
