"""Genre calibration (Steck 2018) and genre diversity of the lists each version served.

Genres: the run's catalogues carry no genre metadata the lab reads, so every run uses
pseudo-genres, :func:`sim.metrics.pseudo_genres` — ``N_GENRES`` spherical k-means clusters
of item factors from a fixed seed, one genre per item:

* synthetic worlds: the *true* item factors, a taste space shared by every version;
* replayed logs: real genres when the log comes with a MovieLens ``movies.csv``
  (``traffic.log.genres``; by default one beside the ratings file), else the baseline
  model's item factors (the stand-in world's factors).

Per version, over the lists it served (weighted by requests, like diversity):

* ``genre_calibration.kl``: Steck's C_KL(p ‖ q̃), q̃ = (1 − α) q + α p, α = 0.01, in nats,
  with p the genre distribution of the user's history (every item before time zero once)
  and q that of the list; users without history are left out;
* ``genre_intra_list_diversity``: mean pairwise Jaccard distance of the items' genre sets
  (with one pseudo-genre per item: the share of pairs from different clusters).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from lab.pipeline import Prepared
from reports.numbers import num
from sim import metrics

__all__ = ["GENRE_SEED", "N_GENRES", "STECK_ALPHA", "genre_block", "genres_of", "history_matrix"]

N_GENRES = 16
GENRE_SEED = 2018
STECK_ALPHA = 0.01

SYNTHETIC_GENRES = (
    f"pseudo-genres: {N_GENRES} spherical k-means clusters of the true world's item factors"
)
LOG_GENRES = (
    f"pseudo-genres: {N_GENRES} spherical k-means clusters of the baseline model's item "
    "factors (replayed log; genre metadata is not read)"
)
GENRE_BASIS = (
    "lists this version served, weighted by requests; users with a history before time zero"
)


def genres_of(prepared: Prepared) -> tuple[npt.NDArray[np.int8], str]:
    """One-hot genres [n_items, n_genres] of the run's catalogue and what they are."""
    item_genres = prepared.source.item_genres
    if item_genres is not None and item_genres.any():
        names = prepared.source.genre_names
        return item_genres, (
            f"genres from the log's movies.csv ({len(names)}: {', '.join(names[:6])}, ...)"
        )
    factors = np.asarray(prepared.world.item_factors, dtype=np.float64)
    n_genres = min(N_GENRES, factors.shape[0])
    genres = metrics.pseudo_genres(
        factors, n_genres=n_genres, rng=np.random.default_rng(GENRE_SEED)
    )
    basis = SYNTHETIC_GENRES if prepared.source.live_world is not None else LOG_GENRES
    return genres, basis


def history_matrix(
    users: npt.ArrayLike, items: npt.ArrayLike, n_users: int, n_items: int
) -> sp.csr_array:
    """Users x items 0/1: did the user interact with the item before time zero."""
    u = np.asarray(users, dtype=np.int64)
    i = np.asarray(items, dtype=np.int64)
    matrix = sp.csr_array((np.ones(u.shape[0]), (u, i)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def genre_block(
    lists: npt.ArrayLike,
    weights: npt.ArrayLike,
    history: sp.csr_array,
    genres: npt.ArrayLike,
    *,
    basis: str,
) -> dict[str, Any]:
    """Steck genre KL and genre intra-list diversity of the lists a version served.

    Row r of ``lists`` int32 [n, K] is judged against row r of ``history`` [n, n_items]
    (the same user); ``weights`` [n] are that user's requests; ``genres`` 0/1
    [n_items, n_genres].  ``lists`` counts rows with a history; ``impressions`` their
    requests.
    """
    table = np.asarray(lists, dtype=np.int32)
    w = np.asarray(weights, dtype=np.float64)
    block: dict[str, Any] = {
        "basis": GENRE_BASIS,
        "genres": basis,
        "n_genres": int(np.asarray(genres).shape[1]),
        "alpha": STECK_ALPHA,
        "lists": 0,
        "impressions": 0,
        "kl": None,
        "genre_intra_list_diversity": None,
    }
    if table.shape[0] == 0:
        return block
    kl = metrics.genre_calibration_kl(table, history, genres, alpha=STECK_ALPHA)
    judged = np.isfinite(kl) & (w > 0)
    ild = metrics.genre_intra_list_diversity(table, genres)
    usable = np.isfinite(ild) & (w > 0)
    return {
        **block,
        "lists": int(judged.sum()),
        "impressions": int(w[judged].sum()),
        "kl": num(np.average(kl[judged], weights=w[judged])) if judged.any() else None,
        "genre_intra_list_diversity": num(np.average(ild[usable], weights=w[usable]))
        if usable.any()
        else None,
    }
