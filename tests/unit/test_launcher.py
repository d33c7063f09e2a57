"""``flightdeck-sensor run [--server URL] [--token-file PATH] [--session-id ID] -- CMD ...``"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from fakes.sensor_program import program_env, program_source

ENV = {"PATH": "/usr/bin:/bin"}
SHOW_ENV = ("import os; print(os.environ.get('FLIGHTDECK_SERVER'), "
            "os.environ.get('FLIGHTDECK_TOKEN'), os.environ.get('FLIGHTDECK_SESSION_ID'))")


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightdeck_sensor", "run", *args],
                          capture_output=True, text=True, timeout=60, env={**ENV, **(env or {})})


def test_command_runs_with_the_variables_set() -> None:
    result = launch("--server", "http://127.0.0.1:4000",
                    "--session-id", "{0B3D5A4E-8F1C-4E52-9A7B-1C2D3E4F5A6B}",
                    "--", sys.executable, "-c", SHOW_ENV, env={"FLIGHTDECK_TOKEN": "tok"})

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


def test_token_file_gives_the_command_its_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("ftd_from_file\n")

    result = launch("--server", "http://127.0.0.1:4000", "--token-file", str(token_file),
                    "--", sys.executable, "-c", SHOW_ENV, env={"FLIGHTDECK_TOKEN": "older"})

    assert (result.returncode, result.stdout) == (0, "http://127.0.0.1:4000 ftd_from_file None\n")


def test_events_are_delivered_with_the_token_from_the_file(tmp_path: Path, collector: Any) -> None:
    # Given the collector's token in a file only (the program's own init() token is wrong,
    # and the environment wins over init())
    token_file = tmp_path / "token"
    token_file.write_text(collector.token + "\n")
    env = program_env(collector.ingest_url, tmp_path / "spool", token="not-the-token")

    # When the launcher runs a program making two calls
    result = launch("--server", collector.ingest_url, "--token-file", str(token_file),
                    "--", sys.executable, "-c", program_source("call()\ncall()"), env=env)

    # Then its session and both calls are stored
    assert result.returncode == 0, result.stderr
    events = collector.wait_for_events(4)
    assert sum(event["event_type"] == "post_call" for event in events) == 2


def test_token_on_the_command_line_is_refused_with_the_way_to_go() -> None:
    result = launch("--server", "http://127.0.0.1:4000", "--token", "tok-SECRET",
                    "--", sys.executable, "-c", "print('ran')")

    assert (result.returncode, result.stdout) == (2, "")
    assert "--token was removed" in result.stderr and "FLIGHTDECK_TOKEN" in result.stderr
    assert "--token-file" in result.stderr and "tok-SECRET" not in result.stderr


def test_unreadable_token_file_is_an_error_before_anything_runs(tmp_path: Path) -> None:
    result = launch("--server", "http://127.0.0.1:4000", "--token-file", str(tmp_path / "none"),
                    "--", sys.executable, "-c", "print('ran')")

    assert (result.returncode, result.stdout) == (2, "")
    assert "cannot read the token file" in result.stderr


def test_invalid_session_id_is_an_error_before_anything_runs() -> None:
    result = launch("--server", "http://127.0.0.1:4000",
                    "--session-id", "nightly-42", "--", sys.executable, "-c", "print('ran')")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "--session-id 'nightly-42' is not a UUID" in result.stderr


def test_missing_server_is_an_error() -> None:
    result = launch("--", sys.executable, "-c", "print('ran')")

    assert result.returncode == 2
    assert "no server: pass --server URL or set FLIGHTDECK_SERVER" in result.stderr


def test_insecure_server_is_an_error_naming_the_fix_without_the_token() -> None:
    result = launch("--server", "http://flightdeck.example.com", "--", sys.executable, "-c",
                    "print('ran')", env={"FLIGHTDECK_TOKEN": "tok-SECRET"})

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
    result = launch("--server", "http://127.0.0.1:4000", "--", "no-such-command-xyz",
                    env={"FLIGHTDECK_TOKEN": "t"})

    assert result.returncode == 127
    assert "command not found: no-such-command-xyz" in result.stderr
