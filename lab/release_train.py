"""Release trains: a new candidate every ``every`` seconds of simulated time.

Release 1 is the scenario's candidate.  Release k (k = 2..count) is built *during the run*,
at its scheduled time ``(k - 1) * every``, the way a team's training pipeline would build
it then: updated (warm start by default) from the last good version on everything seen up
to that time — the history plus what users consumed on their own during the run (the
synthetic world's organic consumption at the history's pace).  The last good version is the
latest release that was not rolled back (promoted, or withdrawn undecided: a training
pipeline keeps building on updates nobody rejected), else production, which every rollback
restored.  With ``release_train.rollback_to`` a rollback sends production back to that
registered version instead, and the next release is built from it.  Each release records
its parent.

During the run each release rolls out behind the current production version with the
scenario's policy; a promotion makes it production, a rollback keeps the last good version.
Versions built for one lineage are kept on the ``Prepared`` world, so replications that take
the same path reuse them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import numpy as np
import scipy.sparse as sp

from lab.artifacts import derived_key, model_key
from lab.builder import VersionBuilder
from lab.calibration import fit_on_simulated_feedback
from lab.exploration import exploration_of
from lab.external import FixedLists, plugin_store, updated_plugin
from lab.registering import Holdout, register_tables
from lab.scenario import Scenario
from lab.versions import ListRows, VersionTables
from replay.registry import Registry
from replay.training import TrainedModel, active_ids, fine_tune, retrain, warm_start
from sim.policies.release_train import Release as ScheduledRelease

__all__ = ["BuiltRelease", "Release", "ReleaseFactory", "release_name", "release_schedule"]


@dataclass(frozen=True, slots=True)
class Release:
    """One release: when it starts (simulated seconds) and the name of its version slot."""

    number: int
    at_s: float
    name: str


def release_name(candidate: str, number: int) -> str:
    return candidate if number == 1 else f"{candidate}-{number}"


def release_schedule(scenario: Scenario) -> list[Release]:
    """Every release of the scenario's train (one release at time 0 without a train)."""
    train = scenario.release_train
    name = scenario.rollout.candidate
    if train is None:
        return [Release(1, 0.0, name)]
    return [
        Release(number, (number - 1) * train.every, release_name(name, number))
        for number in range(1, train.count + 1)
    ]


@dataclass(frozen=True, slots=True)
class BuiltRelease:
    """A release's version, and the lineage it was built along (names, oldest first)."""

    tables: VersionTables
    lineage: tuple[str, ...]
    data_until_s: float
    model_key: str  # its key in the artifact store (``lab.artifacts.model_key``)


class ReleaseFactory:
    """Builds release versions at their scheduled time (the controller's ``ReleaseBuilder``).

    ``install(slot, tables)`` is called with every version built, so the run can serve it.
    Versions are built through ``builder`` (and its artifact store), keyed by their parent
    and by the data they saw: everything before the run plus the organic consumption up to
    their time, which the scenario's seed and the train's interval fix.
    """

    def __init__(
        self,
        scenario: Scenario,
        builder: VersionBuilder,
        versions: list[VersionTables],
        *,
        sample: np.ndarray,
        memo: dict[tuple[str, ...], BuiltRelease],
        install: Callable[[int, VersionTables], None],
        registry: Registry | None = None,
        holdout: Callable[[], Holdout] | None = None,
    ) -> None:
        source = builder.source
        assert scenario.release_train is not None and source.organic is not None
        self.scenario = scenario
        self.builder = builder
        self.source = source
        self.versions = versions
        self.sample = sample
        self.memo = memo
        self.install = install
        self.every = scenario.release_train.every
        # With a registry, every release trained here is registered like the run's own
        # versions (``holdout`` gives the window they are all evaluated on).
        self.registry = registry
        self.holdout = holdout
        # Lineage and data horizon of every version slot built so far.
        self.lineage: dict[int, tuple[str, ...]] = {i: (t.name,) for i, t in enumerate(versions)}
        self.data_until_s: dict[int, float] = dict.fromkeys(range(len(versions)), 0.0)
        self.parents: dict[int, str] = {}
        # The model key of every version slot built so far (``lab.artifacts``).
        self.keys: dict[int, str] = {
            i: builder.keys.get(t.name, derived_key("unbuilt", t.name))
            for i, t in enumerate(versions)
        }

    def _organic(self, start_s: float, end_s: float) -> sp.csr_matrix:
        """Organic consumption in ``[start_s, end_s)``, one fixed draw per train interval.

        Each interval has its own generator (from the scenario's seed and the interval's
        number), so what users consumed never depends on which lineage asked first.
        """
        assert self.source.organic is not None
        total: sp.csr_matrix | None = None
        first = round(start_s / self.every)
        last = round(end_s / self.every)
        for k in range(first, last):
            rng = np.random.default_rng(
                np.random.SeedSequence(self.scenario.seed, spawn_key=(1_000, k))
            )
            part = self.source.organic(k * self.every, (k + 1) * self.every, rng)
            total = part if total is None else total + part
        shape = self.source.matrices["all"].shape
        return total if total is not None else sp.csr_matrix(shape, dtype=np.float32)

    def build(self, release: ScheduledRelease, parent: int, at_s: float) -> None:
        """Build the version of ``release`` at ``at_s`` from version ``parent`` and install it."""
        key = (*self.lineage[parent], f"@{release.number}")
        built = self.memo.get(key)
        if built is None:
            built = self._train(release, parent, at_s, key)
            self.memo[key] = built
        self.lineage[release.version] = built.lineage
        self.keys[release.version] = built.model_key
        self.data_until_s[release.version] = built.data_until_s
        self.parents[release.version] = self.versions[parent].name
        self.versions[release.version] = built.tables
        self.install(release.version, built.tables)

    def _train(
        self, release: ScheduledRelease, parent: int, at_s: float, key: tuple[str, ...]
    ) -> BuiltRelease:
        train = self.scenario.release_train
        assert train is not None
        settings = self.scenario.models[self.scenario.rollout.candidate]
        parent_tables = self.versions[parent]
        base: sp.csr_matrix = self.source.matrices["all"]
        seen = sp.csr_matrix(base + self._organic(0.0, at_s), dtype=np.float32)
        since_s = self.data_until_s[parent]
        since = self._organic(since_s, at_s)
        code = self.builder.code
        seen_key = derived_key(
            self.source.data_key("all"), "organic", self.scenario.seed, self.every, at_s
        )
        rounds = max(1, settings.iterations // 3)
        parent_key = self.keys[parent]
        store = parent_tables.list_store
        if isinstance(store, FixedLists) and store.plugin is not None:
            plugin_key = derived_key(parent_key, "plugin", train.update, at_s)
            return self._plugin_release(
                release, parent_tables, store, (at_s, key, plugin_key), seen, since
            )
        if train.update == "warm_start":
            model_id = model_key(
                "warm_start", code, data=seen_key, parent=parent_key, since_s=since_s
            )
        elif train.update == "fine_tune":
            model_id = model_key(
                "fine_tune", code, data=seen_key, parent=parent_key, iterations=rounds
            )
        else:
            model_id = model_key("retrain", code, data=seen_key, spec=parent_tables.model.spec)
        model = self.builder.model(
            model_id,
            partial(
                _update,
                train.update,
                # What the parent learnt, not the replayed users folded into it for serving.
                parent_tables.trained_model,
                seen,
                since,
                rounds,
                self.builder.threads,
            ),
        )
        lists = self.builder.lists(
            model_id,
            seen_key,
            self.source.world.n_users,
            self.scenario.users.list_size,
            model,
            seen,
        )
        tables = self._tables(release, parent_tables, model, seen, lists)
        built = self._calibrated(tables, key, at_s, model_id)
        self._register(tables, parent_tables, seen, at_s, train.update)
        return built

    def _register(
        self,
        tables: VersionTables,
        parent_tables: VersionTables,
        seen: sp.csr_matrix,
        at_s: float,
        update: str,
    ) -> None:
        """Save a release trained here to the registry (when the run has one), its parent
        named by id, its data time the release's own time."""
        if self.registry is None or self.holdout is None:
            return
        train_start = self.source.windows["train"][0]
        zero = self.source.windows["holdout"][0]
        register_tables(
            self.registry,
            tables,
            seen=seen,
            holdout=self.holdout(),
            train_start=train_start,
            train_end=zero + timedelta(seconds=at_s),
            parent_id=parent_tables.origin.get("registry_id"),
            update=update,
        )

    def _tables(
        self,
        release: ScheduledRelease,
        parent_tables: VersionTables,
        model: TrainedModel,
        seen: sp.csr_matrix,
        lists: ListRows,
        origin: dict[str, Any] | None = None,
    ) -> VersionTables:
        """The tables of a release built from ``parent_tables`` on ``seen``."""
        train = self.scenario.release_train
        assert train is not None
        return VersionTables(
            release_name(self.scenario.rollout.candidate, release.number),
            model,
            seen=seen,
            consumed=seen,
            truth=self.source.truth,
            n_users=self.source.world.n_users,
            popular_items=parent_tables.popular_items,
            k=self.scenario.users.list_size,
            click_lift=self.scenario.models[self.scenario.rollout.candidate].click_lift,
            parent=parent_tables.name,
            update=train.update,
            list_store=lists,
            origin=origin,
            exploration=exploration_of(self.scenario.serving.explore_slots, self.scenario.seed),
        )

    def _calibrated(
        self, tables: VersionTables, key: tuple[str, ...], at_s: float, model_id: str
    ) -> BuiltRelease:
        lineage_tag = zlib.crc32("/".join(key).encode("utf-8"))
        calibration = np.random.default_rng(
            np.random.SeedSequence(self.scenario.seed, spawn_key=(1_001, lineage_tag))
        )
        tables.calibrator = fit_on_simulated_feedback(
            tables, self.source.world.activity, rng=calibration
        )
        tables.ensure(self.sample)
        return BuiltRelease(tables, key, at_s, model_id)

    def _plugin_release(
        self,
        release: ScheduledRelease,
        parent_tables: VersionTables,
        store: FixedLists,
        when: tuple[float, tuple[str, ...], str],
        seen: sp.csr_matrix,
        since: sp.csr_matrix,
    ) -> BuiltRelease:
        """A plugin's release: its ``update`` on what happened since the parent (or a fresh
        ``fit`` on everything seen), its lists asked for once per user like release 1's."""
        train = self.scenario.release_train
        assert train is not None
        settings = self.scenario.models[self.scenario.rollout.candidate]
        plugin = updated_plugin(store, train.update, seen, since, settings)
        lists = plugin_store(plugin, store.model, k=store.k, where=store.where)
        origin = {
            "source": "plugin",
            "registry_id": None,
            "provenance": dict(parent_tables.origin["provenance"] or {}),
        }
        tables = self._tables(release, parent_tables, store.model, seen, lists, origin)
        at_s, key, model_id = when
        return self._calibrated(tables, key, at_s, model_id)


def _update(
    how: str,
    parent: TrainedModel,
    seen: sp.csr_matrix,
    since: sp.csr_matrix,
    rounds: int,
    threads: int,
) -> TrainedModel:
    """A release from its parent: warm start on what users did ``since``, or more."""
    if how == "warm_start":
        users, items = active_ids(since)
        return warm_start(parent, seen, users, items, threads=threads)
    if how == "fine_tune":
        return fine_tune(parent, seen, rounds, threads=threads)
    return retrain(parent.spec, seen, threads=threads)
