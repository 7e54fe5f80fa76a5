"""Smile and surface fitting (raw SVI), interpolation and arbitrage checks."""

from pmnb.vol.chain import chain_quotes, fit_svi_surface
from pmnb.vol.surface import SVISlice, SVISurface
from pmnb.vol.svi import SVIParams, butterfly_check, fit_svi, svi_total_variance

__all__ = ["SVIParams", "SVISlice", "SVISurface", "butterfly_check", "chain_quotes", "fit_svi",
           "fit_svi_surface", "svi_total_variance"]
