"""OpenAI-specific stream behaviour: the opt-in usage injection stays invisible
to the caller. How every stream ends (a break, close(), ``with``, garbage
collection, cancellation, a dropped connection) is test_stream_lifecycle.py's."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from fakes.fake_llm import openai_routes as routes
from fixtures.openai_sdk import (
    ANSWER,
    MESSAGES,
    MODEL,
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
