"""Many threads emitting at once lose nothing and count tokens exactly; a GC
finalizer that records an event cannot deadlock the sensor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fakes.sensor_program import run_program

THREADS, CALLS, TOKENS = 32, 200, 7


def test_32_threads_lose_nothing_and_count_tokens_exactly(tmp_path: Path,
                                                          collector: Any) -> None:
    body = f"""
import threading
start = threading.Barrier({THREADS})
def worker():
    start.wait()
    for _ in range({CALLS}):
        call(tokens={TOKENS})
threads = [threading.Thread(target=worker) for _ in range({THREADS})]
for t in threads: t.start()
for t in threads: t.join()
print(SENSOR.session.id, flush=True)
"""
    result = run_program(body, collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=collector.token)
    assert result.returncode == 0, result.stderr
    session_id = result.stdout.strip()

    events = collector.wait_for_events(THREADS * CALLS + 2, session_id=session_id, timeout=30)

    calls = [e for e in events if e["event_type"] == "post_call"]
    assert len(calls) == THREADS * CALLS
    assert len({e["id"] for e in events}) == len(events)
    total = THREADS * CALLS * TOKENS
    assert max(e["tokens_used_session"] for e in calls) == total
    assert sorted(e["tokens_used_session"] for e in calls) == list(
        range(TOKENS, total + 1, TOKENS))
    session_end = next(e for e in events if e["event_type"] == "session_end")
    assert session_end["tokens_used_session"] == total


def test_recording_from_a_gc_finalizer_does_not_deadlock(tmp_path: Path,
                                                          collector: Any) -> None:
    body = """
import gc, threading, time
finalized = []
class Leaky:
    def __init__(self): self.me = self   # a cycle: only the GC frees it
    def __del__(self):
        call(tokens=1)
        finalized.append(1)
gc.set_threshold(50)
def churn():
    for _ in range(3000):
        Leaky()
        call(tokens=1)
threads = [threading.Thread(target=churn) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
# gc.collect() returns at once while another thread (the sender) is collecting:
# wait until every finalizer has recorded its event, so the count below is whole.
deadline = time.monotonic() + 30
while len(finalized) < 12000 and time.monotonic() < deadline:
    gc.collect()
    time.sleep(0.01)
flightdeck_sensor.shutdown(20)
import json
print(json.dumps({**flightdeck_sensor.get_status(), "finalized": len(finalized)}), flush=True)
"""
    result = run_program(body, collector.ingest_url, tmp_path / "spool", timeout=60,
                         TEST_TOKEN=collector.token)
    assert result.returncode == 0, result.stderr[-2000:]

    # Producers this fast outrun any sender: the bounded queue refuses the
    # excess, and every event is either delivered or counted as dropped.
    status = json.loads(result.stdout)
    assert status["finalized"] == 12000 and status["queued"] == 0
    events = collector.wait_for_events(status["sent"], session_id=status["session_id"])
    assert len(events) == status["sent"]
    assert status["sent"] + sum(status["dropped"].values()) + status["spooled"] == 24002
    # (finalizers that run after shutdown() are counted as "after_close")
    assert set(status["dropped"]) <= {"queue_full", "after_close"}


def test_an_event_queued_as_close_finishes_is_counted_not_stranded(tmp_path: Path,
                                                                     collector: Any) -> None:
    # A thread that passed submit()'s closed check just before shutdown began can
    # queue its event once close() has taken the leftovers. The interleaving is
    # forced: the queue's put runs the whole shutdown first, then queues the event.
    body = """
import json
transport = SENSOR.transport
real_put = transport._queue.put
def put_after_close(event):
    transport._queue.put = real_put
    flightdeck_sensor.shutdown(10)
    return real_put(event)
call(tokens=1)
transport._queue.put = put_after_close
call(tokens=2)  # queued after close() finished
call(tokens=3)  # after close
print(json.dumps(flightdeck_sensor.get_status()), flush=True)
"""
    result = run_program(body, collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=collector.token)
    assert result.returncode == 0, result.stderr

    # then: nothing left in the queue uncounted; the first call and the session's
    # start and end were delivered, the two late ones counted as dropped
    status = json.loads(result.stdout)
    assert status["queued"] == 0
    assert status["dropped"] == {"after_close": 2}
    events = collector.wait_for_events(3, session_id=status["session_id"])
    assert [e["event_type"] for e in events] == ["session_start", "post_call", "session_end"]
    assert status["sent"] == 3 and status["spooled"] == 0
