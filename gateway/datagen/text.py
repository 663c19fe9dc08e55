"""Vectorised text building on Arrow string arrays: the generator never loops over rows.

Every helper takes and returns `pyarrow.StringArray` (or numpy arrays of codes) so a block
of ten thousand rows costs a handful of C-level kernel calls per column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

__all__ = [
    "Codes",
    "Ints",
    "Mask",
    "ascii_matrix",
    "by_group",
    "choose_text",
    "concat",
    "digit_matrix",
    "fixed",
    "format_cents",
    "int_text",
    "mask_array",
    "replace_where",
    "zero_pad",
]

Ints = npt.NDArray[np.int64]
Codes = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Part = Any  # a pyarrow StringArray or a Python str (broadcast)


def concat(*parts: Part) -> Any:
    """Element-wise concatenation; plain `str` parts are broadcast to every row."""
    args = [pa.scalar(p, pa.string()) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, "")


def int_text(values: Ints) -> Any:
    """Decimal text of integers."""
    return pc.cast(pa.array(values, pa.int64()), pa.string())


def zero_pad(values: Ints, width: int) -> Any:
    """Decimal text of non-negative integers, left-padded with zeros to `width`."""
    return pc.utf8_lpad(int_text(values), width=width, padding="0")


def format_cents(cents: Ints) -> Any:
    """`1234` → `12.34`: exact two-decimal text of an amount held in integer cents."""
    return concat(int_text(cents // 100), ".", zero_pad(cents % 100, 2))


def ascii_matrix(codes: Codes) -> Any:
    """A string array from an (n, k) matrix of ASCII codes, one fixed-width string a row."""
    n, k = codes.shape
    data = np.ascontiguousarray(codes, dtype=np.uint8)
    offsets = np.arange(0, n * k + 1, k, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data.tobytes()))


def digit_matrix(rng: np.random.Generator, n: int, k: int) -> Ints:
    """An (n, k) matrix of uniform random decimal digits."""
    return rng.integers(0, 10, size=(n, k), dtype=np.int64)


def fixed(digits: Ints) -> Any:
    """Text of an (n, k) digit matrix (values 0-9)."""
    return ascii_matrix((digits + 48).astype(np.uint8))


def choose_text(values: Sequence[str], index: Ints) -> Any:
    """`values[index[i]]` for every row, as a string array."""
    return pa.array(list(values), pa.string()).take(pa.array(index, pa.int64()))


def mask_array(mask: Mask) -> Any:
    return pa.array(mask, pa.bool_())


def replace_where(column: Any, mask: Mask, value: str | None) -> Any:
    """`column` with the rows in `mask` replaced by `value` (None: null)."""
    if not mask.any():
        return column
    return pc.if_else(mask_array(mask), pa.scalar(value, pa.string()), column)


def by_group(group: Ints, groups: int, build: Callable[[int, Ints], Any]) -> Any:
    """Build a column group by group and put the pieces back in row order.

    `build(g, rows)` returns the text for the rows (block positions) of group `g`, in the
    order given; groups are visited in index order so random draws stay deterministic.
    """
    order = np.argsort(group, kind="stable")
    counts = np.bincount(group, minlength=groups)
    pieces = []
    start = 0
    for g in range(groups):
        count = int(counts[g])
        if count:
            pieces.append(build(g, order[start : start + count]))
        start += count
    if not pieces:
        return pa.array([], pa.string())
    combined = pa.concat_arrays(pieces)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    return combined.take(pa.array(inverse, pa.int64()))
