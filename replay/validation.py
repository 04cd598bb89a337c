"""Row checks for interaction logs and the accounting of every input row.

Every row a reader produces is either kept or counted under exactly one skip reason, so
``kept + sum(skipped.*) == input_rows`` holds for every log.  When a row has several
problems, the first reason in :data:`SKIP_REASONS` wins:

    null_user           user id missing or blank
    null_item           item id missing or blank
    null_timestamp      timestamp missing or blank
    bad_timestamp       timestamp present but not parseable in the chosen unit, not finite, or
                        outside [1970-01-01, 2100-01-01) UTC (negative epochs and far-future
                        values in interaction logs are corrupt values, not real history)
    unknown_event_type  event type missing or not among the allowed types (only when a set of
                        allowed types is given)
    non_finite_weight   weight missing, not a number, NaN, +-inf, or too large for float32
    negative_weight     weight < 0
    outlier_timestamp   a valid timestamp far outside the bulk of the log (a last line cut off
                        mid-timestamp, "...,151", or a clock reset): more than
                        max(p99 - p1, 1 day) before the 1st or after the 99th percentile of the
                        valid timestamps (logs of at least 100 rows; see
                        :func:`timestamp_outliers`), so that one row cannot stretch the log's
                        span that fractional windows are cut from
    duplicate           same (user, item, timestamp) as an earlier kept row (policy "first")

The readers in :mod:`replay.logs` bring every source to the *normalized* columns below,
which the expressions here check:

    user_raw    any dtype   raw user id, null when missing or blank
    item_raw    any dtype   raw item id, null when missing or blank
    ts_present  Boolean     the timestamp cell was not empty
    ts_us       Int64       microseconds since the epoch (UTC), null when unparseable/out of range
    event       String      event type, null when missing
    weight      Float32     weight, null when missing or not a number
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import InternalError, UserInputError

__all__ = [
    "OUTLIER_MIN_ROWS",
    "SKIP_REASONS",
    "TS_END_US",
    "TimestampMode",
    "accounting",
    "check_accounting",
    "decide_timestamp_mode",
    "no_rows_left_error",
    "reason_code",
    "skip_reason_expr",
    "timestamp_outliers",
    "timestamp_present_expr",
    "timestamp_us_expr",
    "weight_expr",
]

SKIP_REASONS: Final[tuple[str, ...]] = (
    "null_user",
    "null_item",
    "null_timestamp",
    "bad_timestamp",
    "unknown_event_type",
    "non_finite_weight",
    "negative_weight",
    "outlier_timestamp",
    "duplicate",
)

#: Logs shorter than this are not checked for outlier timestamps (too few rows to tell).
OUTLIER_MIN_ROWS: Final[int] = 100
_DAY_US: Final[int] = 86_400 * 1_000_000


def timestamp_outliers(ts_us: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_] | None:
    """Rows whose timestamp lies more than ``max(p99 - p1, 1 day)`` outside ``[p1, p99]``.

    p1 and p99 are order statistics of the valid timestamps (the lower / higher neighbours,
    no interpolation), so a handful of corrupt rows cannot move them.  None when no row is
    an outlier or the log has fewer than ``OUTLIER_MIN_ROWS`` rows.
    """
    n = int(ts_us.shape[0])
    if n < OUTLIER_MIN_ROWS:
        return None
    low, high = np.quantile(ts_us, [0.01, 0.99], method="inverted_cdf")
    margin = max(int(high) - int(low), _DAY_US)
    mask = (ts_us < int(low) - margin) | (ts_us > int(high) + margin)
    return mask if bool(mask.any()) else None


# Valid event times are [1970-01-01, 2100-01-01) UTC, in microseconds since the epoch.
TS_END_S: Final[int] = 4_102_444_800
TS_END_US: Final[int] = TS_END_S * 1_000_000

# Epoch values whose median magnitude reaches this are milliseconds, below it seconds:
# 1e11 seconds is the year 5138, 1e11 milliseconds is March 1973.
MS_THRESHOLD: Final[float] = 1e11

TimestampMode = Literal["epoch_s", "epoch_ms", "iso", "datetime"]

# ISO-8601 with a zone: 'T' or ' ' between date and time, optional fraction, 'Z' or an offset.
_ISO_FORMATS: Final[tuple[str, ...]] = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
)

_FIXES: Final[dict[str, str]] = {
    "null_user": "fill the user column or map another one (traffic.log.columns.user)",
    "null_item": "fill the item column or map another one (traffic.log.columns.item)",
    "null_timestamp": (
        "fill the timestamp column or map another one (traffic.log.columns.timestamp)"
    ),
    "bad_timestamp": (
        "set timestamp_unit (traffic.log.timestamp_unit: 's', 'ms' or 'iso') to match the values;"
        " ISO times need a zone, e.g. '2018-09-01T10:00:00Z'"
    ),
    "unknown_event_type": (
        "add the log's event types to traffic.log.event_types, or drop the filter"
    ),
    "non_finite_weight": "map another column as the weight, or leave it unmapped (weight 1.0)",
    "negative_weight": "map another column as the weight, or leave it unmapped (weight 1.0)",
    "duplicate": "set dedupe='none' to keep repeated (user, item, timestamp) rows",
}


def reason_code(reason: str) -> int:
    """The UInt8 code of a skip reason; 0 means kept."""
    return SKIP_REASONS.index(reason) + 1


def timestamp_present_expr(column: str, dtype: pl.DataType) -> pl.Expr:
    """True where the raw timestamp cell holds something (blank strings count as empty)."""
    col = pl.col(column)
    if dtype == pl.String:
        return col.is_not_null() & (col.str.strip_chars().str.len_bytes() > 0)
    return col.is_not_null()


def _epoch_from_float(value: pl.Expr, per_unit_us: int) -> pl.Expr:
    limit = TS_END_US / per_unit_us
    valid = value.is_finite() & (value >= 0) & (value < limit)
    return (
        pl.when(valid)
        .then((value.clip(0, limit) * float(per_unit_us)).round().cast(pl.Int64))
        .otherwise(None)
    )


def _epoch_from_int(value: pl.Expr, per_unit_us: int) -> pl.Expr:
    limit = TS_END_US // per_unit_us
    valid = (value >= 0) & (value < limit)
    # clip first so that the multiplication cannot overflow on garbage values
    scaled = value.cast(pl.Int64, strict=False).clip(0, limit) * per_unit_us
    return pl.when(valid).then(scaled).otherwise(None)


def _in_range(us: pl.Expr) -> pl.Expr:
    return pl.when((us >= 0) & (us < TS_END_US)).then(us).otherwise(None)


def timestamp_us_expr(column: str, dtype: pl.DataType, mode: TimestampMode) -> pl.Expr:
    """Microseconds since the epoch (Int64, UTC) from a raw timestamp column; null if bad.

    ``mode`` is the unit decided for the whole file (:func:`decide_timestamp_mode`).
    """
    col = pl.col(column)
    if mode == "datetime":
        if dtype == pl.Date:
            col = col.cast(pl.Datetime("us"))
            dtype = pl.Datetime("us")
        assert isinstance(dtype, pl.Datetime)
        if dtype.time_zone is None:
            # Parquet writers often store UTC without a zone; naive datetimes are read as UTC.
            col = col.dt.replace_time_zone("UTC")
        return _in_range(col.dt.epoch("us"))
    if mode == "iso":
        text = col.cast(pl.String).str.strip_chars()
        parsed = [
            text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")
            for fmt in _ISO_FORMATS
        ]
        return _in_range(pl.coalesce(parsed).dt.epoch("us"))
    per_unit_us = 1_000_000 if mode == "epoch_s" else 1_000
    if dtype.is_integer():
        return _epoch_from_int(col, per_unit_us)
    if dtype.is_float():
        return _epoch_from_float(col.cast(pl.Float64), per_unit_us)
    number = col.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return _epoch_from_float(number, per_unit_us)


def decide_timestamp_mode(
    sample: pl.Series, unit: Literal["auto", "s", "ms", "iso"], *, source: str, column: str
) -> TimestampMode:
    """Decide once per file how its timestamps are written.

    ``sample`` holds the first non-null raw values of the timestamp column (the readers pass
    up to 1,000).  Rules for ``unit="auto"``:

    * datetime / date columns are used as they are;
    * numbers (or strings that parse as numbers, for the majority of the sample) are epoch
      times: **milliseconds when the median magnitude is >= 1e11, else seconds** (so epoch
      milliseconds before March 1973 need ``unit="ms"``);
    * any other strings are ISO-8601 and need a zone (``Z`` or ``+02:00``).
    """
    dtype = sample.dtype
    if dtype in (pl.Date,) or isinstance(dtype, pl.Datetime):
        if unit in ("s", "ms"):
            raise UserInputError(
                f"{source}: column {column!r} must hold epoch numbers for timestamp_unit "
                f"{unit!r}, got {dtype} values (use timestamp_unit 'auto')"
            )
        return "datetime"
    if not (dtype == pl.String or dtype.is_numeric()):
        raise UserInputError(
            f"{source}: column {column!r} must hold epoch numbers, ISO-8601 strings or "
            f"datetimes, got dtype {dtype} (map another column as the timestamp)"
        )
    if unit == "iso":
        if dtype != pl.String:
            example = sample[0] if sample.len() else None
            raise UserInputError(
                f"{source}: column {column!r} must hold ISO-8601 strings for timestamp_unit "
                f"'iso', got {example!r} (numbers are epoch times: use 's', 'ms' or 'auto')"
            )
        return "iso"
    if unit == "s":
        return "epoch_s"
    if unit == "ms":
        return "epoch_ms"
    numbers = (
        sample if dtype.is_numeric() else sample.str.strip_chars().cast(pl.Float64, strict=False)
    )
    numbers = numbers.cast(pl.Float64)
    finite = numbers.filter(numbers.is_finite())
    if dtype == pl.String and finite.len() * 2 <= sample.len():
        return "iso"
    if finite.len() == 0:
        return "epoch_s"
    median = finite.abs().median()
    if isinstance(median, float) and median >= MS_THRESHOLD:
        return "epoch_ms"
    return "epoch_s"


def weight_expr(column: str | None, dtype: pl.DataType | None) -> pl.Expr:
    """Float32 weight from a raw column (null when missing or not a number); 1.0 if unmapped."""
    if column is None or dtype is None:
        return pl.lit(1.0, dtype=pl.Float32)
    col = pl.col(column)
    if dtype == pl.String:
        col = col.str.strip_chars().cast(pl.Float64, strict=False)
    elif dtype == pl.Boolean:
        col = col.cast(pl.Float64)
    elif not dtype.is_numeric():
        col = col.cast(pl.String).cast(pl.Float64, strict=False)
    # float32 is the contract; values beyond its range become inf and are caught as non-finite
    return col.cast(pl.Float32, strict=False)


def skip_reason_expr(event_types: frozenset[str] | None) -> pl.Expr:
    """UInt8 skip-reason code per normalized row (0 = kept), before duplicate detection."""
    user = pl.col("user_raw")
    item = pl.col("item_raw")
    weight = pl.col("weight")
    chain = (
        pl.when(user.is_null())
        .then(pl.lit(reason_code("null_user")))
        .when(item.is_null())
        .then(pl.lit(reason_code("null_item")))
        .when(~pl.col("ts_present"))
        .then(pl.lit(reason_code("null_timestamp")))
        .when(pl.col("ts_us").is_null())
        .then(pl.lit(reason_code("bad_timestamp")))
    )
    if event_types is not None:
        allowed = pl.col("event").is_in(sorted(event_types)).fill_null(False)
        chain = chain.when(~allowed).then(pl.lit(reason_code("unknown_event_type")))
    chain = (
        chain.when(~weight.is_finite().fill_null(False))
        .then(pl.lit(reason_code("non_finite_weight")))
        .when(weight < 0)
        .then(pl.lit(reason_code("negative_weight")))
    )
    return chain.otherwise(pl.lit(0)).cast(pl.UInt8)


def accounting(input_rows: int, skipped: Mapping[str, int]) -> dict[str, int]:
    """``{"input_rows", "kept", "skipped.<reason>" for every reason}`` from skip counts."""
    unknown = set(skipped) - set(SKIP_REASONS)
    if unknown:
        raise InternalError(f"unknown skip reasons {sorted(unknown)}")
    counts = {reason: int(skipped.get(reason, 0)) for reason in SKIP_REASONS}
    result = {"input_rows": int(input_rows), "kept": int(input_rows) - sum(counts.values())}
    result.update({f"skipped.{reason}": count for reason, count in counts.items()})
    check_accounting(result)
    return result


def check_accounting(counts: Mapping[str, int]) -> None:
    """Raise :class:`InternalError` unless ``kept + sum(skipped.*) == input_rows``, all >= 0."""
    skipped = sum(v for k, v in counts.items() if k.startswith("skipped."))
    if any(v < 0 for v in counts.values()) or counts["kept"] + skipped != counts["input_rows"]:
        raise InternalError(f"row accounting does not add up: {dict(counts)}")


def no_rows_left_error(
    source: str, counts: Mapping[str, int], example: tuple[str, object] | None
) -> UserInputError:
    """The one-line error for a log whose every row was skipped, with per-reason counts."""
    skipped = {
        k.removeprefix("skipped."): v
        for k, v in counts.items()
        if k.startswith("skipped.") and v > 0
    }
    detail = ", ".join(f"{reason}={count}" for reason, count in skipped.items())
    message = (
        f"{source}: log must keep at least one valid row, got none of "
        f"{counts['input_rows']} (skipped: {detail})"
    )
    if skipped:
        top = max(skipped, key=lambda reason: skipped[reason])
        if example is not None:
            column, value = example
            message += f"; e.g. column {column!r} holds {value!r}"
        message += f"; fix: {_FIXES[top]}"
    return UserInputError(message)
