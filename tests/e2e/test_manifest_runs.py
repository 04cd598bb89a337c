"""Manifests through the command line: runs, the export command, --rollout, and Kayenta
scoring as the analysis of a plain canary."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import polars as pl
import pytest

from rollout_lab.cli import main
from sim.policies.argo_canary import MANUAL_PROMOTION

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "traffic.users=2000", "--set", "traffic.items=600"]


def run(scenario: Path, out: Path, *extra: str) -> dict[str, object]:
    code = main(["run", str(scenario), "--out", str(out), "--quiet", *SMALL, *extra])
    assert code == 0
    summary: dict[str, object] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return summary


def test_pause_without_duration_ends_in_progress_and_says_why(tmp_path: Path) -> None:
    """Argo Rollouts' ``pause: {}`` waits for a promotion that never comes in the lab: the
    run ends in progress, and summary.json and the report say why in plain words."""
    summary = run(ROOT / "scenarios" / "argo_canary_inline_analysis.toml", tmp_path / "out")
    rollout = summary["rollout"]
    assert isinstance(rollout, dict)
    assert summary["outcome"] == "in_progress"
    assert rollout["waiting_for"] == MANUAL_PROMOTION
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<b>Waiting</b>: pause without a duration: Argo Rollouts waits for someone" in report
    assert "<b>Manifest</b> manifests/argo_canary_inline_analysis.yaml" in report


def test_ab_test_keeps_unmatched_users_off_the_candidate_until_promotion(tmp_path: Path) -> None:
    """Flagger's A/B test routes only the matched users (here: heavy and light) to the
    canary; the promotion then reaches everyone."""
    out = tmp_path / "out"
    summary = run(ROOT / "scenarios" / "flagger_ab_testing.toml", out, "--requests-parquet")
    rollout = summary["rollout"]
    assert isinstance(rollout, dict)
    promoted = rollout["time_to_promote_s"]
    assert summary["outcome"] == "promoted" and promoted == 600.0
    frame = pl.read_parquet(out / "requests.parquet")
    on_candidate = frame.filter(pl.col("version") == "candidate")
    before = on_candidate.filter(pl.col("t_s") < 600.0)
    assert before.height > 0
    assert set(before["segment"].unique().to_list()) <= {"heavy", "light"}
    after = on_candidate.filter(pl.col("t_s") >= 600.0)
    assert "cold" in set(after["segment"].unique().to_list())


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "flagger_mirroring.toml"
    first = run(scenario, tmp_path / "a", "--reproducible")
    run(scenario, tmp_path / "b", "--reproducible")
    assert (tmp_path / "a" / "summary.json").read_bytes() == (
        tmp_path / "b" / "summary.json"
    ).read_bytes()
    assert first["outcome"] == "rolled_back"


def test_export_writes_a_manifest_that_runs_the_same_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = ROOT / "scenarios" / "flagger_canary_step_weights.toml"
    assert main(["export", "flagger", str(scenario)]) == 0
    printed = capsys.readouterr().out
    assert "kind: Canary" in printed and "stepWeights:\n    - 1\n" in printed
    target = tmp_path / "canary.yaml"
    assert main(["export", "flagger", str(scenario), "--out", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == printed
    capsys.readouterr()
    assert main(["export", "flagger", str(scenario), "--out", str(target)]) == 2
    assert capsys.readouterr().err == (
        f"rollout-lab: error: --out {target}: exists (pass --force to replace it, or move it "
        "away)\n"
    )
    assert main(["export", "flagger", str(scenario), "--out", str(target), "--force"]) == 0
    # A file the lab did not write is never replaced, --force or not.
    foreign = tmp_path / "theirs.yaml"
    foreign.write_text("kind: Canary  # hand-written\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["export", "flagger", str(scenario), "--out", str(foreign), "--force"]) == 2
    assert "was not written by rollout-lab" in capsys.readouterr().err
    assert foreign.read_text(encoding="utf-8") == "kind: Canary  # hand-written\n"
    # --rollout takes the policy from the exported file instead of the scenario's manifest.
    assert main(["validate", str(scenario), "--rollout", str(target)]) == 0
    assert main(["export", "argo", str(scenario)]) == 2
    assert "has no Argo Rollouts form here" in capsys.readouterr().err


KAYENTA = """\
name = "kayenta-judge"
seed = 5
[traffic]
duration = "30m"
arrivals = { kind = "poisson", rate_per_s = 15 }
[models.baseline]
[models.candidate]
parent = "baseline"
latency = { kind = "lognormal", p50_ms = 30, p99_ms = 140 }
[metrics]
noise_floor = false
[rollout]
policy = "canary"
weight = 30
analysis = { interval = "10m", failure_limit = 2, min_requests = 50 }
[rollout.kayenta]
step = "1m"
pass_score = 90
marginal_score = 60
group_weights = { latency = 70, errors = 30 }
[[rollout.kayenta.metrics]]
name = "p99"
measure = { metric = "latency_ms.p99" }
groups = ["latency"]
direction = "increase"
allowed_increase = 1.2
critical = CRITICAL
[[rollout.kayenta.metrics]]
name = "p50"
measure = { metric = "latency_ms.p50" }
groups = ["latency"]
direction = "increase"
allowed_increase = 1.2
[[rollout.kayenta.metrics]]
name = "timeouts"
measure = { metric = "timeout_rate" }
groups = ["errors"]
direction = "increase"
"""


@pytest.mark.parametrize("critical", [False, True])
def test_kayenta_scoring_judges_a_plain_canary(critical: bool, tmp_path: Path) -> None:
    """Kayenta's score as the analysis: a slower candidate's p99 is classified high (its
    Mann-Whitney interval above 0, the ratio of means beyond 1.2), the weighted score
    70 % x 1/2 + 30 % x 1 = 65 is marginal (inconclusive: the canary goes on); marked
    critical, the same metric fails the analysis at once and the canary is rolled back."""
    scenario = tmp_path / "kayenta.toml"
    scenario.write_text(KAYENTA.replace("CRITICAL", str(critical).lower()), encoding="utf-8")
    summary = run(scenario, tmp_path / "out")
    analyses = [d for d in summary["decisions"] if d["action"] == "analysis"]  # type: ignore[union-attr,index]
    if critical:
        assert summary["outcome"] == "rolled_back"
        assert analyses[0]["reason"] == "fail: kayenta critical metric p99 did not pass"
        assert analyses[0]["numbers"]["kayenta.score"] == 0.0
    else:
        assert summary["outcome"] == "in_progress"
        assert all(
            a["reason"].startswith("inconclusive: kayenta score 65.0 marginal") for a in analyses
        )
        assert all(a["numbers"]["kayenta.p99.ratio"] > 1.2 for a in analyses)


def test_argo_metric_scored_by_kayenta(tmp_path: Path) -> None:
    """An Argo Rollouts metric with the kayenta provider: Successful at the pass score,
    Inconclusive at the marginal one, Failed below (the provider's documented thresholds)."""
    manifest = tmp_path / "rollout.yaml"
    manifest.write_text(
        textwrap.dedent(
            """\
            apiVersion: argoproj.io/v1alpha1
            kind: Rollout
            spec:
              strategy:
                canary:
                  trafficRouting: {nginx: {stableIngress: app}}
                  steps:
                    - setWeight: 30
                    - pause: {duration: 10m}
                    - analysis: {templates: [{templateName: mann-whitney}]}
            ---
            apiVersion: argoproj.io/v1alpha1
            kind: AnalysisTemplate
            metadata: {name: mann-whitney}
            spec:
              metrics:
                - name: mann-whitney
                  provider:
                    kayenta:
                      address: https://kayenta.example.com
                      application: app
                      canaryConfigName: app-config
                      thresholds: {pass: 90, marginal: 60}
                      lookback: true
                      scopes: [{name: default}]
            """
        ),
        encoding="utf-8",
    )
    text = KAYENTA.replace("CRITICAL", "false")
    text = text.replace('policy = "canary"\nweight = 30\n', f'manifest = "{manifest.name}"\n')
    text = text.replace(
        'analysis = { interval = "10m", failure_limit = 2, min_requests = 50 }\n', ""
    )
    scenario = tmp_path / "kayenta.toml"
    scenario.write_text(text, encoding="utf-8")
    summary = run(scenario, tmp_path / "out")
    assert summary["outcome"] == "inconclusive"  # score 65: marginal, the rollout pauses
    analyses = [d for d in summary["decisions"] if d["action"] == "analysis"]  # type: ignore[union-attr,index]
    assert analyses[0]["reason"].startswith(
        "inconclusive: analysis run step-2 (mann-whitney): mann-whitney score 65.0 Inconclusive"
    )
