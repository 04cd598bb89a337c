"""Exploration slots: admissible, the same for a user whatever version or batch, uniform."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.exploration import explore


def _lists(rng: np.random.Generator, n: int, k: int, n_items: int) -> np.ndarray:
    return np.stack([rng.choice(n_items, k, replace=False) for _ in range(n)]).astype(np.int32)


@settings(max_examples=40, deadline=None)
@given(
    n_items=st.integers(12, 400),
    slots=st.integers(1, 4),
    density=st.floats(0.0, 0.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_explored_lists_stay_admissible(
    n_items: int, slots: int, density: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    n, k = 60, 8
    users = rng.permutation(n)
    lists = _lists(rng, n, k, n_items)
    consumed = sp.random(n, n_items, density=density, format="csr", random_state=seed % 1000)
    out = explore(users, lists, consumed, n_items=n_items, slots=slots, seed=seed)
    # The model's first K - s items are untouched; every list stays distinct.
    assert (out[:, : k - slots] == lists[:, : k - slots]).all()
    assert all(len(set(row)) == k for row in out)
    # Items the model did not list are never ones the user consumed.
    drawn = np.array([[item not in lists[i] for item in out[i, k - slots :]] for i in range(n)])
    shown = np.repeat(users, slots).reshape(n, slots)[drawn]
    assert not np.asarray(consumed[shown, out[:, k - slots :][drawn]]).ravel().any()


def test_a_user_sees_the_same_exploration_whatever_the_version_or_batch() -> None:
    # Two versions' lists within items 0-99 of a large catalogue: every draw is admissible
    # for both, so both show the same exploration item, whatever the order of users.
    rng = np.random.default_rng(1)
    users = np.arange(500)
    first = explore(users, _lists(rng, 500, 10, 100), None, n_items=100_000, slots=1, seed=7)
    other = _lists(rng, 500, 10, 100)
    second = explore(users[::-1], other[::-1], None, n_items=100_000, slots=1, seed=7)[::-1]
    assert (first[:, 9] == second[:, 9]).all() and (first[:, 9] >= 100).all()
    # Another seed, other draws.
    third = explore(users, other, None, n_items=100_000, slots=1, seed=8)
    assert (third[:, 9] != second[:, 9]).mean() > 0.99


def test_draws_are_uniform_over_the_catalogue() -> None:
    users = np.arange(60_000)
    lists = np.tile(np.arange(10, dtype=np.int32), (users.size, 1))
    out = explore(users, lists, None, n_items=210, slots=1, seed=3)[:, 9]
    counts = np.bincount(out, minlength=210)[10:]  # items 0-9 are in every list
    expected = users.size / 200
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert counts.min() > 0 and chi2 < 270  # 199 degrees of freedom: P(chi2 > 270) ~ 0.1 %


def test_a_catalogue_no_larger_than_the_list_keeps_the_model_items() -> None:
    lists = np.tile(np.arange(5, dtype=np.int32), (4, 1))
    out = explore(np.arange(4), lists, None, n_items=5, slots=2, seed=0)
    assert (out[:, :3] == lists[:, :3]).all()
    assert (np.sort(out[:, 3:], axis=1) == [3, 4]).all()
