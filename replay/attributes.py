"""Attribute tables: what a team knows about its items and users, keyed to the run's ids.

A table is a CSV or Parquet file with one row per item (or user): an id column plus any
columns, e.g. ``item, genres, provider, price_band, release_date`` or ``user, country,
platform, cohort``.  Each *categorical* column becomes a membership matrix

    membership  int8 CSR [n_ids, n_levels]   1 where the id has the level (value)

over the run's dense ids (row d = the id the run numbers d).  A column may be multi-valued
(``"Action|Comedy"`` with separator ``"|"``): an id then has several levels.  Which columns
are categorical: the ones listed (``categorical``), else every multi-valued column and every
text column with at most :data:`DEFAULT_MAX_LEVELS` distinct values; numbers, dates and
free text (titles) are listed under ``ignored`` with the reason, never grouped by silently.

Row accounting, like the log readers: every row is kept or counted under one reason,

    null_id      the id cell is empty
    unknown_id   the id is not an item (user) of the run (a table for a larger catalogue)

and ``kept + Σ skipped == input_rows``; ids of the run without a row are counted
(``ids_without_row``) and have no level.  Mistakes a person must fix are one-line errors
(:class:`~replay.errors.UserInputError`): a missing file or column, an id on two rows, an
id of the wrong type (text where the run's ids are whole numbers), a
multi-valued column whose values use another separator than the one declared, a grouping
column with more than :data:`MAX_LEVELS` values, a table none of whose ids is the run's.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

from replay.errors import UserInputError, cut
from replay.files import read_regular_bytes

__all__ = [
    "DEFAULT_MAX_LEVELS",
    "MAX_LEVELS",
    "Attribute",
    "AttributeSpec",
    "AttributeTable",
    "read_attributes",
]

#: Text columns with at most this many distinct values are categorical unless listed.
DEFAULT_MAX_LEVELS: Final[int] = 100
#: A grouping column may have at most this many distinct values.
MAX_LEVELS: Final[int] = 1_000
#: Separators a multi-valued cell is checked against when the declared one is absent.
_SEPARATORS: Final[tuple[str, ...]] = ("|", ",", ";", "/")

Kind = Literal["item", "user"]


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """How to read one attribute table.

    path          the CSV or Parquet file
    kind          ``"item"`` or ``"user"`` (names the ids in messages)
    id_column     the column holding the raw item (user) id
    multi_valued  column -> separator of its values (``{"genres": "|"}``)
    categorical   the columns to group by; ``None``: every multi-valued column and every
                  text column with at most :data:`DEFAULT_MAX_LEVELS` distinct values
    field         the scenario's dotted path of this table, for messages
    """

    path: Path | str
    kind: Kind
    id_column: str
    multi_valued: Mapping[str, str] = field(default_factory=dict)
    categorical: Sequence[str] | None = None
    field: str = "attributes"


@dataclass(frozen=True, slots=True)
class Attribute:
    """One categorical column over the run's dense ids.

    ``levels`` are the distinct values, sorted; ``membership`` int8 CSR [n_ids, n_levels];
    ``multi_valued`` whether one id may have several levels.
    """

    name: str
    levels: tuple[str, ...]
    membership: sp.csr_matrix
    multi_valued: bool

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def dense(self) -> npt.NDArray[np.int8]:
        """The membership as a dense 0/1 matrix [n_ids, n_levels]."""
        return np.asarray(self.membership.toarray(), dtype=np.int8)

    def has(self, values: Sequence[str]) -> npt.NDArray[np.bool_]:
        """bool [n_ids]: the id has at least one of ``values``."""
        wanted = [self.levels.index(v) for v in values if v in self.levels]
        if not wanted:
            return np.zeros(self.membership.shape[0], dtype=np.bool_)
        return np.asarray(self.membership[:, wanted].sum(axis=1)).ravel() > 0

    def group(self) -> npt.NDArray[np.int64]:
        """int64 [n_ids]: each id's level, ``n_levels`` for ids without one.

        Single-valued columns only (a multi-valued id has no one group).
        """
        if self.multi_valued:
            raise ValueError(f"attribute {self.name!r} is multi-valued: use membership")
        coo = self.membership.tocoo()
        out = np.full(self.membership.shape[0], self.n_levels, dtype=np.int64)
        out[coo.row] = coo.col
        return out


@dataclass(frozen=True, slots=True)
class AttributeTable:
    """The categorical columns of one table and how its rows were accounted for."""

    kind: Kind
    path: str
    n_ids: int
    attributes: dict[str, Attribute]
    accounting: dict[str, int]
    ids_without_row: int
    ignored: dict[str, str]  # column -> why it is not grouped by

    def summary(self) -> dict[str, object]:
        """JSON-ready description: accounting, columns grouped by and the ones ignored."""
        skipped = {
            key.removeprefix("skipped."): n
            for key, n in self.accounting.items()
            if key.startswith("skipped.")
        }
        return {
            "path": self.path,
            "accounting": {
                "input_rows": self.accounting["input_rows"],
                "kept": self.accounting["kept"],
                "skipped": skipped,
            },
            "ids": self.n_ids,
            "ids_without_row": self.ids_without_row,
            "attributes": {
                name: {"levels": a.n_levels, "multi_valued": a.multi_valued}
                for name, a in self.attributes.items()
            },
            "ignored": dict(self.ignored),
        }


def _label(spec: AttributeSpec) -> str:
    return str(spec.path)


def _read_frame(spec: AttributeSpec) -> pl.DataFrame:
    """Every column as text (so that ids and values compare as written)."""
    label = _label(spec)
    data = read_regular_bytes(
        spec.path, label=label, what=f"{spec.field}.path (an attribute table)"
    )
    try:
        if data[:4] == b"PAR1":
            frame = pl.read_parquet(io.BytesIO(data))
            frame = frame.with_columns(pl.all().cast(pl.String))
        else:
            frame = pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(
            f"{label}: {spec.field} must be a CSV file with a header or a Parquet file, got a "
            f"read error: {cut(detail)}"
        ) from None
    return frame


def _missing_column(
    spec: AttributeSpec, role: str, column: str, found: list[str]
) -> UserInputError:
    shown = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
    setting = "id" if role.endswith("id") else role.replace("-", "_")
    return UserInputError(
        f"{_label(spec)}: column {column!r} ({role}) is missing (found {shown}; set "
        f"{spec.field}.{setting} to a column of the table)"
    )


def _ids_as(raw: pl.Series, known: pl.Series) -> pl.Series:
    """The table's id texts in the dtype of the run's raw ids (null where they cannot be)."""
    if known.dtype.is_integer():
        text = raw.str.strip_chars()
        as_float = text.cast(pl.Float64, strict=False)
        whole = as_float.is_finite() & (as_float == as_float.round(0))
        return pl.Series(
            raw.name,
            pl.select(pl.when(whole).then(as_float).otherwise(None).cast(pl.Int64)).to_series(),
        ).cast(known.dtype, strict=False)
    return raw.str.strip_chars().cast(known.dtype, strict=False)


def _check_id_type(
    spec: AttributeSpec, raw: pl.Series, ids: pl.Series, blank: pl.Series, known: pl.Series
) -> None:
    """An id that cannot be one of the run's (text where the run's ids are whole numbers)."""
    wrong = (ids.is_null() & ~blank).to_numpy()
    if not wrong.any():
        return
    row = int(np.flatnonzero(wrong)[0])
    raise UserInputError(
        f"{_label(spec)}: line {row + 2}: {spec.kind} id {cut(str(raw[row]))!r} in column "
        f"{spec.id_column!r} must be a whole number like the run's {spec.kind} ids (e.g. "
        f"{known.head(3).to_list()}; rows like it: {int(wrong.sum()):,}); fix the id or set "
        f"{spec.field}.id to the column holding them"
    )


def _check_duplicates(spec: AttributeSpec, ids: pl.Series) -> None:
    counts = (
        pl.DataFrame({"id": ids, "line": np.arange(ids.len(), dtype=np.int64) + 2})
        .filter(pl.col("id").is_not_null())
        .group_by("id", maintain_order=True)
        .agg(pl.col("line"))
        .filter(pl.col("line").list.len() > 1)
    )
    if counts.height:
        first = counts.row(0, named=True)
        lines = ", ".join(str(x) for x in first["line"][:3])
        raise UserInputError(
            f"{_label(spec)}: {spec.kind} id {first['id']!r} appears on {len(first['line'])} rows "
            f"(lines {lines}; {counts.height} ids repeated): each {spec.kind} must have one row "
            "(remove or merge the duplicates)"
        )


def _text_kind(values: pl.Series) -> str:
    """``number``, ``date`` or ``text`` for a column of text cells (nulls ignored)."""
    present = values.drop_nulls().str.strip_chars()
    present = present.filter(present.str.len_bytes() > 0)
    if present.len() == 0:
        return "empty"
    if present.cast(pl.Float64, strict=False).null_count() == 0:
        return "number"
    if present.str.to_date(strict=False).null_count() == 0:
        return "date"
    return "text"


def _check_separator(spec: AttributeSpec, column: str, values: pl.Series, sep: str) -> None:
    present = values.drop_nulls()
    if present.str.contains(sep, literal=True).any():
        return
    for other in _SEPARATORS:
        if other == sep:
            continue
        hits = present.filter(present.str.contains(other, literal=True))
        if hits.len():
            raise UserInputError(
                f"{_label(spec)}: {spec.field}.multi_valued.{column} declares separator "
                f"{sep!r}, but no value contains it while {hits.len():,} values contain {other!r} "
                f"(e.g. {hits[0]!r}); set {spec.field}.multi_valued.{column} = {other!r}"
            )


def _membership(
    values: pl.Series, dense: npt.NDArray[np.int64], n_ids: int, sep: str | None
) -> tuple[tuple[str, ...], sp.csr_matrix]:
    """Levels and membership [n_ids, n_levels] of one column's kept rows."""
    frame = pl.DataFrame({"row": dense, "value": values})
    if sep is not None:
        frame = frame.with_columns(pl.col("value").str.split(sep)).explode("value")
    frame = frame.with_columns(pl.col("value").str.strip_chars()).filter(
        pl.col("value").is_not_null() & (pl.col("value").str.len_bytes() > 0)
    )
    levels = tuple(sorted(frame["value"].unique().to_list()))
    index = pl.DataFrame({"value": list(levels), "level": np.arange(len(levels), dtype=np.int64)})
    coded = frame.join(index, on="value", how="left").unique(["row", "level"])
    matrix = sp.csr_matrix(
        (
            np.ones(coded.height, dtype=np.int8),
            (coded["row"].to_numpy(), coded["level"].to_numpy()),
        ),
        shape=(n_ids, len(levels)),
        dtype=np.int8,
    )
    return levels, matrix


def read_attributes(spec: AttributeSpec, known_ids: pl.Series) -> AttributeTable:
    """Read one attribute table against the run's raw ids (``known_ids``: raw id of dense id d).

    See the module docstring for what is kept, counted and refused.
    """
    label = _label(spec)
    frame = _read_frame(spec)
    found = frame.columns
    if spec.id_column not in found:
        raise _missing_column(spec, f"the {spec.kind} id", spec.id_column, found)
    for column in spec.multi_valued:
        if column not in found:
            raise _missing_column(spec, "multi-valued", column, found)
    for column in spec.categorical or ():
        if column not in found:
            raise _missing_column(spec, "categorical", column, found)
    input_rows = frame.height
    if input_rows == 0:
        raise UserInputError(
            f"{label}: {spec.field} must hold at least one row, got a header only "
            f"(columns {', '.join(found)})"
        )
    raw = frame[spec.id_column]
    blank = raw.is_null() | (raw.str.strip_chars().str.len_bytes() == 0)
    ids = _ids_as(raw, known_ids)
    _check_id_type(spec, raw, ids, blank, known_ids)
    _check_duplicates(spec, pl.Series("id", raw.str.strip_chars()).set(blank, None))
    lookup = pl.DataFrame({"id": known_ids, "dense": np.arange(known_ids.len(), dtype=np.int64)})
    joined = pl.DataFrame({"id": ids}).join(lookup, on="id", how="left", maintain_order="left")
    dense = joined["dense"]
    null_id = int(blank.sum())
    unknown = int((dense.is_null() & ~blank).sum())
    keep = dense.is_not_null().to_numpy()
    kept = int(keep.sum())
    if kept == 0:
        example = raw.filter(~blank).head(1).to_list()
        raise UserInputError(
            f"{label}: no {spec.kind} id of {spec.field} is a {spec.kind} of the run (e.g. "
            f"{example[0] if example else None!r}; the run's ids look like "
            f"{known_ids.head(3).to_list()}); point {spec.field}.path at the table for this "
            "data, or set its id column"
        )
    skipped = {"null_id": null_id, "unknown_id": unknown}
    accounting = {
        "input_rows": input_rows,
        "kept": kept,
        **{f"skipped.{k}": v for k, v in skipped.items() if v},
    }
    rows = dense.to_numpy()[keep].astype(np.int64)
    n_ids = known_ids.len()
    attributes: dict[str, Attribute] = {}
    ignored: dict[str, str] = {}
    for column in found:
        if column == spec.id_column:
            continue
        values = frame[column].filter(pl.Series(keep))
        sep = spec.multi_valued.get(column)
        listed = spec.categorical is not None and column in spec.categorical
        if sep is not None:
            _check_separator(spec, column, values, sep)
        if spec.categorical is not None and not listed and sep is None:
            ignored[column] = "not listed in categorical"
            continue
        if sep is None and not listed:
            kind = _text_kind(values)
            if kind != "text":
                ignored[column] = f"{kind} column (list it in categorical to group by its values)"
                continue
        levels, membership = _membership(values, rows, n_ids, sep)
        if len(levels) > MAX_LEVELS:
            raise UserInputError(
                f"{label}: column {column!r} has {len(levels):,} distinct values, too many to "
                f"group by (at most {MAX_LEVELS:,}); leave it out of {spec.field}.categorical"
            )
        if not listed and sep is None and len(levels) > DEFAULT_MAX_LEVELS:
            ignored[column] = (
                f"{len(levels):,} distinct values, free text rather than a category (list it "
                "in categorical to group by it)"
            )
            continue
        if not levels:
            ignored[column] = "no value in any kept row"
            continue
        attributes[column] = Attribute(column, levels, membership, sep is not None)
    return AttributeTable(
        kind=spec.kind,
        path=label,
        n_ids=n_ids,
        attributes=attributes,
        accounting=accounting,
        ids_without_row=n_ids - kept,
        ignored=ignored,
    )
