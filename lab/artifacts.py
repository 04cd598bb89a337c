"""What preparation caches, under which keys: worlds, trained versions, top-K lists.

Three kinds of entry in a ``replay.artifact_store.ArtifactStore``, each keyed by exactly the
inputs that determine it (plus ``code_fingerprint``: the source of every module that builds
artifacts — the ``replay`` package and the assembly modules that call it — and the versions
of the libraries they call, so changed code never reads an old entry):

    world   synthetic scenarios: the latent truth, the drifted live world and the history.
            Inputs: the scenario seed and every ``[traffic]`` setting the world and history
            are drawn from (users, items, latent factors, popularity skew, taste signal,
            history length, update window, events per user, new items, popularity drift).
    model   a trained or updated version, before any injected fault.  Inputs: how it was
            built (train, warm start, fine-tune, retrain), its hyperparameters and seed, the
            key of the data it was fitted on and, for updates, its parent's key.  Data keys
            are the world's key and the window for synthetic data, the registry's data
            fingerprint (sha256 of the interaction matrix) for replayed logs.
    lists   the top-K list of every user scored so far for one version: the model's key
            (after its fault, which also names the generator state it drew from), the data
            whose items are filtered, and K.  Rows are added as runs score new users.
    calibration
            a version's click calibration fitted on simulated validation feedback
            (``lab.calibration``): the keys of every version built so far (its lists may
            fall back to another's), the data its lists filter, K, the truth's click offset,
            the version's click lift, the number of validation lists and the state of the
            generator the fit draws from; the entry holds the coefficients and that
            generator's state afterwards, so a run that reads it draws on exactly as one
            that fitted.

A list row is the same whatever users it was scored with (``replay.topk``), and a loaded
world or model is the very arrays a fresh build makes, so a run reads the same numbers
whether its entries came from the store or were built just now.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.footprint import parse_size
from replay.artifact_store import DEFAULT_MAX_BYTES, Artifact, ArtifactStore, entry_key
from replay.errors import UserInputError

if TYPE_CHECKING:  # the builders' types load with the first artifact (--help stays fast)
    import numpy.typing as npt

    from lab.scenario import Scenario
    from replay.synthetic import History, SyntheticWorld
    from replay.training import ModelSpec, TrainedModel

__all__ = [
    "CACHE_ENV",
    "CACHE_SIZE_ENV",
    "calibration_key",
    "code_fingerprint",
    "default_cache_dir",
    "derived_key",
    "hash_library_versions",
    "lists_key",
    "model_artifact",
    "model_from_artifact",
    "model_key",
    "open_store",
    "partition_key",
    "world_artifact",
    "world_from_artifact",
    "world_key",
]

#: Libraries whose version changes what the builders produce.
_LIBRARIES = ("numpy", "scipy", "implicit", "polars")
#: The code that builds artifacts: the data layer, and the assembly modules that draw
#: worlds, build versions and score lists.  (A change anywhere else, e.g. in the simulator
#: or the reports, leaves every entry valid.)
_BUILDERS = (
    "replay/*.py",
    "lab/sources.py",
    "lab/artifacts.py",
    "lab/builder.py",
    "lab/release_train.py",
    "lab/list_store.py",
    "lab/offpolicy_log.py",
    "lab/calibration.py",
    "lab/versions.py",
)


@functools.cache
def code_fingerprint() -> str:
    """sha256 of the builders' source files and the libraries' versions (once per process:
    the code a process runs does not change under it)."""
    digest = hashlib.sha256(b"rollout-lab builders v1\0")
    root = Path(__file__).resolve().parents[1]
    for pattern in _BUILDERS:
        for path in sorted(root.glob(pattern)):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    hash_library_versions(digest, _LIBRARIES)
    # BLAS picks kernels by CPU, and kernels round differently: a store shared between
    # machines must not hand one CPU's factors to another.
    digest.update(f"{platform.machine()} {_blas_kernels()}\0".encode())
    return digest.hexdigest()


def hash_library_versions(digest: Any, libraries: tuple[str, ...]) -> None:
    """Add ``name==version`` of each installed library (``absent`` if not) to ``digest``."""
    for library in libraries:
        try:
            version = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{library}=={version}\0".encode())


def _blas_kernels() -> str:
    """The BLAS libraries loaded and the CPU architecture they chose (threadpoolctl)."""
    import numpy  # noqa: F401  (loads the BLAS numpy uses)
    from threadpoolctl import threadpool_info

    return ";".join(
        sorted(
            f"{info.get('internal_api')}:{info.get('version')}:{info.get('architecture')}"
            for info in threadpool_info()
            if info.get("user_api") == "blas"
        )
    )


def derived_key(*parts: Any) -> str:
    """A key for something fully determined by ``parts`` (JSON values, e.g. other keys)."""
    return entry_key("derived", {"parts": list(parts)})


# --- world -------------------------------------------------------------------------------


def world_key(scenario: Scenario, code: str) -> str:
    tr = scenario.traffic
    return entry_key(
        "world",
        {
            "code": code,
            "seed": scenario.seed,
            "users": tr.users,
            "items": tr.items,
            "latent_factors": tr.latent_factors,
            "popularity_skew": tr.popularity_skew,
            "taste_signal": tr.taste_signal,
            "history_s": tr.history,
            "update_window_s": tr.update_window,
            "history_events_per_user": tr.history_events_per_user,
            "new_items": tr.new_items,
            "popularity_drift": tr.popularity_drift,
            # Only when set: the keys of parametric worlds stay what they were.
            **({} if tr.fitted is None else {"fitted": tr.fitted.model_dump(mode="json")}),
        },
    )


def world_artifact(world: SyntheticWorld, live: SyntheticWorld, history: History) -> Artifact:
    return Artifact(
        {
            "user_factors": world.user_factors,
            "item_factors": world.item_factors,
            "item_bias": world.item_bias,
            "live_item_bias": live.item_bias,
            "activity": world.activity,
            "history_users": history.users,
            "history_items": history.items,
            "history_offsets_s": history.offsets_s,
        },
        {"signal": world.signal},
    )


def world_from_artifact(artifact: Artifact) -> tuple[SyntheticWorld, SyntheticWorld, History]:
    """(world the history was drawn from, live world, history)."""
    import numpy as np

    from replay.synthetic import History, SyntheticWorld

    a = artifact.arrays
    signal = float(artifact.meta["signal"])
    world = SyntheticWorld(
        a["user_factors"], a["item_factors"], a["item_bias"], a["activity"], signal
    )
    live = world
    if not np.array_equal(a["live_item_bias"], a["item_bias"]):
        live = SyntheticWorld(
            a["user_factors"], a["item_factors"], a["live_item_bias"], a["activity"], signal
        )
    history = History(a["history_users"], a["history_items"], a["history_offsets_s"])
    return world, live, history


# --- models ------------------------------------------------------------------------------


def model_key(how: str, code: str, *, data: str, spec: ModelSpec | None = None, **more: Any) -> str:
    """Key of a version built ``how`` from ``data`` (a data key), with ``spec`` and ``more``."""
    inputs: dict[str, Any] = {"code": code, "how": how, "data": data, **more}
    if spec is not None:
        inputs["algorithm"] = spec.algorithm
        inputs["hyperparameters"] = spec.hyperparameters()
    return entry_key("model", inputs)


def model_artifact(model: TrainedModel) -> Artifact:
    import numpy as np

    return Artifact(
        {
            "user_factors": np.ascontiguousarray(model.user_factors),
            "item_factors": np.ascontiguousarray(model.item_factors),
            "item_popularity": np.ascontiguousarray(model.item_popularity),
        },
        {
            "algorithm": model.algorithm,
            "hyperparameters": model.spec.hyperparameters(),
            "training_seconds": model.training_seconds,
        },
    )


def model_from_artifact(artifact: Artifact) -> TrainedModel:
    from replay.training import ModelSpec, TrainedModel

    a, meta = artifact.arrays, artifact.meta
    spec = ModelSpec(algorithm=meta["algorithm"], **meta["hyperparameters"])
    return TrainedModel(
        spec,
        a["user_factors"],
        a["item_factors"],
        a["item_popularity"],
        float(meta["training_seconds"]),
    )


def lists_key(model: str, consumed: str, k: int, code: str) -> str:
    return entry_key("lists", {"code": code, "model": model, "consumed": consumed, "k": k})


def partition_key(world: str, users: npt.NDArray[Any], code: str) -> str:
    """The key of the exposure normalisers ``ln Z_u`` of exactly ``users`` (their ids, in
    order) in the world whose data key is ``world`` (``reports.exposure``)."""
    import numpy as np

    digest = hashlib.sha256(np.ascontiguousarray(users, dtype=np.int64).tobytes()).hexdigest()
    return entry_key("partition", {"code": code, "world": world, "users": digest})


def calibration_key(
    code: str,
    *,
    version: str,
    versions: Mapping[str, str],
    consumed: str,
    k: int,
    click_offset: float,
    activity_engagement: float,
    explore_slots: int,
    click_lift: float,
    lists: int,
    rng_state: Mapping[str, Any],
) -> str:
    """Key of ``version``'s click calibration fitted on simulated feedback (see above)."""
    return entry_key(
        "calibration",
        {
            "code": code,
            "version": version,
            "versions": dict(versions),
            "consumed": consumed,
            "k": k,
            "click_offset": click_offset,
            "activity_engagement": activity_engagement,
            "explore_slots": explore_slots,
            "click_lift": click_lift,
            "lists": lists,
            "rng_state": dict(rng_state),
        },
    )


# --- where the store lives -----------------------------------------------------------------

CACHE_ENV = "ROLLOUT_LAB_CACHE"
CACHE_SIZE_ENV = "ROLLOUT_LAB_CACHE_SIZE"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$ROLLOUT_LAB_CACHE``, else ``$XDG_CACHE_HOME/rollout-lab``, else ``~/.cache/...``."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "rollout-lab"


def open_store(
    cache_dir: Path | None, *, enabled: bool = True, environ: Mapping[str, str] | None = None
) -> ArtifactStore | None:
    """The artifact store a command uses: ``cache_dir`` (``--cache-dir``) or the default.

    None with ``enabled=False`` (``--no-cache``).  A folder given explicitly must be usable
    (a one-line error otherwise); the default one silently falls back to building everything
    when it cannot be written.  ``ROLLOUT_LAB_CACHE_SIZE`` bounds its size (default 10 GB).
    """
    if not enabled:
        return None
    env = os.environ if environ is None else environ
    size = DEFAULT_MAX_BYTES
    if env.get(CACHE_SIZE_ENV):
        size = parse_size(env[CACHE_SIZE_ENV], source=CACHE_SIZE_ENV)
    if cache_dir is None:
        return ArtifactStore(default_cache_dir(env), max_bytes=size)
    root = cache_dir.expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserInputError(
            f"--cache-dir {root}: cannot be created ({error.strerror or error}); choose a "
            "writable folder or pass --no-cache"
        ) from None
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        raise UserInputError(
            f"--cache-dir {root}: is not a writable folder; choose another or pass --no-cache"
        )
    return ArtifactStore(root, max_bytes=size)
