"""replay.topk: same lists as implicit's recommend, documented ties, padding, unknown users."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from models_data import N_ITEMS, N_USERS

from replay.errors import UserInputError
from replay.topk import PRUNE_ABOVE, TopK, top_k
from replay.training import ModelSpec, TrainedModel, to_implicit, train

SPECS = {
    "als": ModelSpec("als", factors=16, iterations=5, seed=1),
    "bpr": ModelSpec("bpr", factors=16, iterations=10, learning_rate=0.05, seed=1),
    "lmf": ModelSpec("lmf", factors=16, iterations=5, learning_rate=0.5, seed=1),
}


def assert_same_lists(ours: TopK, ids: npt.NDArray[Any], scores: npt.NDArray[Any], k: int) -> None:
    """Equal to implicit's output: bit-equal scores, equal ids except among exactly equal
    scores (where both must hold the same set of ids, except at the K-th place)."""
    valid = scores > -np.finfo(np.float32).max  # implicit marks filtered items this way
    assert np.array_equal(ours.items == -1, ~valid)
    assert np.array_equal(ours.scores[valid], scores[valid])
    for row in range(ids.shape[0]):
        for value in np.unique(scores[row][valid[row]]):
            mine = set(ours.items[row][ours.scores[row] == value].tolist())
            theirs = set(ids[row][scores[row] == value].tolist())
            if value == scores[row][valid[row]].min():
                assert len(mine) == len(theirs)  # the K-th place may pick other tied items
            else:
                assert mine == theirs


@pytest.mark.parametrize("algorithm", list(SPECS))
@pytest.mark.parametrize("chunk_users", [100, 250, 4096])
def test_equals_implicit_recommend(matrix: sp.csr_matrix, algorithm: str, chunk_users: int) -> None:
    model = train(SPECS[algorithm], matrix)
    users = np.random.default_rng(0).permutation(np.r_[np.arange(N_USERS), np.arange(40)])
    ours = top_k(model, users, matrix, 20, chunk_users=chunk_users)
    ids, scores = to_implicit(model).recommend(users, matrix[users], N=20)
    assert_same_lists(ours, ids, scores, 20)
    # distinct random floats: no ties, so the lists are identical outright
    assert np.array_equal(ours.items, ids)
    assert ours.n_unknown == 0


def test_equals_implicit_without_filtering(matrix: sp.csr_matrix) -> None:
    model = train(SPECS["als"], matrix)
    users = np.arange(N_USERS)
    ours = top_k(model, users, matrix, 10, filter_consumed=False)
    ids, scores = to_implicit(model).recommend(
        users, matrix[users], N=10, filter_already_liked_items=False
    )
    assert np.array_equal(ours.items, ids) and np.array_equal(ours.scores, scores)


def test_results_do_not_depend_on_the_chunk_size(matrix: sp.csr_matrix) -> None:
    model = train(SPECS["als"], matrix)
    users = np.arange(N_USERS)
    reference = top_k(model, users, matrix, 7, chunk_users=10**6)
    for chunk in (1, 100, 199, 4096):
        other = top_k(model, users, matrix, 7, chunk_users=chunk)
        assert np.array_equal(other.items, reference.items)
        assert np.array_equal(other.scores, reference.scores)


def test_unpacks_like_a_pair(matrix: sp.csr_matrix) -> None:
    model = train(SPECS["als"], matrix)
    items, scores = top_k(model, np.arange(3), matrix, 4)
    assert items.shape == scores.shape == (3, 4)
    assert items.dtype == np.int32 and scores.dtype == np.float32


def tied_model() -> TrainedModel:
    """Scores 0, 1, 1, 1, 2, 2, 0 for items 0..6, for every user."""
    items = np.array([[0], [1], [1], [1], [2], [2], [0]], dtype=np.float32)
    return TrainedModel(
        ModelSpec("popularity"),
        np.ones((3, 1), np.float32),
        items,
        np.array([0, 1, 1, 1, 2, 2, 0], dtype=np.int64),
    )


# The dense search, and the pruned one (a single block: its first, merged with nothing).
BOTH_SEARCHES = pytest.mark.parametrize("prune_above", [PRUNE_ABOVE, 0])


@BOTH_SEARCHES
def test_ties_go_to_the_lower_item_id_including_at_the_kth_place(prune_above: int) -> None:
    model = tied_model()
    none = sp.csr_matrix((3, 7), dtype=np.float32)
    items, scores = top_k(model, np.arange(3), none, 4, prune_above=prune_above)
    assert items.tolist() == [[4, 5, 1, 2]] * 3
    assert scores.tolist() == [[2.0, 2.0, 1.0, 1.0]] * 3
    consumed = sp.csr_matrix(np.array([[0, 1, 0, 0, 0, 1, 0]] * 3, dtype=np.float32))
    items, _ = top_k(model, np.arange(3), consumed, 4, prune_above=prune_above)
    assert items.tolist() == [[4, 2, 3, 0]] * 3


@BOTH_SEARCHES
def test_pads_with_minus_one_when_fewer_than_k_items_remain(prune_above: int) -> None:
    model = tied_model()
    consumed = sp.csr_matrix(np.array([[1, 1, 1, 1, 1, 0, 1]] * 3, dtype=np.float32))
    result = top_k(model, np.arange(3), consumed, 3, prune_above=prune_above)
    assert result.items.tolist() == [[5, -1, -1]] * 3
    assert result.scores[0, 0] == 2.0 and np.all(np.isneginf(result.scores[:, 1:]))
    empty = sp.csr_matrix((3, 7), dtype=np.float32)
    wide = top_k(model, np.array([0]), empty, 9, prune_above=prune_above)
    assert wide.items.tolist() == [[4, 5, 1, 2, 3, 0, 6, -1, -1]]


def test_unknown_users_get_the_popularity_order_and_are_counted(matrix: sp.csr_matrix) -> None:
    model = train(SPECS["als"], matrix)
    wider = sp.vstack([matrix, sp.csr_matrix(np.eye(5, N_ITEMS, dtype=np.float32))]).tocsr()
    users = np.array([0, N_USERS + 1, 5, N_USERS + 10])  # +1 has a row, +10 has none
    result = top_k(model, users, wider, 5)
    assert result.unknown.tolist() == [False, True, False, True]
    assert result.n_unknown == 2
    order = np.lexsort((np.arange(N_ITEMS), -model.item_popularity))
    expected_plus_1 = [i for i in order if i != 1][:5]  # eye row 1 consumed item 1
    assert result.items[1].tolist() == expected_plus_1
    assert result.items[3].tolist() == order[:5].tolist()
    assert np.array_equal(result.scores[3], model.item_popularity[order[:5]].astype(np.float32))
    known = top_k(model, np.array([0, 5]), matrix, 5)
    assert np.array_equal(result.items[[0, 2]], known.items)
    far = top_k(model, np.array([2**40]), wider, 5)
    assert far.n_unknown == 1 and far.items[0].tolist() == order[:5].tolist()


def test_items_beyond_the_model_are_ignored_when_filtering(matrix: sp.csr_matrix) -> None:
    model = train(SPECS["als"], matrix)
    wider = sp.hstack([matrix, sp.csr_matrix(np.ones((N_USERS, 3), np.float32))]).tocsr()
    assert np.array_equal(
        top_k(model, np.arange(10), wider, 5).items, top_k(model, np.arange(10), matrix, 5).items
    )


def test_empty_user_list(matrix: sp.csr_matrix) -> None:
    result = top_k(train(SPECS["als"], matrix), np.array([], dtype=np.int64), matrix, 3)
    assert result.items.shape == (0, 3) and result.n_unknown == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be an integer >= 1"),
        ({"k": 2.0}, "k must be"),
        ({"users": np.array([-1])}, "users must be ids >= 0"),
        ({"users": np.array([0.5])}, "users must be a 1-D array of integer"),
        ({"chunk_users": 0}, "chunk_users must be"),
        ({"user_items": np.ones((2, 2))}, "user_items must be a scipy.sparse"),
    ],
)
def test_bad_arguments_are_user_errors(
    matrix: sp.csr_matrix, kwargs: dict[str, Any], message: str
) -> None:
    model = train(SPECS["als"], matrix)
    arguments: dict[str, Any] = {"users": np.arange(3), "user_items": matrix, "k": 3}
    arguments.update(kwargs)
    with pytest.raises(UserInputError, match=message):
        top_k(model, **arguments)


@pytest.fixture(scope="module")
def large() -> tuple[TrainedModel, sp.csr_matrix]:
    """A catalogue wide enough for the pruned search to skip blocks (9,000 items)."""
    from models_data import clustered

    wide = clustered(400, 9_000, per_user=30, rng=np.random.default_rng(3))
    return train(ModelSpec("als", factors=16, iterations=4, seed=2), wide), wide


def test_pruned_search_gives_the_dense_lists_bit_for_bit(
    large: tuple[TrainedModel, sp.csr_matrix],
) -> None:
    model, wide = large
    users = np.r_[np.arange(400), [5, 5, 399]]
    dense = top_k(model, users, wide, 12, prune_above=10**9)
    pruned = top_k(model, users, wide, 12, prune_above=1_000)
    assert np.array_equal(pruned.items, dense.items)
    assert np.array_equal(pruned.scores, dense.scores)
    unfiltered = top_k(model, users, wide, 12, prune_above=1_000, filter_consumed=False)
    assert np.array_equal(
        unfiltered.items, top_k(model, users, wide, 12, filter_consumed=False).items
    )


@pytest.mark.parametrize("prune_above", [1_000, 10**9])
def test_a_users_list_does_not_depend_on_who_else_is_scored(
    large: tuple[TrainedModel, sp.csr_matrix], prune_above: int
) -> None:
    """Lists are cached and filled lazily, so a row must be the same in any batch."""
    model, wide = large
    everyone = top_k(model, np.arange(400), wide, 10, prune_above=prune_above)
    for batch in ([7], [7, 8], list(range(3, 40)), list(range(150, 399, 2))):
        alone = top_k(model, np.array(batch), wide, 10, prune_above=prune_above)
        assert np.array_equal(alone.items, everyone.items[batch])
        assert np.array_equal(alone.scores, everyone.scores[batch])


def test_users_with_zero_factors_get_the_lowest_ids_left() -> None:
    model = TrainedModel(
        ModelSpec("als", factors=2),
        np.zeros((2, 2), np.float32),
        np.ones((6, 2), np.float32),
        np.zeros(6, np.int64),
    )
    consumed = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0], [0] * 6], dtype=np.float32))
    result = top_k(model, np.array([0, 1]), consumed, 3)
    assert result.items.tolist() == [[1, 3, 4], [0, 1, 2]]
    assert result.scores.tolist() == [[0.0] * 3] * 2


@pytest.mark.parametrize("prune_above", [1_000, 10**9])
def test_threads_give_the_same_lists(
    large: tuple[TrainedModel, sp.csr_matrix], prune_above: int
) -> None:
    base, wide = large
    # 2,400 users (six noisy copies of the 400): enough for the work to be cut in shares.
    noise = np.random.default_rng(5).normal(0, 0.01, (2_400, base.user_factors.shape[1]))
    users = np.tile(base.user_factors, (6, 1)) + noise.astype(np.float32)
    model = TrainedModel(base.spec, users, base.item_factors, base.item_popularity)
    consumed = sp.vstack([wide] * 6).tocsr()
    everyone = np.arange(2_400)
    one = top_k(model, everyone, consumed, 10, prune_above=prune_above)
    two = top_k(model, everyone, consumed, 10, prune_above=prune_above, threads=2)
    assert np.array_equal(one.items, two.items) and np.array_equal(one.scores, two.scores)


def _score_rows(kind: str, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    n, width = int(rng.integers(1, 40)), int(rng.integers(320, 2_500))
    if kind == "distinct":
        return rng.standard_normal((n, width)).astype(np.float32)
    scores = rng.integers(0, 4, (n, width)).astype(np.float32)  # every row full of ties
    if kind == "consumed":  # most columns filtered: some rows keep fewer than K finite
        scores[rng.random((n, width)) < 0.995] = -np.inf
    if kind == "nan":
        scores[rng.random((n, width)) < 0.01] = np.nan
    return scores


@pytest.mark.parametrize("kind", ["distinct", "tied", "consumed", "nan"])
@pytest.mark.parametrize("id_kind", ["columns", "shared", "per_row"])
def test_the_shortlist_selects_what_partitioning_every_row_selects(kind: str, id_kind: str) -> None:
    """Wide rows are selected through a shortlist of column groups: same ids and bits as
    partitioning whole rows, ties at the K-th place and padding included (``-inf`` pads may
    carry any id: callers mask them)."""
    from replay.topk import _select_partitioned, _select_shortlisted

    rng = np.random.default_rng(["distinct", "tied", "consumed", "nan"].index(kind))
    for _ in range(25):
        scores = _score_rows(kind, rng)
        n, width = scores.shape
        ids = {
            "columns": None,
            "shared": rng.permutation(2 * width)[:width].astype(np.int64),
            "per_row": rng.integers(0, 10**6, (n, width)),
        }[id_kind]
        k = int(rng.integers(1, 11))
        want_ids, want_scores = _select_partitioned(scores, ids, k)
        got_ids, got_scores = _select_shortlisted(scores, ids, k)
        assert np.array_equal(got_scores, want_scores, equal_nan=True)
        finite = np.isfinite(want_scores)
        assert np.array_equal(got_ids[finite], want_ids[finite])
