"""``rollout-lab models``: list registered versions, show one's provenance, diff two."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from replay.errors import UserInputError
from rollout_lab.commands.common import EXIT_OK

NAME = "models"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="list, show and diff registered model versions")
    p.add_argument("action", choices=["list", "show", "diff"])
    p.add_argument("versions", nargs="*", help="version ids (show: one, diff: two)")
    p.add_argument("--registry", type=Path, default=Path("registry"), help="registry folder")
    p.add_argument("--users", type=int, default=2_000, help="diff: users sampled for stability")
    p.add_argument("--k", type=int, default=20, help="diff: list length for Jaccard@K and RBO")


def execute(args: argparse.Namespace) -> int:
    import numpy as np
    import scipy.sparse as sp

    from replay.registry import Registry, diff_versions

    registry = Registry(args.registry)
    wanted = {"list": 0, "show": 1, "diff": 2}[args.action]
    if len(args.versions) != wanted:
        raise UserInputError(
            f"models {args.action} takes {wanted} version id(s), got {len(args.versions)}"
        )
    if args.action == "list":
        ids = registry.list()
        if not ids:
            print(f"no versions in {args.registry}")
        for vid in ids:
            print(vid)
        return EXIT_OK
    if args.action == "show":
        registry.load(args.versions[0])  # verify before showing
        document = json.loads((registry.path(args.versions[0]) / "provenance.json").read_text())
        print(json.dumps(document, indent=2))
        return EXIT_OK
    a = registry.load(args.versions[0])
    b = registry.load(args.versions[1])
    n_users = min(a[0].n_users, b[0].n_users)
    rng = np.random.default_rng(0)
    users = np.sort(rng.choice(n_users, size=min(args.users, n_users), replace=False))
    empty = sp.csr_matrix((n_users, max(a[0].n_items, b[0].n_items)), dtype=np.float32)
    diff = diff_versions(a, b, users, empty, args.k)
    for field in ("recall_delta", "ndcg_delta", "coverage_delta", "jaccard_mean", "rbo_mean"):
        value = getattr(diff, field)
        print(f"{field:<16}{'-' if value is None else f'{value:+.4f}'}")
    print(f"on {diff.n_users} users, K = {diff.k}")
    return EXIT_OK
