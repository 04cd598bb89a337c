"""The position-based click model: recovery of a known model, its fit against the
position-blind one, the direct value of a ranking by hand (its agreement with slate IPS:
``tests/e2e/test_offpolicy_log.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from replay.errors import UserInputError
from sim.metrics.click_model import direct_value, fit_position_based
from tests.helpers_slates import slate_log

THETA = np.array([0.95, 0.7, 0.5, 0.35, 0.25])


def test_recovers_a_known_model_within_its_bootstrap_interval() -> None:
    rng = np.random.default_rng(1)
    alpha = rng.beta(2, 5, 60)
    position, item, click, slate = slate_log(rng, 4_000, 60, THETA, alpha)
    fit = fit_position_based(position, item, click, slate, n_items=60)
    truth = THETA / THETA[0]
    assert fit.model.converged
    relative = fit.model.relative_examination
    for k in range(1, THETA.size):
        low, high = fit.relative_ci95[k]
        assert low < relative[k] < high
        # within three bootstrap standard errors (the 95 % width is about 3.9 of them)
        assert abs(relative[k] - truth[k]) < 3 * (high - low) / 3.92
    # Positions matter in this log: the blind model fits worse, decisively.
    assert fit.log_likelihood > fit.blind_log_likelihood
    assert fit.p_value < 1e-6
    assert (fit.perplexity <= fit.blind_perplexity + 1e-9).sum() >= THETA.size - 1
    assert fit.rows == position.size and fit.slates == 4_000


def test_without_a_position_effect_the_blind_model_is_not_rejected() -> None:
    rng = np.random.default_rng(2)
    alpha = rng.beta(2, 5, 30)
    flat = np.full(4, 0.6)
    position, item, click, slate = slate_log(rng, 3_000, 30, flat, alpha)
    fit = fit_position_based(position, item, click, slate, n_items=30, bootstrap=10)
    assert fit.p_value > 0.001
    low, high = fit.relative_ci95[1:].T
    assert (low < 1).all() and (high > 1).all()


def test_one_position_reduces_to_item_ctr() -> None:
    # Hand case: with one position only θ·α is identified, and it is each item's CTR.
    item = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
    click = np.array([1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    fit = fit_position_based(
        np.zeros(item.size, np.int64), item, click, np.arange(item.size), n_items=4, bootstrap=0
    )
    products = fit.model.examination[0] * fit.model.attractiveness
    assert products[:3] == pytest.approx([0.25, 0.4, 0.0], abs=1e-4)
    assert np.isnan(fit.model.attractiveness[3])  # never shown
    assert fit.log_likelihood == pytest.approx(fit.blind_log_likelihood, abs=1e-4)


def test_direct_value_by_hand() -> None:
    fit = fit_position_based(
        np.array([0, 1, 0, 1]), np.array([0, 1, 1, 0]), np.array([1, 0, 0, 1]),
        np.array([0, 0, 1, 1]), n_items=3, bootstrap=0,
    )  # fmt: skip
    model = fit.model
    ranking = np.array([[0, 2], [1, -1]])
    value, unseen = direct_value(model, ranking)
    theta, alpha = model.examination, model.attractiveness
    mean_alpha = np.nanmean(alpha)  # item 2 never shown: the mean attractiveness
    expected = (theta[0] * alpha[0] + theta[1] * mean_alpha + theta[0] * alpha[1]) / 2
    assert value == pytest.approx(expected)
    assert unseen == pytest.approx(1 / 3)


def test_bad_clicks_are_refused() -> None:
    with pytest.raises(UserInputError, match="click must be 0/1 values, got"):
        fit_position_based([0, 1], [0, 1], [0.5, 1.0], [0, 0], n_items=2)
