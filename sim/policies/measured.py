"""Evidence that takes measurements: Argo Rollouts' metrics, Flagger's checks, Kayenta scores.

``MeasuredAnalyst`` answers the measurements a policy asks for (``Arms.measure``).  Each
reads a lab number (``MetricBinding``) over the settled arrivals of its own window
``[since, now)`` — a provider query's look-back — for the candidate (its mirrored copies while
it only gets those), the baseline, or their ratio or difference, scaled.  Without data a
Prometheus-shaped vector is ``[]`` and a scalar is nil, as a provider returns them.

* An Argo Rollouts metric judges the value with its conditions (``measurement_phase``; the
  condition language is injected: it is parsed where manifests are read).
* A Kayenta metric scores the canary against the baseline over the window, one sample per
  arm per ``kayenta.step``: Successful at the pass score, Inconclusive at the marginal one,
  else Failed.
* A Flagger check fails without data ("no values found") or outside ``[min, max]``.

For the other policies it is the plain ``Analyst``, except that a ``[rollout.kayenta]``
configuration judges each analysis window by its score (pass, marginal → inconclusive, fail)
in place of guardrails and gate.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.kayenta import KayentaScore, ScoreClass, classify_metric, score_canary
from sim.monitor import Monitor, WindowStats
from sim.policies.analysis import AnalysisResult, Analyst, Arms, Window
from sim.policies.analysis_run import ConditionEvaluator, measurement_phase
from sim.policies.decisions import Verdict
from sim.policies.measurements import Measurement, MeasurementPhase, MeasurementRequest
from sim.policies.registry import POLICIES
from sim.policies.run_settings import FlaggerCheck, Kayenta, LabMetric, MetricBinding, RunMetric
from sim.policies.settings import Rollout

__all__ = ["MeasuredAnalyst", "lab_value"]

#: A Kayenta score's class as an analysis verdict: marginal is neither pass nor fail.
_VERDICTS: dict[ScoreClass, Verdict] = {"pass": "pass", "marginal": "inconclusive", "fail": "fail"}


def lab_value(stats: WindowStats, metric: LabMetric, *, shadow: bool = False) -> float | None:
    """A version's number over a window (None without requests); ``shadow`` reads the
    mirrored copies, where only latency and failures can be seen (None otherwise)."""
    duration = max(stats.t_end_s - stats.t_start_s, 1e-9)
    if shadow:
        n = stats.shadow_requests
        if n == 0:
            return None
        if metric == "success_rate":
            return 1.0 - stats.shadow_dropped / n
        if metric == "requests":
            return float(n)
        if metric == "request_rate_per_s":
            return n / duration
        return stats.shadow_metric(metric)
    if stats.requests == 0:
        return None
    if metric == "success_rate":
        return stats.served / stats.requests
    if metric == "requests":
        return float(stats.requests)
    if metric == "request_rate_per_s":
        return stats.requests / duration
    return stats.metric(metric)


class MeasuredAnalyst(Analyst):
    """``Evidence`` that measures what the policy asks (see the module docstring)."""

    def __init__(
        self,
        config: Rollout,
        monitor: Monitor,
        *,
        evaluate: ConditionEvaluator,
        horizon_s: float,
    ) -> None:
        super().__init__(config, monitor, horizon_s=horizon_s)
        self.evaluate = evaluate

    def analyse(self, until_s: float, arms: Arms) -> AnalysisResult | None:
        if not arms.measure:
            if POLICIES[self.config.policy].schedules_measurements:
                self.monitor.settle(until_s)
                return None
            if self.config.kayenta is not None:
                return self._kayenta_window(until_s, arms)
            return super().analyse(until_s, arms)
        self.monitor.settle(until_s)
        measurements = tuple(self._measure(request, until_s, arms) for request in arms.measure)
        numbers = {f"{m.run}.{m.metric}": m.number for m in measurements if m.number is not None}
        return AnalysisResult(None, "measured", numbers, measurements)

    # --- one measurement ------------------------------------------------------------------

    def _measure(self, request: MeasurementRequest, until_s: float, arms: Arms) -> Measurement:
        spec = request.spec
        if isinstance(spec, FlaggerCheck):
            return self._check(request, spec, until_s, arms)
        if spec.kayenta is not None:
            return self._kayenta_metric(request, spec, until_s, arms)
        assert spec.measure is not None
        value = self._bound_value(spec.measure, request.since_s, until_s, arms)
        vector = spec.measure.shape == "vector"
        result: Any = ([] if value is None else [value]) if vector else value
        phase, message = measurement_phase(spec, result, self.evaluate)
        return Measurement(request.run, spec.name, phase, _shown(result), message, value)

    def _check(
        self, request: MeasurementRequest, check: FlaggerCheck, until_s: float, arms: Arms
    ) -> Measurement:
        value = self._bound_value(check.measure, request.since_s, until_s, arms)
        if value is None:
            return Measurement(request.run, check.name, "Failed", "nil", "no values found")
        shown = f"{value:.6g}"
        if check.min is not None and value < check.min:
            return Measurement(
                request.run, check.name, "Failed", shown, f"< min {check.min:g}", value
            )
        if check.max is not None and value > check.max:
            return Measurement(
                request.run, check.name, "Failed", shown, f"> max {check.max:g}", value
            )
        return Measurement(request.run, check.name, "Successful", shown, "", value)

    def _kayenta_metric(
        self, request: MeasurementRequest, spec: RunMetric, until_s: float, arms: Arms
    ) -> Measurement:
        thresholds = spec.kayenta
        assert thresholds is not None and self.config.kayenta is not None
        score = self._score(self.config.kayenta, request.since_s, until_s, arms)
        phase: MeasurementPhase
        if score.critical_failures:
            phase = "Failed"
        elif score.score >= thresholds.pass_score:
            phase = "Successful"
        elif score.score >= thresholds.marginal_score:
            phase = "Inconclusive"
        else:
            phase = "Failed"
        return Measurement(
            request.run, spec.name, phase, f"score {score.score:.1f}", score.reason, score.score
        )

    def _bound_value(
        self, binding: MetricBinding, since_s: float, until_s: float, arms: Arms
    ) -> float | None:
        monitor = self.monitor
        cand = monitor.stats_between(arms.candidate, since_s, until_s)
        base = monitor.stats_between(arms.baseline, since_s, until_s)
        mirrored = cand.requests == 0 and cand.shadow_requests > 0
        candidate = lab_value(cand, binding.metric, shadow=mirrored)
        baseline = lab_value(base, binding.metric)
        value: float | None
        if binding.of == "candidate":
            value = candidate
        elif binding.of == "baseline":
            value = baseline
        elif candidate is None or baseline is None:
            value = None
        elif binding.of == "difference":
            value = candidate - baseline
        elif baseline == 0:
            # Prometheus divides like Go floats: x / 0 is ±Inf, 0 / 0 is NaN.
            value = math.nan if candidate == 0 else math.copysign(math.inf, candidate)
        else:
            value = candidate / baseline
        return None if value is None else value * binding.scale

    # --- Kayenta --------------------------------------------------------------------------

    def _score(self, config: Kayenta, since_s: float, until_s: float, arms: Arms) -> KayentaScore:
        """Kayenta's score of the candidate against the baseline over ``[since, until)``."""
        edges = np.arange(since_s, until_s, config.step)
        judgements = []
        for spec in config.metrics:
            experiment, control = [], []
            for start in edges:
                end = min(start + config.step, until_s)
                cand = self.monitor.stats_between(arms.candidate, start, end)
                base = self.monitor.stats_between(arms.baseline, start, end)
                mirrored = cand.requests == 0 and cand.shadow_requests > 0
                x = lab_value(cand, spec.measure.metric, shadow=mirrored)
                y = lab_value(base, spec.measure.metric)
                experiment.append(math.nan if x is None else x * spec.measure.scale)
                control.append(math.nan if y is None else y * spec.measure.scale)
            judgements.append(
                classify_metric(
                    spec.name,
                    experiment,
                    control,
                    direction=spec.direction,
                    allowed_increase=spec.allowed_increase,
                    allowed_decrease=spec.allowed_decrease,
                    confidence=config.confidence,
                    groups=spec.groups,
                    critical=spec.critical,
                    must_have_data=spec.must_have_data,
                )
            )
        return score_canary(
            judgements,
            group_weights=config.group_weights,
            pass_threshold=config.pass_score,
            marginal_threshold=config.marginal_score,
        )

    def _kayenta_window(self, until_s: float, arms: Arms) -> AnalysisResult | None:
        """The analysis window judged by a Kayenta score (classic policies)."""
        config = self.config.kayenta
        assert config is not None
        opened = self.open_window(until_s, arms)
        if not isinstance(opened, Window):
            return opened
        numbers = dict(opened.numbers)
        if arms.check_srm and arms.weight_changed_s <= opened.start_s:
            srm = self._srm(opened.baseline, opened.candidate, arms.weight, numbers)
            if srm:
                return AnalysisResult("fail", f"fail: {srm}", numbers)
        score = self._score(config, opened.start_s, until_s, arms)
        numbers["kayenta.score"] = score.score
        for judgement in score.judgements:
            if math.isfinite(judgement.ratio):
                numbers[f"kayenta.{judgement.name}.ratio"] = judgement.ratio
        verdict = _VERDICTS[score.classification]
        return AnalysisResult(verdict, f"{verdict}: kayenta {score.reason}", numbers)


def _shown(result: Any) -> str:
    """A measured value as Argo Rollouts shows it (``[0.97]``, ``nil``, ``NaN``)."""
    if result is None:
        return "nil"
    if isinstance(result, list):
        return "[" + ", ".join(_shown(v) for v in result) + "]"
    if isinstance(result, float) and math.isnan(result):
        return "NaN"
    if isinstance(result, float) and math.isinf(result):
        return "+Inf" if result > 0 else "-Inf"
    return f"{result:.6g}" if isinstance(result, float) else str(result)
