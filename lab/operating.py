"""Operating characteristics of a rollout policy: how often it is wrong, and how fast.

A scenario is replicated many times on the same trained versions (``prepare`` once,
``simulate_prepared`` per replication: fresh traffic, service times and clicks each time).
Each replication yields the policy's outcome and timings, the gate's final decision, the
users who saw the candidate, and — for comparison — whether a naive fixed-horizon z-test
peeked at every analysis would have declared a difference at some peek.

Guardrails get the same comparison: whether guardrails read on each window's point estimate
(an unguarded dashboard threshold) would have reached ``failure_limit``, beside what the
evidence-based guardrails did (``sim.policies.guardrails``).  :func:`library_guardrails`
collects every guardrail a folder of scenarios uses, to switch them all on in an A/A.

Given what is true about the candidate (``same``, ``better`` or ``worse`` than the baseline),
the replications become rates with Wilson 95 % intervals: false rollback and false
"better" rates for an A/A, power for a true lift, missed-regression rate for a bad
candidate, and time to decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lab.pipeline import Prepared, simulate_prepared
from lab.scenario import Scenario, load_scenario
from sim.monitor import WindowStats
from sim.policies.settings import Guardrail
from sim.slo import slo_of_metric
from sim.stats import ArmStats, wilson_interval, z_test
from sim.users import list_click_probability

__all__ = [
    "ReplicationOutcome",
    "library_guardrails",
    "operating_characteristics",
    "reference_scenario",
    "replicate",
    "replication_outcome",
    "true_ctr_lift",
    "with_mde_at_true_lift",
]

Truth = Literal["same", "better", "worse"]


@dataclass(frozen=True, slots=True)
class ReplicationOutcome:
    replication: int
    outcome: str
    gate_decision: str  # better | worse | continue | none (no gate or never evaluated)
    first_failure_s: float | None
    rollback_s: float | None
    promote_s: float | None
    max_weight: float
    exposed_users: int  # distinct users who were assigned the candidate at least once
    requests: int
    naive_peeks: int
    naive_false_alarm: bool  # the fixed-horizon z-test hit p < alpha at some peek
    failures: int  # failed analyses
    # Guardrails read on each window's point estimate would have reached failure_limit.
    naive_guardrail_rollback: bool


def replication_outcome(prepared: Prepared, replication: int) -> ReplicationOutcome:
    """Run one replication and boil it down to what operating characteristics need."""
    result = simulate_prepared(prepared, replication)
    controller = result.controller
    records = result.outcome.records
    candidate_users = np.unique(result.stream.user[records.version == 1])
    alpha = controller.config.gate.alpha if controller.config.gate else 0.05
    peeks, alarm = _naive_peeking(result.monitor.windows, alpha)
    gate = result.analyst.gate_test
    analysis = controller.config.analysis
    naive_failures = _point_estimate_failures(
        result.monitor.windows[:-1],  # the last window is the run's tail, not an analysis
        controller.config.guardrails,
        min_requests=analysis.min_requests if analysis else 0,
    )
    return ReplicationOutcome(
        replication=replication,
        outcome=controller.outcome,
        gate_decision=gate.decision if gate is not None and gate.n_updates else "none",
        first_failure_s=controller.first_failure_s,
        rollback_s=controller.rollback_s,
        promote_s=controller.promote_s,
        max_weight=controller.max_weight,
        exposed_users=int(candidate_users.size),
        requests=len(result.stream),
        naive_peeks=peeks,
        naive_false_alarm=alarm,
        failures=controller.failures,
        naive_guardrail_rollback=analysis is not None and naive_failures >= analysis.failure_limit,
    )


def _naive_peeking(windows: list[list[Any]], alpha: float) -> tuple[int, bool]:
    """Cumulative two-sample z-test on CTR at every analysis window with both arms present."""
    n = [0, 0]
    clicks = [0, 0]
    peeks = 0
    for window in windows:
        for arm in (0, 1):
            n[arm] += window[arm].requests
            clicks[arm] += window[arm].clicks
        if min(n) < 2:
            continue
        peeks += 1
        control = ArmStats.from_sums(n[0], clicks[0], clicks[0])
        treatment = ArmStats.from_sums(n[1], clicks[1], clicks[1])
        _, p_value = z_test(control, treatment)
        if p_value < alpha:
            return peeks, True
    return peeks, False


def _point_estimate_failures(
    windows: list[list[WindowStats]], guardrails: Sequence[Guardrail], *, min_requests: int
) -> int:
    """Windows in which some guardrail's point estimate is beyond its bound.

    The baseline is version 0 and the candidate version 1; windows where the candidate had
    fewer than ``min_requests`` requests are skipped, as analyses skip them.
    """
    failed = 0
    for window in windows:
        base, cand = window[0], window[1]
        if cand.requests == 0 or cand.requests < min_requests:
            continue
        failed += any(_point_breach(g, base, cand) for g in guardrails)
    return failed


def _point_breach(guard: Guardrail, base: WindowStats, cand: WindowStats) -> bool:
    value = cand.metric(guard.metric)
    if not math.isfinite(value):
        return False
    if (guard.max is not None and value > guard.max) or (
        guard.min is not None and value < guard.min
    ):
        return True
    reference = base.metric(guard.metric)
    if not (math.isfinite(reference) and reference > 0):
        return False
    change = value / reference - 1.0
    top, bottom = guard.max_relative_to_baseline, guard.min_relative_to_baseline
    return (top is not None and change > top) or (bottom is not None and change < bottom)


def _library(folder: Path) -> list[Scenario]:
    """The scenarios in ``folder``, in file order."""
    return [load_scenario(path) for path in sorted(folder.glob("*.toml"))]


def library_guardrails(folder: Path) -> list[Guardrail]:
    """Every guardrail bound the scenarios in ``folder`` use (:func:`_tightest_guardrails`)."""
    return _tightest_guardrails(_library(folder))


def _tightest_guardrails(library: Sequence[Scenario]) -> list[Guardrail]:
    """Every guardrail bound the ``library`` scenarios use, the tightest one per metric.

    One guardrail per metric and kind of bound (``min``, ``max`` and the two relative
    ones): the largest minimum and the smallest maximum any scenario sets, which are the
    ones an unchanged candidate is likeliest to breach by chance.
    """
    tightest: dict[tuple[str, str], float] = {}
    pick = {"min": max, "max": min, "min_relative_to_baseline": max}
    for scenario in library:
        for guard in scenario.rollout.guardrails:
            for field in ("min", "max", "min_relative_to_baseline", "max_relative_to_baseline"):
                value = getattr(guard, field)
                if value is None:
                    continue
                key = (guard.metric, field)
                tightest[key] = pick.get(field, min)(tightest.get(key, value), value)
    return [
        Guardrail.model_validate({"metric": metric, field: value})
        for (metric, field), value in sorted(tightest.items())
    ]


def _named_slos(library: Sequence[Scenario]) -> list[Any]:
    """The SLOs the library's SLO guardrails (``slo.NAME.burn_rate``) name, as the scenario
    that guards on each declares it (the first one, in file order), so that every guardrail of
    :func:`library_guardrails` can be judged on the reference scenario."""
    found: dict[str, Any] = {}
    for scenario in library:
        declared = {slo.name: slo for slo in scenario.slos}
        for guard in scenario.rollout.guardrails:
            name = slo_of_metric(guard.metric)
            if name is not None and name not in found and name in declared:
                found[name] = declared[name]
    return [found[name] for name in sorted(found)]


def true_ctr_lift(prepared: Prepared) -> float:
    """The candidate's true relative CTR lift over the baseline, users weighted by activity.

    From the world's true click probabilities of each version's list (synthetic worlds):
    Σ_u a_u P_cand(click | u) / Σ_u a_u P_base(click | u) − 1, a_u the user's activity.
    """
    world = prepared.world
    users = np.arange(world.n_users)
    decay = prepared.scenario.users.position_decay
    clicks = []
    for tables in prepared.versions[:2]:
        tables.ensure(users)
        clicks.append(
            np.average(list_click_probability(tables.relevance, decay), weights=world.activity)
        )
    return float(clicks[1] / clicks[0] - 1.0)


def with_mde_at_true_lift(prepared: Prepared) -> Prepared:
    """The same prepared run with the gate's minimum detectable effect at the true lift."""
    scenario = prepared.scenario
    gate = scenario.rollout.gate
    if gate is None:
        raise ValueError("the scenario has no gate to tune")
    tuned = gate.model_copy(update={"mde_relative": true_ctr_lift(prepared)})
    rollout = scenario.rollout.model_copy(update={"gate": tuned})
    return replace(prepared, scenario=scenario.model_copy(update={"rollout": rollout}))


def reference_scenario(
    scenarios: Path,
    *,
    lift: bool = False,
    weight: float = 50.0,
    alpha: float = 0.05,
    overrides: Sequence[str] = (),
) -> Scenario:
    """The setup the analysis's operating characteristics are measured on.

    ``scenarios/aa_test.toml`` (the candidate is the baseline itself) with every guardrail
    of the library on (:func:`library_guardrails`), the gate and the guardrail budget at
    ``alpha``, 5,000 users and 1,000 items at 40 requests/s with a CTR near 0.3 (click offset
    −1), 40 minutes on a canary of ``weight`` %.  ``lift``: instead, a candidate with a true
    CTR lift of about 10 % (``click_lift`` 0.1) on 20,000 users for 80 minutes at 50 % —
    power grows with independent units, not with requests per user; tune its gate with
    :func:`with_mde_at_true_lift`.  ``overrides`` (``--set`` syntax) apply last.  Used by
    ``tests/validation/test_rollout_oc.py`` and ``bench/aa_bench.py``.
    """
    settings = [
        "traffic.users=5000",
        "traffic.items=1000",
        "traffic.arrivals.mean_rate_per_s=40",
        "users.click_offset=-1.0",
        f"rollout.gate.alpha={alpha}",
        f"rollout.analysis.guardrail_alpha={alpha}",
    ]
    if lift:
        settings += ["traffic.duration=80m", "traffic.users=20000"]
        settings += ["models.candidate.click_lift=0.1", "rollout.weight=50"]
    else:
        settings += ["traffic.duration=40m", f"rollout.weight={weight:g}"]
    scenario = load_scenario(scenarios / "aa_test.toml", [*settings, *overrides])
    library = _library(scenarios)  # read once for the guardrails and the SLOs they name
    guarded = scenario.rollout.model_copy(update={"guardrails": _tightest_guardrails(library)})
    # Validated again as a whole: the SLOs the guardrails name must be declared.
    data = scenario.model_dump(mode="python")
    data["rollout"] = guarded.model_dump(mode="python")
    data["slos"] = [slo.model_dump(mode="python") for slo in _named_slos(library)]
    return Scenario.model_validate(data)


def replicate(prepared: Prepared, replications: Iterable[int]) -> list[ReplicationOutcome]:
    return [replication_outcome(prepared, r) for r in replications]


def _rate(hits: int, total: int) -> dict[str, Any]:
    ci = wilson_interval(hits, total) if total else None
    return {
        "count": hits,
        "of": total,
        "rate": hits / total if total else None,
        "ci95": [ci.low, ci.high] if ci else [None, None],
    }


def _times(values: list[float | None]) -> dict[str, Any]:
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    if present.size == 0:
        return {"count": 0, "mean_s": None, "median_s": None, "max_s": None}
    return {
        "count": int(present.size),
        "mean_s": float(present.mean()),
        "median_s": float(np.median(present)),
        "max_s": float(present.max()),
    }


def operating_characteristics(outcomes: list[ReplicationOutcome], truth: Truth) -> dict[str, Any]:
    """Rates with Wilson 95 % intervals, read against what is true about the candidate."""
    total = len(outcomes)
    rolled_back = sum(o.outcome == "rolled_back" for o in outcomes)
    promoted = sum(o.outcome == "promoted" for o in outcomes)
    said_better = sum(o.gate_decision == "better" for o in outcomes)
    said_worse = sum(o.gate_decision == "worse" for o in outcomes)
    naive = sum(o.naive_false_alarm for o in outcomes)
    naive_guardrails = sum(o.naive_guardrail_rollback for o in outcomes)
    gate_rollbacks = sum(
        o.outcome == "rolled_back" and o.gate_decision == "worse" for o in outcomes
    )
    block: dict[str, Any] = {
        "truth": truth,
        "replications": total,
        "rolled_back": _rate(rolled_back, total),
        "promoted": _rate(promoted, total),
        "gate_better": _rate(said_better, total),
        "gate_worse": _rate(said_worse, total),
        "naive_peeking_any_difference": _rate(naive, total),
        # Rolled back with the gate undecided or better: guardrails (or the SRM check) did it.
        "rolled_back_by_analyses": _rate(rolled_back - gate_rollbacks, total),
        "analyses_failed": _rate(sum(o.failures > 0 for o in outcomes), total),
        "naive_guardrails_rolled_back": _rate(naive_guardrails, total),
        "time_to_rollback": _times([o.rollback_s for o in outcomes]),
        "time_to_promote": _times([o.promote_s for o in outcomes]),
        "time_to_detect": _times([o.first_failure_s for o in outcomes]),
        "exposed_users_mean": float(np.mean([o.exposed_users for o in outcomes]))
        if total
        else None,
    }
    if truth == "same":
        block["false_rollback"] = block["rolled_back"]
        block["false_promotion"] = block["promoted"]
        block["false_better"] = block["gate_better"]
    elif truth == "better":
        block["power"] = block["gate_better"]
        block["false_rollback"] = block["rolled_back"]
    else:
        block["missed_regression"] = _rate(total - rolled_back, total)
        block["users_exposed_to_bad_candidate_mean"] = block["exposed_users_mean"]
    block["outcomes"] = [asdict(o) for o in outcomes]
    return block
