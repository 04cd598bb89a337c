"""Stability metrics: Jaccard@K, RBO (vs a direct eq. 32 loop), churn, noise floor."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from replay.errors import UserInputError
from sim.metrics import (
    jaccard_at_k,
    rank_biased_overlap,
    relative_to_noise_floor,
    version_change_churn,
)

Z95 = 1.959963984540054


def rbo_ext_direct(s_list: list[int], t_list: list[int], p: float) -> float:
    """Webber, Moffat, Zobel (2010) eq. 32 written as a plain loop over depths."""
    short, long_ = sorted([s_list, t_list], key=len)
    s, l_ = len(short), len(long_)
    if l_ == 0:
        return 1.0
    if s == 0:
        return 0.0

    def overlap(d: int) -> int:
        return len(set(short[:d]) & set(long_[:d]))

    x = {d: overlap(d) for d in range(1, l_ + 1)}
    sum1 = sum(x[d] / d * p**d for d in range(1, l_ + 1))
    sum2 = sum(x[s] * (d - s) / (s * d) * p**d for d in range(s + 1, l_ + 1))
    return (1 - p) / p * (sum1 + sum2) + ((x[l_] - x[s]) / l_ + x[s] / s) * p**l_


def rbo_truncated_sum(s_list: list[int], t_list: list[int], p: float, depth: int) -> float:
    """RBO's defining sum (1 − p) Σ_{d=1..depth} p^(d−1) A_d (eq. 7), truncated."""
    return (1 - p) * sum(
        p ** (d - 1) * len(set(s_list[:d]) & set(t_list[:d])) / d for d in range(1, depth + 1)
    )


def test_jaccard_by_hand() -> None:
    # {1, 2, 3} vs {3, 4}: |∩| = 1, |∪| = 4 -> 0.25;  identical -> 1;  both empty -> 1
    a = np.array([[1, 2, 3, -1], [5, 6, 7, 8], [-1, -1, -1, -1]], dtype=np.int32)
    b = np.array([[3, 4, -1, -1], [8, 7, 6, 5], [-1, -1, -1, -1]], dtype=np.int32)
    assert jaccard_at_k(a, b).tolist() == [0.25, 1.0, 1.0]
    # k = 2: {1, 2} vs {3, 4} -> 0;  {5, 6} vs {8, 7} -> 0
    assert jaccard_at_k(a, b, k=2).tolist() == [0.0, 0.0, 1.0]


def test_rbo_by_hand_equal_lengths() -> None:
    # S = [1, 2, 3], T = [2, 1, 4], p = 0.9: X_1 = 0, X_2 = 2, X_3 = 2
    # (1 − p)/p · (0 + (2/2)·0.81 + (2/3)·0.729) = (1/9) · 1.296 = 0.144
    # + X_3/3 · p³ = (2/3) · 0.729 = 0.486              RBO_ext = 0.630
    value = rank_biased_overlap([[1, 2, 3]], [[2, 1, 4]])
    assert value[0] == pytest.approx(0.63)


def test_rbo_by_hand_uneven_lengths() -> None:
    # S = [1, 2] (s = 2), L = [2, 3, 1] (l = 3), p = 0.9: X_1 = 0, X_2 = 1, X_3 = 2
    # sum1 = 0 + (1/2)·0.81 + (2/3)·0.729 = 0.891
    # sum2 = X_2 · (3 − 2)/(2·3) · 0.729 = 0.1215
    # (1/9)(0.891 + 0.1215) = 0.1125;  tail = ((2 − 1)/3 + 1/2) · 0.729 = 0.6075
    value = rank_biased_overlap([[1, 2, -1]], [[2, 3, 1]])
    assert value[0] == pytest.approx(0.72)
    assert value[0] == pytest.approx(rbo_ext_direct([1, 2], [2, 3, 1], 0.9))


def test_rbo_equals_direct_loop_on_random_lists() -> None:
    rng = np.random.default_rng(4)
    a = np.stack([rng.choice(15, 10, replace=False) for _ in range(200)]).astype(np.int32)
    b = np.stack([rng.choice(15, 10, replace=False) for _ in range(200)]).astype(np.int32)
    for row in range(0, 200, 3):  # uneven lengths: trailing empty slots
        a[row, 10 - row % 7 :] = -1
    ours = rank_biased_overlap(a, b, p=0.8)
    for i in range(200):
        ref = rbo_ext_direct([int(v) for v in a[i] if v >= 0], [int(v) for v in b[i]], 0.8)
        assert ours[i] == pytest.approx(ref, abs=1e-12)


def test_rbo_identical_and_disjoint_match_the_truncated_infinite_sum() -> None:
    # The defining sum for identical infinite rankings (A_d = 1) tends to 1 and for
    # disjoint ones (A_d = 0) is 0; RBO_ext of the K-prefixes gives those limits exactly.
    same = list(range(100))
    other = list(range(100, 200))
    assert rbo_truncated_sum(same, same, 0.9, 100) == pytest.approx(1.0, abs=1e-4)
    assert rbo_truncated_sum(same, other, 0.9, 100) == 0.0
    a = np.arange(10, dtype=np.int32)[None, :]
    assert rank_biased_overlap(a, a)[0] == pytest.approx(1.0, abs=1e-15)
    assert rank_biased_overlap(a, a + 10)[0] == 0.0
    empty = np.full((1, 10), -1, dtype=np.int32)
    assert rank_biased_overlap(empty, empty)[0] == 1.0
    assert rank_biased_overlap(a, empty)[0] == 0.0


def test_rbo_lower_bound_grows_to_rbo_ext_for_shared_prefix() -> None:
    # The truncated sum is RBO_MIN-like: never above RBO_ext for the same evidence.
    s, t = [1, 2, 3, 4, 5], [1, 3, 2, 5, 4]
    ext = rank_biased_overlap([s], [t])[0]
    assert rbo_truncated_sum(s, t, 0.9, 5) < ext <= 1.0


def test_version_change_churn_by_hand() -> None:
    # user 0 sees a, a, b, a; lists a: [1, 2, 3], b: [1, 2, 4] -> 1 − 2/3 on each change.
    # user 1 stays on a: no rows.
    log = pl.DataFrame(
        {
            "t_s": [2.0, 0.0, 1.0, 3.0, 0.5],
            "user": pl.Series([0, 0, 0, 0, 1], dtype=pl.UInt32),
            "version": ["b", "a", "a", "a", "a"],
        }
    )
    tables = {
        "a": np.array([[1, 2, 3], [7, 8, 9]], dtype=np.int32),
        "b": np.array([[1, 2, 4], [7, 8, 9]], dtype=np.int32),
    }
    out = version_change_churn(log, tables)
    assert out.select("user", "t_s", "from_version", "to_version").rows() == [
        (0, 2.0, "a", "b"),
        (0, 3.0, "b", "a"),
    ]
    assert out["churn"].to_list() == pytest.approx([1 / 3, 1 / 3])


def test_noise_floor_by_hand() -> None:
    # candidate [0.5, 0.7] vs floor [0.8, 0.8]: δ = [−0.3, −0.1], mean −0.2, sd √0.02, se 0.1
    # change ratio (1 − 0.6) / (1 − 0.8) = 2: twice the list change of seed noise
    out = relative_to_noise_floor([0.5, 0.7], [0.8, 0.8])
    assert out.difference == pytest.approx(-0.2)
    assert (out.ci_low, out.ci_high) == pytest.approx((-0.2 - Z95 * 0.1, -0.2 + Z95 * 0.1))
    assert out.change_ratio == pytest.approx(2.0)
    assert math.isnan(relative_to_noise_floor([0.5], [1.0]).change_ratio)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda: jaccard_at_k(np.zeros((2, 1), np.int32), np.zeros((3, 1), np.int32)),
            "jaccard_at_k: b.shape must be equal to a.shape = (2, 1), got (3, 1)",
        ),
        (
            lambda: jaccard_at_k(np.array([[0, 1]], np.int32), [[0, 1]], k=3),
            "jaccard_at_k: k must be an integer in [1, 2], got 3",
        ),
        (
            lambda: rank_biased_overlap([[1, -1, 2]], [[1, 2, 3]]),
            "rank_biased_overlap: a[0] must be padded with -1 only at the end, got [1, -1, 2]",
        ),
        (
            lambda: rank_biased_overlap([[1]], [[1]], p=1.0),
            "rank_biased_overlap: p must be in (0, 1)",
        ),
        (
            lambda: version_change_churn(
                pl.DataFrame({"t_s": [0.0, 1.0], "user": [0, 0], "version": ["a", "c"]}),
                {"a": np.array([[1]])},
            ),
            "version_change_churn: tables must be a mapping with a table for version 'c',"
            " got ['a']",
        ),
        (
            lambda: relative_to_noise_floor([1.5], [0.5]),
            "relative_to_noise_floor: candidate_jaccard must be in [0, 1] everywhere, got 1.5",
        ),
    ],
)
def test_invalid_inputs_raise_user_input_error(call: Any, expected: str) -> None:
    with pytest.raises(UserInputError) as info:
        call()
    assert str(info.value).startswith(expected)
