"""Attribute tables end to end: a canary for one country, provider fairness and metrics by
item attribute from the shipped example tables, tables keyed by a replayed log's own ids,
and bad tables refused in one line with exit code 2 before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from reports.summary_paths import check_summary_path
from reports.summary_schema import Summary
from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "target_by_country.toml"
# Fewer users than the user table has rows: the rest are counted as unknown ids.
REDUCED = ["--set", "traffic.users=2000", "--set", "traffic.duration=30m"]
# Bad tables are refused before training: a small world is enough.
SMALL = ["--set", "traffic.users=300", "--set", "traffic.items=200"]


def _run(out: Path, scenario: Path, *extra: str) -> dict[str, Any]:
    code = main(["run", str(scenario), "--out", str(out), "--quiet", "--no-cache", *extra])
    assert code == 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return summary


@pytest.fixture(scope="module")
def country_canary(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("attributes") / "run"
    summary = _run(out, SCENARIO, *REDUCED)
    return summary, (out / "report.html").read_text(encoding="utf-8")


def test_only_the_targeted_country_sees_the_candidate(
    country_canary: tuple[dict[str, Any], str],
) -> None:
    summary, _ = country_canary
    countries = summary["segments"]["by_attribute"]["country"]["by_group"]
    assert countries["DE"]["users_on_candidate"] > 0.3
    for country, cell in countries.items():
        if country != "DE":
            assert cell["users_on_candidate"] == 0, country
            assert "candidate" not in cell["versions"]
    # Every candidate user is German, whatever attribute the users are grouped by.
    on_candidate = countries["DE"]["versions"]["candidate"]["users"]
    for attribute in ("platform", "cohort"):
        groups = summary["segments"]["by_attribute"][attribute]["by_group"]
        total = sum(c["versions"].get("candidate", {"users": 0})["users"] for c in groups.values())
        assert total == on_candidate
    assert summary["versions"]["candidate"]["requests"] > 0


def test_worst_group_is_judged_with_the_correction_for_the_groups(
    country_canary: tuple[dict[str, Any], str],
) -> None:
    summary, _ = country_canary
    for block in summary["segments"]["by_attribute"].values():
        compared = [
            c["candidate_vs_baseline"]
            for c in block["by_group"].values()
            if c["candidate_vs_baseline"] is not None
        ]
        assert block["adjustment"]["groups"] == len(compared)
        assert block["adjustment"]["level"] == pytest.approx(1 - 0.05 / len(compared), abs=1e-6)
        worst = block["worst"]
        assert worst["difference"] == min(c["difference"] for c in compared)
        # The corrected interval contains the plain one (wider, same centre).
        low, high = worst["difference_ci95"]
        adj_low, adj_high = worst["difference_ci95_adjusted"]
        assert adj_low <= low <= worst["difference"] <= high <= adj_high
        if len(compared) > 1:
            assert adj_high - adj_low > high - low
        assert f"correcting for {len(compared)} group" in worst["verdict"]


def test_provider_exposure_shares_are_distributions(
    country_canary: tuple[dict[str, Any], str],
) -> None:
    summary, _ = country_canary
    providers = summary["fairness"]["providers"]
    assert providers["attribute"] == "provider"
    groups = providers["groups"]
    assert sum(g["catalogue_share"] for g in groups.values()) == pytest.approx(1, abs=1e-5)
    assert sum(g["popularity_share"] for g in groups.values()) == pytest.approx(1, abs=1e-5)
    for version in ("baseline", "candidate"):
        shares = [g["versions"][version]["exposure_share"] for g in groups.values()]
        assert sum(shares) == pytest.approx(1, abs=1e-5)
        assert 0 <= providers["versions"][version]["tv_to_catalogue"] <= 1
    # The change is paired on the candidate's users (Germans here): over the groups it adds
    # up to 0, and it is not the difference of the two versions' own (all-country) shares.
    changes = [g["candidate_vs_baseline"] for g in groups.values()]
    assert sum(c["difference"] for c in changes) == pytest.approx(0, abs=1e-5)
    for c in changes:
        low, high = c["difference_ci95"]
        assert low <= c["difference"] <= high
    assert providers["most_changed"]["group"] in groups


def test_metrics_by_item_attribute_and_the_tables_accounting(
    country_canary: tuple[dict[str, Any], str],
) -> None:
    summary, html = country_canary
    by_attribute = summary["versions"]["baseline"]["quality"]["by_attribute"]
    assert set(by_attribute) == {"genres", "provider", "price_band"}
    genres = by_attribute["genres"]
    assert genres["levels"] == 12 and 0 < genres["levels_shown"] <= 12
    assert genres["kl"] > 0 and 0 < genres["intra_list_diversity"] <= 1
    users = summary["data"]["attributes"]["users"]
    assert users["accounting"] == {
        "input_rows": 5000,
        "kept": 2000,
        "skipped": {"unknown_id": 3000},
    }
    assert summary["data"]["attributes"]["items"]["ignored"] == {
        "release_date": "date column (list it in categorical to group by its values)"
    }
    for heading in (
        "By item attribute",
        "Provider fairness by provider",
        "By user country",
        "Attribute tables",
    ):
        assert heading in html


def test_tables_name_a_replayed_logs_own_ids(tmp_path: Path) -> None:
    log = ROOT / "scenarios" / "data" / "ratings_sample.csv"
    movies = pl.read_csv(log)["movieId"].unique().sort()
    table = tmp_path / "items.csv"
    pl.DataFrame(
        {
            # One id the log never names: counted, not an error.
            "movieId": [*movies.to_list(), 99_999_999],
            "studio": [f"S{m % 3}" for m in movies.to_list()] + ["S9"],
        }
    ).write_csv(table)
    items = f'{{ path = "{table}", id = "movieId", provider = "studio" }}'
    summary = _run(
        tmp_path / "run",
        ROOT / "scenarios" / "movielens_replay.toml",
        "--log",
        str(log),
        "--set",
        f"attributes.items={items}",
    )
    accounting = summary["data"]["attributes"]["items"]["accounting"]
    assert accounting["kept"] + accounting["skipped"]["unknown_id"] == accounting["input_rows"]
    assert accounting["skipped"]["unknown_id"] >= 1
    assert set(summary["fairness"]["providers"]["groups"]) <= {"S0", "S1", "S2", "(no value)"}
    assert {"S0", "S1", "S2"} <= set(summary["fairness"]["providers"]["groups"])


USERS = "attributes.users.path"
#: (case, user table text or None for a missing file, the error after the path)
BAD: list[tuple[str, str | None, str]] = [
    (
        "missing_id_column",
        "uid,country\n0,DE\n",
        "column 'user' (the user id) is missing (found uid, country; set attributes.users.id "
        "to a column of the table)",
    ),
    (
        "duplicate_ids",
        "user,country\n0,DE\n1,FR\n0,GB\n",
        "user id '0' appears on 2 rows (lines 2, 4; 1 ids repeated): each user must have one "
        "row (remove or merge the duplicates)",
    ),
    (
        "wrong_id_type",
        "user,country\n0,DE\nuser-1,FR\n",
        "line 3: user id 'user-1' in column 'user' must be a whole number like the run's user "
        "ids (e.g. [0, 1, 2]; rows like it: 1); fix the id or set attributes.users.id to the "
        "column holding them",
    ),
    (
        "missing_file",
        None,
        "attributes.users.path (an attribute table) must exist, got no such file (check the path)",
    ),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_user_tables_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, message: str
) -> None:
    table = tmp_path / "users.csv"
    if text is not None:
        table.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code = main(
        ["run", str(SCENARIO), "--out", str(out), "--no-cache", "--set", f"{USERS}={table}", *SMALL]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"rollout-lab: error: {table}: {message}\n"
    assert not out.exists()


def test_a_target_value_the_table_lacks_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "users.csv"
    table.write_text("user,country\n0,FR\n1,GB\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(
        ["run", str(SCENARIO), "--out", str(out), "--no-cache", "--set", f"{USERS}={table}", *SMALL]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "rollout-lab: error: target_by_country.toml: rollout.target.country must list values "
        f"of column 'country' in {table} (FR, GB), got 'DE'\n"
    )


def _scalar_paths(node: object, prefix: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _scalar_paths(v, f"{prefix}.{k}".lstrip("."))]
    return [prefix]


def test_expectations_may_name_every_attribute_number(
    country_canary: tuple[dict[str, Any], str],
) -> None:
    summary, _ = country_canary
    Summary.model_validate(summary)
    versions = set(summary["versions"])
    blocks = {
        "fairness": summary["fairness"],
        "data": {"attributes": summary["data"]["attributes"]},
        "segments": {"by_attribute": summary["segments"]["by_attribute"]},
        "versions": {
            name: {"quality": {"by_attribute": v["quality"]["by_attribute"]}}
            for name, v in summary["versions"].items()
        },
    }
    paths = _scalar_paths(blocks)
    assert len(paths) > 200
    refused = {p: check_summary_path(p, versions) for p in paths}
    assert {p: why for p, why in refused.items() if why and "is a group" not in why} == {}
    for wrong in ("fairness.providers.most_changd.group", "data.attributes.items.acounting"):
        assert check_summary_path(wrong, versions) is not None, wrong
