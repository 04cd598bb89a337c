"""The HTML report: one self-contained static file, readable without JavaScript.

Layout, top to bottom: the decision (verdict, reason, next step, projected time to decision
when undecided), the expectations banner, the run's facts, a few sentences "at a glance", a
table of contents, then the sections of :data:`reports.sections.SECTIONS`, with the serving
topology's sections after *Cache* when the run uses them (:mod:`reports.topology_sections`).
Figures are inline SVG (text kept as text); the page has no script and fetches nothing from
the network.  Every string that comes from the user (scenario name, description, version
names, decision reasons, settings) is escaped.  The
report embeds aggregates, never raw per-request data, so its size does not grow with the
number of requests.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from replay.artifact_store import ArtifactStore
from reports.figure_cache import figure_store
from reports.lead import decision_box
from reports.page import page
from reports.quality_sections import ADDITIONS, glance_items
from reports.remembering_sections import REMEMBERING_ADDITIONS
from reports.sections import Section, esc, glance, render_sections
from reports.summary import miss_storms, shadow_timeline, timeline
from reports.topology_sections import TOPOLOGY_ADDITIONS, report_sections, topology_bodies
from sim import wording

__all__ = ["render_report"]


def _bucket_seconds(duration_s: float) -> float:
    """About 60 points across the run, on a round number of seconds."""
    for step in (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400):
        if duration_s / step <= 80:
            return float(step)
    return duration_s / 60.0


def _banner(summary: dict[str, Any], verdict: dict[str, Any] | None) -> str:
    outcome = summary["outcome"]
    if verdict is not None and verdict.get("expectations"):
        cases = verdict["expectations"]
        failed = [e for e in cases if not e["passed"]]
        css = "fail" if failed else "pass"
        text = wording.expectations_headline(len(failed), len(cases))
        return (
            f'<div class="banner {css}">{esc(text)} — rollout outcome: <b>{esc(outcome)}</b></div>'
        )
    css = {"promoted": "pass", "rolled_back": "fail"}.get(outcome, "neutral")
    return (
        f'<div class="banner {css}">Rollout outcome: <b>{esc(outcome)}</b> '
        "(no expectations set)</div>"
    )


def _facts(summary: dict[str, Any]) -> str:
    scenario = summary["scenario"]
    settings = scenario["settings"]
    req = summary["requests"]
    rollout = summary["rollout"]
    duration_min = settings["traffic"]["duration"] / 60
    return (
        f'<p class="facts">Seed {esc(scenario["seed"])} · policy <b>{esc(rollout["policy"])}</b> · '
        f"{req['arrivals']:,} requests ({req['served']:,} served, {req['fallback']:,} fallback, "
        f"{req['dropped']:,} dropped, {req['shadow']:,} shadow copies) over "
        f"{duration_min:,.0f} simulated minutes · max candidate weight "
        f"{rollout['max_candidate_weight']:g}%</p>"
    )


def _speed(timing: dict[str, Any], arrivals: int) -> str:
    if not timing["simulate_s"]:
        # --reproducible writes wall-clock times as 0: a rate of 0 would be a false number.
        return f"{arrivals:,} requests; wall-clock timings not recorded (--reproducible)"
    floor = timing.get("noise_floor_s")
    beside = "" if not floor else f"; noise floor {floor:.2f} s, built beside the simulation"
    return (
        f"simulation {timing['simulate_s']:.2f} s wall for {arrivals:,} requests "
        f"({timing['requests_per_wall_s']:,.0f} requests per wall second); preparation "
        f"{timing['prepare_s']:.2f} s{beside}"
    )


def _with_additions(section: Section, summary: dict[str, Any]) -> Section:
    """The section with the finer quality numbers that belong to it appended."""
    renders = (
        *ADDITIONS.get(section.anchor, ()),
        *TOPOLOGY_ADDITIONS.get(section.anchor, ()),
        *REMEMBERING_ADDITIONS.get(section.anchor, ()),
    )
    extra = "".join(render(summary) for render in renders)
    return Section(section.anchor, section.title, section.body + extra) if extra else section


def _glance(summary: dict[str, Any], storms: list[dict[str, Any]]) -> str:
    items = "".join(f"<li>{item}</li>" for item in glance_items(summary))
    page = glance(summary, storms)
    return page.replace("</ul>", items + "</ul>", 1) if items else page


def render_report(
    summary: dict[str, Any],
    frame: pl.DataFrame,
    verdict: dict[str, Any] | None = None,
    *,
    store: ArtifactStore | None = None,
) -> str:
    """The whole report as one HTML string.

    ``summary`` is :func:`reports.summary.build_summary`'s output; ``frame`` the request
    frame, used only for time-bucketed aggregates (traffic share, latency, cache figures);
    ``store``: figures already drawn from the same numbers are read from it, new ones
    saved to it (:mod:`reports.figure_cache`).
    """
    scenario = summary["scenario"]
    duration_s = float(scenario["settings"]["traffic"]["duration"])
    bucket_s = _bucket_seconds(duration_s)
    tl = timeline(frame, bucket_s)
    shadow = shadow_timeline(frame, bucket_s)
    storms = miss_storms(frame, list(summary["cache"].get("flush_times_s") or []))
    topology = topology_bodies(summary)
    with figure_store(store):
        base = {s.anchor: s for s in render_sections(summary, verdict, tl, duration_s, shadow)}
        sections = [
            _with_additions(
                base[anchor] if anchor in base else Section(anchor, title, topology[anchor]()),
                summary,
            )
            for anchor, title in report_sections(summary)
        ]
    timing = summary["timing"]
    req = summary["requests"]
    footer = f"""<footer>rollout-lab · {_speed(timing, req["arrivals"])}. Every number above \
except wall-clock timings (these and the training seconds) is a pure function of the scenario \
and its seed.</footer>"""
    return page(
        title=f"rollout-lab report: {scenario['name']}",
        heading=scenario["name"],
        description=scenario["description"],
        top=[
            decision_box(summary),
            _banner(summary, verdict),
            _facts(summary),
            _glance(summary, storms),
        ],
        sections=[(s.anchor, s.title, s.body) for s in sections],
        footer=footer,
    )
