"""JUnit XML, in the schema CI servers read (Jenkins, GitLab, GitHub reporters).

One ``<testsuite>`` per scenario, one ``<testcase>`` per expectation, named as the scenario
wrote it (``requests.dropped == 0``).  A suite carries ``time`` (seconds), ``timestamp`` (its
start, UTC, ``YYYY-MM-DDTHH:MM:SS``), ``file`` (the scenario file), ``<properties>`` (seed,
outcome, report path) and ``<system-out>`` with every observed value; a failed expectation is
a ``<failure>``.  A scenario that could not run — invalid, refused, or stopped by an internal
error — is a suite holding one test case with an ``<error>``, so that no CI shows it green.

Every text is made XML 1.0-safe: characters XML cannot hold (control characters other than
tab and newline) are written escaped as ``\\x1b``, never raw.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["JUNIT_MARKER", "Suite", "junit_xml", "xml_safe"]

#: Written near the top of every JUnit file, so that ``--force`` replaces only the lab's own.
JUNIT_MARKER = "<!-- written by rollout-lab -->"

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with characters XML 1.0 cannot hold written as escapes (``\\x1b``)."""
    return _NOT_XML.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


@dataclass(frozen=True, slots=True)
class Suite:
    """One scenario's results.

    name       the scenario's name (the file's stem when it could not be loaded)
    file       the scenario file as given
    cases      the verdict's expectations: ``metric``, ``condition``, ``observed``, ``passed``
    error      why the scenario did not run to its verdict (one line), else None
    seed, outcome, report   properties of a finished run
    time_s     wall seconds the scenario took
    timestamp  when it started, UTC, ``YYYY-MM-DDTHH:MM:SS``
    """

    name: str
    file: str
    cases: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    seed: int | None = None
    outcome: str | None = None
    report: str | None = None
    time_s: float = 0.0
    timestamp: str = ""


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def _observed(case: dict[str, Any]) -> str:
    return f"{case['metric']} {case['condition']}: observed {case['observed']!r}"


def _suite(root: ET.Element, suite: Suite) -> tuple[int, int, int]:
    failures = 0 if suite.error else sum(1 for c in suite.cases if not c["passed"])
    tests = 1 if suite.error else len(suite.cases)
    errors = 1 if suite.error else 0
    attributes = {
        "name": xml_safe(suite.name),
        "tests": str(tests),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": "0",
        "time": _seconds(suite.time_s),
        "file": xml_safe(suite.file),
    }
    if suite.timestamp:
        attributes["timestamp"] = suite.timestamp
    element = ET.SubElement(root, "testsuite", attributes)
    properties = ET.SubElement(element, "properties")
    for key, value in (
        ("scenario_file", suite.file),
        ("seed", suite.seed),
        ("outcome", suite.outcome),
        ("report", suite.report),
    ):
        if value is not None:
            ET.SubElement(properties, "property", name=key, value=xml_safe(str(value)))
    classname = xml_safe(suite.name)
    if suite.error:
        errored = ET.SubElement(element, "testcase", classname=classname, name="scenario runs")
        errored.set("time", _seconds(suite.time_s))
        message = xml_safe(suite.error)
        error = ET.SubElement(errored, "error", message=message, type="scenario error")
        error.text = message
        return tests, failures, errors
    lines: list[str] = []
    for case in suite.cases:
        name = xml_safe(f"{case['metric']} {case['condition']}")
        testcase = ET.SubElement(element, "testcase", classname=classname, name=name, time="0")
        observed = xml_safe(_observed(case))
        if not case["passed"]:
            message = xml_safe(
                f"{case['metric']}: expected {case['condition']}, observed {case['observed']!r}"
            )
            failure = ET.SubElement(testcase, "failure", message=message, type="expectation")
            failure.text = message
        ET.SubElement(testcase, "system-out").text = observed
        lines.append(observed)
    if suite.outcome is not None:
        lines.insert(0, f"outcome: {suite.outcome}")
    ET.SubElement(element, "system-out").text = xml_safe("\n".join(lines))
    return tests, failures, errors


def junit_xml(suites: Sequence[Suite]) -> str:
    """The JUnit document of ``suites`` as text (UTF-8 declared)."""
    root = ET.Element("testsuites", name="rollout-lab")
    totals = [0, 0, 0]
    for suite in suites:
        for i, count in enumerate(_suite(root, suite)):
            totals[i] += count
    root.set("tests", str(totals[0]))
    root.set("failures", str(totals[1]))
    root.set("errors", str(totals[2]))
    root.set("time", _seconds(sum(s.time_s for s in suites)))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="utf-8"?>\n{JUNIT_MARKER}\n{body}\n'
