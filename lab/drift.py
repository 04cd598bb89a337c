"""Drift between what the models were trained on and the live traffic they serve.

Two distributions, each compared with PSI (10 quantile bins of the reference, ε = 1e-4) and
a two-sample KS test (DESIGN section 4):

* **item popularity** — reference: the training popularity (interactions before time zero)
  of the item behind every training interaction; live: the training popularity of the items
  live users consume on their own (sampled from the live world's truth for a sample of
  requests; for replayed logs, the logged events).  When live users turn to items that were
  rare in training (popularity drift, new items), PSI rises.  Clicks on shown lists are not
  used: they mostly measure what the model chose to show.
* **user activity** — reference: the history length of the user behind every training
  interaction; live: the history length of the user behind every live request.  A surge of
  new or light users shows here.

PSI is also computed per analysis window for item popularity; a window above 0.2 (the usual
"significant shift" threshold) is an alert on the timeline.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from sim.metrics.drift import PSIResult, ks_two_sample, population_stability_index, psi_on_bins
from sim.wording import drift_status

__all__ = ["ALERT_PSI", "drift_summary"]

ALERT_PSI = 0.2
_MAX_SAMPLE = 200_000


def _sample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Subsample very large inputs for KS (PSI uses everything); deterministic via ``rng``."""
    if values.size <= _MAX_SAMPLE:
        return values
    return rng.choice(values, _MAX_SAMPLE, replace=False)


def _compare(
    reference: np.ndarray, live: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, Any], PSIResult | None]:
    """The block of one distribution, and its PSI bins (for the windows) when it has them."""
    block: dict[str, Any]
    if reference.size < 10 or live.size < 10:
        block = {
            "psi": None,
            "ks_statistic": None,
            "ks_p_value": None,
            "live_samples": int(live.size),
            # Too few samples to judge: no alert either way, and the status says so.
            "alert": None,
            "status": drift_status(None, ALERT_PSI, None),
        }
        return block, None
    psi = population_stability_index(reference.astype(np.float64), live.astype(np.float64))
    ks = ks_two_sample(
        _sample(reference, rng).astype(np.float64), _sample(live, rng).astype(np.float64)
    )
    block = {
        "psi": round(float(psi.psi), 6),
        "ks_statistic": round(float(ks.statistic), 6),
        "ks_p_value": float(f"{ks.pvalue:.6g}"),
        "live_samples": int(live.size),
        "alert": bool(psi.psi > ALERT_PSI),
        # alert / small shift / ok: PSI decides the size, KS qualifies (sim.wording).
        "status": drift_status(float(psi.psi), ALERT_PSI, float(ks.pvalue)),
    }
    return block, psi


def drift_summary(
    *,
    history_items: np.ndarray,
    history_users: np.ndarray,
    item_popularity: np.ndarray,
    history_counts: np.ndarray,
    users: np.ndarray,
    consumed_t_s: np.ndarray,
    consumed_items: np.ndarray,
    window_edges_s: list[float],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The ``drift`` block of ``summary.json``.

    The reference is binned once: every window's PSI reuses the run's bins (the same
    numbers as binning it again, at the cost of the window alone).
    """
    reference_items = item_popularity[history_items]
    live_items = item_popularity[consumed_items]
    items_block, bins = _compare(reference_items, live_items, rng)
    users_block, _ = _compare(history_counts[history_users], history_counts[users], rng)
    click_times = consumed_t_s
    windows = []
    bounds = [0.0, *window_edges_s]
    for lo, hi in itertools.pairwise(bounds):
        mask = (click_times >= lo) & (click_times < hi)
        if mask.sum() < 50:
            continue
        if bins is None:  # a reference too small for bins has no window PSI either
            bins = population_stability_index(
                reference_items.astype(np.float64), live_items[mask].astype(np.float64)
            )
        psi = psi_on_bins(bins, live_items[mask].astype(np.float64))
        windows.append(
            {
                "t_start_s": lo,
                "t_end_s": hi,
                "item_popularity_psi": round(float(psi.psi), 6),
                "alert": bool(psi.psi > ALERT_PSI),
            }
        )
    return {
        "item_popularity": items_block,
        "user_activity": users_block,
        "windows": windows,
        "alert_threshold_psi": ALERT_PSI,
    }
