"""``rollout-lab run``: one scenario in, report.html + summary.json (+ junit.xml) out."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.footprint import MemoryLimit, memory_guard, memory_limit
from replay.errors import UserInputError
from rollout_lab.commands.common import (
    EXIT_EXPECTATION,
    EXIT_OK,
    cache_options,
    check_file_outputs,
    error_line,
    file_output_options,
    guard_options,
    overrides,
    printable,
    scenario_options,
    slug,
    write_file_outputs,
)
from rollout_lab.outputs import Payload, check_out_dir, commit_run, output_names
from rollout_lab.progress import ProgressBar
from rollout_lab.signals import RunInterrupted, raise_if_stopped

if TYPE_CHECKING:
    from replay.artifact_store import ArtifactStore

NAME = "run"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="run one scenario and write its report")
    p.add_argument("scenario", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/<name>)")
    scenario_options(p)
    guard_options(p)
    cache_options(p)
    p.add_argument("--requests-parquet", action="store_true", help="also write requests.parquet")
    p.add_argument(
        "--registry",
        type=Path,
        default=None,
        help="model registry folder: versions named by registry id load from it, versions "
        "trained in the run are registered in it (sets the scenario's registry)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier run in --out (only the files it wrote, if unchanged)",
    )
    p.add_argument(
        "--reproducible",
        action="store_true",
        help="write wall-clock timings as 0 so summaries are byte-identical",
    )
    p.add_argument("--quiet", action="store_true", help="print only the report path")
    file_output_options(p)


def _incomplete_note(path: Path) -> str:
    return (
        f"rollout-lab was writing a run of {path.name} into this folder and did not finish.\n"
        "The files here are not a complete run: a complete run holds summary.json and no\n"
        "INCOMPLETE file. Run the scenario again (with --force) to replace them.\n"
    )


def run_scenario(
    path: Path,
    out: Path | None,
    overrides: Sequence[str],
    *,
    force: bool = False,
    reproducible: bool = False,
    requests_parquet: bool = False,
    limit: MemoryLimit | None = None,
    progress: Callable[[int, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    store: ArtifactStore | None = None,
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Check, simulate, then write report.html (junit.xml, requests.parquet) and summary.json.

    Before anything runs: the scenario and its files pass :func:`preflight.preflight` (the
    same checks as ``validate``) and the output folder ``outputs.check_out_dir``.  Nothing
    is written until the run is computed (``outputs.commit_run``); a SIGINT / SIGTERM
    (``RunInterrupted``) carries the folder and what it holds.
    """
    from rollout_lab.preflight import preflight, suite_of

    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    clock = time.perf_counter()
    active_limit = limit or memory_limit()
    checked = preflight(path, overrides, limit=active_limit)
    scenario = checked.scenario
    target = out if out is not None else Path("runs") / slug(scenario.name)
    writes = output_names(bool(scenario.expect), requests_parquet)
    try:
        check_out_dir(target, force=force, writes=writes)
        # The simulator and the report load only once every cheap check has passed.
        from lab.pipeline import run
        from reports.html import render_report
        from reports.junit import junit_xml
        from reports.summary import build_summary, dumps
        from reports.verdict import check_expectations

        def step(done: int, total: int) -> None:
            raise_if_stopped()
            if progress is not None:
                progress(done, total)

        with memory_guard(active_limit):
            result = run(
                scenario,
                source_name=path.name,
                base_dir=checked.base_dir,
                progress=step,
                stage=stage,
                store=store,
            )
        if result.requests.height == 0:
            raise UserInputError(
                f"{path.name}: the run drew no requests, so there is nothing to judge (lengthen "
                "traffic.duration or raise the arrival rate)"
            )
        started = time.perf_counter()
        summary = build_summary(result, scenario_file=path.name, reproducible=reproducible)
        verdict = check_expectations(summary, dict(scenario.expect), source=path.name)
        summary["verdict"] = verdict
        files: dict[str, Payload] = {
            "report.html": render_report(summary, result.requests, verdict, store=store)
        }
        if scenario.expect:
            suite = suite_of(
                summary, path, target, time_s=time.perf_counter() - clock, timestamp=started_at
            )
            files["junit.xml"] = junit_xml([suite])
        if requests_parquet:
            files["requests.parquet"] = result.requests.write_parquet
        # Always present (the schema promises it); a wall-clock time, so 0 when reproducible.
        summary["timing"]["report_s"] = (
            0.0 if reproducible else round(time.perf_counter() - started, 4)
        )
        commit = commit_run(
            target,
            files,
            dumps(summary),
            note=_incomplete_note(path),
            force=force,
            scenario=scenario.name,
        )
    except RunInterrupted as stop:
        if stop.out is None:
            stop.out, stop.folder = target, "unchanged"
        raise
    for line in coverage_notes(summary):
        print(error_line(line, prefix="rollout-lab: note: "), file=sys.stderr)
    for name in commit.left_changed:
        print(
            error_line(
                f"{target / name} is from an earlier run but was changed since: left as it is "
                "(not part of this run)",
                prefix="rollout-lab: note: ",
            ),
            file=sys.stderr,
        )
    return summary, verdict, target


def coverage_notes(summary: dict[str, Any]) -> list[str]:
    """A note for each version whose table or embeddings miss some of the traffic's users."""
    notes = []
    for name, block in summary["versions"].items():
        model = block["model"]
        coverage = model.get("coverage")
        if coverage is None or coverage["share"] >= 1.0:
            continue
        provenance = model["provenance"] or {}
        notes.append(
            f"{provenance.get('path', name)}: covers {coverage['share']:.1%} of the "
            f"{coverage['traffic_users']:,} traffic users; models.{name} served the others "
            f"its fallback ({provenance.get('fallback', 'popular')}); set require_coverage "
            "to make this an error"
        )
    return notes


def _speed(timing: dict[str, Any], reproducible: bool) -> str:
    """The simulation's speed, or why it is not shown (timings written as 0)."""
    if reproducible:
        return "wall-clock timings not recorded with --reproducible"
    return f"{timing['requests_per_wall_s']:,.0f} simulated requests per wall second"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _ms(x: float | None, width: int) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.1f}"


def _logged_ctr(summary: dict[str, Any]) -> str | None:
    """For a replayed log with a reward column: its own click rate, beside the simulated one."""
    off = summary.get("off_policy")
    if not off or off.get("logging_policy_mean_reward") is None:
        return None
    logged = off.get("logged") or {}
    low, high = logged.get("ctr_ci95") or (None, None)
    interval = f" [95% CI {_pct(low)}, {_pct(high)}]" if low is not None else ""
    line = (
        f"CTR above: simulated by the click model; the log's own reward rate (logged CTR of "
        f"its logging policy) is {_pct(off['logging_policy_mean_reward'])}{interval} over "
        f"{off['rows']:,} logged impressions"
    )
    model = off.get("click_model")
    if model:
        examination = ", ".join(f"{x:.2f}" for x in model["examination_relative"])
        line += (
            f"\nclick model fitted from the log (position-based): examination by position vs "
            f"the top {examination}; likelihood ratio vs position-blind p = {model['p_value']:.3g}"
        )
    return line


def _console(summary: dict[str, Any], target: Path, *, reproducible: bool = False) -> str:
    lines = [
        f"{summary['scenario']['name']}: outcome {summary['outcome']} "
        f"({summary['requests']['arrivals']:,} requests, "
        f"{_speed(summary['timing'], reproducible)})",
        f"{'version':<14}{'requests':>10}{'p50 ms':>9}{'p99 ms':>9}{'model p50':>11}"
        f"{'cache hit':>11}{'CTR':>8}",
    ]
    for name, v in summary["versions"].items():
        p50, p99 = v["latency_ms"]["p50"], v["latency_ms"]["p99"]
        model_p50 = (v.get("model_latency_ms") or {}).get("p50")
        lines.append(
            f"{name[:13]:<14}{v['requests']:>10,}{_ms(p50, 9)}{_ms(p99, 9)}{_ms(model_p50, 11)}"
            f"{_pct(v['cache_hit_rate']):>11}{_pct(v['ctr']):>8}"
        )
    logged = _logged_ctr(summary)
    if logged is not None:
        lines.append(logged)
    verdict = summary.get("verdict", {})
    for e in verdict.get("expectations", []):
        mark = "ok  " if e["passed"] else "FAIL"
        lines.append(f"  {mark} {e['metric']} {e['condition']} (observed {e['observed']})")
    lines.append(f"report: {target / 'report.html'}")
    return "\n".join(lines)


def execute(args: argparse.Namespace) -> int:
    from lab.artifacts import open_store

    limit = memory_limit(args.max_memory)
    store = open_store(args.cache_dir, enabled=not args.no_cache)
    check_file_outputs(args)
    with ProgressBar(sys.stderr, args.scenario.stem, enabled=False if args.quiet else None) as bar:
        bar.status("preparing world and models")
        summary, verdict, target = run_scenario(
            args.scenario,
            args.out,
            overrides(args),
            force=args.force,
            reproducible=args.reproducible,
            requests_parquet=args.requests_parquet,
            limit=limit,
            progress=bar,
            stage=bar.stage,
            store=store,
        )
    try:
        if args.markdown is not None:
            from rollout_lab.preflight import suite_of

            wall_s = float(summary["timing"]["wall_s"] or 0.0)
            write_file_outputs(args, [suite_of(summary, args.scenario, target, time_s=wall_s)])
        console = _console(summary, target, reproducible=args.reproducible)
        print(printable(str(target / "report.html") if args.quiet else console))
    except RunInterrupted as stop:
        stop.out, stop.folder = target, "complete"
        raise
    return EXIT_OK if verdict["passed"] else EXIT_EXPECTATION
