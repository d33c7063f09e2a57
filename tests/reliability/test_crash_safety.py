"""Crashes: SIGKILL of the agent loses at most what was still in its memory
(never anything the sender had already delivered); SIGKILL of the collector
mid-delivery loses nothing (the sender retries, the spool keeps the rest, the
collector keeps each id once).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from reliability.sdk_agent import AgentResult, start_agent

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

CALL_LOOP = """
log_submitted_ids(os.environ["IDS_FILE"])
oai, ant = openai_client(), anthropic_client()
report(session=SENSOR.session.id)
calls = 0
while calls < int(os.environ.get("CALLS", "1000000")):
    chat(oai) if calls % 2 else message(ant)
    calls += 1
    if calls % int(os.environ.get("FLUSH_EVERY") or 10**9) == 0:
        pending = sum(1 for _ in open(os.environ["IDS_FILE"]))
        if flightdeck_sensor.flush(10):
            report(delivered_through=pending)
report(calls=calls)
"""


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def read_ids(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_sigkill_of_the_agent_loses_only_events_not_yet_delivered(
        tmp_path: Path, collector: Any, fake_llm: FakeLLM,
        record_property: Any) -> None:
    ids_file = tmp_path / "ids"
    # Given an agent calling in a loop, flushing every 20 calls
    agent = start_agent(CALL_LOOP, collector.ingest_url, collector.token, fake_llm.url,
                        IDS_FILE=str(ids_file), FLUSH_EVERY="20")
    try:
        # When it is killed with SIGKILL after its third flush
        wait_for(lambda: len(read_ids(ids_file)) > 130, 120, "130 events submitted")
        time.sleep(0.3)
        agent.send_signal(signal.SIGKILL)
        stdout, stderr = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
    report = AgentResult(agent.returncode, stdout, stderr).report
    time.sleep(1.0)  # a batch the collector was reading when the agent died

    # Then everything delivered before the last completed flush is stored
    submitted = read_ids(ids_file)
    stored = {e["id"] for e in collector.events(session_id=report["session"])}
    delivered_through = max(int(line.split('"delivered_through": ')[1].rstrip("}"))
                            for line in stdout.splitlines() if "delivered_through" in line)
    assert set(submitted[:delivered_through]) <= stored
    # and what was lost is only what was submitted after it (still in memory)
    lost = [i for i in submitted if i not in stored]
    assert set(lost) <= set(submitted[delivered_through:])
    record_property("events_lost_on_sigkill", len(lost))
    record_property("events_submitted", len(submitted))
    print(f"SIGKILL lost {len(lost)} of {len(submitted)} events "
          f"({len(submitted) - delivered_through} were not yet flushed)")


def test_sigkill_of_the_collector_mid_delivery_loses_nothing(
        tmp_path: Path, collector: Any, fake_llm: FakeLLM) -> None:
    ids_file, spool = tmp_path / "ids", tmp_path / "spool"
    # Given an agent making 160 calls with the spool on
    agent = start_agent(CALL_LOOP, collector.ingest_url, collector.token, fake_llm.url,
                        spool_dir=spool, IDS_FILE=str(ids_file), CALLS="160",
                        FLIGHTDECK_SHUTDOWN_TIMEOUT="5")
    try:
        # When the collector is SIGKILLed while events flow, then restarted
        wait_for(lambda: len(collector.events()) >= 20 or agent.poll() is not None, 120,
                 "first deliveries")
        assert agent.poll() is None, agent.communicate()[1]
        collector.kill()
        time.sleep(1.5)
        collector.start()
        stdout, stderr = agent.communicate(timeout=180)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, stderr
    report = AgentResult(agent.returncode, stdout, stderr).report
    assert report["calls"] == 160
    # and what the agent could not deliver before exit is shipped from the spool
    flush = subprocess.run([sys.executable, "-m", "flightdeck_sensor", "spool", "flush",
                            "--server", collector.ingest_url, "--timeout", "30"],
                           env={**_no_sensor_env(), "FLIGHTDECK_SPOOL_DIR": str(spool),
                                "FLIGHTDECK_TOKEN": collector.token},
                           capture_output=True, text=True, timeout=60)
    assert flush.returncode == 0, flush.stdout + flush.stderr

    # Then every submitted event is stored exactly once
    submitted = read_ids(ids_file)
    stored = [e["id"] for e in collector.events(session_id=report["session"])]
    assert len(stored) == len(set(stored))
    assert set(stored) == set(submitted)
    assert len(submitted) == 2 * 160 + 2


def _no_sensor_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
