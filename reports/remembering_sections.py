"""The report's fragment on remembering users (``[users] model = "remembering"``), appended
to *Engagement* only when the summary has a ``remembering`` block: per version satisfaction,
retention, returns, list changes inside sessions, dwell time and conversions with their
intervals; the candidate's retention against the baseline's; and the users a rollback caught
mid-session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from reports.page import table
from reports.sections import ci_num, ci_pct, esc, fmt, pct, pp
from sim import wording
from sim.metrics.retention import newcombe_difference

__all__ = ["REMEMBERING_ADDITIONS", "remembering_users"]


def _versions_table(versions: dict[str, Any]) -> str:
    head = ("version", "users exposed", "retained", "return rate", "satisfaction",
            "list change", "abrupt changes", "dwell s / click", "conversions / click")  # fmt: skip
    rows = [
        [
            esc(name),
            fmt(v["users_exposed"]),
            pct(v["retained"]) + ci_pct(v["retained_ci95"]),
            pct(v["return_rate"]) + ci_pct(v["return_rate_ci95"]),
            fmt(v["satisfaction"], 3) + ci_num(v["satisfaction_ci95"]),
            fmt(v["list_change"], 3),
            fmt(v["abrupt_changes"]),
            fmt(v["dwell_s_per_click"], 3) + ci_num(v["dwell_s_per_click_ci95"]),
            pct(v["conversion_rate"]) + ci_pct(v["conversion_rate_ci95"]),
        ]
        for name, v in versions.items()
    ]
    return table(head, rows)


def _retention_sentence(summary: dict[str, Any], block: dict[str, Any]) -> str:
    rollout = summary["scenario"]["settings"]["rollout"]
    base, cand = (
        block["versions"].get(rollout["baseline"]),
        block["versions"].get(rollout["candidate"]),
    )
    if not base or not cand or not base["users_exposed"] or not cand["users_exposed"]:
        return ""
    diff = newcombe_difference(
        base["retained_users"], base["users_exposed"], cand["retained_users"], cand["users_exposed"]
    )
    phrase = wording.comparison_phrase(diff.low, diff.high, "the baseline's")
    return (
        f"<p>Retention of the users exposed to the candidate is {esc(phrase)}: "
        f"{pp(diff.estimate)} (95% CI {pp(diff.low)} to {pp(diff.high)}, Newcombe).</p>"
    )


def _rollback_paragraph(summary: dict[str, Any], caught: dict[str, Any] | None) -> str:
    if not caught:
        return ""
    mode = summary["scenario"]["settings"]["rollout"].get("on_rollback_sessions", "switch")
    how = (
        "finished them on the candidate (drain)"
        if mode == "drain"
        else ("moved them to the baseline at once (switch)")
    )
    return (
        f"<p>The rollback at {fmt(caught['rollback_at_s'])} s caught "
        f"{esc(wording.count_noun(caught['users'], 'user'))} mid-session on the candidate; "
        f"the rollout {how}. Their satisfaction at the end: "
        f"{fmt(caught['satisfaction_end'], 3)}{ci_num(caught['satisfaction_end_ci95'])}; "
        f"retained: {pct(caught['retained'])}{ci_pct(caught['retained_ci95'])}; in the rest "
        f"of the interrupted sessions, mean latency {fmt(caught['latency_ms'], 3)} ms and list "
        f"change {fmt(caught['list_change'], 3)}. Compare with the same scenario and seed "
        "under the other <code>on_rollback_sessions</code> (README, Users who remember).</p>"
    )


def remembering_users(summary: dict[str, Any]) -> str:
    """The fragment, or "" when the users were the memoryless cascade."""
    block = summary.get("remembering")
    if not block:
        return ""
    left = wording.count_noun(block["users_left"], "user")
    sent = wording.count_noun(block["requests_not_sent"], "request")
    return (
        "<h3>Users who remember</h3>"
        f"<p>{esc(left)} of {fmt(block['users'])} left for good; their later {esc(sent)} "
        "were never sent. Satisfaction (0–1) after each request, retention (share of the "
        "users exposed to a version who had not left by the end), return rate at session "
        "starts, list change (1 − overlap with the session's previous list), dwell time and "
        "conversions per click, by assigned version with 95% intervals.</p>"
        + _versions_table(block["versions"])
        + _retention_sentence(summary, block)
        + _rollback_paragraph(summary, block.get("at_rollback"))
    )


REMEMBERING_ADDITIONS: dict[str, Sequence[Callable[[dict[str, Any]], str]]] = {
    "engagement": (remembering_users,),
}
