"""The ``[rollout]`` settings of a scenario: policy, steps, analysis, gate, guardrails."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim.policies.metric_names import GuardrailMetric, RailMetric
from sim.policies.run_settings import (
    AnalysisTemplate,
    BackgroundAnalysis,
    BlueGreen,
    Flagger,
    Kayenta,
    LabMetric,
    MetricBinding,
    RunRef,
)
from sim.schema import Duration, NonNegInt, Percent, PosInt, PositiveDuration, Table, ranged

__all__ = [
    "STEP_KINDS",
    "Analysis",
    "Bandit",
    "Gate",
    "Guardrail",
    "GuardrailMetric",
    "PolicyName",
    "Rollout",
    "Segment",
    "Step",
]


STEP_KINDS = ("set_weight", "pause", "mirror", "analysis", "pause_indefinitely")


class Step(Table):
    """One Argo-like step: exactly one of ``set_weight``, ``pause``, ``mirror``,
    ``pause_indefinitely`` (Argo's ``pause: {}``: waits for someone to promote) or
    ``analysis`` (an inline analysis run the next steps wait for; ``argo_canary`` only)."""

    set_weight: Percent | None = None
    pause: PositiveDuration | None = None
    mirror: Percent | None = None
    analysis: RunRef | None = None
    pause_indefinitely: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"must set exactly one of {', '.join(STEP_KINDS)}")
        return self


class Analysis(Table):
    interval: PositiveDuration = 300.0
    failure_limit: PosInt = 2
    inconclusive_limit: PosInt = 3
    consecutive_success_limit: PosInt = 1
    min_requests: NonNegInt = 200
    #: Probability that guardrails roll back a candidate within every bound, over all of
    #: them and every planned analysis (see ``sim.bounds.look_alpha``).
    guardrail_alpha: Annotated[float, ranged(0, 0.5, lo_open=True)] = 0.05


class Gate(Table):
    """Primary engagement metric, judged by an always-valid sequential test."""

    metric: Literal["ctr"] = "ctr"
    test: Literal["msprt"] = "msprt"
    alpha: Annotated[float, ranged(0, 0.5, lo_open=True)] = 0.05
    mde_relative: Annotated[float, ranged(0, 10, lo_open=True)] = 0.05


class Guardrail(Table):
    """Bound on a candidate metric: absolute (``min``/``max``) or relative to the baseline."""

    metric: RailMetric
    min: float | None = None
    max: float | None = None
    min_relative_to_baseline: float | None = None
    max_relative_to_baseline: float | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> Guardrail:
        if all(
            v is None
            for v in (
                self.min,
                self.max,
                self.min_relative_to_baseline,
                self.max_relative_to_baseline,
            )
        ):
            raise ValueError(
                "must set one of min, max, min_relative_to_baseline, max_relative_to_baseline"
            )
        return self


Segment = Literal["cold", "light", "heavy"]


class Bandit(Table):
    """Thompson sampling on CTR (Beta posteriors) within weight bounds, under guardrails."""

    min_weight: Percent = 1.0
    max_weight: Percent = 50.0
    promote_at: Annotated[float, ranged(0.5, 1)] = 0.95


PolicyName = Literal[
    "canary",
    "staged",
    "big_bang",
    "blue_green",
    "adaptive",
    "bandit",
    "shadow_then_canary",
    "argo_canary",
    "argo_blue_green",
    "flagger",
]


class Rollout(Table):
    policy: PolicyName = "canary"
    baseline: str = "baseline"
    candidate: str = "candidate"
    sticky_by: Literal["user", "session"] = "user"
    weight: Percent = 10.0
    mirror: Percent = 0.0
    steps: list[Step] = []
    analysis: Analysis | None = None
    gate: Gate | None = None
    guardrails: list[Guardrail] = []
    on_failure: Literal["rollback", "hold"] = "rollback"
    on_rollback_sessions: Literal["switch", "drain"] = "switch"
    ramp: Annotated[list[Percent], Field(min_length=1)] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0]
    shadow_for: PositiveDuration = 1800.0
    bandit: Bandit = Bandit()
    target_segments: list[Segment] = []
    #: Expose the candidate only to users whose attribute has one of these values, e.g.
    #: ``{ country = ["DE"] }`` (columns of ``[attributes.users]``; several columns: all hold).
    target: dict[
        Annotated[str, Field(min_length=1)],
        Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)],
    ] = {}
    kill_switch_at: Duration | None = None
    srm_alpha: Annotated[float, ranged(0, 0.5, lo_open=True)] = 0.001
    # --- the policies that speak Argo Rollouts and Flagger (sim.policies.run_settings) ----
    templates: dict[str, AnalysisTemplate] = {}
    background_analysis: BackgroundAnalysis | None = None
    blue_green: BlueGreen | None = None
    flagger: Flagger | None = None
    kayenta: Kayenta | None = None
    # --- a manifest in (lab.manifests): the file, and how its names map onto the lab ----
    manifest: (
        Annotated[str, Field(min_length=1)]
        | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
        | None
    ) = None
    metric_map: dict[str, MetricBinding | LabMetric] = {}
    segment_map: dict[str, list[Segment]] = {}
    webhooks: dict[str, str] = {}
    #: Fields of the manifest the lab read but that change nothing here (filled on import).
    manifest_notes: list[str] = []
