"""Engagement by item popularity bucket, and the worst group across users and items.

Buckets split the catalogue into thirds by training popularity (users per item in the
history before time zero, the popularity every quality metric uses): items ranked by
popularity, most popular first, ties by item id; the first third is ``head``, the next
``torso``, the rest ``tail`` (bucket = ⌊3 · rank / n_items⌋, so sizes differ by at most one).

Per bucket and assigned version (intention to treat, like CTR), item-level:

* ``impressions``: list slots showing an item of the bucket (lists the user saw; an
  abandoned list is an impression without a click, as in CTR);
* ``clicks``: clicks on items of the bucket; ``ctr`` = clicks / impressions with a Wilson
  interval — clicks per shown item, so its scale is about a list's CTR divided by the
  positions a user looks at;
* ``abandon_rate``: share of the bucket's impressions that were in abandoned lists;
* ``hit_at_k``: share of requests whose list holds an item of the bucket that the user
  consumed next (observed, replayed logs) or the probability of it (expected, synthetic
  truth; see :mod:`reports.exposure`); the three buckets add up to the list's hit@K when a
  list holds at most one hit;
* ``candidate_vs_baseline``: item CTR difference with a normal 95 % interval (item
  impressions treated as independent) and relative lift.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from reports.exposure import HitMethod
from reports.numbers import num, pair
from reports.quality import RequestColumns, hit_rates
from sim import metrics
from sim.stats import Z95

__all__ = ["BUCKETS", "BUCKET_BASIS", "bucket_block", "popularity_buckets", "worst_group"]

BUCKETS = ("head", "torso", "tail")
BUCKET_BASIS = (
    "thirds of the catalogue by training popularity (users per item before time zero), most "
    "popular first, ties by item id; item-level engagement by assigned version"
)
_NONE = len(BUCKETS)  # code of an empty slot


def popularity_buckets(popularity: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Bucket code per item [n_items]: 0 head, 1 torso, 2 tail (see module docstring)."""
    pop = np.asarray(popularity)
    n = pop.shape[0]
    order = np.argsort(-pop, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return np.asarray(rank * len(BUCKETS) // max(n, 1), dtype=np.uint8)


def _rules(bucket: npt.NDArray[np.uint8], popularity: npt.ArrayLike) -> dict[str, str]:
    pop = np.asarray(popularity)
    out = {}
    for code, name in enumerate(BUCKETS):
        mine = pop[bucket == code]
        out[name] = (
            f"{mine.size} items, {int(mine.min())}-{int(mine.max())} users each"
            if mine.size
            else "no items"
        )
    return out


def _difference(clicks_b: float, n_b: float, clicks_c: float, n_c: float) -> dict[str, Any] | None:
    if n_b <= 0 or n_c <= 0:
        return None
    pb, pc = clicks_b / n_b, clicks_c / n_c
    d = pc - pb
    se = float(np.sqrt(pb * (1 - pb) / n_b + pc * (1 - pc) / n_c))
    # Both rates 0 (or both 1) make the normal interval collapse to a point: say nothing.
    return {
        "difference": num(d),
        "difference_ci95": pair(d - Z95 * se, d + Z95 * se) if se > 0 else [None, None],
        "relative_lift": num(pc / pb - 1.0) if pb > 0 else None,
    }


def bucket_block(
    columns: RequestColumns,
    items: npt.ArrayLike,
    popularity: npt.ArrayLike,
    *,
    baseline: str,
    candidate: str,
    hit_slots: npt.ArrayLike | None = None,
    hit: npt.ArrayLike | None = None,
    hit_method: HitMethod | None = None,
) -> dict[str, Any]:
    """Engagement by item popularity bucket (see module docstring) and the worst bucket.

    ``items`` int32 [n, K] is the list each request showed (:func:`reports.exposure.
    shown_lists`); ``popularity`` [n_items]; ``hit_slots`` [n, K] and ``hit`` [n] as in
    :class:`reports.exposure.Exposure` (None without truth); ``columns`` needs
    ``click_pos``.  ``worst`` is the bucket with the lowest candidate − baseline item-CTR
    difference (null when either version showed nothing).
    """
    if columns.click_pos is None:
        raise ValueError("bucket_block needs the click_pos column")
    lists = np.asarray(items, dtype=np.int32)
    pop = np.asarray(popularity)
    bucket = popularity_buckets(pop)
    pad = np.append(bucket, np.uint8(_NONE))
    slot = pad[lists].astype(np.int64)  # [n, K]; -1 items pick the padding code
    nv, nb = len(columns.names), _NONE + 1
    key = columns.version[:, None] * nb + slot
    size = nv * nb
    shown = np.bincount(key.ravel(), minlength=size).reshape(nv, nb)[:, :_NONE]
    abandoned = np.bincount(key[columns.abandoned].ravel(), minlength=size)
    abandoned = abandoned.reshape(nv, nb)[:, :_NONE]
    clicked = np.flatnonzero((columns.clicks > 0) & (columns.click_pos >= 0))
    click_slot = slot[clicked, columns.click_pos[clicked]]
    clicks = np.bincount(columns.version[clicked] * nb + click_slot, minlength=size)
    clicks = clicks.reshape(nv, nb)[:, :_NONE]
    low, high = metrics.wilson_interval(clicks, shown)
    hits: list[tuple[Any, ...]] | None = None
    if hit_slots is not None and hit is not None and hit_method is not None:
        n = lists.shape[0]
        per_slot = np.asarray(hit_slots, dtype=np.float64)
        judged = np.isfinite(np.asarray(hit, dtype=np.float64))
        # One pass: the hit mass of every (request, bucket) pair.
        request_bucket = np.arange(n, dtype=np.int64)[:, None] * nb + slot
        mass = np.bincount(request_bucket.ravel(), weights=per_slot.ravel(), minlength=n * nb)
        mass = mass.reshape(n, nb)
        if hit_method == "observed":
            mass = (mass > 0).astype(np.float64)
        hits = [
            hit_rates(
                np.where(judged, mass[:, code], np.nan), columns.version, nv, method=hit_method
            )
            for code in range(_NONE)
        ]
    by_bucket: dict[str, Any] = {}
    names = columns.names
    b_code = names.index(baseline) if baseline in names else None
    c_code = names.index(candidate) if candidate in names else None
    for code, name in enumerate(BUCKETS):
        versions = {}
        for v, version in enumerate(names):
            if not shown[v, code]:
                continue
            cell: dict[str, Any] = {
                "impressions": int(shown[v, code]),
                "clicks": int(clicks[v, code]),
                "ctr": num(clicks[v, code] / shown[v, code]),
                "ctr_ci95": pair(low[v, code], high[v, code]),
                "abandon_rate": num(abandoned[v, code] / shown[v, code]),
                "hit_at_k": None,
                "hit_at_k_ci95": [None, None],
            }
            if hits is not None:
                _, rate, h_low, h_high = hits[code]
                cell["hit_at_k"] = num(rate[v])
                cell["hit_at_k_ci95"] = pair(h_low[v], h_high[v])
            versions[version] = cell
        delta = None
        if b_code is not None and c_code is not None and b_code != c_code:
            delta = _difference(
                clicks[b_code, code], shown[b_code, code], clicks[c_code, code], shown[c_code, code]
            )
        by_bucket[name] = {
            "items": int((bucket == code).sum()),
            "impressions": int(shown[:, code].sum()),
            "versions": versions,
            "candidate_vs_baseline": delta,
        }
    scored = [
        (cell["candidate_vs_baseline"]["difference"], i, name)
        for i, (name, cell) in enumerate(by_bucket.items())
        if cell["candidate_vs_baseline"] is not None
        and cell["candidate_vs_baseline"]["difference"] is not None
    ]
    worst = None
    if scored:
        _, _, name = min(scored)
        worst = {"bucket": name, **by_bucket[name]["candidate_vs_baseline"]}
    return {
        "basis": BUCKET_BASIS,
        "rules": _rules(bucket, pop),
        "baseline": baseline,
        "candidate": candidate,
        "by_bucket": by_bucket,
        "worst": worst,
    }


def worst_group(
    user_segments: Mapping[str, Any],
    item_buckets: Mapping[str, Any],
    tenure: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The user segment, item popularity bucket or tenure group (new / returning users) with
    the lowest candidate relative lift.

    User segments compare list CTR and buckets item CTR, whose scales differ by about the
    number of positions a user looks at; the relative lift (candidate / baseline − 1) puts
    them on one scale.  Ties go to the first in order (segments before buckets).
    """
    candidates: list[tuple[float, int, str, str, Mapping[str, Any]]] = []
    groups: Sequence[tuple[str, Mapping[str, Any]]] = (
        ("user_segment", user_segments),
        ("item_popularity", item_buckets),
        ("tenure", tenure or {}),
    )
    for kind, table in groups:
        for name, cell in table.items():
            delta = cell.get("candidate_vs_baseline")
            if delta is None or delta.get("relative_lift") is None:
                continue
            candidates.append((delta["relative_lift"], len(candidates), kind, name, delta))
    if not candidates:
        return None
    _, _, kind, name, delta = min(candidates)
    return {
        "kind": kind,
        "group": name,
        "relative_lift": delta["relative_lift"],
        "difference": delta["difference"],
        "difference_ci95": delta["difference_ci95"],
    }
