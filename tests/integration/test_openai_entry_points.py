"""Every OpenAI SDK entry point, sync and async: one pre_call and one post_call
(or embeddings) per user-level call, with the numbers the (fake) API answered,
and the SDK's answer unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from fakes.fake_llm import openai_routes as routes
from fixtures.openai_sdk import (
    ANSWER,
    EMBEDDING_MODEL,
    MESSAGES,
    MODEL,
    PROMPT,
    SERVED_MODEL,
    async_client,
    bodies,
    chat_chunk_count,
    last_body,
    legacy_chunk_count,
    response_event_count,
    sync_client,
)

CHAT: dict[str, Any] = {"model": MODEL, "messages": MESSAGES}
RESPONSE: dict[str, Any] = {"model": MODEL, "input": PROMPT, "instructions": "Answer briefly"}
WITH_USAGE = {"stream_options": {"include_usage": True}}


class City(BaseModel):
    city: str


def _chat_text(completion: Any) -> str:
    return str(completion.choices[0].message.content)


def _chunks_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _response_events_text(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def _helper_events_text(events: list[Any]) -> str:
    return "".join(e.delta for e in events if e.type == "content.delta")


@dataclass
class EntryPoint:
    path: str
    streamed: bool
    usage: bool  # the answer carries usage
    sync: Callable[[openai.OpenAI], str]
    run_async: Callable[[openai.AsyncOpenAI], Awaitable[str]]


def _sync_chat_stream(client: openai.OpenAI, consume: Callable[[Any], str]) -> str:
    with client.chat.completions.stream(**CHAT) as stream:
        return consume(stream)


def _sync_response_stream(client: openai.OpenAI, consume: Callable[[Any], str]) -> str:
    with client.responses.stream(**RESPONSE) as stream:
        return consume(stream)


async def _alist(stream: Any) -> list[Any]:
    return [item async for item in stream]


async def _async_chat_create(client: openai.AsyncOpenAI) -> str:
    return _chat_text(await client.chat.completions.create(**CHAT))


async def _async_chat_stream(client: openai.AsyncOpenAI, **extra: Any) -> str:
    return _chunks_text(await _alist(await client.chat.completions.create(
        **CHAT, stream=True, **extra)))


async def _async_chat_parse(client: openai.AsyncOpenAI) -> str:
    parsed = await client.chat.completions.parse(**CHAT, response_format=City)
    return str(parsed.choices[0].message.parsed.city)


async def _async_chat_helper_events(client: openai.AsyncOpenAI) -> str:
    async with client.chat.completions.stream(**CHAT) as stream:
        return _helper_events_text(await _alist(stream))


async def _async_chat_helper_final(client: openai.AsyncOpenAI) -> str:
    async with client.chat.completions.stream(**CHAT) as stream:
        return _chat_text(await stream.get_final_completion())


async def _async_response_create(client: openai.AsyncOpenAI) -> str:
    return (await client.responses.create(**RESPONSE)).output_text


async def _async_response_stream(client: openai.AsyncOpenAI) -> str:
    return _response_events_text(await _alist(await client.responses.create(
        **RESPONSE, stream=True)))


async def _async_response_parse(client: openai.AsyncOpenAI) -> str:
    parsed = await client.responses.parse(**RESPONSE, text_format=City)
    return str(parsed.output_parsed.city)


async def _async_response_helper(client: openai.AsyncOpenAI) -> str:
    async with client.responses.stream(**RESPONSE) as stream:
        return (await stream.get_final_response()).output_text


async def _async_legacy(client: openai.AsyncOpenAI) -> str:
    completion = await client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=50)
    return completion.choices[0].text


async def _async_legacy_stream(client: openai.AsyncOpenAI) -> str:
    chunks = await _alist(await client.completions.create(
        model=MODEL, prompt=PROMPT, max_tokens=50, stream=True, **WITH_USAGE))
    return "".join(c.choices[0].text for c in chunks if c.choices)


ENTRY_POINTS: dict[str, EntryPoint] = {
    "chat.create": EntryPoint(
        routes.CHAT_PATH, False, True,
        lambda c: _chat_text(c.chat.completions.create(**CHAT)), _async_chat_create),
    "chat.create_stream_with_usage": EntryPoint(
        routes.CHAT_PATH, True, True,
        lambda c: _chunks_text(list(c.chat.completions.create(**CHAT, stream=True, **WITH_USAGE))),
        lambda c: _async_chat_stream(c, **WITH_USAGE)),
    "chat.create_stream_without_usage": EntryPoint(
        routes.CHAT_PATH, True, False,
        lambda c: _chunks_text(list(c.chat.completions.create(**CHAT, stream=True))),
        _async_chat_stream),
    "chat.parse": EntryPoint(
        routes.CHAT_PATH, False, True,
        lambda c: str(c.chat.completions.parse(
            **CHAT, response_format=City).choices[0].message.parsed.city),
        _async_chat_parse),
    "chat.stream_events": EntryPoint(
        routes.CHAT_PATH, True, False,
        lambda c: _sync_chat_stream(c, lambda s: _helper_events_text(list(s))),
        _async_chat_helper_events),
    "chat.stream_get_final_completion": EntryPoint(
        routes.CHAT_PATH, True, False,
        lambda c: _sync_chat_stream(c, lambda s: _chat_text(s.get_final_completion())),
        _async_chat_helper_final),
    "responses.create": EntryPoint(
        routes.RESPONSES_PATH, False, True,
        lambda c: c.responses.create(**RESPONSE).output_text, _async_response_create),
    "responses.create_stream": EntryPoint(
        routes.RESPONSES_PATH, True, True,
        lambda c: _response_events_text(list(c.responses.create(**RESPONSE, stream=True))),
        _async_response_stream),
    "responses.parse": EntryPoint(
        routes.RESPONSES_PATH, False, True,
        lambda c: str(c.responses.parse(**RESPONSE, text_format=City).output_parsed.city),
        _async_response_parse),
    "responses.stream_get_final_response": EntryPoint(
        routes.RESPONSES_PATH, True, True,
        lambda c: _sync_response_stream(c, lambda s: s.get_final_response().output_text),
        _async_response_helper),
    "completions.create": EntryPoint(
        routes.COMPLETIONS_PATH, False, True,
        lambda c: c.completions.create(model=MODEL, prompt=PROMPT, max_tokens=50).choices[0].text,
        _async_legacy),
    "completions.create_stream": EntryPoint(
        routes.COMPLETIONS_PATH, True, True,
        lambda c: "".join(ch.choices[0].text for ch in c.completions.create(
            model=MODEL, prompt=PROMPT, max_tokens=50, stream=True, **WITH_USAGE) if ch.choices),
        _async_legacy_stream),
}


def _expected_tokens(path: str, body: dict[str, Any]) -> tuple[int, int, int]:
    """(input, output, cache read) the fake reported for ``body``."""
    if path == routes.CHAT_PATH:
        prompt, cached = routes.chat_prompt_usage(body)
        return prompt, routes.chat_answer(body)[3], cached
    if path == routes.RESPONSES_PATH:
        prompt, cached = routes.responses_prompt_usage(body)
        return prompt, routes.response_answer(body)["usage"]["output_tokens"], cached
    text, _ = routes.text_completion(body)
    return routes.words(routes._prompt_text(body)), routes.words(text), 0


def _run(entry: EntryPoint, mode: str, fake: Any) -> str:
    if mode == "sync":
        return entry.sync(sync_client(fake))
    return asyncio.run(entry.run_async(async_client(fake)))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_point_reports_one_call_with_the_answered_numbers(
        sensor: Any, fake_llm: Any, name: str, mode: str) -> None:
    # given: the sensor is on
    entry = ENTRY_POINTS[name]
    sensor.init()

    # when: the user makes one call
    answer = _run(entry, mode, fake_llm)

    # then: the user got the answer, and exactly one pre_call/post_call pair was reported
    assert answer in (ANSWER, PROMPT)
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "post_call"], events
    pre, post = events
    assert pre["model"] == MODEL and pre["estimated_via"] == "heuristic"
    assert pre["tokens_input"] > 0
    assert post["model"] == SERVED_MODEL and post["model_requested"] == MODEL
    assert post["provider"] == "openai"
    body = last_body(fake_llm, entry.path)
    if entry.usage:
        tokens_in, tokens_out, cached = _expected_tokens(entry.path, body)
        assert (post["tokens_input"], post["tokens_output"], post["tokens_total"]) == (
            tokens_in, tokens_out, tokens_in + tokens_out)
        assert post["usage_source"] == "reported"
        assert (post["tokens_cache_read"] or 0) == cached
    else:
        assert post["usage_source"] == "absent"
        assert post["tokens_input"] in (None, 0) and post["tokens_output"] in (None, 0)
    assert post["provider_metadata"]["request_id"] == routes.request_id(body)
    assert post["stop_reason"] in ("stop", "completed")
    streaming = post.get("streaming")
    if entry.streamed:
        assert streaming["final_outcome"] == "completed"
        assert streaming["abort_reason"] is None
        assert streaming["ttft_ms"] is not None and streaming["ttft_ms"] >= 0
        expected_chunks = {routes.RESPONSES_PATH: response_event_count,
                           routes.CHAT_PATH: chat_chunk_count,
                           routes.COMPLETIONS_PATH: legacy_chunk_count}[entry.path](body)
        assert streaming["chunk_count"] == expected_chunks
        assert streaming["inter_chunk_ms"]["max"] >= streaming["inter_chunk_ms"]["p50"] >= 0
    else:
        assert streaming is None


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_point_sends_the_same_request_with_and_without_the_sensor(
        sensor: Any, fake_llm: Any, name: str) -> None:
    # given: one call made with the sensor off, one with it on
    entry = ENTRY_POINTS[name]
    without = entry.sync(sync_client(fake_llm))
    sensor.init()
    with_sensor = entry.sync(sync_client(fake_llm))

    # then: same answer, same request body on the wire
    assert without == with_sensor
    first, second = bodies(fake_llm, entry.path)[-2:]
    assert first == second


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("encoding", ["default_base64", "float"])
def test_embeddings_report_input_tokens_and_output_dimensions(
        sensor: Any, fake_llm: Any, mode: str, encoding: str) -> None:
    # given
    sensor.init()
    args: dict[str, Any] = {"model": EMBEDDING_MODEL, "input": ["one two three", "four"],
                            "dimensions": 16}
    if encoding == "float":
        args["encoding_format"] = "float"

    # when
    if mode == "sync":
        result = sync_client(fake_llm).embeddings.create(**args)
    else:
        result = asyncio.run(async_client(fake_llm).embeddings.create(**args))

    # then: the SDK decoded the vectors as usual, and pre_call + embeddings were reported
    assert [len(item.embedding) for item in result.data] == [16, 16]
    assert result.data[1].embedding[:2] == routes.embedding_vector(1, 16)[:2]
    wire = last_body(fake_llm, routes.EMBEDDINGS_PATH)
    assert wire["encoding_format"] == ("base64" if encoding == "default_base64" else "float")
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "embeddings"]
    embedded = events[1]
    assert embedded["output_dimensions"] == {"count": 2, "dimension": 16}
    assert (embedded["tokens_input"], embedded["tokens_output"]) == (4, 0)
    assert embedded["model"] == EMBEDDING_MODEL


def test_client_built_before_patch_is_reported(sensor: Any, fake_llm: Any) -> None:
    # given: a client (and its resources) built before the sensor patched anything
    client = sync_client(fake_llm)
    client.chat.completions  # noqa: B018 - the resource exists before patch()
    sensor.init()

    # when
    client.chat.completions.create(**CHAT)

    # then
    assert [e["event_type"] for e in sensor.call_events()] == ["pre_call", "post_call"]


def test_azure_client_is_reported(sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()
    client = openai.AzureOpenAI(azure_endpoint=fake_llm.url, api_key="azure-key",
                                api_version="2024-10-21", max_retries=0)

    # when
    answer = client.chat.completions.create(model="my-deployment", messages=MESSAGES)

    # then
    assert fake_llm.requests[-1].path == "/openai/deployments/my-deployment/chat/completions"
    assert _chat_text(answer) == ANSWER
    _pre, post = sensor.call_events()
    assert post["model_requested"] == "my-deployment"
    assert post["model"] == "my-deployment-2025-01-01"
    assert post["tokens_input"] == len(PROMPT.split())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_with_raw_response_passes_the_raw_response_through_and_reports_usage(
        sensor: Any, fake_llm: Any, mode: str) -> None:
    # given
    sensor.init()

    # when: the user asks for the raw response
    if mode == "sync":
        raw = sync_client(fake_llm).chat.completions.with_raw_response.create(**CHAT)
    else:
        raw = asyncio.run(async_client(fake_llm).chat.completions.with_raw_response.create(**CHAT))

    # then: they get the SDK's raw response, which parses as usual
    assert type(raw) is openai._legacy_response.LegacyAPIResponse
    assert raw.headers["x-request-id"] == routes.request_id(last_body(fake_llm, routes.CHAT_PATH))
    assert _chat_text(raw.parse()) == ANSWER
    _pre, post = sensor.call_events()
    assert post["event_type"] == "post_call"
    assert (post["tokens_input"], post["tokens_output"]) == (6, 8)
    assert post["model"] == SERVED_MODEL
    assert post["provider_metadata"]["request_id"] == raw.headers["x-request-id"]


def test_with_streaming_response_is_reported_from_the_body_the_user_read(
        sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()

    # when: the user reads the raw body themselves
    with sync_client(fake_llm).chat.completions.with_streaming_response.create(**CHAT) as raw:
        assert isinstance(raw, openai._response.APIResponse)
        text = raw.read()

    # then: the body reached the user whole; the call is reported from it
    assert b'"You said: What is the capital of France"' in text
    _pre, post = sensor.call_events()
    assert post["event_type"] == "post_call"
    assert post["usage_source"] == "reported"
    assert post["provider_metadata"]["request_id"].startswith("req_")


def test_tool_calls_are_reported_once_each(sensor: Any, fake_llm: Any) -> None:
    from fixtures.openai_sdk import CHAT_TOOLS, RESPONSES_TOOLS

    # given
    sensor.init()
    client = sync_client(fake_llm)

    # when: the model asks for a tool, in chat (plain and streamed) and responses
    client.chat.completions.create(**CHAT, tools=CHAT_TOOLS)
    list(client.chat.completions.create(**CHAT, tools=CHAT_TOOLS, stream=True))
    client.responses.create(**RESPONSE, tools=RESPONSES_TOOLS)

    # then: each call has its tool_call event, without arguments (capture off)
    events = sensor.call_events()
    kinds = [e["event_type"] for e in events]
    assert kinds == ["pre_call", "post_call", "tool_call"] * 3
    for tool in (e for e in events if e["event_type"] == "tool_call"):
        assert tool["tool_name"] == "get_weather"
        assert tool.get("content") is None
    assert [e["stop_reason"] for e in events if e["event_type"] == "post_call"] == [
        "tool_calls", "tool_calls", "completed"]


def test_prompt_capture_sends_request_and_response_content(sensor: Any, fake_llm: Any) -> None:
    # given: capture on
    sensor.init(capture_prompts=True)

    # when
    list(sync_client(fake_llm).chat.completions.create(**CHAT, stream=True))

    # then
    pre, post = sensor.call_events()
    assert pre["has_content"] is True
    assert pre["content"]["request"]["messages"] == MESSAGES
    assert post["content"]["response"] == ANSWER


def test_no_content_anywhere_with_capture_off(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    sync_client(fake_llm).chat.completions.create(**CHAT)
    for event in sensor.call_events():
        assert not event.get("has_content") and event.get("content") is None
        assert PROMPT not in str(event)


def test_cached_prompt_tokens_are_reported(sensor: Any, fake_llm: Any) -> None:
    # given: a system prompt the fake reports as cached (prompt_cache_key set)
    sensor.init()
    messages = [{"role": "system", "content": "You are a terse geography tutor"}, *MESSAGES]

    # when
    sync_client(fake_llm).chat.completions.create(model=MODEL, messages=messages,
                                                  prompt_cache_key="geo")

    # then: input includes the cached tokens, cache read is reported apart
    post = sensor.events("post_call")[0]
    assert (post["tokens_input"], post["tokens_cache_read"]) == (12, 6)


def test_raw_response_of_a_stream_is_reported_when_its_stream_ends(
        sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()

    # when: the user asks for the raw response of a stream and parses it themselves
    raw = sync_client(fake_llm).chat.completions.with_raw_response.create(**CHAT, stream=True)
    stream = raw.parse()
    text = _chunks_text(list(stream))

    # then: the user's stream gives the SDK's chunks, whole; the call is reported
    # once, with the stream's timings (tests/integration/test_openai_raw_streams.py)
    assert isinstance(stream, openai.Stream)
    assert text == ANSWER
    _pre, post = sensor.call_events()
    assert post["event_type"] == "post_call"
    assert post["streaming"]["final_outcome"] == "completed"


def test_messages_given_as_a_generator_reach_the_api_whole(sensor: Any, fake_llm: Any) -> None:
    # given: prompt capture on, which reads the request's messages
    sensor.init(capture_prompts=True)

    # when: the messages are a one-shot generator
    answer = sync_client(fake_llm).chat.completions.create(
        model=MODEL, messages=(message for message in MESSAGES))

    # then: the sensor did not consume it
    assert _chat_text(answer) == ANSWER
    assert last_body(fake_llm, routes.CHAT_PATH)["messages"] == MESSAGES


def test_prompt_capture_covers_responses_and_embedding_input(sensor: Any, fake_llm: Any) -> None:
    # given: capture on
    sensor.init(capture_prompts=True)
    client = sync_client(fake_llm)

    # when
    client.responses.create(**RESPONSE)
    client.embeddings.create(model=EMBEDDING_MODEL, input="embed these words")

    # then: instructions, input and the response output; the embedding input
    pre_response, post_response, pre_embedding, _ = sensor.call_events()
    assert pre_response["content"]["request"] == {"instructions": "Answer briefly",
                                                  "input": PROMPT}
    output = post_response["content"]["response"]
    assert output[0]["content"][0]["text"] == ANSWER
    assert pre_embedding["content"]["request"] == {"input": "embed these words"}


def test_embeddings_of_token_ids_are_estimated_at_one_token_an_id(
        sensor: Any, fake_llm: Any) -> None:
    # given: pre-tokenized input, as the embeddings API accepts it
    sensor.init()
    ids = [[101, 2023, 2003, 1037], [101, 2178]]

    # when
    result = sync_client(fake_llm).embeddings.create(model=EMBEDDING_MODEL, input=ids)

    # then: the ids reached the provider unchanged, and pre_call counted one token each
    assert len(result.data) == 2
    assert last_body(fake_llm, routes.EMBEDDINGS_PATH)["input"] == ids
    pre = sensor.call_events()[0]
    assert pre["event_type"] == "pre_call" and pre["tokens_input"] == 6
