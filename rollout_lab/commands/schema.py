"""``rollout-lab schema scenario|summary``: the JSON Schema of a scenario file or of
``summary.json``, generated from the pydantic models (``lab.scenario.Scenario`` and
``reports.summary_schema.Summary``), for editor completion and for programs that read
summaries."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rollout_lab.commands.common import EXIT_OK

NAME = "schema"


def add_parser(sub: Any) -> None:
    p = sub.add_parser(NAME, help="print the JSON Schema of scenario files or of summary.json")
    p.add_argument("kind", choices=("scenario", "summary"))


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (its TOML read as JSON), draft 2020-12."""
    from lab.scenario import Scenario

    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "rollout-lab scenario"
    return schema


def execute(args: argparse.Namespace) -> int:
    if args.kind == "scenario":
        schema = scenario_json_schema()
    else:
        from reports.summary_schema import summary_json_schema

        schema = summary_json_schema()
    print(json.dumps(schema, indent=2))
    return EXIT_OK
