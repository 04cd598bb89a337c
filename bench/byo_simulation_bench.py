"""Simulation speed with an external version against the lab's own.

    python bench/byo_simulation_bench.py [--users 20000] [--replications 5]

Prepares the quick start twice on the same world: once with its own ALS candidate, once
with the candidate's lists written to a Parquet top-K table and read back as
``[models.candidate] topk`` (the same lists, so the same traffic meets the same items).
Then, alternating, simulates replication r of each (``lab.pipeline.simulate_prepared``:
traffic, routing, the event loop, user responses; the lists of the traffic's users are
decided before the clock starts either way) and reports the ratio of the simulation
phase's wall seconds external / lab per replication: min / median / max.  Goal: the
median within noise of 1.0 (decide once, simulate many times).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import polars as pl

from lab.pipeline import prepare, simulate_prepared
from lab.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--replications", type=int, default=5)
    args = parser.parse_args()
    size = [f"traffic.users={args.users}", "metrics.noise_floor=false"]
    quickstart = ROOT / "scenarios" / "quickstart.toml"
    own = prepare(load_scenario(quickstart, size), threads=1)
    candidate = own.versions[1]
    users = np.arange(own.world.n_users)
    items = candidate.list_store.rows(users)
    k = items.shape[1]
    with tempfile.TemporaryDirectory() as folder:
        table = Path(folder) / "lists.parquet"
        pl.DataFrame(
            {
                "user": np.repeat(users, k),
                "item": items.ravel().astype(np.int64),
                "rank": np.tile(np.arange(1, k + 1), users.size),
            }
        ).filter(pl.col("item") >= 0).write_parquet(table)
        setting = f'models.candidate={{topk={{path="{table}"}}}}'
        external = prepare(load_scenario(quickstart, [*size, setting]), threads=1)
    ratios = []
    for r in range(args.replications):
        lab_s = simulate_prepared(own, r).timing["simulate_s"]
        ext_s = simulate_prepared(external, r).timing["simulate_s"]
        ratios.append(ext_s / lab_s)
        print(f"replication {r}: lab {lab_s:.3f} s, external {ext_s:.3f} s, ratio {ratios[-1]:.3f}")
    print(
        f"simulation external / lab: min {min(ratios):.3f}  median "
        f"{statistics.median(ratios):.3f}  max {max(ratios):.3f}  (goal: median within noise "
        "of 1.0)"
    )


if __name__ == "__main__":
    main()
