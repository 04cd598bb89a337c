"""The report's sections, each rendered from ``summary.json`` (and time buckets) to HTML.

Every function returns an HTML fragment; every string that can come from the user (scenario
and version names, descriptions, decision reasons, settings) goes through :func:`esc`.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from reports import figures
from reports.analysis_grid import analysis_grid
from reports.page import table as html_table
from reports.svg import figure_html
from sim import wording

__all__ = [
    "SECTIONS",
    "Section",
    "esc",
    "glance",
    "numbered_decisions",
    "render_sections",
]


@dataclass(frozen=True, slots=True)
class Section:
    """One ``<section>``: anchor id, heading, body HTML."""

    anchor: str
    title: str
    body: str


# (anchor, heading) in page order; the table of contents and the tests use this list.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("expectations", "Expectations"),
    ("versions", "Versions"),
    ("timeline", "Rollout timeline"),
    ("analyses", "Analysis grid"),
    ("latency", "Latency against the budget"),
    ("cache", "Cache"),
    ("engagement", "Engagement"),
    ("calibration", "Calibration"),
    ("diversity", "Diversity and coverage"),
    ("stability", "Stability"),
    ("segments", "Segments"),
    ("drift", "Drift"),
    ("provenance", "Model provenance"),
    ("data", "Data and row accounting"),
    ("decisions", "Decision trace"),
    ("scenario", "Resolved scenario"),
)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return esc(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    return esc(value)


def pct(value: Any, digits: int = 2) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def pp(value: Any, digits: int = 2) -> str:
    """A difference of rates in percentage points, signed."""
    return "–" if value is None else f"{100 * value:+.{digits}f} pp"


def ci_pct(ci: Sequence[Any] | None, digits: int = 2) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f' <span class="ci">[{pct(ci[0], digits)}, {pct(ci[1], digits)}]</span>'


def verdict_html(ci: Sequence[Any] | None) -> str:
    """:func:`sim.wording.difference_verdict` of a CTR difference's 95 % interval, in bold
    when the candidate is significantly worse."""
    low, high = (ci[0], ci[1]) if ci else (None, None)
    text = esc(wording.difference_verdict(low, high))
    return f"<b>{text}</b>" if wording.interval_side(low, high) == "below" else text


def ci_pp(ci: Sequence[Any] | None, digits: int = 2) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f' <span class="ci">[{100 * ci[0]:+.{digits}f}, {100 * ci[1]:+.{digits}f}]</span>'


def ci_num(ci: Sequence[Any] | None, digits: int = 3) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f' <span class="ci">[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]</span>'


def minutes(t_s: Any) -> str:
    return "–" if t_s is None else f"{t_s / 60:.1f}"


def _figure(svg: str, caption: str = "") -> str:
    return figure_html(svg, caption)


def _muted(text: str) -> str:
    return f'<p class="muted">{text}</p>'


def numbered_decisions(
    decisions: Sequence[dict[str, Any]],
) -> list[tuple[int, dict[str, Any]]]:
    """Every decision with its number in the trace (1-based), as the timeline labels them."""
    return [(i + 1, d) for i, d in enumerate(decisions)]


# --- at a glance -----------------------------------------------------------------------------


def _roles(summary: dict[str, Any]) -> tuple[str | None, str | None]:
    base = cand = None
    for name, v in summary["versions"].items():
        if v["role"] == "baseline":
            base = name
        elif v["role"] == "candidate":
            cand = name
    return base, cand


def final_roles(summary: dict[str, Any]) -> tuple[str | None, str | None]:
    """The versions the run ended with: the one in production and the candidate being rolled
    out behind it (a release train's last release), as ``routing`` records them; the
    scenario's roles for summaries without it."""
    routing = summary.get("routing") or {}
    base, cand = routing.get("baseline"), routing.get("candidate")
    if base in summary["versions"] and cand in summary["versions"] and base != cand:
        return base, cand
    return _roles(summary)


def _train_items(summary: dict[str, Any]) -> list[str]:
    """A release train in two sentences: what became of each release, and the last one
    against the version in production during its window."""
    releases = summary.get("releases") or []
    if not releases:
        return []
    fates = ", ".join(f"{esc(r['version'])} {esc(r['outcome'])}" for r in releases)
    production = (summary.get("routing") or {}).get("baseline") or releases[-1]["production"]
    items = [
        f"<b>Release train</b> {wording.count_noun(len(releases), 'release')}: {fates}; in "
        f"production at the end: <b>{esc(production)}</b>."
    ]
    last = releases[-1]
    lift = last.get("ctr_vs_production")
    if lift is not None and lift["difference_ci95"][0] is not None:
        low, high = lift["difference_ci95"]
        items.append(
            f"<b>Engagement</b> release {last['release']} ({esc(last['version'])}) against "
            f"{esc(last['production'])} over its window ({minutes(last['started_s'])}–"
            f"{minutes(last['ended_s'])} min): CTR {pct(last['window']['ctr'])} vs "
            f"{pct(last['production_window']['ctr'])}, {pp(lift['difference'])}"
            f"{ci_pp(lift['difference_ci95'])} (95% CI), "
            f"{wording.comparison_phrase(low, high, 'production')}."
        )
    return items


def _storm_items(storms: Sequence[dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """Cache flushes followed by a miss storm, each tied to the routing decision behind it."""
    hits = [s for s in storms if s["storm"]]
    if not hits:
        return []
    routing = [
        (n, d) for n, d in numbered_decisions(summary["decisions"]) if d["action"] != "analysis"
    ]
    parts = []
    for storm in hits:
        before = [(n, d) for n, d in routing if d["t_s"] <= storm["t_s"] + 1e-6]
        cause = f" ({esc(before[-1][1]['action'])}, #{before[-1][0]})" if before else ""
        parts.append(
            f"at {minutes(storm['t_s'])} min{cause} the hit rate fell from "
            f"{pct(storm['before'], 0)} to {pct(storm['after'], 0)} in the next "
            f"{storm['after_window_s']:g} s"
        )
    lead = "a miss storm" if len(hits) == 1 else f"{len(hits)} miss storms"
    return [f"<b>Cache</b> {lead} after flushes: " + "; ".join(parts) + "."]


def glance(summary: dict[str, Any], storms: Sequence[dict[str, Any]] = ()) -> str:
    """Five to seven sentences that answer "what happened" before any table, about the
    versions the run ended with (:func:`final_roles`)."""
    versions = summary["versions"]
    rollout = summary["rollout"]
    budget = summary["scenario"]["settings"]["serving"]["budget_ms"]
    base, cand = final_roles(summary)
    train = _train_items(summary)
    items: list[str] = train[:1]
    routing = [
        (n, d) for n, d in numbered_decisions(summary["decisions"]) if d["action"] != "analysis"
    ]
    outcome = summary["outcome"]
    if routing:
        number, last = routing[-1]
        items.append(
            f"<b>Outcome</b> {esc(outcome)}: candidate weight {last['weight']:g}% since "
            f"{minutes(last['t_s'])} min (decision #{number}, {esc(last['action'])}: "
            f"“{esc(last['reason'])}”)."
        )
    else:
        items.append(f"<b>Outcome</b> {esc(outcome)}; no routing decision was taken.")
    if rollout.get("waiting_for"):
        items.append(f"<b>Waiting</b>: {esc(rollout['waiting_for'])}.")
    manifest = summary["scenario"]["settings"]["rollout"].get("manifest")
    if isinstance(manifest, list):
        manifest = ", ".join(manifest)
    if manifest:
        notes = summary["scenario"]["settings"]["rollout"].get("manifest_notes") or []
        items.append(
            f"<b>Manifest</b> {esc(manifest)}: {len(notes)} of its fields change nothing in "
            "the lab (listed under rollout.manifest_notes in the resolved scenario)."
        )
    timings = [
        (label, rollout.get(key))
        for key, label in (
            ("time_to_detect_s", "first failed analysis"),
            ("time_to_rollback_s", "rollback"),
            ("time_to_promote_s", "promotion"),
        )
    ]
    shown = [
        f"{label} {minutes(t)} min"
        for label, t in sorted((x for x in timings if x[1] is not None), key=lambda x: x[1])
    ]
    if shown:
        items.append("<b>Timing</b> after first exposure: " + ", ".join(shown) + ".")
    analyses = [d for d in summary["decisions"] if d["action"] == "analysis"]
    if analyses:
        counts: dict[str, int] = {}
        for d in analyses:
            r = figures.analysis_result(d)
            counts[r] = counts.get(r, 0) + 1
        parts = esc(wording.tally(sorted(counts.items())))
        items.append(f"<b>Analyses</b> {len(analyses)}: {parts}.")
    items += _storm_items(storms, summary)
    if base is not None and cand is not None:
        b, c = versions[base], versions[cand]
        lift = c["quality"]["engagement"]["ctr_vs_baseline"]
        # A release train's last release was judged against production: sentence above.
        items += train[1:]
        if not train and lift is not None and lift["difference_ci95"][0] is not None:
            low, high = lift["difference_ci95"]
            verdict = wording.comparison_phrase(low, high, "the baseline's")
            items.append(
                f"<b>Engagement</b> CTR {esc(cand)} {pct(c['ctr'])} vs {esc(base)} "
                f"{pct(b['ctr'])}: "
                f"{pp(lift['difference'])}{ci_pp(lift['difference_ci95'])} (95% CI), "
                f"{verdict}."
            )
        p99c, p99b = c["latency_ms"]["p99"], b["latency_ms"]["p99"]
        phrase = wording.budget_phrase({cand: p99c, base: p99b}, budget)
        items.append(
            f"<b>Latency</b> p99 {esc(cand)} {fmt(p99c)} ms, {esc(base)} {fmt(p99b)} ms against a "
            f"{budget:g} ms budget"
            + (f"; <b>{esc(phrase)}</b>." if phrase.startswith("over") else f": {phrase}.")
        )
        stab = c["quality"]["stability"]
        if stab is not None and stab["jaccard_at_k"] is not None:
            items.append(
                f"<b>Stability</b> {esc(cand)}'s top-{stab['k']} lists share "
                f"{pct(stab['jaccard_at_k'], 0)} of items with {esc(stab['against'])}'s "
                f"(Jaccard@{stab['k']}, mean over {stab['users']:,} users); "
                f"RBO {stab['rbo']:.2f}."
            )
        cal_b, cal_c = b["quality"]["calibration"], c["quality"]["calibration"]
        if cal_b["ece"] is not None and cal_c["ece"] is not None:
            warned = [n for n, c in ((cand, cal_c), (base, cal_b)) if c.get("warnings")]
            items.append(
                f"<b>Calibration</b> slope {esc(cand)} {_slope(cal_c)}, {esc(base)} "
                f"{_slope(cal_b)} (1 = calibrated); ECE (10 equal-mass bins) {esc(cand)} "
                f"{fmt(cal_c.get('ece_equal_mass'))}, {esc(base)} "
                f"{fmt(cal_b.get('ece_equal_mass'))}; {esc(cand)} predicts "
                f"{pct(cal_c['mean_predicted'])} and gets {pct(cal_c['observed_rate'])} clicks"
                + (
                    f"; <b>warnings for {esc(', '.join(warned))}</b> (see Calibration)."
                    if warned
                    else "."
                )
            )
    worst = summary["segments"]["worst"]
    if worst is not None:
        rule = summary["segments"]["rules"][worst["segment"]]
        items.append(
            f"<b>Segments</b> {esc(summary['segments']['candidate'])} does worst with "
            f"{esc(worst['segment'])} users "
            f"({esc(rule)}): CTR {pp(worst['difference'])}{ci_pp(worst['difference_ci95'])}; "
            f"{verdict_html(worst['difference_ci95'])}."
        )
    lis = "".join(f"<li>{item}</li>" for item in items)
    return f'<ul class="glance">{lis}</ul>'


# --- sections --------------------------------------------------------------------------------


def expectations(verdict: dict[str, Any] | None) -> str:
    if verdict is None or not verdict.get("expectations"):
        return _muted("The scenario sets no expectations.")
    rows = [
        [
            '<span class="ok">pass</span>' if e["passed"] else '<span class="bad">FAIL</span>',
            esc(e["metric"]),
            esc(e["condition"]),
            esc(e["observed"]),
        ]
        for e in verdict["expectations"]
    ]
    return html_table(["result", "metric", "expected", "observed"], rows, left=4)


def versions_table(summary: dict[str, Any]) -> str:
    rows = []
    for name, v in summary["versions"].items():
        lat = v["latency_ms"]
        rows.append(
            [
                esc(name),
                esc(v["role"]),
                fmt(v["requests"]),
                fmt(v["users"]),
                fmt(lat["p50"]),
                fmt(lat["p99"]),
                pct(v["slo_under_budget"]),
                pct(v["cache_hit_rate"]),
                pct(v["ctr"]) + ci_pct(v["ctr_ci95"]),
                pct(v["abandon_rate"]),
            ]
        )
    head = [
        "version",
        "role",
        "requests",
        "users",
        "p50 ms",
        "p99 ms",
        "under budget",
        "cache hit",
        "CTR [95% CI]",
        "abandoned",
    ]
    off = summary.get("off_policy") or {}
    logged = off.get("logging_policy_mean_reward")
    source = (
        f" CTR here is simulated by the click model; the log's own CTR is {pct(logged)} "
        "(see Engagement)."
        if logged is not None
        else ""
    )
    return (
        html_table(head, rows, left=2)
        + _muted(
            "Requests are attributed to the version they were assigned to (intention to "
            "treat); CTR = clicked lists / lists shown." + source
        )
        + releases_table(summary)
    )


def releases_table(summary: dict[str, Any]) -> str:
    """A release train release by release (``summary["releases"]``), or ''."""
    releases = summary.get("releases") or []
    if not releases:
        return ""
    rows = []
    for r in releases:
        mine, theirs, lift = r["window"], r["production_window"], r["ctr_vs_production"]
        rows.append(
            [
                f"{r['release']}: {esc(r['version'])}",
                esc(r["parent"] or "–"),
                esc(r["production"]),
                minutes(r["started_s"]),
                # A rollback that sent production to a named version says which.
                esc(r["outcome"]) + (f" → {esc(r['restored'])}" if r.get("restored") else ""),
                minutes(r["time_to_decision_s"]),
                fmt(mine["requests"]),
                pct(mine["ctr"]) + ci_pct(mine["ctr_ci95"]),
                "–" if lift is None else pp(lift["difference"]) + ci_pp(lift["difference_ci95"]),
                f"{fmt(mine['latency_p99_ms'])} ({fmt(theirs['latency_p99_ms'])})",
            ]
        )
    head = [
        "release",
        "parent",
        "behind",
        "started (min)",
        "outcome",
        "to decision (min)",
        "requests",
        "CTR [95% CI]",
        "CTR − behind",
        "p99 ms (behind)",
    ]
    return (
        "<h3>Releases</h3>"
        + html_table(head, rows, left={0, 1, 2, 4})
        + _muted(
            "Each release rolls out behind the version in production when it starts and is "
            "compared with it over its own window (its start to the next release's), by "
            "assigned version; the difference has a normal 95% interval over requests. "
            "Parent: the version it was updated from; to decision: from its first exposure "
            "to its promotion or rollback."
        )
    )


def release_version(summary: dict[str, Any], release: int) -> str:
    """The candidate version of ``release`` (the scenario's candidate without a train)."""
    for name, block in (summary["rollout"].get("releases") or {}).items():
        if block.get("release") == release:
            return str(name)
    return str(summary["scenario"]["settings"]["rollout"]["candidate"])


def focus_end_s(decisions: Sequence[dict[str, Any]], duration_s: float) -> float | None:
    """Where the timeline's main panel ends when the rollout settled early, else None.

    The rollout is over at its last decision (routing or analysis); when that comes before
    half the run, the panel shows up to a little after it (a fifth more, at least 5 % of the
    run) and a second panel the whole run, so the idle tail does not take most of the width.
    """
    if not decisions or duration_s <= 0:
        return None
    last_s = max(float(d["t_s"]) for d in decisions)
    if last_s > 0.5 * duration_s:
        return None
    return min(duration_s, last_s + max(0.2 * last_s, 0.05 * duration_s))


def timeline(
    summary: dict[str, Any],
    tl: pl.DataFrame,
    shadow: pl.DataFrame,
    names: Sequence[str],
    duration_s: float,
) -> str:
    decisions = summary["decisions"]
    numbered = numbered_decisions(decisions)
    marks = [(n, d) for n, d in numbered if d["action"] != "analysis"]
    drift_windows = (summary.get("drift") or {}).get("windows") or []
    alerts = [(w["t_start_s"], w["t_end_s"]) for w in drift_windows if w.get("alert")]
    focus = focus_end_s(decisions, duration_s)
    svg = figures.share_figure(tl, shadow, names, decisions, marks, duration_s, alerts, focus)
    rows = [
        [
            str(n),
            f'<span class="tag" style="background:'
            f'{figures.DECISION_COLOURS.get(d["action"], "#999")}">{esc(d["action"])}</span>',
            minutes(d["t_s"]),
            f"{d['weight']:g}%",
            esc(release_version(summary, d.get("release", 1))),
            esc(d["reason"]),
        ]
        for n, d in marks
    ]
    table = (
        html_table(
            ["#", "action", "t (min)", "weight", "version", "reason"], rows, left={0, 1, 4, 5}
        )
        if rows
        else _muted("No routing decisions.")
    )
    focus_text = (
        f" The rollout settled by {minutes(focus)} min: the left panel shows it, the right "
        "panel the whole run (shaded: the part on the left)."
        if focus is not None
        else ""
    )
    return (
        _figure(
            svg,
            "Solid: share of requests per version; dotted: mirrored (shadow) copies per "
            "request, which users never see; dashed: the candidate weight the policy set; "
            "dotted verticals: routing decisions, numbered as in the table and the decision "
            "trace; markers at the bottom: analyses (▲ pass, ▼ fail, ● inconclusive, · skipped)"
            + ("; purple bands: drift alerts." if alerts else ".")
            + focus_text,
        )
        + table
    )


def latency(summary: dict[str, Any], tl: pl.DataFrame, names: Sequence[str]) -> str:
    budget = summary["scenario"]["settings"]["serving"]["budget_ms"]
    img = figures.latency_figure(tl, names, budget)
    rows = []
    for name, v in summary["versions"].items():
        lat = v["latency_ms"]
        model = v.get("model_latency_ms") or {}
        headroom = None if lat["p99"] is None else budget - lat["p99"]
        rows.append(
            [
                esc(name),
                fmt(lat["p50"]),
                fmt(lat["p95"]),
                fmt(lat["p99"]),
                fmt(lat["mean"]),
                fmt(model.get("p50")),
                fmt(model.get("p95")),
                fmt(model.get("p99")),
                f'<span class="{"bad" if headroom is not None and headroom < 0 else "ok"}">'
                f"{fmt(headroom)}</span>",
                pct(v["slo_under_budget"]),
                pct(v["timeout_rate"]),
                pct(v["error_rate"]),
                fmt(v["fallback"]),
            ]
        )
    head = [
        "version",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "mean ms",
        "model p50 ms",
        "model p95 ms",
        "model p99 ms",
        "p99 headroom ms",
        "under budget",
        "timeouts",
        "errors",
        "fallbacks",
    ]
    return (
        _figure(img)
        + html_table(head, rows)
        + _muted(
            f"Exact order statistics of every request's latency; budget {budget:g} ms. "
            "A cache hit costs the hit latency, so when hits dominate p50 shows the cache, "
            "not the model: the model columns (and the dashed lines) are the percentiles of "
            "the requests the version's model answered (cache misses served at the first "
            "attempt: queue wait plus service). The figure shows p50 and p99 per time bucket."
        )
    )


def cache(summary: dict[str, Any], tl: pl.DataFrame, names: Sequence[str]) -> str:
    c = summary["cache"]
    settings = summary["scenario"]["settings"]["cache"]
    if not c.get("enabled"):
        return _muted("The cache is disabled in this scenario.")
    flushes = c.get("flush_times_s", [])
    img = figures.cache_figure(tl, names, flushes)
    counters = html_table(
        [
            "invalidation",
            "hit rate",
            "hits",
            "misses",
            "expired",
            "stale serves",
            "evictions",
            "flushes",
        ],
        [
            [
                esc(settings["invalidation"]),
                pct(c.get("hit_rate")),
                fmt(c.get("hits")),
                fmt(c.get("misses")),
                fmt(c.get("expired")),
                fmt(c.get("stale_serves")),
                fmt(c.get("evictions")),
                fmt(c.get("flushes")),
            ]
        ],
    )
    if flushes:
        shown = ", ".join(minutes(t) for t in flushes[:50])
        more = f" and {len(flushes) - 50} more" if len(flushes) > 50 else ""
        flush_text = _muted(f"Flushes (invalidation events) at {shown}{more} min.")
    else:
        flush_text = _muted("No cache flushes (invalidation events) in this run.")
    return _figure(img) + counters + flush_text


def engagement(summary: dict[str, Any]) -> str:
    img = figures.ctr_figure(summary["versions"])
    rows = []
    for name, v in summary["versions"].items():
        e = v["quality"]["engagement"]
        lift = e["ctr_vs_baseline"]
        rows.append(
            [
                esc(name),
                fmt(v["requests"]),
                pct(v["ctr"]) + ci_pct(v["ctr_ci95"]),
                "–" if lift is None else pp(lift["difference"]) + ci_pp(lift["difference_ci95"]),
                "–"
                if lift is None
                else pct(lift["relative_lift"], 1) + ci_pct(lift["relative_lift_ci95"], 1),
                fmt(e["sessions"]),
                fmt(e["clicks_per_session"]) + ci_num(e["clicks_per_session_ci95"]),
                pct(v["abandon_rate"]) + ci_pct(e["abandon_rate_ci95"]),
                pct(e["abandoned_sessions_fraction"]),
            ]
        )
    head = [
        "version",
        "requests",
        "CTR [95% CI]",
        "CTR − baseline",
        "relative lift",
        "sessions",
        "clicks / session",
        "abandoned requests",
        "abandoned sessions",
    ]
    return (
        _figure(img)
        + html_table(head, rows)
        + _muted(
            "CTR: Wilson 95% intervals; difference and lift against the baseline: delta-method "
            "95% intervals; clicks per session: normal 95% interval over sessions. A list "
            "slower than the abandonment threshold may be abandoned unseen."
        )
    )


def _slope(cal: dict[str, Any]) -> str:
    """The slope with its interval; "not measured" (with the interval) when the summary
    left it out (see ``reports.quality.SLOPE_MAX_CI_WIDTH``), "–" without requests."""
    slope, interval = cal.get("slope"), ci_num(cal.get("slope_ci95"), 2)
    if slope is None:
        return "not measured" + interval if interval else "–"
    return f"{slope:.2f}" + interval


def calibration(summary: dict[str, Any]) -> str:
    img = figures.reliability_figure(summary["versions"])
    rows = []
    bin_rows = []
    warnings: list[str] = []
    for name, v in summary["versions"].items():
        cal = v["quality"]["calibration"]
        rows.append(
            [
                esc(name),
                fmt(cal["requests"]),
                fmt(cal["ece"]),
                fmt(cal.get("ece_equal_mass")),
                _slope(cal),
                fmt(cal.get("intercept"), 3),
                pct(cal["mean_predicted"]),
                pct(cal["observed_rate"]),
            ]
        )
        warnings += [f"<b>{esc(name)}</b>: {esc(w)}" for w in cal.get("warnings", [])]
        for b in cal["bins"]:
            bin_rows.append(
                [
                    esc(name),
                    f"({b['lower']:.3f}, {b['upper']:.3f}]",
                    fmt(b["count"]),
                    pct(b["mean_predicted"]),
                    pct(b["observed_rate"]),
                ]
            )
    head = [
        "version",
        "requests judged",
        "ECE (15 equal-width bins)",
        "ECE (10 equal-mass bins)",
        "slope [95% CI]",
        "intercept",
        "mean predicted",
        "observed rate",
    ]
    bins = html_table(
        ["version", "bin (15 equal-width)", "requests", "mean predicted", "observed"],
        bin_rows,
        left=2,
    )
    warning_list = (
        '<ul class="warnings">' + "".join(f'<li class="bad">{w}</li>' for w in warnings) + "</ul>"
        if warnings
        else ""
    )
    return (
        warning_list
        + _figure(img)
        + html_table(head, rows)
        + bins
        + _muted(
            "Predicted P(click on the list) of the serving version (its click calibrator on "
            "features of the list, see Model provenance) against observed clicks, on requests "
            "whose list the version served and the user did not abandon. ECE = Σ_b |B_b|/n · "
            "|mean predicted − observed rate|, over 15 equal-width bins (only non-empty bins "
            "listed) and over 10 equal-mass bins (edges at the predictions' quantiles), which "
            "stay informative when all predictions are small. Slope and intercept: logistic "
            "recalibration logit P(click) = intercept + slope · logit(predicted); calibrated "
            "predictions have slope 1 and intercept 0, a slope below 1 means too extreme, "
            "at or below 0 that higher predictions get fewer clicks. The diagram uses the "
            "equal-mass bins, 95% Wilson intervals."
        )
    )


def diversity(summary: dict[str, Any]) -> str:
    rows = []
    for name, v in summary["versions"].items():
        d = v["quality"]["diversity"]
        full = d["if_shown_to_all_traffic"]
        rows.append(
            [
                esc(name),
                fmt(d["lists"]),
                fmt(d["impressions"]),
                fmt(d["intra_list_diversity"]),
                pct(d["catalogue_coverage"], 1),
                fmt(d["exposure_gini"], 3),
                fmt(d["novelty_bits"], 3),
                fmt(d["average_recommended_popularity"], 4),
                pct(full["catalogue_coverage"], 1),
                fmt(full["exposure_gini"], 3),
            ]
        )
    head = [
        "version",
        "users served",
        "lists shown",
        "intra-list diversity",
        "coverage",
        "exposure Gini",
        "novelty (bits)",
        "avg. popularity",
        "coverage, all traffic",
        "Gini, all traffic",
    ]
    return html_table(head, rows) + _muted(
        "Over the lists each version served, weighted by requests. Intra-list diversity: mean "
        "pairwise (1 − cosine) of the true world's item factors (one taste space for every "
        "version). Coverage: distinct items shown / catalogue. Gini of item exposure over the "
        "catalogue (0 equal, 1 all on one item). Novelty: mean −log2 popularity share (add-one "
        "smoothed); average popularity in users per item; popularity counted in the history "
        "before time zero. "
        "Coverage and Gini grow with the number of users served, so the last two columns "
        "score each version's lists for every user in the traffic, which compares versions "
        "at equal exposure."
    )


def stability(summary: dict[str, Any]) -> str:
    rows = []
    for name, v in summary["versions"].items():
        s = v["quality"]["stability"]
        if s is None:
            continue
        rows.append(
            [
                esc(name),
                esc(s["against"]),
                fmt(s["users"]),
                fmt(s["jaccard_at_k"], 3),
                fmt(s["rbo"], 3),
                pct(s["identical_lists"], 1),
            ]
        )
    if not rows:
        return _muted("Only the baseline ran; there is nothing to compare its lists with.")
    k = next(
        v["quality"]["stability"]["k"]
        for v in summary["versions"].values()
        if v["quality"]["stability"] is not None
    )
    head = ["version", "against", "users", f"Jaccard@{k}", "RBO (p = 0.9)", "identical lists"]
    return html_table(head, rows, left=2) + _muted(
        f"Each version's top-{k} list against the baseline's for the same user, averaged over "
        "every user in the traffic. Jaccard@K: shared items / items in either list. RBO: "
        "rank-biased overlap, extrapolated, p = 0.9 (top ranks weigh most); 1 = same ranking."
    )


def _segment_rows(seg: dict[str, Any], names: Sequence[str]) -> list[list[str]]:
    rows = []
    for group, cell in seg["by_segment"].items():
        row = [
            f'{esc(group)}<div class="nums">{esc(seg["rules"][group])}</div>',
            fmt(cell["users"]),
            fmt(cell["requests"]),
        ]
        for name in names:
            c = cell["versions"].get(name)
            row.append("–" if c is None else pct(c["ctr"]) + ci_pct(c["ctr_ci95"]))
        d = cell["candidate_vs_baseline"]
        row.append("–" if d is None else pp(d["difference"]) + ci_pp(d["difference_ci95"]))
        rows.append(row)
    return rows


def _tenure(summary: dict[str, Any], names: Sequence[str]) -> str:
    """New users (nothing before the run) against returning ones, if the summary has it."""
    tenure = summary["segments"].get("tenure")
    if not tenure or not tenure.get("by_segment"):
        return ""
    head = [
        "users",
        "users in traffic",
        "requests",
        *[f"CTR {esc(n)}" for n in names],
        f"CTR {esc(tenure['candidate'])} − {esc(tenure['baseline'])}",
    ]
    return (
        "<h3>New and returning users</h3>"
        + html_table(head, _segment_rows(tenure, names))
        + _muted(esc(tenure.get("basis", "")))
    )


def segments(summary: dict[str, Any], names: Sequence[str]) -> str:
    seg = summary["segments"]
    if not seg["by_segment"]:
        return _muted("No requests, so no segments.")
    img = figures.segments_figure(seg, names)
    rows = _segment_rows(seg, names)
    head = [
        "segment (history length)",
        "users",
        "requests",
        *[f"CTR {esc(n)}" for n in names],
        f"CTR {esc(seg['candidate'])} − {esc(seg['baseline'])}",
    ]
    worst = seg["worst"]
    if worst is None:
        worst_text = _muted("The candidate served no segment, so there is no segment delta.")
    else:
        worst_text = (
            f"<p>Lowest CTR difference for <b>{esc(seg['candidate'])}</b> against "
            f"{esc(seg['baseline'])}: <b>{esc(worst['segment'])}</b> users, "
            f"{pp(worst['difference'])}{ci_pp(worst['difference_ci95'])}; "
            f"{verdict_html(worst['difference_ci95'])}.</p>"
        )
    return (
        worst_text
        + html_table(head, rows)
        + _tenure(summary, names)
        + _figure(img)
        + _muted(
            "Segments by history length (interactions before time zero), as rollout targeting "
            "defines them: cold < 5, heavy ≥ the 75th percentile of the others, light in "
            "between. CTR by assigned version with Wilson 95% intervals; the difference has a "
            "normal 95% interval per segment, not adjusted for looking at several segments."
        )
    )


def drift(summary: dict[str, Any]) -> str:
    data = summary.get("drift")
    if not data:
        return _muted("No drift measured in this run.")
    labels = {
        "item_popularity": "item popularity (training popularity of consumed items)",
        "user_activity": "user activity (history length of requesting users)",
    }
    threshold = data.get("alert_threshold_psi", 0.2)
    rows = []
    for key, label in labels.items():
        d = data.get(key)
        if d is None:
            continue
        status = wording.drift_status(d.get("psi"), threshold, d.get("ks_p_value"))
        rows.append(
            [
                esc(label),
                fmt(d.get("psi"), 3),
                fmt(d.get("ks_statistic"), 3),
                esc(wording.p_value_text(d.get("ks_p_value"))),
                fmt(d.get("live_samples")),
                f'<span class="bad">{status}</span>' if status == "alert" else esc(status),
            ]
        )
    table = html_table(["distribution", "PSI", "KS D", "KS p", "live samples", "status"], rows)
    windows = data.get("windows") or []
    alerts = [w for w in windows if w.get("alert")]
    figure = (
        _figure(
            figures.drift_figure(windows, threshold),
        )
        if len(windows) >= 2
        else ""
    )
    alert_text = (
        f"<p><b>{len(alerts)} drift alert(s)</b> (item-popularity PSI > {threshold:g}) at "
        + ", ".join(f"{minutes(w['t_start_s'])}–{minutes(w['t_end_s'])}" for w in alerts[:20])
        + " min; shaded on the rollout timeline.</p>"
        if alerts
        else _muted(f"No analysis window exceeds the alert threshold (PSI > {threshold:g}).")
    )
    return (
        alert_text
        + table
        + figure
        + _muted(
            "Training data (interactions before time zero) against live traffic. PSI over 10 "
            "quantile bins of the reference, ε = 1e-4 (< 0.1 stable, 0.1–0.25 moderate, "
            "> 0.25 large); two-sample Kolmogorov–Smirnov statistic D and p-value. Status: "
            f"alert when PSI > {threshold:g}; small shift when PSI is below that but KS "
            "p < 0.01 (with tens of thousands of samples KS flags even tiny shifts; PSI says "
            "how large they are); ok otherwise."
        )
    )


def _origin_text(model: dict[str, Any]) -> str:
    """Where a version came from, in a few words (see ``model.source`` in summary.json)."""
    source = model.get("source", "lab")
    provenance = model.get("provenance") or {}
    if source == "lab":
        return f"lab, {model['registry_id']}" if model.get("registry_id") else "lab"
    where = provenance.get("plugin") if source == "plugin" else provenance.get("path")
    text = f"{source}: {where}"
    coverage = model.get("coverage")
    if coverage is not None:
        text += f" ({coverage['share']:.1%} of traffic users)"
    return text


def provenance(summary: dict[str, Any]) -> str:
    rows = []
    for name, v in summary["versions"].items():
        m = v["model"]
        rows.append(
            [
                esc(name),
                esc(v["role"]),
                esc(m["algorithm"]),
                esc(_origin_text(m)),
                esc(m["parent"] or "–"),
                esc(m["update"] or "–"),
                fmt(m["factors"]),
                fmt(m["training_s"]),
                _calibrator_text(m.get("calibration")),
                fmt(m["popularity_fallback_users"]),
            ]
        )
    head = [
        "version",
        "role",
        "algorithm",
        "source",
        "parent",
        "update",
        "factors",
        "training s",
        "click calibration",
        "popularity-fallback users",
    ]
    return (
        html_table(head, rows, left={0, 1, 2, 3, 4, 5, 8})
        + _muted(
            "Source: lab (an implicit model the lab built, in this run or loaded from the "
            "registry: its registry id when it has one), topk, embeddings or plugin (built by "
            "another system: the file or the plugin, and the share of traffic users it covers; "
            "the others got its fallback). "
        )
        + _muted(
            "Click calibration: P(click | examined) = sigmoid(intercept + Σ weight · feature) of a "
            "listed item, with features that mean the same for every user (raw ALS scores do "
            "not): z, the item's score against the user's score distribution over the catalogue; "
            "log(1 + rank in the list); log(1 + the item's popularity rank); no history (the "
            "popularity list); log history, log(1 + the user's interactions the version learnt "
            "from); log σ, the spread of the user's scores over the catalogue; and z times "
            "each of those two, so that z weighs by how much the version knows of the user. "
            "Fitted "
            "on validation feedback before the run, or taken over from the parent. "
            "Popularity-fallback users: traffic users the version knows no history for; they get "
            "the popularity list."
        )
    )


_FEATURE_LABELS = {
    "within_user_score": "z",
    "log_rank": "log rank",
    "log_popularity_rank": "log popularity rank",
    "no_history": "no history",
    "log_history": "log history",
    "within_user_score_x_log_history": "z × log history",
    "log_score_spread": "log σ",
    "within_user_score_x_log_score_spread": "z × log σ",
}


def _calibrator_text(calibration: dict[str, Any] | None) -> str:
    if not calibration:
        return "–"
    terms = " ".join(
        f"{w:+.3g}·{esc(_FEATURE_LABELS.get(name, name))}"
        for name, w in calibration["weights"].items()
    )
    return (
        f"{calibration['intercept']:+.3g} {terms}"
        f'<div class="nums">{esc(calibration["fitted_on"])}</div>'
    )


def decision_trace(summary: dict[str, Any]) -> str:
    decisions = summary["decisions"]
    if not decisions:
        return _muted("No decisions were taken.")
    rows = []
    for n, d in numbered_decisions(decisions):
        numbers = " · ".join(f"{esc(k)} {fmt(v)}" for k, v in d["numbers"].items())
        rows.append(
            [
                str(n),
                esc(d["action"]),
                esc(release_version(summary, d.get("release", 1))),
                esc(d["reason"]) + (f'<div class="nums">{numbers}</div>' if numbers else ""),
                minutes(d["t_s"]),
                str(d["step"]),
                f"{d['weight']:g}%",
            ]
        )
    return html_table(
        ["#", "action", "version", "reason (numbers it saw)", "t (min)", "step", "weight"],
        rows,
        left=4,
    )


def scenario(summary: dict[str, Any]) -> str:
    settings = summary["scenario"]["settings"]
    return (
        "<details><summary>The scenario as run, every default filled in</summary>"
        f"<pre>{esc(json.dumps(settings, indent=2))}</pre></details>"
    )


def data_section(summary: dict[str, Any]) -> str:
    """Where the traffic came from; for replayed logs, every input row kept or skipped."""
    data = summary.get("data", {})
    facts = [
        ["source", esc(data.get("source", "–"))],
        ["users", fmt(data.get("users"))],
        ["items", fmt(data.get("items"))],
        ["interactions before the run", fmt(data.get("history_events"))],
    ]
    if "path" in data:
        facts.append(["log", esc(data["path"])])
        facts.append(["requests replayed", fmt(data.get("replayed_requests"))])
    body = html_table(["", "value"], facts, left=2)
    accounting = data.get("accounting")
    if accounting:
        rows = [["input rows", fmt(accounting["input_rows"])], ["kept", fmt(accounting["kept"])]]
        rows += [[f"skipped: {esc(k)}", fmt(v)] for k, v in accounting.get("skipped", {}).items()]
        body += html_table(["row accounting", "rows"], rows, left=1)
    windows = data.get("windows")
    if windows:
        rows = [
            [esc(name), esc(w.get("window", "")), fmt(w.get("events"))]
            for name, w in windows.items()
            if isinstance(w, dict)
        ]
        body += html_table(["window", "time span", "events"], rows, left=2)
        replay = windows.get("replay", {})
        if isinstance(replay, dict) and "cold_users" in replay:
            body += _muted(
                f"Users first seen in the replay window: {fmt(replay['cold_users'])}; items: "
                f"{fmt(replay['cold_items'])} (they are served the popularity list)."
            )
    return body


def render_sections(
    summary: dict[str, Any],
    verdict: dict[str, Any] | None,
    tl: pl.DataFrame,
    duration_s: float,
    shadow: pl.DataFrame,
) -> list[Section]:
    """Every section of :data:`SECTIONS`, in order."""
    names = list(summary["versions"])
    bodies = {
        "expectations": lambda: expectations(verdict),
        "versions": lambda: versions_table(summary),
        "timeline": lambda: timeline(summary, tl, shadow, names, duration_s),
        "analyses": lambda: analysis_grid(summary, numbered_decisions(summary["decisions"])),
        "latency": lambda: latency(summary, tl, names),
        "cache": lambda: cache(summary, tl, names),
        "engagement": lambda: engagement(summary),
        "calibration": lambda: calibration(summary),
        "diversity": lambda: diversity(summary),
        "stability": lambda: stability(summary),
        "segments": lambda: segments(summary, names),
        "drift": lambda: drift(summary),
        "provenance": lambda: provenance(summary),
        "data": lambda: data_section(summary),
        "decisions": lambda: decision_trace(summary),
        "scenario": lambda: scenario(summary),
    }
    return [Section(anchor, title, bodies[anchor]()) for anchor, title in SECTIONS]
