"""Quality, fairness and segments by the scenario's attribute tables (``[attributes]``).

Three blocks of ``summary.json``, each present only when the scenario names a table:

* ``versions.NAME.quality.by_attribute.ATTR`` for every categorical item attribute (genre,
  provider, price band...), over the lists the version served, weighted by requests:
  Steck calibration ``kl`` (KL(p ‖ q̃) of the attribute's distribution in the user's history
  against the list's, α = 0.01, as for genres), ``intra_list_diversity`` (mean pairwise
  Jaccard distance of the items' value sets), ``value_coverage`` (values shown / values in
  the catalogue) with ``levels_shown`` and ``levels``;
* ``fairness.providers``: exposure share of every provider group against its catalogue and
  popularity share, per version with a 95 % interval clustered by user, their total
  variation distance, and the candidate's change against the baseline, paired on the users
  the candidate served (both versions' lists for them; :mod:`sim.metrics.fairness`);
* ``segments.by_attribute.ATTR`` for every categorical user attribute (country, platform,
  cohort...): CTR per group and assigned version (clustered by user), the candidate −
  baseline difference per group with its 95 % interval and a Bonferroni-corrected one for
  the number of groups, and the worst group.

Items and users without a value are the group ``(no value)`` when there are any.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from lab.attributes import RunAttributes
from lab.pipeline import RunResult
from replay.attributes import Attribute
from reports.genres import STECK_ALPHA, history_matrix
from reports.numbers import num, pair
from sim import metrics, wording
from sim.metrics.fairness import (
    GroupExposure,
    group_ctr_deltas,
    group_exposure,
    level_shares,
    paired_share_change,
    total_variation,
)
from sim.stats import Interval, mean_interval

__all__ = ["NO_VALUE", "by_attribute_blocks", "fairness_block", "user_group_blocks"]

NO_VALUE = "(no value)"
ATTRIBUTE_BASIS = "lists this version served, weighted by requests (item attribute table)"
FAIRNESS_BASIS = (
    "list slots this version served, weighted by requests; an item with several groups shares "
    "its slot equally; interval clustered by user (delta method); the candidate's change is "
    "paired: both versions' lists for the users the candidate served"
)
GROUP_BASIS = (
    "CTR by assigned version, clustered by user; a user with several values counts in each "
    "group; the adjusted interval is Bonferroni-corrected for the groups compared"
)


def _served(result: RunResult, served_by: npt.NDArray[np.int64], v: int) -> tuple[Any, Any]:
    """Users a version served (ascending), their request counts and their lists."""
    n_users = result.prepared.world.n_users
    counts = np.bincount(result.stream.user[served_by == v], minlength=n_users)
    users = np.flatnonzero(counts)
    return users, counts[users].astype(np.float64)


def _with_no_value(attribute: Attribute) -> tuple[tuple[str, ...], sp.csr_matrix]:
    """Levels and 0/1 membership with a ``(no value)`` column for ids without one."""
    member = sp.csr_matrix(attribute.membership, dtype=np.int8)
    missing = np.asarray(member.getnnz(axis=1)) == 0
    if not missing.any():
        return attribute.levels, member
    extra = sp.csr_matrix(missing.astype(np.int8)[:, None])
    return (*attribute.levels, NO_VALUE), sp.csr_matrix(sp.hstack([member, extra]), dtype=np.int8)


def by_attribute_blocks(
    result: RunResult, served_by: npt.NDArray[np.int64]
) -> dict[str, dict[str, Any]]:
    """Per version name, per categorical item attribute: Steck KL, diversity, coverage."""
    prepared = result.prepared
    items = prepared.attributes.items
    names = [t.name for t in result.versions]
    out: dict[str, dict[str, Any]] = {name: {} for name in names}
    if items is None:
        return out
    history = history_matrix(
        prepared.history_users,
        prepared.history_items,
        prepared.world.n_users,
        prepared.world.n_items,
    )
    for attribute in items.attributes.values():
        genres = attribute.dense()
        in_catalogue = int((genres.sum(axis=0) > 0).sum())
        for v, name in enumerate(names):
            users, weights = _served(result, served_by, v)
            lists = result.versions[v].items[users]
            block: dict[str, Any] = {
                "basis": ATTRIBUTE_BASIS,
                "levels": in_catalogue,
                "lists": int(users.size),
                "kl": None,
                "intra_list_diversity": None,
                "value_coverage": None,
                "levels_shown": 0,
            }
            if users.size:
                kl = metrics.genre_calibration_kl(lists, history[users], genres, alpha=STECK_ALPHA)
                judged = np.isfinite(kl)
                ild = metrics.genre_intra_list_diversity(lists, genres)
                usable = np.isfinite(ild)
                exposure = metrics.exposure_counts(lists, genres.shape[0], weights=weights)
                shown = int((exposure @ genres > 0).sum())
                block.update(
                    kl=num(np.average(kl[judged], weights=weights[judged]))
                    if judged.any()
                    else None,
                    intra_list_diversity=num(np.average(ild[usable], weights=weights[usable]))
                    if usable.any()
                    else None,
                    levels_shown=shown,
                    value_coverage=num(shown / in_catalogue) if in_catalogue else None,
                )
            out[name][attribute.name] = block
    return out


def _exposure_cell(exposure: GroupExposure, g: int) -> dict[str, Any]:
    stats = exposure.exposure[g]
    interval = mean_interval(stats)
    share = stats.mean if stats.n else None
    catalogue = float(exposure.catalogue_share[g])
    popularity = float(exposure.popularity_share[g])
    return {
        "exposure_share": num(share),
        "ci95": pair(interval.low, interval.high) if stats.n else [None, None],
        "to_catalogue": num(share / catalogue) if share is not None and catalogue > 0 else None,
        "to_popularity": num(share / popularity) if share is not None and popularity > 0 else None,
    }


def _paired_changes(
    result: RunResult, served_by: npt.NDArray[np.int64], shares: npt.NDArray[np.float64]
) -> list[Interval] | None:
    """Candidate − baseline exposure share per group on the users the candidate served
    (both versions' lists for them, weighted by their candidate requests); ``None`` when
    the candidate served no one."""
    names = [t.name for t in result.versions]
    rollout = result.scenario.rollout
    if rollout.baseline not in names or rollout.candidate not in names:
        return None
    base, cand = names.index(rollout.baseline), names.index(rollout.candidate)
    users, weights = _served(result, served_by, cand)
    if users.size == 0:
        return None
    return paired_share_change(
        result.versions[base].items[users], result.versions[cand].items[users], weights, shares
    )


def fairness_block(
    result: RunResult, served_by: npt.NDArray[np.int64], attributes: RunAttributes
) -> dict[str, Any] | None:
    """``fairness``: provider exposure against catalogue and popularity share, per version."""
    provider = attributes.provider_attribute
    if provider is None:
        return None
    prepared = result.prepared
    levels, membership = _with_no_value(provider)
    shares = level_shares(membership)
    names = [t.name for t in result.versions]
    rollout = result.scenario.rollout
    per_version: dict[str, GroupExposure] = {}
    for v, name in enumerate(names):
        users, weights = _served(result, served_by, v)
        per_version[name] = group_exposure(
            result.versions[v].items[users], weights, shares, prepared.item_popularity
        )
    anyone = next(iter(per_version.values()))
    item_counts = np.asarray(membership.sum(axis=0)).ravel()
    groups: dict[str, Any] = {}
    changes = _paired_changes(result, served_by, shares)
    for g, level in enumerate(levels):
        change = None
        if changes is not None:
            d = changes[g]
            change = {"difference": num(d.estimate), "difference_ci95": pair(d.low, d.high)}
        groups[level] = {
            "items": int(item_counts[g]),
            "catalogue_share": num(anyone.catalogue_share[g]),
            "popularity_share": num(anyone.popularity_share[g]),
            "versions": {name: _exposure_cell(e, g) for name, e in per_version.items() if e.users},
            "candidate_vs_baseline": change,
        }
    summaries = {}
    for name, e in per_version.items():
        if not e.users:
            continue
        share = e.exposure_share
        summaries[name] = {
            "slots": num(e.slots),
            "users": e.users,
            "tv_to_catalogue": num(total_variation(share, e.catalogue_share)),
            "tv_to_popularity": num(total_variation(share, e.popularity_share)),
        }
    most = None
    changed = [(lvl, c["candidate_vs_baseline"]) for lvl, c in groups.items()]
    changed = [(lvl, c) for lvl, c in changed if c is not None and c["difference"] is not None]
    if changed:
        lvl, c = max(changed, key=lambda item: abs(item[1]["difference"]))
        most = {"group": lvl, **c, "verdict": wording.share_change(*c["difference_ci95"])}
    return {
        "providers": {
            "attribute": provider.name,
            "basis": FAIRNESS_BASIS,
            "baseline": rollout.baseline,
            "candidate": rollout.candidate,
            "groups": groups,
            "versions": summaries,
            "most_changed": most,
        }
    }


def user_group_blocks(
    result: RunResult,
    user: npt.NDArray[np.int64],
    version: npt.NDArray[np.int64],
    clicks: npt.NDArray[np.int64],
) -> dict[str, Any]:
    """``segments.by_attribute``: per categorical user attribute, CTR per group and version,
    candidate − baseline per group (95 % and Bonferroni intervals) and the worst group."""
    users = result.prepared.attributes.users
    if users is None:
        return {}
    names = [t.name for t in result.versions]
    rollout = result.scenario.rollout
    baseline, candidate = names.index(rollout.baseline), names.index(rollout.candidate)
    out: dict[str, Any] = {}
    for attribute in users.attributes.values():
        levels, membership = _with_no_value(attribute)
        deltas = group_ctr_deltas(
            user,
            version,
            clicks,
            membership,
            versions=range(len(names)),
            baseline=baseline,
            candidate=candidate,
        )
        compared = sum(1 for d in deltas if d.difference is not None)
        by_group: dict[str, Any] = {}
        for d in deltas:
            if not d.requests:
                continue
            cells = {}
            for code, stats in d.ctr.items():
                interval = mean_interval(stats)
                cells[names[code]] = {
                    "users": stats.n,
                    "ctr": num(stats.mean),
                    "ctr_ci95": pair(interval.low, interval.high),
                }
            change = None
            if d.difference is not None and d.adjusted is not None:
                base_ctr = d.ctr[baseline].mean
                change = {
                    "difference": num(d.difference.estimate),
                    "difference_ci95": pair(d.difference.low, d.difference.high),
                    "difference_ci95_adjusted": pair(d.adjusted.low, d.adjusted.high),
                    "relative_lift": num(d.difference.estimate / base_ctr) if base_ctr else None,
                }
            on_candidate = d.ctr[candidate].n if candidate in d.ctr else 0
            by_group[levels[d.group]] = {
                "users": d.users,
                "requests": d.requests,
                # Share of the group's users assigned the candidate at least once: targeting
                # shows here (0 outside the target).
                "users_on_candidate": num(on_candidate / d.users) if d.users else None,
                "versions": cells,
                "candidate_vs_baseline": change,
            }
        worst = None
        judged = [(g, c["candidate_vs_baseline"]) for g, c in by_group.items()]
        judged = [(g, c) for g, c in judged if c is not None]
        if judged:
            group, change = min(judged, key=lambda item: item[1]["difference"])
            low, high = change["difference_ci95_adjusted"]
            worst = {
                "group": group,
                **change,
                "verdict": wording.group_harm(low, high, compared),
            }
        out[attribute.name] = {
            "basis": GROUP_BASIS,
            "baseline": rollout.baseline,
            "candidate": rollout.candidate,
            "adjustment": {
                "method": "bonferroni",
                "groups": compared,
                "level": num(1.0 - 0.05 / max(compared, 1)),
            },
            "by_group": by_group,
            "worst": worst,
        }
    return out
