"""How often a shown item is clicked, measured on a log, and the ``users.click_offset`` that
gives a fitted world the same level (``rollout-lab fit-world``).

The click level of a log, first rule that applies:

* **every row an impression with a 0/1 click flag** (the Open Bandit Dataset's ``click``, or
  a column named with ``fit-world --clicks``): clicks / rows;
* **impression and click events** (event types ``impression`` and ``click`` as separate
  rows): clicks / impressions;
* **clicks beside other event types** (views, ratings): clicks per logged event;
* otherwise none: a log of consumptions only says nothing about how often a shown item is
  clicked.  A log with impression events but neither click events nor a click column is
  refused: its click level is what it was asked for and cannot be told.

Simulated users click an examined item with probability sigmoid(a(u, i) + click_offset +
e_u) (``lab.versions.ClickTruth``; ``e_u`` the user's engagement,
``replay.synthetic.engagement_logits``).  The offset written is the one at which the items
users of the fitted world would consume on their own (users drawn by activity, items by
``replay.synthetic.sample_consumption``: the items a good recommender shows them) are
clicked, once examined, at the log's level:

    mean_{(u, i)} sigmoid(a(u, i) + e_u + o) = level      (solved for o, |o| <= 20)

The engagement term matters: its logit shift is centred, but the mean of a sigmoid is not,
so an offset solved without it left worlds with a heavy-tailed activity (the Open Bandit
Dataset's 240 profiles) clicking up to 1.5x the log's level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from replay.errors import UserInputError
from replay.synthetic import SyntheticWorld, engagement_logits, sample_consumption

__all__ = ["OFFSET_BOUND", "ClickLevel", "click_column_level", "click_offset", "event_click_level"]

#: The scenario's bounds on ``users.click_offset``.
OFFSET_BOUND = 20.0
#: (user, item) pairs the offset is solved on.
OFFSET_PAIRS = 20_000


@dataclass(frozen=True, slots=True)
class ClickLevel:
    """``clicks / shown``: the log's click level and what it was counted over (``basis``)."""

    clicks: int
    shown: int
    basis: str

    @property
    def rate(self) -> float:
        return self.clicks / self.shown


def event_click_level(
    event: npt.NDArray[np.str_] | None, *, rows_are_impressions: bool, source: str
) -> ClickLevel | None:
    """The click level from the log's event types (module docstring); ``rows_are_impressions``:
    every row is an impression and a ``click`` row is a clicked one (the Open Bandit Dataset)."""
    if event is None:
        return None
    kind = np.char.lower(event.astype(str))
    clicks = int((kind == "click").sum())
    if rows_are_impressions:
        return ClickLevel(clicks, int(kind.size), "clicked rows / rows (each row an impression)")
    impressions = int((kind == "impression").sum())
    if impressions and not clicks:
        raise UserInputError(
            f"{source}: records {impressions:,} impression events but no click events, so its "
            "click level cannot be told (pass --clicks COLUMN naming the 0/1 column that says "
            "whether each impression was clicked, or add the click events)"
        )
    if impressions:
        return ClickLevel(clicks, impressions, "click events / impression events")
    if clicks and clicks < kind.size:
        return ClickLevel(clicks, int(kind.size), "click events / all logged events")
    return None


def click_column_level(path: Path, column: str, *, fmt: str, source: str) -> ClickLevel:
    """The click level of a log whose rows are impressions with a 0/1 ``column``; a missing
    column or another value is refused (one line naming it)."""
    try:
        if fmt == "parquet":
            frame = pl.scan_parquet(path)
        elif fmt == "ndjson":
            frame = pl.scan_ndjson(path)
        elif fmt in ("csv", "obd"):
            frame = pl.scan_csv(path, infer_schema=False)
        else:
            raise UserInputError(
                f"{source}: --clicks needs a csv, parquet or ndjson log with a click column, "
                f"got a {fmt} log (drop --clicks)"
            )
        found = frame.collect_schema().names()
        if column not in found:
            shown = ", ".join(found[:10]) + (", ..." if len(found) > 10 else "")
            raise UserInputError(
                f"{source}: --clicks column {column!r} is missing (found {shown}; name the 0/1 "
                "column that says whether each impression was clicked)"
            )
        values = frame.select(pl.col(column).cast(pl.String).str.strip_chars()).collect()[column]
    except (OSError, pl.exceptions.PolarsError) as error:
        raise UserInputError(
            f"{source}: cannot read the --clicks column {column!r} ({type(error).__name__}; "
            "check the file)"
        ) from None
    flag = values.replace_strict(
        {"0": 0, "1": 1, "0.0": 0, "1.0": 1}, default=None, return_dtype=pl.Int64
    )
    bad = flag.is_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise UserInputError(
            f"{source}: --clicks column {column!r} must hold 0 or 1 in every row, got "
            f"{values[row]!r} in data row {row + 1:,} (fix the row or name another column)"
        )
    return ClickLevel(int(flag.sum()), int(flag.len()), f"{column} / rows (each row an impression)")


def click_offset(
    world: SyntheticWorld, level: float, *, rng: np.random.Generator, activity_engagement: float
) -> float:
    """The ``users.click_offset`` at which the world's organic (user, item) pairs are clicked
    at ``level`` once examined by users with ``users.activity_engagement`` (module
    docstring), within [−20, 20]."""
    share = world.activity / world.activity.sum()
    users = rng.choice(world.n_users, size=OFFSET_PAIRS, p=share)
    items = sample_consumption(world, users, rng=rng)
    affinity = world.affinity(users, items[:, None])[:, 0].astype(np.float64)
    affinity += engagement_logits(world.activity, activity_engagement)[users]

    def gap(offset: float) -> float:
        return float(np.mean(1.0 / (1.0 + np.exp(-(affinity + offset))))) - level

    if gap(-OFFSET_BOUND) >= 0:
        return -OFFSET_BOUND
    if gap(OFFSET_BOUND) <= 0:
        return OFFSET_BOUND
    from scipy.optimize import brentq  # slow to import: only when a world is fitted

    return float(brentq(gap, -OFFSET_BOUND, OFFSET_BOUND, xtol=1e-6))
