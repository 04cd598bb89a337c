"""An evidence that answers each requested measurement from a script, for exact traces of the
policies that run Argo Rollouts analysis runs and Flagger checks.

``MeasuredScript(phases)`` answers the k-th measurement of metric ``name`` with
``phases[name][k]`` (the last one repeats); every request is recorded with its time (the
scripts settle every arrival at once, so the end of the analysed window is the clock), so a
test can check when each metric was measured and over which window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from sim.policies import AnalysisResult, Arms, ArmTotals
from sim.policies.measurements import Measurement, MeasurementPhase, MeasurementRequest


class MeasuredScript:
    """``Evidence`` whose measurements follow a script per metric name."""

    def __init__(self, phases: Mapping[str, Sequence[MeasurementPhase]], n_units: int = 10) -> None:
        self.phases = {name: list(p) for name, p in phases.items()}
        self.taken: dict[str, int] = {}
        self.requests: list[tuple[float, MeasurementRequest]] = []
        self.n_units = n_units

    def settle(self, until_s: float) -> None:
        pass

    def analyse(self, until_s: float, arms: Arms) -> AnalysisResult | None:
        if not arms.measure:
            return None
        measurements = []
        for request in arms.measure:
            self.requests.append((until_s, request))
            script = self.phases[request.metric]
            k = self.taken.get(request.metric, 0)
            self.taken[request.metric] = k + 1
            phase = script[min(k, len(script) - 1)]
            measurements.append(Measurement(request.run, request.metric, phase, f"#{k + 1}"))
        return AnalysisResult(None, "measured", {}, tuple(measurements))

    def times(self, metric: str) -> list[float]:
        return [t for t, r in self.requests if r.metric == metric]

    def totals(self, version: int) -> ArmTotals:
        return ArmTotals(0, 0)

    def restart(self) -> None:
        pass

    def drain_deadlines(self, version: int, now_s: float) -> npt.NDArray[np.float64]:
        return np.full(self.n_units, -np.inf)
