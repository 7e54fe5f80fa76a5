"""Compiled kernels (private): Cython wrappers over C loops. Use :mod:`pmnb.pricing`."""
