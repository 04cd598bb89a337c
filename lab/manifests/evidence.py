"""Which evidence a run's rollout controller reads: the plain analyst, or the one that takes
the measurements of analysis runs, Flagger checks and Kayenta scores (with the condition
language of ``lab.manifests.expressions``)."""

from __future__ import annotations

import functools
from typing import Any

from lab.manifests.expressions import Condition, compile_condition
from sim.monitor import Monitor
from sim.policies import POLICIES, Analyst
from sim.policies.measured import MeasuredAnalyst
from sim.policies.settings import Rollout

__all__ = ["evaluate_condition", "evidence_for"]


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Condition:
    return compile_condition(text)


def evaluate_condition(text: str, result: Any) -> bool:
    """Evaluate a condition (parsed once per text) on a measured ``result``."""
    return _compiled(text)(result)


def evidence_for(rollout: Rollout, monitor: Monitor, *, horizon_s: float) -> Analyst:
    """The evidence for ``rollout``: measured when its policy or a Kayenta judge needs it.

    ``horizon_s`` (the run's duration) sets how many analyses the guardrails' error budget
    is shared across."""
    if POLICIES[rollout.policy].schedules_measurements or rollout.kayenta is not None:
        return MeasuredAnalyst(rollout, monitor, evaluate=evaluate_condition, horizon_s=horizon_s)
    return Analyst(rollout, monitor, horizon_s=horizon_s)
