"""Top-K tables from other systems: hand-worked lists, accounting, and every mistake's line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from replay.errors import UserInputError
from replay.list_tables import ListColumns, read_list_table


def _write(tmp_path: Path, rows: dict[str, Any], name: str = "lists.parquet") -> Path:
    path = tmp_path / name
    frame = pl.DataFrame(rows)
    if name.endswith(".parquet"):
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    return path


def test_lists_in_rank_order_padded_and_accounted(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            # user 2 unsorted and with a rank gap; user 9 unknown; item 50 unknown.
            "user": [2, 0, 0, 2, 0, 9, 1],
            "item": [7, 3, 4, 6, 5, 1, 50],
            "rank": [5, 1, 2, 1, 3, 1, 1],
            "score": [0.1, 0.9, 0.8, 0.5, 0.7, 0.3, 0.2],
        },
    )
    table = read_list_table(path, k=2, n_users=5, n_items=10)
    assert table.users.tolist() == [0, 2]
    assert table.items.tolist() == [[3, 4], [6, 7]]
    assert table.scores.ravel().tolist() == pytest.approx([0.9, 0.8, 0.5, 0.1])
    assert table.p_click is None
    assert table.accounting == {
        "input_rows": 7,
        "kept": 4,
        "skipped.unknown_user": 1,
        "skipped.unknown_item": 1,
        "skipped.beyond_k": 1,
    }
    assert (
        sum(v for key, v in table.accounting.items() if key.startswith("skipped."))
        + (table.accounting["kept"])
        == table.accounting["input_rows"]
    )


def test_short_lists_are_padded_and_scores_optional(tmp_path: Path) -> None:
    path = _write(tmp_path, {"user": [1, 1], "item": [4, 2], "rank": [1, 2]}, "lists.csv")
    table = read_list_table(path, k=3, n_users=2, n_items=5)
    assert table.items.tolist() == [[4, 2, -1]]
    assert np.isnan(table.scores).all()


def test_sorted_exports_and_shuffled_rows_give_the_same_lists(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    users, k = 500, 4
    frame = pl.DataFrame(
        {
            "user": np.repeat(np.arange(users), k),
            "item": (np.tile(np.arange(k), users) * 13 + np.repeat(np.arange(users), k)) % 97,
            "rank": np.tile(np.arange(1, k + 1), users),
            "score": rng.random(users * k),
            "p": rng.random(users * k),
        }
    )
    frame.write_parquet(tmp_path / "sorted.parquet", row_group_size=333)
    frame.sample(fraction=1.0, shuffle=True, seed=1).write_parquet(tmp_path / "shuffled.parquet")
    columns = ListColumns(p_click="p")
    a = read_list_table(
        tmp_path / "sorted.parquet", k=k, n_users=users, n_items=97, columns=columns
    )
    b = read_list_table(
        tmp_path / "shuffled.parquet", k=k, n_users=users, n_items=97, columns=columns
    )
    for got in (a, b):
        assert got.users.tolist() == list(range(users))
        assert got.items[7].tolist() == [(j * 13 + 7) % 97 for j in range(k)]
    assert np.array_equal(a.items, b.items)
    assert np.array_equal(a.scores, b.scores)
    assert a.p_click is not None and b.p_click is not None
    assert np.array_equal(a.p_click, b.p_click)


def test_raw_ids_of_a_replayed_log_are_mapped(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"user": ["u7", "u3", "zz"], "item": ["m2", "m1", "m1"], "rank": [1, 1, 1]},
    )
    table = read_list_table(
        path,
        k=1,
        n_users=2,
        n_items=2,
        user_ids=pl.Series(["u3", "u7"]),
        item_ids=pl.Series(["m1", "m2"]),
    )
    assert table.users.tolist() == [0, 1]
    assert table.items.tolist() == [[0], [1]]
    assert table.accounting["skipped.unknown_user"] == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            {"user": [0, 0], "item": [1, 2], "rank": [1, 1]},
            "lists.parquet: user 0 has rank 1 twice, got 1 (each rank once per user)",
        ),
        (
            {"user": [0, 0], "item": [1, 1], "rank": [1, 2]},
            "lists.parquet: item 1 appears twice in the list of user 0, got 1 (each item once "
            "per list)",
        ),
        (
            {"user": [0], "item": [1], "rank": [0]},
            "lists.parquet: rank must be a whole number from 1, got 0 (ranks start at 1)",
        ),
        (
            {"user": [0], "item": [1], "rank": [1], "score": [float("nan")]},
            "lists.parquet: score must be a finite number, got nan (fix or drop the rows with "
            "a non-finite score)",
        ),
        (
            {"user": [0], "item": [1], "rank": [1], "score": [float("inf")]},
            "lists.parquet: score must be a finite number, got inf (fix or drop the rows with "
            "a non-finite score)",
        ),
        (
            {"user": [0], "item": [1], "position": [1]},
            "lists.parquet: column 'rank' (rank) not found (columns: user, item, position; map "
            "it with columns.rank)",
        ),
        (
            {"user": [0], "item": [1], "rank": [1.5]},
            "lists.parquet: column 'rank' (rank) must hold whole numbers from 1 (integer), got "
            "'Float64' (write it as an integer or number column)",
        ),
        (
            {"user": ["a"], "item": [1], "rank": [1]},
            "lists.parquet: column 'user' (user) must hold ids (integer), got 'String' (write "
            "it as an integer or number column)",
        ),
        (
            {"user": [7], "item": [1], "rank": [1]},
            "lists.parquet: no list of a known user (rows: 1, unknown users: 1, unknown items: "
            "0; are the ids the lab's?)",
        ),
    ],
)
def test_mistakes_are_one_line(tmp_path: Path, rows: dict[str, Any], message: str) -> None:
    path = _write(tmp_path, rows)
    with pytest.raises(UserInputError) as caught:
        read_list_table(path, k=3, n_users=2, n_items=5)
    assert str(caught.value) == message


def test_click_probabilities_must_be_probabilities(tmp_path: Path) -> None:
    path = _write(tmp_path, {"user": [0], "item": [1], "rank": [1], "p": [1.5]})
    with pytest.raises(UserInputError) as caught:
        read_list_table(path, k=3, n_users=2, n_items=5, columns=ListColumns(p_click="p"))
    assert str(caught.value) == (
        "lists.parquet: p_click must be a probability in [0, 1], got 1.5 (write "
        "probabilities, not scores)"
    )


def test_files_that_are_not_tables(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no such top-K table file"):
        read_list_table(tmp_path / "missing.parquet", k=3, n_users=2, n_items=5)
    (tmp_path / "lists.json").write_text("{}")
    with pytest.raises(UserInputError, match=r"must be a \.parquet, \.csv or \.tsv file"):
        read_list_table(tmp_path / "lists.json", k=3, n_users=2, n_items=5)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(UserInputError, match=r"broken\.parquet: not a readable table"):
        read_list_table(tmp_path / "broken.parquet", k=3, n_users=2, n_items=5)


def test_lists_of_any_length_across_row_groups(tmp_path: Path) -> None:
    # Users with 1..6 rows each, written in row groups of 7: lists cross group boundaries,
    # some are longer than K and some shorter.
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 7, 300)
    user = np.repeat(np.arange(300), lengths)
    rank = np.concatenate([np.arange(1, n + 1) * 2 for n in lengths])  # even ranks: gaps
    item = (user * 31 + rank) % 1000
    frame = pl.DataFrame({"user": user, "item": item, "rank": rank})
    frame.write_parquet(tmp_path / "grouped.parquet", row_group_size=7)
    table = read_list_table(tmp_path / "grouped.parquet", k=4, n_users=300, n_items=1000)
    expected = np.full((300, 4), -1)
    for u, n in enumerate(lengths):
        shown = [(u * 31 + 2 * (j + 1)) % 1000 for j in range(min(n, 4))]
        expected[u, : len(shown)] = shown
    assert table.users.tolist() == list(range(300))
    assert np.array_equal(table.items, expected)
    assert table.accounting["skipped.beyond_k"] == int(np.maximum(lengths - 4, 0).sum())
