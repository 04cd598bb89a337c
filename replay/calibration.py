"""Platt scaling: turn model scores into click probabilities (Platt 1999).

    p(click | score s) = 1 / (1 + exp(-(a * s + b)))

``a`` and ``b`` minimise the penalised negative log-likelihood on a validation window

    L(a, b) = -sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)] + (l2 / 2) (a^2 + b^2)

by Newton's method with step halving.  The small L2 prior keeps ``a`` and ``b`` finite when
the data are separable (every click scored above every non-click) or one-class, where the
plain maximum-likelihood fit runs off to infinity.  Note the sign: Platt's paper writes
``1 / (1 + exp(A s + B))``, i.e. ``A = -a``, ``B = -b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import expit

from replay.errors import InternalError, must_be

__all__ = ["Platt", "fit_platt"]


@dataclass(frozen=True, slots=True)
class Platt:
    """Fitted calibration ``p = sigmoid(a * score + b)``."""

    a: float
    b: float

    def predict(self, scores: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Click probabilities in [0, 1], same shape as ``scores``."""
        values = np.asarray(scores, dtype=np.float64)
        result: npt.NDArray[np.float64] = expit(self.a * values + self.b)
        return result


def fit_platt(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    l2: float = 1e-3,
    max_iterations: int = 100,
    tolerance: float = 1e-10,
) -> Platt:
    """Fit ``Platt(a, b)`` to 1-D ``scores`` and 0/1 ``labels`` (one per impression).

    Stops when a Newton step changes neither parameter by more than ``tolerance`` (relative
    to 1 + |parameter|).  ``l2 = 0`` gives the plain maximum-likelihood fit, which exists only
    when the data are not separable.
    """
    source = "fit_platt"
    s = np.asarray(scores, dtype=np.float64)
    y_raw = np.asarray(labels)
    if s.ndim != 1 or s.size == 0:
        raise must_be(source, "scores", "a non-empty 1-D array", f"shape {s.shape}")
    if y_raw.shape != s.shape:
        raise must_be(source, "labels", f"shape {s.shape} like scores", y_raw.shape)
    if not np.all(np.isfinite(s)):
        raise must_be(source, "scores", "finite", "non-finite values")
    y = y_raw.astype(np.float64)
    if not np.all((y == 0) | (y == 1)):
        raise must_be(source, "labels", "0 or 1", sorted(set(np.unique(y).tolist()) - {0.0, 1.0}))
    if not (math.isfinite(l2) and l2 >= 0):
        raise must_be(source, "l2", "a finite number >= 0", l2)

    # Newton on the centred score: same optimum for (a, b) after shifting back, but the
    # Hessian is better conditioned when scores sit far from zero.
    shift = float(s.mean())
    x = s - shift
    a, c = 0.0, 0.0  # c is the intercept at the centred score: b = c - a * shift

    def objective(a_: float, c_: float) -> float:
        z = a_ * x + c_
        # log(1 + e^z) - y z, computed without overflow
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        b_ = c_ - a_ * shift
        return nll + 0.5 * l2 * (a_ * a_ + b_ * b_)

    current = objective(a, c)
    for _ in range(max_iterations):
        p = expit(a * x + c)
        w = p * (1.0 - p)
        b = c - a * shift
        # Gradient and Hessian of the penalty in (a, c): b = c - a * shift.
        grad_a = float(np.dot(p - y, x)) + l2 * (a - shift * b)
        grad_c = float(np.sum(p - y)) + l2 * b
        h_aa = float(np.dot(w, x * x)) + l2 * (1.0 + shift * shift)
        h_ac = float(np.dot(w, x)) - l2 * shift
        h_cc = float(np.sum(w)) + l2
        det = h_aa * h_cc - h_ac * h_ac
        if not det > 0:
            # Flat likelihood (all weights vanished) with no prior: nothing left to learn.
            break
        step_a = (h_cc * grad_a - h_ac * grad_c) / det
        step_c = (h_aa * grad_c - h_ac * grad_a) / det
        t = 1.0
        while True:
            trial = objective(a - t * step_a, c - t * step_c)
            if trial <= current or t < 1e-12:
                break
            t *= 0.5
        a, c = a - t * step_a, c - t * step_c
        current = trial
        if abs(t * step_a) <= tolerance * (1 + abs(a)) and abs(t * step_c) <= tolerance * (
            1 + abs(c)
        ):
            break
    b = c - a * shift
    if not (math.isfinite(a) and math.isfinite(b)):
        raise InternalError(f"Platt fit diverged to a={a}, b={b}")
    return Platt(a=float(a), b=float(b))
