"""Test-wide environment: headless matplotlib, single-threaded BLAS, private config and cache."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="rollout-lab-mpl-"))
# Prepared artifacts go to a throwaway folder: tests never write into the user's own cache.
os.environ["ROLLOUT_LAB_CACHE"] = tempfile.mkdtemp(prefix="rollout-lab-cache-")
