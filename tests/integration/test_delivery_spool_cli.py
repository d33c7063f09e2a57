"""``flightdeck-sensor spool status|flush`` against the real collector."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fakes.sensor_program import program_env, run_program


def spool_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightdeck_sensor", "spool", *args],
                          env=env, capture_output=True, text=True, timeout=60)


def test_spool_flush_ships_what_a_dead_server_run_left(tmp_path: Path, collector: Any) -> None:
    spool = tmp_path / "spool"
    collector.stop()
    run_program("for _ in range(7): call()", collector.ingest_url, spool,
                TEST_TOKEN=collector.token, FLIGHTDECK_SHUTDOWN_TIMEOUT="0.5")
    env = program_env(collector.ingest_url, spool, FLIGHTDECK_SERVER=collector.ingest_url,
                      FLIGHTDECK_TOKEN=collector.token)

    status = spool_command("status", "--json", env=env)
    assert json.loads(status.stdout)["events"] == 9

    failed = spool_command("flush", "--timeout", "3", env=env)
    assert failed.returncode == 1  # still down: nothing lost, all left in the spool
    assert json.loads(spool_command("status", "--json", env=env).stdout)["events"] == 9

    collector.restart()
    flushed = spool_command("flush", "--json", env=env)

    assert flushed.returncode == 0, flushed.stderr
    assert json.loads(flushed.stdout)["sent"] == 9
    assert len(collector.wait_for_events(9)) == 9
    assert json.loads(spool_command("status", "--json", env=env).stdout)["events"] == 0


def spool_of_a_dead_server_run(tmp_path: Path, collector: Any, calls: int) -> dict[str, str]:
    """Leave ``calls`` calls' events in the spool; the environment to flush it without a token."""
    spool = tmp_path / "spool"
    collector.stop()
    run_program(f"for _ in range({calls}): call()", collector.ingest_url, spool,
                TEST_TOKEN=collector.token, FLIGHTDECK_SHUTDOWN_TIMEOUT="0.5")
    collector.restart()
    return program_env(collector.ingest_url, spool, FLIGHTDECK_SERVER=collector.ingest_url)


def test_spool_flush_takes_its_token_from_a_file(tmp_path: Path, collector: Any) -> None:
    env = spool_of_a_dead_server_run(tmp_path, collector, calls=3)
    token_file = tmp_path / "token"
    token_file.write_text(collector.token + "\n")

    flushed = spool_command("flush", "--json", "--token-file", str(token_file), env=env)

    assert flushed.returncode == 0, flushed.stderr
    assert json.loads(flushed.stdout)["sent"] == 5
    assert len(collector.wait_for_events(5)) == 5


def test_the_server_option_wins_over_flightdeck_server(tmp_path: Path, collector: Any) -> None:
    # given: the spool of the collector's URL, and FLIGHTDECK_SERVER naming another server
    env = spool_of_a_dead_server_run(tmp_path, collector, calls=3)
    env["FLIGHTDECK_SERVER"] = "http://127.0.0.1:9/ingest"
    token_file = tmp_path / "token"
    token_file.write_text(collector.token + "\n")

    # when: the commands name the collector with --server
    status = spool_command("status", "--json", "--server", collector.ingest_url, env=env)
    flushed = spool_command("flush", "--json", "--server", collector.ingest_url,
                            "--token-file", str(token_file), env=env)

    # then: they act on the collector's spool, not on FLIGHTDECK_SERVER's
    assert json.loads(status.stdout)["events"] == 5
    assert flushed.returncode == 0, flushed.stderr
    assert json.loads(flushed.stdout)["sent"] == 5
    assert len(collector.wait_for_events(5)) == 5


def test_spool_flush_refuses_a_token_on_the_command_line(tmp_path: Path, collector: Any) -> None:
    env = spool_of_a_dead_server_run(tmp_path, collector, calls=3)

    refused = spool_command("flush", "--token", collector.token, env=env)

    assert (refused.returncode, refused.stdout) == (2, "")
    assert "--token was removed" in refused.stderr and "FLIGHTDECK_TOKEN" in refused.stderr
    assert "--token-file" in refused.stderr and collector.token not in refused.stderr
    assert json.loads(spool_command("status", "--json", env=env).stdout)["events"] == 5
    assert collector.events() == []
