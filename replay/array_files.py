"""Checks on ``.npy`` / ``.npz`` files before numpy inflates them.

A ``.npz`` is a zip of ``.npy`` members; each member's header declares a shape and a dtype.
Before anything is loaded, the declared size (``prod(shape) * itemsize``) must equal the
bytes the member holds, and a member must not inflate absurdly from its compressed size (a
zip bomb).  Arrays of Python objects are refused by ``np.load(allow_pickle=False)`` itself.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from replay.errors import UserInputError

__all__ = ["check_declared_sizes", "check_npy_file", "declared_arrays"]

#: A member may inflate to this many times its compressed size only when it is small:
#: float32 factors barely compress (about 1.1x), a zip bomb inflates a thousandfold.
MAX_INFLATION = 50
#: Members up to this size are never suspected of being bombs (64 MiB).
SMALL_MEMBER_BYTES = 64 * 1024 * 1024


def _header(stream: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[np.generic]]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, _order, dtype = np.lib.format.read_array_header_1_0(stream)
    else:
        shape, _order, dtype = np.lib.format.read_array_header_2_0(stream)
    return shape, dtype


def _declared(shape: tuple[int, ...], dtype: np.dtype[np.generic]) -> int:
    return int(np.prod(shape, dtype=object)) * dtype.itemsize


def check_declared_sizes(path: Path, *, fix: str) -> None:
    """Every ``.npy`` member of the archive ``path`` holds what its header declares."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                if info.file_size > SMALL_MEMBER_BYTES and info.file_size > MAX_INFLATION * max(
                    info.compress_size, 1
                ):
                    raise UserInputError(
                        f"{path}: array {info.filename[:-4]!r} would inflate from "
                        f"{info.compress_size:,} to {info.file_size:,} bytes (a damaged or "
                        f"crafted archive); fix: {fix}"
                    )
                with archive.open(info) as member:
                    shape, dtype = _header(member)
                    header = member.tell()
                if dtype.hasobject:
                    continue  # refused by np.load(allow_pickle=False) with its own message
                declared = _declared(shape, dtype)
                if declared != info.file_size - header:
                    raise UserInputError(
                        f"{path}: array {info.filename[:-4]!r} declares shape {shape} "
                        f"({declared:,} bytes) but holds {info.file_size - header:,}; fix: {fix}"
                    )
    except UserInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UserInputError(
            f"{path}: not a readable .npz archive ({type(error).__name__}: {error}); fix: {fix}"
        ) from None


def check_npy_file(path: Path, *, fix: str) -> None:
    """The ``.npy`` file ``path`` holds what its header declares (and no Python objects)."""
    try:
        with open(path, "rb") as handle:
            shape, dtype = _header(handle)
            header = handle.tell()
    except (OSError, ValueError, EOFError) as error:
        raise UserInputError(
            f"{path}: not a readable .npy array ({type(error).__name__}); fix: {fix}"
        ) from None
    if dtype.hasobject:
        raise UserInputError(
            f"{path}: holds Python objects; only numeric and string arrays are read; fix: {fix}"
        )
    declared = _declared(shape, dtype)
    stored = path.stat().st_size - header
    if declared != stored:
        raise UserInputError(
            f"{path}: declares shape {shape} ({declared:,} bytes) but holds {stored:,}; fix: {fix}"
        )


def declared_arrays(path: Path) -> dict[str, tuple[tuple[int, ...], int]]:
    """``{name: (shape, itemsize)}`` of the arrays a ``.npz`` file or a folder of ``.npy``
    files declares, read from their headers only (nothing is inflated); ``{}`` when they
    cannot be read (the reader reports that itself, with a better message)."""
    out: dict[str, tuple[tuple[int, ...], int]] = {}
    try:
        if path.is_dir():
            for file in sorted(path.glob("*.npy")):
                with open(file, "rb") as handle:
                    shape, dtype = _header(handle)
                out[file.stem] = (shape, dtype.itemsize)
            return out
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as member:
                        shape, dtype = _header(member)
                    out[info.filename[:-4]] = (shape, dtype.itemsize)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return {}
    return out
