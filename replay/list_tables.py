"""Top-K tables written by any system: a version's lists, read into the lab's id space.

A table has one row per (user, shown item): ``user, item, rank`` and optionally ``score``
and ``p_click`` (the system's own click probability), in Parquet or CSV.  It may cover a
sample of users only; the version serves a declared fallback to the others (see
``lab.versions``).  Reading it gives, per covered user, the items in rank order (the
position is the order of the ranks, so ranks 1, 2, 5 fill positions 1, 2, 3), padded with
``-1`` to K::

    users    int64   [m]      covered users, ascending (the lab's user ids)
    items    int32   [m, K]   best first, -1 pads
    scores   float32 [m, K]   the system's scores (NaN without a score column, or pads)
    p_click  float32 [m, K]   its click probabilities, or None

Ids are the lab's: integers ``0 .. n - 1`` for a synthetic world (``rollout-lab world
export`` writes them), or the raw ids of a replayed log, mapped through the log's id maps.

Every row is kept or counted under a reason (``accounting``): ``unknown_user`` and
``unknown_item`` (ids the lab does not know), ``beyond_k`` (positions after K).  Mistakes
that make the lists meaningless are one-line errors: a missing column, a column of the wrong
type, a rank below 1, a rank twice for one user, an item twice in one list, a NaN or
infinite score or probability, a probability outside [0, 1].

Speed and memory: the table is read once (polars, all cores) and its columns used in
place; a table sorted by user and rank where every user has ranks 1..K (what exports write)
becomes the lists without a copy; any other is placed position by position, sorted first if
it is not sorted by user and rank.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import UserInputError

__all__ = ["ListColumns", "ListTable", "read_list_table"]

_INTEGER = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_NUMERIC = (*_INTEGER, pl.Float32, pl.Float64)


@dataclass(frozen=True, slots=True)
class ListColumns:
    """Which column of the table plays which role (``score``/``p_click`` optional)."""

    user: str = "user"
    item: str = "item"
    rank: str = "rank"
    score: str | None = "score"
    p_click: str | None = None


@dataclass(frozen=True, slots=True, eq=False)
class ListTable:
    """The lists of one external version (see the module docstring for shapes)."""

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    p_click: npt.NDArray[np.float32] | None
    accounting: dict[str, int] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.items.shape[1])


def _fail(source: str, what: str, value: object, fix: str) -> UserInputError:
    text = repr(value)
    if len(text) > 60:
        text = text[:60] + "…"
    return UserInputError(f"{source}: {what}, got {text} ({fix})")


def _scan(path: Path, source: str) -> pl.LazyFrame:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise UserInputError(f"{source}: no such top-K table file (check the path)")
    if suffix == ".parquet":
        return pl.scan_parquet(path)
    if suffix in (".csv", ".tsv"):
        separator = "\t" if suffix == ".tsv" else ","
        return pl.scan_csv(path, separator=separator, infer_schema_length=10_000)
    raise UserInputError(
        f"{source}: a top-K table must be a .parquet, .csv or .tsv file, got {suffix or 'none'!r}"
    )


def _check_schema(
    schema: dict[str, Any], columns: ListColumns, *, raw_users: bool, raw_items: bool, source: str
) -> list[str]:
    roles: list[tuple[str, str | None, tuple[Any, ...], str]] = [
        ("user", columns.user, _INTEGER if not raw_users else (*_INTEGER, pl.String), "ids"),
        ("item", columns.item, _INTEGER if not raw_items else (*_INTEGER, pl.String), "ids"),
        ("rank", columns.rank, _INTEGER, "whole numbers from 1"),
        ("score", columns.score, _NUMERIC, "numbers"),
        ("p_click", columns.p_click, _NUMERIC, "probabilities"),
    ]
    wanted: list[str] = []
    for role, name, types, words in roles:
        if name is None:
            continue
        if name not in schema:
            if role == "score" and name == "score":
                continue  # the default score column is optional
            known = ", ".join(schema) or "none"
            raise UserInputError(
                f"{source}: column {name!r} ({role}) not found (columns: {known}; map it with "
                f"columns.{role})"
            )
        dtype = schema[name]
        if not any(dtype == t for t in types):
            kind = "integer" if types == _INTEGER else "numeric"
            raise _fail(
                source,
                f"column {name!r} ({role}) must hold {words} ({kind})",
                str(dtype),
                "write it as an integer or number column",
            )
        wanted.append(name)
    return wanted


def read_list_table(
    path: str | Path,
    *,
    k: int,
    n_users: int,
    n_items: int,
    columns: ListColumns = ListColumns(),
    user_ids: pl.Series | None = None,
    item_ids: pl.Series | None = None,
    source: str | None = None,
) -> ListTable:
    """Read a top-K table into the lab's id space (see the module docstring).

    ``user_ids`` / ``item_ids``: the raw id of every lab id (position = lab id) when the
    lab's ids come from a replayed log; None when they are the integers ``0 .. n - 1``.
    """
    file = Path(path)
    where = source or file.name
    scan = _scan(file, where)
    try:
        schema = dict(scan.collect_schema())
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise UserInputError(f"{where}: not a readable table ({type(exc).__name__})") from None
    wanted = _check_schema(
        schema,
        columns,
        raw_users=user_ids is not None,
        raw_items=item_ids is not None,
        source=where,
    )
    has_score = columns.score is not None and columns.score in wanted
    has_p = columns.p_click is not None
    frame = scan.select(wanted).rename(
        {
            columns.user: "user",
            columns.item: "item",
            columns.rank: "rank",
            **({columns.score: "score"} if has_score and columns.score else {}),
            **({columns.p_click: "p_click"} if has_p and columns.p_click else {}),
        }
    )
    frame = _to_lab_ids(frame, user_ids, item_ids)
    try:
        # One multi-threaded read.  Each chunk is placed into the lists and then let go, so
        # the peak is about the table or the lists, whichever is larger, not both.
        chunks = _chunks(frame.collect())
        capacity = min(n_users, sum(chunk.height for chunk in chunks))
        reader = _Reader(
            k=k,
            n_users=n_users,
            n_items=n_items,
            has_score=has_score,
            has_p=has_p,
            capacity=capacity,
        )
        while chunks:
            if not reader.add(chunks.pop(0), where):
                # Not sorted by (user, rank): read again, sorted, in one piece.
                chunks.clear()
                reader.restart()
                reader.add(frame.sort(["user", "rank"]).collect().rechunk(), where)
        return reader.finish(where)
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(
            where, "could not be read as a top-K table", first, "check its format"
        ) from None


def _chunks(table: pl.DataFrame) -> list[pl.DataFrame]:
    """The table's chunks as frames of one chunk each (whole rows; rechunked if the columns
    are chunked differently)."""
    lengths = {tuple(table[name].chunk_lengths()) for name in table.columns}
    if len(lengths) != 1:
        return [table.rechunk()]
    out, start = [], 0
    for length in lengths.pop():
        out.append(table.slice(start, length))
        start += length
    return out


def _to_lab_ids(
    frame: pl.LazyFrame, user_ids: pl.Series | None, item_ids: pl.Series | None
) -> pl.LazyFrame:
    """Raw ids -> lab ids (null where unknown); integer ids pass through as Int64."""
    for role, ids in (("user", user_ids), ("item", item_ids)):
        if ids is None:
            continue
        mapping = pl.DataFrame(
            {"raw": ids.cast(pl.String), "lab": np.arange(ids.len(), dtype=np.int64)}
        ).lazy()
        frame = (
            frame.with_columns(pl.col(role).cast(pl.String))
            .join(mapping, left_on=role, right_on="raw", how="left", maintain_order="left")
            .drop(role)
            .rename({"lab": role})
        )
    return frame


class _Reader:
    """Places batches sorted by (user, rank) into preallocated lists.

    The rows of a batch's last user are held back and put in front of the next batch, so
    every fold sees whole users.  Each folded block's lists are checked for repeated items
    on a second thread (numpy releases the GIL) while the next block is placed.
    """

    def __init__(
        self,
        *,
        k: int,
        n_users: int,
        n_items: int,
        has_score: bool,
        has_p: bool,
        capacity: int,
    ) -> None:
        self.k, self.n_users, self.n_items = k, n_users, n_items
        self.has_score, self.has_p = has_score, has_p
        # Untouched rows of np.empty cost no memory: only the lists placed are resident.
        self.out_users = np.empty(capacity, np.int64)
        self.out_items = np.empty((capacity, k), np.int32)
        self.out_scores = np.empty((capacity, k), np.float32)
        self.out_p = np.empty((capacity, k), np.float32) if has_p else None
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.restart()

    def restart(self) -> None:
        self.m = 0
        self.checks: list[Future[None]] = []
        self.counts = {"input_rows": 0, "unknown_user": 0, "unknown_item": 0, "beyond_k": 0}
        self.carry: dict[str, npt.NDArray[Any]] | None = None

    def add(self, batch: pl.DataFrame, source: str) -> bool:
        """Fold one batch in; False when the table turns out not to be sorted."""
        if batch.height == 0:
            return True
        self.counts["input_rows"] += batch.height
        rows = {name: batch[name].to_numpy() for name in batch.columns}
        _validate_values(rows, source)
        rows = self._known(rows)
        user, rank = rows["user"], rows["rank"]
        if user.size == 0:
            return True
        head = 0
        if self.carry is not None:
            last_user, last_rank = int(self.carry["user"][-1]), int(self.carry["rank"][-1])
            if int(user[0]) < last_user:
                return False
            if int(user[0]) == last_user:
                if int(rank[0]) <= last_rank:
                    if int(rank[0]) == last_rank:
                        raise _twice(source, last_user, last_rank)
                    return False
                # The carried user's list continues here: fold it whole.
                head = int(np.searchsorted(user, last_user, side="right"))
                if not _sorted(user[:head], rank[:head], source):
                    return False
            joined = {
                name: np.concatenate([self.carry[name], values[:head]])
                for name, values in rows.items()
            }
            if head == user.size:
                # The whole batch continues the carried user, who may go on in the next one.
                self.carry = joined
                return True
            self._fold(joined)
        body = {name: values[head:] for name, values in rows.items()}
        last_start = self._body(body, source)
        if last_start is None:
            return False
        self.carry = {name: values[last_start:] for name, values in body.items()}
        return True

    def _known(self, rows: dict[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """Rows whose user and item the lab knows; the others counted (never silently)."""
        user, item = rows["user"], rows["item"]
        fine = (
            user.dtype.kind in "iu"
            and item.dtype.kind in "iu"
            and int(user.min()) >= 0
            and int(user.max()) < self.n_users
            and int(item.min()) >= 0
            and int(item.max()) < self.n_items
        )
        if fine:
            return rows
        bad_user = _unknown(user, self.n_users)
        bad_item = _unknown(item, self.n_items) & ~bad_user
        self.counts["unknown_user"] += int(bad_user.sum())
        self.counts["unknown_item"] += int(bad_item.sum())
        keep = ~(bad_user | bad_item)
        return {name: values[keep] for name, values in rows.items()}

    def _body(self, rows: dict[str, npt.NDArray[Any]], source: str) -> int | None:
        """Fold every user of ``rows`` but the last (it may continue in the next batch);
        the last user's first row, or None when the rows are not sorted by (user, rank)."""
        user, rank, k = rows["user"], rows["rank"], self.k
        n = user.size
        if n % k == 0 and n:
            users = user.reshape(-1, k)
            first = users[:, 0]
            if (
                (rank.reshape(-1, k) == np.arange(1, k + 1)).all()
                and (users == first[:, None]).all()
                and (first[1:] > first[:-1]).all()
            ):
                # Whole lists of ranks 1..K: all but the last list now, the last one carried.
                self._fold({name: values[: n - k] for name, values in rows.items()})
                return n - k
        if not _sorted(user, rank, source):
            return None
        last_start = int(np.searchsorted(user, user[-1], side="left"))
        self._fold({name: values[:last_start] for name, values in rows.items()})
        return last_start

    def _fold(self, rows: dict[str, npt.NDArray[Any]]) -> None:
        user = rows["user"]
        if user.size == 0:
            return
        k, lo = self.k, self.m
        starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
        m = starts.size
        hi = lo + m
        items, scores, probs = self.out_items[lo:hi], self.out_scores[lo:hi], None
        if self.out_p is not None:
            probs = self.out_p[lo:hi]
        self.out_users[lo:hi] = user[starts]
        if user.size == m * k and (rows["rank"].reshape(m, k) == np.arange(1, k + 1)).all():
            # Every user has exactly ranks 1..K (what exports write): the columns are the
            # lists already, row-major.
            items[:] = rows["item"].reshape(m, k)
            scores[:] = rows["score"].reshape(m, k) if "score" in rows else np.nan
            if probs is not None:
                probs[:] = rows["p_click"].reshape(m, k)
        else:
            lengths = np.diff(np.r_[starts, user.size])
            position = np.arange(user.size, dtype=np.int64) - np.repeat(starts, lengths)
            inside = position < k
            self.counts["beyond_k"] += int(user.size - inside.sum())
            r = np.repeat(np.arange(m), lengths)[inside]
            c = position[inside]
            items[:] = -1
            items[r, c] = rows["item"][inside]
            scores[:] = np.nan
            if "score" in rows:
                scores[r, c] = rows["score"][inside]
            if probs is not None:
                probs[:] = np.nan
                probs[r, c] = rows["p_click"][inside]
        self.m = hi
        self.checks.append(self.pool.submit(_check_unique_items, self.out_users[lo:hi], items))

    def finish(self, source: str) -> ListTable:
        if self.carry is not None:
            self._fold(self.carry)
            self.carry = None
        try:
            for check in self.checks:
                check.result()
        except _Repeated as twice:
            raise _fail(
                source,
                f"item {twice.item} appears twice in the list of user {twice.user}",
                twice.item,
                "each item once per list",
            ) from None
        finally:
            self.pool.shutdown()
        if self.m == 0:
            raise UserInputError(
                f"{source}: no list of a known user (rows: {self.counts['input_rows']}, unknown "
                f"users: {self.counts['unknown_user']}, unknown items: "
                f"{self.counts['unknown_item']}; are the ids the lab's?)"
            )
        m = self.m
        skipped = {key: v for key, v in self.counts.items() if key != "input_rows"}
        accounting = {
            "input_rows": self.counts["input_rows"],
            "kept": self.counts["input_rows"] - sum(skipped.values()),
            **{f"skipped.{key}": v for key, v in skipped.items()},
        }
        return ListTable(
            self.out_users[:m],
            self.out_items[:m],
            self.out_scores[:m],
            None if self.out_p is None else self.out_p[:m],
            accounting,
        )


def _validate_values(rows: dict[str, npt.NDArray[Any]], source: str) -> None:
    rank = rows["rank"]
    if rank.size and int(rank.min()) < 1:
        raise _fail(
            source, "rank must be a whole number from 1", int(rank.min()), "ranks start at 1"
        )
    for name in ("score", "p_click"):
        values = rows.get(name)
        if values is None:
            continue
        finite = np.isfinite(values)
        if not finite.all():
            raise _fail(
                source,
                f"{name} must be a finite number",
                float(values[~finite][0]),
                f"fix or drop the rows with a non-finite {name}",
            )
    p_click = rows.get("p_click")
    if p_click is not None and p_click.size:
        low, high = float(p_click.min()), float(p_click.max())
        if low < 0 or high > 1:
            raise _fail(
                source,
                "p_click must be a probability in [0, 1]",
                low if low < 0 else high,
                "write probabilities, not scores",
            )


def _twice(source: str, user: int, rank: int) -> UserInputError:
    return _fail(source, f"user {user} has rank {rank} twice", rank, "each rank once per user")


def _sorted(user: npt.NDArray[Any], rank: npt.NDArray[Any], source: str) -> bool:
    """Whether rows are sorted by (user, rank); a rank twice for one user is an error."""
    user_step = np.diff(user)
    if (user_step < 0).any():
        return False
    same = user_step == 0
    rank_step = np.diff(rank)
    if (same & (rank_step < 0)).any():
        return False
    twice = same & (rank_step == 0)
    if twice.any():
        at = int(np.flatnonzero(twice)[0])
        raise _twice(source, int(user[at]), int(rank[at]))
    return True


def _unknown(ids: npt.NDArray[Any], n: int) -> npt.NDArray[np.bool_]:
    """Null (NaN once mapped), negative or out-of-range ids."""
    if ids.dtype.kind == "f":
        bad = ~np.isfinite(ids) | (ids < 0) | (ids >= n)
    else:
        bad = (ids < 0) | (ids >= n)
    return np.asarray(bad, dtype=np.bool_)


class _Repeated(Exception):
    """An item twice in one list (raised on the checking thread, reported by ``finish``)."""

    def __init__(self, item: int, user: int) -> None:
        super().__init__(item, user)
        self.item, self.user = item, user


def _check_unique_items(users: npt.NDArray[np.int64], items: npt.NDArray[np.int32]) -> None:
    ordered = np.sort(items, axis=1)
    twice = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if twice.any():
        row, col = np.argwhere(twice)[0]
        raise _Repeated(int(ordered[row, col]), int(users[row]))
