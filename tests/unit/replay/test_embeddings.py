"""Embeddings from another system: placed in the lab's ids, scored by the lab's top-K."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from examples.byo_model.surprise_svd import SurpriseSVD
from replay.embeddings import read_embeddings
from replay.errors import UserInputError
from replay.topk import top_k

N_USERS, N_ITEMS, D = 40, 30, 4
POPULARITY = np.arange(N_ITEMS, dtype=np.int64)[::-1].copy()


def _factors(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "user_factors": rng.normal(size=(N_USERS, D)).astype(np.float32),
        "item_factors": rng.normal(size=(N_ITEMS, D)).astype(np.float32),
        "user_bias": rng.normal(size=N_USERS).astype(np.float32),
        "item_bias": rng.normal(size=N_ITEMS).astype(np.float32),
    }


def _read(path: Path, **kw: object) -> object:
    return read_embeddings(
        path,
        n_users=N_USERS,
        n_items=N_ITEMS,
        item_popularity=POPULARITY,
        **kw,  # type: ignore[arg-type]
    )


def test_scores_are_dot_product_plus_biases(tmp_path: Path) -> None:
    arrays = _factors()
    np.savez(tmp_path / "e.npz", **arrays)
    version = read_embeddings(
        tmp_path / "e.npz", n_users=N_USERS, n_items=N_ITEMS, item_popularity=POPULARITY
    )
    model = version.model
    expected = (
        arrays["user_factors"] @ arrays["item_factors"].T
        + arrays["user_bias"][:, None]
        + arrays["item_bias"][None, :]
    )
    got = np.asarray(model.user_factors) @ np.asarray(model.item_factors).T
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    no_bias = read_embeddings(
        tmp_path / "e.npz",
        n_users=N_USERS,
        n_items=N_ITEMS,
        item_popularity=POPULARITY,
        use_biases=False,
    ).model
    plain = np.asarray(no_bias.user_factors) @ np.asarray(no_bias.item_factors).T
    np.testing.assert_allclose(plain, arrays["user_factors"] @ arrays["item_factors"].T, atol=1e-5)
    assert model.algorithm == "external" and version.covered_users.all()


def test_a_folder_of_npy_and_raw_id_maps(tmp_path: Path) -> None:
    arrays = _factors(1)
    folder = tmp_path / "emb"
    folder.mkdir()
    # Rows in another order, named by raw ids; one user and one item the lab does not know.
    raw_users = np.array([f"u{i}" for i in range(N_USERS)])
    order = np.random.default_rng(2).permutation(N_USERS)
    np.save(folder / "user_factors.npy", arrays["user_factors"][order][:-1])
    np.save(folder / "user_ids.npy", np.concatenate([raw_users[order][:-2], ["stranger"]]))
    np.save(folder / "item_factors.npy", arrays["item_factors"])
    version = read_embeddings(
        folder,
        n_users=N_USERS,
        n_items=N_ITEMS,
        item_popularity=POPULARITY,
        user_ids=pl.Series(raw_users),
        item_ids=pl.Series(np.arange(N_ITEMS)),
    )
    assert version.accounting["unknown_user_rows"] == 1
    assert version.accounting["users_without_embedding"] == 2
    placed = np.asarray(version.model.user_factors)[:, :D]
    known = order[:-2]
    np.testing.assert_array_equal(placed[known], arrays["user_factors"][known])
    assert not version.covered_users[order[-2:]].any()


def test_items_without_embedding_are_never_recommended(tmp_path: Path) -> None:
    arrays = _factors(3)
    np.savez(
        tmp_path / "e.npz",
        user_factors=arrays["user_factors"],
        item_factors=arrays["item_factors"][:20],
        item_ids=np.arange(20),
    )
    version = read_embeddings(
        tmp_path / "e.npz", n_users=N_USERS, n_items=N_ITEMS, item_popularity=POPULARITY
    )
    consumed = sp.csr_matrix((N_USERS, N_ITEMS), dtype=np.float32)
    lists = top_k(version.model, np.arange(N_USERS), consumed, 10).items
    assert (lists < 20).all() and version.accounting["items_without_embedding"] == 10


@pytest.mark.parametrize(
    ("arrays", "words"),
    [
        ({"user_factors": np.zeros((N_USERS, D), np.float32)}, "'item_factors' not found"),
        (
            {"user_factors": np.zeros((N_USERS, 3), np.float32), "item_factors": np.zeros((5, 4))},
            "the same width",
        ),
        (
            {"user_factors": np.full((2, 2), np.nan), "item_factors": np.zeros((2, 2))},
            "finite numbers only",
        ),
        (
            {
                "user_factors": np.zeros((4, 2)),
                "item_factors": np.zeros((2, 2)),
                "user_ids": np.arange(3),
            },
            "one id per row",
        ),
        (
            {
                "user_factors": np.zeros((2, 2)),
                "item_factors": np.zeros((2, 2)),
                "user_ids": np.array([1, 1]),
            },
            "must not repeat",
        ),
        (
            {
                "user_factors": np.zeros((2, 2)),
                "item_factors": np.zeros((2, 2)),
                "item_bias": np.zeros(3),
            },
            "item_bias must be 2 finite floats",
        ),
        ({"user_factors": np.zeros((2, 2), int), "item_factors": np.zeros((2, 2))}, "2-D float"),
    ],
)
def test_mistakes_are_one_line(tmp_path: Path, arrays: dict[str, np.ndarray], words: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(UserInputError) as error:
        _read(tmp_path / "bad.npz")
    assert words in str(error.value) and "\n" not in str(error.value)


def test_declared_sizes_are_checked_before_loading(tmp_path: Path) -> None:
    # A member whose header declares more data than it holds (truncated or crafted).
    np.save(tmp_path / "user_factors.npy", np.zeros((4, 2), np.float32))
    data = (tmp_path / "user_factors.npy").read_bytes()
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as archive:
        archive.writestr("user_factors.npy", data[:-8])
        archive.writestr("item_factors.npy", data)
    with pytest.raises(UserInputError, match=r"declares shape \(4, 2\)"):
        _read(tmp_path / "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserInputError, match=r"not a readable \.npz"):
        _read(tmp_path / "junk.npz")
    with pytest.raises(UserInputError, match="no such embeddings file"):
        _read(tmp_path / "missing.npz")


def test_surprise_embeddings_give_the_surprise_models_own_lists(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    users, items = rng.integers(0, N_USERS, 400), rng.integers(0, N_ITEMS, 400)
    matrix = sp.csr_matrix(
        (np.ones(400, np.float32), (users, items)), shape=(N_USERS, N_ITEMS), dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    svd = SurpriseSVD(factors=4, epochs=10)
    svd.fit(matrix)
    np.savez(tmp_path / "svd.npz", **svd.embeddings())  # type: ignore[arg-type]
    version = _read(tmp_path / "svd.npz")
    ours = top_k(version.model, np.arange(N_USERS), matrix, 5)  # type: ignore[attr-defined]
    theirs, _ = svd.recommend(np.arange(N_USERS, dtype=np.int64), 5)
    # Same scores up to float32 rounding: the same items in the same order nearly always.
    agree = (ours.items == theirs).mean()
    assert agree > 0.95, agree
