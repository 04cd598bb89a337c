"""``rollout-lab export argo|flagger SCENARIO``: the scenario's policy as a manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rollout_lab.commands.common import EXIT_OK, overrides, scenario_options, write_atomic
from rollout_lab.outputs import check_out_file

NAME = "export"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        NAME, help="write the scenario's rollout policy as an Argo Rollouts or Flagger manifest"
    )
    p.add_argument("tool", choices=["argo", "flagger"], help="whose manifest to write")
    p.add_argument("scenario", type=Path)
    p.add_argument("--out", type=Path, default=None, help="write here (default: standard output)")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    scenario_options(p)


def execute(args: argparse.Namespace) -> int:
    from lab.manifests.export import EXPORT_MARKER, export_argo, export_flagger
    from lab.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides(args))
    source = args.scenario.name
    text = (export_argo if args.tool == "argo" else export_flagger)(scenario, source=source)
    if args.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    out: Path = args.out
    # The output rules of --junit and --markdown: a file is replaced only with --force, and
    # only when its header says rollout-lab wrote it.
    check_out_file(out, option="--out", force=args.force, marker=EXPORT_MARKER.encode())
    write_atomic(out, text.encode("utf-8"))
    print(f"wrote {out}")
    return EXIT_OK
