"""Flagger's canary analysis: progressive weights, A/B testing or blue/green, with mirroring.

Every ``analysis.interval`` Flagger checks the canary's metrics (``FlaggerCheck``: the value
over the last interval inside ``thresholdRange``; no data fails the check) and its ``rollout``
webhooks.  A failed check halts the advance and counts towards ``threshold`` (the rollout's
``analysis.failure_limit``): reaching it rolls back.  A passing check advances:

* ``canary``: the weight grows by ``step_weight`` (or along ``step_weights``) — after one
  mirrored interval first when ``mirror`` is on — and once it has reached ``max_weight`` the
  next passing check promotes;
* ``ab_testing``: the matched users (``rollout.target_segments``) get the canary from the
  start, and the canary is promoted after ``iterations`` passing checks;
* ``blue_green``: the canary runs beside production for ``iterations`` passing checks (on
  mirrored traffic when ``mirror`` is on), then traffic switches to it.

Webhooks play gates: ``confirm-rollout`` holds the start, ``confirm-traffic-increase`` each
weight increase and ``confirm-promotion`` the promotion until they open (checks go on
meanwhile); a failing ``pre-rollout`` hook keeps the canary from starting and counts as a
failed check at each interval; a ``rollback`` hook that opens rolls back at the next check.
"""

from __future__ import annotations

import math
from typing import Literal

from sim.policies.analysis import AnalysisResult
from sim.policies.base import NOBODY, Control, PlanStep, Policy
from sim.policies.measurements import MeasurementRequest
from sim.policies.run_settings import Flagger as FlaggerSettings
from sim.policies.run_settings import Webhook
from sim.policies.settings import Rollout

__all__ = ["Flagger"]


class Flagger(Policy):
    name = "flagger"
    # A/B testing sends all the matched users to the canary: that is not a promotion yet.
    promotes_at_full_weight = False
    # Flagger routes by weight and checks no sample ratio.
    checks_sample_ratio = False
    schedules_measurements = True
    # An A/B test's matched users are the experiment; the promotion is for everyone.
    promotion_reaches_everyone = True

    def __init__(self, config: Rollout) -> None:
        super().__init__(config)
        self.iterations = 0
        self.started = False
        self.first_step = 0
        self._waiting: str | None = None

    @property
    def settings(self) -> FlaggerSettings:
        assert self.config.flagger is not None
        return self.config.flagger

    def _hooks(self, kind: str) -> list[Webhook]:
        return [h for h in self.settings.webhooks if h.type == kind]

    def plan(self) -> list[PlanStep]:
        f = self.settings
        self.iterations, self.started, self._waiting = 0, False, None
        out: list[PlanStep] = []
        gates = self._hooks("confirm-rollout")
        opens = max((math.inf if h.opens_at is None else h.opens_at for h in gates), default=0.0)
        if opens > 0:
            name = next(h.name for h in gates if (h.opens_at or math.inf) == opens)
            out.append(PlanStep("pause", opens, self._gate_words("confirm-rollout", name, opens)))
        if any(not h.passes for h in self._hooks("pre-rollout")):
            return out  # the canary never starts: each interval counts a failed check
        self.first_step = len(out)
        if f.strategy == "canary":
            if f.mirror:
                out.append(PlanStep("mirror", f.mirror_weight, "mirror step before any weight"))
            else:
                weight = f.next_weight(0.0)
                out.append(PlanStep("set_weight", weight, f"canary weight {weight:g}"))
        elif f.strategy == "ab_testing":
            note = f"the matched users go to the canary: iteration 1 of {f.iterations}"
            out.append(PlanStep("set_weight", 100.0, note))
        elif f.mirror:
            note = f"mirror to the canary: iteration 1 of {f.iterations}"
            out.append(PlanStep("mirror", f.mirror_weight, note))
        else:
            note = f"the canary runs without production traffic: iteration 1 of {f.iterations}"
            out.append(PlanStep("mirror", 0.0, note))
        return out

    def step_started(self, control: Control, now_s: float, step: int) -> None:
        if step == self.first_step:
            self.started, self.iterations = True, 1

    def measurements_due(self, now_s: float) -> tuple[MeasurementRequest, ...]:
        if not self.started:
            return ()
        interval = self.config.analysis.interval if self.config.analysis else 60.0
        return tuple(
            MeasurementRequest("checks", check, now_s - (check.interval or interval))
            for check in self.settings.checks
        )

    def judge(
        self, control: Control, now_s: float, step: int, result: AnalysisResult | None
    ) -> AnalysisResult | None:
        opened = [h for h in self._hooks("rollback") if h.opens_at is not None]
        if opened and now_s >= min(h.opens_at or 0.0 for h in opened):
            name = min(opened, key=lambda h: h.opens_at or 0.0).name
            control.rollback(now_s, step, f"rollback webhook {name!r} opened")
            return None
        if not self.started:
            failing = [h.name for h in self._hooks("pre-rollout") if not h.passes]
            if failing and not control.finished:
                return AnalysisResult("fail", f"fail: pre-rollout webhook {failing[0]!r} failed")
            return result
        hooks = [
            f"rollout webhook {h.name!r} failed" for h in self._hooks("rollout") if not h.passes
        ]
        if result is None and (hooks or not self.settings.checks):
            verdict: Literal["pass", "fail"] = "fail" if hooks else "pass"
            reason = "; ".join(hooks) or "no metric checks; webhooks passed"
            return AnalysisResult(verdict, self._with_iteration(f"{verdict}: {reason}", verdict))
        if result is None or not result.measurements:
            return result  # a scripted result: its verdict is the check's
        failed = [m for m in result.measurements if m.phase != "Successful"]
        verdict = "fail" if failed or hooks else "pass"
        parts = [m.describe() for m in result.measurements] + hooks
        reason = self._with_iteration(f"{verdict}: {'; '.join(parts)}", verdict)
        return AnalysisResult(verdict, reason, result.numbers, result.measurements)

    def _with_iteration(self, reason: str, verdict: str) -> str:
        f = self.settings
        if verdict != "pass" or f.strategy == "canary":
            return reason
        if self.iterations < f.iterations:
            return f"{reason}; iteration {self.iterations + 1} of {f.iterations}"
        return f"{reason}; {f.iterations} iterations done"

    def after_analysis(
        self, control: Control, now_s: float, step: int, verdict: Literal["pass", "inconclusive"]
    ) -> None:
        if verdict != "pass" or control.finished or not self.started:
            return
        f = self.settings
        if f.strategy == "canary":
            if control.mirror > 0 and control.weight == 0:
                # Flagger asks no traffic-increase gate when leaving the mirror step.
                weight = f.next_weight(0.0)
                control.set_mirror(now_s, 0.0, step, "mirror step done: stop mirroring")
                control.set_weight(now_s, weight, step, f"advance canary weight {weight:g}")
            elif control.weight < f.top_weight:
                if self._gate_open("confirm-traffic-increase", now_s):
                    weight = f.next_weight(control.weight)
                    control.set_weight(now_s, weight, step, f"advance canary weight {weight:g}")
            elif self._gate_open("confirm-promotion", now_s):
                control.promote(now_s, step, f"canary weight reached maxWeight {f.top_weight:g}")
        elif self.iterations < f.iterations:
            self.iterations += 1
        elif self._gate_open("confirm-promotion", now_s):
            what = "A/B test" if f.strategy == "ab_testing" else "blue/green analysis"
            control.promote(now_s, step, f"{what}: {f.iterations} iterations passed")

    def _gate_open(self, kind: str, now_s: float) -> bool:
        for hook in self._hooks(kind):
            if hook.opens_at is None or now_s < hook.opens_at:
                opens = math.inf if hook.opens_at is None else hook.opens_at
                self._waiting = self._gate_words(kind, hook.name, opens)
                return False
        self._waiting = None
        return True

    @staticmethod
    def _gate_words(kind: str, name: str, opens_s: float) -> str:
        if math.isinf(opens_s):
            return f"{kind} webhook {name!r} is closed: Flagger halts until it opens, {NOBODY}"
        return f"{kind} webhook {name!r} opens at {opens_s:g} s: Flagger halts until then"

    def waiting_for(self) -> str | None:
        return self._waiting

    def failure_words(self, limit: int) -> str:
        return f"{limit} failed checks reached the threshold: Flagger rolls back"
