"""Throughput and memory of the simulation phase, against a bare SimPy M/M/8 queue.

    python bench/throughput.py                         # everything (sizes 100k, 1M, 5M)
    python bench/throughput.py --sizes 100000,1000000  # fewer sizes
    python bench/throughput.py --profile               # also cProfile one simulation
    python bench/throughput.py --e2e-runs 0            # skip the end-to-end runs

What it measures, in order:

1. Reference: customers per wall-second of a bare SimPy M/M/8 queue at rho = 0.8 (one
   process per customer, exponential interarrivals and service), median of 3 runs, in this
   process.  It is the same loop as the team's shared reference script, written out here.
2. Throughput: ``prepare()`` the reference scenario once, then ``simulate_prepared()`` three
   times.  Rate = requests / ``timing["simulate_s"]``, the pipeline's own clock for the
   simulation phase (traffic draw, routing, cache, servers, controller, user responses;
   excluding one-off top-K scoring and building the output frame).  The wall time of the
   whole call is reported too.  Ratio = median rate / bare M/M/8 rate (goal >= 2.0x).
3. End to end: ``rollout-lab run`` on the reference scenario in a fresh process, timed
   from process start to exit (summary.json and report written) as a user waits for it:
   ``--cold-runs`` times with an empty artifact cache each (cold: world, training, top-K)
   and ``--e2e-runs`` times warm.  Rate = requests / wall seconds of the whole process;
   ratio = rate / the median bare M/M/8 rate (goal >= 1.0x, cold as well as warm).
4. Scaling: one child process per size (``traffic.duration`` scaled so the scenario yields
   about that many requests; users, items and rates unchanged).  Memory is the peak
   resident set size of the child *during* ``simulate_prepared`` minus its resident size just
   before: the kernel's high-water mark (VmHWM) is reset through ``/proc/self/clear_refs``
   right before the call, so the peak belongs to the simulation phase alone (request
   arrays, routing buckets, columnar records, user responses and the per-request output
   frame).  The child runs the same simulation once unmeasured first, so one-off top-K
   scoring of the users in the traffic is not counted as per-request memory.  The exact
   bytes of the columnar records (``Records.nbytes``) are reported alongside.

Writes ``bench/out/throughput.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = ROOT / "scenarios" / "reference_1m.toml"
DEFAULT_OUT = ROOT / "bench" / "out" / "throughput.json"


# --- 1. the bare M/M/8 reference ------------------------------------------------------------


def bare_mm8_rate(n: int, seed: int) -> float:
    """Customers per wall-second of a bare SimPy M/M/8 queue, lambda = 6.4, mu = 1 (rho 0.8).

    Deliberately the plainest SimPy: a process per customer, ``with request`` / ``yield``,
    stdlib ``random`` as in the shared reference, so both scripts measure the same thing.
    """
    rnd = random.Random(seed)
    env = simpy.Environment()
    server = simpy.Resource(env, capacity=8)

    def customer(env: simpy.Environment) -> Any:
        with server.request() as req:
            yield req
            yield env.timeout(rnd.expovariate(1.0))

    def source(env: simpy.Environment) -> Any:
        for _ in range(n):
            env.process(customer(env))
            yield env.timeout(rnd.expovariate(6.4))

    env.process(source(env))
    started = time.perf_counter()
    env.run()
    return n / (time.perf_counter() - started)


# --- memory probes (Linux /proc) -----------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False if not supported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# --- scenario helpers ------------------------------------------------------------------------


def _mean_rate_per_s(scenario: Any) -> float:
    arrivals = scenario.traffic.arrivals
    return float(getattr(arrivals, "rate_per_s", None) or arrivals.mean_rate_per_s)


def _load(path: Path, requests: int | None) -> Any:
    from lab.scenario import load_scenario

    base = load_scenario(path)
    if requests is None:
        return base
    # Sessions still running at the end are cut off.  With 1 + Geometric requests per session
    # (mean m) and exponential think times (mean z), a session arriving late loses on average
    # z * (m - 1) seconds' worth of its requests, so the run needs that much more time.
    session = base.traffic.session
    extra_s = session.mean_think_time * (session.mean_requests - 1.0)
    duration_s = requests / _mean_rate_per_s(base) + extra_s
    return load_scenario(path, overrides=[f"traffic.duration={duration_s:.3f}"])


def _n_requests(result: Any) -> int:
    return int(result.outcome.records.n)


# --- 3. one size in a child process ----------------------------------------------------------


def child(path: Path, requests: int) -> dict[str, Any]:
    from lab.pipeline import prepare, simulate_prepared

    scenario = _load(path, requests)
    started = time.perf_counter()
    prepared = prepare(scenario)
    prepare_s = time.perf_counter() - started
    # One unmeasured run of the same replication first: it scores the top-K rows of every
    # user in the traffic (one-off model work the pipeline caches), so the measured run below
    # holds only per-request memory.  Same replication -> same traffic -> nothing left to score.
    warmup = simulate_prepared(prepared)
    del warmup
    gc.collect()
    rss_before_kb = _status_kb("VmRSS")
    reset = _reset_peak_rss()
    started = time.perf_counter()
    result = simulate_prepared(prepared)
    call_s = time.perf_counter() - started
    peak_kb = _status_kb("VmHWM")
    n = _n_requests(result)
    out: dict[str, Any] = {
        "target_requests": requests,
        "requests": n,
        "duration_s": scenario.traffic.duration,
        "prepare_s": prepare_s,
        "simulate_s": float(result.timing.get("simulate_s", call_s)),
        "call_s": call_s,
        "records_bytes": int(result.outcome.records.nbytes),
        "rss_before_bytes": None if rss_before_kb is None else rss_before_kb * 1024,
        "peak_rss_bytes": None if peak_kb is None else peak_kb * 1024,
        "peak_reset": reset,
    }
    if reset and rss_before_kb is not None and peak_kb is not None:
        out["simulation_peak_growth_bytes"] = (peak_kb - rss_before_kb) * 1024
    else:  # no way to isolate the phase: fall back to the whole child's peak
        out["simulation_peak_growth_bytes"] = None
    return out


def run_child(path: Path, requests: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(requests)]
    cmd += ["--scenario", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"child for {requests} requests failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def end_to_end(path: Path, runs: int, cold_runs: int = 1) -> dict[str, Any]:
    """Cold and warm end-to-end runs of the CLI: wall seconds and requests per wall-second."""
    import tempfile

    def once(cache: Path, out: Path) -> dict[str, float]:
        cmd = [sys.executable, "-m", "rollout_lab.cli", "run", str(path), "--out", str(out)]
        cmd += ["--force", "--quiet", "--cache-dir", str(cache)]
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
        wall = time.perf_counter() - started
        if done.returncode not in (0, 1):
            raise SystemExit(f"end-to-end run failed:\n{done.stderr[-3000:]}")
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        n = summary["requests"]["arrivals"]
        return {"wall_s": wall, "requests": n, "rate_per_s": n / wall}

    cold = []
    with tempfile.TemporaryDirectory(prefix="throughput-e2e-") as tmp:
        out = Path(tmp) / "out"
        for i in range(max(1, cold_runs)):
            cache = Path(tmp) / f"cache-{i}"  # empty each time: every one of them is cold
            cold.append(once(cache, out))
        warm = [once(cache, out) for _ in range(runs)]
    return {"cold": cold, "warm": warm}


def _spread(runs: list[dict[str, float]], reference: float) -> dict[str, float]:
    """min / median / max of the runs' rates over ``reference``."""
    rates = sorted(r["rate_per_s"] for r in runs)
    return {
        "min": rates[0] / reference,
        "median": statistics.median(rates) / reference,
        "max": rates[-1] / reference,
    }


def _linear_fit(x: list[float], y: list[float]) -> dict[str, float]:
    """Least-squares y = a + b x, with R^2 (1 = perfectly linear)."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    b, a = np.polyfit(xs, ys, 1)
    fitted = a + b * xs
    ss_res = float(np.sum((ys - fitted) ** 2))
    ss_tot = float(np.sum((ys - ys.mean()) ** 2))
    return {
        "intercept": float(a),
        "slope": float(b),
        "r2": 1.0 - ss_res / ss_tot if ss_tot else 1.0,
    }


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bare-customers", type=int, default=200_000)
    parser.add_argument("--sizes", default="100000,1000000,5000000")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--profile", action="store_true", help="cProfile one extra simulation")
    parser.add_argument("--e2e-runs", type=int, default=3, help="warm end-to-end runs")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold end-to-end runs")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        print(json.dumps(child(args.scenario, args.child)))
        return

    from lab.pipeline import prepare, simulate_prepared

    report: dict[str, Any] = {
        "scenario": str(
            args.scenario.relative_to(ROOT) if args.scenario.is_absolute() else args.scenario
        ),
        "python": platform.python_version(),
        "simpy": simpy.__version__,
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }

    bare = sorted(bare_mm8_rate(args.bare_customers, seed) for seed in (1, 2, 3))
    report["bare_mm8"] = {"customers": args.bare_customers, "rates_per_s": bare, "median": bare[1]}
    print(
        f"bare SimPy M/M/8 (rho 0.8): {bare[1]:,.0f} customers/s "
        f"(min {bare[0]:,.0f}, max {bare[2]:,.0f})",
        flush=True,
    )

    scenario = _load(args.scenario, None)
    started = time.perf_counter()
    prepared = prepare(scenario)
    prepare_s = time.perf_counter() - started
    print(f"prepare: {prepare_s:.1f} s", flush=True)
    runs = []
    for i in range(args.runs):
        started = time.perf_counter()
        result = simulate_prepared(prepared)
        call_s = time.perf_counter() - started
        n = _n_requests(result)
        sim_s = float(result.timing.get("simulate_s", call_s))
        runs.append(
            {
                "requests": n,
                "simulate_s": sim_s,
                "call_s": call_s,
                "rate_per_s": n / sim_s,
                "call_rate_per_s": n / call_s,
                "timing": {k: float(v) for k, v in result.timing.items()},
                "outcome": result.controller.summary().get("outcome"),
            }
        )
        print(
            f"  run {i + 1}: {n:,} requests, simulation {sim_s:.2f} s "
            f"({n / sim_s:,.0f}/s), whole call {call_s:.2f} s",
            flush=True,
        )
        del result
    rates = sorted(r["rate_per_s"] for r in runs)
    median = statistics.median(rates)
    report["prepare_s"] = prepare_s
    report["runs"] = runs
    report["rate_per_s"] = {"min": rates[0], "median": median, "max": rates[-1]}
    report["ratio_to_bare"] = median / bare[1]

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        simulate_prepared(prepared)
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats("tottime")
        print("\nprofile of one simulate_prepared (top 25 by own time):")
        stats.print_stats(25)
    del prepared

    if args.e2e_runs > 0:
        print("end to end (process start to report written): cold, then warm ...", flush=True)
        e2e = end_to_end(args.scenario, args.e2e_runs, args.cold_runs)
        again = sorted(bare_mm8_rate(args.bare_customers, seed) for seed in (4, 5, 6))
        bare_all = sorted(bare + again)
        reference = statistics.median(bare_all)
        e2e["bare_rates_per_s"] = bare_all
        e2e["cold_ratio"] = _spread(e2e["cold"], reference)
        e2e["warm_ratio"] = _spread(e2e["warm"], reference)
        report["end_to_end"] = e2e

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    scaling = []
    for size in sizes:
        print(f"size {size:,}: child process ...", flush=True)
        row = run_child(args.scenario, size)
        scaling.append(row)
        growth = row["simulation_peak_growth_bytes"]
        per = "n/a" if growth is None else f"{growth / row['requests']:.0f} B/request"
        print(
            f"  {row['requests']:,} requests: prepare {row['prepare_s']:.1f} s, simulation "
            f"{row['simulate_s']:.1f} s, peak growth {per}",
            flush=True,
        )
    report["scaling"] = scaling
    if len(scaling) >= 2:
        n_req = [float(r["requests"]) for r in scaling]
        report["scaling_fit"] = {
            "simulate_s": _linear_fit(n_req, [r["simulate_s"] for r in scaling]),
        }
        if all(r["simulation_peak_growth_bytes"] is not None for r in scaling):
            report["scaling_fit"]["peak_growth_bytes"] = _linear_fit(
                n_req, [float(r["simulation_peak_growth_bytes"]) for r in scaling]
            )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_table(report)
    print(f"\nwrote {args.out}")


def _print_table(report: dict[str, Any]) -> None:
    bare = report["bare_mm8"]["median"]
    rate = report["rate_per_s"]
    print("\n== throughput (simulation phase) ==")
    print(f"{'bare SimPy M/M/8':<28}{bare:>14,.0f} /s")
    print(f"{'rollout-lab min':<28}{rate['min']:>14,.0f} /s")
    print(f"{'rollout-lab median':<28}{rate['median']:>14,.0f} /s")
    print(f"{'rollout-lab max':<28}{rate['max']:>14,.0f} /s")
    print(f"{'ratio (median / bare)':<28}{report['ratio_to_bare']:>14.2f} x   (goal >= 2.0 x)")
    e2e = report.get("end_to_end")
    if e2e:
        w, c = e2e["warm_ratio"], e2e["cold_ratio"]
        walls = " / ".join(f"{r['wall_s']:.1f}" for r in e2e["cold"])
        print("\n== end to end (process start to summary.json and report written) ==")
        print(
            f"cold ({walls} s): {c['min']:.2f} / {c['median']:.2f} / {c['max']:.2f} x the bare "
            f"loop; warm: {w['min']:.2f} / {w['median']:.2f} / {w['max']:.2f} x (min / median "
            f"/ max of {len(e2e['cold'])} and {len(e2e['warm'])}; goal >= 1.0 x)"
        )
    if not report.get("scaling"):
        return
    print("\n== scaling (one child process per size) ==")
    print(
        f"{'requests':>11} {'sim s':>8} {'us/req':>8} {'req/s':>10} "
        f"{'peak MB':>9} {'B/req':>7} {'records B/req':>14}"
    )
    for row in report["scaling"]:
        n = row["requests"]
        growth = row["simulation_peak_growth_bytes"]
        mb = "n/a" if growth is None else f"{growth / 2**20:.0f}"
        per = "n/a" if growth is None else f"{growth / n:.0f}"
        print(
            f"{n:>11,} {row['simulate_s']:>8.1f} {1e6 * row['simulate_s'] / n:>8.2f} "
            f"{n / row['simulate_s']:>10,.0f} {mb:>9} {per:>7} {row['records_bytes'] / n:>14.1f}"
        )
    fit = report.get("scaling_fit", {})
    if "simulate_s" in fit:
        f = fit["simulate_s"]
        print(
            f"time   = {f['intercept']:.2f} s + {1e6 * f['slope']:.2f} us x requests"
            f"  (R^2 {f['r2']:.4f})"
        )
    if "peak_growth_bytes" in fit:
        f = fit["peak_growth_bytes"]
        print(
            f"memory = {f['intercept'] / 2**20:.1f} MB + {f['slope']:.1f} B x requests"
            f"  (R^2 {f['r2']:.4f})"
        )


if __name__ == "__main__":
    main()
