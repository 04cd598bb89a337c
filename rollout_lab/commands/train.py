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
    p.add_argument(
        "--registry",
        type=Path,
        default=None,
        help="registry folder (default: the scenario's registry, else ./registry)",
    )
    p.add_argument("--k", type=int, default=20, help="K of recall@K and NDCG@K (default 20)")
    scenario_options(p)
    cache_options(p)


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store
    from lab.external import registry_root
    from lab.lifecycle import register_versions
    from lab.pipeline import prepare
    from lab.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides(args))
    base_dir = args.scenario.resolve().parent
    root: Path = args.registry or (
        registry_root(scenario, source=args.scenario.name, base_dir=base_dir) or Path("registry")
    )
    prepared = prepare(
        scenario,
        source_name=args.scenario.name,
        base_dir=base_dir,
        store=open_store(args.cache_dir, enabled=not args.no_cache),
    )
    print(f"holdout metrics at K = {args.k} (recall@{args.k}, NDCG@{args.k}, catalogue coverage)")
    print(
        f"{'version':<44}{'parent':<14}{'recall@K':>10}{'NDCG@K':>9}{'coverage':>10}{'train s':>9}"
    )
    registered = register_versions(prepared, root, k=args.k)
    for v in registered:
        parent = v.parent_id.split("@")[0] if v.parent_id else "-"
        print(
            f"{v.version_id:<44}{parent:<14}{v.recall:>10.4f}{v.ndcg:>9.4f}{v.coverage:>10.4f}"
            f"{v.training_s:>9.3f}"
        )
    for line in worse_than_parent(registered, args.k):
        print(line)
    print(f"registry: {root}")
    return EXIT_OK


def worse_than_parent(registered: list[Any], k: int) -> list[str]:
    """A note for each version whose holdout recall@K or NDCG@K is below its parent's."""
    by_id = {v.version_id: v for v in registered}
    notes = []
    for v in registered:
        parent = by_id.get(v.parent_id or "")
        if parent is None:
            continue
        worse = [
            f"{label} {mine:.4f} vs {theirs:.4f} ({mine - theirs:+.4f})"
            for label, mine, theirs in (
                (f"recall@{k}", v.recall, parent.recall),
                (f"NDCG@{k}", v.ndcg, parent.ndcg),
            )
            if mine < theirs
        ]
        if worse:
            notes.append(
                f"note: {v.name} is worse than its parent {parent.name} on the holdout: "
                + ", ".join(worse)
            )
    return notes
