"""The words a log is described with: its formats and timestamp units.

Kept apart from the readers (``replay.logs``) and from the column roles
(``replay.log_columns``) so that the command line can name them without loading polars or
pydantic.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["LogFormat", "TimestampUnit"]

LogFormat = Literal[
    "auto", "movielens_csv", "movielens_udata", "recbole_inter", "obd", "csv", "parquet", "ndjson"
]
TimestampUnit = Literal["auto", "s", "ms", "iso"]
