"""``rollout-lab models``: list registered versions, show one's provenance, diff two.

A version is named by its id, by its name alone (the newest version of that name, e.g.
``baseline``) or by the start of its id (``Registry.resolve``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from replay.errors import UserInputError
from rollout_lab.commands.common import EXIT_OK

NAME = "models"

#: Metrics of the holdout evaluation shown by ``list`` and compared by ``diff``.
METRICS = (("recall", "recall@K"), ("ndcg", "NDCG@K"), ("coverage", "coverage"))


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="list, show and diff registered model versions")
    p.add_argument("action", choices=["list", "show", "diff"])
    p.add_argument(
        "versions", nargs="*", help="versions (show: one, diff: two): an id, a name or an id prefix"
    )
    p.add_argument("--registry", type=Path, default=Path("registry"), help="registry folder")
    p.add_argument("--users", type=int, default=2_000, help="diff: users sampled for stability")
    p.add_argument("--k", type=int, default=20, help="diff: list length for Jaccard@K and RBO")


def _number(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def list_table(registry: Any) -> list[str]:
    """One line per version: id, parent, created, the holdout metrics and their K."""
    lines = [
        f"{'version':<44}{'parent':<14}{'created (UTC)':<22}{'K':>4}"
        + "".join(f"{label:>10}" for _, label in METRICS)
    ]
    for vid in registry.list():
        try:
            document = registry.provenance(vid)
        except UserInputError:
            lines.append(f"{vid:<44}(unreadable provenance: models show {vid} says why)")
            continue
        metrics = document.get("metrics") or {}
        parent = (document.get("parent_id") or "-").split("@")[0]
        lines.append(
            f"{vid:<44}{parent:<14}{document.get('created_at', '-')!s:<22}"
            f"{metrics.get('k', '-')!s:>4}"
            + "".join(f"{_number(metrics.get(key)):>10}" for key, _ in METRICS)
        )
    return lines


def diff_lines(a: tuple[Any, Any], b: tuple[Any, Any], diff: Any) -> list[str]:
    """Levels as levels, differences as differences: each holdout metric of A and B with
    B − A, then how much their lists agree (Jaccard@K and RBO are levels, 1 = same lists)."""
    names = (a[1].version_id, b[1].version_id)
    m_a, m_b = a[1].metrics, b[1].metrics
    lines = [
        f"A = {names[0]}",
        f"B = {names[1]}",
        f"{'holdout metric':<16}{'A':>10}{'B':>10}{'B - A':>10}",
    ]
    for key, label in METRICS:
        level_a = None if m_a is None else getattr(m_a, key)
        level_b = None if m_b is None else getattr(m_b, key)
        delta = getattr(diff, f"{key}_delta")
        shown = "-" if delta is None else f"{delta:+.4f}"
        lines.append(f"{label:<16}{_number(level_a):>10}{_number(level_b):>10}{shown:>10}")
    if diff.recall_delta is None:
        lines.append("(no difference: the two were not evaluated at the same K)")
    lines.append(
        f"lists on {diff.n_users:,} users, K = {diff.k}: Jaccard@K {diff.jaccard_mean:.4f}, "
        f"RBO {diff.rbo_mean:.4f} (1 = the same lists)"
    )
    return lines


def execute(args: argparse.Namespace) -> int:
    import numpy as np
    import scipy.sparse as sp

    from replay.registry import Registry, diff_versions

    registry = Registry(args.registry)
    wanted = {"list": 0, "show": 1, "diff": 2}[args.action]
    if len(args.versions) != wanted:
        raise UserInputError(
            f"models {args.action} takes {wanted} version(s), got {len(args.versions)}"
        )
    if args.action == "list":
        if not registry.list():
            print(f"no versions in {args.registry}")
            return EXIT_OK
        print("\n".join(list_table(registry)))
        return EXIT_OK
    ids = [registry.resolve(text) for text in args.versions]
    if args.action == "show":
        registry.load(ids[0])  # verify before showing
        print(json.dumps(registry.provenance(ids[0]), indent=2))
        return EXIT_OK
    a = registry.load(ids[0])
    b = registry.load(ids[1])
    n_users = min(a[0].n_users, b[0].n_users)
    rng = np.random.default_rng(0)
    users = np.sort(rng.choice(n_users, size=min(args.users, n_users), replace=False))
    empty = sp.csr_matrix((n_users, max(a[0].n_items, b[0].n_items)), dtype=np.float32)
    diff = diff_versions(a, b, users, empty, args.k)
    print("\n".join(diff_lines(a, b, diff)))
    return EXIT_OK
