"""Off-policy estimates from a log with logging propensities: wiring and a hand-checked case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lab.offpolicy_log import LoggedImpressions, offpolicy_block
from rollout_lab.cli import main
from tests.helpers_slates import slate_log

ROOT = Path(__file__).resolve().parents[2]


def _run_log(tmp_path: Path, log: Path, columns: str, *extra: str) -> tuple[int, Path]:
    out = tmp_path / "run"
    code = main(
        [
            "run",
            str(ROOT / "scenarios" / "movielens_replay.toml"),
            "--out",
            str(out),
            "--log",
            str(log),
            "--log-format",
            "csv",
            "--set",
            f"traffic.log.columns={columns}",
            "--set",
            "metrics.noise_floor=false",
            *extra,
        ]
    )
    return code, out


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
    assert block["rows"] == 4 and block["excluded"] == {"empty_target_list": 0}
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
    columns = '{ user = "uid", item = "iid", timestamp = "ts", propensity = "p", reward = "click" }'
    code, out = _run_log(tmp_path, log, columns, "--quiet")
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


def test_rows_without_a_target_list_are_counted_and_left_out() -> None:
    # Reported: IPS = 0.0 over n = 1,720 rows, 1,706 of them users whose list was empty
    # (every item already consumed), so the target policy was no distribution at all.
    lists = {"v": np.array([[1, 2], [-1, -1]], np.int32)}
    impressions = LoggedImpressions(
        user=np.array([0, 0, 1, 1, 1, 1]),
        item=np.array([1, 3, 1, 2, 1, 2]),
        reward=np.array([1.0, 0.0, 1.0, 1.0, 1.0, 1.0]),
        propensity=np.full(6, 0.5),
    )
    block = offpolicy_block(impressions, lists)["versions"]["v"]
    assert block["rows"] == 2 and block["excluded"] == {"empty_target_list": 4}
    # On the two defined rows: w = (1, 0) -> IPS = (1·1 + 0) / 2; the empty lists no longer
    # pull it towards 0 (it was (1 + 0 + 0 + 0 + 0 + 0) / 6).
    assert block["ips"]["value"] == pytest.approx(0.5) and block["ips"]["n"] == 2
    assert block["ips"]["effective_n"] == pytest.approx(1.0)


def test_slate_block_equals_a_direct_numpy_computation() -> None:
    # Two users' ranked lists; three positions per slate, logged uniformly over 4 items.
    lists = {"v": np.array([[0, 1, 2], [3, 2, 1]], np.int32)}
    rng = np.random.default_rng(4)
    n_slates = 300
    user = np.repeat(rng.integers(0, 2, n_slates), 3)
    position = np.tile(np.arange(3), n_slates)
    item = rng.integers(0, 4, user.size)
    reward = (rng.random(user.size) < 0.3).astype(float)
    impressions = LoggedImpressions(
        user=user,
        item=item,
        reward=reward,
        propensity=np.full(user.size, 0.25),
        position=position,
        slate=np.repeat(np.arange(n_slates), 3),
    )
    block = offpolicy_block(impressions, lists)
    assert block["slates"] == {"slates": n_slates, "positions": 3}
    version = block["versions"]["v"]
    target = lists["v"][user, position] == item
    w = target / 0.25
    per_slate = (w * reward).reshape(n_slates, 3).sum(axis=1)
    assert version["ips"]["value"] == pytest.approx(per_slate.mean(), abs=1e-6)
    for p, cell in enumerate(version["by_position"]):
        at = position == p
        assert cell["position"] == p and cell["rows"] == int(at.sum())
        assert cell["ips"]["value"] == pytest.approx((w[at] * reward[at]).mean(), abs=1e-6)
        snips = (w[at] * reward[at]).sum() / w[at].sum()
        assert cell["snips"]["value"] == pytest.approx(snips, abs=1e-6)
    # Replay: the version's item at the logged position is the logged item.
    assert version["replay"]["value"] == pytest.approx(reward[target].mean(), abs=1e-6)


def test_obd_like_slate_log_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Open-Bandit-like: 40 items, 3 positions (1-based), a uniform random logging policy,
    # clicks rare (about 0.5 %); users repeat so models have something to learn.
    rng = np.random.default_rng(8)
    n_slates, items = 4_000, 40
    user = np.repeat(rng.integers(0, 300, n_slates), 3)
    ts = np.repeat(np.sort(rng.integers(1_600_000_000, 1_600_000_000 + 30 * 86_400, n_slates)), 3)
    item = rng.integers(0, items, user.size)
    click = (rng.random(user.size) < 0.005).astype(int)
    log = tmp_path / "obd.csv"
    pl.DataFrame(
        {
            "uid": user,
            "iid": item,
            "ts": ts,
            "pos": np.tile([1, 2, 3], n_slates),
            "p": np.full(user.size, 1 / items),
            "click": click,
        }
    ).write_csv(log)
    columns = (
        '{ user = "uid", item = "iid", timestamp = "ts", propensity = "p", reward = "click", '
        'position = "pos" }'
    )
    code, out = _run_log(tmp_path, log, columns, "--set", "users.list_size=5")
    assert code in (0, 1)
    console = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    block = summary["off_policy"]
    accounting = block["accounting"]
    assert accounting["kept"] + sum(accounting["excluded"].values()) == accounting["rows_in_window"]
    assert block["rows"] == accounting["kept"] > 1_000
    assert block["slates"]["positions"] == 3
    for version in block["versions"].values():
        assert version["rows"] + sum(version["excluded"].values()) == block["rows"]
        assert [c["position"] for c in version["by_position"]] == [0, 1, 2]
        ips = version["ips"]
        assert ips is not None and ips["ci95"][1] > ips["ci95"][0]  # never a point
        direct = version["direct"]
        assert direct["ci95"][0] <= direct["value"] <= direct["ci95"][1]
    # 0/1 rewards at positions: the log fits a position-based click model, shown with its fit.
    model = block["click_model"]
    assert model["rows"] == block["rows"] and len(model["examination_relative"]) == 3
    # The console and the report say which CTR is simulated and which is the log's.
    logged = f"{100 * block['logging_policy_mean_reward']:.2f}%"
    assert "simulated by the click model" in console and logged in console
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Logged clicks and off-policy estimates" in page and logged in page
    assert "Click model fitted from the log" in page


def test_propensity_without_reward_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Reported: off_policy = null and exit 0, without a word.
    log = tmp_path / "log.csv"
    pl.DataFrame({"uid": [1, 2], "iid": [1, 2], "ts": [1, 2], "p": [0.5, 0.5]}).write_csv(log)
    columns = '{ user = "uid", item = "iid", timestamp = "ts", propensity = "p" }'
    code, out = _run_log(tmp_path, log, columns)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert len(err) == 1 and "traffic.log.columns.reward must be set when propensity is" in err[0]


def test_long_form_impression_log_fits_the_click_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One row per shown item: user, time, item, position, clicked; no propensities.  Clicks
    # from a known position-based model; one row with clicked = 2 is counted, not used.
    rng = np.random.default_rng(9)
    n_slates, items = 3_000, 40
    theta = np.array([0.9, 0.6, 0.4])
    alpha = rng.beta(2, 4, items)
    position, item, click, slate = slate_log(rng, n_slates, items, theta, alpha)
    user = rng.integers(0, 300, n_slates)[slate]
    ts = np.sort(rng.integers(1_600_000_000, 1_600_000_000 + 30 * 86_400, n_slates))[slate]
    click[-1] = 2
    log = tmp_path / "impressions.csv"
    pl.DataFrame(
        {"uid": user, "iid": item, "ts": ts, "pos": position + 1, "clicked": click}
    ).write_csv(log)
    columns = (
        '{ user = "uid", item = "iid", timestamp = "ts", reward = "clicked", position = "pos" }'
    )
    code, out = _run_log(tmp_path, log, columns, "--set", "users.list_size=5")
    assert code in (0, 1)
    capsys.readouterr()
    block = json.loads((out / "summary.json").read_text(encoding="utf-8"))["off_policy"]
    accounting = block["accounting"]
    assert accounting["excluded"]["invalid_reward"] == 1
    assert "invalid_propensity" not in accounting["excluded"]
    assert accounting["kept"] + sum(accounting["excluded"].values()) == accounting["rows_in_window"]
    assert block["target_policy"] is None
    model = block["click_model"]
    assert model["rows"] == block["rows"]
    truth = theta / theta[0]
    for k, (low, high) in enumerate(model["examination_relative_ci95"]):
        # the replay window holds the last 20 % of the slates: wide, but around the truth
        assert low - 0.1 < truth[k] < high + 0.1
    for version in block["versions"].values():
        assert version["ips"] is None and version["snips"] is None
        assert version["direct"]["value"] > 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "The log has no logging propensities" in page
    assert "Click model fitted from the log" in page


def test_positions_without_clicks_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.csv"
    pl.DataFrame({"uid": [1, 2], "iid": [1, 2], "ts": [1, 2], "pos": [1, 2]}).write_csv(log)
    columns = '{ user = "uid", item = "iid", timestamp = "ts", position = "pos" }'
    code, out = _run_log(tmp_path, log, columns)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert err == [
        "rollout-lab: error: movielens_replay.toml: traffic.log.columns.reward must be set "
        "when position is (an impression log needs the column saying whether each shown item "
        "was clicked; map it or remove position), got None"
    ]


def test_direct_value_agrees_with_slate_ips_on_aslate_log() -> None:
    # A uniform random logging policy over 20 items at 3 positions, clicks from a known
    # PBM; two users whose versions rank differently.  The importance-weighted estimate of
    # each version's expected clicks per slate and the click model's direct computation
    # are two roads to the same number: they agree within their intervals, and both cover
    # the truth Σ_k θ_k α_{item at k}.
    rng = np.random.default_rng(7)
    items, theta = 20, np.array([0.95, 0.7, 0.5])
    alpha = rng.beta(2, 4, items)
    position, item, click, slate = slate_log(rng, 20_000, items, theta, alpha)
    user = rng.integers(0, 2, 20_000)[slate]
    best = np.argsort(-alpha)
    lists = {
        "good": np.array([best[:3], best[3:6]], np.int32),
        "poor": np.array([best[-3:], best[-6:-3]], np.int32),
    }
    impressions = LoggedImpressions(
        user=user,
        item=item,
        reward=click.astype(np.float64),
        propensity=np.full(item.size, 1 / items),
        position=position,
        slate=slate,
    )
    block = offpolicy_block(impressions, lists)
    model = block["click_model"]
    assert model["model"] == "position_based" and model["converged"]
    assert model["examination_relative"][0] == 1.0
    shares = np.bincount(user[::3], minlength=2) / 20_000
    for name, table in lists.items():
        version = block["versions"][name]
        ips, direct = version["ips"], version["direct"]
        truth = float(shares @ (theta * alpha[table]).sum(axis=1))
        assert ips["ci95"][0] < truth < ips["ci95"][1], name
        assert direct["ci95"][0] < truth < direct["ci95"][1], name
        half = (ips["ci95"][1] - ips["ci95"][0] + direct["ci95"][1] - direct["ci95"][0]) / 2
        assert abs(ips["value"] - direct["value"]) < half
        assert direct["unseen_items_share"] == 0.0
    good, poor = (block["versions"][n]["direct"]["value"] for n in ("good", "poor"))
    assert good > poor
