"""Input checks and small numeric helpers shared by the metric modules.

Every check raises :class:`replay.errors.UserInputError` with the canonical message
``"{source}: {field} must be {expectation}, got {value!r}"``; for arrays the value shown is
the offending shape, dtype or element, never the whole array.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import must_be

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ItemArray = npt.NDArray[np.int32]


def z_value(source: str, confidence: float) -> float:
    """Two-sided standard-normal quantile ``Φ⁻¹((1 + confidence) / 2)``."""
    if not (isinstance(confidence, float | int) and 0.0 < float(confidence) < 1.0):
        raise must_be(source, "confidence", "a number in (0, 1)", confidence)
    return NormalDist().inv_cdf(0.5 + float(confidence) / 2.0)


def as_1d_float(source: str, field: str, values: npt.ArrayLike, *, min_size: int = 1) -> FloatArray:
    """A finite 1-D float64 copy-or-view of ``values`` with at least ``min_size`` entries."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise must_be(source, f"{field}.shape", "1-D", arr.shape)
    if arr.dtype.kind not in "biuf":
        raise must_be(source, f"{field}.dtype", "numeric", str(arr.dtype))
    if arr.shape[0] < min_size:
        raise must_be(source, f"{field}.size", f">= {min_size}", arr.shape[0])
    out = arr.astype(np.float64, copy=False)
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        bad = out[~np.isfinite(out)][0]
        raise must_be(source, field, "finite everywhere", float(bad))
    return out


def as_binary(source: str, field: str, values: npt.ArrayLike, *, min_size: int = 1) -> FloatArray:
    """A 1-D float64 array of 0/1 outcomes (bool, integer or float input)."""
    out = as_1d_float(source, field, values, min_size=min_size)
    bad = (out != 0.0) & (out != 1.0)
    if bad.any():
        raise must_be(source, field, "0 or 1 everywhere", float(out[bad][0]))
    return out


def as_probability(
    source: str, field: str, values: npt.ArrayLike, *, open_low: bool = False, min_size: int = 1
) -> FloatArray:
    """A 1-D float64 array of probabilities in [0, 1] (or (0, 1] when ``open_low``)."""
    out = as_1d_float(source, field, values, min_size=min_size)
    bad = (out <= 0.0 if open_low else out < 0.0) | (out > 1.0)
    if bad.any():
        interval = "(0, 1]" if open_low else "[0, 1]"
        raise must_be(source, field, f"in {interval} everywhere", float(out[bad][0]))
    return out


def same_length(
    source: str, fields: tuple[str, str], a: npt.NDArray[Any], b: npt.NDArray[Any]
) -> None:
    """Both arrays have the same first dimension."""
    if a.shape[0] != b.shape[0]:
        raise must_be(
            source,
            f"{fields[1]}.shape[0]",
            f"equal to {fields[0]}.shape[0] = {a.shape[0]}",
            b.shape[0],
        )


def as_lists(
    source: str, field: str, items: npt.ArrayLike, *, n_items: int | None = None
) -> ItemArray:
    """A 2-D int32 table of ranked item ids, ``-1`` marking an empty slot.

    Checks: 2-D integer, ids in ``[-1, n_items)``, no item twice in one list.
    """
    arr = np.asarray(items)
    if arr.ndim != 2:
        raise must_be(source, f"{field}.shape", "[n_lists, K] (2-D)", arr.shape)
    if arr.dtype.kind not in "iu":
        raise must_be(source, f"{field}.dtype", "an integer type", str(arr.dtype))
    out = arr.astype(np.int32, copy=False)
    if out.size == 0:
        return out
    low = int(out.min())
    if low < -1:
        raise must_be(source, field, "item ids >= 0 or -1 for an empty slot", low)
    if n_items is not None:
        high = int(out.max())
        if high >= n_items:
            raise must_be(source, field, f"item ids < n_items = {n_items}", high)
    if out.shape[1] > 1:
        ordered = np.sort(out, axis=1)
        dup = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if dup.any():
            row = int(np.flatnonzero(dup.any(axis=1))[0])
            raise must_be(source, f"{field}[{row}]", "free of repeated items", out[row].tolist())
    return out


def truncate(source: str, items: ItemArray, k: int | None) -> ItemArray:
    """The first ``k`` columns (all of them when ``k`` is None)."""
    if k is None:
        return items
    if not (isinstance(k, int) and 1 <= k <= items.shape[1]):
        raise must_be(source, "k", f"an integer in [1, {items.shape[1]}]", k)
    return items[:, :k]


def as_matrix(
    source: str, field: str, values: npt.ArrayLike, *, rows: int | None = None
) -> FloatArray:
    """A finite 2-D float64 matrix, optionally with a fixed number of rows."""
    arr = np.asarray(values)
    if arr.ndim != 2:
        raise must_be(source, f"{field}.shape", "2-D", arr.shape)
    if arr.dtype.kind not in "biuf":
        raise must_be(source, f"{field}.dtype", "numeric", str(arr.dtype))
    if rows is not None and arr.shape[0] != rows:
        raise must_be(source, f"{field}.shape[0]", f"{rows}", arr.shape[0])
    out = arr.astype(np.float64, copy=False)
    if not np.isfinite(out).all():
        raise must_be(source, field, "finite everywhere", float(out[~np.isfinite(out)][0]))
    return out


def require_columns(source: str, frame: pl.DataFrame, columns: tuple[str, ...]) -> None:
    """The frame has every named column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise must_be(source, "frame.columns", f"columns that include {missing}", frame.columns)


def safe_ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    """``num / den`` elementwise, NaN where ``den == 0`` (without a numpy warning)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out
