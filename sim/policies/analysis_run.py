"""Argo Rollouts' AnalysisRun, as a state machine over measurements.

A run merges the metrics of its templates and measures each on its own schedule: first at
``started + initial_delay``, then every ``interval`` (10 s after an errored measurement, the
controller's retry interval), until ``count`` measurements (errors do not count) — once when
neither ``count`` nor ``interval`` is set, forever when only ``interval`` is.

A metric completes (Argo's ``assessMetricStatus``, in this order):

* **Error** when consecutive errors exceed ``consecutive_error_limit`` (default 4);
* else **Inconclusive** when inconclusive measurements exceed ``inconclusive_limit`` (0);
* else **Failed** when failures exceed ``failure_limit`` (0; -1 disables it);
* else **Successful** after ``consecutive_success_limit`` successes in a row (when > 0);
* else, at ``count``: Successful — or, with a consecutive-success limit that was not reached,
  Inconclusive when the failure limit applies and Failed when it does not;
* else it keeps running.

The run completes as soon as one metric (not in dry-run) completes Failed, Error or
Inconclusive — the others stop where they are — or when every metric has completed; its
phase is then the worst of them (Successful < Inconclusive < Error < Failed; dry-run metrics
are reported, never counted).  A run stopped early (``terminate``: the rollout finished, or
blue-green's scale-down delay elapsed) ends Successful unless a metric already failed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sim.policies.measurements import MeasurementPhase
from sim.policies.run_settings import RunMetric

__all__ = [
    "ERROR_RETRY_S",
    "AnalysisRun",
    "ConditionEvaluator",
    "MetricRun",
    "RunPhase",
    "measurement_phase",
]

#: Evaluates a condition's text on a measured ``result``; raises ``ValueError`` when the
#: value does not fit the expression (the lab's evaluator lives with the manifests).
ConditionEvaluator = Callable[[str, Any], bool]

RunPhase = Literal["Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]
COMPLETED: frozenset[RunPhase] = frozenset({"Successful", "Failed", "Error", "Inconclusive"})
_ORDER: tuple[RunPhase, ...] = (
    "Successful",
    "Running",
    "Pending",
    "Inconclusive",
    "Error",
    "Failed",
)
#: Argo Rollouts measures again this long after an errored measurement.
ERROR_RETRY_S = 10.0


def measurement_phase(
    spec: RunMetric, result: Any, evaluate: ConditionEvaluator
) -> tuple[MeasurementPhase, str]:
    """A measurement's phase from the metric's conditions, by Argo Rollouts' rules.

    No condition: Successful.  Only ``success_condition``: Failed when it does not hold.
    Only ``failure_condition``: Successful when it does not hold.  Both: Failed when the
    failure condition holds, Successful when only the success condition does, Inconclusive
    when neither does.  A condition that cannot be evaluated on the value (an index past an
    empty vector, nil compared with a number) makes the measurement an Error.
    """
    success = failure = False
    for text, which in ((spec.success_condition, "success"), (spec.failure_condition, "failure")):
        if not text:
            continue
        try:
            held = evaluate(text, result)
        except ValueError as error:
            empty = result is None or (isinstance(result, list) and not result)
            why = "no data returned for the metric" if empty else str(error)
            return "Error", f"could not evaluate {which}Condition: {why}"
        if which == "success":
            success = held
        else:
            failure = held
    if not spec.success_condition and not spec.failure_condition:
        return "Successful", ""
    if not spec.failure_condition:
        failure = not success
    elif not spec.success_condition:
        success = not failure
    if failure:
        return "Failed", ""
    return ("Successful", "") if success else ("Inconclusive", "")


def _worse(a: RunPhase, b: RunPhase) -> RunPhase:
    return b if _ORDER.index(b) > _ORDER.index(a) else a


class MetricRun:
    """One metric's measurements so far and its phase."""

    def __init__(self, spec: RunMetric, *, dry_run: bool = False) -> None:
        self.spec = spec
        self.dry_run = dry_run or spec.dry_run
        self.count = 0  # measurements that completed other than in error
        self.successful = 0
        self.failed = 0
        self.inconclusive = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.consecutive_successes = 0
        self.last_s: float | None = None
        self.last_phase: MeasurementPhase | None = None
        self.phase: RunPhase = "Pending"
        self.message = ""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def completed(self) -> bool:
        return self.phase in COMPLETED

    def next_due_s(self, started_s: float) -> float | None:
        """When the next measurement is due (None: the metric takes no more)."""
        if self.completed:
            return None
        if self.last_s is None:
            return started_s + self.spec.initial_delay
        if self.last_phase == "Error":
            return self.last_s + ERROR_RETRY_S
        count = self.spec.effective_count
        if (count is not None and self.count >= count) or self.spec.interval is None:
            return None
        return self.last_s + self.spec.interval

    def record(self, phase: MeasurementPhase, at_s: float) -> None:
        """Fold one measurement in and reassess the metric."""
        self.last_s, self.last_phase = at_s, phase
        if phase == "Error":
            self.errors += 1
            self.consecutive_errors += 1
            self.consecutive_successes = 0
        else:
            self.count += 1
            self.consecutive_errors = 0
            if phase == "Successful":
                self.successful += 1
                self.consecutive_successes += 1
            else:
                self.consecutive_successes = 0
                if phase == "Failed":
                    self.failed += 1
                else:
                    self.inconclusive += 1
        self.phase, self.message = self.assess()

    def assess(self) -> tuple[RunPhase, str]:
        """The metric's phase after its measurements so far, and why."""
        spec = self.spec
        if self.last_phase is None:
            return "Pending", ""
        if self.consecutive_errors > spec.consecutive_error_limit:
            return "Error", (
                f"consecutive errors ({self.consecutive_errors}) > consecutiveErrorLimit "
                f"({spec.consecutive_error_limit})"
            )
        if self.inconclusive > spec.inconclusive_limit:
            return "Inconclusive", (
                f"inconclusive ({self.inconclusive}) > inconclusiveLimit "
                f"({spec.inconclusive_limit})"
            )
        failure_applies = spec.failure_limit >= 0
        if failure_applies and self.failed > spec.failure_limit:
            return "Failed", f"failed ({self.failed}) > failureLimit ({spec.failure_limit})"
        success_applies = spec.consecutive_success_limit > 0
        if success_applies and self.consecutive_successes >= spec.consecutive_success_limit:
            return "Successful", (
                f"consecutiveSuccessLimit ({spec.consecutive_success_limit}) reached"
            )
        count = spec.effective_count
        if count is not None and self.count >= count:
            if success_applies and failure_applies:
                return "Inconclusive", (
                    f"count ({count}) reached without {spec.consecutive_success_limit} "
                    "successes in a row, failureLimit not violated"
                )
            if success_applies:
                return "Failed", (
                    f"count ({count}) reached without {spec.consecutive_success_limit} "
                    "successes in a row"
                )
            return "Successful", f"count ({count}) reached"
        return "Running", ""

    def terminate(self) -> None:
        """Stop early: a running metric ends Successful (failures were assessed already)."""
        if not self.completed:
            self.phase = "Successful"
            self.message = "run terminated"

    def summary(self) -> str:
        parts = [f"{self.successful} successful"]
        for label, n in (("failed", self.failed), ("inconclusive", self.inconclusive)):
            if n:
                parts.append(f"{n} {label}")
        if self.errors:
            parts.append(f"{self.errors} errors")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A completed run's phase and the sentence that explains it."""

    phase: RunPhase
    reason: str


class AnalysisRun:
    """One analysis run (templates merged), started at ``started_s``."""

    def __init__(
        self,
        run_id: str,
        metrics: Sequence[RunMetric],
        started_s: float,
        *,
        dry_run: Sequence[str] = (),
        deadline_s: float = math.inf,
    ) -> None:
        patterns = [re.compile(p) for p in dry_run]
        self.id = run_id
        self.started_s = started_s
        self.deadline_s = deadline_s
        self.metrics = [
            MetricRun(m, dry_run=any(p.match(m.name) for p in patterns)) for m in metrics
        ]
        self.outcome: RunOutcome | None = None

    @property
    def completed(self) -> bool:
        return self.outcome is not None

    def metric(self, name: str) -> MetricRun | None:
        return next((m for m in self.metrics if m.name == name), None)

    def due(self, now_s: float) -> list[MetricRun]:
        """The metrics to measure at ``now_s``."""
        if self.completed:
            return []
        return [
            m
            for m in self.metrics
            if (due := m.next_due_s(self.started_s)) is not None and due <= now_s
        ]

    def next_due_s(self) -> float:
        """When this run next needs the clock: a measurement or its deadline (inf: never)."""
        if self.completed:
            return math.inf
        times = [t for m in self.metrics if (t := m.next_due_s(self.started_s)) is not None]
        return min([*times, self.deadline_s])

    def record(self, name: str, phase: MeasurementPhase, at_s: float) -> None:
        metric = self.metric(name)
        if metric is not None and not self.completed and not metric.completed:
            metric.record(phase, at_s)

    def assess(self, now_s: float) -> RunOutcome | None:
        """Complete the run when its metrics say so (or its deadline passed); None: running."""
        if self.outcome is not None:
            return self.outcome
        counted = [m for m in self.metrics if not m.dry_run]
        bad = [m for m in counted if m.phase in ("Failed", "Error", "Inconclusive")]
        if bad:
            for m in self.metrics:
                m.terminate()
            return self._complete()
        if now_s >= self.deadline_s:
            return self.terminate("scale-down delay elapsed: run terminated")
        if all(m.completed for m in self.metrics):
            return self._complete()
        return None

    def terminate(self, why: str = "run terminated") -> RunOutcome:
        """Stop the run now: Successful unless a counted metric already failed."""
        if self.outcome is not None:
            return self.outcome
        for m in self.metrics:
            m.terminate()
        outcome = self._complete()
        if outcome.phase == "Successful":
            outcome = RunOutcome("Successful", why)
            self.outcome = outcome
        return outcome

    def _complete(self) -> RunOutcome:
        worst: RunPhase = "Successful"
        culprit: MetricRun | None = None
        for m in self.metrics:
            if m.dry_run:
                continue
            if _worse(worst, m.phase) != worst:
                worst, culprit = m.phase, m
        if culprit is not None:
            reason = f"metric {culprit.name!r} assessed {worst}: {culprit.message}"
        else:
            reason = "every metric successful"
        dry = [m for m in self.metrics if m.dry_run and m.phase != "Successful"]
        if dry:
            reason += "; dry-run " + ", ".join(f"{m.name!r} {m.phase}" for m in dry)
        self.outcome = RunOutcome(worst, reason)
        return self.outcome
