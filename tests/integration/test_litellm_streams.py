"""litellm-specific stream behaviour: litellm's own exception and estimate
when a connection drops, its view of an Anthropic stream cut after the last
usage, and the synchronous ``close()`` of its async streams. How every stream
ends (a break, close(), ``with``, garbage collection, cancellation, a dropped
connection) is test_stream_lifecycle.py's.

The caller iterates litellm's own ``CustomStreamWrapper`` through a
transparent proxy; the original sensor raised ``NotImplementedError`` here.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM, anthropic_routes
from fixtures.litellm_calls import (
    ANTHROPIC,
    MESSAGES,
    TARGETS,
    Target,
    call_kwargs,
    litellm,
)
from fixtures.sensor import SensorHarness

by_name = pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)


def the_one_terminal_event(sensor: SensorHarness) -> dict[str, Any]:
    events = sensor.call_events()
    assert events[0]["event_type"] == "pre_call"
    terminal = [e for e in events if e["event_type"] != "pre_call"]
    assert len(terminal) == 1, terminal
    return terminal[0]


def dropped_stream_error(fake: FakeLLM, target: Target, **kwargs: Any) -> BaseException:
    fake.script_stream_drop(target.path, after_events=3)
    stream = litellm.completion(stream=True, **call_kwargs(fake, target, **kwargs))
    with pytest.raises(Exception) as caught:
        for _ in stream:
            pass
    return caught.value


@by_name
def test_dropped_stream_keeps_litellms_exception_and_partial_usage(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    without_sensor = dropped_stream_error(fake_llm, target)
    sensor.init()

    with_sensor = dropped_stream_error(fake_llm, target)

    assert type(with_sensor) is type(without_sensor)
    assert getattr(with_sensor, "status_code", None) == getattr(without_sensor, "status_code", None)
    event = the_one_terminal_event(sensor)
    assert event["event_type"] == "llm_error"
    # litellm's count of what was delivered before the drop, not a provider report
    assert event["usage_source"] == "estimated"
    assert event["tokens_output"] > 0


def test_anthropic_stream_cut_after_its_last_usage_is_complete_for_litellm(
        sensor: SensorHarness, fake_llm: FakeLLM) -> None:
    # litellm treats a connection lost after message_delta (finish reason and
    # usage received) as a finished stream: no exception, so no error event.
    sensor.init()
    events_before_message_stop = len(anthropic_routes.message_events(
        {"messages": MESSAGES}, "claude-3-5-haiku-latest")) - 1
    fake_llm.script_stream_drop(ANTHROPIC.path, after_events=events_before_message_stop)

    chunks = list(litellm.completion(stream=True, **call_kwargs(fake_llm, ANTHROPIC)))

    event = the_one_terminal_event(sensor)
    assert event["event_type"] == "post_call"
    assert event["streaming"]["final_outcome"] == "completed"
    assert event["streaming"]["chunk_count"] == len(chunks)
    assert (event["tokens_input"], event["tokens_output"], event["usage_source"]) == (
        ANTHROPIC.tokens_input, ANTHROPIC.tokens_output, "reported")


@by_name
def test_async_stream_closed_by_its_sync_close_reports_client_aborted_once(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()

    async def read_one_chunk_then_close() -> None:
        stream = await litellm.acompletion(stream=True, **call_kwargs(fake_llm, target))
        await stream.__anext__()
        stream.close()  # litellm's close() is synchronous, also on async streams
        await stream.aclose()

    asyncio.run(read_one_chunk_then_close())
    gc.collect()

    event = the_one_terminal_event(sensor)
    assert event["event_type"] == "post_call"
    assert event["streaming"]["final_outcome"] == "aborted"
    assert event["streaming"]["abort_reason"] == "client_aborted"
    assert event["streaming"]["chunk_count"] == 1
