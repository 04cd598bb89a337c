"""Simulation cost of remembering users against the memoryless cascade, on the quick start.

    python bench/remembering_bench.py             # 3 runs of each variant
    python bench/remembering_bench.py --runs 5

In one process: ``prepare()`` of ``scenarios/quickstart.toml`` once, then for each of
``--runs`` rounds ``simulate_prepared()`` of each variant, one after the other (so the
variants of a round share the machine's load):

- ``cascade``: the scenario as it is (the reference);
- ``remembering``: ``users.model = "remembering"`` with ``return_at_zero = 1`` (nobody
  leaves: the same requests as the reference, every one of them answered and responded);
- ``remembering_leaving``: the remembering defaults (users leave, fewer requests are sent).

Rate = requests the traffic drew / ``timing["simulate_s"]`` (the pipeline's own clock of the
simulation phase: routing, event loop, users' responses); ratio = the variant's rate / the
cascade's rate in the same round.  Then end to end: ``rollout-lab run`` of the quick start
in a fresh process (warm artifact cache, report written), the cascade and ``remembering``
alternately, ``--runs`` times each; ratio = the remembering run's wall time / the cascade
run's just before.  Goals: simulation ``remembering`` >= 0.5x; end to end <= 1.2x.  Prints
min / median / max; writes ``bench/out/remembering_bench.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out" / "remembering_bench.json"
VARIANTS: dict[str, list[str]] = {
    "cascade": [],
    "remembering": ["users.model=remembering", "users.memory.return_at_zero=1"],
    "remembering_leaving": ["users.model=remembering"],
}


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "quickstart.toml")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from lab.pipeline import prepare, simulate_prepared
    from lab.scenario import load_scenario

    prepared = prepare(load_scenario(args.scenario))
    # The users' settings change only the simulation: the prepared world and versions serve
    # every variant.
    runnable = {
        name: dataclasses.replace(
            prepared, scenario=load_scenario(args.scenario, overrides=overrides)
        )
        for name, overrides in VARIANTS.items()
    }
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
    sent: dict[str, int] = {}
    for _ in range(args.runs):
        reference = 0.0
        for name, variant in runnable.items():
            result = simulate_prepared(variant)
            n = int(result.outcome.records.n)
            sent[name] = int(result.requests.height)
            rate = n / result.timing["simulate_s"]
            reference = rate if name == "cascade" else reference
            rates[name].append(rate)
            ratios[name].append(rate / reference)
    results: dict[str, Any] = {}
    for name in VARIANTS:
        results[name] = {
            "requests_sent": sent[name],
            "rate_per_s": _spread(rates[name]),
            "ratio_to_cascade": _spread(ratios[name]),
        }
        r = ratios[name]
        print(
            f"{name:20s} {sent[name]:>9,d} sent  {statistics.median(rates[name]):>9,.0f} req/s  "
            f"ratio to cascade min {min(r):.2f}x  median {statistics.median(r):.2f}x  "
            f"max {max(r):.2f}x"
        )
    results["end_to_end_ratio"] = _end_to_end(args.scenario, args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def _end_to_end(scenario: Path, runs: int) -> dict[str, float]:
    """Wall time of ``rollout-lab run`` with remembering users / without, paired by round."""
    ratios: list[float] = []
    with tempfile.TemporaryDirectory(prefix="remembering-bench-") as tmp:
        walls: dict[str, float] = {}
        for k in range(runs + 1):  # round 0 warms the artifact cache
            for name in ("cascade", "remembering"):
                sets = [arg for o in VARIANTS[name] for arg in ("--set", o)]
                command = [sys.executable, "-m", "rollout_lab.cli", "run", str(scenario),
                           "--out", f"{tmp}/{name}", "--force", "--quiet", *sets]  # fmt: skip
                started = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                walls[name] = time.perf_counter() - started
            if k:
                ratios.append(walls["remembering"] / walls["cascade"])
    print(
        f"end to end (remembering / cascade wall time): min {min(ratios):.2f}x  "
        f"median {statistics.median(ratios):.2f}x  max {max(ratios):.2f}x"
    )
    return _spread(ratios)


if __name__ == "__main__":
    main()
