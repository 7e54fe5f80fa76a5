"""What the browser tests do with each Voila app: one :class:`AppSpec` per notebook.

Adding an app is one entry in :data:`APPS`: the notebook, what must be visible once it has
rendered, one control to move (found by the label the user sees), and the numbers that must
change, each with a regular expression that reads it from the page and a function that computes
the expected value through pmnb's public API in the test process.

``expected`` receives the control's displayed value after the move (text: a slider's readout,
an input's value, a dropdown's selected label) and ``read``, a function ``read(label) -> str``
giving the displayed value of any other control of the app (so a spec does not repeat the
notebook's defaults; :func:`num` parses numbers). It returns the number the app must show.

This module imports only pmnb and the standard library (it is collected by ``--doctest-modules``
even where no browser is installed).

Examples
--------
>>> sorted(APPS) == sorted(spec.name for spec in APPS.values())
True
>>> parse_number("1,234.50 USD")
(1234.5, 2)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import pmnb

__all__ = ["APPS", "AppSpec", "Check", "Control", "agrees", "num", "parse_number"]

Reader = Callable[[str], str]

_NUMBER = re.compile(r"[-+\u2212]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> tuple[float, int]:
    """The first number in ``text`` (thousands commas allowed, a Unicode minus accepted) and its
    count of decimals (the displayed precision).

    Examples
    --------
    >>> parse_number("delta -0.2993;")
    (-0.2993, 4)
    >>> parse_number("90,000")
    (90000.0, 0)
    """
    m = _NUMBER.search(text)
    if m is None:
        raise ValueError(f"no number in {text!r}")
    s = m.group(0).replace(",", "").replace("\u2212", "-")
    mantissa = s.split("e")[0].split("E")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return float(s), decimals


def agrees(shown: str, expected: float) -> bool:
    """True when the displayed text ``shown`` is ``expected`` rounded to the shown precision
    (half a unit in the last displayed place, plus 1e-9 relative for the float rounding of
    the two computations).

    Examples
    --------
    >>> agrees("0.2993", 0.29926986), agrees("0.2994", 0.29926986)
    (True, False)
    """
    value, decimals = parse_number(shown)
    return abs(value - expected) <= 0.5 * 10.0 ** -decimals + 1e-9 * abs(expected)


@dataclass(frozen=True)
class Control:
    """One ipywidgets control, found by its description label inside ``within``.

    ``kind``: ``"slider"`` (type ``value`` into the slider's editable readout and press Enter),
    ``"slider_keys"`` (focus the noUiSlider handle and press ArrowRight ``value`` times, or
    ArrowLeft when negative), ``"text"`` (fill the input and press Enter) or ``"dropdown"``
    (select the first option whose label starts with ``value``).

    Examples
    --------
    >>> Control("Vol (%)", kind="slider_keys", value=4).kind
    'slider_keys'
    """

    label: str
    kind: str = "slider"
    value: object = None
    within: str = "body"

    def __post_init__(self):
        if self.kind not in ("slider", "slider_keys", "text", "dropdown"):
            raise ValueError(f"Control.kind: {self.kind!r}; accepted: slider, slider_keys, "
                             f"text, dropdown")


@dataclass(frozen=True)
class Check:
    """A number the app shows: ``pattern``'s group 1, searched in the text of ``selector``,
    must equal ``expected(control_text, read)`` at its displayed precision.

    Examples
    --------
    >>> c = Check(".x", r"delta (\\S+)", lambda v, read: v)
    >>> c.selector
    '.x'
    """

    selector: str
    pattern: str
    expected: Callable[[str, Reader], float]


@dataclass(frozen=True)
class AppSpec:
    """One Voila app (a notebook under ``notebooks/``) as the browser tests drive it.

    Parameters
    ----------
    notebook : str
        File name in ``notebooks/``; served at ``/voila/render/<notebook>``.
    ready : tuple of str
        CSS selectors that must all be visible for the app to count as rendered.
    control : Control or None
        The control moved by the interaction test; ``None`` only for an app without controls,
        with ``static_reason`` saying why.
    checks : tuple of Check
        The numbers that must change to the API's values after the move.
    screenshot : str
        CSS selector of the area saved as the app's screenshot ("" for the first viewport).
    static_reason : str
        Why an app has no control (required when ``control`` is None).

    Examples
    --------
    >>> APPS["greeks_school"].url_path
    '/voila/render/greeks_school.ipynb'
    """

    notebook: str
    ready: tuple[str, ...]
    control: Control | None = None
    checks: tuple[Check, ...] = ()
    screenshot: str = ""
    static_reason: str = ""

    @property
    def name(self) -> str:
        """The notebook's stem, used for screenshot and timing keys."""
        return self.notebook.removesuffix(".ipynb")

    @property
    def url_path(self) -> str:
        """Path of the app on the Voila server."""
        return f"/voila/render/{self.notebook}"


# ------------------------------------------------------------------------------------------------
# Expected values, through pmnb's public API only
# ------------------------------------------------------------------------------------------------

def num(text: str) -> float:
    """The number in a displayed text (``"90,000"`` -> 90000.0).

    Examples
    --------
    >>> num("-20.00")
    -20.0
    """
    return parse_number(text)[0]


def _explorer_call(spot: str, read: Reader, settlement: str, greek: str) -> float:
    """GreeksExplorer's "call" strategy at forward ``spot``: Black-76 on the forward (Black 1976),
    the strike, days, vol and rate read from the app's own controls, desk units, as
    ``pmnb.greeks`` documents them (coin value and coin delta for ``settlement="inverse"``)."""
    g = pmnb.greeks(num(spot), num(read("Strike K")), num(read("Days to expiry")) / 365.0,
                    num(read("Vol (%)")) / 100.0, num(read("Rate (%)")) / 100.0,
                    option_type="call", model="black76", settlement=settlement,
                    greeks=("price", "delta"), units="desk")
    return float(g[greek])


@functools.cache
def _svi_report(currency: str):
    """:func:`pmnb.vol.fit_svi_surface` on the shipped 2025-12-31 Deribit chain (what the
    vol_surface notebook fits): the per-expiry fit report."""
    from pmnb.vol import fit_svi_surface

    chain = pmnb.datasets.load_deribit_chain("2025-12-31")
    return fit_svi_surface(chain, currency=currency)[1]


def _svi_stat(expiry_label: str, read: Reader, column: str) -> float:
    """The fit report's ``column`` at the expiry whose option label is shown (``YYYY-MM-DD
    (d days)``), for the underlying shown."""
    report = _svi_report(read("Underlying").strip())
    row = report[report["expiry"].dt.strftime("%Y-%m-%d") == expiry_label.strip()[:10]]
    if len(row) != 1:
        raise ValueError(f"expiry {expiry_label!r}: {len(row)} rows in the fit report")
    return float(row[column].iloc[0])


@functools.cache
def _demo():
    import pmnb.demo

    return pmnb.demo.portfolio()


def _ladder(move_pct: str, read: Reader, what: str) -> float:
    """LiquidationLadder's readout at a move of ``move_pct`` % of every price:
    :func:`pmnb.margin.compute` of the account and model shown, on ``market.shocked(move)``
    (the demo portfolio, as the margin_liquidation notebook uses it); ``what`` is "equity",
    "maintenance" or "price" (the underlying's spot moved by the same percentage)."""
    accounts, collateral, book, market = _demo()
    s = num(move_pct) / 100.0
    if what == "price":  # the spec's pattern reads the BTC price (the deribit-pm account)
        return market.spot("BTC") * (1.0 + s)
    rep = pmnb.margin.compute(book, market.shocked(s), read("Model").strip(),
                              account=read("Account").strip(), collateral=collateral)
    return float(getattr(rep, what))


def _exposure(key: str, group: str, column: str) -> float:
    """PositionExplorer's exposures table: ``df.pm.exposures(market, by=[key])`` of the demo
    book (USD columns first: ``delta_usd`` is the first number of a row)."""
    accounts, collateral, book, market = _demo()
    return float(book.pm.exposures(market, by=[key.strip()]).loc[group, column])


_GREEKS_EXPLORER = ".widget-vbox:has(.pmnb-readout):has(.bqplot)"
# a plotly FigureWidget's curves, drawn (an empty FigureWidget has no path.js-line)
_PLOTLY_LINES = ".js-plotly-plot .scatterlayer path.js-line"
# bqplot Lines marks, drawn
_BQPLOT_LINES = ".bqplot path.line"
_VOL_EXPLORER = ".widget-vbox:has(.pmnb-readout):has(.js-plotly-plot)"
_LADDER = ".widget-vbox:has(.pmnb-readout):has(.bqplot)"
_NUMBER_RE = r"([-\u2212\d.,]+)"

APPS: dict[str, AppSpec] = {spec.name: spec for spec in (
    AppSpec(
        notebook="greeks_school.ipynb",
        ready=(".pmnb-readout", ".widget-slider .noUi-handle",
               f"{_GREEKS_EXPLORER} {_BQPLOT_LINES}"),     # the explorer's curves, drawn
        control=Control("Spot / fwd F", kind="slider", value="90000", within=_GREEKS_EXPLORER),
        checks=(
            Check(".pmnb-readout", r"Black \(linear\) delta\s*" + _NUMBER_RE,
                  lambda v, read: _explorer_call(v, read, "linear", "delta")),
            Check(".pmnb-readout", r"premium in coin\s*" + _NUMBER_RE,
                  lambda v, read: _explorer_call(v, read, "inverse", "price")),
            Check(".pmnb-readout", r"coin \(inverse\) delta\s*" + _NUMBER_RE,
                  lambda v, read: _explorer_call(v, read, "inverse", "delta")),
        ),
        screenshot=_GREEKS_EXPLORER,
    ),
    AppSpec(
        notebook="portfolio_overview.ipynb",
        ready=(".jp-OutputArea-output table.dataframe", ".jp-RenderedImage img",
               ".pmnb-exposures table.pmnb-table"),
        control=Control("Exposures by", kind="dropdown", value="account"),  # from "venue"
        checks=(
            # by venue before the move, by account after: deribit splits into its two accounts
            Check(".pmnb-exposures", r"deribit(?:-pm)?\s+" + _NUMBER_RE,
                  lambda v, read: _exposure(v, "deribit-pm", "delta_usd")),
            Check(".pmnb-exposures", r"binance(?:-usdm)?\s+" + _NUMBER_RE,
                  lambda v, read: _exposure(v, "binance-usdm", "delta_usd")),
        ),
        screenshot="",
    ),
    AppSpec(
        notebook="vol_surface.ipynb",
        ready=(".pmnb-readout", f"{_VOL_EXPLORER} {_PLOTLY_LINES}"),
        control=Control("Expiry", kind="dropdown", value="2026-06-26", within=_VOL_EXPLORER),
        checks=(
            Check(".pmnb-readout", r"RMSE of the fit vs mid\s*" + _NUMBER_RE,
                  lambda v, read: _svi_stat(v, read, "rmse_mid_volpts")),
            Check(".pmnb-readout", r"inside the bid/ask band\s*" + _NUMBER_RE,
                  lambda v, read: 100.0 * _svi_stat(v, read, "inside_band")),
        ),
        screenshot=_VOL_EXPLORER,
    ),
    AppSpec(
        notebook="margin_liquidation.ipynb",
        ready=(".pmnb-readout", f"{_LADDER} {_BQPLOT_LINES}"),
        control=Control("Move %", kind="slider", value="-20", within=_LADDER),
        checks=(
            Check(".pmnb-readout", r"At BTC\s*" + _NUMBER_RE,
                  lambda v, read: _ladder(v, read, "price")),
            Check(".pmnb-readout", r"equity\s*" + _NUMBER_RE,
                  lambda v, read: _ladder(v, read, "equity")),
            Check(".pmnb-readout", r"maintenance\s*" + _NUMBER_RE,
                  lambda v, read: _ladder(v, read, "maintenance")),
        ),
        screenshot=_LADDER,
    ),
)}
