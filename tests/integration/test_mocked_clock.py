"""Events made while the application's clock is mocked (time-machine,
freezegun, as the Anthropic SDK's own tests do) carry the real time: the
server rejects an event more than 48 h old or 5 min ahead, so a mocked time
would lose it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fakes.sensor_program import run_program
from fixtures.openai_sdk import MESSAGES, MODEL, sync_client

freezegun = pytest.importorskip("freezegun")
time_machine = pytest.importorskip("time_machine")

MOCKED = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
CLOCKS: dict[str, Callable[[], contextlib.AbstractContextManager[Any]]] = {
    "time-machine": lambda: time_machine.travel(MOCKED, tick=False),
    "time-machine ticking": lambda: time_machine.travel(MOCKED + timedelta(days=9000)),
    "freezegun": lambda: freezegun.freeze_time(MOCKED),
    "freezegun ticking": lambda: freezegun.freeze_time(MOCKED, tick=True),
}


@pytest.mark.parametrize("clock", list(CLOCKS))
def test_events_made_under_a_mocked_clock_carry_the_real_time(
        sensor: Any, fake_llm: Any, clock: str) -> None:
    # given
    sensor.init()
    client = sync_client(fake_llm)
    before = time.time()

    # when: a call is made while the clock is mocked
    with CLOCKS[clock]():
        assert abs(time.time() - before) > 86_400  # the mock is on
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    after = time.time()

    # then: the collector accepted the events (it rejects what is 48 h old),
    # each stamped between the real instants around the call
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"]
    for event in events:
        stamped = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        assert before - 1 <= stamped <= after + 1, (event["timestamp"], before, after)


def test_a_child_forked_under_a_mocked_clock_stamps_the_real_time(
        tmp_path: Path, collector: Any) -> None:
    # given: a program that forks while its clock is mocked; parent and child make a call
    body = """
import os, time_machine
from datetime import datetime, timezone
with time_machine.travel(datetime(2001, 2, 3, tzinfo=timezone.utc), tick=False):
    pid = os.fork()
    call()
    if pid == 0:
        flightdeck_sensor.flush(10)
        os._exit(0)
    os.waitpid(pid, 0)
"""
    before = time.time()

    # when
    result = run_program(body, collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=collector.token)

    # then: both sessions' events were accepted, stamped with the real time
    assert result.returncode == 0, result.stderr
    events = collector.wait_for_events(5)  # 2 x (session_start, post_call) + parent's end
    assert len({e["session_id"] for e in events}) == 2
    for event in events:
        stamped = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        assert before - 1 <= stamped <= time.time() + 1, event
