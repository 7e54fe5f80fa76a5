"""Exceptions raised by pmnb.

Every error names what was wrong (the field), where (the first bad row, by position or index label)
and what is accepted, so that a user can fix the input without reading pmnb's source.

Examples
--------
>>> from pmnb.errors import ValidationError
>>> err = ValidationError.for_field("sigma", row=3, value=-0.2, accepted="0 <= sigma <= 100")
>>> print(err)
sigma: row 3 has -0.2; accepted: 0 <= sigma <= 100
>>> (err.field, err.row)
('sigma', 3)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["ChainError", "DataError", "PmnbError", "StaleDataError", "ValidationError"]


class PmnbError(Exception):
    """Base class of every error pmnb raises on purpose."""


class ValidationError(PmnbError, ValueError):
    """Input outside the accepted domain.

    Attributes
    ----------
    field : str or None
        Name of the offending argument or column.
    row : int, label or None
        First offending row (position in the broadcast input, or index label).
    rows : list or None
        All offending rows, when the caller collected them.
    """

    def __init__(self, message: str, *, field: str | None = None, row: Any = None,
                 rows: list | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.row = row
        self.rows = rows

    @classmethod
    def for_field(cls, field: str, *, row: Any, value: Any, accepted: str,
                  n_bad: int = 1) -> "ValidationError":
        """Build the standard message: ``<field>: row <row> has <value>; accepted: <range>``.

        Examples
        --------
        >>> print(ValidationError.for_field("T", row=0, value=float("nan"), accepted="0 <= T <= 100",
        ...                                 n_bad=2))
        T: row 0 has nan (2 bad rows in all); accepted: 0 <= T <= 100
        """
        more = f" ({n_bad} bad rows in all)" if n_bad > 1 else ""
        where = repr(row) if isinstance(row, str) else row
        return cls(f"{field}: row {where} has {value!r}{more}; accepted: {accepted}", field=field,
                   row=row)


class StaleDataError(PmnbError):
    """Market or venue data older than the caller's tolerance; never used silently."""


class DataError(PmnbError):
    """A data file or feed is missing, malformed or inconsistent."""


class ChainError(PmnbError):
    """A blockchain read failed after the safe retries."""


def row_labels(values: Iterable[Any]) -> Any:
    """Index of the first 1-D pandas input among ``values``, to name rows by label (or None).

    Examples
    --------
    >>> import pandas as pd
    >>> list(row_labels([1.0, pd.Series([1, 2], index=["a", "b"])]))
    ['a', 'b']
    """
    for v in values:
        idx = getattr(v, "index", None)
        if idx is not None and getattr(v, "ndim", 0) == 1 and hasattr(idx, "__getitem__"):
            return idx
    return None


def row_name(pos: int, shape: tuple[int, ...], labels: Any = None) -> Any:
    """How an error names the row at flat position ``pos`` of a broadcast result: the pandas
    label when there is one, the position for 1-D input, an index tuple for N-D input.

    Examples
    --------
    >>> row_name(5, (2, 3)), row_name(1, (3,)), row_name(1, (2,), ["x", "y"])
    ((1, 2), 1, 'y')
    """
    if labels is not None and len(shape) == 1 and len(labels) == shape[0]:
        return labels[pos]
    if len(shape) <= 1:
        return pos
    return tuple(int(i) for i in np.unravel_index(pos, shape))
