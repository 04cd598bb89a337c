"""Settings of the policies that speak Argo Rollouts' and Flagger's language.

These tables are what a manifest translates into, and can be written by hand in a scenario's
``[rollout]`` table too:

* ``templates`` — Argo Rollouts ``AnalysisTemplate``s: named lists of ``RunMetric``s, each a
  measurement of a lab metric (``MetricBinding``) judged by ``successCondition`` /
  ``failureCondition`` with Argo's limits (``failureLimit``, ``inconclusiveLimit``,
  ``consecutiveErrorLimit``, ``consecutiveSuccessLimit``, ``count``, ``interval``,
  ``initialDelay``, ``dryRun``), or by a Kayenta score (``kayenta``);
* ``background_analysis`` (``strategy.canary.analysis``) and the ``analysis`` step kind;
* ``blue_green`` — ``strategy.blueGreen``'s promotion settings and its analyses;
* ``flagger`` — a Flagger ``Canary``'s ``analysis``: weights or iterations, mirroring, its
  metric checks (``thresholdRange``) and webhooks as gates;
* ``kayenta`` — the canary configuration a Kayenta judge scores (metrics, groups, weights).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from sim.durations import parse_duration
from sim.policies.metric_names import LabMetric
from sim.schema import Duration, Inconsistent, NonNegInt, Percent, PositiveDuration, Table, ranged

#: A duration of at least a second: measurements more often than that only slow the lab down.
Seconds = Annotated[float, BeforeValidator(parse_duration), ranged(1, math.inf)]

__all__ = [
    "AnalysisTemplate",
    "BackgroundAnalysis",
    "BlueGreen",
    "Flagger",
    "FlaggerCheck",
    "Kayenta",
    "KayentaMetric",
    "KayentaThresholds",
    "LabMetric",
    "MetricBinding",
    "RunMetric",
    "RunRef",
    "Webhook",
]


Name = Annotated[str, Field(min_length=1, max_length=253)]


class MetricBinding(Table):
    """Which lab number a provider query stands for.

    ``of``: the candidate's value (on mirrored copies while it only gets those), the
    baseline's, their ``ratio`` (candidate / baseline) or ``difference`` (candidate −
    baseline).  ``scale`` multiplies it (100 for a percentage, 0.001 for ms → s).
    ``window``: how far back one measurement looks (a query's ``[5m]``); unset, the metric's
    interval, else one minute.  ``shape``: ``vector`` for Prometheus vectors (``result[0]``;
    ``[]`` without data) or ``scalar`` (nil without data).
    """

    metric: LabMetric
    of: Literal["candidate", "baseline", "ratio", "difference"] = "candidate"
    scale: Annotated[float, ranged(-1e12, 1e12)] = 1.0
    window: PositiveDuration | None = None
    shape: Literal["scalar", "vector"] = "scalar"


def _check_scores(pass_score: float, marginal_score: float) -> None:
    if marginal_score > pass_score:
        raise Inconsistent(
            ("marginal_score",), f"must be at most pass_score ({pass_score:g})", marginal_score
        )


class KayentaThresholds(Table):
    """A run metric judged by a Kayenta score: Successful ≥ ``pass_score``, Inconclusive ≥
    ``marginal_score``, else Failed; ``lookback`` scores everything since the run started."""

    pass_score: Annotated[float, ranged(0, 100)] = 95.0
    marginal_score: Annotated[float, ranged(0, 100)] = 75.0
    lookback: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> KayentaThresholds:
        _check_scores(self.pass_score, self.marginal_score)
        return self


class RunMetric(Table):
    """One metric of an analysis run, with Argo Rollouts' defaults.

    Without ``interval`` it is measured once; with ``interval`` and no ``count`` it is
    measured until the run is stopped.  ``failure_limit = -1`` disables the failure limit
    (then ``consecutive_success_limit`` must be set).
    """

    name: Name
    measure: MetricBinding | None = None
    kayenta: KayentaThresholds | None = None
    interval: Seconds | None = None
    count: NonNegInt | None = None
    initial_delay: Duration = 0.0
    failure_limit: Annotated[int, ranged(-1, math.inf)] = 0
    inconclusive_limit: NonNegInt = 0
    consecutive_error_limit: NonNegInt = 4
    consecutive_success_limit: NonNegInt = 0
    success_condition: str = ""
    failure_condition: str = ""
    dry_run: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> RunMetric:
        if (self.measure is None) == (self.kayenta is None):
            raise Inconsistent(("measure",), "must be set unless kayenta is (exactly one)", None)
        if self.count is not None and self.count > 1 and self.interval is None:
            raise Inconsistent(("interval",), "must be set when count > 1", None)
        if self.failure_limit < 0 and self.consecutive_success_limit == 0:
            raise Inconsistent(
                ("consecutive_success_limit",),
                "must be > 0 when failure_limit = -1 (one of the two limits must apply)",
                0,
            )
        return self

    @property
    def effective_count(self) -> int | None:
        """How many measurements complete the metric (None: until the run is stopped)."""
        if not self.count:
            return 1 if self.interval is None else None
        return self.count

    @property
    def lookback_s(self) -> float:
        """How far back one measurement looks."""
        if self.measure is not None and self.measure.window is not None:
            return self.measure.window
        return self.interval if self.interval is not None else 60.0


class AnalysisTemplate(Table):
    """An Argo Rollouts ``AnalysisTemplate``: the metrics a run measures."""

    metrics: Annotated[list[RunMetric], Field(min_length=1)]


class RunRef(Table):
    """An analysis run: the templates it merges and the metrics it runs in dry-run mode
    (regular expressions over metric names, Argo's ``dryRun[].metricName``)."""

    templates: Annotated[list[Name], Field(min_length=1)]
    dry_run: list[str] = []


class BackgroundAnalysis(RunRef):
    """``strategy.canary.analysis``: runs beside the steps from ``starting_step`` on."""

    starting_step: NonNegInt = 0


class BlueGreen(Table):
    """``strategy.blueGreen``: the preview takes mirrored traffic (``rollout.mirror`` percent,
    all of it unless set) while ``pre_promotion_analysis`` runs; then the switch, then
    ``post_promotion_analysis`` (cancelled ``scale_down_delay`` after the switch when set)."""

    auto_promotion_enabled: bool = True
    auto_promotion_seconds: PositiveDuration | None = None
    pre_promotion_analysis: RunRef | None = None
    post_promotion_analysis: RunRef | None = None
    scale_down_delay: Duration | None = None


class FlaggerCheck(Table):
    """A Flagger metric check: the value over the last ``interval`` must lie in
    ``[min, max]``; a window without data fails the check ("no values found")."""

    name: Name
    measure: MetricBinding
    min: float | None = None
    max: float | None = None
    interval: Seconds | None = None


WebhookType = Literal[
    "confirm-rollout",
    "pre-rollout",
    "rollout",
    "confirm-traffic-increase",
    "confirm-promotion",
    "post-rollout",
    "rollback",
    "event",
]


class Webhook(Table):
    """A Flagger webhook as the lab plays it.

    Checks (``pre-rollout``, ``rollout``) answer ``passes``.  Gates (``confirm-*``) are open
    from ``opens_at`` on (0: always; unset: never — a person must open it, and nobody does in
    the lab).  ``rollback`` hooks that open stop the analysis and roll back at ``opens_at``.
    ``post-rollout`` and ``event`` hooks change nothing.
    """

    name: Name
    type: WebhookType = "rollout"
    passes: bool = True
    opens_at: Duration | None = 0.0


class Flagger(Table):
    """A Flagger ``Canary``'s analysis (``analysis.interval`` and ``threshold`` are the
    rollout's ``analysis.interval`` and ``analysis.failure_limit``).

    ``strategy``: ``canary`` (weights by ``step_weight`` up to ``max_weight``, or
    ``step_weights``), ``ab_testing`` (``match``: the target segments get the candidate for
    ``iterations`` analyses) or ``blue_green`` (``iterations`` analyses, then the switch).
    """

    strategy: Literal["canary", "ab_testing", "blue_green"] = "canary"
    max_weight: Percent = 100.0
    step_weight: Percent = 0.0
    step_weights: list[Annotated[float, ranged(0, 100, lo_open=True)]] = []
    iterations: NonNegInt = 0
    mirror: bool = False
    mirror_weight: Annotated[float, ranged(0, 100, lo_open=True)] = 100.0
    checks: list[FlaggerCheck] = []
    webhooks: list[Webhook] = []

    @model_validator(mode="after")
    def _consistent(self) -> Flagger:
        if self.strategy == "canary":
            if self.step_weight <= 0 and not self.step_weights:
                raise Inconsistent(
                    ("step_weight",),
                    "must be > 0 (or step_weights given) for strategy canary",
                    self.step_weight,
                )
            if any(b <= a for a, b in zip(self.step_weights, self.step_weights[1:], strict=False)):
                raise Inconsistent(("step_weights",), "must increase", self.step_weights)
        elif self.iterations < 1:
            raise Inconsistent(
                ("iterations",), f"must be >= 1 for strategy {self.strategy}", self.iterations
            )
        return self

    @property
    def top_weight(self) -> float:
        """The weight from which the next passing analysis promotes (Flagger's maxWeight)."""
        if self.step_weights:
            return min(100.0, self.step_weights[-1])
        return self.max_weight

    def next_weight(self, weight: float) -> float:
        """The weight after ``weight`` on the way up (capped at 100)."""
        if self.step_weights:
            return next((w for w in self.step_weights if w > weight), 100.0)
        return min(100.0, weight + self.step_weight)


class KayentaMetric(Table):
    """One metric of a Kayenta canary configuration."""

    name: Name
    measure: MetricBinding
    groups: list[Name] = []
    direction: Literal["increase", "decrease", "either"] = "either"
    allowed_increase: Annotated[float, ranged(0, math.inf)] = 1.0
    allowed_decrease: Annotated[float, ranged(0, math.inf)] = 1.0
    critical: bool = False
    must_have_data: bool = False


class Kayenta(Table):
    """A Kayenta canary configuration: one sample per arm per ``step``, judged per metric by
    a Mann-Whitney U test at ``confidence``, scored by group weights; the analysis passes at
    ``pass_score``, is inconclusive (marginal) at ``marginal_score`` and fails below."""

    metrics: Annotated[list[KayentaMetric], Field(min_length=1)]
    group_weights: dict[Name, Annotated[float, ranged(0, 100)]] = {}
    pass_score: Annotated[float, ranged(0, 100)] = 95.0
    marginal_score: Annotated[float, ranged(0, 100)] = 75.0
    confidence: Annotated[float, ranged(0.5, 1, hi_open=True)] = 0.98
    step: Seconds = 60.0

    @model_validator(mode="after")
    def _consistent(self) -> Kayenta:
        if sum(self.group_weights.values()) > 100:
            raise Inconsistent(
                ("group_weights",), "must add up to at most 100", sum(self.group_weights.values())
            )
        _check_scores(self.pass_score, self.marginal_score)
        return self
