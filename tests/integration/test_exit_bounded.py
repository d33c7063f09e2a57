"""Exit is bounded and loses nothing: a program whose server is down, or does
not answer, exits within its shutdown budget (plus a margin for the
interpreter's own teardown) and leaves its events in the spool; the next run
delivers them to the real collector exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from fakes.ingest_server import IngestServer, Reply
from fakes.sensor_program import run_program, start_program

BUDGET = 1.0  # shorter than the default 2 s, so that a hang on the 5 s request timeout shows
MARGIN = 3.0  # generous (interpreter teardown on a loaded machine): proves "does not hang"


def dead_server_url() -> str:
    server = IngestServer()
    server.stop()  # the port was free a moment ago and nothing listens there now
    return server.url


def exit_duration(body: str, server: str, spool_dir: Path) -> tuple[float, str]:
    """Seconds from the program's last statement to the end of its process."""
    process = start_program(body + "\nprint(time.time(), flush=True)\n", server, spool_dir,
                            FLIGHTDECK_SHUTDOWN_TIMEOUT=str(BUDGET))
    stdout, stderr = process.communicate(timeout=60)
    ended = time.time()
    assert process.returncode == 0, stderr
    return ended - float(stdout.strip().splitlines()[-1]), stderr


def event_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in events]


def test_dead_server_exit_is_bounded_and_spools_every_event(tmp_path: Path) -> None:
    spool = tmp_path / "spool"

    duration, stderr = exit_duration("import time\nfor _ in range(20): call()",
                                     dead_server_url(), spool)

    assert duration < BUDGET + MARGIN
    assert list(spool.rglob("*.batch")), stderr
    assert stderr.count("cannot deliver events") <= 1


def test_server_that_never_answers_exit_with_1000_pending_is_bounded(tmp_path: Path) -> None:
    with IngestServer([Reply(never_answer=True)]) as server:
        duration, _ = exit_duration("import time\nfor _ in range(1000): call()",
                                    server.url, tmp_path / "spool")

    assert duration < BUDGET + MARGIN
    assert list((tmp_path / "spool").rglob("*.batch"))


def test_next_run_delivers_the_spool_to_the_collector_exactly_once(
        tmp_path: Path, collector: Any) -> None:
    spool = tmp_path / "spool"
    # Given a first run while the collector was down: its events are in the spool
    collector.stop()
    first = run_program("for _ in range(20): call()\nprint(SENSOR.session.id)",
                        collector.ingest_url, spool, TEST_TOKEN=collector.token,
                        FLIGHTDECK_SHUTDOWN_TIMEOUT="1")
    first_session = first.stdout.strip()
    assert list(spool.rglob("*.batch")), first.stderr

    # When the collector is back, and a second and a third run talk to it
    collector.restart()
    for _ in range(2):
        run = run_program("call()", collector.ingest_url, spool, TEST_TOKEN=collector.token)
        assert run.returncode == 0, run.stderr

    # Then the first run's 22 events arrived once each, and the spool is empty
    first_events = collector.wait_for_events(22, session_id=first_session)
    assert len(first_events) == 22
    assert Counter(e["event_type"] for e in first_events) == {
        "session_start": 1, "post_call": 20, "session_end": 1}
    assert not [i for i, n in Counter(event_ids(collector.events())).items() if n > 1]
    assert len(collector.sessions()) == 3
    assert not list(spool.rglob("*.batch"))


def test_a_call_made_during_interpreter_exit_is_still_delivered(tmp_path: Path,
                                                                collector: Any) -> None:
    # An atexit handler that makes the program's only LLM call: the sensor's own
    # atexit hook could not be registered in time and no thread can be relied on.
    body = """
import atexit
atexit.register(lambda: (call(), print(SENSOR.session.id, flush=True)))
"""
    result = run_program(body, collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=collector.token)
    assert result.returncode == 0, result.stderr

    events = collector.wait_for_events(2, session_id=result.stdout.strip())
    assert [e["event_type"] for e in events] == ["session_start", "post_call"]
