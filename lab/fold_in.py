"""Versions serving replayed users folded in from their earlier history (``replay.fold_in``).

Each version is folded twice, from the same trained model, at two points in time:

* **for the replay** (:func:`for_replay`): every replayed user's history before their first
  replayed event (``Source.fold_in``); the lists then leave out everything in it;
* **for its calibration** (:func:`at_feedback_time`): the history before the calibration
  feedback's requests (the update window's warm-up included), so the calibrator learns from
  folded-in users as they will be scored, and from nothing a later fold-in knew.

The trained (unfolded) model stays the one later versions are updated from and the one the
registry keeps: folding is how a version serves, not what it learnt.
"""

from __future__ import annotations

import scipy.sparse as sp

from lab.artifacts import derived_key
from lab.calibration import LoggedFeedback
from lab.sources import Source
from lab.versions import VersionTables
from replay.fold_in import fold_in
from replay.registry import data_fingerprint
from replay.training import TrainedModel

__all__ = ["at_feedback_time", "for_replay"]


def for_replay(
    source: Source, model: TrainedModel, seen: sp.csr_matrix, key: str, *, threads: int
) -> tuple[TrainedModel, sp.csr_matrix, str, sp.csr_matrix, str]:
    """``(model, seen, key, consumed, consumed_key)`` a version serves the replay with.

    Without ``source.fold_in``: the version as trained, its lists leaving out everything
    before the run (``matrices["all"]``).  With it: replayed users folded in, the model's key
    derived from the fold-in history, and the lists leaving that history out.
    """
    history = source.fold_in
    if history is None:
        return model, seen, key, source.matrices["all"], source.data_key("all")
    if "fold_in" not in source.data_keys:
        source.data_keys["fold_in"] = data_fingerprint(history)
    history_key = source.data_keys["fold_in"]
    folded, knows, _ = fold_in(model, seen, history, threads=threads)
    return folded, knows, derived_key(key, "fold_in", history_key), history, history_key


def at_feedback_time(
    table: VersionTables,
    model: TrainedModel,
    seen: sp.csr_matrix,
    feedback: LoggedFeedback,
    *,
    threads: int,
) -> VersionTables:
    """``table``'s version as it would have served the feedback's requests: ``model`` (as
    trained, learnt from ``seen``) with the users of ``feedback.known_before`` folded in;
    ``table`` itself when the feedback was gathered without fold-in."""
    if not feedback.fold_in:
        return table
    folded, knows, _ = fold_in(model, seen, feedback.known_before, threads=threads)
    return VersionTables(
        table.name,
        folded,
        seen=knows,
        consumed=feedback.known_before,
        truth=table.truth,
        n_users=table.items.shape[0],
        popular_items=feedback.popular_before,
        k=table.items.shape[1],
        click_lift=table.click_lift,
        parent=table.parent,
        update=table.update,
    )
