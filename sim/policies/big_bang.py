"""Big bang: everyone on the candidate at once; post-promotion analysis can still roll back."""

from __future__ import annotations

from sim.policies.base import PlanStep, Policy

__all__ = ["BigBang"]


class BigBang(Policy):
    name = "big_bang"
    analyses_after_promotion = True

    def plan(self) -> list[PlanStep]:
        return [PlanStep("set_weight", 100.0)]
