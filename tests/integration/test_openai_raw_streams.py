"""Raw responses of the OpenAI SDK (``with_streaming_response``, and streams
asked for ``with_raw_response``) are recorded as the plain calls are: a stream
parsed from one gets usage, the served model, time to first token and chunk
counts, and a ``stream_error`` when it breaks; a body is recorded when it is
read. This is how openai-agents streams every run of its Responses model.

Every event goes through the real collector, which rejects what Flightdeck
would (an ``embeddings`` event without ``output_dimensions``, for one)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest

from fakes.fake_llm import openai_routes as routes
from fixtures.openai_sdk import (
    EMBEDDING_MODEL,
    MESSAGES,
    MODEL,
    PROMPT,
    SERVED_MODEL,
    async_client,
    chat_chunk_count,
    chat_tokens,
    last_body,
    response_event_count,
    sync_client,
)

REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {  # api -> (path, arguments)
    "chat": (routes.CHAT_PATH, {"model": MODEL, "messages": MESSAGES,
                                "stream_options": {"include_usage": True}}),
    "responses": (routes.RESPONSES_PATH, {"model": MODEL, "input": PROMPT}),
}
APIS = list(REQUESTS)
RAW_KINDS = ["with_streaming_response", "with_raw_response"]


def _resource(client: Any, api: str) -> Any:
    return client.chat.completions if api == "chat" else client.responses


def _expected(fake: Any, api: str) -> tuple[int, int, int]:
    """(input tokens, output tokens, chunks) the fake streamed for ``api``'s request."""
    path, _ = REQUESTS[api]
    body = last_body(fake, path)
    if api == "chat":
        return (*chat_tokens(body), chat_chunk_count(body))
    usage = routes.response_answer(body)["usage"]
    return usage["input_tokens"], usage["output_tokens"], response_event_count(body)


def _terminal(sensor: Any) -> dict[str, Any]:
    events = sensor.call_events()
    assert [e["event_type"] for e in events][:1] == ["pre_call"], events
    terminal = [e for e in events if e["event_type"] != "pre_call"]
    assert len(terminal) == 1, events
    return terminal[0]


def _read_sync(fake: Any, api: str, raw_kind: str) -> int:
    """Parse the raw response into a stream and read it all; the chunks read."""
    _, arguments = REQUESTS[api]
    raw_api = getattr(_resource(sync_client(fake), api), raw_kind)
    if raw_kind == "with_raw_response":
        return len(list(raw_api.create(**arguments, stream=True).parse()))
    with raw_api.create(**arguments, stream=True) as response:
        return len(list(response.parse()))


async def _read_async(fake: Any, api: str, raw_kind: str) -> int:
    _, arguments = REQUESTS[api]
    raw_api = getattr(_resource(async_client(fake), api), raw_kind)
    if raw_kind == "with_raw_response":
        raw = await raw_api.create(**arguments, stream=True)
        return len([chunk async for chunk in raw.parse()])
    async with raw_api.create(**arguments, stream=True) as response:
        return len([chunk async for chunk in await response.parse()])


def _assert_recorded_as_a_stream(post: dict[str, Any], fake: Any, api: str,
                                 chunks_read: int) -> None:
    tokens_input, tokens_output, chunks = _expected(fake, api)
    assert post["event_type"] == "post_call"
    assert post["model"] == SERVED_MODEL
    assert post["usage_source"] == "reported"
    assert (post["tokens_input"], post["tokens_output"]) == (tokens_input, tokens_output)
    streaming = post["streaming"]
    assert streaming["final_outcome"] == "completed"
    assert streaming["chunk_count"] == chunks == chunks_read
    assert streaming["ttft_ms"] is not None and 0 <= streaming["ttft_ms"] <= post["latency_ms"]
    path, _ = REQUESTS[api]
    assert post["provider_metadata"]["request_id"] == routes.request_id(last_body(fake, path))


@pytest.mark.parametrize("raw_kind", RAW_KINDS)
@pytest.mark.parametrize("api", APIS)
def test_raw_stream_read_to_its_end_is_recorded_as_a_stream(
        sensor: Any, fake_llm: Any, api: str, raw_kind: str) -> None:
    # given
    sensor.init()

    # when: the raw response is parsed into its stream, which is read to the end
    chunks_read = _read_sync(fake_llm, api, raw_kind)

    # then: usage, served model, time to first token and chunks, as for a plain stream
    _assert_recorded_as_a_stream(_terminal(sensor), fake_llm, api, chunks_read)


@pytest.mark.parametrize("raw_kind", RAW_KINDS)
@pytest.mark.parametrize("api", APIS)
def test_async_raw_stream_read_to_its_end_is_recorded_as_a_stream(
        sensor: Any, fake_llm: Any, api: str, raw_kind: str) -> None:
    sensor.init()
    chunks_read = asyncio.run(_read_async(fake_llm, api, raw_kind))
    _assert_recorded_as_a_stream(_terminal(sensor), fake_llm, api, chunks_read)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("api", APIS)
def test_raw_stream_dropped_mid_stream_is_a_stream_error(
        sensor: Any, fake_llm: Any, api: str, mode: str) -> None:
    # given: the provider drops the connection after three events
    sensor.init()
    path, _ = REQUESTS[api]
    fake_llm.script_stream_drop(path, after_events=3)

    # when: the user reads the streaming response's stream
    with pytest.raises(Exception) as raised:
        if mode == "sync":
            _read_sync(fake_llm, api, "with_streaming_response")
        else:
            asyncio.run(_read_async(fake_llm, api, "with_streaming_response"))

    # then: the SDK's error reached the user, and the call is an llm_error, not a success
    assert not isinstance(raised.value, AssertionError)
    error = _terminal(sensor)
    assert error["event_type"] == "llm_error"
    assert error["error"]["error_type"] == "stream_error"
    assert error["streaming"]["chunk_count"] == 3
    assert error["streaming"]["final_outcome"] == "aborted"


def test_streaming_response_left_early_is_a_client_abort(sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()
    _, arguments = REQUESTS["responses"]

    # when: the user takes two events and leaves the with block
    with sync_client(fake_llm).responses.with_streaming_response.create(
            **arguments, stream=True) as response:
        stream = response.parse()
        assert response.parse() is stream  # parse() is cached, as the SDK's is
        for index, _ in enumerate(stream):
            if index == 1:
                break

    # then
    post = _terminal(sensor)
    assert post["event_type"] == "post_call"
    assert post["streaming"]["final_outcome"] == "aborted"
    assert post["streaming"]["abort_reason"] == "client_aborted"
    assert post["streaming"]["chunk_count"] == 2


def test_streaming_response_closed_unread_is_recorded_from_its_headers(
        sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()
    _, arguments = REQUESTS["chat"]

    # when: the user leaves the block without reading the body
    with sync_client(fake_llm).chat.completions.with_streaming_response.create(
            **arguments, stream=True) as response:
        request_id = response.headers["x-request-id"]

    # then: one post_call, with what the headers tell, and no invented usage
    post = _terminal(sensor)
    assert post["event_type"] == "post_call"
    assert post["provider_metadata"]["request_id"] == request_id
    assert post["usage_source"] == "absent"
    assert post["tokens_output"] is None


@pytest.mark.parametrize("read", ["parse", "read", "json", "text"])
def test_embeddings_streaming_response_records_output_dimensions(
        sensor: Any, fake_llm: Any, read: str) -> None:
    # given
    sensor.init()

    # when: the user reads the body, as the OpenAI SDK's own tests do
    with sync_client(fake_llm).embeddings.with_streaming_response.create(
            model=EMBEDDING_MODEL, input=["one two", "three"], dimensions=5,
            encoding_format="float") as response:
        getattr(response, read)()

    # then: a valid embeddings event, with the vectors' count and dimension
    (event,) = sensor.events("embeddings")
    assert event["output_dimensions"] == {"count": 2, "dimension": 5}
    assert event["tokens_input"] == 3


async def test_async_embeddings_streaming_response_records_output_dimensions(
        sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    async with async_client(fake_llm).embeddings.with_streaming_response.create(
            model=EMBEDDING_MODEL, input="one two") as response:
        embedding = await response.parse()
    (event,) = sensor.events("embeddings")
    assert event["output_dimensions"] == {"count": 1, "dimension": len(embedding.data[0].embedding)}


@pytest.mark.parametrize(("dimensions", "event_type"), [(4, "embeddings"), (None, "post_call")])
def test_embeddings_body_never_read_is_recorded_as_far_as_the_request_tells(
        sensor: Any, fake_llm: Any, dimensions: int | None, event_type: str) -> None:
    # given
    sensor.init()
    extra = {} if dimensions is None else {"dimensions": dimensions}

    # when: the body is never read
    with sync_client(fake_llm).embeddings.with_streaming_response.create(
            model=EMBEDDING_MODEL, input=["a", "b", "c"], **extra):
        pass

    # then: an embeddings event when the request tells the dimension, else a
    # post_call: an embeddings event without it would be rejected, and lost
    assert [e["event_type"] for e in sensor.call_events()] == ["pre_call", event_type]
    if dimensions is not None:
        assert sensor.events("embeddings")[0]["output_dimensions"] == {"count": 3, "dimension": 4}


def test_raw_stream_never_parsed_is_recorded_when_collected(sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()
    _, arguments = REQUESTS["chat"]
    raw = sync_client(fake_llm).chat.completions.with_raw_response.create(**arguments,
                                                                         stream=True)

    # when
    del raw
    gc.collect()

    # then
    assert _terminal(sensor)["event_type"] == "post_call"


def test_raw_response_proxy_is_transparent(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    _, arguments = REQUESTS["chat"]
    raw = sync_client(fake_llm).chat.completions.with_raw_response.create(**arguments,
                                                                         stream=True)
    assert isinstance(raw, openai._legacy_response.LegacyAPIResponse)
    assert raw.status_code == 200
    assert list(raw.parse())
