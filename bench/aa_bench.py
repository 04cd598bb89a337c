"""A/A benchmark of the rollout analysis with every guardrail of the scenario library on.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/aa_bench.py [--replications 200]
        [--workers 2] [--weights 5,50] [--power-replications 200] [--set PATH=VALUE ...]

Runs the reference setup of ``lab.operating.reference_scenario`` — ``scenarios/aa_test.toml``
(the candidate is the baseline itself) at 5,000 users, 40 requests/s for 40 minutes, with
every guardrail the library uses (``library_guardrails``: the tightest bound per metric and
kind), the gate and the guardrail budget at alpha 0.05 — once per canary weight in
``--weights``; then, unless ``--power-replications 0``, a candidate whose true CTR lift is
exactly the gate's minimum detectable effect (20,000 users, 80 minutes, weight 50).  This is
the setup of ``tests/validation/test_rollout_oc.py``.  Replications are spread over
``--workers`` processes, each preparing the scenario once.

Prints, per configuration, each rate as count / replications, the rate, its Monte Carlo
standard error sqrt(p (1 − p) / n), its Wilson 95 % interval and the goal:

- false rollback and false promotion: at most alpha + 2 MCSE, alpha = 0.05 (the guardrail
  budget ``analysis.guardrail_alpha`` and the gate's alpha);
- for comparison, guardrails read on each window's point estimate, and the naive z-test
  peeked at every analysis (both expected above alpha);
- power at the minimum detectable effect: at least 0.8.

Also prints the wall time per replication (min / median / max) and the load average.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import math
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 0.05
POWER_GOAL = 0.8


@cache
def _prepared(lift: bool, weight: float, overrides: tuple[str, ...]) -> Any:
    from lab.operating import reference_scenario, with_mde_at_true_lift
    from lab.pipeline import prepare

    scenario = reference_scenario(
        ROOT / "scenarios", lift=lift, weight=weight, alpha=ALPHA, overrides=overrides
    )
    prepared = prepare(scenario)
    return with_mde_at_true_lift(prepared) if lift else prepared


def _chunk(
    lift: bool, weight: float, overrides: tuple[str, ...], replications: list[int]
) -> list[tuple[Any, float]]:
    """Run some replications in this worker: (outcome, wall seconds) each."""
    from lab.operating import replication_outcome

    prepared = _prepared(lift, weight, overrides)
    out = []
    for r in replications:
        started = time.perf_counter()
        outcome = replication_outcome(prepared, r)
        out.append((outcome, time.perf_counter() - started))
    return out


def run(
    replications: int,
    workers: int,
    *,
    lift: bool = False,
    weight: float = 50.0,
    overrides: tuple[str, ...] = (),
) -> tuple[list[Any], list[float], float]:
    """(outcomes in replication order, wall seconds per replication, wall seconds in all)."""
    chunks = [list(range(w, replications, workers)) for w in range(workers)]
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = pool.map(
            _chunk, [lift] * workers, [weight] * workers, [overrides] * workers, chunks
        )
        done = [pair for part in parts for pair in part]
    done.sort(key=lambda pair: pair[0].replication)
    return [o for o, _ in done], [s for _, s in done], time.perf_counter() - started


def mcse(rate: float, n: int) -> float:
    return math.sqrt(rate * (1.0 - rate) / n)


def row(name: str, block: dict[str, Any], goal: str, passed: bool | None) -> str:
    n, rate = block["of"], block["rate"]
    low, high = block["ci95"]
    verdict = "" if passed is None else ("ok" if passed else "MISSED")
    return (
        f"  {name:<34} {block['count']:>4} / {n:<4} {rate:6.3f}  ±{mcse(rate, n):.3f}"
        f"  [{low:.3f}, {high:.3f}]  {goal:<18} {verdict}"
    )


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def report_aa(weight: str, oc: dict[str, Any], walls: list[float], wall: float) -> bool:
    n = oc["replications"]
    ceiling = ALPHA + 2.0 * mcse(ALPHA, n)
    goal = f"<= {ceiling:.3f}"
    ok_rollback = bool(oc["false_rollback"]["rate"] <= ceiling)
    ok_promotion = bool(oc["false_promotion"]["rate"] <= ceiling)
    print(f"A/A, canary weight {weight} %, {n} replications ({wall:.0f} s)")
    print(row("false rollback", oc["false_rollback"], goal, ok_rollback))
    print(row("  by guardrails or SRM", oc["rolled_back_by_analyses"], goal, None))
    print(row("  by the gate (worse)", oc["gate_worse"], "", None))
    print(row("false promotion", oc["false_promotion"], goal, ok_promotion))
    print(row("any analysis failed", oc["analyses_failed"], "", None))
    for name, key in (
        ("point-estimate guardrails", "naive_guardrails_rolled_back"),
        ("naive z-test peeking", "naive_peeking_any_difference"),
    ):
        print(row(name, oc[key], "(comparison)", None))
    print(f"  wall per replication (s) min / median / max: {spread(walls)}")
    return ok_rollback and ok_promotion


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--power-replications", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--weights", default="5,50")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()

    from lab.operating import library_guardrails, operating_characteristics

    guards = library_guardrails(ROOT / "scenarios")
    print("guardrails: " + "; ".join(str(g.model_dump(exclude_none=True)) for g in guards))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    passed = True
    overrides = tuple(args.overrides)
    for weight in args.weights.split(","):
        outcomes, walls, wall = run(
            args.replications, args.workers, weight=float(weight), overrides=overrides
        )
        passed &= report_aa(weight, operating_characteristics(outcomes, "same"), walls, wall)
    if args.power_replications:
        outcomes, walls, wall = run(
            args.power_replications, args.workers, lift=True, overrides=overrides
        )
        oc = operating_characteristics(outcomes, "better")
        ok = bool(oc["power"]["rate"] >= POWER_GOAL)
        print(f"Lift = MDE, canary weight 50 %, {oc['replications']} replications ({wall:.0f} s)")
        print(row("power (gate says better)", oc["power"], f">= {POWER_GOAL}", ok))
        print(row("rolled back", oc["false_rollback"], "", None))
        print(f"  wall per replication (s) min / median / max: {spread(walls)}")
        passed &= ok
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
