"""Kayenta-style automated canary scoring: per metric a Mann-Whitney U test, then a score.

Kayenta (Netflix / Google's canary judge) compares, metric by metric, the time series of the
canary ("experiment") with the one of a baseline ("control") running beside it, classifies each
metric, and scores the canary as the weighted share of metrics that pass.  This module is that
judge over plain arrays, one value per sample (the lab gives it one value per time step per
arm):

1. **Mann-Whitney U** (Wilcoxon rank-sum) of experiment ``x`` (size m) against control ``y``
   (size n): ``U = #{(i, j): x_i > y_j} + ½ #{x_i = y_j}`` from mid-ranks,
   ``z = (U − mn/2 ∓ ½) / σ`` with the tie-corrected
   ``σ² = mn/12 · ((m + n + 1) − Σ(t³ − t) / ((m + n)(m + n − 1)))`` and the two-sided
   ``p = 2 (1 − Φ(|z|))`` (continuity correction ½ towards zero).
2. **Effect**: the Hodges–Lehmann shift ``median(x_i − y_j)`` with its distribution-free
   confidence interval ``[d_(k), d_(mn − k + 1)]`` over the sorted pairwise differences,
   ``k = ⌊mn/2 − z_{1−α/2} · sqrt(mn(m + n + 1)/12)⌋`` (normal approximation, at least 1);
   the ratio of means ``mean(x) / mean(y)``; and the common-language effect size
   ``CLES = U / (mn)`` (P(canary sample > baseline sample), ties halved).
3. **Classification** by the metric's ``direction`` (which change is bad): ``high`` when the
   interval lies above 0 and the ratio of means exceeds ``allowed_increase``, ``low`` when it
   lies below 0 and the ratio is under ``allowed_decrease``, ``nodata`` when either side has
   no finite value, else ``pass``.
4. **Score**: per group, ``100 · pass / (pass + high + low)`` (``nodata`` left out, or counted
   as a failure for ``must_have_data`` metrics); the summary score is
   ``Σ_g score_g · w_g / 100`` over groups with data, where groups without an explicit weight
   share ``100 − Σ given weights`` equally.  Any ``critical`` metric that does not pass sets
   the score to 0 at once.  ``score ≥ pass`` → pass, ``≥ marginal`` → marginal, else fail.

References: Mann & Whitney (1947); Hodges & Lehmann (1963); Hollander, Wolfe & Chicken,
"Nonparametric Statistical Methods" (3rd ed., 2014), §4.1–4.3; McGraw & Wong (1992) for the
CLES; the Kayenta judge's documentation for the classification and weighted-sum score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from replay.distributions import norm_ppf, norm_sf, rankdata

__all__ = [
    "Classification",
    "Direction",
    "KayentaScore",
    "MannWhitney",
    "MetricJudgement",
    "ScoreClass",
    "classify_metric",
    "mann_whitney",
    "score_canary",
]

Direction = Literal["increase", "decrease", "either"]
Classification = Literal["pass", "high", "low", "nodata"]
ScoreClass = Literal["pass", "marginal", "fail"]

#: Pairwise differences beyond this many are thinned to an even grid of both samples' order
#: statistics before the Hodges–Lehmann interval (the test itself always uses every value).
MAX_PAIRS = 4_000_000


@dataclass(frozen=True, slots=True)
class MannWhitney:
    """The test of experiment against control (see the module docstring for each formula)."""

    m: int
    n: int
    u: float
    p_value: float
    shift: float
    ci_low: float
    ci_high: float
    cles: float


def _finite(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def mann_whitney(
    experiment: npt.ArrayLike, control: npt.ArrayLike, *, confidence: float = 0.98
) -> MannWhitney:
    """Two-sided Mann-Whitney U test with the Hodges–Lehmann shift and its interval.

    Non-finite values are dropped first; both samples must keep at least one value.
    """
    x, y = _finite(experiment), _finite(control)
    m, n = x.size, y.size
    if m == 0 or n == 0:
        raise ValueError(f"both samples need a finite value (experiment {m}, control {n})")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    both = np.concatenate([x, y])
    ranks = rankdata(both)
    u = float(ranks[:m].sum() - m * (m + 1) / 2.0)
    total = m + n
    _, counts = np.unique(both, return_counts=True)
    ties = float(np.sum(counts.astype(np.float64) ** 3 - counts))
    variance = m * n / 12.0 * ((total + 1) - (ties / (total * (total - 1)) if total > 1 else 0.0))
    centred = u - m * n / 2.0
    if variance <= 0.0:
        p_value = 1.0  # every value tied: no evidence of a shift
    else:
        correction = 0.5 if centred > 0 else (-0.5 if centred < 0 else 0.0)
        z = (centred - correction) / math.sqrt(variance)
        p_value = float(min(1.0, 2.0 * norm_sf(abs(z))))
    differences = _pairwise_differences(x, y)
    shift = float(np.median(differences))
    pairs = differences.size
    z_crit = float(norm_ppf(0.5 + confidence / 2.0))
    # U's standard deviation sqrt(mn(m + n + 1)/12), in units of the (possibly thinned) grid.
    spread = pairs * math.sqrt((total + 1) / (12.0 * m * n))
    k = math.floor(pairs / 2.0 - z_crit * spread)
    k = min(max(k, 1), (pairs + 1) // 2)
    ordered = np.sort(differences)
    return MannWhitney(
        m=m,
        n=n,
        u=u,
        p_value=p_value,
        shift=shift,
        ci_low=float(ordered[k - 1]),
        ci_high=float(ordered[pairs - k]),
        cles=u / (m * n),
    )


def _pairwise_differences(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Every ``x_i − y_j``; for huge samples, those of evenly spaced order statistics."""
    if x.size * y.size > MAX_PAIRS:
        side = int(math.sqrt(MAX_PAIRS))
        x = np.quantile(x, np.linspace(0, 1, min(side, x.size)))
        y = np.quantile(y, np.linspace(0, 1, min(side, y.size)))
    return (x[:, None] - y[None, :]).ravel()


@dataclass(frozen=True, slots=True)
class MetricJudgement:
    """One metric's classification, with the numbers it rests on (NaN where undefined)."""

    name: str
    classification: Classification
    reason: str
    groups: tuple[str, ...] = ()
    critical: bool = False
    must_have_data: bool = False
    experiment_mean: float = math.nan
    control_mean: float = math.nan
    ratio: float = math.nan
    shift: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    cles: float = math.nan

    @property
    def failed(self) -> bool:
        """Counts against the score: high or low, or no data where data is required."""
        return self.classification in ("high", "low") or (
            self.classification == "nodata" and self.must_have_data
        )


def classify_metric(
    name: str,
    experiment: npt.ArrayLike,
    control: npt.ArrayLike,
    *,
    direction: Direction = "either",
    allowed_increase: float = 1.0,
    allowed_decrease: float = 1.0,
    confidence: float = 0.98,
    groups: Sequence[str] = (),
    critical: bool = False,
    must_have_data: bool = False,
) -> MetricJudgement:
    """Classify one metric (see step 3 of the module docstring)."""
    x, y = _finite(experiment), _finite(control)
    base = MetricJudgement(
        name, "nodata", "", tuple(groups), critical=critical, must_have_data=must_have_data
    )
    if x.size == 0 or y.size == 0:
        return replace(base, reason=f"no {'canary' if x.size == 0 else 'baseline'} data")
    mean_x, mean_y = float(x.mean()), float(y.mean())
    ratio = _ratio(mean_x, mean_y)
    base = replace(base, experiment_mean=mean_x, control_mean=mean_y, ratio=ratio)
    if x.size == y.size and np.array_equal(np.sort(x), np.sort(y)):
        return replace(base, classification="pass", reason="identical samples")
    test = mann_whitney(x, y, confidence=confidence)
    base = replace(
        base,
        shift=test.shift,
        ci_low=test.ci_low,
        ci_high=test.ci_high,
        p_value=test.p_value,
        cles=test.cles,
    )
    interval = (
        f"shift {test.shift:+.4g} ({confidence:.0%} CI {test.ci_low:.4g} to {test.ci_high:.4g})"
    )
    if direction in ("increase", "either") and test.ci_low > 0 and ratio > allowed_increase:
        reason = f"higher: {interval}, ratio {ratio:.3f} > allowed {allowed_increase:g}"
        return replace(base, classification="high", reason=reason)
    if direction in ("decrease", "either") and test.ci_high < 0 and ratio < allowed_decrease:
        reason = f"lower: {interval}, ratio {ratio:.3f} < allowed {allowed_decrease:g}"
        return replace(base, classification="low", reason=reason)
    reason = f"no harmful shift (ratio {ratio:.3f}, p={test.p_value:.3g})"
    return replace(base, classification="pass", reason=reason)


def _ratio(experiment_mean: float, control_mean: float) -> float:
    if control_mean == 0.0:
        return 1.0 if experiment_mean == 0.0 else math.copysign(math.inf, experiment_mean)
    return experiment_mean / control_mean


@dataclass(frozen=True, slots=True)
class KayentaScore:
    """The canary's score (0-100) and its class; ``group_scores`` omits groups without data."""

    score: float
    classification: ScoreClass
    reason: str
    group_scores: dict[str, float] = field(default_factory=dict)
    critical_failures: tuple[str, ...] = ()
    judgements: tuple[MetricJudgement, ...] = ()


def score_canary(
    judgements: Sequence[MetricJudgement],
    *,
    group_weights: Mapping[str, float] | None = None,
    pass_threshold: float = 95.0,
    marginal_threshold: float = 75.0,
) -> KayentaScore:
    """Weighted share of passing metrics against the pass and marginal thresholds."""
    weights = dict(group_weights or {})
    members: dict[str, list[MetricJudgement]] = {}
    for judgement in judgements:
        for group in judgement.groups or ("default",):
            members.setdefault(group, []).append(judgement)
    group_scores: dict[str, float] = {}
    for group, metrics in members.items():
        judged = [j for j in metrics if j.classification != "nodata" or j.must_have_data]
        if judged:
            passed = sum(not j.failed for j in judged)
            group_scores[group] = 100.0 * passed / len(judged)
    unweighted = [g for g in members if g not in weights]
    share = (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
    score = sum(s * weights.get(g, share) / 100.0 for g, s in group_scores.items())
    critical = tuple(j.name for j in judgements if j.critical and j.classification != "pass")
    if critical:
        return KayentaScore(
            0.0,
            "fail",
            f"critical metric {', '.join(critical)} did not pass",
            group_scores,
            critical,
            tuple(judgements),
        )
    score = round(score, 6)
    if score >= pass_threshold:
        classification: ScoreClass = "pass"
    elif score >= marginal_threshold:
        classification = "marginal"
    else:
        classification = "fail"
    failing = [f"{j.name} {j.classification}" for j in judgements if j.failed]
    detail = f" ({', '.join(failing)})" if failing else ""
    reason = (
        f"score {score:.1f} {classification} (pass >= {pass_threshold:g}, "
        f"marginal >= {marginal_threshold:g}){detail}"
    )
    return KayentaScore(score, classification, reason, group_scores, (), tuple(judgements))
