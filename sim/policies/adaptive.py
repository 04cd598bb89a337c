"""Adaptive ramp: starts on the first rung of ``ramp`` and climbs one rung per passing
analysis; reaching 100 % promotes."""

from __future__ import annotations

from typing import Literal

from sim.policies.base import Control, PlanStep, Policy
from sim.policies.settings import Rollout

__all__ = ["Adaptive"]


class Adaptive(Policy):
    name = "adaptive"

    def __init__(self, config: Rollout) -> None:
        super().__init__(config)
        self.rung = 0

    def plan(self) -> list[PlanStep]:
        self.rung = 0
        return [PlanStep("set_weight", self.config.ramp[0])]

    def after_analysis(
        self, control: Control, now_s: float, step: int, verdict: Literal["pass", "inconclusive"]
    ) -> None:
        if verdict != "pass" or control.finished:
            return
        ramp = self.config.ramp
        self.rung = min(self.rung + 1, len(ramp) - 1)
        target = ramp[self.rung]
        control.set_weight(
            now_s, target, step, f"adaptive: analysis passed, advance to {target:g}%"
        )
        if target >= 100.0:
            control.promote(now_s, step, "adaptive ramp reached 100%")
