"""``rollout-lab world export SCENARIO --out FILE``: the synthetic world's history as a log."""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path
from typing import Any

from rollout_lab.commands.common import (
    EXIT_OK,
    cache_options,
    overrides,
    scenario_options,
    write_atomic,
)
from rollout_lab.outputs import check_out_file

NAME = "world"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="the synthetic world: export its history to train on")
    actions = p.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export", help="write the history before time zero as a log (CSV or Parquet)"
    )
    export.add_argument("scenario", type=Path)
    export.add_argument(
        "--out", type=Path, required=True, help="new file: .csv or .parquet (never replaced)"
    )
    export.add_argument(
        "--window",
        choices=["train", "all"],
        default="train",
        help="train: what the lab's baseline trains on (default); all: with the update window",
    )
    scenario_options(export)
    cache_options(export)


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store
    from lab.scenario import load_scenario
    from lab.world_export import history_log
    from replay.errors import UserInputError

    out: Path = args.out
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise UserInputError(f"--out {out}: must end in .csv or .parquet, got {suffix!r}")
    if os.path.lexists(out):
        raise UserInputError(
            f"--out {out}: exists; world export never replaces a file (move it away or choose "
            "another path)"
        )
    check_out_file(out, option="--out")
    scenario = load_scenario(args.scenario, overrides(args))
    frame = history_log(
        scenario,
        window=args.window,
        source=args.scenario.name,
        base_dir=args.scenario.resolve().parent,
        store=open_store(args.cache_dir, enabled=not args.no_cache),
    )
    buffer = io.BytesIO()
    if suffix == ".csv":
        frame.write_csv(buffer)
    else:
        frame.write_parquet(buffer)
    write_atomic(out, buffer.getvalue())
    print(f"wrote {out}: {frame.height:,} interactions of {args.window!r} window")
    return EXIT_OK
