"""The versioned model registry: artifacts, provenance, validation metrics and diffs.

A version id reads ``NAME@YYYYMMDDTHHMMSSZ-HASH8``: the version's name, the UTC time it was
created (passed in by the caller, never read from the wall clock, so reruns give the same
ids) and the first 8 hex digits of the sha256 over its factor arrays and provenance.

On disk, one directory per version::

    ROOT/NAME/YYYYMMDDTHHMMSSZ-HASH8/
        factors.npz       user_factors, item_factors, item_popularity (np.savez, no pickle)
        provenance.json   everything needed to trust and reproduce it (see ``Registry.save``)

Loading re-checks everything (readable archive, arrays present with the right dtype and
shape, shapes agreeing with provenance, content hash agreeing with the id) and turns any
problem into a one-line ``UserInputError`` naming the file, what is wrong and the fix.

Metrics (binary relevance; ``R_u`` = user u's holdout items not already in training, ``L_u``
= the top-K list with training items filtered, users with empty ``R_u`` left out):

    recall@K    mean_u |L_u ∩ R_u| / min(K, |R_u|)     (1.0 = as good as a K-list can be)
    NDCG@K      mean_u DCG_u / IDCG_u,  DCG_u = sum_{r: L_u[r] in R_u} 1 / log2(r + 2)
                (r = 0-based rank), IDCG_u = sum_{r < min(K, |R_u|)} 1 / log2(r + 2)
    coverage    |union_u L_u| / n_items of the model (catalogue coverage of the lists)
    Jaccard@K   |L_a ∩ L_b| / |L_a ∪ L_b| between two versions' lists for the same user
    RBO         rank-biased overlap, p = 0.9, extrapolated (Webber, Moffat & Zobel 2010,
                eq. 32): X_K/K p^K + (1-p)/p sum_{d=1..K} (X_d/d) p^d, X_d = overlap of
                the two depth-d prefixes; padding (-1) never overlaps
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from replay.array_files import check_declared_sizes
from replay.calibration import Platt
from replay.errors import UserInputError, must_be
from replay.topk import top_k
from replay.training import ALGORITHMS, ModelSpec, TrainedModel, as_user_items

__all__ = [
    "Provenance",
    "Registry",
    "ValidationMetrics",
    "VersionDiff",
    "data_fingerprint",
    "diff_versions",
    "evaluate",
    "jaccard_at_k",
    "rbo",
    "version_id",
]

SCHEMA = 1
FACTORS_FILE = "factors.npz"
PROVENANCE_FILE = "provenance.json"
_ARRAYS = ("user_factors", "item_factors", "item_popularity")
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
_TAG = r"(?P<stamp>\d{8}T\d{6}Z)-(?P<hash>[0-9a-f]{8})"
_VERSION = re.compile(rf"^(?P<name>{_NAME})@{_TAG}$")
_TAG_ONLY = re.compile(rf"^{_TAG}$")
_STAMP = "%Y%m%dT%H%M%SZ"
_FIX = "re-register the version with Registry.save, or delete its directory"


# --- provenance ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidationMetrics:
    """Offline metrics of one version on a holdout window (definitions in the module doc)."""

    k: int
    recall: float
    ndcg: float
    coverage: float
    n_users: int
    n_unknown_users: int = 0
    holdout_start: str | None = None
    holdout_end: str | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a version came from; the registry adds algorithm, hyperparameters, wall time.

    name             version name, ``[A-Za-z0-9][A-Za-z0-9_.-]*``
    created_at       timezone-aware creation time (stored in UTC, second precision)
    train_start/end  ISO-8601 bounds of the training window (``None`` = open)
    data_fingerprint ``data_fingerprint`` of the matrix it was trained on
    parent_id        version it was updated from, ``None`` for a first version
    update           how it was built: train, warm_start, fine_tune, retrain, or a fault
    metrics          validation metrics on the holdout window, if evaluated
    platt            Platt scaling of the raw score, if one was fitted
    calibration      the click calibrator (``ClickCalibrator.as_dict()``: list features,
                     weights, intercept, what it was fitted on), if fitted
    version_id       filled in by ``Registry.load``
    """

    name: str
    created_at: datetime
    train_start: str | None
    train_end: str | None
    data_fingerprint: str
    parent_id: str | None = None
    update: str = "train"
    metrics: ValidationMetrics | None = None
    platt: Platt | None = None
    version_id: str | None = None
    calibration: dict[str, Any] | None = None


def data_fingerprint(user_items: object) -> str:
    """sha256 (hex) of a users x items matrix: shape, indptr, indices and data.

    Computed on the canonical CSR form (sorted indices, duplicates summed) in fixed dtypes
    (int64 shape/indptr/indices, float32 data), so the same interactions always give the
    same fingerprint and changing any single interaction changes it.
    """
    matrix = as_user_items(user_items, "data_fingerprint")
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    digest = hashlib.sha256(b"rollout-lab csr v1\0")
    for array in (
        np.asarray(matrix.shape, dtype=np.int64),
        matrix.indptr.astype(np.int64),
        matrix.indices.astype(np.int64),
        matrix.data.astype(np.float32),
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def version_id(name: str, created_at: datetime, content_sha256: str) -> str:
    """``NAME@YYYYMMDDTHHMMSSZ-HASH8``."""
    return f"{name}@{_utc(created_at).strftime(_STAMP)}-{content_sha256[:8]}"


def _utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise must_be(
            "Provenance",
            "created_at",
            "a timezone-aware datetime",
            moment,
            "use datetime(..., tzinfo=datetime.UTC)",
        )
    return moment.astimezone(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_window(field: str, value: str | None) -> None:
    if value is None:
        return
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise must_be("Provenance", field, "an ISO-8601 time string or None", value) from None


def _provenance_body(model: TrainedModel, provenance: Provenance) -> dict[str, Any]:
    """The JSON document minus the parts derived from it (id and content hash)."""
    if not isinstance(provenance.name, str) or not re.fullmatch(_NAME, provenance.name):
        raise must_be(
            "Provenance",
            "name",
            "letters, digits, '_', '.', '-' (starting alphanumeric)",
            provenance.name,
        )
    _check_window("train_start", provenance.train_start)
    _check_window("train_end", provenance.train_end)
    if provenance.parent_id is not None and not _VERSION.match(provenance.parent_id):
        raise must_be("Provenance", "parent_id", "a version id or None", provenance.parent_id)
    if not re.fullmatch(r"[0-9a-f]{64}", provenance.data_fingerprint or ""):
        raise must_be(
            "Provenance",
            "data_fingerprint",
            "64 hex digits (see data_fingerprint())",
            provenance.data_fingerprint,
        )
    metrics = provenance.metrics
    platt = provenance.platt
    return {
        "schema": SCHEMA,
        "name": provenance.name,
        "created_at": _iso(provenance.created_at),
        "parent_id": provenance.parent_id,
        "update": provenance.update,
        "train_window": {"start": provenance.train_start, "end": provenance.train_end},
        "data_fingerprint": provenance.data_fingerprint,
        "algorithm": model.algorithm,
        "hyperparameters": model.spec.hyperparameters(),
        "metrics": None
        if metrics is None
        else {
            "k": int(metrics.k),
            "recall": _json_number(metrics.recall),
            "ndcg": _json_number(metrics.ndcg),
            "coverage": _json_number(metrics.coverage),
            "n_users": int(metrics.n_users),
            "n_unknown_users": int(metrics.n_unknown_users),
            "holdout_start": metrics.holdout_start,
            "holdout_end": metrics.holdout_end,
        },
        "platt": None if platt is None else {"a": float(platt.a), "b": float(platt.b)},
        "calibration": provenance.calibration,
        "training_seconds": float(model.training_seconds),
        "artifact": {
            "file": FACTORS_FILE,
            "n_users": model.n_users,
            "n_items": model.n_items,
            "n_factors": int(model.user_factors.shape[1]),
        },
    }


def _json_number(value: float) -> float | None:
    # JSON has no NaN: a metric that is undefined (no holdout users) is stored as null.
    return None if math.isnan(value) else float(value)


def _from_json_number(value: object) -> float:
    if value is None:
        return math.nan
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"metric must be a number or null, got {value!r}")
    return float(value)


def _canonical_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _content_sha256(arrays: dict[str, npt.NDArray[Any]], body: dict[str, Any]) -> str:
    digest = hashlib.sha256(b"rollout-lab version v1\0")
    for name in _ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape}\0".encode())
        digest.update(array.tobytes())
    # Wall-clock training time is recorded but not hashed: the same data and settings give
    # the same version id on every machine and every run.
    digest.update(_canonical_json({k: v for k, v in body.items() if k != "training_seconds"}))
    return digest.hexdigest()


# --- the registry --------------------------------------------------------------------------


class Registry:
    """Model versions under ``root`` (created on first save)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, version: str) -> Path:
        """Directory of ``version`` (whether or not it exists)."""
        match = _parse(version)
        return self.root / match["name"] / f"{match['stamp']}-{match['hash']}"

    def save(self, model: TrainedModel, provenance: Provenance) -> str:
        """Store ``model`` with ``provenance``; return its version id.

        provenance.json holds: schema, version_id, name, created_at, parent_id, update,
        train_window {start, end}, data_fingerprint, algorithm, hyperparameters, metrics
        {k, recall, ndcg, coverage, n_users, n_unknown_users, holdout_start, holdout_end},
        platt {a, b}, training_seconds, artifact {file, n_users, n_items, n_factors},
        content_sha256.  Saving the same content under the same name and time again is a
        no-op returning the same id.  Writes go to a temporary directory renamed into
        place, so a crash never leaves a half-written version under a valid id.
        """
        body = _provenance_body(model, provenance)
        arrays: dict[str, npt.NDArray[Any]] = {
            "user_factors": np.ascontiguousarray(model.user_factors),
            "item_factors": np.ascontiguousarray(model.item_factors),
            "item_popularity": np.ascontiguousarray(model.item_popularity),
        }
        content = _content_sha256(arrays, body)
        vid = version_id(provenance.name, provenance.created_at, content)
        target = self.path(vid)
        if target.exists():
            self.load(vid)  # raises if what is there is not this very version
            return vid
        document = dict(body, version_id=vid, content_sha256=content)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
        try:
            staging.chmod(0o755)
            with open(staging / FACTORS_FILE, "wb") as handle:
                np.savez(handle, **arrays)  # type: ignore[arg-type]
            (staging / PROVENANCE_FILE).write_text(
                json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
            )
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return vid

    def load(
        self, version: str, *, data: sp.csr_matrix | None = None
    ) -> tuple[TrainedModel, Provenance]:
        """Read and verify ``version``; with ``data``, also check its data fingerprint."""
        directory = self.path(version)
        if not directory.is_dir():
            known = self.list()
            hint = (
                f"use a registered id ({', '.join(known[-5:])})"
                if known
                else "the registry is empty: save a version first"
            )
            raise UserInputError(f"{directory}: no such version {version!r}; fix: {hint}")
        document = _read_provenance(directory / PROVENANCE_FILE)
        arrays = _read_arrays(directory / FACTORS_FILE)
        model, provenance = _rebuild(directory, version, document, arrays)
        if data is not None:
            seen = data_fingerprint(data)
            if seen != provenance.data_fingerprint:
                raise UserInputError(
                    f"{directory / PROVENANCE_FILE}: data_fingerprint "
                    f"{provenance.data_fingerprint[:12]}… does not match the given interaction "
                    f"matrix ({seen[:12]}…); fix: pass the matrix the version was trained on"
                )
        return model, provenance

    def list(self, name: str | None = None) -> list[str]:
        """Version ids present on disk, oldest first (by creation time, then name, hash).

        Lists directories only; ``load`` is what verifies their content.
        """
        if not self.root.is_dir():
            return []
        found: list[tuple[str, str, str]] = []
        for name_dir in self.root.iterdir():
            if not name_dir.is_dir() or not re.fullmatch(_NAME, name_dir.name):
                continue
            if name is not None and name_dir.name != name:
                continue
            for version_dir in name_dir.iterdir():
                match = _TAG_ONLY.match(version_dir.name)
                if match and version_dir.is_dir():
                    found.append((match["stamp"], name_dir.name, match["hash"]))
        return [f"{n}@{stamp}-{h}" for stamp, n, h in sorted(found)]

    def resolve(self, text: str) -> str:
        """The version id ``text`` names: an id itself, a version name (its newest version,
        e.g. ``baseline``) or the start of one id (``baseline@2026``, a unique prefix).

        Raises ``UserInputError`` naming the candidates when ``text`` names none or several.
        """
        known = self.list()
        if text in known:
            return text
        if "@" not in text:
            named = [vid for vid in known if vid.split("@", 1)[0] == text]
            if named:
                return named[-1]
        matches = [vid for vid in known if vid.startswith(text)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            hint = f"registered: {', '.join(known[-5:])}" if known else "the registry is empty"
            raise UserInputError(f"{self.root}: no version matches {text!r}; {hint}")
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise UserInputError(
            f"{self.root}: {text!r} matches {len(matches)} versions ({shown}); give more of the id"
        )

    def provenance(self, version: str) -> dict[str, Any]:
        """``provenance.json`` of ``version`` as read (its arrays are not loaded or checked:
        ``load`` verifies a version)."""
        return _read_provenance(self.path(version) / PROVENANCE_FILE)

    def last_good(
        self,
        name: str | None = None,
        *,
        before: datetime | None = None,
        exclude: Collection[str] = (),
    ) -> str | None:
        """Newest version created strictly before ``before`` that loads and verifies.

        The rollback target: corrupt versions and the ids in ``exclude`` (e.g. versions
        that were rolled back) are skipped.  ``None`` when nothing qualifies.
        """
        limit = None if before is None else _utc(before).strftime(_STAMP)
        for vid in reversed(self.list(name)):
            if vid in exclude:
                continue
            if limit is not None and _parse(vid)["stamp"] >= limit:
                continue
            try:
                self.load(vid)
            except UserInputError:
                continue
            return vid
        return None


def _parse(version: str) -> re.Match[str]:
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise must_be("registry", "version id", "NAME@YYYYMMDDTHHMMSSZ-HASH8", version)
    return match


def _read_provenance(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserInputError(f"{path}: file is missing; fix: {_FIX}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserInputError(f"{path}: cannot be read ({error}); fix: {_FIX}") from None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        # ValueError covers JSONDecodeError and integers too long to convert; RecursionError
        # a document nested deeper than the parser can follow.
        raise UserInputError(
            f"{path}: invalid JSON ({type(error).__name__}: {str(error)[:120]}); fix: {_FIX}"
        ) from None
    if not isinstance(document, dict):
        raise UserInputError(
            f"{path}: invalid provenance (top level must be an object, got "
            f"{type(document).__name__}); fix: {_FIX}"
        )
    return document


def _read_arrays(path: Path) -> dict[str, npt.NDArray[Any]]:
    if not path.is_file():
        raise UserInputError(f"{path}: file is missing; fix: {_FIX}")
    check_declared_sizes(path, fix=_FIX)
    arrays: dict[str, npt.NDArray[Any]] = {}
    try:
        # The handle is ours, so it is closed even when numpy fails halfway through.
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            names = set(archive.files)
            for name in _ARRAYS:
                if name not in names:
                    raise UserInputError(
                        f"{path}: array {name!r} is missing (has {sorted(names)}); fix: {_FIX}"
                    )
                arrays[name] = archive[name]
    except UserInputError:
        raise
    except (OSError, ValueError, EOFError, KeyError, MemoryError, zipfile.BadZipFile) as error:
        # MemoryError: a header that declares an absurd shape (a crafted or corrupt file).
        raise UserInputError(
            f"{path}: not a readable .npz archive ({type(error).__name__}: {error}); fix: {_FIX}"
        ) from None
    expected = {
        "user_factors": (np.float32, 2),
        "item_factors": (np.float32, 2),
        "item_popularity": (np.int64, 1),
    }
    for name, (dtype, ndim) in expected.items():
        array = arrays[name]
        if array.dtype != dtype or array.ndim != ndim:
            raise UserInputError(
                f"{path}: array {name!r} must be {ndim}-D {np.dtype(dtype).name}, got "
                f"{array.ndim}-D {array.dtype}; fix: {_FIX}"
            )
    return arrays


def _rebuild(
    directory: Path,
    version: str,
    document: dict[str, Any],
    arrays: dict[str, npt.NDArray[Any]],
) -> tuple[TrainedModel, Provenance]:
    json_path = directory / PROVENANCE_FILE
    npz_path = directory / FACTORS_FILE
    try:
        provenance, spec, seconds, artifact = _parse_document(document)
        stored_hash = document["content_sha256"]
        stored_id = document["version_id"]
        if not isinstance(stored_hash, str) or not isinstance(stored_id, str):
            raise TypeError("content_sha256 and version_id must be strings")
    except (KeyError, TypeError, ValueError, UserInputError) as error:
        detail = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise UserInputError(f"{json_path}: invalid provenance ({detail}); fix: {_FIX}") from None
    if stored_id != version:
        raise UserInputError(
            f"{json_path}: version_id is {stored_id!r} but the file sits under {version!r} "
            f"(moved or copied by hand); fix: {_FIX}"
        )

    users, items = arrays["user_factors"], arrays["item_factors"]
    popularity = arrays["item_popularity"]
    shapes = {
        "user_factors": (users.shape, (artifact["n_users"], artifact["n_factors"])),
        "item_factors": (items.shape, (artifact["n_items"], artifact["n_factors"])),
        "item_popularity": (popularity.shape, (artifact["n_items"],)),
    }
    for name, (seen, said) in shapes.items():
        if tuple(seen) != tuple(said):
            raise UserInputError(
                f"{npz_path}: {name} has shape {tuple(seen)} but provenance.json says "
                f"{tuple(said)}; fix: {_FIX}"
            )

    body = {
        key: value for key, value in document.items() if key not in ("version_id", "content_sha256")
    }
    content = _content_sha256(arrays, body)
    expected_hash = _parse(version)["hash"]
    if content != stored_hash or content[:8] != expected_hash:
        raise UserInputError(
            f"{npz_path}: content hash {content[:8]} does not match the version's "
            f"{expected_hash} (factors or provenance changed after registration); "
            f"fix: {_FIX}"
        )
    model = TrainedModel(spec, users, items, popularity, seconds)
    return model, provenance


def _parse_document(
    document: dict[str, Any],
) -> tuple[Provenance, ModelSpec, float, dict[str, int]]:
    if document["schema"] != SCHEMA:
        raise ValueError(f"schema must be {SCHEMA}, got {document['schema']!r}")
    algorithm = document["algorithm"]
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    hyper = document["hyperparameters"]
    spec = ModelSpec(
        algorithm=algorithm,
        factors=hyper["factors"],
        regularization=hyper["regularization"],
        iterations=hyper["iterations"],
        alpha=hyper["alpha"],
        learning_rate=hyper["learning_rate"],
        seed=hyper["seed"],
    )
    seconds = document["training_seconds"]
    if not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValueError(f"training_seconds must be a number, got {seconds!r}")
    artifact = document["artifact"]
    dims = {key: artifact[key] for key in ("n_users", "n_items", "n_factors")}
    if not all(isinstance(v, int) and v >= 0 for v in dims.values()):
        raise ValueError(f"artifact sizes must be integers >= 0, got {dims}")
    metrics_doc = document["metrics"]
    metrics = None
    if metrics_doc is not None:
        metrics = ValidationMetrics(
            k=int(metrics_doc["k"]),
            recall=_from_json_number(metrics_doc["recall"]),
            ndcg=_from_json_number(metrics_doc["ndcg"]),
            coverage=_from_json_number(metrics_doc["coverage"]),
            n_users=int(metrics_doc["n_users"]),
            n_unknown_users=int(metrics_doc["n_unknown_users"]),
            holdout_start=metrics_doc["holdout_start"],
            holdout_end=metrics_doc["holdout_end"],
        )
    platt_doc = document["platt"]
    platt = None if platt_doc is None else Platt(float(platt_doc["a"]), float(platt_doc["b"]))
    window = document["train_window"]
    created = datetime.strptime(document["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    provenance = Provenance(
        name=str(document["name"]),
        created_at=created,
        train_start=window["start"],
        train_end=window["end"],
        data_fingerprint=str(document["data_fingerprint"]),
        parent_id=document["parent_id"],
        update=str(document["update"]),
        metrics=metrics,
        platt=platt,
        version_id=document["version_id"],
        # Artifacts written before the click calibrator existed have no such key.
        calibration=document.get("calibration"),
    )
    return provenance, spec, float(seconds), dims


# --- offline evaluation --------------------------------------------------------------------


def _binary(matrix: sp.csr_matrix, n_users: int, n_items: int) -> sp.csr_matrix:
    """0/1 copy padded (or cropped) to ``n_users x n_items``."""
    coo = matrix.tocoo()
    keep = (coo.row < n_users) & (coo.col < n_items) & (coo.data != 0)
    ones = np.ones(int(keep.sum()), dtype=np.float32)
    out = sp.csr_matrix((ones, (coo.row[keep], coo.col[keep])), shape=(n_users, n_items))
    out.sum_duplicates()
    out.data[:] = 1.0
    return out


def evaluate(
    model: TrainedModel,
    train_matrix: sp.csr_matrix,
    holdout_matrix: sp.csr_matrix,
    k: int,
    *,
    holdout_start: str | None = None,
    holdout_end: str | None = None,
) -> ValidationMetrics:
    """recall@K, NDCG@K and coverage of ``model`` on a holdout window (see module doc).

    ``train_matrix`` is what the model saw (its items are filtered from the lists and from
    the relevant sets); users of the holdout unknown to the model get the popularity order
    and are counted in ``n_unknown_users``.
    """
    source = "evaluate"
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise must_be(source, "k", "an integer >= 1", k)
    train = as_user_items(train_matrix, source)
    holdout = as_user_items(holdout_matrix, source)
    n_users = max(train.shape[0], holdout.shape[0])
    n_items = max(train.shape[1], holdout.shape[1])
    seen = _binary(train, n_users, n_items)
    relevant = _binary(holdout, n_users, n_items)
    relevant = relevant - relevant.multiply(seen)
    relevant = sp.csr_matrix(relevant)
    relevant.eliminate_zeros()
    n_relevant = np.diff(relevant.indptr)
    users = np.flatnonzero(n_relevant > 0)
    if users.size == 0:
        return ValidationMetrics(k, math.nan, math.nan, math.nan, 0, 0, holdout_start, holdout_end)

    lists = top_k(model, users, seen, k)
    items = lists.items.astype(np.int64)
    relevant_keys = _pair_keys(relevant, n_items)
    rec_keys = users[:, None].astype(np.int64) * n_items + items
    hits = (items >= 0) & np.isin(rec_keys, relevant_keys)

    cap = np.minimum(k, n_relevant[users])
    recall = hits.sum(axis=1) / cap
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    idcg = np.cumsum(discounts)[cap - 1]
    shown = np.unique(items[items >= 0])
    return ValidationMetrics(
        k=k,
        recall=float(recall.mean()),
        ndcg=float((dcg / idcg).mean()),
        coverage=float(shown.size / model.n_items) if model.n_items else 0.0,
        n_users=int(users.size),
        n_unknown_users=lists.n_unknown,
        holdout_start=holdout_start,
        holdout_end=holdout_end,
    )


def _pair_keys(matrix: sp.csr_matrix, n_items: int) -> npt.NDArray[np.int64]:
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys: npt.NDArray[np.int64] = rows * n_items + np.asarray(matrix.indices, dtype=np.int64)
    return keys


# --- comparing two versions ----------------------------------------------------------------


def _overlaps(
    a: npt.NDArray[np.integer[Any]], b: npt.NDArray[np.integer[Any]]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """For each entry of ``a``: whether ``b`` holds it, and the depth at which both do."""
    if a.shape != b.shape or a.ndim != 2:
        raise must_be(
            "stability", "lists", f"two [n, k] arrays of one shape, got {a.shape} and", b.shape
        )
    same = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
    found = same.any(axis=2)
    position_b = same.argmax(axis=2)
    depth = np.maximum(np.arange(a.shape[1])[None, :], position_b) + 1
    return found, depth.astype(np.int64)


def jaccard_at_k(
    a: npt.NDArray[np.integer[Any]], b: npt.NDArray[np.integer[Any]]
) -> npt.NDArray[np.float64]:
    """Per-row Jaccard of two [n, k] lists (``-1`` = padding); 1.0 when both are empty."""
    found, _ = _overlaps(a, b)
    both = found.sum(axis=1)
    union = (a >= 0).sum(axis=1) + (b >= 0).sum(axis=1) - both
    return np.where(union > 0, both / np.maximum(union, 1), 1.0)


def rbo(
    a: npt.NDArray[np.integer[Any]], b: npt.NDArray[np.integer[Any]], p: float = 0.9
) -> npt.NDArray[np.float64]:
    """Per-row extrapolated RBO of two [n, k] ranked lists (module doc); 1.0 if both empty."""
    if not 0 < p < 1:
        raise must_be("rbo", "p", "in (0, 1)", p)
    found, depth = _overlaps(a, b)
    n, k = a.shape
    if k == 0:
        return np.ones(n)
    counts = np.zeros((n, k + 1), dtype=np.int64)
    rows = np.broadcast_to(np.arange(n)[:, None], depth.shape)
    np.add.at(counts, (rows[found], depth[found]), 1)
    overlap = np.cumsum(counts, axis=1)[:, 1:]  # X_d for d = 1..k
    d = np.arange(1, k + 1)
    agreement = overlap / d
    weights = p**d
    score = overlap[:, -1] / k * p**k + (1 - p) / p * (agreement * weights).sum(axis=1)
    empty = ((a >= 0).sum(axis=1) == 0) & ((b >= 0).sum(axis=1) == 0)
    return np.where(empty, 1.0, score)


@dataclass(frozen=True, slots=True)
class VersionDiff:
    """How version b differs from version a (deltas are b - a; None where not comparable)."""

    recall_delta: float | None
    ndcg_delta: float | None
    coverage_delta: float | None
    jaccard_mean: float
    rbo_mean: float
    n_users: int
    k: int


def diff_versions(
    a: tuple[TrainedModel, Provenance],
    b: tuple[TrainedModel, Provenance],
    users: npt.ArrayLike,
    user_items: sp.csr_matrix,
    k: int,
) -> VersionDiff:
    """Metric deltas from provenance plus list stability on a user sample.

    ``a`` and ``b`` are what ``Registry.load`` returns.  Metric deltas need both versions
    evaluated at the same K; the lists (``top_k`` with ``user_items`` filtered) are compared
    by mean Jaccard@k and mean RBO (p = 0.9) over ``users``.
    """
    model_a, prov_a = a
    model_b, prov_b = b
    sample = np.asarray(users)
    if sample.size == 0:
        raise must_be("diff_versions", "users", "a non-empty sample of user ids", "empty")
    lists_a = top_k(model_a, sample, user_items, k).items
    lists_b = top_k(model_b, sample, user_items, k).items
    m_a, m_b = prov_a.metrics, prov_b.metrics
    comparable = m_a is not None and m_b is not None and m_a.k == m_b.k

    def delta(field: str) -> float | None:
        if not comparable:
            return None
        return float(getattr(m_b, field) - getattr(m_a, field))

    return VersionDiff(
        recall_delta=delta("recall"),
        ndcg_delta=delta("ndcg"),
        coverage_delta=delta("coverage"),
        jaccard_mean=float(jaccard_at_k(lists_a, lists_b).mean()),
        rbo_mean=float(rbo(lists_a, lists_b).mean()),
        n_users=int(sample.size),
        k=int(k),
    )
