"""Report fragments for the finer quality numbers of ``summary.json``.

Each function renders one addition from the summary to an HTML fragment that
:func:`reports.html.render_report` appends to the section it belongs to: hit@K and the
per-window CTR difference to *Engagement*, per-window ECE and Steck's genre calibration to
*Calibration*, genre diversity to *Diversity*, the seed-noise floor and version-change
churn to *Stability*, item popularity buckets and the worst group to *Segments*.  Every
string from the run goes through :func:`reports.sections.esc`; no script, no figure.
Summaries written before these keys existed render without the additions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from reports.attribute_sections import (
    attribute_accounting,
    attribute_quality,
    provider_fairness,
    user_groups,
)
from reports.page import table as html_table
from reports.sections import ci_pct, ci_pp, esc, final_roles, fmt, pct, pp, verdict_html
from sim.wording import p_value_text

__all__ = ["ADDITIONS", "glance_items"]

# Windows listed in the per-window table before it is cut short.
MAX_WINDOW_ROWS = 48


def _muted(text: str) -> str:
    return f'<p class="muted">{text}</p>'


def _quality(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, v.get("quality") or {}) for name, v in summary["versions"].items()]


# --- engagement ------------------------------------------------------------------------------


def hit_at_k(summary: dict[str, Any]) -> str:
    rows, basis, method = [], None, None
    for name, q in _quality(summary):
        hit = (q.get("engagement") or {}).get("hit_at_k")
        if hit is None:
            continue
        basis, method = hit["basis"], hit["method"]
        rows.append([esc(name), fmt(hit["requests"]), pct(hit["rate"]) + ci_pct(hit["ci95"])])
    if not rows:
        return ""
    k = next(
        q["engagement"]["hit_at_k"]["k"]
        for _, q in _quality(summary)
        if (q.get("engagement") or {}).get("hit_at_k")
    )
    interval = (
        "Wilson 95% intervals"
        if method == "observed"
        else "95% intervals of the mean hit probability over requests"
    )
    return (
        f"<h3>hit@{k}</h3>"
        + html_table(["version", "requests judged", f"hit@{k} [95% CI]"], rows)
        + _muted(f"By assigned version. {esc(basis)}; {interval}.")
    )


def window_deltas(summary: dict[str, Any]) -> str:
    windows = summary.get("windows") or {}
    delta = windows.get("candidate_vs_baseline")
    starts, ends = windows.get("t_start_s") or [], windows.get("t_end_s") or []
    if not delta or not starts:
        return ""
    names = list(summary["versions"])
    series = windows.get("versions") or {}
    rows = []
    for w, (t0, t1) in enumerate(zip(starts, ends, strict=True)):
        if w >= MAX_WINDOW_ROWS:
            break
        d = delta["difference"][w]
        row = [
            f"{w + 1}",
            "–" if t0 is None else f"{t0 / 60:.1f}–{t1 / 60:.1f}",
            "–" if d is None else pp(d) + ci_pp(delta["difference_ci95"][w]),
        ]
        for name in names:
            ece = (series.get(name) or {}).get("ece")
            row.append(fmt(ece[w]) if ece is not None else "–")
        rows.append(row)
    more = len(starts) - len(rows)
    head = [
        "window",
        "t (min)",
        f"CTR {esc(delta['candidate'])} − {esc(delta['against'])} [95% CI]",
        *[f"ECE {esc(n)}" for n in names],
    ]
    return (
        "<details><summary>Per analysis window: CTR difference and ECE</summary>"
        + html_table(head, rows, left=2)
        + _muted(
            "CTR by assigned version in each window with a normal 95% interval; ECE (15 "
            "equal-width bins) of each serving version's predictions in the window."
            + (f" {more} later windows not shown (see summary.json)." if more > 0 else "")
        )
        + "</details>"
    )


def _estimate_cell(estimate: dict[str, Any] | None) -> str:
    if estimate is None:
        return "–"
    return pct(estimate["value"]) + ci_pct(estimate["ci95"])


def _agreement_cell(agreement: dict[str, Any] | None) -> str:
    """IPS minus the direct value with the p-value of a zero difference, or '–'."""
    difference = (agreement or {}).get("ips_minus_direct") or {}
    if difference.get("difference") is None:
        return "–"
    p = difference.get("p_value")
    return pct(difference["difference"]) + ("" if p is None else f" (p = {esc(p_value_text(p))})")


def off_policy(summary: dict[str, Any]) -> str:
    """The log's own click rate beside the simulated one, and each version's off-policy
    estimates on the logged impressions."""
    block = summary.get("off_policy")
    if not block:
        return ""
    logged = block.get("logging_policy_mean_reward")
    excluded_log = (block.get("accounting") or {}).get("excluded") or {}
    rows = []
    for name, v in block["versions"].items():
        excluded = ", ".join(f"{esc(k)} {fmt(n)}" for k, n in v.get("excluded", {}).items() if n)
        rows.append(
            [
                esc(name),
                fmt(v.get("rows")),
                excluded or "–",
                _estimate_cell(v.get("replay")),
                _estimate_cell(v.get("ips")),
                _estimate_cell(v.get("snips")),
                fmt((v.get("ips") or {}).get("effective_n"), 3),
                *(
                    [_estimate_cell(v.get("direct")), _agreement_cell(v.get("agreement"))]
                    if block.get("click_model")
                    else []
                ),
            ]
        )
    slates = block.get("slates")
    unit = (
        f"expected clicks per slate ({fmt(slates['slates'])} slates of up to "
        f"{fmt(slates['positions'])} positions)"
        if slates
        else "click rate per impression"
    )
    dropped = ", ".join(f"{esc(k)} {fmt(n)}" for k, n in excluded_log.items() if n)
    return (
        "<h3>Logged clicks and off-policy estimates</h3>"
        + f"<p>CTR above is <b>simulated</b> by the click model on the replayed requests. The "
        f"log's own reward rate (logged CTR) is <b>{pct(logged)}</b> over {fmt(block['rows'])} "
        f"logged impressions of its logging policy.</p>"
        + html_table(
            [
                "version",
                "rows used",
                "rows without a target policy",
                "replay [95% CI]",
                "IPS [95% CI]",
                "SNIPS [95% CI]",
                "effective n (IPS)",
                *(
                    ["click model (direct) [95% CI]", "IPS − direct (p)"]
                    if block.get("click_model")
                    else []
                ),
            ],
            rows,
            left=3,
        )
        + _muted(
            (
                f"Estimates of each version's {esc(unit)} on the logged impressions. Target "
                f"policy: {esc(block['target_policy'])}. Rows where a version shows no list (or "
                "nothing at the logged position) have no target policy and are left out, "
                "counted per version. Normal intervals, or Wilson at the effective sample size "
                "where no weighted row was clicked."
                if block.get("target_policy")
                else f"The log has no logging propensities: no importance-weighted estimate, "
                f"only each version's {esc(unit)} under the click model the log fits."
            )
            + (f" Log rows of the replay window left out: {dropped}." if dropped else "")
        )
        + _logged(block.get("logged"))
        + _click_model(block.get("click_model"))
    )


def _logged(logged: dict[str, Any] | None) -> str:
    """The logging policy's engagement and exposure as the log records them."""
    if not logged:
        return ""
    fitted = any(c.get("click_model_ctr") is not None for c in logged["by_position"])
    rows = [
        [
            "all" if c is None else fmt(c["position"] + 1),
            fmt(cell["impressions"]),
            fmt(cell["clicks"]),
            pct(cell["ctr"]) + ci_pct(cell["ctr_ci95"]),
            *([pct(cell.get("click_model_ctr")) if c is not None else "–"] if fitted else []),
        ]
        for c, cell in [(None, logged), *((c, c) for c in logged["by_position"])]
    ]
    exposure = logged["exposure"]
    return (
        "<h3>Logging policy, from the log</h3>"
        + "<p>Exposure and engagement of the policy that wrote the log, read from its rows "
        "(what was shown, where, and what was clicked): the <b>logged</b> CTR, not simulated. "
        f"It showed {fmt(exposure['items_shown'])} of {fmt(exposure['catalogue_items'])} items "
        f"(catalogue coverage {pct(exposure['catalogue_coverage'])}, exposure Gini "
        f"{fmt(exposure['exposure_gini'], 3)})"
        + (
            f"; {fmt(logged['clicks_per_slate'], 4)} clicks per slate over "
            f"{fmt(logged['slates'])} slates."
            if logged.get("slates")
            else "."
        )
        + "</p>"
        + html_table(
            [
                "position",
                "impressions",
                "clicks",
                "logged CTR [95% CI]",
                *(["click model CTR (fitted)"] if fitted else []),
            ],
            rows,
        )
        + _muted(
            "Wilson intervals for 0/1 clicks. The fitted column is the mean of "
            "examination(position) × attractiveness(item) over the rows at that position: how "
            "closely the click model below reproduces the log."
            if fitted
            else "Wilson intervals for 0/1 clicks, normal intervals otherwise."
        )
    )


def _click_model(model: dict[str, Any] | None) -> str:
    """The position-based click model the slate log fits, with its fit."""
    if not model:
        return ""
    rows = [
        [
            fmt(k + 1),
            fmt(relative, 3) + ci_text,
            fmt(perplexity, 4),
            fmt(blind, 4),
        ]
        for k, (relative, ci_text, perplexity, blind) in enumerate(
            zip(
                model["examination_relative"],
                [f" [{fmt(lo, 3)}, {fmt(hi, 3)}]" for lo, hi in model["examination_relative_ci95"]],
                model["perplexity_by_position"],
                model["position_blind_perplexity_by_position"],
                strict=True,
            )
        )
    ]
    return (
        "<h3>Click model fitted from the log</h3>"
        + f"<p>Position-based model, P(click) = examination(position) × attractiveness(item), "
        f"fitted by EM on {fmt(model['rows'])} rows ({fmt(model['slates'])} slates; "
        f"{fmt(model['iterations'])} iterations, "
        f"{'converged' if model['converged'] else 'not converged'}). Against the "
        f"position-blind model (each item its own CTR): log-likelihood per row "
        f"{fmt(model['log_likelihood'], 4)} vs {fmt(model['position_blind_log_likelihood'], 4)}, "
        f"likelihood ratio {fmt(model['likelihood_ratio'], 4)} "
        f"(p = {esc(p_value_text(model['p_value']))}).</p>"
        + html_table(
            ["position", "examination vs the top [95% CI]", "perplexity", "position-blind"],
            rows,
        )
        + _muted(
            "Examination is identified relative to the top position; intervals are percentiles "
            f"of a bootstrap over slates ({fmt(model['bootstrap'])} replicates). Perplexity "
            "2^(−mean log₂ P(click outcome)) per position: 1 is a perfect prediction, 2 a coin. "
            "The direct column is each version's expected clicks per slate under this model, "
            "beside the importance-weighted estimates of the same quantity; IPS − direct is "
            "their difference with the p-value of a zero difference (z with the standard "
            "errors of both 95% intervals): a small p says the two roads disagree, so the "
            "click model or the propensities do not hold."
        )
    )


# --- calibration and diversity ---------------------------------------------------------------


def genre_calibration(summary: dict[str, Any]) -> str:
    rows, genres = [], None
    for name, q in _quality(summary):
        g = q.get("genre_calibration")
        if g is None:
            continue
        genres = g["genres"]
        rows.append([esc(name), fmt(g["lists"]), fmt(g["impressions"]), fmt(g["kl"], 3)])
    if not rows:
        return ""
    return (
        "<h3>Genre calibration (Steck)</h3>"
        + html_table(["version", "users judged", "lists shown", "KL(p ‖ q̃) nats"], rows)
        + _muted(
            "How far each list's genre mix is from the user's history: Steck's KL(p ‖ q̃), "
            "q̃ = 0.99 q + 0.01 p, p the genres of the user's history before time zero, q those "
            "of the list (0 = same proportions, at most 4.6). Request-weighted over the lists "
            f"each version served, users with a history. Genres: {esc(genres)}."
        )
    )


def genre_diversity(summary: dict[str, Any]) -> str:
    rows, genres = [], None
    for name, q in _quality(summary):
        d = q.get("diversity") or {}
        if "genre_intra_list_diversity" not in d:
            continue
        genres = d.get("genres")
        rows.append([esc(name), fmt(d["genre_intra_list_diversity"], 3)])
    if not rows:
        return ""
    return html_table(["version", "genre intra-list diversity"], rows) + _muted(
        "Mean pairwise Jaccard distance of the items' genre sets within a list (one "
        f"pseudo-genre per item: the share of pairs from different clusters). Genres: "
        f"{esc(genres)}."
    )


# --- stability -------------------------------------------------------------------------------


def noise_floor(summary: dict[str, Any]) -> str:
    rows, floor_name = [], None
    for name, q in _quality(summary):
        s = q.get("stability")
        if s is None or s.get("noise_floor") is None:
            continue
        f, rel = s["noise_floor"], s["relative_to_noise_floor"]
        floor_name = f["against"]
        rows.append(
            [
                esc(name),
                fmt(s["jaccard_at_k"], 3),
                fmt(f["jaccard_at_k"], 3) + _ci3(f.get("jaccard_at_k_ci95")),
                fmt(rel["jaccard_difference"], 3) + _ci3(rel["jaccard_difference_ci95"]),
                fmt(rel["change_ratio"], 3),
                fmt(s["rbo"], 3),
                fmt(f["rbo"], 3),
            ]
        )
    if not rows:
        return _muted(
            "No noise floor in this run (metrics.noise_floor = false, or only the baseline ran)."
        )
    warnings = sorted(
        {
            w
            for _, q in _quality(summary)
            for w in ((q.get("stability") or {}).get("noise_floor") or {}).get("warnings", [])
        }
    )
    warning_list = "".join(f'<p class="bad">Noise floor: {esc(w)}.</p>' for w in warnings)
    head = [
        "version",
        "Jaccard vs baseline",
        "Jaccard, noise floor [95% CI]",
        "difference [95% CI]",
        "change / noise",
        "RBO vs baseline",
        "RBO, noise floor",
    ]
    return (
        "<h3>Against the noise floor</h3>"
        + warning_list
        + html_table(head, rows)
        + _muted(
            f"Noise floor: the baseline retrained on the same data with another seed "
            f"({esc(floor_name)}) against the baseline — how far lists move from training "
            "noise alone. Difference: per-user paired mean of Jaccard(version) − "
            "Jaccard(floor); below 0 the version moves lists more than retraining noise. "
            "Change / noise = (1 − Jaccard) / (1 − Jaccard of the floor): 1 is as much change "
            "as seed noise."
        )
    )


def _ci3(ci: Sequence[Any] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f' <span class="ci">[{ci[0]:.3f}, {ci[1]:.3f}]</span>'


def churn(summary: dict[str, Any]) -> str:
    c = summary.get("churn")
    if not c:
        return ""
    if not c["users_changed"]:
        text = (
            f"No user's assigned version changed between consecutive requests "
            f"({fmt(c['users'])} users with at least two requests)."
        )
        return "<h3>Churn when a user's version changes</h3>" + _muted(text)
    rows = [
        [esc(p["from"]), esc(p["to"]), fmt(p["changes"]), pct(p["mean_churn"], 1)]
        for p in c["by_pair"]
    ]
    return (
        "<h3>Churn when a user's version changes</h3>"
        + f"<p>{pct(c['share_changed'], 1)} of the {fmt(c['users'])} users with at least two "
        f"requests saw their assigned version change ({fmt(c['changes'])} changes); on a "
        f"change, {pct(c['mean_churn'], 1)} of their list changed on average.</p>"
        + html_table(["from", "to", "changes", "mean list churn"], rows, left=2)
        + _muted(
            "Churn of one change = 1 − |A ∩ B| / max(|A|, |B|) of the user's lists under the "
            "old and the new version; averaged per user, then over users."
        )
    )


# --- segments --------------------------------------------------------------------------------


def popularity_buckets(summary: dict[str, Any]) -> str:
    block = (summary.get("segments") or {}).get("item_popularity")
    if not block:
        return ""
    names = list(summary["versions"])
    rows, hits = [], []
    for bucket, cell in block["by_bucket"].items():
        label = f'{esc(bucket)}<div class="nums">{esc(block["rules"][bucket])}</div>'
        row = [label, fmt(cell["impressions"])]
        for name in names:
            v = cell["versions"].get(name)
            row.append("–" if v is None else pct(v["ctr"], 3) + ci_pct(v["ctr_ci95"], 3))
        d = cell["candidate_vs_baseline"]
        row.append("–" if d is None else pp(d["difference"], 3) + ci_pp(d["difference_ci95"], 3))
        rows.append(row)
        # hit@K in a table of its own: one table for both grows too wide with many versions.
        hits.append(
            [label]
            + [
                "–" if (v := cell["versions"].get(name)) is None else pct(v["hit_at_k"], 2)
                for name in names
            ]
        )
    head = [
        "item bucket",
        "item impressions",
        *[f"item CTR {esc(n)}" for n in names],
        f"item CTR {esc(block['candidate'])} − {esc(block['baseline'])}",
    ]
    return (
        "<h3>By item popularity</h3>"
        + html_table(head, rows)
        + html_table(["item bucket", *[f"hit@K {esc(n)}" for n in names]], hits)
        + _muted(
            "Catalogue thirds by training popularity (users per item before time zero): head, "
            "torso, tail. Item CTR = clicks on the bucket's items / list slots showing them "
            "(Wilson 95% intervals), by assigned version; hit@K = share of requests whose list "
            "holds a bucket item the user consumed next (– without truth); the difference has "
            "a normal 95% interval."
        )
    )


def worst_overall(summary: dict[str, Any]) -> str:
    worst = (summary.get("segments") or {}).get("worst_overall")
    if not worst:
        return ""
    kind = "user segment" if worst["kind"] == "user_segment" else "item popularity bucket"
    verdict = verdict_html(worst["difference_ci95"])
    return (
        f"<p>Across user segments and item popularity buckets, the lowest relative lift is in "
        f"the <b>{esc(worst['group'])}</b> {kind}: {pct(worst['relative_lift'], 1)} "
        f"({pp(worst['difference'], 3)}{ci_pp(worst['difference_ci95'], 3)}); {verdict}. "
        "Relative lift puts list CTR (segments) and item CTR (buckets) on one scale.</p>"
    )


def segment_extras(summary: dict[str, Any]) -> str:
    seg = summary.get("segments") or {}
    rows = []
    names = list(summary["versions"])
    for group, cell in (seg.get("by_segment") or {}).items():
        row = [esc(group)]
        for name in names:
            v = cell["versions"].get(name) or {}
            row.append(pct(v.get("abandon_rate")))
        for name in names:
            v = cell["versions"].get(name) or {}
            row.append(pct(v.get("hit_at_k")) + ci_pct(v.get("hit_at_k_ci95")))
        rows.append(row)
    if not rows:
        return ""
    head = [
        "user segment",
        *[f"abandoned {esc(n)}" for n in names],
        *[f"hit@K {esc(n)}" for n in names],
    ]
    return html_table(head, rows)


# --- composition -----------------------------------------------------------------------------

#: Section anchor -> fragments appended to that section's body, in order.
ADDITIONS: dict[str, tuple[Callable[[dict[str, Any]], str], ...]] = {
    "engagement": (hit_at_k, off_policy, window_deltas),
    "calibration": (genre_calibration,),
    "diversity": (genre_diversity, attribute_quality, provider_fairness),
    "stability": (noise_floor, churn),
    "segments": (segment_extras, popularity_buckets, worst_overall, user_groups),
    "data": (attribute_accounting,),
}


def glance_items(summary: dict[str, Any]) -> list[str]:
    """Extra "at a glance" sentences: the candidate against the noise floor, hit@K."""
    items: list[str] = []
    versions = summary["versions"]
    base, cand = final_roles(summary)
    if base is None or cand is None:
        return items
    q = versions[cand].get("quality") or {}
    s = q.get("stability") or {}
    rel, floor = s.get("relative_to_noise_floor"), s.get("noise_floor")
    if rel is not None and floor is not None and rel["change_ratio"] is not None:
        low, high = floor.get("jaccard_at_k_ci95") or (None, None)
        interval = "" if low is None or high is None else f" [{pct(low, 0)}, {pct(high, 0)}]"
        warned = floor.get("warnings")
        items.append(
            f"<b>Noise floor</b> retraining {esc(s['against'])} with another seed keeps "
            f"{pct(floor['jaccard_at_k'], 0)}{interval} of its items; {esc(cand)} keeps "
            f"{pct(s['jaccard_at_k'], 0)}, i.e. {rel['change_ratio']:.2f}× the seed noise's "
            "change"
            + (
                "; <b>the floor is mostly training noise, so this comparison says little</b>."
                if warned
                else "."
            )
        )
    hit_c = (q.get("engagement") or {}).get("hit_at_k")
    hit_b = ((versions[base].get("quality") or {}).get("engagement") or {}).get("hit_at_k")
    if hit_c is not None and hit_b is not None:
        items.append(
            f"<b>hit@{hit_c['k']}</b> ({esc(hit_c['method'])}) {esc(cand)} "
            f"{pct(hit_c['rate'])}{ci_pct(hit_c['ci95'])}, {esc(base)} {pct(hit_b['rate'])}."
        )
    return items
