"""Plugins: the factory is imported and checked; what ``recommend`` returns is checked."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from examples.byo_model.sklearn_knn import ItemKNN
from examples.byo_model.surprise_svd import SurpriseSVD
from replay.errors import UserInputError
from replay.plugins import BATCH_USERS, load_plugin, plugin_lists


class Scripted:
    """A recommender that returns what the test tells it to."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.calls: list[int] = []

    def fit(self, interactions: sp.csr_matrix) -> None:
        del interactions

    def recommend(self, user_ids: np.ndarray, k: int) -> Any:
        self.calls.append(int(user_ids.size))
        if self.answer is not None:
            return self.answer(user_ids, k)
        items = (user_ids[:, None] + np.arange(k)[None, :]) % 50
        return items, -np.arange(k, dtype=np.float64)[None, :].repeat(user_ids.size, 0)


@pytest.fixture
def module() -> Iterator[types.ModuleType]:
    mod = types.ModuleType("byo_test_plugin")
    mod.Scripted = Scripted  # type: ignore[attr-defined]
    mod.not_a_model = lambda: object()  # type: ignore[attr-defined]
    mod.broken = lambda: 1 / 0  # type: ignore[attr-defined]
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


def test_lists_are_batched_checked_and_padded(module: types.ModuleType) -> None:
    model = load_plugin("byo_test_plugin:Scripted", source="s.toml")
    users = np.arange(BATCH_USERS + 10, dtype=np.int64)
    lists = plugin_lists(model, users, k=5, n_items=50, source="s.toml")
    assert isinstance(model, Scripted) and model.calls == [BATCH_USERS, 10]
    assert lists.items.shape == (users.size, 5) and lists.items.dtype == np.int32
    assert (lists.items[:, 0] == users % 50).all()


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_colon", "must look like"),
        ("no_such_module_anywhere:X", "cannot be imported"),
        ("byo_test_plugin:Missing", "no callable 'Missing'"),
        ("byo_test_plugin:not_a_model", "without fit() and recommend()"),
        ("byo_test_plugin:broken", "failed to start (ZeroDivisionError"),
    ],
)
def test_a_plugin_that_cannot_load_is_one_line(
    module: types.ModuleType, spec: str, words: str
) -> None:
    with pytest.raises(UserInputError, match=None) as error:
        load_plugin(spec, source="s.toml")
    assert str(error.value).startswith("s.toml: ") and words in str(error.value)
    assert "\n" not in str(error.value)


def _answer(items: Any, scores: Any) -> Any:
    return lambda users, k: (items, scores)


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (lambda users, k: [1, 2], "must return (items, scores)"),
        (_answer(np.zeros((3, 2), int), np.zeros((3, 2))), "must have shape (2, <= 4)"),
        (_answer(np.zeros((2, 5), int), np.zeros((2, 5))), "must have shape (2, <= 4)"),
        (_answer(np.zeros((2, 2), int), np.zeros((2, 3))), "the same shape"),
        (_answer(np.zeros((2, 2)), np.zeros((2, 2))), "must be integer item ids"),
        (_answer(np.array([[0, 50], [1, 2]]), np.zeros((2, 2))), "returned item 50"),
        (_answer(np.array([[0, 1], [1, 2]]), np.array([[0, np.nan], [0, 0]])), "non-finite"),
        (_answer(np.array([[3, 3], [1, 2]]), np.zeros((2, 2))), "an item twice"),
        (lambda users, k: 1 / 0, "recommend() failed (ZeroDivisionError"),
    ],
)
def test_wrong_answers_are_one_line(answer: Any, words: str) -> None:
    with pytest.raises(UserInputError) as error:
        plugin_lists(Scripted(answer), np.array([0, 1]), k=4, n_items=50, source="p")
    assert words in str(error.value)


def test_padding_is_not_a_repeat() -> None:
    answer = _answer(np.array([[4, -1, -1], [1, 2, 3]]), np.array([[1.0, 0, 0], [3, 2, 1]]))
    lists = plugin_lists(Scripted(answer), np.array([0, 1]), k=3, n_items=50, source="p")
    assert lists.items.tolist() == [[4, -1, -1], [1, 2, 3]]


def test_scikit_learn_item_knn_as_a_plugin() -> None:
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 200, 3000), rng.integers(0, 80, 3000)
    matrix = sp.csr_matrix((np.ones(3000, np.float32), (users, items)), shape=(200, 80))
    model = load_plugin(
        "examples.byo_model.sklearn_knn:ItemKNN", {"neighbours": 10}, source="s.toml"
    )
    assert isinstance(model, ItemKNN)
    model.fit(matrix)
    lists = plugin_lists(model, np.arange(200, dtype=np.int64), k=10, n_items=80, source="s")
    seen = matrix.toarray() > 0
    shown = lists.items >= 0
    assert shown[:, 0].all()
    # Never what the user already consumed.
    assert not seen[np.nonzero(shown)[0], lists.items[shown]].any()


def test_scikit_surprise_svd_as_a_plugin() -> None:
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 150, 2000), rng.integers(0, 60, 2000)
    matrix = sp.csr_matrix((np.ones(2000, np.float32), (users, items)), shape=(150, 60))
    model = load_plugin("examples.byo_model.surprise_svd:SurpriseSVD", source="s.toml")
    assert isinstance(model, SurpriseSVD)
    model.fit(matrix)
    lists = plugin_lists(model, np.arange(150, dtype=np.int64), k=5, n_items=60, source="s")
    assert (lists.items[:, 0] >= 0).all()
