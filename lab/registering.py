"""Saving one lab-trained version to the registry, with its provenance, and naming it.

Shared by ``rollout-lab train`` / a run's versions (``lab.lifecycle``) and the releases a
release train builds during a run (``lab.release_train``): both evaluate the version on the
holdout window, save it content-addressed (the same version gets the same id on every run
and machine) and set ``tables.origin`` so summary.json names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import scipy.sparse as sp

from lab.versions import VersionTables
from replay.registry import Provenance, Registry, ValidationMetrics, data_fingerprint, evaluate

__all__ = ["Holdout", "register_tables"]


@dataclass(frozen=True, slots=True)
class Holdout:
    """What users consumed after the versions were built, and that window's bounds."""

    matrix: sp.csr_matrix
    start: datetime
    end: datetime


def register_tables(
    registry: Registry,
    tables: VersionTables,
    *,
    seen: sp.csr_matrix,
    holdout: Holdout,
    train_start: datetime,
    train_end: datetime,
    parent_id: str | None,
    update: str,
    k: int = 20,
) -> tuple[str, ValidationMetrics]:
    """Evaluate ``tables``' model on ``holdout``, save it, set its origin; its id and metrics.

    ``seen`` is what the model was trained on (filtered from the lists it is judged on);
    ``train_end`` is its data time tag (the id's time), never wall time.
    """
    metrics = evaluate(
        tables.trained_model,
        seen,
        holdout.matrix,
        k,
        holdout_start=holdout.start.isoformat(),
        holdout_end=holdout.end.isoformat(),
    )
    provenance = Provenance(
        name=tables.name,
        created_at=train_end,
        train_start=train_start.isoformat(),
        train_end=train_end.isoformat(),
        data_fingerprint=data_fingerprint(seen),
        parent_id=parent_id,
        update=update,
        metrics=metrics,
        calibration=None if tables.calibrator is None else tables.calibrator.as_dict(),
    )
    vid = registry.save(tables.trained_model, provenance)
    tables.origin = {"source": "lab", "registry_id": vid, "provenance": registry.provenance(vid)}
    return vid, metrics
