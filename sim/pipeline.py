"""One run, end to end: scenario -> world and traffic -> model versions -> simulation.

This is the library entry point (``run(scenario) -> RunResult``) that the CLI and notebooks
use.  Phases are timed apart: ``prepare`` (synthetic world, training, top-K tables) and
``simulate`` (traffic, event loop, records, user responses), so throughput figures count the
simulation alone.

Randomness: one ``SeedSequence(seed)`` spawns a named child per concern (world, history,
traffic, models, service, users, faults, router), so changing e.g. the service-time law
does not change which users arrive when — baseline and candidate see the same traffic.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from replay.calibration import Platt, fit_platt
from replay.events import interaction_matrix
from replay.requests import RequestStream
from replay.synthetic import (
    ArrivalShape,
    SyntheticWorld,
    WorldSpec,
    generate_history,
    generate_requests,
    make_world,
    window_edges,
)
from replay.topk import top_k
from replay.training import (
    ModelSpec,
    TrainedModel,
    active_ids,
    fine_tune,
    retrain,
    train,
    warm_start,
)
from sim.engine import CachePlan, EngineOutcome, EnginePlan, VersionPlan, simulate
from sim.monitor import Monitor
from sim.records import POPULAR, Records
from sim.rollout import RolloutController
from sim.router import stable_buckets
from sim.scenario import LognormalLatency, ModelSettings, Scenario
from sim.servers import ServiceTime
from sim.users import CascadeUsers, list_click_probability

__all__ = ["Prepared", "RunResult", "VersionTables", "prepare", "run", "simulate_prepared"]

STREAMS = ("world", "history", "traffic", "models", "service", "users", "faults", "router")


def seeded_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent named generators from one root seed (stable order, stable bytes)."""
    return {
        name: np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        for i, name in enumerate(STREAMS)
    }


@dataclass(frozen=True, slots=True)
class VersionTables:
    """What one version shows each user: top-K items and the true click probability of each."""

    name: str
    model: TrainedModel
    items: np.ndarray  # int32 [n_users, K], -1 = empty slot
    relevance: np.ndarray  # float32 [n_users, K], true P(click | examined)
    scores: np.ndarray  # float32 [n_users, K], the model's scores of its list
    platt: Platt  # model score -> predicted P(click | examined)
    predicted: np.ndarray  # float32 [n_users], predicted P(click on the list)
    popularity_fallback_users: int
    parent: str | None
    update: str | None


@dataclass(frozen=True, slots=True)
class Prepared:
    scenario: Scenario
    world: SyntheticWorld
    requests: RequestStream
    versions: tuple[VersionTables, ...]
    popular_items: np.ndarray  # int32 [K]
    popular_relevance: np.ndarray  # float32 [n_users, K]
    popular_predicted: np.ndarray  # float32 [n_users], the baseline's prediction for it
    history_events: int
    prepare_s: float
    training_s: dict[str, float]


@dataclass(slots=True)
class RunResult:
    """Everything a report needs; ``requests`` is the per-request frame."""

    scenario: Scenario
    prepared: Prepared
    outcome: EngineOutcome
    controller: RolloutController
    monitor: Monitor
    requests: pl.DataFrame
    timing: dict[str, float] = field(default_factory=dict)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0))), dtype=np.float32)


def _spec(settings: ModelSettings, seed: int) -> ModelSpec:
    return ModelSpec(
        algorithm=settings.algorithm,
        factors=settings.factors,
        regularization=settings.regularization,
        iterations=settings.iterations,
        alpha=settings.alpha,
        learning_rate=settings.learning_rate,
        seed=seed,
    )


def _model_order(scenario: Scenario) -> list[str]:
    """Models in an order where every parent comes before its children."""
    done: list[str] = []
    pending = list(scenario.models)
    while pending:
        for name in list(pending):
            parent = scenario.models[name].parent
            if parent is None or parent in done:
                done.append(name)
                pending.remove(name)
    return done


def prepare(scenario: Scenario) -> Prepared:
    """Build the synthetic world, its history and traffic, train every version, score top-K."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    started = time.perf_counter()
    rng = seeded_streams(scenario.seed)
    tr = scenario.traffic
    world = make_world(
        WorldSpec(tr.users, tr.items, tr.latent_factors, tr.popularity_skew), rng=rng["world"]
    )
    history = generate_history(
        world, history_s=tr.history, events_per_user=tr.history_events_per_user, rng=rng["history"]
    )
    if tr.arrivals.kind == "poisson":
        shape = ArrivalShape(tr.arrivals.rate_per_s)
    else:
        shape = ArrivalShape(
            tr.arrivals.mean_rate_per_s,
            tr.arrivals.amplitude,
            tr.arrivals.period,
            tr.arrivals.peak_at,
        )
    shape = ArrivalShape(
        shape.mean_rate_per_s,
        shape.amplitude,
        shape.period_s,
        shape.peak_at_s,
        tuple((c.at, c.factor, c.length) for c in tr.flash_crowds),
    )
    requests = generate_requests(
        world,
        shape,
        duration_s=tr.duration,
        mean_requests_per_session=tr.session.mean_requests,
        mean_think_time_s=tr.session.mean_think_time,
        rng=rng["traffic"],
    )
    start, update_start, zero = window_edges(tr.history, tr.update_window)
    events = history.events
    train_matrix = interaction_matrix(events, world.n_users, world.n_items, start, update_start)
    all_matrix = interaction_matrix(events, world.n_users, world.n_items, start, zero)
    update_matrix = interaction_matrix(events, world.n_users, world.n_items, update_start, zero)
    update_users, update_items = active_ids(update_matrix)

    k = scenario.users.list_size
    offset = scenario.users.click_offset
    traffic_users = np.unique(requests.user)
    popularity = np.asarray(all_matrix.getnnz(axis=0), dtype=np.int64)
    popular_items = np.argsort(-popularity, kind="stable")[:k].astype(np.int32)
    popular_relevance = np.zeros((world.n_users, k), np.float32)
    popular_relevance[traffic_users] = _sigmoid(
        world.affinity(traffic_users, np.broadcast_to(popular_items, (traffic_users.size, k)))
        + offset
    )

    models: dict[str, TrainedModel] = {}
    training_s: dict[str, float] = {}
    tables: list[VersionTables] = []
    model_seeds = rng["models"].integers(0, 2**31 - 1, size=len(scenario.models))
    for name, seed in zip(_model_order(scenario), model_seeds, strict=True):
        settings = scenario.models[name]
        spec = _spec(settings, int(seed))
        if settings.parent is None:
            model = train(spec, train_matrix)
            seen = train_matrix
        elif settings.update == "warm_start":
            model = warm_start(models[settings.parent], all_matrix, update_users, update_items)
            seen = all_matrix
        elif settings.update == "fine_tune":
            model = fine_tune(models[settings.parent], all_matrix, max(1, settings.iterations // 3))
            seen = all_matrix
        else:
            model = retrain(spec, all_matrix)
            seen = all_matrix
        models[name] = model
        training_s[name] = model.training_seconds
        inherited = None
        if settings.calibration == "inherit" and settings.parent is not None:
            inherited = next(t.platt for t in tables if t.name == settings.parent)
        tables.append(
            _tables(
                name,
                settings,
                model,
                seen,
                all_matrix,
                traffic_users,
                world,
                scenario,
                popular_items,
                inherited,
                rng=rng["models"],
            )
        )
    # Versions are indexed baseline first, candidate second, then the rest (engine convention).
    order = [scenario.rollout.baseline, scenario.rollout.candidate]
    order += [t.name for t in tables if t.name not in order]
    by_name = {t.name: t for t in tables}
    base = by_name[scenario.rollout.baseline]
    popular_scores = _scores(
        base.model, traffic_users, np.broadcast_to(popular_items, (traffic_users.size, k))
    )
    popular_predicted = np.zeros(world.n_users, np.float32)
    popular_predicted[traffic_users] = list_click_probability(
        base.platt.predict(popular_scores), scenario.users.position_decay
    )
    return Prepared(
        scenario=scenario,
        world=world,
        requests=requests,
        versions=tuple(by_name[n] for n in order),
        popular_items=popular_items,
        popular_relevance=popular_relevance,
        popular_predicted=popular_predicted,
        history_events=history.events.height,
        prepare_s=time.perf_counter() - started,
        training_s=training_s,
    )


def _scores(model: TrainedModel, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The model's score of ``items [n, K]`` for ``users [n]`` (0 for users or items it lacks)."""
    known_user = users < model.n_users
    safe_items = np.where((items >= 0) & (items < model.n_items), items, 0)
    user_factors = np.zeros((users.size, model.user_factors.shape[1]), np.float32)
    user_factors[known_user] = model.user_factors[users[known_user]]
    scores = np.einsum("nf,nkf->nk", user_factors, model.item_factors[safe_items])
    return np.asarray(np.where(items >= 0, scores, 0.0), dtype=np.float32)


def _tables(
    name: str,
    settings: ModelSettings,
    model: TrainedModel,
    seen: Any,
    consumed: Any,
    traffic_users: np.ndarray,
    world: SyntheticWorld,
    scenario: Scenario,
    popular_items: np.ndarray,
    inherited: Platt | None,
    *,
    rng: np.random.Generator,
) -> VersionTables:
    """Top-K lists, true relevance and calibrated predictions of one version for traffic users."""
    k = scenario.users.list_size
    result = top_k(model, traffic_users, consumed, k)
    chosen = result.items.copy()
    # Users the version never saw interact get the popularity list (what a service would do).
    rows = np.minimum(traffic_users, seen.shape[0] - 1)
    no_history = (np.asarray(seen.getnnz(axis=1))[rows] == 0) | result.unknown
    chosen[no_history] = popular_items
    truth = _sigmoid(world.affinity(traffic_users, chosen) + scenario.users.click_offset)
    truth = np.where(chosen >= 0, truth, 0.0).astype(np.float32)
    scores = _scores(model, traffic_users, chosen)
    platt = inherited if inherited is not None else _fit_calibration(scores, truth, chosen, rng=rng)
    predicted = list_click_probability(platt.predict(scores), scenario.users.position_decay)

    def full(values: np.ndarray, fill: float, dtype: Any) -> np.ndarray:
        out = np.full((world.n_users, *values.shape[1:]), fill, dtype)
        out[traffic_users] = values
        return out

    return VersionTables(
        name=name,
        model=model,
        items=full(chosen, -1, np.int32),
        relevance=full(truth, 0.0, np.float32),
        scores=full(scores, 0.0, np.float32),
        platt=platt,
        predicted=full(predicted, 0.0, np.float32),
        popularity_fallback_users=int(no_history.sum()),
        parent=settings.parent,
        update=settings.update if settings.parent else None,
    )


def _fit_calibration(
    scores: np.ndarray, truth: np.ndarray, items: np.ndarray, *, rng: np.random.Generator
) -> Platt:
    """Platt scaling fitted on a validation sample of impressions with simulated feedback.

    Up to 3,000 users' lists are shown once more and each examined item clicked with its true
    probability; the fit maps the model's score to P(click | examined).  This is how a team
    would calibrate on logged feedback before a release.
    """
    sample = rng.choice(scores.shape[0], size=min(3_000, scores.shape[0]), replace=False)
    mask = items[sample] >= 0
    labels = (rng.random(mask.shape) < truth[sample]) & mask
    return fit_platt(scores[sample][mask], labels[mask].astype(np.int8))


def _service(settings: ModelSettings, scenario: Scenario) -> ServiceTime:
    law = settings.latency or scenario.serving.latency
    if isinstance(law, LognormalLatency):
        return ServiceTime("lognormal", p50_ms=law.p50_ms, p99_ms=law.p99_ms)
    if law.kind == "exponential":
        return ServiceTime("exponential", mean_ms=law.mean_ms)
    return ServiceTime("empirical", samples_ms=tuple(law.samples_ms))


def simulate_prepared(prepared: Prepared) -> RunResult:
    """Run the event simulation on prepared inputs (the timed ``simulation`` phase)."""
    scenario = prepared.scenario
    rng = seeded_streams(scenario.seed)
    started = time.perf_counter()
    req = prepared.requests
    router_salt = int(rng["router"].integers(0, 2**62))
    unit = req.user if scenario.rollout.sticky_by == "user" else req.session
    assign_bucket = stable_buckets(unit, salt=router_salt)
    mirror_bucket = stable_buckets(unit, salt=router_salt + 1)
    version_plans = tuple(
        VersionPlan(
            name=t.name,
            service=_service(scenario.models[t.name], scenario),
            replicas=scenario.models[t.name].replicas or scenario.serving.replicas,
            concurrency=scenario.models[t.name].concurrency or scenario.serving.concurrency,
        )
        for t in prepared.versions
    )
    cache = scenario.cache
    plan = EnginePlan(
        t_s=req.t_s,
        user=req.user,
        assign_bucket=assign_bucket,
        mirror_bucket=mirror_bucket,
        eligible=np.ones(len(req), dtype=bool),
        n_users=prepared.world.n_users,
        versions=version_plans,
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
        ),
        duration_s=scenario.traffic.duration,
    )
    names = [t.name for t in prepared.versions]
    relevance = {v: t.relevance for v, t in enumerate(prepared.versions)}
    relevance[POPULAR] = prepared.popular_relevance
    predicted = {v: t.predicted for v, t in enumerate(prepared.versions)}
    predicted[POPULAR] = prepared.popular_predicted
    users = scenario.users
    records = Records(len(req))
    monitor = Monitor(
        records,
        req.t_s,
        req.user,
        relevance,
        predicted,
        names,
        CascadeUsers(users.position_decay, users.abandon_after_ms, users.abandon_per_100ms),
        rng=rng["users"],
    )
    controller = RolloutController(
        scenario.rollout, monitor, baseline=0, candidate=1, duration_s=scenario.traffic.duration
    )
    outcome = simulate(
        plan, controller, records, rng_service=rng["service"], rng_faults=rng["faults"]
    )
    monitor.settle(
        len(req), max(scenario.traffic.duration, float(req.t_s[-1]) if len(req) else 0.0)
    )
    simulate_s = time.perf_counter() - started
    frame = outcome.records.to_frame(req.t_s, req.user, req.session, names)
    return RunResult(
        scenario=scenario,
        prepared=prepared,
        outcome=outcome,
        controller=controller,
        monitor=monitor,
        requests=frame,
        timing={"simulate_s": simulate_s},
    )


def run(scenario: Scenario) -> RunResult:
    """Prepare and simulate one scenario; ``result.timing`` has each phase's wall seconds."""
    started = time.perf_counter()
    prepared = prepare(scenario)
    result = simulate_prepared(prepared)
    result.timing["prepare_s"] = prepared.prepare_s
    result.timing["wall_s"] = time.perf_counter() - started
    return result
