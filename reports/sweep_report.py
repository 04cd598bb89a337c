"""The sweep report (``sweep.html``): one static page over every grid point's replications.

Built from ``sweep.json`` (the per-point aggregates) and the replication table
(``sweep.parquet``).  Like ``report.html`` it is self-contained: figures are inline SVG drawn
with matplotlib (``reports.svg``), there is no script, nothing is fetched, and every string that
can come from the user (scenario name and description, grid keys and values, errors) is
escaped.  Top to bottom: a banner (complete, failures, or interrupted), the outcome
distribution per grid point, operating characteristics (rollback and promotion rates
against each grid setting, Wilson intervals), time to decision, exposure to the candidate,
latency and engagement (means over replications with Student-t intervals), failed
replications, how to reproduce one replication alone, and the resolved scenario.
"""

from __future__ import annotations

import html
import json
import shlex
import textwrap
from collections.abc import Sequence
from typing import Any

import polars as pl

from reports.page import page, table
from reports.svg import (
    FULL_WIDTH_PX,
    figure_html,
    legend_outside,
    literal,
    new_figure,
    style,
    to_svg,
)

__all__ = ["SECTIONS", "render_sweep_report"]

#: (anchor, heading) in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("outcomes", "Outcomes by grid point"),
    ("operating", "Operating characteristics"),
    ("decision", "Time to decision"),
    ("exposure", "Exposure to the candidate"),
    ("engagement", "Latency and engagement"),
    ("failures", "Failed replications"),
    ("reproduce", "Reproduce one replication"),
    ("scenario", "Resolved scenario"),
)

OUTCOME_COLOURS = {
    "promoted": "#2a9d4b",
    "rolled_back": "#c0392b",
    "held": "#b9770e",
    "inconclusive": "#8c96a3",
    "in_progress": "#1f5fa8",
}
_SERIES = ["#1f5fa8", "#d9641e", "#2a9d4b", "#8e44ad", "#c0392b", "#7f8c8d"]
_MAX_SERIES = len(_SERIES)


# --------------------------------------------------------------------------- formatting


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return _esc(value)


def _pct(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _ci(ci: Sequence[Any], scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
    """The interval on its own line under the value, so that wide tables stay narrow."""
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    low, high = ci[0] * scale, ci[1] * scale
    return f'<br><span class="ci">[{low:.{digits}g}{unit}, {high:.{digits}g}{unit}]</span>'


def _mean_ci(stats: dict[str, Any], scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
    """``mean [low, high]`` of a :func:`lab.sweep.describe` block, scaled (e.g. to minutes)."""
    if stats["mean"] is None:
        return "–"
    return f"{stats['mean'] * scale:.{digits}g}{unit}" + _ci(stats["ci95"], scale, digits, unit)


def _sweep_table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 2) -> str:
    """Sweep tables start with two text columns (grid point, setting)."""
    return table(head, rows, left)


def _figure(svg: str, caption: str) -> str:
    """An inline figure; ``caption`` is HTML (callers escape what came from the user)."""
    return figure_html(svg, caption)


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _values_label(block: dict[str, Any], keys: Sequence[str], width: int = 18) -> str:
    """A grid point named by its values (the keys are on the axis), wrapped to ``width``."""
    if not keys:
        return "all"
    text = ", ".join(_value_text(block["grid"][k]) for k in keys)
    return "\n".join(textwrap.wrap(text, width)) or text


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --------------------------------------------------------------------------- figures


def _outcome_figure(points: Sequence[dict[str, Any]], keys: Sequence[str]) -> str:
    with style():
        fig, (ax,) = new_figure(FULL_WIDTH_PX, max(160, 34 * len(points) + 110))
        names = [literal(_values_label(b, keys, 40)) for b in points]
        left = [0.0] * len(points)
        for outcome, colour in OUTCOME_COLOURS.items():
            shares = [
                b["outcomes"][outcome] / b["replications"] if b["replications"] else 0.0
                for b in points
            ]
            ax.barh(range(len(points)), shares, left=left, color=colour, label=outcome, height=0.7)
            left = [a + s for a, s in zip(left, shares, strict=True)]
        ax.set_yticks(range(len(points)), names)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of finished replications")
        ax.set_ylabel(literal(", ".join(keys)) if keys else "grid point")
        ax.set_title("Rollout outcome by grid point")
        legend_outside(fig, ax)
        return to_svg(fig, "outcomes", "Rollout outcome by grid point")


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _oc_figure(summary: dict[str, Any], key: str, index: int) -> str:
    """Rollback and promotion rate against ``key``, one line per setting of the other keys.

    Numeric settings sit at their values with ticks at exactly the grid's values (integers
    stay integers); others are evenly spaced categories.  Rates span [0, 1] with room above
    and below, so a rate of 0 or 1 is never drawn on the frame.
    """
    grid = summary["grid"]
    values = grid["values"][key]
    others = [k for k in grid["keys"] if k != key]
    numeric = _numeric(values)
    position = {json.dumps(v, sort_keys=True): i for i, v in enumerate(values)}
    series: dict[str, list[dict[str, Any]]] = {}
    for block in summary["points"]:
        name = ", ".join(f"{k}={_value_text(block['grid'][k])}" for k in others) or "all"
        series.setdefault(name, []).append(block)
    with style():
        fig, axes = new_figure(FULL_WIDTH_PX, 330, columns=2, sharey=True)
        for i, (name, blocks) in enumerate(list(series.items())[:_MAX_SERIES]):
            for ax, outcome in zip(axes, ("rolled_back", "promoted"), strict=True):
                xs, ys, lows, highs = [], [], [], []
                for block in blocks:
                    rate = block["rates"][outcome]
                    if rate["rate"] is None:
                        continue
                    value = block["grid"][key]
                    xs.append(value if numeric else position[json.dumps(value, sort_keys=True)])
                    ys.append(rate["rate"])
                    lows.append(rate["rate"] - rate["ci95"][0])
                    highs.append(rate["ci95"][1] - rate["rate"])
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lows, highs],
                    color=_SERIES[i],
                    marker="o",
                    ms=5,
                    capsize=3,
                    label=literal(name) if ax is axes[0] else None,
                )
        for ax, title in zip(axes, ("Rollback rate", "Promotion rate"), strict=True):
            ax.set_title(literal(f"{title} against {key}"))
            ax.set_xlabel(literal(key))
            ax.set_ylim(-0.1, 1.1)
            ax.grid(alpha=0.3)
            if numeric:
                ax.set_xticks(values, [_value_text(v) for v in values])
                span = (max(values) - min(values)) or 1
                ax.set_xlim(min(values) - 0.1 * span, max(values) + 0.1 * span)
            else:
                ax.set_xticks(range(len(values)), [literal(_value_text(v)) for v in values])
                ax.set_xlim(-0.5, len(values) - 0.5)
        axes[0].set_ylabel("share of replications")
        if len(series) > 1:
            legend_outside(fig, axes[0])
        return to_svg(fig, f"operating-{index}", f"Rollback and promotion rate against {key}")


def _strip_figure(
    table: pl.DataFrame,
    summary: dict[str, Any],
    column: str,
    *,
    scale: float,
    ylabel: str,
    title: str,
) -> str:
    """Every replication's value by grid point (coloured by outcome), mean ± 95% t interval;
    grid points are named by their values."""
    points = summary["points"]
    keys = summary["grid"]["keys"]
    with style():
        fig, (ax,) = new_figure(FULL_WIDTH_PX, 320)
        ok = table.filter((pl.col("status") == "ok") & pl.col(column).is_not_null())
        n_reps = max(ok["replication"].to_list(), default=0) + 1
        seen: set[str] = set()
        for x, block in enumerate(points):
            rows = ok.filter(pl.col("point") == block["point"])
            for row in rows.select("replication", "outcome", column).iter_rows():
                replication, outcome, value = row
                # Spread the dots by replication index: deterministic, no random jitter.
                offset = (replication / max(1, n_reps - 1) - 0.5) * 0.5 if n_reps > 1 else 0.0
                ax.plot(
                    x + offset,
                    value * scale,
                    "o",
                    ms=4,
                    alpha=0.75,
                    color=OUTCOME_COLOURS.get(outcome, "#333"),
                    label=outcome if outcome not in seen else None,
                )
                seen.add(outcome)
            stats = block[column]
            if stats["mean"] is not None:
                low, high = stats["ci95"]
                mean = stats["mean"] * scale
                err = [[mean - low * scale], [high * scale - mean]] if low is not None else None
                ax.errorbar([x], [mean], yerr=err, fmt="_", color="#1d2733", ms=16, capsize=4)
        ax.set_xticks(range(len(points)), [literal(_values_label(b, keys)) for b in points])
        ax.set_xlim(-0.6, len(points) - 0.4)
        ax.set_xlabel(literal(", ".join(keys)) if keys else "grid point")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
        if seen:
            legend_outside(fig, ax)
        return to_svg(fig, f"strip-{column.replace('_', '-')}", title)


# --------------------------------------------------------------------------- sections


def _banner(summary: dict[str, Any]) -> str:
    counts = summary["counts"]
    planned, finished, failed = counts["planned"], counts["finished"], counts["failed"]
    if not summary["complete"]:
        why = "interrupted" if summary["interrupted"] else "not every replication ran"
        return (
            f'<div class="banner warn"><b>Incomplete sweep</b> ({why}): {finished:,} of '
            f"{planned:,} replications finished. Everything below covers only the finished "
            "ones.</div>"
        )
    if failed:
        return (
            f'<div class="banner fail">{failed:,} of {planned:,} replications failed; the '
            f"other {counts['ok']:,} are summarised below (failures listed at the end).</div>"
        )
    return f'<div class="banner pass">All {planned:,} replications finished.</div>'


def _facts(summary: dict[str, Any]) -> str:
    scenario = summary["scenario"]
    grid = summary["grid"]
    axes = "; ".join(
        f"<code>{_esc(k)}</code> ∈ {{{_esc(', '.join(map(str, grid['values'][k])))}}}"
        for k in grid["keys"]
    )
    return (
        f'<p class="facts">File <code>{_esc(scenario["file"])}</code> · root seed '
        f"{_esc(scenario['root_seed'])} · {grid['points']:,} grid point(s)"
        f"{' over ' + axes if axes else ' (no grid)'} · "
        f"{summary['replications_per_point']:,} replication(s) per point</p>"
    )


def _outcomes(summary: dict[str, Any]) -> str:
    points = summary["points"]
    rows = []
    for b in points:
        rows.append(
            [
                _esc(b["point"]),
                _esc(b["label"] or "–"),
                _num(b["replications"]),
                *(_num(b["outcomes"][o]) for o in OUTCOME_COLOURS),
                _num(b["failed"]),
                _num(b["missing"]),
            ]
        )
    head = ["point", "grid", "finished", *OUTCOME_COLOURS, "failed", "not run"]
    body = _sweep_table(head, rows)
    if any(b["replications"] for b in points):
        body += _figure(
            _outcome_figure(points, summary["grid"]["keys"]),
            "Share of each grid point's finished replications by rollout outcome.",
        )
    return body


def _operating(summary: dict[str, Any]) -> str:
    rows = []
    for b in summary["points"]:
        rb, pr = b["rates"]["rolled_back"], b["rates"]["promoted"]
        rows.append(
            [
                _esc(b["point"]),
                _esc(b["label"] or "–"),
                _num(b["replications"]),
                _pct(rb["rate"]) + _ci(rb["ci95"], 100, 3, "%"),
                _pct(pr["rate"]) + _ci(pr["ci95"], 100, 3, "%"),
            ]
        )
    body = _sweep_table(["point", "grid", "replications", "rolled back", "promoted"], rows)
    keys = [k for k in summary["grid"]["keys"] if len(summary["grid"]["values"][k]) > 1]
    several = len(summary["grid"]["keys"]) > 1
    if not any(b["replications"] for b in summary["points"]):
        return body
    for index, key in enumerate(keys):
        body += _figure(
            _oc_figure(summary, key, index),
            f"Rollback and promotion rate against <code>{_esc(key)}</code> with 95% Wilson "
            "intervals (replications are independent, so each rate is a binomial proportion)"
            + ("; one line per setting of the other grid keys." if several else "."),
        )
    if not keys:
        body += '<p class="muted">No grid setting takes two values or more: no curve to draw.</p>'
    return body


def _decision(summary: dict[str, Any], table: pl.DataFrame) -> str:
    rows = []
    for b in summary["points"]:
        rows.append(
            [
                _esc(b["point"]),
                _esc(b["label"] or "–"),
                _num(b["time_to_detect_s"]["n"]),
                _mean_ci(b["time_to_detect_s"], 1 / 60),
                _num(b["time_to_rollback_s"]["n"]),
                _mean_ci(b["time_to_rollback_s"], 1 / 60),
                _num(b["time_to_promote_s"]["n"]),
                _mean_ci(b["time_to_promote_s"], 1 / 60),
                _num(_scaled(b["time_to_decision_s"]["median"], 1 / 60)),
            ]
        )
    head = [
        "point",
        "grid",
        "detected",
        "to detect (min)",
        "rolled back",
        "to rollback (min)",
        "promoted",
        "to promote (min)",
        "median decision (min)",
    ]
    body = _sweep_table(head, rows)
    body += (
        '<p class="muted">Simulated minutes from the candidate\'s first exposure to the first '
        "failed analysis (detect), the rollback, or the promotion; mean over the replications "
        "where it happened, with a 95% Student-t interval.</p>"
    )
    if table.filter(pl.col("time_to_decision_s").is_not_null()).height:
        body += _figure(
            _strip_figure(
                table,
                summary,
                "time_to_decision_s",
                scale=1 / 60,
                ylabel="minutes",
                title="Time to decision (rollback or promotion)",
            ),
            "Each dot is one replication (colour: outcome); bars are the mean with its 95% "
            "interval.",
        )
    return body


def _exposure(summary: dict[str, Any], table: pl.DataFrame) -> str:
    rows = []
    for b in summary["points"]:
        rows.append(
            [
                _esc(b["point"]),
                _esc(b["label"] or "–"),
                _mean_ci(b["users_exposed"], digits=4),
                _num(b["users_exposed"]["max"]),
                _num(b["users_exposed_when_rolled_back"]["n"]),
                _mean_ci(b["users_exposed_when_rolled_back"], digits=4),
                _mean_ci(b["max_candidate_weight"], digits=3, unit="%"),
            ]
        )
    head = [
        "point",
        "grid",
        "users exposed",
        "max",
        "rolled back",
        "users exposed when rolled back",
        "max candidate weight",
    ]
    body = _sweep_table(head, rows)
    body += (
        '<p class="muted">Users exposed: distinct users assigned to the candidate during the '
        "run. When the candidate is bad, the replications that rolled it back show what "
        "catching it cost: how many users saw it first.</p>"
    )
    if table.filter(pl.col("users_exposed").is_not_null()).height:
        body += _figure(
            _strip_figure(
                table,
                summary,
                "users_exposed",
                scale=1.0,
                ylabel="users",
                title="Users exposed to the candidate",
            ),
            "Each dot is one replication (colour: outcome); bars are the mean with its 95% "
            "interval.",
        )
    return body


def _engagement(summary: dict[str, Any], table: pl.DataFrame) -> str:
    engagement_rows, latency_rows = [], []
    for b in summary["points"]:
        point = [_esc(b["point"]), _esc(b["label"] or "–")]
        engagement_rows.append(
            [
                *point,
                _mean_ci(b["candidate_ctr"], 100, 3, "%"),
                _mean_ci(b["baseline_ctr"], 100, 3, "%"),
                _mean_ci(b["ctr_difference"], 100, 3, " pp"),
            ]
        )
        latency_rows.append(
            [
                *point,
                _mean_ci(b["candidate_p99_ms"], digits=4),
                _mean_ci(b["baseline_p99_ms"], digits=4),
                _mean_ci(b["candidate_timeout_rate"], 100, 3, "%"),
                _mean_ci(b["fallback"], digits=4),
                _mean_ci(b["dropped"], digits=4),
            ]
        )
    body = "<h3>Engagement</h3>" + _sweep_table(
        ["point", "grid", "candidate CTR", "baseline CTR", "CTR difference"], engagement_rows
    )
    body += "<h3>Latency</h3>" + _sweep_table(
        [
            "point",
            "grid",
            "candidate p99 ms",
            "baseline p99 ms",
            "candidate timeouts",
            "fallbacks",
            "dropped",
        ],
        latency_rows,
    )
    body += (
        '<p class="muted">Per replication, by assigned version (as in summary.json); here the '
        "mean over replications with a 95% Student-t interval, i.e. how much the number varies "
        "from one run of the same rollout to the next.</p>"
    )
    if table.filter(pl.col("ctr_difference").is_not_null()).height:
        body += _figure(
            _strip_figure(
                table,
                summary,
                "ctr_difference",
                scale=100.0,
                ylabel="percentage points",
                title="CTR difference, candidate − baseline",
            ),
            "Each dot is one replication (colour: outcome); bars are the mean with its 95% "
            "interval.",
        )
    if table.filter(pl.col("candidate_p99_ms").is_not_null()).height:
        body += _figure(
            _strip_figure(
                table,
                summary,
                "candidate_p99_ms",
                scale=1.0,
                ylabel="ms",
                title="Candidate p99 latency",
            ),
            "Each dot is one replication (colour: outcome); bars are the mean with its 95% "
            "interval.",
        )
    return body


def _failures(summary: dict[str, Any]) -> str:
    failures = summary["failures"]
    if not failures:
        return '<p class="muted">No replication failed.</p>'
    rows = [
        [
            _esc(f["point"]),
            _esc(f["grid"] or "–"),
            _esc(f["error"]),
            _num(f["replication"]),
            _esc(f["seed"]),
        ]
        for f in failures
    ]
    return _sweep_table(["point", "grid", "error", "replication", "seed"], rows, left=3)


#: Grid points whose command the reproduce section spells out.
MAX_COMMANDS = 20


def reproduce_command(summary: dict[str, Any], block: dict[str, Any]) -> str:
    """The ``rollout-lab run`` command whose run is replication 0 of grid point ``block``:
    the point's seed, the sweep's own ``--set`` options, then the point's grid values (the
    order the sweep applied them), each argument quoted for a POSIX shell."""
    scenario = summary["scenario"]
    sets = [o for o in scenario.get("overrides") or [] if not o.startswith("seed=")]
    sets += [f"{k}={_value_text(v)}" for k, v in block["grid"].items()]
    words = ["rollout-lab", "run", scenario["file"], "--seed", str(block["seed"])]
    for item in sets:
        words += ["--set", item]
    return " ".join(shlex.quote(w) for w in words)


def _reproduce(summary: dict[str, Any]) -> str:
    points = summary["points"]
    if not points:
        return ""
    commands = "\n".join(reproduce_command(summary, b) for b in points[:MAX_COMMANDS])
    more = (
        f'<p class="muted">The first {MAX_COMMANDS} of {len(points)} grid points; the others '
        "follow the same pattern with their seed and grid values (sweep.json).</p>"
        if len(points) > MAX_COMMANDS
        else ""
    )
    return (
        "<p>Replication 0 of each grid point is this single run (its seed, the sweep's own "
        "<code>--set</code> options, then its grid values):</p>"
        f"<pre>{_esc(commands)}</pre>"
        + more
        + '<p class="muted">Replication <i>r</i> draws its traffic, service times and user '
        "responses from <code>SeedSequence(seed, spawn_key=(stream, r))</code> on the same "
        "trained versions.</p>"
    )


def _scenario(summary: dict[str, Any]) -> str:
    text = json.dumps(summary["scenario"]["settings"], indent=2)
    return (
        "<details><summary>The scenario before the grid (every default filled in)</summary>"
        f"<pre>{_esc(text)}</pre></details>"
    )


def _footer(summary: dict[str, Any]) -> str:
    ex = summary.get("execution") or {}
    where = _esc(ex.get("engine", "?"))
    if ex.get("scheduler"):
        where += f" at {_esc(ex['scheduler'])}"
    wall = ex.get("wall_s")
    return (
        f"<footer>rollout-lab sweep · {where} · {_esc(ex.get('workers', '?'))} worker(s) · "
        f"{_esc(ex.get('tasks', '?'))} task(s) of up to {_esc(ex.get('chunk_size', '?'))} "
        f"replication(s){'' if not wall else f' · {wall:,.1f} s wall'}. Every number above is "
        "a pure function of the scenario, the grid and the number of replications, whatever "
        "the engine or the number of workers.</footer>"
    )


def render_sweep_report(summary: dict[str, Any], table: pl.DataFrame) -> str:
    """The whole sweep report as one HTML string.

    ``summary`` is :func:`lab.sweep.sweep_summary`'s output (``sweep.json``), ``table`` the
    replication table (``sweep.parquet``).
    """
    scenario = summary["scenario"]
    bodies = {
        "outcomes": _outcomes(summary),
        "operating": _operating(summary),
        "decision": _decision(summary, table),
        "exposure": _exposure(summary, table),
        "engagement": _engagement(summary, table),
        "failures": _failures(summary),
        "reproduce": _reproduce(summary),
        "scenario": _scenario(summary),
    }
    return page(
        title=f"rollout-lab sweep: {scenario['name']}",
        heading=f"{scenario['name']} — sweep",
        description=scenario["description"],
        top=[_facts(summary), _banner(summary)],
        sections=[(a, t, bodies[a]) for a, t in SECTIONS],
        footer=_footer(summary),
    )
