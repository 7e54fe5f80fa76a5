import numpy as np
import numpy.typing as npt

NOUT: int

def isa() -> str: ...
def build_flags() -> str: ...
def check_inputs(x: npt.NDArray[np.float64], K: npt.NDArray[np.float64], T: npt.NDArray[np.float64],
                 sigma: npt.NDArray[np.float64], r: npt.NDArray[np.float64],
                 q: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> tuple[int, int]: ...
def greeks(model: int, inverse: int, level: int, x: npt.NDArray[np.float64],
           K: npt.NDArray[np.float64], T: npt.NDArray[np.float64], sigma: npt.NDArray[np.float64],
           r: npt.NDArray[np.float64], q: npt.NDArray[np.float64], w: npt.NDArray[np.float64],
           outs: tuple[npt.NDArray[np.float64], ...], n_threads: int) -> None: ...
def greeks_limit(model: int, inverse: int, level: int, x: npt.NDArray[np.float64],
                 K: npt.NDArray[np.float64], T: npt.NDArray[np.float64],
                 sigma: npt.NDArray[np.float64], r: npt.NDArray[np.float64],
                 q: npt.NDArray[np.float64], w: npt.NDArray[np.float64],
                 outs: tuple[npt.NDArray[np.float64], ...]) -> None: ...
def implied_vol(price: npt.NDArray[np.float64], F: npt.NDArray[np.float64],
                K: npt.NDArray[np.float64], T: npt.NDArray[np.float64], w: npt.NDArray[np.float64],
                out: npt.NDArray[np.float64], code: npt.NDArray[np.intc], n_threads: int) -> None: ...
