"""Operating characteristics of a rollout policy: how often it is wrong, and how fast.

A scenario is replicated many times on the same trained versions (``prepare`` once,
``simulate_prepared`` per replication: fresh traffic, service times and clicks each time).
Each replication yields the policy's outcome and timings, the gate's final decision, the
users who saw the candidate, and — for comparison — whether a naive fixed-horizon z-test
peeked at every analysis would have declared a difference at some peek.

Given what is true about the candidate (``same``, ``better`` or ``worse`` than the baseline),
the replications become rates with Wilson 95 % intervals: false rollback and false
"better" rates for an A/A, power for a true lift, missed-regression rate for a bad
candidate, and time to decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from lab.pipeline import Prepared, simulate_prepared
from sim.stats import ArmStats, wilson_interval, z_test

__all__ = ["ReplicationOutcome", "operating_characteristics", "replicate", "replication_outcome"]

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


def replication_outcome(prepared: Prepared, replication: int) -> ReplicationOutcome:
    """Run one replication and boil it down to what operating characteristics need."""
    result = simulate_prepared(prepared, replication)
    controller = result.controller
    records = result.outcome.records
    candidate_users = np.unique(result.stream.user[records.version == 1])
    alpha = controller.config.gate.alpha if controller.config.gate else 0.05
    peeks, alarm = _naive_peeking(result.monitor.windows, alpha)
    gate = result.analyst.gate_test
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
    block: dict[str, Any] = {
        "truth": truth,
        "replications": total,
        "rolled_back": _rate(rolled_back, total),
        "promoted": _rate(promoted, total),
        "gate_better": _rate(said_better, total),
        "gate_worse": _rate(said_worse, total),
        "naive_peeking_any_difference": _rate(naive, total),
        "time_to_rollback": _times([o.rollback_s for o in outcomes]),
        "time_to_promote": _times([o.promote_s for o in outcomes]),
        "time_to_detect": _times([o.first_failure_s for o in outcomes]),
        "exposed_users_mean": float(np.mean([o.exposed_users for o in outcomes]))
        if total
        else None,
    }
    if truth == "same":
        block["false_rollback"] = block["rolled_back"]
        block["false_better"] = block["gate_better"]
    elif truth == "better":
        block["power"] = block["gate_better"]
        block["false_rollback"] = block["rolled_back"]
    else:
        block["missed_regression"] = _rate(total - rolled_back, total)
        block["users_exposed_to_bad_candidate_mean"] = block["exposed_users_mean"]
    block["outcomes"] = [asdict(o) for o in outcomes]
    return block
