"""Fuzzing the artifact loader (Hypothesis): ``Registry.load`` on corrupted versions.

A tiny version is registered once; each example copies it into a fresh registry and
corrupts it: random byte flips, cuts and insertions in ``factors.npz``; archives rebuilt with
members dropped, renamed, duplicated or replaced by arrays of random dtype, shape and memory
order (object arrays included); ``.npy`` headers declaring other shapes; ``provenance.json``
with random values at random places, keys deleted and added, cut short or replaced by noise.
Property: the version loads with exactly the registered arrays, or ``load`` raises one-line
``UserInputError`` naming the version's folder.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifacts import (
    FACTORS_FILE,
    PROVENANCE_FILE,
    copy_version,
    npy_bytes,
    npy_header_only,
    npz_members,
    read_json,
    register,
    tiny_model,
    write_npz,
)
from fuzzing import FAST, LONG, attempt, describe
from hypothesis import given, note, settings
from hypothesis import strategies as st

from replay.errors import UserInputError
from replay.registry import Registry

MODEL = tiny_model()
_STORE = Path(tempfile.mkdtemp(prefix="rollout-lab-fuzz-registry-"))
atexit.register(shutil.rmtree, _STORE, ignore_errors=True)
SOURCE, VERSION = register(_STORE, MODEL)
ARRAYS = ("user_factors.npy", "item_factors.npy", "item_popularity.npy")

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        st.sampled_from(["als", "train", "2024-05-01T12:00:00Z", "baseline", "", "9" * 40]),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
#: Zip member names: anything but NUL (zipfile cuts a name at NUL; not the reader's business).
member_names = st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=8)
dtypes = st.sampled_from(["<f4", ">f4", "<f8", "<i8", "<i4", "|b1", "<U3", "<c8", "|u1", "O"])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out += _paths(child, (*prefix, i))
    return out


@st.composite
def random_array(draw: st.DrawFn) -> bytes:
    dtype = draw(dtypes)
    shape = tuple(draw(st.lists(st.integers(0, 14), max_size=3)))
    size = int(np.prod(shape)) if shape else 1
    if dtype == "O":
        array = np.empty(shape, dtype=object)
        array.reshape(-1)[:] = [{} for _ in range(size)]
    else:
        array = np.zeros(shape, dtype=np.dtype(dtype))
    if draw(st.booleans()) and array.ndim > 1:
        array = np.asfortranarray(array)
    return npy_bytes(array)


@st.composite
def corrupt_npz(draw: st.DrawFn, members: dict[str, bytes], raw: bytes) -> bytes | None:
    """New bytes for factors.npz, or None to rewrite the archive from ``members``."""
    kind = draw(st.sampled_from(["bytes", "members", "header", "noise"]))
    if kind == "noise":
        return draw(st.binary(max_size=300))
    if kind == "bytes":
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(data)))
            edit = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
            if edit == "flip" and at < len(data):
                data[at] ^= draw(st.integers(1, 255))
            elif edit == "cut":
                del data[at : at + draw(st.integers(1, 64))]
            elif edit == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=16))
            else:
                del data[at:]
        return bytes(data)
    name = draw(st.sampled_from(ARRAYS))
    if kind == "header":
        shape = tuple(draw(st.lists(st.integers(0, 2**40), min_size=1, max_size=3)))
        members[name] = npy_header_only(shape, draw(dtypes.filter(lambda d: d != "O")))
        return None
    action = draw(st.sampled_from(["drop", "rename", "replace", "extra"]))
    if action == "drop":
        members.pop(name)
    elif action == "rename":
        members[draw(member_names) + ".npy"] = members.pop(name)
    elif action == "replace":
        members[name] = draw(random_array())
    else:
        members[draw(member_names)] = draw(st.binary(max_size=50))
    return None


@st.composite
def corrupt_provenance(draw: st.DrawFn, text: str) -> str:
    kind = draw(st.sampled_from(["edit", "edit", "cut", "noise", "hostile"]))
    if kind == "noise":
        return draw(st.text(max_size=200))
    if kind == "cut":
        return text[: draw(st.integers(0, len(text)))]
    if kind == "hostile":
        return draw(
            st.sampled_from(
                [
                    "[" * 5000 + "]" * 5000,
                    '{"schema": ' + "9" * 5000 + "}",
                    text.replace('"n_users": 12', '"n_users": 1' + "0" * 30),
                    text.replace('"n_users": 12', '"n_users": -12'),
                    text.replace('"factors": 3', '"factors": 3.0'),
                    "null",
                    "NaN",
                ]
            )
        )
    document = json.loads(text)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        if not path:
            continue
        node = document
        for part in path[:-1]:
            node = node[part]
        if draw(st.booleans()):
            node[path[-1]] = draw(json_values)
        else:
            del node[path[-1]]
    return json.dumps(document)


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[str, Any]:
    folder = SOURCE.path(VERSION)
    target = draw(st.sampled_from([FACTORS_FILE, PROVENANCE_FILE, "both"]))
    new_npz: Any = None
    new_json = None
    if target in (FACTORS_FILE, "both"):
        members = npz_members(folder / FACTORS_FILE)
        raw = (folder / FACTORS_FILE).read_bytes()
        data = draw(corrupt_npz(members, raw))
        new_npz = data if data is not None else (members, draw(st.booleans()))
    if target in (PROVENANCE_FILE, "both"):
        new_json = draw(corrupt_provenance((folder / PROVENANCE_FILE).read_text()))
    return target, (new_npz, new_json)


def check_artifact(case: tuple[str, Any]) -> None:
    _target, (new_npz, new_json) = case
    note(describe(case))
    with tempfile.TemporaryDirectory() as root:
        registry = copy_version(SOURCE, VERSION, Path(root))
        folder = registry.path(VERSION)
        if isinstance(new_npz, bytes):
            (folder / FACTORS_FILE).write_bytes(new_npz)
        elif new_npz is not None:
            members, deflate = new_npz
            write_npz(folder / FACTORS_FILE, members, deflate=deflate)
        if new_json is not None:
            (folder / PROVENANCE_FILE).write_text(new_json, encoding="utf-8")
        loaded = attempt(lambda: registry.load(VERSION), names=(f"{folder}",))
    if loaded is not None:
        model, provenance = loaded
        # Whatever loads is the registered version, byte for byte.
        np.testing.assert_array_equal(model.user_factors, MODEL.user_factors)
        np.testing.assert_array_equal(model.item_factors, MODEL.item_factors)
        np.testing.assert_array_equal(model.item_popularity, MODEL.item_popularity)
        assert provenance.version_id == VERSION


def _fuzz(profile: settings) -> Callable[[], None]:
    @profile
    @given(corruptions())
    def fuzz(case: tuple[str, Any]) -> None:
        check_artifact(case)

    return fuzz


test_fuzz_artifact_loader = _fuzz(FAST)
test_fuzz_artifact_loader_long = pytest.mark.slow(_fuzz(LONG))


# --- regressions: bugs the fuzzers found, fixed ---------------------------------------------


def _load_after(tmp_path: Path, *, npz: dict[str, bytes] | None = None, text: str = "") -> None:
    registry = copy_version(SOURCE, VERSION, tmp_path / "registry")
    folder = registry.path(VERSION)
    if npz is not None:
        write_npz(folder / FACTORS_FILE, npz)
    if text:
        (folder / PROVENANCE_FILE).write_text(text, encoding="utf-8")
    try:
        registry.load(VERSION)
    except UserInputError:
        return
    except (MemoryError, RecursionError, ValueError) as exc:
        raise AssertionError(f"{type(exc).__name__} escaped: {exc}"[:300]) from exc
    raise AssertionError("a corrupt version loaded")


def test_npy_header_declaring_a_huge_shape_is_one_line(tmp_path: Path) -> None:
    members = npz_members(SOURCE.path(VERSION) / FACTORS_FILE)
    members["user_factors.npy"] = npy_header_only((10**12, 3))
    _load_after(tmp_path, npz=members)


def test_deeply_nested_provenance_is_one_line(tmp_path: Path) -> None:
    _load_after(tmp_path, text="[" * 100_000 + "]" * 100_000)


def test_provenance_with_a_huge_integer_is_one_line(tmp_path: Path) -> None:
    document = read_json(SOURCE.path(VERSION) / PROVENANCE_FILE)
    text = json.dumps(document).replace('"n_users": 12', '"n_users": 1' + "0" * 5000, 1)
    _load_after(tmp_path, text=text)


def test_registry_survives_the_fuzz_store() -> None:
    """The pristine copy every example starts from still loads (the fuzzers never edit it)."""
    model, _ = Registry(_STORE).load(VERSION)
    np.testing.assert_array_equal(model.user_factors, MODEL.user_factors)
