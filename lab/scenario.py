"""Scenario files: TOML in, one validated, immutable ``Scenario`` out.

A scenario is parsed and validated once, at the file boundary.  Every mistake — an unknown
key, a wrong type, an out-of-range value, settings that contradict each other — becomes one
line naming the file, the dotted path, what was expected and the value seen::

    quickstart.toml: rollout.weight must be in [0, 100], got 150

Inside the lab the scenario is a tree of frozen pydantic models (typed attributes, no dicts
of unknown keys); durations are float seconds, rates are per second, latencies are ms.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from lab.manifests.checks import check_rollout
from lab.manifests.loading import apply_manifest
from lab.overrides import apply_override, dotted, parse_override
from replay.errors import UserInputError, shown
from replay.files import read_regular_bytes
from replay.log_columns import Columns
from replay.log_formats import LogFormat, TimestampUnit
from sim.durations import format_duration
from sim.fault_kinds import FaultKind
from sim.policies.settings import Rollout
from sim.schema import (
    Duration,
    Fraction,
    Inconsistent,
    NonNegInt,
    PosInt,
    PositiveDuration,
    PositiveMs,
    Table,
    ranged,
)
from sim.slo_names import slo_of_metric

__all__ = [
    "MAX_SCENARIO_BYTES",
    "Scenario",
    "load_scenario",
    "parse_scenario",
    "read_scenario_text",
]


def _drop_none(dumped: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Leave unset optional settings out of the resolved scenario, so summaries of scenarios
    that do not use them stay byte-identical to what they were before the settings existed."""
    for key in keys:
        if dumped.get(key) is None:
            dumped.pop(key, None)
    return dumped


# --- traffic ---------------------------------------------------------------------------


class PoissonArrivals(Table):
    """Homogeneous Poisson requests at ``rate_per_s``."""

    kind: Literal["poisson"]
    rate_per_s: Annotated[float, ranged(0, math.inf, lo_open=True)]


class DiurnalArrivals(Table):
    """rate(t) = mean_rate_per_s * (1 + amplitude * cos(2 pi (t - peak_at) / period))."""

    kind: Literal["diurnal"]
    mean_rate_per_s: Annotated[float, ranged(0, math.inf, lo_open=True)]
    amplitude: Annotated[float, ranged(0, 1, hi_open=True)] = 0.3
    period: PositiveDuration = 86400.0
    peak_at: Duration = 0.0


Arrivals = Annotated[PoissonArrivals | DiurnalArrivals, Field(discriminator="kind")]


class FlashCrowd(Table):
    """Multiply the arrival rate by ``factor`` during ``[at, at + length)``."""

    at: Duration
    factor: Annotated[float, ranged(0, math.inf, lo_open=True)]
    length: PositiveDuration


class Ramp(Table):
    """Multiply the arrival rate by a factor growing linearly from 1 to ``factor`` over
    ``[at, at + length)`` and staying there afterwards (a launch, a marketing push)."""

    at: Duration
    factor: Annotated[float, ranged(0, math.inf, lo_open=True)]
    length: PositiveDuration


class SessionShape(Table):
    """Requests per session ~ 1 + Geometric; think time between them ~ Exponential."""

    mean_requests: Annotated[float, ranged(1, 1000)] = 3.0
    mean_think_time: PositiveDuration = 30.0


NonNegSeconds = Annotated[float, ranged(0, math.inf)]
PositiveSeconds = Annotated[float, ranged(0, math.inf, lo_open=True)]
AtLeastOne = Annotated[float, ranged(1, math.inf)]


class FittedBand(Table):
    """Users whose mean session length (requests / sessions) is at most ``max_mean_length``
    (and above the previous band's): their laws, as equally likely values."""

    max_mean_length: AtLeastOne
    session_length: Annotated[list[AtLeastOne], Field(min_length=1)]
    think_time: Annotated[list[NonNegSeconds], Field(min_length=1)]  # seconds
    return_gap: Annotated[list[PositiveSeconds], Field(min_length=1)] | None = None  # seconds


class FittedHours(Table):
    """Hour-of-day weights (UTC, hour 0 first) of sessions of at most ``max_length`` requests
    (and more than the previous class's)."""

    max_length: AtLeastOne
    hourly: Annotated[list[NonNegSeconds], Field(min_length=24, max_length=24)]


class FittedWorld(Table):
    """Empirical traffic laws measured on a log by ``rollout-lab fit-world``
    (``replay.fitted_traffic``); replaces ``arrivals`` and ``session``."""

    #: The log's time span: users' lives are laid out over it.
    span: PositiveDuration
    #: The inactivity gap the laws' sessions were cut with.
    session_gap: PositiveDuration = 1800.0
    #: Requests per user over ``span`` and the same users' sessions, as equally likely pairs.
    activity: Annotated[list[AtLeastOne], Field(min_length=1)]
    sessions: Annotated[list[AtLeastOne], Field(min_length=1)]
    #: Hour-of-day weights (UTC, hour 0 first) of users' first requests.
    hourly: Annotated[list[NonNegSeconds], Field(min_length=24, max_length=24)]
    #: Hour-of-day weights of the sessions that start a user's life or come half a day or more
    #: after its previous request, by session length (unset: first requests by ``hourly``,
    #: and such returns keep the hour their gap gives them).
    hourly_by_length: Annotated[list[FittedHours], Field(min_length=1)] | None = None
    #: ln(share of requests) of items, equally likely values (the popularity by rank).
    popularity: Annotated[list[Annotated[float, ranged(-1000, 0)]], Field(min_length=1)]
    bands: Annotated[list[FittedBand], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> FittedWorld:
        if len(self.sessions) != len(self.activity):
            raise Inconsistent(
                ("sessions",),
                f"must list one value per activity value ({len(self.activity)}), got "
                f"{len(self.sessions)} (write the block again with rollout-lab fit-world)",
                None,
            )
        if sum(self.hourly) <= 0:
            raise Inconsistent(("hourly",), "must hold a positive weight", None)
        classes = self.hourly_by_length or []
        uppers = [c.max_length for c in classes]
        if any(b <= a for a, b in itertools.pairwise(uppers)):
            raise Inconsistent(
                ("hourly_by_length",), "must be in increasing max_length", str(uppers)
            )
        for k, c in enumerate(classes):
            if sum(c.hourly) <= 0:
                raise Inconsistent(
                    ("hourly_by_length", k, "hourly"), "must hold a positive weight", None
                )
        uppers = [band.max_mean_length for band in self.bands]
        if any(b <= a for a, b in itertools.pairwise(uppers)):
            raise Inconsistent(("bands",), "must be in increasing max_mean_length", str(uppers))
        return self


TimePoint = str | float | int


class LogWindow(Table):
    """Window bounds: an ISO time with a zone, an offset from the log's end (``"-7d"``), a
    fraction of the log's time span (``0.8``) or a percentage (``"80%"``); unset = the edge."""

    start: TimePoint | None = None
    end: TimePoint | None = None


class FoldIn(Table):
    """Replayed users scored from what they did before they are replayed (``replay.fold_in``;
    README, "How replayed users are scored")."""

    #: A user with fewer interactions than this before a window (counted from the training
    #: window's start) has their first events in it taken as history, not replayed, until
    #: they have this many (counted in ``data.fold_in.warm_up_events``).
    warm_up: NonNegInt = 10
    #: ... and at least this fraction of each user's events in the window (the list a user
    #: is served then stands for at least this share of the history it is served over).
    fraction: Annotated[float, ranged(0, 1, hi_open=True)] = 0.0


class LogSource(Table):
    """A logged interaction file to replay (see README, "Replaying logs")."""

    path: Annotated[str, Field(min_length=1)]
    format: LogFormat = "auto"
    columns: Columns | None = None
    timestamp_unit: TimestampUnit = "auto"
    event_types: list[str] | None = None
    delimiter: str | None = None
    session_gap: PositiveDuration = 1800.0
    train: LogWindow = LogWindow(end=0.7)
    update: LogWindow | None = LogWindow(start=0.7, end=0.8)
    replay: LogWindow = LogWindow(start=0.8)
    #: Train, update and replay windows may share time only when this is set (leakage).
    allow_overlap: bool = False
    speedup: Annotated[float, ranged(0, math.inf, lo_open=True)] = 1.0
    rate_per_s: Annotated[float, ranged(0, math.inf, lo_open=True)] | None = None
    requests: Literal["event", "session_start"] = "event"
    horizon: Literal["session"] | PosInt = "session"
    max_truth: PosInt | None = 50
    click_if_consumed: Fraction = 0.5
    click_otherwise: Fraction = 0.01
    #: Item genres for genre calibration and diversity: a MovieLens ``movies.csv``
    #: (``movieId,title,genres`` with ``|``-separated genres), ``"auto"`` for a movies.csv
    #: beside the log when there is one, or unset (pseudo-genres from item factors).
    genres: str | None = "auto"
    #: Unset: users are scored by what the versions learnt in training (new users get the
    #: popularity list).  Set: ALS versions fold each replayed user's earlier history in.
    fold_in: FoldIn | None = None

    @model_validator(mode="after")
    def _off_policy_columns(self) -> LogSource:
        cols = self.columns
        if cols is None:
            return self
        if self.format == "obd":
            raise Inconsistent(
                ("columns",),
                'must be unset when format = "obd" (the Open Bandit Dataset\'s columns have '
                'fixed roles; remove columns, or set format = "csv" to map them yourself)',
                "set",
            )
        # A propensity without rewards, or rewards with neither propensities nor positions,
        # would silently give no estimate at all.
        if cols.propensity is not None and cols.reward is None:
            raise Inconsistent(
                ("columns", "reward"),
                "must be set when propensity is (off-policy estimates need both; map the "
                "log's reward column or remove propensity)",
                None,
            )
        if cols.position is not None and cols.reward is None:
            raise Inconsistent(
                ("columns", "reward"),
                "must be set when position is (an impression log needs the column saying "
                "whether each shown item was clicked; map it or remove position)",
                None,
            )
        if cols.reward is not None and cols.propensity is None and cols.position is None:
            raise Inconsistent(
                ("columns", "propensity"),
                "must be set when reward is, unless position is (off-policy estimates need "
                "propensities; an impression log without them needs positions; map the "
                "log's propensity or position column, or remove reward)",
                None,
            )
        return self


class Traffic(Table):
    source: Literal["synthetic", "log"] = "synthetic"
    duration: PositiveDuration | None = None
    log: LogSource | None = None
    users: PosInt = 10_000
    items: Annotated[int, ranged(2, math.inf)] = 2_000
    latent_factors: PosInt = 16
    popularity_skew: Annotated[float, ranged(0, 3)] = 0.8
    #: Weight of personal taste in the true affinity a(u, i) = taste_signal · <x_u, y_i> + b_i.
    #: 6: a perfect recommender beats the popularity list (mean item click probability 0.087
    #: against 0.054 at the defaults); at 2 it does not (0.025 against 0.030), so models
    #: learn little beyond popularity and retraining with another seed keeps ~20 % of a top-10.
    taste_signal: Annotated[float, ranged(0, 50)] = 6.0
    history: PositiveDuration = 14 * 86400.0
    update_window: PositiveDuration = 2 * 86400.0
    history_events_per_user: Annotated[float, ranged(1, 10_000)] = 20.0
    arrivals: Arrivals | None = None
    session: SessionShape = SessionShape()
    flash_crowds: list[FlashCrowd] = []
    ramps: list[Ramp] = []
    new_items: Annotated[float, ranged(0, 0.9)] = 0.0
    popularity_drift: Fraction = 0.0
    #: Laws fitted from a log (``rollout-lab fit-world``); unset: the parametric world.
    fitted: FittedWorld | None = None

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_none(handler(self), ("fitted",))

    @model_validator(mode="after")
    def _windows(self) -> Traffic:
        if self.fitted is not None:
            self._fits_fitted()
        elif self.source == "synthetic":
            for name in ("duration", "arrivals"):
                if getattr(self, name) is None:
                    raise Inconsistent((name,), "must be set for synthetic traffic", None)
        elif self.log is None:
            raise Inconsistent(
                ("log",),
                'must be set when source = "log" (e.g. log = { path = "ratings.csv" })',
                None,
            )
        if self.update_window >= self.history:
            raise Inconsistent(
                ("update_window",),
                f"must be shorter than history ({format_duration(self.history)})",
                format_duration(self.update_window),
            )
        return self

    def _fits_fitted(self) -> None:
        """A fitted block brings its own arrivals and sessions: settings that would say
        otherwise contradict it."""
        fix = "(remove it: the fitted block's laws set it)"
        if self.source != "synthetic":
            raise Inconsistent(
                ("fitted",),
                f'is only for source = "synthetic", got source = "{self.source}"',
                None,
            )
        if self.duration is None:
            raise Inconsistent(("duration",), "must be set for synthetic traffic", None)
        contradictions = {
            "arrivals": self.arrivals is not None,
            "session": "session" in self.model_fields_set,
            "flash_crowds": bool(self.flash_crowds),
            "ramps": bool(self.ramps),
        }
        for name, present in contradictions.items():
            if present:
                raise Inconsistent(
                    (name,),
                    f"contradicts traffic.fitted, which sets arrivals and sessions {fix}",
                    None,
                )


# --- models and serving ----------------------------------------------------------------


class ExponentialLatency(Table):
    kind: Literal["exponential"]
    mean_ms: PositiveMs


class LognormalLatency(Table):
    """Lognormal service time fixed by its median and 99th percentile."""

    kind: Literal["lognormal"]
    p50_ms: PositiveMs
    p99_ms: PositiveMs

    @model_validator(mode="after")
    def _order(self) -> LognormalLatency:
        if self.p99_ms <= self.p50_ms:
            raise Inconsistent(
                ("p99_ms",), f"must be greater than p50_ms ({self.p50_ms:g})", self.p99_ms
            )
        return self


class EmpiricalLatency(Table):
    """Service times resampled from measured values (ms)."""

    kind: Literal["empirical"]
    samples_ms: Annotated[list[PositiveMs], Field(min_length=1)]


Latency = Annotated[
    ExponentialLatency | LognormalLatency | EmpiricalLatency, Field(discriminator="kind")
]


class ColdStart(Table):
    """After a version first gets traffic its service times are ``factor`` x slower, easing
    linearly back to normal over ``length`` (cold caches, JIT, lazy loading)."""

    factor: Annotated[float, ranged(1, 1000)] = 3.0
    length: PositiveDuration = 300.0


class Stage(Table):
    """One stage of a version's serving path (retrieval, feature fetch, ranking, ...).

    A request passes the stages in order, each a pool of ``replicas`` x ``concurrency``
    servers with its own latency law.  ``timeout_ms`` bounds the time spent in this stage
    (queue plus service; the request's ``serving.timeout_ms`` still bounds the whole path).
    When the stage's own timeout passes, ``degrade`` says what follows: ``fail`` (a timeout,
    the fallback chain runs), ``skip`` (go on to the next stage without this one's work) or
    ``retrieval_order`` (answer at once with the retrieval-order list).  A degraded answer
    shows the version's own items re-ordered by popularity.
    """

    name: Annotated[str, Field(min_length=1, max_length=60)]
    after: str | None = None
    replicas: PosInt = 1
    concurrency: PosInt = 8
    latency: Latency
    timeout_ms: PositiveMs | None = None
    degrade: Literal["fail", "skip", "retrieval_order"] = "fail"


def stage_order(stages: Sequence[Stage], loc: tuple[str | int, ...]) -> list[int]:
    """Indices of ``stages`` in the order a request passes them.

    Without any ``after`` the list order is the path; with ``after`` the stages must form one
    chain (every stage but the first names the one before it).  Raises ``Inconsistent``
    for duplicate names, unknown stages, branches and cycles.
    """
    names = [s.name for s in stages]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise Inconsistent((*loc, i, "name"), "must be unique among the stages", name)
    if all(s.after is None for s in stages):
        return list(range(len(stages)))
    index = {name: i for i, name in enumerate(names)}
    following: dict[int, int] = {}
    for i, stage in enumerate(stages):
        if stage.after is None:
            continue
        if stage.after not in index:
            raise Inconsistent(
                (*loc, i, "after"), f"must name another stage ({', '.join(names)})", stage.after
            )
        before = index[stage.after]
        if before == i:
            raise Inconsistent((*loc, i, "after"), "must name another stage", stage.after)
        if before in following:
            raise Inconsistent(
                (*loc, i, "after"),
                f"must not follow {stage.after!r}, which {names[following[before]]!r} already "
                "follows (the stages form one chain)",
                stage.after,
            )
        following[before] = i
    roots = [i for i, s in enumerate(stages) if s.after is None]
    if len(roots) != 1:
        where = next(i for i, s in enumerate(stages) if s.after is not None)
        raise Inconsistent(
            (*loc, where, "after"),
            "must make the stages one chain without a cycle (exactly one stage without "
            f"'after'; found {len(roots)})",
            stages[where].after,
        )
    order = [roots[0]]
    while order[-1] in following:
        order.append(following[order[-1]])
    if len(order) != len(stages):
        stray = next(i for i in range(len(stages)) if i not in order)
        raise Inconsistent(
            (*loc, stray, "after"), "must not form a cycle of stages", stages[stray].after
        )
    return order


class Autoscaler(Table):
    """Scale a version's replicas on demand (``sim.autoscaler``): every ``sync``, replicas =
    ceil(ready x (in service + waiting) / capacity / ``target_utilisation``) within
    [``min_replicas``, ``max_replicas``]; new replicas take ``scale_up_delay`` to load; scaling
    down follows the largest wish of the last ``stabilisation``."""

    target_utilisation: Annotated[float, ranged(0, 1, lo_open=True)] = 0.6
    min_replicas: PosInt = 1
    max_replicas: PosInt
    stabilisation: Duration = 300.0
    scale_up_delay: Duration = 30.0
    sync: PositiveDuration = 15.0

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaler:
        if self.min_replicas > self.max_replicas:
            raise Inconsistent(
                ("min_replicas",),
                f"must be at most max_replicas ({self.max_replicas})",
                self.min_replicas,
            )
        return self


#: What serves the users an external version has no list for: the popularity list, the
#: rollout's baseline, or another model of the scenario by name.
VersionFallback = Annotated[str, Field(min_length=1, max_length=200)]


class TopKSource(Table):
    """A version's lists from a top-K table (``user, item, rank[, score][, p_click]``,
    Parquet or CSV, see ``replay.list_tables``); users it does not cover get ``fallback``.

    ``require_coverage``: the share of the run's traffic users the table must cover, else
    the run stops (exit 2); unset, a lower coverage is a note and the fallback serves.
    """

    path: Annotated[str, Field(min_length=1)]
    fallback: VersionFallback = "popular"
    require_coverage: Fraction | None = None
    p_click: str | None = None  # the column holding the system's own click probability


class EmbeddingsSource(Table):
    """A version scored by dot product of user and item factors (``.npz`` or a folder of
    ``.npy``, see ``replay.embeddings``); ``biases``: add ``user_bias``/``item_bias`` when
    the artifact holds them.  Users without a row get ``fallback``."""

    path: Annotated[str, Field(min_length=1)]
    biases: bool = True
    fallback: VersionFallback = "popular"
    require_coverage: Fraction | None = None


#: Where a version comes from besides being trained in the run (at most one per version).
EXTERNAL_SOURCES = ("registry", "topk", "embeddings", "plugin")


class ModelSettings(Table):
    algorithm: Literal["als", "bpr", "lmf", "popularity", "random"] = "als"
    # A registered version (an id, a name for its newest version, or a unique id prefix)
    # from the scenario's ``registry`` folder: loaded, not trained.
    registry: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    topk: TopKSource | None = None
    embeddings: EmbeddingsSource | None = None
    # ``package.module:factory`` of a Recommender (``replay.plugins``). Runs the user's code.
    plugin: Annotated[str, Field(min_length=3, max_length=300)] | None = None
    options: dict[str, Any] = {}  # keyword arguments of the plugin's factory

    @property
    def source(self) -> Literal["lab", "registry", "topk", "embeddings", "plugin"]:
        """Where the version comes from: trained in the run (``lab``) or one of
        ``EXTERNAL_SOURCES``."""
        for name in EXTERNAL_SOURCES:
            if getattr(self, name) is not None:
                return name  # type: ignore[return-value]
        return "lab"

    @property
    def fallback(self) -> str | None:
        """Who serves the users this version has no list for (external lists only)."""
        if self.topk is not None:
            return self.topk.fallback
        if self.embeddings is not None:
            return self.embeddings.fallback
        return None  # a plugin answers for every user

    @model_validator(mode="after")
    def _one_source(self) -> ModelSettings:
        given = [name for name in EXTERNAL_SOURCES if getattr(self, name) is not None]
        if len(given) > 1:
            raise Inconsistent(
                (given[1],), f"must not be set together with {given[0]} (one source each)", "set"
            )
        if self.options and self.plugin is None:
            raise Inconsistent(("options",), "must only be set with plugin", self.options)
        if given and self.fault is not None:
            raise Inconsistent(
                ("fault",), f"must be unset for a version from {given[0]}", self.fault
            )
        return self

    # The default world's 16 latent dimensions: 32 factors fit noise (seed overlap 0.30
    # against 0.66 at 16 on the default world; 0.49 against 0.54 on MovieLens latest-small).
    factors: PosInt = 16
    regularization: Annotated[float, ranged(0, math.inf)] = 0.05
    # More than a thousand sweeps never changes a model; 1e10 would run for ever.
    iterations: Annotated[int, ranged(1, 1_000)] = 15
    alpha: Annotated[float, ranged(0, math.inf, lo_open=True)] = 10.0
    learning_rate: Annotated[float, ranged(0, 10, lo_open=True)] = 0.01
    parent: str | None = None
    update: Literal["warm_start", "fine_tune", "retrain", "copy"] = "warm_start"
    calibration: Literal["fit", "inherit"] = "fit"
    fault: Literal["noisy_factors", "stale", "popularity_only"] | None = None
    fault_scale: Annotated[float, ranged(0, 100, lo_open=True)] = 0.5
    click_lift: Annotated[float, ranged(-0.95, 10)] = 0.0
    latency: Latency | None = None
    replicas: PosInt | None = None
    concurrency: PosInt | None = None
    cold_start: ColdStart | None = None
    # This version's own serving path (else ``serving.stages``, else one pool).
    stages: Annotated[list[Stage], Field(min_length=1)] | None = None
    # Declared memory per replica (else from the factor tables, see ``Resources``).
    memory_mb: PositiveMs | None = None
    autoscaler: Autoscaler | None = None

    @model_validator(mode="after")
    def _stage_chain(self) -> ModelSettings:
        if self.stages is not None:
            stage_order(self.stages, ("stages",))
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_none(handler(self), ("stages", "memory_mb", "autoscaler"))


Fallback = Literal["baseline", "stale_cache", "popular"]


class Serving(Table):
    replicas: PosInt = 4
    concurrency: PosInt = 8
    latency: Latency = LognormalLatency(kind="lognormal", p50_ms=12.0, p99_ms=60.0)
    timeout_ms: PositiveMs = 150.0
    queue_limit: NonNegInt = 100_000
    fallback: list[Fallback] = ["baseline", "popular"]
    fallback_latency_ms: Annotated[float, ranged(0, math.inf)] = 2.0
    budget_ms: PositiveMs = 100.0
    #: Last positions of every lab-scored list filled by exploration (``lab.exploration``).
    explore_slots: NonNegInt = 1
    # Unset: each version is one pool (replicas x concurrency, one latency law).
    stages: Annotated[list[Stage], Field(min_length=1)] | None = None
    autoscaler: Autoscaler | None = None

    @model_validator(mode="after")
    def _stage_chain(self) -> Serving:
        if self.stages is not None:
            stage_order(self.stages, ("stages",))
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_none(handler(self), ("stages", "autoscaler"))


class Cache(Table):
    enabled: bool = True
    capacity: NonNegInt = 10_000
    ttl: PositiveDuration = 600.0
    invalidation: Literal["versioned_keys", "flush_on_change", "ttl_only"] = "versioned_keys"
    hit_latency_ms: Annotated[float, ranged(0, math.inf)] = 1.0
    # Single flight: concurrent misses for one (version, user) share one model call.
    coalesce: bool = False

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not self.coalesce:
            out.pop("coalesce", None)  # summaries of runs without it stay as they were
        return out


class BurnRateAlert(Table):
    """Fire when the burn rate over ``long`` and over ``short`` both reach ``burn_rate``."""

    long: PositiveDuration
    short: PositiveDuration
    burn_rate: Annotated[float, ranged(0, math.inf, lo_open=True)]

    @model_validator(mode="after")
    def _windows_in_order(self) -> BurnRateAlert:
        if self.short >= self.long:
            raise Inconsistent(
                ("short",),
                f"must be shorter than long ({format_duration(self.long)})",
                format_duration(self.short),
            )
        return self


#: The SRE workbook's page (2 % of a 30-day budget in 1 h) and ticket (5 % in 6 h).
DEFAULT_ALERTS = [
    BurnRateAlert(long=3600.0, short=300.0, burn_rate=14.4),
    BurnRateAlert(long=21600.0, short=1800.0, burn_rate=6.0),
]


class SloSettings(Table):
    """A service-level objective over all traffic (``sim.slo``): the share ``target`` of
    requests answered within ``threshold_ms`` (latency) or answered by a model (availability)
    over ``period``, with burn-rate alerts on its error budget."""

    name: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_]*$")]
    kind: Literal["latency", "availability"]
    target: Annotated[float, ranged(0, 1, lo_open=True, hi_open=True)]
    threshold_ms: PositiveMs | None = None
    period: PositiveDuration = 30 * 86400.0
    alerts: list[BurnRateAlert] = DEFAULT_ALERTS

    @model_validator(mode="after")
    def _threshold(self) -> SloSettings:
        if self.kind == "latency" and self.threshold_ms is None:
            raise Inconsistent(("threshold_ms",), "must be set for a latency SLO", None)
        if self.kind == "availability" and self.threshold_ms is not None:
            raise Inconsistent(
                ("threshold_ms",), "must be unset for an availability SLO", self.threshold_ms
            )
        for i, alert in enumerate(self.alerts):
            if alert.long > self.period:
                raise Inconsistent(
                    ("alerts", i, "long"),
                    f"must be at most the SLO's period ({format_duration(self.period)})",
                    format_duration(alert.long),
                )
        return self


class Resources(Table):
    """Memory footprints and the cost of the replicas over the run (``reports.topology``).

    A version's footprint per replica is its ``models.NAME.memory_mb`` when declared, else
    its factor tables, (users + items) x factors x 4 bytes, plus ``overhead_mb``.
    """

    overhead_mb: Annotated[float, ranged(0, math.inf)] = 256.0
    # Nodes of finite memory (both or neither): the baseline's and the candidate's replicas
    # are placed on them; a replica without room is killed and restarts ``restart_delay``
    # later (``sim.memory``).
    nodes: PosInt | None = None
    node_memory_gb: PositiveMs | None = None
    restart_delay: PositiveDuration = 30.0

    @model_validator(mode="after")
    def _nodes_whole(self) -> Resources:
        if (self.nodes is None) != (self.node_memory_gb is None):
            missing = "node_memory_gb" if self.node_memory_gb is None else "nodes"
            raise Inconsistent((missing,), "must be set with nodes and node_memory_gb", None)
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop_none(handler(self), ("nodes", "node_memory_gb"))


class Metrics(Table):
    """Optional measurements that cost extra work before the run."""

    # Train the baseline once more with seed + 1: the stability noise floor.
    noise_floor: bool = True


class Memory(Table):
    """Remembering users' settings (``[users.memory]``; formulas in ``sim.remembering``)."""

    satisfaction_start: Fraction = 0.5
    satisfaction_rate: Annotated[float, ranged(0, 1, lo_open=True)] = 0.2
    relevant_click_probability: Annotated[float, ranged(0, 1, lo_open=True)] = 0.3
    latency_threshold_ms: Annotated[float, ranged(0, math.inf)] = 200.0
    latency_scale_ms: Annotated[float, ranged(0, math.inf, lo_open=True)] = 500.0
    latency_weight: Annotated[float, ranged(0, 10)] = 0.5
    change_weight: Annotated[float, ranged(0, 10)] = 0.5
    return_at_zero: Fraction = 0.6
    return_at_one: Fraction = 1.0
    drift_rate: Fraction = 0.05
    drift_strength: Annotated[float, ranged(0, 20)] = 1.0
    dwell_median_s: Annotated[float, ranged(0, math.inf, lo_open=True)] = 30.0
    dwell_relevance_gain: Annotated[float, ranged(-10, 10)] = 1.0
    dwell_sigma: Annotated[float, ranged(0, 5)] = 0.8
    conversion_per_relevance: Annotated[float, ranged(0, 100)] = 0.1
    #: How often users' satisfaction is brought up to date for their return decisions.
    update_every: PositiveDuration = 60.0


class Users(Table):
    """How simulated users react to a shown list (see ``sim.users``).

    ``model = "remembering"`` adds memory (``sim.remembering``): drifting taste, satisfaction,
    leaving for good; its settings are ``[users.memory]``.
    """

    choice: Literal["cascade"] = "cascade"
    model: Literal["cascade", "remembering"] = "cascade"
    list_size: PosInt = 10
    position_decay: Annotated[float, ranged(0, 1, lo_open=True)] = 0.8
    click_offset: Annotated[float, ranged(-20, 20)] = -2.5
    #: Click logit per unit of centred log activity (see ``lab.versions.ClickTruth``).  0.5
    #: puts new users' CTR at 0.66x returning users' (services see new users click less);
    #: 0 gives the inversion of a world whose clicks ignore activity (README, "The synthetic
    #: world's defaults").
    activity_engagement: Annotated[float, ranged(0, 5)] = 0.5
    abandon_after_ms: Annotated[float, ranged(0, math.inf)] = 400.0
    abandon_per_100ms: Fraction = 0.1
    memory: Memory | None = None

    @model_validator(mode="after")
    def _memory_needs_model(self) -> Users:
        if self.memory is not None and self.model != "remembering":
            raise Inconsistent(("memory",), 'needs users.model = "remembering"', self.model)
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if self.model == "cascade":
            # The memoryless default leaves no trace: summaries from before stay the same.
            dumped.pop("model", None)
            dumped.pop("memory", None)
        elif dumped.get("memory") is None:
            dumped["memory"] = Memory().model_dump()
        return dumped

    @property
    def remembering(self) -> Memory | None:
        """The remembering users' settings (defaults filled in), None for the cascade."""
        return (self.memory or Memory()) if self.model == "remembering" else None


class Fault(Table):
    """A fault on one version's servers during ``[at, at + length)``.

    latency_spike  service times x ``factor``
    error_burst    each request fails at once with probability ``fraction``
    replica_crash  ``replicas`` replicas down, then recovered
    capacity_loss  only ``fraction`` of the capacity stays up
    misroute       a router bug: ``fraction`` of the units assigned to this version are sent
                   to the baseline instead (what a sample-ratio-mismatch check must catch)
    cache_loss     a cache node fails: ``fraction`` of the cached lists and of the cache's
                   capacity are gone until it comes back, empty (``version`` is ignored:
                   the cache is shared)
    """

    kind: FaultKind
    version: str
    at: Duration
    length: PositiveDuration
    factor: Annotated[float, ranged(0, 1000, lo_open=True)] = 5.0
    fraction: Fraction = 0.5
    replicas: PosInt = 1


# --- attribute tables ------------------------------------------------------------------


class AttributeTableSettings(Table):
    """A CSV or Parquet table with one row per id and any columns (see ``replay.attributes``).

    ``multi_valued`` names the columns whose cells hold several values and their separator
    (``{ genres = "|" }``); ``categorical`` the columns to group by (default: every
    multi-valued column and every text column with at most 100 distinct values).
    """

    path: Annotated[str, Field(min_length=1)]
    id: Annotated[str, Field(min_length=1)]
    multi_valued: dict[str, Annotated[str, Field(min_length=1)]] = {}
    categorical: list[Annotated[str, Field(min_length=1)]] | None = None


class ItemAttributes(AttributeTableSettings):
    """Item attributes: genre, provider, price band, release date...; ``provider`` names the
    column whose groups the provider-fairness table compares (exposure against catalogue
    and popularity share)."""

    id: Annotated[str, Field(min_length=1)] = "item"
    provider: Annotated[str, Field(min_length=1)] | None = None


class UserAttributes(AttributeTableSettings):
    """User attributes: country, platform, cohort...; groups for segments, fairness and
    ``rollout.target``."""

    id: Annotated[str, Field(min_length=1)] = "user"


class Attributes(Table):
    items: ItemAttributes | None = None
    users: UserAttributes | None = None


def _expect_value(value: object) -> object:
    if isinstance(value, str | bool | int | float):
        return value
    raise ValueError('must be a condition such as "< 120" or a value such as "rolled_back"')


class ReleaseTrain(Table):
    """Scheduled updates during the run: release 1 is ``rollout.candidate`` at time zero;
    release k (k = 2..count) starts at ``(k - 1) * every``, updated from release k - 1 on the
    interactions of the interval before it, and rolls out behind the current production
    version with the same policy.  A rollback keeps the last good version in production,
    or returns production to ``rollback_to``."""

    every: PositiveDuration
    count: Annotated[int, ranged(2, 50)] = 3
    update: Literal["warm_start", "fine_tune", "retrain"] = "warm_start"
    # A registered version (id, name or unique id prefix, as ``[models.NAME] registry``)
    # that production returns to on every rollback, instead of staying where it was.  It
    # must be one of the run's versions loaded from the registry.
    rollback_to: Annotated[str, Field(min_length=1, max_length=300)] | None = None


ExpectValue = Annotated[str | bool | int | float, BeforeValidator(_expect_value)]


class Scenario(Table):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    seed: NonNegInt = 0
    traffic: Traffic
    models: dict[str, ModelSettings]
    serving: Serving = Serving()
    cache: Cache = Cache()
    users: Users = Users()
    rollout: Rollout = Rollout()
    faults: list[Fault] = []
    release_train: ReleaseTrain | None = None
    metrics: Metrics = Metrics()
    resources: Resources | None = None
    attributes: Attributes = Attributes()
    expect: dict[str, ExpectValue] = {}
    slos: list[SloSettings] = []
    # The model registry folder (``rollout-lab train`` writes it; ``--registry`` sets it):
    # versions named by ``[models.NAME] registry = "ID"`` load from it, and versions trained
    # in the run are registered in it.
    registry: Annotated[str, Field(min_length=1)] | None = None

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not self.slos:
            out.pop("slos", None)  # summaries of runs without SLOs stay as they were
        return _drop_none(out, ("resources",))

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        names = set(self.models)
        for role in ("baseline", "candidate"):
            name = getattr(self.rollout, role)
            if name not in names:
                raise Inconsistent(
                    ("rollout", role),
                    f"must name a model in [models] ({', '.join(sorted(names)) or 'none'})",
                    name,
                )
        if self.serving.explore_slots >= self.users.list_size:
            raise Inconsistent(
                ("serving", "explore_slots"),
                f"must be smaller than users.list_size ({self.users.list_size}): the model "
                "keeps at least the first position",
                self.serving.explore_slots,
            )
        if self.rollout.baseline == self.rollout.candidate:
            raise Inconsistent(
                ("rollout", "candidate"),
                "must differ from rollout.baseline",
                self.rollout.candidate,
            )
        self._sources_consistent()
        for name, model in self.models.items():
            if model.parent is not None and model.parent not in names:
                raise Inconsistent(
                    ("models", name, "parent"),
                    f"must name another model ({', '.join(sorted(names - {name}))})",
                    model.parent,
                )
            if model.parent == name:
                raise Inconsistent(
                    ("models", name, "parent"), "must name another model", model.parent
                )
        for name in self.models:
            seen, node = {name}, self.models[name].parent
            while node is not None:
                if node in seen:
                    raise Inconsistent(
                        ("models", name, "parent"),
                        "must not form a cycle of parents",
                        self.models[name].parent,
                    )
                seen.add(node)
                node = self.models[node].parent
        if self.models[self.rollout.baseline].parent is not None:
            raise Inconsistent(
                ("models", self.rollout.baseline, "parent"),
                "must be unset for the baseline (it is trained from scratch)",
                self.models[self.rollout.baseline].parent,
            )
        for name, model in self.models.items():
            if (
                model.parent is not None
                and model.update == "warm_start"
                and model.algorithm != "als"
            ):
                raise Inconsistent(
                    ("models", name, "update"),
                    "must be 'fine_tune' or 'retrain' for a non-ALS model (warm start needs ALS)",
                    model.update,
                )
        try:
            check_rollout(self.rollout)
        except Inconsistent as error:
            raise Inconsistent(("rollout", *error.loc), error.expectation, error.value) from None
        if (self.rollout.gate or self.rollout.guardrails) and self.rollout.analysis is None:
            raise Inconsistent(
                ("rollout", "analysis"),
                "must be set when a gate or guardrails are given "
                '(e.g. analysis = { interval = "5m" })',
                None,
            )
        versions = set(names)
        if self.release_train is not None:
            candidate = self.rollout.candidate
            versions |= {f"{candidate}-{k}" for k in range(2, self.release_train.count + 1)}
        for i, fault in enumerate(self.faults):
            if fault.version not in versions:
                raise Inconsistent(
                    ("faults", i, "version"),
                    f"must name a model in [models] or a release ({', '.join(sorted(versions))})",
                    fault.version,
                )
        self._bounds_in_order()
        self._faults_fit(versions)
        self._autoscalers_fit()
        self._nodes_fit()
        for name, model in self.models.items():
            if model.parent is None and (model.update == "copy" or model.calibration == "inherit"):
                raise Inconsistent(
                    ("models", name, "parent"),
                    "must be set for update = 'copy' or calibration = 'inherit'",
                    None,
                )
        needs_analysis = ("adaptive", "bandit", "blue_green", "shadow_then_canary")
        if self.rollout.policy in needs_analysis and self.rollout.analysis is None:
            raise Inconsistent(
                ("rollout", "analysis"),
                f"must be set for policy {self.rollout.policy!r} (it advances on analyses)",
                None,
            )
        if self.rollout.bandit.min_weight > self.rollout.bandit.max_weight:
            raise Inconsistent(
                ("rollout", "bandit", "min_weight"),
                f"must be at most bandit.max_weight ({self.rollout.bandit.max_weight:g})",
                self.rollout.bandit.min_weight,
            )
        train = self.release_train
        if train is not None:
            if self.traffic.source != "synthetic":
                raise Inconsistent(
                    ("release_train",), "only set with synthetic traffic for now", "[release_train]"
                )
            duration = self.traffic.duration or 0.0
            if train.every * (train.count - 1) >= duration:
                raise Inconsistent(
                    ("release_train", "every"),
                    f"must leave every release inside the run: every x (count - 1) < "
                    f"traffic.duration ({format_duration(duration)})",
                    format_duration(train.every),
                )
            if self.rollout.policy == "bandit":
                raise Inconsistent(
                    ("rollout", "policy"), "must not be 'bandit' with a release train", "bandit"
                )
            if train.rollback_to is not None and not any(
                m.source == "registry" for m in self.models.values()
            ):
                raise Inconsistent(
                    ("release_train", "rollback_to"),
                    "must name a version this run loads from the registry: declare it as "
                    '[models.NAME] registry = "ID" (and set the top-level registry)',
                    train.rollback_to,
                )
            updated = self.models[self.rollout.candidate]
            if train.update == "warm_start" and updated.algorithm != "als":
                raise Inconsistent(
                    ("release_train", "update"),
                    "must be 'fine_tune' or 'retrain' for a non-ALS candidate",
                    train.update,
                )
        if self.rollout.sticky_by == "session" and self.cache.invalidation != "versioned_keys":
            # The cache keys lists by user: two sessions of one user on different versions
            # would serve each other's lists, and every such serve would count as stale.
            raise Inconsistent(
                ("cache", "invalidation"),
                "must be 'versioned_keys' when rollout.sticky_by = 'session' (other modes key "
                "lists by user, so a user's sessions on two versions would serve each other's "
                "lists)",
                self.cache.invalidation,
            )
        slo_names = [slo.name for slo in self.slos]
        for i, name in enumerate(slo_names):
            if name in slo_names[:i]:
                raise Inconsistent(("slos", i, "name"), "must be unique among the SLOs", name)
        for i, rail in enumerate(self.rollout.guardrails):
            slo = slo_of_metric(rail.metric)
            if slo is not None and slo not in slo_names:
                raise Inconsistent(
                    ("rollout", "guardrails", i, "metric"),
                    f"must name a declared SLO ([[slos]]: {', '.join(slo_names) or 'none'})",
                    rail.metric,
                )
        if self.rollout.target and self.attributes.users is None:
            raise Inconsistent(
                ("rollout", "target"),
                "needs a user attribute table ([attributes.users] with a path)",
                dict(self.rollout.target),
            )
        items = self.attributes.items
        if items is not None and items.provider is not None:
            listed = items.categorical
            if listed is not None and items.provider not in listed:
                raise Inconsistent(
                    ("attributes", "items", "provider"),
                    f"must be one of attributes.items.categorical ({', '.join(listed)})",
                    items.provider,
                )
        if self.users.list_size > self.traffic.items:
            raise Inconsistent(
                ("users", "list_size"),
                f"must be at most traffic.items ({self.traffic.items})",
                self.users.list_size,
            )
        return self

    def _sources_consistent(self) -> None:
        """Loaded and external versions: a registry to load from, fallbacks that exist and
        do not go round in a circle, no parent, and external lists are never updated."""
        names = set(self.models)
        for name, model in self.models.items():
            source = model.source
            if source == "lab":
                continue
            if model.parent is not None:
                raise Inconsistent(
                    ("models", name, "parent"),
                    f"must be unset for a version from {source} (it is not built in the run)",
                    model.parent,
                )
            if source == "registry" and self.registry is None:
                raise Inconsistent(
                    ("registry",),
                    f"must name the registry folder for models.{name}.registry (or pass "
                    "--registry)",
                    None,
                )
            fallback = model.fallback
            if fallback is None or fallback == "popular":
                continue
            target = self.rollout.baseline if fallback == "baseline" else fallback
            where = ("models", name, source, "fallback")
            if target not in names or target == name:
                raise Inconsistent(
                    where,
                    f"must be 'popular', 'baseline' or another model "
                    f"({', '.join(sorted(names - {name}))})",
                    fallback,
                )
            seen: set[str] = {name}
            node: str | None = target
            while node is not None:
                if node in seen:
                    raise Inconsistent(where, "must not lead back to this model", fallback)
                seen.add(node)
                after = self.models[node].fallback
                if after is None or after == "popular":
                    node = None
                else:
                    node = self.rollout.baseline if after == "baseline" else after
        lists_only = {n for n, m in self.models.items() if m.source in ("topk", "plugin")}
        lists_only |= {n for n, m in self.models.items() if m.source == "embeddings"}
        for name, model in self.models.items():
            if model.parent in lists_only:
                raise Inconsistent(
                    ("models", name, "parent"),
                    "must name a version the lab can update (not one from a table, embeddings "
                    "or a plugin)",
                    model.parent,
                )
        fixed = lists_only - {n for n, m in self.models.items() if m.source == "plugin"}
        if self.release_train is not None and self.rollout.candidate in fixed:
            raise Inconsistent(
                ("release_train",),
                "needs a candidate that can be updated (trained here, from the registry or a "
                "plugin; not one from a table or embeddings)",
                "[release_train]",
            )

    def _bounds_in_order(self) -> None:
        """A guardrail whose lower bound is above its upper bound can never pass."""
        for i, rail in enumerate(self.rollout.guardrails):
            for low, high in (
                ("min", "max"),
                ("min_relative_to_baseline", "max_relative_to_baseline"),
            ):
                lo, hi = getattr(rail, low), getattr(rail, high)
                if lo is not None and hi is not None and lo > hi:
                    raise Inconsistent(
                        ("rollout", "guardrails", i, low), f"must be at most {high} ({hi:g})", lo
                    )

    def _nodes_fit(self) -> None:
        """Replicas on nodes: one pool per version (fixed, or scaled by an autoscaler), two
        versions, declared footprints that fit on a node (footprints from factor sizes are
        checked once the models exist)."""
        resources = self.resources
        if resources is None or resources.node_memory_gb is None:
            return
        node_mb = resources.node_memory_gb * 1024
        for name, model in self.models.items():
            if model.memory_mb is not None and model.memory_mb > node_mb:
                raise Inconsistent(
                    ("models", name, "memory_mb"),
                    f"must fit on a node (resources.node_memory_gb = "
                    f"{resources.node_memory_gb:g}, {node_mb:g} MB)",
                    model.memory_mb,
                )
            if model.stages or self.serving.stages:
                raise Inconsistent(
                    ("resources", "nodes"),
                    "must be unset with a staged serving path (a footprint is per replica of "
                    "a version's one pool; its stages' replicas have no footprint of their "
                    "own)",
                    resources.nodes,
                )
        if self.release_train is not None:
            raise Inconsistent(
                ("resources", "nodes"),
                "must be unset with a release train (nodes place the baseline's and one "
                "candidate's replicas; later releases would need a placement of their own)",
                resources.nodes,
            )
        for i, fault in enumerate(self.faults):
            if fault.kind in ("replica_crash", "capacity_loss"):
                raise Inconsistent(
                    ("faults", i, "kind"),
                    "must not change replicas placed on resources.nodes (out-of-memory kills do)",
                    fault.kind,
                )

    def _autoscalers_fit(self) -> None:
        """An autoscaler scales one pool within bounds that hold the version's replicas."""
        for name, model in self.models.items():
            scaler = model.autoscaler or self.serving.autoscaler
            if scaler is None:
                continue
            where: tuple[str | int, ...] = (
                ("models", name, "autoscaler") if model.autoscaler else ("serving", "autoscaler")
            )
            replicas = model.replicas or self.serving.replicas
            if model.stages is not None or self.serving.stages is not None:
                raise Inconsistent(
                    where, f"must not be set for {name}, whose serving path has stages", "{...}"
                )
            if not scaler.min_replicas <= replicas <= scaler.max_replicas:
                field = "max_replicas" if replicas > scaler.max_replicas else "min_replicas"
                bound = "at least" if field == "max_replicas" else "at most"
                raise Inconsistent(
                    (*where, field),
                    f"must be {bound} the replicas {name} starts with ({replicas})",
                    getattr(scaler, field),
                )
        for i, fault in enumerate(self.faults):
            model = self.models.get(fault.version, self.models[self.rollout.candidate])
            scaled = model.autoscaler or self.serving.autoscaler
            if scaled and fault.kind in ("replica_crash", "capacity_loss"):
                raise Inconsistent(
                    ("faults", i, "kind"),
                    f"must not change the replicas of {fault.version}, which an autoscaler scales",
                    fault.kind,
                )

    def _faults_fit(self, versions: set[str]) -> None:
        """A replica crash takes down at most the replicas the version has; faults on a
        version's servers need one pool (a staged path has one per stage)."""
        candidate = self.models[self.rollout.candidate]
        for i, fault in enumerate(self.faults):
            model = self.models.get(fault.version, candidate)
            staged = model.stages is not None or self.serving.stages is not None
            if staged and fault.kind in ("latency_spike", "replica_crash", "capacity_loss"):
                raise Inconsistent(
                    ("faults", i, "kind"),
                    f"must not act on servers of {fault.version}, whose serving path has "
                    "stages (slow a stage down with its own latency instead)",
                    fault.kind,
                )
            if fault.kind != "replica_crash":
                continue
            model = self.models.get(fault.version, candidate)
            replicas = model.replicas or self.serving.replicas
            if fault.replicas > replicas:
                raise Inconsistent(
                    ("faults", i, "replicas"),
                    f"must be at most the replicas {fault.version} has ({replicas})",
                    fault.replicas,
                )


# --- loading ---------------------------------------------------------------------------

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "finite_number": "a finite number",
    "too_short": "longer",
    "too_long": "shorter",
}


def _strip_tags(loc: Sequence[int | str], data: Any) -> tuple[int | str, ...]:
    """Drop discriminator tags pydantic inserts into error locations (``arrivals.diurnal.x``)."""
    out: list[int | str] = []
    node = data
    for part in loc:
        if (
            isinstance(node, dict)
            and isinstance(part, str)
            and part not in node
            and node.get("kind") == part
        ):
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _known_keys(loc: tuple[int | str, ...], data: Any) -> list[str]:
    """The settings allowed in the table that holds ``loc`` (for unknown-key hints)."""
    model: Any = Scenario
    node: Any = data
    for part in loc[:-1]:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part] if part < len(node) else None
        if model is None:
            return []
        if isinstance(part, int) or model is dict:
            model = getattr(model, "_item", None)
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_of(field.annotation, node)
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if fields else []


def _model_of(annotation: Any, node: Any) -> Any:
    import typing

    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if origin in (list, dict):
        inner = _model_of(args[-1], node)
        holder = type("_Holder", (), {"_item": inner})
        return holder
    candidates = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
    for arg in args:
        nested = _model_of(arg, node) if typing.get_args(arg) else None
        if nested is not None and nested not in candidates:
            candidates.append(nested)
    if isinstance(node, dict) and "kind" in node:
        for cand in candidates:
            kind = getattr(cand, "model_fields", {}).get("kind")
            if kind is not None and node["kind"] in typing.get_args(kind.annotation):
                return cand
    return candidates[0] if len(candidates) == 1 else None


def _describe(error: Any, source: str, data: Any) -> str:
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, Inconsistent):
        loc = _strip_tags(error["loc"], data) + cause.loc
        return f"{source}: {dotted(loc)} {cause.expectation}, got {shown(cause.value)}"
    loc = _strip_tags(error["loc"], data)
    path = dotted(loc) or "(top level)"
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        known = _known_keys(loc, data)
        hint = f" (known: {', '.join(known)})" if known else ""
        return f"{source}: {path} is not a known setting{hint}"
    if kind == "missing":
        return f"{source}: {path} is required"
    if kind == "union_tag_invalid":
        tags, tag = ctx.get("expected_tags"), ctx.get("tag")
        return f"{source}: {path}.kind must be one of {tags}, got {tag!r}"
    if kind == "union_tag_not_found":
        return f"{source}: {path}.kind is required (one of the kinds documented in README)"
    if kind == "literal_error":
        return f"{source}: {path} must be one of {ctx.get('expected')}, got {shown(value)}"
    if kind == "value_error":
        message = str(cause) if cause is not None else error["msg"].removeprefix("Value error, ")
        if message.startswith(("must", "update_window")):
            if message.startswith("update_window"):
                return f"{source}: {path + '.' if path != '(top level)' else ''}{message}"
            return f"{source}: {path} {message}, got {shown(value)}"
        return f"{source}: {path}: {message}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"{source}: {path} must be {sign} {bound}, got {shown(value)}"
    if kind in ("too_short", "too_long"):
        return f"{source}: {path} {error['msg'].lower()}, got {shown(value)}"
    word = _TYPE_WORDS.get(kind)
    if word:
        return f"{source}: {path} must be {word}, got {shown(value)}"
    return f"{source}: {path} {error['msg'].lower()}, got {shown(value)}"


def parse_scenario(
    data: dict[str, Any],
    *,
    source: str = "<scenario>",
    overrides: Sequence[str] = (),
    base_dir: Path | None = None,
) -> Scenario:
    """Validate a raw TOML table (after ``--set`` overrides, with ``rollout.manifest`` read
    from ``base_dir``, the scenario's folder) into a ``Scenario``."""
    for text in overrides:
        path, value = parse_override(text)
        apply_override(data, path, value, source=source)
    data = apply_manifest(data, base_dir=base_dir or Path.cwd(), source=source)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: (e["type"] != "extra_forbidden", len(e["loc"])))
        raise UserInputError(_describe(errors[0], source, data)) from None


#: A scenario file larger than this is refused before it is read (a long ``samples_ms``
#: list of measured latencies fits many times over).
MAX_SCENARIO_BYTES = 4 * 1024 * 1024


def read_scenario_text(file: Path) -> str:
    """The text of a scenario file: a regular file of at most ``MAX_SCENARIO_BYTES``, UTF-8,
    with a leading byte-order mark (written by some Windows editors) dropped."""
    if file.is_dir():
        raise UserInputError(f"{file}: is a folder, expected a scenario .toml file")
    if not file.exists() and not file.is_symlink():
        raise UserInputError(f"{file}: no such scenario file (check the path)")
    data = read_regular_bytes(
        file, label=str(file), what="a scenario", max_bytes=MAX_SCENARIO_BYTES
    )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserInputError(
            f"{file.name}: cannot read scenario file (UnicodeDecodeError)"
        ) from None
    return text.removeprefix("\ufeff")


def load_scenario(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read, override and validate a scenario file; every failure is one ``UserInputError`` line."""
    file = Path(path)
    source = file.name
    text = read_scenario_text(file)
    try:
        data = tomllib.loads(text)
    except (RecursionError, ValueError) as exc:
        if not isinstance(exc, tomllib.TOMLDecodeError):
            # Nesting deeper than the parser follows, or an integer too long to convert.
            raise UserInputError(
                f"{source}: not a usable TOML file ({type(exc).__name__}: nesting too deep or a "
                "number too long)"
            ) from None
        raise UserInputError(f"{source}: not valid TOML: {exc}") from None
    return parse_scenario(data, source=source, overrides=overrides, base_dir=file.parent)
