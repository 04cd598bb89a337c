"""What the measured evidence reads for each binding, and how a measurement is judged.

A stub monitor hands out fixed window statistics, so each value can be worked by hand:
candidate 400 requests (380 served, 20 timeouts), baseline 1,600 (1,596 served).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from sim.monitor import WindowStats
from sim.policies import Arms
from sim.policies.analysis_run import measurement_phase
from sim.policies.measured import MeasuredAnalyst, lab_value
from sim.policies.measurements import MeasurementRequest
from sim.policies.run_settings import FlaggerCheck, RunMetric
from sim.policies.settings import Rollout

STATS = WindowStats(
    version="candidate",
    t_start_s=0.0,
    t_end_s=300.0,
    requests=400,
    served=380,
    fallback=20,
    dropped=0,
    timeouts=20,
    errors=0,
    rejected=0,
    cache_lookups=400,
    cache_hits=200,
    stale=0,
    clicks=20,
    abandoned=4,
    latency_p50_ms=12.0,
    latency_p95_ms=80.0,
    latency_p99_ms=150.0,
    units=300,
    ece=0.01,
    diversity=0.4,
    stability=0.7,
    shadow_requests=0,
    shadow_dropped=0,
    shadow_latency_p50_ms=math.nan,
    shadow_latency_p95_ms=math.nan,
    shadow_latency_p99_ms=math.nan,
)
BASE = replace(STATS, version="baseline", requests=1600, served=1596, fallback=4, timeouts=4)
EMPTY = replace(STATS, requests=0, served=0, fallback=0, timeouts=0, clicks=0)
MIRRORED = replace(EMPTY, shadow_requests=500, shadow_dropped=50, shadow_latency_p99_ms=140.0)


@pytest.mark.parametrize(
    ("stats", "metric", "shadow", "value"),
    [
        (STATS, "success_rate", False, 0.95),  # 380 / 400
        (STATS, "timeout_rate", False, 0.05),
        (STATS, "ctr", False, 0.05),
        (STATS, "latency_ms.p99", False, 150.0),
        (STATS, "requests", False, 400.0),
        (STATS, "request_rate_per_s", False, 400 / 300),
        (EMPTY, "success_rate", False, None),
        (MIRRORED, "success_rate", True, 0.9),  # 1 - 50 / 500
        (MIRRORED, "latency_ms.p99", True, 140.0),
        (MIRRORED, "ctr", True, None),  # nobody saw the mirrored lists
    ],
)
def test_lab_values(stats: WindowStats, metric: Any, shadow: bool, value: float | None) -> None:
    got = lab_value(stats, metric, shadow=shadow)
    assert got == (pytest.approx(value) if value is not None else None)


class StubMonitor:
    """Candidate (1) and baseline (0) windows whatever the time range."""

    window_start_s = 0.0

    def __init__(self, candidate: WindowStats) -> None:
        self.candidate = candidate

    def stats_between(self, version: int, start_s: float, end_s: float) -> WindowStats:
        return self.candidate if version == 1 else BASE

    def settle(self, until_s: float) -> list[WindowStats]:
        return [BASE, self.candidate]


def analyst(candidate: WindowStats = STATS) -> MeasuredAnalyst:
    from lab.manifests.evidence import evaluate_condition

    config = Rollout.model_validate(
        {"policy": "flagger", "analysis": {"interval": "1m"}, "flagger": {"step_weight": 10}}
    )
    return MeasuredAnalyst(
        config, StubMonitor(candidate), evaluate=evaluate_condition, horizon_s=3600.0
    )  # type: ignore[arg-type]


def measure(spec: RunMetric | FlaggerCheck, candidate: WindowStats = STATS) -> Any:
    arms = Arms(0, 1, 10.0, 0.0, False, (MeasurementRequest("r", spec, 0.0),))
    result = analyst(candidate).analyse(300.0, arms)
    assert result is not None and result.verdict is None
    return result.measurements[0]


def metric(**settings: Any) -> RunMetric:
    return RunMetric.model_validate({"name": "m", **settings})


@pytest.mark.parametrize(
    ("binding", "condition", "phase", "shown"),
    [
        (
            {"metric": "success_rate", "shape": "vector"},
            "result[0] >= 0.95",
            "Successful",
            "[0.95]",
        ),
        ({"metric": "success_rate"}, "result > 0.95", "Failed", "0.95"),
        # ratio: 0.05 / 0.0025 = 20; difference: 0.05 - 0.0025 = 0.0475; x100 for percent.
        ({"metric": "timeout_rate", "of": "ratio"}, "result == 20", "Successful", "20"),
        (
            {"metric": "timeout_rate", "of": "difference", "scale": 100},
            "result < 5",
            "Successful",
            "4.75",
        ),
        ({"metric": "timeout_rate", "of": "baseline"}, "result < 0.01", "Successful", "0.0025"),
    ],
)
def test_bindings_and_conditions(
    binding: dict[str, Any], condition: str, phase: str, shown: str
) -> None:
    got = measure(metric(measure=binding, success_condition=condition))
    assert (got.phase, got.value) == (phase, shown)


def test_no_data_is_an_empty_vector_or_nil_and_an_error_unless_handled() -> None:
    vector = {"metric": "success_rate", "shape": "vector"}
    got = measure(metric(measure=vector, success_condition="result[0] >= 0.95"), EMPTY)
    assert (got.phase, got.value) == ("Error", "[]")
    assert got.message == "could not evaluate successCondition: no data returned for the metric"
    handled = "len(result) == 0 || result[0] >= 0.95"
    assert measure(metric(measure=vector, success_condition=handled), EMPTY).phase == "Successful"
    scalar = {"metric": "success_rate"}
    assert (
        measure(metric(measure=scalar, success_condition="default(result, 1) > 0.9"), EMPTY).phase
        == "Successful"
    )


def test_mirrored_copies_stand_in_for_a_candidate_without_users() -> None:
    got = measure(metric(measure={"metric": "success_rate"}, success_condition="result >= 0.9"),
                  MIRRORED)  # fmt: skip
    assert (got.phase, got.value) == ("Successful", "0.9")


@pytest.mark.parametrize(
    ("check", "candidate", "phase", "message"),
    [
        ({"min": 99}, STATS, "Failed", "< min 99"),  # 95 %
        ({"min": 90}, STATS, "Successful", ""),
        ({"max": 94}, STATS, "Failed", "> max 94"),
        ({"min": 90}, EMPTY, "Failed", "no values found"),
    ],
)
def test_flagger_checks(
    check: dict[str, Any], candidate: WindowStats, phase: str, message: str
) -> None:
    spec = FlaggerCheck.model_validate(
        {
            "name": "request-success-rate",
            "measure": {"metric": "success_rate", "scale": 100},
            **check,
        }
    )
    got = measure(spec, candidate)
    assert (got.phase, got.message) == (phase, message)


@pytest.mark.parametrize(
    ("success", "failure", "result", "phase"),
    [
        ("", "", 0.5, "Successful"),  # no condition: successful unless the provider errs
        ("result >= 0.95", "", 0.9, "Failed"),
        ("", "result > 10", 3, "Successful"),
        ("", "result > 10", 11, "Failed"),
        ("result >= 0.95", "result < 0.5", 0.7, "Inconclusive"),
        ("result >= 0.95", "result < 0.5", 0.3, "Failed"),
        ("result >= 0.95", "result < 0.5", 0.99, "Successful"),
        ("result >= 0.95", "", math.nan, "Failed"),
        ("isNaN(result) || result >= 0.95", "", math.nan, "Successful"),
        ("result >= 0.95", "result < 0.95", math.nan, "Inconclusive"),
    ],
)
def test_measurement_phase_follows_argo_rules(
    success: str, failure: str, result: Any, phase: str
) -> None:
    """Argo Rollouts: with only a success condition, not meeting it fails; with only a
    failure condition, not meeting it succeeds; with both, meeting neither is inconclusive.
    (The three NaN cases are analysis.md's "NaN and Infinity" examples.)"""
    from lab.manifests.evidence import evaluate_condition

    spec = metric(measure={"metric": "ctr"}, success_condition=success, failure_condition=failure)
    assert measurement_phase(spec, result, evaluate_condition)[0] == phase
