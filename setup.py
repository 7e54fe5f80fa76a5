"""Build of pmnb's compiled core.

Two static libraries are compiled first and linked into the Cython extension:

* ``pmnb_fastmath``: the hot greeks loops (``kernel.c``), the scenario and margin revaluation
  loops (``scenario.c``, ``margin.c``) and the SIMD implied-vol fast path
  (``ivfast.c``, falling back to Let's Be Rational row by row where it cannot certify), compiled
  ``-O3 -ffast-math`` so gcc calls
  glibc's libmvec SIMD ``erfc/exp/log``; run-time ISA dispatch through ``target_clones`` inside the
  source. ``PMNB_NATIVE=1`` adds ``-march=native`` (local builds only; never the default).
* ``pmnb_exact``: validation, the T = 0 / sigma = 0 limits and Let's Be Rational, compiled ``-O3``
  without fast-math (NaN compares and Jaeckel's careful arithmetic must hold); only
  ``-fno-math-errno``, which lets ``sqrt`` inline and vectorize and changes no result.

Nothing is ever *linked* with ``-ffast-math``: that would pull in crtfastmath.o, which turns on
flush-to-zero for the whole Python process. libm is linked explicitly (libmvec comes with it).
"""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

CORE = "pmnb/_core"
native = os.environ.get("PMNB_NATIVE", "") == "1"
fast_flags = ["-O3", "-ffast-math", "-fPIC", "-fno-semantic-interposition"]
exact_flags = ["-O3", "-fPIC", "-fno-fast-math", "-fno-math-errno"]
macros = []
if native:
    fast_flags.append("-march=native")
    macros.append(("PMNB_NATIVE", "1"))

openmp = sys.platform.startswith("linux")

flags_macro = ("PMNB_FAST_CFLAGS", '"' + " ".join(fast_flags) + '"')
libraries = [
    ("pmnb_fastmath", {"sources": [f"{CORE}/kernel.c", f"{CORE}/ivfast.c",
                                   f"{CORE}/scenario.c", f"{CORE}/margin.c"],
                       "include_dirs": [CORE],
                       "cflags": fast_flags, "macros": macros + [flags_macro]}),
    ("pmnb_exact", {"sources": [f"{CORE}/checks.c", f"{CORE}/lbr.c"], "include_dirs": [CORE],
                    "cflags": exact_flags, "macros": macros}),
]

exts = [
    Extension(
        f"pmnb._core.{name}",
        sources=[f"{CORE}/{name}.pyx"],
        include_dirs=[CORE, np.get_include()],
        libraries=["pmnb_fastmath", "pmnb_exact", "m"],
        extra_compile_args=["-O3"] + (["-fopenmp"] if openmp else []),
        extra_link_args=(["-fopenmp"] if openmp else []),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in ("_kernels", "_scenario", "_margin")
]

setup(
    libraries=libraries,
    ext_modules=cythonize(exts, compiler_directives={"language_level": "3"}),
)
