"""What every rollout policy is: a plan of steps, and what it does after each analysis.

A policy never touches routing or the monitor itself.  The controller runs the plan (Argo
Rollouts' ``set_weight`` / ``pause`` / ``mirror`` steps), runs the analyses beside it,
counts failures (``failure_limit`` rolls back) and inconclusive analyses, and hands every
analysis that did not fail to the policy's ``after_analysis``, through ``Control``: the
few actions a policy may take.  The class attributes say how the policy differs from the
common rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol

import numpy as np

from sim.policies.analysis import ArmTotals
from sim.policies.settings import Rollout
from sim.wording import success_streak

__all__ = ["Control", "PlanStep", "Policy"]


@dataclass(frozen=True, slots=True)
class PlanStep:
    """``set_weight`` (percent), ``pause`` (seconds) or ``mirror`` (percent of baseline)."""

    kind: Literal["set_weight", "pause", "mirror"]
    value: float


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
