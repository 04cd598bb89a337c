"""Warm start vs full retrain, and top_k vs implicit's recommend, on MovieLens latest-small.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/models_bench.py [--data ratings.csv]

Windows (by event time; MovieLens timestamps are seconds):

    train    ts <  q80              baseline trained here (80% of the events)
    update   q80 <= ts < q90        the candidate's new data (10%)
    eval     ts >= q90              both candidates evaluated here (10%)

``q80`` / ``q90`` are the 80th / 90th percentile timestamps, so each window holds a fixed
share of the events rather than of the calendar (MovieLens is very uneven over 1996-2018).
Dense ids are given in order of first appearance, so users and items that first show up in
the update window get ids beyond the baseline's shape and the warm start has to grow.

Compared, with the same spec and seed:

    warm start  baseline -> ``warm_start`` on train+update, re-solving the users and items
                active in the update window (implicit ``partial_fit_users/items``)
    retrain     ``retrain`` from scratch on train+update

recall@20 on the eval window (``replay.registry.evaluate``: training items filtered,
recall = hits / min(20, |relevant|)), over all eval users (new users get the popularity
list from both models) and over the users known at update time (where the models differ).
Wall time is the update step alone (``TrainedModel.training_seconds``: growth + partial fits
for the warm start, ``fit`` for the retrain), after one untimed warm-up run; min / median /
max over ``--seeds`` runs.

Hyperparameters (defaults below) were chosen with ``--tune``: a small grid scored by
recall@20 of a model trained on the train window against the update window, so the eval
window plays no part in the choice.  Binary confidences, 32 factors, regularization 0.5,
alpha 1 (confidence 1 + alpha per interaction), 15 iterations.

Throughput: ``top_k`` against implicit's batch ``recommend(users, user_items[users], N=20)``
(slice included) on the same users and factors, both single-threaded, same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt
import polars as pl
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from replay.registry import evaluate  # noqa: E402
from replay.topk import top_k  # noqa: E402
from replay.training import (  # noqa: E402
    ModelSpec,
    TrainedModel,
    active_ids,
    retrain,
    to_implicit,
    train,
    warm_start,
)

K = 20


def dense_ids(raw: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Map raw ids to 0..n-1 in order of first appearance (``raw`` sorted by time)."""
    _, first = np.unique(raw, return_index=True)
    in_order = raw[np.sort(first)]
    mapping = np.empty(int(raw.max()) + 1, dtype=np.int64)
    mapping[in_order] = np.arange(in_order.size)
    return mapping[raw]


class Split:
    """The three windows as users x items matrices (binary confidences)."""

    def __init__(self, path: Path) -> None:
        ratings = pl.read_csv(path).sort("timestamp", "userId", "movieId")
        self.users = dense_ids(ratings["userId"].to_numpy().astype(np.int64))
        self.items = dense_ids(ratings["movieId"].to_numpy().astype(np.int64))
        ts = ratings["timestamp"].to_numpy()
        self.q80, self.q90 = (float(q) for q in np.quantile(ts, [0.8, 0.9]))
        self.train_mask = ts < self.q80
        self.update_mask = (ts >= self.q80) & (ts < self.q90)
        self.eval_mask = ts >= self.q90
        seen = self.train_mask | self.update_mask
        self.train = self.matrix(self.train_mask, self.shape(self.train_mask))
        self.all = self.matrix(seen, self.shape(seen))
        self.update = self.matrix(self.update_mask, self.all.shape)
        self.eval = self.matrix(self.eval_mask, self.shape(np.ones_like(seen)))
        # eval users known at update time: rows of the train+update matrix
        known = self.eval.tocoo()
        keep = known.row < self.all.shape[0]
        self.eval_known = sp.csr_matrix(
            (known.data[keep], (known.row[keep], known.col[keep])), shape=self.eval.shape
        )

    def shape(self, mask: npt.NDArray[np.bool_]) -> tuple[int, int]:
        return int(self.users[mask].max()) + 1, int(self.items[mask].max()) + 1

    def matrix(self, mask: npt.NDArray[np.bool_], shape: tuple[int, int]) -> sp.csr_matrix:
        ones = np.ones(int(mask.sum()), dtype=np.float32)
        out = sp.csr_matrix((ones, (self.users[mask], self.items[mask])), shape=shape)
        out.sum_duplicates()
        out.data[:] = 1.0
        return out

    def describe(self) -> str:
        def span(mask: npt.NDArray[np.bool_]) -> str:
            return (
                f"{int(mask.sum()):>6} events, {np.unique(self.users[mask]).size:>3} users, "
                f"{np.unique(self.items[mask]).size:>4} items"
            )

        return "\n".join(
            [
                f"  train : {span(self.train_mask)}  -> baseline shape {self.train.shape}",
                f"  update: {span(self.update_mask)}  -> train+update shape {self.all.shape}",
                f"  eval  : {span(self.eval_mask)}  "
                f"({np.unique(self.eval_known.nonzero()[0]).size} users known at update time)",
            ]
        )


def spread(values: list[float]) -> str:
    return f"{min(values):.4f} / {statistics.median(values):.4f} / {max(values):.4f}"


def per_user_recall(
    model: TrainedModel, seen: sp.csr_matrix, holdout: sp.csr_matrix
) -> npt.NDArray[np.float64]:
    """recall@K of each holdout user with a relevant item (same definition as evaluate)."""
    relevant = holdout.tolil()
    recalls = []
    users = np.flatnonzero(np.diff(holdout.indptr))
    lists = top_k(model, users, seen, K).items
    for user, ranked in zip(users, lists, strict=True):
        already = set(seen[user].indices.tolist()) if user < seen.shape[0] else set()
        wanted = set(relevant.rows[user]) - already
        if wanted:
            recalls.append(len(wanted & set(ranked.tolist())) / min(K, len(wanted)))
    return np.asarray(recalls)


def tune(split: Split) -> None:
    """Grid over factors, regularization, alpha: train window -> update window recall@20."""
    holdout = split.update[: split.train.shape[0]]  # users the baseline knows
    rows = []
    for factors, regularization, alpha in itertools.product(
        [32, 64], [0.05, 0.5, 5.0], [1.0, 5.0, 20.0, 40.0]
    ):
        recalls = []
        for seed in range(2):
            spec = ModelSpec("als", factors, regularization, 15, alpha, seed=seed)
            recalls.append(evaluate(train(spec, split.train), split.train, holdout, K).recall)
        rows.append((float(np.mean(recalls)), factors, regularization, alpha))
    for recall, factors, regularization, alpha in sorted(rows, reverse=True)[:8]:
        print(f"  recall@20 {recall:.4f}  factors={factors} reg={regularization} alpha={alpha}")


def compare(split: Split, base_spec: ModelSpec, seeds: int) -> dict[str, Any]:
    update_users, update_items = active_ids(split.update)
    # warm-up: first calls pay for imports and page faults, not for the algorithm
    warm_start(train(base_spec, split.train), split.all, update_users, update_items)
    retrain(base_spec, split.all)

    out: dict[str, list[float]] = {
        key: []
        for key in (
            "warm_seconds",
            "retrain_seconds",
            "warm_recall",
            "retrain_recall",
            "baseline_recall",
            "warm_recall_known",
            "retrain_recall_known",
            "baseline_recall_known",
        )
    }
    models: dict[str, TrainedModel] = {}
    for seed in range(seeds):
        spec = ModelSpec(
            base_spec.algorithm,
            base_spec.factors,
            base_spec.regularization,
            base_spec.iterations,
            base_spec.alpha,
            seed=seed,
        )
        baseline = train(spec, split.train)
        warm = warm_start(baseline, split.all, update_users, update_items)
        full = retrain(spec, split.all)
        out["warm_seconds"].append(warm.training_seconds)
        out["retrain_seconds"].append(full.training_seconds)
        for name, model in (("warm", warm), ("retrain", full), ("baseline", baseline)):
            # every model filters what users consumed up to the update window's end
            out[f"{name}_recall"].append(evaluate(model, split.all, split.eval, K).recall)
            known = evaluate(model, split.all, split.eval_known, K)
            out[f"{name}_recall_known"].append(known.recall)
        models = {"warm": warm, "retrain": full}
        paired = per_user_recall(warm, split.all, split.eval_known) - per_user_recall(
            full, split.all, split.eval_known
        )
        out["paired_differences"] = [*out.get("paired_differences", []), *paired.tolist()]
    popularity = train(ModelSpec("popularity"), split.all)
    result: dict[str, Any] = dict(out)
    result["popularity_recall"] = evaluate(popularity, split.all, split.eval, K).recall
    result["popularity_recall_known"] = evaluate(popularity, split.all, split.eval_known, K).recall
    result["update_users"] = int(update_users.size)
    result["update_items"] = int(update_items.size)
    result["models"] = models
    return result


def throughput(
    model: TrainedModel, user_items: sp.csr_matrix, repeat: int, runs: int
) -> dict[str, Any]:
    users = np.tile(np.arange(user_items.shape[0]), repeat)
    implicit_model = to_implicit(model)
    ours_s, theirs_s = [], []
    ours = theirs_ids = theirs_scores = None
    for _ in range(runs + 1):  # first round is a warm-up
        start = time.perf_counter()
        ours = top_k(model, users, user_items, K)
        ours_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs_ids, theirs_scores = implicit_model.recommend(users, user_items[users], N=K)
        theirs_s.append(time.perf_counter() - start)
    assert ours is not None and theirs_ids is not None and theirs_scores is not None
    valid = theirs_scores > -np.finfo(np.float32).max
    same_scores = bool(np.array_equal(ours.scores[valid], theirs_scores[valid]))
    differing = ours.items[valid] != theirs_ids[valid]
    # a differing id is only allowed where its score is tied with another entry of the row
    rows = np.nonzero(valid)[0][differing]
    tied_only = all(
        np.count_nonzero(theirs_scores[r] == s) > 1
        for r, s in zip(rows, theirs_scores[valid][differing], strict=True)
    )
    ours_rate = [users.size / s for s in ours_s[1:]]
    theirs_rate = [users.size / s for s in theirs_s[1:]]
    return {
        "users": int(users.size),
        "top_k_users_per_s": ours_rate,
        "implicit_users_per_s": theirs_rate,
        "ratio_of_medians": statistics.median(ours_rate) / statistics.median(theirs_rate),
        "identical_scores": same_scores,
        "differing_ids": int(differing.sum()),
        "differences_only_among_ties": tied_only,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO / "../shared/data/movielens-latest-small/ratings.csv",
        help="MovieLens ratings.csv (default: ../shared/data/... relative to the repo root)",
    )
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--regularization", type=float, default=0.5)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3, help="runs (one seed each)")
    parser.add_argument("--repeat", type=int, default=20, help="user list repeats for top-K")
    parser.add_argument("--tune", action="store_true", help="print the hyperparameter grid")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    if not args.data.is_file():
        print(f"{args.data}: no such file (pass --data path/to/ratings.csv)", file=sys.stderr)
        return 2
    split = Split(args.data)
    print(f"MovieLens split at q80={split.q80:.0f}, q90={split.q90:.0f} (unix seconds)")
    print(split.describe())
    if args.tune:
        print("hyperparameter grid (train -> update window, known users, mean of 2 seeds):")
        tune(split)

    spec = ModelSpec("als", args.factors, args.regularization, args.iterations, args.alpha)
    print(
        f"\nALS factors={spec.factors} regularization={spec.regularization} "
        f"alpha={spec.alpha} iterations={spec.iterations}, binary confidences, "
        f"{args.seeds} seeds"
    )
    result = compare(split, spec, args.seeds)
    print(
        f"update window: {result['update_users']} users and {result['update_items']} items "
        "re-solved by the warm start"
    )
    print("recall@20 on the eval window, mean over seeds (min / median / max):")
    for population, suffix in (("all eval users", ""), ("known at update", "_known")):
        warm = result[f"warm_recall{suffix}"]
        full = result[f"retrain_recall{suffix}"]
        gap = (np.mean(warm) - np.mean(full)) / np.mean(full)
        print(f"  {population}:")
        print(f"    warm start {np.mean(warm):.4f}  ({spread(warm)})")
        print(f"    retrain    {np.mean(full):.4f}  ({spread(full)})")
        print(f"    relative gap (warm - retrain) / retrain: {gap:+.2%}  (goal: >= -5%)")
        base = result[f"baseline_recall{suffix}"]
        print(f"    baseline, not updated {np.mean(base):.4f}; popularity ", end="")
        print(f"{result[f'popularity_recall{suffix}']:.4f}")
    differences = np.asarray(result["paired_differences"])
    per_seed = differences.reshape(args.seeds, -1)
    mean = float(per_seed.mean(axis=1).mean())
    # users are the unit of noise: standard error over the per-user differences (averaged
    # over seeds per user first, since the seeds share the users)
    by_user = per_seed.mean(axis=0)
    error = float(by_user.std(ddof=1) / np.sqrt(by_user.size)) if by_user.size > 1 else 0.0
    print(
        f"  paired per-user recall difference, warm - retrain, known users (n={by_user.size}):"
        f" {mean:+.4f} +- {1.96 * error:.4f} (95% normal interval)"
    )
    warm_s, full_s = result["warm_seconds"], result["retrain_seconds"]
    speedup = statistics.median(full_s) / statistics.median(warm_s)
    print("update wall seconds, min / median / max:")
    print(f"  warm start {spread(warm_s)}")
    print(f"  retrain    {spread(full_s)}")
    print(f"  speed-up (median retrain / median warm start): {speedup:.1f}x  (goal: >= 10x)")

    figures = throughput(result["models"]["retrain"], split.all, args.repeat, runs=3)
    print(f"top-{K} throughput on {figures['users']} users (3 runs, min / median / max):")
    print(f"  top_k     {spread(figures['top_k_users_per_s'])} users/s")
    print(f"  implicit  {spread(figures['implicit_users_per_s'])} users/s")
    print(f"  ratio of medians: {figures['ratio_of_medians']:.2f}x  (goal: >= 0.8x)")
    print(
        f"  identical scores: {figures['identical_scores']}; differing ids: "
        f"{figures['differing_ids']} (only among exact ties: "
        f"{figures['differences_only_among_ties']})"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        dump = {key: value for key, value in result.items() if key != "models"}
        dump.update(
            spec=spec.hyperparameters(), speedup=speedup, throughput=figures, q80=split.q80,
            q90=split.q90,
        )  # fmt: skip
        args.json.write_text(json.dumps(dump, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
