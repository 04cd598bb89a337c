"""``rollout-lab sweep``: a grid of settings x N replications on a process pool or Dask.

Engines (each a :class:`lab.sweep.Runner`):

* :class:`ProcessPoolRunner` — local worker processes (``spawn``: a clean interpreter per
  worker, no state inherited from the parent), the default;
* :class:`DaskRunner` — an existing Dask cluster (``--scheduler tcp://host:8786``) or a
  local one started for the sweep (``--dask-local``).

Exit codes: 0 every replication finished, 1 some replications failed (the rest are in the
outputs, the failures listed), 2 a bad scenario, grid or option (nothing ran), 130 / 143
stopped by SIGINT (Ctrl-C) / SIGTERM (the finished replications are written, marked
``"complete": false``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from replay.errors import UserInputError
from rollout_lab.commands.common import (
    EXIT_OK,
    cache_options,
    overrides,
    scenario_options,
    slug,
    write_atomic,
)
from rollout_lab.worker_pool import spawn_pool, stop_workers

if TYPE_CHECKING:  # lab.sweep imports the simulator: only when a sweep actually runs
    from concurrent.futures import Future

    from lab.sweep import PartStore, SweepPlan, Task, TaskResult

NAME = "sweep"
EXIT_FAILED_REPLICATIONS = 1
TaskFn = Callable[["Task"], "TaskResult"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="run a grid of settings, each for N replications, in parallel")
    p.add_argument("scenario", type=Path)
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="PATH=V1,V2,...",
        help="a setting and its values, read like --set values (repeatable: cartesian product)",
    )
    p.add_argument("--seeds", type=int, required=True, metavar="N", help="replications per point")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="K",
        help="worker processes (default: the number of CPUs); with --scheduler, ignored",
    )
    engine = p.add_mutually_exclusive_group()
    engine.add_argument(
        "--scheduler", default=None, metavar="tcp://HOST:PORT", help="run on this Dask cluster"
    )
    engine.add_argument(
        "--dask-local", action="store_true", help="run on a local Dask cluster of K workers"
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="R",
        help="replications per task (default: about two tasks per worker)",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/<name>-sweep)"
    )
    scenario_options(p)
    cache_options(p)
    p.add_argument("--force", action="store_true", help="overwrite an earlier sweep in --out")
    p.add_argument(
        "--reproducible",
        action="store_true",
        help="write wall-clock times as 0 so that sweep.parquet is byte-identical across runs",
    )
    p.add_argument("--quiet", action="store_true", help="print only failures and the report path")


# --------------------------------------------------------------------------- engines


class ProcessPoolRunner:
    """Tasks on local worker processes (``concurrent.futures`` with the ``spawn`` context)."""

    def __init__(self, workers: int, task_fn: TaskFn | None = None) -> None:
        if workers < 1:
            raise UserInputError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self._task_fn = task_fn

    def __enter__(self) -> ProcessPoolRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def slots(self) -> int:
        return self.workers

    def run(self, tasks: Sequence[Task]) -> Generator[TaskResult, None, None]:
        # Process pools load multiprocessing and pickle: only a sweep that runs pays for them.
        from concurrent.futures import as_completed

        from lab.sweep import failed_result, one_line, run_task

        if not tasks:
            return
        task_fn = self._task_fn or run_task
        executor = spawn_pool(min(self.workers, len(tasks)))
        finished = False
        try:
            pending: dict[Future[TaskResult], Task] = {
                executor.submit(task_fn, task): task for task in tasks
            }
            for future in as_completed(pending):
                try:
                    result = future.result()
                except Exception as exc:  # the worker died (killed, out of memory)
                    result = failed_result(pending[future], f"worker lost: {one_line(exc)}")
                yield result
            finished = True
        finally:
            if not finished:  # an interrupted sweep: the executor then sees a broken pool
                stop_workers(executor, kill=True)
            executor.shutdown(wait=True, cancel_futures=True)


def _distributed() -> Any:
    """The ``distributed`` package, imported on first use (large, and partly untyped)."""
    import importlib

    return importlib.import_module("distributed")


class DaskRunner:
    """Tasks on a Dask cluster: an existing one (``address``) or a local one of ``workers``.

    Use as a context manager: entering connects (or starts the local cluster) and checks
    that the workers run the same rollout-lab version; leaving disconnects (or stops it).
    """

    def __init__(
        self, *, address: str | None = None, workers: int = 1, task_fn: TaskFn | None = None
    ) -> None:
        if address is None and workers < 1:
            raise UserInputError(f"--workers must be at least 1, got {workers}")
        self.address = address
        self.workers = workers
        self._task_fn = task_fn
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> DaskRunner:
        import logging

        from lab.sweep import one_line

        distributed = _distributed()
        Client, LocalCluster = distributed.Client, distributed.LocalCluster
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        if self.address is None:
            self._cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # Cancelling tasks of an interrupted sweep makes workers log warnings.
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._cluster)
        else:
            try:
                self._client = Client(self.address, timeout="15s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise UserInputError(
                    f"--scheduler {self.address}: cannot connect ({one_line(exc)}); start one "
                    f"with `dask scheduler` and check the address"
                ) from None
            try:
                self._client.wait_for_workers(1, timeout=30)
            except (TimeoutError, OSError):
                self.__exit__(None, None, None)
                raise UserInputError(
                    f"--scheduler {self.address}: no worker joined within 30 s (start "
                    f"`dask worker {self.address}` where rollout-lab is installed)"
                ) from None
        self._check_versions()
        return self

    def _check_versions(self) -> None:
        from lab.sweep import lab_version, one_line

        try:
            versions: dict[str, str] = self._client.run(lab_version)
        except Exception as exc:  # a worker cannot import the lab at all
            self.__exit__(None, None, None)
            raise UserInputError(
                f"Dask workers cannot run rollout-lab ({one_line(exc)}); install the project "
                "on every worker machine"
            ) from None
        mine = lab_version()
        other = sorted({v for v in versions.values() if v != mine})
        if other:
            self.__exit__(None, None, None)
            raise UserInputError(
                f"Dask workers run rollout-lab {', '.join(other)}, this client {mine} "
                "(install the same version everywhere)"
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    @property
    def slots(self) -> int:
        if self._client is None:
            return self.workers
        threads: dict[str, int] = self._client.nthreads()
        return max(1, sum(threads.values()))

    def run(self, tasks: Sequence[Task]) -> Generator[TaskResult, None, None]:
        from lab.sweep import failed_result, one_line, run_task

        dask_as_completed = _distributed().as_completed
        task_fn = self._task_fn or run_task
        if self._client is None:
            raise RuntimeError("DaskRunner.run outside its `with` block")
        futures = [self._client.submit(task_fn, task, pure=False) for task in tasks]
        by_key = {future.key: task for future, task in zip(futures, tasks, strict=True)}
        finished = False
        try:
            for future in dask_as_completed(futures):
                task = by_key[future.key]
                if future.status == "finished":
                    result = future.result()
                else:  # "error" (the task raised or its worker was lost) or "cancelled"
                    exc = future.exception() if future.status == "error" else None
                    reason = one_line(exc) if exc is not None else future.status
                    result = failed_result(task, f"worker lost: {reason}")
                future.release()
                yield result
            finished = True
        finally:
            if not finished:
                self._client.cancel(futures)


# --------------------------------------------------------------------------- the command


class _Stop:
    """Which signal stopped the sweep (None: none, or a plain KeyboardInterrupt)."""

    signum: int | None = None


@contextmanager
def _signals_interrupt(stop: _Stop) -> Iterator[None]:
    """SIGINT and SIGTERM stop the sweep: the finished results are kept, marked incomplete.

    Both become a ``KeyboardInterrupt`` inside :func:`lab.sweep.run_sweep`, which stops the
    engine and returns; the previous handlers come back afterwards.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.signum = signum
        raise KeyboardInterrupt

    watched = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {sig: signal.signal(sig, handler) for sig in watched}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def prepare_sweep_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder (choose another path)")
    earlier = (out / "sweep.json").exists() or any((out / "parts").glob("*.parquet"))
    if earlier and not force:
        raise UserInputError(f"--out {out}: holds an earlier sweep (pass --force to overwrite it)")
    out.mkdir(parents=True, exist_ok=True)


def write_outputs(
    plan: SweepPlan,
    store: PartStore,
    *,
    interrupted: bool,
    execution: dict[str, Any],
    reproducible: bool,
) -> dict[str, Any]:
    """sweep.parquet, sweep.html, then sweep.json; returns the sweep.json content."""
    from lab.sweep import sweep_summary
    from reports.summary import dumps
    from reports.sweep_report import render_sweep_report

    table = store.table(reproducible=reproducible)
    summary = sweep_summary(plan, table, interrupted=interrupted, execution=execution)
    tmp = store.folder / ".sweep.parquet.tmp"
    table.write_parquet(tmp)
    os.replace(tmp, store.folder / "sweep.parquet")
    write_atomic(store.folder / "sweep.html", render_sweep_report(summary, table))
    write_atomic(store.folder / "sweep.json", dumps(summary))
    if summary["complete"]:
        store.clear()
    return summary


def _engine(args: argparse.Namespace, workers: int) -> tuple[str, ProcessPoolRunner | DaskRunner]:
    if args.scheduler is not None:
        return "dask", DaskRunner(address=args.scheduler)
    if args.dask_local:
        return "dask-local", DaskRunner(workers=workers)
    return "process-pool", ProcessPoolRunner(workers)


def _progress(plan: SweepPlan, quiet: bool, started: float) -> Callable[[TaskResult], None]:
    done = {"tasks": 0, "replications": 0}
    labels = {p.index: p.label for p in plan.points}

    def report(result: TaskResult) -> None:
        done["tasks"] += 1
        done["replications"] += len(result.records)
        for record in result.records:
            if record.status != "ok":
                print(
                    f"replication failed: point {record.point} ({labels[record.point] or '-'}) "
                    f"replication {record.replication} seed {record.seed}: {record.error}",
                    file=sys.stderr,
                )
        if quiet:
            return
        reps = result.replications
        span = f"replication {reps[0]}" if len(reps) == 1 else f"replications {reps[0]}-{reps[-1]}"
        ok = sum(1 for r in result.records if r.status == "ok")
        print(
            f"[{done['replications']}/{plan.planned}] point {result.point} "
            f"({labels[result.point] or 'no grid'}) {span}: {ok}/{len(reps)} ok "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )

    return report


def _table(summary: dict[str, Any]) -> str:
    lines = [
        f"{'point':<7}{'grid':<34}{'ok':>4}{'fail':>5}"
        f"{'promoted':>10}{'rolled back':>13}{'other':>7}{'decision min':>14}"
    ]
    for block in summary["points"]:
        outcomes = block["outcomes"]
        other = block["replications"] - outcomes["promoted"] - outcomes["rolled_back"]
        median = block["time_to_decision_s"]["median"]
        decision = "-" if median is None else f"{median / 60:.1f}"
        lines.append(
            f"{block['point']:<7}{(block['label'] or '-')[:33]:<34}{block['replications']:>4}"
            f"{block['failed']:>5}{outcomes['promoted']:>10}{outcomes['rolled_back']:>13}"
            f"{other:>7}{decision:>14}"
        )
    return "\n".join(lines)


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store
    from lab.sweep import ArtifactCache, PartStore, parse_grid, plan_sweep, run_sweep

    axes = parse_grid(args.grid)
    if args.seeds < 1:
        raise UserInputError(f"--seeds must be at least 1, got {args.seeds}")
    workers = args.workers if args.workers is not None else _cpus()
    if workers < 1:
        raise UserInputError(f"--workers must be at least 1, got {workers}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise UserInputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    artifacts = open_store(args.cache_dir, enabled=not args.no_cache)
    # Workers prepare each grid point once, through the store (an absolute path: workers may
    # run elsewhere).
    cache = (
        None
        if artifacts is None
        else ArtifactCache(str(artifacts.root.absolute()), artifacts.max_bytes)
    )
    # Validate every grid point before starting an engine: a bad value costs nothing.
    plan = plan_sweep(args.scenario, overrides(args), axes, args.seeds, cache=cache)
    out = args.out if args.out is not None else Path("runs") / f"{slug(plan.base.name)}-sweep"
    created = not out.exists()
    prepare_sweep_out(out, args.force)
    kind, runner = _engine(args, workers)
    started = time.perf_counter()
    with ExitStack() as stack:
        try:
            stack.enter_context(runner)
        except BaseException:
            if created:  # an engine that cannot start leaves no empty --out folder behind
                with suppress(OSError):
                    out.rmdir()
            raise
        slots = runner.slots  # a remote cluster's size is known once connected
        plan = plan.chunked(slots=slots, chunk_size=args.chunk_size)
        store = PartStore(out, plan)
        store.reset()
        execution: dict[str, Any] = {
            "engine": kind,
            "scheduler": args.scheduler,
            "workers": slots,
            "tasks": len(plan.tasks),
            "chunk_size": plan.chunk_size,
        }
        write_atomic(out / "sweep.json", _running_marker(plan, execution))
        for earlier in ("sweep.parquet", "sweep.html"):  # an earlier sweep's, with --force
            (out / earlier).unlink(missing_ok=True)
        if not args.quiet:
            print(
                f"{plan.base.name}: {len(plan.points)} grid point(s) x {plan.replications} "
                f"replication(s) as {len(plan.tasks)} task(s) on {kind} ({slots} worker(s))",
                flush=True,
            )
        stop = _Stop()
        with _signals_interrupt(stop):
            run = run_sweep(plan, runner, store, on_result=_progress(plan, args.quiet, started))
    wall_s = time.perf_counter() - started  # engine start-up included
    execution["wall_s"] = 0.0 if args.reproducible else round(wall_s, 3)
    summary = write_outputs(
        plan,
        store,
        interrupted=run.interrupted,
        execution=execution,
        reproducible=args.reproducible,
    )
    counts = summary["counts"]
    if not args.quiet:
        print(_table(summary))
        print(
            f"{counts['ok']} ok, {counts['failed']} failed, {counts['missing']} not run "
            f"of {counts['planned']} replications in {wall_s:.1f} s"
        )
    print(out / "sweep.html")
    if run.interrupted:
        name = signal.Signals(stop.signum).name if stop.signum else "an interruption"
        print(
            f"rollout-lab: sweep stopped by {name}; the finished replications are written "
            f"(marked incomplete in {out / 'sweep.json'})",
            file=sys.stderr,
        )
        return 128 + (stop.signum or signal.SIGINT)
    return EXIT_FAILED_REPLICATIONS if counts["failed"] else EXIT_OK


def _cpus() -> int:
    """CPUs this process may run on (a container's share, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _running_marker(plan: SweepPlan, execution: dict[str, Any]) -> str:
    """sweep.json while the sweep runs: a killed sweep still says it is incomplete."""
    from reports.summary import dumps

    return dumps(
        {
            "schema_version": 1,
            "kind": "sweep",
            "complete": False,
            "interrupted": False,
            "running": True,
            "scenario": {"name": plan.base.name, "file": plan.scenario_file},
            "counts": {"planned": plan.planned},
            "execution": execution,
        }
    )


__all__ = ["DaskRunner", "ProcessPoolRunner", "execute", "write_outputs"]
