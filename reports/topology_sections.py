"""Report sections of the serving topology, rendered from ``summary.json``
(:mod:`reports.topology` builds the blocks):

* *Serving path*: per version, each stage's sojourn percentiles (queue + service, ms),
  timeouts and degraded answers, and the share of the version's answers served degraded;
* *SLOs and error budgets*: each SLO's compliance, the budget burnt over the run and over
  the update window, a figure of the budget burnt per analysis window, per-version burn rates
  and the burn-rate alert rules with their firings;
* *Resources and cost*: each version's footprint, replicas, replica-hours and GB-hours, the
  nodes' memory and out-of-memory kills, and the autoscaler's replica trace;
* an addition to *Cache*: single flight's coalesced misses, in all and per version.

A section appears only when the scenario uses its feature (a staged path, ``[[slos]]``,
``[resources]`` or an autoscaler), so reports of other scenarios are unchanged.  Every
judging sentence comes from :mod:`sim.wording`; every string from the run goes through
:func:`reports.sections.esc`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reports import figures
from reports.page import table as html_table
from reports.sections import SECTIONS, esc, fmt, minutes, pct
from reports.svg import figure_html
from sim import wording

__all__ = ["TOPOLOGY_ADDITIONS", "TOPOLOGY_SECTIONS", "report_sections", "topology_bodies"]

# (anchor, heading) of the topology sections, in page order (after *Cache*).
TOPOLOGY_SECTIONS: tuple[tuple[str, str], ...] = (
    ("stages", "Serving path"),
    ("slos", "SLOs and error budgets"),
    ("resources", "Resources and cost"),
)
# The base section the topology sections follow.
AFTER = "cache"


def _muted(text: str) -> str:
    return f'<p class="muted">{text}</p>'


def _uses(summary: dict[str, Any], anchor: str) -> bool:
    versions = summary["versions"].values()
    if anchor == "stages":
        return any(v.get("serving_path") for v in versions)
    if anchor == "slos":
        return bool(summary.get("slos"))
    return summary.get("resources") is not None or any(v.get("autoscaler") for v in versions)


def report_sections(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(anchor, heading) of every section the report of ``summary`` shows, in page order:
    :data:`reports.sections.SECTIONS` with the topology sections the run uses after
    *Cache*."""
    used = [s for s in TOPOLOGY_SECTIONS if _uses(summary, s[0])]
    out: list[tuple[str, str]] = []
    for section in SECTIONS:
        out.append(section)
        if section[0] == AFTER:
            out.extend(used)
    return out


# --- serving path ----------------------------------------------------------------------------


#: A stage's counts, as :func:`_stage_cells` gives them.
STAGE_HEAD = ("entered", "completed", "p50 ms", "p95 ms", "p99 ms", "timeouts")


def _stage_cells(counts: dict[str, Any]) -> list[str]:
    """A stage's counts (users' requests or mirrored copies) under :data:`STAGE_HEAD`."""
    keys = ("entered", "completed", "sojourn_ms_p50", "sojourn_ms_p95", "sojourn_ms_p99")
    return [*(fmt(counts[k]) for k in keys), fmt(counts["timeouts"])]


def serving_path(summary: dict[str, Any]) -> str:
    body = ""
    for name, version in summary["versions"].items():
        path = version.get("serving_path")
        if not path:
            continue
        rows = [
            [
                esc(stage["name"]),
                *_stage_cells(stage),
                fmt(stage["degraded"]),
                fmt(stage["degraded_first_here"]),
            ]
            for stage in path["stages"]
        ]
        head = ["stage", *STAGE_HEAD, "degraded", "degraded first here"]
        verdict = wording.degraded_share(path["degraded_answers"], path["answers"])
        body += (
            f"<h3>{esc(name)}</h3>"
            + html_table(head, rows)
            + _muted(f"{esc(name)}: {esc(verdict)}.")
            + _mirrored(path["stages"])
        )
    return (
        body
        + _answers_apart(summary)
        + _muted(
            "Stages in path order. Latency is each stage's sojourn (queue wait plus service) of "
            "the requests it completed; timeouts count the stage's own timeout or the request's, "
            "whichever came first; degraded counts the timeouts answered degraded instead of "
            "failing, and <i>degraded first here</i> the answers this stage was the first to "
            "degrade. Answers are the version's lists the path computed (cache misses and "
            "requests without a cache); a degraded answer shows the version's own items "
            "re-ordered by popularity (retrieval order) and is never cached. Mirrored copies are "
            "not counted."
        )
    )


def _mirrored(stages: list[dict[str, Any]]) -> str:
    """The stages' counts of mirrored (shadow) copies, when any reached the path."""
    if not any(stage.get("shadow") for stage in stages):
        return ""
    rows = [
        [esc(stage["name"]), *_stage_cells(stage["shadow"])]
        for stage in stages
        if stage.get("shadow")
    ]
    return html_table(["stage (mirrored copies)", *STAGE_HEAD], rows) + _muted(
        "Mirrored copies are scored and never shown, but they hold the stages' servers: "
        "counted here, apart from users' requests."
    )


def _answers_apart(summary: dict[str, Any]) -> str:
    """Engagement and calibration of full and degraded answers, per staged version."""
    rows = []
    for name, version in summary["versions"].items():
        path = version.get("serving_path")
        if not path:
            continue
        for kind, key in (("full", "full_quality"), ("degraded", "degraded_quality")):
            q = path[key]
            rows.append(
                [
                    esc(name),
                    kind,
                    fmt(q["lists"]),
                    pct(q["ctr"]),
                    fmt(q["judged"]),
                    pct(q["mean_predicted"]),
                    pct(q["observed_rate"]),
                    fmt(q["ece"]),
                ]
            )
    return (
        "<h3>Full and degraded answers</h3>"
        + html_table(
            ["version", "answers", "lists", "CTR", "judged", "mean predicted", "observed", "ECE"],
            rows,
            left=2,
        )
        + _muted(
            "Apart, the answers the path computed in full and those it served degraded. A "
            "degraded answer's prediction is the version's calibrator on the list shown (the "
            "retrieval order: other ranks), not on the model's list. CTR = clicked lists / "
            "lists; judged = not abandoned (the calibration basis); ECE over 15 equal-width "
            "bins of the predicted P(click on the list)."
        )
    )


def single_flight(summary: dict[str, Any]) -> str:
    """The cache's single-flight counts, per assigned version (an addition to *Cache*)."""
    block = (summary.get("cache") or {}).get("single_flight")
    if not block:
        return ""
    rows = [[esc(name), fmt(n)] for name, n in (block.get("by_version") or {}).items()]
    rows.append(["all", fmt(block["coalesced"])])
    return (
        "<h3>Single flight</h3>"
        + html_table(["version", "coalesced misses"], rows)
        + _muted(
            f"{pct(block['coalesced_rate_of_misses'])} of cache misses waited for another "
            "request's model call for the same key (version, user) instead of calling the "
            "model themselves; each is counted under the version it was assigned to."
        )
    )


# --- SLOs and error budgets ------------------------------------------------------------------


def _threshold(slo: dict[str, Any]) -> str:
    if slo["kind"] == "latency":
        return f"answered within {fmt(slo['threshold_ms'])} ms"
    return "answered by a model"


def slos(summary: dict[str, Any]) -> str:
    blocks: dict[str, dict[str, Any]] = summary["slos"]
    rows = []
    for name, slo in blocks.items():
        update = slo.get("update_window") or {}
        rows.append(
            [
                esc(name),
                esc(_threshold(slo)),
                pct(slo["target"], 3),
                pct(slo["compliance"], 3),
                fmt(slo["burn_rate"]),
                pct(slo["budget_spent"], 3),
                pct(update.get("budget_spent"), 3),
                fmt(slo["alerts_fired"]),
            ]
        )
    head = [
        "SLO",
        "good request",
        "target",
        "compliance",
        "burn rate",
        "budget burnt (run)",
        "budget burnt (update window)",
        "alerts fired",
    ]
    sentences = "".join(
        "<li>"
        + f"<b>{esc(name)}</b> "
        + esc(wording.slo_verdict(slo["compliance"], slo["target"]))
        + "; "
        + esc(
            wording.budget_burnt(
                (slo.get("update_window") or {}).get("budget_spent"), "the update window"
            )
        )
        + "; "
        + esc(wording.alerts_fired(slo["alerts_fired"], len(slo["alerts"])))
        + ".</li>"
        for name, slo in blocks.items()
    )
    first = next(iter(blocks.values()))
    update = first.get("update_window")
    windows = summary.get("windows") or {}
    starts, ends = windows.get("t_start_s") or [], windows.get("t_end_s") or []
    figure = ""
    if starts and all(len(s["window_budget_spent"]) == len(starts) for s in blocks.values()):
        span = None if update is None else (update["from_s"], update["to_s"])
        figure = figure_html(
            figures.slo_budget_figure(blocks, starts, ends, span),
            "Bars: the share of each SLO's error budget (for its whole compliance period) "
            "the requests of each analysis window spent; shaded: the update window."
            if span is not None
            else "Bars: the share of each SLO's error budget (for its whole compliance "
            "period) the requests of each analysis window spent; the candidate was never "
            "exposed, so there is no update window.",
        )
    window_text = (
        "the candidate was never exposed (no update window)"
        if update is None
        else f"the update window runs from {minutes(update['from_s'])} to "
        f"{minutes(update['to_s'])} min (the candidate's first exposure to its promotion or "
        "rollback, else the end of the run)"
    )
    return (
        f"<ul>{sentences}</ul>"
        + figure
        + html_table(head, rows, left=2)
        + _muted(
            "Over all traffic. Burn rate = bad share / (1 − target): 1 spends the budget "
            "exactly over the compliance period. Budget burnt = burn rate × span / period, the "
            f"period's traffic assumed at the same rate; {window_text}."
        )
        + _slo_versions(blocks)
        + _alert_rules(blocks)
    )


def _slo_versions(blocks: dict[str, dict[str, Any]]) -> str:
    rows = [
        [esc(name), esc(version), fmt(v["requests"]), pct(v["compliance"], 3), fmt(v["burn_rate"])]
        for name, slo in blocks.items()
        for version, v in slo["versions"].items()
    ]
    return "<h3>By version</h3>" + html_table(
        ["SLO", "version", "requests", "compliance", "burn rate"], rows, left=2
    )


def _alert_rules(blocks: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name, slo in blocks.items():
        for alert in slo["alerts"]:
            first = alert["first_fired_at_s"]
            rows.append(
                [
                    esc(name),
                    f"{fmt(alert['long_s'] / 60)} min and {fmt(alert['short_s'] / 60)} min",
                    f"{fmt(alert['burn_rate'])}×",
                    '<span class="bad">fired</span>' if alert["fired"] else "no",
                    minutes(first),
                    fmt(alert["firing_s"] / 60),
                ]
            )
    if not rows:
        return ""
    return (
        "<h3>Burn-rate alerts</h3>"
        + html_table(
            ["SLO", "windows (long and short)", "burn rate", "fired", "first at min", "firing min"],
            rows,
            left=2,
        )
        + _muted(
            "A rule fires while the burn rate over both its long and its short window "
            "(by arrival time) is at least its rate (the SRE workbook's multi-window, "
            "multi-burn-rate alerts), evaluated every 10 simulated seconds."
        )
    )


# --- resources and cost ----------------------------------------------------------------------


def resources(summary: dict[str, Any]) -> str:
    block = summary.get("resources")
    body = ""
    if block is not None:
        with_nodes = block["nodes"] is not None
        rows = []
        for name, v in block["versions"].items():
            row = [
                esc(name),
                fmt(v["footprint_gb"]),
                esc(v["footprint"]),
                fmt(v["replicas"]),
                f"{minutes(v['from_s'])} to {minutes(v['to_s'])}",
                fmt(v["replica_hours"]),
                fmt(v["gb_hours"]),
            ]
            if with_nodes:
                row += [fmt(v.get("oom_kills")), fmt(v.get("replica_hours_lost_to_oom"))]
            rows.append(row)
        rows.append(
            ["all", "", "", "", "", fmt(block["replica_hours"]), fmt(block["gb_hours"])]
            + (["", ""] if with_nodes else [])
        )
        head = [
            "version",
            "GB per replica",
            "footprint from",
            "replicas",
            "deployed (min)",
            "replica-hours",
            "GB-hours",
        ]
        if with_nodes:
            head += ["OOM kills", "replica-hours lost to OOM"]
        body += (
            _nodes(block)
            + html_table(head, rows, left=3)
            + _muted(
                "A version's replicas cost while it is deployed: the baseline until a "
                "promotion retires it, the candidate until a rollback removes it; both "
                "stacks during the overlap. Replicas: a staged path's replicas of every "
                f"stage, an autoscaled version's most at once. Overhead per replica "
                f"{fmt(block['overhead_mb'])} MB beyond the factor tables."
            )
        )
    return body + _autoscalers(summary)


def _nodes(block: dict[str, Any]) -> str:
    nodes = block["nodes"]
    if nodes is None:
        return ""
    peaks = nodes["peak_gb"]
    kills = sum(v.get("oom_kills") or 0 for v in block["versions"].values())
    fullest = max((p for p in peaks if p is not None), default=None)
    verdict = wording.memory_verdict(fullest, nodes["node_memory_gb"], kills)
    rows = [
        [f"node {k + 1}", fmt(peak), fmt(nodes["node_memory_gb"])] for k, peak in enumerate(peaks)
    ]
    first = nodes["first_oom_kill_s"]
    when = "" if first is None else f" The first OOM kill came at {minutes(first)} min."
    return (
        f"<p>{esc(verdict[:1].upper() + verdict[1:])}.</p>"
        + html_table(["node", "peak memory GB", "capacity GB"], rows)
        + _muted(
            "Replicas are placed on the nodes round-robin, the baseline's first; a replica "
            "that starts without room is killed out of memory and restarts every "
            f"{fmt(nodes['restart_delay_s'])} s until the other stack leaves." + when
        )
    )


def _autoscalers(summary: dict[str, Any]) -> str:
    scaled = {n: v["autoscaler"] for n, v in summary["versions"].items() if v.get("autoscaler")}
    if not scaled:
        return ""
    end_s = float(summary["scenario"]["settings"]["traffic"]["duration"])
    rows = [
        [
            esc(name),
            fmt(a["min_replicas_seen"]),
            fmt(a["max_replicas_seen"]),
            fmt(a["peak_desired"]),
            fmt(a["changes"]),
            fmt(a["mean_replicas"]),
        ]
        for name, a in scaled.items()
    ]
    return (
        "<h3>Autoscaler</h3>"
        + figure_html(
            figures.replicas_figure({n: a["timeline"] for n, a in scaled.items()}, end_s),
            "Ready replicas (those that take requests) at every change; a replica started "
            "by a scale-up is ready only after it has loaded the model.",
        )
        + html_table(
            ["version", "fewest ready", "most ready", "most wanted", "changes", "mean ready"],
            rows,
        )
    )


def topology_bodies(summary: dict[str, Any]) -> dict[str, Callable[[], str]]:
    """The body renderer of each topology section, by anchor."""
    return {
        "stages": lambda: serving_path(summary),
        "slos": lambda: slos(summary),
        "resources": lambda: resources(summary),
    }


# Fragments appended to base sections when the run has what they show.
TOPOLOGY_ADDITIONS: dict[str, tuple[Callable[[dict[str, Any]], str], ...]] = {
    "cache": (single_flight,),
}
