"""The rollout controller: runs a policy's steps and analyses, and decides.

The controller owns ``Routing``.  It wakes up at step boundaries (``pause`` ends), at every
analysis interval, at the kill switch and at each release of a release train; asks its
``Evidence`` for an analysis (``sim.policies.analysis``) and applies the common rules:

* ``failure_limit`` failed analyses roll back (weight 0; or hold with ``on_failure = "hold"``);
* ``inconclusive_limit`` inconclusive analyses in a row pause a policy that
  ``holds_when_inconclusive`` for a person to decide, and a pass resumes it;
* a step that sets 100 % promotes; the kill switch rolls back whatever is exposed.

Everything else a policy does (climb a ramp, resample a bandit's weight, promote a gated
canary) happens in its ``after_analysis``.  Every action is a ``Decision`` with the
simulated time, the step, the rule that fired and the numbers it saw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.policies.analysis import Arms, ArmTotals, Evidence
from sim.policies.base import Policy
from sim.policies.decisions import Action, Decision, Verdict
from sim.policies.registry import policy_for
from sim.policies.release_train import ReleaseBuilder, ReleaseTrain
from sim.policies.settings import Rollout
from sim.router import Routing, threshold_for

__all__ = ["RolloutController"]


class RolloutController:
    """Drives ``Routing`` through a policy; see the module docstring for the rules.

    ``version_names`` name the version indices in summaries; ``releases`` is the schedule
    of a release train as ``(start time, version index)`` (one release at time 0 without).
    """

    def __init__(
        self,
        config: Rollout,
        evidence: Evidence,
        *,
        baseline: int,
        candidate: int,
        rng: np.random.Generator,
        version_names: list[str],
        releases: list[tuple[float, int]] | None = None,
        builder: ReleaseBuilder | None = None,
        rollback_to: int | None = None,
    ) -> None:
        self.config = config
        self.evidence = evidence
        self._rng = rng
        self.version_names = version_names
        self.routing = Routing(baseline=baseline, candidate=candidate)
        self.train = ReleaseTrain(releases or [(0.0, candidate)])
        self.builder = builder
        #: The version a release train's rollback returns production to (None: it stays).
        self.rollback_to = rollback_to
        #: Version each release was built from, by release number (release 1: not known here).
        self.release_parents: dict[int, int] = {}
        self._closed: list[tuple[int, str]] = []  # (version, outcome) of each closed release
        self.release_log: list[dict[str, Any]] = []
        self.decisions: list[Decision] = []
        self._kill_s = config.kill_switch_at
        self._reset()

    @property
    def baseline(self) -> int:
        return self.routing.baseline

    @property
    def candidate(self) -> int:
        return self.routing.candidate

    # --- what a policy may read (``Control``) ----------------------------------------------

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def success_streak(self) -> int:
        return self._success_streak

    def arm_totals(self) -> tuple[ArmTotals, ArmTotals]:
        return self.evidence.totals(self.baseline), self.evidence.totals(self.candidate)

    def _reset(self) -> None:
        """State of one release's rollout (a release train starts over for each release)."""
        self.policy: Policy = policy_for(self.config)
        #: The version production returned to when this release was rolled back, if moved.
        self.restored: int | None = None
        self.weight = 0.0
        self.mirror = 0.0
        self.max_weight = 0.0
        self.outcome = "in_progress"
        self.analyses = 0
        self.failures = 0
        self._inconclusive_streak = 0
        self._success_streak = 0
        self.first_exposure_s: float | None = None
        self.first_failure_s: float | None = None
        self.rollback_s: float | None = None
        self.promote_s: float | None = None
        self._finished = False
        self.held = False
        #: Why the plan is stuck until someone acts (an indefinite pause, a hold), if it is.
        self._waiting: str | None = None
        self.evidence.restart()
        self._steps = self.policy.plan()
        self.started_s = 0.0
        self._step = 0
        self._step_until_s = 0.0
        interval = self.config.analysis.interval if self.config.analysis else None
        self._interval_s = interval
        self._next_analysis_s = interval if interval is not None else math.inf
        self._started = False
        self._weight_changed_s = 0.0
        self.routing.drain(-1, None)
        self.routing.open_to_everyone(False)

    # --- Controller protocol (the engine's side) ---------------------------------------------

    def next_wakeup_s(self, now_s: float) -> float | None:
        if not self._started:
            return self.train.release.at_s
        next_release = self.train.next_start_s()
        next_release_s = math.inf if next_release is None else next_release
        if self._finished:
            return next_release
        wake = min(self._analysis_due_s(), next_release_s)
        if self._step < len(self._steps) and not self.held:
            wake = min(wake, self._step_until_s)
        if self._kill_s is not None:
            wake = min(wake, self._kill_s)
        return wake if math.isfinite(wake) else None

    def tick(self, now_s: float, settled_until_s: float) -> None:
        """Act at ``now_s``: releases, the kill switch, analyses and steps due by then.

        Analyses judge the arrivals before ``settled_until_s`` (they have all ended).  The
        engine compares ``routing`` before and after to decide on cache flushes.
        """
        if self.train.due(now_s):
            self._next_release(now_s, settled_until_s)
        if not self._started:
            self._started = True
            self.started_s = now_s
            self._step_until_s = now_s
            if self._interval_s is not None:
                self._next_analysis_s = now_s + self._interval_s
            self._run_steps(now_s)
            return
        if self._kill_s is not None and now_s >= self._kill_s:
            self._kill_s = None
            if self.weight > 0 or self.mirror > 0:
                self._rollback(now_s, self._current_step(), "kill switch")
        if not self._finished and now_s >= self._analysis_due_s():
            if now_s >= self._next_analysis_s:
                self._next_analysis_s += self._interval_s or math.inf
            self._analyse(now_s, settled_until_s)
        if not self._finished and not self.held and now_s >= self._step_until_s:
            self._run_steps(now_s)

    def _analysis_due_s(self) -> float:
        """The next analysis: the regular interval, unless the policy schedules its own."""
        if self._interval_s is None:
            return math.inf
        return self.policy.next_analysis_s(self._next_analysis_s)

    # --- release trains -----------------------------------------------------------------

    def _next_release(self, now_s: float, settled_until_s: float) -> None:
        """Close the current release and hand the next one to the policy."""
        self.evidence.settle(settled_until_s)
        if not self._finished and (self.weight > 0 or self.mirror > 0):
            self.weight = 0.0
            self.mirror = 0.0
            self.routing.candidate_threshold = 0
            self.routing.mirror_threshold = 0
            self.outcome = "superseded"
            self._decide(now_s, self._current_step(), "supersede", "the next release starts")
        self.release_log.append(self._release_summary())
        previous = self.candidate
        if self.outcome == "promoted":
            # The promoted release is production now: the next one rolls out behind it.
            self.routing.baseline = self.routing.candidate
            self.routing.candidate_threshold = 0
        self._closed.append((previous, self.outcome))
        if self.restored is not None:
            # Production went back to a named version: the releases before it are passed
            # over, and the next one is built from that version.
            self._closed.clear()
        # The last good version: the latest release not rolled back (promoted, or withdrawn
        # undecided), else production, which every rollback restored.
        parent = next((v for v, o in reversed(self._closed) if o != "rolled_back"), self.baseline)
        release = self.train.advance()
        self.release_parents[release.number] = parent
        if self.builder is not None:
            self.builder.build(release, parent, now_s)
        self.routing.candidate = release.version
        self._reset()

    # --- steps ----------------------------------------------------------------------------

    def _current_step(self) -> int:
        return max(self._step - 1, 0)

    def _run_steps(self, now_s: float) -> None:
        while self._step < len(self._steps) and not self._finished:
            step = self._step
            planned = self._steps[step]
            self.policy.step_started(self, now_s, step)
            if self._finished:
                return
            self._step += 1
            value = planned.value
            note = f"step {step}: {planned.note}" if planned.note else ""
            if planned.kind == "set_weight":
                self.set_weight(now_s, value, step, note or f"step {step}: set_weight {value:g}")
                if value >= 100.0 and self.policy.promotes_at_full_weight:
                    self.promote(now_s, step, "weight reached 100%")
                    return
            elif planned.kind == "promote":
                self.promote(now_s, step, note or f"step {step}: promote")
                return
            elif planned.kind == "mirror":
                self.set_mirror(now_s, value, step, note)
            else:  # pause
                self._step_until_s = now_s + value
                if math.isinf(value):
                    self._waiting = planned.note or "a pause without a duration"
                self._decide(now_s, step, "pause", note or f"step {step}: pause {value:g} s")
                return

    # --- actions (``Control``) -----------------------------------------------------------

    def set_weight(self, now_s: float, weight: float, step: int, reason: str) -> None:
        if weight == self.weight:
            return
        self.weight = weight
        self.max_weight = max(self.max_weight, weight)
        self.routing.candidate_threshold = threshold_for(weight)
        self._weight_changed_s = now_s
        if weight > 0 and self.first_exposure_s is None:
            self.first_exposure_s = now_s
        self._decide(now_s, step, "set_weight", reason)

    def set_mirror(self, now_s: float, share: float, step: int, reason: str = "") -> None:
        self.mirror = share
        self.routing.mirror_threshold = threshold_for(share)
        what = (
            f"mirror {share:g}% of baseline traffic to the candidate" if share else "stop mirroring"
        )
        self._decide(now_s, step, "mirror", reason or f"step {step}: {what}")

    def end_pause(self, now_s: float) -> None:
        self._step_until_s = min(self._step_until_s, now_s)
        self._waiting = None

    def promote(self, now_s: float, step: int, reason: str) -> None:
        self.set_weight(now_s, 100.0, step, f"promote: {reason}")
        self.mirror = 0.0
        self.routing.mirror_threshold = 0
        # A promotion is decided for everyone: units remembered on the baseline move too.
        self.routing.forget_units()
        if self.policy.promotion_reaches_everyone:
            self.routing.open_to_everyone()
        self.outcome = "promoted"
        self.promote_s = now_s
        self._decide(now_s, step, "promote", reason)
        # Big-bang and blue-green keep analysing after the switch (post-promotion analysis
        # can still roll back); a ramp that reached 100 % has nothing left to compare against.
        if not self.policy.analyses_after_promotion or self._interval_s is None:
            self._finished = True

    def rollback(self, now_s: float, step: int, reason: str) -> None:
        """Roll back now (a policy's own rule, e.g. a rollback webhook), whatever is exposed."""
        if not self._finished:
            self._rollback(now_s, step, reason)

    def _rollback(self, now_s: float, step: int, reason: str) -> None:
        drained = 0
        if self.config.on_rollback_sessions == "drain" and self.weight > 0:
            until = self.evidence.drain_deadlines(self.candidate, now_s)
            drained = int(np.count_nonzero(until >= now_s))
            self.routing.drain(self.candidate, until if drained else None)
        self.weight = 0.0
        self.mirror = 0.0
        self.routing.candidate_threshold = 0
        self.routing.mirror_threshold = 0
        self.routing.forget_units()
        self._weight_changed_s = now_s
        self.outcome = "rolled_back"
        self.rollback_s = now_s
        self._finished = True
        self._waiting = None
        if drained:
            reason += f"; {drained} units with sessions in progress drain on the candidate"
        restore = self.rollback_to
        if (
            restore is not None
            and self.train.is_train
            and restore not in (self.candidate, self.baseline)
        ):
            # ``release_train.rollback_to``: production goes back to that exact version.
            self.restored = restore
            self.routing.baseline = restore
            reason += f"; production returns to {self.version_names[restore]}"
        self._decide(now_s, step, "rollback", reason)

    def _decide(
        self,
        now_s: float,
        step: int,
        action: Action,
        reason: str,
        numbers: dict[str, float] | None = None,
    ) -> None:
        self.decisions.append(
            Decision(
                now_s, step, action, reason, self.weight, numbers or {}, self.train.current + 1
            )
        )

    # --- analysis -------------------------------------------------------------------------

    def _analyse(self, now_s: float, settled_until_s: float) -> None:
        if self.config.analysis is None:
            self.evidence.settle(settled_until_s)
            return
        arms = Arms(
            baseline=self.baseline,
            candidate=self.candidate,
            weight=self.weight,
            weight_changed_s=self._weight_changed_s,
            check_srm=self.policy.checks_sample_ratio,
            measure=self.policy.measurements_due(now_s),
        )
        step = self._current_step()
        result = self.policy.judge(self, now_s, step, self.evidence.analyse(settled_until_s, arms))
        if result is None:
            return
        self._decide(now_s, step, "analysis", result.reason, result.numbers)
        if result.verdict is not None:
            self.analyses += 1
            self._apply(now_s, step, result.verdict)

    def _apply(self, now_s: float, step: int, verdict: Verdict) -> None:
        analysis = self.config.analysis
        assert analysis is not None
        if verdict == "fail":
            self.failures += 1
            self._success_streak = 0
            self._inconclusive_streak = 0
            if self.first_failure_s is None:
                self.first_failure_s = now_s
            if self.failures >= analysis.failure_limit:
                if self.config.on_failure == "rollback":
                    self._rollback(now_s, step, self.policy.failure_words(analysis.failure_limit))
                else:
                    self.held = True
                    self.outcome = "held"
                    self._waiting = (
                        f"held after failure_limit {analysis.failure_limit} was reached "
                        "(on_failure = hold): a person must roll back or resume"
                    )
                    self._decide(
                        now_s,
                        step,
                        "hold",
                        f"failure_limit {analysis.failure_limit} reached; on_failure = hold",
                    )
            return
        if verdict == "inconclusive":
            self._inconclusive_streak += 1
            self._success_streak = 0
            if (
                self._inconclusive_streak >= analysis.inconclusive_limit
                and not self.held
                and self.policy.holds_when_inconclusive
            ):
                self.held = True
                self.outcome = "inconclusive"
                self._waiting = (
                    "paused after inconclusive analyses: a person must resume or abort, "
                    "and nobody does in the lab"
                )
                self._decide(
                    now_s,
                    step,
                    "hold",
                    f"inconclusive_limit {analysis.inconclusive_limit} reached: paused "
                    "for a person to decide",
                )
        else:
            self._success_streak += 1
            self._inconclusive_streak = 0
            if self.held and self.outcome == "inconclusive":
                self.held = False
                self.outcome = "in_progress"
                self._waiting = None
                self._decide(now_s, step, "resume", "analysis passed after an inconclusive hold")
        self.policy.after_analysis(self, now_s, step, verdict)

    # --- end of run -------------------------------------------------------------------------

    def _release_summary(self) -> dict[str, Any]:
        summary = self._timings()
        number = self.train.release.number
        parent = self.release_parents.get(number)
        summary.update(
            release=number,
            version=self.version_names[self.candidate],
            parent=None if parent is None else self.version_names[parent],
            started_s=self.started_s,
            restored=None if self.restored is None else self.version_names[self.restored],
        )
        return summary

    def summary(self) -> dict[str, Any]:
        out = self._timings()
        if self.train.is_train:
            releases = [*self.release_log, self._release_summary()]
            out["releases"] = {r["version"]: r for r in releases}
            out["promoted_releases"] = sum(r["outcome"] == "promoted" for r in releases)
            out["production"] = self.version_names[
                self.candidate if self.outcome == "promoted" else self.baseline
            ]
        return out

    def _timings(self) -> dict[str, Any]:
        start = self.first_exposure_s

        def since_start(t: float | None) -> float | None:
            return None if t is None or start is None else t - start

        return {
            "policy": self.config.policy,
            "outcome": self.outcome,
            "final_weight": self.weight,
            "max_candidate_weight": self.max_weight,
            "analyses": self.analyses,
            "failures": self.failures,
            "first_exposure_s": start,
            "time_to_detect_s": since_start(self.first_failure_s),
            "time_to_rollback_s": since_start(self.rollback_s),
            "time_to_promote_s": since_start(self.promote_s),
            "rollback_at_s": self.rollback_s,
            "first_failure_at_s": self.first_failure_s,
            "waiting_for": self.waiting_for,
        }

    @property
    def waiting_for(self) -> str | None:
        """Why an unfinished rollout is stuck, in plain words (None when it is not)."""
        if self._finished:
            return None
        return self._waiting or self.policy.waiting_for()
