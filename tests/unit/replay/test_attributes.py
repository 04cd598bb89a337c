"""Attribute tables: ids keyed to the run, every row accounted for, one-line refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay.attributes import MAX_LEVELS, AttributeSpec, read_attributes
from replay.errors import UserInputError

ROOT = Path(__file__).resolve().parents[3]
ITEMS = ROOT / "scenarios" / "data" / "item_attributes.csv"


def _spec(path: Path, **kwargs: object) -> AttributeSpec:
    return AttributeSpec(path, kind="item", id_column="item", field="attributes.items", **kwargs)  # type: ignore[arg-type]


def _write(tmp_path: Path, text: str, name: str = "items.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_table_groups_by_its_categories_and_counts_unknown_ids() -> None:
    table = read_attributes(
        _spec(ITEMS, multi_valued={"genres": "|"}), pl.Series(np.arange(1000, dtype=np.int64))
    )
    assert set(table.attributes) == {"genres", "provider", "price_band"}
    assert table.ignored == {
        "release_date": "date column (list it in categorical to group by its values)"
    }
    assert table.accounting == {"input_rows": 1500, "kept": 1000, "skipped.unknown_id": 500}
    genres = table.attributes["genres"]
    assert genres.multi_valued and genres.n_levels == 12
    # item 1 is "Drama|Fantasy": two levels
    assert sorted(genres.levels[j] for j in genres.membership[1].indices) == ["Drama", "Fantasy"]


def test_membership_and_groups_by_hand(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "item,provider,genres,price\n"
        "2,B,x|y,3.5\n"
        "0,A,x,1\n"
        ",A,y,2\n"  # no id: counted
        "7,A,y,2\n",  # not an item of the run: counted
    )
    table = read_attributes(_spec(path, multi_valued={"genres": "|"}), pl.Series([0, 1, 2]))
    assert table.accounting == {
        "input_rows": 4,
        "kept": 2,
        "skipped.null_id": 1,
        "skipped.unknown_id": 1,
    }
    assert table.ids_without_row == 1  # item 1
    provider = table.attributes["provider"]
    assert provider.levels == ("A", "B")
    assert provider.group().tolist() == [0, 2, 1]  # item 1 has no value: group n_levels
    assert provider.has(["B"]).tolist() == [False, False, True]
    assert table.attributes["genres"].dense().tolist() == [[1, 0], [0, 0], [1, 1]]
    assert table.ignored["price"].startswith("number column")


def test_ids_match_whatever_their_spelling(tmp_path: Path) -> None:
    path = _write(tmp_path, "item,kind\n 17 ,a\n18.0,b\nabc,c\n")
    whole = _write(tmp_path, "item,kind\n 17 ,a\n18.0,b\n20,c\n", name="whole.csv")
    table = read_attributes(_spec(whole), pl.Series([17, 18, 19]))
    assert table.accounting == {"input_rows": 3, "kept": 2, "skipped.unknown_id": 1}
    assert table.attributes["kind"].group().tolist() == [0, 1, 2]
    text_ids = read_attributes(_spec(path), pl.Series(["abc", "17"]))
    # levels come from the kept rows only: ("a", "c")
    assert text_ids.attributes["kind"].levels == ("a", "c")
    assert text_ids.attributes["kind"].group().tolist() == [1, 0]


def test_listed_columns_are_grouped_even_when_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, "item,year,title\n0,1999,A\n1,2001,B\n")
    table = read_attributes(_spec(path, categorical=["year"]), pl.Series([0, 1]))
    assert list(table.attributes) == ["year"]
    assert table.ignored == {"title": "not listed in categorical"}


def test_free_text_is_not_a_category(tmp_path: Path) -> None:
    rows = "".join(f"{i},title {i},{'ab'[i % 2]}\n" for i in range(150))
    path = _write(tmp_path, "item,title,kind\n" + rows)
    table = read_attributes(_spec(path), pl.Series(np.arange(150)))
    assert list(table.attributes) == ["kind"]
    assert table.ignored["title"].startswith("150 distinct values")


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        (
            "id,kind\n0,a\n",
            {},
            "items.csv: column 'item' (the item id) is missing (found id, kind; set "
            "attributes.items.id to a column of the table)",
        ),
        (
            "item,kind\n0,a\n",
            {"categorical": ["genre"]},
            "items.csv: column 'genre' (categorical) is missing (found item, kind; set "
            "attributes.items.categorical to a column of the table)",
        ),
        (
            "item,kind\n0,a\n1,b\n0,c\n",
            {},
            "items.csv: item id '0' appears on 2 rows (lines 2, 4; 1 ids repeated): each item "
            "must have one row (remove or merge the duplicates)",
        ),
        (
            'item,genres\n0,"a,b"\n1,c\n',
            {"multi_valued": {"genres": "|"}},
            "items.csv: attributes.items.multi_valued.genres declares separator '|', but no "
            "value contains it while 1 values contain ',' (e.g. 'a,b'); set "
            "attributes.items.multi_valued.genres = ','",
        ),
        (
            "item,kind\n0,a\n1.5,b\nx,c\n",
            {},
            "items.csv: line 3: item id '1.5' in column 'item' must be a whole number like the "
            "run's item ids (e.g. [0, 1, 2]; rows like it: 2); fix the id or set "
            "attributes.items.id to the column holding them",
        ),
        (
            "item,kind\n",
            {},
            "items.csv: attributes.items must hold at least one row, got a header only "
            "(columns item, kind)",
        ),
        (
            "item,kind\n9,a\n",
            {},
            "items.csv: no item id of attributes.items is a item of the run (e.g. '9'; the run's "
            "ids look like [0, 1, 2]); point attributes.items.path at the table for this data, "
            "or set its id column",
        ),
    ],
)
def test_bad_tables_are_one_line_errors(
    tmp_path: Path, text: str, kwargs: dict[str, object], message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UserInputError) as caught:
        read_attributes(_spec(path, **kwargs), pl.Series([0, 1, 2]))
    assert str(caught.value) == f"{path}: {message.removeprefix('items.csv: ')}"


def test_too_many_levels_for_a_listed_column(tmp_path: Path) -> None:
    rows = "".join(f"{i},v{i}\n" for i in range(MAX_LEVELS + 1))
    path = _write(tmp_path, "item,code\n" + rows)
    with pytest.raises(UserInputError, match=r"has 1,001 distinct values, too many to group by"):
        read_attributes(_spec(path, categorical=["code"]), pl.Series(np.arange(MAX_LEVELS + 1)))


def test_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(
        UserInputError, match=r"attributes.items.path \(an attribute table\) must exist"
    ):
        read_attributes(_spec(tmp_path / "nope.csv"), pl.Series([0]))


def test_parquet_tables_read_like_csv(tmp_path: Path) -> None:
    path = tmp_path / "items.parquet"
    pl.DataFrame({"item": [0, 1], "kind": ["a", "b"]}).write_parquet(path)
    table = read_attributes(_spec(path), pl.Series([0, 1]))
    assert table.attributes["kind"].group().tolist() == [0, 1]


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=1, max_size=40, unique=True),
    n_run=st.integers(1, 25),
)
def test_every_row_is_kept_or_counted(
    tmp_path_factory: pytest.TempPathFactory, ids: list[int | None], n_run: int
) -> None:
    # at most one blank id, so that no duplicate refusal interferes
    path = tmp_path_factory.mktemp("attrs") / "items.csv"
    lines = ["item,kind"] + [f"{'' if i is None else i},k{(i or 0) % 3}" for i in ids]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    known = pl.Series(np.arange(n_run, dtype=np.int64))
    if not any(i is not None and i < n_run for i in ids):
        with pytest.raises(UserInputError):
            read_attributes(_spec(path), known)
        return
    table = read_attributes(_spec(path), known)
    acc = table.accounting
    skipped = sum(v for k, v in acc.items() if k.startswith("skipped."))
    assert acc["kept"] + skipped == acc["input_rows"] == len(ids)
    assert table.ids_without_row == n_run - acc["kept"]
    assert table.attributes["kind"].membership.sum() == acc["kept"]
