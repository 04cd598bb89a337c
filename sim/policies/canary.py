"""Canary: a fixed share of users on the candidate (after an optional mirror), promoted by a
gate after ``consecutive_success_limit`` passing analyses in a row."""

from __future__ import annotations

from typing import Literal

from sim.policies.base import Control, PlanStep, Policy, promote_on_success_streak

__all__ = ["Canary"]


class Canary(Policy):
    name = "canary"

    def plan(self) -> list[PlanStep]:
        mirror = [PlanStep("mirror", self.config.mirror)] if self.config.mirror > 0 else []
        return [*mirror, PlanStep("set_weight", self.config.weight)]

    def after_analysis(
        self, control: Control, now_s: float, step: int, verdict: Literal["pass", "inconclusive"]
    ) -> None:
        if verdict == "pass":
            promote_on_success_streak(control, self.config, now_s, step)
