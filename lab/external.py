"""Versions the run does not train: loaded from the registry, or built by another system.

``[models.NAME]`` names at most one source besides training in the run::

    registry   = "ID"                     a version ``rollout-lab train`` registered
    topk       = { path, fallback, ... }  a top-K table (``replay.list_tables``)
    embeddings = { path, biases, ... }    user and item factors (``replay.embeddings``)
    plugin     = "package.module:factory" Python code (``replay.plugins``): runs user code

A registered version is a ``TrainedModel`` like one trained here, so it is scored, updated
and rolled back like one.  Embeddings become a ``TrainedModel`` too (scored by the lab's
top-K search, consumed items filtered).  Tables and plugins give lists: they are served as
given through a ``FixedLists`` store, with a stand-in scorer (one zero factor per user and
item) for the click calibration's list features, so the calibrator learns from position,
popularity and history alone.  Every user's list is decided once, before the simulation
clock starts, whatever the source: the event loop only looks rows up.

Users an external version has no list for (not in the table, no embedding row) get its
declared ``fallback``: the popularity list, the baseline's list or another version's, and
are counted (``fallback_users``); ``require_coverage`` turns a coverage below a share of
the run's traffic users into an error.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from lab.artifacts import model_key
from lab.paths import resolve_input_path
from lab.scenario import ModelSettings, Scenario
from lab.sources import Source
from replay.embeddings import read_embeddings
from replay.errors import UserInputError
from replay.list_tables import ListColumns, read_list_table
from replay.plugins import Recommender, call_plugin, load_plugin, plugin_lists
from replay.registry import Registry, data_fingerprint
from replay.training import ModelSpec, TrainedModel

__all__ = [
    "ExternalVersion",
    "FixedLists",
    "load_external",
    "plugin_store",
    "registry_root",
    "rollback_target",
    "updated_plugin",
]


class FixedLists:
    """A version's lists decided outside the lab (``ListStore``'s interface).

    ``items`` int32 [n_users, K] (-1 pads); ``fetch(users)`` fills the rows of users not
    ready yet (a plugin is asked once per user, in batches), or None when every row is
    known up front (a table); ``p_click``: a table's own click probabilities, which then
    are the version's predictions for the users it covers.
    """

    def __init__(
        self,
        model: TrainedModel,
        items: np.ndarray,
        ready: np.ndarray,
        fetch: Callable[[np.ndarray], np.ndarray] | None = None,
        p_click: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.p_click = p_click  # float32 [n_users, K]: the system's own, NaN pads; or None
        self.items = items
        self.ready = ready
        self.k = int(items.shape[1])
        self.scored = 0
        self.scoring_s = 0.0
        self._fetch = fetch
        self.plugin: Recommender | None = None  # the plugin whose lists these are
        self.where = ""  # how its mistakes are named

    def rows(self, users: np.ndarray) -> np.ndarray:
        """The lists of ``users`` (int32 [n, K])."""
        if self._fetch is not None:
            todo = np.unique(users[~self.ready[users]])
            if todo.size:
                started = time.perf_counter()
                self.items[todo] = self._fetch(todo.astype(np.int64))
                self.ready[todo] = True
                self.scored += int(todo.size)
                self.scoring_s += time.perf_counter() - started
        return np.asarray(self.items[users], dtype=np.int32)

    def save(self) -> None:
        """Nothing to keep: the lists live in the user's file or come from their code."""


@dataclass(slots=True)
class ExternalVersion:
    """What the run needs of one version it does not train.

    covered  bool [n_users] users with a list of the version's own (None: every user the
             version saw interact, like a version trained here)
    origin   where it came from, for summary.json (``source`` and its details)
    """

    model: TrainedModel
    seen: sp.csr_matrix
    key: str
    lists: FixedLists | None
    covered: np.ndarray | None
    origin: dict[str, Any] = field(default_factory=dict)


def registry_root(scenario: Scenario, *, source: str, base_dir: Path | None) -> Path | None:
    """The scenario's registry folder, relative to the scenario file; None when unset."""
    if scenario.registry is None:
        return None
    return Path(
        resolve_input_path(scenario.registry, source=source, field="registry", base_dir=base_dir)
    )


def _trained_on(where: str, vid: str, fingerprint: str, src: Source) -> sp.csr_matrix:
    """The matrix of this run a registered version was trained on (its training window,
    or the whole history for an update), found by its data fingerprint.

    A version of the same size trained on another world or log matches neither: serving it
    here would pair its factors with users and items they were never about.
    """
    windows = {"train": src.matrices["train"], "all": src.matrices["all"]}
    prints = {name: data_fingerprint(matrix) for name, matrix in windows.items()}
    for name, matrix in windows.items():
        if prints[name] == fingerprint:
            return matrix
    raise UserInputError(
        f"{where}: version {vid} was trained on other interactions than this run's (data "
        f"fingerprint {fingerprint[:12]}, this run's training window {prints['train'][:12]}, "
        f"history {prints['all'][:12]}); fix: register a version trained on this scenario's "
        "data (rollout-lab train)"
    )


def rollback_target(
    scenario: Scenario, loaded: dict[str, str], *, source: str, base_dir: Path | None
) -> str | None:
    """The version ``release_train.rollback_to`` names, by its name in this run.

    ``loaded``: the registry id of each version the run loaded from the registry, by name.
    An id the registry does not hold, or one the run does not load, is a one-line error.
    """
    train = scenario.release_train
    if train is None or train.rollback_to is None:
        return None
    root = registry_root(scenario, source=source, base_dir=base_dir)
    assert root is not None  # the scenario's validation insists on a registry model
    where = f"{source}: release_train.rollback_to"
    try:
        vid = Registry(root).resolve(train.rollback_to)
    except UserInputError as error:
        raise UserInputError(f"{where}: {error}") from None
    for name, registered in loaded.items():
        if registered == vid:
            return name
    declared = ", ".join(f"{n} = {i}" for n, i in sorted(loaded.items()))
    raise UserInputError(
        f"{where}: {vid} is not a version this run loads ({declared}); fix: declare it "
        f'as [models.NAME] registry = "{vid}" or name one of these'
    )


def _stand_in(n_users: int, n_items: int, popularity: np.ndarray) -> TrainedModel:
    """One zero factor per user and item: list features without a score of their own."""
    return TrainedModel(
        ModelSpec(algorithm="external", factors=1, seed=0),
        np.zeros((n_users, 1), np.float32),
        np.zeros((n_items, 1), np.float32),
        np.asarray(popularity, dtype=np.int64),
    )


def _file_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files in name order (what the version was)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_external(
    name: str,
    settings: ModelSettings,
    scenario: Scenario,
    src: Source,
    *,
    code: str,
    source: str,
    base_dir: Path | None,
    item_popularity: np.ndarray,
) -> ExternalVersion:
    """Load ``models.NAME`` from its source (``settings.source`` must not be ``lab``)."""
    n_users, n_items = src.world.n_users, src.world.n_items
    k = scenario.users.list_size
    field_name = f"models.{name}.{settings.source}"
    where = f"{source}: {field_name}"

    def path_of(text: str) -> Path:
        return Path(
            resolve_input_path(text, source=source, field=f"{field_name}.path", base_dir=base_dir)
        )

    if settings.registry is not None:
        root = registry_root(scenario, source=source, base_dir=base_dir)
        assert root is not None  # the scenario's validation insists on it
        registry = Registry(root)
        vid = registry.resolve(settings.registry)
        model, provenance = registry.load(vid)
        if (model.n_users, model.n_items) != (n_users, n_items):
            raise UserInputError(
                f"{where}: version {vid} serves {model.n_users} users x {model.n_items} items "
                f"but this run's data has {n_users} x {n_items}; register a version trained "
                "on this scenario's data (rollout-lab train)"
            )
        seen = _trained_on(where, vid, provenance.data_fingerprint, src)
        origin: dict[str, Any] = {
            "source": "lab",
            "registry_id": vid,
            "provenance": registry.provenance(vid),
        }
        return ExternalVersion(
            model, seen, model_key("registry", code, data=vid), None, None, origin
        )

    stand_in = _stand_in(n_users, n_items, item_popularity)
    user_ids, item_ids = src.user_ids, src.item_ids
    if settings.topk is not None:
        path = path_of(settings.topk.path)
        columns = ListColumns(p_click=settings.topk.p_click)
        table = read_list_table(
            path,
            k=k,
            n_users=n_users,
            n_items=n_items,
            columns=columns,
            user_ids=user_ids,
            item_ids=item_ids,
            source=str(path),
        )
        items = np.full((n_users, k), -1, np.int32)
        covered = np.zeros(n_users, bool)
        width = min(k, table.k)
        items[table.users, :width] = table.items[:, :width]
        covered[table.users] = True
        p_click = None
        if table.p_click is not None:
            p_click = np.full((n_users, k), np.nan, np.float32)
            p_click[table.users, :width] = table.p_click[:, :width]
        origin = _external_origin(
            "topk", settings.topk.path, path, table.accounting, settings.topk.fallback
        )
        return ExternalVersion(
            stand_in,
            src.matrices["all"],
            model_key("topk", code, data=origin["provenance"]["sha256"], k=k),
            FixedLists(stand_in, items, covered.copy(), p_click=p_click),
            covered,
            origin,
        )
    if settings.embeddings is not None:
        path = path_of(settings.embeddings.path)
        version = read_embeddings(
            path,
            n_users=n_users,
            n_items=n_items,
            item_popularity=item_popularity,
            user_ids=user_ids,
            item_ids=item_ids,
            source=str(path),
            use_biases=settings.embeddings.biases,
        )
        origin = _external_origin(
            "embeddings",
            settings.embeddings.path,
            path,
            version.accounting,
            settings.embeddings.fallback,
        )
        key = model_key(
            "embeddings",
            code,
            data=origin["provenance"]["sha256"],
            biases=settings.embeddings.biases,
        )
        return ExternalVersion(
            version.model, src.matrices["all"], key, None, version.covered_users, origin
        )
    assert settings.plugin is not None
    plugin = load_plugin(settings.plugin, settings.options, source=where)
    where = f"{where} {settings.plugin!r}"  # its answers' mistakes name the plugin
    train_matrix = src.matrices["train"]
    call_plugin(where, "fit()", plugin.fit, train_matrix.copy())

    lists = plugin_store(plugin, stand_in, k=k, where=where)
    origin = {
        "source": "plugin",
        "registry_id": None,
        "provenance": {"plugin": settings.plugin, "options": dict(settings.options)},
    }
    key = model_key("plugin", code, data=src.data_key("train"), plugin=settings.plugin)
    return ExternalVersion(stand_in, src.matrices["all"], key, lists, None, origin)


def plugin_store(plugin: Recommender, stand_in: TrainedModel, *, k: int, where: str) -> FixedLists:
    """The lists of a fitted plugin, asked for once per user when first needed."""
    n_users, n_items = stand_in.n_users, stand_in.n_items

    def fetch(users: np.ndarray) -> np.ndarray:
        return plugin_lists(plugin, users, k=k, n_items=n_items, source=where).items

    lists = FixedLists(
        stand_in, np.full((n_users, k), -1, np.int32), np.zeros(n_users, bool), fetch
    )
    lists.plugin = plugin
    lists.where = where
    return lists


def updated_plugin(
    lists: FixedLists, how: str, seen: sp.csr_matrix, since: sp.csr_matrix, settings: ModelSettings
) -> Recommender:
    """A release of a plugin version: a copy of the parent's object updated on ``since``
    (``update``, when it has one and the train warm-starts), else fitted anew on ``seen``."""
    parent = lists.plugin
    assert parent is not None and settings.plugin is not None
    where = lists.where
    if how != "retrain" and callable(getattr(parent, "update", None)):
        model = call_plugin(where, "copy (copy.deepcopy)", copy.deepcopy, parent)
        call_plugin(where, "update()", model.update, since.copy())
    else:
        model = load_plugin(settings.plugin, settings.options, source=where)
        call_plugin(where, "fit()", model.fit, seen.copy())
    return model  # type: ignore[no-any-return]


def _external_origin(
    kind: str, given: str, path: Path, accounting: dict[str, int], fallback: str
) -> dict[str, Any]:
    """``origin`` of a version read from a file: the path as the scenario gives it (not
    where it sits on this machine), the file's sha256 and its row accounting."""
    origin: dict[str, Any] = {
        "source": kind,
        "registry_id": None,
        "provenance": {
            "path": given,
            "sha256": _file_digest(path),
            "accounting": dict(sorted(accounting.items())),
            "fallback": fallback,
        },
    }
    return origin
