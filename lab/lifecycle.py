"""Model versions into the registry: what ``rollout-lab train`` does.

Every version a scenario builds is evaluated on the holdout window (what users consumed
after the versions were built: the replay window of a log, organic picks of the synthetic
world after time zero) and saved with its provenance: parent, training window, data
fingerprint, algorithm and hyperparameters, recall@K / NDCG@K / coverage, click calibrator
and training wall time.  Version ids carry the end of the training window as their time tag
(data time, not wall time), so the same scenario registers the same ids on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.pipeline import Prepared, _model_order, holdout_of
from lab.registering import register_tables
from replay.registry import Registry

__all__ = ["RegisteredVersion", "register_versions"]


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    name: str
    version_id: str
    parent_id: str | None
    recall: float
    ndcg: float
    coverage: float
    training_s: float


def register_versions(prepared: Prepared, root: Path, *, k: int = 20) -> list[RegisteredVersion]:
    """Evaluate and save every version ``prepared`` trained under ``root``; parents first.

    Each registered version's ``origin`` (summary.json) then carries its id and provenance;
    versions loaded from the registry keep theirs, and versions from tables, embeddings or
    plugins are not lab models and are not registered.
    """
    scenario = prepared.scenario
    source = prepared.source
    registry = Registry(root)
    holdout = holdout_of(prepared)
    tables = {t.name: t for t in prepared.versions}
    ids: dict[str, str] = {}
    out: list[RegisteredVersion] = []
    for name in _model_order(scenario):
        settings = scenario.models[name]
        table = tables[name]
        if settings.source != "lab":
            # Loaded from the registry: already there.  From a table, embeddings or a
            # plugin: not a lab model, nothing to register.
            if settings.source == "registry":
                ids[name] = table.origin["registry_id"]
            continue
        window = "train" if settings.parent is None else "update"
        seen = source.matrices["train"] if settings.parent is None else source.matrices["all"]
        parent_id = ids.get(settings.parent) if settings.parent else None
        vid, metrics = register_tables(
            registry,
            table,
            seen=seen,
            holdout=holdout,
            train_start=source.windows["train"][0],
            train_end=source.windows[window][1],
            parent_id=parent_id,
            update=(settings.update if settings.parent else "train")
            + (f"+{settings.fault}" if settings.fault else ""),
            k=k,
        )
        ids[name] = vid
        out.append(
            RegisteredVersion(
                name,
                vid,
                parent_id,
                metrics.recall,
                metrics.ndcg,
                metrics.coverage,
                table.model.training_seconds,
            )
        )
    return out
