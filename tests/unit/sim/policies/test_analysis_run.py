"""Argo Rollouts' analysis-run rules, measurement by measurement.

The cases follow docs/features/analysis.md: "Failure Conditions and Failure Limit",
"ConsecutiveSuccessLimit and FailureLimit" (the four outcomes when ``count`` is reached),
"Inconclusive Runs", "Dry-Run Mode" and the note that a run stopped early ends successful
unless its failure limit was already violated.
"""

from __future__ import annotations

from typing import Any

import pytest

from sim.policies.analysis_run import AnalysisRun, MetricRun
from sim.policies.run_settings import RunMetric


def spec(**settings: Any) -> RunMetric:
    return RunMetric.model_validate(
        {"name": "m", "measure": {"metric": "error_rate"}, "success_condition": "true", **settings}
    )


S, F, INC, E = "Successful", "Failed", "Inconclusive", "Error"

#: (metric settings, measurements, phase after them)
CASES: list[tuple[dict[str, Any], list[str], str]] = [
    # No interval, no count: one measurement decides.
    ({}, [S], "Successful"),
    ({}, [F], "Failed"),
    # failureLimit tolerates that many failures, not one more.
    ({"interval": "5m", "failure_limit": 3}, [F, F, F], "Running"),
    ({"interval": "5m", "failure_limit": 3}, [F, S, F, S, F, F], "Failed"),
    # With count: completes successful at the count when the limit was not violated.
    ({"interval": "1m", "count": 3, "failure_limit": 1}, [S, F, S], "Successful"),
    # inconclusiveLimit works the same way for inconclusive measurements.
    ({"interval": "1m", "count": 5, "inconclusive_limit": 1}, [INC, S], "Running"),
    ({"interval": "1m", "count": 5, "inconclusive_limit": 1}, [INC, S, INC], "Inconclusive"),
    # Errors: more than consecutiveErrorLimit in a row; they do not count towards count.
    ({"interval": "1m", "count": 2}, [E, E, E, E], "Running"),
    ({"interval": "1m", "count": 2}, [E, E, E, E, E], "Error"),
    ({"interval": "1m", "count": 2}, [E, E, E, E, S, E, E, E, E, S], "Successful"),
    # Only consecutiveSuccessLimit (failureLimit -1): keep measuring until N in a row.
    (
        {"interval": "1m", "failure_limit": -1, "consecutive_success_limit": 2},
        [F, S, F, S, S],
        "Successful",
    ),
    # Both limits: N in a row within at most failureLimit failures.
    (
        {"interval": "1m", "failure_limit": 1, "consecutive_success_limit": 2},
        [F, S, F, S],
        "Failed",
    ),
    # count reached: the documented table of four outcomes.
    (
        {"interval": "1m", "count": 3, "failure_limit": 1, "consecutive_success_limit": 2},
        [S, F, S],
        "Inconclusive",
    ),  # failure limit not violated, successes not reached
    (
        {"interval": "1m", "count": 3, "failure_limit": 1, "consecutive_success_limit": 2},
        [F, S, S],
        "Successful",
    ),  # not violated, reached (at the last measurement)
    (
        {"interval": "1m", "count": 3, "failure_limit": 0, "consecutive_success_limit": 2},
        [S, S, F],
        "Successful",
    ),  # reached before the failure: the metric completed then
    (
        {"interval": "1m", "count": 3, "failure_limit": -1, "consecutive_success_limit": 3},
        [S, F, S],
        "Failed",
    ),  # only the success limit applies and it was not reached
]


@pytest.mark.parametrize(("settings", "measurements", "phase"), CASES)
def test_metric_phase_table(settings: dict[str, Any], measurements: list[str], phase: str) -> None:
    metric = MetricRun(spec(**settings))
    t = 0.0
    for measurement in measurements:
        if metric.completed:
            break
        metric.record(measurement, t)  # type: ignore[arg-type]
        t += 60.0
    assert metric.phase == phase, metric.message


def test_schedule_follows_delay_interval_errors_and_count() -> None:
    metric = MetricRun(spec(interval="2m", count=2, initial_delay="30s"))
    assert metric.next_due_s(started_s=100.0) == 130.0
    metric.record("Successful", 130.0)
    assert metric.next_due_s(100.0) == 250.0
    metric.record("Error", 250.0)
    assert metric.next_due_s(100.0) == 260.0  # an error is retried 10 s later
    metric.record("Successful", 260.0)
    assert metric.next_due_s(100.0) is None  # two measurements counted: done
    assert metric.phase == "Successful"


def test_run_ends_as_soon_as_one_metric_fails_and_the_others_stop() -> None:
    run = AnalysisRun("r", [spec(name="a", interval="1m"), spec(name="b", interval="1m")], 0.0)
    run.record("a", "Successful", 0.0)
    run.record("b", "Failed", 0.0)
    outcome = run.assess(0.0)
    assert outcome is not None and outcome.phase == "Failed"
    assert outcome.reason == "metric 'b' assessed Failed: failed (1) > failureLimit (0)"
    assert run.due(60.0) == [] and run.next_due_s() == float("inf")


def test_worst_phase_wins_and_dry_run_is_reported_only() -> None:
    run = AnalysisRun("r", [spec(name="a"), spec(name="b"), spec(name="c")], 0.0, dry_run=["c"])
    run.record("a", "Successful", 0.0)
    run.record("c", "Failed", 0.0)
    assert run.assess(0.0) is None  # b has not measured yet
    run.record("b", "Successful", 0.0)
    outcome = run.assess(0.0)
    assert outcome is not None and outcome.phase == "Successful"
    assert outcome.reason == "every metric successful; dry-run 'c' Failed"


def test_terminating_early_is_successful_unless_the_limit_was_violated() -> None:
    running = AnalysisRun("r", [spec(interval="1m", failure_limit=2)], 0.0)
    running.record("m", "Failed", 0.0)
    assert running.terminate("rollout completed").phase == "Successful"
    failed = AnalysisRun("r", [spec(interval="1m", failure_limit=0)], 0.0)
    failed.record("m", "Failed", 0.0)
    assert failed.terminate().phase == "Failed"


def test_deadline_terminates_the_run() -> None:
    run = AnalysisRun("r", [spec(interval="5m")], 0.0, deadline_s=300.0)
    assert run.next_due_s() == 0.0
    run.record("m", "Successful", 0.0)
    assert run.next_due_s() == 300.0
    outcome = run.assess(300.0)
    assert outcome is not None and outcome.phase == "Successful"
    assert "scale-down delay" in outcome.reason
