"""Report figures: matplotlib drawn to inline SVG (see :mod:`reports.svg`).

Each figure has a title, labelled axes with units, and one colour per version that is the
same in every figure.  Figures are drawn from aggregates (time buckets, the summary), never
from per-request data, so the page stays small; text is at least 11 px, legends sit outside
the plotting area and every figure fits a 1280 px screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from reports.figure_cache import stored_figure
from reports.svg import (
    FULL_WIDTH_PX,
    HALF_WIDTH_PX,
    legend_outside,
    literal,
    new_figure,
    style,
    to_svg,
)
from sim.stats import wilson_interval

if TYPE_CHECKING:  # matplotlib loads with the first figure drawn (see reports.figure_cache)
    from matplotlib.axes import Axes

__all__ = [
    "DECISION_COLOURS",
    "analysis_result",
    "cache_figure",
    "colour",
    "ctr_figure",
    "drift_figure",
    "latency_figure",
    "reliability_figure",
    "replicas_figure",
    "segments_figure",
    "share_figure",
    "slo_budget_figure",
]

_COLOURS = ["#1f5fa8", "#d9641e", "#2a9d4b", "#8e44ad", "#c0392b", "#7f8c8d"]
WIDE_HEIGHT_PX = 300

# Routing decisions drawn as numbered vertical lines on the timeline.
DECISION_COLOURS = {
    "promote": "#2a9d4b",
    "rollback": "#c0392b",
    "hold": "#b9770e",
    "set_weight": "#4a5a6e",
    "mirror": "#7d8fa3",
    "pause": "#7d8fa3",
    "resume": "#4a5a6e",
}
# Analysis results drawn as markers under the curves.
_ANALYSIS_STYLE = {
    "pass": ("#2a9d4b", "^"),
    "fail": ("#c0392b", "v"),
    "inconclusive": ("#8c96a3", "o"),
    "skipped": ("#c8ced6", "."),
    # A measurement of an analysis run still going (Argo Rollouts): no verdict yet.
    "measured": ("#8c96a3", "|"),
}


def colour(index: int) -> str:
    return _COLOURS[index % len(_COLOURS)]


def _sparse_marker(points: int) -> dict[str, Any]:
    """Markers for a series of few points: one point alone draws no line."""
    return {"marker": "o", "ms": 3} if points < 8 else {}


def _minutes(values: Sequence[float]) -> list[float]:
    return [v / 60.0 for v in values]


def analysis_result(decision: dict[str, Any]) -> str:
    """``pass``, ``fail``, ``inconclusive``, ``skipped`` or ``measured`` from an analysis
    decision's reason."""
    head = str(decision["reason"]).split(":", 1)[0].strip()
    return head if head in _ANALYSIS_STYLE else "inconclusive"


def _shares(tl: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """Share of each bucket's requests per version (0 where a version had none)."""
    totals = tl.group_by("bucket_s").agg(pl.col("requests").sum().alias("total"))
    grid = totals.select("bucket_s").join(
        pl.DataFrame({"version": list(names)}, schema={"version": pl.String}), how="cross"
    )
    return (
        grid.join(
            tl.select("bucket_s", pl.col("version").cast(pl.String), "requests"),
            on=["bucket_s", "version"],
            how="left",
        )
        .join(totals, on="bucket_s")
        .with_columns((100.0 * pl.col("requests").fill_null(0) / pl.col("total")).alias("share"))
        .sort("bucket_s")
    )


def _step(ax: Axes, x_min: Sequence[float], y: Sequence[float], end_min: float, **kw: Any) -> None:
    """A bucketed series as steps: a bucket's value holds from its start to the next one."""
    if not y:
        return
    ax.step([*x_min, end_min], [*y, y[-1]], where="post", **kw)


def _timeline_panel(
    ax: Axes,
    tl: pl.DataFrame,
    shadow: pl.DataFrame,
    names: Sequence[str],
    decisions: Sequence[dict[str, Any]],
    marks: Sequence[tuple[int, dict[str, Any]]],
    span_s: tuple[float, float],
    alerts: Sequence[tuple[float, float]],
    *,
    labels: bool,
) -> None:
    """One time panel of :func:`share_figure` over ``span_s``; ``labels`` adds the legend
    entries and the numbered decision labels (the overview panel leaves them out)."""
    start_s, end_s = span_s
    shares = _shares(tl, names)
    totals = shares.group_by("bucket_s").agg(pl.col("total").first()).sort("bucket_s")
    for i, name in enumerate(names):
        rows = shares.filter(pl.col("version") == name)
        _step(
            ax,
            _minutes(rows["bucket_s"].to_list()),
            rows["share"].to_list(),
            end_s / 60.0,
            label=literal(name) if labels else None,
            color=colour(i),
            lw=1.6,
        )
    # Mirrored copies are extra requests, not a share of the users' requests: drawn as their
    # own series (copies per bucket / the bucket's requests) so a mirror is never a flat 0.
    for i, name in enumerate(names):
        copies = shadow.filter(pl.col("shadow") == name)
        if copies.height == 0:
            continue
        joined = totals.join(copies, on="bucket_s", how="left").sort("bucket_s")
        share = (100.0 * joined["copies"].fill_null(0) / joined["total"]).to_list()
        _step(
            ax,
            _minutes(joined["bucket_s"].to_list()),
            share,
            end_s / 60.0,
            label=f"{literal(name)} shadow (mirrored copies)" if labels else None,
            color=colour(i),
            lw=1.2,
            ls=(0, (1, 1.5)),
        )
    for lo, hi in alerts:
        ax.axvspan(lo / 60.0, hi / 60.0, ymax=102.0 / 132.0, color="#8e44ad", alpha=0.12, lw=0)
    if alerts and labels:
        ax.fill_between([], [], color="#8e44ad", alpha=0.12, lw=0, label="drift alert")
    steps_t, steps_w = [0.0], [0.0]
    for d in decisions:
        if d["action"] != "analysis":
            steps_t.append(d["t_s"] / 60.0)
            steps_w.append(float(d["weight"]))
    steps_t.append(end_s / 60.0)
    steps_w.append(steps_w[-1])
    ax.step(
        steps_t,
        steps_w,
        where="post",
        color="#1d2733",
        lw=1.0,
        ls="--",
        label="candidate weight (configured)" if labels else None,
    )
    by_time: dict[float, list[int]] = {}
    for number, d in marks:
        t = d["t_s"] / 60.0
        by_time.setdefault(t, []).append(number)
        ax.axvline(t, color=DECISION_COLOURS.get(d["action"], "#999999"), lw=0.9, ls=":")
    seen: set[str] = set()
    for d in decisions:
        if d["action"] != "analysis":
            continue
        result = analysis_result(d)
        c, marker = _ANALYSIS_STYLE[result]
        ax.plot(
            [d["t_s"] / 60.0],
            [3.0],
            marker=marker,
            color=c,
            ms=7,
            ls="none",
            label=f"analysis: {result}" if labels and result not in seen else None,
        )
        seen.add(result)
    ax.axhspan(102.0, 130.0, color="#f3f5f8", lw=0)
    ax.set_ylim(-2, 130)
    ax.set_yticks(range(0, 101, 20))
    span_min = max((end_s - start_s) / 60.0, 1e-9)
    ax.set_xlim(start_s / 60.0 - 0.01 * span_min, end_s / 60.0 + 0.02 * span_min)
    ax.grid(alpha=0.3)
    if labels:
        _decision_labels(ax, by_time, start_s, end_s)


def _decision_labels(
    ax: Axes, by_time: dict[float, list[int]], start_s: float, end_s: float
) -> None:
    """Decision numbers in the band above 100 %: a label too close to the previous one in its
    row drops to the next row, so neighbouring decisions stay readable."""
    span_min = max((end_s - start_s) / 60.0, 1e-9)
    inside = sorted((t, n) for t, n in by_time.items() if t <= end_s / 60.0 + 1e-9)
    rows_last: list[float] = []
    label_every = max(1, math.ceil(len(inside) / 30))
    for k, (t, numbers) in enumerate(inside):
        if k % label_every:
            continue
        text = ",".join(str(n) for n in numbers)
        # About 7 px per character on a ~800 px wide panel.
        width = 0.011 * span_min * (len(text) + 2)
        row = next((r for r, last in enumerate(rows_last) if t - last > width), len(rows_last))
        if row == len(rows_last):
            rows_last.append(t)
        rows_last[row] = t
        ax.annotate(
            text,
            (t, 128.0 - 9.0 * (row % 3)),
            ha="center",
            va="top",
            color="#1d2733",
            bbox={"boxstyle": "round,pad=0.15", "fc": "#ffffff", "ec": "#8c96a3", "lw": 0.6},
        )


@stored_figure("share")
def share_figure(
    tl: pl.DataFrame,
    shadow: pl.DataFrame,
    names: Sequence[str],
    decisions: Sequence[dict[str, Any]],
    marks: Sequence[tuple[int, dict[str, Any]]],
    duration_s: float,
    alerts: Sequence[tuple[float, float]] = (),
    focus_end_s: float | None = None,
) -> str:
    """Traffic share per version, mirrored copies, the configured weight and decisions.

    ``shadow`` has one row per (``bucket_s``, ``shadow`` target, ``copies``); ``marks`` are
    ``(number, decision)`` pairs drawn as labelled vertical lines (the number links to the
    table under the figure); analyses in ``decisions`` are markers along the bottom, coloured
    by result; ``alerts`` are ``(start_s, end_s)`` windows shaded as drift alerts.  With
    ``focus_end_s`` (the rollout settled long before the run ended) the main panel shows
    ``[0, focus_end_s]`` and a narrow second panel the whole run, so an idle tail does not
    take most of the width.
    """
    with style():
        focused = focus_end_s is not None and focus_end_s < duration_s
        fig, axes = new_figure(
            FULL_WIDTH_PX,
            340,
            columns=2 if focused else 1,
            width_ratios=[3, 1] if focused else None,
            sharey=focused,
        )
        main_end = focus_end_s if focused and focus_end_s is not None else duration_s
        _timeline_panel(
            axes[0], tl, shadow, names, decisions, marks, (0.0, main_end), alerts, labels=True
        )
        axes[0].set_ylabel("share of requests (%)")
        axes[0].set_xlabel("simulated time (min)")
        if focused:
            axes[0].set_title(f"First {main_end / 60:.0f} min: the rollout", loc="left")
            whole = tl.filter(pl.col("bucket_s") < duration_s)
            _timeline_panel(
                axes[1], whole, shadow, names, decisions, marks, (0.0, duration_s), alerts,
                labels=False,
            )  # fmt: skip
            axes[1].axvspan(0.0, main_end / 60.0, color="#1f5fa8", alpha=0.07, lw=0)
            axes[1].set_title("Whole run", loc="left")
            axes[1].set_xlabel("simulated time (min)")
            axes[1].tick_params(labelleft=False)
        fig.suptitle("Traffic share by version and routing decisions")
        legend_outside(fig, axes[0])
        return to_svg(fig, "timeline", "Traffic share by version over simulated time")


@stored_figure("latency")
def latency_figure(tl: pl.DataFrame, names: Sequence[str], budget_ms: float) -> str:
    with style():
        fig, (ax,) = new_figure(FULL_WIDTH_PX, WIDE_HEIGHT_PX)
        top = budget_ms
        for i, name in enumerate(names):
            rows = tl.filter(pl.col("version") == name).sort("bucket_s")
            x = _minutes(rows["bucket_s"].to_list())
            p99 = rows["p99_ms"].to_list()
            dots = _sparse_marker(len(x))
            ax.plot(x, p99, color=colour(i), label=f"{literal(name)} p99", lw=1.4, **dots)
            ax.plot(
                x,
                rows["p50_ms"].to_list(),
                color=colour(i),
                ls=":",
                label=f"{literal(name)} p50",
                **dots,
            )
            if "model_p50_ms" in rows.columns:
                # Cache hits pin the end-to-end p50 at the hit latency; the model's own p50
                # shows a slower model.
                ax.plot(
                    x,
                    rows["model_p50_ms"].to_list(),
                    color=colour(i),
                    ls="--",
                    lw=1.0,
                    label=f"{literal(name)} model p50",
                    **dots,
                )
            top = max([top, *[v for v in p99 if v is not None]])
        ax.axhline(budget_ms, color="#c0392b", lw=1.2, label=f"budget {budget_ms:g} ms")
        ax.axhspan(budget_ms, top * 1.1, color="#c0392b", alpha=0.06)
        ax.set_title("Latency percentiles against the budget")
        ax.set_xlabel("simulated time (min)")
        ax.set_ylabel("latency (ms)")
        ax.set_ylim(0, top * 1.1)
        ax.grid(alpha=0.3)
        legend_outside(fig, ax)
        return to_svg(fig, "latency", "Latency percentiles by version against the budget")


@stored_figure("cache")
def cache_figure(tl: pl.DataFrame, names: Sequence[str], flush_times_s: Sequence[float]) -> str:
    with style():
        fig, (ax,) = new_figure(FULL_WIDTH_PX, WIDE_HEIGHT_PX)
        for i, name in enumerate(names):
            rows = tl.filter((pl.col("version") == name) & (pl.col("lookups") > 0)).sort("bucket_s")
            rate = (100.0 * rows["hits"] / rows["lookups"]).to_list()
            ax.plot(
                _minutes(rows["bucket_s"].to_list()),
                rate,
                color=colour(i),
                label=literal(name),
                **_sparse_marker(len(rate)),
            )
        for k, t in enumerate(flush_times_s):
            ax.axvline(
                t / 60.0, color="#c0392b", lw=0.9, ls="--", label="cache flush" if k == 0 else None
            )
        ax.set_title("Cache hit rate" + (" (dashed: cache flushes)" if flush_times_s else ""))
        ax.set_xlabel("simulated time (min)")
        ax.set_ylabel("hit rate (% of lookups)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        legend_outside(fig, ax)
        return to_svg(fig, "cache", "Cache hit rate by version over simulated time")


@stored_figure("ctr")
def ctr_figure(versions: dict[str, dict[str, Any]]) -> str:
    with style():
        fig, (ax,) = new_figure(HALF_WIDTH_PX, 320)
        names = list(versions)
        ctr = [100.0 * (versions[n]["ctr"] or 0.0) for n in names]
        low = [100.0 * (versions[n]["ctr_ci95"][0] or 0.0) for n in names]
        high = [100.0 * (versions[n]["ctr_ci95"][1] or 0.0) for n in names]
        err = [
            [c - lo for c, lo in zip(ctr, low, strict=True)],
            [hi - c for c, hi in zip(ctr, high, strict=True)],
        ]
        ax.bar(
            range(len(names)),
            ctr,
            yerr=err,
            capsize=6,
            color=[colour(i) for i in range(len(names))],
        )
        ax.set_xticks(range(len(names)), [literal(n) for n in names])
        if len(names) > 3:
            ax.tick_params(axis="x", labelrotation=20)
        ax.set_title("CTR by version (95% Wilson interval)")
        ax.set_xlabel("version")
        ax.set_ylabel("CTR (% of lists clicked)")
        ax.grid(alpha=0.3, axis="y")
        return to_svg(fig, "ctr", "CTR by version with 95% confidence intervals")


def wilson_interval_arrays(
    successes: Sequence[int], trials: Sequence[int]
) -> tuple[list[float], list[float]]:
    """95 % Wilson bounds in percent for each (successes, trials) pair."""
    low: list[float] = []
    high: list[float] = []
    for s, n in zip(successes, trials, strict=True):
        ci = wilson_interval(int(s), int(n))
        low.append(100.0 * ci.low)
        high.append(100.0 * ci.high)
    return low, high


@stored_figure("reliability")
def reliability_figure(versions: dict[str, dict[str, Any]]) -> str:
    """Observed click rate against mean predicted probability, equal-mass bins per version.

    Error bars: 95 % Wilson interval of the observed rate in each bin; the diagonal is
    perfect calibration.  Axes are zoomed to the range the predictions cover.
    """
    with style():
        fig, (ax,) = new_figure(HALF_WIDTH_PX, 420)
        top, bottom = 0.0, math.inf
        for i, (name, v) in enumerate(versions.items()):
            bins = v["quality"]["calibration"]["bins_equal_mass"]
            if not bins:
                continue
            x = [100.0 * b["mean_predicted"] for b in bins]
            y = [100.0 * b["observed_rate"] for b in bins]
            counts = [b["count"] for b in bins]
            clicks = [round(b["observed_rate"] * b["count"]) for b in bins]
            low, high = wilson_interval_arrays(clicks, counts)
            err = [
                [max(yy - lo, 0.0) for yy, lo in zip(y, low, strict=True)],
                [max(hi - yy, 0.0) for yy, hi in zip(y, high, strict=True)],
            ]
            ax.errorbar(
                x,
                y,
                yerr=err,
                color=colour(i),
                marker="o",
                ms=4,
                lw=1.2,
                capsize=3,
                label=literal(name),
            )
            top = max(top, *x, *high)
            bottom = min(bottom, *x, *low)
        # Zoom to the populated range, the same on both axes so the diagonal stays diagonal.
        if top <= 0:
            top, bottom = 100.0, 0.0
        span = max(top - bottom, 0.5)
        low_edge, high_edge = max(0.0, bottom - 0.08 * span), min(100.0, top + 0.08 * span)
        ax.plot(
            [low_edge, high_edge],
            [low_edge, high_edge],
            color="#8c96a3",
            lw=1.0,
            ls="--",
            label="perfect calibration",
        )
        ax.set_xlim(low_edge, high_edge)
        ax.set_ylim(low_edge, high_edge)
        if low_edge == 0.0:
            # Both axes start at 0: push the x labels down so the two "0.0" at the corner
            # do not overlap.
            ax.tick_params(axis="x", pad=8)
        ax.set_title("Reliability diagram (10 equal-mass bins)")
        ax.set_xlabel("mean predicted P(click) (%)")
        ax.set_ylabel("observed click rate (%)")
        ax.grid(alpha=0.3)
        legend_outside(fig, ax, where="top", columns=3)
        return to_svg(fig, "reliability", "Calibration reliability diagram per version")


@stored_figure("segments")
def segments_figure(segments: dict[str, Any], names: Sequence[str]) -> str:
    """CTR per user segment, one bar per version, with 95 % Wilson intervals."""
    groups = list(segments["by_segment"])
    with style():
        fig, (ax,) = new_figure(HALF_WIDTH_PX + 160, 320)
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            xs, ys, lo, hi = [], [], [], []
            for g, seg in enumerate(groups):
                cell = segments["by_segment"][seg]["versions"].get(name)
                if cell is None or cell["ctr"] is None:
                    continue
                xs.append(g - 0.4 + width * (i + 0.5))
                ys.append(100.0 * cell["ctr"])
                lo.append(100.0 * cell["ctr"] - 100.0 * cell["ctr_ci95"][0])
                hi.append(100.0 * cell["ctr_ci95"][1] - 100.0 * cell["ctr"])
            ax.bar(
                xs, ys, width=width, yerr=[lo, hi], capsize=4, color=colour(i), label=literal(name)
            )
        ax.set_xticks(range(len(groups)), [literal(g) for g in groups])
        ax.set_title("CTR by user segment (95% Wilson interval)")
        ax.set_xlabel("user segment (history length)")
        ax.set_ylabel("CTR (% of lists clicked)")
        ax.grid(alpha=0.3, axis="y")
        legend_outside(fig, ax)
        return to_svg(fig, "segments", "CTR by user segment and version")


@stored_figure("drift")
def drift_figure(windows: Sequence[dict[str, Any]], threshold: float) -> str:
    """Item-popularity PSI per analysis window against the alert threshold."""
    with style():
        fig, (ax,) = new_figure(FULL_WIDTH_PX, 260)
        x = [(w["t_start_s"] + w["t_end_s"]) / 120.0 for w in windows]
        widths = [max((w["t_end_s"] - w["t_start_s"]) / 60.0 * 0.9, 1e-3) for w in windows]
        psi = [w["item_popularity_psi"] or 0.0 for w in windows]
        colours = ["#c0392b" if w["alert"] else "#8e44ad" for w in windows]
        ax.bar(x, psi, width=widths, color=colours, alpha=0.8)
        ax.axhline(threshold, color="#c0392b", lw=1.0, ls="--", label=f"alert at PSI {threshold:g}")
        ax.set_title("Item-popularity drift per analysis window (PSI)")
        ax.set_xlabel("simulated time (min)")
        ax.set_ylabel("PSI")
        ax.set_ylim(0, max([threshold, *psi]) * 1.15)
        ax.grid(alpha=0.3, axis="y")
        legend_outside(fig, ax)
        return to_svg(fig, "drift", "Item-popularity drift per analysis window")


@stored_figure("slo-budget")
def slo_budget_figure(
    slos: dict[str, dict[str, Any]],
    starts_s: Sequence[float],
    ends_s: Sequence[float],
    update_s: tuple[float, float] | None,
) -> str:
    """Error budget each SLO burnt per analysis window (bars, % of the compliance period's
    budget), with the update window shaded."""
    with style():
        fig, (ax,) = new_figure(FULL_WIDTH_PX, 260)
        names = list(slos)
        if update_s is not None:
            ax.axvspan(
                update_s[0] / 60.0,
                update_s[1] / 60.0,
                color="#b9770e",
                alpha=0.12,
                label="update window",
            )
        top = 0.0
        for i, name in enumerate(names):
            spent = [100.0 * (v or 0.0) for v in slos[name]["window_budget_spent"]]
            slot = [
                (b - a) / 60.0 * 0.9 / max(len(names), 1)
                for a, b in zip(starts_s, ends_s, strict=True)
            ]
            x = [
                a / 60.0 + (b - a) / 60.0 * 0.05 + w * (i + 0.5)
                for a, b, w in zip(starts_s, ends_s, slot, strict=True)
            ]
            ax.bar(x, spent, width=slot, color=colour(i), alpha=0.85, label=literal(name))
            top = max([top, *spent])
        ax.set_title("Error budget burnt per analysis window")
        ax.set_xlabel("simulated time (min)")
        ax.set_ylabel("budget burnt (% of period)")
        ax.set_ylim(0, top * 1.15 if top > 0 else 1.0)
        ax.grid(alpha=0.3, axis="y")
        legend_outside(fig, ax)
        return to_svg(fig, "slo-budget", "Error budget burnt per analysis window, by SLO")


@stored_figure("replicas")
def replicas_figure(timelines: dict[str, Sequence[Sequence[float]]], end_s: float) -> str:
    """Ready replicas over time of each autoscaled version (steps: a count holds until the
    next change)."""
    with style():
        fig, (ax,) = new_figure(FULL_WIDTH_PX, 260)
        top = 1.0
        for i, (name, timeline) in enumerate(timelines.items()):
            x = [t / 60.0 for t, _ in timeline]
            n = [float(c) for _, c in timeline]
            _step(ax, x, n, end_s / 60.0, color=colour(i), lw=1.4, label=literal(name))
            top = max([top, *n])
        ax.set_title("Ready replicas under the autoscaler")
        ax.set_xlabel("simulated time (min)")
        ax.set_ylabel("ready replicas")
        ax.set_ylim(0, top * 1.15)
        ax.grid(alpha=0.3)
        legend_outside(fig, ax)
        return to_svg(fig, "replicas", "Ready replicas over simulated time, by autoscaled version")
