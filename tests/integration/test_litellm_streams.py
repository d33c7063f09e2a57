"""A litellm stream finalizes exactly once, whatever ends it: the end, a break,
``close()`` / ``aclose()``, leaving a ``with`` block, garbage collection, a
dropped connection, asyncio cancellation.

The caller iterates litellm's own ``CustomStreamWrapper`` through a
transparent proxy; the original sensor raised ``NotImplementedError`` here.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM, Reply, anthropic_routes, openai_routes
from fixtures.litellm_calls import (
    ANTHROPIC,
    MESSAGES,
    OPENAI,
    TARGETS,
    Target,
    call_kwargs,
    litellm,
)
from fixtures.sensor import SensorHarness

by_name = pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)


def terminal_events(sensor: SensorHarness) -> list[dict[str, Any]]:
    return [e for e in sensor.call_events() if e["event_type"] != "pre_call"]


def the_one_terminal_event(sensor: SensorHarness) -> dict[str, Any]:
    events = sensor.call_events()
    assert events[0]["event_type"] == "pre_call"
    terminal = terminal_events(sensor)
    assert len(terminal) == 1, terminal
    return terminal[0]


def assert_client_aborted(event: dict[str, Any], chunks_read: int) -> None:
    assert event["event_type"] == "post_call"
    assert event["streaming"]["final_outcome"] == "aborted"
    assert event["streaming"]["abort_reason"] == "client_aborted"
    assert event["streaming"]["chunk_count"] == chunks_read


def slow_stream(target: Target, delay: float) -> Reply:
    """The fake's usual answer to MESSAGES, one event every ``delay`` seconds."""
    if target is OPENAI:
        body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        reply = openai_routes.sse_reply(openai_routes.chat_stream_events(body))
    else:
        body = {"model": "claude-3-5-haiku-latest", "messages": MESSAGES, "stream": True}
        reply = anthropic_routes.stream_reply(
            anthropic_routes.message_events(body, "claude-3-5-haiku-latest"))
    reply.chunked = True
    reply.chunk_delay = delay
    return reply


# ---------------------------------------------------------------- sync

@by_name
def test_break_then_release_reports_client_aborted(sensor: SensorHarness, fake_llm: FakeLLM,
                                                   target: Target) -> None:
    sensor.init()

    def read_two_chunks() -> None:
        stream = litellm.completion(stream=True, **call_kwargs(fake_llm, target))
        for index, _ in enumerate(stream):
            if index == 1:
                break

    read_two_chunks()

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=2)


@by_name
def test_close_reports_client_aborted_once(sensor: SensorHarness, fake_llm: FakeLLM,
                                           target: Target) -> None:
    sensor.init()
    stream = litellm.completion(stream=True, **call_kwargs(fake_llm, target))
    next(stream)

    stream.close()
    stream.close()
    del stream
    gc.collect()

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=1)


@by_name
def test_leaving_a_with_block_early_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()

    with litellm.completion(stream=True, **call_kwargs(fake_llm, target)) as stream:
        next(stream)
        assert stream.model  # the caller's object, attributes and all

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=1)


@by_name
def test_stream_abandoned_to_the_garbage_collector_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()
    stream = litellm.completion(stream=True, **call_kwargs(fake_llm, target))
    next(stream)

    del stream
    gc.collect()

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=1)


@by_name
def test_stream_read_to_the_end_then_closed_reports_completed_once(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()

    with litellm.completion(stream=True, **call_kwargs(fake_llm, target)) as stream:
        chunks = list(stream)
    stream.close()
    del stream
    gc.collect()

    event = the_one_terminal_event(sensor)
    assert event["streaming"]["final_outcome"] == "completed"
    assert event["streaming"]["chunk_count"] == len(chunks)


def dropped_stream_error(fake: FakeLLM, target: Target, **kwargs: Any) -> BaseException:
    fake.script_stream_drop(target.path, after_events=3)
    stream = litellm.completion(stream=True, **call_kwargs(fake, target, **kwargs))
    with pytest.raises(Exception) as caught:
        for _ in stream:
            pass
    return caught.value


@by_name
def test_dropped_connection_mid_stream_reports_a_stream_error(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    without_sensor = dropped_stream_error(fake_llm, target)
    sensor.init()

    with_sensor = dropped_stream_error(fake_llm, target)

    assert type(with_sensor) is type(without_sensor)
    assert getattr(with_sensor, "status_code", None) == getattr(without_sensor, "status_code", None)
    event = the_one_terminal_event(sensor)
    assert event["event_type"] == "llm_error"
    assert event["error"]["error_type"] == "stream_error"
    assert event["error"]["provider"] == target.name
    assert event["streaming"]["final_outcome"] == "aborted"
    assert event["streaming"]["chunk_count"] >= 1


@by_name
def test_dropped_stream_keeps_the_partial_usage(sensor: SensorHarness, fake_llm: FakeLLM,
                                                target: Target) -> None:
    sensor.init()

    dropped_stream_error(fake_llm, target)

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


# ---------------------------------------------------------------- async

@by_name
def test_async_break_then_release_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()

    async def read_two_chunks() -> None:
        stream = await litellm.acompletion(stream=True, **call_kwargs(fake_llm, target))
        index = 0
        async for _ in stream:
            if index == 1:
                break
            index += 1

    asyncio.run(read_two_chunks())
    gc.collect()

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=2)


@by_name
@pytest.mark.parametrize("closing", ["aclose", "close", "async with"])
def test_async_close_reports_client_aborted_once(sensor: SensorHarness, fake_llm: FakeLLM,
                                                 target: Target, closing: str) -> None:
    sensor.init()

    async def read_one_chunk_then_close() -> None:
        stream = await litellm.acompletion(stream=True, **call_kwargs(fake_llm, target))
        if closing == "async with":
            async with stream as entered:
                await entered.__anext__()
            return
        await stream.__anext__()
        if closing == "aclose":
            await stream.aclose()
        else:
            stream.close()  # litellm's close() is synchronous, also on async streams
        await stream.aclose()

    asyncio.run(read_one_chunk_then_close())
    gc.collect()

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=1)


@by_name
def test_async_stream_abandoned_to_the_garbage_collector_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()

    async def read_one_chunk_and_drop() -> None:
        stream = await litellm.acompletion(stream=True, **call_kwargs(fake_llm, target))
        await stream.__anext__()
        del stream
        gc.collect()

    asyncio.run(read_one_chunk_and_drop())

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=1)


@by_name
def test_asyncio_cancellation_mid_stream_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()
    fake_llm.script(target.path, slow_stream(target, delay=0.2))
    read: list[Any] = []

    async def read_until_cancelled() -> None:
        stream = await litellm.acompletion(stream=True, **call_kwargs(fake_llm, target))

        async def reader() -> None:
            async for chunk in stream:
                read.append(chunk)

        task = asyncio.create_task(reader())
        while not read:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await stream.aclose()

    asyncio.run(read_until_cancelled())
    gc.collect()

    assert_client_aborted(the_one_terminal_event(sensor), chunks_read=len(read))


@by_name
def test_async_dropped_connection_mid_stream_reports_a_stream_error(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target) -> None:
    async def read_dropped() -> BaseException:
        fake_llm.script_stream_drop(target.path, after_events=3)
        stream = await litellm.acompletion(stream=True, **call_kwargs(fake_llm, target))
        with pytest.raises(Exception) as caught:
            async for _ in stream:
                pass
        return caught.value

    without_sensor = asyncio.run(read_dropped())
    sensor.init()

    with_sensor = asyncio.run(read_dropped())

    assert type(with_sensor) is type(without_sensor)
    event = the_one_terminal_event(sensor)
    assert event["event_type"] == "llm_error"
    assert event["error"]["error_type"] == "stream_error"
