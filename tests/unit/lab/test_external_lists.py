"""Lists decided outside the lab: served as given, the fallback for the rest, and a table's
own click probabilities as the version's predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from lab.external import FixedLists
from lab.versions import VersionTables
from replay.calibration import FEATURES, ClickCalibrator
from replay.training import ModelSpec, TrainedModel
from sim.users import list_click_probability

N_USERS, N_ITEMS, K = 6, 12, 3


class FlatTruth:
    position_decay = 0.8

    def relevance(self, users: np.ndarray, items: np.ndarray, lift: float) -> np.ndarray:
        return np.where(items >= 0, 0.1, 0.0).astype(np.float32)


def _stand_in() -> TrainedModel:
    return TrainedModel(
        ModelSpec(algorithm="external", factors=1, seed=0),
        np.zeros((N_USERS, 1), np.float32),
        np.zeros((N_ITEMS, 1), np.float32),
        np.arange(N_ITEMS, dtype=np.int64),
    )


def _version_tables(
    name: str, model: TrainedModel, seen: sp.csr_matrix, **options: Any
) -> VersionTables:
    return VersionTables(
        name,
        model,
        seen=seen,
        consumed=seen,
        truth=FlatTruth(),
        n_users=N_USERS,
        popular_items=np.array([0, 1, 2], np.int32),
        k=K,
        click_lift=0.0,
        parent=None,
        update=None,
        **options,
    )


def _tables(
    lists: FixedLists, covered: np.ndarray, fallback: VersionTables | None
) -> VersionTables:
    nothing = sp.csr_matrix((N_USERS, N_ITEMS), dtype=np.float32)
    tables = _version_tables(
        "candidate", lists.model, nothing, list_store=lists, covered=covered, fallback=fallback
    )
    tables.calibrator = ClickCalibrator(FEATURES, (0.0,) * len(FEATURES), -2.0, "test")
    return tables


def test_covered_users_get_the_table_and_its_predictions_the_rest_the_fallback() -> None:
    items = np.tile(np.array([[9, 8, 7]], np.int32), (N_USERS, 1))
    covered = np.array([True, True, True, False, False, True])
    items[~covered] = -1
    p_click = np.tile(np.array([[0.5, 0.25, np.nan]], np.float32), (N_USERS, 1))
    own = FixedLists(_stand_in(), items, covered.copy(), p_click=p_click)
    other_items = np.tile(np.array([[4, 5, 6]], np.int32), (N_USERS, 1))
    other = _tables(
        FixedLists(_stand_in(), other_items, np.ones(N_USERS, bool)), np.ones(N_USERS, bool), None
    )
    tables = _tables(own, covered, other)
    users = np.arange(N_USERS)
    tables.ensure(users)
    assert tables.items[covered].tolist() == [[9, 8, 7]] * 4
    assert tables.items[~covered].tolist() == [[4, 5, 6]] * 2
    assert tables.popularity_fallback_users == 2
    mine = list_click_probability(p_click[:1], 0.8)[0]
    np.testing.assert_allclose(tables.predicted[covered], mine, rtol=1e-6)
    # The fallback's users are predicted by the calibrator, not by the table.
    assert not np.isclose(tables.predicted[~covered], mine).any()


def test_a_plugin_is_asked_once_per_user() -> None:
    asked: list[list[int]] = []

    def fetch(users: np.ndarray) -> np.ndarray:
        asked.append(users.tolist())
        return np.tile(np.array([[1, 2, 3]], np.int32), (users.size, 1))

    lists = FixedLists(
        _stand_in(), np.full((N_USERS, K), -1, np.int32), np.zeros(N_USERS, bool), fetch
    )
    lists.rows(np.array([3, 1, 3]))
    lists.rows(np.array([1, 2]))
    assert asked == [[1, 3], [2]] and lists.scored == 3


def _scored(lists_only: bool) -> VersionTables:
    rng = np.random.default_rng(4)
    model = TrainedModel(
        ModelSpec(algorithm="als", factors=3, seed=0),
        rng.standard_normal((N_USERS, 3)).astype(np.float32),
        rng.standard_normal((N_ITEMS, 3)).astype(np.float32),
        np.arange(N_ITEMS, dtype=np.int64),
    )
    seen = sp.csr_matrix(np.eye(N_USERS, N_ITEMS, dtype=np.float32))
    return _version_tables("baseline@noise_floor", model, seen, lists_only=lists_only)


def test_tables_of_lists_only_score_the_same_lists_and_nothing_else() -> None:
    """The noise floor's tables: its lists are compared with the baseline's, nothing more is
    read, so no relevance or prediction is computed (and no calibrator is needed)."""
    users = np.array([4, 0, 4, 2])
    full = _scored(False)
    full.calibrator = ClickCalibrator(FEATURES, (0.0,) * len(FEATURES), -2.0, "test")
    full.ensure(users)
    lists = _scored(True)
    lists.ensure(users)
    assert np.array_equal(lists.items, full.items)
    assert np.array_equal(lists.ready, full.ready)
    assert full.relevance[[0, 2, 4]].all() and not lists.relevance.any()
    assert not lists.predicted.any() and not lists.scores.any()
