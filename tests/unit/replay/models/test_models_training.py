"""replay.training: specs, determinism, warm start growth and id safety, fine-tune, faults."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from models_data import N_GROUPS, N_ITEMS, N_USERS, clustered

from replay.errors import UserInputError
from replay.topk import top_k
from replay.training import (
    ModelSpec,
    TrainedModel,
    active_ids,
    fine_tune,
    inject_fault,
    retrain,
    to_implicit,
    train,
    warm_start,
)

ALS = ModelSpec("als", factors=8, iterations=6, regularization=0.05, alpha=5.0, seed=3)
SPECS = {
    "als": ALS,
    "bpr": ModelSpec("bpr", factors=8, iterations=20, learning_rate=0.05, seed=3),
    "lmf": ModelSpec("lmf", factors=8, iterations=10, learning_rate=0.5, seed=3),
    "popularity": ModelSpec("popularity", seed=3),
    "random": ModelSpec("random", factors=8, seed=3),
}
WIDTH = {"als": 8, "bpr": 9, "lmf": 10, "popularity": 1, "random": 8}


def grown_matrix(base: sp.csr_matrix, extra_users: int, extra_items: int) -> sp.csr_matrix:
    """``base`` plus new users (clustered like the old ones) and new items they consume."""
    rng = np.random.default_rng(11)
    n_users, n_items = base.shape[0] + extra_users, base.shape[1] + extra_items
    rows, cols = list(base.nonzero()[0]), list(base.nonzero()[1])
    block = base.shape[1] // N_GROUPS
    for user in range(base.shape[0], n_users):
        group = user % N_GROUPS
        own = rng.choice(block, size=10, replace=False) + group * block
        new = rng.choice(np.arange(base.shape[1], n_items), size=3, replace=False)
        for item in np.concatenate([own, new]):
            rows.append(user)
            cols.append(int(item))
    # a few old users touch the new items too, so the new items have signal
    for user in range(0, 40):
        rows.append(user)
        cols.append(base.shape[1] + user % extra_items)
    data = np.ones(len(rows), dtype=np.float32)
    out = sp.csr_matrix((data, (rows, cols)), shape=(n_users, n_items))
    out.sum_duplicates()
    out.data[:] = 1.0
    return out


# --- specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("algorithm", "svd"),
        ("factors", 0),
        ("factors", 2.5),
        ("factors", True),
        ("iterations", 0),
        ("regularization", -0.1),
        ("regularization", float("nan")),
        ("alpha", 0.0),
        ("learning_rate", float("inf")),
        ("seed", -1),
        ("seed", np.random.default_rng(0)),
    ],
)
def test_spec_rejects_bad_values_in_one_line(field: str, value: Any) -> None:
    with pytest.raises(UserInputError, match=f"ModelSpec: {field} must be") as info:
        ModelSpec(**{field: value})
    assert "\n" not in str(info.value)


def test_spec_hyperparameters_are_plain_numbers() -> None:
    assert ALS.hyperparameters() == {
        "factors": 8,
        "regularization": 0.05,
        "iterations": 6,
        "alpha": 5.0,
        "learning_rate": 0.01,
        "seed": 3,
    }


# --- full fit ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", list(SPECS))
def test_same_seed_gives_identical_factors(matrix: sp.csr_matrix, algorithm: str) -> None:
    first = train(SPECS[algorithm], matrix)
    second = train(SPECS[algorithm], matrix)
    assert np.array_equal(first.user_factors, second.user_factors)
    assert np.array_equal(first.item_factors, second.item_factors)
    assert first.user_factors.shape == (N_USERS, WIDTH[algorithm])
    assert first.item_factors.shape == (N_ITEMS, WIDTH[algorithm])
    assert first.user_factors.dtype == np.float32 == first.item_factors.dtype
    assert first.algorithm == algorithm
    assert first.training_seconds >= 0


@pytest.mark.parametrize("algorithm", ["als", "bpr", "lmf", "random"])
def test_another_seed_gives_other_factors(matrix: sp.csr_matrix, algorithm: str) -> None:
    first = train(SPECS[algorithm], matrix)
    other = train(replace(SPECS[algorithm], seed=4), matrix)
    assert not np.array_equal(first.item_factors, other.item_factors)


def test_factors_are_read_only(matrix: sp.csr_matrix) -> None:
    model = train(ALS, matrix)
    with pytest.raises(ValueError, match="read-only"):
        model.user_factors[0, 0] = 1.0


def test_popularity_model_scores_by_interaction_count(matrix: sp.csr_matrix) -> None:
    model = train(SPECS["popularity"], matrix)
    counts = np.asarray((matrix > 0).sum(axis=0)).ravel()
    assert np.array_equal(model.item_popularity, counts)
    assert np.array_equal(model.item_factors[:, 0], counts.astype(np.float32))
    assert np.all(model.user_factors == 1.0)


def test_als_learns_the_known_blocks(matrix: sp.csr_matrix) -> None:
    model = train(ALS, matrix)
    items, _ = top_k(model, np.arange(N_USERS), matrix, 5)
    block = N_ITEMS // N_GROUPS
    own_block = (items // block) == (np.arange(N_USERS) % N_GROUPS)[:, None]
    assert own_block.mean() > 0.9


def test_csr_array_is_accepted_and_dense_rejected(matrix: sp.csr_matrix) -> None:
    as_array = train(ALS, sp.csr_array(matrix))
    reference = train(ALS, matrix)
    assert np.array_equal(as_array.user_factors, reference.user_factors)
    with pytest.raises(UserInputError, match=r"scipy\.sparse"):
        train(ALS, matrix.toarray())


def test_empty_or_non_finite_matrix_is_a_user_error() -> None:
    with pytest.raises(UserInputError, match="at least one interaction"):
        train(ALS, sp.csr_matrix((5, 5), dtype=np.float32))
    bad = sp.csr_matrix(np.array([[1.0, np.inf]], dtype=np.float32))
    with pytest.raises(UserInputError, match="finite"):
        train(ALS, bad)


def test_trained_model_checks_its_arrays() -> None:
    users = np.zeros((3, 2), np.float32)
    with pytest.raises(UserInputError, match="item_factors must be"):
        TrainedModel(ALS, users, np.zeros((4, 3), np.float32), np.zeros(4, np.int64))
    with pytest.raises(UserInputError, match="item_popularity must be"):
        TrainedModel(ALS, users, np.zeros((4, 2), np.float32), np.zeros(5, np.int64))
    with pytest.raises(UserInputError, match="user_factors must be"):
        TrainedModel(ALS, users.astype(np.float64), users, np.zeros(3, np.int64))


# --- warm start ----------------------------------------------------------------------------


def test_warm_start_grows_to_a_taller_and_wider_matrix(matrix: sp.csr_matrix) -> None:
    parent = train(ALS, matrix)
    everything = grown_matrix(matrix, extra_users=30, extra_items=20)
    window = everything - sp.csr_matrix(everything.multiply(_padded(matrix, everything.shape)))
    users, items = active_ids(window)
    assert users.max() >= N_USERS and items.max() >= N_ITEMS  # the window reaches past the parent

    child = warm_start(parent, everything, users, items)

    assert child.user_factors.shape == (N_USERS + 30, 8)
    assert child.item_factors.shape == (N_ITEMS + 20, 8)
    assert np.all(np.isfinite(child.user_factors)) and np.all(np.isfinite(child.item_factors))
    untouched_users = np.setdiff1d(np.arange(N_USERS), users)
    untouched_items = np.setdiff1d(np.arange(N_ITEMS), items)
    assert np.array_equal(child.user_factors[untouched_users], parent.user_factors[untouched_users])
    assert np.array_equal(child.item_factors[untouched_items], parent.item_factors[untouched_items])
    assert child.item_popularity.shape == (N_ITEMS + 20,)
    # the new users were solved from their rows: they get their own block first
    new_users = np.arange(N_USERS, N_USERS + 30)
    recs, _ = top_k(child, new_users, everything, 5)
    block = N_ITEMS // N_GROUPS
    assert ((recs // block) == (new_users % N_GROUPS)[:, None]).mean() > 0.8


def _padded(matrix: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    coo = matrix.tocoo()
    return sp.csr_matrix((coo.data, (coo.row, coo.col)), shape=shape)


def test_warm_start_grown_rows_without_data_are_zero(matrix: sp.csr_matrix) -> None:
    parent = train(ALS, matrix)
    everything = _padded(matrix, (N_USERS + 5, N_ITEMS + 7))  # new ids, no interactions
    child = warm_start(parent, everything, np.array([0, 1]), np.array([2]))
    assert child.user_factors.shape == (N_USERS + 5, 8)
    assert np.all(child.user_factors[N_USERS:] == 0)
    assert np.all(child.item_factors[N_ITEMS:] == 0)


def test_warm_start_with_new_items_outside_the_update_set_does_not_crash(
    matrix: sp.csr_matrix,
) -> None:
    # Users whose rows reference items beyond the parent, while those items are not updated:
    # implicit would read item_factors out of bounds if the factors had not grown first.
    parent = train(ALS, matrix)
    everything = grown_matrix(matrix, extra_users=10, extra_items=50)
    users = np.arange(N_USERS, N_USERS + 10)
    child = warm_start(parent, everything, users, np.array([], dtype=np.int64))
    assert child.item_factors.shape == (N_ITEMS + 50, 8)
    assert np.all(np.isfinite(child.user_factors))


@pytest.mark.parametrize(
    ("users", "items", "message"),
    [
        (np.array([N_USERS + 10]), np.array([0]), "update_users must be ids in \\[0, 210\\)"),
        (np.array([-1]), np.array([0]), "update_users must be ids"),
        (np.array([0]), np.array([N_ITEMS + 5]), "update_items must be ids in \\[0, 305\\)"),
        (np.array([0]), np.array([-3]), "update_items must be ids"),
        (np.array([0.5]), np.array([0]), "update_users must be integer ids"),
        (np.array([[0, 1]]), np.array([0]), "update_users must be a 1-D array"),
        (np.array([2**40]), np.array([0]), "update_users must be ids"),
    ],
)
def test_warm_start_rejects_ids_beyond_the_data_without_calling_implicit(
    matrix: sp.csr_matrix, users: Any, items: Any, message: str
) -> None:
    parent = train(ALS, matrix)
    everything = _padded(matrix, (N_USERS + 10, N_ITEMS + 5))
    with pytest.raises(UserInputError, match=message) as info:
        warm_start(parent, everything, users, items)
    assert "\n" not in str(info.value)


def test_warm_start_rejects_a_smaller_or_transposed_matrix(matrix: sp.csr_matrix) -> None:
    parent = train(ALS, matrix)
    with pytest.raises(UserInputError, match="not items x users"):
        warm_start(parent, matrix.T.tocsr(), np.array([0]), np.array([0]))


@pytest.mark.parametrize("algorithm", ["bpr", "lmf", "popularity", "random"])
def test_warm_start_needs_als(matrix: sp.csr_matrix, algorithm: str) -> None:
    parent = train(SPECS[algorithm], matrix)
    with pytest.raises(UserInputError, match="must be 'als'") as info:
        warm_start(parent, matrix, np.array([0]), np.array([0]))
    assert 'update = "fine_tune" or "retrain"' in str(info.value)


def test_warm_start_is_deterministic_and_matches_partial_fit(matrix: sp.csr_matrix) -> None:
    parent = train(ALS, matrix)
    users, items = np.array([3, 9, 50]), np.array([1, 2, 200])
    first = warm_start(parent, matrix, users, items)
    second = warm_start(parent, matrix, users, items)
    assert np.array_equal(first.user_factors, second.user_factors)
    assert np.array_equal(first.item_factors, second.item_factors)
    reference = to_implicit(parent)
    reference.partial_fit_users(users, matrix[users])
    reference.partial_fit_items(items, matrix.T.tocsr()[items])
    assert np.allclose(first.user_factors, reference.user_factors, atol=1e-6)
    assert np.allclose(first.item_factors, reference.item_factors, atol=1e-6)


def test_empty_update_keeps_the_parent(matrix: sp.csr_matrix) -> None:
    parent = train(ALS, matrix)
    child = warm_start(parent, matrix, np.array([], np.int64), np.array([], np.int64))
    assert np.array_equal(child.user_factors, parent.user_factors)
    assert np.array_equal(child.item_factors, parent.item_factors)


# --- fine-tune and retrain -----------------------------------------------------------------


def test_fine_tune_als_starts_from_the_parent(matrix: sp.csr_matrix) -> None:
    parent = train(replace(ALS, iterations=15), matrix)
    tuned = fine_tune(parent, matrix, 1)
    fresh = train(replace(ALS, iterations=1), matrix)

    def distance(model: TrainedModel) -> float:
        return float(np.linalg.norm(model.item_factors - parent.item_factors))

    assert distance(tuned) < 0.2 * distance(fresh)


@pytest.mark.parametrize("algorithm", ["als", "bpr"])
def test_fine_tune_is_implicit_fit_from_the_parent_factors(
    matrix: sp.csr_matrix, algorithm: str
) -> None:
    parent = train(SPECS[algorithm], matrix)
    tuned = fine_tune(parent, matrix, 2)
    reference = to_implicit(parent)
    reference.iterations = 2
    reference.fit(matrix, show_progress=False)
    assert np.array_equal(tuned.user_factors, reference.user_factors)
    assert np.array_equal(tuned.item_factors, reference.item_factors)


@pytest.mark.parametrize("algorithm", ["als", "bpr", "lmf", "popularity", "random"])
def test_fine_tune_grows_every_algorithm(matrix: sp.csr_matrix, algorithm: str) -> None:
    parent = train(SPECS[algorithm], matrix)
    everything = grown_matrix(matrix, extra_users=10, extra_items=20)
    tuned = fine_tune(parent, everything, 2, learning_rate=0.05)
    assert tuned.user_factors.shape == (N_USERS + 10, WIDTH[algorithm])
    assert tuned.item_factors.shape == (N_ITEMS + 20, WIDTH[algorithm])
    assert np.all(np.isfinite(tuned.user_factors))
    if algorithm == "bpr":  # implicit keeps a constant 1 in the users' bias column
        assert np.all(tuned.user_factors[:, -1] == 1.0)
    if algorithm == "lmf":
        assert np.all(tuned.user_factors[:, -2] == 1.0)
        assert np.all(tuned.item_factors[:, -1] == 1.0)
    if algorithm == "popularity":
        assert np.array_equal(tuned.item_popularity, np.bincount(everything.indices, minlength=320))


def test_fine_tune_validates_its_arguments(matrix: sp.csr_matrix) -> None:
    parent = train(ALS, matrix)
    with pytest.raises(UserInputError, match="iterations must be"):
        fine_tune(parent, matrix, 0)
    with pytest.raises(UserInputError, match="learning_rate must be"):
        fine_tune(parent, matrix, 1, learning_rate=-1.0)


def test_retrain_equals_a_fresh_train(matrix: sp.csr_matrix) -> None:
    assert np.array_equal(retrain(ALS, matrix).item_factors, train(ALS, matrix).item_factors)


# --- faults --------------------------------------------------------------------------------


def test_noisy_factors_are_seeded_and_scaled(matrix: sp.csr_matrix) -> None:
    model = train(ALS, matrix)
    noisy = inject_fault(model, "noisy_factors", rng=np.random.default_rng(1), scale=0.5)
    again = inject_fault(model, "noisy_factors", rng=np.random.default_rng(1), scale=0.5)
    assert np.array_equal(noisy.item_factors, again.item_factors)
    rms = np.sqrt(np.mean(np.square(model.item_factors)))
    noise_rms = np.sqrt(np.mean(np.square(noisy.item_factors - model.item_factors)))
    assert noise_rms == pytest.approx(0.5 * rms, rel=0.05)
    assert noisy.user_factors.shape == model.user_factors.shape


def test_stale_serves_the_parent(matrix: sp.csr_matrix) -> None:
    parent = train(ALS, matrix)
    child = warm_start(parent, matrix, np.array([1]), np.array([1]))
    assert inject_fault(child, "stale", rng=np.random.default_rng(0), parent=parent) is parent
    with pytest.raises(UserInputError, match="parent must be"):
        inject_fault(child, "stale", rng=np.random.default_rng(0))


def test_popularity_only_ranks_by_popularity(matrix: sp.csr_matrix) -> None:
    model = train(ALS, matrix)
    broken = inject_fault(model, "popularity_only", rng=np.random.default_rng(0))
    assert broken.algorithm == "popularity"
    items, _ = top_k(broken, np.arange(3), matrix, 5, filter_consumed=False)
    order = np.lexsort((np.arange(N_ITEMS), -model.item_popularity))[:5]
    assert np.array_equal(items, np.tile(order, (3, 1)))


def test_unknown_fault_is_a_user_error(matrix: sp.csr_matrix) -> None:
    with pytest.raises(UserInputError, match="kind must be one of"):
        inject_fault(train(ALS, matrix), "meltdown", rng=np.random.default_rng(0))  # type: ignore[arg-type]


def test_clustered_data_is_reproducible() -> None:
    first = clustered(rng=np.random.default_rng(1))
    second = clustered(rng=np.random.default_rng(1))
    assert (first != second).nnz == 0
