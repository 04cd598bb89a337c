"""Which column of a log file plays which role (user, item, timestamp, ...)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Columns"]


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
