"""Blue-green: the preview (green) stack takes mirrored traffic for ``shadow_for`` (pre-
promotion analysis on the copies), then the switch to 100 %, then post-promotion analysis
that can still switch back."""

from __future__ import annotations

from sim.policies.base import PlanStep, Policy, mirror_share

__all__ = ["BlueGreen"]


class BlueGreen(Policy):
    name = "blue_green"
    analyses_after_promotion = True

    def plan(self) -> list[PlanStep]:
        return [
            PlanStep("mirror", mirror_share(self.config)),
            PlanStep("pause", self.config.shadow_for),
            PlanStep("mirror", 0.0),
            PlanStep("set_weight", 100.0),
        ]
