"""Two roads to a ranking's expected clicks per slate agree: the position-aware importance-
weighted estimate (slate IPS / SNIPS) and the direct value under the position-based click
model fitted from the same log, each also recomputed here with numpy.

On a synthetic log drawn from a known PBM both cover the truth; on the Open Bandit
Dataset's sample (``tests.helpers_obd``, read through ``format = "obd"``) there is no truth,
and the two agree within their intervals.  Both logs record one position per row, as OBD
does: a slate there is a single row, and its value is its own position's term.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from lab.offpolicy_log import LoggedImpressions, offpolicy_block, read_logged_impressions
from replay.logs import LogSpec, read_log
from replay.obd import obd_file_columns
from sim.metrics.click_model import fit_position_based
from tests.helpers_obd import obd_sample


def _numpy_estimates(
    impressions: LoggedImpressions, table: np.ndarray, n_items: int
) -> tuple[float, float, float]:
    """IPS, SNIPS and the PBM's direct value per slate of ``table``'s rankings, by hand."""
    assert impressions.position is not None and impressions.slate is not None
    assert impressions.propensity is not None
    k, user, item = impressions.position, impressions.user, impressions.item
    r, mu = impressions.reward, impressions.propensity
    slates = np.unique(impressions.slate).size
    w = (table[user, k] == item) / mu
    ips = float((w * r).sum() / slates)
    snips = sum(
        (k == p).sum() / slates * (w[k == p] * r[k == p]).sum() / w[k == p].sum()
        for p in np.unique(k)
    )
    fit = fit_position_based(k, item, r, impressions.slate, n_items=n_items, bootstrap=0)
    theta, alpha = fit.model.examination, fit.model.attractiveness
    direct = float((theta[k] * alpha[table[user, k]]).sum() / slates)
    return ips, float(snips), direct


def _agree(version: dict[str, Any]) -> None:
    ips, snips, direct = version["ips"], version["snips"], version["direct"]
    for estimate in (ips, snips):
        assert estimate["ci95"][0] <= direct["value"] <= estimate["ci95"][1], (estimate, direct)
        assert direct["ci95"][0] <= direct["value"] <= direct["ci95"][1]
        # The intervals overlap: the direct one is inside the importance-weighted one's reach.
        assert direct["ci95"][0] <= estimate["ci95"][1] and estimate["ci95"][0] <= direct["ci95"][1]


def test_one_position_per_row_log_with_known_truth() -> None:
    # 20 items, 3 positions, each row one position of its own slate, the logged item uniform
    # (μ = 1/20), clicks θ_k α_i; 4 users, each version a ranking per user.
    rng = np.random.default_rng(21)
    rows, items = 60_000, 20
    theta, alpha = np.array([0.9, 0.55, 0.3]), rng.beta(2, 3, items)
    position = rng.integers(0, 3, rows)
    item = rng.integers(0, items, rows)
    user = rng.integers(0, 4, rows)
    click = (rng.random(rows) < theta[position] * alpha[item]).astype(np.float64)
    best = np.argsort(-alpha)
    lists = {
        "good": np.array([best[3 * u : 3 * u + 3] for u in range(4)], np.int32),
        "poor": np.array([best[::-1][3 * u : 3 * u + 3] for u in range(4)], np.int32),
    }
    impressions = LoggedImpressions(
        user=user,
        item=item,
        reward=click,
        propensity=np.full(rows, 1 / items),
        position=position,
        slate=np.arange(rows),
    )
    block = offpolicy_block(impressions, lists, n_items=items)
    for name, table in lists.items():
        version = block["versions"][name]
        # Truth: a row's expected clicks are its own position's θ_k α of the version's item.
        truth = float((theta[position] * alpha[table[user, position]]).mean())
        for estimate in ("ips", "snips", "direct"):
            low, high = version[estimate]["ci95"]
            assert low < truth < high, (name, estimate, truth, version[estimate])
        _agree(version)
        ips, snips, direct = _numpy_estimates(impressions, table, items)
        assert version["ips"]["value"] == pytest.approx(ips, abs=1e-6)
        assert version["snips"]["value"] == pytest.approx(snips, abs=1e-6)
        assert version["direct"]["value"] == pytest.approx(direct, abs=1e-5)
    good, poor = (block["versions"][n]["direct"]["value"] for n in ("good", "poor"))
    assert good > poor


def test_open_bandit_sample_off_policy_and_direct_agree() -> None:
    path = str(obd_sample())
    table = read_log(LogSpec(path))
    roles = obd_file_columns(path, label=path)
    impressions = read_logged_impressions(
        path,
        table,
        roles.impression_roles(),
        (datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC)),
        timestamp_unit="auto",
        source=path,
        user_features=roles.user_features,
    )
    assert len(impressions) == 10_000 and impressions.accounting["excluded"] == {
        "invalid_propensity": 0,
        "invalid_reward": 0,
        "unknown_user": 0,
        "unknown_item": 0,
        "invalid_position": 0,
    }
    # Target rankings: the three items with the highest logged CTR for everyone, and a
    # random ranking per user (fixed seed).
    n_items = table.n_items
    shown = np.bincount(impressions.item, minlength=n_items)
    ctr = np.bincount(impressions.item, weights=impressions.reward, minlength=n_items) / shown
    top = np.argsort(-ctr, kind="stable")[:3]
    rng = np.random.default_rng(3)
    lists = {
        "top_ctr": np.tile(top, (table.n_users, 1)).astype(np.int32),
        "random": np.array([rng.permutation(n_items)[:3] for _ in range(table.n_users)], np.int32),
    }
    block = offpolicy_block(impressions, lists, n_items=n_items)
    assert block["slates"] == {"slates": 9_991, "positions": 3}
    for name, ranking in lists.items():
        version = block["versions"][name]
        print(name, {e: version[e]["value"] for e in ("ips", "snips", "direct")})
        _agree(version)
        ips, snips, direct = _numpy_estimates(impressions, ranking, n_items)
        assert version["ips"]["value"] == pytest.approx(ips, abs=1e-6)
        assert version["snips"]["value"] == pytest.approx(snips, abs=1e-6)
        assert version["direct"]["value"] == pytest.approx(direct, abs=1e-5)
    assert block["versions"]["top_ctr"]["direct"]["value"] > 0
