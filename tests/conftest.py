"""Test-wide environment: headless matplotlib, single-threaded BLAS, private config and cache;
and every ``summary.json`` the tests write validates against its schema
(``reports.summary_schema.Summary``), checked once the session's tests have run."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="rollout-lab-mpl-"))
# Prepared artifacts go to a throwaway folder: tests never write into the user's own cache.
os.environ["ROLLOUT_LAB_CACHE"] = tempfile.mkdtemp(prefix="rollout-lab-cache-")


@pytest.fixture(scope="session", autouse=True)
def _summaries_validate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the last test: every ``summary.json`` under the session's temporary folders
    (complete runs write it last, so each one is a finished summary) fits the schema."""
    yield
    from pydantic import ValidationError

    from reports.summary_schema import Summary
    from rollout_lab.outputs import MANIFEST as RUN_MANIFEST

    problems = []
    for path in sorted(tmp_path_factory.getbasetemp().rglob("summary.json")):
        if not (path.parent / RUN_MANIFEST).is_file():
            continue  # not a run's folder: the safety tests plant files the lab never wrote
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue  # planted bytes (a built summary is always JSON: the run tests read it)
        if not isinstance(document, dict) or "schema_version" not in document:
            continue  # the output-commit tests' stand-ins: every built summary has one
        try:
            Summary.model_validate(document)
        except ValidationError as exc:
            problems.append(f"{path}: {str(exc)[:600]}")
    assert not problems, "summary.json files that do not fit the schema:\n" + "\n".join(problems)
