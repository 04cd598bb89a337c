"""The words a log is described with: its formats, timestamp units and column roles.

Kept apart from the readers (``replay.logs``) so that the command line and the scenario
schema can name them without loading polars.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Columns", "LogFormat", "TimestampUnit"]

LogFormat = Literal[
    "auto", "movielens_csv", "movielens_udata", "recbole_inter", "csv", "parquet", "ndjson"
]
TimestampUnit = Literal["auto", "s", "ms", "iso"]


class Columns(BaseModel):
    """Which column of the file plays which role; ``None`` for optional roles not present.

    ``propensity`` and ``reward`` mark logged impressions of a stochastic logging policy
    (off-policy estimates need both), ``position`` the rank of the item in a logged slate;
    the event readers ignore them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    event: str | None = None
    weight: str | None = None
    session: str | None = None
    propensity: str | None = None
    reward: str | None = None
    position: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The roles the event readers use, by role, for the columns that are named."""
        mapping = {
            "user": self.user,
            "item": self.item,
            "timestamp": self.timestamp,
            "event": self.event,
            "weight": self.weight,
            "session": self.session,
        }
        return {role: name for role, name in mapping.items() if name is not None}
