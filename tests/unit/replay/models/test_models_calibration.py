"""replay.calibration: Platt scaling against a hand-worked fit and against scipy.optimize."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit

from replay.calibration import Platt, fit_platt
from replay.errors import UserInputError


def test_hand_example_two_score_levels() -> None:
    # With two distinct scores the unpenalised fit reproduces each level's click rate:
    # score 0 -> 1/2 clicked, so b = logit(1/2) = 0; score 1 -> 3/4 clicked, so
    # a + b = logit(3/4) = ln 3.
    scores = [0, 0, 1, 1, 1, 1]
    labels = [0, 1, 1, 1, 1, 0]
    platt = fit_platt(scores, labels, l2=0.0)
    assert platt.b == pytest.approx(0.0, abs=1e-9)
    assert platt.a == pytest.approx(math.log(3), abs=1e-9)
    assert platt.predict([0.0, 1.0]).tolist() == pytest.approx([0.5, 0.75], abs=1e-9)


def penalised_nll(params: np.ndarray, s: np.ndarray, y: np.ndarray, l2: float) -> float:
    z = params[0] * s + params[1]
    return float(np.sum(np.logaddexp(0, z) - y * z) + 0.5 * l2 * np.dot(params, params))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("l2", [0.0, 1e-3, 1.0])
def test_matches_scipy_optimize_on_the_same_objective(seed: int, l2: float) -> None:
    rng = np.random.default_rng(seed)
    s = rng.normal(3.0, 2.0, size=500)  # off-centre scores, like raw dot products
    y = (rng.random(500) < expit(0.8 * s - 2.0)).astype(float)
    platt = fit_platt(s, y, l2=l2)
    reference = minimize(
        penalised_nll, x0=np.zeros(2), args=(s, y, l2), method="BFGS", options={"gtol": 1e-9}
    )
    assert platt.a == pytest.approx(reference.x[0], rel=1e-5, abs=1e-6)
    assert platt.b == pytest.approx(reference.x[1], rel=1e-5, abs=1e-6)
    assert penalised_nll(np.array([platt.a, platt.b]), s, y, l2) <= reference.fun + 1e-7


def test_recovers_the_generating_parameters() -> None:
    rng = np.random.default_rng(3)
    s = rng.normal(size=50_000)
    y = (rng.random(s.size) < expit(1.5 * s - 0.5)).astype(np.int8)
    platt = fit_platt(s, y)
    assert platt.a == pytest.approx(1.5, abs=0.05)
    assert platt.b == pytest.approx(-0.5, abs=0.05)


def test_separable_and_one_class_data_stay_finite() -> None:
    separable = fit_platt([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert math.isfinite(separable.a) and separable.a > 0 and math.isfinite(separable.b)
    p = separable.predict([0.1, 0.9])
    assert p[0] < 0.5 < p[1]
    one_class = fit_platt([0.1, 0.5, 0.9], [1, 1, 1])
    assert math.isfinite(one_class.b) and np.all(one_class.predict([0.1, 0.9]) > 0.9)


def test_predict_keeps_the_shape_and_never_overflows() -> None:
    platt = Platt(a=2.0, b=-1.0)
    out = platt.predict(np.array([[-1e6, 0.0], [0.5, 1e6]]))
    assert out.shape == (2, 2)
    assert out[0, 0] == 0.0 and out[1, 1] == 1.0
    assert out[0, 1] == pytest.approx(expit(-1.0))


@pytest.mark.parametrize(
    ("scores", "labels", "kwargs", "message"),
    [
        ([], [], {}, "scores must be a non-empty 1-D array"),
        ([1.0, 2.0], [1], {}, "labels must be shape"),
        ([1.0, np.nan], [0, 1], {}, "scores must be finite"),
        ([1.0, 2.0], [0, 2], {}, "labels must be 0 or 1"),
        ([1.0, 2.0], [0, 1], {"l2": -1.0}, "l2 must be"),
    ],
)
def test_bad_inputs_are_user_errors(
    scores: Any, labels: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserInputError, match=message):
        fit_platt(scores, labels, **kwargs)


# --- the list-feature click calibrator -----------------------------------------------------


def _model(user_factors: np.ndarray, item_factors: np.ndarray, popularity: np.ndarray) -> Any:
    from replay.training import ModelSpec, TrainedModel

    return TrainedModel(
        ModelSpec(factors=user_factors.shape[1]),
        user_factors.astype(np.float32),
        item_factors.astype(np.float32),
        popularity.astype(np.int64),
    )


def test_list_features_against_a_direct_computation() -> None:
    from replay.calibration import FEATURES, list_features

    rng = np.random.default_rng(4)
    users, items = rng.normal(size=(5, 3)), rng.normal(size=(40, 3))
    model = _model(users, items, np.arange(40)[::-1] * 3)  # item 0 most popular
    lists = np.array([[3, 7, 1], [0, 2, -1], [5, 6, 8], [9, 1, 2], [4, 4, 4]], np.int32)
    user_ids = np.array([0, 1, 2, 3, 4])
    no_history = np.array([False, False, False, False, True])
    history = np.array([0, 1, 4, 30, 7])
    got = list_features(model, user_ids, lists, no_history, history)
    assert got.shape == (5, 3, len(FEATURES)) == (5, 3, 8)
    all_scores = users.astype(np.float32) @ items.astype(np.float32).T  # [5, 40]
    for u in range(4):
        row = all_scores[u].astype(np.float64)
        for k, item in enumerate(lists[u]):
            if item < 0:
                assert got[u, k].tolist() == [0.0] * 8
                continue
            z = (row[item] - row.mean()) / row.std()
            assert got[u, k, 0] == pytest.approx(z, rel=1e-4)
            assert got[u, k, 1] == pytest.approx(math.log1p(k))
            assert got[u, k, 2] == pytest.approx(math.log1p(item))  # popularity rank = id
            assert got[u, k, 3] == 0.0
            assert got[u, k, 4] == pytest.approx(math.log1p(history[u]))
            assert got[u, k, 5] == pytest.approx(z * math.log1p(history[u]), rel=1e-4, abs=1e-9)
            assert got[u, k, 6] == pytest.approx(math.log(row.std()), rel=1e-4)
            assert got[u, k, 7] == pytest.approx(z * math.log(row.std()), rel=1e-4)
    # A user without history: no personal score nor history features, flagged.
    assert got[4, :, 0].tolist() == [0.0, 0.0, 0.0] and got[4, :, 3].tolist() == [1.0] * 3
    assert np.all(got[4, :, 4:] == 0.0)


def test_popularity_rank_shares_ties() -> None:
    from replay.calibration import popularity_rank

    model = _model(np.ones((1, 1)), np.ones((4, 1)), np.array([5, 9, 5, 1]))
    assert popularity_rank(model).tolist() == [1.5, 0.0, 1.5, 3.0]


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_fit_logistic_equals_scikit_learn(l2: float) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    from replay.calibration import fit_logistic

    rng = np.random.default_rng(9)
    x = np.column_stack([rng.normal(size=5000), rng.exponential(size=5000), np.ones(5000)])
    y = (rng.random(5000) < expit(-2 + 0.8 * x[:, 0] - 0.5 * x[:, 1])).astype(np.int8)
    weights, intercept = fit_logistic(x, y, l2=l2)
    # Our penalty (l2·n/2)·|β|² on standardised features is sklearn's C = 1 / (l2·n) there;
    # the constant third column gets weight 0.
    varying = x[:, :2]
    mean, scale = varying.mean(axis=0), varying.std(axis=0)
    c = np.inf if l2 == 0 else 1.0 / (l2 * x.shape[0])
    reference = linear_model.LogisticRegression(C=c, tol=1e-12, max_iter=10_000)
    reference.fit((varying - mean) / scale, y)
    raw = reference.coef_[0] / scale
    np.testing.assert_allclose(weights[:2], raw, rtol=1e-5)
    assert weights[2] == 0.0
    assert intercept == pytest.approx(reference.intercept_[0] - raw @ mean, rel=1e-5)


def test_fit_logistic_stays_finite_on_one_class_labels() -> None:
    from replay.calibration import fit_logistic

    weights, intercept = fit_logistic(np.arange(10.0)[:, None], np.zeros(10, np.int8))
    assert np.isfinite(weights).all() and intercept < -5


def test_click_calibrator_predicts_and_records_inheritance() -> None:
    from replay.calibration import ClickCalibrator

    calibrator = ClickCalibrator(("a", "b"), (1.0, -2.0), 0.5, "validation")
    assert calibrator.predict([[1.0, 0.5]]).tolist() == pytest.approx([expit(0.5)])
    child = calibrator.inherited("candidate")
    assert child.weights == calibrator.weights
    assert child.fitted_on == "validation; inherited by candidate"
    assert child.as_dict()["weights"] == {"a": 1.0, "b": -2.0}
