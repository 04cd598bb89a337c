"""Off-policy estimates from a log with logging propensities: wiring and a hand-checked case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lab.offpolicy_log import LoggedImpressions, offpolicy_block
from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_hand_checked_ips_snips_and_replay() -> None:
    # Two users, lists of K = 2.  Four impressions with propensity 0.5 each.
    lists = {"v": np.array([[1, 2], [3, 4]], np.int32)}
    impressions = LoggedImpressions(
        user=np.array([0, 0, 1, 1]),
        item=np.array([1, 5, 3, 4]),
        reward=np.array([1.0, 1.0, 0.0, 1.0]),
        propensity=np.array([0.5, 0.5, 0.5, 0.5]),
    )
    block = offpolicy_block(impressions, lists)["versions"]["v"]
    # Target π = 1/2 for listed items: weights w = (1, 0, 1, 1); IPS = (1 + 0 + 0 + 1) / 4.
    assert block["ips"]["value"] == pytest.approx(0.5)
    # SNIPS = Σ w r / Σ w = 2 / 3.
    assert block["snips"]["value"] == pytest.approx(2 / 3)
    # Replay: top item matches rows 0 (item 1 for user 0) and 2 (item 3 for user 1): (1 + 0) / 2.
    assert block["replay"]["value"] == pytest.approx(0.5)


def test_log_with_propensities_gets_estimates(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n, users, items = 6_000, 300, 150
    user = rng.integers(0, users, n)
    item = rng.integers(0, items, n)  # uniform logging policy: propensity 1 / items
    click = (rng.random(n) < 0.05 + 0.2 * (item % 7 == user % 7)).astype(int)
    ts = np.sort(rng.integers(1_500_000_000, 1_500_000_000 + 60 * 86_400, n))
    log = tmp_path / "bandit.csv"
    pl.DataFrame(
        {"uid": user, "iid": item, "ts": ts, "p": np.full(n, 1 / items), "click": click}
    ).write_csv(log)
    out = tmp_path / "run"
    columns = '{ user = "uid", item = "iid", timestamp = "ts", propensity = "p", reward = "click" }'
    code = main(
        [
            "run",
            str(ROOT / "scenarios" / "movielens_replay.toml"),
            "--out",
            str(out),
            "--quiet",
            "--log",
            str(log),
            "--log-format",
            "csv",
            "--set",
            f"traffic.log.columns={columns}",
            "--set",
            "metrics.noise_floor=false",
        ]
    )
    assert code in (0, 1)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    block = summary["off_policy"]
    assert block is not None and block["rows"] > 500
    assert abs(block["logging_policy_mean_reward"] - click.mean()) < 0.03
    for version in ("baseline", "candidate"):
        ips = block["versions"][version]["ips"]
        low, high = ips["ci95"]
        assert low <= ips["value"] <= high
        assert 0 <= ips["value"] < 1
