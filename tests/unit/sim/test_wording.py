"""Every judging sentence against a table of cases (sim/wording.py)."""

from __future__ import annotations

import math
from typing import Literal

import pytest

from sim import wording
from sim.wording import (
    budget_phrase,
    calibration_warnings,
    comparison_phrase,
    count_noun,
    difference_verdict,
    drift_status,
    expectations_headline,
    group_harm,
    guardrail_breach,
    guardrail_verdict,
    interval_side,
    noise_floor_warning,
    p_value_text,
    share_change,
    success_streak,
    tally,
)


@pytest.mark.parametrize(
    ("failed", "total", "text"),
    [
        (0, 1, "The expectation passes"),
        (1, 1, "The expectation fails"),
        (0, 3, "All 3 expectations pass"),
        (1, 3, "1 of 3 expectations fails"),
        (2, 3, "2 of 3 expectations fail"),
        (3, 3, "All 3 expectations fail"),
        (1, 1200, "1 of 1,200 expectations fails"),
    ],
)
def test_expectations_headline(failed: int, total: int, text: str) -> None:
    assert expectations_headline(failed, total) == text


@pytest.mark.parametrize(("failed", "total"), [(0, 0), (4, 3), (-1, 3)])
def test_expectations_headline_refuses_impossible_counts(failed: int, total: int) -> None:
    with pytest.raises(ValueError, match="failed <= total"):
        expectations_headline(failed, total)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (1, "1 successful analysis in a row"),
        (2, "2 successful analyses in a row"),
        (0, "0 successful analyses in a row"),
    ],
)
def test_success_streak(n: int, text: str) -> None:
    assert success_streak(n) == text


@pytest.mark.parametrize(
    ("n", "singular", "text"),
    [
        (1, "analysis", "1 analysis"),
        (2, "analysis", "2 analyses"),
        (1, "request", "1 request"),
        (12_345, "request", "12,345 requests"),
        (0, "expectation", "0 expectations"),
    ],
)
def test_count_noun(n: int, singular: str, text: str) -> None:
    assert count_noun(n, singular) == text


def test_tally_leaves_out_zero_counts() -> None:
    assert tally([("pass", 3), ("fail", 0), ("inconclusive", 1)]) == "3 pass, 1 inconclusive"


# The reported case: heavy users +0.51 pp [+0.33, +0.68] was called "not significant".
@pytest.mark.parametrize(
    ("low", "high", "higher_is_better", "text"),
    [
        (0.0033, 0.0068, True, "significantly better (95% CI above 0)"),
        (-0.0068, -0.0033, True, "significantly worse (95% CI below 0)"),
        (-0.001, 0.002, True, "not significant (95% CI includes 0)"),
        (0.0, 0.002, True, "not significant (95% CI includes 0)"),
        (-0.002, 0.0, True, "not significant (95% CI includes 0)"),
        (0.5, 2.0, False, "significantly worse (95% CI above 0)"),
        (-2.0, -0.5, False, "significantly better (95% CI below 0)"),
        (None, 0.1, True, "no interval"),
        (math.nan, 0.1, True, "no interval"),
    ],
)
def test_difference_verdict(
    low: float | None, high: float | None, higher_is_better: bool, text: str
) -> None:
    assert difference_verdict(low, high, higher_is_better=higher_is_better) == text


@pytest.mark.parametrize(
    ("low", "high", "side", "phrase"),
    [
        (0.01, 0.02, "above", "higher than B"),
        (-0.02, -0.01, "below", "lower than B"),
        (-0.01, 0.02, "includes", "not distinguishable from B"),
        (None, None, "unknown", "not comparable with B (no interval)"),
    ],
)
def test_interval_side_and_comparison(
    low: float | None, high: float | None, side: str, phrase: str
) -> None:
    assert interval_side(low, high) == side
    assert comparison_phrase(low, high, "B") == phrase


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0, "< 0.0001"),  # the drift table printed "KS p 0"
        (3e-9, "< 0.0001"),
        (0.00042, "0.00042"),
        (0.0321, "0.032"),
        (0.5, "0.5"),
        (1.0, "1"),
        (None, "–"),
        (math.nan, "–"),
    ],
)
def test_p_value_text(p: float | None, text: str) -> None:
    assert p_value_text(p) == text


@pytest.mark.parametrize(
    ("psi", "ks_p", "status"),
    [
        (0.31, 0.0, "alert"),
        (0.31, 0.9, "alert"),
        (0.02, 0.0, "small shift"),  # was "ok" next to "KS p 0"
        (0.02, 0.2, "ok"),
        (0.2, 0.5, "ok"),  # the threshold itself is not above it
        (0.02, None, "ok"),
        (None, 0.0, "not measured"),
    ],
)
def test_drift_status(psi: float | None, ks_p: float | None, status: str) -> None:
    assert drift_status(psi, 0.2, ks_p) == status


@pytest.mark.parametrize(
    ("slope", "span", "requests", "expected"),
    [
        (1.0, 0.5, 100, []),
        (-0.257, 0.5, 100, ["slope"]),
        (0.0, 0.5, 100, ["slope"]),
        (1.0, 0.03, 100, ["span"]),
        (-0.257, 0.03, 100, ["slope", "span"]),
        (None, 0.0, 100, ["span"]),
        (-1.0, 0.0, 0, []),
    ],
)
def test_calibration_warnings(
    slope: float | None, span: float, requests: int, expected: list[str]
) -> None:
    warnings = calibration_warnings(slope, span, 1 / 15, requests=requests)
    assert len(warnings) == len(expected)
    for text, kind in zip(warnings, expected, strict=True):
        assert kind in text


@pytest.mark.parametrize(
    ("slope", "interval", "expected"),
    [
        (0.95, (0.8, 1.1), []),
        (None, (0.12, 1.1), ["not measured: its 95 % interval [0.12, 1.10] is wider than 0.6"]),
        (None, (None, None), ["not measured: its 95 % interval is unknown, not within 0.6"]),
        (-0.3, (-0.5, -0.1), ["slope -0.3 <= 0"]),
        (None, (0.42, 0.85), ["not measured: its information rests on 3.4 users (fewer than 30)"]),
    ],
)
def test_calibration_warnings_say_when_the_slope_is_not_measured(
    slope: float | None, interval: tuple[float | None, float | None], expected: list[str]
) -> None:
    effective = 3.36 if interval == (0.42, 0.85) else 120.0
    warnings = calibration_warnings(
        slope,
        0.5,
        1 / 15,
        requests=100,
        slope_ci95=interval,
        max_slope_ci_width=0.6,
        slope_effective_users=effective,
        min_effective_users=30,
    )
    assert len(warnings) == len(expected)
    for text, part in zip(warnings, expected, strict=True):
        assert part in text


@pytest.mark.parametrize(
    ("jaccard", "warns"),
    [(0.166, True), (0.49, True), (0.5, False), (0.76, False), (None, False), (math.nan, False)],
)
def test_noise_floor_warning(jaccard: float | None, warns: bool) -> None:
    text = noise_floor_warning(jaccard, 10)
    assert (text is not None) == warns
    if warns:
        assert text is not None and f"keeps only {100 * jaccard:.0f}% of its top-10" in text


@pytest.mark.parametrize(
    ("p99", "text"),
    [
        ({"a": 80.0, "b": 99.0}, "within budget"),
        ({"a": 100.0}, "within budget"),
        ({"a": 120.0, "b": 99.0, "c": 101.0}, "over budget: a, c"),
        ({"a": None}, "within budget"),
    ],
)
def test_budget_phrase(p99: dict[str, float | None], text: str) -> None:
    assert budget_phrase(p99, 100.0) == text


@pytest.mark.parametrize(
    ("worse", "beyond", "text"),
    [
        (True, True, "below -3.0%"),
        (False, True, "below -3.0%, not significant at alpha=0.05"),
        (False, False, "within -3.0%"),
    ],
)
def test_guardrail_verdict(worse: bool, beyond: bool, text: str) -> None:
    verdict = guardrail_verdict(
        worse=worse, beyond=beyond, side="below", limit_text="-3.0%", alpha=0.05
    )
    assert verdict == text


@pytest.mark.parametrize(
    ("side", "relative", "values", "text"),
    [
        (
            "max",
            False,
            (181.23, 120.0, 143.4, 0.00192),
            "latency_ms.p99 181.2 > max 120 (lower confidence bound 143.4 at alpha 0.0019)",
        ),
        (
            "min",
            False,
            (0.12, 0.3, 0.161, 0.01),
            "latency_ms.p99 0.12 < min 0.3 (upper confidence bound 0.161 at alpha 0.01)",
        ),
        (
            "min",
            True,
            (-0.121, -0.05, -0.07, 0.004),
            "latency_ms.p99 -12.1% < min -5.0% (upper confidence bound -7.0% at alpha 0.004)",
        ),
    ],
)
def test_guardrail_breach(
    side: Literal["min", "max"],
    relative: bool,
    values: tuple[float, float, float, float],
    text: str,
) -> None:
    estimate, limit, bound, alpha = values
    assert (
        guardrail_breach(
            "latency_ms.p99",
            estimate=estimate,
            side=side,
            limit=limit,
            bound=bound,
            alpha=alpha,
            relative=relative,
        )
        == text
    )


@pytest.mark.parametrize(
    ("low", "high", "text"),
    [
        (0.01, 0.03, "significantly more exposure (95% CI above 0)"),
        (-0.03, -0.01, "significantly less exposure (95% CI below 0)"),
        (-0.01, 0.02, "no significant change (95% CI includes 0)"),
        (None, None, "no interval"),
        (-math.inf, math.inf, "no significant change (95% CI includes 0)"),
    ],
)
def test_share_change(low: float | None, high: float | None, text: str) -> None:
    assert share_change(low, high) == text


@pytest.mark.parametrize(
    ("low", "high", "groups", "text"),
    [
        (
            -0.05,
            -0.01,
            7,
            "significantly worse even after correcting for 7 groups (interval below 0)",
        ),
        (
            0.01,
            0.05,
            1,
            "significantly better even after correcting for 1 group (interval above 0)",
        ),
        (-0.05, 0.01, 3, "not significant after correcting for 3 groups (interval includes 0)"),
        (math.nan, 0.01, 3, "no interval"),
    ],
)
def test_group_harm(low: float | None, high: float | None, groups: int, text: str) -> None:
    assert group_harm(low, high, groups) == text


@pytest.mark.parametrize(
    ("degraded", "answers", "text"),
    [
        (0, 100, "no answer degraded"),
        (1813, 5088, "1,813 of 5,088 answers degraded (36%)"),
        (1, 1, "1 of 1 answer degraded (100%)"),
    ],
)
def test_degraded_share(degraded: int, answers: int, text: str) -> None:
    assert wording.degraded_share(degraded, answers) == text


@pytest.mark.parametrize(
    ("compliance", "text"),
    [
        (0.999, "meets its target (99.900% good against 99.5%)"),
        (0.995, "meets its target (99.500% good against 99.5%)"),
        (0.98, "misses its target (98.000% good against 99.5%)"),
        (None, "not measured (no requests)"),
        (float("nan"), "not measured (no requests)"),
    ],
)
def test_slo_verdict(compliance: float | None, text: str) -> None:
    assert wording.slo_verdict(compliance, 0.995) == text


@pytest.mark.parametrize(
    ("spent", "text"),
    [
        (0.0, "no error budget burnt in the update window"),
        (9e-06, "0.0009% of the error budget burnt in the update window"),
        (0.003535, "0.35% of the error budget burnt in the update window"),
        (1.0, "error budget exhausted in the update window (100% of it burnt)"),
        (2.5, "error budget exhausted in the update window (250% of it burnt)"),
        (None, "error budget burnt in the update window not measured"),
    ],
)
def test_budget_burnt(spent: float | None, text: str) -> None:
    assert wording.budget_burnt(spent, "the update window") == text


@pytest.mark.parametrize(
    ("fired", "rules", "text"),
    [
        (0, 2, "no burn-rate alert fired (2 rules)"),
        (1, 2, "1 of 2 burn-rate alerts fired"),
        (2, 2, "all 2 burn-rate alerts fired"),
        (1, 1, "the burn-rate alert fired"),
        (0, 0, "no burn-rate alert rule"),
    ],
)
def test_alerts_fired(fired: int, rules: int, text: str) -> None:
    assert wording.alerts_fired(fired, rules) == text


@pytest.mark.parametrize(
    ("peak", "kills", "text"),
    [
        (3.0, 0, "no OOM kill; the fullest node peaked at 3 of 3.5 GB"),
        (
            3.0,
            12,
            "12 OOM kills: a replica found no room on its node (the fullest node "
            "peaked at 3 of 3.5 GB)",
        ),
        (
            None,
            1,
            "1 OOM kill: a replica found no room on its node (the fullest node "
            "peaked at – of 3.5 GB)",
        ),
    ],
)
def test_memory_verdict(peak: float | None, kills: int, text: str) -> None:
    assert wording.memory_verdict(peak, 3.5, kills) == text
