"""``flightdeck-sensor run [--server URL] [--token T] [--session-id ID] -- CMD ...``"""

from __future__ import annotations

import subprocess
import sys

ENV = {"PATH": "/usr/bin:/bin"}
SHOW_ENV = ("import os; print(os.environ.get('FLIGHTDECK_SERVER'), "
            "os.environ.get('FLIGHTDECK_TOKEN'), os.environ.get('FLIGHTDECK_SESSION_ID'))")


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightdeck_sensor", "run", *args],
                          capture_output=True, text=True, timeout=60, env={**ENV, **(env or {})})


def test_command_runs_with_the_variables_set() -> None:
    result = launch("--server", "http://127.0.0.1:4000", "--token", "tok",
                    "--session-id", "{0B3D5A4E-8F1C-4E52-9A7B-1C2D3E4F5A6B}",
                    "--", sys.executable, "-c", SHOW_ENV)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ("http://127.0.0.1:4000 tok {0B3D5A4E-8F1C-4E52-9A7B-1C2D3E4F5A6B}\n")
    assert result.stderr == ""


def test_options_override_the_environment_and_the_exit_status_is_the_commands() -> None:
    result = launch("--server", "http://127.0.0.1:4000", "--",
                    sys.executable, "-c", "import os, sys; "
                    "sys.exit(7 if os.environ['FLIGHTDECK_SERVER'].endswith('4000') else 1)",
                    env={"FLIGHTDECK_SERVER": "http://127.0.0.1:5000", "FLIGHTDECK_TOKEN": "t"})

    assert result.returncode == 7


def test_server_from_the_environment_is_enough() -> None:
    result = launch("--", sys.executable, "-c", SHOW_ENV,
                    env={"FLIGHTDECK_SERVER": "http://127.0.0.1:4000", "FLIGHTDECK_TOKEN": "t"})

    assert (result.returncode, result.stdout) == (0, "http://127.0.0.1:4000 t None\n")


def test_invalid_session_id_is_an_error_before_anything_runs() -> None:
    result = launch("--server", "http://127.0.0.1:4000", "--token", "t",
                    "--session-id", "nightly-42", "--", sys.executable, "-c", "print('ran')")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "--session-id 'nightly-42' is not a UUID" in result.stderr


def test_missing_server_is_an_error() -> None:
    result = launch("--", sys.executable, "-c", "print('ran')")

    assert result.returncode == 2
    assert "no server: pass --server URL or set FLIGHTDECK_SERVER" in result.stderr


def test_insecure_server_is_an_error_naming_the_fix_without_the_token() -> None:
    result = launch("--server", "http://flightdeck.example.com", "--token", "tok-SECRET",
                    "--", sys.executable, "-c", "print('ran')")

    assert result.returncode == 2
    assert "FLIGHTDECK_ALLOW_INSECURE=true" in result.stderr
    assert "tok-SECRET" not in result.stderr and result.stdout == ""


def test_missing_token_is_a_warning_and_the_command_runs() -> None:
    result = launch("--server", "http://127.0.0.1:4000", "--", sys.executable, "-c", "print(1)")

    assert (result.returncode, result.stdout) == (0, "1\n")
    assert "warning: FLIGHTDECK_TOKEN is not set" in result.stderr


def test_no_command_is_an_error() -> None:
    result = launch("--server", "http://127.0.0.1:4000")

    assert result.returncode == 2
    assert "no command given" in result.stderr


def test_unknown_command_exits_127() -> None:
    result = launch("--server", "http://127.0.0.1:4000", "--token", "t", "--",
                    "no-such-command-xyz")

    assert result.returncode == 127
    assert "command not found: no-such-command-xyz" in result.stderr
