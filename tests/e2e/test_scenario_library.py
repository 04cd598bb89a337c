"""Every shipped scenario runs through `rollout-lab check` at the scale written in its file
and passes (a scenario that passes only when shrunk is a failing scenario); the checks of
check's own behaviour run a scenario at reduced scale."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rollout_lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
REDUCED = ["--set", "traffic.users=4000", "--set", "traffic.items=1000"]


def test_library_has_at_least_ten_scenarios_with_expectations() -> None:
    files = sorted((ROOT / "scenarios").glob("*.toml"))
    assert len(files) >= 10
    for path in files:
        assert "[expect]" in path.read_text(encoding="utf-8"), path.name


def test_check_runs_every_scenario_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "junit.xml"
    code = main(
        ["check", str(ROOT / "scenarios"), "--out", str(tmp_path), "--junit", str(junit),
         "--jobs", "2"]
    )  # fmt: skip
    table = capsys.readouterr().out
    assert code == 0, table
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert len(suites) == len(list((ROOT / "scenarios").glob("*.toml")))
    assert all(s.get("failures") == "0" for s in suites)
    # Decision reasons come from sim.wording: "1 successful analysis", never "1 ... analyses".
    reasons = [
        d["reason"]
        for summary in tmp_path.glob("*/summary.json")
        for d in json.loads(summary.read_text(encoding="utf-8"))["decisions"]
    ]
    promoted = [r for r in reasons if "in a row" in r]
    assert promoted and all(re.search(r"\b1 successful analysis in a row", r) for r in promoted)


def test_failing_expectation_exits_1_and_names_metric(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    code = main(
        [
            "check",
            str(ROOT / "scenarios" / "error_burst.toml"),
            "--out",
            str(tmp_path),
            "--junit",
            str(junit),
            *REDUCED,
            "--set",
            'expect."requests.dropped"="> 5"',
        ]
    )
    assert code == 1
    failures = ET.parse(junit).getroot().findall(".//failure")
    assert len(failures) == 1
    message = failures[0].get("message", "")
    assert message == "requests.dropped: expected > 5, observed 0"  # as the scenario wrote it


def test_check_on_bad_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[traffic]\nduration = "1h"\n', encoding="utf-8")
    assert main(["check", str(bad), "--out", str(tmp_path / "out")]) == 2


def _comparable(junit: Path, out: Path) -> str:
    """The JUnit file without wall-clock times and with the output folder named OUT."""
    text = junit.read_text(encoding="utf-8").replace(str(out), "OUT")
    return re.sub(r'(time|timestamp)="[^"]*"', "", text)


def test_check_jobs_gives_the_serial_table_and_junit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    for name in ("error_burst.toml", "quickstart.toml"):
        (folder / name).write_text((ROOT / "scenarios" / name).read_text(encoding="utf-8"))
    (folder / "broken.toml").write_text('name = "broken"\nseed = "x"\n', encoding="utf-8")
    short = ["--set", "traffic.users=2000", "--set", "traffic.items=500",
             "--set", "traffic.duration=20m"]  # fmt: skip
    tables, junits = [], []
    for jobs in ("1", "2"):
        out, junit = tmp_path / f"out{jobs}", tmp_path / f"junit{jobs}.xml"
        code = main(
            ["check", str(folder), "--out", str(out), "--junit", str(junit), "--jobs", jobs,
             *short]
        )  # fmt: skip
        assert code == 2  # the broken file is listed as invalid; the others still run
        table = capsys.readouterr().out.splitlines()
        tables.append(table[:-1])  # the last line holds the time taken
        junits.append(_comparable(junit, out))
        for name in ("error_burst", "quickstart"):
            assert (out / name / "summary.json").is_file()
    assert tables[0] == tables[1]
    rows = [line.split()[0] for line in tables[0][1:] if not line.startswith(" ")]
    assert rows == ["broken", "error_burst", "quickstart"]
    assert junits[0] == junits[1]


def test_check_jobs_must_be_positive(tmp_path: Path) -> None:
    path = str(ROOT / "scenarios" / "quickstart.toml")
    assert main(["check", path, "--out", str(tmp_path / "out"), "--jobs", "0"]) == 2
