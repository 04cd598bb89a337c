"""Top-K table loading: ``replay.list_tables.read_list_table`` against a bare polars read.

    python bench/list_table_bench.py [--users 1000000] [--k 100] [--runs 3] [--keep DIR]

Writes a Parquet top-K table (``user, item, rank, score``: every user ranks 1..K, sorted, as
an export writes it) in a child process, then, in a fresh child per run, times in the same
process:

    bare   polars.read_parquet(path)
    ours   read_list_table(path, k=K, ...) — the lists in the lab's id space, every row
           checked (ids known, ranks once, finite scores, no item twice in a list)

and the peak resident memory of ``ours`` alone (the kernel's high-water mark is reset just
before it through /proc/self/clear_refs, after the bare read's memory is freed).  Reports
min / median / max of the time ratio ours / bare and of the peak, against the goals: ratio
<= 2.0 and peak <= 2 GB.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_RATIO = 2.0
GOAL_PEAK_BYTES = 2_000_000_000
ROOT = Path(__file__).resolve().parents[1]


def write_table(path: Path, users: int, k: int, items: int, seed: int = 7) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(users, dtype=np.int32), k)
    rank = np.tile(np.arange(1, k + 1, dtype=np.int16), users)
    # Distinct items per list: a stride through the catalogue from a per-user offset.
    offset = rng.integers(0, items, users).astype(np.int64)
    item = (np.repeat(offset, k) + np.tile(np.arange(k, dtype=np.int64), users) * 7919) % items
    score = rng.random(users * k, dtype=np.float32)
    pl.DataFrame(
        {"user": user, "item": item.astype(np.int32), "rank": rank, "score": score}
    ).write_parquet(path)


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(path: str, users: int, k: int, items: int) -> dict[str, Any]:
    import polars as pl

    from replay.list_tables import read_list_table

    started = time.perf_counter()
    bare = pl.read_parquet(path)
    bare_s = time.perf_counter() - started
    rows = bare.height
    del bare
    gc.collect()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")
    started = time.perf_counter()
    table = read_list_table(path, k=k, n_users=users, n_items=items)
    ours_s = time.perf_counter() - started
    peak = _status_kb("VmHWM") * 1024
    assert table.accounting["kept"] == rows
    return {"bare_s": bare_s, "ours_s": ours_s, "ratio": ours_s / bare_s, "peak_bytes": peak}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="write the table here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, path = args.child
        if kind == "write":
            write_table(Path(path), args.users, args.k, args.items)
        else:
            print(json.dumps(measure(path, args.users, args.k, args.items)))
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="rollout-lab-lists-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"topk_{args.users}x{args.k}.parquet"
    common = ["--users", str(args.users), "--k", str(args.k), "--items", str(args.items)]
    if not path.exists():
        subprocess.run(
            [sys.executable, __file__, *common, "--child", "write", str(path)],
            check=True,
            cwd=ROOT,
        )
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, __file__, *common, "--child", "measure", str(path)],
            check=True,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout))
    ratios = sorted(r["ratio"] for r in runs)
    peaks = sorted(r["peak_bytes"] for r in runs)
    print(
        f"top-K table {args.users:,} users x K={args.k} ({args.users * args.k:,} rows, "
        f"{path.stat().st_size / 1e6:.0f} MB)"
    )
    for r in runs:
        print(
            f"  bare {r['bare_s']:.2f} s  ours {r['ours_s']:.2f} s  ratio {r['ratio']:.2f}  "
            f"peak {r['peak_bytes'] / 1e9:.2f} GB"
        )
    print(
        f"ratio min/median/max {ratios[0]:.2f} / {statistics.median(ratios):.2f} / "
        f"{ratios[-1]:.2f} (goal <= {GOAL_RATIO}); peak min/median/max "
        f"{peaks[0] / 1e9:.2f} / {statistics.median(peaks) / 1e9:.2f} / {peaks[-1] / 1e9:.2f} GB "
        f"(goal <= {GOAL_PEAK_BYTES / 1e9:.0f} GB)"
    )
    ok = statistics.median(ratios) <= GOAL_RATIO and statistics.median(peaks) <= GOAL_PEAK_BYTES
    print("goal met" if ok else "goal NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
