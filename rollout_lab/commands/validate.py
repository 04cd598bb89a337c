"""``rollout-lab validate``: load and check scenario files without running them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rollout_lab.commands.common import EXIT_OK, overrides, scenario_options

NAME = "validate"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="check scenario files without running them")
    p.add_argument("scenarios", type=Path, nargs="+")
    scenario_options(p)


def execute(args: argparse.Namespace) -> int:
    from lab.scenario import load_scenario

    for path in args.scenarios:
        scenario = load_scenario(path, overrides(args))
        print(f"ok: {path} ({scenario.name})")
    return EXIT_OK
