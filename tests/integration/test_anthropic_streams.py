"""Anthropic-specific stream behaviour: the user gets the SDK's own objects
(the ``MessageStream`` helpers unproxied), and the fallback when a future SDK
hides the raw stream. How every stream ends (a break, close(), ``with``,
garbage collection, cancellation, a dropped connection) is
test_stream_lifecycle.py's."""

from __future__ import annotations

from typing import Any

import anthropic
from anthropic.lib.streaming import AsyncMessageStream, MessageStream

from fakes.fake_llm import anthropic_routes as routes
from fixtures.anthropic_sdk import (
    MESSAGES,
    MODEL,
    PROMPT,
    async_client,
    last_message_body,
    sync_client,
)

ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES}
ANSWER = f"You said: {PROMPT}"


def _only_post_call(sensor: Any) -> dict[str, Any]:
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"]
    post: dict[str, Any] = events[1]
    return post


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
        assert helper.get_final_text() == ANSWER
    assert len(sensor.events("post_call")) == 2


async def test_async_stream_helper_is_the_sdks_own_message_stream(sensor: Any,
                                                                  fake_llm: Any) -> None:
    sensor.init()
    async with async_client(fake_llm).messages.stream(**ARGS) as stream:
        assert type(stream) is AsyncMessageStream
        assert await stream.get_final_text() == ANSWER
    assert len(sensor.events("post_call")) == 1


def test_stream_helper_falls_back_to_proxying_the_message_stream(
        sensor: Any, fake_llm: Any, monkeypatch: Any) -> None:
    # given an SDK whose MessageStream no longer holds a raw stream we recognise
    from flightdeck_sensor.interceptors import _anthropic

    class Unrecognised:
        pass

    monkeypatch.setattr(_anthropic, "stream_classes", lambda sdk: (Unrecognised, Unrecognised))
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
