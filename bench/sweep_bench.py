"""Sweep benchmark: 16 replications on the process pool with 2 workers against 1 worker.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/sweep_bench.py [--runs 3] [--seeds 16]
        [--set PATH=VALUE ...]

Runs ``scenarios/good_candidate_promoted.toml`` as shipped (no grid, 16 seeds; two hours of
traffic, about 290k requests per replication, which simulate in 2–3 s on one core) as a
sweep with 1 and with 2 worker processes, alternating, ``--runs`` times each, each sweep with
an empty artifact cache of its own.  A run is timed from creating the pool to the last
result: worker start-up, preparing the grid point once (the first worker to need it builds
it, with the waiting workers' cores for training, the others load it) and every
replication, as a user waits for it.  Prints min / median / max seconds per worker count,
the speedup (median / median, and min / min), how many CPUs the workers actually got (their
CPU seconds per wall second), the load average before and after, and checks that every
run's table is identical apart from wall-clock times.

Goal: 2 workers at least 1.7x faster than 1 (on a machine with 2 idle cores; other jobs on
the same cores lower the figure, which is why the load average is printed).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import polars as pl

GOAL_SPEEDUP = 1.7
ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "good_candidate_promoted.toml"
SCALE: list[str] = []


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sweep_once(
    workers: int, seeds: int, overrides: list[str]
) -> tuple[float, float, pl.DataFrame, int]:
    """One sweep: (wall seconds, workers' CPU seconds, the table without wall times, tasks)."""
    from lab.sweep import ArtifactCache, PartStore, plan_sweep, run_sweep
    from rollout_lab.commands.sweep import ProcessPoolRunner

    with tempfile.TemporaryDirectory(prefix="sweep_bench_") as tmp:
        # An empty artifact cache per sweep: preparation is part of what is timed.
        cache = ArtifactCache(str(Path(tmp) / "cache"), 10**10)
        plan = plan_sweep(SCENARIO, overrides, (), seeds, slots=workers, cache=cache)
        store = PartStore(Path(tmp), plan)
        store.reset()
        cpu_before = _children_cpu_s()
        started = time.perf_counter()
        run = run_sweep(plan, ProcessPoolRunner(workers), store)
        wall = time.perf_counter() - started
        cpu = _children_cpu_s() - cpu_before  # workers are reaped when the pool shuts down
        if run.interrupted:
            raise KeyboardInterrupt
        table = store.table(reproducible=True)
    failed = table.filter(table["status"] != "ok").height
    if failed:
        raise RuntimeError(f"{failed} replication(s) failed: {table['error'].drop_nulls()[0]}")
    return wall, cpu, table, len(plan.tasks)


def spread(values: list[float]) -> str:
    return f"{min(values):6.2f} / {statistics.median(values):6.2f} / {max(values):6.2f}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="sweeps per worker count")
    parser.add_argument("--seeds", type=int, default=16, help="replications per sweep")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=None, metavar="PATH=VALUE"
    )
    args = parser.parse_args()
    overrides = args.overrides if args.overrides is not None else SCALE
    scale = " ".join(overrides) or "as shipped"
    print(
        f"{SCENARIO.name} {scale}: {args.seeds} replications, {args.runs} runs per worker "
        f"count, {os.cpu_count()} CPUs, load average {load()}"
    )
    walls: dict[int, list[float]] = {1: [], 2: []}
    # CPU seconds of the workers per wall second: below 2 with 2 workers means other jobs
    # held the cores (or start-up and training, which do not split, took a large share).
    cores: dict[int, list[float]] = {1: [], 2: []}
    reference: pl.DataFrame | None = None
    for run in range(args.runs):
        for workers in (1, 2) if run % 2 == 0 else (2, 1):
            wall, cpu, table, tasks = sweep_once(workers, args.seeds, overrides)
            walls[workers].append(wall)
            cores[workers].append(cpu / wall)
            print(
                f"  run {run + 1}, {workers} worker(s): {wall:6.2f} s, {tasks} tasks, workers "
                f"used {cpu / wall:.2f} CPUs on average (load {load()})",
                flush=True,
            )
            if reference is None:
                reference = table
            elif not table.equals(reference):
                raise SystemExit("tables differ between runs: the sweep is not deterministic")
    one, two = walls[1], walls[2]
    median_speedup = statistics.median(one) / statistics.median(two)
    min_speedup = min(one) / min(two)
    per_replication = statistics.median(one) / args.seeds
    print(f"1 worker  min / median / max s: {spread(one)}")
    print(f"2 workers min / median / max s: {spread(two)}")
    print(
        f"speedup {median_speedup:.2f}x (median / median), {min_speedup:.2f}x (min / min); "
        f"goal >= {GOAL_SPEEDUP}x: {'met' if median_speedup >= GOAL_SPEEDUP else 'NOT met'}"
    )
    print(f"about {per_replication:.2f} s per replication on 1 worker (training included)")
    print(
        f"CPUs used by the workers (median): {statistics.median(cores[1]):.2f} with 1 worker, "
        f"{statistics.median(cores[2]):.2f} with 2"
    )
    print(f"identical tables across all {2 * args.runs} runs; load average now {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
