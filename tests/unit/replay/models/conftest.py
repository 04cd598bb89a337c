"""Fixtures for the model-lifecycle tests (data generators live in ``models_data``)."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest
import scipy.sparse as sp
from models_data import clustered


@pytest.fixture
def matrix() -> sp.csr_matrix:
    return clustered(rng=np.random.default_rng(7))
