"""Unit tests for sim/stats.py: hand-computed values, edge cases, invalid inputs, properties."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from replay.errors import UserInputError
from sim.stats import (
    ArmStats,
    Interval,
    SequentialTest,
    difference_interval,
    guardrail_worse,
    mean_interval,
    mixing_variance_for_mde,
    msprt_log_lambda,
    relative_lift_interval,
    srm_check,
    wilson_interval,
    z_test,
)

Z95 = 1.959963984540054  # Φ⁻¹(0.975)


def lambda_direct(d: float, v: float, tau2: float) -> float:
    """The mSPRT statistic exactly as written in DESIGN section 5 (no log space)."""
    return math.sqrt(v / (v + tau2)) * math.exp(tau2 * d * d / (2 * v * (v + tau2)))


# --------------------------------------------------------------------------- ArmStats


def test_from_sums_matches_hand_computation() -> None:
    # x = [1, 2, 3, 4]: Σx = 10, Σx² = 30, mean 2.5, s² = (30 − 25) / 3
    arm = ArmStats.from_sums(4, 10.0, 30.0)
    assert arm == ArmStats(4, 2.5, 5.0 / 3.0)
    assert arm.sem_sq == pytest.approx(5.0 / 12.0)


def test_from_sums_bernoulli_variance_is_p_q_times_bessel() -> None:
    arm = ArmStats.from_sums(1000, 50, 50)
    assert arm.mean == pytest.approx(0.05)
    assert arm.var == pytest.approx(0.05 * 0.95 * 1000 / 999)


def test_from_sums_small_n() -> None:
    assert ArmStats.from_sums(0, 0.0, 0.0) == ArmStats(0, 0.0, 0.0)
    assert ArmStats.from_sums(1, 7.0, 49.0) == ArmStats(1, 7.0, 0.0)


def test_from_sums_clips_rounding_below_zero() -> None:
    # x = [0.1, 0.1, 0.1]: Σx² − (Σx)²/n is −1.7e-18 in floating point
    total = 0.1 + 0.1 + 0.1
    total_sq = 0.1**2 * 3
    assert total_sq - total * total / 3 < 0
    assert ArmStats.from_sums(3, total, total_sq).var == 0.0


def test_from_values_matches_numpy() -> None:
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    arm = ArmStats.from_values(x)
    assert arm.n == 8
    assert arm.mean == pytest.approx(x.mean())
    assert arm.var == pytest.approx(x.var(ddof=1))
    assert ArmStats.from_values([]) == ArmStats(0, 0.0, 0.0)
    assert ArmStats.from_values([2.0]) == ArmStats(1, 2.0, 0.0)


@pytest.mark.parametrize(
    ("n", "mean", "var"),
    [(-1, 0.0, 0.0), (3, math.nan, 1.0), (3, 0.0, -1.0), (3, 0.0, math.inf)],
)
def test_arm_stats_rejects_impossible_values(n: int, mean: float, var: float) -> None:
    with pytest.raises(ValueError):
        ArmStats(n, mean, var)


def test_from_sums_rejects_negative_n() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        ArmStats.from_sums(-2, 0.0, 0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=0, max_size=40))
def test_from_sums_agrees_with_two_pass(values: list[float]) -> None:
    x = np.asarray(values, dtype=np.float64)
    arm = ArmStats.from_sums(len(values), float(x.sum()), float((x * x).sum()))
    ref = ArmStats.from_values(x)
    assert arm.n == ref.n
    assert arm.var >= 0.0
    assert arm.mean == pytest.approx(ref.mean, abs=1e-9)
    # the one-pass formula loses ~ eps · Σx² / n of absolute precision
    scale = float((x * x).sum()) / max(len(values) - 1, 1)
    assert arm.var == pytest.approx(ref.var, abs=1e-9 * (1.0 + scale))


# --------------------------------------------------------------------------- mSPRT statistic


def test_log_lambda_hand_value() -> None:
    # d = 2, V = 1, τ² = 3:  Λ = sqrt(1/4) · exp(3·4 / (2·1·4)) = e^1.5 / 2
    assert msprt_log_lambda(2.0, 1.0, 3.0) == pytest.approx(1.5 - math.log(2.0))
    # d = 1, V = 1.25, τ² = 1
    assert msprt_log_lambda(1.0, 1.25, 1.0) == pytest.approx(
        math.log(lambda_direct(1.0, 1.25, 1.0))
    )


def test_log_lambda_no_difference_is_below_zero() -> None:
    # d = 0: Λ = sqrt(V / (V + τ²)) < 1
    assert msprt_log_lambda(0.0, 1.0, 3.0) == pytest.approx(-math.log(2.0))


def test_log_lambda_does_not_overflow() -> None:
    # Λ itself would be exp(≈ 5e17): far beyond float range
    value = msprt_log_lambda(1.0, 1e-18, 1.0)
    assert value > 1e17
    assert math.isfinite(value)


def test_log_lambda_zero_variance_is_no_evidence() -> None:
    assert msprt_log_lambda(5.0, 0.0, 1.0) == 0.0
    assert msprt_log_lambda(0.0, 0.0, 1.0) == 0.0


def test_mixing_variance_for_mde() -> None:
    assert mixing_variance_for_mde(0.005) == pytest.approx(2.5e-5)
    assert SequentialTest.for_mde(0.05, 0.5).tau2 == pytest.approx(0.25)


@pytest.mark.parametrize("mde", [0.0, -0.1, math.inf, math.nan])
def test_mixing_variance_rejects_bad_mde(mde: float) -> None:
    with pytest.raises(UserInputError, match=r"^stats: mde_abs must be a finite number > 0, got"):
        mixing_variance_for_mde(mde)


# --------------------------------------------------------------------------- SequentialTest


def test_sequential_trace_is_min_of_inverse_lambda_and_sticky() -> None:
    test = SequentialTest(alpha=0.05, tau2=3.0)
    # V = 25/100 + 75/100 = 1, d = 2: log Λ = 1.5 − ln 2, p = 2 e^−1.5 ≈ 0.446
    r1 = test.update(ArmStats(100, 0.0, 25.0), ArmStats(100, 2.0, 75.0))
    # V = 0.25, d = 1: weaker evidence (1/Λ ≈ 0.569), p keeps its minimum
    r2 = test.update(ArmStats(400, 0.0, 50.0), ArmStats(400, 1.0, 50.0))
    # V = 0.5, d = −3: 1/Λ ≈ 0.0012 ≤ α, decided "worse"
    r3 = test.update(ArmStats(900, 0.0, 225.0), ArmStats(900, -3.0, 225.0))
    # V = 0.5, d = +5: overwhelming evidence the other way; the decision does not move
    r4 = test.update(ArmStats(1600, 0.0, 400.0), ArmStats(1600, 5.0, 400.0))

    assert r1.log_lambda == pytest.approx(1.5 - math.log(2.0))
    assert r1.p_value == pytest.approx(2.0 * math.exp(-1.5))
    assert r2.log_lambda == pytest.approx(math.log(lambda_direct(1.0, 0.25, 3.0)))
    assert r2.p_value == r1.p_value
    assert r3.p_value == pytest.approx(1.0 / lambda_direct(-3.0, 0.5, 3.0))
    assert r4.p_value == pytest.approx(1.0 / lambda_direct(5.0, 0.5, 3.0))
    assert [r.decision for r in (r1, r2, r3, r4)] == ["continue", "continue", "worse", "worse"]
    assert [r.difference for r in (r1, r2, r3, r4)] == [2.0, 1.0, -3.0, 5.0]
    assert test.decision == "worse"
    assert test.n_updates == 4
    assert test.p_value == r4.p_value


def test_sequential_decides_better_for_higher_treatment() -> None:
    test = SequentialTest(alpha=0.05, tau2=3.0)
    result = test.update(ArmStats(900, 0.0, 225.0), ArmStats(900, 3.0, 225.0))
    assert result.decision == "better"


def test_sequential_empty_and_tiny_arms_continue() -> None:
    test = SequentialTest(alpha=0.05, tau2=1.0)
    r0 = test.update(ArmStats(0, 0.0, 0.0), ArmStats(0, 0.0, 0.0))
    r1 = test.update(ArmStats(1, 0.0, 0.0), ArmStats(1, 1.0, 0.0))
    assert (r0.log_lambda, r0.p_value, r0.decision) == (0.0, 1.0, "continue")
    assert (r1.log_lambda, r1.p_value, r1.decision) == (0.0, 1.0, "continue")
    assert r1.difference == 1.0


def test_sequential_zero_variance_continues() -> None:
    test = SequentialTest(alpha=0.05, tau2=1.0)
    result = test.update(ArmStats(50, 0.0, 0.0), ArmStats(50, 1.0, 0.0))
    assert (result.log_lambda, result.p_value, result.decision) == (0.0, 1.0, "continue")


def test_sequential_identical_arms_never_decide() -> None:
    test = SequentialTest(alpha=0.05, tau2=0.01)
    for n in (100, 1_000, 10_000, 100_000):
        arm = ArmStats(n, 0.05, 0.0475)
        result = test.update(arm, arm)
        assert result.log_lambda < 0
        assert result.p_value == 1.0
        assert result.decision == "continue"


def test_sequential_rejects_shrinking_arms() -> None:
    test = SequentialTest(alpha=0.05, tau2=1.0)
    test.update(ArmStats(100, 0.0, 1.0), ArmStats(100, 0.0, 1.0))
    with pytest.raises(ValueError, match="must not shrink"):
        test.update(ArmStats(99, 0.0, 1.0), ArmStats(100, 0.0, 1.0))


@pytest.mark.parametrize(
    ("alpha", "tau2", "message"),
    [
        (0.0, 1.0, "stats: alpha must be in (0, 1), got 0.0"),
        (1.0, 1.0, "stats: alpha must be in (0, 1), got 1.0"),
        (math.nan, 1.0, "stats: alpha must be in (0, 1), got nan"),
        (0.05, 0.0, "stats: tau2 must be a finite number > 0, got 0.0"),
        (0.05, -1.0, "stats: tau2 must be a finite number > 0, got -1.0"),
        (0.05, math.inf, "stats: tau2 must be a finite number > 0, got inf"),
    ],
)
def test_sequential_rejects_bad_configuration(alpha: float, tau2: float, message: str) -> None:
    with pytest.raises(UserInputError) as info:
        SequentialTest(alpha=alpha, tau2=tau2)
    assert str(info.value) == message


arm_steps = st.lists(
    st.tuples(
        st.integers(0, 500),
        st.floats(-5.0, 5.0),
        st.floats(0.0, 50.0),
        st.integers(0, 500),
        st.floats(-5.0, 5.0),
        st.floats(0.0, 50.0),
    ),
    min_size=1,
    max_size=15,
)


def accumulate(
    steps: list[tuple[int, float, float, int, float, float]],
) -> list[tuple[ArmStats, ArmStats]]:
    """Cumulative arms from per-peek increments (sizes grow, summaries move freely)."""
    n_a = n_b = 0
    out = []
    for dn_a, mean_a, var_a, dn_b, mean_b, var_b in steps:
        n_a += dn_a
        n_b += dn_b
        out.append((ArmStats(n_a, mean_a, var_a), ArmStats(n_b, mean_b, var_b)))
    return out


@settings(max_examples=150, deadline=None)
@given(arm_steps, st.sampled_from([0.01, 0.05, 0.2]), st.floats(1e-4, 10.0))
def test_sequential_invariants(
    steps: list[tuple[int, float, float, int, float, float]], alpha: float, tau2: float
) -> None:
    test = SequentialTest(alpha=alpha, tau2=tau2)
    previous_p = 1.0
    first_decision = "continue"
    for control, treatment in accumulate(steps):
        result = test.update(control, treatment)
        assert not math.isnan(result.log_lambda)  # Λ = e^logΛ ∈ [0, ∞]
        assert 0.0 <= result.p_value <= previous_p <= 1.0
        if first_decision == "continue":
            first_decision = result.decision
        assert result.decision == first_decision
        assert (result.decision != "continue") == (result.p_value <= alpha)
        previous_p = result.p_value


@settings(max_examples=150, deadline=None)
@given(arm_steps, st.floats(1e-4, 10.0))
def test_sequential_swapping_arms_flips_the_decision(
    steps: list[tuple[int, float, float, int, float, float]], tau2: float
) -> None:
    forward = SequentialTest(alpha=0.05, tau2=tau2)
    backward = SequentialTest(alpha=0.05, tau2=tau2)
    flipped = {"better": "worse", "worse": "better", "continue": "continue"}
    for a, b in accumulate(steps):
        one = forward.update(a, b)
        two = backward.update(b, a)
        assert two.log_lambda == one.log_lambda
        assert two.p_value == one.p_value
        assert two.difference == -one.difference
        assert two.decision == flipped[one.decision]


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(1e-6, 1e6), st.floats(1e-6, 1e6))
def test_log_lambda_matches_direct_formula(d: float, v: float, tau2: float) -> None:
    exponent = tau2 * d * d / (2 * v * (v + tau2))
    value = msprt_log_lambda(d, v, tau2)
    if exponent < 700:  # where the direct formula is representable
        assert value == pytest.approx(math.log(lambda_direct(d, v, tau2)), rel=1e-9, abs=1e-9)
    assert not math.isnan(value)


# --------------------------------------------------------------------------- z-test


def test_z_test_hand_value() -> None:
    # se = sqrt(25/100 + 75/100) = 1, z = 1, p = 2 (1 − Φ(1)) = erfc(1/√2)
    z, p = z_test(ArmStats(100, 0.0, 25.0), ArmStats(100, 1.0, 75.0))
    assert z == pytest.approx(1.0)
    assert p == pytest.approx(math.erfc(1.0 / math.sqrt(2.0)))
    z, p = z_test(ArmStats(100, 1.0, 75.0), ArmStats(100, 0.0, 25.0))
    assert z == pytest.approx(-1.0)


def test_z_test_edge_cases() -> None:
    assert z_test(ArmStats(0, 0.0, 0.0), ArmStats(10, 1.0, 1.0)) == (0.0, 1.0)
    assert z_test(ArmStats(10, 1.0, 0.0), ArmStats(10, 1.0, 0.0)) == (0.0, 1.0)
    assert z_test(ArmStats(10, 1.0, 0.0), ArmStats(10, 0.0, 0.0)) == (-math.inf, 0.0)
    z, p = z_test(ArmStats(10, 1.0, 2.0), ArmStats(10, 1.0, 2.0))
    assert (z, p) == (0.0, 1.0)


# --------------------------------------------------------------------------- guardrail


def test_guardrail_lower_is_better_absolute() -> None:
    control = ArmStats(100, 100.0, 400.0)
    treatment = ArmStats(100, 106.0, 500.0)  # se = sqrt(4 + 5) = 3, harm = +6 ms
    strict = guardrail_worse(
        control,
        treatment,
        margin=0.0,
        relative=False,
        higher_is_better=False,
        alpha=0.05,
        metric="latency_ms",
    )
    assert strict.worse
    assert strict.z == pytest.approx(2.0)
    assert strict.p_value == pytest.approx(sps.norm.sf(2.0))
    assert strict.delta_abs == pytest.approx(6.0)
    assert strict.delta_rel == pytest.approx(0.06)
    assert strict.reason == "latency_ms absolute delta +6 above +0 (p=0.023)"

    lenient = guardrail_worse(
        control,
        treatment,
        margin=3.0,
        relative=False,
        higher_is_better=False,
        alpha=0.05,
        metric="latency_ms",
    )
    assert not lenient.worse
    assert lenient.z == pytest.approx(1.0)
    assert lenient.reason == (
        "latency_ms absolute delta +6 above +3, not significant at alpha=0.05 (p=0.16)"
    )

    within = guardrail_worse(
        control,
        treatment,
        margin=10.0,
        relative=False,
        higher_is_better=False,
        alpha=0.05,
        metric="latency_ms",
    )
    assert not within.worse
    assert within.reason.startswith("latency_ms absolute delta +6 within +10 (p=")


def test_guardrail_higher_is_better_relative() -> None:
    control = ArmStats(400, 2.0, 4.0)
    treatment = ArmStats(400, 1.8, 4.0)  # relative delta −10 %
    # Var(x̄_t/x̄_c) ≈ 0.01/2² + 1.8² · 0.01/2⁴ (delta method)
    se = math.sqrt(0.01 / 4 + 1.8**2 * 0.01 / 16)
    result = guardrail_worse(
        control,
        treatment,
        margin=0.03,
        relative=True,
        higher_is_better=True,
        alpha=0.2,
        metric="ctr",
    )
    assert result.delta_rel == pytest.approx(-0.1)
    assert result.z == pytest.approx((0.1 - 0.03) / se)
    assert result.p_value == pytest.approx(sps.norm.sf((0.1 - 0.03) / se))
    assert result.worse
    assert result.reason == f"ctr relative delta -10.0% below -3.0% (p={result.p_value:.2g})"


def test_guardrail_improvement_is_never_worse() -> None:
    result = guardrail_worse(
        ArmStats(10_000, 0.05, 0.0475),
        ArmStats(10_000, 0.06, 0.0564),
        margin=0.0,
        relative=True,
        higher_is_better=True,
        alpha=0.05,
    )
    assert not result.worse
    assert result.p_value > 0.99


def test_guardrail_catches_a_candidate_that_always_fails() -> None:
    # error rate: control never errs, candidate always does; both variances are 0
    result = guardrail_worse(
        ArmStats(1_000, 0.0, 0.0),
        ArmStats(1_000, 1.0, 0.0),
        margin=0.01,
        relative=False,
        higher_is_better=False,
        alpha=0.01,
        metric="error_rate",
    )
    assert result.worse
    assert (result.z, result.p_value) == (math.inf, 0.0)


@pytest.mark.parametrize(
    ("control", "relative", "why"),
    [
        (ArmStats(1, 0.05, 0.0), False, "too few observations (control n=1, treatment n=100)"),
        (ArmStats(100, 0.0, 0.0), True, "control mean is 0"),
    ],
)
def test_guardrail_not_tested(control: ArmStats, relative: bool, why: str) -> None:
    result = guardrail_worse(
        control,
        ArmStats(100, 0.5, 0.25),
        margin=0.1,
        relative=relative,
        higher_is_better=False,
        alpha=0.05,
        metric="error_rate",
    )
    assert not result.worse
    assert result.p_value == 1.0
    assert math.isnan(result.z)
    assert why in result.reason
    assert result.reason.startswith("error_rate: not tested")


@pytest.mark.parametrize(
    ("margin", "alpha", "message"),
    [
        (-0.1, 0.05, "stats: guardrail[ctr].margin must be a finite number >= 0, got -0.1"),
        (math.nan, 0.05, "stats: guardrail[ctr].margin must be a finite number >= 0, got nan"),
        (0.1, 1.5, "stats: guardrail[ctr].alpha must be in (0, 1), got 1.5"),
    ],
)
def test_guardrail_rejects_bad_configuration(margin: float, alpha: float, message: str) -> None:
    arm = ArmStats(100, 0.05, 0.05)
    with pytest.raises(UserInputError) as info:
        guardrail_worse(
            arm,
            arm,
            margin=margin,
            relative=True,
            higher_is_better=True,
            alpha=alpha,
            metric="ctr",
        )
    assert str(info.value) == message


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 10_000),
    st.floats(-10, 10),
    st.floats(0.01, 10),
    st.integers(2, 10_000),
    st.floats(-10, 10),
    st.floats(0.01, 10),
    st.floats(0.0, 5.0),
)
def test_guardrail_direction_is_a_mirror(
    n_c: int, m_c: float, v_c: float, n_t: int, m_t: float, v_t: float, margin: float
) -> None:
    """Lower-is-better on x is the same test as higher-is-better on −x."""
    up = guardrail_worse(
        ArmStats(n_c, m_c, v_c),
        ArmStats(n_t, m_t, v_t),
        margin=margin,
        relative=False,
        higher_is_better=True,
        alpha=0.05,
    )
    down = guardrail_worse(
        ArmStats(n_c, -m_c, v_c),
        ArmStats(n_t, -m_t, v_t),
        margin=margin,
        relative=False,
        higher_is_better=False,
        alpha=0.05,
    )
    assert down.worse == up.worse
    assert down.z == pytest.approx(up.z)
    assert down.p_value == pytest.approx(up.p_value)
    wider = guardrail_worse(
        ArmStats(n_c, m_c, v_c),
        ArmStats(n_t, m_t, v_t),
        higher_is_better=True,
        margin=margin + 1.0,
        relative=False,
        alpha=0.05,
    )
    assert wider.p_value >= up.p_value  # a larger allowed harm is never harder to pass


# --------------------------------------------------------------------------- SRM


def test_srm_hand_value() -> None:
    # χ² = 2 · 100² / 5000 = 4, df = 1
    result = srm_check([5100, 4900], [0.5, 0.5])
    assert result.chi2 == pytest.approx(4.0)
    assert result.p_value == pytest.approx(sps.chi2.sf(4.0, 1))
    assert not result.mismatch  # p ≈ 0.0455 > 0.001
    assert srm_check([5100, 4900], [0.5, 0.5], alpha=0.05).mismatch
    assert result.expected == (5000.0, 5000.0)


def test_srm_agrees_with_scipy_and_normalises_weights() -> None:
    counts = np.array([9_220, 530, 250])
    result = srm_check(counts, [90, 6, 3])
    expected = np.array([90, 6, 3]) / 99 * counts.sum()
    reference = sps.chisquare(counts, expected)
    assert result.chi2 == pytest.approx(float(reference.statistic))
    assert result.p_value == pytest.approx(float(reference.pvalue))
    assert result.mismatch


def test_srm_no_traffic_is_not_a_mismatch() -> None:
    result = srm_check([0, 0], [0.9, 0.1])
    assert (result.mismatch, result.chi2, result.p_value) == (False, 0.0, 1.0)


@pytest.mark.parametrize(
    ("counts", "fractions", "alpha", "message"),
    [
        ([10], [1.0], 0.001, "stats: srm.observed_counts must be at least 2 arms, got [10]"),
        (
            [10, 20],
            [0.2, 0.3, 0.5],
            0.001,
            "stats: srm.expected_fractions must be one entry per arm (2), got [0.2, 0.3, 0.5]",
        ),
        (
            [10, -1],
            [0.5, 0.5],
            0.001,
            "stats: srm.observed_counts must be integers >= 0, got [10, -1]",
        ),
        (
            [10, 1.5],
            [0.5, 0.5],
            0.001,
            "stats: srm.observed_counts must be integers >= 0, got [10.0, 1.5]",
        ),
        (
            [10, 1],
            [1.0, 0.0],
            0.001,
            "stats: srm.expected_fractions must be finite numbers > 0, got [1.0, 0.0]",
        ),
        ([10, 1], [0.5, 0.5], 0.0, "stats: srm.alpha must be in (0, 1), got 0.0"),
    ],
)
def test_srm_rejects_bad_input(
    counts: Any, fractions: list[float], alpha: float, message: str
) -> None:
    with pytest.raises(UserInputError) as info:
        srm_check(counts, fractions, alpha=alpha)
    assert str(info.value) == message


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17: worked examples, score method, no CC
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_textbook_values(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, n)
    assert interval.low == pytest.approx(low, abs=5e-5)
    assert interval.high == pytest.approx(high, abs=5e-5)
    assert interval.estimate == pytest.approx(successes / n)
    assert interval.level == 0.95


def test_wilson_edges() -> None:
    empty = wilson_interval(0, 0)
    assert (empty.low, empty.high) == (0.0, 1.0)
    assert math.isnan(empty.estimate)
    full = wilson_interval(20, 20)
    assert full.high == 1.0
    assert full.low == pytest.approx(1.0 - 0.1611, abs=5e-5)


@pytest.mark.parametrize(
    ("successes", "n", "level", "message"),
    [
        (5, 3, 0.95, "stats: wilson.successes must be in [0, n=3], got 5"),
        (-1, 3, 0.95, "stats: wilson.successes must be in [0, n=3], got -1"),
        (1, 3, 95.0, "stats: level must be in (0, 1), got 95.0"),
    ],
)
def test_wilson_rejects_bad_input(successes: int, n: int, level: float, message: str) -> None:
    with pytest.raises(UserInputError) as info:
        wilson_interval(successes, n, level)
    assert str(info.value) == message


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate_and_nests(case: tuple[int, int]) -> None:
    successes, n = case
    narrow = wilson_interval(successes, n, 0.90)
    wide = wilson_interval(successes, n, 0.99)
    assert 0.0 <= wide.low <= narrow.low <= narrow.estimate <= narrow.high <= wide.high <= 1.0


def test_mean_interval_hand_value() -> None:
    interval = mean_interval(ArmStats(100, 10.0, 25.0), 0.95)  # se = 0.5
    assert interval.low == pytest.approx(10.0 - Z95 * 0.5)
    assert interval.high == pytest.approx(10.0 + Z95 * 0.5)
    assert interval.contains(10.0)
    assert interval.width == pytest.approx(2 * Z95 * 0.5)
    assert mean_interval(ArmStats(1, 3.0, 0.0)).low == -math.inf


def test_difference_interval_hand_value() -> None:
    interval = difference_interval(ArmStats(100, 0.0, 25.0), ArmStats(100, 1.0, 75.0), 0.95)
    assert interval.estimate == 1.0
    assert interval.low == pytest.approx(1.0 - Z95)
    assert interval.high == pytest.approx(1.0 + Z95)
    empty = difference_interval(ArmStats(0, 0.0, 0.0), ArmStats(100, 1.0, 75.0))
    assert (empty.low, empty.high) == (-math.inf, math.inf)


def test_relative_lift_interval_hand_value() -> None:
    control = ArmStats(400, 2.0, 4.0)
    treatment = ArmStats(400, 2.2, 4.84)
    # Var ≈ (4.84/400)/2² + 2.2² (4/400)/2⁴ = 0.003025 + 0.003025
    se = math.sqrt(0.00605)
    interval = relative_lift_interval(control, treatment, 0.95)
    assert interval.estimate == pytest.approx(0.1)
    assert interval.low == pytest.approx(0.1 - Z95 * se)
    assert interval.high == pytest.approx(0.1 + Z95 * se)


def test_relative_lift_interval_undefined_control() -> None:
    interval = relative_lift_interval(ArmStats(100, 0.0, 0.0), ArmStats(100, 0.1, 0.09))
    assert math.isnan(interval.estimate)
    assert (interval.low, interval.high) == (-math.inf, math.inf)


def test_intervals_of_identical_arms_are_centred_on_zero() -> None:
    arm = ArmStats(1_000, 0.05, 0.0475)
    for interval in (difference_interval(arm, arm), relative_lift_interval(arm, arm)):
        assert interval.estimate == 0.0
        assert interval.low == pytest.approx(-interval.high)
        assert interval.contains(0.0)


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, math.nan])
def test_intervals_reject_bad_level(level: float) -> None:
    arm = ArmStats(10, 1.0, 1.0)
    calls: list[Callable[[], Interval]] = [
        lambda: mean_interval(arm, level),
        lambda: difference_interval(arm, arm, level),
        lambda: relative_lift_interval(arm, arm, level),
    ]
    for call in calls:
        with pytest.raises(UserInputError, match=r"^stats: level must be in \(0, 1\), got"):
            call()
