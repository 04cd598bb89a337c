"""Off-policy estimates of a target policy's reward from logs of another (logging) policy.

Inputs are per-request arrays taken from a log with a propensity column, e.g.
``frame["clicks"].to_numpy()`` for rewards and ``frame["propensity"].to_numpy()`` for the
probability with which the logging policy chose the logged action.  An "action" is
whatever the policy chose (an item id, a list id); for a deterministic target policy,
``target_propensity = (target_action == logged_action)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from replay.errors import must_be
from sim.metrics._checks import FloatArray, as_1d_float, as_probability, same_length, z_value

__all__ = ["OffPolicyEstimate", "ips_estimate", "replay_estimate", "snips_estimate"]


@dataclass(frozen=True, slots=True)
class OffPolicyEstimate:
    """Estimated mean reward of the target policy with a normal confidence interval.

    ``n`` is the number of log rows used; ``effective_n`` the Kish effective sample size
    (Σw)² / Σw² of the importance weights (the matched count for replay): a small value
    next to ``n`` means a few heavily weighted rows drive the estimate.
    """

    value: float
    std_error: float
    ci_low: float
    ci_high: float
    n: int
    effective_n: float
    confidence: float
    estimator: Literal["replay", "ips", "snips"]


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
    return _estimate(float(matched.mean()), se, z, n, float(n), confidence, "replay")


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
    return _estimate(float(terms.mean()), se, z, n, _kish(w), confidence, "ips")


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
    return _estimate(value, se, z, int(r.shape[0]), _kish(w), confidence, "snips")
