"""What every rollout policy is: a plan of steps, and what it does after each analysis.

A policy never touches routing or the monitor itself.  The controller runs the plan (Argo
Rollouts' ``set_weight`` / ``pause`` / ``mirror`` steps), runs the analyses beside it,
counts failures (``failure_limit`` rolls back) and inconclusive analyses, and hands every
analysis that did not fail to the policy's ``after_analysis``, through ``Control``: the
few actions a policy may take.  The class attributes say how the policy differs from the
common rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import numpy as np

from sim.policies.analysis import AnalysisResult, ArmTotals
from sim.policies.measurements import MeasurementRequest
from sim.policies.settings import Rollout, Step
from sim.wording import success_streak

__all__ = ["NOBODY", "Control", "PlanStep", "Policy", "plain_step"]


@dataclass(frozen=True, slots=True)
class PlanStep:
    """``set_weight`` (percent), ``pause`` (seconds; ``inf`` until the policy or a person
    ends it), ``mirror`` (percent of baseline) or ``promote`` (value 100).

    ``note`` replaces the step's default wording in the decision trace.
    """

    kind: Literal["set_weight", "pause", "mirror", "promote"]
    value: float
    note: str = ""


class Control(Protocol):
    """The actions and state a policy may use (the controller implements it)."""

    @property
    def weight(self) -> float: ...

    @property
    def finished(self) -> bool: ...

    @property
    def success_streak(self) -> int: ...

    @property
    def rng(self) -> np.random.Generator: ...

    def set_weight(self, now_s: float, weight: float, step: int, reason: str) -> None: ...

    def promote(self, now_s: float, step: int, reason: str) -> None: ...

    @property
    def mirror(self) -> float: ...

    def set_mirror(self, now_s: float, share: float, step: int, reason: str) -> None:
        """Mirror ``share`` percent of the baseline's traffic to the candidate (0: stop)."""
        ...

    def rollback(self, now_s: float, step: int, reason: str) -> None: ...

    def end_pause(self, now_s: float) -> None:
        """End the plan's current pause now: the next steps run at once."""
        ...

    def arm_totals(self) -> tuple[ArmTotals, ArmTotals]:
        """(baseline, candidate) totals since the run began."""
        ...


class Policy:
    """Base of every policy; subclasses give ``name`` and ``plan`` and override the rest."""

    name: ClassVar[str]
    #: Keeps analysing after promotion: a post-promotion analysis can still roll back.
    analyses_after_promotion: ClassVar[bool] = False
    #: Holds a fixed split long enough for the sample-ratio-mismatch check to mean something.
    checks_sample_ratio: ClassVar[bool] = True
    #: Keeps each unit on the arm it first saw while the weight moves up and down.
    remembers_assignment: ClassVar[bool] = False
    #: ``inconclusive_limit`` inconclusive analyses in a row pause it for a person to decide.
    holds_when_inconclusive: ClassVar[bool] = False
    #: A ``set_weight`` step reaching 100 % promotes (else only a ``promote`` step does).
    promotes_at_full_weight: ClassVar[bool] = True
    #: A promotion reaches every user, not only ``target_segments`` (an A/B test's end).
    promotion_reaches_everyone: ClassVar[bool] = False
    #: Asks for its own measurements (``measurements_due``) instead of a window's analysis.
    schedules_measurements: ClassVar[bool] = False

    def __init__(self, config: Rollout) -> None:
        self.config = config

    def plan(self) -> list[PlanStep]:
        """The steps, in order; analyses run beside them."""
        raise NotImplementedError

    def after_analysis(
        self,
        control: Control,
        now_s: float,
        step: int,
        verdict: Literal["pass", "inconclusive"],
    ) -> None:
        """React to an analysis that did not fail (the controller handled streaks first)."""

    # --- hooks for policies that schedule their own measurements (analysis runs) ---------

    def step_started(self, control: Control, now_s: float, step: int) -> None:
        """The controller is about to run plan step ``step``."""

    def next_analysis_s(self, scheduled_s: float) -> float:
        """When the next analysis happens; ``scheduled_s`` is the regular interval's time."""
        return scheduled_s

    def measurements_due(self, now_s: float) -> tuple[MeasurementRequest, ...]:
        """The measurements this analysis should take (none: the evidence's own analysis)."""
        return ()

    def judge(
        self, control: Control, now_s: float, step: int, result: AnalysisResult | None
    ) -> AnalysisResult | None:
        """Turn what the evidence returned into the analysis the common rules apply to."""
        return result

    def waiting_for(self) -> str | None:
        """Why the rollout is waiting, when the policy holds it up (e.g. a closed gate)."""
        return None

    def failure_words(self, limit: int) -> str:
        """Why ``failure_limit`` failed analyses roll back, in the policy's own words."""
        return f"failure_limit {limit} reached"


#: Said of every wait for a person: the lab has nobody to act.
NOBODY = "and nobody does in the lab"


def plain_step(step: Step, *, indefinite: str) -> PlanStep | None:
    """The plan step of a ``set_weight``, ``pause``, ``mirror`` or ``pause_indefinitely``
    step (``indefinite``: what that pause waits for); None for the other kinds."""
    if step.set_weight is not None:
        return PlanStep("set_weight", step.set_weight)
    if step.pause is not None:
        return PlanStep("pause", step.pause)
    if step.mirror is not None:
        return PlanStep("mirror", step.mirror)
    if step.pause_indefinitely:
        return PlanStep("pause", math.inf, indefinite)
    return None


def mirror_share(config: Rollout) -> float:
    """The share of baseline traffic mirrored in a shadow phase (all of it unless set)."""
    return config.mirror if config.mirror > 0 else 100.0


def promote_on_success_streak(control: Control, config: Rollout, now_s: float, step: int) -> None:
    """A gated canary promotes after ``consecutive_success_limit`` passes in a row."""
    analysis = config.analysis
    if (
        config.gate is not None
        and analysis is not None
        and control.weight > 0
        and not control.finished
        and control.success_streak >= analysis.consecutive_success_limit
    ):
        control.promote(now_s, step, success_streak(analysis.consecutive_success_limit))
