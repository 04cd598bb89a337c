"""Guardrails judged on evidence (sim/policies/guardrails.py), on windows built by hand.

``Window`` stands in for the monitor's last settled window: per version, its requests'
latencies, per-unit rate events, list-quality values and predictions.  Each test states a
window where the point estimate and the evidence disagree, or agree, and the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from sim.policies.guardrails import GuardrailBudget, GuardrailJudge, bound_count
from sim.policies.settings import Guardrail, Rollout
from sim.stats import ArmStats, clustered_ratio

BASE, CAND = 0, 1


@dataclass
class Window:
    """Per version: latencies (ms), per-unit (requests, events) of each rate, list values."""

    latencies: dict[int, np.ndarray] = field(default_factory=dict)
    model_latencies: dict[int, np.ndarray] = field(default_factory=dict)
    shadow_latencies: dict[int, np.ndarray] = field(default_factory=dict)
    rates: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    means: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)
    predictions: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def window_latencies(
        self, version: int, *, shadow: bool = False, model: bool = False
    ) -> np.ndarray:
        if shadow:
            return self.shadow_latencies[version]
        return (self.model_latencies if model else self.latencies)[version]

    def clustered_window_rate(self, version: int, metric: str, *, shadow: bool = False) -> ArmStats:
        n_u, x_u = self.rates[(version, metric)]
        return clustered_ratio(n_u, x_u)

    def clustered_window_mean(self, version: int, name: str) -> ArmStats:
        values = self.means[(version, name)]
        return clustered_ratio(np.ones(values.size), values)

    def window_predictions(self, version: int) -> tuple[np.ndarray, np.ndarray]:
        return self.predictions[version]


def _budget(per_bound: float = 0.01) -> GuardrailBudget:
    return GuardrailBudget(0.05, 10, 2, 1, per_bound)


def _judge(
    window: Window, guard: Guardrail, *, shadow: bool = False
) -> tuple[str, dict[str, float]]:
    numbers: dict[str, float] = {}
    reason = GuardrailJudge(window, _budget()).breach(
        guard, baseline=BASE, candidate=CAND, shadow=shadow, numbers=numbers
    )
    return reason, numbers


def _lognormal(n: int, median_ms: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(math.log(median_ms), 0.7, n)


def test_a_p99_above_max_on_a_few_requests_is_not_evidence() -> None:
    # 150 requests: their p99 is the 149th, far into the tail; the lower bound on the true
    # p99 is the 145th-ish, which sits well under the estimate.
    latencies = np.concatenate([np.full(146, 50.0), [110.0, 118.0, 125.0, 400.0]])
    reason, numbers = _judge(
        Window(latencies={CAND: latencies}), Guardrail(metric="latency_ms.p99", max=120)
    )
    assert np.percentile(latencies, 99, method="inverted_cdf") > 120
    assert reason == ""
    assert numbers["guardrail.latency_ms.p99.lower"] < 120


def test_a_slow_candidate_breaches_its_p99_max_with_the_bound_in_the_reason() -> None:
    latencies = _lognormal(2000, 60.0, seed=1)  # p99 around 300 ms
    reason, numbers = _judge(
        Window(latencies={CAND: latencies}), Guardrail(metric="latency_ms.p99", max=120)
    )
    lower = numbers["guardrail.latency_ms.p99.lower"]
    estimate = np.percentile(latencies, 99, method="inverted_cdf")
    assert 120 < lower < estimate
    assert reason == (
        f"latency_ms.p99 {estimate:.4g} > max 120 "
        f"(lower confidence bound {lower:.4g} at alpha 0.01)"
    )


def test_model_latency_is_judged_on_the_requests_the_model_answered() -> None:
    # Cache hits (1 ms) hide a slow model from the end-to-end p99, not from the model's own.
    hits = np.full(3000, 1.0)
    model = _lognormal(300, 200.0, seed=8)
    window = Window(latencies={CAND: np.concatenate([hits, model])}, model_latencies={CAND: model})
    assert _judge(window, Guardrail(metric="latency_ms.p99", max=1000))[0] == ""
    reason, _ = _judge(window, Guardrail(metric="model_latency_ms.p99", max=300))
    assert reason.startswith("model_latency_ms.p99 ")


def test_relative_latency_compares_the_candidates_lower_bound_with_the_baselines_upper() -> None:
    same = Window(latencies={BASE: _lognormal(800, 20.0, 2), CAND: _lognormal(800, 20.0, 3)})
    guard = Guardrail(metric="latency_ms.p99", max_relative_to_baseline=0.5)
    assert _judge(same, guard)[0] == ""
    slower = Window(latencies={BASE: _lognormal(3000, 20.0, 2), CAND: _lognormal(3000, 60.0, 3)})
    reason, numbers = _judge(slower, guard)
    assert reason.startswith("latency_ms.p99 vs baseline +")
    assert "> max +50.0% (lower confidence bound +" in reason
    assert numbers["guardrail.latency_ms.p99.relative.lower"] > 0.5


def _units(rates: list[float], requests: int = 10) -> tuple[np.ndarray, np.ndarray]:
    n_u = np.full(len(rates), requests, np.float64)
    return n_u, np.round(np.asarray(rates) * requests)


def test_rates_need_evidence_clustered_by_unit() -> None:
    guard = Guardrail(metric="timeout_rate", max=0.01)
    # 2 % of requests time out, all from one user of 50: nothing says the rate is above 1 %.
    one_user = Window(rates={(CAND, "timeout_rate"): _units([0.1] + [0.0] * 49)})
    assert _judge(one_user, guard)[0] == ""
    # 20 % of every user's requests time out: the rate is above 1 % beyond doubt.
    everyone = Window(rates={(CAND, "timeout_rate"): _units([0.2] * 40 + [0.3] * 10)})
    reason, _ = _judge(everyone, guard)
    assert reason.startswith("timeout_rate 0.22 > max 0.01 (lower confidence bound 0.2")


def test_relative_ctr_is_a_one_sided_test_of_the_relative_change() -> None:
    guard = Guardrail(metric="ctr", min_relative_to_baseline=-0.05)
    rng = np.random.default_rng(4)
    base = _units(list(rng.uniform(0.2, 0.4, 3000)), requests=20)
    worse = _units(list(rng.uniform(0.15, 0.3, 3000)), requests=20)
    reason, numbers = _judge(Window(rates={(BASE, "ctr"): base, (CAND, "ctr"): worse}), guard)
    assert reason.startswith("ctr vs baseline -")
    assert "< min -5.0% (upper confidence bound" in reason
    assert numbers["guardrail.ctr.relative.upper"] < -0.05
    same = Window(rates={(BASE, "ctr"): base, (CAND, "ctr"): base})
    assert _judge(same, guard)[0] == ""


def test_list_quality_means_are_bounded() -> None:
    guard = Guardrail(metric="stability", min=0.3)
    rng = np.random.default_rng(5)
    unstable = Window(means={(CAND, "stability"): rng.uniform(0.0, 0.3, 400)})
    assert _judge(unstable, guard)[0].startswith("stability 0.1")
    near = Window(means={(CAND, "stability"): np.array([0.2, 0.35, 0.31, 0.2])})
    assert _judge(near, guard)[0] == ""  # mean 0.265 < 0.3, but four users prove nothing


def test_ece_above_max_from_bin_noise_is_not_a_breach() -> None:
    rng = np.random.default_rng(6)
    p = rng.uniform(0.05, 0.45, 300)
    calibrated = Window(predictions={CAND: (p, (rng.uniform(size=p.size) < p).astype(float))})
    guard = Guardrail(metric="ece", max=0.03)
    reason, numbers = _judge(calibrated, guard)
    assert reason == "" and numbers["guardrail.ece.lower"] == 0.0
    p = rng.uniform(0.05, 0.45, 5000)
    off = Window(predictions={CAND: (p, (rng.uniform(size=p.size) < p + 0.2).astype(float))})
    assert _judge(off, guard)[0].startswith("ece 0.2")


def test_shadow_copies_are_judged_on_what_they_measure_only() -> None:
    window = Window(shadow_latencies={CAND: _lognormal(2000, 80.0, 7)})
    latency = Guardrail(metric="latency_ms.p99", max=120)
    assert _judge(window, latency, shadow=True)[0].startswith("shadow latency_ms.p99 ")
    # Nobody saw a mirrored list: CTR is not judged (the window has no CTR at all).
    ctr = Guardrail(metric="ctr", min_relative_to_baseline=-0.05)
    assert _judge(window, ctr, shadow=True) == ("", {})


@pytest.mark.parametrize(
    ("guardrails", "count"),
    [
        ([], 0),
        ([{"metric": "latency_ms.p99", "max": 120}], 1),
        ([{"metric": "ctr", "min": 0.1, "max": 0.9, "min_relative_to_baseline": -0.1}], 3),
        ([{"metric": "ece", "max": 0.05}, {"metric": "stability", "min": 0.3}], 2),
    ],
)
def test_every_one_sided_bound_counts_once(guardrails: list[dict[str, object]], count: int) -> None:
    assert bound_count([Guardrail.model_validate(g) for g in guardrails]) == count


def test_the_budget_spreads_alpha_over_bounds_and_planned_analyses() -> None:
    config = Rollout.model_validate(
        {
            "analysis": {"interval": 300, "failure_limit": 2, "guardrail_alpha": 0.05},
            "guardrails": [
                {"metric": "latency_ms.p99", "max": 120, "max_relative_to_baseline": 0.5},
                {"metric": "ctr", "min_relative_to_baseline": -0.05},
            ],
        }
    )
    budget = GuardrailBudget.plan(config, horizon_s=7200.0)
    assert budget is not None
    assert (budget.looks, budget.failure_limit, budget.bounds) == (24, 2, 3)
    assert budget.per_bound == pytest.approx(math.sqrt(0.05 / 276) / 3)
    assert GuardrailBudget.plan(config.model_copy(update={"guardrails": []}), 7200.0) is None
