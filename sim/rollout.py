"""Rollout policies and automated canary analysis: advance, hold, roll back, promote.

The controller owns the routing weights.  It wakes up at step boundaries (``pause`` ends) and
at every analysis interval, settles the finished requests through the monitor, and runs one
*analysis* (Argo Rollouts' word) whose result is ``pass``, ``fail`` or ``inconclusive``:

* guardrails on the candidate's window (absolute bounds, or bounds relative to the baseline
  judged by a one-sided non-inferiority test for rates) — any breach fails the analysis;
* the primary gate: CTR judged by an always-valid mSPRT on everything seen since the
  candidate first got traffic (safe to peek at every interval): ``worse`` fails,
  ``better`` passes, otherwise the analysis is inconclusive;
* a window with fewer than ``analysis.min_requests`` candidate requests is skipped.

``failure_limit`` failures roll back (weight 0; or hold with ``on_failure = "hold"``),
``inconclusive_limit`` inconclusive analyses in a row hold the rollout where it is,
``consecutive_success_limit`` passes in a row promote a fixed canary.  Policies:

* ``big_bang``: 100 % at once, analysis after promotion can still roll back;
* ``canary``: a fixed weight (and optional mirror) until promotion or rollback;
* ``staged``: Argo-like steps (``set_weight``, ``pause``, ``mirror``); reaching 100 % promotes.

Every action is a ``Decision`` with the simulated time, the step, the rule that fired and the
numbers it saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sim.engine import Routing
from sim.monitor import Monitor, WindowStats
from sim.router import threshold_for
from sim.scenario import Guardrail, Rollout
from sim.stats import ArmStats, SequentialTest, guardrail_worse, mixing_variance_for_mde

__all__ = ["Decision", "RolloutController"]

_HIGHER_IS_BETTER = {"ctr": True, "cache_hit_rate": True}
_RATE_COUNTS = {
    "ctr": lambda w: w.clicks,
    "timeout_rate": lambda w: w.timeouts,
    "error_rate": lambda w: w.errors + w.rejected,
    "fallback_rate": lambda w: w.fallback + w.dropped,
    "abandon_rate": lambda w: w.abandoned,
}


@dataclass(frozen=True, slots=True)
class Decision:
    t_s: float
    step: int
    action: str  # set_weight | mirror | pause | analysis | rollback | hold | promote
    reason: str
    weight: float
    numbers: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "t_s": round(self.t_s, 6),
            "step": self.step,
            "action": self.action,
            "reason": self.reason,
            "weight": self.weight,
            "numbers": {k: _round(v) for k, v in self.numbers.items()},
        }


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 6)


class RolloutController:
    """Drives ``Routing`` through a policy; see the module docstring for the rules."""

    def __init__(
        self,
        config: Rollout,
        monitor: Monitor,
        *,
        baseline: int,
        candidate: int,
        duration_s: float,
    ) -> None:
        self.config = config
        self.monitor = monitor
        self.baseline = baseline
        self.candidate = candidate
        self.duration_s = duration_s
        self.routing = Routing()
        self.weight = 0.0
        self.mirror = 0.0
        self.max_weight = 0.0
        self.decisions: list[Decision] = []
        self.outcome = "in_progress"
        self.analyses = 0
        self.failures = 0
        self.inconclusive_streak = 0
        self.success_streak = 0
        self.first_exposure_s: float | None = None
        self.first_failure_s: float | None = None
        self.rollback_s: float | None = None
        self.promote_s: float | None = None
        self.finished = False
        self.held = False
        gate = config.gate
        self.gate_test: SequentialTest | None = None
        self._gate_alpha = gate.alpha if gate else 0.05
        self._steps = self._plan_steps()
        self._step = 0
        self._step_until_s = 0.0
        interval = config.analysis.interval if config.analysis else None
        self._interval_s = interval
        self._next_analysis_s = interval if interval is not None else math.inf
        self._started = False

    # --- plan ---------------------------------------------------------------------------

    def _plan_steps(self) -> list[tuple[str, float]]:
        cfg = self.config
        if cfg.policy == "big_bang":
            return [("set_weight", 100.0)]
        if cfg.policy == "canary":
            steps: list[tuple[str, float]] = []
            if cfg.mirror > 0:
                steps.append(("mirror", cfg.mirror))
            steps.append(("set_weight", cfg.weight))
            return steps
        out: list[tuple[str, float]] = []
        for step in cfg.steps:
            if step.set_weight is not None:
                out.append(("set_weight", step.set_weight))
            elif step.pause is not None:
                out.append(("pause", step.pause))
            elif step.mirror is not None:
                out.append(("mirror", step.mirror))
        return out

    # --- Controller protocol --------------------------------------------------------------

    def next_wakeup_s(self, now_s: float) -> float | None:
        if not self._started:
            return 0.0
        if self.finished:
            return None
        wake = self._next_analysis_s
        if self._step < len(self._steps) and not self.held:
            wake = min(wake, self._step_until_s)
        return wake if math.isfinite(wake) else None

    def tick(self, now_s: float, settled: int) -> bool:
        before = (self.routing.candidate_threshold, self.routing.mirror_threshold)
        if not self._started:
            self._started = True
            self._step_until_s = now_s
            self._run_steps(now_s)
        else:
            if now_s >= self._next_analysis_s:
                self._next_analysis_s += self._interval_s or math.inf
                self._analyse(now_s, settled)
            if not self.finished and not self.held and now_s >= self._step_until_s:
                self._run_steps(now_s)
        return before != (self.routing.candidate_threshold, self.routing.mirror_threshold)

    # --- steps ----------------------------------------------------------------------------

    def _run_steps(self, now_s: float) -> None:
        while self._step < len(self._steps) and not self.finished:
            kind, value = self._steps[self._step]
            step = self._step
            self._step += 1
            if kind == "set_weight":
                self._set_weight(now_s, value, step, f"step {step}: set_weight {value:g}")
                if value >= 100.0:
                    self._promote(now_s, step, "weight reached 100%")
                    return
            elif kind == "mirror":
                self.mirror = value
                self.routing.mirror_threshold = threshold_for(value)
                self._decide(
                    now_s,
                    step,
                    "mirror",
                    f"step {step}: mirror {value:g}% of baseline traffic to the candidate",
                )
            else:  # pause
                self._step_until_s = now_s + value
                self._decide(now_s, step, "pause", f"step {step}: pause {value:g} s")
                return

    def _set_weight(self, now_s: float, weight: float, step: int, reason: str) -> None:
        self.weight = weight
        self.max_weight = max(self.max_weight, weight)
        self.routing.candidate_threshold = threshold_for(weight)
        if weight > 0 and self.first_exposure_s is None:
            self.first_exposure_s = now_s
        self._decide(now_s, step, "set_weight", reason)

    def _promote(self, now_s: float, step: int, reason: str) -> None:
        self.weight = 100.0
        self.max_weight = 100.0
        self.routing.candidate_threshold = threshold_for(100.0)
        self.routing.mirror_threshold = 0
        self.outcome = "promoted"
        self.promote_s = now_s
        self._decide(now_s, step, "promote", reason)
        # A big-bang keeps analysing after promotion (post-promotion analysis can still roll
        # back); a ramp that reached 100 % has nothing left to compare against.
        if self.config.policy != "big_bang" or self._interval_s is None:
            self.finished = True

    def _decide(
        self,
        now_s: float,
        step: int,
        action: str,
        reason: str,
        numbers: dict[str, float] | None = None,
    ) -> None:
        self.decisions.append(Decision(now_s, step, action, reason, self.weight, numbers or {}))

    # --- analysis -------------------------------------------------------------------------

    def _analyse(self, now_s: float, settled: int) -> None:
        windows = self.monitor.settle(settled, now_s)
        analysis = self.config.analysis
        if analysis is None or self.finished or self.first_exposure_s is None:
            return
        base, cand = windows[self.baseline], windows[self.candidate]
        step = max(self._step - 1, 0)
        numbers = {
            "candidate.requests": float(cand.requests),
            "baseline.requests": float(base.requests),
            "candidate.latency_ms.p99": cand.latency_p99_ms,
            "baseline.latency_ms.p99": base.latency_p99_ms,
            "candidate.ctr": cand.metric("ctr"),
            "baseline.ctr": base.metric("ctr"),
        }
        if cand.requests < analysis.min_requests:
            self._decide(
                now_s,
                step,
                "analysis",
                f"skipped: {cand.requests} candidate requests < min_requests {analysis.min_requests}",
                numbers,
            )
            return
        self.analyses += 1
        breaches = [
            reason for g in self.config.guardrails if (reason := self._breach(g, base, cand))
        ]
        verdict = "fail" if breaches else "pass"
        reason = "; ".join(breaches) if breaches else "guardrails ok"
        if self.config.gate is not None:
            gate_decision, gate_reason, gate_numbers = self._gate()
            numbers.update(gate_numbers)
            if gate_decision == "worse":
                verdict, reason = "fail", f"{reason}; {gate_reason}" if breaches else gate_reason
            elif not breaches:
                verdict = "pass" if gate_decision == "better" else "inconclusive"
                reason = f"guardrails ok; {gate_reason}"
        self._decide(now_s, step, "analysis", f"{verdict}: {reason}", numbers)
        self._apply_verdict(
            now_s,
            step,
            verdict,
            analysis.failure_limit,
            analysis.inconclusive_limit,
            analysis.consecutive_success_limit,
        )

    def _apply_verdict(
        self,
        now_s: float,
        step: int,
        verdict: str,
        failure_limit: int,
        inconclusive_limit: int,
        success_limit: int,
    ) -> None:
        if verdict == "fail":
            self.failures += 1
            self.success_streak = 0
            self.inconclusive_streak = 0
            if self.first_failure_s is None:
                self.first_failure_s = now_s
            if self.failures >= failure_limit:
                if self.config.on_failure == "rollback":
                    self._rollback(now_s, step, f"failure_limit {failure_limit} reached")
                else:
                    self.held = True
                    self.outcome = "held"
                    self._decide(
                        now_s,
                        step,
                        "hold",
                        f"failure_limit {failure_limit} reached; on_failure = hold",
                    )
            return
        if verdict == "inconclusive":
            self.inconclusive_streak += 1
            self.success_streak = 0
            if (
                self.inconclusive_streak >= inconclusive_limit
                and not self.held
                and self.config.policy != "canary"
            ):
                self.held = True
                self.outcome = "inconclusive"
                self._decide(
                    now_s,
                    step,
                    "hold",
                    f"inconclusive_limit {inconclusive_limit} reached: paused for a person to decide",
                )
            return
        self.success_streak += 1
        self.inconclusive_streak = 0
        if self.held and self.outcome == "inconclusive":
            self.held = False
            self.outcome = "in_progress"
            self._decide(now_s, step, "resume", "analysis passed after an inconclusive hold")
        if (
            self.config.policy == "canary"
            and self.success_streak >= success_limit
            and self.config.gate is not None
        ):
            self._promote(now_s, step, f"{success_limit} successful analyses in a row")

    def _rollback(self, now_s: float, step: int, reason: str) -> None:
        self.weight = 0.0
        self.mirror = 0.0
        self.routing.candidate_threshold = 0
        self.routing.mirror_threshold = 0
        self.outcome = "rolled_back"
        self.rollback_s = now_s
        self.finished = True
        self._decide(now_s, step, "rollback", reason)

    def _gate(self) -> tuple[str, str, dict[str, float]]:
        gate = self.config.gate
        assert gate is not None
        totals = self.monitor.totals
        base, cand = totals[self.baseline], totals[self.candidate]
        control = ArmStats.from_sums(base.requests, base.clicks, base.clicks)
        treatment = ArmStats.from_sums(cand.requests, cand.clicks, cand.clicks)
        if self.gate_test is None:
            mde_abs = gate.mde_relative * max(control.mean, 1e-6)
            self.gate_test = SequentialTest(gate.alpha, mixing_variance_for_mde(mde_abs))
        result = self.gate_test.update(control, treatment)
        numbers = {
            "gate.p_value": result.p_value,
            "gate.log_lambda": result.log_lambda,
            "gate.difference": result.difference,
            "gate.candidate_requests": float(treatment.n),
        }
        reason = f"ctr mSPRT {result.decision} (diff {result.difference:+.4f}, always-valid p={result.p_value:.3g})"
        return result.decision, reason, numbers

    def _breach(self, guard: Guardrail, base: WindowStats, cand: WindowStats) -> str:
        metric = guard.metric
        value = cand.metric(metric)
        if guard.max is not None and value > guard.max:
            return f"{metric} {value:.4g} > max {guard.max:g}"
        if guard.min is not None and value < guard.min:
            return f"{metric} {value:.4g} < min {guard.min:g}"
        relative = [(b, "min") for b in [guard.min_relative_to_baseline] if b is not None]
        relative += [(b, "max") for b in [guard.max_relative_to_baseline] if b is not None]
        for bound, side in relative:
            if metric in _RATE_COUNTS:
                count = _RATE_COUNTS[metric]
                control = ArmStats.from_sums(base.requests, count(base), count(base))
                treatment = ArmStats.from_sums(cand.requests, count(cand), count(cand))
                higher_is_better = side == "min"
                result = guardrail_worse(
                    control,
                    treatment,
                    margin=abs(bound),
                    relative=True,
                    higher_is_better=higher_is_better,
                    alpha=self._gate_alpha,
                    metric=metric,
                )
                if result.worse:
                    return result.reason
            else:
                reference = base.metric(metric)
                if not (math.isfinite(reference) and reference > 0 and math.isfinite(value)):
                    continue
                change = value / reference - 1.0
                if side == "max" and change > bound:
                    return f"{metric} {value:.4g} is {change:+.1%} vs baseline {reference:.4g} (max {bound:+.1%})"
                if side == "min" and change < bound:
                    return f"{metric} {value:.4g} is {change:+.1%} vs baseline {reference:.4g} (min {bound:+.1%})"
        return ""

    # --- end of run -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        start = self.first_exposure_s
        return {
            "policy": self.config.policy,
            "outcome": self.outcome,
            "final_weight": self.weight,
            "max_candidate_weight": self.max_weight,
            "analyses": self.analyses,
            "failures": self.failures,
            "first_exposure_s": start,
            "time_to_detect_s": None
            if self.first_failure_s is None or start is None
            else self.first_failure_s - start,
            "time_to_rollback_s": None
            if self.rollback_s is None or start is None
            else self.rollback_s - start,
            "time_to_promote_s": None
            if self.promote_s is None or start is None
            else self.promote_s - start,
        }
