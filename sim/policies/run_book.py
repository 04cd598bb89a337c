"""The analysis runs of an Argo Rollouts policy: which are active, what they measure next,
and what their measurements mean for the rollout.

A policy starts runs (``start``): a *blocking* run holds the plan at its step until it
completes (an inline ``analysis`` step, blue-green's pre-promotion analysis); the others
(background analysis, post-promotion analysis) only matter when they go wrong.  At each
analysis the policy asks for the measurements due (``requests``) and hands the result to
``judge``, which turns the runs' phases into the verdict the controller's common rules apply:

* a run that completed **Failed** or **Error** → ``fail`` (Argo Rollouts aborts the rollout);
* a run that completed **Inconclusive** → ``inconclusive`` (Argo Rollouts pauses for a person);
* the blocking run completed **Successful** → ``pass`` (the plan goes on);
* otherwise no verdict: the measurements are recorded (``measured: ...``) and the runs go on.

Results that carry no per-metric measurements (a scripted evidence in tests) are taken as the
run's verdict as they are; the requested metrics are only marked as measured, so that their
schedule moves on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.policies.analysis import AnalysisResult
from sim.policies.analysis_run import AnalysisRun, RunOutcome
from sim.policies.decisions import Verdict
from sim.policies.measurements import MeasurementPhase, MeasurementRequest
from sim.policies.run_settings import RunMetric, RunRef
from sim.policies.settings import Rollout

__all__ = ["RunBook"]

_SCRIPTED: dict[str | None, MeasurementPhase] = {
    "pass": "Successful",
    "fail": "Failed",
    "inconclusive": "Inconclusive",
    None: "Successful",
}


@dataclass(slots=True)
class _Active:
    run: AnalysisRun
    label: str
    blocking: bool


class RunBook:
    """The analysis runs of one release's rollout."""

    def __init__(self, config: Rollout) -> None:
        self.config = config
        self.active: list[_Active] = []
        self._asked: tuple[MeasurementRequest, ...] = ()
        self._blocking_passed = False

    def metrics_of(self, ref: RunRef) -> list[RunMetric]:
        """The metrics of the templates ``ref`` merges, in template order."""
        return [m for name in ref.templates for m in self.config.templates[name].metrics]

    def start(
        self,
        run_id: str,
        label: str,
        ref: RunRef,
        now_s: float,
        *,
        blocking: bool,
        deadline_s: float = math.inf,
    ) -> None:
        run = AnalysisRun(
            run_id, self.metrics_of(ref), now_s, dry_run=ref.dry_run, deadline_s=deadline_s
        )
        self.active.append(_Active(run, label, blocking))

    @property
    def blocking(self) -> _Active | None:
        return next((a for a in self.active if a.blocking), None)

    def terminate(self, why: str) -> None:
        """Stop every run: the rollout is over."""
        for active in self.active:
            active.run.terminate(why)
        self.active.clear()

    def cancel(self, run_id: str) -> None:
        """Stop one run where it is (blue-green's pre-promotion run at the auto-promotion)."""
        for active in self.active:
            if active.run.id == run_id:
                active.run.terminate("auto-promotion: run marked successful")
        self.active = [a for a in self.active if a.run.id != run_id]

    def next_due_s(self) -> float:
        return min((a.run.next_due_s() for a in self.active), default=math.inf)

    def requests(self, now_s: float) -> tuple[MeasurementRequest, ...]:
        """The measurements due at ``now_s``, remembered for ``judge``."""
        asked: list[MeasurementRequest] = []
        for active in self.active:
            run = active.run
            for metric in run.due(now_s):
                # A query looks back over its own range, whenever the run started (Prometheus'
                # [5m]); a Kayenta ``lookback`` scores everything since the run started.
                since = now_s - metric.spec.lookback_s
                if metric.spec.kayenta is not None and metric.spec.kayenta.lookback:
                    since = min(since, run.started_s)
                asked.append(MeasurementRequest(run.id, metric.spec, since))
        self._asked = tuple(asked)
        return self._asked

    def take_blocking_pass(self) -> bool:
        """Whether the blocking run just completed successfully (asked once)."""
        passed, self._blocking_passed = self._blocking_passed, False
        return passed

    def judge(self, now_s: float, result: AnalysisResult | None) -> AnalysisResult | None:
        asked, self._asked = self._asked, ()
        if result is None or not result.measurements:
            return self._take_as_is(now_s, asked, result)
        runs = {a.run.id: a.run for a in self.active}
        for measurement in result.measurements:
            run = runs.get(measurement.run)
            if run is not None:
                run.record(measurement.metric, measurement.phase, now_s)
        lines = [f"{self._label(m.run)}: {m.describe()}" for m in result.measurements]
        verdict, ended = self._assess(now_s)
        reason = f"{verdict or 'measured'}: {'; '.join(lines + ended)}"
        return AnalysisResult(verdict, reason, result.numbers, result.measurements)

    def assess_deadlines(self, now_s: float) -> AnalysisResult | None:
        """A tick without measurements: runs whose deadline passed end now."""
        verdict, ended = self._assess(now_s)
        if not ended:
            return None
        return AnalysisResult(verdict, f"{verdict or 'measured'}: {'; '.join(ended)}")

    def _label(self, run_id: str) -> str:
        return next((a.label for a in self.active if a.run.id == run_id), run_id)

    def _assess(self, now_s: float) -> tuple[Verdict | None, list[str]]:
        """Complete the runs that are done; the verdict they add up to and what ended."""
        verdict: Verdict | None = None
        ended: list[str] = []
        still: list[_Active] = []
        for active in self.active:
            outcome = active.run.assess(now_s)
            if outcome is None:
                still.append(active)
                continue
            ended.append(self._ended(active, outcome))
            if outcome.phase in ("Failed", "Error"):
                verdict = "fail"
            elif outcome.phase == "Inconclusive" and verdict != "fail":
                verdict = "inconclusive"
            elif active.blocking and verdict is None:
                verdict = "pass"
                self._blocking_passed = True
        self.active = still
        return verdict, ended

    @staticmethod
    def _ended(active: _Active, outcome: RunOutcome) -> str:
        return f"{active.label} {outcome.phase} ({outcome.reason})"

    def _take_as_is(
        self, now_s: float, asked: tuple[MeasurementRequest, ...], result: AnalysisResult | None
    ) -> AnalysisResult | None:
        """A result without measurements: its verdict is the run's; the schedule moves on."""
        verdict = None if result is None else result.verdict
        runs = {a.run.id: a.run for a in self.active}
        for request in asked:
            metric = runs[request.run].metric(request.metric) if request.run in runs else None
            if metric is not None:
                metric.last_s, metric.last_phase = now_s, _SCRIPTED[verdict]
                metric.count += 1
        if result is None:
            return self.assess_deadlines(now_s)
        if verdict in ("fail", "inconclusive"):
            self.active.clear()
            return result
        if verdict == "pass" and self.blocking is not None:
            blocking = self.blocking
            blocking.run.terminate("passed")
            self.active.remove(blocking)
            self._blocking_passed = True
        for active in list(self.active):
            if now_s >= active.run.deadline_s:
                active.run.terminate("deadline")
                self.active.remove(active)
        return result
