"""Operating characteristics of the gated canary, through the whole simulator.

DESIGN section 6, step 3: A/A replications peeking at every analysis interval must keep the
false "candidate better" and false rollback rates at most alpha plus two Monte Carlo standard
errors, while a naive fixed-horizon z-test peeked at the same intervals exceeds alpha; and a
candidate whose true CTR lift equals the configured minimum detectable effect must be found
with power at least 0.8.

The gate is clustered by user (the randomisation unit): requests of one user are correlated,
and an i.i.d. treatment of requests made the A/A false-positive rate about three times alpha
before the delta-method variance was used.

The default run is reduced (fewer replications, same scale per replication); the full one
is marked ``slow``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from lab.operating import operating_characteristics, replicate
from lab.pipeline import Prepared, prepare
from lab.scenario import load_scenario
from sim.users import list_click_probability

ROOT = Path(__file__).resolve().parents[2]
ALPHA = 0.05
SCALE = [
    "traffic.users=5000",
    "traffic.items=1000",
    "traffic.arrivals.mean_rate_per_s=40",
    "users.click_offset=-1.0",
    "rollout.guardrails=[]",
    f"rollout.gate.alpha={ALPHA}",
]


def _bound(alpha: float, replications: int) -> float:
    return alpha + 2.0 * math.sqrt(alpha * (1.0 - alpha) / replications)


@cache
def _prepared(kind: str) -> Prepared:
    if kind == "aa":
        extra = ["traffic.duration=40m"]
    else:
        # More users than the A/A: with the same requests, power grows with the number of
        # independent units, not with requests per user.
        extra = ["traffic.duration=80m", "traffic.users=20000", "models.candidate.click_lift=0.1"]
    return prepare(load_scenario(ROOT / "scenarios" / "aa_test.toml", [*SCALE, *extra]))


def _true_lift(prepared: Prepared) -> float:
    """Expected relative CTR lift of the candidate over the baseline, weighted by activity."""
    world = prepared.world
    users = np.arange(world.n_users)
    weights = world.activity
    decay = prepared.scenario.users.position_decay
    base, cand = prepared.versions[0], prepared.versions[1]
    base.ensure(users)
    cand.ensure(users)
    p_base = list_click_probability(base.relevance, decay)
    p_cand = list_click_probability(cand.relevance, decay)
    return float(np.average(p_cand, weights=weights) / np.average(p_base, weights=weights) - 1.0)


def _aa(replications: int) -> None:
    outcomes = replicate(_prepared("aa"), range(replications))
    oc = operating_characteristics(outcomes, "same")
    bound = _bound(ALPHA, replications)
    assert oc["false_better"]["rate"] <= bound, oc["false_better"]
    assert oc["false_rollback"]["rate"] <= bound, oc["false_rollback"]
    assert oc["gate_worse"]["rate"] <= bound, oc["gate_worse"]
    # The naive test, peeked at the same intervals, is wrong far more often than alpha.
    assert oc["naive_peeking_any_difference"]["ci95"][0] > ALPHA, oc["naive_peeking_any_difference"]


def _power(replications: int, minimum: float) -> None:
    prepared = _prepared("ab")
    lift = _true_lift(prepared)
    assert 0.05 < lift < 0.15
    scenario = prepared.scenario
    gate = scenario.rollout.gate
    assert gate is not None
    # Configure the minimum detectable effect to be exactly the true lift.
    rollout = scenario.rollout.model_copy(
        update={"gate": gate.model_copy(update={"mde_relative": lift})}
    )
    tuned = replace(prepared, scenario=scenario.model_copy(update={"rollout": rollout}))
    oc = operating_characteristics(replicate(tuned, range(replications)), "better")
    assert oc["power"]["rate"] >= minimum, oc["power"]
    assert oc["false_rollback"]["count"] == 0


def test_aa_false_positive_rates_reduced() -> None:
    _aa(40)


@pytest.mark.slow
def test_aa_false_positive_rates_full() -> None:
    _aa(200)


def test_power_at_the_minimum_detectable_effect_reduced() -> None:
    _power(16, 0.8)


@pytest.mark.slow
def test_power_at_the_minimum_detectable_effect_full() -> None:
    _power(200, 0.8)
