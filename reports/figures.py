"""Report figures: matplotlib (Agg) rendered to inline PNG data URIs.

Each figure has a title, labelled axes with units, and one colour per version that is the
same in every figure.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

__all__ = ["cache_figure", "ctr_figure", "latency_figure", "share_figure"]

_COLOURS = ["#1f5fa8", "#d9641e", "#2a9d4b", "#8e44ad", "#c0392b", "#7f8c8d"]


def colour(index: int) -> str:
    return _COLOURS[index % len(_COLOURS)]


def _encode(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _minutes(values: Sequence[float]) -> list[float]:
    return [v / 60.0 for v in values]


def _mark_decisions(ax: Any, decisions: Sequence[dict[str, Any]]) -> None:
    for d in decisions:
        if d["action"] in ("set_weight", "rollback", "promote", "hold"):
            style = {"rollback": "#c0392b", "promote": "#2a9d4b"}.get(d["action"], "#999999")
            ax.axvline(d["t_s"] / 60.0, color=style, lw=0.8, ls="--")


def share_figure(tl: pl.DataFrame, names: Sequence[str], decisions: Sequence[dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    totals = tl.group_by("bucket_s").agg(pl.col("requests").sum().alias("total"))
    shares = tl.join(totals, on="bucket_s").with_columns(
        (100.0 * pl.col("requests") / pl.col("total")).alias("share")
    )
    for i, name in enumerate(names):
        rows = shares.filter(pl.col("version") == name).sort("bucket_s")
        ax.plot(_minutes(rows["bucket_s"].to_list()), rows["share"].to_list(), label=name, color=colour(i))
    _mark_decisions(ax, decisions)
    ax.set_title("Traffic share by version")
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("share of requests (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _encode(fig)


def latency_figure(tl: pl.DataFrame, names: Sequence[str], budget_ms: float) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    for i, name in enumerate(names):
        rows = tl.filter(pl.col("version") == name).sort("bucket_s")
        x = _minutes(rows["bucket_s"].to_list())
        ax.plot(x, rows["p99_ms"].to_list(), color=colour(i), label=f"{name} p99")
        ax.plot(x, rows["p50_ms"].to_list(), color=colour(i), ls=":", label=f"{name} p50")
    ax.axhline(budget_ms, color="#c0392b", lw=1.2, label=f"budget {budget_ms:g} ms")
    ax.set_title("Latency percentiles against the budget")
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    return _encode(fig)


def cache_figure(tl: pl.DataFrame, names: Sequence[str], flush_times_s: Sequence[float]) -> str:
    fig, ax = plt.subplots(figsize=(8, 3))
    for i, name in enumerate(names):
        rows = tl.filter((pl.col("version") == name) & (pl.col("lookups") > 0)).sort("bucket_s")
        rate = (100.0 * rows["hits"] / rows["lookups"]).to_list()
        ax.plot(_minutes(rows["bucket_s"].to_list()), rate, color=colour(i), label=name)
    for t in flush_times_s:
        ax.axvline(t / 60.0, color="#c0392b", lw=0.8, ls="--")
    ax.set_title("Cache hit rate" + (" (dashed: cache flushes)" if flush_times_s else ""))
    ax.set_xlabel("simulated time (min)")
    ax.set_ylabel("hit rate (% of lookups)")
    ax.set_ylim(0, 100)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _encode(fig)


def ctr_figure(versions: dict[str, dict[str, Any]]) -> str:
    fig, ax = plt.subplots(figsize=(6, 3))
    names = list(versions)
    ctr = [100.0 * (versions[n]["ctr"] or 0.0) for n in names]
    low = [100.0 * (versions[n]["ctr_ci95"][0] or 0.0) for n in names]
    high = [100.0 * (versions[n]["ctr_ci95"][1] or 0.0) for n in names]
    err = [[c - lo for c, lo in zip(ctr, low, strict=True)], [hi - c for c, hi in zip(ctr, high, strict=True)]]
    ax.bar(names, ctr, yerr=err, capsize=6, color=[colour(i) for i in range(len(names))])
    ax.set_title("CTR by version (95% Wilson interval)")
    ax.set_xlabel("version")
    ax.set_ylabel("CTR (% of lists clicked)")
    ax.grid(alpha=0.3, axis="y")
    return _encode(fig)
