"""Sweeps: a grid of scenario settings, each grid point run for several replications.

Engine-independent: this module plans the work (grid points, seeds, tasks), runs one task
(:func:`run_task`, what a worker executes), stores finished tasks as Parquet parts, and
aggregates them.  Which engine executes the tasks (a local process pool, a Dask cluster,
or this process via :class:`SerialRunner`) is the caller's choice: anything with a
``slots`` count and a ``run(tasks)`` generator that yields :class:`TaskResult` as tasks
finish will do (see :class:`Runner`).

Determinism: grid point ``g`` of a sweep whose scenario has root seed ``S`` runs with seed

    seed_g = SeedSequence(S, spawn_key=(g,)).generate_state(1)[0]

and replication ``r`` of it is ``simulate_prepared(prepare(scenario_g), replication=r)``,
whose traffic, service and user randomness come from
``SeedSequence(seed_g, spawn_key=(stream, r))``.  A user's top-K list does not depend on
which users it was scored with (``replay.topk``), so lists are scored lazily and shared
through the artifact store, and no replication depends on which replications ran before it
in the same worker, or which worker prepared its grid point.  Records are sorted by
``(point, replication)`` before anything is written, so the table is the same whatever the
number of workers, the chunking, the completion order or the engine; only ``wall_s`` (wall
seconds) differs between runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl

from lab.overrides import parse_override
from lab.pipeline import Prepared, RunResult, prepare, simulate_prepared
from lab.scenario import Scenario, load_scenario
from lab.version import lab_version
from replay.artifact_store import ArtifactStore
from replay.errors import UserInputError
from sim.stats import wilson_interval

__all__ = [
    "OUTCOMES",
    "RECORD_SCHEMA",
    "ArtifactCache",
    "GridAxis",
    "GridPoint",
    "PartStore",
    "ReplicationRecord",
    "Runner",
    "SerialRunner",
    "SweepPlan",
    "SweepRun",
    "Task",
    "TaskResult",
    "auto_chunk",
    "describe",
    "failed_result",
    "lab_version",
    "one_line",
    "parse_grid",
    "plan_sweep",
    "point_seed",
    "records_frame",
    "replication_record",
    "run_sweep",
    "run_task",
    "sweep_summary",
    "worker_setup",
]

SCHEMA_VERSION = 1
#: Rollout outcomes, in the order tables and figures show them.
OUTCOMES = ("promoted", "rolled_back", "held", "inconclusive", "in_progress")
GridKind = Literal["bool", "int", "float", "str", "json"]
Replicate = Callable[[Prepared, int], RunResult]


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True, slots=True)
class GridAxis:
    """One ``--grid key=v1,v2,...``: a scenario path and the values it takes.

    ``texts`` are the values as written (re-read like ``--set`` values for every grid
    point); ``values`` the TOML-typed values; ``kind`` the table column type they share.
    """

    key: str
    texts: tuple[str, ...]
    values: tuple[Any, ...]
    kind: GridKind

    def column_value(self, index: int) -> Any:
        """The value as stored in the table column (``json`` kinds as JSON text)."""
        value = self.values[index]
        if self.kind == "float":
            return float(value)
        if self.kind == "json":
            return json.dumps(value, sort_keys=True, default=str)
        return value

    def json_value(self, index: int) -> Any:
        """The value as written to ``sweep.json`` (TOML dates as ISO text)."""
        return json.loads(json.dumps(self.values[index], default=str))


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside quotes, ``[...]`` and ``{...}`` (values may be TOML arrays)."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = 0
    for pos, char in enumerate(text):
        if quote is not None:
            if char == quote and text[pos - 1] != "\\":
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == sep and depth == 0:
            parts.append(text[start:pos])
            start = pos + 1
            if sep == "=":
                break
    parts.append(text[start:])
    return parts


def _kind(values: Sequence[Any]) -> GridKind:
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if any(isinstance(v, bool) for v in values):
        return "json"
    if all(isinstance(v, int) for v in values):
        return "int"
    if all(isinstance(v, int | float) for v in values):
        return "float"
    if all(isinstance(v, str) for v in values):
        return "str"
    return "json"


def parse_grid(specs: Sequence[str]) -> tuple[GridAxis, ...]:
    """``["rollout.weight=5,10", 'traffic.duration="20m","1h"']`` -> grid axes.

    Values are separated by commas outside quotes and brackets and read like ``--set``
    values (TOML, bare words as strings).  Every mistake is one :class:`UserInputError`.
    """
    axes: list[GridAxis] = []
    seen: set[str] = set()
    for spec in specs:
        pieces = _split_top_level(spec, "=")
        key = pieces[0].strip()
        if len(pieces) < 2 or not key:
            raise UserInputError(f"--grid expects dotted.path=v1,v2,..., got {spec!r}")
        try:
            parse_override(f"{key}=0")
        except UserInputError:
            raise UserInputError(
                f"--grid path must look like section.key or list[0].key, got {key!r}"
            ) from None
        if key == "seed":
            raise UserInputError(
                "--grid seed: the seed is not a grid setting (each grid point derives its own "
                "from the scenario's; use --seeds N for replications, --seed for the root)"
            )
        if key in RECORD_SCHEMA or key == "point":
            raise UserInputError(f"--grid {key}: clashes with the sweep table column {key!r}")
        if key in seen:
            raise UserInputError(f"--grid {key}: given twice (list all its values in one --grid)")
        seen.add(key)
        raw = pieces[1]
        if not raw.strip():
            raise UserInputError(f"--grid {key}: needs at least one value, e.g. {key}=5,10")
        texts = [t.strip() for t in _split_top_level(raw, ",")]
        values: list[Any] = []
        for i, text in enumerate(texts):
            if not text:
                raise UserInputError(f"--grid {key}: value {i + 1} is empty, got {raw!r}")
            value = parse_override(f"{key}={text}")[1]
            if any(type(value) is type(v) and value == v for v in values):
                raise UserInputError(f"--grid {key}: value {text} appears twice, got {raw!r}")
            values.append(value)
        axes.append(GridAxis(key, tuple(texts), tuple(values), _kind(values)))
    return tuple(axes)


def point_seed(root_seed: int, point: int) -> int:
    """The seed grid point ``point`` runs with: a word of ``SeedSequence(root, (point,))``."""
    state = np.random.SeedSequence(root_seed, spawn_key=(point,)).generate_state(1)
    return int(state[0])


@dataclass(frozen=True, slots=True)
class GridPoint:
    """One combination of grid values, its seed and its validated scenario.

    ``key`` identifies what a worker trains for this point (a hash of the resolved scenario
    and where its data files are read from), so a worker trains once per point.
    """

    index: int
    choice: tuple[int, ...]  # index into each axis' values
    seed: int
    scenario: Scenario
    label: str  # "rollout.weight=5, traffic.duration=20m" ("" without a grid)
    key: str


@dataclass(frozen=True, slots=True)
class ArtifactCache:
    """Where a sweep's workers share prepared artifacts: a store folder and its size bound."""

    root: str
    max_bytes: int

    def open(self) -> ArtifactStore:
        return ArtifactStore(Path(self.root), max_bytes=self.max_bytes)


@dataclass(frozen=True, slots=True)
class Task:
    """What one worker call does: prepare (or load) a grid point, run some replications.

    ``cache``: the artifact store every worker prepares through (a grid point is then built
    once, by the first worker that needs it, under the store's lock, while the others wait
    and load it), or None (every worker builds its points itself).  ``threads``: ALS threads
    the builder may use (the other workers wait meanwhile).
    """

    point: GridPoint
    replications: tuple[int, ...]
    source_name: str
    base_dir: str | None
    cache: ArtifactCache | None = None
    threads: int = 1


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """Everything decided before the first replication runs."""

    scenario_file: str
    base_dir: str  # where relative data paths in the scenario are read from
    base: Scenario  # the scenario with ``--set`` applied, before the grid
    axes: tuple[GridAxis, ...]
    points: tuple[GridPoint, ...]
    replications: int
    chunk_size: int
    tasks: tuple[Task, ...]
    #: The sweep's own ``--set`` options (and ``--seed``, ``--log``), before the grid.
    overrides: tuple[str, ...] = ()
    cache: ArtifactCache | None = None

    @property
    def planned(self) -> int:
        return len(self.points) * self.replications

    def chunked(self, *, slots: int, chunk_size: int | None = None) -> SweepPlan:
        """The same plan cut into tasks for ``slots`` workers (see :func:`auto_chunk`)."""
        if slots < 1:
            raise UserInputError(f"--workers must be at least 1, got {slots}")
        if chunk_size is not None and chunk_size < 1:
            raise UserInputError(f"--chunk-size must be at least 1, got {chunk_size}")
        chunk = chunk_size or auto_chunk(len(self.points), self.replications, slots)
        chunk = min(chunk, self.replications)
        # With a shared store one worker builds a point while the others wait on it: the
        # builder may use their cores for training (the same factors whatever the threads).
        threads = max(1, slots // len(self.points)) if self.cache is not None else 1
        tasks = tuple(
            Task(
                point,
                tuple(range(first, min(first + chunk, self.replications))),
                self.scenario_file,
                self.base_dir,
                self.cache,
                threads,
            )
            for point in self.points
            for first in range(0, self.replications, chunk)
        )
        return replace(self, chunk_size=chunk, tasks=tasks)


def auto_chunk(points: int, replications: int, slots: int) -> int:
    """Replications per task: about two tasks per worker slot, no more splitting than that.

    Two tasks per slot keep workers busy when grid points take unequal time; splitting a
    grid point further would only make more workers load (or, without a cache, train) the
    same point.
    """
    if points >= 2 * slots:
        return replications
    per_point = math.ceil(2 * slots / points)
    return max(1, math.ceil(replications / per_point))


def plan_sweep(
    scenario_path: Path,
    overrides: Sequence[str],
    axes: Sequence[GridAxis],
    replications: int,
    *,
    slots: int = 1,
    chunk_size: int | None = None,
    cache: ArtifactCache | None = None,
) -> SweepPlan:
    """Validate every grid point's scenario and cut the work into tasks for ``slots`` workers.

    A scenario or grid value that does not validate raises :class:`UserInputError` naming
    the grid point, before anything runs.  ``cache``: the store workers prepare through.
    """
    if isinstance(replications, bool) or replications < 1:
        raise UserInputError(f"--seeds must be at least 1, got {replications}")
    base = load_scenario(scenario_path, overrides)
    base_dir = str(scenario_path.resolve().parent)
    points: list[GridPoint] = []
    for index, choice in enumerate(itertools.product(*(range(len(a.values)) for a in axes))):
        label = ", ".join(f"{a.key}={a.texts[i]}" for a, i in zip(axes, choice, strict=True))
        seed = point_seed(base.seed, index)
        grid = [f"{a.key}={a.texts[i]}" for a, i in zip(axes, choice, strict=True)]
        try:
            scenario = load_scenario(scenario_path, [*overrides, *grid, f"seed={seed}"])
        except UserInputError as exc:
            raise UserInputError(f"{exc} (grid point {index}: {label})") from None
        identity = json.dumps([scenario.model_dump(mode="json"), scenario_path.name, base_dir])
        key = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        points.append(GridPoint(index, tuple(choice), seed, scenario, label, key))
    plan = SweepPlan(
        scenario_file=scenario_path.name,
        base_dir=base_dir,
        base=base,
        axes=tuple(axes),
        points=tuple(points),
        replications=replications,
        chunk_size=replications,
        tasks=(),
        overrides=tuple(overrides),
        cache=cache,
    )
    return plan.chunked(slots=slots, chunk_size=chunk_size)


# --------------------------------------------------------------------------- one task


@dataclass(frozen=True, slots=True)
class ReplicationRecord:
    """One replication's numbers (a row of ``sweep.parquet`` without the grid values).

    Rates are fractions (0–1), weights percent (0–100), times simulated seconds since the
    candidate's first exposure, ``wall_s`` wall-clock seconds (the only field that is not a
    pure function of the scenario, grid point and replication).  Version numbers are by
    *assigned* version (intention to treat), defined as in ``summary.json``.
    """

    point: int
    replication: int
    seed: int
    status: str  # "ok" or "failed"
    outcome: str | None = None
    time_to_detect_s: float | None = None
    time_to_rollback_s: float | None = None
    time_to_promote_s: float | None = None
    time_to_decision_s: float | None = None  # rollback or promotion, whichever happened
    max_candidate_weight: float | None = None
    final_weight: float | None = None
    analyses: int | None = None
    failures: int | None = None
    requests: int | None = None
    candidate_requests: int | None = None
    baseline_requests: int | None = None
    users_exposed: int | None = None  # distinct users assigned to the candidate
    candidate_clicks: int | None = None
    baseline_clicks: int | None = None
    candidate_ctr: float | None = None
    baseline_ctr: float | None = None
    ctr_difference: float | None = None  # candidate_ctr - baseline_ctr
    candidate_p99_ms: float | None = None
    baseline_p99_ms: float | None = None
    candidate_timeout_rate: float | None = None
    baseline_timeout_rate: float | None = None
    fallback: int | None = None  # requests answered by the fallback chain, all versions
    dropped: int | None = None
    error: str | None = None
    wall_s: float = 0.0


RECORD_SCHEMA: dict[str, Any] = {
    "point": pl.Int64,
    "replication": pl.Int64,
    "seed": pl.Int64,
    "status": pl.String,
    "outcome": pl.String,
    "time_to_detect_s": pl.Float64,
    "time_to_rollback_s": pl.Float64,
    "time_to_promote_s": pl.Float64,
    "time_to_decision_s": pl.Float64,
    "max_candidate_weight": pl.Float64,
    "final_weight": pl.Float64,
    "analyses": pl.Int64,
    "failures": pl.Int64,
    "requests": pl.Int64,
    "candidate_requests": pl.Int64,
    "baseline_requests": pl.Int64,
    "users_exposed": pl.Int64,
    "candidate_clicks": pl.Int64,
    "baseline_clicks": pl.Int64,
    "candidate_ctr": pl.Float64,
    "baseline_ctr": pl.Float64,
    "ctr_difference": pl.Float64,
    "candidate_p99_ms": pl.Float64,
    "baseline_p99_ms": pl.Float64,
    "candidate_timeout_rate": pl.Float64,
    "baseline_timeout_rate": pl.Float64,
    "fallback": pl.Int64,
    "dropped": pl.Int64,
    "error": pl.String,
    "wall_s": pl.Float64,
}


@dataclass(frozen=True, slots=True)
class TaskResult:
    """A finished task: one record per replication it was asked for, in replication order."""

    point: int
    replications: tuple[int, ...]
    records: tuple[ReplicationRecord, ...]
    prepare_s: float  # 0 when the worker reused the point's trained versions
    wall_s: float


def _round(value: float | None, digits: int = 6) -> float | None:
    """Rounded like ``summary.json`` numbers; NaN and infinities become None."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``"ValueError: first line of the message"``, at most ``limit`` characters."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _version_numbers(frame: pl.DataFrame, name: str) -> dict[str, Any]:
    mine = frame.filter(pl.col("version") == name)
    n = mine.height
    if n == 0:
        return {"requests": 0, "users": 0, "clicks": 0, "ctr": None, "p99": None, "timeout": None}
    latency = mine["latency_ms"].to_numpy()
    clicks = int(mine["clicks"].cast(pl.Int64).sum())
    return {
        "requests": n,
        "users": int(mine["user"].n_unique()),
        "clicks": clicks,
        "ctr": clicks / n,
        "p99": float(np.percentile(latency, 99, method="inverted_cdf")),
        "timeout": mine.filter(pl.col("failure") == "timeout").height / n,
    }


def replication_record(
    result: RunResult, *, point: int, seed: int, wall_s: float = 0.0
) -> ReplicationRecord:
    """The numbers a sweep keeps from one replication's :class:`RunResult`."""
    rollout = result.scenario.rollout
    frame = result.requests
    summary = result.controller.summary()
    candidate = _version_numbers(frame, rollout.candidate)
    baseline = _version_numbers(frame, rollout.baseline)
    results = frame["result"]
    outcome = result.controller.outcome
    decision = {"rolled_back": "time_to_rollback_s", "promoted": "time_to_promote_s"}.get(outcome)
    difference = (
        candidate["ctr"] - baseline["ctr"]
        if candidate["ctr"] is not None and baseline["ctr"] is not None
        else None
    )
    return ReplicationRecord(
        point=point,
        replication=result.replication,
        seed=seed,
        status="ok",
        outcome=outcome,
        time_to_detect_s=_round(summary["time_to_detect_s"]),
        time_to_rollback_s=_round(summary["time_to_rollback_s"]),
        time_to_promote_s=_round(summary["time_to_promote_s"]),
        time_to_decision_s=_round(summary[decision]) if decision else None,
        max_candidate_weight=_round(summary["max_candidate_weight"]),
        final_weight=_round(summary["final_weight"]),
        analyses=int(summary["analyses"]),
        failures=int(summary["failures"]),
        requests=frame.height,
        candidate_requests=candidate["requests"],
        baseline_requests=baseline["requests"],
        users_exposed=candidate["users"],
        candidate_clicks=candidate["clicks"],
        baseline_clicks=baseline["clicks"],
        candidate_ctr=_round(candidate["ctr"]),
        baseline_ctr=_round(baseline["ctr"]),
        ctr_difference=_round(difference),
        candidate_p99_ms=_round(candidate["p99"]),
        baseline_p99_ms=_round(baseline["p99"]),
        candidate_timeout_rate=_round(candidate["timeout"]),
        baseline_timeout_rate=_round(baseline["timeout"]),
        fallback=int((results == "fallback").sum()),
        dropped=int((results == "dropped").sum()),
        wall_s=round(wall_s, 4),
    )


def failed_result(task: Task, error: str, wall_s: float = 0.0) -> TaskResult:
    """Every replication of ``task`` reported failed with ``error`` (one line)."""
    records = tuple(
        ReplicationRecord(task.point.index, r, task.point.seed, "failed", error=error)
        for r in task.replications
    )
    return TaskResult(task.point.index, task.replications, records, 0.0, wall_s)


# The last grid point this worker thread prepared: tasks of the same point that land on the
# same worker reuse it.  Per thread, because a replication fills lazily built tables.
_CACHE = threading.local()


def _prepared(task: Task) -> tuple[Prepared, float]:
    cached = getattr(_CACHE, "entry", None)
    if cached is not None and cached[0] == task.point.key:
        return cached[1], 0.0
    _CACHE.entry = None  # let the previous point's tables go before preparing the next
    started = time.perf_counter()
    base_dir = Path(task.base_dir) if task.base_dir is not None else None
    # Replications never read the noise floor: it is neither trained nor loaded.  Top-K
    # rows do not depend on the users scored with them, so they are scored lazily.
    prepared = prepare(
        task.point.scenario,
        source_name=task.source_name,
        base_dir=base_dir,
        store=task.cache.open() if task.cache is not None else None,
        threads=task.threads,
        noise_floor=False,
    )
    _CACHE.entry = (task.point.key, prepared)
    return prepared, time.perf_counter() - started


def run_task(task: Task, *, replicate: Replicate = simulate_prepared) -> TaskResult:
    """Train (or reuse) the task's grid point and run its replications, one record each.

    A replication that raises becomes a ``failed`` record with a one-line error and the
    others still run; a grid point that cannot be trained fails all its replications.
    ``replicate`` is the replication function (a hook for tests).
    """
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    point = task.point
    # One BLAS thread per worker: workers are the parallelism.
    with threadpool_limits(limits=1):
        try:
            prepared, prepare_s = _prepared(task)
        except Exception as exc:
            return failed_result(task, f"prepare: {one_line(exc)}", time.perf_counter() - started)
        records: list[ReplicationRecord] = []
        for r in task.replications:
            rep_started = time.perf_counter()
            try:
                result = replicate(prepared, r)
                record = replication_record(
                    result,
                    point=point.index,
                    seed=point.seed,
                    wall_s=time.perf_counter() - rep_started,
                )
            except Exception as exc:
                record = ReplicationRecord(
                    point.index,
                    r,
                    point.seed,
                    "failed",
                    error=one_line(exc),
                    wall_s=round(time.perf_counter() - rep_started, 4),
                )
            records.append(record)
        prepared.save_lists()  # rows scored here serve the point's other tasks
    return TaskResult(
        point.index, task.replications, tuple(records), prepare_s, time.perf_counter() - started
    )


def worker_setup() -> None:
    """Process-pool worker start: one BLAS thread, Ctrl-C left to the parent, no shared locks.

    A terminal sends SIGINT to the whole process group; the parent decides what an
    interruption means (keep finished results, stop the workers).  An interrupted sweep
    kills its workers, so they must not hold process-shared locks: the progress-bar library
    the model trainers use would create one (for bars they never show here), which a killed
    worker leaves to the resource tracker and its warning at exit.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


# --------------------------------------------------------------------------- running


class Runner(Protocol):
    """An engine: runs tasks somewhere and yields their results as they finish.

    ``run`` must turn a task that could not run at all (a lost worker) into
    :func:`failed_result` rather than raise, and stop its workers when the generator is
    closed early (an interrupted sweep).
    """

    @property
    def slots(self) -> int: ...

    def run(self, tasks: Sequence[Task]) -> Generator[TaskResult, None, None]: ...


class SerialRunner:
    """Runs every task in this process, in order (notebooks, tests, debugging)."""

    def __init__(self, replicate: Replicate = simulate_prepared) -> None:
        self._replicate = replicate

    @property
    def slots(self) -> int:
        return 1

    def run(self, tasks: Sequence[Task]) -> Generator[TaskResult, None, None]:
        for task in tasks:
            yield run_task(task, replicate=self._replicate)


@dataclass(frozen=True, slots=True)
class SweepRun:
    """How running the tasks went (the records are in the :class:`PartStore`)."""

    interrupted: bool
    tasks_done: int
    wall_s: float


class PartStore:
    """Finished tasks as Parquet files under ``folder/parts``, one per task, written atomically.

    Parts survive an interrupted or killed sweep; :meth:`table` reads them back in a fixed
    order.
    """

    def __init__(self, folder: Path, plan: SweepPlan) -> None:
        self.folder = folder
        self.parts = folder / "parts"
        self.plan = plan

    def reset(self) -> None:
        """Remove parts left by an earlier sweep into the same folder."""
        if self.parts.is_dir():
            for part in self.parts.glob("*.parquet"):
                part.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)

    def write(self, result: TaskResult) -> Path:
        first = result.replications[0] if result.replications else 0
        path = self.parts / f"point-{result.point:05d}-rep-{first:06d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        records_frame(self.plan, result.records).write_parquet(tmp)
        os.replace(tmp, path)
        return path

    def table(self, *, reproducible: bool = False) -> pl.DataFrame:
        """Every finished replication, sorted by (point, replication)."""
        frames = [pl.read_parquet(p) for p in sorted(self.parts.glob("*.parquet"))]
        frame = pl.concat(frames) if frames else records_frame(self.plan, ())
        frame = frame.sort(["point", "replication"])
        if reproducible:
            frame = frame.with_columns(pl.lit(0.0).alias("wall_s"))
        return frame

    def clear(self) -> None:
        """Drop the parts once the final table is written (a complete sweep needs none)."""
        for part in self.parts.glob("*.parquet"):
            part.unlink()
        with suppress(OSError):  # something else lives there: leave the folder
            self.parts.rmdir()


def run_sweep(
    plan: SweepPlan,
    runner: Runner,
    store: PartStore,
    *,
    on_result: Callable[[TaskResult], None] | None = None,
) -> SweepRun:
    """Run every task of ``plan`` on ``runner``, storing each as it finishes.

    A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into one by the CLI) stops the
    runner and returns with ``interrupted=True``; the finished tasks stay in ``store``.
    """
    started = time.perf_counter()
    done = 0
    interrupted = False
    try:
        with closing(runner.run(plan.tasks)) as results:
            for result in results:
                store.write(result)
                done += 1
                if on_result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        interrupted = True
    return SweepRun(interrupted, done, time.perf_counter() - started)


# --------------------------------------------------------------------------- tables


def records_frame(plan: SweepPlan, records: Sequence[ReplicationRecord]) -> pl.DataFrame:
    """Records as a typed frame: ``point``, one column per grid key, then the record fields."""
    points = {p.index: p for p in plan.points}
    grid_schema: dict[str, Any] = {
        a.key: {
            "bool": pl.Boolean,
            "int": pl.Int64,
            "float": pl.Float64,
            "str": pl.String,
            "json": pl.String,
        }[a.kind]
        for a in plan.axes
    }
    rows = []
    for record in records:
        row: dict[str, Any] = {"point": record.point}
        choice = points[record.point].choice
        for axis, i in zip(plan.axes, choice, strict=True):
            row[axis.key] = axis.column_value(i)
        for f in fields(ReplicationRecord):
            row[f.name] = getattr(record, f.name)
        rows.append(row)
    schema = {"point": pl.Int64, **grid_schema, **RECORD_SCHEMA}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2.0, dof))


def describe(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """``n``, ``mean`` with a Student-t interval over replications, ``median``, ``min``, ``max``.

    Replications are independent draws, so x̄ ± t_{n−1} · s / √n covers the expected value
    at ``level``; the interval is null with fewer than 2 values.
    """
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        empty: dict[str, Any] = {"n": 0, "mean": None, "ci95": [None, None]}
        return {**empty, "median": None, "min": None, "max": None}
    mean = statistics.fmean(xs)
    ci: list[float | None] = [None, None]
    if n >= 2:
        half = _t_quantile(level, n - 1) * statistics.stdev(xs) / math.sqrt(n)
        ci = [_round(mean - half), _round(mean + half)]
    return {
        "n": n,
        "mean": _round(mean),
        "ci95": ci,
        "median": _round(statistics.median(xs)),
        "min": _round(min(xs)),
        "max": _round(max(xs)),
    }


def _rate(successes: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"count": successes, "rate": None, "ci95": [None, None]}
    ci = wilson_interval(successes, n)
    return {
        "count": successes,
        "rate": _round(ci.estimate),
        "ci95": [_round(ci.low), _round(ci.high)],
    }


#: Per-point summaries in ``sweep.json``: column -> which replications it is taken over.
SUMMARISED = (
    "time_to_decision_s",
    "time_to_detect_s",
    "time_to_rollback_s",
    "time_to_promote_s",
    "max_candidate_weight",
    "users_exposed",
    "candidate_ctr",
    "baseline_ctr",
    "ctr_difference",
    "candidate_p99_ms",
    "baseline_p99_ms",
    "candidate_timeout_rate",
    "baseline_timeout_rate",
    "fallback",
    "dropped",
)


def _point_block(plan: SweepPlan, point: GridPoint, rows: pl.DataFrame) -> dict[str, Any]:
    ok = rows.filter(pl.col("status") == "ok")
    outcomes = ok["outcome"].to_list()
    n_ok = ok.height
    block: dict[str, Any] = {
        "point": point.index,
        "grid": {a.key: a.json_value(i) for a, i in zip(plan.axes, point.choice, strict=True)},
        "label": point.label,
        "seed": point.seed,
        "replications": n_ok,
        "failed": rows.height - n_ok,
        "missing": plan.replications - rows.height,
        "outcomes": {o: outcomes.count(o) for o in OUTCOMES},
        "rates": {o: _rate(outcomes.count(o), n_ok) for o in ("rolled_back", "promoted")},
    }
    for column in SUMMARISED:
        block[column] = describe(ok[column].drop_nulls().to_list())
    rolled_back = ok.filter(pl.col("outcome") == "rolled_back")
    block["users_exposed_when_rolled_back"] = describe(
        rolled_back["users_exposed"].drop_nulls().to_list()
    )
    return block


def sweep_summary(
    plan: SweepPlan,
    table: pl.DataFrame,
    *,
    interrupted: bool,
    execution: dict[str, Any],
) -> dict[str, Any]:
    """``sweep.json``: the plan, completeness, failures and one aggregate block per point.

    Everything but ``execution`` (engine, workers, wall seconds) is a pure function of the
    scenario, the grid and the number of replications.
    """
    finished = table.height
    failures = table.filter(pl.col("status") == "failed")
    complete = not interrupted and finished == plan.planned
    labels = {p.index: p.label for p in plan.points}
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "sweep",
        "complete": complete,
        "interrupted": interrupted,
        "scenario": {
            "name": plan.base.name,
            "description": plan.base.description,
            "file": plan.scenario_file,
            "root_seed": plan.base.seed,
            "overrides": list(plan.overrides),
            "settings": plan.base.model_dump(mode="json"),
        },
        "grid": {
            "keys": [a.key for a in plan.axes],
            "values": {a.key: [a.json_value(i) for i in range(len(a.values))] for a in plan.axes},
            "points": len(plan.points),
        },
        "replications_per_point": plan.replications,
        "counts": {
            "planned": plan.planned,
            "finished": finished,
            "ok": finished - failures.height,
            "failed": failures.height,
            "missing": plan.planned - finished,
        },
        "failures": [
            {
                "point": row["point"],
                "grid": labels[row["point"]],
                "replication": row["replication"],
                "seed": row["seed"],
                "error": row["error"],
            }
            for row in failures.iter_rows(named=True)
        ],
        "points": [
            _point_block(plan, p, table.filter(pl.col("point") == p.index)) for p in plan.points
        ],
        "execution": execution,
    }
