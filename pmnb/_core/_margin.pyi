import numpy as np
import numpy.typing as npt

BLOCK: int
INST_ROWS: int

def pm(f: float, move: npt.NDArray[np.float64], vcol: npt.NDArray[np.intc],
       inst: npt.NDArray[np.float64], vols: npt.NDArray[np.float64], lim: npt.NDArray[np.uint8],
       r: float, v0: npt.NDArray[np.float64], delta: npt.NDArray[np.float64] | None,
       agg: npt.NDArray[np.float64], mat: npt.NDArray[np.float64] | None,
       n_threads: int) -> None: ...
def std(fs: npt.NDArray[np.float64], inst: npt.NDArray[np.float64], lim0: npt.NDArray[np.uint8],
        r: float, im_addon: float, im_floor: float, mm_addon: float, long_mark: bool,
        out: npt.NDArray[np.float64], v_out: npt.NDArray[np.float64] | None,
        im_out: npt.NDArray[np.float64] | None, mm_out: npt.NDArray[np.float64] | None,
        n_threads: int) -> None: ...
