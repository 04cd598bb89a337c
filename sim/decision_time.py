"""How long the CTR gate would take to decide: the projected time to decision.

The gate (:class:`sim.stats.SequentialTest`) is an mSPRT with normal mixing on the
difference of two clustered CTRs.  At an analysis t seconds after the candidate's first
exposure it sees the difference D(t) with variance

    V(t) = V_c(t) + V_b(t),

each arm's variance of its clustered CTR (``ArmStats.sem_sq``), and decides once

    log Λ(t) = −½ log(1 + τ²/V) + D² τ² / (2 V (V + τ²)) ≥ log(1/α).

**Information over time.**  An arm's variance falls as users arrive and come back; with a
fixed population of users it does not fall to 0: users differ in how much they click, and
which users land in which arm is itself noise (the delta method's ``Var(x_u − R n_u)``
holds a term that grows like n_u²).  So each arm's variance is modelled as

    V_arm(t) = a / t + b,      a, b ≥ 0,

fitted by non-negative least squares to the variances the run measured at its analysis
times (:meth:`VarianceGrowth.fit`).  At another weight w the sticky router puts w/w₀ as many
units on the candidate (and (100 − w)/(100 − w₀) as many on the baseline), each behaving as
before, so the variances scale by w₀/w and (100 − w₀)/(100 − w).

**Crossing time.**  With information I = 1/V, the running sum S = D · I is a Brownian motion
with drift δ in information time: S(I) = δ I + B(I).  :func:`project_decision_time`
simulates that path at the gate's own analysis times (every ``interval_s``), with δ the
effect to detect (e.g. 5 % of the baseline's CTR), and records the first analysis where
log Λ ≥ log(1/α): the median over paths is "the time the gate needs", the quartiles its
spread, and the share of paths that decide before the horizon says whether it decides at
all (with a variance floor b > 0 a small effect may never be detected).  The simulation uses
the gate's exact boundary at its exact peeks, so no large-sample closed form is needed; a
fixed generator seed makes the numbers a pure function of the inputs.

Checked against replicated A/B runs of the simulator at two weights
(``tests/validation/test_decision_time.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["DecisionTime", "VarianceGrowth", "msprt_log_lambda_array", "project_decision_time"]

#: Simulated paths per projection: the median's Monte Carlo error is about 2 % of it.
PATHS = 4_000
#: Most analyses simulated per path (coarser peeks beyond that would understate the time).
MAX_ANALYSES = 4_000


@dataclass(frozen=True, slots=True)
class VarianceGrowth:
    """Variance of one arm's clustered CTR against time since first exposure:
    V(t) = a / t + b (t in seconds, V in CTR units squared)."""

    a: float
    b: float

    @classmethod
    def fit(cls, t_s: Sequence[float], variance: Sequence[float]) -> VarianceGrowth:
        """Non-negative least squares of V on (1/t, 1), weighted so that every point counts
        by its relative error (each row divided by its V); one point gives V = a / t."""
        t = np.asarray(t_s, dtype=np.float64)
        v = np.asarray(variance, dtype=np.float64)
        keep = (t > 0) & np.isfinite(v) & (v > 0)
        t, v = t[keep], v[keep]
        if t.size == 0:
            raise ValueError("VarianceGrowth.fit needs at least one positive variance")
        if t.size == 1:
            return cls(float(v[0] * t[0]), 0.0)
        from scipy.optimize import nnls  # slow to import (0.3 s): only when a fit is asked

        design = np.column_stack([1.0 / t, np.ones_like(t)]) / v[:, None]
        coef, _ = nnls(design, np.ones_like(v))
        return cls(float(coef[0]), float(coef[1]))

    def at(self, t_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        t = np.asarray(t_s, dtype=np.float64)
        return self.a / t + self.b


@dataclass(frozen=True, slots=True)
class DecisionTime:
    """The projected time for the gate to decide at one weight.

    Attributes:
        weight: candidate weight, percent.
        median_s: median time from first exposure to the deciding analysis, seconds; None
            when fewer than half the simulated paths decide before the horizon.
        quartiles_s: 25th and 75th percentiles (None where not reached by the horizon).
        decided_share: share of simulated paths that decide before the horizon.
        horizon_s: how far ahead the paths were simulated.
    """

    weight: float
    median_s: float | None
    quartiles_s: tuple[float | None, float | None]
    decided_share: float
    horizon_s: float


def msprt_log_lambda_array(
    difference: npt.NDArray[np.float64], variance: npt.NDArray[np.float64], tau2: float
) -> npt.NDArray[np.float64]:
    """:func:`sim.stats.msprt_log_lambda` over arrays (variance > 0 everywhere)."""
    ratio = tau2 / variance
    return -0.5 * np.log1p(ratio) + difference * difference / (2.0 * variance) * (
        tau2 / (variance + tau2)
    )


def _quantile(times: npt.NDArray[np.float64], q: float) -> float | None:
    """Quantile of crossing times with undecided paths as +inf (censored at the horizon)."""
    value = float(np.quantile(times, q, method="inverted_cdf"))
    return None if math.isinf(value) else value


def project_decision_time(
    *,
    candidate: VarianceGrowth,
    baseline: VarianceGrowth,
    observed_weight: float,
    weight: float,
    effect_abs: float,
    tau2: float,
    alpha: float,
    interval_s: float,
    horizon_s: float,
    seed: int = 0,
    paths: int = PATHS,
) -> DecisionTime:
    """Time for the mSPRT gate to decide at ``weight`` % when the true CTR difference is
    ``effect_abs``, from the arms' variance growth measured at ``observed_weight`` %.

    Analyses every ``interval_s`` seconds from first exposure up to ``horizon_s`` (thinned
    to at most :data:`MAX_ANALYSES`); ``tau2`` and ``alpha`` are the gate's.
    """
    if not (0 < weight < 100 and 0 < observed_weight < 100):
        raise ValueError(f"weights must be in (0, 100), got {weight} and {observed_weight}")
    if interval_s <= 0 or horizon_s < interval_s:
        raise ValueError(f"need 0 < interval_s <= horizon_s, got {interval_s}, {horizon_s}")
    step = interval_s * max(1, math.ceil(horizon_s / interval_s / MAX_ANALYSES))
    t = np.arange(1, int(horizon_s // step) + 1, dtype=np.float64) * step
    variance = candidate.at(t) * (observed_weight / weight) + baseline.at(t) * (
        (100.0 - observed_weight) / (100.0 - weight)
    )
    information = 1.0 / variance
    increments = np.diff(information, prepend=0.0)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((paths, t.size)) * np.sqrt(increments)
    total = np.cumsum(effect_abs * increments + noise, axis=1)
    difference = total / information
    log_lambda = msprt_log_lambda_array(difference, variance[None, :], tau2)
    crossed = log_lambda >= math.log(1.0 / alpha)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    times = np.where(first >= 0, t[np.maximum(first, 0)], np.inf)
    low, median, high = (_quantile(times, q) for q in (0.25, 0.5, 0.75))
    return DecisionTime(
        weight=float(weight),
        median_s=median,
        quartiles_s=(low, high),
        decided_share=float(np.mean(first >= 0)),
        horizon_s=float(t[-1]),
    )
