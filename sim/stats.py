"""Statistics the rollout controller uses to advance, hold or roll back a version.

Every function works on per-arm summaries (:class:`ArmStats`), never on raw records: the
controller keeps, per version and metric, only a count ``n``, a sum ``Σx`` and a sum of
squares ``Σx²``. "Control" is the version in production (the baseline), "treatment" the
candidate being rolled out; every difference is ``treatment − control``.

Contents

- :class:`ArmStats` — n, mean, unbiased variance of one arm.
- :class:`SequentialTest` — the primary-metric gate: mSPRT with normal mixing
  (Johari, Pekelis, Walsh 2017), an always-valid p-value, safe to peek at every interval.
- :func:`z_test` — naive fixed-horizon two-sample z-test (peeking at it inflates errors;
  kept to show exactly that).
- :func:`guardrail_worse` — one-sided non-inferiority test with a margin.
- :func:`srm_check` — sample-ratio mismatch, chi-square goodness of fit.
- :func:`wilson_interval`, :func:`mean_interval`, :func:`difference_interval`,
  :func:`relative_lift_interval` — confidence intervals.

All normal-theory quantities use the plug-in (sample) variances and are large-sample
approximations: they are meant for arms with hundreds of observations or more.

References

- R. Johari, L. Pekelis, D. Walsh (2017), "Peeking at A/B tests: why it matters, and what
  to do about it", KDD '17 (and the longer "Always valid inference", arXiv:1512.04922).
- E. B. Wilson (1927), "Probable inference, the law of succession, and statistical
  inference", JASA 22; R. G. Newcombe (1998), "Two-sided confidence intervals for the
  single proportion", Statistics in Medicine 17.
- P. Armitage, C. K. McPherson, B. C. Rowe (1969), "Repeated significance tests on
  accumulating data", JRSS A 132 (why peeking at a fixed-horizon test inflates errors).
- A. Fabijan et al. (2019), "Diagnosing sample ratio mismatch in online controlled
  experiments: a taxonomy and rules of thumb for practitioners", KDD '19.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from replay.distributions import chisquare, norm_ppf, norm_sf
from replay.errors import must_be
from sim.wording import guardrail_verdict

__all__ = [
    "Z95",
    "ArmStats",
    "GateDecision",
    "GuardrailResult",
    "Interval",
    "SequentialResult",
    "SequentialTest",
    "SrmResult",
    "clustered_ratio",
    "difference_interval",
    "guardrail_worse",
    "mean_interval",
    "mixing_variance_for_mde",
    "msprt_log_lambda",
    "relative_lift_interval",
    "srm_check",
    "wilson_interval",
    "z_test",
    "z_two_sided",
]

_SOURCE = "stats"

#: What the sequential gate concluded (a rollout ``Decision`` is something else).
GateDecision = Literal["better", "worse", "continue"]


def _check_probability(field: str, value: float) -> None:
    """Raise the user error for a level/alpha outside the open interval (0, 1)."""
    if not (isinstance(value, int | float) and 0.0 < value < 1.0):
        raise must_be(_SOURCE, field, "in (0, 1)", value)


def z_two_sided(level: float) -> float:
    """Normal quantile z with P(|Z| <= z) = level (1.96 for 0.95)."""
    _check_probability("level", level)
    return float(norm_ppf(0.5 + level / 2.0))


#: The two-sided 95 % normal quantile, for intervals computed vectorized elsewhere.
Z95 = z_two_sided(0.95)


# --------------------------------------------------------------------------- arm summaries


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Summary of one arm (one version) for one metric.

    Attributes:
        n: number of observations (requests, impressions, ...), >= 0.
        mean: sample mean x̄ = Σx / n, in the metric's unit (0 when n = 0).
        var: unbiased sample variance s² = (Σx² − n x̄²) / (n − 1), in the metric's unit
            squared (0 when n < 2).
    """

    n: int
    mean: float
    var: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"ArmStats.n must be >= 0, got {self.n}")
        if not math.isfinite(self.mean):
            raise ValueError(f"ArmStats.mean must be finite, got {self.mean}")
        if not (math.isfinite(self.var) and self.var >= 0.0):
            raise ValueError(f"ArmStats.var must be finite and >= 0, got {self.var}")

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> ArmStats:
        """Build the summary from the incremental sums the controller keeps.

        x̄ = total / n and s² = (total_sq − total² / n) / (n − 1).

        For n < 2 the variance is undefined and reported as 0. Rounding in
        ``total_sq − total²/n`` can give a tiny negative number for (near-)constant data;
        it is clipped to 0. For a 0/1 metric (clicks) ``total_sq == total``.

        The textbook sum-of-squares formula loses precision when |x̄| is large relative to
        the spread (e.g. latencies of 10⁶ ± 1 ms); for such metrics keep sums of
        ``x − offset`` with a fixed offset (a variance is shift-invariant).
        """
        if n < 0:
            raise ValueError(f"ArmStats.from_sums: n must be >= 0, got {n}")
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = float(total) / n
        if n < 2:
            return cls(n, mean, 0.0)
        var = (float(total_sq) - float(total) * mean) / (n - 1)
        return cls(n, mean, max(var, 0.0))

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> ArmStats:
        """Summary of an array of observations (two-pass, numerically stable)."""
        x = np.asarray(values, dtype=np.float64).ravel()
        n = int(x.shape[0])
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = float(x.mean())
        var = float(x.var(ddof=1)) if n >= 2 else 0.0
        return cls(n, mean, var)

    @property
    def sem_sq(self) -> float:
        """Squared standard error of the mean, s² / n (0 when n = 0)."""
        return self.var / self.n if self.n > 0 else 0.0


# --------------------------------------------------------------------------- mSPRT


def clustered_ratio(unit_n: npt.ArrayLike, unit_x: npt.ArrayLike) -> ArmStats:
    """A ratio metric (e.g. CTR = clicks / requests) when the randomisation unit is a user.

    Requests from one user are not independent (the same user sees the same list and has the
    same tastes), so treating requests as i.i.d. understates the variance and inflates the
    error rate of every test.  The delta method for a ratio of sums over independent units
    (Deng, Knoblich, Lu 2018) gives, with per-unit counts ``n_u`` and sums ``x_u`` over the
    N units that have ``n_u > 0``::

        R = Σx_u / Σn_u,     Var(R) ≈ Var(x_u − R n_u) / (N n̄²)

    The result is an ``ArmStats`` with ``n = N`` units, ``mean = R`` and
    ``var = Var(x_u − R n_u) / n̄²``, so that ``var / n`` is ``Var(R)`` and every test in
    this module (mSPRT, z-test, guardrails, intervals) uses it unchanged.
    """
    n_u = np.asarray(unit_n, dtype=np.float64)
    x_u = np.asarray(unit_x, dtype=np.float64)
    present = n_u > 0
    n_u, x_u = n_u[present], x_u[present]
    units = int(n_u.size)
    if units == 0:
        return ArmStats(0, 0.0, 0.0)
    ratio = float(x_u.sum() / n_u.sum())
    if units < 2:
        return ArmStats(units, ratio, 0.0)
    residual = x_u - ratio * n_u
    n_bar = float(n_u.mean())
    var = float(residual.var(ddof=1)) / (n_bar * n_bar)
    return ArmStats(units, ratio, max(var, 0.0))


def mixing_variance_for_mde(mde_abs: float) -> float:
    """Mixing variance τ² of the mSPRT for a minimum detectable effect, τ² = mde_abs².

    The mSPRT mixes the likelihood ratio over effects θ ~ N(0, τ²). Putting the standard
    deviation of that mixing distribution at the smallest effect worth detecting gives
    effects of that size substantial weight, so evidence for them accumulates quickly,
    while the always-valid guarantee holds for any τ² > 0 (Johari et al. 2017, section 4,
    discuss matching τ² to the distribution of true effects). Power at the MDE is not very
    sensitive to this choice: τ between 0.5× and 2× the MDE changes it by a few points.

    Args:
        mde_abs: minimum detectable effect on the absolute scale of the metric
            (e.g. a 10 % relative lift on a CTR of 0.05 is 0.005), > 0.

    Returns:
        τ², in the metric's unit squared.
    """
    if not (isinstance(mde_abs, int | float) and math.isfinite(mde_abs) and mde_abs > 0):
        raise must_be(_SOURCE, "mde_abs", "a finite number > 0", mde_abs)
    return float(mde_abs) ** 2


def msprt_log_lambda(difference: float, variance: float, tau2: float) -> float:
    """Natural log of the mSPRT mixture likelihood ratio for a difference of two means.

    With d the observed difference of means, V its variance (var_a/n_a + var_b/n_b) and τ²
    the mixing variance (Johari et al. 2017, normal mixture over θ ~ N(0, τ²)):

        Λ = sqrt(V / (V + τ²)) · exp(τ² d² / (2 V (V + τ²)))
        log Λ = −½ log(1 + τ²/V) + (d² / (2V)) · (τ² / (V + τ²))

    Computed in log space so that Λ never overflows. Λ ≥ 0 always; H0 (θ = 0) is rejected
    at level α as soon as Λ ≥ 1/α.

    When V = 0 (both arms constant, or too few observations to estimate a variance) there
    is no estimate of the noise and the function returns 0 (Λ = 1: no evidence either
    way) rather than the formula's limit: a promotion should never rest on a degenerate
    variance.
    """
    if not tau2 > 0:
        raise ValueError(f"msprt_log_lambda: tau2 must be > 0, got {tau2}")
    if not variance > 0:
        return 0.0
    ratio = tau2 / variance
    # log(1 + τ²/V); for a subnormal V the ratio overflows, the difference of logs does not.
    log_inflation = (
        math.log1p(ratio)
        if math.isfinite(ratio)
        else math.log(variance + tau2) - math.log(variance)
    )
    shrink = tau2 / (variance + tau2)
    if shrink == 0.0:  # τ² negligible next to V: no evidence term (and no inf · 0)
        return -0.5 * log_inflation
    # May be +inf for a difference that is astronomically large relative to its noise; that
    # is Λ = ∞, p = 0, and stays well defined.
    evidence = difference * difference / (2.0 * variance) * shrink
    return -0.5 * log_inflation + evidence


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """The state of a :class:`SequentialTest` after one update (one peek).

    Attributes:
        log_lambda: natural log of the mixture likelihood ratio Λ_t at this peek.
        p_value: always-valid p-value p_t = min(p_{t−1}, 1/Λ_t), p_0 = 1; in [0, 1].
        difference: observed d = mean_treatment − mean_control at this peek (metric unit).
        decision: "better" (treatment mean significantly higher), "worse" (significantly
            lower) or "continue". Sticky: once decided it never changes.
    """

    log_lambda: float
    p_value: float
    difference: float
    decision: GateDecision


class SequentialTest:
    """mSPRT for the difference of two means, safe to evaluate after every interval.

    Tests H0: μ_treatment = μ_control against the two-sided alternative with the mixture
    sequential probability ratio test of Johari, Pekelis and Walsh (2017), normal mixing
    with variance τ² (see :func:`msprt_log_lambda`). The always-valid p-value

        p_t = min(p_{t−1}, 1/Λ_t),  p_0 = 1

    satisfies P_H0(∃t: p_t ≤ α) ≤ α however often the test is peeked at, so a controller may
    update it at every interval. The first time p_t ≤ α the test decides "better" if
    d = mean_treatment − mean_control > 0 and "worse" if d < 0 (d ≠ 0 there, because
    Λ < 1 when d = 0); the decision is then frozen.

    The guarantee is exact for normal data with known variance; with plug-in variances and
    Bernoulli data it holds approximately for large arms (checked by the A/A validation in
    ``tests/validation/test_gates_aa.py``). Arms must accumulate: sample sizes may not
    shrink between updates.

    Args:
        alpha: significance level, in (0, 1); the bound on the false "better" plus false
            "worse" rate over the whole rollout.
        tau2: mixing variance τ² > 0 in the metric's unit squared, e.g.
            :func:`mixing_variance_for_mde`.
    """

    __slots__ = ("_alpha", "_decision", "_last_n", "_n_updates", "_p_value", "_tau2")

    def __init__(self, alpha: float, tau2: float) -> None:
        _check_probability("alpha", alpha)
        if not (isinstance(tau2, int | float) and math.isfinite(tau2) and tau2 > 0):
            raise must_be(_SOURCE, "tau2", "a finite number > 0", tau2)
        self._alpha = float(alpha)
        self._tau2 = float(tau2)
        self._p_value = 1.0
        self._decision: GateDecision = "continue"
        self._n_updates = 0
        self._last_n = (0, 0)

    @classmethod
    def for_mde(cls, alpha: float, mde_abs: float) -> SequentialTest:
        """A test whose τ² comes from the minimum detectable effect (τ² = mde_abs²)."""
        return cls(alpha, mixing_variance_for_mde(mde_abs))

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def tau2(self) -> float:
        return self._tau2

    @property
    def p_value(self) -> float:
        """Current always-valid p-value (1 before the first update)."""
        return self._p_value

    @property
    def decision(self) -> GateDecision:
        return self._decision

    @property
    def n_updates(self) -> int:
        """Number of peeks so far."""
        return self._n_updates

    def update(self, control: ArmStats, treatment: ArmStats) -> SequentialResult:
        """Fold in the cumulative summaries of both arms at one peek.

        Arms with fewer than two observations carry no variance estimate: the peek then
        reports Λ = 1 and leaves the p-value and decision unchanged.
        """
        if control.n < self._last_n[0] or treatment.n < self._last_n[1]:
            raise ValueError(
                "SequentialTest.update: cumulative sample sizes must not shrink, got "
                f"control {self._last_n[0]} -> {control.n}, "
                f"treatment {self._last_n[1]} -> {treatment.n}"
            )
        self._last_n = (control.n, treatment.n)
        self._n_updates += 1

        difference = treatment.mean - control.mean
        if control.n < 2 or treatment.n < 2:
            log_lambda = 0.0
        else:
            variance = control.sem_sq + treatment.sem_sq
            log_lambda = msprt_log_lambda(difference, variance, self._tau2)

        # 1/Λ = exp(−log Λ); capped at 1 because p-values live in [0, 1]. exp underflows to
        # 0 quietly for huge Λ, and overflow is impossible since the argument is <= 0 here.
        inverse_lambda = math.exp(-log_lambda) if log_lambda > 0 else 1.0
        self._p_value = min(self._p_value, inverse_lambda)

        if self._decision == "continue" and self._p_value <= self._alpha:
            self._decision = "better" if difference > 0 else "worse"
        return SequentialResult(
            log_lambda=log_lambda,
            p_value=self._p_value,
            difference=difference,
            decision=self._decision,
        )


# --------------------------------------------------------------------------- fixed horizon


def _standard_error(control: ArmStats, treatment: ArmStats) -> float:
    """sqrt(var_c/n_c + var_t/n_t), the standard error of mean_t − mean_c."""
    return math.sqrt(control.sem_sq + treatment.sem_sq)


def z_test(control: ArmStats, treatment: ArmStats) -> tuple[float, float]:
    """Naive fixed-horizon two-sample z-test of H0: μ_treatment = μ_control.

        z = (x̄_t − x̄_c) / sqrt(s²_c/n_c + s²_t/n_t),   p = 2 · (1 − Φ(|z|))

    Valid only when evaluated once, at a sample size fixed in advance. Evaluating it at
    every interval and stopping at the first p ≤ α raises the false-positive rate far above
    α (Armitage et al. 1969; about 25 % for 20 looks at α = 0.05). It exists to show that;
    gates use :class:`SequentialTest`.

    Returns:
        (z, two-sided p-value). If an arm has n < 2, (0, 1). If the standard error is 0
        (both arms constant), z = ±∞ and p = 0 when the means differ, else (0, 1).
    """
    if control.n < 2 or treatment.n < 2:
        return 0.0, 1.0
    difference = treatment.mean - control.mean
    se = _standard_error(control, treatment)
    if se == 0.0:
        if difference == 0.0:
            return 0.0, 1.0
        return math.copysign(math.inf, difference), 0.0
    z = difference / se
    p = float(2.0 * norm_sf(abs(z)))
    return z, min(p, 1.0)


# --------------------------------------------------------------------------- guardrails


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """Outcome of :func:`guardrail_worse`.

    Attributes:
        worse: True when the test rejects "treatment is not worse by more than the margin".
        z: test statistic (harm − margin) / SE(harm); +∞/−∞ for a zero standard error,
            NaN when it cannot be computed (too few observations, control mean 0 for a
            relative margin).
        p_value: one-sided p-value 1 − Φ(z), in [0, 1] (1 when the test cannot be run).
        delta_abs: mean_treatment − mean_control, in the metric's unit.
        delta_rel: (mean_treatment − mean_control) / |mean_control|, a fraction
            (NaN when the control mean is 0).
        reason: one line for the decision trace, e.g.
            ``"ctr relative delta -4.1% below -3.0% (p=0.012)"``.
    """

    worse: bool
    z: float
    p_value: float
    delta_abs: float
    delta_rel: float
    reason: str


def _format_delta(value: float, relative: bool) -> str:
    return f"{value * 100:+.1f}%" if relative else f"{value:+.4g}"


def guardrail_worse(
    control: ArmStats,
    treatment: ArmStats,
    *,
    margin: float,
    relative: bool,
    higher_is_better: bool,
    alpha: float,
    metric: str = "metric",
) -> GuardrailResult:
    """One-sided test: is the treatment worse than the control by more than ``margin``?

    Let s = +1 if higher values are better (CTR, hit rate) and −1 otherwise (latency, error
    rate), and define the harm h as the change in the bad direction:

        absolute:  h = −s · (μ_t − μ_c)            margin in the metric's unit
        relative:  h = −s · (μ_t − μ_c) / |μ_c|    margin a fraction (0.03 = 3 %)

    Tested hypotheses (a non-inferiority test):

        H0: h ≤ margin   (treatment is not worse by more than the margin)
        H1: h > margin   (treatment is worse by more than the margin)

    with z = (ĥ − margin) / SE(ĥ) and p = 1 − Φ(z); ``worse`` is p ≤ α. SE is the normal
    standard error sqrt(s²_t/n_t + s²_c/n_c), divided by |x̄_c| and propagated through the
    ratio by the delta method in the relative case:

        Var(x̄_t / x̄_c) ≈ s²_t / (n_t x̄_c²) + x̄_t² s²_c / (n_c x̄_c⁴)

    The burden of proof is on harm: with little data the guardrail passes. A guardrail
    checked at many intervals is a fixed-horizon test looked at repeatedly; its false
    failure rate grows with the number of looks, so use a smaller α per look (e.g. α / looks)
    when it is evaluated at every interval.

    If either arm has n < 2, or the control mean is 0 with a relative margin, the test is
    not run: ``worse`` is False, p = 1, z = NaN and ``reason`` says why. A zero standard
    error with ĥ > margin (e.g. a candidate that fails every request) counts as worse.

    Args:
        control, treatment: per-arm summaries of the metric.
        margin: allowed harm, >= 0, absolute (metric unit) or relative (fraction).
        relative: whether ``margin`` and the harm are relative to the control mean.
        higher_is_better: direction of the metric.
        alpha: one-sided significance level, in (0, 1).
        metric: name used in ``reason``.
    """
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin >= 0):
        raise must_be(_SOURCE, f"guardrail[{metric}].margin", "a finite number >= 0", margin)
    _check_probability(f"guardrail[{metric}].alpha", alpha)

    delta_abs = treatment.mean - control.mean
    delta_rel = delta_abs / abs(control.mean) if control.mean != 0.0 else math.nan
    kind = "relative" if relative else "absolute"
    sign = 1.0 if higher_is_better else -1.0
    # The bound the delta must not cross, expressed on the delta's own scale.
    limit = -sign * margin
    side = "below" if higher_is_better else "above"
    shown_delta = delta_rel if relative else delta_abs

    def skipped(why: str) -> GuardrailResult:
        return GuardrailResult(False, math.nan, 1.0, delta_abs, delta_rel, f"{metric}: {why}")

    if control.n < 2 or treatment.n < 2:
        return skipped(
            f"not tested, too few observations (control n={control.n}, treatment n={treatment.n})"
        )
    if relative:
        if control.mean == 0.0:
            return skipped("not tested, control mean is 0 so a relative delta is undefined")
        mc = control.mean
        se = math.sqrt(treatment.sem_sq / (mc * mc) + treatment.mean**2 * control.sem_sq / mc**4)
        harm = -sign * delta_rel
    else:
        se = _standard_error(control, treatment)
        harm = -sign * delta_abs

    excess = harm - margin
    if se == 0.0:
        z = math.copysign(math.inf, excess) if excess != 0.0 else 0.0
        p = 0.0 if excess > 0 else (0.5 if excess == 0.0 else 1.0)
    else:
        z = excess / se
        p = float(norm_sf(z))
    worse = p <= alpha

    delta_text = _format_delta(shown_delta, relative)
    limit_text = _format_delta(limit, relative)
    beyond = excess > 0
    verdict = guardrail_verdict(
        worse=worse, beyond=beyond, side=side, limit_text=limit_text, alpha=alpha
    )
    reason = f"{metric} {kind} delta {delta_text} {verdict} (p={p:.2g})"
    return GuardrailResult(worse, z, p, delta_abs, delta_rel, reason)


# --------------------------------------------------------------------------- sample ratio


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Outcome of :func:`srm_check`.

    Attributes:
        mismatch: True when p ≤ α: the observed split is unlikely under the intended one.
        chi2: Pearson statistic Σ (O_i − E_i)² / E_i.
        p_value: upper tail of χ² with k − 1 degrees of freedom.
        expected: E_i = N · f_i, the counts the intended split predicts.
    """

    mismatch: bool
    chi2: float
    p_value: float
    expected: tuple[float, ...]


def srm_check(
    observed_counts: Sequence[int] | npt.NDArray[np.integer],
    expected_fractions: Sequence[float] | npt.NDArray[np.floating],
    *,
    alpha: float = 0.001,
) -> SrmResult:
    """Sample-ratio mismatch: Pearson chi-square goodness of fit of assigned counts.

        χ² = Σ_i (O_i − N f_i)² / (N f_i),  N = Σ O_i,  df = k − 1

    (``scipy.stats.chisquare``). A mismatch means assignment, logging or filtering is
    broken, so no metric comparison can be trusted. The default α = 0.001 is deliberately
    small because the check runs at every interval and a false alarm halts a rollout
    (experimentation platforms use thresholds of this order, see Fabijan et al. 2019).

    Args:
        observed_counts: units assigned to each arm, integers >= 0, k >= 2 entries.
        expected_fractions: intended split, k entries > 0; normalised to sum to 1
            (so weights such as ``[95, 5]`` are accepted).
        alpha: significance level, in (0, 1).

    With no observations at all there is nothing to test: mismatch False, χ² = 0, p = 1.
    """
    _check_probability("srm.alpha", alpha)
    observed = np.asarray(observed_counts, dtype=np.float64).ravel()
    fractions = np.asarray(expected_fractions, dtype=np.float64).ravel()
    if observed.shape[0] < 2:
        raise must_be(
            _SOURCE, "srm.observed_counts", "at least 2 arms", np.asarray(observed_counts).tolist()
        )
    if fractions.shape != observed.shape:
        raise must_be(
            _SOURCE,
            "srm.expected_fractions",
            f"one entry per arm ({observed.shape[0]})",
            np.asarray(expected_fractions).tolist(),
        )
    if not (np.all(np.isfinite(observed)) and np.all(observed >= 0)) or np.any(
        observed != np.round(observed)
    ):
        raise must_be(
            _SOURCE, "srm.observed_counts", "integers >= 0", np.asarray(observed_counts).tolist()
        )
    if not (np.all(np.isfinite(fractions)) and np.all(fractions > 0)):
        raise must_be(
            _SOURCE,
            "srm.expected_fractions",
            "finite numbers > 0",
            np.asarray(expected_fractions).tolist(),
        )
    fractions = fractions / fractions.sum()
    total = float(observed.sum())
    expected = fractions * total
    if total == 0:
        return SrmResult(False, 0.0, 1.0, tuple(float(e) for e in expected))
    chi2, p = chisquare(observed, expected)
    return SrmResult(p <= alpha, chi2, p, tuple(float(e) for e in expected))


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True, slots=True)
class Interval:
    """A two-sided confidence interval at ``level`` around a point ``estimate``.

    ``low`` / ``high`` are −∞ / +∞ when the data say nothing (e.g. fewer than 2
    observations).
    """

    estimate: float
    low: float
    high: float
    level: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


def _unbounded(estimate: float, level: float) -> Interval:
    return Interval(estimate, -math.inf, math.inf, level)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (Wilson 1927; Newcombe 1998).

    With p̂ = successes / n and z the two-sided normal quantile for ``level``:

        centre = (p̂ + z²/(2n)) / (1 + z²/n)
        half   = z / (1 + z²/n) · sqrt(p̂(1 − p̂)/n + z²/(4n²))

    Stays inside [0, 1] and behaves well for rates near 0 (CTR, error rates), unlike the
    Wald interval. ``estimate`` is p̂. With n = 0 the interval is [0, 1] (estimate NaN).
    """
    z = z_two_sided(level)
    if n < 0 or not (0 <= successes <= max(n, 0)):
        raise must_be(_SOURCE, "wilson.successes", f"in [0, n={n}]", successes)
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, level)
    p_hat = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p_hat + z2 / (2.0 * n)) / denominator
    half = z / denominator * math.sqrt(p_hat * (1.0 - p_hat) / n + z2 / (4.0 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; rounding would leave ~1e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(p_hat, low, high, level)


def mean_interval(stats: ArmStats, level: float = 0.95) -> Interval:
    """Normal interval for a mean: x̄ ± z · sqrt(s²/n).

    Uses the normal quantile, not Student's t: arms are large. Unbounded when n < 2.
    """
    z = z_two_sided(level)
    if stats.n < 2:
        return _unbounded(stats.mean, level)
    half = z * math.sqrt(stats.sem_sq)
    return Interval(stats.mean, stats.mean - half, stats.mean + half, level)


def difference_interval(control: ArmStats, treatment: ArmStats, level: float = 0.95) -> Interval:
    """Normal interval for μ_t − μ_c: (x̄_t − x̄_c) ± z · sqrt(s²_c/n_c + s²_t/n_t).

    Unbounded when an arm has n < 2.
    """
    z = z_two_sided(level)
    difference = treatment.mean - control.mean
    if control.n < 2 or treatment.n < 2:
        return _unbounded(difference, level)
    half = z * _standard_error(control, treatment)
    return Interval(difference, difference - half, difference + half, level)


def relative_lift_interval(control: ArmStats, treatment: ArmStats, level: float = 0.95) -> Interval:
    """Delta-method interval for the relative lift L = μ_t / μ_c − 1 (a fraction).

        L̂ = x̄_t / x̄_c − 1
        Var(L̂) ≈ s²_t / (n_t x̄_c²) + x̄_t² s²_c / (n_c x̄_c⁴)

    (first-order Taylor expansion of the ratio, arms independent); L̂ ± z · sqrt(Var).
    Unbounded, with a NaN estimate, when x̄_c = 0; unbounded when an arm has n < 2.
    """
    z = z_two_sided(level)
    if control.mean == 0.0:
        return _unbounded(math.nan, level)
    mc = control.mean
    lift = treatment.mean / mc - 1.0
    if control.n < 2 or treatment.n < 2:
        return _unbounded(lift, level)
    se = math.sqrt(treatment.sem_sq / (mc * mc) + treatment.mean**2 * control.sem_sq / mc**4)
    return Interval(lift, lift - z * se, lift + z * se, level)
