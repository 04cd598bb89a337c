"""Guardrails judged on evidence, under one error budget for all of them.

A guardrail bounds one candidate metric, absolutely (``min`` / ``max``) or relative to the
baseline (``min_relative_to_baseline`` / ``max_relative_to_baseline``).  Every bound is a
one-sided test at every analysis: it is breached only when a confidence bound of the
window's metric lies beyond it (``sim.bounds``), never on the point estimate alone:

=================================  =======================================================
metric                             evidence
=================================  =======================================================
latency_ms.p50 / p95 / p99,        order-statistic bounds on the quantile (distribution-free);
model_latency_ms.p50 / p95 / p99
                                   relative: candidate's bound over the baseline's opposite
                                   bound, each at half the level
timeout, error, fallback, abandon, rates clustered by sticky unit (delta method); relative:
cache hit rate, ctr                the delta-method bound on μ_t / μ_c − 1
diversity, stability               request-weighted means of the users' lists, clustered by
                                   unit; relative as for rates
ece                                simultaneous Clopper–Pearson bounds per bin; relative as
                                   for latency
=================================  =======================================================

The level of each bound at each analysis comes from ``analysis.guardrail_alpha``: Bonferroni
across the K bounds, and a union bound across the L planned analyses given that
``failure_limit`` f failures roll back (``sim.bounds.look_alpha``):

    α_bound = (guardrail_alpha / C(L, f))^(1/f) / K

so a candidate within every bound is rolled back by guardrails with probability at most
``guardrail_alpha`` over the whole rollout (windows of disjoint requests taken as
independent).  While the candidate only receives mirrored copies, latency and the
timeout / error rates are read on the copies; metrics nobody saw (CTR, list quality) wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from sim.bounds import (
    Bounds,
    calibration_error_bounds,
    look_alpha,
    mean_bounds,
    quantile_bounds,
    ratio_bounds,
    relative_change_bounds,
)
from sim.monitor import LIST_MEANS, RATE_METRICS
from sim.policies.settings import Guardrail, Rollout
from sim.stats import ArmStats
from sim.wording import guardrail_breach

__all__ = ["QUANTILES", "GuardrailBudget", "GuardrailJudge", "WindowEvidence", "bound_count"]

#: Latency metrics and the quantile each one is (``model_``: the model's own answers only).
QUANTILES = {
    f"{kind}.p{q}": q / 100 for kind in ("latency_ms", "model_latency_ms") for q in (50, 95, 99)
}
#: What mirrored copies measure: their latency, and how many of them were dropped.
_ON_SHADOW = frozenset({*QUANTILES, "timeout_rate", "error_rate"})
_BOUND_FIELDS = ("min", "max", "min_relative_to_baseline", "max_relative_to_baseline")


class WindowEvidence(Protocol):
    """The last settled window, request by request (``sim.monitor.Monitor`` provides it)."""

    def window_latencies(
        self, version: int, *, shadow: bool = False, model: bool = False
    ) -> np.ndarray: ...

    def clustered_window_rate(
        self, version: int, metric: str, *, shadow: bool = False
    ) -> ArmStats: ...

    def clustered_window_mean(self, version: int, name: str) -> ArmStats: ...

    def window_predictions(self, version: int) -> tuple[np.ndarray, np.ndarray]: ...


def bound_count(guardrails: list[Guardrail]) -> int:
    """K: how many one-sided bounds the guardrails set (each is one test per analysis)."""
    return sum(getattr(g, name) is not None for g in guardrails for name in _BOUND_FIELDS)


@dataclass(frozen=True, slots=True)
class GuardrailBudget:
    """How ``alpha`` is spent: ``per_bound`` is the level of one bound at one analysis."""

    alpha: float
    looks: int  # L, analyses the run can hold: floor(horizon / interval), at least 1
    failure_limit: int  # f
    bounds: int  # K
    per_bound: float

    @classmethod
    def plan(cls, config: Rollout, horizon_s: float) -> GuardrailBudget | None:
        """The budget of a rollout whose analyses can run for ``horizon_s`` seconds."""
        analysis = config.analysis
        bounds = bound_count(config.guardrails)
        if analysis is None or bounds == 0:
            return None
        looks = max(1, math.floor(horizon_s / analysis.interval + 1e-9))
        per_bound = look_alpha(
            analysis.guardrail_alpha,
            looks=looks,
            failure_limit=analysis.failure_limit,
            bounds=bounds,
        )
        return cls(analysis.guardrail_alpha, looks, analysis.failure_limit, bounds, per_bound)


class GuardrailJudge:
    """Judges guardrails on the monitor's last settled window at the budget's level."""

    def __init__(self, monitor: WindowEvidence, budget: GuardrailBudget) -> None:
        self.monitor = monitor
        self.budget = budget

    def breach(
        self,
        guard: Guardrail,
        *,
        baseline: int,
        candidate: int,
        shadow: bool,
        numbers: dict[str, float],
    ) -> str:
        """Why ``guard`` is breached in this window, or ``""``; bounds go to ``numbers``."""
        metric = guard.metric
        if shadow and metric not in _ON_SHADOW:
            return ""  # not observable on mirrored traffic (e.g. CTR): nobody saw it
        alpha = self.budget.per_bound
        label = f"shadow {metric}" if shadow else metric
        key = f"guardrail.{label.replace(' ', '.')}"
        if guard.min is not None or guard.max is not None:
            value = self._absolute(metric, candidate, shadow, alpha)
            numbers[f"{key}.lower"] = value.lower
            numbers[f"{key}.upper"] = value.upper
            if guard.max is not None and value.lower > guard.max:
                return _breach(label, value, "max", guard.max, relative=False)
            if guard.min is not None and value.upper < guard.min:
                return _breach(label, value, "min", guard.min, relative=False)
        if guard.min_relative_to_baseline is None and guard.max_relative_to_baseline is None:
            return ""
        change = self._relative(metric, baseline, candidate, shadow, alpha)
        numbers[f"{key}.relative.lower"] = change.lower
        numbers[f"{key}.relative.upper"] = change.upper
        top, bottom = guard.max_relative_to_baseline, guard.min_relative_to_baseline
        if top is not None and change.lower > top:
            return _breach(f"{label} vs baseline", change, "max", top, relative=True)
        if bottom is not None and change.upper < bottom:
            return _breach(f"{label} vs baseline", change, "min", bottom, relative=True)
        return ""

    def _stats(self, metric: str, version: int, shadow: bool) -> ArmStats:
        if metric in LIST_MEANS:
            return self.monitor.clustered_window_mean(version, metric)
        return self.monitor.clustered_window_rate(version, metric, shadow=shadow)

    def _absolute(self, metric: str, version: int, shadow: bool, alpha: float) -> Bounds:
        monitor = self.monitor
        if metric in QUANTILES:
            latencies = monitor.window_latencies(
                version, shadow=shadow, model=metric.startswith("model_")
            )
            return quantile_bounds(latencies, QUANTILES[metric], alpha)
        if metric == "ece":
            return calibration_error_bounds(*monitor.window_predictions(version), alpha)
        if metric in RATE_METRICS or metric in LIST_MEANS:
            return mean_bounds(self._stats(metric, version, shadow), alpha)
        raise ValueError(f"no evidence for guardrail metric {metric!r}")

    def _relative(
        self, metric: str, baseline: int, candidate: int, shadow: bool, alpha: float
    ) -> Bounds:
        if metric in RATE_METRICS or metric in LIST_MEANS:
            control = self._stats(metric, baseline, False)
            return relative_change_bounds(control, self._stats(metric, candidate, shadow), alpha)
        # Quantiles and ECE: a ratio of the two versions' bounds, each at half the level.
        treatment = self._absolute(metric, candidate, shadow, alpha / 2)
        return ratio_bounds(treatment, self._absolute(metric, baseline, False, alpha / 2))


def _breach(
    label: str, value: Bounds, side: Literal["min", "max"], limit: float, *, relative: bool
) -> str:
    return guardrail_breach(
        label,
        estimate=value.estimate,
        side=side,
        limit=limit,
        bound=value.lower if side == "max" else value.upper,
        alpha=value.alpha,
        relative=relative,
    )
