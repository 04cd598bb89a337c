"""What a policy asks the evidence to measure, and what comes back.

Policies that run Argo Rollouts analysis runs or Flagger metric checks ask for individual
measurements (``MeasurementRequest``: which run, which metric, over which time window); the
evidence answers each with a ``Measurement`` in Argo Rollouts' words (Successful, Failed,
Inconclusive, Error) and the value it saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sim.policies.run_settings import FlaggerCheck, RunMetric

__all__ = ["Measurement", "MeasurementPhase", "MeasurementRequest"]

MeasurementPhase = Literal["Successful", "Failed", "Inconclusive", "Error"]


@dataclass(frozen=True, slots=True)
class MeasurementRequest:
    """Measure ``spec`` for run ``run`` over the arrivals in ``[since_s, now)``."""

    run: str
    spec: RunMetric | FlaggerCheck
    since_s: float

    @property
    def metric(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measurement: its phase, the value as shown (``[0.97]``, ``nil``) and why."""

    run: str
    metric: str
    phase: MeasurementPhase
    value: str
    message: str = ""
    number: float | None = None

    def describe(self) -> str:
        why = f" ({self.message})" if self.message else ""
        return f"{self.metric} {self.value} {self.phase}{why}"
