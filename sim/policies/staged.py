"""Staged ramp: Argo-like ``set_weight`` / ``pause`` / ``mirror`` steps; promotion when a step
sets 100 %; ``inconclusive_limit`` inconclusive analyses in a row pause it for a person."""

from __future__ import annotations

from sim.policies.base import PlanStep, Policy

__all__ = ["Staged"]


class Staged(Policy):
    name = "staged"
    holds_when_inconclusive = True

    def plan(self) -> list[PlanStep]:
        out: list[PlanStep] = []
        for step in self.config.steps:
            if step.set_weight is not None:
                out.append(PlanStep("set_weight", step.set_weight))
            elif step.pause is not None:
                out.append(PlanStep("pause", step.pause))
            elif step.mirror is not None:
                out.append(PlanStep("mirror", step.mirror))
        return out
