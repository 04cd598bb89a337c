"""``rollout-lab validate``: every check ``run`` makes before it builds anything, without
running: the file, the schema, the expectations' operators and paths, the files the scenario
reads, and the memory estimate (``rollout_lab.preflight``).

Folders are read like ``check`` reads them (every ``*.toml`` inside).  Every file is checked
and every invalid one reported (one line each on stderr), not only the first; the exit code
is 2 when any is invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lab.footprint import memory_limit
from replay.errors import UserInputError
from rollout_lab.commands.common import (
    EXIT_OK,
    EXIT_USER,
    error_line,
    guard_options,
    overrides,
    printable,
    scenario_files,
    scenario_options,
)

NAME = "validate"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="check scenario files without running them")
    p.add_argument("scenarios", type=Path, nargs="+", help="scenario files or folders of them")
    scenario_options(p)
    guard_options(p)


def execute(args: argparse.Namespace) -> int:
    from rollout_lab.preflight import preflight

    files = scenario_files(args.scenarios)
    limit = memory_limit(args.max_memory)
    invalid = 0
    for path in files:
        try:
            checked = preflight(path, overrides(args), limit=limit)
        except UserInputError as exc:
            invalid += 1
            print(error_line(str(exc)), file=sys.stderr, flush=True)
            continue
        print(printable(f"ok: {path} ({checked.scenario.name})"), flush=True)
    if len(files) > 1:
        print(f"{len(files) - invalid} valid, {invalid} invalid of {len(files)} scenario files")
    return EXIT_USER if invalid else EXIT_OK
