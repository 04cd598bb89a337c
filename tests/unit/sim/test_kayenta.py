"""Kayenta-style scoring against hand-worked cases, and the test against scipy's.

The hand-worked rows: U counted pair by pair (ties count ½), the tie-corrected variance and
the continuity-corrected z written out, the Hodges–Lehmann shift as the median of the pairwise
differences; the scores as the weighted share of passing metrics per group.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import mannwhitneyu, norm

from sim.kayenta import MetricJudgement, classify_metric, mann_whitney, score_canary


def test_mann_whitney_separated_samples_by_hand() -> None:
    # x = [3, 4, 5] all above y = [1, 2]: U = 6 of mn = 6.
    result = mann_whitney([3, 4, 5], [1, 2])
    assert result.u == 6.0
    # sigma^2 = mn/12 (m + n + 1) = 6/12 * 6 = 3; z = (6 - 3 - 0.5) / sqrt(3).
    z = 2.5 / math.sqrt(3.0)
    assert result.p_value == pytest.approx(2 * norm.sf(z), rel=1e-12)
    # Differences 2, 1, 3, 2, 4, 3 -> sorted 1 2 2 3 3 4: median 2.5; k clamps to 1.
    assert result.shift == 2.5
    assert (result.ci_low, result.ci_high) == (1.0, 4.0)
    assert result.cles == 1.0


def test_mann_whitney_with_ties_by_hand() -> None:
    # x = [1, 2, 2], y = [2, 3]: pairs (1,2) 0, (1,3) 0, (2,2) 1/2, (2,3) 0, (2,2) 1/2, (2,3) 0.
    result = mann_whitney([1, 2, 2], [2, 3])
    assert result.u == 1.0
    # Tie of three 2s: sum(t^3 - t) = 24; sigma^2 = 6/12 (6 - 24 / (5 * 4)) = 2.4.
    z = (1.0 - 3.0 + 0.5) / math.sqrt(2.4)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-12)
    # Differences -1 -2 0 -1 0 -1 -> sorted -2 -1 -1 -1 0 0: median -1.
    assert result.shift == -1.0
    assert result.cles == pytest.approx(1 / 6)


def test_mann_whitney_interval_by_hand() -> None:
    # m = n = 10, x = y + 10: every difference x_i - y_j = 10 + i - j, 100 pairs.
    x, y = np.arange(10.0) + 10, np.arange(10.0)
    result = mann_whitney(x, y, confidence=0.95)
    # spread = 100 sqrt(21 / 1200) = 13.2288; k = floor(50 - 1.95996 * 13.2288) = 24.
    ordered = np.sort((x[:, None] - y[None, :]).ravel())
    assert (result.ci_low, result.ci_high) == (ordered[23], ordered[76])
    assert result.shift == 10.0


def test_nan_values_are_dropped_and_empty_samples_refused() -> None:
    assert mann_whitney([3, math.nan, 4, 5], [1, 2, math.inf]).u == 6.0
    with pytest.raises(ValueError, match="both samples need a finite value"):
        mann_whitney([math.nan], [1.0])


@settings(deadline=None, max_examples=60)
@given(
    st.lists(st.integers(0, 20), min_size=2, max_size=30),
    st.lists(st.integers(0, 20), min_size=2, max_size=30),
)
def test_p_value_and_u_agree_with_scipy(x: list[int], y: list[int]) -> None:
    if len(set(x + y)) == 1:
        return  # scipy returns NaN when every value ties; the lab says p = 1
    ours = mann_whitney(x, y)
    theirs = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.u == pytest.approx(float(theirs.statistic))
    assert ours.p_value == pytest.approx(float(theirs.pvalue), rel=1e-9, abs=1e-12)
    assert ours.ci_low <= ours.shift <= ours.ci_high


HIGH = np.arange(20) * 0.01 + 2.0  # 2.00 .. 2.19
LOW = np.arange(20) * 0.01 + 1.0  # 1.00 .. 1.19; the ratio of means is 2.095 / 1.095 = 1.913

#: (experiment, control, direction, allowed_increase, allowed_decrease, classification)
CLASSIFICATIONS = [
    (HIGH, LOW, "increase", 1.1, 1.0, "high"),
    (HIGH, LOW, "either", 1.1, 1.0, "high"),
    (HIGH, LOW, "decrease", 1.1, 1.0, "pass"),  # higher is fine when only decreases hurt
    (HIGH, LOW, "increase", 2.0, 1.0, "pass"),  # significant, but within the allowed ratio
    (LOW, HIGH, "decrease", 1.0, 0.9, "low"),  # ratio 0.523 < 0.9
    (LOW, HIGH, "either", 1.0, 0.5, "pass"),  # ratio 0.523 is not below 0.5
    (LOW, HIGH, "increase", 1.0, 0.9, "pass"),
    (LOW, LOW[::-1], "either", 1.0, 1.0, "pass"),  # identical samples
    ([1.0, 5.0, 2.0], [1.5, 4.0, 2.5], "either", 1.0, 1.0, "pass"),  # interval straddles 0
    ([], LOW, "either", 1.0, 1.0, "nodata"),
    ([math.nan], LOW, "either", 1.0, 1.0, "nodata"),
]


@pytest.mark.parametrize(
    ("experiment", "control", "direction", "up", "down", "expected"), CLASSIFICATIONS
)
def test_classification_table(
    experiment: object, control: object, direction: str, up: float, down: float, expected: str
) -> None:
    judgement = classify_metric(
        "m",
        experiment,  # type: ignore[arg-type]
        control,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        allowed_increase=up,
        allowed_decrease=down,
    )
    assert judgement.classification == expected, judgement.reason


def test_classification_numbers_and_reason() -> None:
    judgement = classify_metric("latency", HIGH, LOW, direction="increase", allowed_increase=1.1)
    assert judgement.ratio == pytest.approx(2.095 / 1.095)
    assert judgement.shift == pytest.approx(1.0)
    assert judgement.cles == 1.0
    assert judgement.reason.startswith("higher: shift +1 (98% CI ")
    assert classify_metric("x", [], LOW).reason == "no canary data"
    assert classify_metric("x", LOW, []).reason == "no baseline data"


def j(
    name: str,
    classification: str,
    *groups: str,
    critical: bool = False,
    must_have_data: bool = False,
) -> MetricJudgement:
    return MetricJudgement(
        name,
        classification,  # type: ignore[arg-type]
        "",
        groups,
        critical=critical,
        must_have_data=must_have_data,
    )


#: (judgements, group weights, expected score, expected class) with pass 95, marginal 75.
SCORES = [
    # latency (60): 3 of 4 pass = 75; errors (40): 2 of 2 = 100 -> 45 + 40 = 85, marginal.
    (
        [
            j("p50", "pass", "latency"),
            j("p95", "pass", "latency"),
            j("p99", "high", "latency"),
            j("max", "pass", "latency"),
            j("5xx", "pass", "errors"),
            j("4xx", "pass", "errors"),
        ],
        {"latency": 60, "errors": 40},
        85.0,
        "marginal",
    ),
    # Every metric passes: 100.
    ([j("a", "pass", "g"), j("b", "pass", "g")], {"g": 100}, 100.0, "pass"),
    # a (50) 100; b and c share the other 50: b 1 of 2 = 50, c 0 -> 50 + 12.5 + 0 = 62.5.
    (
        [j("a1", "pass", "a"), j("b1", "pass", "b"), j("b2", "low", "b"), j("c1", "high", "c")],
        {"a": 50},
        62.5,
        "fail",
    ),
    # A group with no data drops out with its weight: 100 * 0.5 = 50.
    ([j("a1", "pass", "a"), j("b1", "nodata", "b")], {"a": 50, "b": 50}, 50.0, "fail"),
    # No data where data is required counts as a failure: 1 of 2 = 50.
    ([j("a", "pass", "g"), j("b", "nodata", "g", must_have_data=True)], {}, 50.0, "fail"),
    # No groups at all: one default group carrying the whole weight.
    ([j("a", "pass"), j("b", "high"), j("c", "pass"), j("d", "pass")], {}, 75.0, "marginal"),
    # A metric in two groups counts in both: g1 1/1, g2 1/2 -> 50 + 25 = 75.
    ([j("a", "pass", "g1", "g2"), j("b", "low", "g2")], {"g1": 50, "g2": 50}, 75.0, "marginal"),
    # A critical metric that does not pass fails the analysis at once, whatever the rest.
    (
        [j("a", "pass", "g"), j("b", "pass", "g"), j("c", "high", "g", critical=True)],
        {},
        0.0,
        "fail",
    ),
    # Critical and without data: also a failure (it did not pass).
    ([j("a", "pass", "g"), j("c", "nodata", "g", critical=True)], {}, 0.0, "fail"),
]


@pytest.mark.parametrize(("judgements", "weights", "score", "classification"), SCORES)
def test_score_table(
    judgements: list[MetricJudgement], weights: dict[str, float], score: float, classification: str
) -> None:
    result = score_canary(
        judgements, group_weights=weights, pass_threshold=95, marginal_threshold=75
    )
    assert result.score == pytest.approx(score)
    assert result.classification == classification


def test_score_reason_names_the_failing_metrics() -> None:
    result = score_canary(
        [j("a", "pass"), j("b", "high")], pass_threshold=90, marginal_threshold=60
    )
    assert result.reason == "score 50.0 fail (pass >= 90, marginal >= 60) (b high)"
    critical = score_canary([j("lat", "low", critical=True)])
    assert critical.reason == "critical metric lat did not pass"
    assert critical.critical_failures == ("lat",)
