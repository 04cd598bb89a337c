"""Release trains: a new candidate every ``every`` seconds of simulated time.

Release 1 is the scenario's candidate.  Release k (k = 2..count) is built before the run the
way a team would build it at time ``(k - 1) * every``: updated from release k - 1 (warm start
by default) on everything seen so far plus what users consumed on their own during the
interval before it (the synthetic world's organic consumption at the history's pace).  During
the run each release rolls out behind the current production version with the scenario's
policy; a promotion makes it production, a rollback keeps the last good version.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from lab.scenario import Scenario
from lab.sources import Source
from lab.versions import VersionTables
from replay.training import TrainedModel, active_ids, fine_tune, retrain, warm_start

__all__ = ["Release", "build_release_train", "release_name"]


@dataclass(frozen=True, slots=True)
class Release:
    """One release: when it starts (simulated seconds) and which version it rolls out."""

    number: int
    at_s: float
    name: str


def release_name(candidate: str, number: int) -> str:
    return candidate if number == 1 else f"{candidate}-{number}"


def build_release_train(
    scenario: Scenario,
    source: Source,
    first: VersionTables,
    *,
    sample: np.ndarray,
    rng: np.random.Generator,
) -> tuple[list[VersionTables], list[Release]]:
    """Versions for releases 2..count (parents first) and the whole release schedule."""
    train = scenario.release_train
    name = scenario.rollout.candidate
    releases = [Release(1, 0.0, name)]
    if train is None:
        return [], releases
    assert source.organic is not None
    settings = scenario.models[name]
    seen: sp.csr_matrix = source.matrices["all"]
    parent_table = first
    parent: TrainedModel = first.model
    built: list[VersionTables] = []
    for number in range(2, train.count + 1):
        start_s, end_s = (number - 2) * train.every, (number - 1) * train.every
        window = source.organic(start_s, end_s, rng)
        seen = sp.csr_matrix(seen + window, dtype=np.float32)
        users, items = active_ids(window)
        if train.update == "warm_start":
            model = warm_start(parent, seen, users, items)
        elif train.update == "fine_tune":
            model = fine_tune(parent, seen, max(1, settings.iterations // 3))
        else:
            model = retrain(parent.spec, seen)
        label = release_name(name, number)
        table = VersionTables(
            label,
            model,
            seen=seen,
            consumed=seen,
            truth=source.truth,
            n_users=source.world.n_users,
            popular_items=parent_table.popular_items,
            k=scenario.users.list_size,
            click_lift=settings.click_lift,
            parent=parent_table.name,
            update=train.update,
        )
        table.ensure(sample, rng=rng)
        built.append(table)
        releases.append(Release(number, end_s, label))
        parent, parent_table = model, table
    return built, releases
