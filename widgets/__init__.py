"""pmnb_widgets: the interactive layer of pmnb (ipywidgets explorers for JupyterLab and Voila).

Source lives in ``widgets/`` and installs as the import package ``pmnb_widgets``. It calls only
pmnb's public API; ``pmnb`` itself never imports it. The explorers arrive with the interactive
layer issue; this package currently provides the version and the guard below.

Examples
--------
>>> import pmnb_widgets, pmnb
>>> pmnb_widgets.__version__ == pmnb.__version__
True
"""

from pmnb import __version__

__all__ = ["__version__"]
