"""Incremental per-version aggregates for the rollout controller.

The engine only moves time; when the controller wakes up, the monitor *settles* the requests
that can no longer change (arrived at least one full fallback chain ago), samples the users'
response to them in one vectorized call, and folds them into small per-version aggregates:
one ``WindowStats`` per version per analysis window, plus running totals.  Online decisions
never scan the whole request log.

Engagement is attributed to the *assigned* version (intention to treat): a request assigned
to the candidate that fell back to the baseline still counts for the candidate, so fallbacks
and abandonment caused by a slow candidate hurt the candidate's numbers, as they should.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.metrics.calibration import expected_calibration_error
from sim.policies.metric_names import slo_of_metric
from sim.records import (
    DROPPED,
    FALLBACK,
    HIT,
    MISS,
    POPULAR,
    QUEUE_FULL,
    SERVED,
    SERVER_ERROR,
    STALE,
    TIMEOUT,
    Records,
)
from sim.remembering import RememberingUsers
from sim.slo import Slo, burn_rate, good_requests
from sim.stages import retrieval_order
from sim.stats import ArmStats, clustered_ratio
from sim.users import CascadeUsers

__all__ = [
    "LIST_MEANS",
    "RATE_METRICS",
    "Monitor",
    "RequestTruth",
    "Retrieval",
    "RunningTotals",
    "WindowStats",
]

# Per-request 0/1 events behind the rate metrics guardrails may test.
_RATE_EVENTS: dict[str, Callable[[Records, np.ndarray], np.ndarray]] = {
    "ctr": lambda rec, idx: rec.clicks[idx],
    "timeout_rate": lambda rec, idx: rec.failure[idx] == TIMEOUT,
    "error_rate": lambda rec, idx: (
        (rec.failure[idx] == SERVER_ERROR) | (rec.failure[idx] == QUEUE_FULL)
    ),
    "fallback_rate": lambda rec, idx: (rec.result[idx] == FALLBACK) | (rec.result[idx] == DROPPED),
    "abandon_rate": lambda rec, idx: rec.abandoned[idx],
    "cache_hit_rate": lambda rec, idx: rec.cache[idx] == HIT,
    "degraded_rate": lambda rec, idx: rec.degraded[idx] >= 0,
}
# Rates over a subset of the requests: the hit rate is per cache lookup.
_RATE_COUNTED: dict[str, Callable[[Records, np.ndarray], np.ndarray]] = {
    "cache_hit_rate": lambda rec, idx: np.isin(rec.cache[idx], (HIT, MISS, STALE)),
}
# Mirrored copies: the only rate they have is how many were dropped (timeouts and errors).
_SHADOW_RATES = frozenset({"timeout_rate", "error_rate"})
RATE_METRICS = frozenset(_RATE_EVENTS)
#: Per-request means of the version's list for the request's user (precomputed per user).
LIST_MEANS = frozenset({"diversity", "stability"})


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What one version did in ``[t_start_s, t_end_s)`` (by arrival time)."""

    version: str
    t_start_s: float
    t_end_s: float
    requests: int
    served: int
    fallback: int
    dropped: int
    timeouts: int
    errors: int
    rejected: int
    cache_lookups: int
    cache_hits: int
    stale: int
    clicks: int
    abandoned: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    units: int  # distinct eligible sticky units (users or sessions) assigned to this version
    ece: float  # calibration error of the lists shown (15 bins), NaN without requests
    diversity: float  # mean intra-list diversity of the version's lists for these requests
    stability: float  # mean Jaccard@K of the version's list and the baseline's, same users
    shadow_requests: int
    shadow_dropped: int
    shadow_latency_p50_ms: float
    shadow_latency_p95_ms: float
    shadow_latency_p99_ms: float
    # Requests the version's model answered (cache misses served at the first attempt): the
    # model's own latency, which cache hits hide from the end-to-end percentiles.
    model_answered: int = 0
    model_latency_p50_ms: float = float("nan")
    model_latency_p95_ms: float = float("nan")
    model_latency_p99_ms: float = float("nan")
    # Answers a staged path served degraded (``sim.stages``), and each declared SLO's burn
    # rate over the version's requests (bad share / (1 - target), ``sim.slo``).
    degraded: int = 0
    slo_burn: dict[str, float] = dataclasses.field(default_factory=dict)

    def shadow_metric(self, name: str) -> float | None:
        """The same metric measured on mirrored (shadow) copies, where it exists there."""
        n = max(self.shadow_requests, 1)
        values = {
            "latency_ms.p50": self.shadow_latency_p50_ms,
            "latency_ms.p95": self.shadow_latency_p95_ms,
            "latency_ms.p99": self.shadow_latency_p99_ms,
            # Mirrored copies skip the cache: every one of them is the model's own latency.
            "model_latency_ms.p50": self.shadow_latency_p50_ms,
            "model_latency_ms.p95": self.shadow_latency_p95_ms,
            "model_latency_ms.p99": self.shadow_latency_p99_ms,
            "timeout_rate": self.shadow_dropped / n,
            "error_rate": self.shadow_dropped / n,
        }
        return values.get(name)

    def metric(self, name: str) -> float:
        """A window metric by its guardrail name (``latency_ms.p99``, ``ctr``, ...)."""
        n = max(self.requests, 1)
        values = {
            "latency_ms.p50": self.latency_p50_ms,
            "latency_ms.p95": self.latency_p95_ms,
            "latency_ms.p99": self.latency_p99_ms,
            "model_latency_ms.p50": self.model_latency_p50_ms,
            "model_latency_ms.p95": self.model_latency_p95_ms,
            "model_latency_ms.p99": self.model_latency_p99_ms,
            "timeout_rate": self.timeouts / n,
            "error_rate": (self.errors + self.rejected) / n,
            "fallback_rate": (self.fallback + self.dropped) / n,
            "cache_hit_rate": self.cache_hits / max(self.cache_lookups, 1),
            "ctr": self.clicks / n,
            "abandon_rate": self.abandoned / n,
            "ece": self.ece,
            "diversity": self.diversity,
            "stability": self.stability,
            "degraded_rate": self.degraded / n,
        }
        slo = slo_of_metric(name)
        if slo is not None:
            return self.slo_burn.get(slo, float("nan"))
        return values[name]


@dataclass(frozen=True, slots=True)
class RequestTruth:
    """Replayed logs: per request, the items its user consumed next (CSR ``ptr``/``items``).

    An examined item is clicked with ``click_if_consumed`` when it is among them and with
    ``click_otherwise`` when not (times ``1 + lift`` of the version that showed it).
    """

    ptr: np.ndarray  # int64 [n + 1]
    items: np.ndarray  # int32
    tables: dict[int, np.ndarray]  # served_by code -> [n_users, K] items shown
    lift: dict[int, float]
    click_if_consumed: float
    click_otherwise: float
    n_items: int

    def relevance(
        self, lo: int, hi: int, served_by: np.ndarray, users: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``([n, K] click probabilities, [n] hit@K: -1 no truth, else 0/1)`` for ``[lo, hi)``."""
        n = hi - lo
        k = next(iter(self.tables.values())).shape[1]
        shown = np.full((n, k), -1, np.int64)
        lift = np.zeros(n)
        for code, table in self.tables.items():
            rows = np.flatnonzero(served_by == code)
            if rows.size:
                shown[rows] = table[users[rows]]
                lift[rows] = self.lift[code]
        start, stop = int(self.ptr[lo]), int(self.ptr[hi])
        owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.ptr[lo : hi + 1]))
        keys = np.sort(owner * self.n_items + self.items[start:stop])
        probe = np.arange(n, dtype=np.int64)[:, None] * self.n_items + np.maximum(shown, 0)
        at = np.minimum(np.searchsorted(keys, probe), max(keys.size - 1, 0))
        member = (
            (keys.size > 0) & (keys[at] == probe) & (shown >= 0)
            if keys.size
            else np.zeros_like(shown, bool)
        )
        p = np.where(member, self.click_if_consumed, self.click_otherwise)
        p = np.minimum(p * (1.0 + lift[:, None]), 1.0)
        p = np.where(shown >= 0, p, 0.0).astype(np.float32)
        has_truth = np.diff(self.ptr[lo : hi + 1]) > 0
        hit = np.where(has_truth, member.any(axis=1).astype(np.int8), np.int8(-1)).astype(np.int8)
        return p, hit


#: ``(users [n], order [n, K]) -> [n]``: a version's predicted P(click on the list) of its
#: own list shown to ``users`` in the column ``order`` given.
ShownPredictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class Retrieval:
    """What a degraded answer shows: each version's items in retrieval order (``sim.stages``),
    and what the version predicts for that list (``predict``; codes without a predictor keep
    the prediction of the model's own order)."""

    items: dict[int, np.ndarray]  # served_by code -> [n_users, K] items of the version's list
    popularity: np.ndarray  # [n_items] users per item before the run
    predict: dict[int, ShownPredictor] = dataclasses.field(default_factory=dict)

    def predicted(
        self, served_by: np.ndarray, users: np.ndarray, order: np.ndarray, fallback: np.ndarray
    ) -> np.ndarray:
        """``[n]`` predicted P(click on the list shown): each request's list in ``order``
        [n, K], predicted by its version's ``predict``; ``fallback [n]`` where it has none."""
        out = np.array(fallback, dtype=np.float32)
        for code, predict in self.predict.items():
            rows = np.flatnonzero(served_by == code)
            if rows.size:
                out[rows] = predict(users[rows], order[rows])
        return out

    def order(self, served_by: np.ndarray, users: np.ndarray) -> np.ndarray:
        """``[n, K]`` column order turning each request's list into its retrieval order."""
        k = next(iter(self.items.values())).shape[1]
        order = np.tile(np.arange(k), (users.size, 1))
        for code, table in self.items.items():
            rows = np.flatnonzero(served_by == code)
            if rows.size:
                order[rows] = retrieval_order(table[users[rows]], self.popularity)
        return order


@dataclass(slots=True)
class RunningTotals:
    """Cumulative counts per version: enough for the sequential test (Bernoulli clicks)."""

    requests: int = 0
    clicks: int = 0


def _percentiles(values: np.ndarray) -> tuple[float, float, float]:
    if values.size == 0:
        return (float("nan"),) * 3
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method="inverted_cdf")
    return float(p50), float(p95), float(p99)


class Monitor:
    """Settles request windows and keeps per-version aggregates."""

    def __init__(
        self,
        records: Records,
        t_s: np.ndarray,
        user: np.ndarray,
        relevance: dict[int, np.ndarray],
        predicted: dict[int, np.ndarray],
        version_names: list[str],
        users: CascadeUsers,
        *,
        rng: np.random.Generator,
        unit: np.ndarray | None = None,
        session: np.ndarray | None = None,
        eligible: np.ndarray | None = None,
        request_truth: RequestTruth | None = None,
        list_quality: dict[str, list[np.ndarray]] | None = None,
        retrieval: Retrieval | None = None,
        slos: dict[str, Slo] | None = None,
        memory: RememberingUsers | None = None,
        popular_items: np.ndarray | None = None,
    ) -> None:
        self.records = records
        self.t_s = t_s
        self.user = user
        self.relevance = relevance  # served_by code -> [n_users, K] true click probability
        self.predicted = predicted  # served_by code -> [n_users] predicted list click prob.
        self.version_names = version_names
        self.users = users
        self.rng = rng
        self.unit = unit if unit is not None else user
        self.session = session if session is not None else user
        self.eligible = eligible if eligible is not None else np.ones(t_s.shape[0], bool)
        self.request_truth = request_truth
        # Per version, per user: intra-list diversity and Jaccard@K against the baseline's
        # list, computed once before the run (the lists never change during it).
        self.list_quality = list_quality or {}
        self.retrieval = retrieval
        self.slos = slos or {}
        # Remembering users (``sim.remembering``): their state, and the popularity list (the
        # versions' lists are ``retrieval.items``) for the overlap of a session's lists.
        self.memory = memory
        self.popular_items = popular_items
        # Requests whose users' responses are sampled: ``settled`` or beyond, when remembering
        # users' return decisions needed them before their window settled.
        self.responded = 0
        size = int(self.unit.max(initial=-1)) + 1
        # Per sticky unit and version: requests and clicks so far (cluster-robust gate).
        self.unit_requests = [np.zeros(size, np.int64) for _ in version_names]
        self.unit_clicks = [np.zeros(size, np.int64) for _ in version_names]
        self.last_slice = (0, 0)
        self.settled = 0
        self.window_start_s = 0.0
        self.windows: list[list[WindowStats]] = []
        self.totals = [RunningTotals() for _ in version_names]

    def settle(self, until_s: float, upto: int | None = None) -> list[WindowStats]:
        """Settle every request that arrived before ``until_s``; this window's stats per version.

        The window holds the arrivals in ``[window_start_s, until_s)`` and says so in its
        label (``t_start_s``, ``t_end_s``).  ``upto`` settles requests ``[settled, upto)``
        instead (the end of a run, when every request has ended).
        """
        if upto is None:
            upto = int(np.searchsorted(self.t_s, until_s, side="left"))
        t_end_s = until_s
        lo, hi = self.settled, max(upto, self.settled)
        start = max(lo, self.responded)
        if hi > start:
            self._respond(start, hi)
        self.responded = max(self.responded, hi)
        stats = [self._window(v, lo, hi, t_end_s) for v in range(len(self.version_names))]
        self.settled = hi
        self.window_start_s = t_end_s
        self.windows.append(stats)
        rec = self.records
        size = self.unit_requests[0].size
        for v, w in enumerate(stats):
            self.totals[v].requests += w.requests
            self.totals[v].clicks += w.clicks
            mine = np.flatnonzero(rec.version[lo:hi] == v) + lo
            units = self.unit[mine]
            self.unit_requests[v] += np.bincount(units, minlength=size)
            self.unit_clicks[v] += np.bincount(
                units, weights=rec.clicks[mine], minlength=size
            ).astype(np.int64)
        self.last_slice = (lo, hi)
        return stats

    # --- remembering users: the engine's ``Presence`` ----------------------------------------

    @property
    def session_first(self) -> np.ndarray:
        assert self.memory is not None
        return self.memory.session_first

    @property
    def left(self) -> set[int]:
        assert self.memory is not None
        return self.memory.left

    def comes_back(self, i: int, user: int, ended_before_s: float) -> bool:
        """Whether ``user`` returns for request ``i``'s session, on their satisfaction as of
        the last update (``update_every_s``): every request that arrived before the last
        multiple of it at or before ``ended_before_s`` has ended; the responses of those not
        yet sampled are sampled now, in one batch, ahead of their window."""
        memory = self.memory
        assert memory is not None
        if memory.previous_last.item(i) >= self.responded:
            step = memory.params.update_every_s
            cut = math.floor(ended_before_s / step) * step
            upto = int(np.searchsorted(self.t_s, cut, side="left"))
            if upto > self.responded:
                self._respond(self.responded, upto)
                self.responded = upto
        return memory.comes_back(i, user)

    def items_shown(self, served_by: np.ndarray, users: np.ndarray) -> np.ndarray:
        """``[m, K]`` items of the list each code in ``served_by`` gives each user (-1: none)."""
        assert self.retrieval is not None
        k = next(iter(self.retrieval.items.values())).shape[1]
        out = np.full((served_by.size, k), -1, np.int64)
        tables: dict[int, np.ndarray] = dict(self.retrieval.items)
        for code, table in tables.items():
            rows = np.flatnonzero(served_by == code)
            if rows.size:
                out[rows] = table[users[rows]]
        if self.popular_items is not None:
            out[served_by == POPULAR] = self.popular_items[:k]
        return out

    def stats_between(self, version: int, start_s: float, end_s: float) -> WindowStats:
        """What ``version`` did for the settled arrivals in ``[start_s, end_s)``: any time
        range, not only the analysis windows (a query's own look-back)."""
        hi = min(int(np.searchsorted(self.t_s, end_s, side="left")), self.settled)
        lo = min(int(np.searchsorted(self.t_s, start_s, side="left")), hi)
        return dataclasses.replace(self._window(version, lo, hi, end_s), t_start_s=start_s)

    def _shown(self, mine: np.ndarray) -> np.ndarray:
        """The rows whose list was shown and looked at (not dropped, not abandoned)."""
        rec = self.records
        shown: np.ndarray = mine[(rec.result[mine] != DROPPED) & ~rec.abandoned[mine]]
        return shown

    def _ece(self, mine: np.ndarray) -> float:
        shown = self._shown(mine)
        if shown.size == 0:
            return float("nan")
        return expected_calibration_error(self.records.p_click[shown], self.records.clicks[shown])

    def _list_mean(self, name: str, version: int, mine: np.ndarray) -> float:
        per_user = self.list_quality.get(name)
        if per_user is None or mine.size == 0:
            return float("nan")
        values = per_user[version][self.user[mine]]
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else float("nan")

    def clustered_ctr(self, version: int) -> ArmStats:
        """CTR of everything settled so far, with the variance of a unit-randomised test."""
        return clustered_ratio(self.unit_requests[version], self.unit_clicks[version])

    # --- the last settled window, request by request (guardrails judge on evidence) ------

    def _window_rows(self, version: int, *, shadow: bool = False) -> np.ndarray:
        """Rows of the last settled window assigned to ``version`` (or mirrored to it)."""
        lo, hi = self.last_slice
        column = self.records.shadow if shadow else self.records.version
        return np.flatnonzero(column[lo:hi] == version) + lo

    def _clustered(self, rows: np.ndarray, values: np.ndarray) -> ArmStats:
        """Mean of per-request ``values`` over ``rows``, with a variance clustered by unit."""
        if rows.size == 0:
            return ArmStats(0, 0.0, 0.0)
        _, inverse = np.unique(self.unit[rows], return_inverse=True)
        n_u = np.bincount(inverse)
        x_u = np.bincount(inverse, weights=values.astype(np.float64))
        return clustered_ratio(n_u, x_u)

    def clustered_window_rate(self, version: int, metric: str, *, shadow: bool = False) -> ArmStats:
        """A per-request rate of the last settled window, clustered by sticky unit.

        ``shadow``: of the copies mirrored to ``version`` (timeout and error rates only,
        both read as the share of copies dropped).
        """
        rec = self.records
        rows = self._window_rows(version, shadow=shadow)
        if shadow:
            if metric not in _SHADOW_RATES:
                raise ValueError(f"{metric} is not measured on mirrored copies")
            return self._clustered(rows, rec.shadow_result[rows] == DROPPED)
        slo = slo_of_metric(metric)
        if slo is not None:
            # Burn rate: each bad request counts 1 / (1 - target), so the mean is the rate.
            plan = self.slos[slo]
            bad = ~good_requests(plan, rec, rows)
            return self._clustered(rows, bad / (1.0 - plan.target))
        counted = _RATE_COUNTED.get(metric)
        if counted is not None:
            rows = rows[counted(rec, rows)]
        return self._clustered(rows, _RATE_EVENTS[metric](rec, rows))

    def clustered_window_mean(self, version: int, name: str) -> ArmStats:
        """Mean list quality (``diversity`` or ``stability``) of the window's requests."""
        per_user = self.list_quality.get(name)
        rows = self._window_rows(version)
        if per_user is None:
            return ArmStats(0, 0.0, 0.0)
        values = per_user[version][self.user[rows]]
        known = np.isfinite(values)
        return self._clustered(rows[known], values[known])

    def window_latencies(
        self, version: int, *, shadow: bool = False, model: bool = False
    ) -> np.ndarray:
        """Latencies (ms) of the window's requests on ``version`` (or of its mirrored copies).

        ``model``: only the requests the version's model answered (``Records.model_answered``);
        every mirrored copy is one.
        """
        rows = self._window_rows(version, shadow=shadow)
        if model and not shadow:
            rows = rows[self.records.model_answered(rows)]
        column = self.records.shadow_latency_ms if shadow else self.records.latency_ms
        latencies: np.ndarray = column[rows]
        return latencies

    def window_predictions(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        """(predicted click probability, clicked) of the window's shown requests (as ECE)."""
        shown = self._shown(self._window_rows(version))
        return self.records.p_click[shown], self.records.clicks[shown]

    @property
    def n_units(self) -> int:
        return self.unit_requests[0].size

    @functools.cached_property
    def session_unit(self) -> np.ndarray:
        """int [n_sessions]: the sticky unit of each session."""
        out = np.zeros(int(self.session.max(initial=-1)) + 1, dtype=np.int64)
        out[self.session] = self.unit
        return out

    @functools.cached_property
    def session_end_s(self) -> np.ndarray:
        """float64 [n_sessions]: arrival time of each session's last request."""
        out = np.full(int(self.session.max(initial=-1)) + 1, -np.inf)
        np.maximum.at(out, self.session, self.t_s)
        return out

    def arrived(self, now_s: float) -> int:
        """How many requests have arrived by ``now_s``."""
        return int(np.searchsorted(self.t_s, now_s, side="right"))

    def _respond(self, lo: int, hi: int) -> None:
        rec = self.records
        served_by = rec.served_by[lo:hi]
        users = self.user[lo:hi]
        replayed = self.request_truth is not None
        k = next(iter(self.relevance.values())).shape[1]
        rel = np.zeros((hi - lo, k), dtype=np.float32)
        for code, table in self.relevance.items():
            rows = np.flatnonzero(served_by == code)
            if rows.size:
                rec.p_click[lo + rows] = self.predicted[code][users[rows]]
                if not replayed:
                    rel[rows] = table[users[rows]]
        if self.request_truth is not None:
            # Replayed logs: the truth is per request (what the user consumed next).
            rel, hit = self.request_truth.relevance(lo, hi, served_by, users)
            rec.hit[lo:hi] = hit
        degraded = np.flatnonzero(rec.degraded[lo:hi] >= 0)
        order: np.ndarray | None = None
        if degraded.size and self.retrieval is not None:
            # A degraded answer showed the retrieval order of the same items: the users see
            # (and click) the version's list re-ordered, position by position.
            order = self.retrieval.order(served_by[degraded], users[degraded])
            rel[degraded] = np.take_along_axis(rel[degraded], order, axis=1)
            # Their prediction is that of the list shown (other ranks), not of the model's.
            rec.p_click[lo + degraded] = self.retrieval.predicted(
                served_by[degraded], users[degraded], order, rec.p_click[lo + degraded]
            )
        if self.memory is not None:
            items = self.items_shown(served_by, users)
            if order is not None:
                items[degraded] = np.take_along_axis(items[degraded], order, axis=1)
            clicks, pos, abandoned = self.memory.respond(
                lo,
                hi,
                rel,
                items,
                rec.served_by,
                rec.latency_ms,
                rec.result,
                self.items_shown,
                rng=self.rng,
            )
            rec.clicks[lo:hi], rec.click_pos[lo:hi], rec.abandoned[lo:hi] = clicks, pos, abandoned
            return
        shown = rec.result[lo:hi] != DROPPED
        answer = self.users.respond(rel, rec.latency_ms[lo:hi], shown, rng=self.rng)
        rec.clicks[lo:hi] = answer.clicks
        rec.click_pos[lo:hi] = answer.click_pos
        rec.abandoned[lo:hi] = answer.abandoned

    def _window(self, v: int, lo: int, hi: int, t_end_s: float) -> WindowStats:
        rec = self.records
        mine = np.flatnonzero(rec.version[lo:hi] == v) + lo
        result = rec.result[mine]
        cache = rec.cache[mine]
        failure = rec.failure[mine]
        shadow = np.flatnonzero(rec.shadow[lo:hi] == v) + lo
        p50, p95, p99 = _percentiles(rec.latency_ms[mine])
        s50, s95, s99 = _percentiles(rec.shadow_latency_ms[shadow])
        answered = mine[rec.model_answered(mine)]
        m50, m95, m99 = _percentiles(rec.latency_ms[answered])
        counted = mine[self.eligible[mine]]
        return WindowStats(
            version=self.version_names[v],
            t_start_s=self.window_start_s,
            t_end_s=t_end_s,
            requests=int(mine.size),
            served=int((result == SERVED).sum()),
            fallback=int((result == FALLBACK).sum()),
            dropped=int((result == DROPPED).sum()),
            timeouts=int((failure == TIMEOUT).sum()),
            errors=int((failure == SERVER_ERROR).sum()),
            rejected=int((failure == QUEUE_FULL).sum()),
            cache_lookups=int(((cache == HIT) | (cache == MISS) | (cache == STALE)).sum()),
            cache_hits=int((cache == HIT).sum()),
            stale=int((cache == STALE).sum()),
            clicks=int(rec.clicks[mine].sum()),
            abandoned=int(rec.abandoned[mine].sum()),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
            units=int(np.unique(self.unit[counted]).size),
            ece=self._ece(mine),
            diversity=self._list_mean("diversity", v, mine),
            stability=self._list_mean("stability", v, mine),
            shadow_requests=int(shadow.size),
            shadow_dropped=int((rec.shadow_result[shadow] == DROPPED).sum()),
            shadow_latency_p50_ms=s50,
            shadow_latency_p95_ms=s95,
            shadow_latency_p99_ms=s99,
            model_answered=int(answered.size),
            model_latency_p50_ms=m50,
            model_latency_p95_ms=m95,
            model_latency_p99_ms=m99,
            degraded=int(np.count_nonzero(rec.degraded[mine] >= 0)),
            slo_burn={
                name: burn_rate(
                    int(np.count_nonzero(~good_requests(slo, rec, mine))), mine.size, slo.target
                )
                for name, slo in self.slos.items()
            },
        )
