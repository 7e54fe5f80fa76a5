"""GreeksExplorer: teach option greeks, linear (USD-settled) beside inverse (coin-settled).

Every number comes from :func:`pmnb.greeks` (Black-76 on the forward, as Deribit prices its
options); this module only chooses the inputs, adds legs up by their sizes and draws.
"""

from __future__ import annotations

import math

import ipywidgets as W
import numpy as np

import pmnb

from ._common import figure_png, friendly_message, status_html, timer

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
    last_timing : dict
        ``compute_ms`` (pmnb calls) and ``render_ms`` (matplotlib PNG) of the last update.

    Examples
    --------
    >>> from pmnb_widgets import GreeksExplorer
    >>> ex = GreeksExplorer(strategy="straddle", render=False)
    >>> ex.spot.value = 90_000.0
    >>> data = ex.figure_data()
    >>> data["spot_now"], sorted(data["linear"])
    (90000.0, ['greek', 'payoff', 'value'])
    """

    def __init__(self, strategy: str = "call", spot: float = 100_000.0,
                 strike: float = 100_000.0, width: float = 10_000.0, vol_pct: float = 60.0,
                 days: float = 30.0, rate_pct: float = 0.0, greek: str = "delta",
                 calendar_gap_days: float = 30.0, n_points: int = 121,
                 render: bool = True) -> None:
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
        self.image = W.Image(format="png", layout=W.Layout(max_width="900px"))
        self.n_points = int(n_points)
        self.render_enabled = bool(render)
        self.last_timing: dict[str, float] = {}
        self._data: dict | None = None
        self._fig = None
        controls = W.HBox([W.VBox([self.strategy, self.greek, self.strike, self.width, self.gap]),
                           W.VBox([self.spot, self.vol, self.days, self.rate])])
        super().__init__([controls, self.status, self.image, self.readout, self.explanation])
        for w in (self.strategy, self.greek, self.spot, self.vol, self.days, self.rate,
                  self.strike, self.width, self.gap):
            w.observe(self._on_change, names="value")
        self.update()
        if self._data is None:
            raise ValueError(f"GreeksExplorer: the initial inputs are invalid: "
                             f"{self.status.value}")

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

    def _strategy_greeks(self, x, legs, settlement: str, names, at_first_expiry: bool = False):
        """Size-weighted sum over legs of :func:`pmnb.greeks` on the grid ``x``."""
        x = np.asarray(x, dtype=float)
        K = np.array([[leg["strike"]] for leg in legs])
        T = np.array([[leg["T"]] for leg in legs])
        if at_first_expiry:
            T = T - T.min()
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
                data = {"spot": x, "spot_now": S, "greek_name": greek,
                        "strategy": self.strategy.value, "legs": legs}
                for settlement in ("linear", "inverse"):
                    curve = self._strategy_greeks(x, legs, settlement, names)
                    payoff = self._strategy_greeks(x, legs, settlement, ("price",),
                                                   at_first_expiry=True)
                    now = self._strategy_greeks([S], legs, settlement, ("price", "delta"))
                    data[settlement] = {"value": curve["price"], "greek": curve[greek],
                                        "payoff": payoff["price"]}
                    data[settlement + "_now"] = {k: float(v[0]) for k, v in now.items()}
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a traceback
            self.status.value = status_html(friendly_message(exc))
            return
        self._data = data
        self.status.value = ""
        self.readout.value = self._readout_html(data)
        if self.render_enabled:
            try:
                with timer(timing, "render_ms"):
                    self.image.value = self._render(data)
            except Exception as exc:  # noqa: BLE001
                self.status.value = status_html("drawing failed: " + friendly_message(exc))
        self.last_timing = timing

    def figure_data(self) -> dict:
        """The arrays drawn: ``spot`` grid and, per settlement ("linear" in USD, "inverse" in
        coin), ``value``, ``greek`` (desk units) and ``payoff`` (value at the first expiry);
        ``linear_now`` / ``inverse_now`` hold price and delta at the current spot."""
        return self._data

    @staticmethod
    def _readout_html(d: dict) -> str:
        lin, inv = d["linear_now"], d["inverse_now"]
        return ("<div class='pmnb-readout'>At F = {:,.0f}: Black (linear) delta "
                "<b>{:.4f}</b>; premium in coin <b>{:.6f}</b>; coin (inverse) delta "
                "<b>{:.4f}</b>; linear value <b>{:,.2f} USD</b>.</div>").format(
                    d["spot_now"], lin["delta"], inv["price"], inv["delta"], lin["price"])

    def _render(self, d: dict) -> bytes:
        from matplotlib.figure import Figure

        if self._fig is None:
            fig = Figure(figsize=(9.0, 5.6), dpi=72)
            axes = fig.subplots(2, 2, sharex=True)
            fig.subplots_adjust(left=0.09, right=0.98, top=0.94, bottom=0.09, hspace=0.3,
                                wspace=0.25)
            lines = {}
            for j, settlement in enumerate(("linear", "inverse")):
                ax_v, ax_g = axes[0, j], axes[1, j]
                lines[settlement, "value"], = ax_v.plot([], [], color="C0", label="value now")
                lines[settlement, "payoff"], = ax_v.plot([], [], color="C1", ls="--",
                                                         label="value at first expiry")
                lines[settlement, "greek"], = ax_g.plot([], [], color="C2")
                lines[settlement, "vline_v"] = ax_v.axvline(0, color="grey", lw=0.8)
                lines[settlement, "vline_g"] = ax_g.axvline(0, color="grey", lw=0.8)
                ax_v.legend(loc="upper left", fontsize=8)
                ax_g.set_xlabel("underlying (forward) price, USD")
                for ax in (ax_v, ax_g):
                    ax.grid(alpha=0.3)
            self._fig, self._axes, self._lines = fig, axes, lines
        fig, axes, lines = self._fig, self._axes, self._lines
        x = d["spot"]
        for j, (settlement, unit) in enumerate((("linear", "USD"), ("inverse", "coin"))):
            for key in ("value", "payoff", "greek"):
                lines[settlement, key].set_data(x, d[settlement][key])
            for key in ("vline_v", "vline_g"):
                lines[settlement, key].set_xdata([d["spot_now"], d["spot_now"]])
            axes[0, j].set_title(f"{settlement}: {d['strategy']} value ({unit})", fontsize=10)
            axes[1, j].set_title(f"{settlement} ({unit}-settled): {d['greek_name']}, desk units",
                                 fontsize=10)
            for ax in axes[:, j]:
                ax.relim()
                ax.autoscale_view()
        return figure_png(fig)
