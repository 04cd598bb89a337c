"""JUnit XML as CI servers read it: parsed by junitparser, valid against Jenkins' JUnit schema,
failures and errors counted, names as the scenario wrote them, any text made XML-safe."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from junitparser import Error, Failure, JUnitXml

from reports.junit import JUNIT_MARKER, Suite, junit_xml, xml_safe
from reports.markdown import MARKDOWN_MARKER, markdown_summary
from reports.verdict import check_expectations

SCHEMA = xmlschema.XMLSchema(Path(__file__).parent / "data" / "jenkins-junit.xsd")


def _suites(tmp_path: Path) -> list[Suite]:
    summary = {"outcome": "promoted", "requests": {"dropped": 0, "arrivals": 10}}
    verdict = check_expectations(
        summary,
        {"requests.dropped": "== 0", "requests.arrivals": "> 100", "outcome": "promoted"},
        source="a.toml",
    )
    finished = Suite(
        name="quickstart",
        file="scenarios/quickstart.toml",
        cases=tuple(verdict["expectations"]),
        seed=7,
        outcome="promoted",
        report=str(tmp_path / "quickstart" / "report.html"),
        time_s=12.3456,
        timestamp="2024-05-01T12:00:00",
    )
    invalid = Suite(
        name="broken",
        file="scenarios/broken.toml",
        error="broken.toml: rollout.weight must be in [0, 100], got 150",
    )
    return [finished, invalid]


def test_junit_is_read_by_junitparser_with_errors_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "junit.xml"
    path.write_text(junit_xml(_suites(tmp_path)), encoding="utf-8")
    document = JUnitXml.fromfile(str(path))
    suites = list(document)
    assert [s.name for s in suites] == ["quickstart", "broken"]
    finished, invalid = suites
    assert (finished.tests, finished.failures, finished.errors) == (3, 1, 0)
    assert finished.time == pytest.approx(12.346)
    assert finished.timestamp == "2024-05-01T12:00:00"
    properties = {p.name: p.value for p in finished.properties()}
    assert properties["seed"] == "7" and properties["outcome"] == "promoted"
    assert properties["report"].endswith("report.html")
    names = [case.name for case in finished]
    # expectation names as written: "== 0", not "== 0.0"
    assert names == ["requests.dropped == 0", "requests.arrivals > 100", "outcome == promoted"]
    failed = [case for case in finished if not case.is_passed]
    assert len(failed) == 1 and isinstance(failed[0].result[0], Failure)
    assert "observed 10" in failed[0].result[0].message
    assert "requests.arrivals > 100: observed 10" in (failed[0].system_out or "")
    assert (invalid.tests, invalid.failures, invalid.errors) == (1, 0, 1)
    errored = next(iter(invalid))
    assert isinstance(errored.result[0], Error)
    assert "rollout.weight must be in" in errored.result[0].message


def test_junit_is_valid_against_the_jenkins_schema(tmp_path: Path) -> None:
    text = junit_xml(_suites(tmp_path))
    SCHEMA.validate(text)
    assert JUNIT_MARKER in text.splitlines()[1]


def test_an_invalid_scenario_alone_is_not_green() -> None:
    """check on a folder with one invalid scenario wrote only the passing suite."""
    text = junit_xml([Suite(name="bad", file="bad.toml", error="bad.toml: not valid TOML")])
    root = ET.fromstring(text.split("\n", 2)[2])
    assert root.get("errors") == "1" and root.get("tests") == "1"


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(min_size=1, max_size=40))
def test_any_name_and_value_give_well_formed_valid_xml(text: str) -> None:
    """Control characters in a scenario name made junit.xml not well-formed."""
    case = {"metric": text, "condition": f"== {text}", "observed": text, "passed": False}
    suite = Suite(name=text, file=text, cases=(case,), seed=1, outcome=text, report=text)
    document = junit_xml([suite, Suite(name=text, file=text, error=text)])
    ET.fromstring(document.split("\n", 2)[2])  # well-formed
    SCHEMA.validate(document)


def test_xml_safe_escapes_what_xml_cannot_hold() -> None:
    assert xml_safe("a\x1b[31mb\x00c\td\n") == "a\\x1b[31mb\\x00c\td\n"


def test_markdown_summary_has_verdict_table_and_link(tmp_path: Path) -> None:
    text = markdown_summary(_suites(tmp_path))
    lines = text.splitlines()
    assert lines[0] == MARKDOWN_MARKER
    assert lines[1] == "## rollout-lab: ❌ not all passed"
    assert "0 passed, 1 failed, 1 could not run (of 2 scenarios)." in text
    assert "| requests.dropped | == 0 | 0 | pass |" in text
    assert "| requests.arrivals | \\> 100 | 10 | **FAIL** |" in text
    assert "❌ **could not run**: broken.toml: rollout.weight must be in \\[0, 100\\]" in text
    assert "Report: [" in text and "report.html>)" in text


def test_markdown_escapes_table_breakers() -> None:
    case = {"metric": "a|b", "condition": "== <script>", "observed": "x\ny", "passed": True}
    text = markdown_summary([Suite(name="n|`*", file="f", cases=(case,), outcome="o")])
    assert "| a\\|b | == \\<script\\> | x\\\\ny | pass |" in text
    assert "### n\\|\\`\\*" in text
