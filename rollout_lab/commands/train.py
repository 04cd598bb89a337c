"""``rollout-lab train``: build a scenario's model versions and save them to a registry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rollout_lab.commands.common import EXIT_OK, cache_options, overrides, scenario_options

NAME = "train"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="train a scenario's versions and save them to a registry")
    p.add_argument("scenario", type=Path)
    p.add_argument("--registry", type=Path, default=Path("registry"), help="registry folder")
    p.add_argument("--k", type=int, default=20, help="K of recall@K and NDCG@K (default 20)")
    scenario_options(p)
    cache_options(p)


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store
    from lab.lifecycle import register_versions
    from lab.pipeline import prepare
    from lab.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides(args))
    prepared = prepare(
        scenario,
        source_name=args.scenario.name,
        base_dir=args.scenario.resolve().parent,
        store=open_store(args.cache_dir, enabled=not args.no_cache),
    )
    print(
        f"{'version':<44}{'parent':<14}{'recall@K':>10}{'NDCG@K':>9}{'coverage':>10}{'train s':>9}"
    )
    for v in register_versions(prepared, args.registry, k=args.k):
        parent = v.parent_id.split("@")[0] if v.parent_id else "-"
        print(
            f"{v.version_id:<44}{parent:<14}{v.recall:>10.4f}{v.ndcg:>9.4f}{v.coverage:>10.4f}"
            f"{v.training_s:>9.3f}"
        )
    print(f"registry: {args.registry}")
    return EXIT_OK
