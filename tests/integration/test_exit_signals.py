"""SIGTERM: the sensor flushes, then the process dies of SIGTERM as it would
have; an application's own SIGTERM handler is left alone, and one that chains
to ours gets a flush and the last word; a SIGTERM during a shutdown lets the
shutdown finish."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fakes.ingest_server import IngestServer, Reply
from fakes.sensor_program import run_program, start_program

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


def test_an_application_handler_chaining_to_ours_gets_a_flush_and_decides_the_exit(
        tmp_path: Path, collector: Any) -> None:
    # Given an application that installs its SIGTERM handler after the sensor's,
    # calls the previous handler (ours) from it, then drains and exits 0
    body = """
import signal, sys
previous = signal.getsignal(signal.SIGTERM)
def drain_and_exit(signum, frame):
    previous(signum, frame)
    status = flightdeck_sensor.get_status()
    print("drained", status["queued"], status["sent"], flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, drain_and_exit)
""" + WAIT_FOR_SIGNAL
    process = start_program(body, collector.ingest_url, tmp_path / "spool",
                            TEST_TOKEN=collector.token)
    assert process.stdout is not None
    session_id = process.stdout.readline().strip()

    # When it is sent SIGTERM
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)

    # Then our handler flushed and returned: the application's handler ran on,
    # found nothing queued, and the process exited as the application chose
    assert process.returncode == 0, stderr
    assert "drained 0 9" in stdout
    events = collector.wait_for_events(10, session_id=session_id)
    assert Counter(e["event_type"] for e in events) == {
        "session_start": 1, "post_call": 8, "session_end": 1}
    assert events[-1]["close_reason"] == "normal_exit"


def test_a_sigterm_during_a_shutdown_lets_it_finish_then_the_process_dies_of_it(
        tmp_path: Path) -> None:
    # Given a server whose first answer takes 3 s, and a program shutting down
    # with more than one batch to deliver (as a multiprocessing worker does in
    # its exit finalizer when Pool.terminate() sends it SIGTERM)
    with IngestServer([Reply(200, delay=3.0), Reply(200)]) as server:
        body = """
for _ in range(600):
    call()
close = SENSOR.transport.close
def announced_close(timeout):
    print("closing", flush=True)
    close(timeout)
SENSOR.transport.close = announced_close
flightdeck_sensor.shutdown()
print("shutdown returned", flush=True)
"""
        process = start_program(body, server.url, tmp_path / "spool")
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "closing"
        assert server.wait_for(lambda s: len(s.requests) >= 1)

        # When SIGTERM arrives while the first batch waits for its answer
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)

        # Then the shutdown delivered the rest, and the process died of SIGTERM
        # at its end, as it would have without the sensor
        assert process.returncode == -signal.SIGTERM, stderr
        assert "shutdown returned" not in stdout
        assert Counter(e["event_type"] for e in server.events()) == {
            "session_start": 1, "post_call": 600, "session_end": 1}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_sender_thread_leaves_the_applications_signals_to_its_other_threads(
        tmp_path: Path, collector: Any) -> None:
    # Given a program whose sensor has started its sender thread
    body = """
import threading
call()
SENSOR.flush(5)
sender = next(t for t in threading.enumerate() if t.name == "flightdeck-sensor-sender")
def blocked(native_id):
    with open(f"/proc/self/task/{native_id}/status") as status:
        return int(next(line for line in status if line.startswith("SigBlk")).split()[1], 16)
print(blocked(sender.native_id), blocked(threading.main_thread().native_id))
"""

    # When we read which signals each thread blocks
    done = run_program(body, collector.ingest_url, tmp_path / "spool", TEST_TOKEN=collector.token)

    # Then the sender blocks SIGTERM and SIGINT (the kernel gives them to a
    # thread where Python runs the handler: a pool worker waiting for a task
    # in C ignored Pool.terminate()'s SIGTERM when it landed on the sender),
    # and the main thread still blocks neither
    assert done.returncode == 0, done.stderr
    sender_mask, main_mask = map(int, done.stdout.split())
    for number in (signal.SIGTERM, signal.SIGINT):
        assert sender_mask & (1 << (number - 1))
        assert not main_mask & (1 << (number - 1))


def test_a_sigterm_caught_while_the_main_thread_blocks_in_c_still_runs_the_handler(
        tmp_path: Path, collector: Any) -> None:
    # Given a program whose main thread sleeps in a lock's C wait when SIGTERM's
    # C handler runs elsewhere (here another thread of the program takes it;
    # likewise when it lands as the main thread goes into the wait, as a pool
    # worker going to wait for a task when Pool.terminate() signals it): the
    # wait is not interrupted, so Python's handler would wait for it to end
    body = """
import signal, threading, time
call()
held = threading.Lock()
held.acquire()
def take_sigterm_here():
    time.sleep(0.5)
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
threading.Thread(target=take_sigterm_here).start()
held.acquire(timeout=300)
print("the wait ended before the handler ran", flush=True)
"""

    # When it runs
    done = run_program(body, collector.ingest_url, tmp_path / "spool",
                       TEST_TOKEN=collector.token, timeout=60)

    # Then the sensor's handler ran during the wait: it flushed, and the
    # process died of SIGTERM, as it would have without the sensor
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "before the handler ran" not in done.stdout
    assert [e["event_type"] for e in collector.events()] == [
        "session_start", "post_call", "session_end"]


def test_a_forked_child_also_gets_its_sigterm_handler_run_while_it_blocks_in_c(
        tmp_path: Path, collector: Any) -> None:
    # Given the same wait in a forked child, asyncio loaded (its at-fork hook
    # clears the wakeup fd the sensor watches in the child)
    body = """
import asyncio, os, signal, threading, time
call()
pid = os.fork()
if pid == 0:
    call()
    held = threading.Lock()
    held.acquire()
    def take_sigterm_here():
        time.sleep(0.5)
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
    threading.Thread(target=take_sigterm_here).start()
    held.acquire(timeout=300)
    os._exit(3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), flush=True)
"""

    # When it runs
    done = run_program(body, collector.ingest_url, tmp_path / "spool",
                       TEST_TOKEN=collector.token, timeout=60)

    # Then the child's handler ran during the wait: the child died of SIGTERM
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(-signal.SIGTERM)]
