"""The synthetic world's history as a log: what another system trains on.

``rollout-lab world export`` writes the interactions before time zero that the lab's own
versions learn from, one row each, in the lab's ids (integers ``0 .. n - 1``)::

    user       int64     the lab's user id
    item       int64     the lab's item id
    timestamp  datetime  UTC, microseconds (time zero is the end of the update window)
    window     string    "train" (what a version without a parent trains on) or "update"
                         (what updates see on top of it)

A model trained on the rows of ``window = "train"`` sees what the lab's baseline sees; its
lists or embeddings, written in the same ids, come back as a version of the same world
(``[models.NAME] topk`` / ``embeddings``), and the world's latent truth decides clicks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from lab.pipeline import seeded_streams
from lab.scenario import Scenario
from lab.sources import build_source
from replay.artifact_store import ArtifactStore
from replay.errors import UserInputError

__all__ = ["history_log"]


def history_log(
    scenario: Scenario,
    *,
    window: str = "train",
    source: str = "scenario",
    base_dir: Path | None = None,
    store: ArtifactStore | None = None,
) -> pl.DataFrame:
    """The history before time zero (``window``: "train" or "all"), sorted by time."""
    if scenario.traffic.source != "synthetic":
        raise UserInputError(
            f"{source}: traffic.source is {scenario.traffic.source!r}; world export writes a "
            "synthetic world's history (a replayed log is already a file: train on it)"
        )
    built = build_source(scenario, seeded_streams(scenario.seed), source=source, store=store)
    offsets = built.history_offsets_s
    assert offsets is not None  # a synthetic world's history has its times
    update_start, zero = built.windows["update"]
    update_s = (zero - update_start).total_seconds()
    in_update = offsets >= -update_s
    keep = np.ones(offsets.size, bool) if window == "all" else ~in_update
    order = np.argsort(offsets[keep], kind="stable")
    micros = np.round(offsets[keep][order] * 1e6).astype(np.int64)
    frame = pl.DataFrame(
        {
            "user": built.history_users[keep][order].astype(np.int64),
            "item": built.history_items[keep][order].astype(np.int64),
            "timestamp": pl.Series(micros).cast(pl.Duration("us")),
            "window": np.where(in_update[keep][order], "update", "train"),
        }
    )
    start = zero.replace(tzinfo=None)
    return frame.with_columns(
        (pl.lit(start) + pl.col("timestamp")).dt.replace_time_zone("UTC").alias("timestamp")
    )
