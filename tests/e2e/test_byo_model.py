"""Bring your own model: versions from the registry, a top-K table, embeddings and a plugin.

The workflow of the README, end to end on a small world: ``rollout-lab world export`` writes
the history, a scikit-learn model trained on it by code outside the lab gives lists and
embeddings in the lab's ids, and each route rolls that model out against the lab's ALS
baseline, the world's latent truth deciding clicks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from cli_checks import one_line_exit_2

from examples.byo_model.sklearn_knn import ItemKNN
from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "scenarios" / "quickstart.toml")
SMALL = [
    "--set", "traffic.users=2000", "--set", "traffic.items=500", "--set", 'traffic.duration="40m"',
    "--set", "metrics.noise_floor=false",
]  # fmt: skip


def _summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


def _run(out: Path, *extra: str) -> int:
    return main(["run", QUICKSTART, "--out", str(out), "--reproducible", "--quiet", *SMALL, *extra])


def test_train_then_run_by_registry_id_is_the_same_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "registry"
    assert main(["train", QUICKSTART, "--registry", str(registry), *SMALL]) == 0
    ids = [
        line.split()[0] for line in capsys.readouterr().out.splitlines() if "@" in line.split()[0]
    ]
    assert [i.split("@")[0] for i in ids] == ["baseline", "candidate"]
    assert _run(tmp_path / "trained", "--registry", str(registry)) == 0
    by_id = [
        "--set", f'models.baseline={{registry="{ids[0]}"}}',
        "--set", f'models.candidate={{registry="{ids[1]}"}}',
    ]  # fmt: skip
    assert _run(tmp_path / "loaded", "--registry", str(registry), *by_id) == 0
    trained, loaded = _summary(tmp_path / "trained"), _summary(tmp_path / "loaded")
    # The scenario block echoes the two (different) scenario texts; everything else is the
    # same run, byte for byte.
    trained.pop("scenario"), loaded.pop("scenario")
    assert json.dumps(trained, sort_keys=True) == json.dumps(loaded, sort_keys=True)
    for name, vid in zip(("baseline", "candidate"), ids, strict=True):
        model = loaded["versions"][name]["model"]
        assert model["source"] == "lab" and model["registry_id"] == vid
        assert model["provenance"]["version_id"] == vid
    assert loaded["versions"]["candidate"]["model"]["parent"] == "baseline"
    assert loaded["versions"]["candidate"]["model"]["provenance"]["parent_id"] == ids[0]
    # A version trained on another world does not fit this one.
    other = [*by_id, "--set", "traffic.users=2500"]
    code = _run(tmp_path / "other", "--registry", str(registry), *other)
    one_line_exit_2(capsys, code, ids[0], "serves 2000 users x 500 items", "2500 x 500")
    assert not (tmp_path / "other").exists()


def _train_matrix(history: Path) -> sp.csr_matrix:
    frame = pl.read_parquet(history).filter(pl.col("window") == "train")
    ones = np.ones(frame.height, np.float32)
    users, items = frame["user"].to_numpy(), frame["item"].to_numpy()
    return sp.csr_matrix((ones, (users, items)), shape=(2000, 500), dtype=np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The world's history, and a scikit-learn model's lists and embeddings trained on it."""
    folder = tmp_path_factory.mktemp("byo")
    history = folder / "history.parquet"
    assert main(["world", "export", QUICKSTART, "--out", str(history), *SMALL[:4]]) == 0
    matrix = _train_matrix(history)
    knn = ItemKNN(neighbours=30)
    knn.fit(matrix)
    # Lists for four users in five: the others get the declared fallback.
    users = np.arange(2000)[np.arange(2000) % 5 != 0]
    items, scores = knn.recommend(users, 10)
    rank = np.tile(np.arange(1, 11), users.size)
    table = pl.DataFrame(
        {
            "user": np.repeat(users, 10),
            "item": items.ravel(),
            "rank": rank,
            "score": scores.ravel().astype(np.float64),
            "p": 0.3 / rank,  # the system's own click probabilities
        }
    ).filter(pl.col("item") >= 0)
    table.write_parquet(folder / "lists.parquet")
    from sklearn.decomposition import TruncatedSVD

    svd = TruncatedSVD(n_components=16, random_state=0).fit(matrix)
    np.savez(
        folder / "factors.npz",
        user_factors=svd.transform(matrix).astype(np.float32),
        item_factors=svd.components_.T.astype(np.float32),
        user_ids=np.arange(2000),
        item_ids=np.arange(500),
    )
    return {
        "history": history,
        "lists": folder / "lists.parquet",
        "factors": folder / "factors.npz",
    }


@pytest.mark.parametrize(
    ("route", "setting"),
    [
        (
            "topk",
            'models.candidate={{topk={{path="{lists}", fallback="baseline", p_click="p"}}}}',
        ),
        ("embeddings", 'models.candidate={{embeddings={{path="{factors}"}}}}'),
        (
            "plugin",
            'models.candidate={{plugin="examples.byo_model.sklearn_knn:ItemKNN", '
            "options={{neighbours=30}}}}",
        ),
    ],
)
def test_a_third_party_model_rolls_out_against_the_lab_baseline(
    tmp_path: Path,
    exported: dict[str, Path],
    route: str,
    setting: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = setting.format(lists=exported["lists"], factors=exported["factors"])
    assert _run(tmp_path / route, "--set", text) in (0, 1)
    notes = capsys.readouterr().err
    summary = _summary(tmp_path / route)
    model = summary["versions"]["candidate"]["model"]
    assert model["source"] == route and model["registry_id"] is None
    assert summary["versions"]["baseline"]["model"]["source"] == "lab"
    assert summary["versions"]["candidate"]["requests"] > 0
    assert summary["versions"]["candidate"]["clicks"] > 0
    if route == "topk":
        coverage = model["coverage"]
        assert 0.7 < coverage["share"] < 0.9  # four users in five have a list
        assert model["popularity_fallback_users"] > 0
        assert model["provenance"]["fallback"] == "baseline"
        assert "lists.parquet: covers" in notes and "fallback (baseline)" in notes
        accounting = model["provenance"]["accounting"]
        assert accounting["kept"] == accounting["input_rows"] > 0
    else:
        assert "covers" not in notes


def test_bad_sources_are_one_line_and_write_nothing(
    tmp_path: Path, exported: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    registry = tmp_path / "empty-registry"
    code = _run(out, "--registry", str(registry), "--set", 'models.candidate={registry="nope"}')
    one_line_exit_2(capsys, code, "nope", "registry is empty")
    strict = f'models.candidate={{topk={{path="{exported["lists"]}", require_coverage=0.95}}}}'
    one_line_exit_2(capsys, _run(out, "--set", strict), "lists.parquet", "require_coverage")
    plugin = 'models.candidate={plugin="no_such_package.models:Factory"}'
    one_line_exit_2(capsys, _run(out, "--set", plugin), "no_such_package", "cannot be imported")
    missing = 'models.candidate={embeddings={path="missing.npz"}}'
    one_line_exit_2(capsys, _run(out, "--set", missing), "missing.npz")
    assert not out.exists()
    # validate checks the same before anything is built (and never imports a plugin).
    code = main(["validate", QUICKSTART, "--set", missing])
    one_line_exit_2(capsys, code, "missing.npz", "models.candidate.embeddings.path")
    assert main(["validate", QUICKSTART, "--set", plugin]) == 0
    capsys.readouterr()


def test_world_export_is_the_history_the_lab_trains_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lab.pipeline import seeded_streams
    from lab.scenario import load_scenario
    from lab.sources import build_source

    size = SMALL[1:4:2]
    scenario = load_scenario(QUICKSTART, size)
    source = build_source(scenario, seeded_streams(scenario.seed), source="q")
    for window, matrix in (("train", "train"), ("all", "all")):
        out = tmp_path / f"{window}.csv"
        args = ["world", "export", QUICKSTART, "--out", str(out), "--window", window]
        assert main([*args, *SMALL[:4], "--no-cache"]) == 0
        log = pl.read_csv(out, try_parse_dates=True)
        assert log.columns == ["user", "item", "timestamp", "window"]
        expected = source.matrices[matrix]
        assert log.height == expected.nnz
        got = sp.csr_matrix(
            (np.ones(log.height), (log["user"].to_numpy(), log["item"].to_numpy())),
            shape=expected.shape,
        )
        assert (got != expected).nnz == 0
        assert log["timestamp"].is_sorted()
        assert log["timestamp"].max() < source.windows["update"][1]
    assert set(log["window"].unique()) == {"train", "update"}
    capsys.readouterr()
    code = main(["world", "export", QUICKSTART, "--out", str(tmp_path / "all.csv")])
    one_line_exit_2(capsys, code, "all.csv", "never replaces a file")


def _table(folder: Path, name: str, **columns: object) -> str:
    pl.DataFrame(columns).write_csv(folder / name)
    return f'models.candidate={{topk={{path="{folder / name}"}}}}'


def test_bad_files_and_plugins_are_one_line_and_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    twice = _table(tmp_path, "twice.csv", user=[0, 0], item=[1, 2], rank=[1, 1], score=[1.0, 0.5])
    one_line_exit_2(capsys, _run(out, "--set", twice), "twice.csv", "rank")
    nan = _table(tmp_path, "nan.csv", user=[0, 0], item=[1, 2], rank=[1, 2], score=[1.0, None])
    one_line_exit_2(capsys, _run(out, "--set", nan), "nan.csv", "score")
    words = _table(tmp_path, "words.csv", user=[0], item=["x"], rank=[1], score=[1.0])
    one_line_exit_2(capsys, _run(out, "--set", words), "words.csv", "item")
    np.savez(
        tmp_path / "ids.npz",
        user_factors=np.zeros((5, 2), np.float32),
        item_factors=np.zeros((500, 2), np.float32),
        user_ids=np.arange(4),
    )
    ids = f'models.candidate={{embeddings={{path="{tmp_path / "ids.npz"}"}}}}'
    one_line_exit_2(capsys, _run(out, "--set", ids), "ids.npz", "one id per row")
    # A plugin in the folder the command runs in, answering with the wrong shape.
    (tmp_path / "wrong_shape.py").write_text(
        "import numpy as np\n"
        "class Model:\n"
        "    def fit(self, interactions):\n"
        "        pass\n"
        "    def recommend(self, user_ids, k):\n"
        "        return np.zeros((len(user_ids), k + 1), int), np.zeros((len(user_ids), k + 1))\n"
    )
    monkeypatch.chdir(tmp_path)
    plugin = 'models.candidate={plugin="wrong_shape:Model"}'
    one_line_exit_2(capsys, _run(out, "--set", plugin), "wrong_shape:Model", "must have shape")
    assert not out.exists()


def test_a_table_in_a_replayed_logs_raw_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tables name users and items as the log does; the truth stays what users rated next."""
    monkeypatch.delenv("ROLLOUT_LAB_MOVIELENS", raising=False)
    ratings = pl.read_csv(ROOT / "scenarios" / "data" / "ratings_sample.csv")
    popular = ratings.group_by("movieId").len().sort(["len", "movieId"], descending=[True, False])
    top = popular["movieId"].head(10).to_list()
    users = sorted(ratings["userId"].unique().to_list())
    rows = [(u, m, r + 1) for u in users for r, m in enumerate(top)]
    rows += [(999_999, top[0], 1), (users[0], 88_888_888, 11)]  # an unknown user and item
    table = pl.DataFrame(rows, schema=["user", "item", "rank"], orient="row")
    table.write_csv(tmp_path / "lists.csv")
    scenario = str(ROOT / "scenarios" / "movielens_replay.toml")
    out = tmp_path / "run"
    setting = f'models.candidate={{topk={{path="{tmp_path / "lists.csv"}"}}}}'
    code = main(["run", scenario, "--out", str(out), "--quiet", "--reproducible", "--set", setting])
    assert code in (0, 1), capsys.readouterr().err
    model = _summary(out)["versions"]["candidate"]["model"]
    accounting = model["provenance"]["accounting"]
    assert accounting["skipped.unknown_user"] == 1 and accounting["skipped.unknown_item"] == 1
    assert accounting["kept"] == len(users) * 10
    assert model["coverage"]["share"] == 1.0 and model["popularity_fallback_users"] == 0


def test_a_plugin_candidate_rides_a_release_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each release is the plugin's ``update`` on what users did since its parent."""
    (tmp_path / "counted_knn.py").write_text(
        "from pathlib import Path\n"
        "from examples.byo_model.sklearn_knn import ItemKNN\n"
        "class Counted(ItemKNN):\n"
        "    def update(self, new_interactions):\n"
        "        with open(Path(__file__).with_name('updates.txt'), 'a') as f:\n"
        "            f.write(f'{new_interactions.nnz}\\n')\n"
        "        super().update(new_interactions)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    scenario = str(ROOT / "scenarios" / "release_train.toml")
    out = tmp_path / "run"
    code = main(
        [
            "run", scenario, "--out", str(out), "--quiet", "--reproducible", *SMALL[:4],
            "--set", 'traffic.duration="90m"', "--set", 'release_train.every="40m"',
            "--set", 'models.candidate={plugin="counted_knn:Counted", options={neighbours=20}}',
        ]
    )  # fmt: skip
    assert code in (0, 1), capsys.readouterr().err
    summary = _summary(out)
    release = summary["versions"]["candidate-2"]
    assert release["model"]["source"] == "plugin" and release["model"]["update"] == "warm_start"
    assert release["model"]["parent"] in ("candidate", "baseline")
    updates = (tmp_path / "updates.txt").read_text().split()
    assert len(updates) >= 1 and all(int(n) > 0 for n in updates)
