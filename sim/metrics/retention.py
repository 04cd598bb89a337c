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
from sim.stats import Z95, Interval, clustered_ratio, mean_interval, wilson_interval

__all__ = [
    "ABRUPT_OVERLAP",
    "at_rollback",
    "newcombe_difference",
    "remembering_outcomes",
    "rollback_difference",
]

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


def at_rollback(
    memory: RememberingUsers,
    records: Records,
    t_s: np.ndarray,
    rollback_s: float | None,
    candidate: int,
) -> dict[str, Any] | None:
    """The users caught mid-session on the candidate by its rollback (None: no rollback).

    Those whose session had a request assigned to the candidate before ``rollback_s`` and
    another request due after it (sent or not): the users ``on_rollback_sessions`` decides
    for (``drain`` finishes their session on the candidate, ``switch`` moves it at once).
    The set depends only on what happened before the rollback, so a drain run and a switch
    run of the same seed judge the same users.

    ``satisfaction_end``: their mean satisfaction at the end of the run (``_se`` its standard
    error, independent users); ``retained``: share not gone by the end (Wilson); within the
    interrupted session after the rollback: ``list_change`` (mean 1 − overlap), ``latency_ms``
    (mean latency of the requests sent).
    """
    if rollback_s is None:
        return None
    before = (t_s < rollback_s) & (records.version == candidate)
    after = t_s >= rollback_s
    caught = np.intersect1d(memory.session[before], memory.session[after])
    rows = np.flatnonzero(np.isin(memory.session, caught))
    users = np.unique(memory.user[rows])
    tail = rows[(t_s[rows] >= rollback_s) & (records.result[rows] != ABSENT)]
    end = memory.satisfaction[users]
    retained = int(np.count_nonzero(~memory.gone[users]))
    share, share_ci = _proportion(retained, int(users.size))
    n = int(users.size)
    se = float(end.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    change = memory.list_change[tail].astype(np.float64)
    change = change[np.isfinite(change)]
    return {
        "rollback_at_s": rollback_s,
        "users": n,
        "retained_users": retained,
        "retained": share,
        "retained_ci95": share_ci,
        "satisfaction_end": _number(float(end.mean())) if n else None,
        "satisfaction_end_se": _number(se),
        "satisfaction_end_ci95": [
            _number(float(end.mean()) - Z95 * se) if n > 1 else None,
            _number(float(end.mean()) + Z95 * se) if n > 1 else None,
        ],
        "requests_after_rollback": int(tail.size),
        "list_change": _number(float(change.mean())) if change.size else None,
        "latency_ms": _number(float(records.latency_ms[tail].mean())) if tail.size else None,
    }


def remembering_outcomes(
    memory: RememberingUsers,
    records: Records,
    version_names: Sequence[str],
    *,
    t_s: np.ndarray | None = None,
    rollback_s: float | None = None,
    candidate: int = 1,
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
            "retained_users": retained,
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
        "at_rollback": None
        if t_s is None
        else at_rollback(memory, records, t_s, rollback_s, candidate),
    }


def newcombe_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, level: float = 0.95
) -> Interval:
    """Interval for ``p_b − p_a`` from two independent proportions: Newcombe's hybrid score
    method (1998, method 10), built from each proportion's Wilson interval ``[l, u]``::

        d = p̂_b − p̂_a,   low = d − sqrt((p̂_b − l_b)² + (u_a − p̂_a)²),
                         high = d + sqrt((u_b − p̂_b)² + (p̂_a − l_a)²)
    """
    a = wilson_interval(successes_a, n_a, level)
    b = wilson_interval(successes_b, n_b, level)
    d = b.estimate - a.estimate
    low = d - math.sqrt((b.estimate - b.low) ** 2 + (a.high - a.estimate) ** 2)
    high = d + math.sqrt((b.high - b.estimate) ** 2 + (a.estimate - a.low) ** 2)
    return Interval(d, low, high, level)


def rollback_difference(drain: dict[str, Any], switch: dict[str, Any]) -> dict[str, Any]:
    """Switch minus drain for the users caught by the rollback, from two runs' ``at_rollback``
    blocks (same scenario and seed, only ``on_rollback_sessions`` differs).

    ``satisfaction_end``: difference of means, ``± z · sqrt(se_d² + se_s²)`` (the two runs
    treated as independent samples, which overstates the variance: the users are the same);
    ``retained``: :func:`newcombe_difference`.
    """
    sat = switch["satisfaction_end"] - drain["satisfaction_end"]
    half = Z95 * math.hypot(drain["satisfaction_end_se"], switch["satisfaction_end_se"])
    kept = newcombe_difference(
        drain["retained_users"], drain["users"], switch["retained_users"], switch["users"]
    )
    return {
        "users": [drain["users"], switch["users"]],
        "satisfaction_end": sat,
        "satisfaction_end_ci95": [sat - half, sat + half],
        "retained": kept.estimate,
        "retained_ci95": [kept.low, kept.high],
    }
