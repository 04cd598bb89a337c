"""Engagement metrics: hand-computed examples, scipy's Wilson interval, invalid inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy import stats

from replay.errors import UserInputError
from sim.metrics import (
    abandonment_table,
    ctr,
    ctr_difference,
    ctr_table,
    hit_at_k,
    hit_rate_at_k,
    segment_ctr,
    session_table,
    wilson_interval,
    worst_segment_delta,
)

Z95 = 1.959963984540054


def test_ctr_two_of_four_has_the_textbook_wilson_interval() -> None:
    # p̂ = 2/4 = 0.5, z² = 3.8415, 1 + z²/n = 1.9604
    # centre = (0.5 + 3.8415/8) / 1.9604 = 0.5
    # half = 1.96 / 1.9604 * sqrt(0.25/4 + 3.8415/64) = 0.99979 * 0.35003 = 0.34996
    est = ctr([1, 0, 0, 1])
    assert (est.successes, est.trials, est.rate) == (2, 4, 0.5)
    assert est.ci_low == pytest.approx(0.15004, abs=1e-5)
    assert est.ci_high == pytest.approx(0.84996, abs=1e-5)


@pytest.mark.parametrize(("k", "n"), [(0, 7), (3, 10), (10, 10), (123, 4567), (1, 1)])
def test_wilson_interval_equals_scipy_binomtest(k: int, n: int) -> None:
    # Library: scipy.stats.binomtest(k, n).proportion_ci(method="wilson").
    low, high = wilson_interval(k, n, confidence=0.9)
    ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
    assert float(low) == pytest.approx(ref.low, abs=1e-12)
    assert float(high) == pytest.approx(ref.high, abs=1e-12)


def test_wilson_interval_is_nan_without_trials_and_vectorized() -> None:
    low, high = wilson_interval(np.array([0, 1]), np.array([0, 2]))
    assert math.isnan(low[0]) and math.isnan(high[0])
    assert 0.0 < low[1] < 0.5 < high[1] < 1.0


def test_ctr_difference_delta_method_by_hand() -> None:
    # a: 2 clicks / 10, b: 4 clicks / 10.  diff = 0.2
    # v_a = 0.2·0.8/10 = 0.016, v_b = 0.4·0.6/10 = 0.024, se = sqrt(0.04) = 0.2
    # lift = 0.4/0.2 − 1 = 1; se_lift = sqrt(0.024/0.04 + 0.16·0.016/0.0016) = sqrt(2.2)
    a = np.array([1, 1] + [0] * 8)
    b = np.array([1] * 4 + [0] * 6)
    est = ctr_difference(a, b)
    assert est.method == "delta"
    assert (est.ctr_a, est.ctr_b) == (0.2, 0.4)
    assert est.difference == pytest.approx(0.2)
    assert est.difference_ci == pytest.approx((0.2 - Z95 * 0.2, 0.2 + Z95 * 0.2))
    assert est.relative_lift == pytest.approx(1.0)
    se = math.sqrt(2.2)
    assert est.relative_lift_ci == pytest.approx((1.0 - Z95 * se, 1.0 + Z95 * se))


def test_ctr_difference_lift_is_nan_when_baseline_never_clicked() -> None:
    est = ctr_difference([0, 0, 0], [1, 0, 0])
    assert est.difference == pytest.approx(1 / 3)
    assert math.isnan(est.relative_lift) and math.isnan(est.relative_lift_ci[0])


def test_ctr_difference_bootstrap_is_reproducible_and_close_to_delta() -> None:
    rng = np.random.default_rng(5)
    a = (rng.random(20_000) < 0.10).astype(np.uint8)
    b = (rng.random(20_000) < 0.11).astype(np.uint8)
    boot1 = ctr_difference(a, b, method="bootstrap", rng=np.random.default_rng(1))
    boot2 = ctr_difference(a, b, method="bootstrap", rng=np.random.default_rng(1))
    delta = ctr_difference(a, b)
    assert boot1 == boot2
    assert boot1.method == "bootstrap"
    width_delta = delta.difference_ci[1] - delta.difference_ci[0]
    width_boot = boot1.difference_ci[1] - boot1.difference_ci[0]
    # Large samples: percentile and normal intervals agree to Monte Carlo error.
    assert width_boot == pytest.approx(width_delta, rel=0.1)
    assert boot1.relative_lift_ci[0] < delta.relative_lift < boot1.relative_lift_ci[1]


def test_bootstrap_binomial_shortcut_matches_resampling_rows() -> None:
    # The click count of a with-replacement resample of a 0/1 sample is Binomial(n, p̂):
    # compare the mean and spread of both ways of resampling.
    rng = np.random.default_rng(3)
    clicks = (rng.random(500) < 0.3).astype(np.float64)
    rows = rng.integers(0, 500, size=(4000, 500))
    explicit = clicks[rows].mean(axis=1)
    shortcut = rng.binomial(500, clicks.mean(), size=4000) / 500
    assert explicit.std() == pytest.approx(shortcut.std(), rel=0.06)
    assert explicit.mean() == pytest.approx(shortcut.mean(), abs=0.003)


def test_hit_at_k_by_hand() -> None:
    shown = np.array([[1, 2, 3], [4, 5, 6], [7, 8, -1]], dtype=np.int32)
    # request 0 consumed {9, 3}: 3 is shown -> hit; request 1 consumed nothing;
    # request 2 consumed {8}: shown at rank 2 -> hit at k=3, miss at k=1.
    ptr = np.array([0, 2, 2, 3], dtype=np.int64)
    truth = np.array([9, 3, 8], dtype=np.int32)
    assert hit_at_k(shown, ptr, truth).tolist() == [True, False, True]
    assert hit_at_k(shown, ptr, truth, k=1).tolist() == [False, False, False]
    rate = hit_rate_at_k(shown, ptr, truth)
    assert (rate.successes, rate.trials, rate.rate) == (2, 2, 1.0)
    assert hit_rate_at_k(shown, ptr, truth, k=1).rate == 0.0


def _log() -> pl.DataFrame:
    # user 0: requests at 0 s, 100 s (one session) and 5000 s (gap > 1800 s: new session)
    # user 1: one request.  Clicks 1, 1, 0 | 1.  The 5000 s request was abandoned.
    return pl.DataFrame(
        {
            "t_s": [0.0, 100.0, 5000.0, 10.0],
            "user": pl.Series([0, 0, 0, 1], dtype=pl.UInt32),
            "version": ["a", "a", "a", "a"],
            "clicks": pl.Series([1, 1, 0, 1], dtype=pl.UInt8),
            "abandoned": [False, False, True, False],
        }
    )


def test_session_table_by_hand() -> None:
    # sessions: {0 s, 100 s} 2 clicks, {5000 s} 0 clicks, {user 1} 1 click
    # mean = 1, sd = 1, ci = 1 ± 1.96 / sqrt(3); 1 of 3 sessions has an abandoned request
    out = session_table(_log())
    row = out.row(0, named=True)
    assert row["version"] == "a"
    assert (row["sessions"], row["clicks"], row["abandoned_sessions"]) == (3, 3, 1)
    assert row["clicks_per_session"] == pytest.approx(1.0)
    assert row["ci_low"] == pytest.approx(1.0 - Z95 / math.sqrt(3))
    assert row["ci_high"] == pytest.approx(1.0 + Z95 / math.sqrt(3))
    assert row["abandoned_fraction"] == pytest.approx(1 / 3)


def test_session_table_uses_a_session_column_when_present() -> None:
    log = _log().with_columns(pl.Series("session", [7, 7, 7, 8]))
    row = session_table(log).row(0, named=True)
    assert row["sessions"] == 2
    assert row["clicks_per_session"] == pytest.approx(1.5)


def test_ctr_and_abandonment_tables_by_hand() -> None:
    log = pl.concat(
        [
            _log(),
            _log().with_columns(
                pl.lit("b").alias("version"), pl.lit(0).cast(pl.UInt8).alias("clicks")
            ),
        ]
    )
    table = ctr_table(log)
    assert table["version"].to_list() == ["a", "b"]
    assert table["impressions"].to_list() == [4, 4]
    assert table["clicks"].to_list() == [3, 0]
    assert table["ctr"].to_list() == [0.75, 0.0]
    aband = abandonment_table(log)
    assert aband["abandonment_rate"].to_list() == [0.25, 0.25]


def _segment_log() -> pl.DataFrame:
    # cold: baseline 5/10, candidate 2/10; heavy: baseline 2/10, candidate 4/10
    rows: list[tuple[str, str, int]] = []
    for seg, ver, clicks in (
        ("cold", "base", 5),
        ("cold", "cand", 2),
        ("heavy", "base", 2),
        ("heavy", "cand", 4),
    ):
        rows += [(seg, ver, 1)] * clicks + [(seg, ver, 0)] * (10 - clicks)
    return pl.DataFrame(
        {
            "segment": [r[0] for r in rows],
            "version": [r[1] for r in rows],
            "clicks": pl.Series([r[2] for r in rows], dtype=pl.UInt8),
        }
    )


def test_segment_ctr_and_worst_segment_delta_by_hand() -> None:
    log = _segment_log()
    table = segment_ctr(log, "segment")
    assert table.select("segment", "version", "ctr").rows() == [
        ("cold", "base", 0.5),
        ("cold", "cand", 0.2),
        ("heavy", "base", 0.2),
        ("heavy", "cand", 0.4),
    ]
    worst = worst_segment_delta(log, "segment", baseline="base", candidate="cand")
    # cold: d = 0.2 − 0.5 = −0.3, se = sqrt(0.25/10 + 0.16/10) = sqrt(0.041)
    assert worst.segment == "cold"
    assert worst.difference == pytest.approx(-0.3)
    assert worst.ci_low == pytest.approx(-0.3 - Z95 * math.sqrt(0.041))
    assert worst.ci_high == pytest.approx(-0.3 + Z95 * math.sqrt(0.041))
    assert worst.table["segment"].to_list() == ["cold", "heavy"]
    assert worst.table["relative_lift"].to_list() == pytest.approx([-0.6, 1.0])


def _raises(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(UserInputError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: ctr([0, 2]), "ctr: clicks must be 0 or 1 everywhere, got 2.0"),
        (lambda: ctr([]), "ctr: clicks.size must be >= 1, got 0"),
        (lambda: ctr([[1]]), "ctr: clicks.shape must be 1-D, got (1, 1)"),
        (lambda: ctr([1], confidence=1.5), "ctr: confidence must be a number in (0, 1), got 1.5"),
        (
            lambda: ctr_difference([1], [0], method="bootstrap"),
            "ctr_difference: rng must be a numpy Generator when method='bootstrap', got None",
        ),
        (
            lambda: ctr_difference([1], [0], method="exact"),  # type: ignore[arg-type]
            "ctr_difference: method must be",
        ),
        (
            lambda: hit_at_k(np.ones((2, 1), np.int32), np.array([0, 1]), np.array([1])),
            "hit_at_k: truth_ptr.shape must be (3,) for 2 requests, got (2,)",
        ),
        (
            lambda: hit_at_k(np.zeros((1, 3), np.int32), np.array([0, 1]), np.array([1])),
            "hit_at_k: shown[0] must be free of repeated items, got [0, 0, 0]",
        ),
        (
            lambda: hit_at_k(np.array([[1, 2]]), np.array([0, 2]), np.array([1])),
            "hit_at_k: truth_ptr must be non-decreasing from 0 to len(truth_items) = 1",
        ),
        (
            lambda: ctr_table(pl.DataFrame({"x": [1]})),
            "ctr_table: frame.columns must be columns that include ['version', 'clicks'],"
            " got ['x']",
        ),
        (
            lambda: ctr_table(pl.DataFrame({"version": ["a", "a"], "clicks": [0, 3]})),
            "ctr_table: clicks must be 0 or 1 per request, got 3",
        ),
        (
            lambda: worst_segment_delta(_segment_log(), "segment", baseline="base", candidate="v9"),
            "worst_segment_delta: candidate must be a version in the frame ['base', 'cand'],"
            " got 'v9'",
        ),
    ],
)
def test_invalid_inputs_raise_user_input_error(call: Any, expected: str) -> None:
    assert _raises(call).startswith(expected)
