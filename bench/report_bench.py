"""Wall time of ``build_summary`` + ``render_report`` and the size of what they write.

Runs ``scenarios/reference_1m.toml`` (150 requests/s for 2 h, about 1.07M requests) once
per duration asked for, then times ``build_summary`` (every summary.json block, quality
metrics included) and ``render_report`` (the HTML page with its figures) over ``--runs``
repetitions, and prints min / median / max seconds and the sizes of report.html and
summary.json.  Longer durations scale the request count with everything else fixed, to show
that the page size does not grow with it.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/report_bench.py [--runs 3]
        [--durations 2h 4h 33400s]

Goals at 1M requests: summary + report <= 10 s, report.html < 5 MB (and < 5 MB at 5M,
which ``--durations 33400s`` runs: about 5.0M requests, under a minute, ~2 GB of memory).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="rollout-lab-mpl-"))

from lab.pipeline import run
from lab.scenario import load_scenario
from reports.html import render_report
from reports.summary import build_summary, dumps
from reports.verdict import check_expectations

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "reference_1m.toml"
GOAL_S = 10.0
GOAL_BYTES = 5_000_000


def _spread(values: list[float]) -> str:
    return f"{min(values):6.2f} / {statistics.median(values):6.2f} / {max(values):6.2f}"


def bench(duration: str, runs: int) -> tuple[int, float, int]:
    """One duration: prints a line, returns (requests, median total s, html bytes)."""
    started = time.perf_counter()
    scenario = load_scenario(SCENARIO, [f"traffic.duration={duration}"])
    result = run(scenario)
    run_s = time.perf_counter() - started
    summary_s: list[float] = []
    render_s: list[float] = []
    total_s: list[float] = []
    page = text = ""
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        summary = build_summary(result, scenario_file=SCENARIO.name)
        verdict = check_expectations(summary, dict(scenario.expect), source=SCENARIO.name)
        summary["verdict"] = verdict
        t1 = time.perf_counter()
        page = render_report(summary, result.requests, verdict)
        t2 = time.perf_counter()
        text = dumps(summary)
        summary_s.append(t1 - t0)
        render_s.append(t2 - t1)
        total_s.append(t2 - t0)
    n = result.requests.height
    html_bytes = len(page.encode("utf-8"))
    print(
        f"{duration:>8} {n:>10,} {run_s:>8.1f}   {_spread(summary_s)}   {_spread(render_s)}   "
        f"{_spread(total_s)}   {html_bytes / 1e6:6.3f} MB   {len(text) / 1e3:6.1f} kB",
        flush=True,
    )
    return n, statistics.median(total_s), html_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions per duration")
    parser.add_argument(
        "--durations",
        nargs="+",
        default=["2h"],
        help="traffic.duration values (2h is about 1.07M requests)",
    )
    args = parser.parse_args()
    print(f"{SCENARIO.name}, {args.runs} runs each; seconds as min / median / max")
    print(
        f"{'duration':>8} {'requests':>10} {'run s':>8}   {'build_summary s':^24}   "
        f"{'render_report s':^24}   {'both s':^24}   {'report.html':>9}   summary.json"
    )
    failed = False
    for duration in args.durations:
        n, total, size = bench(duration, args.runs)
        if 900_000 <= n <= 1_200_000 and total > GOAL_S:
            print(f"  goal missed: {total:.2f} s > {GOAL_S:g} s at {n:,} requests")
            failed = True
        if size >= GOAL_BYTES:
            print(f"  goal missed: report.html {size / 1e6:.2f} MB >= {GOAL_BYTES / 1e6:g} MB")
            failed = True
    print("goals met" if not failed else "some goals missed")


if __name__ == "__main__":
    main()
