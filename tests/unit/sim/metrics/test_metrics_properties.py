"""Invariants of the metrics under Hypothesis-generated inputs."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.metrics import (
    expected_calibration_error,
    gini,
    jaccard_at_k,
    population_stability_index,
    rank_biased_overlap,
)

FAST = settings(max_examples=60, deadline=None)


@st.composite
def list_pairs(draw: st.DrawFn) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Two tables [n, K] of distinct item ids per row, padded with -1 at the end."""
    k = draw(st.integers(1, 8))
    n = draw(st.integers(1, 6))
    rows: list[list[list[int]]] = [[], []]
    for table in rows:
        for _ in range(n):
            filled = draw(st.lists(st.integers(0, 12), unique=True, max_size=k))
            table.append(filled + [-1] * (k - len(filled)))
    return np.array(rows[0], dtype=np.int32), np.array(rows[1], dtype=np.int32)


@FAST
@given(list_pairs())
def test_jaccard_in_unit_interval_symmetric_and_one_on_itself(
    pair: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]],
) -> None:
    a, b = pair
    ab = jaccard_at_k(a, b)
    assert np.all((ab >= 0) & (ab <= 1))
    assert np.array_equal(ab, jaccard_at_k(b, a))
    assert np.all(jaccard_at_k(a, a) == 1.0)


@FAST
@given(list_pairs(), st.floats(0.05, 0.95))
def test_rbo_in_unit_interval_symmetric_and_one_on_itself(
    pair: tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]], p: float
) -> None:
    a, b = pair
    ab = rank_biased_overlap(a, b, p=p)
    assert np.all((ab >= 0) & (ab <= 1))
    np.testing.assert_allclose(ab, rank_biased_overlap(b, a, p=p), atol=1e-12)
    np.testing.assert_allclose(rank_biased_overlap(a, a, p=p), 1.0, atol=1e-12)


@FAST
@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50).filter(
        lambda v: sum(v) > 0
    )
)
def test_gini_in_unit_interval(values: list[float]) -> None:
    g = gini(values)
    assert 0.0 <= g <= 1.0 - 1.0 / len(values) + 1e-12


@FAST
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=80),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=80),
)
def test_psi_non_negative_and_zero_on_identical_samples(
    ref: list[float], live: list[float]
) -> None:
    assert population_stability_index(ref, live).psi >= 0.0
    assert population_stability_index(ref, ref).psi == 0.0


@FAST
@given(
    st.lists(
        st.tuples(st.floats(0, 1, allow_nan=False), st.integers(0, 1)), min_size=1, max_size=100
    ),
    st.integers(1, 30),
)
def test_ece_in_unit_interval(rows: list[tuple[float, int]], n_bins: int) -> None:
    p = [r[0] for r in rows]
    y = [r[1] for r in rows]
    ece = expected_calibration_error(p, y, n_bins=n_bins)
    assert 0.0 <= ece <= 1.0
