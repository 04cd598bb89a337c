"""Off-policy estimates of each version from a log that carries logging propensities.

When ``traffic.log.columns`` maps ``propensity`` (the probability the logging policy had of
showing the logged item) and ``reward`` (e.g. a click), every logged row of the replay window
is an impression of the logging policy.  Each version is then evaluated on it, without
simulation (``sim.metrics.offpolicy``):

* **replay** (Li et al. 2011): mean reward over the rows where the version's top item is the
  logged item;
* **IPS** and **self-normalised IPS**: importance weights ``π(a|x) / μ(a|x)`` with the
  version's policy taken as uniform over its top-K list, ``π(a|x) = 1/K`` for a listed item
  and 0 otherwise, and ``μ`` the logged propensity;
* **slate logs** (``columns.position`` mapped: one row per item shown at a position, as in
  the Open Bandit Dataset): the version's policy is its ranking, ``π(a at k | x) = 1`` when
  the version puts ``a`` at position ``k``; IPS and SNIPS per position and per slate
  (:func:`sim.metrics.slate_estimates`).  Positions are ranked densely from the smallest
  value in the log (0- or 1-based logs alike); a slate is the rows of one user at one
  timestamp.

Slate logs with 0/1 rewards also fit a position-based click model
(:mod:`sim.metrics.click_model`: examination per position, attractiveness per item, by EM),
reported with its fit against the position-blind model, and each version gets the
*direct* value of its ranking under that model (expected clicks per slate) beside the
importance-weighted ones: two ways to the same quantity, which agree when the model holds.

Nothing is dropped silently.  Rows of the replay window that cannot be used are counted under
a reason in ``accounting.excluded`` (``invalid_propensity``, ``invalid_reward``,
``unknown_user``, ``unknown_item``, ``invalid_position``).  Rows whose target policy is not
defined — the version has no list for the user (an empty top-K: every item already consumed)
or, for slates, no item at the logged position — are excluded per version and counted under
``excluded.empty_target_list`` / ``excluded.position_beyond_list``: a policy that shows
nothing is no probability distribution over items, and counting those rows as reward 0
reported IPS = 0 on a log where most lists were empty.

The rows are read straight from the file (the canonical event table keeps only the columns
every log has), keyed to the dense ids through the table's raw-id mapping, and restricted to
the replay window with the same timestamp rules as the readers.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from lab.logged_exposure import logged_block
from replay.distributions import norm_sf
from replay.errors import UserInputError
from replay.events import EventTable
from replay.obd import user_expr
from replay.validation import decide_timestamp_mode, timestamp_us_expr
from sim.metrics.click_model import ClickModelFit, direct_value_at, fit_position_based
from sim.metrics.offpolicy import (
    OffPolicyEstimate,
    ips_estimate,
    replay_estimate,
    slate_estimates,
    snips_estimate,
)
from sim.stats import Z95

__all__ = ["LoggedImpressions", "offpolicy_block", "read_logged_impressions"]

UNIFORM_TARGET = "uniform over the version's top-K list (1/K per listed item)"
RANKING_TARGET = "the version's ranking: the item it puts at the logged position (slates)"
CLICK_MODEL_BASIS = (
    "position-based click model P(click) = examination(position) x attractiveness(item), "
    "fitted by EM on the slate log's rows; examination relative to the top position; "
    "intervals: percentiles of a bootstrap over slates"
)


@dataclass
class LoggedImpressions:
    """Replay-window rows: dense user, item, reward and propensity [n].

    ``position`` (dense, 0 = top) and ``slate`` (one id per user and timestamp) for slate
    logs; ``propensity`` is ``None`` for a long-form impression log (positions and clicks
    only: the click model, no off-policy estimate); ``accounting``: rows of the window read
    and the ones excluded, by reason.
    """

    user: np.ndarray
    item: np.ndarray
    reward: np.ndarray
    propensity: np.ndarray | None
    position: np.ndarray | None = None
    slate: np.ndarray | None = None
    accounting: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.user.size)


def _scan(path: Path, *, as_text: bool = False) -> pl.LazyFrame:
    """The log's columns; ``as_text`` reads a CSV's columns as text, as the event reader
    does for the Open Bandit Dataset (so that the joined user features match its ids)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.scan_parquet(path)
    if suffix in (".ndjson", ".jsonl", ".json"):
        return pl.scan_ndjson(path)
    if as_text:
        return pl.scan_csv(path, infer_schema=False)
    return pl.scan_csv(path, infer_schema_length=10_000)


def read_logged_impressions(
    path: str,
    table: EventTable,
    columns: dict[str, str | None],
    window: tuple[datetime, datetime],
    *,
    timestamp_unit: str,
    source: str,
    user_features: tuple[str, ...] | None = None,
) -> LoggedImpressions:
    """The replay window's rows with reward and propensity or position, keyed to the table's
    dense ids.

    ``columns`` maps ``user``, ``item``, ``timestamp``, ``reward`` and ``propensity`` and/or
    ``position`` to the log's column names.  Without a propensity (a long-form impression
    log: one row per shown item with its position and whether it was clicked), the reward
    must be 0 or 1; other rows are counted as ``invalid_reward``.

    ``user_features`` (the Open Bandit Dataset, :mod:`replay.obd`): the user of a row is the
    profile of these columns instead of a ``user`` column.  A propensity outside (0, 1] is
    refused (:class:`UserInputError`: the column holds no probabilities); a missing or
    unreadable one is counted as ``invalid_propensity``.
    """
    file = Path(path)
    roles = ("user", "item", "timestamp", "propensity", "reward", "position")
    wanted = {role: name for role in roles if (name := columns.get(role)) is not None}
    if user_features is not None:
        wanted.pop("user", None)
    selected = [pl.col(c).alias(role) for role, c in wanted.items()]
    if user_features is not None:
        selected.append(user_expr(user_features).alias("user"))
    try:
        raw = _scan(file, as_text=user_features is not None).select(selected).collect()
    except (OSError, pl.exceptions.PolarsError) as exc:
        mapped = ", ".join(f".{role}" for role in wanted if role not in ("user", "item"))
        raise UserInputError(
            f"{file}: cannot read the off-policy columns ({type(exc).__name__}); "
            f"traffic.log.columns{mapped} must name columns of the log"
        ) from None
    mode = decide_timestamp_mode(
        raw["timestamp"].drop_nulls().head(1_000),
        timestamp_unit,  # type: ignore[arg-type]
        source=str(file),
        column=wanted["timestamp"],
    )
    if "propensity" in wanted:
        _check_propensities(raw, file, wanted["propensity"])
    start_us = int(window[0].timestamp() * 1e6)
    end_us = int(window[1].timestamp() * 1e6)
    slates = "position" in wanted
    weighted = "propensity" in wanted
    rows = raw.with_columns(
        timestamp_us_expr("timestamp", raw.schema["timestamp"], mode).alias("ts_us"),
        *([pl.col("propensity").cast(pl.Float64, strict=False)] if weighted else []),
        pl.col("reward").cast(pl.Float64, strict=False),
        pl.col("user").cast(table.user_ids.dtype, strict=False),
        pl.col("item").cast(table.item_ids.dtype, strict=False),
        *([pl.col("position").cast(pl.Int64, strict=False)] if slates else []),
    ).filter((pl.col("ts_us") >= start_us) & (pl.col("ts_us") < end_us))
    users = pl.DataFrame({"user": table.user_ids, "u": np.arange(table.n_users, dtype=np.int64)})
    items = pl.DataFrame({"item": table.item_ids, "i": np.arange(table.n_items, dtype=np.int64)})
    in_window = rows.height
    rows = rows.join(users, on="user", how="left").join(items, on="item", how="left")
    # Each excluded row under the first reason that applies, in this order.
    valid_reward = pl.col("reward").is_finite() if weighted else pl.col("reward").is_in([0.0, 1.0])
    checks = {
        **(
            {
                "invalid_propensity": ~(
                    pl.col("propensity").is_finite()
                    & (pl.col("propensity") > 0)
                    & (pl.col("propensity") <= 1)
                ).fill_null(False)
            }
            if weighted
            else {}
        ),
        "invalid_reward": ~valid_reward.fill_null(False),
        "unknown_user": pl.col("u").is_null(),
        "unknown_item": pl.col("i").is_null(),
    }
    if slates:
        checks["invalid_position"] = ~(pl.col("position") >= 0).fill_null(False)
    excluded: dict[str, int] = {}
    for reason, bad in checks.items():
        excluded[reason] = int(rows.select(bad.sum()).item())
        rows = rows.filter(~bad)
    accounting = {"rows_in_window": in_window, "kept": rows.height, "excluded": excluded}
    position = slate = None
    if slates:
        position = rows["position"].rank("dense").cast(pl.Int64).to_numpy() - 1
        keys = np.column_stack([rows["u"].to_numpy(), rows["ts_us"].to_numpy()])
        slate = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)
    return LoggedImpressions(
        rows["u"].to_numpy(),
        rows["i"].to_numpy(),
        rows["reward"].to_numpy(),
        rows["propensity"].to_numpy() if weighted else None,
        position=position,
        slate=slate,
        accounting=accounting,
    )


def _check_propensities(raw: pl.DataFrame, file: Path, column: str) -> None:
    """Refuse a propensity that is a number outside (0, 1]: a column of scores or
    percentages, not probabilities, would bias every estimate (nulls are counted later)."""
    value = pl.col("propensity").cast(pl.Float64, strict=False)
    bad = (
        raw.with_row_index("row")
        .filter(value.is_not_null() & ~(value.is_finite() & (value > 0) & (value <= 1)))
        .head(1)
    )
    if bad.height:
        row, shown = int(bad["row"][0]) + 1, bad["propensity"][0]
        raise UserInputError(
            f"{file}: column {column!r} (the logging propensity) must be a probability in "
            f"(0, 1], got {shown!r} in data row {row:,} (export the probability with which "
            "the logging policy showed the item, not a score or a percentage)"
        )


def _estimate(estimate: OffPolicyEstimate | None) -> dict[str, Any] | None:
    if estimate is None:
        return None

    def r(x: float) -> float | None:
        return None if not np.isfinite(x) else round(float(x), 6)

    return {
        "value": r(estimate.value),
        "ci95": [r(estimate.ci_low), r(estimate.ci_high)],
        "interval": estimate.interval,
        "n": estimate.n,
        "effective_n": r(estimate.effective_n),
    }


def _uniform(impressions: LoggedImpressions, shown: np.ndarray) -> dict[str, Any]:
    """Replay, IPS and SNIPS with the target uniform over the version's list."""
    assert impressions.propensity is not None
    k = (shown >= 0).sum(axis=1)
    listed = (shown == impressions.item[:, None]).any(axis=1)
    target = np.where(listed, 1.0 / np.maximum(k, 1), 0.0)
    reward, propensity = impressions.reward, impressions.propensity
    out: dict[str, Any] = {"replay": None, "ips": None, "snips": None}
    # Each estimator refuses (UserInputError) when nothing matches: that estimate is null.
    with suppress(UserInputError):
        out["replay"] = _estimate(replay_estimate(impressions.item, reward, shown[:, 0]))
    with suppress(UserInputError):
        out["ips"] = _estimate(ips_estimate(reward, propensity, target))
    with suppress(UserInputError):
        out["snips"] = _estimate(snips_estimate(reward, propensity, target))
    return out


def _ranking(impressions: LoggedImpressions, shown: np.ndarray) -> dict[str, Any]:
    """Replay, IPS and SNIPS per position and per slate with the version's ranking."""
    assert impressions.position is not None and impressions.slate is not None
    assert impressions.propensity is not None
    position = impressions.position
    at = shown[np.arange(position.size), position]
    target = (at == impressions.item).astype(np.float64)
    reward, propensity = impressions.reward, impressions.propensity
    out: dict[str, Any] = {"replay": None, "ips": None, "snips": None, "by_position": []}
    with suppress(UserInputError):
        out["replay"] = _estimate(replay_estimate(impressions.item, reward, at))
    with suppress(UserInputError):
        slate = slate_estimates(reward, propensity, target, position, impressions.slate)
        out["ips"] = _estimate(slate.ips_total)
        out["snips"] = _estimate(slate.snips_total)
        out["by_position"] = [
            {
                "position": p,
                "rows": int((position == p).sum()),
                "ips": _estimate(ips),
                "snips": _estimate(snips),
            }
            for p, ips, snips in zip(slate.positions, slate.ips, slate.snips, strict=True)
        ]
    return out


def _r6(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _click_model(impressions: LoggedImpressions, n_items: int) -> ClickModelFit | None:
    """The position-based click model of a slate log with 0/1 rewards (``None`` otherwise)."""
    reward = impressions.reward
    if impressions.position is None or impressions.slate is None or not len(impressions):
        return None
    if ((reward != 0) & (reward != 1)).any():
        return None
    return fit_position_based(
        impressions.position, impressions.item, reward, impressions.slate, n_items=n_items
    )


def _click_model_block(fit: ClickModelFit) -> dict[str, Any]:
    return {
        "model": "position_based",
        "basis": CLICK_MODEL_BASIS,
        "rows": fit.rows,
        "slates": fit.slates,
        "bootstrap": len(fit.replicates),
        "iterations": fit.model.iterations,
        "converged": fit.model.converged,
        "examination_relative": [_r6(x) for x in fit.model.relative_examination],
        "examination_relative_ci95": [[_r6(lo), _r6(hi)] for lo, hi in fit.relative_ci95],
        "log_likelihood": _r6(fit.log_likelihood),
        "position_blind_log_likelihood": _r6(fit.blind_log_likelihood),
        "perplexity_by_position": [_r6(x) for x in fit.perplexity],
        "position_blind_perplexity_by_position": [_r6(x) for x in fit.blind_perplexity],
        "likelihood_ratio": _r6(fit.likelihood_ratio),
        "p_value": _r6(fit.p_value),
    }


def _direct(
    fit: ClickModelFit, impressions: LoggedImpressions, table: np.ndarray
) -> dict[str, Any]:
    """Expected clicks per slate of the version's ranking under the fitted click model, over
    the log's slates at the positions each slate logged (each row's user's item at the row's
    position), with the bootstrap's percentile interval."""
    assert impressions.slate is not None and impressions.position is not None
    position = impressions.position
    inside = position < table.shape[1]
    shown = np.full(position.size, -1, dtype=np.int64)
    shown[inside] = table[impressions.user[inside], position[inside]]
    groups = np.unique(impressions.slate, return_inverse=True)[1].reshape(-1)
    value, unseen = direct_value_at(fit.model, shown, position, groups)
    replicated = [
        direct_value_at(model, shown, position, groups, weights)[0]
        for model, weights in zip(fit.replicates, fit.slate_weights, strict=True)
    ]
    low, high = np.percentile(replicated, [2.5, 97.5]) if len(replicated) >= 2 else (np.nan, np.nan)
    return {
        "value": _r6(value),
        "ci95": [_r6(low), _r6(high)],
        "slates": int(groups.max(initial=-1)) + 1,
        "unseen_items_share": _r6(unseen),
    }


def _inside(value: float | None, estimate: dict[str, Any] | None) -> bool | None:
    if value is None or estimate is None or None in estimate["ci95"]:
        return None
    low, high = estimate["ci95"]
    return bool(low <= value <= high)


def _difference(estimate: dict[str, Any] | None, direct: dict[str, Any]) -> dict[str, Any]:
    """``estimate − direct`` with a two-sided p-value of z = d / sqrt(se_e² + se_d²), each
    standard error taken from its 95 % interval's half-width / 1.96 (percentile bootstrap
    for the direct value)."""
    if estimate is None or estimate["value"] is None or None in estimate["ci95"]:
        return {"difference": None, "p_value": None}
    if None in direct["ci95"]:
        return {"difference": _r6(estimate["value"] - direct["value"]), "p_value": None}
    se = np.hypot(
        (estimate["ci95"][1] - estimate["ci95"][0]) / (2 * Z95),
        (direct["ci95"][1] - direct["ci95"][0]) / (2 * Z95),
    )
    d = float(estimate["value"] - direct["value"])
    p = float(2 * norm_sf(abs(d) / se)) if se > 0 else float(d == 0)
    return {"difference": _r6(d), "p_value": _r6(p)}


def _agreement(version: dict[str, Any]) -> dict[str, Any] | None:
    """Whether the click model's direct value and the importance-weighted estimates of the
    same quantity agree: the direct value inside the IPS and SNIPS intervals, and the test of
    a zero difference (``None`` where an estimate is missing)."""
    direct = version.get("direct")
    if direct is None or direct["value"] is None:
        return None
    ips, snips = version.get("ips"), version.get("snips")
    return {
        "ips_minus_direct": _difference(ips, direct),
        "snips_minus_direct": _difference(snips, direct),
        "direct_in_ips_ci95": _inside(direct["value"], ips),
        "direct_in_snips_ci95": _inside(direct["value"], snips),
    }


def _subset(impressions: LoggedImpressions, keep: np.ndarray) -> LoggedImpressions:
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[keep]

    return LoggedImpressions(
        impressions.user[keep],
        impressions.item[keep],
        impressions.reward[keep],
        cut(impressions.propensity),
        cut(impressions.position),
        cut(impressions.slate),
    )


def offpolicy_block(
    impressions: LoggedImpressions,
    lists: dict[str, np.ndarray],
    *,
    n_items: int | None = None,
) -> dict[str, Any]:
    """Per version (``lists``: name -> [n_users, K] items, rows of the impressions' users
    filled) the replay, IPS and SNIPS estimates, with the rows each one could use; and the
    logging policy's own engagement and exposure (``logged``, :mod:`lab.logged_exposure`)
    over a catalogue of ``n_items`` (default: the largest item id seen + 1)."""
    slates = impressions.position is not None
    out: dict[str, Any] = {
        "rows": len(impressions),
        "accounting": impressions.accounting,
        "logging_policy_mean_reward": round(float(impressions.reward.mean()), 6)
        if len(impressions)
        else None,
        "target_policy": (
            None if impressions.propensity is None else RANKING_TARGET if slates else UNIFORM_TARGET
        ),
        "slates": None
        if impressions.slate is None or impressions.position is None
        else {
            "slates": int(np.unique(impressions.slate).size),
            "positions": int(impressions.position.max(initial=-1)) + 1,
        },
        "logged": None,
        "click_model": None,
        "versions": {},
    }
    if len(impressions) == 0:
        return out
    seen = int(max([int(impressions.item.max()), *(int(t.max()) for t in lists.values())])) + 1
    n_items = max(n_items or 0, seen)
    fit = _click_model(impressions, n_items)
    if fit is not None:
        out["click_model"] = _click_model_block(fit)
    out["logged"] = logged_block(impressions, fit, n_items=n_items)
    for name, table in lists.items():
        shown = table[impressions.user]
        excluded = {"empty_target_list": int((shown < 0).all(axis=1).sum())}
        keep = (shown >= 0).any(axis=1)
        if impressions.position is not None:
            beyond = keep & (impressions.position >= shown.shape[1])
            excluded["position_beyond_list"] = int(beyond.sum())
            keep &= ~beyond
            if keep.any():
                at = shown[np.flatnonzero(keep), impressions.position[keep]]
                empty_slot = np.zeros_like(keep)
                empty_slot[np.flatnonzero(keep)[at < 0]] = True
                excluded["position_beyond_list"] += int(empty_slot.sum())
                keep &= ~empty_slot
        used = _subset(impressions, keep)
        version: dict[str, Any] = {"rows": len(used), "excluded": excluded}
        if len(used) and impressions.propensity is not None:
            estimate = _ranking if slates else _uniform
            version.update(estimate(used, shown[keep]))
        else:
            version.update(replay=None, ips=None, snips=None)
        if fit is not None:
            # Beside the importance-weighted estimates: the same quantity (expected clicks per
            # slate) computed directly from the click model the log fits.
            version["direct"] = _direct(fit, impressions, table)
            version["agreement"] = _agreement(version)
        out["versions"][name] = version
    return out
