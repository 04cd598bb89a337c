"""A tiny registered model version to corrupt, and tools to rewrite its files."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from replay.registry import FACTORS_FILE, PROVENANCE_FILE, Provenance, Registry
from replay.training import ModelSpec, TrainedModel

CREATED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def tiny_model(seed: int = 0, n_users: int = 12, n_items: int = 9) -> TrainedModel:
    rng = np.random.default_rng(seed)
    return TrainedModel(
        ModelSpec("als", factors=3, iterations=2, seed=seed),
        rng.standard_normal((n_users, 3)).astype(np.float32),
        rng.standard_normal((n_items, 3)).astype(np.float32),
        rng.integers(0, 50, n_items).astype(np.int64),
        0.5,
    )


def register(root: Path, model: TrainedModel, name: str = "baseline") -> tuple[Registry, str]:
    registry = Registry(root)
    provenance = Provenance(
        name=name,
        created_at=CREATED,
        train_start="2024-04-01T00:00:00+00:00",
        train_end="2024-04-30T00:00:00+00:00",
        data_fingerprint="ab" * 32,
    )
    return registry, registry.save(model, provenance)


def copy_version(source: Registry, version: str, root: Path) -> Registry:
    """A fresh registry under ``root`` holding a copy of ``version``."""
    target = Registry(root)
    destination = target.path(version)
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source.path(version), destination)
    return target


def npz_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_npz(path: Path, members: Mapping[str, bytes], *, deflate: bool = False) -> None:
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def npy_bytes(array: np.ndarray[Any, Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def npy_header_only(shape: tuple[int, ...], descr: str = "<f4", tail: int = 64) -> bytes:
    """An .npy member whose header declares ``shape`` but holds only ``tail`` zero bytes."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\0" * tail


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = [
    "CREATED",
    "FACTORS_FILE",
    "PROVENANCE_FILE",
    "copy_version",
    "npy_bytes",
    "npy_header_only",
    "npz_members",
    "read_json",
    "register",
    "tiny_model",
    "write_npz",
]
