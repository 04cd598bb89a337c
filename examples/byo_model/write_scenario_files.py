"""Writes the files two shipped scenarios roll out: a model trained outside the lab.

    python -m examples.byo_model.write_scenario_files      # from the repository's root

The README's workflow, as code: ``rollout-lab world export`` writes the training history
of ``scenarios/byo_plugin_knn.toml``'s world (the same world ``byo_topk_knn.toml`` and
``byo_embeddings_svd.toml`` build), then, outside the lab:

* ``scenarios/data/byo_knn_lists.parquet``: the scikit-learn item-kNN's top 10 for every
  user (``user, item, rank, score``), read by ``byo_topk_knn.toml``;
* ``scenarios/data/byo_svd_factors.npz``: a scikit-learn truncated SVD's user and item
  factors (16 each), scored by the lab, read by ``byo_embeddings_svd.toml``.
"""

from __future__ import annotations

import tempfile
import tomllib
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from examples.byo_model.sklearn_knn import ItemKNN
from rollout_lab.cli import main as rollout_lab

ROOT = Path(__file__).resolve().parents[2]
WORLD = ROOT / "scenarios" / "byo_plugin_knn.toml"
DATA = ROOT / "scenarios" / "data"
LIST_SIZE = 10
COMPONENTS = 16


def history_matrix() -> sp.csr_matrix:
    """The world's training window as users x items (the lab's ids), via the CLI."""
    with tempfile.TemporaryDirectory() as folder:
        history = Path(folder) / "history.parquet"
        assert rollout_lab(["world", "export", str(WORLD), "--out", str(history)]) == 0
        frame = pl.read_parquet(history).filter(pl.col("window") == "train")
    users, items = frame["user"].to_numpy(), frame["item"].to_numpy()
    traffic = tomllib.loads(WORLD.read_text(encoding="utf-8"))["traffic"]
    shape = (int(traffic["users"]), int(traffic["items"]))
    return sp.csr_matrix((np.ones(frame.height, np.float32), (users, items)), shape=shape)


def main() -> None:
    matrix = history_matrix()
    knn = ItemKNN(neighbours=50)
    knn.fit(matrix)
    users = np.arange(matrix.shape[0])
    items, scores = knn.recommend(users, LIST_SIZE)
    pl.DataFrame(
        {
            "user": np.repeat(users, LIST_SIZE).astype(np.int32),
            "item": items.ravel().astype(np.int32),
            "rank": np.tile(np.arange(1, LIST_SIZE + 1, dtype=np.int16), users.size),
            "score": scores.ravel().astype(np.float32),
        }
    ).filter(pl.col("item") >= 0).write_parquet(DATA / "byo_knn_lists.parquet")
    svd = TruncatedSVD(n_components=COMPONENTS, random_state=0).fit(matrix)
    np.savez_compressed(
        DATA / "byo_svd_factors.npz",
        user_factors=svd.transform(matrix).astype(np.float32),
        item_factors=svd.components_.T.astype(np.float32),
    )


if __name__ == "__main__":
    main()
