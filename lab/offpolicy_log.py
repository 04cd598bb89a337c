"""Off-policy estimates of each version from a log that carries logging propensities.

When ``traffic.log.columns`` maps ``propensity`` (the probability the logging policy had of
showing the logged item) and ``reward`` (e.g. a click), every logged row of the replay window
is an impression of the logging policy.  Each version is then evaluated on it, without
simulation, three ways (``sim.metrics.offpolicy``):

* **replay** (Li et al. 2011): mean reward over the rows where the version's top item is the
  logged item;
* **IPS** and **self-normalised IPS**: importance weights ``π(a|x) / μ(a|x)`` with the
  version's policy taken as uniform over its top-K list, ``π(a|x) = 1/K`` for a listed item
  and 0 otherwise, and ``μ`` the logged propensity.

The rows are read straight from the file (the canonical event table keeps only the columns
every log has), keyed to the dense ids through the table's raw-id mapping, and restricted to
the replay window with the same timestamp rules as the readers.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from replay.errors import UserInputError
from replay.events import EventTable
from replay.validation import decide_timestamp_mode, timestamp_us_expr
from sim.metrics.offpolicy import OffPolicyEstimate, ips_estimate, replay_estimate, snips_estimate

__all__ = ["LoggedImpressions", "offpolicy_block", "read_logged_impressions"]


class LoggedImpressions:
    """Replay-window rows with a propensity: dense user, item, reward and propensity."""

    def __init__(
        self, user: np.ndarray, item: np.ndarray, reward: np.ndarray, propensity: np.ndarray
    ):
        self.user = user
        self.item = item
        self.reward = reward
        self.propensity = propensity

    def __len__(self) -> int:
        return int(self.user.size)


def _scan(path: Path) -> pl.LazyFrame:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.scan_parquet(path)
    if suffix in (".ndjson", ".jsonl", ".json"):
        return pl.scan_ndjson(path)
    return pl.scan_csv(path, infer_schema_length=10_000)


def read_logged_impressions(
    path: str,
    table: EventTable,
    columns: dict[str, str],
    window: tuple[datetime, datetime],
    *,
    timestamp_unit: str,
    source: str,
) -> LoggedImpressions:
    """The replay window's rows with propensity and reward, keyed to the table's dense ids."""
    file = Path(path)
    wanted = {role: columns[role] for role in ("user", "item", "timestamp", "propensity", "reward")}
    try:
        raw = _scan(file).select([pl.col(c).alias(role) for role, c in wanted.items()]).collect()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise UserInputError(
            f"{file}: cannot read the propensity and reward columns ({type(exc).__name__}); "
            "traffic.log.columns.propensity and .reward must name columns of the log"
        ) from None
    mode = decide_timestamp_mode(
        raw["timestamp"].drop_nulls().head(1_000),
        timestamp_unit,  # type: ignore[arg-type]
        source=str(file),
        column=wanted["timestamp"],
    )
    start_us = int(window[0].timestamp() * 1e6)
    end_us = int(window[1].timestamp() * 1e6)
    users = pl.DataFrame({"user": table.user_ids, "u": np.arange(table.n_users, dtype=np.int64)})
    items = pl.DataFrame({"item": table.item_ids, "i": np.arange(table.n_items, dtype=np.int64)})
    rows = (
        raw.with_columns(
            timestamp_us_expr("timestamp", raw.schema["timestamp"], mode).alias("ts_us"),
            pl.col("propensity").cast(pl.Float64, strict=False),
            pl.col("reward").cast(pl.Float64, strict=False),
            pl.col("user").cast(table.user_ids.dtype, strict=False),
            pl.col("item").cast(table.item_ids.dtype, strict=False),
        )
        .filter(
            (pl.col("ts_us") >= start_us)
            & (pl.col("ts_us") < end_us)
            & pl.col("propensity").is_finite()
            & (pl.col("propensity") > 0)
            & (pl.col("propensity") <= 1)
            & pl.col("reward").is_finite()
        )
        .join(users, on="user", how="inner")
        .join(items, on="item", how="inner")
    )
    return LoggedImpressions(
        rows["u"].to_numpy(),
        rows["i"].to_numpy(),
        rows["reward"].to_numpy(),
        rows["propensity"].to_numpy(),
    )


def _estimate(estimate: OffPolicyEstimate) -> dict[str, Any]:
    def r(x: float) -> float | None:
        return None if not np.isfinite(x) else round(float(x), 6)

    return {
        "value": r(estimate.value),
        "ci95": [r(estimate.ci_low), r(estimate.ci_high)],
        "n": estimate.n,
        "effective_n": r(estimate.effective_n),
    }


def offpolicy_block(impressions: LoggedImpressions, lists: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per version (``lists``: name -> [n_users, K] items) the replay, IPS and SNIPS estimates."""
    out: dict[str, Any] = {
        "rows": len(impressions),
        "logging_policy_mean_reward": round(float(impressions.reward.mean()), 6)
        if len(impressions)
        else None,
        "target_policy": "uniform over the version's top-K list (1/K per listed item)",
        "versions": {},
    }
    if len(impressions) == 0:
        return out
    for name, table in lists.items():
        shown = table[impressions.user]
        k = np.maximum((shown >= 0).sum(axis=1), 1)
        listed = (shown == impressions.item[:, None]).any(axis=1)
        target = np.where(listed, 1.0 / k, 0.0)
        version: dict[str, Any] = {"replay": None, "ips": None, "snips": None}
        # Each estimator refuses (UserInputError) when nothing matches; that estimate is null.
        with suppress(UserInputError):
            version["replay"] = _estimate(
                replay_estimate(impressions.item, impressions.reward, shown[:, 0])
            )
        with suppress(UserInputError):
            version["ips"] = _estimate(
                ips_estimate(impressions.reward, impressions.propensity, target)
            )
        with suppress(UserInputError):
            version["snips"] = _estimate(
                snips_estimate(impressions.reward, impressions.propensity, target)
            )
        out["versions"][name] = version
    return out
