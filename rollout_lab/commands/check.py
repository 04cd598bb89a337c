"""``rollout-lab check``: run many scenarios, print a table, gate CI on their expectations."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path
from typing import Any

from lab.footprint import memory_limit
from replay.errors import UserInputError
from rollout_lab.commands.common import (
    EXIT_EXPECTATION,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USER,
    cache_options,
    guard_options,
    overrides,
    printable,
    scenario_files,
    scenario_options,
    slug,
    write_atomic,
)
from rollout_lab.commands.run import run_scenario
from rollout_lab.outputs import check_out_dir, check_out_file
from rollout_lab.progress import ProgressBar

NAME = "check"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="run many scenarios and gate on their expectations")
    p.add_argument("paths", type=Path, nargs="+", help="scenario files or folders of them")
    p.add_argument("--out", type=Path, default=Path("runs/check"), help="base output folder")
    scenario_options(p)
    guard_options(p)
    cache_options(p)
    p.add_argument("--junit", type=Path, default=None, help="write one JUnit XML for all")


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store
    from reports.junit import junit_xml

    files = scenario_files(args.paths)
    check_out_dir(args.out, base=True)
    if args.junit is not None:
        check_out_file(args.junit, option="--junit")
    limit = memory_limit(args.max_memory)
    store = open_store(args.cache_dir, enabled=not args.no_cache)
    worst = EXIT_OK
    suites: list[tuple[str, dict[str, Any]]] = []

    def say(line: str) -> None:
        print(printable(line))

    say(f"{'scenario':<36}{'outcome':<14}{'expectations':<14}{'result'}")
    for path in files:
        try:
            with ProgressBar(sys.stderr, path.stem) as bar:
                summary, verdict, _target = run_scenario(
                    path,
                    args.out / slug(path.stem),
                    overrides(args),
                    force=True,
                    limit=limit,
                    progress=bar,
                    store=store,
                )
        except UserInputError as exc:
            say(f"{path.stem[:35]:<36}{'-':<14}{'-':<14}error: {exc}")
            worst = max(worst, EXIT_USER)
            continue
        except Exception as exc:  # an internal error in one scenario: report it, run the rest
            say(f"{path.stem[:35]:<36}{'-':<14}{'-':<14}internal error: {exc!r}")
            traceback.print_exc(file=sys.stderr)
            worst = max(worst, EXIT_INTERNAL)
            continue
        cases = verdict["expectations"]
        passed = sum(1 for c in cases if c["passed"])
        status = "pass" if verdict["passed"] else "FAIL"
        say(f"{path.stem[:35]:<36}{summary['outcome']:<14}{f'{passed}/{len(cases)}':<14}{status}")
        for c in cases:
            if not c["passed"]:
                say(f"    {c['metric']}: expected {c['condition']}, observed {c['observed']!r}")
        suites.append((summary["scenario"]["name"], verdict))
        if not verdict["passed"]:
            worst = max(worst, EXIT_EXPECTATION)
    if args.junit is not None:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(args.junit, junit_xml(suites))
    return worst
