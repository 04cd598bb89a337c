"""``rollout-lab``: the command line, and the one place that wires load -> simulate -> report.

Exit codes: 0 success (all expectations pass), 1 an expectation failed, 2 bad input (one
line on stderr, no traceback), 3 internal error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from replay.errors import UserInputError

EXIT_OK, EXIT_EXPECTATION, EXIT_USER, EXIT_INTERNAL = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollout-lab",
        description="Simulate recommender-model rollouts offline and report what would happen.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def scenario_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="PATH=VALUE",
            help="override a scenario setting, e.g. --set rollout.weight=5 (repeatable)",
        )
        p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
        p.add_argument(
            "--log",
            type=str,
            default=None,
            metavar="PATH",
            help="replay this interaction log (sets traffic.source = log)",
        )
        p.add_argument(
            "--log-format",
            default=None,
            choices=[
                "auto",
                "movielens_csv",
                "movielens_udata",
                "recbole_inter",
                "csv",
                "parquet",
                "ndjson",
            ],
            help="force the log format instead of detecting it",
        )

    run = sub.add_parser("run", help="run one scenario and write its report")
    run.add_argument("scenario", type=Path)
    run.add_argument("--out", type=Path, default=None, help="output folder (default runs/<name>)")
    scenario_options(run)
    run.add_argument("--requests-parquet", action="store_true", help="also write requests.parquet")
    run.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    run.add_argument(
        "--reproducible",
        action="store_true",
        help="write wall-clock timings as 0 so summaries are byte-identical",
    )
    run.add_argument("--quiet", action="store_true", help="print only the report path")

    validate = sub.add_parser("validate", help="check scenario files without running them")
    validate.add_argument("scenarios", type=Path, nargs="+")
    scenario_options(validate)

    check = sub.add_parser("check", help="run many scenarios and gate on their expectations")
    check.add_argument("paths", type=Path, nargs="+", help="scenario files or folders of them")
    check.add_argument("--out", type=Path, default=Path("runs/check"), help="base output folder")
    scenario_options(check)
    check.add_argument("--junit", type=Path, default=None, help="write one JUnit XML for all")
    return parser


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = [f"seed={args.seed}"] if args.seed is not None else []
    if args.log is not None:
        extra += ['traffic.source="log"', f"traffic.log.path={_toml_string(args.log)}"]
    if args.log_format is not None:
        extra.append(f"traffic.log.format={_toml_string(args.log_format)}")
    return [*args.overrides, *extra]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"


def _write_atomic(path: Path, data: str | bytes) -> None:
    """Write beside the target, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder (choose another path)")
    if out.exists() and (out / "summary.json").exists() and not force:
        raise UserInputError(f"--out {out}: holds an earlier run (pass --force to overwrite it)")
    out.mkdir(parents=True, exist_ok=True)


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
    target = out if out is not None else Path("runs") / _slug(scenario.name)
    _prepare_out(target, force)
    result = run(scenario, source_name=path.name, base_dir=path.resolve().parent)
    started = time.perf_counter()
    summary = build_summary(result, scenario_file=path.name, reproducible=reproducible)
    verdict = check_expectations(summary, dict(scenario.expect), source=path.name)
    summary["verdict"] = verdict
    page = render_report(summary, result.requests, verdict)
    report_s = time.perf_counter() - started
    if not reproducible:
        summary["timing"]["report_s"] = round(report_s, 4)
    _write_atomic(target / "report.html", page)
    if scenario.expect:
        _write_atomic(target / "junit.xml", junit_xml([(scenario.name, verdict)]))
    if requests_parquet:
        tmp = target / ".requests.parquet.tmp"
        result.requests.write_parquet(tmp)
        os.replace(tmp, target / "requests.parquet")
    # summary.json last: its presence marks a complete run.
    _write_atomic(target / "summary.json", dumps(summary))
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


def _cmd_run(args: argparse.Namespace) -> int:
    summary, verdict, target = run_scenario(
        args.scenario,
        args.out,
        _overrides(args),
        force=args.force,
        reproducible=args.reproducible,
        requests_parquet=args.requests_parquet,
    )
    print(target / "report.html" if args.quiet else _console(summary, target))
    return EXIT_OK if verdict["passed"] else EXIT_EXPECTATION


def _cmd_validate(args: argparse.Namespace) -> int:
    from sim.scenario import load_scenario

    for path in args.scenarios:
        scenario = load_scenario(path, _overrides(args))
        print(f"ok: {path} ({scenario.name})")
    return EXIT_OK


def _scenario_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.toml")))
        elif path.exists():
            files.append(path)
        else:
            raise UserInputError(f"{path}: no such scenario file or folder")
    if not files:
        raise UserInputError(f"{', '.join(map(str, paths))}: no .toml scenario files found")
    return files


def _cmd_check(args: argparse.Namespace) -> int:
    from reports.junit import junit_xml

    files = _scenario_files(args.paths)
    worst = EXIT_OK
    suites: list[tuple[str, dict[str, Any]]] = []
    print(f"{'scenario':<36}{'outcome':<14}{'expectations':<14}{'result'}")
    for path in files:
        try:
            summary, verdict, target = run_scenario(
                path, args.out / _slug(path.stem), _overrides(args), force=True
            )
        except UserInputError as exc:
            print(f"{path.stem[:35]:<36}{'-':<14}{'-':<14}error: {exc}")
            worst = max(worst, EXIT_USER)
            continue
        except Exception as exc:  # an internal error in one scenario: report it, run the rest
            print(f"{path.stem[:35]:<36}{'-':<14}{'-':<14}internal error: {exc!r}")
            traceback.print_exc(file=sys.stderr)
            worst = max(worst, EXIT_INTERNAL)
            continue
        cases = verdict["expectations"]
        passed = sum(1 for c in cases if c["passed"])
        status = "pass" if verdict["passed"] else "FAIL"
        print(f"{path.stem[:35]:<36}{summary['outcome']:<14}{f'{passed}/{len(cases)}':<14}{status}")
        for c in cases:
            if not c["passed"]:
                print(f"    {c['metric']}: expected {c['condition']}, observed {c['observed']!r}")
        suites.append((summary["scenario"]["name"], verdict))
        if not verdict["passed"]:
            worst = max(worst, EXIT_EXPECTATION)
    if args.junit is not None:
        args.junit.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(args.junit, junit_xml(suites))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = _parser().parse_args(argv)
    commands = {"run": _cmd_run, "validate": _cmd_validate, "check": _cmd_check}
    try:
        return commands[args.command](args)
    except UserInputError as exc:
        print(f"rollout-lab: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("rollout-lab: interrupted", file=sys.stderr)
        return 130
    except Exception:
        print("rollout-lab: internal error (a bug, please report it):", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
