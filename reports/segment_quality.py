"""Calibration, diversity and stability by user group, beside CTR in the segments block.

For every group (cold / light / heavy, new / returning) and assigned version:

* ``ece``: expected calibration error (15 equal-width bins) of the predicted click
  probability against the clicks of the lists shown and not abandoned;
* ``intra_list_diversity``: mean pairwise cosine distance (item factors) of the version's
  list for each request's user, request-weighted;
* ``stability``: mean Jaccard@K of the version's list and the baseline's for the same user.

Lists are per user and fixed during a run: the per-user values are the ones the monitor
computed once for the list-quality guardrails (``Monitor.list_quality``), weighted here by
requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from reports.numbers import num
from reports.quality import RequestColumns
from sim.metrics.calibration import expected_calibration_error

__all__ = ["add_segment_quality"]


def add_segment_quality(
    block: dict[str, Any],
    columns: RequestColumns,
    group_of_user: npt.ArrayLike,
    names: Sequence[str],
    list_quality: Mapping[str, Sequence[np.ndarray]],
) -> None:
    """Add ``ece``, ``intra_list_diversity`` and ``stability`` to every (group, version) cell
    of ``block["by_segment"]``; ``list_quality["diversity" | "stability"][v]`` is [n_users]."""
    group = np.asarray(group_of_user, dtype=np.int64)
    per_user_ild = list_quality["diversity"]
    per_user_jaccard = list_quality["stability"]
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
