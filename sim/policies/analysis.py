"""Automated canary analysis: one analysis turns a settled window into pass, fail or
inconclusive (Argo Rollouts' words), with the reason and the numbers it saw.

An analysis, in order:

* a window with fewer than ``analysis.min_requests`` candidate requests is skipped;
* a sample-ratio-mismatch check (chi-square of distinct units per arm against the weight,
  when the weight held still for the whole window and the policy keeps a fixed split) — a
  mismatch fails the analysis;
* guardrails on the candidate's window (absolute bounds, or bounds relative to the baseline
  judged by a one-sided non-inferiority test for rates) — any breach fails it.  While the
  candidate only receives mirrored traffic (shadow phases) guardrails read the shadow copies;
* the primary gate: CTR judged by an always-valid mSPRT on everything seen since the
  candidate first got users (safe to peek at every interval): ``worse`` fails, ``better``
  passes, otherwise the analysis is inconclusive.

``Evidence`` is what the controller reads; ``Analyst`` reads it from the ``Monitor``, and
tests substitute a scripted one to check a policy's decisions exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sim.monitor import RATE_METRICS, Monitor, WindowStats
from sim.policies.decisions import Verdict
from sim.policies.measurements import Measurement, MeasurementRequest
from sim.policies.settings import Guardrail, Rollout
from sim.router import drain_deadlines
from sim.stats import SequentialTest, guardrail_worse, mixing_variance_for_mde, srm_check

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
    """``Evidence`` from the monitor: windows, the gate, guardrails and the SRM check."""

    def __init__(self, config: Rollout, monitor: Monitor) -> None:
        self.config = config
        self.monitor = monitor
        self.gate_test: SequentialTest | None = None

    @property
    def _alpha(self) -> float:
        return self.config.gate.alpha if self.config.gate else 0.05

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
        problems += [
            r
            for g in self.config.guardrails
            if (r := self._breach(g, base, cand, arms, shadow_only))
        ]
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

    def _breach(
        self, guard: Guardrail, base: WindowStats, cand: WindowStats, arms: Arms, shadow: bool
    ) -> str:
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
                control = self.monitor.clustered_window_rate(arms.baseline, metric)
                treatment = self.monitor.clustered_window_rate(arms.candidate, metric)
                result = guardrail_worse(
                    control,
                    treatment,
                    margin=abs(bound),
                    relative=True,
                    higher_is_better=side == "min",
                    alpha=self._alpha,
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
