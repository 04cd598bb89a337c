"""Drive a ``RolloutController`` without SimPy: scripted analysis results, a bare clock.

``ScriptedEvidence`` answers each analysis with the next item of a script (``"pass"``,
``"fail"``, ``"inconclusive"``, ``"skip"`` for a window with too little traffic, or
``None`` for no candidate traffic at all); ``run_script`` wakes the controller at every time
it asks for, like the engine does, and returns its decisions as ``(t_s, action, weight)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.policies import AnalysisResult, Arms, ArmTotals, RolloutController
from sim.policies.settings import Rollout

Trace = list[tuple[float, str, float]]


class ScriptedEvidence:
    """``Evidence`` whose analyses follow a script; records every call."""

    def __init__(
        self,
        script: Iterable[str | None],
        totals: dict[int, ArmTotals] | None = None,
        n_units: int = 10,
    ) -> None:
        self.script = list(script)
        self.totals_by_version = totals or {}
        self.n_units = n_units
        self.analysed: list[tuple[float, Arms]] = []
        self.settled: list[float] = []
        self.restarts = 0
        self.now_s = 0.0

    def settle(self, until_s: float) -> None:
        self.settled.append(self.now_s)

    def analyse(self, until_s: float, arms: Arms) -> AnalysisResult | None:
        self.analysed.append((self.now_s, arms))
        item = self.script.pop(0) if self.script else "inconclusive"
        if item is None:
            return None
        if item == "skip":
            return AnalysisResult(None, "skipped: scripted", {})
        assert item in ("pass", "fail", "inconclusive"), item
        return AnalysisResult(item, f"{item}: scripted", {})  # type: ignore[arg-type]

    def totals(self, version: int) -> ArmTotals:
        return self.totals_by_version.get(version, ArmTotals(0, 0))

    def restart(self) -> None:
        self.restarts += 1

    def drain_deadlines(self, version: int, now_s: float) -> npt.NDArray[np.float64]:
        return np.full(self.n_units, -np.inf)


def rollout(**settings: Any) -> Rollout:
    """A validated ``[rollout]`` table."""
    return Rollout.model_validate(settings)


def controller(
    config: Rollout,
    evidence: ScriptedEvidence,
    *,
    releases: list[tuple[float, int]] | None = None,
    seed: int = 0,
) -> RolloutController:
    names = ["baseline", "candidate", *[f"candidate-{k}" for k in range(2, 10)]]
    return RolloutController(
        config,
        evidence,
        baseline=0,
        candidate=1,
        rng=np.random.default_rng(seed),
        version_names=names,
        releases=releases,
    )


def run_script(ctl: RolloutController, until_s: float) -> Trace:
    """Wake ``ctl`` whenever it asks until ``until_s``; its decisions as a compact trace."""
    now = 0.0
    while True:
        wake = ctl.next_wakeup_s(now)
        if wake is None or wake > until_s:
            break
        now = max(now, wake)
        if isinstance(ctl.evidence, ScriptedEvidence):
            ctl.evidence.now_s = now
        ctl.tick(now, now)
    return [(d.t_s, d.action, d.weight) for d in ctl.decisions]
