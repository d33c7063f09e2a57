"""The framework a program runs under is named on its events, and listed with
its version at session start: openai-agents and instructor, and frameworks
whose module has no ``__version__`` (langgraph), whose version comes from the
installed distribution. Each is the real package, imported by a fresh program
that delivers to the real collector.

instructor runs in a virtualenv of its own: it pins ``jiter<0.15``, which would
hold the locked test environment at an old openai release."""

from __future__ import annotations

import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fakes.sensor_program import program_env, program_source, run_program

CASES = [  # (module a program imports, the framework's reported name, distribution)
    ("agents", "openai_agents", "openai-agents"),
    ("langgraph.graph", "langgraph", "langgraph"),
]
INSTRUCTOR = "instructor==1.17.0"
PROGRAM = """
import {module}
call()
print(SENSOR.session.id, flush=True)
"""


@pytest.mark.parametrize(("module", "name", "distribution"), CASES,
                         ids=[case[1] for case in CASES])
def test_framework_is_named_on_events_and_listed_with_its_version(
        tmp_path: Path, module_collector: Any, module: str, name: str, distribution: str) -> None:
    # given: a program that imports the framework (installed by the dev lock), then calls
    body = PROGRAM.format(module=module)

    # when
    result = run_program(body, module_collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=module_collector.token)

    # then
    _assert_named(module_collector, result, name, importlib.metadata.version(distribution))


@pytest.mark.e2e
def test_instructor_is_named_on_events_and_listed_with_its_version(
        tmp_path: Path, module_collector: Any, make_venv: Any) -> None:
    # given: the sensor's wheel beside instructor in a virtualenv of their own
    venv = make_venv("3.12", extras=(INSTRUCTOR,), locked=False)

    # when: a program there imports instructor, then makes a call
    env = program_env(module_collector.ingest_url, tmp_path / "spool",
                      TEST_TOKEN=module_collector.token)
    result = venv.run(program_source(PROGRAM.format(module="instructor")), env=env)

    # then
    _assert_named(module_collector, result, "instructor", INSTRUCTOR.partition("==")[2])


def _assert_named(collector: Any, result: subprocess.CompletedProcess[str], name: str,
                  version: str) -> None:
    assert result.returncode == 0, result.stderr
    session_id = result.stdout.split()[-1]
    events = collector.wait_for_events(3, session_id=session_id)
    by_type = {event["event_type"]: event for event in events}
    assert by_type["post_call"]["framework"] == name
    assert f"{name}/{version}" in by_type["session_start"]["context"]["frameworks"]
