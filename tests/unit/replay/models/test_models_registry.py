"""replay.registry: ids, provenance, round trips, corrupt artifacts, metrics, version diffs."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from models_data import MOVIELENS, N_ITEMS, N_USERS

from replay.calibration import Platt
from replay.errors import UserInputError
from replay.registry import (
    Provenance,
    Registry,
    ValidationMetrics,
    data_fingerprint,
    diff_versions,
    evaluate,
    jaccard_at_k,
    rbo,
)
from replay.topk import top_k
from replay.training import ModelSpec, TrainedModel, active_ids, train, warm_start

ALS = ModelSpec("als", factors=8, iterations=6, alpha=5.0, seed=3)
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*@\d{8}T\d{6}Z-[0-9a-f]{8}$")


def provenance_for(
    matrix: sp.csr_matrix, *, name: str = "baseline", when: datetime = T0, **extra: Any
) -> Provenance:
    fields: dict[str, Any] = {
        "name": name,
        "created_at": when,
        "train_start": "2024-04-01T00:00:00+00:00",
        "train_end": "2024-04-30T00:00:00+00:00",
        "data_fingerprint": data_fingerprint(matrix),
        "metrics": ValidationMetrics(20, 0.25, 0.2, 0.4, 150, 3, "2024-04-30", "2024-05-01"),
        "platt": Platt(1.5, -2.0),
    }
    fields.update(extra)
    return Provenance(**fields)


@pytest.fixture
def saved(tmp_path: Path, matrix: sp.csr_matrix) -> tuple[Registry, str, TrainedModel]:
    registry = Registry(tmp_path / "registry")
    model = train(ALS, matrix)
    return registry, registry.save(model, provenance_for(matrix)), model


# --- round trips ---------------------------------------------------------------------------


def test_save_then_load_gives_identical_recommendations(
    saved: tuple[Registry, str, TrainedModel], matrix: sp.csr_matrix
) -> None:
    registry, vid, model = saved
    loaded, provenance = registry.load(vid)
    assert np.array_equal(loaded.user_factors, model.user_factors)
    assert np.array_equal(loaded.item_factors, model.item_factors)
    assert np.array_equal(loaded.item_popularity, model.item_popularity)
    assert loaded.spec == model.spec
    assert loaded.training_seconds == model.training_seconds
    users = np.arange(N_USERS)
    assert np.array_equal(
        top_k(loaded, users, matrix, 10).items, top_k(model, users, matrix, 10).items
    )
    assert provenance == replace(provenance_for(matrix), version_id=vid)


def test_version_id_is_name_utc_time_and_content_hash(
    saved: tuple[Registry, str, TrainedModel], matrix: sp.csr_matrix
) -> None:
    registry, vid, model = saved
    assert ID.match(vid) and vid.startswith("baseline@20240501T120000Z-")
    # same content and time from another time zone: same id, saving again is a no-op
    eastern = T0.astimezone(timezone(timedelta(hours=-5)))
    assert registry.save(model, provenance_for(matrix, when=eastern)) == vid
    other = train(replace(ALS, seed=4), matrix)
    assert registry.save(other, provenance_for(matrix)).split("-")[-1] != vid.split("-")[-1]


def test_provenance_holds_every_field(saved: tuple[Registry, str, TrainedModel]) -> None:
    registry, vid, model = saved
    document = json.loads((registry.path(vid) / "provenance.json").read_text())
    assert set(document) == {
        "schema", "version_id", "name", "created_at", "parent_id", "update", "train_window",
        "data_fingerprint", "algorithm", "hyperparameters", "metrics", "platt",
        "calibration", "training_seconds", "artifact", "content_sha256",
    }  # fmt: skip
    assert document["version_id"] == vid
    assert document["created_at"] == "2024-05-01T12:00:00Z"
    assert document["train_window"] == {
        "start": "2024-04-01T00:00:00+00:00",
        "end": "2024-04-30T00:00:00+00:00",
    }
    assert document["algorithm"] == "als"
    assert document["hyperparameters"] == ALS.hyperparameters()
    assert set(document["metrics"]) == {
        "k", "recall", "ndcg", "coverage", "n_users", "n_unknown_users", "holdout_start",
        "holdout_end",
    }  # fmt: skip
    assert document["platt"] == {"a": 1.5, "b": -2.0}
    assert document["training_seconds"] == model.training_seconds
    assert document["artifact"] == {
        "file": "factors.npz", "n_users": N_USERS, "n_items": N_ITEMS, "n_factors": 8,
    }  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]{64}", document["content_sha256"])
    assert document["content_sha256"][:8] == vid[-8:]


def test_child_version_records_its_parent(
    saved: tuple[Registry, str, TrainedModel], matrix: sp.csr_matrix
) -> None:
    registry, parent_id, parent = saved
    child = warm_start(parent, matrix, np.arange(5), np.arange(5))
    prov = provenance_for(
        matrix, name="candidate", when=T0 + timedelta(hours=1), parent_id=parent_id,
        update="warm_start", metrics=None, platt=None,
    )  # fmt: skip
    child_id = registry.save(child, prov)
    _, loaded = registry.load(child_id)
    assert loaded.parent_id == parent_id and loaded.update == "warm_start"
    assert loaded.metrics is None and loaded.platt is None


def test_undefined_metrics_survive_json(tmp_path: Path, matrix: sp.csr_matrix) -> None:
    registry = Registry(tmp_path)
    metrics = ValidationMetrics(10, math.nan, math.nan, math.nan, 0)
    vid = registry.save(train(ALS, matrix), provenance_for(matrix, metrics=metrics))
    _, loaded = registry.load(vid)
    assert loaded.metrics is not None and math.isnan(loaded.metrics.recall)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "../evil", "name must be"),
        ("name", "", "name must be"),
        ("created_at", datetime(2024, 5, 1), "created_at must be a timezone-aware"),
        ("train_start", "yesterday", "train_start must be an ISO-8601"),
        ("parent_id", "baseline", "parent_id must be a version id"),
        ("data_fingerprint", "abc", "data_fingerprint must be 64 hex"),
    ],
)
def test_bad_provenance_is_rejected_before_writing(
    tmp_path: Path, matrix: sp.csr_matrix, field: str, value: Any, message: str
) -> None:
    registry = Registry(tmp_path)
    with pytest.raises(UserInputError, match=message):
        registry.save(train(ALS, matrix), provenance_for(matrix, **{field: value}))
    assert registry.list() == []


# --- fingerprints --------------------------------------------------------------------------


def test_fingerprint_changes_when_a_single_interaction_changes(matrix: sp.csr_matrix) -> None:
    base = data_fingerprint(matrix)
    assert data_fingerprint(matrix.copy()) == base
    reweighted = matrix.copy()
    reweighted.data[17] += 1.0
    moved = matrix.copy()
    moved.indices[17] = (moved.indices[17] + 1) % N_ITEMS
    moved.sort_indices()
    added = matrix.tolil()
    added[0, np.flatnonzero(matrix[0].toarray().ravel() == 0)[0]] = 1.0
    taller = sp.csr_matrix((matrix.data, matrix.indices, np.r_[matrix.indptr, matrix.nnz]),
                           shape=(N_USERS + 1, N_ITEMS))  # fmt: skip
    prints = {data_fingerprint(m) for m in (reweighted, moved, added.tocsr(), taller)}
    assert len(prints) == 4 and base not in prints


def test_fingerprint_ignores_internal_layout(matrix: sp.csr_matrix) -> None:
    shuffled = matrix.copy()
    row = slice(shuffled.indptr[0], shuffled.indptr[1])
    shuffled.indices[row] = shuffled.indices[row][::-1]
    shuffled.data[row] = shuffled.data[row][::-1]
    shuffled.has_sorted_indices = False
    assert data_fingerprint(shuffled) == data_fingerprint(matrix)
    assert data_fingerprint(sp.csr_array(matrix)) == data_fingerprint(matrix)


def test_load_checks_the_data_fingerprint_on_request(
    saved: tuple[Registry, str, TrainedModel], matrix: sp.csr_matrix
) -> None:
    registry, vid, _ = saved
    registry.load(vid, data=matrix)
    other = matrix.copy()
    other.data[0] = 2.0
    with pytest.raises(UserInputError, match=r"data_fingerprint .* does not match"):
        registry.load(vid, data=other)


# --- corrupt artifacts ---------------------------------------------------------------------


def _rewrite_npz(path: Path, change: Callable[[dict[str, np.ndarray]], object]) -> None:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    change(arrays)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _scale_item_factors(arrays: dict[str, np.ndarray]) -> None:
    arrays["item_factors"] = arrays["item_factors"] * np.float32(1.01)


def _retag_window(document: dict[str, Any]) -> None:
    document["train_window"]["end"] = "2024-05-01T00:00:00+00:00"


CORRUPTIONS: dict[str, tuple[str, Callable[[Path], object], str]] = {
    "bad zip": ("factors.npz", lambda p: p.write_bytes(b"not a zip file"), "not a readable .npz"),
    "truncated": ("factors.npz", _truncate, "not a readable .npz"),
    "missing npz": ("factors.npz", lambda p: p.unlink(), "file is missing"),
    "missing array": (
        "factors.npz",
        lambda p: _rewrite_npz(p, lambda a: a.pop("item_popularity")),
        "array 'item_popularity' is missing",
    ),
    "pickled array": (
        "factors.npz",
        lambda p: _rewrite_npz(p, lambda a: a.update(item_popularity=np.array([{}], object))),
        "not a readable .npz",
    ),
    "wrong dtype": (
        "factors.npz",
        lambda p: _rewrite_npz(p, lambda a: a.update(user_factors=a["user_factors"] * 1.0j)),
        "array 'user_factors' must be 2-D float32",
    ),
    "shape mismatch": (
        "factors.npz",
        lambda p: _rewrite_npz(p, lambda a: a.update(user_factors=a["user_factors"][:-1])),
        r"user_factors has shape \(199, 8\) but provenance.json says \(200, 8\)",
    ),
    "factors changed": (
        "factors.npz",
        lambda p: _rewrite_npz(p, _scale_item_factors),
        "content hash .* does not match",
    ),
    "provenance changed": (
        "provenance.json",
        lambda p: _edit_json(p, _retag_window),
        "content hash .* does not match",
    ),
    "invalid json": ("provenance.json", lambda p: p.write_text("{ not json"), "invalid JSON"),
    "missing field": (
        "provenance.json",
        lambda p: _edit_json(p, lambda d: d.pop("hyperparameters")),
        "invalid provenance \\(missing field 'hyperparameters'\\)",
    ),
    "bad field": (
        "provenance.json",
        lambda p: _edit_json(p, lambda d: d["hyperparameters"].update(factors=-1)),
        "invalid provenance \\(ModelSpec: factors must be",
    ),
    "not an object": ("provenance.json", lambda p: p.write_text("[1, 2]"), "top level must be"),
    "missing provenance": ("provenance.json", lambda p: p.unlink(), "file is missing"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_each_corrupt_artifact_gives_one_line_naming_file_problem_and_fix(
    saved: tuple[Registry, str, TrainedModel], kind: str
) -> None:
    registry, vid, _ = saved
    file_name, corrupt, message = CORRUPTIONS[kind]
    path = registry.path(vid) / file_name
    corrupt(path)
    with pytest.raises(UserInputError, match=message) as info:
        registry.load(vid)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(str(registry.path(vid)))
    assert "fix:" in text


def test_moved_version_is_detected(saved: tuple[Registry, str, TrainedModel]) -> None:
    registry, vid, _ = saved
    source = registry.path(vid)
    fake = vid[:-8] + "00000000"
    target = registry.path(fake)
    target.mkdir(parents=True)
    for name in ("factors.npz", "provenance.json"):
        (target / name).write_bytes((source / name).read_bytes())
    with pytest.raises(UserInputError, match="sits under"):
        registry.load(fake)


def test_unknown_or_malformed_version_ids(saved: tuple[Registry, str, TrainedModel]) -> None:
    registry, vid, _ = saved
    with pytest.raises(UserInputError, match=r"no such version .*; fix: use a registered id"):
        registry.load(vid[:-8] + "ffffffff")
    with pytest.raises(UserInputError, match="version id must be NAME@"):
        registry.load("baseline-latest")


def test_zip_with_extra_members_still_loads(saved: tuple[Registry, str, TrainedModel]) -> None:
    registry, vid, _ = saved
    with zipfile.ZipFile(registry.path(vid) / "factors.npz", "a") as archive:
        archive.writestr("notes.txt", "hello")
    registry.load(vid)


# --- listing and rollback targets ----------------------------------------------------------


def test_list_and_last_good(tmp_path: Path, matrix: sp.csr_matrix) -> None:
    registry = Registry(tmp_path)
    assert registry.list() == [] and registry.last_good() is None
    ids = []
    for hour, name in enumerate(["baseline", "candidate", "baseline", "candidate"]):
        model = train(replace(ALS, seed=hour), matrix)
        when = T0 + timedelta(hours=hour)
        ids.append(registry.save(model, provenance_for(matrix, name=name, when=when)))
    (registry.root / "baseline" / "stray-dir").mkdir()
    assert registry.list() == ids
    assert registry.list("baseline") == [ids[0], ids[2]]
    assert registry.last_good() == ids[3]
    assert registry.last_good(before=T0 + timedelta(hours=3)) == ids[2]
    assert registry.last_good("candidate", before=T0 + timedelta(hours=3)) == ids[1]
    assert registry.last_good(exclude={ids[3]}) == ids[2]
    (registry.path(ids[2]) / "factors.npz").write_bytes(b"junk")
    assert registry.last_good(before=T0 + timedelta(hours=3)) == ids[1]
    assert registry.last_good("baseline", before=T0) is None


# --- evaluation ----------------------------------------------------------------------------


def naive_metrics(
    model: TrainedModel, train_m: sp.csr_matrix, holdout: sp.csr_matrix, k: int
) -> tuple[float, float, float]:
    recalls, ndcgs, shown = [], [], set()
    for user in range(holdout.shape[0]):
        seen = set(train_m[user].indices.tolist()) if user < train_m.shape[0] else set()
        relevant = set(holdout[user].indices.tolist()) - seen
        if not relevant:
            continue
        ranked = top_k(model, np.array([user]), train_m, k).items[0].tolist()
        ranked = [i for i in ranked if i >= 0]
        shown.update(ranked)
        hits = [i in relevant for i in ranked]
        recalls.append(sum(hits) / min(k, len(relevant)))
        dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        ndcgs.append(dcg / idcg)
    return float(np.mean(recalls)), float(np.mean(ndcgs)), len(shown) / model.n_items


def test_evaluate_matches_a_per_user_loop(matrix: sp.csr_matrix) -> None:
    rng = np.random.default_rng(5)
    coo = matrix.tocoo()
    held = rng.random(coo.nnz) < 0.2
    train_m = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=matrix.shape)
    holdout = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=matrix.shape)
    model = train(ALS, train_m)
    metrics = evaluate(model, train_m, holdout, 10, holdout_start="a", holdout_end="b")
    recall, ndcg, coverage = naive_metrics(model, train_m, holdout, 10)
    assert metrics.recall == pytest.approx(recall)
    assert metrics.ndcg == pytest.approx(ndcg)
    assert metrics.coverage == pytest.approx(coverage)
    assert metrics.n_users == len(set(holdout.nonzero()[0].tolist()))
    assert (metrics.k, metrics.holdout_start, metrics.holdout_end) == (10, "a", "b")
    # 10 picks among ~50 unseen items of the own block: about 0.2; random lists get ~0.03
    assert metrics.recall > 0.1


def test_evaluate_hand_example() -> None:
    # Popularity model scores items 3 > 2 > 1 > 0; user 0 saw item 3 in training.
    model = TrainedModel(
        ModelSpec("popularity"),
        np.ones((2, 1), np.float32),
        np.array([[0], [1], [2], [3]], np.float32),
        np.array([0, 1, 2, 3], np.int64),
    )
    train_m = sp.csr_matrix(np.array([[0, 0, 0, 1], [0, 0, 0, 0]], np.float32))
    holdout = sp.csr_matrix(np.array([[1, 1, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0]], np.float32))
    metrics = evaluate(model, train_m, holdout, 2)
    # user 0: list [2, 1], relevant {0, 1} -> 1 hit at rank 1: recall 1/2,
    #         NDCG (1/log2 3) / (1 + 1/log2 3)
    # user 1: list [3, 2], relevant {1} -> 0
    # user 2 (unknown to the model): popularity [3, 2], relevant {0} -> 0
    assert metrics.n_users == 3 and metrics.n_unknown_users == 1
    assert metrics.recall == pytest.approx(0.5 / 3)
    assert metrics.ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)) / 3)
    assert metrics.coverage == pytest.approx(3 / 4)


def test_evaluate_with_no_relevant_users_is_undefined(matrix: sp.csr_matrix) -> None:
    metrics = evaluate(train(ALS, matrix), matrix, matrix, 5)
    assert metrics.n_users == 0 and math.isnan(metrics.recall)


# --- stability -----------------------------------------------------------------------------


def naive_rbo(a: list[int], b: list[int], p: float) -> float:
    k = len(a)
    overlap = [len(set(a[:d]) & set(b[:d]) - {-1}) for d in range(1, k + 1)]
    total = sum(overlap[d - 1] / d * p**d for d in range(1, k + 1))
    return overlap[-1] / k * p**k + (1 - p) / p * total


def test_rbo_and_jaccard_known_values() -> None:
    same = np.array([[1, 2, 3, 4]])
    assert rbo(same, same).tolist() == pytest.approx([1.0])
    assert jaccard_at_k(same, same).tolist() == [1.0]
    disjoint = np.array([[5, 6, 7, 8]])
    assert rbo(same, disjoint).tolist() == [0.0]
    assert jaccard_at_k(same, disjoint).tolist() == [0.0]
    swapped = np.array([[2, 1, 3, 4]])
    # X_1 = 0, X_d = d afterwards: (1-p)/p (p^2 + p^3 + p^4) + p^4
    p = 0.9
    assert rbo(same, swapped, p).tolist() == pytest.approx([(1 - p) / p * (p**2 + p**3 + p**4)
                                                            + p**4])  # fmt: skip
    padded = np.array([[1, 2, -1, -1]])
    assert jaccard_at_k(same, padded).tolist() == [0.5]
    empty = np.array([[-1, -1]])
    assert rbo(empty, empty).tolist() == [1.0] and jaccard_at_k(empty, empty).tolist() == [1.0]


def test_rbo_matches_the_definition_on_random_lists() -> None:
    rng = np.random.default_rng(2)
    a = np.array([rng.choice(30, 10, replace=False) for _ in range(50)])
    b = np.array([rng.choice(30, 10, replace=False) for _ in range(50)])
    expected = [naive_rbo(x.tolist(), y.tolist(), 0.9) for x, y in zip(a, b, strict=True)]
    assert rbo(a, b).tolist() == pytest.approx(expected)


def test_diff_versions(saved: tuple[Registry, str, TrainedModel], matrix: sp.csr_matrix) -> None:
    registry, vid, _ = saved
    other_id = registry.save(
        train(replace(ALS, seed=9), matrix),
        provenance_for(
            matrix, name="candidate",
            metrics=ValidationMetrics(20, 0.3, 0.1, 0.5, 150, 3, "2024-04-30", "2024-05-01"),
        ),
    )  # fmt: skip
    a, b = registry.load(vid), registry.load(other_id)
    users = np.arange(0, N_USERS, 2)
    itself = diff_versions(a, a, users, matrix, 10)
    assert itself.jaccard_mean == 1.0
    assert itself.rbo_mean == pytest.approx(1.0)
    assert itself.recall_delta == 0.0
    diff = diff_versions(a, b, users, matrix, 10)
    assert diff.recall_delta == pytest.approx(0.05)
    assert diff.ndcg_delta == pytest.approx(-0.1)
    assert diff.coverage_delta == pytest.approx(0.1)
    assert 0.0 < diff.jaccard_mean < 1.0 and 0.0 < diff.rbo_mean < 1.0
    unevaluated = (b[0], replace(b[1], metrics=None))
    assert diff_versions(a, unevaluated, users, matrix, 10).recall_delta is None


# --- real data (skipped without the MovieLens files) ---------------------------------------


@pytest.mark.skipif(not MOVIELENS.is_file(), reason="MovieLens latest-small not available")
def test_movielens_time_split_warm_start_round_trip(tmp_path: Path) -> None:
    import polars as pl

    ratings = pl.read_csv(MOVIELENS).sort("timestamp")
    users = ratings["userId"].to_numpy()
    items = ratings["movieId"].to_numpy()
    # dense ids in order of first appearance, so later users/items get higher ids
    _, user_first = np.unique(users, return_index=True)
    user_ids = np.empty(users.max() + 1, np.int64)
    user_ids[users[np.sort(user_first)]] = np.arange(user_first.size)
    _, item_first = np.unique(items, return_index=True)
    item_ids = np.empty(items.max() + 1, np.int64)
    item_ids[items[np.sort(item_first)]] = np.arange(item_first.size)
    u, i = user_ids[users], item_ids[items]
    cut = int(0.9 * u.size)

    def window(lo: int, hi: int) -> sp.csr_matrix:
        shape = (int(u[:hi].max()) + 1, int(i[:hi].max()) + 1)
        ones = np.ones(hi - lo, np.float32)
        out = sp.csr_matrix((ones, (u[lo:hi], i[lo:hi])), shape=shape)
        out.data[:] = 1.0
        return out

    before, everything = window(0, cut), window(0, u.size)
    base = train(ModelSpec("als", factors=16, iterations=5, alpha=10.0), before)
    update_users, update_items = active_ids(window(cut, u.size))
    child = warm_start(base, everything, update_users, update_items)
    assert child.n_users == everything.shape[0] > base.n_users
    assert child.n_items == everything.shape[1] > base.n_items
    registry = Registry(tmp_path)
    vid = registry.save(child, provenance_for(everything, name="ml"))
    loaded, _ = registry.load(vid, data=everything)
    sample = np.arange(0, child.n_users, 7)
    assert np.array_equal(
        top_k(loaded, sample, everything, 20).items, top_k(child, sample, everything, 20).items
    )
