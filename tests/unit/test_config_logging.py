"""FLIGHTDECK_LOG_LEVEL: the sensor's lines on stderr at that level, each line once,
whatever the application's own logging prints (real interpreters, real logging)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROGRAM = """
import logging, sys
{app_logging}
from flightdeck_sensor._config import resolve_config
from flightdeck_sensor._log import configure_logging
config, _ = resolve_config({{"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "t",
                             **({{"FLIGHTDECK_LOG_LEVEL": {level!r}}} if {level!r} else {{}})}})
configure_logging(config)
configure_logging(config)  # idempotent: the session start calls it again
log = logging.getLogger("flightdeck_sensor")
log.debug("sensor-debug-line")
log.info("sensor-info-line")
log.warning("sensor-warning-line")
logging.getLogger("flightdeck_sensor.transport").info("sensor-child-info-line")
"""


def run(level: str, app_logging: str = "") -> str:
    """The program's stderr and stdout."""
    code = PROGRAM.format(level=level, app_logging=app_logging)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stderr + result.stdout  # what the operator's log file gets


def counts(stderr: str) -> dict[str, int]:
    return {name: stderr.count(f"sensor-{name}-line")
            for name in ("debug", "info", "warning", "child-info")}


def test_without_the_variable_logging_is_the_applications_own() -> None:
    stderr = run(level="")

    assert counts(stderr) == {"debug": 0, "info": 0, "warning": 1, "child-info": 0}


def test_info_level_shows_info_lines_of_an_application_without_logging() -> None:
    stderr = run(level="INFO")

    assert counts(stderr) == {"debug": 0, "info": 1, "warning": 1, "child-info": 1}
    assert "flightdeck_sensor INFO sensor-info-line" in stderr


@pytest.mark.parametrize("app_logging", [
    "logging.basicConfig(level=logging.INFO, stream=sys.stderr)",
    "logging.basicConfig(level=logging.DEBUG, stream=sys.stdout)",
    "logging.getLogger('flightdeck_sensor').addHandler(logging.StreamHandler())",
])
def test_lines_the_application_already_prints_are_not_printed_twice(app_logging: str) -> None:
    stderr = run(level="INFO", app_logging=app_logging)

    assert counts(stderr) == {"debug": 0, "info": 1, "warning": 1, "child-info": 1}


def test_application_printing_only_warnings_still_gets_the_sensor_info_lines() -> None:
    stderr = run(level="INFO", app_logging="logging.basicConfig(level=logging.WARNING)")

    assert counts(stderr) == {"debug": 0, "info": 1, "warning": 1, "child-info": 1}


def test_application_logging_to_a_file_does_not_hide_the_stderr_lines(tmp_path: object) -> None:
    stderr = run(level="DEBUG", app_logging=f"logging.basicConfig(filename={str(tmp_path)!r} + "
                                            "'/app.log', level=logging.DEBUG)")

    assert counts(stderr) == {"debug": 1, "info": 1, "warning": 1, "child-info": 1}


def test_error_level_silences_the_sensor_warnings() -> None:
    assert counts(run(level="ERROR")) == {"debug": 0, "info": 0, "warning": 0, "child-info": 0}
