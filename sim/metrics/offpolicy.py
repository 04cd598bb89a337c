"""Off-policy estimates of a target policy's reward from logs of another (logging) policy.

Inputs are per-request arrays taken from a log with a propensity column, e.g.
``frame["clicks"].to_numpy()`` for rewards and ``frame["propensity"].to_numpy()`` for the
probability with which the logging policy chose the logged action.  An "action" is
whatever the policy chose (an item id, a list id); for a deterministic target policy,
``target_propensity = (target_action == logged_action)``.  Slate logs (one row per item
shown at a position, as in the Open Bandit Dataset) get position-aware estimates
(:func:`slate_estimates`).

Intervals never collapse to a point: with 0/1 rewards and no click among the matched
(or weighted) rows, the normal interval value ± z·0 would claim the value exactly; the
Wilson score interval at the effective sample size is used instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from replay.errors import must_be
from sim.metrics._checks import FloatArray, as_1d_float, as_probability, same_length, z_value
from sim.metrics.engagement import wilson_interval

__all__ = [
    "OffPolicyEstimate",
    "SlateEstimate",
    "ips_estimate",
    "replay_estimate",
    "slate_estimates",
    "snips_estimate",
]


@dataclass(frozen=True, slots=True)
class OffPolicyEstimate:
    """Estimated mean reward of the target policy with a confidence interval.

    ``n`` is the number of log rows used; ``effective_n`` the Kish effective sample size
    (Σw)² / Σw² of the importance weights (the matched count for replay): a small value
    next to ``n`` means a few heavily weighted rows drive the estimate.  ``interval`` says
    how ``ci_low``/``ci_high`` were computed: ``normal`` (value ± z·SE) or ``wilson`` (the
    Wilson score interval of a 0/1 reward's rate at the effective sample size, used where a
    normal interval says nothing: the replay estimator's matched rows, and IPS / SNIPS
    whose standard error is 0 because no weighted row, or every one, was clicked).
    """

    value: float
    std_error: float
    ci_low: float
    ci_high: float
    n: int
    effective_n: float
    confidence: float
    estimator: Literal["replay", "ips", "snips"]
    interval: Literal["normal", "wilson"] = "normal"


def _estimate(
    value: float,
    se: float,
    z: float,
    n: int,
    eff: float,
    confidence: float,
    estimator: Literal["replay", "ips", "snips"],
) -> OffPolicyEstimate:
    return OffPolicyEstimate(
        value, se, value - z * se, value + z * se, n, eff, confidence, estimator
    )


def _binary(reward: FloatArray) -> bool:
    return bool(np.all((reward == 0.0) | (reward == 1.0)))


def _wilson(
    estimate: OffPolicyEstimate, rate: float, effective_n: float, scale: float = 1.0
) -> OffPolicyEstimate:
    """``estimate`` with ``scale`` × the Wilson interval of ``rate`` over ``effective_n``
    trials (fractional trials allowed: the Kish size of weighted rows)."""
    low, high = wilson_interval(rate * effective_n, effective_n, confidence=estimate.confidence)
    return replace(
        estimate, ci_low=scale * float(low), ci_high=scale * float(high), interval="wilson"
    )


def replay_estimate(
    logged_action: npt.ArrayLike,
    reward: npt.ArrayLike,
    target_action: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> OffPolicyEstimate:
    """Replay (rejection) estimator: the mean reward over rows where the target policy
    would have chosen the logged action.

    V̂ = Σ_t r_t · 1[π(x_t) = a_t] / Σ_t 1[π(x_t) = a_t],  SE = sd(r over matches) / √matches.

    Unbiased when the logging policy chose actions uniformly at random (otherwise use IPS).
    Shapes: ``logged_action``, ``target_action`` integer [n], ``reward`` [n] finite.
    Reference: Li, Chu, Langford, Wang (2011), "Unbiased Offline Evaluation of
    Contextual-bandit-based News Article Recommendation Algorithms", WSDM, Algorithm 2.
    """
    source = "replay_estimate"
    z = z_value(source, confidence)
    logged = np.asarray(logged_action)
    target = np.asarray(target_action)
    r = as_1d_float(source, "reward", reward)
    for name, arr in (("logged_action", logged), ("target_action", target)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise must_be(source, f"{name}", "a 1-D integer array", (arr.shape, str(arr.dtype)))
        same_length(source, ("reward", name), r, arr)
    matched = r[logged == target]
    n = int(matched.shape[0])
    if n == 0:
        raise must_be(
            source,
            "target_action",
            "equal to the logged action in at least one row",
            0,
            hint="the replay estimator has nothing to average",
        )
    se = float(matched.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    estimate = _estimate(float(matched.mean()), se, z, n, float(n), confidence, "replay")
    # Clicks among matched rows are a binomial count: Wilson, which never collapses to a
    # point (no clicks in 4 matched rows is not "exactly 0").
    return _wilson(estimate, estimate.value, float(n)) if _binary(matched) else estimate


def _weights(
    source: str,
    reward: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    r = as_1d_float(source, "reward", reward, min_size=2)
    mu = as_probability(source, "logging_propensity", logging_propensity, open_low=True)
    pi = as_probability(source, "target_propensity", target_propensity)
    same_length(source, ("reward", "logging_propensity"), r, mu)
    same_length(source, ("reward", "target_propensity"), r, pi)
    return r, pi / mu


def _kish(w: FloatArray) -> float:
    sq = float((w * w).sum())
    return float(w.sum()) ** 2 / sq if sq > 0 else 0.0


def ips_estimate(
    reward: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> OffPolicyEstimate:
    """Inverse propensity scoring: V̂ = (1/n) Σ_t w_t r_t with w_t = π(a_t | x_t) / μ(a_t | x_t).

    SE = sd(w_t r_t) / √n.  Unbiased when μ > 0 wherever π > 0; high variance when the
    weights are large.
    Shapes: ``reward`` [n], ``logging_propensity`` μ [n] in (0, 1], ``target_propensity``
    π [n] in [0, 1].
    Reference: Horvitz & Thompson (1952), JASA 47(260); for recommendation,
    Dudík, Langford, Li (2011), "Doubly Robust Policy Evaluation and Learning", ICML.
    """
    source = "ips_estimate"
    z = z_value(source, confidence)
    r, w = _weights(source, reward, logging_propensity, target_propensity)
    terms = w * r
    n = int(r.shape[0])
    se = float(terms.std(ddof=1) / np.sqrt(n))
    estimate = _estimate(float(terms.mean()), se, z, n, _kish(w), confidence, "ips")
    total = float(w.sum())
    if se == 0.0 and total > 0 and _binary(r):
        # IPS = mean weight × SNIPS: the weighted click rate's Wilson interval, scaled.
        rate = float((w * r).sum() / total)
        return _wilson(estimate, rate, estimate.effective_n, scale=total / n)
    return estimate


def snips_estimate(
    reward: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> OffPolicyEstimate:
    """Self-normalised IPS: V̂ = Σ_t w_t r_t / Σ_t w_t (weights as in :func:`ips_estimate`).

    Delta-method standard error of the ratio: SE = sqrt(Σ_t w_t² (r_t − V̂)²) / Σ_t w_t.
    Slightly biased, much lower variance than IPS, and stays within the reward range.
    Reference: Swaminathan & Joachims (2015), "The Self-Normalized Estimator for
    Counterfactual Learning", NeurIPS.
    """
    source = "snips_estimate"
    z = z_value(source, confidence)
    r, w = _weights(source, reward, logging_propensity, target_propensity)
    total = float(w.sum())
    if not total > 0:
        raise must_be(
            source,
            "target_propensity",
            "positive on at least one logged action",
            0.0,
            hint="the target policy never takes an action the log contains",
        )
    value = float((w * r).sum() / total)
    resid = w * (r - value)
    se = float(np.sqrt((resid * resid).sum()) / total)
    estimate = _estimate(value, se, z, int(r.shape[0]), _kish(w), confidence, "snips")
    if se == 0.0 and _binary(r):
        return _wilson(estimate, value, estimate.effective_n)
    return estimate


@dataclass(frozen=True, slots=True)
class SlateEstimate:
    """Position-aware estimates of a ranking policy on a slate log.

    Per position k (``positions``, 0 = top): IPS and SNIPS of the reward at that position
    (``None`` where a position has fewer than two rows, or SNIPS where the target never
    takes a logged action there).  ``ips_total``: expected reward per slate, the mean over
    slates of Σ_k w_k r_k (independent IPS), its standard error over slates.
    ``snips_total``: the same quantity from the positions' SNIPS, Σ_k (n_k / S) SNIPS_k with
    SE sqrt(Σ_k (n_k / S)² SE_k²) (positions taken as independent), ``None`` unless every
    position has a SNIPS estimate.  n_k / S is the share of slates that logged position k:
    1 for slates that log every position (then Σ_k SNIPS_k), about 1/P for a log of one
    position per row such as the Open Bandit Dataset, where the sum alone counted every
    position per row and overstated the value P-fold.
    """

    positions: tuple[int, ...]
    ips: tuple[OffPolicyEstimate | None, ...]
    snips: tuple[OffPolicyEstimate | None, ...]
    ips_total: OffPolicyEstimate
    snips_total: OffPolicyEstimate | None


def _summed(
    parts: list[OffPolicyEstimate],
    shares: list[float],
    value: float,
    se: float,
    z: float,
    n: int,
    eff: float,
) -> OffPolicyEstimate:
    """A total over positions, Σ_k share_k part_k; where its normal interval collapses, the
    parts' intervals are added with the same shares (each Wilson there), which keeps it from
    claiming exactly ``value``."""
    estimator = parts[0].estimator
    total = _estimate(value, se, z, n, eff, parts[0].confidence, estimator)
    if se == 0.0 and any(p.interval == "wilson" for p in parts):
        return replace(
            total,
            ci_low=sum(c * p.ci_low for c, p in zip(shares, parts, strict=True)),
            ci_high=sum(c * p.ci_high for c, p in zip(shares, parts, strict=True)),
            interval="wilson",
        )
    return total


def slate_estimates(
    reward: npt.ArrayLike,
    logging_propensity: npt.ArrayLike,
    target_propensity: npt.ArrayLike,
    position: npt.ArrayLike,
    slate: npt.ArrayLike,
    *,
    confidence: float = 0.95,
) -> SlateEstimate:
    """Independent IPS and SNIPS per position of a slate log, and per slate.

    One row per (slate, position): ``reward`` r [n] (e.g. a click on the item shown
    there), ``logging_propensity`` μ [n] = μ(a at k | x), ``target_propensity`` π [n] =
    π(a at k | x), ``position`` k [n] (integers >= 0, 0 the top), ``slate`` [n] (which
    impression the row belongs to).  With w = π / μ:

        IPS_k   = (1 / n_k) Σ_{rows at k} w r            SNIPS_k = Σ_{k} w r / Σ_{k} w
        IPS     = (1 / S) Σ_slates Σ_{k in slate} w_k r_k   (expected reward per slate)

    Unbiased under the independence (position-based click) assumption.
    Reference: Li, Kim, Kveton, Muthukrishnan (2018), "Offline Evaluation of Ranking
    Policies with Click Models", KDD; Saito et al. (2021), "Open Bandit Dataset and
    Pipeline", NeurIPS Datasets and Benchmarks.
    """
    source = "slate_estimates"
    z = z_value(source, confidence)
    r, w = _weights(source, reward, logging_propensity, target_propensity)
    mu = as_probability(source, "logging_propensity", logging_propensity, open_low=True)
    pi = as_probability(source, "target_propensity", target_propensity)
    k = np.asarray(position)
    if k.shape != r.shape or k.dtype.kind not in "iu" or (k < 0).any():
        raise must_be(source, "position", f"{r.shape[0]} integers >= 0", (k.shape, str(k.dtype)))
    groups = np.unique(np.asarray(slate), return_inverse=True)[1]
    if groups.shape != r.shape:
        raise must_be(source, "slate.shape", f"{r.shape} like reward", groups.shape)
    positions = tuple(int(p) for p in np.unique(k))
    ips: list[OffPolicyEstimate | None] = []
    snips: list[OffPolicyEstimate | None] = []
    for p in positions:
        at = k == p
        if at.sum() < 2:
            ips.append(None)
            snips.append(None)
            continue
        ips.append(ips_estimate(r[at], mu[at], pi[at], confidence=confidence))
        snips.append(
            snips_estimate(r[at], mu[at], pi[at], confidence=confidence)
            if w[at].sum() > 0
            else None
        )
    per_slate = np.bincount(groups, weights=w * r)
    slate_weight = np.bincount(groups, weights=w).astype(np.float64)
    s = int(per_slate.shape[0])
    se = float(per_slate.std(ddof=1) / np.sqrt(s)) if s > 1 else float("nan")
    # Share of slates that logged each position: IPS per slate = Σ_k share_k IPS_k.
    share = {p: float((k == p).sum()) / s for p in positions}
    defined = [(share[p], e) for p, e in zip(positions, ips, strict=True) if e is not None]
    ips_total = (
        _summed(
            [e for _, e in defined],
            [c for c, _ in defined],
            float(per_slate.mean()),
            se,
            z,
            s,
            _kish(slate_weight),
        )
        if defined
        else _estimate(float(per_slate.mean()), se, z, s, _kish(slate_weight), confidence, "ips")
    )
    snips_total = None
    if snips and all(e is not None for e in snips):
        parts = [e for e in snips if e is not None]
        shares = [share[p] for p in positions]
        value = float(sum(c * e.value for c, e in zip(shares, parts, strict=True)))
        se_total = float(
            np.sqrt(sum((c * e.std_error) ** 2 for c, e in zip(shares, parts, strict=True)))
        )
        eff = float(min(e.effective_n for e in parts))
        snips_total = _summed(parts, shares, value, se_total, z, s, eff)
    return SlateEstimate(positions, tuple(ips), tuple(snips), ips_total, snips_total)
