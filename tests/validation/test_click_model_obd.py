"""The position-based click model on a real slate log: the Open Bandit Dataset's sample
(uniform random logging policy, 80 items, 3 positions, 10,000 rows; ``tests.helpers_obd``)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sim.metrics.click_model import fit_position_based
from tests.helpers_obd import obd_sample as obd_file


@pytest.fixture(scope="module")
def obd_sample() -> pl.DataFrame:
    return pl.read_csv(obd_file())


def test_open_bandit_sample_fits_the_position_based_model(obd_sample: pl.DataFrame) -> None:
    frame = obd_sample
    assert frame.height == 10_000 and sorted(frame["position"].unique()) == [1, 2, 3]
    position = frame["position"].to_numpy() - 1
    item = frame["item_id"].to_numpy()
    click = frame["click"].to_numpy()
    # OBD's rows are single impressions (one position each): each row is its own slate.
    fit = fit_position_based(position, item, click, np.arange(frame.height), n_items=80)
    assert fit.model.converged and all(r.converged for r in fit.replicates)
    # The fitted model reproduces the clicks at each position (EM's fixed point).
    predicted = fit.model.examination[position] * fit.model.attractiveness[item]
    for k in range(3):
        at = position == k
        assert predicted[at].sum() == pytest.approx(click[at].sum(), rel=0.02)
    # 38 clicks in 10,000 rows: no position effect can be told apart here.  Examination of
    # positions 2 and 3 relative to the top has intervals around 1, and the likelihood-ratio
    # test against the position-blind model does not reject it.
    for low, high in fit.relative_ci95[1:]:
        assert low < 1 < high
    assert fit.p_value > 0.05
    assert (fit.perplexity < 1.05).all()
