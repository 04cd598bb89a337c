"""Thompson-sampling bandit: after every analysis that did not fail, the candidate's weight
becomes P(candidate CTR > baseline CTR) under Beta(1 + clicks, 1 + misses) posteriors,
clipped to ``[min_weight, max_weight]``; it promotes once that probability reaches
``promote_at``.  Units keep the arm they first saw while the weight moves, until a promotion
or a rollback ends the experiment."""

from __future__ import annotations

from typing import Literal

import numpy as np

from sim.policies.base import Control, PlanStep, Policy

__all__ = ["Bandit"]

#: Posterior draws per arm for P(candidate better): its Monte Carlo error is <= 0.008.
DRAWS = 4_000


class Bandit(Policy):
    name = "bandit"
    # The split moves at every analysis: a chi-square against one weight means nothing.
    checks_sample_ratio = False
    remembers_assignment = True

    def plan(self) -> list[PlanStep]:
        return [PlanStep("set_weight", self.config.bandit.min_weight)]

    def after_analysis(
        self, control: Control, now_s: float, step: int, verdict: Literal["pass", "inconclusive"]
    ) -> None:
        base, cand = control.arm_totals()
        rng = control.rng
        p_base = rng.beta(1 + base.clicks, 1 + base.requests - base.clicks, DRAWS)
        p_cand = rng.beta(1 + cand.clicks, 1 + cand.requests - cand.clicks, DRAWS)
        p_better = float((p_cand > p_base).mean())
        bounds = self.config.bandit
        if p_better >= bounds.promote_at:
            control.promote(
                now_s,
                step,
                f"bandit: P(candidate better) = {p_better:.3f} >= {bounds.promote_at:g}",
            )
            return
        target = float(np.clip(round(100 * p_better, 1), bounds.min_weight, bounds.max_weight))
        control.set_weight(now_s, target, step, f"bandit: P(candidate better) = {p_better:.3f}")
