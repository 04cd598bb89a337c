"""``rollout-lab check``: run many scenarios, print a table, gate CI on their expectations.

Every scenario first passes the same checks as ``validate`` and its output folder the same
rules as ``run`` (``--out/<file stem>``, an earlier run replaced only with ``--force``); all
of that happens before the first scenario runs.  An invalid or refused scenario does not stop
the others: it is listed, counted and written to the JUnit file as an error, and the exit code
is 2.  The table goes to stdout; errors go to stderr; the last line counts passed, failed and
invalid scenarios and the time taken.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.footprint import MemoryLimit, memory_limit
from replay.errors import UserInputError
from rollout_lab.commands.common import (
    EXIT_EXPECTATION,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USER,
    cache_options,
    check_file_outputs,
    error_line,
    file_output_options,
    guard_options,
    overrides,
    printable,
    scenario_files,
    scenario_options,
    slug,
    write_file_outputs,
)
from rollout_lab.commands.run import run_scenario
from rollout_lab.outputs import check_out_dir, output_names
from rollout_lab.progress import ProgressBar
from rollout_lab.signals import RunInterrupted
from rollout_lab.worker_pool import spawn_pool, stop_workers

if TYPE_CHECKING:
    from reports.junit import Suite

NAME = "check"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="run many scenarios and gate on their expectations")
    p.add_argument("paths", type=Path, nargs="+", help="scenario files or folders of them")
    p.add_argument(
        "--out", type=Path, default=Path("runs/check"), help="base output folder (one per file)"
    )
    scenario_options(p)
    guard_options(p)
    cache_options(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace earlier runs under --out (only their own unchanged files)",
    )
    p.add_argument("--junit", type=Path, default=None, help="write one JUnit XML for all")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help=(
            "run up to N scenarios at once in worker processes, each planning for 1/N of "
            "the memory limit (default 1); the table and JUnit keep the files' order"
        ),
    )
    file_output_options(p)


@dataclass(slots=True)
class _Planned:
    path: Path
    target: Path
    error: str | None = None


def folder_names(files: list[Path]) -> dict[Path, str]:
    """One output folder name per scenario file: its stem, or, when two files share a stem,
    their paths relative to the folder the files share, joined by '-' (never overwrite)."""
    stems: dict[str, list[Path]] = {}
    for path in files:
        stems.setdefault(slug(path.stem), []).append(path)
    names: dict[Path, str] = {}
    for stem, paths in stems.items():
        if len(paths) == 1:
            names[paths[0]] = stem
            continue
        resolved = [p.resolve() for p in paths]
        common = Path(*resolved[0].parts[: _shared_parts(resolved)])
        for path, full in zip(paths, resolved, strict=True):
            relative = full.relative_to(common).with_suffix("")
            names[path] = slug("-".join(relative.parts))
    return names


def _shared_parts(paths: list[Path]) -> int:
    count = 0
    for parts in zip(*(p.parent.parts for p in paths), strict=False):
        if len(set(parts)) != 1:
            break
        count += 1
    return count


def _plan(args: argparse.Namespace, files: list[Path], limit: Any) -> list[_Planned]:
    """Check every scenario and its folder before anything runs."""
    from rollout_lab.preflight import preflight

    names = folder_names(files)
    planned: list[_Planned] = []
    for path in files:
        target = args.out / names[path]
        try:
            checked = preflight(path, overrides(args), limit=limit)
            writes = output_names(bool(checked.scenario.expect), False)
            check_out_dir(target, force=args.force, writes=writes)
        except UserInputError as exc:
            planned.append(_Planned(path, target, str(exc)))
            continue
        planned.append(_Planned(path, target))
    return planned


@dataclass(slots=True, frozen=True)
class _Job:
    """What a worker needs to run one planned scenario (picklable)."""

    path: Path
    target: Path
    overrides: tuple[str, ...]
    force: bool
    limit: MemoryLimit
    cache_dir: Path | None
    cache: bool


@dataclass(slots=True, frozen=True)
class _Outcome:
    """How one scenario ended: ``done`` (with its verdict), ``invalid`` or ``internal``."""

    kind: str
    spent_s: float
    stamp: str
    outcome: str = ""
    verdict: dict[str, Any] | None = None
    suite: Suite | None = None
    message: str = ""
    trace: str = ""


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _run_one(job: _Job, store: Any, bar: ProgressBar | None) -> _Outcome:
    """Run one scenario; a bad input or a bug ends it as an outcome, a stop propagates."""
    from rollout_lab.preflight import suite_of

    stamp = _stamp()
    clock = time.perf_counter()
    try:
        summary, verdict, target = run_scenario(
            job.path,
            job.target,
            job.overrides,
            force=job.force,
            limit=job.limit,
            progress=bar,
            stage=bar.stage if bar is not None else None,
            store=store,
        )
    except UserInputError as exc:
        return _Outcome("invalid", time.perf_counter() - clock, stamp, message=str(exc))
    except Exception as exc:  # an internal error in one scenario: report it, run the rest
        message = f"{job.path.name}: internal error (a bug, please report it): {exc!r}"
        return _Outcome(
            "internal", time.perf_counter() - clock, stamp, message=message,
            trace=traceback.format_exc(),
        )  # fmt: skip
    spent = time.perf_counter() - clock
    suite = suite_of(summary, job.path, target, time_s=spent, timestamp=stamp)
    return _Outcome("done", spent, stamp, summary["outcome"], verdict, suite)


def _run_in_worker(job: _Job) -> _Outcome:
    """One scenario in a worker process: its own handle on the shared artifact store, and
    SIGTERM (sent by the parent when the check is stopped) turned into a clean stop."""
    from lab.artifacts import open_store
    from rollout_lab.signals import stop_on_signals

    with stop_on_signals():
        store = open_store(job.cache_dir, enabled=job.cache)
        return _run_one(job, store, None)


def _serial(jobs: list[_Job], store: Any) -> Generator[_Outcome, None, None]:
    for job in jobs:
        with ProgressBar(sys.stderr, job.path.stem) as bar:
            yield _run_one(job, store, bar)


def _parallel(jobs: list[_Job], workers: int) -> Generator[_Outcome, None, None]:
    """Outcomes in the order of ``jobs``, computed by ``workers`` spawned processes.

    On a stop (SIGINT / SIGTERM in this process) every worker gets SIGTERM, so each run in
    flight cleans up its staged files as a stopped ``run`` does, then the stop propagates.
    """
    executor = spawn_pool(min(workers, len(jobs)))
    finished = False
    try:
        futures = [executor.submit(_run_in_worker, job) for job in jobs]
        for job, future in zip(jobs, futures, strict=True):
            try:
                yield future.result()
            except RunInterrupted:
                raise
            except BaseException as exc:  # the worker died (killed, out of memory)
                message = f"{job.path.name}: worker lost: {exc!r}"
                yield _Outcome("internal", 0.0, _stamp(), message=message)
        finished = True
    finally:
        if not finished:
            stop_workers(executor, kill=False)
        executor.shutdown(wait=True, cancel_futures=True)


def _job_limit(limit: MemoryLimit, jobs: int) -> MemoryLimit:
    """Runs in parallel share the memory limit: each may plan for its share of it."""
    if jobs == 1:
        return limit
    return MemoryLimit(limit.bytes // jobs, f"{limit.origin}, shared by --jobs {jobs}")


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store
    from reports.junit import Suite

    started = time.perf_counter()
    if args.jobs < 1:
        raise UserInputError(
            f"--jobs must be at least 1, got {args.jobs} (use --jobs 1 to run one at a time)"
        )
    files = scenario_files(args.paths)
    check_out_dir(args.out, base=True)
    check_file_outputs(args)
    limit = _job_limit(memory_limit(args.max_memory), args.jobs)
    store = open_store(args.cache_dir, enabled=not args.no_cache)
    plan = _plan(args, files, limit)
    worst = EXIT_OK
    suites: list[Suite] = []
    counts = {"passed": 0, "failed": 0, "invalid": 0}

    def say(line: str) -> None:
        print(printable(line), flush=True)

    def invalid(item: _Planned, message: str, spent: float, stamp: str) -> None:
        print(error_line(message), file=sys.stderr, flush=True)
        say(f"{item.path.stem[:35]:<36}{'-':<14}{'-':<14}invalid")
        suites.append(
            Suite(name=item.path.stem, file=str(item.path), error=message, time_s=spent,
                  timestamp=stamp)
        )  # fmt: skip
        counts["invalid"] += 1

    say(f"{'scenario':<36}{'outcome':<14}{'expectations':<14}{'result'}")
    runnable = [item for item in plan if item.error is None]
    jobs = [
        _Job(item.path, item.target, tuple(overrides(args)), args.force, limit,
             args.cache_dir, not args.no_cache)
        for item in runnable
    ]  # fmt: skip
    results = (
        _parallel(jobs, args.jobs) if args.jobs > 1 and len(jobs) > 1 else _serial(jobs, store)
    )
    finished: list[Path] = []
    current: _Planned | None = None
    try:
        for item in plan:
            current = item
            if item.error is not None:
                invalid(item, item.error, 0.0, _stamp())
                worst = max(worst, EXIT_USER)
                continue
            ended = next(results)
            if ended.kind == "invalid":
                invalid(item, ended.message, ended.spent_s, ended.stamp)
                worst = max(worst, EXIT_USER)
                continue
            if ended.kind == "internal":
                print(error_line(ended.message, prefix="rollout-lab: "), file=sys.stderr)
                if ended.trace:
                    print(ended.trace, file=sys.stderr, end="")
                invalid(item, ended.message, ended.spent_s, ended.stamp)
                worst = max(worst, EXIT_INTERNAL)
                continue
            assert ended.verdict is not None and ended.suite is not None
            finished.append(item.target)
            verdict = ended.verdict
            cases = verdict["expectations"]
            passed = sum(1 for c in cases if c["passed"])
            status = "pass" if verdict["passed"] else "FAIL"
            say(
                f"{item.path.stem[:35]:<36}{ended.outcome:<14}{f'{passed}/{len(cases)}':<14}"
                f"{status}"
            )
            for c in cases:
                if not c["passed"]:
                    say(f"    {c['metric']}: expected {c['condition']}, observed {c['observed']!r}")
            suites.append(ended.suite)
            counts["passed" if verdict["passed"] else "failed"] += 1
            if not verdict["passed"]:
                worst = max(worst, EXIT_EXPECTATION)
        next(results, None)  # let the runner finish (its workers shut down cleanly)
    except RunInterrupted as stop:
        done = ", ".join(str(p) for p in finished) or "none"
        where = current.path.name if current is not None else "the start"
        stop.detail = f"at {where}; scenarios finished before it: {done}"
        raise
    finally:
        results.close()
    write_file_outputs(args, suites)
    say(
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['invalid']} invalid "
        f"of {len(plan)} scenario{'s' if len(plan) != 1 else ''} in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return worst
