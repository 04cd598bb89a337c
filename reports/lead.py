"""The report's first block: the decision, its reason, the next step and, for a rollout
still undecided, how long the gate would need (``summary["decision"]``, built by
:mod:`reports.decision`)."""

from __future__ import annotations

import html
from typing import Any

from reports.page import table
from sim import wording

__all__ = ["decision_box"]


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _short(seconds: float | None) -> str:
    """A duration without "about"; beyond the horizon (None): "over a week"."""
    if seconds is None:
        return "over a week"
    return wording.about_duration(seconds).removeprefix("about ")


def _projection_table(projection: dict[str, Any]) -> str:
    rows = []
    for w in projection["weights"]:
        low, high = w["quartiles_s"]
        rows.append(
            [
                f"{w['weight']:g} %",
                _esc(_short(w["median_s"])),
                f"{_esc(_short(low))} – {_esc(_short(high))}",
                f"{100 * w['decided_share']:.0f} %",
            ]
        )
    head = [
        "candidate weight",
        "median time to decision",
        "middle half of runs",
        "runs deciding within a week",
    ]
    return table(head, rows, left=0)


def decision_box(summary: dict[str, Any]) -> str:
    """The decision block, or '' for a summary written before it existed."""
    decision = summary.get("decision")
    if not decision:
        return ""
    weight = summary["rollout"].get("final_weight")
    where = (
        f" — {_esc(decision['candidate'])} at {weight:g} % of traffic"
        if isinstance(weight, int | float)
        else ""
    )
    parts = [
        f'<div class="verdict">{_esc(decision["verdict"])}{where}</div>',
        f"<p><b>Why:</b> {_esc(decision['reason'])}</p>",
        f"<p><b>Next:</b> {_esc(decision['action'])}</p>",
    ]
    projection = decision.get("projection")
    if projection is not None and decision.get("projected"):
        parts.append(
            f"<p><b>Projected time to decision:</b> {_esc(decision['projected'])}</p>"
            + _projection_table(projection)
            + '<p class="muted">'
            + _esc(
                f"If the candidate's true CTR lift is the gate's MDE "
                f"({100 * projection['effect_relative']:.3g} %, "
                f"{100 * projection['effect_abs']:.2f} pp on a baseline CTR of "
                f"{100 * projection['baseline_ctr']:.2f} %) and traffic goes on as in this run: "
                "each arm's variance is fitted as a / t + b on this run's "
                f"{projection['variance_model']['fitted_on']} analyses (b: the floor set by a "
                "fixed population of users who differ in how much they click), scaled to the "
                "weight, and the gate's mSPRT is simulated at its analysis interval on 4,000 "
                "paths; times from the candidate's first exposure."
            )
            + "</p>"
        )
    return f'<div class="decision tone-{_esc(decision["tone"])}">{"".join(parts)}</div>'
