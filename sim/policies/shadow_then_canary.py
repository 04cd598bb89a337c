"""Shadow, then canary: mirrored traffic first (nobody sees the candidate), then a fixed
canary, promoted by a gate like ``canary``; inconclusive streaks pause it like ``staged``."""

from __future__ import annotations

from typing import Literal

from sim.policies.base import Control, PlanStep, Policy, mirror_share, promote_on_success_streak

__all__ = ["ShadowThenCanary"]


class ShadowThenCanary(Policy):
    name = "shadow_then_canary"
    holds_when_inconclusive = True

    def plan(self) -> list[PlanStep]:
        return [
            PlanStep("mirror", mirror_share(self.config)),
            PlanStep("pause", self.config.shadow_for),
            PlanStep("mirror", 0.0),
            PlanStep("set_weight", self.config.weight),
        ]

    def after_analysis(
        self, control: Control, now_s: float, step: int, verdict: Literal["pass", "inconclusive"]
    ) -> None:
        if verdict == "pass":
            promote_on_success_streak(control, self.config, now_s, step)
