"""JUnit XML: one test case per expectation, so CI systems show which one failed and why."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["junit_xml"]


def junit_xml(suites: list[tuple[str, dict[str, Any]]]) -> str:
    """``suites`` is ``[(scenario name, verdict)]``; returns the XML document as text."""
    root = ET.Element("testsuites")
    for name, verdict in suites:
        cases = verdict.get("expectations", [])
        failures = sum(1 for c in cases if not c["passed"])
        suite = ET.SubElement(
            root, "testsuite", name=name, tests=str(len(cases)), failures=str(failures), errors="0"
        )
        for case in cases:
            element = ET.SubElement(
                suite, "testcase", classname=name, name=f"{case['metric']} {case['condition']}"
            )
            if not case["passed"]:
                message = (
                    f"{case['metric']}: expected {case['condition']}, observed {case['observed']!r}"
                )
                failure = ET.SubElement(element, "failure", message=message, type="expectation")
                failure.text = message
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
