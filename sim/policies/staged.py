"""Staged ramp: Argo-like ``set_weight`` / ``pause`` / ``mirror`` steps; promotion when a step
sets 100 %; ``inconclusive_limit`` inconclusive analyses in a row pause it for a person, and so
does a ``pause_indefinitely`` step."""

from __future__ import annotations

from sim.policies.base import NOBODY, PlanStep, Policy, plain_step

__all__ = ["WAITS_FOR_A_PERSON", "Staged"]

WAITS_FOR_A_PERSON = f"pause without a duration: the ramp waits for someone to resume it, {NOBODY}"


class Staged(Policy):
    name = "staged"
    holds_when_inconclusive = True

    def plan(self) -> list[PlanStep]:
        steps = (plain_step(s, indefinite=WAITS_FOR_A_PERSON) for s in self.config.steps)
        return [step for step in steps if step is not None]
