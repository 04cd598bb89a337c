"""The decision a reader should take: ``summary.json``'s ``decision`` block.

* ``verdict`` and ``tone``: the outcome in words (:func:`sim.wording.decision_verdict`);
* ``reason``: one sentence, from the decisions that settled it (the failed analyses of a
  rollback, the analyses behind a promotion, or the gate's state when nothing was decided);
* ``action``: what to do next (:func:`sim.wording.decision_action`);
* ``projection``: when the run ended undecided with a CTR gate, the projected time for the
  gate to decide at the current weight and at one or two larger ones
  (:func:`gate_projection`, the statistics in :mod:`sim.decision_time`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from lab.pipeline import RunResult
from sim import wording
from sim.decision_time import DecisionTime, VarianceGrowth, project_decision_time
from sim.stats import clustered_ratio

__all__ = [
    "HORIZON_S",
    "GateGrowth",
    "decision_block",
    "gate_projection",
    "measured_growth",
    "variance_checkpoints",
]

#: How far ahead the projection looks: a week of traffic like the run's.
HORIZON_S = 7 * 86_400.0
#: Larger weights the projection is stated for (the two smallest above the current one).
LADDER = (5.0, 10.0, 25.0, 50.0)


def variance_checkpoints(
    frame: pl.DataFrame,
    *,
    baseline: str,
    candidate: str,
    unit: str,
    since_s: float,
    times_s: Sequence[float],
) -> tuple[list[float], list[float], list[float], float]:
    """Each arm's variance of its clustered CTR (``ArmStats.sem_sq``, as the gate computes
    it) on the requests from ``since_s`` up to each time in ``times_s``.

    Returns the times since ``since_s`` (seconds), the candidate's and the baseline's
    variances, and the baseline's CTR over everything up to the last time.
    """
    arms = frame.filter(
        pl.col("version").cast(pl.String).is_in([baseline, candidate]) & (pl.col("t_s") >= since_s)
    ).select("t_s", pl.col("version").cast(pl.String), unit, pl.col("clicks").cast(pl.Int64))
    t = arms["t_s"].to_numpy()
    _, units = np.unique(arms[unit].to_numpy(), return_inverse=True)
    clicks = arms["clicks"].to_numpy().astype(np.float64)
    is_candidate = (arms["version"] == candidate).to_numpy()
    n_units = int(units.max(initial=-1)) + 1
    kept_t: list[float] = []
    var_c: list[float] = []
    var_b: list[float] = []
    baseline_ctr = 0.0
    for until in times_s:
        upto = t < until
        stats = []
        for mine in (is_candidate, ~is_candidate):
            rows = upto & mine
            n_u = np.bincount(units[rows], minlength=n_units)
            x_u = np.bincount(units[rows], weights=clicks[rows], minlength=n_units)
            stats.append(clustered_ratio(n_u, x_u))
        if min(s.n for s in stats) < 2 or min(s.sem_sq for s in stats) <= 0:
            continue
        kept_t.append(float(until - since_s))
        var_c.append(stats[0].sem_sq)
        var_b.append(stats[1].sem_sq)
        baseline_ctr = stats[1].mean
    return kept_t, var_c, var_b, baseline_ctr


def _weights(current: float) -> list[float]:
    return [current, *[w for w in LADDER if w > current][:2]]


@dataclass(frozen=True, slots=True)
class GateGrowth:
    """What a run measured about its gate's arms, for projections: each arm's variance
    growth at ``weight`` %, the baseline's CTR and the gate's settings."""

    candidate: VarianceGrowth
    baseline: VarianceGrowth
    weight: float
    baseline_ctr: float
    tau2: float
    alpha: float
    interval_s: float
    elapsed_s: float
    points: int

    def project(self, weight: float, effect_relative: float, *, seed: int = 0) -> DecisionTime:
        """The projected time to decision at ``weight`` % for a true relative lift."""
        return project_decision_time(
            candidate=self.candidate,
            baseline=self.baseline,
            observed_weight=self.weight,
            weight=weight,
            effect_abs=effect_relative * self.baseline_ctr,
            tau2=self.tau2,
            alpha=self.alpha,
            interval_s=self.interval_s,
            horizon_s=HORIZON_S,
            seed=seed,
        )


def measured_growth(result: RunResult) -> GateGrowth | None:
    """The arms' variance growth of the run's current release, or None without a gate,
    analyses, or a candidate weight strictly between 0 and 100 at the end.

    Fitted on the analyses since the current weight was set (all analyses of the current
    release when fewer than two), on requests since the candidate's first exposure.
    """
    rollout = result.scenario.rollout
    controller = result.controller
    gate_test = result.analyst.gate_test
    start = controller.first_exposure_s
    weight = float(controller.weight)
    if rollout.gate is None or rollout.analysis is None or gate_test is None or start is None:
        return None
    if not 0 < weight < 100:
        return None
    names = controller.version_names
    release = controller.decisions[-1].release if controller.decisions else 1
    analyses = [d for d in controller.decisions if d.action == "analysis" and d.release == release]
    steady = [d.t_s for d in analyses if d.weight == weight and d.t_s > start]
    times = steady if len(steady) >= 2 else [d.t_s for d in analyses if d.t_s > start]
    t, var_c, var_b, baseline_ctr = variance_checkpoints(
        result.requests,
        baseline=names[controller.baseline],
        candidate=names[controller.candidate],
        unit="user" if rollout.sticky_by == "user" else "session",
        since_s=start,
        times_s=times,
    )
    if not t or baseline_ctr <= 0:
        return None
    return GateGrowth(
        candidate=VarianceGrowth.fit(t, var_c),
        baseline=VarianceGrowth.fit(t, var_b),
        weight=weight,
        baseline_ctr=baseline_ctr,
        tau2=gate_test.tau2,
        alpha=gate_test.alpha,
        interval_s=rollout.analysis.interval,
        elapsed_s=t[-1],
        points=len(t),
    )


def gate_projection(result: RunResult) -> dict[str, Any] | None:
    """The projected time to decision of an undecided CTR gate, or None.

    None when :func:`measured_growth` is None or the gate has decided.  Projected as
    :func:`sim.decision_time.project_decision_time` describes, for a true lift equal to the
    gate's MDE, at the current weight and the next one or two of :data:`LADDER`.
    """
    growth = measured_growth(result)
    gate = result.scenario.rollout.gate
    gate_test = result.analyst.gate_test
    if growth is None or gate is None or gate_test is None or gate_test.decision != "continue":
        return None
    projections = [
        growth.project(w, gate.mde_relative, seed=result.scenario.seed)
        for w in _weights(growth.weight)
    ]
    return {
        "metric": "ctr",
        "effect_relative": gate.mde_relative,
        "effect_abs": gate.mde_relative * growth.baseline_ctr,
        "baseline_ctr": growth.baseline_ctr,
        "alpha": growth.alpha,
        "tau2": growth.tau2,
        "interval_s": growth.interval_s,
        "observed_weight": growth.weight,
        "elapsed_s": growth.elapsed_s,
        "variance_model": {
            "candidate": {"a": growth.candidate.a, "b": growth.candidate.b},
            "baseline": {"a": growth.baseline.a, "b": growth.baseline.b},
            "fitted_on": growth.points,
        },
        "weights": [
            {
                "weight": p.weight,
                "median_s": p.median_s,
                "quartiles_s": list(p.quartiles_s),
                "decided_share": p.decided_share,
                "horizon_s": p.horizon_s,
            }
            for p in projections
        ],
        "basis": (
            "time from the candidate's first exposure until the mSPRT gate decides, if the true "
            "CTR lift equals the MDE, traffic continues as in this run, and the analyses keep "
            "their interval: each arm's variance fitted as a / t + b on this run's analyses, "
            "scaled to the weight, and the gate's statistic simulated on 4,000 paths (median)"
        ),
    }


def _reason(summary: dict[str, Any], candidate: str) -> str:
    """One sentence on why the rollout stands where it does."""
    outcome = summary["outcome"]
    decisions = summary["decisions"]
    release = decisions[-1]["release"] if decisions else 1
    mine = [d for d in decisions if d.get("release", 1) == release]
    analyses = [d for d in mine if d["action"] == "analysis"]
    routing = [d for d in mine if d["action"] != "analysis"]
    failed = [d for d in analyses if str(d["reason"]).startswith("fail")]
    if outcome in ("rolled_back", "held") and routing:
        last = routing[-1]["reason"]
        if failed:
            cause = str(failed[-1]["reason"]).removeprefix("fail: ")
            return (
                f"{wording.count_noun(len(failed), 'failed analysis', 'failed analyses')} "
                f"({last}); the last one: {cause}."
            )
        return f"{last}."
    if outcome == "promoted" and routing:
        passed = [d for d in analyses if str(d["reason"]).startswith("pass")]
        why = routing[-1]["reason"]
        if passed:
            return f"{why}; the last one: {str(passed[-1]['reason']).removeprefix('pass: ')}."
        return f"{why}."
    gate = summary["scenario"]["settings"]["rollout"].get("gate")
    judged = [d for d in analyses if "gate.p_value" in d["numbers"]]
    if gate and judged:
        p = judged[-1]["numbers"]["gate.p_value"]
        return f"{wording.gate_state(p, gate['alpha'], len(analyses))}: not enough evidence yet."
    if routing:
        return f"the run ended {routing[-1]['reason']} (weight {routing[-1]['weight']:g} %)."
    return "no routing decision was taken."


def decision_block(summary: dict[str, Any], projection: dict[str, Any] | None) -> dict[str, Any]:
    """``decision``: verdict, tone, reason, action and the projection, from the summary."""
    outcome = summary["outcome"]
    routing = summary.get("routing") or {}
    candidate = routing.get("candidate") or summary["scenario"]["settings"]["rollout"]["candidate"]
    verdict, tone = wording.decision_verdict(outcome)
    projected = None
    if projection is not None:
        projected = "; ".join(
            wording.projected_time(
                w["weight"],
                w["median_s"],
                projection["effect_relative"],
                w["decided_share"],
                w["horizon_s"],
            )
            for w in projection["weights"]
        )
    reason = _reason(summary, candidate)
    return {
        "verdict": verdict,
        "tone": tone,
        "candidate": candidate,
        "reason": reason[:1].upper() + reason[1:],
        "action": wording.decision_action(outcome, candidate, projected=projected is not None),
        "projected": None if projected is None else projected[:1].upper() + projected[1:] + ".",
        "projection": projection,
    }
