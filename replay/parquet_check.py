"""Checking what a Parquet reader gives back, before the lab trusts it.

A Parquet file with bytes zeroed or flipped in a data page often still decodes: the values
are simply wrong.  Two checks catch it where the format allows:

* page checksums (CRC-32 of each page, optional in the format): verified whenever the writer
  stored them;
* column-chunk statistics (the writer's minimum, maximum and null count of every column in
  every row group, which most writers store): the decoded values must have exactly those.

A file whose pages cannot be decoded, whose checksum does not match, or whose decoded values
disagree with its own statistics is refused in one line.  Damage that keeps every checksum
absent and every minimum, maximum and null count intact cannot be seen by any reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from replay.errors import UserInputError

__all__ = ["verify_parquet"]


def _stat(value: Any) -> Any:
    """A statistic as a plain Python value (bytes of string columns as text)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _damaged(label: str, where: str, detail: str) -> UserInputError:
    return UserInputError(
        f"{label}: Parquet file must read back as it was written, got {detail} in {where} (the "
        "file is damaged: export it again)"
    )


def verify_parquet(path: Path | str, *, label: str, columns: Iterable[str]) -> None:
    """Decode ``columns`` of every row group with page checksums verified, and compare the
    decoded minimum, maximum and null count with the file's own statistics."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys(columns))
    try:
        handle = pq.ParquetFile(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as error:
        raise _damaged(label, "its footer", f"an unreadable footer ({error})") from None
    meta = handle.metadata
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    for group in range(meta.num_row_groups):
        where = f"row group {group}"
        try:
            table = handle.read_row_group(group, columns=wanted)
        except (OSError, pa.ArrowException) as error:
            text = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise _damaged(label, where, f"a read error: {text}") from None
        chunks = meta.row_group(group)
        for name in wanted:
            if name not in names:
                continue
            stats = chunks.column(names.index(name)).statistics
            column = table.column(name)
            if stats is None:
                continue
            if stats.has_null_count and stats.null_count != column.null_count:
                raise _damaged(
                    label, f"{where}, column {name!r}",
                    f"{column.null_count} nulls where the file records {stats.null_count}",
                )  # fmt: skip
            if not stats.has_min_max or column.null_count == len(column):
                continue
            if pa.types.is_floating(column.type):
                continue  # NaN ordering differs between writers: min/max are not comparable
            low, high = pc.min_max(column).values()
            seen = (_stat(low.as_py()), _stat(high.as_py()))
            recorded = (_stat(stats.min), _stat(stats.max))
            if seen != recorded:
                raise _damaged(
                    label, f"{where}, column {name!r}",
                    f"values from {seen[0]!r} to {seen[1]!r} where the file records "
                    f"{recorded[0]!r} to {recorded[1]!r}",
                )  # fmt: skip
