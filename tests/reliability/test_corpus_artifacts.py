"""Corrupt and mismatched model artifacts through ``Registry.load``: one line each, naming
the file, what is wrong and the fix (the reader's own corruptions are in
``tests/unit/models``; these are the ones a person or a hostile file would produce)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from artifacts import (
    FACTORS_FILE,
    PROVENANCE_FILE,
    npy_bytes,
    npz_members,
    register,
    tiny_model,
    write_npz,
)

from replay.errors import UserInputError
from replay.registry import Registry

FIX = "fix: re-register the version with Registry.save, or delete its directory"


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[Registry, str, str]:
    registry, first = register(tmp_path / "registry", tiny_model(0))
    _, second = register(tmp_path / "registry", tiny_model(1), name="candidate")
    return registry, first, second


def _swap_factors(registry: Registry, first: str, _second: str) -> None:
    path = registry.path(first) / FACTORS_FILE
    members = npz_members(path)
    members["user_factors.npy"], members["item_factors.npy"] = (
        members["item_factors.npy"],
        members["user_factors.npy"],
    )
    write_npz(path, members)


def _other_factors(registry: Registry, first: str, second: str) -> None:
    shutil.copy(registry.path(second) / FACTORS_FILE, registry.path(first) / FACTORS_FILE)


def _other_provenance(registry: Registry, first: str, second: str) -> None:
    shutil.copy(registry.path(second) / PROVENANCE_FILE, registry.path(first) / PROVENANCE_FILE)


def _big_endian(registry: Registry, first: str, _second: str) -> None:
    path = registry.path(first) / FACTORS_FILE
    members = npz_members(path)
    members["user_factors.npy"] = npy_bytes(tiny_model(0).user_factors.astype(">f4"))
    write_npz(path, members)


def _pickled(registry: Registry, first: str, _second: str) -> None:
    path = registry.path(first) / FACTORS_FILE
    members = npz_members(path)
    objects = np.empty(3, dtype=object)
    objects[:] = [{}, {}, {}]
    members["item_popularity.npy"] = npy_bytes(objects)
    write_npz(path, members)


def _half_copied(registry: Registry, first: str, _second: str) -> None:
    path = registry.path(first) / FACTORS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


CASES: dict[str, tuple[Callable[[Registry, str, str], None], str, str]] = {
    # name: (corruption, file named, message after "<file>: ")
    "swapped factor arrays": (
        _swap_factors,
        FACTORS_FILE,
        f"user_factors has shape (9, 3) but provenance.json says (12, 3); {FIX}",
    ),
    "factors of another version": (
        _other_factors,
        FACTORS_FILE,
        "content hash 619242f0 does not match the version's {hash} (factors or provenance "
        f"changed after registration); {FIX}",
    ),
    "provenance of another version": (
        _other_provenance,
        PROVENANCE_FILE,
        "version_id is '{second}' but the file sits under '{first}' (moved or copied by "
        f"hand); {FIX}",
    ),
    "big-endian factors": (
        _big_endian,
        FACTORS_FILE,
        f"array 'user_factors' must be 2-D float32, got 2-D >f4; {FIX}",
    ),
    "pickled object array": (
        _pickled,
        FACTORS_FILE,
        "not a readable .npz archive (ValueError: Object arrays cannot be loaded when "
        f"allow_pickle=False); {FIX}",
    ),
    "half-copied archive": (
        _half_copied,
        FACTORS_FILE,
        f"not a readable .npz archive (BadZipFile: File is not a zip file); {FIX}",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_corrupt_artifact_is_one_line(name: str, two_versions: tuple[Registry, str, str]) -> None:
    registry, first, second = two_versions
    corrupt, file, message = CASES[name]
    corrupt(registry, first, second)
    with pytest.raises(UserInputError) as caught:
        registry.load(first)
    expected = message.format(first=first, second=second, hash=first[-8:])
    assert str(caught.value) == f"{registry.path(first) / file}: {expected}"


def test_version_trained_on_other_data_is_one_line(
    two_versions: tuple[Registry, str, str],
) -> None:
    registry, first, _ = two_versions
    other = sp.csr_matrix(np.eye(12, 9, dtype=np.float32))
    with pytest.raises(UserInputError) as caught:
        registry.load(first, data=other)
    text = str(caught.value)
    assert text.startswith(f"{registry.path(first) / PROVENANCE_FILE}: data_fingerprint ")
    assert "does not match the given interaction matrix" in text
    assert text.endswith("fix: pass the matrix the version was trained on")
