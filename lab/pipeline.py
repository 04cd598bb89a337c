"""One run, end to end: scenario -> world -> model versions -> traffic -> simulation.

This is the library entry point (``run(scenario) -> RunResult``) that the CLI and notebooks
use.  Phases are timed apart:

* ``prepare`` — synthetic world and history, training every version (timed per version);
* ``simulate`` — traffic generation, routing, the event loop, records and user responses;
  top-K rows for users first seen in this traffic are scored before the clock starts.

Decide *what* once, simulate *when* many times: ``simulate_prepared(prepared, replication=r)``
draws fresh traffic, service times and user responses for replication ``r`` on the same
trained versions, which is how operating characteristics are measured cheaply.

Randomness: one ``SeedSequence(seed)`` spawns a named child per concern (world, history,
models, traffic, service, users, faults, router, policy), each replication a child of its
own, so changing the service-time law does not change which users arrive when.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from lab.artifacts import calibration_key, code_fingerprint, model_key
from lab.attributes import RunAttributes, read_run_attributes, target_users
from lab.background import Pending
from lab.builder import VersionBuilder, default_threads, model_spec
from lab.calibration import (
    MAX_LISTS,
    fit_on_logged_feedback,
    fit_on_simulated_feedback,
    stored_calibration,
)
from lab.drift import drift_summary
from lab.exploration import exploration_of
from lab.external import load_external, rollback_target
from lab.fold_in import at_feedback_time, for_replay
from lab.manifests.evidence import evidence_for
from lab.registering import Holdout
from lab.release_train import BuiltRelease, Release, ReleaseFactory, release_schedule
from lab.resources import memory_plan
from lab.scenario import (
    Autoscaler,
    Fault,
    Latency,
    LognormalLatency,
    ModelSettings,
    Scenario,
    stage_order,
)
from lab.slos import slo_plan
from lab.sources import LogTruth, Source, build_source
from lab.versions import ClickTruth, ListRows, PopularTables, VersionTables
from replay.artifact_store import ArtifactStore
from replay.calibration import ClickCalibrator
from replay.errors import UserInputError
from replay.registry import Registry
from replay.requests import RequestStream
from replay.synthetic import (
    SyntheticWorld,
)
from replay.training import (
    TrainedModel,
    train,
)
from sim.autoscaler import AutoscalerPlan
from sim.engine import CachePlan, EngineOutcome, EnginePlan, VersionPlan, simulate
from sim.faults import FaultWindow
from sim.memory import MemoryPlan
from sim.metrics.diversity import intra_list_diversity
from sim.metrics.stability import jaccard_at_k
from sim.monitor import Monitor, RequestTruth, Retrieval
from sim.policies import POLICIES, Analyst, RolloutController
from sim.records import ABSENT, POPULAR, Records
from sim.remembering import MemoryParams, RememberingUsers
from sim.router import final_versions, stable_buckets
from sim.servers import ServiceTime
from sim.stages import DEGRADE_CODES, StagePlan
from sim.users import CascadeUsers

__all__ = [
    "NOISE_FLOOR",
    "SEGMENTS",
    "Prepared",
    "RunResult",
    "prepare",
    "run",
    "seeded_streams",
    "simulate_prepared",
]

STREAMS = (
    "world",
    "history",
    "models",
    "traffic",
    "service",
    "users",
    "faults",
    "router",
    "policy",
)
#: User segments by history length: cold (< 5 interactions), light, heavy (top quarter).
SEGMENTS = ("cold", "light", "heavy")
#: Name of the re-seeded baseline (the stability noise floor) in the metrics.
NOISE_FLOOR = "baseline@noise_floor"


def holdout_of(prepared: Prepared) -> Holdout:
    """The holdout window every version of ``prepared`` is evaluated on when registered:
    seeded, so every registration of the same scenario sees the same one; computed once."""
    if not prepared.holdout_memo:
        source = prepared.source
        start, end = source.windows["holdout"]
        matrix = source.holdout(seeded_streams(prepared.scenario.seed)["faults"])
        prepared.holdout_memo.append(Holdout(matrix, start, end))
    return prepared.holdout_memo[0]


def seeded_streams(seed: int, replication: int = 0) -> dict[str, np.random.Generator]:
    """Independent named generators from one root seed (stable order, stable bytes).

    World, history and models do not depend on the replication; everything that happens
    during the simulation does.
    """
    fixed = ("world", "history", "models")
    return {
        name: np.random.default_rng(
            np.random.SeedSequence(seed, spawn_key=(i,) if name in fixed else (i, replication))
        )
        for i, name in enumerate(STREAMS)
    }


@dataclass(frozen=True, slots=True)
class Prepared:
    """The world and the trained versions: everything a replication reuses."""

    scenario: Scenario
    world: SyntheticWorld  # the truth (synthetic) or a stand-in with the baseline's item factors
    source: Source
    versions: tuple[VersionTables, ...]  # baseline first, candidate second, then the rest
    popular: PopularTables
    user_segment: np.ndarray  # uint8 [n_users], index into SEGMENTS
    history_counts: np.ndarray  # int64 [n_users], interactions before time zero
    history_users: np.ndarray  # int32 [events], user of each interaction before time zero
    history_items: np.ndarray  # int32 [events], item of each interaction before time zero
    item_popularity: np.ndarray  # int64 [n_items], users per item before time zero
    history_events: int
    prepare_s: float
    training_s: dict[str, float]
    # The baseline retrained with seed + 1 (``metrics.noise_floor``): its lists against the
    # baseline's show how far lists move from training noise alone.  Built in the background
    # (``lab.background``) beside the rest of the run, read through ``noise_floor``; rows for
    # traffic users are queued behind it.  None when the scenario turns it off.
    floor_job: Pending[VersionTables] | None = None
    # Release schedule: one entry per release (a single one without a release train).
    releases: tuple[Release, ...] = ()
    # The users every version was calibrated on (release versions built later reuse them).
    calibration_sample: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    # Release versions built during runs, by lineage, so replications reuse them.
    release_memo: dict[tuple[str, ...], BuiltRelease] = field(default_factory=dict)
    # The scenario's item and user attribute tables, read against this run's ids.
    attributes: RunAttributes = field(default_factory=RunAttributes)
    # bool [n_users]: users ``rollout.target`` lets see the candidate (None: no such rule).
    targeted: np.ndarray | None = None
    # How the versions were built and named, and the artifact store they came from and new
    # list rows go to (release versions built during runs go through it too).
    builder: VersionBuilder | None = None
    # Wall seconds of preparation's parts: ``world_s`` (world and history, or the log),
    # ``training_s`` (inside implicit's calls, for the versions trained rather than loaded).
    phases: dict[str, float] = field(default_factory=dict)
    # Nodes of finite memory and both versions' footprints (``[resources]`` with nodes).
    memory: MemoryPlan | None = None
    # The version production returns to on a release's rollback
    # (``release_train.rollback_to``); None: production stays where it was.
    rollback_to: str | None = None
    # The registry the run registers its versions in (``registry``), releases built during
    # the run included; None without one.
    registry_root: Path | None = None
    # The holdout window versions are evaluated on when registered (computed once).
    holdout_memo: list[Holdout] = field(default_factory=list)

    @property
    def noise_floor(self) -> VersionTables | None:
        """The noise floor's tables, once built (waits for the background job)."""
        return None if self.floor_job is None else self.floor_job.result()

    def top_k_s(self) -> float:
        """Wall seconds spent scoring top-K lists so far (preparation and traffic), the
        noise floor's apart (it is scored in the background: ``noise_floor_s``)."""
        built = tuple(release.tables for release in self.release_memo.values())
        return float(sum(t.list_store.scoring_s for t in (*self.versions, *built)))

    def noise_floor_s(self) -> float | None:
        """Wall seconds of the noise floor's background work (training and lists), waiting
        for it to finish; None without a noise floor."""
        if self.floor_job is None:
            return None
        self.floor_job.result()
        return self.floor_job.work_s

    def save_lists(self) -> None:
        """Add the top-K rows scored since preparing to the artifact store (if any)."""
        floor = () if self.noise_floor is None else (self.noise_floor,)
        built = tuple(release.tables for release in self.release_memo.values())
        for tables in (*self.versions, *floor, *built):
            tables.list_store.save()

    @property
    def noise_floor_items(self) -> np.ndarray | None:
        """int32 [n_users, K] top-K of the re-seeded baseline (rows of scored users only)."""
        return None if self.noise_floor is None else self.noise_floor.items


@dataclass(slots=True)
class RunResult:
    """Everything a report needs; ``requests`` is the per-request frame."""

    scenario: Scenario
    prepared: Prepared
    stream: RequestStream
    outcome: EngineOutcome
    controller: RolloutController
    analyst: Analyst
    monitor: Monitor
    requests: pl.DataFrame
    replication: int = 0
    timing: dict[str, float] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    #: Where the run left its units (see ``_final_routing``).
    final_routing: dict[str, Any] = field(default_factory=dict)
    #: Every version of this run, by index: the prepared ones, then the releases built
    #: during the run (a release train's lineage depends on what was rolled back).
    versions: tuple[VersionTables, ...] = ()


def _fallback_of(scenario: Scenario, name: str) -> str | None:
    """The model whose lists serve the users ``name`` has none for (None: popularity)."""
    fallback = scenario.models[name].fallback
    if fallback in (None, "popular"):
        return None
    return scenario.rollout.baseline if fallback == "baseline" else fallback


def _model_order(scenario: Scenario) -> list[str]:
    """Models in an order where every parent and fallback comes before the models using it."""
    done: list[str] = []
    pending = list(scenario.models)
    while pending:
        for name in list(pending):
            needs = (scenario.models[name].parent, _fallback_of(scenario, name))
            if all(other is None or other in done for other in needs):
                done.append(name)
                pending.remove(name)
    return done


def _segments(counts: np.ndarray) -> np.ndarray:
    active = counts[counts >= 5]
    heavy_from = float(np.quantile(active, 0.75)) if active.size else np.inf
    segment = np.ones(counts.size, np.uint8)  # light
    segment[counts < 5] = 0
    segment[(counts >= 5) & (counts >= heavy_from)] = 2
    return segment


def _distinct(users: np.ndarray) -> np.ndarray:
    """The ids in ``users`` (>= 0), each once, ascending: ``np.unique`` without its sort of
    every request (one pass over a count per id)."""
    return np.flatnonzero(np.bincount(users)) if users.size else np.zeros(0, np.int64)


def _registered_parent(tables: dict[str, VersionTables], name: str) -> str | None:
    """The run's version whose registry id is the ``parent_id`` of version ``name`` (a
    version loaded from the registry), if any."""
    provenance = tables[name].origin.get("provenance") or {}
    parent_id = provenance.get("parent_id") if tables[name].origin["source"] == "lab" else None
    if not parent_id:
        return None
    for other, table in tables.items():
        if other != name and table.origin.get("registry_id") == parent_id:
            return other
    return None


def _calibrator(
    settings: ModelSettings,
    tables: dict[str, VersionTables],
    name: str,
    builder: VersionBuilder,
    trained: tuple[TrainedModel, sp.csr_matrix] | None,
    *,
    rng: np.random.Generator,
) -> ClickCalibrator:
    """Fit a version's click calibration or take its parent's (see :mod:`lab.calibration`);
    a fit on simulated feedback goes through the artifact store when there is one.

    A registered update loaded from the registry takes its parent's exactly as it did when
    it was trained in a run, when that parent is one of this run's versions (found by its
    registry id): loading a version never changes how it is calibrated.  ``trained``: a lab
    version's model as trained and what it learnt from, for a fit on logged feedback that
    folds users in at the feedback's time (``lab.fold_in.at_feedback_time``).
    """
    source = builder.source
    parent_name = settings.parent or _registered_parent(tables, name)
    parent = tables[parent_name].calibrator if parent_name is not None else None
    if parent is not None and settings.calibration == "inherit":
        return parent.inherited(name)
    if source.feedback is not None:
        if parent is not None:
            # It trained on the held-out window: judging it there would reward memory.
            return parent.inherited(name)
        table = tables[name]
        if trained is not None:
            table = at_feedback_time(table, *trained, source.feedback, threads=builder.threads)
        return fit_on_logged_feedback(table, source.feedback, rng=rng)
    table = tables[name]

    def fit() -> ClickCalibrator:
        return fit_on_simulated_feedback(table, source.world.activity, rng=rng)

    truth = source.truth
    if builder.store is None or not isinstance(truth, ClickTruth):
        return fit()
    key = calibration_key(
        builder.code,
        version=name,
        versions=builder.keys,
        consumed=source.data_key("all"),
        k=int(table.items.shape[1]),
        click_offset=truth.click_offset,
        activity_engagement=truth.activity_engagement,
        explore_slots=table.exploration.slots if table.exploration else 0,
        click_lift=table.click_lift,
        lists=MAX_LISTS,
        rng_state=rng.bit_generator.state,
    )
    return stored_calibration(builder.store, key, rng, fit)


def _noise_floor(
    scenario: Scenario,
    baseline: TrainedModel,
    seed: int,
    builder: VersionBuilder,
    popular_items: np.ndarray,
    sample: np.ndarray,
    *,
    threads: int,
) -> VersionTables:
    """The baseline trained again on the same data with the same spec and seed + 1 (the
    spec of the baseline trained in the run or loaded from the registry).

    Only its lists are read (the tables hold no relevance, scores or predictions, so it needs
    no click calibration), and no shared generator is drawn from, so turning the noise floor
    on or off changes no other number of the run, and neither does the thread it is built on
    (``prepare`` builds it in the background; ALS trains the same factors whatever the
    number of ``threads``).
    """
    source = builder.source
    matrices = source.matrices
    settings = scenario.models[scenario.rollout.baseline]
    spec = (
        model_spec(settings, seed)
        if settings.source == "lab"
        else replace(baseline.spec, seed=seed)
    )
    key = model_key("train", builder.code, data=source.data_key("train"), spec=spec)
    model = builder.model(key, lambda: train(spec, matrices["train"], threads=threads))
    n_users, k = source.world.n_users, scenario.users.list_size
    # Served as the baseline is: replayed users folded in when the scenario folds them.
    served, knows, served_key, consumed, consumed_key = for_replay(
        source, model, matrices["train"], key, threads=threads
    )
    tables = VersionTables(
        NOISE_FLOOR,
        served,
        seen=knows,
        consumed=matrices["all"],
        truth=source.truth,
        n_users=n_users,
        popular_items=popular_items,
        k=k,
        click_lift=0.0,
        parent=None,
        update=None,
        list_store=builder.lists(
            served_key, consumed_key, n_users, k, served, consumed, threads=threads
        ),
        trained_model=model,
        exploration=exploration_of(scenario.serving.explore_slots, scenario.seed),
        lists_only=True,  # only its lists are compared with the baseline's
    )
    tables.ensure(sample)
    return tables


def prepare(
    scenario: Scenario,
    *,
    source_name: str = "scenario",
    base_dir: Path | None = None,
    store: ArtifactStore | None = None,
    threads: int | None = None,
    noise_floor: bool | None = None,
    stage: Callable[[str], None] | None = None,
) -> Prepared:
    """Build the world (or read the log), and train every version.

    store        where worlds, trained versions and top-K lists are reused from and saved
                 to (``lab.artifacts``); None builds everything here
    threads      threads for ALS training (same factors whatever the number); default: every
                 CPU this process may use
    noise_floor  override ``metrics.noise_floor`` (sweeps never read the noise floor)
    stage        told, in words, each part of the preparation as it starts (the world, each
                 version's training, calibration and top-K lists, the noise floor): progress
                 for the CLI
    """
    say = stage or (lambda _text: None)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    started = time.perf_counter()
    rng = seeded_streams(scenario.seed)
    say("reading the log" if scenario.traffic.source == "log" else "building the world")
    source = build_source(scenario, rng, source=source_name, base_dir=base_dir, store=store)
    world_s = time.perf_counter() - started
    attributes = read_run_attributes(
        scenario.attributes, source, source=source_name, base_dir=base_dir
    )
    targeted = target_users(scenario.rollout.target, attributes.users, source=source_name)
    if scenario.traffic.duration != source.duration_s:
        # A replayed log fixes the run's length; the resolved scenario says so.
        traffic = scenario.traffic.model_copy(update={"duration": source.duration_s})
        scenario = scenario.model_copy(update={"traffic": traffic})
    builder = VersionBuilder(source, store, code_fingerprint(), threads or default_threads())
    world = source.world
    matrices = source.matrices
    n_users = world.n_users
    all_matrix = matrices["all"]
    k = scenario.users.list_size
    truth = source.truth
    item_popularity = np.asarray(all_matrix.getnnz(axis=0), dtype=np.int64)
    popular_items = np.argsort(-item_popularity, kind="stable")[:k].astype(np.int32)

    models: dict[str, TrainedModel] = {}
    trained: dict[str, tuple[TrainedModel, sp.csr_matrix]] = {}  # lab versions, unfolded
    tables: dict[str, VersionTables] = {}
    seeds = rng["models"].integers(0, 2**31 - 1, size=len(scenario.models))
    built = _model_order(scenario)
    for index, (name, seed) in enumerate(zip(built, seeds, strict=True)):
        settings = scenario.models[name]
        fallback = _fallback_of(scenario, name)
        lineage: tuple[str | None, str | None] = (
            (settings.parent, settings.update) if settings.parent else (None, None)
        )
        external_lists: ListRows | None = None
        if settings.source == "lab":
            say(f"training {name} ({index + 1} of {len(built)})")
            model, seen, key = builder.version(name, settings, int(seed), models, rng=rng["models"])
            covered, origin = None, None
        else:
            say(f"loading {name} from {settings.source} ({index + 1} of {len(built)})")
            external = load_external(
                name,
                settings,
                scenario,
                source,
                code=builder.code,
                source=source_name,
                base_dir=base_dir,
                item_popularity=item_popularity,
            )
            model, seen, key = external.model, external.seen, external.key
            builder.keys[name] = key
            external_lists = external.lists
            covered, origin = external.covered, external.origin
            registered = (origin.get("provenance") or {}) if settings.source == "registry" else {}
            if registered.get("parent_id"):
                # A registered update: its lineage as the registry tells it.
                lineage = (str(registered["parent_id"]).split("@")[0], str(registered["update"]))
        served, knows, served_key, consumed, consumed_key = model, seen, key, all_matrix, None
        if settings.source in ("lab", "registry"):
            # Versions the lab trained (now or into the registry) serve replayed users
            # folded in when the scenario folds them (lab.fold_in).
            trained[name] = (model, seen)
            served, knows, served_key, consumed, consumed_key = for_replay(
                source, model, seen, key, threads=builder.threads
            )
        list_store: ListRows = external_lists or builder.lists(
            served_key, consumed_key or source.data_key("all"), n_users, k, served, consumed
        )
        models[name] = model
        tables[name] = VersionTables(
            name,
            served,
            seen=knows,
            consumed=all_matrix,
            truth=truth,
            n_users=n_users,
            popular_items=popular_items,
            k=k,
            click_lift=settings.click_lift,
            parent=lineage[0],
            update=lineage[1],
            list_store=list_store,
            covered=covered,
            fallback=None if fallback is None else tables[fallback],
            origin=origin,
            trained_model=model,
            exploration=exploration_of(scenario.serving.explore_slots, scenario.seed),
        )
    loaded = {
        name: str(t.origin["registry_id"])
        for name, t in tables.items()
        if scenario.models[name].source == "registry"
    }
    rollback_to = rollback_target(scenario, loaded, source=source_name, base_dir=base_dir)
    # Calibrate every version on the same validation sample of users, drawn by activity,
    # before any traffic: predictions then never depend on which replication ran first.
    calibration_rng = rng["models"]
    sample = calibration_rng.choice(
        n_users, size=min(3_000, n_users), replace=False, p=world.activity / world.activity.sum()
    )
    floor_job = None
    # The versions' training, before the floor's joins the builder's sum from its thread.
    versions_training_s = builder.trained_s
    baseline_model = models[scenario.rollout.baseline]
    baseline_seed = int(seeds[built.index(scenario.rollout.baseline)])
    if scenario.models[scenario.rollout.baseline].source != "lab":
        baseline_seed = baseline_model.spec.seed
    floor_wanted = scenario.metrics.noise_floor if noise_floor is None else noise_floor
    # A baseline built outside the lab cannot be trained again: no noise floor then.
    if floor_wanted and baseline_model.algorithm != "external":
        say("training the noise floor (baseline, seed + 1) in the background")
        # Only the metrics read it, so it is built beside calibration, scoring and the
        # simulation, on every core but at a low priority (lab.background): the
        # simulation keeps its core, the floor takes what is left.
        floor_job = Pending(
            partial(
                _noise_floor,
                scenario,
                baseline_model,
                baseline_seed + 1,
                builder,
                popular_items,
                sample,
                threads=builder.threads,
            ),
            name="noise-floor",
            yielding=True,
        )
    say("calibrating clicks and scoring top-K lists")
    for name in _model_order(scenario):
        tables[name].calibrator = _calibrator(
            scenario.models[name], tables, name, builder, trained.get(name), rng=calibration_rng
        )
        tables[name].ensure(sample)
    order = [scenario.rollout.baseline, scenario.rollout.candidate]
    order += [name for name in tables if name not in order]
    popular = PopularTables(popular_items, truth, n_users)
    popular.ensure(sample, tables[scenario.rollout.baseline])
    training_s = {name: m.training_seconds for name, m in models.items()}
    counts = np.asarray(all_matrix.getnnz(axis=1), dtype=np.int64)
    if source.live_world is None:
        # Replayed logs have no latent truth: factor-space metrics use the baseline's items.
        baseline_model = models[scenario.rollout.baseline]
        world = replace(world, item_factors=np.asarray(baseline_model.item_factors))
    return Prepared(
        scenario=scenario,
        world=world,
        source=source,
        versions=tuple(tables[name] for name in order),
        popular=popular,
        user_segment=_segments(counts),
        history_counts=counts,
        history_users=source.history_users,
        history_items=source.history_items,
        item_popularity=item_popularity,
        history_events=int(source.history_items.size),
        releases=tuple(release_schedule(scenario)),
        calibration_sample=sample,
        prepare_s=time.perf_counter() - started,
        training_s=training_s,
        floor_job=floor_job,
        builder=builder,
        phases={"world_s": world_s, "training_s": versions_training_s},
        rollback_to=rollback_to,
        memory=memory_plan(
            scenario,
            tables[scenario.rollout.baseline],
            tables[scenario.rollout.candidate],
            source_name,
        ),
        attributes=attributes,
        targeted=targeted,
    )


def _service(settings: ModelSettings, scenario: Scenario) -> ServiceTime:
    return _law(settings.latency or scenario.serving.latency)


def _law(law: Latency) -> ServiceTime:
    if isinstance(law, LognormalLatency):
        return ServiceTime("lognormal", p50_ms=law.p50_ms, p99_ms=law.p99_ms)
    if law.kind == "exponential":
        return ServiceTime("exponential", mean_ms=law.mean_ms)
    return ServiceTime("empirical", samples_ms=tuple(law.samples_ms))


def _stage_plans(settings: ModelSettings, scenario: Scenario) -> tuple[StagePlan, ...]:
    """The version's serving path in the order requests pass it (empty: one pool)."""
    stages = settings.stages or scenario.serving.stages
    if stages is None:
        return ()
    plans = []
    for k in stage_order(stages, ("stages",)):
        stage = stages[k]
        timeout_ms = stage.timeout_ms
        plans.append(
            StagePlan(
                name=stage.name,
                service=_law(stage.latency),
                replicas=stage.replicas,
                concurrency=stage.concurrency,
                timeout_s=math.inf if timeout_ms is None else timeout_ms / 1000.0,
                degrade=DEGRADE_CODES[stage.degrade],
            )
        )
    return tuple(plans)


def _autoscaler_plan(settings: Autoscaler | None) -> AutoscalerPlan | None:
    if settings is None:
        return None
    return AutoscalerPlan(
        target_utilisation=settings.target_utilisation,
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        stabilisation_s=settings.stabilisation,
        scale_up_delay_s=settings.scale_up_delay,
        sync_s=settings.sync,
    )


def _fault_windows(faults: list[Fault], names: list[str]) -> tuple[FaultWindow, ...]:
    return tuple(
        FaultWindow(
            names.index(f.version),
            f.kind,
            f.at,
            f.at + f.length,
            factor=f.factor,
            fraction=f.fraction,
            replicas=f.replicas,
        )
        for f in faults
    )


def _check_coverage(
    scenario: Scenario, versions: tuple[VersionTables, ...], users: np.ndarray
) -> None:
    """Each external version's share of the traffic's users with a list of its own
    (``origin["coverage"]``); below ``require_coverage`` the run stops (exit 2)."""
    distinct = np.unique(users)
    for tables in versions:
        settings = scenario.models.get(tables.name)
        if tables.covered is None or settings is None or distinct.size == 0:
            continue
        share = float(tables.covered[distinct].mean())
        tables.origin["coverage"] = {"traffic_users": int(distinct.size), "share": share}
        table = settings.topk or settings.embeddings
        need = None if table is None else table.require_coverage
        if need is not None and share < need:
            path = tables.origin["provenance"]["path"]
            raise UserInputError(
                f"{path}: covers {share:.1%} of the run's {distinct.size:,} traffic users, below "
                f"models.{tables.name}.{settings.source}.require_coverage = {need:g}; add the "
                "missing users or lower require_coverage (the others get the fallback)"
            )


def simulate_prepared(
    prepared: Prepared,
    replication: int = 0,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Draw traffic for ``replication`` and run the event simulation on the prepared versions."""
    scenario = prepared.scenario
    rng = seeded_streams(scenario.seed, replication)
    started = time.perf_counter()
    tr = scenario.traffic
    assert tr.duration is not None
    stream = prepared.source.requests(replication, rng["traffic"])
    traffic_s = time.perf_counter() - started
    # Score top-K rows for users first seen in this traffic: model work, timed apart.
    scoring_started = time.perf_counter()
    impressions = prepared.source.impressions
    traffic_users = _distinct(stream.user)
    impression_users = None if impressions is None else _distinct(impressions.user)
    user_sets = (traffic_users,) if impression_users is None else (traffic_users, impression_users)
    if prepared.floor_job is not None:

        def score_floor(floor: VersionTables) -> None:
            for user_set in user_sets:
                floor.ensure(user_set)

        # The noise floor's rows are scored in the background, behind its training.
        prepared.floor_job.then(score_floor)
    for tables in prepared.versions:
        # Off-policy estimates read every logged impression's user's list too.
        for user_set in user_sets:
            tables.ensure(user_set)
    prepared.popular.ensure(traffic_users, prepared.versions[0])
    _check_coverage(scenario, prepared.versions, traffic_users)
    scoring_s = time.perf_counter() - scoring_started

    sim_started = time.perf_counter()
    rollout = scenario.rollout
    router_salt = int(rng["router"].integers(0, 2**62))
    unit = stream.user if rollout.sticky_by == "user" else stream.session
    n_units = (
        prepared.world.n_users
        if rollout.sticky_by == "user"
        else int(stream.session.max(initial=-1)) + 1
    )
    if rollout.target_segments:
        wanted = np.array([SEGMENTS.index(s) for s in rollout.target_segments], np.uint8)
        eligible = np.isin(prepared.user_segment[stream.user], wanted)
    else:
        eligible = np.ones(len(stream), dtype=bool)
    if prepared.targeted is not None:
        # Targeting by user attribute: decided per request before the run, like segments.
        eligible &= prepared.targeted[stream.user]
    # Later releases of a train get their versions when they start; until then their slots
    # hold the candidate's tables (nothing is routed to a release before it starts).
    later = [r.name for r in prepared.releases[1:]]
    versions = [*prepared.versions, *[prepared.versions[1]] * len(later)]
    names = [t.name for t in prepared.versions] + later
    version_plans = []
    for name in names:
        # Later releases of a train serve like the candidate they were updated from.
        settings = scenario.models.get(name) or scenario.models[scenario.rollout.candidate]
        cold = settings.cold_start
        version_plans.append(
            VersionPlan(
                name=name,
                service=_service(settings, scenario),
                replicas=settings.replicas or scenario.serving.replicas,
                concurrency=settings.concurrency or scenario.serving.concurrency,
                cold_factor=cold.factor if cold else 1.0,
                cold_length_s=cold.length if cold else 0.0,
                stages=_stage_plans(settings, scenario),
                autoscaler=_autoscaler_plan(settings.autoscaler or scenario.serving.autoscaler),
            )
        )
    cache = scenario.cache
    plan = EnginePlan(
        t_s=stream.t_s,
        user=stream.user,
        assign_bucket=stable_buckets(unit, salt=router_salt),
        mirror_bucket=stable_buckets(unit, salt=router_salt + 1),
        eligible=eligible,
        session=stream.session,
        unit=unit,
        n_units=n_units,
        sticky_memory=POLICIES[rollout.policy].remembers_assignment,
        n_users=prepared.world.n_users,
        versions=tuple(version_plans),
        baseline=0,
        candidate=1,
        timeout_s=scenario.serving.timeout_ms / 1000.0,
        queue_limit=scenario.serving.queue_limit,
        fallback=tuple(scenario.serving.fallback),
        fallback_latency_s=scenario.serving.fallback_latency_ms / 1000.0,
        cache=CachePlan(
            cache.enabled,
            cache.capacity,
            cache.ttl,
            cache.invalidation,
            cache.hit_latency_ms / 1000.0,
            coalesce=cache.coalesce,
        ),
        duration_s=tr.duration,
        faults=_fault_windows(scenario.faults, names),
        memory=prepared.memory,
    )
    relevance = {v: t.relevance for v, t in enumerate(versions)}
    relevance[POPULAR] = prepared.popular.relevance
    predicted = {v: t.predicted for v, t in enumerate(versions)}
    predicted[POPULAR] = prepared.popular.predicted
    users = scenario.users
    records = Records(len(stream))
    cascade = CascadeUsers(users.position_decay, users.abandon_after_ms, users.abandon_per_100ms)
    memory = _remembering_users(scenario, prepared, stream, cascade, rng["users"])
    monitor = Monitor(
        records,
        stream.t_s,
        stream.user,
        relevance,
        predicted,
        names,
        cascade,
        rng=rng["users"],
        unit=unit,
        session=stream.session,
        eligible=eligible,
        request_truth=_request_truth(prepared, stream),
        list_quality=_list_quality(prepared, versions, stream),
        slos={s.name: slo_plan(s) for s in scenario.slos},
        retrieval=Retrieval(
            {v: t.items for v, t in enumerate(versions)},
            prepared.item_popularity,
            {v: t.predict_shown for v, t in enumerate(versions)},
        ),
        memory=memory,
        popular_items=prepared.popular.items,
    )

    def install(v: int, tables: VersionTables) -> None:
        """Serve a release version built during the run from now on."""
        tables.ensure(traffic_users)
        versions[v] = tables
        monitor.relevance[v] = tables.relevance
        monitor.predicted[v] = tables.predicted
        if monitor.retrieval is not None:
            monitor.retrieval.items[v] = tables.items
            monitor.retrieval.predict[v] = tables.predict_shown
        quality = _list_quality(prepared, [versions[0], tables], stream)
        for metric, per_version in quality.items():
            monitor.list_quality[metric][v] = per_version[1]

    factory = (
        ReleaseFactory(
            scenario,
            prepared.builder
            or VersionBuilder(prepared.source, None, code_fingerprint(), default_threads()),
            versions,
            sample=prepared.calibration_sample,
            memo=prepared.release_memo,
            install=install,
            registry=None if prepared.registry_root is None else Registry(prepared.registry_root),
            holdout=partial(holdout_of, prepared),
        )
        if later
        else None
    )
    analyst = evidence_for(rollout, monitor, horizon_s=tr.duration)
    controller = RolloutController(
        rollout,
        analyst,
        baseline=0,
        candidate=1,
        rng=rng["policy"],
        version_names=names,
        releases=[(r.at_s, names.index(r.name)) for r in prepared.releases] or None,
        builder=factory,
        rollback_to=None if prepared.rollback_to is None else names.index(prepared.rollback_to),
    )
    outcome = simulate(
        plan,
        controller,
        records,
        rng_service=rng["service"],
        rng_faults=rng["faults"],
        progress=progress,
        presence=monitor if memory is not None else None,
    )
    end_s = max(tr.duration, float(stream.t_s[-1]) if len(stream) else 0.0)
    monitor.settle(end_s, upto=len(stream))
    final_routing = _final_routing(controller, plan, names, end_s, rollout.sticky_by)
    simulate_s = traffic_s + (time.perf_counter() - sim_started)
    frame = records.to_frame(
        stream.t_s,
        stream.user,
        stream.session,
        names,
        stage_names={v: [c.name for c in path] for v, path in outcome.stages.items()},
        coalesce=outcome.cache is not None and scenario.cache.coalesce,
    )
    frame = frame.with_columns(
        pl.Series("segment", np.asarray(SEGMENTS)[prepared.user_segment[stream.user]]).cast(
            pl.Categorical
        )
    )
    if memory is not None:
        # The requests of users who had left were never sent: counted in the remembering
        # users' block, absent from the request table and from every other metric.
        sent = records.result != ABSENT
        frame = frame.filter(pl.Series(sent))
        stream = stream.subset(sent)
    drift_rng = rng["users"]
    consumed_t_s, consumed = prepared.source.consumption(stream, drift_rng)
    drift = drift_summary(
        history_items=prepared.history_items,
        history_users=prepared.history_users,
        item_popularity=prepared.item_popularity,
        history_counts=prepared.history_counts,
        users=stream.user,
        consumed_t_s=consumed_t_s,
        consumed_items=consumed,
        window_edges_s=[w[0].t_end_s for w in monitor.windows],
        rng=drift_rng,
    )
    return RunResult(
        scenario=scenario,
        prepared=prepared,
        stream=stream,
        outcome=outcome,
        controller=controller,
        analyst=analyst,
        monitor=monitor,
        requests=frame,
        replication=replication,
        timing={"simulate_s": simulate_s, "scoring_s": scoring_s},
        drift=drift,
        final_routing=final_routing,
        versions=tuple(versions),
    )


def _remembering_users(
    scenario: Scenario,
    prepared: Prepared,
    stream: RequestStream,
    cascade: CascadeUsers,
    rng: np.random.Generator,
) -> RememberingUsers | None:
    """The remembering users' state for this run (None: the memoryless cascade).

    Their return draws come from a stream spawned off the users' stream, which spawning
    leaves unchanged: the clicks are drawn as they would be."""
    settings = scenario.users.remembering
    if settings is None:
        return None
    factors = np.asarray(prepared.world.item_factors, np.float64)
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)
    return RememberingUsers(
        MemoryParams(
            **settings.model_dump(exclude={"update_every"}), update_every_s=settings.update_every
        ),
        cascade,
        user=stream.user,
        session=stream.session,
        n_users=prepared.world.n_users,
        item_unit_factors=unit,
        rng=rng.spawn(1)[0],
    )


def _final_routing(
    controller: RolloutController, plan: EnginePlan, names: list[str], end_s: float, unit: str
) -> dict[str, Any]:
    """Where the run left its units: the share of the units seen on each version at the end."""
    units, first = np.unique(plan.unit, return_index=True)
    versions = final_versions(
        controller.routing,
        unit=units,
        bucket=plan.assign_bucket[first],
        eligible=plan.eligible[first],
        at_s=end_s,
    )
    counts = np.bincount(versions, minlength=len(names))
    total = max(int(units.size), 1)
    return {
        "at_s": end_s,
        "unit": unit,
        "units": int(units.size),
        "baseline": names[controller.baseline],
        "candidate": names[controller.candidate],
        "candidate_weight": controller.weight,
        "share": {name: counts[v] / total for v, name in enumerate(names) if counts[v]},
    }


def _list_quality(
    prepared: Prepared, versions: list[VersionTables], stream: RequestStream
) -> dict[str, list[np.ndarray]]:
    """Per version and user: diversity of the list and its Jaccard@K with the baseline's
    (``versions[0]``)."""
    users = _distinct(stream.user)
    n_users = prepared.world.n_users
    factors = prepared.world.item_factors
    baseline = versions[0].items[users]
    out: dict[str, list[np.ndarray]] = {"diversity": [], "stability": []}
    for tables in versions:
        lists = tables.items[users]
        for name, values in (
            ("diversity", intra_list_diversity(lists, factors)),
            ("stability", jaccard_at_k(lists, baseline)),
        ):
            full = np.full(n_users, np.nan)
            full[users] = values
            out[name].append(full)
    return out


def _request_truth(prepared: Prepared, stream: RequestStream) -> RequestTruth | None:
    """Per-request click truth for replayed logs: what each request's user consumed next."""
    truth = prepared.source.truth
    if not stream.has_truth or not isinstance(truth, LogTruth):
        return None
    items = {v: t.items for v, t in enumerate(prepared.versions)}
    lift = {v: t.click_lift for v, t in enumerate(prepared.versions)}
    items[POPULAR] = np.broadcast_to(prepared.popular.items, prepared.versions[0].items.shape)
    lift[POPULAR] = 0.0
    return RequestTruth(
        stream.truth_ptr,
        stream.truth_items,
        items,
        lift,
        truth.click_if_consumed,
        truth.click_otherwise,
        prepared.world.n_items,
    )


def run(
    scenario: Scenario,
    *,
    source_name: str = "scenario",
    base_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    store: ArtifactStore | None = None,
    threads: int | None = None,
    stage: Callable[[str], None] | None = None,
) -> RunResult:
    """Prepare and simulate one scenario; ``result.timing`` has each phase's wall seconds.

    ``progress(done, total)`` follows the simulated requests, ``stage(text)`` the preparation;
    ``store`` and ``threads``: see ``prepare``; the lists scored for this run's traffic are
    saved to the store afterwards.
    """
    started = time.perf_counter()
    prepared = prepare(
        scenario,
        source_name=source_name,
        base_dir=base_dir,
        store=store,
        threads=threads,
        stage=stage,
    )
    if scenario.registry is not None:
        # Versions trained here are registered (content-addressed: the same version gets the
        # same id as ``rollout-lab train`` gives it), so summary.json names every version.
        from lab.external import registry_root
        from lab.lifecycle import register_versions

        if stage is not None:
            stage("registering the versions trained in this run")
        root = registry_root(scenario, source=source_name, base_dir=base_dir)
        assert root is not None
        register_versions(prepared, root)
        prepared = replace(prepared, registry_root=root)
    result = simulate_prepared(prepared, progress=progress)
    prepared.save_lists()
    result.timing["prepare_s"] = prepared.prepare_s + result.timing["scoring_s"]
    result.timing.update(prepared.phases, top_k_s=prepared.top_k_s())
    floor_s = prepared.noise_floor_s()
    if floor_s is not None:
        result.timing["noise_floor_s"] = floor_s
    if prepared.builder is not None:  # release versions trained during the run count too
        result.timing["training_s"] = prepared.builder.trained_s
    result.timing["wall_s"] = time.perf_counter() - started
    return result
