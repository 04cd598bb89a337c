"""The logging policy's exposure and engagement, read from the log itself.

A log that records what was shown (rows of impressions, with positions for slates) and what
was clicked says how the policy that wrote it did, without simulating anything: its CTR is
clicks / impressions of the log's rows, its exposure the items those rows showed.  The
versions' CTR in a replay is simulated by the lab's click model; this block is the log's,
so that the two are never confused (``basis`` says which is which).

Per position (slate logs) the observed CTR is set beside the CTR the fitted position-based
model predicts there, the mean of θ_k α_i over the rows at k: how well the click model the
log fits reproduces the log, position by position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sim.metrics.click_model import ClickModelFit
from sim.metrics.diversity import gini
from sim.metrics.engagement import wilson_interval
from sim.stats import Z95

if TYPE_CHECKING:
    from lab.offpolicy_log import LoggedImpressions

__all__ = ["LOGGED_BASIS", "logged_block"]

LOGGED_BASIS = (
    "the log's own rows: the items its logging policy showed (at their logged positions) and "
    "the clicks they got; nothing simulated. Versions' CTR in the replay is simulated by the "
    "lab's click model"
)


def _r6(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def _rate(reward: np.ndarray) -> dict[str, Any]:
    """Mean reward with a 95 % interval: Wilson for 0/1 rewards, else normal."""
    n = int(reward.size)
    if n == 0:
        return {"impressions": 0, "clicks": 0, "ctr": None, "ctr_ci95": [None, None]}
    total = float(reward.sum())
    mean = total / n
    if np.isin(reward, (0.0, 1.0)).all():
        low, high = (float(v) for v in wilson_interval(total, n))
    else:
        half = Z95 * float(reward.std(ddof=1)) / np.sqrt(n) if n > 1 else float("nan")
        low, high = mean - half, mean + half
    return {
        "impressions": n,
        "clicks": _r6(total),
        "ctr": _r6(mean),
        "ctr_ci95": [_r6(low), _r6(high)],
    }


def logged_block(
    impressions: LoggedImpressions, fit: ClickModelFit | None, *, n_items: int
) -> dict[str, Any]:
    """The logging policy's engagement and exposure over ``impressions`` (see the module
    docstring); ``n_items``: the catalogue the coverage is taken of."""
    reward = impressions.reward
    out: dict[str, Any] = {"basis": LOGGED_BASIS, **_rate(reward)}
    slates = None if impressions.slate is None else int(np.unique(impressions.slate).size)
    out["slates"] = slates
    out["clicks_per_slate"] = _r6(float(reward.sum()) / slates) if slates else None
    shown = np.bincount(impressions.item, minlength=n_items).astype(np.float64)
    out["exposure"] = {
        "items_shown": int((shown > 0).sum()),
        "catalogue_items": n_items,
        "catalogue_coverage": _r6(float((shown > 0).mean())) if n_items else None,
        "exposure_gini": _r6(gini(shown)) if shown.sum() > 0 else None,
    }
    by_position: list[dict[str, Any]] = []
    if impressions.position is not None:
        position = impressions.position
        predicted = None
        if fit is not None:
            alpha = np.nan_to_num(fit.model.attractiveness[impressions.item])
            predicted = fit.model.examination[position] * alpha
        for k in np.unique(position):
            at = position == k
            cell = {"position": int(k), **_rate(reward[at])}
            cell["click_model_ctr"] = None if predicted is None else _r6(predicted[at].mean())
            by_position.append(cell)
    out["by_position"] = by_position
    return out
