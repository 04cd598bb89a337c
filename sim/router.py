"""Sticky assignment of traffic to versions by a stable hash into 10,000 buckets.

A unit (user or session) lands in bucket ``h(unit, salt) mod 10_000`` where ``h`` is the
SplitMix64 finaliser — stable across processes and Python versions, unlike ``hash()``.  The
candidate owns buckets ``[0, weight * 100)``: raising the weight only adds buckets, so a unit
that saw the candidate keeps seeing it until a rollback sets the weight to zero.  Shadow
(mirror) traffic uses an independent salt so mirroring is not correlated with assignment.

``Routing`` is the state the rollout controller steers; the engine reads it for every
arrival (one comparison on the fast path, :func:`route` on the slow one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BUCKETS",
    "Routing",
    "drain_deadlines",
    "final_versions",
    "route",
    "stable_buckets",
    "threshold_for",
]

BUCKETS = 10_000

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def stable_buckets(units: npt.ArrayLike, *, salt: int) -> npt.NDArray[np.int32]:
    """Bucket in ``[0, 10_000)`` of each unit id, a pure function of ``(unit, salt)``."""
    z = np.asarray(units, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(salt & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(BUCKETS)).astype(np.int32)


def threshold_for(weight_percent: float) -> int:
    """Buckets below this index see the candidate: ``round(weight * 100)`` of 10,000."""
    return round(min(max(weight_percent, 0.0), 100.0) * BUCKETS / 100.0)


@dataclass(slots=True)
class Routing:
    """Mutable routing state: the controller steers it, the engine's arrival loop reads it.

    The common case is one comparison (``bucket < candidate_threshold``), done inline by the
    engine.  ``slow`` says when :func:`route` must decide instead: while the policy remembers
    each unit's first arm (``memory``), while a misrouting fault is on, and while rolled-back
    sessions drain.  Change those three only through the methods, which keep ``slow`` true.
    """

    candidate_threshold: int = 0
    mirror_threshold: int = 0
    #: Which versions play baseline (production) and candidate now; a release train moves them.
    baseline: int = 0
    candidate: int = 1
    #: Buckets below this (of a second, independent hash) are misrouted to the baseline.
    misroute_threshold: int = 0
    #: int8 [n_units]: the arm each unit first saw (-1 none, 0 baseline, 1 candidate), while
    #: the policy keeps units on their first arm; None otherwise.
    memory: npt.NDArray[np.int8] | None = None
    #: float64 [n_units]: after a rollback with ``drain``, a unit's arrivals up to this time
    #: (the end of its sessions in flight on the rolled-back version) stay on ``drain_version``.
    drain_until_s: npt.NDArray[np.float64] | None = None
    drain_version: int = -1
    #: A promotion decided for every user, targeted segments or not (Flagger's A/B tests end
    #: so); until then only eligible units can see the candidate.
    everyone: bool = False
    slow: bool = False

    def remember_units(self, n_units: int) -> None:
        """Keep every unit on the arm it first saw while the weight moves up and down."""
        self.memory = np.full(n_units, -1, np.int8)
        self._update()

    def forget_units(self) -> None:
        """End the experiment's stickiness (a promotion or a rollback decided for everyone)."""
        self.memory = None
        self._update()

    def open_to_everyone(self, everyone: bool = True) -> None:
        """From now on the candidate's buckets hold every unit, not only the targeted ones
        (``False``: targeting again, for the next release)."""
        self.everyone = everyone
        self._update()

    def set_misroute(self, threshold: int) -> None:
        self.misroute_threshold = threshold
        self._update()

    def drain(self, version: int, until_s: npt.NDArray[np.float64] | None) -> None:
        """Keep units on ``version`` until their time in ``until_s`` (None: stop draining)."""
        self.drain_version = version if until_s is not None else -1
        self.drain_until_s = until_s
        self._update()

    def _update(self) -> None:
        self.slow = (
            self.memory is not None
            or self.misroute_threshold > 0
            or self.drain_until_s is not None
            or self.everyone
        )


def route(routing: Routing, unit: int, bucket: int, eligible: bool, t_s: float) -> int:
    """The version for one arrival when ``routing.slow``: drains, memory, misrouting, and
    targeting lifted by a promotion for everyone."""
    if routing.drain_until_s is not None and t_s <= routing.drain_until_s[unit]:
        return routing.drain_version
    eligible = eligible or routing.everyone
    threshold = routing.candidate_threshold
    memory = routing.memory
    if memory is not None:
        seen = int(memory[unit])
        if seen < 0:
            seen = 1 if (eligible and bucket < threshold) else 0
            memory[unit] = seen
        on_candidate = seen == 1 and threshold > 0
    else:
        on_candidate = eligible and bucket < threshold
    if (
        on_candidate
        and routing.misroute_threshold
        and (bucket * 7919 + 4099) % BUCKETS < routing.misroute_threshold
    ):
        return routing.baseline
    return routing.candidate if on_candidate else routing.baseline


def drain_deadlines(
    *,
    version: int,
    now_s: float,
    arrived_version: npt.NDArray[np.integer[Any]],
    arrived_session: npt.NDArray[np.integer[Any]],
    session_unit: npt.NDArray[np.integer[Any]],
    session_end_s: npt.NDArray[np.float64],
    n_units: int,
) -> npt.NDArray[np.float64]:
    """Per unit, until when it stays on ``version`` after a rollback with ``drain``.

    A session is in flight at ``now_s`` when one of its requests arrived on ``version``
    before then and its last request arrives at or after ``now_s``.  Each unit keeps
    ``version`` until the last of its in-flight sessions ends, then never returns to it: a
    unit's versions after the rollback read ``version``… then the new one, with one switch.
    Units with nothing in flight get ``-inf`` (they switch at once).
    """
    sessions = np.unique(arrived_session[arrived_version == version])
    live = sessions[session_end_s[sessions] >= now_s]
    until = np.full(n_units, -np.inf)
    np.maximum.at(until, session_unit[live], session_end_s[live])
    return until


def final_versions(
    routing: Routing,
    *,
    unit: npt.NDArray[np.integer[Any]],
    bucket: npt.NDArray[np.integer[Any]],
    eligible: npt.NDArray[np.bool_],
    at_s: float,
) -> npt.NDArray[np.int64]:
    """The version each of the given units would be routed to by ``routing`` at ``at_s``.

    The vectorized twin of the engine's routing (fast path and :func:`route`), for stating
    where a run left its users; misrouting faults are ignored (they are not a decision).
    """
    on_candidate = (eligible | routing.everyone) & (bucket < routing.candidate_threshold)
    if routing.memory is not None:
        seen = routing.memory[unit]
        on_candidate = np.where(
            seen >= 0, (seen == 1) & (routing.candidate_threshold > 0), on_candidate
        )
    out = np.where(on_candidate, routing.candidate, routing.baseline).astype(np.int64)
    if routing.drain_until_s is not None:
        out = np.where(at_s <= routing.drain_until_s[unit], routing.drain_version, out)
    return out
