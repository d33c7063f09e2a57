"""``flightdeck-sensor doctor`` against the real collector (the .pth itself is checked
in fresh virtualenvs by tests/e2e/test_pth_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from flightdeck_sensor._doctor import diagnose, render


def test_live_server_answers_health_and_the_token_is_masked(collector: Any, tmp_path: Path
                                                           ) -> None:
    env = {**collector.env(), "FLIGHTDECK_SPOOL_DIR": str(tmp_path)}

    report = diagnose(env, timeout=5)

    assert report["health"]["ok"] is True and report["health"]["status"] == 200
    assert report["health"]["url"] == f"{collector.ingest_url}/health"
    assert report["config"]["enabled"] is True
    assert report["environment"]["FLIGHTDECK_TOKEN"] == f"<set, {len(collector.token)} characters>"
    assert collector.token not in json.dumps(report, default=str) + render(report)
    assert report["spool"] is not None and report["spool"]["enabled"] is True
    assert report["notes"] == []


def test_every_warning_is_shown_at_once(tmp_path: Path) -> None:
    env = {"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "tok-SECRET",
           "FLIGHTDECK_SHUTDOWN_TIMEOUT": "soon", "FLIGHTDECK_AGENT_TYPE": "robot",
           "FLIGHTDECK_SPOOL_DIR": str(tmp_path)}

    report = diagnose(env, timeout=0.5)

    assert sorted(report["warnings"]) == [
        "FLIGHTDECK_AGENT_TYPE='robot' is not 'production' or 'coding'; using 'production' "
        "instead",
        "FLIGHTDECK_SHUTDOWN_TIMEOUT='soon' is not a number of seconds >= 0; using 2.0 instead"]
    assert "  - FLIGHTDECK_AGENT_TYPE='robot'" in render(report)


def test_dead_server_is_a_note_not_a_reason_the_sensor_would_not_run(tmp_path: Path) -> None:
    env = {"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "t",
           "FLIGHTDECK_SPOOL_DIR": str(tmp_path)}

    report = diagnose(env, timeout=0.5)

    assert report["health"]["ok"] is False
    assert any("did not answer" in note for note in report["notes"])
    assert not any("server" in problem.lower() for problem in report["problems"])


def test_unset_server_is_a_reason_the_sensor_would_not_run() -> None:
    report = diagnose({}, timeout=0.5)

    assert "FLIGHTDECK_SERVER is not set: the sensor is off" in report["problems"]
    assert report["health"] is None


def test_insecure_server_is_a_reason_the_sensor_would_not_run() -> None:
    report = diagnose({"FLIGHTDECK_SERVER": "http://flightdeck.example.com",
                       "FLIGHTDECK_TOKEN": "t"}, timeout=0.5)

    assert "the configuration turned the sensor off (see the warnings)" in report["problems"]
    assert "plain http to a non-local host" in report["warnings"][0]


def test_json_output_from_the_command_line(collector: Any, tmp_path: Path) -> None:
    env = {**collector.env(), "FLIGHTDECK_SPOOL_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}

    result = subprocess.run([sys.executable, "-m", "flightdeck_sensor", "doctor", "--json"],
                            capture_output=True, text=True, env=env, timeout=60)

    report = json.loads(result.stdout)
    assert report["health"]["ok"] is True
    assert result.returncode == (1 if report["problems"] else 0)
    assert collector.token not in result.stdout + result.stderr
