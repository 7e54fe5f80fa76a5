import numpy as np
import numpy.typing as npt

BLOCK: int

def grid(model: int, inverse: int, x: npt.NDArray[np.float64], K: npt.NDArray[np.float64],
         T: npt.NDArray[np.float64], sigma: npt.NDArray[np.float64], r: npt.NDArray[np.float64],
         q: npt.NDArray[np.float64], w: npt.NDArray[np.float64], qty: npt.NDArray[np.float64],
         spot_shock: npt.NDArray[np.float64], vol_shock: npt.NDArray[np.float64] | None,
         time_shift: npt.NDArray[np.float64], sigma_matrix: npt.NDArray[np.float64] | None,
         out: npt.NDArray[np.float64], n_threads: int) -> None: ...
