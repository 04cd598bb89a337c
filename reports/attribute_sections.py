"""Report fragments for the attribute tables (``[attributes]``; :mod:`reports.attributes`).

* *Diversity*: per item attribute, each version's Steck calibration, diversity and value
  coverage; the provider-fairness table (exposure share against catalogue and popularity
  share, the candidate's change);
* *Segments*: per user attribute, CTR by group and version, the candidate's difference with
  its plain and Bonferroni intervals, and the worst group;
* *Data*: each table's row accounting and the columns left out.

Every string from the run or the tables goes through :func:`reports.sections.esc`.
"""

from __future__ import annotations

from typing import Any

from reports.page import table as html_table
from reports.sections import ci_pct, ci_pp, esc, fmt, pct, pp

__all__ = ["attribute_accounting", "attribute_quality", "provider_fairness", "user_groups"]

# Groups listed per table before the rest is summarised in one line.
MAX_GROUP_ROWS = 40


def _muted(text: str) -> str:
    return f'<p class="muted">{text}</p>'


def _ratio(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}×"


def attribute_quality(summary: dict[str, Any]) -> str:
    """Steck KL, diversity and coverage of every item attribute, per version."""
    rows = []
    for name, version in summary["versions"].items():
        for attribute, block in ((version.get("quality") or {}).get("by_attribute") or {}).items():
            rows.append(
                [
                    esc(attribute),
                    esc(name),
                    fmt(block["lists"]),
                    fmt(block["kl"]),
                    fmt(block["intra_list_diversity"]),
                    f"{fmt(block['levels_shown'])} / {fmt(block['levels'])}",
                ]
            )
    if not rows:
        return ""
    rows.sort(key=lambda row: row[0])
    head = ["item attribute", "version", "users", "Steck KL", "diversity", "values shown"]
    return (
        "<h3>By item attribute</h3>"
        + html_table(head, rows, left=2)
        + _muted(
            "Over the lists each version served, weighted by requests. Steck KL: KL(p ‖ q̃) in "
            "nats of the attribute's distribution in the user's history (p) against the "
            "list's (q̃ = 0.99 q + 0.01 p); diversity: mean pairwise Jaccard distance of the "
            "items' values; values shown: distinct values in the lists / in the catalogue."
        )
    )


def provider_fairness(summary: dict[str, Any]) -> str:
    """Exposure share per provider group, per version, against catalogue and popularity."""
    block = (summary.get("fairness") or {}).get("providers")
    if not block:
        return ""
    names = list(block["versions"])
    rows = []
    for group, cell in list(block["groups"].items())[:MAX_GROUP_ROWS]:
        row = [
            esc(group),
            fmt(cell["items"]),
            pct(cell["catalogue_share"]),
            pct(cell["popularity_share"]),
        ]
        for name in names:
            v = cell["versions"].get(name)
            row.append(
                "–"
                if v is None
                else pct(v["exposure_share"]) + ci_pct(v["ci95"]) + f'<div class="nums">'
                f"{_ratio(v['to_catalogue'])} catalogue, {_ratio(v['to_popularity'])} "
                "popularity</div>"
            )
        change = cell["candidate_vs_baseline"]
        row.append(
            "–" if change is None else pp(change["difference"]) + ci_pp(change["difference_ci95"])
        )
        rows.append(row)
    head = [
        f"{esc(block['attribute'])} group",
        "items",
        "catalogue share",
        "popularity share",
        *[f"exposure {esc(n)}" for n in names],
        f"{esc(block['candidate'])} − {esc(block['baseline'])}",
    ]
    distances = "; ".join(
        f"{esc(n)}: {fmt(s['tv_to_catalogue'], 3)} from the catalogue, "
        f"{fmt(s['tv_to_popularity'], 3)} from popularity"
        for n, s in block["versions"].items()
    )
    most = block.get("most_changed")
    moved = (
        ""
        if most is None
        else f" Largest change: <b>{esc(most['group'])}</b>, {pp(most['difference'])}"
        f"{ci_pp(most['difference_ci95'])}, {esc(most['verdict'])}."
    )
    more = len(block["groups"]) - MAX_GROUP_ROWS
    return (
        f"<h3>Provider fairness by {esc(block['attribute'])}</h3>"
        + f"<p>Total variation distance of the exposure shares: {distances}.{moved}</p>"
        + html_table(head, rows)
        + (_muted(f"{more:,} more groups in summary.json.") if more > 0 else "")
        + _muted(
            "Exposure share: the group's share of the list slots a version served (weighted by "
            "requests; 95% interval clustered by user). Against its share of the catalogue "
            "(items) and of past demand (users per item before the run): 1.00× is exposure "
            "in proportion. The last column compares both versions' lists for the same users, "
            "those the candidate served (paired)."
        )
    )


def user_groups(summary: dict[str, Any]) -> str:
    """CTR by user group and version for every user attribute, with the worst group."""
    blocks = (summary.get("segments") or {}).get("by_attribute") or {}
    out = []
    for attribute, block in blocks.items():
        names = sorted({n for cell in block["by_group"].values() for n in cell["versions"]})
        rows = []
        for group, cell in list(block["by_group"].items())[:MAX_GROUP_ROWS]:
            row = [esc(group), fmt(cell["users"]), pct(cell["users_on_candidate"])]
            for name in names:
                v = cell["versions"].get(name)
                row.append("–" if v is None else pct(v["ctr"]) + ci_pct(v["ctr_ci95"]))
            d = cell["candidate_vs_baseline"]
            row.append(
                "–"
                if d is None
                else pp(d["difference"])
                + ci_pp(d["difference_ci95"])
                + f'<div class="nums">adjusted{ci_pp(d["difference_ci95_adjusted"])}</div>'
            )
            rows.append(row)
        head = [
            esc(attribute),
            "users",
            "on the candidate",
            *[f"CTR {esc(n)}" for n in names],
            f"CTR {esc(block['candidate'])} − {esc(block['baseline'])}",
        ]
        worst = block.get("worst")
        sentence = (
            _muted("No group saw both versions.")
            if worst is None
            else f"<p>Lowest difference: <b>{esc(worst['group'])}</b>, "
            f"{pp(worst['difference'])}{ci_pp(worst['difference_ci95_adjusted'])}; "
            f"{esc(worst['verdict'])}.</p>"
        )
        out.append(f"<h3>By user {esc(attribute)}</h3>" + sentence + html_table(head, rows))
    if not out:
        return ""
    return "".join(out) + _muted(
        "Groups from the user attribute table. CTR by assigned version with 95% intervals "
        "clustered by user; the difference's adjusted interval is Bonferroni-corrected for the "
        "groups compared (each at 1 − 0.05 / groups)."
    )


def attribute_accounting(summary: dict[str, Any]) -> str:
    """Row accounting of the attribute tables and the columns they were not grouped by."""
    tables = (summary.get("data") or {}).get("attributes") or {}
    rows = []
    for kind, table in tables.items():
        if table is None:
            continue
        acc = table["accounting"]
        skipped = ", ".join(f"{esc(k)} {fmt(v)}" for k, v in acc["skipped"].items()) or "none"
        ignored = "; ".join(f"{esc(k)}: {esc(v)}" for k, v in table["ignored"].items()) or "–"
        rows.append(
            [
                esc(kind),
                esc(table["path"]),
                fmt(acc["input_rows"]),
                fmt(acc["kept"]),
                skipped,
                fmt(table["ids_without_row"]),
                esc(", ".join(table["attributes"])),
                ignored,
            ]
        )
    if not rows:
        return ""
    head = [
        "table",
        "file",
        "rows",
        "kept",
        "skipped",
        "ids without a row",
        "grouped by",
        "not grouped by",
    ]
    return "<h3>Attribute tables</h3>" + html_table(head, rows, left=(0, 1, 4, 6, 7))
