"""Replayed users folded in (replay/fold_in.py): warm-up rows, the history before the first
replayed event, and user factors re-solved with implicit's own solver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.events import EVENT_SCHEMA, EventTable
from replay.fold_in import fold_in, history_before, warm_up_rows
from replay.log_traffic import LogTraffic, replay_requests
from replay.training import Algorithm, ModelSpec, TrainedModel, to_implicit, train
from replay.windows import Window

T0 = datetime(2024, 1, 1, tzinfo=UTC)
SINCE = T0
WINDOW = Window(T0 + timedelta(seconds=100), T0 + timedelta(seconds=1_000))

#            user item  t (s)
ROWS = [
    (0, 0, 0),
    (0, 1, 10),  # user 0: two interactions before the window
    (0, 2, 100),
    (1, 3, 150),
    (0, 3, 200),
    (1, 4, 300),
    (2, 0, 400),
    (1, 0, 500),
    (0, 4, 600),
]


def events(rows: list[tuple[int, int, int]] = ROWS) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "ts": [T0 + timedelta(seconds=r[2]) for r in rows],
            "event": ["view"] * len(rows),
            "weight": [1.0] * len(rows),
            "session": [r[0] for r in rows],
        },
        schema=EVENT_SCHEMA,
    ).sort("ts", maintain_order=True)


def test_warm_up_takes_each_users_first_events_up_to_the_count() -> None:
    # warm_up 3: user 0 had 2 before, so 1 more (t=100); user 1 would take 3 but its last
    # event (500) is replayed; user 2's only event is replayed.
    rows = warm_up_rows(events(), WINDOW, since=SINCE, warm_up=3, n_users=3)
    assert rows.tolist() == [True, True, False, True, False, False, False]


def test_warm_up_takes_at_least_a_fraction_of_each_users_window_events() -> None:
    # fraction 0.5: user 0 (4 events in the window) takes 2 though it had 2 before; user 1
    # (3 events) takes 2 (⌈1.5⌉); user 2 (1 event) none: a user's last event is replayed.
    rows = warm_up_rows(events(), WINDOW, since=SINCE, warm_up=0, n_users=3, fraction=0.5)
    assert rows.tolist() == [True, True, True, True, False, False, False]
    rows = warm_up_rows(events(), WINDOW, since=SINCE, warm_up=3, n_users=3, fraction=0.5)
    assert rows.tolist() == [True, True, True, True, False, False, False]
    with pytest.raises(Exception, match="fraction"):
        warm_up_rows(events(), WINDOW, since=SINCE, warm_up=0, n_users=3, fraction=1.0)


def test_no_warm_up_replays_every_event() -> None:
    rows = warm_up_rows(events(), WINDOW, since=SINCE, warm_up=0, n_users=3)
    assert not rows.any() and rows.size == 7


def test_warm_up_counts_history_only_from_since() -> None:
    later = T0 + timedelta(seconds=5)  # user 0's first interaction is before this
    rows = warm_up_rows(events(), WINDOW, since=later, warm_up=2, n_users=3)
    assert rows.tolist()[:3] == [True, True, False]


def test_warm_up_rows_are_no_requests_and_every_window_event_is_accounted() -> None:
    table = EventTable(events(), pl.Series(range(3)), pl.Series(range(5)))
    rows = warm_up_rows(table.events, WINDOW, since=SINCE, warm_up=2, n_users=3)
    stream = replay_requests(table, WINDOW, LogTraffic(horizon=5), skip=rows)
    # User 0 had 2 interactions already: all of its window events are replayed; user 1's
    # first two are its warm-up; user 2's only event is its last, so it is replayed.
    assert stream.user.tolist() == [0, 0, 2, 1, 0]
    assert len(stream) + int(rows.sum()) == 7
    # Truth is what the user consumed from the request on, never a warm-up row.
    ptr = stream.truth_ptr
    assert [stream.truth_items[ptr[k] : ptr[k + 1]].tolist() for k in range(5)] == [
        [2, 3, 4],
        [3, 4],
        [0],
        [0],
        [4],
    ]


def test_history_before_is_the_earlier_events_plus_the_warm_up() -> None:
    rows = warm_up_rows(events(), WINDOW, since=SINCE, warm_up=3, n_users=3)
    history = history_before(events(), WINDOW, rows, since=SINCE, n_users=3, n_items=5)
    assert history.toarray().tolist() == [
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 1],
        [0, 0, 0, 0, 0],
    ]
    with pytest.raises(Exception, match="like the window"):
        history_before(events(), WINDOW, rows[:2], since=SINCE, n_users=3, n_items=5)


def _model(algorithm: Algorithm = "als") -> tuple[TrainedModel, sp.csr_matrix]:
    rng = np.random.default_rng(3)
    dense = (rng.random((40, 30)) < 0.2).astype(np.float32)
    dense[30:] = 0.0  # users 30..39: nothing in training
    seen = sp.csr_matrix(dense)
    spec = ModelSpec(algorithm=algorithm, factors=4, iterations=3, regularization=0.1, alpha=2.0)
    return train(spec, seen), seen


def test_fold_in_resolves_exactly_the_users_with_more_history() -> None:
    model, seen = _model()
    history = seen.tolil(copy=True)
    history[31, [1, 2, 3]] = 1.0  # a new user
    extra = int(np.flatnonzero(seen[5].toarray()[0] == 0)[0])
    history[5, extra] = 1.0  # a known user with one more interaction
    history = sp.csr_matrix(history, dtype=np.float32)
    folded, knows, count = fold_in(model, seen, history)
    assert count == 2
    expected = to_implicit(model).recalculate_user(np.array([5, 31]), history[[5, 31]])
    np.testing.assert_array_equal(folded.user_factors[[5, 31]], expected)
    others = np.setdiff1d(np.arange(40), [5, 31])
    np.testing.assert_array_equal(folded.user_factors[others], model.user_factors[others])
    np.testing.assert_array_equal(folded.item_factors, model.item_factors)
    assert (knows != history).nnz == 0
    # The trained model is left as it was.
    assert not np.array_equal(model.user_factors[31], folded.user_factors[31])


def test_fold_in_leaves_non_als_versions_and_unchanged_histories_alone() -> None:
    model, seen = _model("bpr")
    history = seen.tolil(copy=True)
    history[31, 1] = 1.0
    assert fold_in(model, seen, sp.csr_matrix(history))[2] == 0
    als, seen = _model()
    same, knows, count = fold_in(als, seen, seen)
    assert count == 0 and same is als and knows is seen


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 999)),
        min_size=1,
        max_size=30,
    ),
    warm_up=st.integers(0, 5),
    fraction=st.sampled_from([0.0, 0.2, 0.5, 0.9]),
)
def test_warm_up_never_takes_an_event_after_a_replayed_one(
    rows: list[tuple[int, int, int]], warm_up: int, fraction: float
) -> None:
    """Causality: a user's warm-up rows all come before their first replayed row, and they
    are exactly as many as the count and the fraction ask for."""
    frame = events(rows)
    taken = warm_up_rows(frame, WINDOW, since=SINCE, warm_up=warm_up, n_users=4, fraction=fraction)
    inside = frame.filter((pl.col("ts") >= WINDOW.start) & (pl.col("ts") < WINDOW.end))
    users = inside["user"].to_numpy()
    prior = np.bincount(frame.filter(pl.col("ts") < WINDOW.start)["user"].to_numpy(), minlength=4)
    for u in range(4):
        mine = taken[users == u]
        assert not np.any(np.diff(mine.astype(int)) > 0)  # True…True then False…False
        wanted = max(warm_up - prior[u], int(np.ceil(fraction * mine.size)), 0)
        assert mine.sum() == min(wanted, max(mine.size - 1, 0))  # the last one is replayed
