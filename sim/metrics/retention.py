"""Outcomes of remembering users (``sim.remembering``) per version: satisfaction, retention,
dwell time and conversions, each with a 95 % interval.

Per version ``v`` (by *assigned* version, intention to treat, as every engagement metric):

- ``users_exposed``: users with at least one request assigned to ``v``;
  ``retained`` = share of them who had not left by the end (Wilson interval over users).
- ``return_decisions``: session starts of returning users whose previous session ended on
  ``v`` (its last request assigned to ``v``); ``return_rate`` = share who came back (Wilson
  interval over decisions: a user has a run of returns ended by at most one departure).
- ``satisfaction``: mean satisfaction just after each request assigned to ``v``; the
  interval is the delta method clustered by user (``sim.stats.clustered_ratio``).
- ``list_change``: mean ``1 − overlap`` of a request's list with the list shown just before
  in the same session, over the requests that had one (clustered by user);
  ``abrupt_changes``: how many of those kept less than half the previous list.
- ``dwell_s_per_click``: mean dwell time in seconds per click (clustered by user);
  ``conversion_rate``: conversions per click (Wilson interval over clicks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.records import ABSENT, Records
from sim.remembering import RememberingUsers
from sim.stats import Interval, clustered_ratio, mean_interval, wilson_interval

__all__ = ["ABRUPT_OVERLAP", "remembering_outcomes"]

#: A list that keeps less than this share of the session's previous list is an abrupt change.
ABRUPT_OVERLAP = 0.5


def _bounds(interval: Interval) -> list[float | None]:
    return [
        None if not math.isfinite(interval.low) else interval.low,
        None if not math.isfinite(interval.high) else interval.high,
    ]


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _clustered_mean(users: np.ndarray, values: np.ndarray) -> tuple[float | None, list[Any]]:
    """Mean of ``values`` and its 95 % interval, clustered by ``users``."""
    if users.size == 0:
        return None, [None, None]
    _, inverse = np.unique(users, return_inverse=True)
    stats = clustered_ratio(np.bincount(inverse), np.bincount(inverse, weights=values))
    return _number(stats.mean), _bounds(mean_interval(stats))


def _proportion(successes: int, n: int) -> tuple[float | None, list[Any]]:
    interval = wilson_interval(successes, n)
    return _number(interval.estimate), _bounds(interval)


def remembering_outcomes(
    memory: RememberingUsers, records: Records, version_names: Sequence[str]
) -> dict[str, Any]:
    """The remembering users' block of ``summary.json`` (see the module docstring)."""
    user = memory.user
    sent = records.result != ABSENT
    senders = np.unique(user[sent])
    decided = memory.decision >= 0
    end_s = memory.satisfaction[senders]
    mean_end, end_ci = _clustered_mean(senders, end_s)
    versions: dict[str, Any] = {}
    for v, name in enumerate(version_names):
        mine = records.version == v
        exposed = np.unique(user[mine])
        retained = int(np.count_nonzero(~memory.gone[exposed]))
        decision_rows = np.flatnonzero(decided)
        on_v = records.version[memory.previous_last[decision_rows]] == v
        decisions = memory.decision[decision_rows[on_v]]
        rows = np.flatnonzero(mine)
        satisfaction, satisfaction_ci = _clustered_mean(
            user[rows], memory.satisfaction_after[rows].astype(np.float64)
        )
        change_rows = rows[np.isfinite(memory.list_change[rows])]
        change = memory.list_change[change_rows].astype(np.float64)
        list_change, list_change_ci = _clustered_mean(user[change_rows], change)
        clicked = rows[records.clicks[rows] > 0]
        dwell, dwell_ci = _clustered_mean(user[clicked], memory.dwell_s[clicked].astype(np.float64))
        conversions = int(np.count_nonzero(memory.converted[clicked]))
        retention, retention_ci = _proportion(retained, int(exposed.size))
        returned = int(np.count_nonzero(decisions == 1))
        return_rate, return_ci = _proportion(returned, int(decisions.size))
        conversion_rate, conversion_ci = _proportion(conversions, int(clicked.size))
        versions[name] = {
            "users_exposed": int(exposed.size),
            "retained": retention,
            "retained_ci95": retention_ci,
            "return_decisions": int(decisions.size),
            "returned": returned,
            "return_rate": return_rate,
            "return_rate_ci95": return_ci,
            "satisfaction": satisfaction,
            "satisfaction_ci95": satisfaction_ci,
            "list_change": list_change,
            "list_change_ci95": list_change_ci,
            "abrupt_changes": int(np.count_nonzero(change > 1.0 - ABRUPT_OVERLAP)),
            "clicks": int(clicked.size),
            "dwell_s_per_click": dwell,
            "dwell_s_per_click_ci95": dwell_ci,
            "conversions": conversions,
            "conversion_rate": conversion_rate,
            "conversion_rate_ci95": conversion_ci,
        }
    return {
        "users": int(senders.size),
        "users_left": int(np.count_nonzero(memory.gone)),
        "requests_not_sent": int(np.count_nonzero(~sent)),
        "return_decisions": int(np.count_nonzero(decided)),
        "returned": int(np.count_nonzero(memory.decision == 1)),
        "satisfaction_end": mean_end,
        "satisfaction_end_ci95": end_ci,
        "versions": versions,
    }
