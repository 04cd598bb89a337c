"""Automated canary analysis: one analysis turns a settled window into pass, fail or
inconclusive (Argo Rollouts' words), with the reason and the numbers it saw.

An analysis, in order:

* a window with fewer than ``analysis.min_requests`` candidate requests is skipped;
* a sample-ratio-mismatch check (chi-square of distinct units per arm against the weight,
  when the weight held still for the whole window and the policy keeps a fixed split) — a
  mismatch fails the analysis;
* guardrails on the candidate's window, each bound judged on evidence (a one-sided
  confidence bound beyond it, not the point estimate) at a level that shares
  ``analysis.guardrail_alpha`` across every bound and every planned analysis
  (``sim.policies.guardrails``) — any breach fails it.  While the candidate only receives
  mirrored traffic (shadow phases) guardrails read the shadow copies;
* the primary gate: CTR judged by an always-valid mSPRT on everything seen since the
  candidate first got users (safe to peek at every interval): ``worse`` fails, ``better``
  passes, otherwise the analysis is inconclusive.

``Evidence`` is what the controller reads; ``Analyst`` reads it from the ``Monitor``, and
tests substitute a scripted one to check a policy's decisions exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sim.monitor import Monitor, WindowStats
from sim.policies.decisions import Verdict
from sim.policies.guardrails import GuardrailBudget, GuardrailJudge
from sim.policies.measurements import Measurement, MeasurementRequest
from sim.policies.settings import Rollout
from sim.router import drain_deadlines
from sim.stats import SequentialTest, mixing_variance_for_mde, srm_check

__all__ = ["AnalysisResult", "Analyst", "ArmTotals", "Arms", "Evidence", "Window"]


@dataclass(frozen=True, slots=True)
class Arms:
    """The controller's state an analysis depends on."""

    baseline: int
    candidate: int
    weight: float  # percent of eligible units on the candidate
    weight_changed_s: float  # when the weight last changed
    check_srm: bool  # the policy keeps a fixed split the SRM check can test
    #: Measurements the policy asks for (analysis runs, metric checks); none: judge the window.
    measure: tuple[MeasurementRequest, ...] = ()


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """``verdict`` None means the window was skipped (too little traffic): it does not count."""

    verdict: Verdict | None
    reason: str
    numbers: dict[str, float] = field(default_factory=dict)
    #: One per requested measurement (``Arms.measure``), in request order.
    measurements: tuple[Measurement, ...] = ()


@dataclass(frozen=True, slots=True)
class ArmTotals:
    """Everything one version has served since the run began (Bernoulli clicks)."""

    requests: int
    clicks: int


@dataclass(frozen=True, slots=True)
class Window:
    """A settled analysis window with enough candidate traffic to be judged."""

    baseline: WindowStats
    candidate: WindowStats
    start_s: float
    shadow_only: bool  # the candidate only got mirrored copies
    numbers: dict[str, float]


class Evidence(Protocol):
    """What a rollout controller reads about the traffic."""

    def settle(self, until_s: float) -> None:
        """Close the current window: the arrivals before ``until_s`` are final."""
        ...

    def analyse(self, until_s: float, arms: Arms) -> AnalysisResult | None:
        """Close the window and judge it; None when the candidate had no traffic at all."""
        ...

    def totals(self, version: int) -> ArmTotals: ...

    def restart(self) -> None:
        """A new release: the gate's sequential test starts over."""
        ...

    def drain_deadlines(self, version: int, now_s: float) -> npt.NDArray[np.float64]:
        """Per unit, until when its sessions in flight on ``version`` last (see the router)."""
        ...


class Analyst:
    """``Evidence`` from the monitor: windows, the gate, guardrails and the SRM check.

    ``horizon_s`` is how long analyses can run (the run's duration): it sets how many
    analyses the guardrail budget is shared across.
    """

    def __init__(self, config: Rollout, monitor: Monitor, *, horizon_s: float) -> None:
        self.config = config
        self.monitor = monitor
        self.gate_test: SequentialTest | None = None
        self.guardrail_budget = GuardrailBudget.plan(config, horizon_s)
        self._judge = (
            GuardrailJudge(monitor, self.guardrail_budget) if self.guardrail_budget else None
        )

    def restart(self) -> None:
        self.gate_test = None

    def settle(self, until_s: float) -> None:
        self.monitor.settle(until_s)

    def totals(self, version: int) -> ArmTotals:
        running = self.monitor.totals[version]
        return ArmTotals(running.requests, running.clicks)

    def drain_deadlines(self, version: int, now_s: float) -> npt.NDArray[np.float64]:
        monitor = self.monitor
        arrived = monitor.arrived(now_s)
        return drain_deadlines(
            version=version,
            now_s=now_s,
            arrived_version=monitor.records.version[:arrived],
            arrived_session=monitor.session[:arrived],
            session_unit=monitor.session_unit,
            session_end_s=monitor.session_end_s,
            n_units=monitor.n_units,
        )

    def open_window(self, until_s: float, arms: Arms) -> Window | AnalysisResult | None:
        """Settle the window: None without candidate traffic, a skipped result below
        ``min_requests``, else what a judgement of the window reads."""
        analysis = self.config.analysis
        assert analysis is not None
        window_start = self.monitor.window_start_s
        windows = self.monitor.settle(until_s)
        base, cand = windows[arms.baseline], windows[arms.candidate]
        shadow_only = arms.weight == 0 and cand.shadow_requests > 0
        if arms.weight == 0 and not shadow_only:
            return None
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
            return AnalysisResult(
                None,
                f"skipped: {observed} candidate requests < min_requests {analysis.min_requests}",
                numbers,
            )
        return Window(base, cand, window_start, shadow_only, numbers)

    def analyse(self, until_s: float, arms: Arms) -> AnalysisResult | None:
        opened = self.open_window(until_s, arms)
        if not isinstance(opened, Window):
            return opened
        base, cand, window_start = opened.baseline, opened.candidate, opened.start_s
        shadow_only, numbers = opened.shadow_only, opened.numbers
        problems: list[str] = []
        if arms.check_srm and arms.weight_changed_s <= window_start:
            srm = self._srm(base, cand, arms.weight, numbers)
            if srm:
                problems.append(srm)
        if self._judge is not None:
            numbers["guardrails.alpha_per_bound"] = self._judge.budget.per_bound
            for guard in self.config.guardrails:
                breach = self._judge.breach(
                    guard,
                    baseline=arms.baseline,
                    candidate=arms.candidate,
                    shadow=shadow_only,
                    numbers=numbers,
                )
                # What the guardrail saw and whether it held, for the report's analysis grid.
                seen = (
                    cand.shadow_metric(guard.metric) if shadow_only else cand.metric(guard.metric)
                )
                if seen is not None:
                    numbers[f"guardrail.{guard.metric}"] = seen
                numbers[f"guardrail.{guard.metric}.breach"] = float(bool(breach))
                if breach:
                    problems.append(breach)
        verdict: Verdict = "fail" if problems else "pass"
        reason = "; ".join(problems) if problems else "guardrails ok"
        if self.config.gate is not None and not shadow_only and 0 < arms.weight < 100:
            decision, gate_reason, gate_numbers = self._gate(arms)
            numbers.update(gate_numbers)
            if decision == "worse":
                verdict = "fail"
                reason = f"{reason}; {gate_reason}" if problems else gate_reason
            elif not problems:
                verdict = "pass" if decision == "better" else "inconclusive"
                reason = f"guardrails ok; {gate_reason}"
        if shadow_only:
            reason = f"shadow traffic: {reason}"
        return AnalysisResult(verdict, f"{verdict}: {reason}", numbers)

    def _srm(
        self, base: WindowStats, cand: WindowStats, weight: float, numbers: dict[str, float]
    ) -> str:
        """Sample-ratio mismatch on distinct units, when the split held still all window."""
        if not 0 < weight < 100:
            return ""
        total = base.units + cand.units
        if total < 100:
            return ""
        expected = weight / 100.0
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

    def _gate(self, arms: Arms) -> tuple[str, str, dict[str, float]]:
        gate = self.config.gate
        assert gate is not None
        # Clustered by the sticky unit: requests of one user are not independent.
        control = self.monitor.clustered_ctr(arms.baseline)
        treatment = self.monitor.clustered_ctr(arms.candidate)
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
