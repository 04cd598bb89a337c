"""Versions from embeddings: user and item factors trained by any system, scored by the lab.

An embeddings artifact is a ``.npz`` file, or a folder of ``.npy`` files, holding::

    user_factors  float [n_u, d]   one row per user the system knows
    item_factors  float [n_i, d]   one row per item
    user_bias     float [n_u]      optional
    item_bias     float [n_i]      optional
    user_ids      int or str [n_u] optional: the id of each row (else row r is id r)
    item_ids      int or str [n_i] optional

A user's score for an item is ``user_factors[u] · item_factors[i] + user_bias[u] +
item_bias[i]``.  The factors are placed in the lab's id space and written as one
``TrainedModel`` whose extra columns carry the biases (``[x_u, b_u, 1] · [y_i, 1, b_i]``),
so the lab's own top-K search (``replay.topk``: chunked, pruned by norm bounds on large
catalogues, consumed items filtered) scores them like any version: decide once, simulate
many times, at the same speed whatever the version's origin.

Rows whose id the lab does not know are counted (``unknown_user_rows``,
``unknown_item_rows``); lab users without a row are served the version's declared fallback
(``covered_users`` says who has one); lab items without a row are never recommended (a
score penalty no real score reaches).  Arrays load with ``allow_pickle=False`` and their
declared sizes are checked before anything is inflated.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.array_files import check_declared_sizes, check_npy_file
from replay.errors import UserInputError
from replay.training import ModelSpec, TrainedModel

__all__ = ["ARRAYS", "EmbeddingVersion", "read_embeddings"]

ARRAYS = ("user_factors", "item_factors", "user_bias", "item_bias", "user_ids", "item_ids")
#: Added to the score of an item without an embedding: no real score comes near it, so the
#: item is never chosen while another is left (and it stays finite for the norm bounds).
MISSING_ITEM_PENALTY = -1.0e4


@dataclass(frozen=True, slots=True, eq=False)
class EmbeddingVersion:
    """The embeddings in the lab's id space, ready for ``replay.topk.top_k``."""

    model: TrainedModel
    covered_users: npt.NDArray[np.bool_]  # [n_users] has an embedding
    covered_items: npt.NDArray[np.bool_]  # [n_items]
    accounting: dict[str, int] = field(default_factory=dict)


def _fail(source: str, message: str) -> UserInputError:
    return UserInputError(f"{source}: {message}")


_FIX = "write it again with numpy.save / numpy.savez (see README, 'Bring your own model')"


def _load_arrays(path: Path, source: str) -> dict[str, npt.NDArray[Any]]:
    if path.is_dir():
        out = {}
        for name in ARRAYS:
            file = path / f"{name}.npy"
            if file.is_file():
                check_npy_file(file, fix=_FIX)
                out[name] = np.load(file, allow_pickle=False)
        return out
    if not path.is_file():
        raise _fail(source, "no such embeddings file or folder (check the path)")
    check_declared_sizes(path, fix=_FIX)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in data.files if name in ARRAYS}
    except (OSError, ValueError, EOFError, MemoryError, zipfile.BadZipFile) as exc:
        raise _fail(
            source, f"cannot read the embeddings ({type(exc).__name__}); fix: {_FIX}"
        ) from None


def _placement(
    ids: npt.NDArray[Any] | None, rows: int, known: pl.Series | None, n: int, role: str, source: str
) -> tuple[npt.NDArray[np.int64], int]:
    """Lab id of each row (-1 unknown), and how many rows are unknown."""
    if ids is None:
        lab = np.arange(rows, dtype=np.int64)
    else:
        if ids.ndim != 1 or ids.shape[0] != rows:
            raise _fail(
                source,
                f"{role}_ids must have one id per row of {role}_factors ({rows}), got shape "
                f"{ids.shape}",
            )
        if known is None:
            if ids.dtype.kind not in "iu":
                raise _fail(
                    source,
                    f"{role}_ids must be integers (the synthetic world's ids), got dtype "
                    f"{ids.dtype}",
                )
            lab = ids.astype(np.int64)
        else:
            mapping = pl.DataFrame(
                {"raw": known.cast(pl.String), "lab": np.arange(known.len(), dtype=np.int64)}
            )
            raw = pl.DataFrame({"raw": pl.Series(ids.astype(str))})
            joined = raw.join(mapping, on="raw", how="left", maintain_order="left")["lab"]
            lab = joined.fill_null(-1).to_numpy().astype(np.int64)
        if np.unique(lab[lab >= 0]).size != int((lab >= 0).sum()):
            raise _fail(source, f"{role}_ids must not repeat an id")
    lab = np.where((lab >= 0) & (lab < n), lab, -1)
    return lab, int((lab < 0).sum())


def read_embeddings(
    path: str | Path,
    *,
    n_users: int,
    n_items: int,
    item_popularity: npt.NDArray[np.int64],
    user_ids: pl.Series | None = None,
    item_ids: pl.Series | None = None,
    source: str | None = None,
    use_biases: bool = True,
) -> EmbeddingVersion:
    """Read and place an embeddings artifact (see the module docstring).

    ``user_ids`` / ``item_ids``: the raw id of every lab id when the lab's ids come from a
    replayed log; None when they are the integers ``0 .. n - 1``.  ``item_popularity``
    [n_items] orders the popularity fallback of users the embeddings do not know;
    ``use_biases=False`` ignores bias arrays (pure dot product).
    """
    file = Path(path)
    where = source or file.name
    arrays = _load_arrays(file, where)
    for name in ("user_factors", "item_factors"):
        if name not in arrays:
            raise _fail(where, f"array {name!r} not found (arrays: {', '.join(arrays) or 'none'})")
    users, items = arrays["user_factors"], arrays["item_factors"]
    for name, array in (("user_factors", users), ("item_factors", items)):
        if array.ndim != 2 or array.dtype.kind != "f":
            raise _fail(where, f"{name} must be a 2-D float array, got {array.dtype} {array.shape}")
        if not np.isfinite(array).all():
            raise _fail(where, f"{name} must hold finite numbers only (found NaN or infinity)")
    if users.shape[1] != items.shape[1]:
        raise _fail(
            where,
            f"user_factors and item_factors must have the same width, got {users.shape[1]} and "
            f"{items.shape[1]}",
        )
    biases = {}
    for role, rows in (("user", users.shape[0]), ("item", items.shape[0])):
        bias = arrays.get(f"{role}_bias") if use_biases else None
        if bias is None:
            biases[role] = np.zeros(rows, np.float32)
            continue
        if bias.shape != (rows,) or bias.dtype.kind != "f" or not np.isfinite(bias).all():
            raise _fail(
                where,
                f"{role}_bias must be {rows} finite floats (one per row of {role}_factors), got "
                f"{bias.dtype} {bias.shape}",
            )
        biases[role] = bias.astype(np.float32)
    user_lab, unknown_users = _placement(
        arrays.get("user_ids"), users.shape[0], user_ids, n_users, "user", where
    )
    item_lab, unknown_items = _placement(
        arrays.get("item_ids"), items.shape[0], item_ids, n_items, "item", where
    )
    d = users.shape[1]
    placed_users = np.zeros((n_users, d + 2), np.float32)
    placed_items = np.zeros((n_items, d + 2), np.float32)
    placed_items[:, d] = 1.0  # pairs with each user's bias
    placed_items[:, d + 1] = MISSING_ITEM_PENALTY
    keep = user_lab >= 0
    placed_users[user_lab[keep], :d] = users[keep]
    placed_users[user_lab[keep], d] = biases["user"][keep]
    placed_users[:, d + 1] = 1.0  # pairs with each item's bias
    keep_items = item_lab >= 0
    placed_items[item_lab[keep_items], :d] = items[keep_items]
    placed_items[item_lab[keep_items], d + 1] = biases["item"][keep_items]
    covered_users = np.zeros(n_users, bool)
    covered_users[user_lab[keep]] = True
    covered_items = np.zeros(n_items, bool)
    covered_items[item_lab[keep_items]] = True
    model = TrainedModel(
        spec=ModelSpec(algorithm="external", factors=d + 2, seed=0),
        user_factors=placed_users,
        item_factors=placed_items,
        item_popularity=np.asarray(item_popularity, dtype=np.int64),
    )
    accounting = {
        "user_rows": int(users.shape[0]),
        "item_rows": int(items.shape[0]),
        "unknown_user_rows": unknown_users,
        "unknown_item_rows": unknown_items,
        "users_without_embedding": int(n_users - covered_users.sum()),
        "items_without_embedding": int(n_items - covered_items.sum()),
    }
    return EmbeddingVersion(model, covered_users, covered_items, accounting)
