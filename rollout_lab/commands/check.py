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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.footprint import memory_limit
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


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store
    from reports.junit import Suite
    from rollout_lab.preflight import suite_of

    started = time.perf_counter()
    files = scenario_files(args.paths)
    check_out_dir(args.out, base=True)
    check_file_outputs(args)
    limit = memory_limit(args.max_memory)
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
    finished: list[Path] = []
    for item in plan:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        clock = time.perf_counter()
        if item.error is not None:
            invalid(item, item.error, 0.0, stamp)
            worst = max(worst, EXIT_USER)
            continue
        try:
            with ProgressBar(sys.stderr, item.path.stem) as bar:
                summary, verdict, target = run_scenario(
                    item.path,
                    item.target,
                    overrides(args),
                    force=args.force,
                    limit=limit,
                    progress=bar,
                    stage=bar.stage,
                    store=store,
                )
        except UserInputError as exc:
            invalid(item, str(exc), time.perf_counter() - clock, stamp)
            worst = max(worst, EXIT_USER)
            continue
        except RunInterrupted as stop:
            done = ", ".join(str(p) for p in finished) or "none"
            stop.detail = f"at {item.path.name}; scenarios finished before it: {done}"
            raise
        except Exception as exc:  # an internal error in one scenario: report it, run the rest
            message = f"{item.path.name}: internal error (a bug, please report it): {exc!r}"
            print(error_line(message, prefix="rollout-lab: "), file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            invalid(item, message, time.perf_counter() - clock, stamp)
            worst = max(worst, EXIT_INTERNAL)
            continue
        finished.append(item.target)
        cases = verdict["expectations"]
        passed = sum(1 for c in cases if c["passed"])
        status = "pass" if verdict["passed"] else "FAIL"
        say(
            f"{item.path.stem[:35]:<36}{summary['outcome']:<14}{f'{passed}/{len(cases)}':<14}"
            f"{status}"
        )
        for c in cases:
            if not c["passed"]:
                say(f"    {c['metric']}: expected {c['condition']}, observed {c['observed']!r}")
        suites.append(
            suite_of(
                summary, item.path, target, time_s=time.perf_counter() - clock, timestamp=stamp
            )
        )
        counts["passed" if verdict["passed"] else "failed"] += 1
        if not verdict["passed"]:
            worst = max(worst, EXIT_EXPECTATION)
    write_file_outputs(args, suites)
    say(
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['invalid']} invalid "
        f"of {len(plan)} scenario{'s' if len(plan) != 1 else ''} in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return worst
