"""The framework a program runs under is named on its events, and listed with
its version at session start: openai-agents and instructor, and frameworks
whose module has no ``__version__`` (langgraph), whose version comes from the
installed distribution. Each is the real package, imported by a fresh program
that delivers to the real collector."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from fakes.sensor_program import run_program

CASES = [  # (module a program imports, the framework's reported name, distribution)
    ("agents", "openai_agents", "openai-agents"),
    ("instructor", "instructor", "instructor"),
    ("langgraph.graph", "langgraph", "langgraph"),
]


@pytest.mark.parametrize(("module", "name", "distribution"), CASES,
                         ids=[case[1] for case in CASES])
def test_framework_is_named_on_events_and_listed_with_its_version(
        tmp_path: Path, module_collector: Any, module: str, name: str, distribution: str) -> None:
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{distribution} is not installed")

    # given: a program that imports the framework, then makes a call
    body = f"""
import {module}
call()
print(SENSOR.session.id, flush=True)
"""

    # when
    result = run_program(body, module_collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=module_collector.token)

    # then
    assert result.returncode == 0, result.stderr
    session_id = result.stdout.split()[-1]
    events = module_collector.wait_for_events(3, session_id=session_id)
    by_type = {event["event_type"]: event for event in events}
    assert by_type["post_call"]["framework"] == name
    version = importlib.metadata.version(distribution)
    assert f"{name}/{version}" in by_type["session_start"]["context"]["frameworks"]
