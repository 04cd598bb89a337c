"""Versions from Python code: a recommender the user wrote, behind a small typed protocol.

A scenario names it as ``plugin = "package.module:factory"`` (``options`` are passed to the
factory as keyword arguments).  **This runs the user's code**: it is an explicit opt-in,
never implied by any other setting, and the factory is imported only when a run needs it.

The object the factory returns implements::

    fit(interactions)             interactions: scipy.sparse.csr_matrix [n_users, n_items]
                                  of float32 weights (the lab's ids), the training window
    recommend(user_ids, k)        user_ids: int64 [n]; returns (items int [n, k], scores
                                  float [n, k]), best first; -1 pads a short list
    update(new_interactions)      optional: a warm start on what happened since ``fit``

Decide once, simulate many times: the lab asks for every traffic user's list once, in
batches, before the simulation; what the plugin returns is checked (shapes, dtypes, ids in
range, finite scores, no item twice in a list) and every mistake is one line naming the
plugin and the fix.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from replay.errors import UserInputError

__all__ = ["PluginLists", "Recommender", "load_plugin", "plugin_lists"]

#: Users per ``recommend`` call: bounded memory whatever the plugin does per batch.
BATCH_USERS = 4096


@runtime_checkable
class Recommender(Protocol):
    """What a plugin's factory must return (``update`` is optional)."""

    def fit(self, interactions: sp.csr_matrix) -> None: ...

    def recommend(
        self, user_ids: npt.NDArray[np.int64], k: int
    ) -> tuple[npt.ArrayLike, npt.ArrayLike]: ...


@dataclass(frozen=True, slots=True, eq=False)
class PluginLists:
    """Lists a plugin gave for ``users`` (int64 [n]): items int32 [n, k], scores float32."""

    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]


def _cut(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


@contextmanager
def _cwd_on_path() -> Iterator[None]:
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def load_plugin(spec: str, options: dict[str, Any] | None = None, *, source: str) -> Recommender:
    """Import ``package.module:factory`` and call it with ``options``; check the protocol."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UserInputError(
            f"{source}: plugin must look like 'package.module:factory', got {_cut(spec)!r}"
        )
    try:
        # Like ``python -m``: a package in the folder the command runs from is found.
        with _cwd_on_path():
            module = importlib.import_module(module_name)
    except Exception as exc:  # the user's code: any failure to import is theirs to fix
        raise UserInputError(
            f"{source}: plugin module {module_name!r} cannot be imported "
            f"({type(exc).__name__}: {_cut(str(exc))}; is it on PYTHONPATH?)"
        ) from None
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise UserInputError(
            f"{source}: plugin {spec!r}: module {module_name!r} has no callable {attribute!r}"
        )
    try:
        model = factory(**(options or {}))
    except Exception as exc:
        raise UserInputError(
            f"{source}: plugin {spec!r} failed to start ({type(exc).__name__}: {_cut(str(exc))})"
        ) from None
    missing = [name for name in ("fit", "recommend") if not callable(getattr(model, name, None))]
    if missing:
        raise UserInputError(
            f"{source}: plugin {spec!r} returned an object without "
            f"{' and '.join(f'{name}()' for name in missing)} "
            "(see README, 'Bring your own model')"
        )
    return model  # type: ignore[no-any-return]


def call_plugin(source: str, what: str, action: Any, *args: Any) -> Any:
    """Run one call into the user's code; its failures are theirs to fix (one line)."""
    try:
        return action(*args)
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(
            f"{source}: plugin {what} failed ({type(exc).__name__}: {_cut(str(exc))})"
        ) from None


def plugin_lists(
    model: Recommender,
    users: npt.NDArray[np.int64],
    *,
    k: int,
    n_items: int,
    source: str,
) -> PluginLists:
    """Ask the plugin for the lists of ``users`` (ascending, unique), checked and batched."""
    items = np.full((users.size, k), -1, np.int32)
    scores = np.full((users.size, k), np.nan, np.float32)
    for lo in range(0, users.size, BATCH_USERS):
        batch = users[lo : lo + BATCH_USERS]
        raw = call_plugin(source, "recommend()", model.recommend, batch.copy(), k)
        got_items, got_scores = _checked(raw, batch.size, k, n_items, source)
        items[lo : lo + batch.size] = got_items
        scores[lo : lo + batch.size] = got_scores
    return PluginLists(users, items, scores)


def _checked(
    raw: Any, n: int, k: int, n_items: int, source: str
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    if not (isinstance(raw, tuple) and len(raw) == 2):
        raise UserInputError(
            f"{source}: plugin recommend() must return (items, scores), got {type(raw).__name__}"
        )
    try:
        items = np.asarray(raw[0])
        scores = np.asarray(raw[1], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserInputError(
            f"{source}: plugin recommend() must return numeric arrays (items, scores)"
        ) from None
    for name, array in (("items", items), ("scores", scores)):
        if array.ndim != 2 or array.shape[0] != n or array.shape[1] > k:
            raise UserInputError(
                f"{source}: plugin recommend() {name} must have shape ({n}, <= {k}) for {n} "
                f"users and k={k}, got {array.shape}"
            )
    if items.shape != scores.shape:
        raise UserInputError(
            f"{source}: plugin recommend() items and scores must have the same shape, got "
            f"{items.shape} and {scores.shape}"
        )
    if items.dtype.kind not in "iu":
        raise UserInputError(
            f"{source}: plugin recommend() items must be integer item ids, got dtype {items.dtype}"
        )
    shown = items >= 0
    if (items[shown] >= n_items).any() or (items < -1).any():
        bad = int(items[(items >= n_items) | (items < -1)][0])
        raise UserInputError(
            f"{source}: plugin recommend() returned item {bad}, outside the catalogue "
            f"[0, {n_items}) (-1 pads a short list)"
        )
    if not np.isfinite(scores[shown]).all():
        raise UserInputError(f"{source}: plugin recommend() returned a non-finite score")
    ordered = np.sort(np.where(shown, items, -1 - np.arange(items.shape[1])), axis=1)
    if (ordered[:, 1:] == ordered[:, :-1]).any():
        raise UserInputError(f"{source}: plugin recommend() returned an item twice in one list")
    out_items = np.full((n, k), -1, np.int32)
    out_scores = np.full((n, k), np.nan, np.float32)
    out_items[:, : items.shape[1]] = np.where(shown, items, -1)
    out_scores[:, : items.shape[1]] = np.where(shown, scores, np.nan)
    return out_items, out_scores
