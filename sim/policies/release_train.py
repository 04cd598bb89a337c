"""Release trains: one rollout after another, each release with the policy started over.

Release 1 rolls out at its start time; release k starts at its own time.  When a release
starts, the one before it is closed: still exposed and undecided, it is ``superseded``
(withdrawn); promoted, it becomes production and the next release rolls out behind it.

A ``ReleaseBuilder`` builds each later release's version at its start, from the last good
version: the latest release that was not rolled back, else production (every rollback
restored it).  A controller given a ``rollback_to`` version makes that version production on
a rollback; the releases before it are passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Release", "ReleaseBuilder", "ReleaseTrain"]


@dataclass(frozen=True, slots=True)
class Release:
    """Release ``number`` (from 1) rolls out version index ``version`` from ``at_s``."""

    number: int
    at_s: float
    version: int


class ReleaseBuilder(Protocol):
    """Builds a release's version when the release starts, from the last good version."""

    def build(self, release: Release, parent: int, at_s: float) -> None:
        """Make version ``release.version`` ready to serve, trained at ``at_s`` from ``parent``."""
        ...


class ReleaseTrain:
    """The schedule of releases and which one is current."""

    def __init__(self, releases: list[tuple[float, int]]) -> None:
        self.releases = [Release(k + 1, at, v) for k, (at, v) in enumerate(releases)]
        self.current = 0

    @property
    def release(self) -> Release:
        return self.releases[self.current]

    @property
    def is_train(self) -> bool:
        return len(self.releases) > 1

    def next_start_s(self) -> float | None:
        """When the next release starts (None after the last one)."""
        if self.current + 1 < len(self.releases):
            return self.releases[self.current + 1].at_s
        return None

    def due(self, now_s: float) -> bool:
        start = self.next_start_s()
        return start is not None and now_s >= start

    def advance(self) -> Release:
        self.current += 1
        return self.release
