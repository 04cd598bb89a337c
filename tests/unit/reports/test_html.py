"""summary.json additions and the HTML report's sections, on one tiny real run.

The scenario's name, description and a version name carry HTML, quotes and mathtext
dollars: the page must show them as text, never as markup.
"""

from __future__ import annotations

import copy
import re
from typing import Any
from xml.etree import ElementTree

import pytest

from lab.pipeline import SEGMENTS, RunResult, run
from lab.scenario import load_scenario
from reports.html import render_report
from reports.sections import SECTIONS, fmt, pct, pp
from reports.summary import build_summary, dumps
from reports.svg import FULL_WIDTH_PX, MIN_TEXT_PX
from reports.verdict import check_expectations

NAME = "<script>alert(1)</script>"
CANDIDATE = 'cand<i>&"$x$'
SCENARIO = f"""
name = "{NAME}"
description = "Escaping & <b>bold</b> in a description"
seed = 3

[traffic]
duration = "6m"
users = 400
items = 150
arrivals = {{ kind = "poisson", rate_per_s = 20 }}

[models.baseline]
factors = 8
iterations = 3

[models.'{CANDIDATE}']
parent = "baseline"

[rollout]
candidate = '{CANDIDATE}'
weight = 30
analysis = {{ interval = "2m", min_requests = 20 }}

[expect]
"outcome" = "!= rolled_back"
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, dict[str, Any], str]:
    path = tmp_path_factory.mktemp("tiny") / "tiny.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(path, [])
    result = run(scenario)
    summary = build_summary(result, scenario_file=path.name, reproducible=True)
    verdict = check_expectations(summary, dict(scenario.expect), source=path.name)
    summary["verdict"] = verdict
    return result, summary, render_report(summary, result.requests, verdict)


# --- summary.json --------------------------------------------------------------------------


def test_summary_is_strict_json_and_deterministic(
    tiny: tuple[RunResult, dict[str, Any], str],
) -> None:
    result, summary, _ = tiny
    text = dumps(summary)  # allow_nan=False: a NaN anywhere would raise
    again = build_summary(result, scenario_file="tiny.toml", reproducible=True)
    again["verdict"] = summary["verdict"]
    assert dumps(again) == text


def test_existing_keys_are_kept(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    _, summary, _ = tiny
    assert summary["schema_version"] == 1
    for key in (
        "scenario",
        "outcome",
        "requests",
        "versions",
        "cache",
        "rollout",
        "decisions",
        "data",
        "timing",
        "verdict",
    ):
        assert key in summary, key
    for block in summary["versions"].values():
        for key in (
            "role",
            "requests",
            "users",
            "latency_ms",
            "slo_under_budget",
            "cache_hit_rate",
            "ctr",
            "ctr_ci95",
            "abandon_rate",
            "model",
        ):
            assert key in block, key


def test_quality_block_per_version(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    result, summary, _ = tiny
    base, cand = summary["versions"]["baseline"], summary["versions"][CANDIDATE]
    for block in (base, cand):
        quality = block["quality"]
        assert set(quality) == {
            "calibration",
            "genre_calibration",
            "diversity",
            "stability",
            "engagement",
        }
        cal = quality["calibration"]
        assert cal["n_bins"] == 15 and 0 <= cal["ece"] <= 1
        assert sum(b["count"] for b in cal["bins"]) == cal["requests"]
        assert sum(b["count"] for b in cal["bins_equal_mass"]) == cal["requests"]
        div = quality["diversity"]
        assert 0 < div["catalogue_coverage"] <= 1 and 0 <= div["exposure_gini"] < 1
        assert div["impressions"] <= block["requests"] + summary["requests"]["fallback"]
        calibrator = block["model"]["calibration"]
        assert calibrator["model"] == "logistic" and "fitted_on" in calibrator
        assert set(calibrator["weights"]) == {
            "within_user_score", "log_rank", "log_popularity_rank", "no_history",
            "log_history", "within_user_score_x_log_history",
            "log_score_spread", "within_user_score_x_log_score_spread",
        }  # fmt: skip
        assert block["model"]["platt"] is None
        assert {"ece_equal_mass", "slope", "slope_ci95", "intercept", "warnings"} <= set(cal)
        assert "slope_effective_users" in cal
    assert base["quality"]["stability"] is None
    stability = cand["quality"]["stability"]
    assert stability["against"] == "baseline" and 0 <= stability["jaccard_at_k"] <= 1
    assert stability["users"] == result.requests["user"].n_unique()
    lift = cand["quality"]["engagement"]["ctr_vs_baseline"]
    assert lift["difference"] == pytest.approx(cand["ctr"] - base["ctr"], abs=2e-6)


def test_windows_follow_the_monitor(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    result, summary, _ = tiny
    windows = summary["windows"]
    assert len(windows["t_end_s"]) == len(result.monitor.windows)
    for name, series in windows["versions"].items():
        assert sum(series["requests"]) == summary["versions"][name]["requests"]


def test_segments_cover_every_request(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    _, summary, _ = tiny
    seg = summary["segments"]
    assert list(seg["by_segment"]) == list(SEGMENTS)
    assert sum(s["requests"] for s in seg["by_segment"].values()) == summary["requests"]["arrivals"]
    assert seg["candidate"] == CANDIDATE and seg["baseline"] == "baseline"


# --- the page ------------------------------------------------------------------------------


def test_every_section_is_there_in_order(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    _, _, page = tiny
    found = re.findall(r'<section id="([a-z]+)"><h2>([^<]+)</h2>', page)
    assert found == list(SECTIONS)
    for anchor, _ in SECTIONS:
        assert f'<a href="#{anchor}">' in page
    assert '<ul class="glance">' in page and 'class="banner pass"' in page


def test_user_strings_are_escaped(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    _, _, page = tiny
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "cand&lt;i&gt;&amp;&quot;$x$" in page and "<i>" not in page


def test_page_is_self_contained_and_small(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    _, _, page = tiny
    assert "http://" not in page and "https://" not in page
    assert re.findall(r'src="([^"]*)"', page) == []
    assert page.count('<svg class="figure"') >= 6
    for title in ("Traffic share", "Latency percentiles", "Cache hit rate", "CTR by version"):
        assert title in page
    assert len(page.encode("utf-8")) < 1_500_000


def test_every_figure_is_inline_svg_with_text_and_its_own_ids(
    tiny: tuple[RunResult, dict[str, Any], str],
) -> None:
    _, _, page = tiny
    figures = re.findall(r'<svg class="figure".*?</svg>', page, flags=re.DOTALL)
    assert figures
    ids: list[str] = []
    for figure in figures:
        root = ElementTree.fromstring(figure)
        width, height = float(root.get("width", "0")), float(root.get("height", "0"))
        assert 300 <= width <= FULL_WIDTH_PX and 150 <= height <= 600
        assert root.get("viewBox") == f"0 0 {width:g} {height:g}"
        texts = [t for t in root.iter("text") if (t.text or "").strip()]
        assert texts, "text is kept as text"
        sizes = [
            float(m)
            for t in texts
            for m in re.findall(r"font-size: ([0-9.]+)px", t.get("style", ""))
        ]
        assert sizes and min(sizes) >= MIN_TEXT_PX
        ids += [e.get("id", "") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids)), "two figures share an id"


def test_drift_placeholder_without_data(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    result, summary, _ = tiny
    bare = copy.deepcopy(summary)
    bare["drift"] = None
    page = render_report(bare, result.requests, summary["verdict"])
    drift = page.split('<section id="drift">', 1)[1].split("</section>", 1)[0]
    assert "No drift measured in this run." in drift


def test_failing_expectation_banner(tiny: tuple[RunResult, dict[str, Any], str]) -> None:
    result, summary, _ = tiny
    verdict = {
        "passed": False,
        "expectations": [
            {"metric": "outcome", "condition": "== <promoted>", "observed": "x", "passed": False}
        ],
    }
    page = render_report(summary, result.requests, verdict)
    assert 'class="banner fail"' in page and "The expectation fails" in page
    assert "== &lt;promoted&gt;" in page


def _case(passed: bool) -> dict[str, Any]:
    return {"metric": "outcome", "condition": "== x", "observed": "x", "passed": passed}


@pytest.mark.parametrize(
    ("passed", "headline"),
    [
        ([False, True, True], "1 of 3 expectations fails"),  # was "1 of 3 expectation fails"
        ([False, False, True], "2 of 3 expectations fail"),
        ([True, True], "All 2 expectations pass"),
    ],
)
def test_banner_counts_expectations_in_words(
    tiny: tuple[RunResult, dict[str, Any], str], passed: list[bool], headline: str
) -> None:
    result, summary, _ = tiny
    verdict = {"passed": all(passed), "expectations": [_case(p) for p in passed]}
    banner = render_report(summary, result.requests, verdict).split('<div class="banner', 1)[1]
    assert banner.split("</div>", 1)[0].split(">", 1)[1].startswith(headline + " —")


def _section(page: str, anchor: str) -> str:
    return page.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]


def test_a_segment_interval_above_zero_is_significantly_better(
    tiny: tuple[RunResult, dict[str, Any], str],
) -> None:
    # The reported case: heavy users +0.51 pp [+0.33, +0.68] was called "not significant".
    result, summary, _ = tiny
    changed = copy.deepcopy(summary)
    worst = {"segment": "heavy", "difference": 0.0051, "difference_ci95": [0.0033, 0.0068]}
    changed["segments"]["worst"] = {**worst, "relative_lift": 0.1}
    changed["segments"]["worst_overall"] = {
        "kind": "user_segment",
        "group": "heavy",
        "relative_lift": 0.1,
        "difference": 0.0051,
        "difference_ci95": [0.0033, 0.0068],
    }
    page = render_report(changed, result.requests, summary["verdict"])
    glance = page.split('<ul class="glance">', 1)[1].split("</ul>", 1)[0]
    segments = _section(page, "segments")
    for text in (glance, segments):
        assert "+0.51 pp" in text
        assert "significantly better (95% CI above 0)" in text
        assert "not significant" not in text
    changed["segments"]["worst"]["difference_ci95"] = [-0.0068, -0.0033]
    page = render_report(changed, result.requests, summary["verdict"])
    assert "<b>significantly worse (95% CI below 0)</b>" in _section(page, "segments")


def test_drift_table_never_prints_a_p_value_of_zero_next_to_ok(
    tiny: tuple[RunResult, dict[str, Any], str],
) -> None:
    result, summary, _ = tiny
    changed = copy.deepcopy(summary)
    small = {"psi": 0.02, "ks_statistic": 0.05, "ks_p_value": 0.0, "live_samples": 50_000}
    changed["drift"] = {
        "item_popularity": {**small, "alert": False},
        "user_activity": {**small, "psi": 0.4, "alert": True},
        "windows": [],
        "alert_threshold_psi": 0.2,
    }
    drift = _section(render_report(changed, result.requests, summary["verdict"]), "drift")
    rows = drift.split("<tr>")[2:]
    assert "&lt; 0.0001" in rows[0] and "small shift" in rows[0] and ">ok<" not in rows[0]
    assert '<span class="bad">alert</span>' in rows[1]
    assert ">0<" not in drift


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (3.0, "3"),
        (19079.0, "19,079"),
        (0.123456, "0.1235"),
        (12, "12"),
        ("<x>", "&lt;x&gt;"),
    ],
)
def test_fmt(value: Any, text: str) -> None:
    assert fmt(value) == text


def test_pct_and_pp() -> None:
    assert pct(0.0517) == "5.17%" and pct(None) == "–"
    assert pp(0.004) == "+0.40 pp" and pp(-0.0123) == "-1.23 pp"


@pytest.mark.parametrize(
    ("cal", "shown"),
    [
        ({"slope": 0.97, "slope_ci95": [0.9, 1.04]}, "0.97 <span"),
        ({"slope": None, "slope_ci95": [0.42, 0.85]}, "not measured <span"),
        ({"slope": None, "slope_ci95": [None, None]}, "–"),
    ],
)
def test_calibration_slope_cell_says_when_it_is_not_measured(
    cal: dict[str, Any], shown: str
) -> None:
    from reports.sections import _slope

    assert _slope(cal).startswith(shown)


def test_the_speed_line_names_the_noise_floor_built_beside_the_simulation() -> None:
    from reports.html import _speed

    timing = {"simulate_s": 2.0, "requests_per_wall_s": 5000.0, "prepare_s": 3.0}
    plain = _speed(timing, 10_000)
    assert plain.endswith("preparation 3.00 s") and "noise floor" not in plain
    beside = _speed({**timing, "noise_floor_s": 1.25}, 10_000)
    assert beside.endswith("noise floor 1.25 s, built beside the simulation")
    # Off (null) or not recorded: nothing said.
    assert _speed({**timing, "noise_floor_s": None}, 10_000) == plain
