"""Simulation speed of the reference scenario with one pool and with a three-stage path.

    python bench/stages_bench.py                 # 3 runs of each, 1.08 M requests
    python bench/stages_bench.py --runs 5 --requests 300000

In one process: the bare SimPy M/M/8 reference (``bench/throughput.py``'s loop, median of
``--bare-runs``), then ``prepare()`` of ``scenarios/reference_1m.toml`` once and
``simulate_prepared()`` ``--runs`` times for each variant:

- ``one_pool``: the scenario as it is (every version one pool of 4 x 8 servers);
- ``three_stages``: the same, every version's path retrieval -> ranking -> re-ranking
  (``serving.stages``; the same total mean service split 20 / 65 / 15 %, each stage 4 x 8,
  a 40 ms re-ranking timeout that skips it).

Rate = requests / ``timing["simulate_s"]`` (the pipeline's own clock of the simulation
phase); ratio = rate / the bare M/M/8 rate measured right before that simulation (pairs share
the machine's load).  Goal: ``three_stages`` >= 1.0x, and
``one_pool`` unchanged by the stages' code (compare its ratio with the same script run on the
code before stages existed).  Prints min / median / max; writes
``bench/out/stages_bench.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from throughput import DEFAULT_SCENARIO, _load, bare_mm8_rate  # noqa: E402

OUT = HERE / "out" / "stages_bench.json"

THREE_STAGES = (
    "serving.stages=["
    '{name="retrieval", replicas=4, concurrency=8, '
    'latency={kind="lognormal", p50_ms=2.4, p99_ms=12.0}},'
    '{name="ranking", replicas=4, concurrency=8, '
    'latency={kind="lognormal", p50_ms=7.8, p99_ms=39.0}},'
    '{name="reranking", replicas=4, concurrency=8, timeout_ms=40, degrade="skip", '
    'latency={kind="lognormal", p50_ms=1.8, p99_ms=9.0}}'
    "]"
)


def _spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bare-runs", type=int, default=1, help="warm-up bare runs")
    parser.add_argument("--bare-customers", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=None, help="scale traffic.duration")
    parser.add_argument("--variants", default="one_pool,three_stages")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from lab.pipeline import prepare, simulate_prepared
    from lab.scenario import load_scenario

    bare = [bare_mm8_rate(args.bare_customers, seed=k) for k in range(args.bare_runs)]
    base = _load(args.scenario, args.requests)
    prepared = prepare(base)
    results: dict[str, Any] = {}
    for variant in args.variants.split(","):
        if variant == "three_stages":
            overrides = [THREE_STAGES, f"traffic.duration={base.traffic.duration}"]
            scenario = load_scenario(args.scenario, overrides=overrides)
            # Stages change serving only: the prepared world and versions are reused.
            runnable = dataclasses.replace(prepared, scenario=scenario)
        else:
            runnable = prepared
        rates, ratios = [], []
        for k in range(args.runs):
            # A bare run right before each simulation: the pair shares the machine's load.
            paired = bare_mm8_rate(args.bare_customers, seed=100 + k)
            bare.append(paired)
            result = simulate_prepared(runnable)
            rates.append(result.outcome.records.n / result.timing["simulate_s"])
            ratios.append(rates[-1] / paired)
        results[variant] = {
            "requests": int(result.outcome.records.n),
            "rate_per_s": _spread(rates),
            "ratio_to_bare_mm8": _spread(ratios),
        }
        print(
            f"{variant:13s} {result.outcome.records.n:>9,d} requests  ratio to bare M/M/8 "
            f"min {min(ratios):.2f}x  median {statistics.median(ratios):.2f}x  "
            f"max {max(ratios):.2f}x"
        )
    results["bare_mm8_per_s"] = _spread(bare)
    print(f"bare M/M/8: median {statistics.median(bare):,.0f} customers/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
