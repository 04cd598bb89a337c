"""How far a click calibrator fitted on few users over-spreads its list predictions, measured
by cross-validation grouped by user, and the linear map that undoes it.

A calibrator (``replay.calibration.ClickCalibrator``) is a logistic model of item features,
fitted on every label of the feedback.  With few users (MovieLens latest-small's update
window: 63) its coefficients also fit those users' peculiarities, so on other users its
predictions spread more widely than the clicks do (calibration slope below 1).  Fitted on
the very labels it is judged on, it cannot see that; fitted without a user and judged on
that user, it can.

Procedure (van Houwelingen & le Cessie 1990's heuristic shrinkage, estimated by
cross-validation as in Steyerberg 2019, ch. 13, at the level the predictions are judged):

1. Split the feedback's users into ``folds`` groups at random (every request of a user in one
   group), ``repeats`` times.  For each group, fit the calibrator on the other groups'
   labels and compute the out-of-fold linear predictor η_ik = β₀ + Σ_f β_f x_ikf of every
   listed item k of every request i of the held-out users, shifted by the constant that
   makes the held-out items' mean prediction equal their click rate (:func:`_offset`).
2. Fit one map of that predictor at the level predictions are used, the list:

       q_ik(c, δ) = sigmoid(δ + c · η_ik),  p̂_i(c, δ) = cascade(q_i·) (``list_click_probability``)

   (c, δ) minimise the list-level negative log-likelihood over all repeats,
   −Σ_i [ȳ_i log p̂_i + (1 − ȳ_i) log(1 − p̂_i)], with ȳ_i = cascade(y_i·) the list click
   probability of the request's item labels y_ik (0/1, the examination integrated out), and
   0 ≤ c ≤ 1: the map shrinks, it never spreads predictions further than the fit did.
3. The calibrator keeps its features and takes weights c·β and intercept δ + c·β₀ (β fitted
   on all users): the map estimated out of fold applied to the full fit.

c estimates the list-level calibration slope the full fit would have on new users of the
same period; it says nothing about a later period drifting away (the update window's users
are not the replay's).  Each fit sees 80 % of the users, so c errs on the small side: in a
known logistic world (``tests/unit/lab/test_calibration_shrinkage.py``, eight seeds each)
the shrunk fit's median list slope on new users was 1.02 where the plain fit's was 0.72
(25 users), and 1.07-1.08 where it was 0.90-0.97 (40-60 users); with 100 users c is
0.84-1.0.  It is estimated for logged feedback only (``lab.calibration``):
a synthetic world's feedback is 20,000 impressions of users drawn from the world itself,
judged on the same world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import expit

from replay.calibration import fit_logistic
from replay.errors import must_be
from sim.users import list_click_probability

__all__ = ["FOLDS", "REPEATS", "Shrinkage", "grouped_shrinkage"]

#: Groups of users per cross-validation and how many random splits are pooled: five folds
#: leave 80 % of the users to each fit; repeats average out which users share a fold.
FOLDS = 5
REPEATS = 16

# Out-of-fold list predictions are clipped this far from 0 and 1 inside the log-likelihood.
_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Shrinkage:
    """The out-of-fold map ``η ↦ shift + factor · η`` of the linear predictor and what it
    rests on: ``users`` split into ``folds`` groups ``repeats`` times."""

    factor: float
    shift: float
    #: Mean list-level negative log-likelihood of the out-of-fold predictions after the map.
    held_out_loss: float
    users: int
    folds: int
    repeats: int

    def apply(
        self, weights: npt.NDArray[np.float64], intercept: float
    ) -> tuple[npt.NDArray[np.float64], float]:
        """``(factor · weights, shift + factor · intercept)``."""
        return self.factor * weights, self.shift + self.factor * intercept

    def describe(self) -> str:
        return (
            f"coefficients shrunk by {self.factor:.3f} (user-grouped {self.folds}-fold"
            f" cross-validation of {self.users} users, {self.repeats} splits)"
        )


def grouped_shrinkage(
    features: npt.NDArray[np.float64],
    listed: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.bool_],
    kept: npt.NDArray[np.bool_],
    sample_weight: npt.NDArray[np.float64],
    users: npt.NDArray[np.int64],
    *,
    position_decay: float,
    rng: np.random.Generator,
    l2: float = 1e-3,
    folds: int = FOLDS,
    repeats: int = REPEATS,
) -> Shrinkage | None:
    """The shrinkage of a calibrator fitted as ``fit_logistic(features[kept], labels[kept],
    sample_weight=sample_weight, l2=l2)`` (module docstring); None with fewer users than
    ``folds``, or when no held-out list has a click or every one has.

    Shapes: ``features`` [n, K, F] of every slot of every request, ``listed`` [n, K] bool
    (False: an empty slot), ``labels`` and ``kept`` [n, K] bool (``kept`` only listed
    items), ``sample_weight`` [kept.sum()] in row-major order of ``kept``, ``users`` [n] the
    user of each request.
    """
    source = "grouped_shrinkage"
    n, k, _ = features.shape
    if listed.shape != (n, k) or labels.shape != (n, k) or kept.shape != (n, k):
        raise must_be(source, "listed, labels, kept", f"shape ({n}, {k})", labels.shape)
    if users.shape != (n,):
        raise must_be(source, "users", f"shape ({n},)", users.shape)
    if sample_weight.shape != (int(kept.sum()),):
        raise must_be(source, "sample_weight", f"shape ({int(kept.sum())},)", sample_weight.shape)
    if not (isinstance(folds, int) and folds >= 2 and isinstance(repeats, int) and repeats >= 1):
        raise must_be(source, "folds, repeats", "integers >= 2 and >= 1", (folds, repeats))
    distinct, user_index = np.unique(users, return_inverse=True)
    if distinct.size < folds:
        return None
    # Weights laid out like ``kept`` so a fold's rows take theirs.
    weight_grid = np.zeros((n, k))
    weight_grid[kept] = sample_weight
    held_out = np.empty((repeats, n, k))
    for r in range(repeats):
        group = rng.permutation(distinct.size)[user_index] % folds
        for g in range(folds):
            train = group != g
            kept_train = kept & train[:, None]
            if not kept_train.any():
                return None
            weights, intercept = fit_logistic(
                features[kept_train],
                labels[kept_train].astype(np.int8),
                l2=l2,
                sample_weight=weight_grid[kept_train],
            )
            eta = features[~train] @ weights + intercept
            held_out[r, ~train] = eta + _offset(eta[listed[~train]], labels[~train][listed[~train]])
    observed = list_click_probability(np.where(listed & labels, 1.0, 0.0), position_decay)
    if not (observed.max() > 0.0 and observed.min() < 1.0):
        return None
    factor, shift, loss = _fit_map(held_out, listed, observed, position_decay)
    return Shrinkage(factor, shift, loss, int(distinct.size), folds, repeats)


def _offset(eta: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_]) -> float:
    """The shift o with Σ sigmoid(η + o) = Σ y over one fold's held-out items (Newton).

    Each fold's fit is calibrated in the large on its own users; on the held-out users its
    predictions are off by a shift that differs from fold to fold.  Pooled, those shifts
    would spread the out-of-fold predictions in a way no single fit's predictions spread
    (the full fit has one shift, which the map's δ absorbs), and c would come out too small.
    """
    target = float(labels.sum())
    if eta.size == 0 or target == 0.0 or target == float(eta.size):
        return 0.0
    offset = 0.0
    for _ in range(50):
        p = expit(eta + offset)
        step = (float(p.sum()) - target) / max(float(np.sum(p * (1.0 - p))), 1e-12)
        offset -= step
        if abs(step) < 1e-10:
            break
    return offset


def _fit_map(
    held_out: npt.NDArray[np.float64],
    listed: npt.NDArray[np.bool_],
    observed: npt.NDArray[np.float64],
    position_decay: float,
) -> tuple[float, float, float]:
    """(c, δ, the loss there) of the module docstring's step 2: ``held_out`` [R, n, K]
    out-of-fold linear predictors, ``listed`` [n, K], ``observed`` [n] list click
    probabilities of the labels."""
    repeats, n, k = held_out.shape
    eta = held_out.reshape(repeats * n, k)
    mask = np.tile(listed, (repeats, 1))
    target = np.tile(observed, repeats)

    def loss(theta: npt.NDArray[np.float64]) -> float:
        c, delta = float(theta[0]), float(theta[1])
        q = np.where(mask, expit(delta + c * eta), 0.0)
        p = np.clip(list_click_probability(q, position_decay), _EPS, 1.0 - _EPS)
        return -float(np.sum(target * np.log(p) + (1.0 - target) * np.log1p(-p))) / target.size

    # Imported here: scipy.optimize takes ~0.3 s to import, and only logged feedback is
    # shrunk, so synthetic runs never need it.
    from scipy.optimize import minimize

    result = minimize(
        loss, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.0, 1.0), (-20.0, 20.0)]
    )
    c, delta = float(result.x[0]), float(result.x[1])
    if not (math.isfinite(c) and math.isfinite(delta)):
        return 1.0, 0.0, loss(np.array([1.0, 0.0]))
    return c, delta, float(result.fun)
