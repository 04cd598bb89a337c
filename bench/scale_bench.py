"""The scaling table: users x items x requests -> wall time per phase and peak memory.

    python bench/scale_bench.py                   # rows xs, s, m, l (about an hour idle)
    python bench/scale_bench.py --rows s,m        # a selection
    python bench/scale_bench.py --stretch         # also 5M users x 1M items (hours)
    python bench/scale_bench.py --readme          # rewrite README.md's table from the result

Every row is ``scenarios/reference_1m.toml`` (canary + shadow + cache, two ALS versions and
the noise floor) at other sizes, run by the real CLI in a fresh process, end to end
(process start to summary.json and report written), twice: **cold** (an empty artifact
cache) and **warm** (the cache the cold run filled).  Measured per run:

* wall seconds of the process (``end to end``) and its peak resident memory (``wait4``);
* from ``summary.json``'s timing: preparation (world and history, implicit's training
  calls, top-K lists), the simulation, metrics and report;
* the memory guard's estimate (``lab.footprint.estimate_run``) against the measured peak;
* preparation (the noise floor's background work included) over the time inside
  implicit's training calls (goal <= 1.5);
* warm wall time over cold wall time (goal <= 0.25).

The bare SimPy M/M/8 reference of ``bench/throughput.py`` runs in this process before and
after the rows (median of 3 each time), so the reference row's end-to-end rate (requests
per wall-second of the whole process) is a ratio against it (goal >= 1.0 warm).  Writes
``bench/out/scale.json`` and ``bench/out/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from throughput import bare_mm8_rate  # noqa: E402

SCENARIO = ROOT / "scenarios" / "reference_1m.toml"
OUT = ROOT / "bench" / "out"
README = ROOT / "README.md"
START, END = "<!-- scale-table:start -->", "<!-- scale-table:end -->"


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    users: int
    items: int
    duration: str
    rate_per_s: float

    def overrides(self) -> list[str]:
        return [
            f"traffic.users={self.users}",
            f"traffic.items={self.items}",
            f'traffic.duration="{self.duration}"',
            f"traffic.arrivals.rate_per_s={self.rate_per_s}",
        ]


ROWS = {
    "xs": Row("xs", 10_000, 2_000, "20m", 150.0),
    "s": Row("s", 50_000, 5_000, "2h", 150.0),  # reference_1m as shipped
    "m": Row("m", 200_000, 20_000, "1h", 300.0),
    "l": Row("l", 1_000_000, 100_000, "1h", 300.0),
    "xl": Row("xl", 5_000_000, 1_000_000, "1h", 300.0),
}
REFERENCE = "s"


def run_cli(row: Row, cache: Path, out: Path) -> dict[str, Any]:
    """One end-to-end run in a fresh process: wall, peak RSS, the summary's timing."""
    cmd = [sys.executable, "-m", "rollout_lab.cli", "run", str(SCENARIO), "--out", str(out)]
    cmd += ["--force", "--quiet", "--cache-dir", str(cache), "--max-memory", "1TB"]
    for text in row.overrides():
        cmd += ["--set", text]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    started = time.perf_counter()
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise SystemExit(f"row {row.name}: rollout-lab exited {code}\n{stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    timing = summary["timing"]
    return {
        "wall_s": wall,
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "requests": summary["requests"]["arrivals"],
        "history_events": summary["data"]["history_events"],
        "timing": timing,
    }


def estimate(row: Row) -> float:
    from lab.footprint import estimate_run
    from lab.scenario import load_scenario

    return estimate_run(load_scenario(SCENARIO, row.overrides())).total_bytes


def bare(repeats: int = 3) -> list[float]:
    return sorted(bare_mm8_rate(200_000, seed) for seed in range(1, repeats + 1))


def measure(row: Row) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"scale-{row.name}-") as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "out"
        cold = run_cli(row, cache, out)
        warm = run_cli(row, cache, out)
    t = cold["timing"]
    training = float(t["training_s"])
    return {
        "row": row.name,
        "users": row.users,
        "items": row.items,
        "duration": row.duration,
        "rate_per_s": row.rate_per_s,
        "cold": cold,
        "warm": warm,
        "estimate_bytes": estimate(row),
        # Preparation wherever it ran: the noise floor is built on a background thread
        # beside the simulation (``noise_floor_s``), still preparation work.
        "prepare_over_training": (float(t["prepare_s"]) + float(t.get("noise_floor_s") or 0.0))
        / training
        if training
        else None,
        "warm_over_cold": warm["wall_s"] / cold["wall_s"],
    }


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def table(result: dict[str, Any]) -> str:
    """The README's table, in Markdown."""
    lines = [
        "| users × items | requests | history events | end to end cold / warm (s) | "
        "world | training | top-K | noise floor | prepare / training | simulation | "
        "metrics + report | peak memory (GB) | guard estimate (GB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        cold, warm = r["cold"], r["warm"]
        t = cold["timing"]
        ratio = r["prepare_over_training"]
        lines.append(
            f"| {r['users']:,} × {r['items']:,} | {cold['requests']:,} | "
            f"{cold['history_events']:,} | {cold['wall_s']:.0f} / {warm['wall_s']:.0f} | "
            f"{t['world_s']:.1f} | {t['training_s']:.1f} | {t['top_k_s']:.1f} | "
            f"{float(t.get('noise_floor_s') or 0.0):.1f} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {t['simulate_s']:.1f} | "
            f"{t['report_s']:.1f} | {_gb(cold['peak_rss_bytes'])} | {_gb(r['estimate_bytes'])} |"
        )
    ref = result.get("reference")
    if ref:
        lines.append("")
        lines.append(
            f"Reference row end to end: {ref['cold_ratio']:.2f}x (cold) and "
            f"{ref['warm_ratio']:.2f}x (warm) a bare SimPy M/M/8 loop's requests per "
            f"wall-second, measured in the same benchmark process (bare loop "
            f"{ref['bare_median']:,.0f} customers/s, min {ref['bare_min']:,.0f}, max "
            f"{ref['bare_max']:,.0f}; load average {result['load_before']} before, "
            f"{result['load_after']} after; {result['cpus']} CPUs)."
        )
    return "\n".join(lines)


def write_readme(markdown: str) -> None:
    text = README.read_text(encoding="utf-8")
    block = f"{START}\n{markdown}\n{END}"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} block to fill")
    README.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="xs,s,m,l", help=f"rows among {','.join(ROWS)}")
    parser.add_argument("--stretch", action="store_true", help="add the 5M x 1M row")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's table")
    args = parser.parse_args()
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    if args.stretch and "xl" not in names:
        names.append("xl")
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    result: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_before": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }
    bare_rates = bare()
    rows = []
    for name in names:
        row = ROWS[name]
        print(f"row {name}: {row.users:,} users x {row.items:,} items, {row.duration}", flush=True)
        measured = measure(row)
        rows.append(measured)
        cold, warm = measured["cold"], measured["warm"]
        print(
            f"  cold {cold['wall_s']:.1f} s, warm {warm['wall_s']:.1f} s "
            f"(warm/cold {measured['warm_over_cold']:.2f}), peak {_gb(cold['peak_rss_bytes'])} GB, "
            f"estimate {_gb(measured['estimate_bytes'])} GB, prepare/training "
            f"{measured['prepare_over_training'] or float('nan'):.2f}",
            flush=True,
        )
    bare_rates = sorted(bare_rates + bare())
    result["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    result["bare_mm8_rates"] = bare_rates
    result["rows"] = rows
    reference = next((r for r in rows if r["row"] == REFERENCE), None)
    if reference is not None:
        median = statistics.median(bare_rates)
        result["reference"] = {
            "bare_min": bare_rates[0],
            "bare_median": median,
            "bare_max": bare_rates[-1],
            "cold_ratio": reference["cold"]["requests"] / reference["cold"]["wall_s"] / median,
            "warm_ratio": reference["warm"]["requests"] / reference["warm"]["wall_s"] / median,
        }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    markdown = table(result)
    (OUT / "scale.md").write_text(markdown + "\n", encoding="utf-8")
    print("\n" + markdown)
    if args.readme:
        write_readme(markdown)
        print(f"\nrewrote the scaling table in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
