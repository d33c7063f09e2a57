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
