"""Shrinkage of a click calibrator by user-grouped cross-validation (lab.calibration_shrinkage).

Known answer: a logistic world where each user has an unobserved click propensity and six
user-level features that mean nothing.  Fitted on 25 users, the features explain the 25
users' propensities by chance, so the fit's list predictions spread too widely on new users
(list-level calibration slope about 0.7); cross-validation grouped by user sees that
(factor well below 1) and the shrunk fit lands near 1 on new users.  Fitted on 500 users
there is little to undo (factor near 1).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from lab.calibration import subsample_negatives
from lab.calibration_shrinkage import Shrinkage, grouped_shrinkage
from replay.calibration import fit_logistic
from replay.errors import UserInputError
from sim.metrics import calibration_slope
from sim.users import list_click_probability

K, REQUESTS_PER_USER, DECAY = 10, 30, 0.8
SCORE_WEIGHT, ACTIVITY_WEIGHT, INTERCEPT, PROPENSITY_SD = 0.6, 0.5, -3.0, 0.5


def _world(users: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(features [n, K, 8], p_click [n, K], user [n])``: an item score, its log rank and a
    user-level activity that matter, five user-level features that do not, and a hidden
    per-user propensity."""
    user = np.repeat(np.arange(users), REQUESTS_PER_USER)
    n = user.size
    score = rng.normal(size=(n, K))
    rank = np.broadcast_to(np.log1p(np.arange(K, dtype=np.float64)), (n, K))
    activity = rng.normal(size=users)[user][:, None].repeat(K, axis=1)
    noise = rng.normal(size=(users, 5))[user][:, None, :].repeat(K, axis=1)
    propensity = rng.normal(0.0, PROPENSITY_SD, users)[user][:, None]
    p_click = expit(
        INTERCEPT + SCORE_WEIGHT * score - 0.2 * rank + ACTIVITY_WEIGHT * activity + propensity
    )
    features = np.concatenate(
        [score[..., None], rank[..., None], activity[..., None], noise], axis=2
    )
    return features, p_click, user


Feedback = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _feedback(users: int, rng: np.random.Generator, *, clicks: bool = True) -> Feedback:
    """``grouped_shrinkage``'s inputs for a world of ``users`` (every slot listed; no click
    at all with ``clicks=False``): features, listed, labels, kept, weights, user."""
    features, p_click, user = _world(users, rng)
    listed = np.ones(p_click.shape, dtype=bool)
    labels = (rng.random(p_click.shape) < p_click) & clicks
    kept, weight = subsample_negatives(labels, listed)
    return features, listed, labels, kept, weight, user


def _fit_and_shrink(
    users: int, rng: np.random.Generator
) -> tuple[np.ndarray, float, Shrinkage | None]:
    feedback = _feedback(users, rng)
    features, _, labels, kept, weight, _ = feedback
    w, b = fit_logistic(features[kept], labels[kept].astype(np.int8), sample_weight=weight)
    shrinkage = grouped_shrinkage(*feedback, position_decay=DECAY, rng=rng, repeats=4)
    return w, b, shrinkage


def _slope_on_new_users(w: np.ndarray, b: float, rng: np.random.Generator) -> float:
    features, p_click, user = _world(400, rng)
    predicted = list_click_probability(expit(features @ w + b), DECAY)
    truth = list_click_probability(p_click, DECAY)
    clicks = np.concatenate([rng.random(truth.size) < truth for _ in range(5)])
    fit = calibration_slope(np.tile(predicted, 5), clicks.astype(np.int8), groups=np.tile(user, 5))
    return fit.slope


def test_a_fit_on_few_users_is_shrunk_towards_a_calibrated_slope() -> None:
    raw, shrunk, factors = [], [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        w, b, shrinkage = _fit_and_shrink(25, rng)
        assert shrinkage is not None and 0.0 <= shrinkage.factor <= 1.0
        factors.append(shrinkage.factor)
        raw.append(_slope_on_new_users(w, b, np.random.default_rng(100 + seed)))
        w_s, b_s = shrinkage.apply(w, b)
        shrunk.append(_slope_on_new_users(w_s, b_s, np.random.default_rng(100 + seed)))
    assert np.mean(raw) < 0.85, raw
    assert np.mean(factors) < 0.85, factors
    assert abs(np.mean(shrunk) - 1.0) < abs(np.mean(raw) - 1.0), (raw, shrunk)
    assert 0.8 <= np.mean(shrunk) <= 1.2, shrunk


def test_a_fit_on_many_users_is_left_nearly_as_it_is() -> None:
    _, _, shrinkage = _fit_and_shrink(500, np.random.default_rng(7))
    assert shrinkage is not None and shrinkage.factor > 0.85, shrinkage


def test_apply_scales_the_linear_predictor() -> None:
    shrinkage = Shrinkage(factor=0.5, shift=-0.25, held_out_loss=0.3, users=10, folds=5, repeats=1)
    weights, intercept = shrinkage.apply(np.array([2.0, -4.0]), 1.0)
    assert weights.tolist() == [1.0, -2.0] and intercept == 0.25
    assert "shrunk by 0.500" in shrinkage.describe() and "10 users" in shrinkage.describe()


def test_fewer_users_than_folds_or_no_click_gives_nothing_to_shrink() -> None:
    rng = np.random.default_rng(0)
    assert grouped_shrinkage(*_feedback(4, rng), position_decay=DECAY, rng=rng) is None
    no_click = _feedback(8, rng, clicks=False)
    assert grouped_shrinkage(*no_click, position_decay=DECAY, rng=rng) is None


def test_mismatched_shapes_are_refused() -> None:
    rng = np.random.default_rng(0)
    features, listed, labels, kept, weight, user = _feedback(6, rng)
    with pytest.raises(UserInputError, match="users"):
        grouped_shrinkage(
            features, listed, labels, kept, weight, user[:-1], position_decay=DECAY, rng=rng
        )
    with pytest.raises(UserInputError, match="sample_weight"):
        grouped_shrinkage(
            features, listed, labels, kept, weight[:-1], user, position_decay=DECAY, rng=rng
        )
