"""Every Anthropic SDK entry point, sync and async, on ``messages`` and
``beta.messages``: one pre_call and one post_call per user-level call, with the
numbers the (fake) API answered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from fakes.fake_llm import anthropic_routes as routes
from fixtures.anthropic_sdk import (
    MESSAGES,
    MODEL,
    PROMPT,
    SERVED_MODEL,
    TOOLS,
    async_client,
    expected_chunk_count,
    expected_usage,
    last_message_body,
    sync_client,
)

ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES}
ANSWER = f"You said: {PROMPT}"


def _text(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _text_of_events(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events
                   if e.type == "content_block_delta" and e.delta.type == "text_delta")


# Each entry point returns the answer text the user got.
SYNC_ENTRY_POINTS: dict[str, Callable[[Any], str]] = {
    "create": lambda m: _text(m.create(**ARGS)),
    "create_stream": lambda m: _text_of_events(list(m.create(**ARGS, stream=True))),
    "parse": lambda m: _text(m.parse(**ARGS)),
    "stream_events": lambda m: _sync_stream(m, lambda s: _text_of_events(list(s))),
    "stream_text_stream": lambda m: _sync_stream(m, lambda s: "".join(s.text_stream)),
    "stream_get_final_message": lambda m: _sync_stream(m, lambda s: _text(s.get_final_message())),
    "stream_get_final_text": lambda m: _sync_stream(m, lambda s: s.get_final_text()),
    "stream_until_done": lambda m: _sync_stream(
        m, lambda s: (s.until_done(), _text(s.current_message_snapshot))[1]),
}


def _sync_stream(messages: Any, consume: Callable[[Any], str]) -> str:
    with messages.stream(**ARGS) as stream:
        return consume(stream)


async def _async_events(stream: Any) -> list[Any]:
    return [event async for event in stream]


async def _async_text_stream(stream: Any) -> str:
    return "".join([text async for text in stream.text_stream])


async def _async_create(m: Any) -> str:
    return _text(await m.create(**ARGS))


async def _async_create_stream(m: Any) -> str:
    return _text_of_events(await _async_events(await m.create(**ARGS, stream=True)))


async def _async_parse(m: Any) -> str:
    return _text(await m.parse(**ARGS))


async def _async_stream(m: Any, consume: Callable[[Any], Awaitable[str]]) -> str:
    async with m.stream(**ARGS) as stream:
        return await consume(stream)


async def _until_done_text(stream: Any) -> str:
    await stream.until_done()
    return _text(stream.current_message_snapshot)


async def _final_message_text(stream: Any) -> str:
    return _text(await stream.get_final_message())


async def _events_text(stream: Any) -> str:
    return _text_of_events(await _async_events(stream))


ASYNC_ENTRY_POINTS: dict[str, Callable[[Any], Awaitable[str]]] = {
    "create": _async_create,
    "create_stream": _async_create_stream,
    "parse": _async_parse,
    "stream_events": lambda m: _async_stream(m, _events_text),
    "stream_text_stream": lambda m: _async_stream(m, _async_text_stream),
    "stream_get_final_message": lambda m: _async_stream(m, _final_message_text),
    "stream_until_done": lambda m: _async_stream(m, _until_done_text),
}

RESOURCES = ["messages", "beta.messages"]


def _resource(client: Any, path: str) -> Any:
    for name in path.split("."):
        client = getattr(client, name)
    return client


def _assert_one_reported_call(sensor: Any, fake: Any, streamed: bool) -> None:
    body = last_message_body(fake)
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"]
    pre, post = events
    assert pre["model"] == MODEL
    assert pre["estimated_via"] == "heuristic"
    assert pre["tokens_input"] > 0
    assert post["provider"] == "anthropic"
    assert post["model"] == SERVED_MODEL
    assert post["model_requested"] == MODEL
    assert post["stop_reason"] == "end_turn"
    assert post["usage_source"] == "reported"
    assert post["provider_metadata"]["request_id"] == routes.request_id(body)
    for field, value in expected_usage(body).items():
        assert post[field] == value, field
    if streamed:
        streaming = post["streaming"]
        assert streaming["final_outcome"] == "completed"
        assert streaming["abort_reason"] is None
        assert streaming["chunk_count"] == expected_chunk_count(body)
        assert streaming["ttft_ms"] is not None
        assert streaming["inter_chunk_ms"]["max"] >= streaming["inter_chunk_ms"]["p50"]
    else:
        assert post.get("streaming") is None
    assert not any(r.path.endswith("count_tokens") for r in fake.requests)


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("entry_point", list(SYNC_ENTRY_POINTS))
def test_sync_entry_point_reports_one_call(sensor: Any, fake_llm: Any, resource: str,
                                           entry_point: str) -> None:
    # given
    sensor.init()
    messages = _resource(sync_client(fake_llm), resource)
    # when
    answer = SYNC_ENTRY_POINTS[entry_point](messages)
    # then
    assert answer == ANSWER
    _assert_one_reported_call(sensor, fake_llm, streamed=entry_point != "create"
                              and entry_point != "parse")


@pytest.mark.parametrize("resource", RESOURCES)
@pytest.mark.parametrize("entry_point", list(ASYNC_ENTRY_POINTS))
async def test_async_entry_point_reports_one_call(sensor: Any, fake_llm: Any, resource: str,
                                                  entry_point: str) -> None:
    sensor.init()
    messages = _resource(async_client(fake_llm), resource)
    answer = await ASYNC_ENTRY_POINTS[entry_point](messages)
    assert answer == ANSWER
    _assert_one_reported_call(sensor, fake_llm, streamed=entry_point not in ("create", "parse"))


def test_cached_tokens_are_counted_in_input(sensor: Any, fake_llm: Any) -> None:
    # given a system prompt written to the cache and a message block read from it
    sensor.init()
    client = sync_client(fake_llm)
    # when
    client.messages.create(
        model=MODEL, max_tokens=64,
        system=[{"type": "text", "text": "You are a terse geography tutor",
                 "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Long shared context here",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": PROMPT}]}])
    # then input = uncached + cache read + cache creation; total = input + output
    post = sensor.events("post_call")[0]
    assert post["tokens_cache_creation"] == 6
    assert post["tokens_cache_read"] == 4
    assert post["tokens_input"] == 6 + 4 + 6
    assert post["tokens_total"] == post["tokens_input"] + post["tokens_output"]
    assert post["tokens_output"] == len(f"You said: Long shared context here {PROMPT}".split())


@pytest.mark.parametrize("streamed", [False, True])
def test_each_tool_use_block_gives_one_tool_call_event(sensor: Any, fake_llm: Any,
                                                       streamed: bool) -> None:
    sensor.init()
    client = sync_client(fake_llm)
    message: Any
    if streamed:
        with client.messages.stream(**ARGS, tools=TOOLS) as stream:
            message = stream.get_final_message()
    else:
        message = client.messages.create(**ARGS, tools=TOOLS)
    assert [b.name for b in message.content if b.type == "tool_use"] == ["get_weather", "get_time"]
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call", "tool_call", "tool_call"]
    assert [e["tool_name"] for e in events[2:]] == ["get_weather", "get_time"]
    assert events[1]["stop_reason"] == "tool_use"
    # arguments are prompt content: not sent without capture
    assert all("arguments" not in str(e.get("content")) for e in events[2:])
    assert all(not e["has_content"] for e in events)


def test_concurrent_threads_each_get_their_own_event_pair(sensor: Any, fake_llm: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sensor.init()
    client = sync_client(fake_llm)

    def one_call(index: int) -> str:
        prompt = [{"role": "user", "content": f"question number {index}"}]
        if index % 2:
            with client.messages.stream(model=MODEL, max_tokens=64, messages=prompt) as stream:
                return stream.get_final_text()
        return _text(client.messages.create(model=MODEL, max_tokens=64, messages=prompt))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(one_call, range(24)))
    assert answers == [f"You said: question number {i}" for i in range(24)]
    posts = sensor.events("post_call")
    assert len(sensor.events("pre_call")) == 24
    assert len(posts) == 24
    assert len({p["provider_metadata"]["request_id"] for p in posts}) == 24
    # the session total is exact: no increment lost between threads
    assert max(p["tokens_used_session"] for p in posts) == sum(p["tokens_total"] for p in posts)


async def test_concurrent_tasks_each_get_their_own_event_pair(sensor: Any, fake_llm: Any) -> None:
    import asyncio

    sensor.init()
    client = async_client(fake_llm)

    async def one_call(index: int) -> str:
        prompt = [{"role": "user", "content": f"question number {index}"}]
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=prompt) as stream:
            return "".join([text async for text in stream.text_stream])

    answers = await asyncio.gather(*(one_call(i) for i in range(12)))
    assert answers == [f"You said: question number {i}" for i in range(12)]
    posts = sensor.events("post_call")
    assert len(posts) == 12
    assert all(p["streaming"]["final_outcome"] == "completed" for p in posts)
