"""replay.artifact_store: atomic entries, one build under concurrency, LRU eviction, safety."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from replay.artifact_store import Artifact, ArtifactStore, entry_key

KEY = entry_key("model", {"x": 1})


def artifact(n: int = 10, value: float = 1.0) -> Artifact:
    return Artifact({"a": np.full(n, value), "b": np.arange(n, dtype=np.int32)}, {"note": "x"})


def test_keys_depend_on_every_input_and_nothing_else() -> None:
    assert entry_key("model", {"x": 1, "y": [1, 2]}) == entry_key("model", {"y": [1, 2], "x": 1})
    assert entry_key("model", {"x": 1}) != entry_key("model", {"x": 2})
    assert entry_key("model", {"x": 1}) != entry_key("world", {"x": 1})
    assert entry_key("model", {"x": 1}) != entry_key("model", {"x": 1.5})


def test_saved_entries_load_with_the_same_bits(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "cache")
    assert store.load("model", KEY) is None
    original = artifact()
    assert store.save("model", KEY, original)
    loaded = store.load("model", KEY)
    assert loaded is not None and loaded.meta == {"note": "x"}
    for name, array in original.arrays.items():
        assert loaded.arrays[name].dtype == array.dtype
        assert np.array_equal(loaded.arrays[name], array)
    assert (tmp_path / "cache" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f59")
    assert not list((tmp_path / "cache" / "model").glob("*.tmp"))


def test_fetch_builds_once_then_loads(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    calls = []

    def build() -> Artifact:
        calls.append(1)
        return artifact()

    store.fetch("model", KEY, build)
    store.fetch("model", KEY, build)
    assert len(calls) == 1 and (store.misses, store.hits) == (1, 1)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"not a zip"),
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: p.rename(p.with_name(entry_key("model", {"other": 1}) + ".npz")),
    ],
    ids=["garbage", "truncated", "another-key"],
)
def test_damaged_or_misplaced_entries_are_misses_and_are_rebuilt(
    tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    store = ArtifactStore(tmp_path)
    store.save("model", KEY, artifact())
    damage(store.path("model", KEY))
    for path in (tmp_path / "model").glob("*.npz"):
        assert store.load("model", path.stem) is None
    rebuilt = store.fetch("model", KEY, artifact)
    assert np.array_equal(rebuilt.arrays["a"], np.ones(10))
    assert store.load("model", KEY) is not None


def test_links_are_not_followed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere.npz"
    ArtifactStore(tmp_path / "other").save("model", KEY, artifact())
    (tmp_path / "other" / "model" / f"{KEY}.npz").rename(elsewhere)
    (tmp_path / "cache" / "model").mkdir(parents=True)
    os.symlink(elsewhere, store.path("model", KEY))
    assert store.load("model", KEY) is None
    assert elsewhere.exists()  # a link's target is never touched


def test_eviction_removes_least_recently_used_entries_only(tmp_path: Path) -> None:
    one = artifact(100_000).nbytes
    store = ArtifactStore(tmp_path, max_bytes=int(2.5 * one))
    keys = [entry_key("model", {"i": i}) for i in range(3)]
    store.save("model", keys[0], artifact(100_000))
    store.save("model", keys[1], artifact(100_000))
    past = time.time() - 100
    os.utime(store.path("model", keys[1]), (past, past))  # keys[1] is the oldest now
    foreign = tmp_path / "model" / "notes.txt"
    foreign.write_text("mine")
    store.save("model", keys[2], artifact(100_000))
    assert store.load("model", keys[1]) is None
    assert store.load("model", keys[0]) is not None and store.load("model", keys[2]) is not None
    assert foreign.read_text() == "mine"


def test_an_unwritable_store_degrades_to_building(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = ArtifactStore(blocker / "cache")  # cannot be created under a file
    assert not store.save("model", KEY, artifact())
    assert np.array_equal(store.fetch("model", KEY, artifact).arrays["a"], np.ones(10))


def _build_in_process(root: str, marker: str) -> None:
    store = ArtifactStore(Path(root))

    def build() -> Artifact:
        with open(marker, "a", encoding="ascii") as handle:
            handle.write("built\n")
        time.sleep(0.5)
        return artifact(1000, 7.0)

    got = store.fetch("model", KEY, build)
    assert float(got.arrays["a"][0]) == 7.0


def test_two_processes_needing_one_entry_build_it_once(tmp_path: Path) -> None:
    marker = tmp_path / "builds.txt"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_build_in_process, args=(str(tmp_path / "c"), str(marker)))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert marker.read_text().count("built") == 1
