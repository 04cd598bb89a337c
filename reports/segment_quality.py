"""Calibration, diversity and stability by user group, beside CTR in the segments block.

For every group (cold / light / heavy, new / returning) and assigned version:

* ``ece``: expected calibration error (15 equal-width bins) of the predicted click
  probability against the clicks of the lists shown and not abandoned;
* ``intra_list_diversity``: mean pairwise cosine distance (item factors) of the version's
  list for each request's user, request-weighted;
* ``stability``: mean Jaccard@K of the version's list and the baseline's for the same user.

Lists are per user and fixed during a run, so list metrics are computed once per user and
weighted by requests: vectorized, cheap at any request count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from reports.numbers import num
from reports.quality import RequestColumns
from sim.metrics.calibration import expected_calibration_error
from sim.metrics.diversity import intra_list_diversity
from sim.metrics.stability import jaccard_at_k

__all__ = ["add_segment_quality"]


def add_segment_quality(
    block: dict[str, Any],
    columns: RequestColumns,
    group_of_user: npt.ArrayLike,
    names: Sequence[str],
    lists: Sequence[np.ndarray],
    item_factors: np.ndarray,
) -> None:
    """Add ``ece``, ``intra_list_diversity`` and ``stability`` to every (group, version) cell
    of ``block["by_segment"]`` (``lists``: [n_users, K] items per version, baseline first)."""
    group = np.asarray(group_of_user, dtype=np.int64)
    users = np.unique(columns.user)
    baseline_lists = lists[0][users]
    per_user_ild: list[np.ndarray] = []
    per_user_jaccard: list[np.ndarray] = []
    for table in lists:
        ild = np.full(lists[0].shape[0], np.nan)
        jac = np.full(lists[0].shape[0], np.nan)
        ild[users] = intra_list_diversity(table[users], item_factors)
        jac[users] = jaccard_at_k(table[users], baseline_lists)
        per_user_ild.append(ild)
        per_user_jaccard.append(jac)
    request_group = group[columns.user]
    shown = (columns.served_by != -2) & ~columns.abandoned
    for g, name in enumerate(names):
        cell = block["by_segment"].get(name)
        if cell is None:
            continue
        for v, version in enumerate(columns.names):
            target = cell["versions"].get(version)
            if target is None:
                continue
            mine = (request_group == g) & (columns.version == v)
            judged = mine & shown
            target["ece"] = (
                num(expected_calibration_error(columns.p_click[judged], columns.clicks[judged]))
                if judged.any()
                else None
            )
            for key, per_user in (
                ("intra_list_diversity", per_user_ild[v]),
                ("stability", per_user_jaccard[v]),
            ):
                values = per_user[columns.user[mine]]
                values = values[np.isfinite(values)]
                target[key] = num(float(values.mean())) if values.size else None
