"""Off-policy estimators: hand examples and recovery of a known value on synthetic logs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from replay.errors import UserInputError
from sim.metrics import (
    ips_estimate,
    replay_estimate,
    slate_estimates,
    snips_estimate,
    wilson_interval,
)


def test_replay_by_hand() -> None:
    # target agrees with the log on rows 0, 2, 3 -> rewards 1, 1, 0 -> 2/3
    est = replay_estimate([0, 1, 2, 1], [1, 0, 1, 0], [0, 2, 2, 1])
    assert est.estimator == "replay"
    assert est.value == pytest.approx(2 / 3)
    assert est.n == 3
    # sd of [1, 1, 0] (ddof 1) = 0.57735, se = 0.57735 / √3 = 1/3
    assert est.std_error == pytest.approx(1 / 3)


def test_ips_and_snips_by_hand() -> None:
    # μ = [0.5, 0.5, 0.25], π = [1, 0, 0.5] -> w = [2, 0, 2]; r = [1, 0, 1]
    # IPS = (2 + 0 + 2) / 3 = 4/3;  SNIPS = 4 / 4 = 1
    # SNIPS se = sqrt(Σ w² (r − 1)²) / Σ w = 0;  Kish n = 4² / 8 = 2
    r, mu, pi = [1, 0, 1], [0.5, 0.5, 0.25], [1.0, 0.0, 0.5]
    ips = ips_estimate(r, mu, pi)
    assert ips.value == pytest.approx(4 / 3)
    # w r = [2, 0, 2]: sd (ddof 1) = 1.1547, se = 1.1547 / √3 = 2/3
    assert ips.std_error == pytest.approx(2 / 3)
    assert ips.effective_n == pytest.approx(2.0)
    snips = snips_estimate(r, mu, pi)
    assert snips.value == pytest.approx(1.0)
    assert snips.std_error == 0.0


def test_estimators_recover_the_target_policy_value() -> None:
    # Uniform logging over 5 actions with known click rates; the target always plays
    # action 3 (true value 0.30).  Every estimator's 99% interval must contain it.
    rng = np.random.default_rng(2024)
    rates = np.array([0.05, 0.10, 0.15, 0.30, 0.20])
    n = 100_000
    logged = rng.integers(0, 5, n)
    reward = (rng.random(n) < rates[logged]).astype(np.uint8)
    target = np.full(n, 3)
    mu = np.full(n, 0.2)
    pi = (logged == 3).astype(np.float64)
    for est in (
        replay_estimate(logged, reward, target, confidence=0.99),
        ips_estimate(reward, mu, pi, confidence=0.99),
        snips_estimate(reward, mu, pi, confidence=0.99),
    ):
        assert est.ci_low < 0.30 < est.ci_high, est


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda: replay_estimate([0, 1], [1, 1], [2, 2]),
            "replay_estimate: target_action must be equal to the logged action in at least one row",
        ),
        (
            lambda: replay_estimate([0.5, 1], [1, 1], [0, 1]),
            "replay_estimate: logged_action must be a 1-D integer array",
        ),
        (
            lambda: ips_estimate([1, 0], [0.0, 0.5], [1, 1]),
            "ips_estimate: logging_propensity must be in (0, 1] everywhere, got 0.0",
        ),
        (
            lambda: ips_estimate([1, 0], [0.5, 0.5], [1.0]),
            "ips_estimate: target_propensity.shape[0] must be equal to reward.shape[0] = 2, got 1",
        ),
        (
            lambda: snips_estimate([1, 0], [0.5, 0.5], [0.0, 0.0]),
            "snips_estimate: target_propensity must be positive on at least one logged action",
        ),
    ],
)
def test_invalid_inputs_raise_user_input_error(call: Any, expected: str) -> None:
    with pytest.raises(UserInputError) as info:
        call()
    assert str(info.value).startswith(expected)


# --- intervals that never collapse -----------------------------------------------------------


def test_no_click_among_matched_rows_keeps_an_interval() -> None:
    # Reported: replay, IPS and SNIPS said ci95 = [0.0, 0.0] from 4-80 effective rows.
    logged = np.array([0, 1, 0, 0, 2, 0])
    reward = np.zeros(6)
    est = replay_estimate(logged, reward, np.zeros(6, np.int64))
    low, high = wilson_interval(0, 4)
    assert est.interval == "wilson" and est.value == 0.0
    assert (est.ci_low, est.ci_high) == pytest.approx((float(low), float(high)))
    assert est.ci_high > 0.3  # 0 clicks in 4 rows says little
    mu = np.full(6, 0.25)
    pi = (logged == 0).astype(np.float64)  # w = 4 on 4 rows
    ips = ips_estimate(reward, mu, pi)
    snips = snips_estimate(reward, mu, pi)
    # SNIPS: Wilson of 0 / Kish n = 16² / 64 = 4; IPS = mean weight (16/6) × that.
    assert snips.interval == "wilson" and snips.effective_n == pytest.approx(4.0)
    assert (snips.ci_low, snips.ci_high) == pytest.approx((0.0, float(high)))
    assert ips.interval == "wilson" and ips.value == 0.0
    assert ips.ci_high == pytest.approx(16 / 6 * float(high))


def test_intervals_with_clicks_stay_normal() -> None:
    r = np.array([1, 0, 1, 0, 0, 1], float)
    mu, pi = np.full(6, 0.5), np.array([1.0, 1.0, 0.5, 0.5, 1.0, 0.0])
    assert ips_estimate(r, mu, pi).interval == "normal"
    assert snips_estimate(r, mu, pi).interval == "normal"
    # Replay with 0/1 rewards is a binomial proportion: Wilson, even with clicks.
    assert replay_estimate([0, 1, 0], [1, 0, 0], [0, 1, 0]).interval == "wilson"
    # Rewards that are not 0/1 keep the normal interval.
    assert replay_estimate([0, 0, 0], [0.5, 2.0, 1.0], [0, 0, 0]).interval == "normal"


# --- slates ----------------------------------------------------------------------------------


def _direct_slate(
    r: np.ndarray, mu: np.ndarray, pi: np.ndarray, k: np.ndarray, slate: np.ndarray
) -> tuple[list[float], list[float], float]:
    """IPS and SNIPS per position and IPS per slate, by loops (the definitions)."""
    ips, snips = [], []
    for p in sorted(set(k.tolist())):
        rows = [i for i in range(r.size) if k[i] == p]
        w = [pi[i] / mu[i] for i in rows]
        ips.append(sum(w[j] * r[i] for j, i in enumerate(rows)) / len(rows))
        snips.append(sum(w[j] * r[i] for j, i in enumerate(rows)) / sum(w))
    totals: dict[int, float] = {}
    for i in range(r.size):
        totals[int(slate[i])] = totals.get(int(slate[i]), 0.0) + pi[i] / mu[i] * r[i]
    return ips, snips, sum(totals.values()) / len(totals)


def test_slate_estimates_equal_a_direct_computation() -> None:
    rng = np.random.default_rng(6)
    n_slates, positions = 400, 3
    slate = np.repeat(np.arange(n_slates), positions)
    k = np.tile(np.arange(positions), n_slates)
    r = (rng.random(slate.size) < 0.2).astype(float)
    mu = rng.uniform(0.05, 0.5, slate.size)
    pi = (rng.random(slate.size) < 0.3).astype(float)
    got = slate_estimates(r, mu, pi, k, slate)
    ips, snips, total = _direct_slate(r, mu, pi, k, slate)
    assert got.positions == (0, 1, 2)
    assert [e.value for e in got.ips if e] == pytest.approx(ips, rel=1e-12)
    assert [e.value for e in got.snips if e] == pytest.approx(snips, rel=1e-12)
    assert got.ips_total.value == pytest.approx(total, rel=1e-12)
    # Every slate has every position: the per-slate IPS is the sum of the positions'.
    assert got.ips_total.value == pytest.approx(sum(ips), rel=1e-12)
    assert got.snips_total is not None
    assert got.snips_total.value == pytest.approx(sum(snips), rel=1e-12)
    assert got.ips_total.n == n_slates


def test_slate_estimates_recover_a_position_based_click_model() -> None:
    # Open-Bandit-like log: 10 items, 3 positions, a uniform random logging policy (each
    # position's item uniform: μ = 1/10), clicks = examination(k) × attraction(item).
    # The target ranks items 7, 3, 1: its true value is Σ_k exam_k · attr(target_k).
    rng = np.random.default_rng(12)
    n_slates, positions, items = 60_000, 3, 10
    exam = np.array([1.0, 0.6, 0.3])
    attraction = np.linspace(0.05, 0.5, items)
    target = np.array([7, 3, 1])
    slate = np.repeat(np.arange(n_slates), positions)
    k = np.tile(np.arange(positions), n_slates)
    shown = rng.integers(0, items, slate.size)
    r = (rng.random(slate.size) < exam[k] * attraction[shown]).astype(float)
    mu = np.full(slate.size, 1 / items)
    pi = (shown == target[k]).astype(float)
    got = slate_estimates(r, mu, pi, k, slate, confidence=0.99)
    truth = float((exam * attraction[target]).sum())
    assert got.ips_total.ci_low < truth < got.ips_total.ci_high
    assert got.snips_total is not None
    assert got.snips_total.ci_low < truth < got.snips_total.ci_high
    for p, est in enumerate(got.snips):
        assert est is not None and est.ci_low < exam[p] * attraction[target[p]] < est.ci_high


def test_slate_totals_without_clicks_keep_an_interval() -> None:
    slate = np.repeat(np.arange(20), 2)
    k = np.tile(np.arange(2), 20)
    pi = np.tile([1.0, 0.0], 20)
    pi[1] = 1.0
    got = slate_estimates(np.zeros(40), np.full(40, 0.5), pi, k, slate)
    assert got.ips_total.value == 0.0 and got.ips_total.ci_high > 0
    assert got.ips_total.interval == "wilson"
