"""Off-policy estimators: hand examples and recovery of a known value on synthetic logs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from replay.errors import UserInputError
from sim.metrics import ips_estimate, replay_estimate, snips_estimate


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
