"""Events made while the application's clock is mocked (time-machine,
freezegun, as the Anthropic SDK's own tests do) carry the real time: the
server rejects an event more than 48 h old or 5 min ahead, so a mocked time
would lose it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

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
