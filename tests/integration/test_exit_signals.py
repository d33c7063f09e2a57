"""SIGTERM: the sensor flushes, then the process dies of SIGTERM as it would
have; an application's own SIGTERM handler is left alone."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path
from typing import Any

from fakes.sensor_program import start_program

WAIT_FOR_SIGNAL = """
import time
for _ in range(5):
    call()
flightdeck_sensor.flush(5)
for _ in range(3):
    call()  # still queued (inside the batch window) when SIGTERM arrives
print(SENSOR.session.id, flush=True)
time.sleep(60)
"""


def sigterm_when_ready(body: str, tmp_path: Path, collector: Any,
                      expected_events: int) -> list[dict[str, Any]]:
    """Run ``body`` (which prints its session id when ready), send it SIGTERM,
    check it died of SIGTERM, and return the events its session delivered."""
    process = start_program(body, collector.ingest_url, tmp_path / "spool",
                            TEST_TOKEN=collector.token)
    assert process.stdout is not None
    session_id = process.stdout.readline().strip()

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)

    assert process.returncode == -signal.SIGTERM
    events: list[dict[str, Any]] = collector.wait_for_events(expected_events,
                                                             session_id=session_id)
    return events


def test_sigterm_flushes_and_the_process_still_dies_of_sigterm(
        tmp_path: Path, collector: Any) -> None:
    events = sigterm_when_ready(WAIT_FOR_SIGNAL, tmp_path, collector, 10)
    assert Counter(e["event_type"] for e in events) == {
        "session_start": 1, "post_call": 8, "session_end": 1}
    assert events[-1]["close_reason"] == "normal_exit"


def test_application_sigterm_handler_is_kept(tmp_path: Path, collector: Any) -> None:
    body = """
import signal, sys
signal.signal(signal.SIGTERM, lambda *_: (print("app handler", flush=True), sys.exit(3)))
""" + WAIT_FOR_SIGNAL
    process = start_program(body, collector.ingest_url, tmp_path / "spool",
                            TEST_TOKEN=collector.token)
    assert process.stdout is not None
    session_id = process.stdout.readline().strip()

    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=15)

    assert process.returncode == 3
    assert "app handler" in stdout
    events = collector.wait_for_events(10, session_id=session_id)
    assert [e["event_type"] for e in events].count("post_call") == 8


def test_sigterm_flushes_calls_made_on_worker_threads(tmp_path: Path, collector: Any) -> None:
    # Given a program whose LLM calls (and so its session) start on a worker thread
    body = """
import threading, time
def work():
    for _ in range(3):
        call()
    print(SENSOR.session.id, flush=True)
threading.Thread(target=work).start()
time.sleep(60)
"""
    # When it is sent SIGTERM, then it still dies of SIGTERM, its events delivered first
    events = sigterm_when_ready(body, tmp_path, collector, 5)
    assert Counter(e["event_type"] for e in events) == {
        "session_start": 1, "post_call": 3, "session_end": 1}
