"""Report figures through the artifact store: a figure drawn once is read, not drawn again.

A figure's SVG is a pure function of what it is drawn from (its arguments: aggregates of
the run and parts of the summary), the drawing code and the libraries that draw it.  While
a report renders inside :func:`figure_store`, every function decorated with
:func:`stored_figure` looks its SVG up in the store under

    sha256 of (the figure's name, its arguments as canonical JSON, ``figures_code``)

and draws it only when the entry is absent.  A rerun of the same run (same scenario, seed
and code) draws nothing and never loads matplotlib; a run whose numbers differ anywhere a
figure reads misses and draws.  The stored text is the very SVG a fresh drawing makes, so a
report is byte-identical whether its figures were drawn or read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ParamSpec

import polars as pl

from lab.artifacts import hash_library_versions
from replay.artifact_store import Artifact, ArtifactStore, entry_key

__all__ = ["KIND", "figure_store", "figures_code", "stored_figure"]

KIND = "figure"
#: The modules that draw figures, relative to the repository root.
_DRAWING = ("reports/figures.py", "reports/svg.py", "reports/figure_cache.py", "sim/stats.py")
_LIBRARIES = ("matplotlib", "numpy", "polars")

_STORE: ContextVar[ArtifactStore | None] = ContextVar("figure_store", default=None)

P = ParamSpec("P")


@functools.cache
def figures_code() -> str:
    """sha256 of the drawing modules' source and the drawing libraries' versions."""
    digest = hashlib.sha256(b"rollout-lab figures v1\0")
    root = Path(__file__).resolve().parents[1]
    for name in _DRAWING:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    hash_library_versions(digest, _LIBRARIES)
    return digest.hexdigest()


@contextmanager
def figure_store(store: ArtifactStore | None) -> Iterator[None]:
    """Figures drawn inside this block go through ``store`` (None: drawn every time)."""
    token = _STORE.set(store)
    try:
        yield
    finally:
        _STORE.reset(token)


def _plain(value: Any) -> Any:
    """``value`` as JSON values that tell every distinct input apart (floats by ``repr``)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinities, and 0.0 and -0.0 draw differently.
        return value if math.isfinite(value) and value != 0.0 else {"float": repr(value)}
    if isinstance(value, dict):
        return {"dict": [[_plain(k), _plain(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    frame = _frame(value)
    if frame is not None:
        return frame
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and getattr(value, "shape", None) == ():
        return _plain(item())
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist):
        return {"array": str(getattr(value, "dtype", "")), "values": _plain(tolist())}
    raise TypeError(f"a figure's argument of type {type(value).__name__} has no stored form")


def _frame(value: Any) -> dict[str, Any] | None:
    """A polars DataFrame as its schema and rows (None for anything else)."""
    if not isinstance(value, pl.DataFrame):
        return None
    schema = [[name, str(dtype)] for name, dtype in value.schema.items()]
    return {"frame": schema, "rows": _plain(value.rows())}


def stored_figure(name: str) -> Callable[[Callable[P, str]], Callable[P, str]]:
    """Decorate a figure function (arguments -> SVG text) to go through the active store."""

    def decorate(draw: Callable[P, str]) -> Callable[P, str]:
        @functools.wraps(draw)
        def through_store(*args: P.args, **kwargs: P.kwargs) -> str:
            store = _STORE.get()
            if store is None:
                return draw(*args, **kwargs)
            try:
                text = json.dumps(
                    [_plain(list(args)), _plain(dict(sorted(kwargs.items())))],
                    separators=(",", ":"),
                )
            except TypeError:  # an argument with no stored form: drawn, not stored
                return draw(*args, **kwargs)
            key = entry_key(
                KIND,
                {
                    "code": figures_code(),
                    "figure": name,
                    "arguments": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                },
            )

            def build() -> Artifact:
                import numpy as np

                svg = draw(*args, **kwargs).encode("utf-8")
                return Artifact({"svg": np.frombuffer(svg, dtype=np.uint8)})

            return bytes(store.fetch(KIND, key, build).arrays["svg"]).decode("utf-8")

        return through_store

    return decorate
