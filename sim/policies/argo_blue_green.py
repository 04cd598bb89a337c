"""Argo Rollouts' blue-green strategy with pre- and post-promotion analysis.

The preview (green) stack takes mirrored copies of the baseline's traffic (``rollout.mirror``
percent, all of it unless set) while the pre-promotion analysis runs: users see none of it.
Then, in Argo Rollouts' order: without ``auto_promotion_seconds`` the switch waits for the
pre-promotion run to succeed; with it the switch happens that long after the preview came up
(the run, if still going, is marked successful; one that failed has aborted the rollout);
with ``auto_promotion_enabled = false`` the rollout then waits for someone to promote it.
After the switch the post-promotion analysis runs — cancelled ``scale_down_delay`` after the
switch when that is set — and a failed or errored run switches traffic back.
"""

from __future__ import annotations

import math

from sim.policies.argo_canary import ArgoRunPolicy
from sim.policies.base import NOBODY, Control, PlanStep, mirror_share
from sim.policies.run_book import RunBook

__all__ = ["ArgoBlueGreen"]

WAIT_FOR_PROMOTION = (
    "autoPromotionEnabled: false: Argo Rollouts waits for someone to promote the preview "
    f"(kubectl argo rollouts promote), {NOBODY}"
)


class ArgoBlueGreen(ArgoRunPolicy):
    name = "argo_blue_green"
    analyses_after_promotion = True

    def plan(self) -> list[PlanStep]:
        self.book = RunBook(self.config)
        self.starts = {}
        settings = self.config.blue_green
        assert settings is not None
        pre = settings.pre_promotion_analysis
        seconds = settings.auto_promotion_seconds if settings.auto_promotion_enabled else None
        out: list[PlanStep] = []
        if pre is not None:
            share = mirror_share(self.config)
            self.starts[len(out)] = [("pre", "pre-promotion analysis", pre, seconds is None)]
            out.append(PlanStep("mirror", share, f"preview takes {share:g}% of traffic mirrored"))
        if seconds is not None:
            out.append(
                PlanStep(
                    "pause", seconds, f"autoPromotionSeconds: the switch comes {seconds:g} s on"
                )
            )
        elif pre is not None:
            out.append(
                PlanStep("pause", math.inf, "pre-promotion analysis: the switch waits for it")
            )
        if not settings.auto_promotion_enabled:
            out.append(PlanStep("pause", math.inf, WAIT_FOR_PROMOTION))
        if pre is not None:
            out.append(PlanStep("mirror", 0.0, "preview stops taking mirrored traffic"))
        self.promote_step = len(out)
        out.append(PlanStep("promote", 100.0, "the active service switches to the new version"))
        return out

    def step_started(self, control: Control, now_s: float, step: int) -> None:
        settings = self.config.blue_green
        assert settings is not None
        if step == self.promote_step:
            # Whatever is left of the pre-promotion run ends here (marked successful).
            self.book.cancel("pre")
            post = settings.post_promotion_analysis
            if post is not None:
                delay = settings.scale_down_delay
                deadline = math.inf if delay is None else now_s + delay
                self.book.start(
                    "post",
                    "post-promotion analysis",
                    post,
                    now_s,
                    blocking=False,
                    deadline_s=deadline,
                )
            return
        self._start_runs(now_s, step)
