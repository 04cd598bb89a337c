"""Rollout policies and automated canary analysis: advance, hold, roll back, promote.

The controller owns the routing weights.  It wakes up at step boundaries (``pause`` ends),
at every analysis interval and at the kill switch, settles the finished requests through the
monitor, and runs one *analysis* (Argo Rollouts' word) whose result is ``pass``, ``fail`` or
``inconclusive``:

* a sample-ratio-mismatch check (chi-square of distinct units per arm against the weight,
  when the weight held still for the whole window) — a mismatch fails the analysis;
* guardrails on the candidate's window (absolute bounds, or bounds relative to the baseline
  judged by a one-sided non-inferiority test for rates) — any breach fails it.  While the
  candidate only receives mirrored traffic (shadow phases) guardrails read the shadow copies;
* the primary gate: CTR judged by an always-valid mSPRT on everything seen since the
  candidate first got users (safe to peek at every interval): ``worse`` fails, ``better``
  passes, otherwise the analysis is inconclusive;
* a window with fewer than ``analysis.min_requests`` candidate requests is skipped.

``failure_limit`` failures roll back (weight 0; or hold with ``on_failure = "hold"``),
``inconclusive_limit`` inconclusive analyses in a row pause a staged ramp for a person to
decide, ``consecutive_success_limit`` passes in a row promote a gated canary.

Policies: ``big_bang`` (100 % at once; post-promotion analysis can still roll back),
``canary`` (fixed weight, optional mirror), ``staged`` (Argo-like ``set_weight`` / ``pause``
/ ``mirror`` steps), ``adaptive`` (climbs ``ramp`` one rung per passing analysis),
``bandit`` (Thompson sampling of the weight from Beta posteriors of CTR, within bounds, with
sticky assignment memory), ``shadow_then_canary`` (mirror first, then a canary) and
``blue_green`` (pre-promotion analysis on mirrored traffic, switch, post-promotion analysis).
Every action is a ``Decision`` with the simulated time, the step, the rule that fired and
the numbers it saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.engine import Routing
from sim.monitor import RATE_METRICS, Monitor, WindowStats
from sim.policies.settings import Guardrail, Rollout
from sim.router import threshold_for
from sim.stats import SequentialTest, guardrail_worse, mixing_variance_for_mde, srm_check

__all__ = ["Decision", "RolloutController"]


@dataclass(frozen=True, slots=True)
class Decision:
    t_s: float
    step: int
    action: str  # set_weight | mirror | pause | analysis | rollback | hold | resume | promote
    reason: str
    weight: float
    numbers: dict[str, float] = field(default_factory=dict)
    release: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "t_s": round(self.t_s, 6),
            "release": self.release,
            "step": self.step,
            "action": self.action,
            "reason": self.reason,
            "weight": self.weight,
            "numbers": {k: _round(v) for k, v in self.numbers.items()},
        }


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 6)


def _plan(config: Rollout) -> list[tuple[str, float]]:
    """The policy as a list of steps; analyses run beside them."""
    policy = config.policy
    if policy == "big_bang":
        return [("set_weight", 100.0)]
    if policy == "canary":
        steps = [("mirror", config.mirror)] if config.mirror > 0 else []
        return [*steps, ("set_weight", config.weight)]
    if policy == "staged":
        out: list[tuple[str, float]] = []
        for step in config.steps:
            if step.set_weight is not None:
                out.append(("set_weight", step.set_weight))
            elif step.pause is not None:
                out.append(("pause", step.pause))
            elif step.mirror is not None:
                out.append(("mirror", step.mirror))
        return out
    if policy == "adaptive":
        return [("set_weight", config.ramp[0])]
    if policy == "bandit":
        return [("set_weight", config.bandit.min_weight)]
    mirror = config.mirror if config.mirror > 0 else 100.0
    if policy == "shadow_then_canary":
        return [
            ("mirror", mirror),
            ("pause", config.shadow_for),
            ("mirror", 0.0),
            ("set_weight", config.weight),
        ]
    # blue_green: the preview stack takes mirrored traffic, then the switch.
    return [
        ("mirror", mirror),
        ("pause", config.shadow_for),
        ("mirror", 0.0),
        ("set_weight", 100.0),
    ]


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
        rng: np.random.Generator | None = None,
        releases: list[tuple[float, int]] | None = None,
    ) -> None:
        self.config = config
        self.monitor = monitor
        self.duration_s = duration_s
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.routing = Routing(baseline=baseline, candidate=candidate)
        # A release train: (start time, version) of every release, in order.
        self.releases = releases or [(0.0, candidate)]
        self.release = 0
        self.release_log: list[dict[str, Any]] = []
        self.decisions: list[Decision] = []
        self._kill_s = config.kill_switch_at
        self._reset()

    @property
    def baseline(self) -> int:
        return self.routing.baseline

    @property
    def candidate(self) -> int:
        return self.routing.candidate

    def _reset(self) -> None:
        """State of one release's rollout (a release train starts over for each release)."""
        config = self.config
        self.weight = 0.0
        self.mirror = 0.0
        self.max_weight = 0.0
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
        self.gate_test: SequentialTest | None = None
        self._gate_alpha = config.gate.alpha if config.gate else 0.05
        self._steps = _plan(config)
        self.started_s = 0.0
        self._step = 0
        self._step_until_s = 0.0
        self._interval_s = config.analysis.interval if config.analysis else None
        self._next_analysis_s = self._interval_s if self._interval_s is not None else math.inf
        self._started = False
        self._weight_changed_s = 0.0
        self._rung = 0
        self.routing.drain_sessions = frozenset()

    # --- Controller protocol --------------------------------------------------------------

    def next_wakeup_s(self, now_s: float) -> float | None:
        if not self._started:
            return self.releases[self.release][0]
        next_release = (
            self.releases[self.release + 1][0]
            if self.release + 1 < len(self.releases)
            else math.inf
        )
        if self.finished:
            return next_release if math.isfinite(next_release) else None
        wake = min(self._next_analysis_s, next_release)
        if self._step < len(self._steps) and not self.held:
            wake = min(wake, self._step_until_s)
        if self._kill_s is not None:
            wake = min(wake, self._kill_s)
        return wake if math.isfinite(wake) else None

    def tick(self, now_s: float, settled: int) -> None:
        """Act at ``now_s``: releases, the kill switch, analyses and steps due by then.

        The engine compares ``routing`` before and after to decide on cache flushes.
        """
        if self.release + 1 < len(self.releases) and now_s >= self.releases[self.release + 1][0]:
            self._next_release(now_s, settled)
        if not self._started:
            self._started = True
            self.started_s = now_s
            self._step_until_s = now_s
            if self._interval_s is not None:
                self._next_analysis_s = now_s + self._interval_s
            self._run_steps(now_s)
        else:
            if self._kill_s is not None and now_s >= self._kill_s:
                self._kill_s = None
                if self.weight > 0 or self.mirror > 0:
                    self._rollback(now_s, self._current_step(), "kill switch")
            if not self.finished and now_s >= self._next_analysis_s:
                self._next_analysis_s += self._interval_s or math.inf
                self._analyse(now_s, settled)
            if not self.finished and not self.held and now_s >= self._step_until_s:
                self._run_steps(now_s)

    # --- release trains -----------------------------------------------------------------

    def _next_release(self, now_s: float, settled: int) -> None:
        """Close the current release and hand the next one to the policy."""
        self.monitor.settle(settled, now_s)
        if not self.finished and (self.weight > 0 or self.mirror > 0):
            self.weight = 0.0
            self.mirror = 0.0
            self.routing.candidate_threshold = 0
            self.routing.mirror_threshold = 0
            self.outcome = "superseded"
            self._decide(now_s, self._current_step(), "supersede", "the next release starts")
        self.release_log.append(self._release_summary())
        if self.outcome == "promoted":
            # The promoted release is production now: the next one rolls out behind it.
            self.routing.baseline = self.routing.candidate
            self.routing.candidate_threshold = 0
        self.release += 1
        self.routing.candidate = self.releases[self.release][1]
        self._reset()

    # --- steps ----------------------------------------------------------------------------

    def _current_step(self) -> int:
        return max(self._step - 1, 0)

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
                what = (
                    f"mirror {value:g}% of baseline traffic to the candidate"
                    if value
                    else "stop mirroring"
                )
                self._decide(now_s, step, "mirror", f"step {step}: {what}")
            else:  # pause
                self._step_until_s = now_s + value
                self._decide(now_s, step, "pause", f"step {step}: pause {value:g} s")
                return

    def _set_weight(self, now_s: float, weight: float, step: int, reason: str) -> None:
        if weight == self.weight:
            return
        self.weight = weight
        self.max_weight = max(self.max_weight, weight)
        self.routing.candidate_threshold = threshold_for(weight)
        self._weight_changed_s = now_s
        if weight > 0 and self.first_exposure_s is None:
            self.first_exposure_s = now_s
        self._decide(now_s, step, "set_weight", reason)

    def _promote(self, now_s: float, step: int, reason: str) -> None:
        self._set_weight(now_s, 100.0, step, f"promote: {reason}")
        self.mirror = 0.0
        self.routing.mirror_threshold = 0
        self.outcome = "promoted"
        self.promote_s = now_s
        self._decide(now_s, step, "promote", reason)
        # Big-bang and blue-green keep analysing after the switch (post-promotion analysis
        # can still roll back); a ramp that reached 100 % has nothing left to compare against.
        if self.config.policy not in ("big_bang", "blue_green") or self._interval_s is None:
            self.finished = True

    def _rollback(self, now_s: float, step: int, reason: str) -> None:
        if self.config.on_rollback_sessions == "drain" and self.weight > 0:
            arrived = self.monitor.arrived(now_s)
            rec = self.monitor.records
            on_candidate = rec.version[:arrived] == self.candidate
            self.routing.drain_sessions = frozenset(
                np.unique(self.monitor.session[:arrived][on_candidate]).tolist()
            )
        self.weight = 0.0
        self.mirror = 0.0
        self.routing.candidate_threshold = 0
        self.routing.mirror_threshold = 0
        self._weight_changed_s = now_s
        self.outcome = "rolled_back"
        self.rollback_s = now_s
        self.finished = True
        drained = len(self.routing.drain_sessions)
        suffix = f"; {drained} sessions in progress drain on the candidate" if drained else ""
        self._decide(now_s, step, "rollback", reason + suffix)

    def _decide(
        self,
        now_s: float,
        step: int,
        action: str,
        reason: str,
        numbers: dict[str, float] | None = None,
    ) -> None:
        self.decisions.append(
            Decision(now_s, step, action, reason, self.weight, numbers or {}, self.release + 1)
        )

    # --- analysis -------------------------------------------------------------------------

    def _analyse(self, now_s: float, settled: int) -> None:
        window_start = self.monitor.window_start_s
        windows = self.monitor.settle(settled, now_s)
        analysis = self.config.analysis
        if analysis is None or self.finished:
            return
        base, cand = windows[self.baseline], windows[self.candidate]
        shadow_only = self.weight == 0 and cand.shadow_requests > 0
        if self.weight == 0 and not shadow_only:
            return
        step = self._current_step()
        numbers = {
            "candidate.requests": float(cand.requests),
            "baseline.requests": float(base.requests),
            "candidate.latency_ms.p99": cand.latency_p99_ms,
            "baseline.latency_ms.p99": base.latency_p99_ms,
            "candidate.ctr": cand.metric("ctr"),
            "baseline.ctr": base.metric("ctr"),
        }
        if shadow_only:
            numbers["candidate.shadow_requests"] = float(cand.shadow_requests)
            numbers["candidate.shadow_latency_ms.p99"] = cand.shadow_latency_p99_ms
        observed = cand.shadow_requests if shadow_only else cand.requests
        if observed < analysis.min_requests:
            self._decide(
                now_s,
                step,
                "analysis",
                f"skipped: {observed} candidate requests < min_requests {analysis.min_requests}",
                numbers,
            )
            return
        self.analyses += 1
        problems: list[str] = []
        srm = self._srm(base, cand, window_start, numbers)
        if srm:
            problems.append(srm)
        problems += [
            r for g in self.config.guardrails if (r := self._breach(g, base, cand, shadow_only))
        ]
        verdict = "fail" if problems else "pass"
        reason = "; ".join(problems) if problems else "guardrails ok"
        if self.config.gate is not None and not shadow_only and 0 < self.weight < 100:
            decision, gate_reason, gate_numbers = self._gate()
            numbers.update(gate_numbers)
            if decision == "worse":
                verdict = "fail"
                reason = f"{reason}; {gate_reason}" if problems else gate_reason
            elif not problems:
                verdict = "pass" if decision == "better" else "inconclusive"
                reason = f"guardrails ok; {gate_reason}"
        if shadow_only:
            reason = f"shadow traffic: {reason}"
        self._decide(now_s, step, "analysis", f"{verdict}: {reason}", numbers)
        self._apply(now_s, step, verdict)

    def _apply(self, now_s: float, step: int, verdict: str) -> None:
        analysis = self.config.analysis
        assert analysis is not None
        if verdict == "fail":
            self.failures += 1
            self.success_streak = 0
            self.inconclusive_streak = 0
            if self.first_failure_s is None:
                self.first_failure_s = now_s
            if self.failures >= analysis.failure_limit:
                if self.config.on_failure == "rollback":
                    self._rollback(now_s, step, f"failure_limit {analysis.failure_limit} reached")
                else:
                    self.held = True
                    self.outcome = "held"
                    self._decide(
                        now_s,
                        step,
                        "hold",
                        f"failure_limit {analysis.failure_limit} reached; on_failure = hold",
                    )
            return
        policy = self.config.policy
        if policy == "bandit":
            self._bandit_step(now_s, step)
        if verdict == "inconclusive":
            self.inconclusive_streak += 1
            self.success_streak = 0
            if (
                self.inconclusive_streak >= analysis.inconclusive_limit
                and not self.held
                and policy in ("staged", "shadow_then_canary")
            ):
                self.held = True
                self.outcome = "inconclusive"
                self._decide(
                    now_s,
                    step,
                    "hold",
                    f"inconclusive_limit {analysis.inconclusive_limit} reached: paused "
                    "for a person to decide",
                )
            return
        self.success_streak += 1
        self.inconclusive_streak = 0
        if self.held and self.outcome == "inconclusive":
            self.held = False
            self.outcome = "in_progress"
            self._decide(now_s, step, "resume", "analysis passed after an inconclusive hold")
        if policy == "adaptive" and not self.finished:
            self._rung = min(self._rung + 1, len(self.config.ramp) - 1)
            target = self.config.ramp[self._rung]
            self._set_weight(
                now_s, target, step, f"adaptive: analysis passed, advance to {target:g}%"
            )
            if target >= 100.0:
                self._promote(now_s, step, "adaptive ramp reached 100%")
        gated_canary = policy in ("canary", "shadow_then_canary") and self.config.gate is not None
        if (
            gated_canary
            and self.weight > 0
            and self.success_streak >= analysis.consecutive_success_limit
            and not self.finished
        ):
            self._promote(
                now_s, step, f"{analysis.consecutive_success_limit} successful analyses in a row"
            )

    def _bandit_step(self, now_s: float, step: int) -> None:
        """Thompson sampling: weight = P(candidate CTR > baseline CTR) under Beta posteriors."""
        totals = self.monitor.totals
        base, cand = totals[self.baseline], totals[self.candidate]
        draws = 4_000
        p_base = self.rng.beta(1 + base.clicks, 1 + base.requests - base.clicks, draws)
        p_cand = self.rng.beta(1 + cand.clicks, 1 + cand.requests - cand.clicks, draws)
        p_better = float((p_cand > p_base).mean())
        bounds = self.config.bandit
        if p_better >= bounds.promote_at:
            self._promote(
                now_s,
                step,
                f"bandit: P(candidate better) = {p_better:.3f} >= {bounds.promote_at:g}",
            )
            return
        target = float(np.clip(round(100 * p_better, 1), bounds.min_weight, bounds.max_weight))
        self._set_weight(now_s, target, step, f"bandit: P(candidate better) = {p_better:.3f}")

    def _srm(
        self, base: WindowStats, cand: WindowStats, window_start: float, numbers: dict[str, float]
    ) -> str:
        """Sample-ratio mismatch on distinct units, when the split held still all window."""
        if (
            not 0 < self.weight < 100
            or self._weight_changed_s > window_start
            or self.config.policy == "bandit"
        ):
            return ""
        total = base.units + cand.units
        if total < 100:
            return ""
        expected = self.weight / 100.0
        result = srm_check(
            [cand.units, base.units], [expected, 1 - expected], alpha=self.config.srm_alpha
        )
        numbers["srm.p_value"] = result.p_value
        numbers["srm.candidate_units"] = float(cand.units)
        numbers["srm.baseline_units"] = float(base.units)
        if result.mismatch:
            share = cand.units / total
            return (
                f"sample ratio mismatch: candidate has {share:.2%} of {total} units, "
                f"expected {expected:.2%} (p={result.p_value:.2g})"
            )
        return ""

    def _gate(self) -> tuple[str, str, dict[str, float]]:
        gate = self.config.gate
        assert gate is not None
        # Clustered by the sticky unit: requests of one user are not independent.
        control = self.monitor.clustered_ctr(self.baseline)
        treatment = self.monitor.clustered_ctr(self.candidate)
        if self.gate_test is None:
            mde_abs = gate.mde_relative * max(control.mean, 1e-6)
            self.gate_test = SequentialTest(gate.alpha, mixing_variance_for_mde(mde_abs))
        result = self.gate_test.update(control, treatment)
        numbers = {
            "gate.p_value": result.p_value,
            "gate.log_lambda": result.log_lambda,
            "gate.difference": result.difference,
            "gate.candidate_units": float(treatment.n),
        }
        reason = (
            f"ctr mSPRT {result.decision} (diff {result.difference:+.4f}, "
            f"always-valid p={result.p_value:.3g})"
        )
        return result.decision, reason, numbers

    def _breach(self, guard: Guardrail, base: WindowStats, cand: WindowStats, shadow: bool) -> str:
        metric = guard.metric
        if shadow:
            value_or_none = cand.shadow_metric(metric)
            if value_or_none is None:
                return ""  # not observable on mirrored traffic (e.g. CTR): nobody saw it
            value = value_or_none
        else:
            value = cand.metric(metric)
        label = f"shadow {metric}" if shadow else metric
        if guard.max is not None and value > guard.max:
            return f"{label} {value:.4g} > max {guard.max:g}"
        if guard.min is not None and value < guard.min:
            return f"{label} {value:.4g} < min {guard.min:g}"
        if base.requests == 0:
            return ""
        bounds = [(guard.min_relative_to_baseline, "min"), (guard.max_relative_to_baseline, "max")]
        for bound, side in bounds:
            if bound is None:
                continue
            if metric in RATE_METRICS and not shadow:
                control = self.monitor.clustered_window_rate(self.baseline, metric)
                treatment = self.monitor.clustered_window_rate(self.candidate, metric)
                result = guardrail_worse(
                    control,
                    treatment,
                    margin=abs(bound),
                    relative=True,
                    higher_is_better=side == "min",
                    alpha=self._gate_alpha,
                    metric=metric,
                )
                if result.worse:
                    return result.reason
                continue
            reference = base.metric(metric)
            if not (math.isfinite(reference) and reference > 0 and math.isfinite(value)):
                continue
            change = value / reference - 1.0
            if (side == "max" and change > bound) or (side == "min" and change < bound):
                return (
                    f"{label} {value:.4g} is {change:+.1%} vs baseline {reference:.4g} "
                    f"({side} {bound:+.1%})"
                )
        return ""

    # --- end of run -------------------------------------------------------------------------

    def _release_summary(self) -> dict[str, Any]:
        summary = self._timings()
        summary.update(
            release=self.release + 1,
            version=self.monitor.version_names[self.candidate],
            started_s=self.started_s,
        )
        return summary

    def summary(self) -> dict[str, Any]:
        out = self._timings()
        if len(self.releases) > 1:
            releases = [*self.release_log, self._release_summary()]
            out["releases"] = {r["version"]: r for r in releases}
            out["promoted_releases"] = sum(r["outcome"] == "promoted" for r in releases)
            out["production"] = self.monitor.version_names[
                self.candidate if self.outcome == "promoted" else self.baseline
            ]
        return out

    def _timings(self) -> dict[str, Any]:
        start = self.first_exposure_s

        def since_start(t: float | None) -> float | None:
            return None if t is None or start is None else t - start

        return {
            "policy": self.config.policy,
            "outcome": self.outcome,
            "final_weight": self.weight,
            "max_candidate_weight": self.max_weight,
            "analyses": self.analyses,
            "failures": self.failures,
            "first_exposure_s": start,
            "time_to_detect_s": since_start(self.first_failure_s),
            "time_to_rollback_s": since_start(self.rollback_s),
            "time_to_promote_s": since_start(self.promote_s),
            "rollback_at_s": self.rollback_s,
            "first_failure_at_s": self.first_failure_s,
        }
