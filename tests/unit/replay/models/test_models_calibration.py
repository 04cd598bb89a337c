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
