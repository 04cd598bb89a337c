"""replay.sampling: alias tables, pooled Gumbel top-k against the exact sampler, normaliser."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from replay.sampling import (
    EXACT_PARTITION_ITEMS,
    AliasTable,
    _exact_block,
    log_partition,
    pool_size,
    sample_distinct,
    sample_one,
)

F = 16


@dataclass(frozen=True)
class World:
    """The ``Affinities`` the samplers read, signal 2 (as ``replay.synthetic``'s default)."""

    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    signal: float = 2.0

    @property
    def popularity(self) -> AliasTable:
        return AliasTable.from_weights(
            np.exp(self.item_bias.astype(np.float64) - self.item_bias.max())
        )


def world(n_users: int, n_items: int, seed: int = 0) -> World:
    """Factors and a Zipf(0.8) popularity bias shaped like ``replay.synthetic.make_world``."""
    rng = np.random.default_rng(seed)
    users = rng.normal(0, F**-0.5, (n_users, F)).astype(np.float32)
    items = rng.normal(0, F**-0.5, (n_items, F)).astype(np.float32)
    bias = (-0.8 * np.log(rng.permutation(n_items) + 1.0)).astype(np.float32)
    return World(users, items, bias)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=300))
def test_alias_table_holds_exactly_the_distribution(weights: list[float]) -> None:
    w = np.asarray(weights)
    if w.sum() <= 0:
        with pytest.raises(ValueError, match="must not all be zero"):
            AliasTable.from_weights(w)
        return
    table = AliasTable.from_weights(w)
    assert np.all((table.accept >= 0) & (table.accept <= 1))
    assert np.allclose(table.probabilities(), w / w.sum(), rtol=1e-9, atol=1e-12)


def test_alias_draws_pass_a_chi_square_test() -> None:
    weights = np.arange(1, 51, dtype=np.float64) ** -0.8
    table = AliasTable.from_weights(weights)
    draws = table.draw(200_000, rng=np.random.default_rng(1))
    observed = np.bincount(draws, minlength=50)
    expected = 200_000 * weights / weights.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_alias_rejects_bad_weights() -> None:
    for bad in ([], [1.0, -1.0], [np.inf], [[1.0]]):
        with pytest.raises(ValueError, match="AliasTable weights"):
            AliasTable.from_weights(bad)


def test_pool_sizes_are_a_few_shared_shapes_at_least_six_times_the_need() -> None:
    counts = np.arange(0, 2_000)
    pools = pool_size(counts)
    assert pools[0] == 0
    assert np.all(pools[1:] >= np.maximum(64, 6 * counts[1:]))
    assert np.all(pools[1:] <= 1.2 * np.maximum(64, 6 * counts[1:]) + 1)
    assert np.unique(pools).size < 40


def test_each_user_gets_exactly_their_count_of_distinct_items() -> None:
    w = world(3_000, 2_000)
    counts = np.random.default_rng(2).poisson(20, 3_000)
    counts[:5] = [0, 1, 2_000, 1_500, 400]  # none, one, all (exact path), most, a pool's worth
    got_users, got_items = sample_distinct(w, counts, rng=np.random.default_rng(3))
    assert np.array_equal(np.bincount(got_users, minlength=3_000), counts)
    pairs = got_users.astype(np.int64) * 2_000 + got_items
    assert np.unique(pairs).size == pairs.size
    assert got_items.min() >= 0 and got_items.max() < 2_000


def test_same_generator_same_history() -> None:
    w = world(500, 3_000)
    counts = np.full(500, 15)
    a = sample_distinct(w, counts, rng=np.random.default_rng(9))
    b = sample_distinct(w, counts, rng=np.random.default_rng(9))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("count", [5, 20, 100])
def test_pooled_picks_follow_preferences_and_popularity_like_the_exact_sampler(count: int) -> None:
    """The picks' mean preference term (signal <x_u, y_i>) keeps at least 80 % of the exact
    sampler's tilt above the popularity prior, and their popularity matches it."""
    n_users, n_items = 3_000, 5_000
    w = world(n_users, n_items, seed=4)
    users, items, bias = w.user_factors, w.item_factors, w.item_bias
    counts = np.full(n_users, count)
    rng = np.random.default_rng(5)
    pooled = sample_distinct(w, counts, rng=rng)
    exact = _exact_block(w, np.arange(n_users), counts, rng)
    prior = w.popularity.draw(n_users * count, rng=rng)
    prior_users = np.repeat(np.arange(n_users), count)

    def preference(u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return 2.0 * np.einsum("nf,nf->n", users[u], items[i])

    base = preference(prior_users, prior).mean()
    tilt_pooled = preference(*pooled).mean() - base
    tilt_exact = preference(*exact).mean() - base
    # The tilt is ~0.2-0.25 here; its Monte Carlo error is ~0.003.
    assert tilt_exact > 0.15
    assert 0.8 * tilt_exact < tilt_pooled < 1.05 * tilt_exact
    assert abs(bias[pooled[1]].mean() - bias[exact[1]].mean()) < 0.1


def test_one_draw_follows_the_affinity_law_for_one_user() -> None:
    w = world(1, 300, seed=6)
    affinity = 2.0 * (w.item_factors @ w.user_factors[0]) + w.item_bias
    law = np.exp(affinity - affinity.max())
    law /= law.sum()
    draws = sample_one(w, np.zeros(100_000, np.int64), rng=np.random.default_rng(7))
    frequencies = np.bincount(draws, minlength=300) / draws.size
    assert 0.5 * np.abs(frequencies - law).sum() < 0.05


def test_log_partition_is_exact_on_small_catalogues() -> None:
    w = world(50, EXACT_PARTITION_ITEMS)
    logits = 2.0 * (w.user_factors.astype(np.float64) @ w.item_factors.T.astype(np.float64))
    expected = np.log(np.exp(logits + w.item_bias).sum(axis=1))
    assert np.allclose(log_partition(w, np.arange(50)), expected, atol=1e-4)


def test_log_partition_estimate_is_within_two_percent_on_large_catalogues() -> None:
    w = world(300, 40_000, seed=8)
    logits = 2.0 * (w.user_factors.astype(np.float64) @ w.item_factors.T.astype(np.float64))
    expected = np.log(np.exp(logits + w.item_bias).sum(axis=1))
    estimate = log_partition(w, np.arange(300))
    error = np.abs(estimate - expected)  # ~ relative error of Z
    assert error.max() < 0.02 and error.mean() < 0.004
    again = log_partition(w, np.arange(300))
    assert np.array_equal(estimate, again)
