"""OpenAI streams finalize exactly once, whatever ends them: the end, a break,
close(), leaving a ``with`` block early, garbage collection, a dropped
connection, asyncio cancellation. And the opt-in usage injection stays
invisible to the caller."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest

from fakes.fake_llm import openai_routes as routes
from fakes.fake_llm import sse_reply
from fixtures.openai_sdk import (
    ANSWER,
    MESSAGES,
    MODEL,
    PROMPT,
    async_client,
    chat_chunk_count,
    last_body,
    sync_client,
)

CHAT: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
WITH_USAGE = {"stream_options": {"include_usage": True}}


def _only_terminal(sensor: Any) -> dict[str, Any]:
    events = sensor.call_events()
    assert [e["event_type"] for e in events][:1] == ["pre_call"], events
    terminal = [e for e in events if e["event_type"] in ("post_call", "llm_error")]
    assert len(terminal) == 1, events
    return terminal[0]


def test_break_then_close_reports_client_aborted_once(sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()
    stream = sync_client(fake_llm).chat.completions.create(**CHAT, stream=True)

    # when: the user reads two chunks, breaks, and closes
    for index, _ in enumerate(stream):
        if index == 1:
            break
    stream.close()
    stream.close()

    # then
    post = _only_terminal(sensor)
    assert post["event_type"] == "post_call"
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["abort_reason"] == "client_aborted"
    assert post["streaming"]["chunk_count"] == 2


def test_leaving_the_with_block_early_reports_client_aborted(sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()

    # when: the user leaves the stream's with block after the first chunk
    with sync_client(fake_llm).chat.completions.create(**CHAT, stream=True) as stream:
        assert isinstance(stream, openai.Stream)
        next(iter(stream))

    # then
    post = _only_terminal(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["chunk_count"] == 1


def test_chunks_read_with_next_and_then_a_loop_are_all_counted(sensor: Any,
                                                                fake_llm: Any) -> None:
    # given
    sensor.init()
    stream = sync_client(fake_llm).chat.completions.create(**CHAT, stream=True)

    # when: the first chunk is read with next() on the stream, the rest by a loop
    next(stream)
    rest = list(stream)

    # then
    post = _only_terminal(sensor)
    assert post["streaming"]["final_outcome"] == "completed"
    assert post["streaming"]["chunk_count"] == 1 + len(rest) == chat_chunk_count(CHAT)


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_stream_helper_left_early_reports_client_aborted_once(
        sensor: Any, fake_llm: Any, api: str) -> None:
    # given
    sensor.init()
    client = sync_client(fake_llm)
    manager = (client.chat.completions.stream(**CHAT) if api == "chat"
               else client.responses.stream(model=MODEL, input=PROMPT))

    # when: the user takes one event from the helper and leaves the with block
    with manager as stream:
        next(iter(stream))

    # then: one pair, aborted, even though the user still holds the helper stream
    post = _only_terminal(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["abort_reason"] == "client_aborted"
    assert stream is not None


def test_async_stream_helper_left_early_reports_client_aborted(
        sensor: Any, fake_llm: Any) -> None:
    sensor.init()

    async def take_one() -> None:
        async with async_client(fake_llm).chat.completions.stream(**CHAT) as stream:
            async for _ in stream:
                break

    asyncio.run(take_one())
    post = _only_terminal(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"


def test_abandoned_stream_is_finalized_when_collected(sensor: Any, fake_llm: Any) -> None:
    # given: a stream read halfway and then dropped without close()
    sensor.init()
    stream = sync_client(fake_llm).chat.completions.create(**CHAT, stream=True)
    next(iter(stream))

    # when
    del stream
    gc.collect()

    # then
    post = _only_terminal(sensor)
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["chunk_count"] == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_connection_dropped_mid_stream_reports_stream_error_and_reraises(
        sensor: Any, fake_llm: Any, mode: str) -> None:
    # given: the provider drops the connection after three chunks
    sensor.init()
    fake_llm.script_stream_drop(routes.CHAT_PATH, after_events=3)

    # when
    received: list[Any] = []
    if mode == "sync":
        with pytest.raises(openai.APIError) as raised:
            for chunk in sync_client(fake_llm).chat.completions.create(**CHAT, stream=True):
                received.append(chunk)
    else:
        async def consume() -> None:
            stream = await async_client(fake_llm).chat.completions.create(**CHAT, stream=True)
            async for chunk in stream:
                received.append(chunk)

        with pytest.raises(openai.APIError) as raised:
            asyncio.run(consume())

    # then: the SDK's own exception reached the user; llm_error stream_error was reported
    assert type(raised.value) is openai.APIConnectionError
    assert len(received) == 3
    error = _only_terminal(sensor)
    assert error["event_type"] == "llm_error"
    assert error["error"]["error_type"] == "stream_error"
    assert error["streaming"]["chunk_count"] == 3


def test_cancelled_async_stream_reports_aborted(sensor: Any, fake_llm: Any) -> None:
    # given: a slow stream
    sensor.init()
    slow = sse_reply(routes.chat_stream_events({**CHAT, "stream": True}))
    slow.chunk_delay = 0.3
    fake_llm.script(routes.CHAT_PATH, slow)

    async def consume(received: list[Any]) -> None:
        stream = await async_client(fake_llm).chat.completions.create(**CHAT, stream=True)
        async for chunk in stream:
            received.append(chunk)

    async def cancel_after_first_chunk() -> list[Any]:
        received: list[Any] = []
        task = asyncio.create_task(consume(received))
        while not received:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return received

    # when
    received = asyncio.run(cancel_after_first_chunk())

    # then
    post = _only_terminal(sensor)
    assert post["event_type"] == "post_call"
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["chunk_count"] == len(received)


@pytest.mark.parametrize("mode", ["sync", "sync next()", "async"])
def test_injected_stream_usage_reports_tokens_and_hides_the_usage_chunk(
        sensor: Any, fake_llm: Any, mode: str) -> None:
    # given: the opt-in is on, and the user did not ask for usage
    sensor.init(inject_stream_usage=True)

    # when
    if mode == "sync":
        chunks = list(sync_client(fake_llm).chat.completions.create(**CHAT, stream=True))
    elif mode == "sync next()":
        stream = sync_client(fake_llm).chat.completions.create(**CHAT, stream=True)
        chunks = []
        while (chunk := next(stream, None)) is not None:
            chunks.append(chunk)
    else:
        async def consume() -> list[Any]:
            stream = await async_client(fake_llm).chat.completions.create(**CHAT, stream=True)
            return [chunk async for chunk in stream]

        chunks = asyncio.run(consume())

    # then: the wire asked for usage; the caller saw the chunks of a plain stream
    body = last_body(fake_llm, routes.CHAT_PATH)
    assert body["stream_options"] == {"include_usage": True}
    plain = {key: value for key, value in body.items() if key != "stream_options"}
    assert len(chunks) == chat_chunk_count(plain)
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER
    post = _only_terminal(sensor)
    assert post["usage_source"] == "reported"
    assert (post["tokens_input"], post["tokens_output"]) == (6, 8)


NOT_GIVEN_SENTINELS = {name: getattr(openai, name) for name in ("omit", "NOT_GIVEN")
                       if hasattr(openai, name)}  # an older SDK has no ``omit``


@pytest.mark.parametrize("not_given", list(NOT_GIVEN_SENTINELS.values()),
                         ids=list(NOT_GIVEN_SENTINELS))
def test_stream_options_not_given_get_injected_usage(sensor: Any, fake_llm: Any,
                                                     not_given: Any) -> None:
    # given: the opt-in is on; the caller passes the SDK's "not given" sentinel,
    # as openai-agents always does
    sensor.init(inject_stream_usage=True)

    # when
    chunks = list(sync_client(fake_llm).chat.completions.create(
        **CHAT, stream=True, stream_options=not_given))

    # then: usage was asked for and recorded, and hidden from the caller
    assert last_body(fake_llm, routes.CHAT_PATH)["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks)
    assert _only_terminal(sensor)["usage_source"] == "reported"


def test_stream_usage_is_not_injected_by_default(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    list(sync_client(fake_llm).chat.completions.create(**CHAT, stream=True))
    assert "stream_options" not in last_body(fake_llm, routes.CHAT_PATH)
    assert _only_terminal(sensor)["usage_source"] == "absent"


def test_user_usage_request_is_left_alone_with_injection_on(sensor: Any, fake_llm: Any) -> None:
    # given: the user asked for usage themselves
    sensor.init(inject_stream_usage=True)

    # when
    chunks = list(sync_client(fake_llm).chat.completions.create(
        **CHAT, stream=True, **WITH_USAGE))

    # then: they get their usage chunk
    assert chunks[-1].usage is not None and not chunks[-1].choices
