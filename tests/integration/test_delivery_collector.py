"""Delivery to the real collector: batches arrive whole and in order, the
response envelope's ``attached`` is reported once, get_status() adds up."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from fakes.sensor_program import run_program


def test_events_arrive_in_order_and_status_adds_up(tmp_path: Path, collector: Any) -> None:
    body = """
import json
for n in range(1234):
    call(tokens=n + 1)
flightdeck_sensor.flush(30)
print(json.dumps(flightdeck_sensor.get_status()), flush=True)
"""
    result = run_program(body, collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=collector.token)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)

    events = collector.wait_for_events(1236, session_id=status["session_id"])

    calls = [e for e in events if e["event_type"] == "post_call"]
    assert [e["tokens_total"] for e in calls] == list(range(1, 1235))
    assert status["sent"] == 1235 and status["queued"] == 0
    assert status["dropped"] == {} and status["spooled"] == 0 and status["retries"] == 0
    assert status["mode"] == "batch" and status["last_error"] is None


def test_second_run_with_the_same_session_id_logs_attached_once(tmp_path: Path,
                                                                 collector: Any) -> None:
    session_id = str(uuid.uuid4())
    runs = [run_program("call()\ncall()", collector.ingest_url, tmp_path / "spool",
                        TEST_TOKEN=collector.token, FLIGHTDECK_SESSION_ID=session_id,
                        FLIGHTDECK_LOG_LEVEL="INFO") for _ in range(2)]

    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    line = f"Attached to existing session {session_id}."
    assert line not in runs[0].stderr
    assert runs[1].stderr.count(line) == 1
    assert len(collector.wait_for_events(8, session_id=session_id)) == 8


def test_calls_leave_the_sender_asleep_until_its_tick_or_a_full_batch(tmp_path: Path,
                                                                      collector: Any) -> None:
    # A call does not wake the sender (a woken thread contends for the GIL with
    # the caller): it delivers at its tick, while the program runs, without a
    # flush; only a full batch wakes it early. The wakes are counted, not timed.
    body = """
import json, time
sender = SENSOR.transport._sender
wakes = []
real_wake = sender.wake
sender.wake = lambda: (wakes.append(1), real_wake())
def delivered(count):
    deadline = time.monotonic() + 20
    while flightdeck_sensor.get_status()["sent"] < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return flightdeck_sensor.get_status()["sent"]
call()                     # starts the session and the sender
first = delivered(2)
for _ in range(3):
    call()
    time.sleep(0.05)
trickle = {"sent": delivered(5), "wakes": len(wakes)}
for _ in range(1200):      # more than two batches, at once: even if the tick
    call()                 # takes some early, 500 are waiting at some point
batch = {"sent": delivered(1205), "wakes": len(wakes)}
print(json.dumps({"first": first, "trickle": trickle, "batch": batch}), flush=True)
"""
    result = run_program(body, collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=collector.token)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)

    assert seen["first"] == 2 and seen["trickle"] == {"sent": 5, "wakes": 0}
    assert seen["batch"]["sent"] == 1205 and seen["batch"]["wakes"] >= 1
