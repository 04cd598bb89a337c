"""``[rollout] manifest = "rollout.yaml"``: a scenario's rollout read from a manifest.

The manifest (a path relative to the scenario file, or a list of them; ``--rollout FILE``
sets it from the command line) is read with the safe loader and translated into the
``[rollout]`` keys its tool's semantics need — an Argo Rollouts ``Rollout`` with its analysis
templates, or a Flagger ``Canary`` with its metric templates.  Those keys then come from the
manifest only: the scenario keeps the lab's own settings (``baseline``, ``candidate``,
``metric_map``, ``segment_map``, ``webhooks``, ``kayenta``, ``mirror``, ``kill_switch_at``,
...) and setting a key the manifest sets is a one-line error.  The notes on fields that
change nothing here are kept in ``rollout.manifest_notes``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.manifests.argo import translate_argo
from lab.manifests.context import Context, Translation
from lab.manifests.flagger import translate_flagger
from lab.manifests.metric_map import MetricMap
from lab.manifests.yaml_source import ManifestError, Node, read_manifest

__all__ = ["apply_manifest", "read_documents", "translate"]


def _paths(value: Any, source: str) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise ManifestError(
        f"{source}: rollout.manifest must be a path to a YAML manifest (or a list of paths), "
        f"got {value!r}"
    )


def read_documents(paths: list[str], base_dir: Path, *, source: str) -> list[Node]:
    """Every document of the manifest files, in order.

    A path that names no file is the scenario's mistake (``rollout.manifest``), so that error
    names the scenario; what is wrong inside a manifest names the manifest.
    """
    docs: list[Node] = []
    for path in paths:
        file = Path(path)
        file = file if file.is_absolute() else base_dir / file
        if not file.is_file():
            what = "a folder" if file.is_dir() else "no file"
            raise ManifestError(
                f"{source}: rollout.manifest names {path!r}, which is {what} (paths are "
                "relative to the scenario's folder; --rollout paths to the current one)"
            )
        docs += read_manifest(file, display=path)
    return docs


def _kind(doc: Node) -> str | None:
    kind = doc.get("kind")
    return kind.value if kind is not None and isinstance(kind.value, str) else None


def translate(docs: list[Node], ctx: Context, *, candidate: str, name: str) -> Translation:
    """The translation of whichever tool's object the documents hold."""
    kinds = [_kind(d) for d in docs]
    if "Rollout" in kinds and "Canary" in kinds:
        raise ManifestError(
            f"{name}: holds both an Argo Rollouts Rollout and a Flagger Canary: give one"
        )
    if "Rollout" in kinds:
        return translate_argo(docs, ctx, candidate=candidate)
    if "Canary" in kinds:
        return translate_flagger(docs, ctx)
    found = ", ".join(sorted({k or "no kind" for k in kinds}))
    raise ManifestError(
        f"{name}: holds no Argo Rollouts Rollout and no Flagger Canary (kinds found: {found})"
    )


def apply_manifest(data: dict[str, Any], *, base_dir: Path, source: str) -> dict[str, Any]:
    """``data`` with its ``[rollout]`` (and the candidate's replicas) from the manifest."""
    rollout = data.get("rollout")
    if not isinstance(rollout, dict) or "manifest" not in rollout:
        return data
    paths = _paths(rollout["manifest"], source)
    name = ", ".join(paths)
    docs = read_documents(paths, base_dir, source=source)

    def table(key: str) -> Mapping[str, Any]:
        value = rollout.get(key)
        return value if isinstance(value, Mapping) else {}

    ctx = Context(
        source=source,
        metric_map=MetricMap(rollout.get("metric_map"), source=source),
        segment_map=table("segment_map"),
        webhooks=table("webhooks"),
        has_kayenta="kayenta" in rollout,
    )
    candidate = rollout.get("candidate", "candidate")
    result = translate(docs, ctx, candidate=str(candidate), name=name)
    for key in (*result.rollout, "manifest_notes"):
        if key in rollout:
            raise ManifestError(
                f"{source}: rollout.{key} comes from the manifest ({name}); remove it from "
                "the scenario"
            )
    out = dict(data)
    out["rollout"] = {**rollout, **result.rollout, "manifest_notes": result.notes}
    models = data.get("models")
    for model, patch in result.models.items():
        if not isinstance(models, dict) or not isinstance(models.get(model), dict):
            continue  # the scenario's own validation names the missing model
        settings = dict(models[model])
        for key, value in patch.items():
            if key in settings and settings[key] != value:
                raise ManifestError(
                    f"{source}: models.{model}.{key} = {settings[key]!r} contradicts the "
                    f"manifest's setCanaryScale ({value!r}); keep one"
                )
            settings[key] = value
        out["models"] = {**models, model: settings}
        models = out["models"]
    return out
