"""`rollout-lab train` registers every version with provenance; `models` lists, shows, diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "traffic.users=2000", "--set", "traffic.items=500"]


def test_train_then_list_show_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry"
    scenario = str(ROOT / "scenarios" / "quickstart.toml")
    assert main(["train", scenario, "--registry", str(registry), *SMALL]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--registry", str(registry)]) == 0
    ids = capsys.readouterr().out.split()
    assert [i.split("@")[0] for i in ids] == ["baseline", "candidate"]
    assert main(["models", "show", ids[1], "--registry", str(registry)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["parent_id"] == ids[0]
    assert shown["update"] == "warm_start"
    for key in (
        "train_window",
        "data_fingerprint",
        "algorithm",
        "hyperparameters",
        "metrics",
        "calibration",
        "training_seconds",
    ):
        assert shown[key] is not None, key
    assert 0 <= shown["metrics"]["recall"] <= 1
    assert main(["models", "diff", ids[0], ids[1], "--registry", str(registry)]) == 0
    assert "jaccard_mean" in capsys.readouterr().out
    # Training the same scenario again registers the very same ids (data-time tags, hashes).
    assert main(["train", scenario, "--registry", str(registry), *SMALL]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--registry", str(registry)]) == 0
    assert capsys.readouterr().out.split() == ids


def test_models_show_unknown_version_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["models", "show", "baseline@20260101T000000Z-deadbeef", "--registry", str(tmp_path)]
    )
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
