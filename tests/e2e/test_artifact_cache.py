"""The artifact cache through the CLI: warm reruns give the same bytes, keys follow inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = [
    "--set",
    "traffic.duration=8m",
    "--set",
    "traffic.users=1500",
    "--set",
    "traffic.items=400",
    "--set",
    "traffic.arrivals.mean_rate_per_s=15",
]


def entries(cache: Path) -> dict[str, int]:
    """Entry file -> inode: a rebuilt entry is a new file (written beside, renamed in)."""
    return {str(p.relative_to(cache)): p.stat().st_ino for p in cache.glob("*/*.npz")}


def run(scenario: str, out: Path, *extra: str) -> bytes:
    args = ["run", str(ROOT / "scenarios" / scenario), "--out", str(out), "--reproducible"]
    # At this scale a scenario's own expectations may fail (exit 1): the bytes are the point.
    assert main([*args, "--quiet", *SMALL, *extra]) in (0, 1)
    return (out / "summary.json").read_bytes()


def report(out: Path) -> bytes:
    return (out / "report.html").read_bytes()


@pytest.mark.parametrize(
    ("scenario", "extra"),
    [
        ("quickstart.toml", []),
        ("release_train.toml", ["--set", "release_train.every=3m"]),  # updates in the run
        ("noisy_candidate_quality_guardrails.toml", []),  # a fault drawn from a generator
    ],
)
def test_a_warm_rerun_reads_everything_and_writes_the_same_summary(
    tmp_path: Path, scenario: str, extra: list[str]
) -> None:
    cache = tmp_path / "cache"
    cold = run(scenario, tmp_path / "cold", "--cache-dir", str(cache), *extra)
    built = entries(cache)
    kinds = {name.split("/")[0] for name in built}
    assert kinds == {"world", "model", "lists", "calibration", "figure", "partition"}
    warm = run(scenario, tmp_path / "warm", "--cache-dir", str(cache), *extra)
    assert warm == cold
    assert report(tmp_path / "warm") == report(tmp_path / "cold")
    # nothing rebuilt: no list row scored again, no figure drawn, no normaliser computed
    assert entries(cache) == built
    assert run(scenario, tmp_path / "none", "--no-cache", *extra) == cold
    assert report(tmp_path / "none") == report(tmp_path / "cold")


def rerun_with(tmp_path: Path, setting: str) -> tuple[Path, dict[str, int], dict[str, int]]:
    """The quick start into a fresh cache, then again with ``setting``: the cache and its
    entries before and after the second run."""
    cache = tmp_path / "cache"
    run("quickstart.toml", tmp_path / "a", "--cache-dir", str(cache))
    before = entries(cache)
    run("quickstart.toml", tmp_path / "b", "--cache-dir", str(cache), "--set", setting)
    return cache, before, entries(cache)


def of(kind: str, found: dict[str, int]) -> dict[str, int]:
    return {name: inode for name, inode in found.items() if name.startswith(f"{kind}/")}


def test_changing_a_model_setting_reuses_the_world_and_retrains(tmp_path: Path) -> None:
    cache, before, after = rerun_with(tmp_path, "models.baseline.regularization=0.2")
    worlds = [name for name in after if name.startswith("world/")]
    assert len(worlds) == 1 and after[worlds[0]] == before[worlds[0]]
    assert len([n for n in after if n.startswith("model/")]) > len(
        [n for n in before if n.startswith("model/")]
    )
    run("quickstart.toml", tmp_path / "c", "--cache-dir", str(cache), "--seed", "99")
    assert len([n for n in entries(cache) if n.startswith("world/")]) == 2


def test_no_cache_reads_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("ROLLOUT_LAB_CACHE", str(cache))
    run("quickstart.toml", tmp_path / "a", "--no-cache")
    assert not cache.exists()
    run("quickstart.toml", tmp_path / "b")  # the environment variable names the default
    assert entries(cache)


def test_a_cache_dir_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    scenario = str(ROOT / "scenarios" / "quickstart.toml")
    code = main(
        ["run", scenario, "--out", str(tmp_path / "o"), "--cache-dir", str(blocker / "c"), *SMALL]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"rollout-lab: error: --cache-dir {blocker}")
    assert "--no-cache" in err[0]
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    "setting",
    ["users.click_offset=-2.0", "users.activity_engagement=1.0", "serving.explore_slots=0"],
)
def test_a_calibration_is_fitted_again_only_when_its_inputs_change(
    tmp_path: Path, setting: str
) -> None:
    _, before, after = rerun_with(tmp_path, setting)
    # The truth's click offset and engagement, and the exploration slots, change the clicks
    # a calibration is fitted on, not the models.
    assert of("model", after) == of("model", before)
    assert of("world", after) == of("world", before)
    assert len(of("calibration", after)) > len(of("calibration", before))
