"""How fast the command line answers when there is nothing to simulate.

    python bench/cli_bench.py [--repeats 7]

Times, as a user waits for them (process start to exit, fresh process each time):

* ``rollout-lab --help``;
* ``rollout-lab validate scenarios/quickstart.toml``;
* a refusal: ``rollout-lab run scenarios/quickstart.toml --out /`` (exit 2, one line);
* for reference, a bare ``python -c pass`` start-up of the same interpreter.

Prints min / median / max seconds of each over ``--repeats`` runs (interleaved, so load
drifts hit all alike) and the goal: ``--help`` and ``validate`` within 0.5 s.  Writes
``bench/out/cli.json``.

The lab's own modules are byte-compiled first, as ``pip install`` does: with
``PYTHONDONTWRITEBYTECODE`` set, a module edited since its last compile would otherwise be
compiled again in every timed process, and the figure would time the compiler.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "cli.json"
GOAL_S = 0.5
QUICKSTART = str(ROOT / "scenarios" / "quickstart.toml")
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "rollout-lab --help": [sys.executable, "-m", "rollout_lab.cli", "--help"],
    "rollout-lab validate": [sys.executable, "-m", "rollout_lab.cli", "validate", QUICKSTART],
    "rollout-lab run --out / (refused)": [
        sys.executable,
        "-m",
        "rollout_lab.cli",
        "run",
        QUICKSTART,
        "--out",
        "/",
    ],
}
EXPECTED = {"rollout-lab run --out / (refused)": 2}
PACKAGES = ("replay", "sim", "lab", "reports", "rollout_lab")


def once(cmd: list[str]) -> tuple[float, int]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, check=False)
    return time.perf_counter() - started, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            seconds, code = once(cmd)
            if code != EXPECTED.get(name, 0):
                raise SystemExit(f"{name}: exit code {code}")
            times[name].append(seconds)
    report = {
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "seconds": {
            name: {"min": min(v), "median": statistics.median(v), "max": max(v)}
            for name, v in times.items()
        },
    }
    print(f"{'command':<36}{'min s':>8}{'median s':>10}{'max s':>8}")
    for name, stats in report["seconds"].items():
        print(f"{name:<36}{stats['min']:>8.3f}{stats['median']:>10.3f}{stats['max']:>8.3f}")
    print(
        f"goal: --help and validate within {GOAL_S} s (median); load average "
        f"{' '.join(f'{x:.1f}' for x in load_before)} before"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
