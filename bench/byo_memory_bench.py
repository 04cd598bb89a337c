"""The memory guard's estimate against the measured peak, for runs with external versions.

    python bench/byo_memory_bench.py [--users 200000] [--k 100] [--runs 2] [--cases lab,topk,...]

``scenarios/reference_1m.toml`` at 200k users x 20k items (20 minutes of traffic at 300
requests/s), run end to end by the real CLI in a fresh process with an empty artifact
cache (cold: the world is built and the baseline trained), with the candidate:

    lab          its own ALS candidate (the reference)
    topk         a Parquet top-K table of every user x K = 100 (``[models.candidate] topk``)
    embeddings   user and item factors (64 per row, float32, ``.npz``) scored by the lab
    topk_short   the table with 2 minutes of traffic: reading it sets the peak, not requests

Per case: the peak resident memory of the run (``wait4``) and the guard's estimate
(``lab.footprint.estimate_run``), their ratio min / median / max over ``--runs``.  Goal:
the estimate within 30 % of the peak (0.7 <= estimate / peak <= 1.3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from list_table_bench import write_table  # noqa: E402

SCENARIO = ROOT / "scenarios" / "reference_1m.toml"
GOAL = (0.7, 1.3)
FACTORS = 64


def overrides(users: int, items: int, case: str, folder: Path) -> list[str]:
    base = [
        f"traffic.users={users}",
        f"traffic.items={items}",
        'traffic.duration="2m"' if case == "topk_short" else 'traffic.duration="20m"',
        "traffic.arrivals.rate_per_s=300",
    ]
    if case in ("topk", "topk_short"):
        base.append(f'models.candidate={{topk={{path="{folder / "lists.parquet"}"}}}}')
    elif case == "embeddings":
        base.append(f'models.candidate={{embeddings={{path="{folder / "factors.npz"}"}}}}')
    return base


def write_embeddings(path: Path, users: int, items: int, seed: int = 11) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    np.savez(
        path,
        user_factors=rng.standard_normal((users, FACTORS), dtype=np.float32),
        item_factors=rng.standard_normal((items, FACTORS), dtype=np.float32),
    )


def peak_of_run(settings: list[str], folder: Path) -> int:
    """Peak resident bytes of one cold run of the CLI."""
    cache, out = folder / "cache", folder / "out"
    cmd = [sys.executable, "-m", "rollout_lab.cli", "run", str(SCENARIO), "--out", str(out)]
    cmd += ["--force", "--quiet", "--cache-dir", str(cache), "--max-memory", "1TB"]
    for text in settings:
        cmd += ["--set", text]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"rollout-lab failed:\n{stderr[-3000:]}")
    subprocess.run(["rm", "-rf", str(cache), str(out)], check=True)
    return int(usage.ru_maxrss) * 1024


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--cases", default="lab,topk,embeddings,topk_short")
    args = parser.parse_args(argv)
    from lab.footprint import estimate_run
    from lab.scenario import load_scenario

    ok = True
    with tempfile.TemporaryDirectory(prefix="rollout-lab-byo-memory-") as tmp:
        folder = Path(tmp)
        write_table(folder / "lists.parquet", args.users, args.k, args.items)
        write_embeddings(folder / "factors.npz", args.users, args.items)
        for case in args.cases.split(","):
            settings = overrides(args.users, args.items, case, folder)
            estimate = estimate_run(load_scenario(SCENARIO, settings)).total_bytes
            peaks = sorted(peak_of_run(settings, folder) for _ in range(args.runs))
            ratios = sorted(estimate / p for p in peaks)
            within = GOAL[0] <= statistics.median(ratios) <= GOAL[1]
            ok &= within
            print(
                f"{case:<11} estimate {estimate / 1e9:.2f} GB  peak min/median/max "
                f"{peaks[0] / 1e9:.2f} / {statistics.median(peaks) / 1e9:.2f} / "
                f"{peaks[-1] / 1e9:.2f} GB  estimate/peak min/median/max {ratios[0]:.2f} / "
                f"{statistics.median(ratios):.2f} / {ratios[-1]:.2f}"
                + ("" if within else "  OUTSIDE 30 %"),
                flush=True,
            )
    print("goal met" if ok else "goal NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
