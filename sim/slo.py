"""Service-level objectives, error budgets and multi-window, multi-burn-rate alerts.

After the Google SRE workbook ("Alerting on SLOs").  An SLO says which share of requests
must be *good* over a compliance period:

    latency       good = answered (served or fallback, not dropped) within ``threshold_ms``
    availability  good = answered by a model: served by the assigned version or a fallback
                  version, not the popularity list, not a stale list, not dropped

over all traffic (every version).  With target ``T`` the error budget is the share
``1 - T`` of the period's requests.  Over any window:

    error rate   e = bad / total
    burn rate    b = e / (1 - T)        (b = 1 spends the budget exactly over the period)
    budget spent over a stretch of length d at burn rate b:  b * d / period

An alert rule ``(long, short, rate)`` fires at time ``t`` when the burn rate over
``[t - long, t)`` *and* over ``[t - short, t)`` are both at least ``rate`` (the long window
gives significance, the short one a quick reset).  The workbook's page: 14.4x over 1 h and
5 min (2 % of a 30-day budget in one hour); its ticket: 6x over 6 h and 30 min (5 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sim.records import FALLBACK, POPULAR, SERVED, STALE, Records
from sim.slo_names import SLO_METRIC, slo_of_metric

__all__ = [
    "SLO_METRIC",
    "BurnAlert",
    "Slo",
    "alert_firings",
    "budget_spent",
    "burn_rate",
    "good_requests",
    "slo_of_metric",
]


@dataclass(frozen=True, slots=True)
class BurnAlert:
    long_s: float
    short_s: float
    rate: float


@dataclass(frozen=True, slots=True)
class Slo:
    name: str
    kind: str  # latency | availability
    target: float  # in (0, 1)
    period_s: float
    threshold_ms: float = 0.0
    alerts: tuple[BurnAlert, ...] = ()


def good_requests(slo: Slo, records: Records, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
    """bool per request in ``idx``: good under ``slo`` (see the module docstring)."""
    result = records.result[idx]
    answered = (result == SERVED) | (result == FALLBACK)
    if slo.kind == "latency":
        return np.asarray(answered & (records.latency_ms[idx] <= slo.threshold_ms))
    by_model = (records.served_by[idx] >= 0) & (records.cache[idx] != STALE)
    return np.asarray(answered & by_model & (records.served_by[idx] != POPULAR))


def burn_rate(bad: float, total: float, target: float) -> float:
    """``(bad / total) / (1 - target)``; 0 without requests."""
    if total <= 0:
        return 0.0
    return (bad / total) / (1.0 - target)


def budget_spent(bad: int, total: int, target: float, span_s: float, period_s: float) -> float:
    """Share of the period's error budget spent by ``bad`` of ``total`` requests seen over
    ``span_s`` (the period's traffic assumed at the same rate): burn rate x span / period."""
    return burn_rate(bad, total, target) * span_s / period_s


def alert_firings(
    t_s: np.ndarray,
    bad: np.ndarray,
    target: float,
    alert: BurnAlert,
    at_s: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """bool per evaluation time in ``at_s``: does ``alert`` fire then?

    ``t_s`` are the requests' arrival times (sorted), ``bad`` whether each was bad.  The
    windows are ``[t - long, t)`` and ``[t - short, t)`` by arrival time; an empty window
    has burn rate 0 (no traffic, nothing burnt).
    """
    at = np.asarray(at_s, dtype=np.float64)
    bad_before = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
    end = np.searchsorted(t_s, at, side="left")

    def burn(window_s: float) -> np.ndarray:
        start = np.searchsorted(t_s, at - window_s, side="left")
        total = (end - start).astype(np.float64)
        errors = (bad_before[end] - bad_before[start]).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(total > 0, errors / np.maximum(total, 1.0), 0.0)
        return rate / (1.0 - target)

    return np.asarray((burn(alert.long_s) >= alert.rate) & (burn(alert.short_s) >= alert.rate))
