"""Argo Rollouts' canary strategy: steps, inline analysis steps and a background analysis.

The plan is the manifest's steps: ``set_weight``, ``pause`` (a duration, or none: the rollout
waits for someone to promote it), ``mirror`` (``setMirrorRoute``) and ``analysis``, an
analysis run the next steps wait for — it proceeds when the run succeeds.  The background
analysis starts when the steps reach ``starting_step`` and runs beside them.  Any run that
fails or errors aborts the rollout (``analysis.failure_limit`` is 1); an inconclusive run
pauses it for a person.  When every step is done the canary becomes the stable version
(``promote``) and the background run is stopped; a ``set_weight`` of 100 alone does not
promote, since later steps and the background analysis may still abort.
"""

from __future__ import annotations

import math
from typing import Literal

from sim.policies.analysis import AnalysisResult
from sim.policies.base import NOBODY, Control, PlanStep, Policy, plain_step
from sim.policies.measurements import MeasurementRequest
from sim.policies.run_book import RunBook
from sim.policies.run_settings import RunRef
from sim.policies.settings import Rollout

__all__ = ["MANUAL_PROMOTION", "ArgoCanary", "ArgoRunPolicy"]

#: What a pause without a duration means in the lab, said plainly.
MANUAL_PROMOTION = (
    "pause without a duration: Argo Rollouts waits for someone to promote the rollout "
    f"(kubectl argo rollouts promote), {NOBODY}"
)


class ArgoRunPolicy(Policy):
    """What both Argo Rollouts strategies share: analysis runs started at plan steps."""

    holds_when_inconclusive = True
    promotes_at_full_weight = False
    schedules_measurements = True

    def __init__(self, config: Rollout) -> None:
        super().__init__(config)
        self.book = RunBook(config)
        #: plan step index -> the runs starting there: (run id, label, run, blocking)
        self.starts: dict[int, list[tuple[str, str, RunRef, bool]]] = {}

    def _start_runs(self, now_s: float, step: int) -> None:
        for run_id, label, ref, blocking in self.starts.get(step, []):
            self.book.start(run_id, label, ref, now_s, blocking=blocking)

    def next_analysis_s(self, scheduled_s: float) -> float:
        # Runs measure on their own schedule; without a run there is nothing to analyse.
        return self.book.next_due_s()

    def measurements_due(self, now_s: float) -> tuple[MeasurementRequest, ...]:
        return self.book.requests(now_s)

    def judge(
        self, control: Control, now_s: float, step: int, result: AnalysisResult | None
    ) -> AnalysisResult | None:
        return self.book.judge(now_s, result)

    def after_analysis(
        self, control: Control, now_s: float, step: int, verdict: Literal["pass", "inconclusive"]
    ) -> None:
        if verdict == "pass" and self.book.take_blocking_pass():
            control.end_pause(now_s)

    def failure_words(self, limit: int) -> str:
        return "an analysis run failed: Argo Rollouts aborts the rollout"


class ArgoCanary(ArgoRunPolicy):
    name = "argo_canary"

    def plan(self) -> list[PlanStep]:
        self.book = RunBook(self.config)
        self.starts = {}
        background = self.config.background_analysis
        if background is not None:
            starting = ("background", "background analysis", background, False)
            self.starts.setdefault(background.starting_step, []).append(starting)
        out: list[PlanStep] = []
        for i, step in enumerate(self.config.steps):
            plain = plain_step(step, indefinite=MANUAL_PROMOTION)
            if plain is not None:
                out.append(plain)
            elif step.analysis is not None:
                run_id = f"step-{i}"
                label = f"analysis run {run_id} ({', '.join(step.analysis.templates)})"
                self.starts.setdefault(i, []).append((run_id, label, step.analysis, True))
                out.append(PlanStep("pause", math.inf, f"{label}: the next steps wait for it"))
        out.append(PlanStep("promote", 100.0, "every step done: the canary becomes stable"))
        return out

    def step_started(self, control: Control, now_s: float, step: int) -> None:
        if step == len(self.config.steps):  # the promotion: background analysis stops here
            self.book.terminate("rollout completed")
            return
        self._start_runs(now_s, step)
