"""Which dotted paths ``summary.json`` can hold for a scenario: what an expectation may name.

``rollout-lab validate`` (and ``run``, before anything is computed) checks every ``[expect]``
key against this tree, so that a misspelt path is refused in one line before a long run
rather than after it.  The tree mirrors :func:`reports.summary.build_summary` (and the blocks
it takes from ``reports.quality`` and ``reports.buckets``); a test runs scenarios of every
kind and checks that each scalar path of their summaries is accepted here, so the two cannot
drift apart unnoticed.

Node kinds: a leaf (``LEAF``: a scalar, or a list, which an expectation cannot index), a
table of known keys (``dict``), a table keyed by the scenario's version names (``VERSIONS``),
and an open table (``OPEN``: anything below it is accepted, for blocks whose keys are data,
such as the resolved settings or the row accounting's skip reasons).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

__all__ = ["LEAF", "OPEN", "SUMMARY_TREE", "check_summary_path", "summary_versions"]

LEAF: Final = "leaf"
OPEN: Final = "open"
VERSIONS: Final = "<version>"  # a key standing for every version name of the scenario


def _leaves(*names: str) -> dict[str, Any]:
    return dict.fromkeys(names, LEAF)


_LATENCY = _leaves("p50", "p95", "p99", "mean")
_BIN_FIELDS = _leaves("lower", "upper", "count", "mean_predicted", "observed_rate")
_CALIBRATION = _leaves(
    "basis", "requests", "ece", "mean_predicted", "observed_rate", "n_bins", "bins",
    "bins_equal_mass", "ece_equal_mass", "n_bins_equal_mass", "intercept", "slope",
    "slope_ci95", "slope_users", "prediction_range", "warnings",
)  # fmt: skip
_STABILITY_NUMBERS = _leaves("against", "jaccard_at_k", "rbo", "identical_lists")
_VERSION: dict[str, Any] = {
    **_leaves(
        "role", "requests", "users", "served", "fallback", "dropped", "slo_under_budget",
        "cache_hit_rate", "stale_rate", "timeout_rate", "error_rate", "clicks", "ctr",
        "ctr_ci95", "abandon_rate",
    ),
    "latency_ms": _LATENCY,
    "model_latency_ms": {**_LATENCY, "requests": LEAF},
    "model": {
        **_leaves(
            "algorithm", "parent", "update", "factors", "training_s",
            "popularity_fallback_users", "source", "registry_id",
        ),
        "provenance": OPEN,
        "coverage": _leaves("traffic_users", "share"),
        "platt": _leaves("a", "b"),
        "calibration": {**_leaves("fitted_on", "intercept", "model"), "weights": OPEN},
    },
    "quality": {
        "calibration": _CALIBRATION,
        "genre_calibration": _leaves(
            "basis", "genres", "n_genres", "alpha", "lists", "impressions", "kl"
        ),
        "diversity": {
            **_leaves(
                "basis", "factors", "popularity", "lists", "impressions",
                "intra_list_diversity", "catalogue_coverage", "exposure_gini", "novelty_bits",
                "average_recommended_popularity", "genre_intra_list_diversity", "genres",
            ),
            "if_shown_to_all_traffic": _leaves("catalogue_coverage", "exposure_gini"),
        },
        "stability": {
            **_STABILITY_NUMBERS,
            **_leaves("users", "k", "rbo_p"),
            "noise_floor": {**_STABILITY_NUMBERS, **_leaves("jaccard_at_k_ci95", "warnings")},
            "relative_to_noise_floor": _leaves(
                "jaccard_difference", "jaccard_difference_ci95", "change_ratio"
            ),
        },
        "engagement": {
            **_leaves(
                "sessions", "clicks_per_session", "clicks_per_session_ci95",
                "abandoned_sessions_fraction", "abandon_rate_ci95",
            ),
            "ctr_vs_baseline": _leaves(
                "against", "difference", "difference_ci95", "relative_lift",
                "relative_lift_ci95",
            ),
            "hit_at_k": _leaves("method", "basis", "k", "requests", "rate", "ci95"),
        },
    },
    "shadow": {"requests": LEAF, "latency_ms": _LATENCY},
}  # fmt: skip

_DIFFERENCE = _leaves("difference", "difference_ci95", "relative_lift")
_GROUP_VERSION = _leaves(
    "impressions", "clicks", "ctr", "ctr_ci95", "abandon_rate", "hit_at_k", "hit_at_k_ci95",
    "ece", "intra_list_diversity", "stability",
)  # fmt: skip


def _groups(names: Iterable[str], *, counts: tuple[str, ...]) -> dict[str, Any]:
    block = {**_leaves(*counts), "versions": {VERSIONS: _GROUP_VERSION}}
    return {name: {**block, "candidate_vs_baseline": _DIFFERENCE} for name in names}


def _segment_block(
    names: tuple[str, ...], key: str, worst_key: str, counts: tuple[str, ...]
) -> dict[str, Any]:
    return {
        **_leaves("basis", "baseline", "candidate"),
        "rules": _leaves(*names),
        key: _groups(names, counts=counts),
        "worst": {worst_key: LEAF, **_DIFFERENCE},
    }


_USER_SEGMENTS = ("cold", "light", "heavy")
_ROLLOUT_NUMBERS = _leaves(
    "policy", "outcome", "final_weight", "max_candidate_weight", "analyses", "failures",
    "first_exposure_s", "time_to_detect_s", "time_to_rollback_s", "time_to_promote_s",
    "rollback_at_s", "first_failure_at_s", "promote_at_s", "kill_switch_at_s", "waiting_for",
)  # fmt: skip
_DRIFT_TEST = _leaves("psi", "ks_statistic", "ks_p_value", "live_samples", "alert", "status")
_SERVED = {
    **_leaves("requests", "share_of_requests", "clicks", "ctr", "ctr_ci95"),
    "latency_ms": _leaves("p50", "p99"),
    "assigned_to": {VERSIONS: LEAF},
}

SUMMARY_TREE: Final[dict[str, Any]] = {
    "schema_version": LEAF,
    "scenario": {**_leaves("name", "description", "seed", "file"), "settings": OPEN},
    "outcome": LEAF,
    "requests": _leaves("arrivals", "served", "fallback", "dropped", "shadow"),
    "versions": {VERSIONS: _VERSION},
    "cache": _leaves(
        "enabled", "hits", "misses", "expired", "stale_serves", "evictions", "flushes",
        "hit_rate", "flush_times_s",
    ),
    "rollout": {
        **_ROLLOUT_NUMBERS,
        **_leaves("promoted_releases", "production"),
        "releases": {
            VERSIONS: {
                **_ROLLOUT_NUMBERS,
                **_leaves("release", "version", "started_s", "parent"),
            }
        },
    },
    "decisions": LEAF,
    "routing": {
        **_leaves("at_s", "baseline", "candidate", "candidate_weight", "unit", "units"),
        "share": {VERSIONS: LEAF},
    },
    # whose lists were shown: each version, the popularity fallback, or none
    "served": {VERSIONS: _SERVED, "popular": _SERVED, "none": _SERVED},
    "windows": {
        **_leaves("t_start_s", "t_end_s"),
        "versions": {
            VERSIONS: _leaves("requests", "latency_p99_ms", "ctr", "cache_hit_rate", "ece")
        },
        "candidate_vs_baseline": _leaves("against", "candidate", "difference", "difference_ci95"),
    },
    "segments": {
        **_segment_block(_USER_SEGMENTS, "by_segment", "segment", ("users", "requests")),
        "item_popularity": _segment_block(
            ("head", "torso", "tail"), "by_bucket", "bucket", ("items", "impressions")
        ),
        "tenure": _segment_block(
            ("new", "returning"), "by_segment", "segment", ("users", "requests")
        ),
        "worst_overall": _leaves("kind", "group", *_DIFFERENCE),
    },
    "churn": _leaves(
        "basis", "users", "users_changed", "share_changed", "changes", "mean_churn", "by_pair"
    ),
    "off_policy": {
        **_leaves("rows", "logging_policy_mean_reward", "target_policy"),
        "versions": {
            VERSIONS: {
                method: _leaves("value", "ci95", "n", "effective_n")
                for method in ("replay", "ips", "snips")
            }
        },
    },
    "drift": {
        "item_popularity": _DRIFT_TEST,
        "user_activity": _DRIFT_TEST,
        **_leaves("windows", "alert_threshold_psi"),
    },
    "data": {
        **_leaves(
            "source", "users", "items", "history_events", "path", "format", "replayed_requests"
        ),
        "accounting": OPEN,
        "windows": OPEN,
    },
    "timing": _leaves(
        "wall_s", "prepare_s", "simulate_s", "sim_s", "requests_per_wall_s",
        "noise_floor_training_s", "report_s", "world_s", "training_s", "top_k_s",
    ),
    "verdict": _leaves("passed", "expectations"),
}  # fmt: skip


def summary_versions(models: Iterable[str], candidate: str, releases: int | None) -> set[str]:
    """Version names a summary can hold: the models, and a release train's ``CANDIDATE-k``."""
    names = set(models)
    if releases is not None:
        names |= {f"{candidate}-{k}" for k in range(2, releases + 1)}
    return names


def check_summary_path(path: str, versions: set[str]) -> str | None:
    """None when ``path`` can name a metric of the summary, else why not (for a message)."""
    node: Any = SUMMARY_TREE
    walked: list[str] = []
    parts = path.split(".")
    for part in parts:
        if node == OPEN:
            return None
        if node == LEAF:
            return f"{'.'.join(walked)} is a metric, it has no {part!r}"
        if part in node:
            node = node[part]
        elif VERSIONS in node and part in versions:
            node = node[VERSIONS]
        else:
            where = ".".join(walked) or "the summary"
            keys = sorted(k for k in node if k != VERSIONS)
            if VERSIONS in node:
                keys = sorted(versions) + keys
            shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
            return f"{part[:40]!r} is not in {where} (known: {shown})"
        walked.append(part)
    if isinstance(node, dict):
        return f"{'.'.join(walked)} is a group, not a metric (pick one of its keys)"
    return None
