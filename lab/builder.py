"""Model versions built through the artifact store, each named by the key of its inputs.

``VersionBuilder.version`` trains or updates one version of a scenario (train, warm start,
fine-tune, retrain, copy, then any injected fault) and returns it with its key
(``lab.artifacts.model_key``): a stored model is loaded instead of trained when the store
has it.  ``VersionBuilder.lists`` gives the version's top-K list store under the matching
key.  Release trains and the noise floor build their versions the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from lab.artifacts import derived_key, lists_key, model_artifact, model_from_artifact, model_key
from lab.list_store import ListStore
from lab.scenario import ModelSettings
from lab.sources import Source
from replay.artifact_store import ArtifactStore
from replay.training import (
    ModelSpec,
    TrainedModel,
    fine_tune,
    inject_fault,
    retrain,
    train,
    warm_start,
)

__all__ = ["VersionBuilder", "default_threads", "model_spec"]


def model_spec(settings: ModelSettings, seed: int) -> ModelSpec:
    return ModelSpec(
        algorithm=settings.algorithm,
        factors=settings.factors,
        regularization=settings.regularization,
        iterations=settings.iterations,
        alpha=settings.alpha,
        learning_rate=settings.learning_rate,
        seed=seed,
    )


def default_threads() -> int:
    """CPUs this process may run on (a container's share, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(slots=True)
class VersionBuilder:
    """Builds versions through the artifact store, and names each one (its key)."""

    source: Source
    store: ArtifactStore | None
    code: str
    threads: int
    keys: dict[str, str] = field(default_factory=dict)  # version name -> model key
    #: Seconds inside implicit's training calls for the versions built here (not loaded).
    trained_s: float = 0.0
    # The noise floor trains on a background thread (lab.background): sums stay exact.
    _adding: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def model(self, key: str, build: Callable[[], TrainedModel]) -> TrainedModel:
        """The model stored under ``key``, or ``build()`` (then stored)."""

        def built() -> TrainedModel:
            model = build()
            with self._adding:
                self.trained_s += model.training_seconds
            return model

        if self.store is None:
            return built()
        return model_from_artifact(self.store.fetch("model", key, lambda: model_artifact(built())))

    def lists(
        self,
        model_key: str,
        consumed: str,
        n_users: int,
        k: int,
        model: TrainedModel,
        matrix: sp.csr_matrix,
        *,
        threads: int | None = None,
    ) -> ListStore:
        """The version's top-K list store, under its key when there is an artifact store;
        scored with ``threads`` (default: the builder's)."""
        key = lists_key(model_key, consumed, k, self.code) if self.store is not None else None
        return ListStore(
            model, matrix, k, n_users, store=self.store, key=key, threads=threads or self.threads
        )

    def version(
        self,
        name: str,
        settings: ModelSettings,
        seed: int,
        models: dict[str, TrainedModel],
        *,
        rng: np.random.Generator,
    ) -> tuple[TrainedModel, sp.csr_matrix, str]:
        """Train or update one version: the model, the interactions it has seen, its key."""
        spec = model_spec(settings, seed)
        matrices = self.source.matrices
        data = self.source.data_key
        threads = self.threads
        if settings.parent is None:
            key = model_key("train", self.code, data=data("train"), spec=spec)
            model = self.model(key, lambda: train(spec, matrices["train"], threads=threads))
            seen = matrices["train"]
        else:
            parent, parent_key = models[settings.parent], self.keys[settings.parent]
            seen = matrices["all"]
            if settings.update == "copy":
                model, key = parent, parent_key
            elif settings.update == "warm_start":
                key = model_key(
                    "warm_start",
                    self.code,
                    data=data("all"),
                    update=data("update"),
                    parent=parent_key,
                )
                model = self.model(
                    key,
                    lambda: warm_start(
                        parent,
                        seen,
                        matrices["update_users"],
                        matrices["update_items"],
                        threads=threads,
                    ),
                )
            elif settings.update == "fine_tune":
                rounds = max(1, settings.iterations // 3)
                key = model_key(
                    "fine_tune", self.code, data=data("all"), parent=parent_key, iterations=rounds
                )
                model = self.model(key, lambda: fine_tune(parent, seen, rounds, threads=threads))
            else:
                key = model_key("retrain", self.code, data=data("all"), spec=spec)
                model = self.model(key, lambda: retrain(spec, seen, threads=threads))
        if settings.fault is not None:
            # The fault's noise comes from the shared generator: its state names the result.
            state = rng.bit_generator.state
            parent_model = models.get(settings.parent) if settings.parent else None
            model = inject_fault(
                model, settings.fault, rng=rng, scale=settings.fault_scale, parent=parent_model
            )
            key = derived_key(key, settings.fault, settings.fault_scale, state)
        self.keys[name] = key
        return model, seen, key
