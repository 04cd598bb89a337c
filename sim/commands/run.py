"""``rollout-lab run``: one scenario in, report.html + summary.json (+ junit.xml) out."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim.commands.common import (
    EXIT_EXPECTATION,
    EXIT_OK,
    overrides,
    prepare_out,
    scenario_options,
    slug,
    write_atomic,
)

NAME = "run"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="run one scenario and write its report")
    p.add_argument("scenario", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<name>)")
    scenario_options(p)
    p.add_argument("--requests-parquet", action="store_true", help="also write requests.parquet")
    p.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    p.add_argument(
        "--reproducible",
        action="store_true",
        help="write wall-clock timings as 0 so summaries are byte-identical",
    )
    p.add_argument("--quiet", action="store_true", help="print only the report path")


def run_scenario(
    path: Path,
    out: Path | None,
    overrides: Sequence[str],
    *,
    force: bool = False,
    reproducible: bool = False,
    requests_parquet: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Load, simulate, and write summary.json, report.html (and junit.xml, requests.parquet)."""
    from reports.html import render_report
    from reports.junit import junit_xml
    from reports.summary import build_summary, dumps
    from reports.verdict import check_expectations
    from sim.pipeline import run
    from sim.scenario import load_scenario

    scenario = load_scenario(path, overrides)
    target = out if out is not None else Path("runs") / slug(scenario.name)
    prepare_out(target, force)
    result = run(scenario, source_name=path.name, base_dir=path.resolve().parent)
    started = time.perf_counter()
    summary = build_summary(result, scenario_file=path.name, reproducible=reproducible)
    verdict = check_expectations(summary, dict(scenario.expect), source=path.name)
    summary["verdict"] = verdict
    page = render_report(summary, result.requests, verdict)
    report_s = time.perf_counter() - started
    if not reproducible:
        summary["timing"]["report_s"] = round(report_s, 4)
    write_atomic(target / "report.html", page)
    if scenario.expect:
        write_atomic(target / "junit.xml", junit_xml([(scenario.name, verdict)]))
    if requests_parquet:
        tmp = target / ".requests.parquet.tmp"
        result.requests.write_parquet(tmp)
        os.replace(tmp, target / "requests.parquet")
    # summary.json last: its presence marks a complete run.
    write_atomic(target / "summary.json", dumps(summary))
    return summary, verdict, target


def _console(summary: dict[str, Any], target: Path) -> str:
    lines = [
        f"{summary['scenario']['name']}: outcome {summary['outcome']} "
        f"({summary['requests']['arrivals']:,} requests, "
        f"{summary['timing']['requests_per_wall_s']:,.0f} simulated requests per wall second)",
        f"{'version':<14}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'cache hit':>11}{'CTR':>8}",
    ]
    for name, v in summary["versions"].items():

        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:.2f}%"

        p50, p99 = v["latency_ms"]["p50"], v["latency_ms"]["p99"]
        lines.append(
            f"{name[:13]:<14}{v['requests']:>10,}{(p50 or 0):>9.1f}{(p99 or 0):>9.1f}"
            f"{pct(v['cache_hit_rate']):>11}{pct(v['ctr']):>8}"
        )
    verdict = summary.get("verdict", {})
    for e in verdict.get("expectations", []):
        mark = "ok  " if e["passed"] else "FAIL"
        lines.append(f"  {mark} {e['metric']} {e['condition']} (observed {e['observed']})")
    lines.append(f"report: {target / 'report.html'}")
    return "\n".join(lines)


def execute(args: argparse.Namespace) -> int:
    summary, verdict, target = run_scenario(
        args.scenario,
        args.out,
        overrides(args),
        force=args.force,
        reproducible=args.reproducible,
        requests_parquet=args.requests_parquet,
    )
    print(target / "report.html" if args.quiet else _console(summary, target))
    return EXIT_OK if verdict["passed"] else EXIT_EXPECTATION
