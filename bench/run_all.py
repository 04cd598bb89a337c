"""Run every benchmark in turn (``make bench``); each prints its own table and writes JSON.

    python bench/run_all.py            # all of them
    python bench/run_all.py throughput models   # a selection, by script name

Each script measures its goal as a ratio to a reference run in the same process where one
exists (bare SimPy M/M/8, bare polars scan+sort, implicit's own recommend, one worker), and
reports min / median / max over repeated runs, because absolute times on shared machines
drift.  MovieLens-based benchmarks read ``ROLLOUT_LAB_MOVIELENS`` (or ``--data``) and are
skipped when no ratings file is given.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "throughput",
    "cli_bench",
    "scale_bench",
    "log_bench",
    "models_bench",
    "metrics_bench",
    "report_bench",
    "sweep_bench",
    "aa_bench",
    "manifest_bench",
    "list_table_bench",
    "byo_simulation_bench",
    "byo_memory_bench",
    "remembering_bench",
]


def main(argv: list[str]) -> int:
    wanted = [
        name if name.endswith("_bench") or name == "throughput" else f"{name}_bench"
        for name in argv
    ] or ORDER
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    failed = []
    for name in wanted:
        script = HERE / f"{name}.py"
        if not script.exists():
            print(f"== {name}: no such benchmark ({', '.join(ORDER)})")
            failed.append(name)
            continue
        args = [sys.executable, str(script)]
        if name == "scale_bench":
            args.append("--readme")  # the README's scaling table is this run's
        if name == "models_bench":
            data = os.environ.get("ROLLOUT_LAB_MOVIELENS")
            if not data:
                print("== models_bench: skipped (set ROLLOUT_LAB_MOVIELENS to a ratings.csv)")
                continue
            args += ["--data", data]
        print(f"== {name}", flush=True)
        if subprocess.run(args, env=env, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
