"""Figures through the artifact store: drawn once per distinct input, read back as drawn."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from replay.artifact_store import ArtifactStore
from reports.figure_cache import figure_store, stored_figure

drawn: list[tuple[object, ...]] = []


@stored_figure("probe")
def probe(frame: pl.DataFrame, label: str, value: float) -> str:
    drawn.append((frame.height, label, value))
    return f'<svg data-label="{label}">{frame.height} {value!r} é</svg>'


@pytest.fixture(autouse=True)
def _fresh() -> None:
    drawn.clear()


FRAME = pl.DataFrame({"bucket_s": [0.0, 60.0], "version": ["a", "b"], "p99_ms": [1.5, None]})


def test_a_figure_is_drawn_once_and_read_back_byte_for_byte(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with figure_store(store):
        first = probe(FRAME, "x", 0.1)
        second = probe(FRAME.clone(), "x", 0.1)
    assert first == second == probe(FRAME, "x", 0.1)  # the last one outside the store
    assert len(drawn) == 2  # once into the store, once without one
    assert store.misses == 1 and store.hits == 1


@pytest.mark.parametrize(
    "changed",
    [
        (FRAME.with_columns(pl.col("p99_ms").fill_null(2.0)), "x", 0.1),
        (FRAME, "y", 0.1),
        (FRAME, "x", math.nextafter(0.1, 1.0)),  # the next float up
        (FRAME, "x", math.nan),
        (FRAME.rename({"version": "name"}), "x", 0.1),
    ],
)
def test_any_changed_input_draws_again(
    tmp_path: Path, changed: tuple[pl.DataFrame, str, float]
) -> None:
    store = ArtifactStore(tmp_path)
    with figure_store(store):
        probe(FRAME, "x", 0.1)
        probe(*changed)
    assert len(drawn) == 2


def test_zero_and_negative_zero_are_different_inputs(tmp_path: Path) -> None:
    with figure_store(ArtifactStore(tmp_path)):
        assert probe(FRAME, "x", 0.0) != probe(FRAME, "x", -0.0)
    assert len(drawn) == 2
