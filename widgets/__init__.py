"""pmnb_widgets: the interactive layer of pmnb (ipywidgets explorers for JupyterLab and Voila).

Source lives in ``widgets/`` and installs as the import package ``pmnb_widgets``. It calls only
pmnb's public API; ``pmnb`` itself never imports it.

Explorers (each one class, itself a displayable ``ipywidgets.VBox``, also reachable as ``.widget``):

* :class:`GreeksExplorer` — one option or a strategy: value, payoff and a chosen greek vs the
  underlying and vs time, linear and inverse side by side.
* :class:`PositionExplorer` — the book with per-row greeks, exposures by a key, coin ⇄ USD.
* :class:`VolSurfaceExplorer` — fitted SVI smiles over the bid/ask IVs, the surface as a heatmap
  or in 3-D, butterfly and calendar arbitrage highlighted.
* :class:`MarginWhatIf` — resize, remove or add trades and see margin and liquidation prices
  before → after; Deribit standard vs portfolio margin side by side.
* :class:`LiquidationLadder` — equity and maintenance margin vs spot, liquidation prices and
  their distances (%, USD, daily sigmas).

Examples
--------
>>> import pmnb_widgets, pmnb
>>> pmnb_widgets.__version__ == pmnb.__version__
True
"""

from pmnb import __version__

from .greeks_explorer import STRATEGIES, GreeksExplorer
from .liquidation_ladder import LiquidationLadder
from .margin_whatif import MarginWhatIf
from .position_explorer import GROUP_KEYS, PositionExplorer
from .vol_surface_explorer import HOLDOUT_EVERY, VIEWS, VolSurfaceExplorer

__all__ = ["GROUP_KEYS", "GreeksExplorer", "HOLDOUT_EVERY", "LiquidationLadder", "MarginWhatIf",
           "PositionExplorer", "STRATEGIES", "VIEWS", "VolSurfaceExplorer", "__version__"]
