"""Anthropic streams finalize exactly once, however they end."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

import anthropic
from anthropic.lib.streaming import AsyncMessageStream, MessageStream

from fakes.fake_llm import anthropic_routes as routes
from fixtures.anthropic_sdk import (
    MESSAGES,
    MODEL,
    async_client,
    expected_chunk_count,
    last_message_body,
    sync_client,
)

ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES}


def _only_post_call(sensor: Any) -> dict[str, Any]:
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"]
    post: dict[str, Any] = events[1]
    return post


def test_break_then_close_is_a_client_abort(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    stream = sync_client(fake_llm).messages.create(**ARGS, stream=True)
    for index, _ in enumerate(stream):
        if index == 1:
            break
    stream.close()
    stream.close()
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["abort_reason"] == "client_aborted"
    assert post["streaming"]["chunk_count"] == 2
    assert post["tokens_input"] is not None  # message_start already told the input


def test_leaving_the_with_block_early_is_a_client_abort(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    with sync_client(fake_llm).messages.create(**ARGS, stream=True) as stream:
        next(iter(stream))
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["chunk_count"] == 1


def test_leaving_the_stream_helper_early_is_a_client_abort(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    with sync_client(fake_llm).messages.stream(**ARGS) as stream:
        first_text = next(iter(stream.text_stream))
    assert first_text == "You"
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["abort_reason"] == "client_aborted"


def test_finished_stream_then_close_reports_once_completed(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    with sync_client(fake_llm).messages.stream(**ARGS) as stream:
        stream.until_done()
        stream.close()
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "completed"
    assert post["streaming"]["chunk_count"] == expected_chunk_count(last_message_body(fake_llm))


def test_abandoned_stream_is_finalized_on_garbage_collection(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    stream = sync_client(fake_llm).messages.create(**ARGS, stream=True)
    next(iter(stream))
    assert sensor.events("post_call") == []
    del stream
    gc.collect()
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["chunk_count"] == 1


def test_abandoned_stream_helper_is_finalized_on_garbage_collection(sensor: Any,
                                                                    fake_llm: Any) -> None:
    sensor.init()
    manager = sync_client(fake_llm).messages.stream(**ARGS)
    stream = manager.__enter__()  # a user who never leaves the block
    next(iter(stream))
    del stream, manager
    gc.collect()
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"


def test_stream_objects_are_the_sdks_own(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    client = sync_client(fake_llm)
    with client.messages.create(**ARGS, stream=True) as raw:
        assert isinstance(raw, anthropic.Stream)
        assert raw.response.headers["request-id"] == routes.request_id(last_message_body(fake_llm))
        types = [event.type for event in raw]
        assert (types[0], types[-1]) == ("message_start", "message_stop")
    with client.messages.stream(**ARGS) as helper:
        assert type(helper) is MessageStream
        assert helper.request_id == routes.request_id(last_message_body(fake_llm))
        assert helper.get_final_text() == "You said: What is the capital of France"
    assert len(sensor.events("post_call")) == 2


async def test_async_break_then_close_is_a_client_abort(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    stream = await async_client(fake_llm).messages.create(**ARGS, stream=True)
    async for _ in stream:
        break
    await stream.close()
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["chunk_count"] == 1


async def test_async_stream_helper_left_early_is_a_client_abort(sensor: Any,
                                                                fake_llm: Any) -> None:
    sensor.init()
    async with async_client(fake_llm).messages.stream(**ARGS) as stream:
        assert type(stream) is AsyncMessageStream
        async for _ in stream.text_stream:
            break
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"


async def test_cancelled_task_is_a_client_abort(sensor: Any, fake_llm: Any) -> None:
    # given a slow stream consumed by a task
    sensor.init()
    slow = routes.stream_reply(routes.message_events({**ARGS, "stream": True}, MODEL))
    slow.chunk_delay = 0.3
    fake_llm.script(routes.MESSAGES_PATH, slow)
    client = async_client(fake_llm)
    first_event = asyncio.Event()

    async def consume() -> None:
        async with client.messages.stream(**ARGS) as stream:
            async for _ in stream:
                first_event.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_event.wait(), timeout=10)
    # when the task is cancelled mid-stream
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # then
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["abort_reason"] == "client_aborted"
    assert post["streaming"]["chunk_count"] >= 1


def test_stream_helper_falls_back_to_proxying_the_message_stream(
        sensor: Any, fake_llm: Any, monkeypatch: Any) -> None:
    # given an SDK whose MessageStream no longer holds a raw stream we recognise
    from flightdeck_sensor.interceptors import _anthropic

    class Unrecognised:
        pass

    monkeypatch.setattr(_anthropic, "_stream_classes", lambda: (Unrecognised, Unrecognised))
    sensor.init()
    # when the user iterates the helper's events
    with sync_client(fake_llm).messages.stream(**ARGS) as stream:
        assert isinstance(stream, MessageStream)
        events = list(stream)
    # then the call is still reported once, with the usage the events carried
    post = _only_post_call(sensor)
    assert post["streaming"]["final_outcome"] == "completed"
    assert post["streaming"]["chunk_count"] == len(events)
    assert post["tokens_output"] == 8
