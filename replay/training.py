"""Model versions trained with ``implicit``: full fit, warm start, fine-tune, retrain, faults.

    ModelSpec      what to train: algorithm, hyperparameters and an int seed
    TrainedModel   what a version serves with: factors, item popularity, spec, wall time

Every algorithm scores user ``u`` for item ``i`` as ``user_factors[u] @ item_factors[i]``;
the columns differ by algorithm (``f`` = ``spec.factors``):

    als         f columns (Hu, Koren & Volinsky 2008; conjugate-gradient solver)
    bpr         f + 1: users carry a constant 1 in the last column, items their bias
    lmf         f + 2: users ``[..., 1, user bias]``, items ``[..., item bias, 1]``
    popularity  1 column: users 1.0, items their interaction count (users who touched it)
    random      f columns of seeded standard normal draws (a sanity-check baseline)
    external    built outside the lab and never trained here: embeddings placed in the
                lab's id space (``replay.embeddings``), or the stand-in scorer of a version
                whose lists come from a table or a plugin (``lab.external``)

Interaction matrices are users x items ``scipy.sparse.csr_matrix`` (``interaction_matrix``
builds them).  implicit trains silently transposed when handed items x users, so updates
insist that the matrix covers the parent's users x items shape.

Determinism: implicit models are built with an int ``random_state`` and fitted inside
``threadpool_limits(1, "blas")``; the same spec on the same matrix gives bit-identical
factors.  ``threads`` (every entry point's keyword) parallelises ALS only: its solver
re-solves each user (item) alone given the other side's factors, so any number of threads
gives the same bits.  BPR and LMF always run one thread: their parallel SGD updates race
(Hogwild), so their results would depend on thread timing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from replay.errors import InternalError, UserInputError, must_be

__all__ = [
    "ALGORITHMS",
    "FAULT_KINDS",
    "Algorithm",
    "FaultKind",
    "ModelSpec",
    "TrainedModel",
    "active_ids",
    "as_user_items",
    "fine_tune",
    "inject_fault",
    "retrain",
    "to_implicit",
    "train",
    "warm_start",
]

Algorithm = Literal["als", "bpr", "lmf", "popularity", "random", "external"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)
FaultKind = Literal["noisy_factors", "stale", "popularity_only"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]

# Scale of the uniform draw that seeds rows for users/items a model has never seen; the same
# scale implicit uses for a fresh ALS model, so grown rows look like an untrained start.
_INIT_SCALE = 0.01


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What to train.  Defaults match the scenario file's ``[models.*]`` defaults.

    ``alpha`` scales ALS confidences (``C = alpha * weight``); ``learning_rate`` is used by
    BPR and LMF only; ``seed`` is the int ``random_state`` handed to implicit (an int, not a
    Generator, so that the model can be saved and re-created).
    """

    algorithm: Algorithm = "als"
    factors: int = 32
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 10.0
    learning_rate: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        source = "ModelSpec"
        if self.algorithm not in ALGORITHMS:
            raise must_be(source, "algorithm", f"one of {', '.join(ALGORITHMS)}", self.algorithm)
        if not _is_int(self.factors) or self.factors < 1:
            raise must_be(source, "factors", "an integer >= 1", self.factors)
        if not _is_int(self.iterations) or self.iterations < 1:
            raise must_be(source, "iterations", "an integer >= 1", self.iterations)
        if not _is_int(self.seed) or not 0 <= self.seed < 2**63:
            raise must_be(source, "seed", "an integer in [0, 2**63)", self.seed)
        if not _is_real(self.regularization) or not (
            math.isfinite(self.regularization) and self.regularization >= 0
        ):
            raise must_be(source, "regularization", "a finite number >= 0", self.regularization)
        for name in ("alpha", "learning_rate"):
            value = getattr(self, name)
            if not _is_real(value) or not (math.isfinite(value) and value > 0):
                raise must_be(source, name, "a finite number > 0", value)

    def hyperparameters(self) -> dict[str, int | float]:
        """Everything but the algorithm, as plain JSON-ready numbers."""
        return {
            "factors": int(self.factors),
            "regularization": float(self.regularization),
            "iterations": int(self.iterations),
            "alpha": float(self.alpha),
            "learning_rate": float(self.learning_rate),
            "seed": int(self.seed),
        }


def _frozen_view(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, slots=True, eq=False)
class TrainedModel:
    """The arrays one model version serves with.  Arrays are read-only views.

    user_factors     float32 [n_users, d]
    item_factors     float32 [n_items, d]
    item_popularity  int64   [n_items]  users who interacted with each item in the data the
                                        version was built from (the popularity fallback)
    spec             hyperparameters it was built with (``spec.algorithm`` is its algorithm)
    training_seconds wall-clock seconds of the fit or update step alone
    """

    spec: ModelSpec
    user_factors: Float32Array
    item_factors: Float32Array
    item_popularity: Int64Array
    training_seconds: float = 0.0

    def __post_init__(self) -> None:
        source = "TrainedModel"
        for name in ("user_factors", "item_factors"):
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.ndim != 2:
                raise must_be(source, name, "a 2-D float32 array", _describe(array))
        if self.user_factors.shape[1] != self.item_factors.shape[1]:
            raise must_be(
                source,
                "item_factors",
                f"{self.user_factors.shape[1]} columns like user_factors",
                self.item_factors.shape[1],
            )
        popularity = self.item_popularity
        if (
            not isinstance(popularity, np.ndarray)
            or popularity.dtype != np.int64
            or popularity.shape != (self.item_factors.shape[0],)
        ):
            raise must_be(
                source,
                "item_popularity",
                f"an int64 array of shape ({self.item_factors.shape[0]},)",
                _describe(popularity),
            )
        for name in ("user_factors", "item_factors", "item_popularity"):
            object.__setattr__(self, name, _frozen_view(getattr(self, name)))

    @property
    def algorithm(self) -> Algorithm:
        return self.spec.algorithm

    @property
    def n_users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


# --- inputs --------------------------------------------------------------------------------


def as_user_items(matrix: object, source: str) -> sp.csr_matrix:
    """Return ``matrix`` as the float32 users x items ``csr_matrix`` implicit wants.

    Accepts any scipy sparse matrix or array (``csr_array`` is converted, because implicit
    only recognises ``csr_matrix``); rejects dense input and non-finite weights.
    """
    if not sp.issparse(matrix):
        raise must_be(
            source, "user_items", "a scipy.sparse users x items matrix", _describe(matrix)
        )
    sparse: Any = matrix
    if len(sparse.shape) != 2:
        raise must_be(source, "user_items", "2-D", sparse.shape)
    csr = sp.csr_matrix(sparse, dtype=np.float32)
    if not np.all(np.isfinite(csr.data)):
        raise must_be(source, "user_items", "finite weights", "non-finite values")
    return csr


def _item_popularity(matrix: sp.csr_matrix, n_items: int) -> Int64Array:
    return np.bincount(matrix.indices, minlength=n_items).astype(np.int64)


def _ids(values: object, bound: int, source: str, field: str, axis: str) -> Int64Array:
    """Validate ids against ``[0, bound)`` before they reach implicit, which does not check."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise must_be(source, field, "a 1-D array of ids", f"shape {array.shape}")
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise must_be(source, field, "integer ids", str(array.dtype))
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= bound:
        bad = low if low < 0 else high
        raise must_be(
            source,
            field,
            f"ids in [0, {bound}) ({axis} of user_items_all)" if bound else "empty",
            bad,
            "ids beyond the interaction matrix have no data to learn from",
        )
    return np.unique(array.astype(np.int64))


def active_ids(window: object) -> tuple[Int64Array, Int64Array]:
    """Users (rows) and items (columns) with at least one interaction in ``window``."""
    matrix = as_user_items(window, "active_ids")
    users = np.flatnonzero(np.diff(matrix.indptr)).astype(np.int64)
    items = np.flatnonzero(np.bincount(matrix.indices, minlength=matrix.shape[1])).astype(np.int64)
    return users, items


# --- implicit glue -------------------------------------------------------------------------


def _implicit_model(spec: ModelSpec, iterations: int | None = None, threads: int = 1) -> Any:
    """A CPU implicit model for ``spec`` (never the GPU one: we want bit-reproducible runs).

    Call inside ``threadpool_limits(1, "blas")``: implicit warns at construction when BLAS
    runs several threads (and training is then much slower).
    """
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.cpu.lmf import LogisticMatrixFactorization

    # One BLAS thread and an int seed: the same spec trains the same factors every time.
    common: dict[str, Any] = {
        "factors": spec.factors,
        "regularization": spec.regularization,
        "dtype": np.float32,
        "iterations": spec.iterations if iterations is None else iterations,
        "num_threads": _threads(spec, threads),
        "random_state": spec.seed,
    }
    if spec.algorithm == "als":
        return AlternatingLeastSquares(alpha=spec.alpha, **common)
    if spec.algorithm == "bpr":
        return BayesianPersonalizedRanking(learning_rate=spec.learning_rate, **common)
    if spec.algorithm == "lmf":
        return LogisticMatrixFactorization(learning_rate=spec.learning_rate, **common)
    raise InternalError(f"no implicit model for algorithm {spec.algorithm!r}")


def _threads(spec: ModelSpec, threads: int) -> int:
    """Threads implicit may use for ``spec``: ALS's exact per-row solves only (module doc)."""
    if not _is_int(threads) or threads < 1:
        raise must_be("training", "threads", "an integer >= 1", threads)
    return int(threads) if spec.algorithm == "als" else 1


def to_implicit(model: TrainedModel) -> Any:
    """An implicit model object holding copies of ``model``'s factors (als, bpr, lmf only).

    Useful to call implicit's own ``recommend`` or ``save`` on a registered version.
    """
    if model.algorithm not in ("als", "bpr", "lmf"):
        raise must_be(
            "to_implicit",
            "model.algorithm",
            "als, bpr or lmf",
            model.algorithm,
            "popularity and random models have no implicit counterpart",
        )
    with threadpool_limits(1, "blas"):
        instance = _implicit_model(model.spec)
    instance.user_factors = np.array(model.user_factors, dtype=np.float32)
    instance.item_factors = np.array(model.item_factors, dtype=np.float32)
    return instance


def _fit(
    spec: ModelSpec,
    matrix: sp.csr_matrix,
    *,
    iterations: int | None = None,
    start_from: tuple[Float32Array, Float32Array] | None = None,
    threads: int = 1,
) -> tuple[Float32Array, Float32Array]:
    """Run implicit's ``fit``; with ``start_from``, from those factors instead of random."""
    with threadpool_limits(1, "blas"):
        instance = _implicit_model(spec, iterations, threads)
        if start_from is not None:
            instance.user_factors, instance.item_factors = start_from
        instance.fit(matrix, show_progress=False)
    users = np.ascontiguousarray(instance.user_factors, dtype=np.float32)
    items = np.ascontiguousarray(instance.item_factors, dtype=np.float32)
    _check_finite(users, items)
    return users, items


def _check_finite(users: Float32Array, items: Float32Array) -> None:
    if not (np.all(np.isfinite(users)) and np.all(np.isfinite(items))):
        raise InternalError("training produced non-finite factors from finite input")


# --- growing a parent ----------------------------------------------------------------------


def _grow_rng(spec: ModelSpec, parent_shape: tuple[int, int]) -> np.random.Generator:
    # Derived from the spec's seed and the parent's shape so that the same update on the same
    # parent always draws the same new rows, without a global generator.
    return np.random.default_rng(np.random.SeedSequence([spec.seed, *parent_shape]))


def _grow(
    factors: Float32Array,
    n_rows: int,
    *,
    constant_columns: dict[int, float],
    rng: np.random.Generator,
) -> Float32Array:
    """Copy ``factors`` into ``n_rows`` rows; new rows ~ U[0, 0.01) except fixed columns."""
    old, width = factors.shape
    grown = np.empty((n_rows, width), dtype=np.float32)
    grown[:old] = factors
    if n_rows > old:
        grown[old:] = rng.random((n_rows - old, width), dtype=np.float32) * _INIT_SCALE
        for column, value in constant_columns.items():
            grown[old:, column] = value
    return grown


def _constant_columns(algorithm: str) -> tuple[dict[int, float], dict[int, float]]:
    """Columns of (users, items) that implicit keeps constant or uses as a bias."""
    if algorithm == "bpr":
        return {-1: 1.0}, {-1: 0.0}
    if algorithm == "lmf":
        return {-2: 1.0, -1: 0.0}, {-2: 0.0, -1: 1.0}
    return {}, {}


def _grown_factors(
    parent: TrainedModel, n_users: int, n_items: int, rng: np.random.Generator | None
) -> tuple[Float32Array, Float32Array]:
    generator = rng if rng is not None else _grow_rng(parent.spec, (parent.n_users, parent.n_items))
    user_columns, item_columns = _constant_columns(parent.algorithm)
    users = _grow(parent.user_factors, n_users, constant_columns=user_columns, rng=generator)
    items = _grow(parent.item_factors, n_items, constant_columns=item_columns, rng=generator)
    return users, items


def _covering_matrix(parent: TrainedModel, user_items_all: object, source: str) -> sp.csr_matrix:
    matrix = as_user_items(user_items_all, source)
    rows, cols = matrix.shape
    if rows < parent.n_users or cols < parent.n_items:
        raise must_be(
            source,
            "user_items_all.shape",
            f"at least the parent's users x items ({parent.n_users}, {parent.n_items})",
            (rows, cols),
            "pass every interaction so far as users x items, not items x users",
        )
    return matrix


# --- public training entry points ----------------------------------------------------------


def train(spec: ModelSpec, user_items: sp.csr_matrix, *, threads: int = 1) -> TrainedModel:
    """Fit ``spec`` from scratch on users x items ``user_items``.

    ``training_seconds`` covers the fit alone (not input validation).
    """
    if spec.algorithm == "external":
        raise must_be("train", "spec.algorithm", "one the lab trains", "external")
    matrix = as_user_items(user_items, "train")
    if matrix.nnz == 0:
        raise must_be("train", "user_items", "a matrix with at least one interaction", "empty")
    n_users, n_items = matrix.shape
    popularity = _item_popularity(matrix, n_items)
    start = time.perf_counter()
    if spec.algorithm in ("als", "bpr", "lmf"):
        users, items = _fit(spec, matrix, threads=threads)
    elif spec.algorithm == "popularity":
        users = np.ones((n_users, 1), dtype=np.float32)
        items = popularity.astype(np.float32)[:, None]
    else:
        rng = np.random.default_rng(spec.seed)
        users = rng.standard_normal((n_users, spec.factors), dtype=np.float32)
        items = rng.standard_normal((n_items, spec.factors), dtype=np.float32)
    seconds = time.perf_counter() - start
    return TrainedModel(spec, users, items, popularity, seconds)


def retrain(spec: ModelSpec, user_items_all: sp.csr_matrix, *, threads: int = 1) -> TrainedModel:
    """Full retrain on every interaction so far (the slow, reference way to update)."""
    return train(spec, user_items_all, threads=threads)


def warm_start(
    parent: TrainedModel,
    user_items_all: sp.csr_matrix,
    update_users: npt.ArrayLike,
    update_items: npt.ArrayLike,
    *,
    rng: np.random.Generator | None = None,
    threads: int = 1,
) -> TrainedModel:
    """Update an ALS parent with implicit's ``partial_fit_users`` / ``partial_fit_items``.

    user_items_all  users x items, every interaction so far (at least the parent's shape)
    update_users    users active in the update window (see ``active_ids``); their factors are
                    re-solved exactly from their full rows, given the item factors
    update_items    items active in the update window; re-solved afterwards from their full
                    columns, given the new user factors

    The factors grow to the matrix's shape first, because implicit reads
    ``item_factors[j]`` for every item ``j`` in a user's row without a bounds check.  New
    rows that the update re-solves start like a fresh implicit model (uniform [0, 0.01),
    drawn from ``rng``, by default a generator derived from the parent's seed and shape), so
    users whose only items are new still break the symmetry; grown rows the update does not
    touch are zero, so a user or item without data scores exactly 0.
    ``training_seconds`` covers growing and both partial fits.
    """
    source = "warm_start"
    if parent.algorithm != "als":
        raise UserInputError(
            f"{source}: parent algorithm must be 'als' for update = \"warm_start\" "
            f"(implicit has partial_fit for ALS only), got {parent.algorithm!r}; "
            f'use update = "fine_tune" or "retrain"'
        )
    matrix = _covering_matrix(parent, user_items_all, source)
    n_users, n_items = matrix.shape
    users = _ids(update_users, n_users, source, "update_users", "rows")
    items = _ids(update_items, n_items, source, "update_items", "columns")

    start = time.perf_counter()
    user_factors, item_factors = _grown_factors(parent, n_users, n_items, rng)
    _zero_untouched(user_factors, parent.n_users, users)
    _zero_untouched(item_factors, parent.n_items, items)
    with threadpool_limits(1, "blas"):
        instance = _implicit_model(parent.spec, threads=threads)
        instance.user_factors = user_factors
        instance.item_factors = item_factors
        if users.size:
            instance.partial_fit_users(users, matrix[users])
        if items.size:
            instance.partial_fit_items(items, matrix.tocsc()[:, items].T.tocsr())
    new_users = np.ascontiguousarray(instance.user_factors, dtype=np.float32)
    new_items = np.ascontiguousarray(instance.item_factors, dtype=np.float32)
    seconds = time.perf_counter() - start

    if new_users.shape != (n_users, parent.user_factors.shape[1]) or new_items.shape != (
        n_items,
        parent.item_factors.shape[1],
    ):
        raise InternalError(
            f"warm start changed the factor shapes to {new_users.shape} / {new_items.shape}"
        )
    _check_finite(new_users, new_items)
    popularity = _item_popularity(matrix, n_items)
    return TrainedModel(parent.spec, new_users, new_items, popularity, seconds)


def _zero_untouched(factors: Float32Array, parent_rows: int, updated: Int64Array) -> None:
    grown = np.ones(factors.shape[0] - parent_rows, dtype=bool)
    touched = updated[updated >= parent_rows] - parent_rows
    grown[touched] = False
    factors[parent_rows:][grown] = 0.0


def fine_tune(
    parent: TrainedModel,
    user_items_all: sp.csr_matrix,
    iterations: int,
    *,
    learning_rate: float | None = None,
    rng: np.random.Generator | None = None,
    threads: int = 1,
) -> TrainedModel:
    """Run ``iterations`` more epochs of the parent's algorithm, starting from its factors.

    implicit's ``fit`` draws random factors only when ``user_factors`` / ``item_factors`` are
    unset, so the parent's (grown) factors are handed in and kept as the starting point:

    als         conjugate-gradient sweeps start from the parent's factors
    bpr         SGD continues from the parent's factors (fresh per-epoch sampling)
    lmf         AdaGrad restarts with empty accumulators, so the first epoch moves every
                factor by about ``learning_rate``; pass a smaller ``learning_rate`` here
    popularity  recounted on ``user_items_all``
    random      new rows drawn for grown users/items; existing rows kept

    Rows for users/items beyond the parent are grown as in ``warm_start`` (bias and constant
    columns of BPR/LMF set as implicit sets them).
    """
    source = "fine_tune"
    if not _is_int(iterations) or iterations < 1:
        raise must_be(source, "iterations", "an integer >= 1", iterations)
    if learning_rate is not None and not (
        _is_real(learning_rate) and math.isfinite(learning_rate) and learning_rate > 0
    ):
        raise must_be(source, "learning_rate", "a finite number > 0", learning_rate)
    matrix = _covering_matrix(parent, user_items_all, source)
    n_users, n_items = matrix.shape
    spec = parent.spec
    if learning_rate is not None:
        spec = replace(spec, learning_rate=float(learning_rate))
    popularity = _item_popularity(matrix, n_items)

    start = time.perf_counter()
    if parent.algorithm == "popularity":
        users = np.ones((n_users, 1), dtype=np.float32)
        items = popularity.astype(np.float32)[:, None]
    elif parent.algorithm == "random":
        generator = rng if rng is not None else _grow_rng(spec, (parent.n_users, parent.n_items))
        users = _grow_normal(parent.user_factors, n_users, generator)
        items = _grow_normal(parent.item_factors, n_items, generator)
    else:
        grown = _grown_factors(parent, n_users, n_items, rng)
        users, items = _fit(
            spec, matrix, iterations=int(iterations), start_from=grown, threads=threads
        )
    seconds = time.perf_counter() - start
    return TrainedModel(spec, users, items, popularity, seconds)


def _grow_normal(factors: Float32Array, n_rows: int, rng: np.random.Generator) -> Float32Array:
    old, width = factors.shape
    grown = np.empty((n_rows, width), dtype=np.float32)
    grown[:old] = factors
    grown[old:] = rng.standard_normal((n_rows - old, width), dtype=np.float32)
    return grown


# --- faults for stress scenarios -----------------------------------------------------------


def inject_fault(
    model: TrainedModel,
    kind: FaultKind,
    *,
    rng: np.random.Generator,
    scale: float = 0.5,
    parent: TrainedModel | None = None,
) -> TrainedModel:
    """A broken copy of ``model`` for stress scenarios.

    noisy_factors    adds N(0, (scale * rms)^2) to every factor, rms taken per matrix, so
                     ``scale`` is relative (0.5 = noise half as large as the signal)
    stale            the deploy did not take: returns ``parent`` (the previous version) as is
    popularity_only  the model lost its factors and serves the popularity order to everyone
    """
    source = "inject_fault"
    if kind not in FAULT_KINDS:
        raise must_be(source, "kind", f"one of {', '.join(FAULT_KINDS)}", kind)
    if kind == "stale":
        if parent is None:
            raise must_be(
                source,
                "parent",
                "the previous version for kind 'stale'",
                None,
                "pass parent=<the version the candidate was built from>",
            )
        return parent
    if kind == "popularity_only":
        users = np.ones((model.n_users, 1), dtype=np.float32)
        items = model.item_popularity.astype(np.float32)[:, None]
        spec = replace(model.spec, algorithm="popularity")
        return TrainedModel(spec, users, items, model.item_popularity, model.training_seconds)
    if not _is_real(scale) or not (math.isfinite(scale) and scale >= 0):
        raise must_be(source, "scale", "a finite number >= 0", scale)
    noisy = [
        _add_noise(factors, scale, rng) for factors in (model.user_factors, model.item_factors)
    ]
    return TrainedModel(
        model.spec, noisy[0], noisy[1], model.item_popularity, model.training_seconds
    )


def _add_noise(factors: Float32Array, scale: float, rng: np.random.Generator) -> Float32Array:
    rms = float(np.sqrt(np.mean(np.square(factors, dtype=np.float64)))) if factors.size else 0.0
    noise = rng.standard_normal(factors.shape, dtype=np.float32) * np.float32(scale * rms)
    return (factors + noise).astype(np.float32)
