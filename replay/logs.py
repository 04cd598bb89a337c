"""Readers that turn interaction logs into the canonical :class:`~replay.events.EventTable`.

Formats (``LogSpec.format``; ``"auto"`` detects them, see :func:`detect_format`):

    movielens_csv    MovieLens ``ratings.csv``: header ``userId,movieId,rating,timestamp``
    movielens_udata  MovieLens 100k ``u.data``: tab separated, no header,
                     ``user item rating timestamp``
    recbole_inter    RecBole atomic ``.inter``: tab separated, typed header such as
                     ``user_id:token  item_id:token  rating:float  timestamp:float``
    obd              the Open Bandit Dataset's CSV: ``timestamp, item_id, position, click,
                     propensity_score, user_feature_*, ...``; a user is a profile of the
                     user features (:mod:`replay.obd`), every row an ``impression`` or a
                     ``click`` event
    csv              any delimited text with a header, columns mapped by ``LogSpec.columns``
    parquet          any Parquet file, columns mapped the same way
    ndjson           one JSON object per line, columns mapped the same way

Timestamps are epoch seconds or milliseconds (``"auto"``: milliseconds when the median
magnitude of the first 1,000 values is >= 1e11, else seconds), ISO-8601 strings with a
zone, or Parquet datetimes (naive ones are read as UTC).  Details of every row check are in
:mod:`replay.validation`.

The canonical table (see :mod:`replay.events`):

* dense ids: users (and, separately, items) are numbered 0, 1, ... in order of their first
  event in time; users first seen at the same instant are ordered by raw id (numerically for
  integer ids, else lexicographically).  Text ids that are all canonical integers
  (``"17"``, not ``"017"``) come back as Int64 in ``user_ids`` / ``item_ids``.
* rows sorted by ``(ts, user, item)``; among duplicates of one ``(user, item, ts)`` the
  dedupe policy keeps the first (or last) in file order, or all of them.
* sessions by inactivity gap (``session_gap_s``, default 1800 s), or from a logged session
  column when one is mapped, dense in order of session start (:mod:`replay.sessions`).

Reading is lazy (``polars.scan_*``) and columnar; no Python object is made per event.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import InternalError, UserInputError, must_be
from replay.events import EventTable
from replay.files import check_regular_file
from replay.log_columns import Columns
from replay.log_formats import LogFormat, TimestampUnit
from replay.obd import USER_COLUMN, looks_obd, obd_columns, user_expr
from replay.parquet_check import verify_parquet
from replay.sessions import gap_sessions, keyed_sessions
from replay.validation import (
    SKIP_REASONS,
    TimestampMode,
    accounting,
    decide_timestamp_mode,
    no_rows_left_error,
    reason_code,
    skip_reason_expr,
    timestamp_outliers,
    timestamp_present_expr,
    timestamp_us_expr,
    weight_expr,
)

__all__ = [
    "Columns",
    "DedupePolicy",
    "LogFormat",
    "LogSpec",
    "TimestampUnit",
    "detect_format",
    "read_log",
    "resolved_format",
]

DedupePolicy = Literal["first", "last", "none"]

_RAW: Final[dict[str, str]] = {
    "user": "user_raw",
    "item": "item_raw",
    "timestamp": "ts_raw",
    "event": "event_raw",
    "weight": "weight_raw",
    "session": "session_raw",
}
# Column names tried, in order, for generic formats when no mapping is given.  A session
# column is never guessed: logged sessions replace gap sessions only when asked for.
_GUESSES: Final[dict[str, tuple[str, ...]]] = {
    "user": ("user", "user_id", "userId", "userid", "uid"),
    "item": ("item", "item_id", "itemId", "itemid", "movieId", "iid"),
    "timestamp": ("ts", "timestamp", "time", "datetime", "event_time"),
    "weight": ("weight", "rating"),
    "event": ("event", "event_type"),
}
_MOVIELENS_HEADER: Final[str] = "userId,movieId,rating,timestamp"
_UDATA_COLUMNS: Final[list[str]] = ["user", "item", "rating", "timestamp"]
_RECBOLE_FIELD: Final[re.Pattern[str]] = re.compile(r"^[^:\s]+:(token|token_seq|float|float_seq)$")
_CANONICAL_INT: Final[str] = r"^(0|-?[1-9][0-9]{0,17})$"
_DELIMITERS: Final[tuple[str, ...]] = (",", "\t", ";", "|")
_SAMPLE_ROWS: Final[int] = 1_000


@dataclass(frozen=True, slots=True)
class LogSpec:
    """How to read one interaction log.

    path            the file
    format          one of :data:`LogFormat`; ``"auto"`` detects it (:func:`detect_format`)
    columns         column roles; ``None`` uses the format's own names (MovieLens, RecBole)
                    or, for csv / parquet / ndjson, the first present of common names
                    (user: user, user_id, userId, ...; timestamp: ts, timestamp, time, ...)
    timestamp_unit  ``"auto"``, ``"s"``, ``"ms"`` (epoch numbers) or ``"iso"`` (with a zone)
    event_types     allowed event types; other or missing types are skipped
                    (``unknown_event_type``); ``None`` keeps every type
    dedupe          repeated (user, item, timestamp): keep the ``"first"`` or ``"last"`` in file
                    order, or ``"none"`` to keep all
    session_gap_s   inactivity gap that starts a new session, seconds
    delimiter       field separator of text formats; ``None`` is the format's own
                    (',' for csv and .csv files, tab for .tsv, u.data and .inter)
    default_event   event type of rows without an event column; ``None``: ``"rating"`` for
                    MovieLens / RecBole with ratings, else ``"interaction"``
    """

    path: Path | str
    format: LogFormat = "auto"
    columns: Columns | None = None
    timestamp_unit: TimestampUnit = "auto"
    event_types: frozenset[str] | None = None
    dedupe: DedupePolicy = "first"
    session_gap_s: float = 1800.0
    delimiter: str | None = None
    default_event: str | None = None

    def __post_init__(self) -> None:
        source = "log spec"
        if self.format not in get_args(LogFormat):
            raise must_be(source, "format", f"one of {list(get_args(LogFormat))}", self.format)
        if self.timestamp_unit not in get_args(TimestampUnit):
            raise must_be(
                source,
                "timestamp_unit",
                f"one of {list(get_args(TimestampUnit))}",
                self.timestamp_unit,
            )
        if self.dedupe not in get_args(DedupePolicy):
            raise must_be(source, "dedupe", f"one of {list(get_args(DedupePolicy))}", self.dedupe)
        gap = self.session_gap_s
        if (
            isinstance(gap, bool)
            or not isinstance(gap, int | float)
            or not math.isfinite(gap)
            or gap <= 0
        ):
            raise must_be(source, "session_gap_s", "a finite number of seconds > 0", gap)
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\n\r'):
            raise must_be(
                source, "delimiter", "one character other than a quote or newline", self.delimiter
            )
        types = self.event_types
        if types is not None:
            if isinstance(types, str) or not all(isinstance(e, str) for e in types):
                raise must_be(source, "event_types", "a set of strings", types)
            # a list or set is accepted and frozen, so the spec stays hashable
            object.__setattr__(self, "event_types", frozenset(types))


@dataclass(frozen=True, slots=True)
class _Source:
    """A log brought to role-named raw columns, before any check."""

    label: str
    frame: pl.LazyFrame
    names: dict[str, str]
    dtypes: dict[str, pl.DataType]
    default_event: str


# ---------------------------------------------------------------------------------------
# format detection


GZIP_MAGIC: Final[bytes] = b"\x1f\x8b"


def _first_bytes(path: Path, label: str, size: int = 65_536) -> bytes:
    """The first ``size`` bytes of the log's content (decompressed when it is gzip)."""
    if os.path.isdir(path):
        raise UserInputError(
            f"{label}: log path must be a file, got a directory (point to the log file in it)"
        )
    if not path.exists() and not path.is_symlink():
        raise UserInputError(f"{label}: log file must exist, got no such file (check the path)")
    # A pipe or a device would block, never end, or be consumed by this first look.
    check_regular_file(path, label=label, what="log file")
    try:
        with path.open("rb") as handle:
            head = handle.read(size)
    except OSError as error:
        raise UserInputError(
            f"{label}: log file must be readable, got {type(error).__name__}: {error.strerror}"
            " (check permissions)"
        ) from None
    if head[:2] != GZIP_MAGIC:
        return head
    inflate = zlib.decompressobj(wbits=31)
    try:
        return inflate.decompress(head, size)
    except zlib.error as error:
        raise UserInputError(
            f"{label}: gzip-compressed log must decompress, got {error} (the file is damaged: "
            "compress it again)"
        ) from None


def _suffix(path: Path) -> str:
    """The extension that says the format: ``.csv`` for ``ratings.csv.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _first_line(head: bytes) -> str:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    return text.split("\n", 1)[0].rstrip("\r")


def _looks_udata(line: str) -> bool:
    fields = line.split("\t")
    return len(fields) == 4 and all(re.fullmatch(r"-?\d+(\.\d+)?", f.strip()) for f in fields)


def detect_format(path: Path | str) -> LogFormat:
    """The format of a log file, from its first bytes, its first line and its extension.

    Rules, first match wins: Parquet magic ``PAR1``; a first line starting with ``{`` is
    NDJSON; a ``.inter`` file or a tab-separated typed header (``name:token``) is RecBole;
    the header ``userId,movieId,rating,timestamp`` is MovieLens CSV; a comma-separated
    header with the Open Bandit Dataset's columns is ``obd``; ``u.data`` / ``*.data``
    or a headerless line of four tab-separated numbers is MovieLens 100k; then by extension
    (``.csv``/``.tsv``/``.txt`` csv, ``.parquet``/``.pq`` parquet, ``.json``/``.jsonl``/
    ``.ndjson`` ndjson).
    """
    path = Path(path)
    label = str(path)
    head = _first_bytes(path, label)
    if not head.strip():
        raise _empty_file_error(label, head)
    if head[:4] == b"PAR1":
        return "parquet"
    line = _first_line(head)
    suffix = _suffix(path)
    if line.lstrip().startswith("{"):
        return "ndjson"
    fields = line.split("\t")
    if suffix == ".inter" or (
        len(fields) > 1 and all(_RECBOLE_FIELD.match(f.strip()) for f in fields)
    ):
        return "recbole_inter"
    if line.strip() == _MOVIELENS_HEADER:
        return "movielens_csv"
    if looks_obd([name.strip().strip('"') for name in line.split(",")]):
        return "obd"
    if path.name == "u.data" or suffix == ".data" or _looks_udata(line):
        return "movielens_udata"
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "ndjson"
    raise UserInputError(
        f"{label}: log format must be recognisable, got extension {suffix or '(none)'!r} and "
        f"first line {line[:60]!r} (pass format= one of "
        f"{', '.join(repr(f) for f in get_args(LogFormat)[1:])})"
    )


def _empty_file_error(label: str, head: bytes) -> UserInputError:
    what = "0 bytes" if not head else "only blank lines"
    return UserInputError(
        f"{label}: log file must hold interactions, got an empty file ({what}; export the "
        "log again or point to the right file)"
    )


# ---------------------------------------------------------------------------------------
# readers: each returns role-named raw columns


def _polars_error(label: str, what: str, error: Exception, hint: str) -> UserInputError:
    """A read failure as one line: what the file must be, what the reader said, the fix."""
    text = str(error).strip()
    detail = text.splitlines()[0] if text else type(error).__name__
    lowered = detail.lower()
    if "utf-8" in lowered or "utf8" in lowered:
        what = "UTF-8 text"
        hint = "re-encode it, e.g. iconv -f latin1 -t utf-8"
    elif "more fields than" in lowered:
        what = "delimited text whose rows fit its header"
        hint = "quote values that contain the delimiter, or pass the right delimiter"
    return UserInputError(f"{label}: file must be {what}, got a read error: {detail} ({hint})")


_FORMAT_NAMES: Final[dict[str, str]] = {
    "movielens_csv": "MovieLens ratings.csv (comma separated)",
    "movielens_udata": "MovieLens u.data (tab separated)",
    "recbole_inter": "a RecBole .inter file (tab separated)",
    "obd": "an Open Bandit Dataset CSV (comma separated)",
    "csv": "delimited text with a header",
    "parquet": "Parquet",
    "ndjson": "NDJSON (one JSON object per line)",
}


def _other_delimiter(text: str, delimiter: str) -> str | None:
    """Another delimiter that splits ``text`` into more fields than ``delimiter`` does."""
    own = len(text.split(delimiter))
    best = max((d for d in _DELIMITERS if d != delimiter), key=lambda d: len(text.split(d)))
    return best if len(text.split(best)) > max(own, 1) else None


def _show_delimiter(delimiter: str) -> str:
    return "'\\t'" if delimiter == "\t" else repr(delimiter)


def _resolve_columns(
    label: str,
    found: list[str],
    fmt: str,
    columns: Columns | None,
    delimiter: str | None,
) -> dict[str, str]:
    """Role -> column name; a missing required column raises with what was found."""
    if columns is not None:
        wanted = columns.as_dict()
    elif fmt == "movielens_csv":
        wanted = {"user": "userId", "item": "movieId", "timestamp": "timestamp", "weight": "rating"}
    elif fmt == "movielens_udata":
        wanted = {"user": "user", "item": "item", "timestamp": "timestamp", "weight": "rating"}
    elif fmt == "recbole_inter":
        wanted = {"user": "user_id", "item": "item_id", "timestamp": "timestamp"}
        if "rating" in found:
            wanted["weight"] = "rating"
    else:
        wanted = {}
        lowered = {name.lower(): name for name in reversed(found)}
        for role, candidates in _GUESSES.items():
            hit = next((c for c in candidates if c in found), None)
            hit = hit or next(
                (lowered[c.lower()] for c in candidates if c.lower() in lowered), None
            )
            if hit is not None:
                wanted[role] = hit
            elif role in ("user", "item", "timestamp"):
                raise _missing_column_error(
                    label,
                    role,
                    candidates,
                    found,
                    delimiter,
                    fix=f'map it with traffic.log.columns = {{ {role} = "..." }}',
                )
    for role in ("user", "item", "timestamp", "event", "weight", "session"):
        name = wanted.get(role)
        if name is not None and name not in found:
            raise _missing_column_error(
                label,
                role,
                (name,),
                found,
                delimiter,
                fix=f'map the {role} with traffic.log.columns = {{ {role} = "..." }}',
            )
    return wanted


def _missing_column_error(
    label: str,
    role: str,
    candidates: tuple[str, ...],
    found: list[str],
    delimiter: str | None,
    fix: str,
) -> UserInputError:
    wanted = (
        repr(candidates[0])
        if len(candidates) == 1
        else (f"for the {role} (tried {', '.join(candidates)})")
    )
    if delimiter is not None and len(found) == 1:
        other = _other_delimiter(found[0], delimiter)
        if other is not None:
            return UserInputError(
                f"{label}: column {wanted} is missing (found {found[0]} as one column — the "
                f"file looks {_show_delimiter(other)}-separated; set traffic.log.format = "
                f'"csv" and traffic.log.delimiter = {_show_delimiter(other)})'
            )
    shown = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
    return UserInputError(f"{label}: column {wanted} is missing (found {shown}; {fix})")


def _scan_text(path: Path, label: str, fmt: str, spec: LogSpec) -> _Source:
    suffix = _suffix(path)
    tabbed = fmt in ("movielens_udata", "recbole_inter") or (fmt == "csv" and suffix == ".tsv")
    delimiter = spec.delimiter or ("\t" if tabbed else ",")
    head = _first_bytes(path, label)
    if not head.strip():
        raise _empty_file_error(label, head)
    line = _first_line(head)
    rename: Callable[[list[str]], list[str]] | None = None
    has_header = True
    new_columns: list[str] | None = None
    if fmt == "movielens_udata":
        has_header = False
        fields = line.split(delimiter)
        if len(fields) != 4:
            other = _other_delimiter(line, delimiter)
            hint = (
                f"the file looks {_show_delimiter(other)}-separated; pass delimiter="
                f"{_show_delimiter(other)}"
                if other
                else "check the file is ml-100k u.data"
            )
            raise UserInputError(
                f"{label}: rows must have 4 {_show_delimiter(delimiter)}-separated fields "
                f"(user item rating timestamp), got {line[:60]!r} ({hint})"
            )
        new_columns = list(_UDATA_COLUMNS)
    elif fmt == "recbole_inter":

        def rename(names: list[str]) -> list[str]:
            return [name.split(":", 1)[0] for name in names]

    quote: str | None = None if tabbed else '"'
    try:
        frame = pl.scan_csv(
            path,
            has_header=has_header,
            separator=delimiter,
            quote_char=quote,
            infer_schema=False,
            new_columns=new_columns,
            with_column_names=rename,
            raise_if_empty=False,
        )
        found = frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise _polars_error(
            label, _FORMAT_NAMES[fmt], error, "check the format and delimiter"
        ) from None
    names = _resolve_columns(label, found, fmt, spec.columns, delimiter)
    default_event = spec.default_event or (
        "rating" if fmt != "csv" and "weight" in names else "interaction"
    )
    return _select_roles(label, frame, names, default_event)


def _scan_obd(path: Path, label: str, spec: LogSpec) -> _Source:
    """An Open Bandit Dataset CSV: fixed roles, the user a profile of the user features."""
    try:
        frame = pl.scan_csv(
            path,
            separator=spec.delimiter or ",",
            infer_schema=False,
            raise_if_empty=False,
        )
        found = frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise _polars_error(label, _FORMAT_NAMES["obd"], error, "check the file") from None
    roles = obd_columns(found, label=label)
    clicked = pl.col(roles.reward).str.strip_chars() == "1"
    frame = frame.with_columns(
        user_expr(roles.user_features),
        pl.when(clicked).then(pl.lit("click")).otherwise(pl.lit("impression")).alias("obd_event"),
    )
    names = {
        "user": USER_COLUMN,
        "item": roles.item,
        "timestamp": roles.timestamp,
        "event": "obd_event",
    }
    return _select_roles(label, frame, names, spec.default_event or "impression")


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def _scan_parquet(path: Path, label: str, spec: LogSpec) -> _Source:
    try:
        frame = pl.scan_parquet(path)
        found = frame.collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise _polars_error(
            label,
            "Parquet",
            error,
            "set traffic.log.format (or --log-format) to the file's real format",
        ) from None
    names = _resolve_columns(label, found, "parquet", spec.columns, None)
    verify_parquet(path, label=label, columns=names.values())
    return _select_roles(label, frame, names, spec.default_event or "interaction")


def _scan_ndjson(path: Path, label: str, spec: LogSpec) -> _Source:
    head = _first_bytes(path, label)
    if not head.strip():
        raise _empty_file_error(label, head)
    if _is_gzip(path):
        raise UserInputError(
            f"{label}: NDJSON must be uncompressed, got a gzip-compressed file (gunzip it first; "
            "compressed CSV, u.data and .inter files are read as they are)"
        )
    try:
        found = pl.scan_ndjson(path, infer_schema_length=_SAMPLE_ROWS).collect_schema().names()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise _polars_error(
            label, _FORMAT_NAMES["ndjson"], error, "check every line is one JSON object"
        ) from None
    names = _resolve_columns(label, found, "ndjson", spec.columns, None)
    # Mapped columns are read as text, like CSV, so that a value of an unexpected type in a
    # late row is a counted skip rather than a failed read.
    schema: dict[str, pl.DataType] = {name: pl.String() for name in names.values()}
    frame = pl.scan_ndjson(path, schema=schema)
    return _select_roles(label, frame, names, spec.default_event or "interaction")


def _select_roles(
    label: str, frame: pl.LazyFrame, names: dict[str, str], default_event: str
) -> _Source:
    raw = frame.select([pl.col(name).alias(_RAW[role]) for role, name in names.items()])
    try:
        schema = raw.collect_schema()
    except pl.exceptions.PolarsError as error:
        raise _polars_error(label, "a readable log", error, "check the format") from None
    dtypes = {role: schema[_RAW[role]] for role in names}
    return _Source(label, raw, names, dtypes, default_event)


def resolved_format(spec: LogSpec) -> LogFormat:
    """The format ``spec`` is read in: its own, or the detected one for ``"auto"``.  A file
    that looks like the Open Bandit Dataset but comes with a column mapping is read as
    ``csv`` with that mapping (the mapping says the user wants other roles)."""
    if spec.format != "auto":
        _first_bytes(Path(spec.path), str(spec.path), 1)
        return spec.format
    fmt = detect_format(spec.path)
    return "csv" if fmt == "obd" and spec.columns is not None else fmt


def _open(spec: LogSpec) -> _Source:
    path = Path(spec.path)
    label = str(spec.path)
    fmt = resolved_format(spec)
    if fmt == "parquet":
        return _scan_parquet(path, label, spec)
    if fmt == "ndjson":
        return _scan_ndjson(path, label, spec)
    if fmt == "obd":
        return _scan_obd(path, label, spec)
    return _scan_text(path, label, fmt, spec)


# ---------------------------------------------------------------------------------------
# normalization and checks


def _id_expr(column: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(column)
    if dtype == pl.String:
        stripped = col.str.strip_chars()
        return pl.when(stripped.str.len_bytes() > 0).then(stripped).otherwise(None)
    if dtype.is_float():
        return pl.when(col.is_nan()).then(None).otherwise(col)
    return col


def _event_expr(source: _Source, event_types: frozenset[str] | None) -> pl.Expr:
    if "event" not in source.names:
        return pl.lit(source.default_event, dtype=pl.String)
    text = pl.col(_RAW["event"]).cast(pl.String).str.strip_chars()
    text = pl.when(text.str.len_bytes() > 0).then(text).otherwise(None)
    return text if event_types is not None else text.fill_null(source.default_event)


def _timestamp_mode(source: _Source, unit: TimestampUnit) -> TimestampMode:
    column = _RAW["timestamp"]
    dtype = source.dtypes["timestamp"]
    present = timestamp_present_expr(column, dtype)
    try:
        sample = source.frame.select(column).filter(present).head(_SAMPLE_ROWS).collect()[column]
    except (pl.exceptions.PolarsError, OSError) as error:
        raise _polars_error(
            source.label, "a readable log", error, "check the format and delimiter"
        ) from None
    return decide_timestamp_mode(
        sample, unit, source=source.label, column=source.names["timestamp"]
    )


def _normalized(source: _Source, spec: LogSpec) -> tuple[pl.LazyFrame, int]:
    """Raw role columns plus the normalized columns and a skip-reason code per row.

    Also returns a step that every valid timestamp is a multiple of, in microseconds
    (whole seconds or milliseconds for integer epochs), or 1 when not known.
    """
    mode = _timestamp_mode(source, spec.timestamp_unit)
    resolution_us = 1
    if source.dtypes["timestamp"].is_integer():
        resolution_us = {"epoch_s": 1_000_000, "epoch_ms": 1_000}.get(mode, 1)
    ts_raw = _RAW["timestamp"]
    weight_dtype = source.dtypes.get("weight")
    weight_column = _RAW["weight"] if weight_dtype is not None else None
    frame = source.frame.with_columns(
        _id_expr(_RAW["user"], source.dtypes["user"]).alias("user_raw"),
        _id_expr(_RAW["item"], source.dtypes["item"]).alias("item_raw"),
        timestamp_present_expr(ts_raw, source.dtypes["timestamp"]).alias("ts_present"),
        timestamp_us_expr(ts_raw, source.dtypes["timestamp"], mode).alias("ts_us"),
        _event_expr(source, spec.event_types).alias("event"),
        weight_expr(weight_column, weight_dtype).alias("weight"),
    )
    return frame.with_columns(skip_reason_expr(spec.event_types).alias("reason")), resolution_us


_EXAMPLE_ROLE: Final[dict[str, str]] = {
    "null_user": "user",
    "null_item": "item",
    "null_timestamp": "timestamp",
    "bad_timestamp": "timestamp",
    "unknown_event_type": "event",
    "non_finite_weight": "weight",
    "negative_weight": "weight",
}


def _example(source: _Source, normalized: pl.LazyFrame, reason: str) -> tuple[str, object] | None:
    """One raw value that was skipped for ``reason``, to show in an error message."""
    role = _EXAMPLE_ROLE.get(reason)
    if role is None or role not in source.names:
        return None
    column = _RAW[role]
    rows = (
        normalized.filter(pl.col("reason") == reason_code(reason)).select(column).head(1).collect()
    )
    if rows.height == 0:
        return None
    return source.names[role], rows[column][0]


# ---------------------------------------------------------------------------------------
# canonical table


def _dense_ids(
    valid: pl.DataFrame, column: str, name: str
) -> tuple[npt.NDArray[np.uint32], pl.Series]:
    """Dense codes in order of first appearance by time (ties by raw id) and the raw ids."""
    values = valid[column]
    if values.dtype.is_integer() and values.dtype != pl.UInt64:
        compact = _dense_compact_ints(values, valid["ts_us"], name)
        if compact is not None:
            return compact
    firsts = valid.lazy().group_by(column).agg(pl.col("ts_us").min().alias("first_us")).collect()
    raw = firsts[column]
    key = raw
    if raw.dtype == pl.String and bool(raw.str.contains(_CANONICAL_INT).all()):
        key = raw.cast(pl.Int64)
    firsts = firsts.with_columns(key.alias("key")).sort(["first_us", "key"])
    mapping = firsts.select(column, pl.int_range(firsts.height, dtype=pl.UInt32).alias("code"))
    codes = valid.select(column).join(mapping, on=column, how="left", maintain_order="left")
    return codes["code"].to_numpy(), firsts["key"].alias(name)


def _dense_compact_ints(
    values: pl.Series, ts_us: pl.Series, name: str
) -> tuple[npt.NDArray[np.uint32], pl.Series] | None:
    """:func:`_dense_ids` for integer ids in a compact range, with arrays indexed by id."""
    raw = values.to_numpy().astype(np.int64, copy=False)
    low = int(raw.min())
    span = int(raw.max()) - low + 1
    if span > raw.shape[0] + 1_000_000:
        return None
    offsets = raw - low
    first = np.full(span, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, offsets, ts_us.to_numpy())
    present = np.flatnonzero(first != np.iinfo(np.int64).max)
    ranked = present[np.lexsort((present, first[present]))]
    lookup = np.zeros(span, dtype=np.uint32)
    lookup[ranked] = np.arange(ranked.shape[0], dtype=np.uint32)
    ids = pl.Series(name, ranked + low, dtype=pl.Int64).cast(values.dtype)
    return lookup[offsets], ids


_U64 = npt.NDArray[np.uint64]
_I64 = npt.NDArray[np.int64]
_U32 = npt.NDArray[np.uint32]


def _bits(value: int) -> int:
    return max(1, int(value).bit_length())


def _sort_rows(
    ts_us: _I64, user: _U32, item: _U32, resolution_us: int
) -> tuple[_I64, _I64, _U32, _U32]:
    """Sort rows by (ts, user, item), ties by input position.

    Returns ``(order, ts_us[order], user[order], item[order])``.  ``resolution_us`` is a
    known step of the timestamps (1_000_000 for whole seconds) or 1 if unknown.

    The main pass packs (timestamp, row position) into one 64-bit word and sorts plain
    integers, which is several times faster than a stable argsort; rows that share a
    timestamp are then ordered by (user, item, position) with a second, smaller packed
    sort.  When the values are too wide to pack, a polars stable sort does the job.
    """
    n = int(ts_us.shape[0])
    if n == 0:
        return np.zeros(0, np.int64), ts_us, user, item
    pos_bits = _bits(n - 1)
    base = int(ts_us.min())
    key = (ts_us - base).view(np.uint64)
    step = resolution_us
    if step == 1 and _bits(int(key.max())) + pos_bits > 64:
        step = _common_step(key)
    if step > 1:
        key //= np.uint64(step)
    if _bits(int(key.max())) + pos_bits > 64:
        return _sort_rows_polars(ts_us, user, item)
    key <<= np.uint64(pos_bits)
    key |= np.arange(n, dtype=np.uint64)
    key.sort()
    ts_sorted = (key >> np.uint64(pos_bits)).view(np.int64)
    if step > 1:
        ts_sorted *= step
    ts_sorted += base
    key &= np.uint64((1 << pos_bits) - 1)
    order = key.view(np.int64)
    user_sorted = user[order]
    item_sorted = item[order]
    _order_ties(ts_sorted, user_sorted, item_sorted, order)
    return order, ts_sorted, user_sorted, item_sorted


def _common_step(rel: _U64) -> int:
    """The coarsest of 1 s, 1 ms, 1 µs that divides every relative timestamp."""
    for step in (1_000_000, 1_000):
        divisor = np.uint64(step)
        if not np.any(rel[:1_000] % divisor) and not np.any(rel % divisor):
            return step
    return 1


def _order_ties(ts_sorted: _I64, user: _U32, item: _U32, order: _I64) -> None:
    """In place: inside each run of equal timestamps, order rows by (user, item, position)."""
    n = int(ts_sorted.shape[0])
    same = ts_sorted[1:] == ts_sorted[:-1]
    if not bool(same.any()):
        return
    in_tie = np.zeros(n, dtype=bool)
    in_tie[1:] = same
    in_tie[:-1] |= same
    rows = np.flatnonzero(in_tie)
    opens = np.ones(rows.shape[0], dtype=bool)
    opens[1:] = ~same[rows[1:] - 1]
    run_start = np.maximum.accumulate(np.where(opens, rows, 0))
    local = rows - run_start
    run = np.cumsum(opens) - 1
    widths = (_bits(int(run[-1])), _bits(int(user.max())), _bits(int(item.max())))
    local_bits = _bits(int(local.max()))
    if sum(widths) + local_bits > 64:
        frame = pl.DataFrame({"run": run, "user": user[rows], "item": item[rows], "local": local})
        by = frame.with_row_index("k").sort(["run", "user", "item", "local"])["k"].to_numpy()
        source = rows[by]
    else:
        key = run.astype(np.uint64) << np.uint64(widths[1] + widths[2] + local_bits)
        key |= user[rows].astype(np.uint64) << np.uint64(widths[2] + local_bits)
        key |= item[rows].astype(np.uint64) << np.uint64(local_bits)
        key |= local.astype(np.uint64)
        key.sort()
        # runs keep their places, so the k-th sorted tie row lands on rows[k], in its own run
        source = run_start + (key & np.uint64((1 << local_bits) - 1)).astype(np.int64)
    order[rows] = order[source]
    user[rows] = user[source]
    item[rows] = item[source]


def _sort_rows_polars(ts_us: _I64, user: _U32, item: _U32) -> tuple[_I64, _I64, _U32, _U32]:
    frame = pl.DataFrame({"ts": ts_us, "user": user, "item": item}).with_row_index("row")
    ordered = frame.sort(["ts", "user", "item"], maintain_order=True)
    return (
        ordered["row"].to_numpy().astype(np.int64),
        ordered["ts"].to_numpy(),
        ordered["user"].to_numpy(),
        ordered["item"].to_numpy(),
    )


def _keep_mask(
    ts_us: npt.NDArray[np.int64],
    user: npt.NDArray[np.uint32],
    item: npt.NDArray[np.uint32],
    policy: DedupePolicy,
) -> npt.NDArray[np.bool_] | None:
    """For rows sorted by (ts, user, item): which to keep under the dedupe policy."""
    n = int(ts_us.shape[0])
    if policy == "none" or n < 2:
        return None
    same = (ts_us[1:] == ts_us[:-1]) & (user[1:] == user[:-1]) & (item[1:] == item[:-1])
    if not bool(same.any()):
        return None
    keep = np.ones(n, dtype=bool)
    if policy == "first":
        keep[1:] = ~same
    else:
        keep[:-1] = ~same
    return keep


def _canonical(
    valid: pl.DataFrame,
    spec: LogSpec,
    constant_event: str | None,
    has_session: bool,
    resolution_us: int,
) -> tuple[pl.DataFrame, pl.Series, pl.Series, int]:
    """Events in canonical form, raw user and item ids, and the number of duplicates dropped."""
    user, user_ids = _dense_ids(valid, "user_raw", "user_id")
    item, item_ids = _dense_ids(valid, "item_raw", "item_id")
    order, ts_us, user, item = _sort_rows(valid["ts_us"].to_numpy(), user, item, resolution_us)
    keep = _keep_mask(ts_us, user, item, spec.dedupe)
    duplicates = 0
    if keep is not None:
        duplicates = int(keep.shape[0] - np.count_nonzero(keep))
        order, ts_us, user, item = order[keep], ts_us[keep], user[keep], item[keep]
    if has_session:
        session = keyed_sessions(user, valid["session_raw"].gather(order))
    else:
        session = gap_sessions(user, ts_us, spec.session_gap_s)
    # a constant event type stays one scalar column instead of a string per row
    event = (
        valid["event"].gather(order).alias("event")
        if constant_event is None
        else pl.lit(constant_event, dtype=pl.String).alias("event")
    )
    events = pl.DataFrame(
        [
            pl.Series("user", user, dtype=pl.UInt32),
            pl.Series("item", item, dtype=pl.UInt32),
            pl.Series("ts", ts_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            pl.Series("weight", valid["weight"].to_numpy()[order], dtype=pl.Float32),
            pl.Series("session", session, dtype=pl.UInt32),
        ]
    ).with_columns(event)
    events = events.select("user", "item", "ts", "event", "weight", "session")
    return events, user_ids, item_ids, duplicates


def read_log(spec: LogSpec) -> EventTable:
    """Read, check, deduplicate, sort and sessionize one log into the canonical table.

    Every input row is kept or counted under one skip reason (``EventTable.accounting``).
    Raises :class:`~replay.errors.UserInputError` (one line naming the file, the column, an
    example value and a fix) when the log cannot be used at all: missing or unreadable file,
    undetectable or wrong format, wrong delimiter, missing columns, no data rows, or no row
    left after the checks.
    """
    source = _open(spec)
    normalized, resolution_us = _normalized(source, spec)
    wanted = ["user_raw", "item_raw", "ts_us", "weight", "reason"]
    has_event = "event" in source.names
    has_session = "session" in source.names
    if has_event:
        wanted.append("event")
    if has_session:
        wanted.append("session_raw")
    try:
        frame = normalized.select(wanted).collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as error:
        what = _FORMAT_NAMES.get(spec.format, "a readable log")
        raise _polars_error(
            source.label, what, error, "check the format, delimiter and encoding"
        ) from None
    input_rows = frame.height
    if input_rows == 0:
        shown = ", ".join(source.names.values())
        raise UserInputError(
            f"{source.label}: log must hold at least one data row, got none (found columns "
            f"{shown} but no rows; export the log again)"
        )
    per_code = np.bincount(frame["reason"].to_numpy(), minlength=len(SKIP_REASONS) + 1)
    skipped = {
        reason: int(per_code[code])
        for code, reason in enumerate(SKIP_REASONS, start=1)
        if per_code[code] > 0
    }
    if skipped:
        frame = frame.filter(pl.col("reason") == 0)
    frame = frame.drop("reason")
    if frame.height == 0:
        top = max(skipped, key=lambda reason: skipped[reason])
        raise no_rows_left_error(
            source.label, accounting(input_rows, skipped), _example(source, normalized, top)
        )
    outliers = timestamp_outliers(frame["ts_us"].to_numpy())
    if outliers is not None:
        skipped["outlier_timestamp"] = int(outliers.sum())
        frame = frame.filter(pl.Series(~outliers))
    constant_event = None if has_event else source.default_event
    events, user_ids, item_ids, duplicates = _canonical(
        frame, spec, constant_event, has_session, resolution_us
    )
    if duplicates:
        skipped["duplicate"] = duplicates
    counts_out = accounting(input_rows, skipped)
    if counts_out["kept"] != events.height:
        raise InternalError(f"{source.label}: kept {events.height} rows, accounted {counts_out}")
    return EventTable(
        events=events,
        user_ids=user_ids,
        item_ids=item_ids,
        source=source.label,
        accounting=counts_out,
    )
