"""``RequestStream.subset``: the requests kept, in order, each with its own truth rows."""

from __future__ import annotations

import numpy as np

from replay.requests import RequestStream


def test_subset_keeps_each_requests_truth() -> None:
    lengths = np.array([2, 0, 3, 1, 0])
    truth = np.arange(int(lengths.sum()), dtype=np.int32) + 100
    ptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    stream = RequestStream(
        np.arange(5, dtype=np.float64),
        np.arange(5, dtype=np.int32) + 10,
        np.arange(5, dtype=np.int32) + 20,
        ptr,
        truth,
    )
    keep = np.array([True, False, True, True, False])
    kept = stream.subset(keep)
    assert kept.t_s.tolist() == [0.0, 2.0, 3.0]
    assert kept.user.tolist() == [10, 12, 13] and kept.session.tolist() == [20, 22, 23]
    assert kept.has_truth
    rows = [kept.truth_items[kept.truth_ptr[i] : kept.truth_ptr[i + 1]].tolist() for i in range(3)]
    assert rows == [[100, 101], [102, 103, 104], [105]]


def test_subset_without_truth_stays_without() -> None:
    stream = RequestStream(np.zeros(3), np.zeros(3, np.int32), np.arange(3, dtype=np.int32))
    kept = stream.subset(np.array([False, True, True]))
    assert len(kept) == 2 and not kept.has_truth
