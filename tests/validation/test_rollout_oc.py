"""Operating characteristics of the rollout analysis, through the whole simulator.

DESIGN section 6, step 3: A/A replications peeking at every analysis interval, with every
guardrail the scenario library uses switched on (``library_guardrails``: latency p99
absolute and relative to the baseline, timeout and error rates, relative CTR, stability,
ECE), must keep the false rollback and false promotion rates at most alpha plus two Monte
Carlo standard errors, while a naive fixed-horizon z-test peeked at the same intervals, and
the same guardrails read on each window's point estimate, are wrong far more often; and a
candidate whose true CTR lift equals the configured minimum detectable effect must be found
with power at least 0.8 with all those guardrails on.

Alpha is 0.05 for the gate and for the guardrail budget (``analysis.guardrail_alpha``).
The A/A runs a 5 % canary, where windows are small and point estimates noisy (before
guardrails were judged on evidence, a fifth of these replications rolled back), and the
full run also a 50 % canary, where the gate has the most data.

The gate is clustered by user (the randomisation unit): requests of one user are correlated,
and an i.i.d. treatment of requests made the A/A false-positive rate about three times alpha
before the delta-method variance was used.

The default run is reduced (fewer replications, same scale per replication); the full one
is marked ``slow``.  ``bench/aa_bench.py`` prints the same rates with their Monte Carlo
standard errors, on two cores.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import pytest

from lab.operating import (
    library_guardrails,
    operating_characteristics,
    reference_scenario,
    replicate,
    true_ctr_lift,
    with_mde_at_true_lift,
)
from lab.pipeline import Prepared, prepare

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
ALPHA = 0.05


def _bound(alpha: float, replications: int) -> float:
    return alpha + 2.0 * math.sqrt(alpha * (1.0 - alpha) / replications)


@cache
def _prepared(kind: str, weight: int = 50) -> Prepared:
    scenario = reference_scenario(SCENARIOS, lift=kind == "lift", weight=weight, alpha=ALPHA)
    return prepare(scenario)


def test_every_guardrail_metric_of_the_library_is_switched_on() -> None:
    guards = library_guardrails(SCENARIOS)
    metrics = {g.metric for g in guards}
    assert {"latency_ms.p99", "timeout_rate", "error_rate", "ctr", "stability", "ece"} <= metrics
    relative = {g.metric for g in guards if g.max_relative_to_baseline is not None}
    assert "latency_ms.p99" in relative
    assert any(g.min_relative_to_baseline == -0.05 for g in guards if g.metric == "ctr")
    assert reference_scenario(SCENARIOS).rollout.guardrails == guards


def _aa(replications: int, weight: int) -> None:
    outcomes = replicate(_prepared("aa", weight), range(replications))
    oc = operating_characteristics(outcomes, "same")
    bound = _bound(ALPHA, replications)
    assert oc["false_rollback"]["rate"] <= bound, oc["false_rollback"]
    assert oc["false_promotion"]["rate"] <= bound, oc["false_promotion"]
    assert oc["false_better"]["rate"] <= bound, oc["false_better"]
    assert oc["gate_worse"]["rate"] <= bound, oc["gate_worse"]
    # The naive test, peeked at the same intervals, is wrong far more often than alpha ...
    assert oc["naive_peeking_any_difference"]["ci95"][0] > ALPHA, oc["naive_peeking_any_difference"]
    if weight <= 10:
        # ... and so are the guardrails read on point estimates, where windows are small.
        assert oc["naive_guardrails_rolled_back"]["ci95"][0] > ALPHA, oc[
            "naive_guardrails_rolled_back"
        ]


def _power(replications: int, minimum: float) -> None:
    prepared = _prepared("lift")
    assert 0.05 < true_ctr_lift(prepared) < 0.15
    # The minimum detectable effect configured to be exactly the true lift.
    tuned = with_mde_at_true_lift(prepared)
    oc = operating_characteristics(replicate(tuned, range(replications)), "better")
    assert oc["power"]["rate"] >= minimum, oc["power"]
    assert oc["false_rollback"]["count"] == 0


def test_aa_false_rollbacks_and_promotions_with_every_guardrail_reduced() -> None:
    _aa(40, weight=5)


@pytest.mark.slow
@pytest.mark.parametrize("weight", [5, 50])
def test_aa_false_rollbacks_and_promotions_with_every_guardrail_full(weight: int) -> None:
    _aa(200, weight)


def test_power_at_the_minimum_detectable_effect_reduced() -> None:
    _power(16, 0.8)


@pytest.mark.slow
def test_power_at_the_minimum_detectable_effect_full() -> None:
    _power(200, 0.8)
