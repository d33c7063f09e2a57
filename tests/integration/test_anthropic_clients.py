"""Every client class that builds the messages resources is covered, the user's
arguments and results are untouched, and unpatch() restores the SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic._response import APIResponse
from anthropic.resources.beta.messages import Messages as BetaMessages
from anthropic.resources.messages import AsyncMessages, Messages
from anthropic.types import Message

import flightdeck_sensor
from fakes.fake_llm import anthropic_routes as routes
from fixtures.anthropic_sdk import MESSAGES, MODEL, TOOLS, async_client, sync_client

ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES}


def _pairs(sensor: Any) -> list[str]:
    return [e["event_type"] for e in sensor.call_events()]


def _vertex(fake: Any) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(region="us-east5", project_id="proj", access_token="tok",
                                     base_url=fake.url, max_retries=0)


def _bedrock(fake: Any) -> anthropic.AnthropicBedrock:
    return anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="AKIDEXAMPLE",
                                      aws_secret_key="secret", base_url=fake.url, max_retries=0)


@pytest.mark.parametrize("make_client", [_vertex, _bedrock], ids=["vertex", "bedrock"])
def test_cloud_clients_are_reported(sensor: Any, fake_llm: Any, make_client: Any) -> None:
    sensor.init()
    message = make_client(fake_llm).messages.create(**ARGS)
    assert isinstance(message, Message)
    post = sensor.events("post_call")[0]
    assert post["model_requested"] == MODEL
    assert post["tokens_output"] == message.usage.output_tokens
    assert _pairs(sensor) == ["pre_call", "post_call"]


def test_vertex_stream_helper_is_reported(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    with _vertex(fake_llm).messages.stream(**ARGS) as stream:
        text = stream.get_final_text()
    assert text.startswith("You said:")
    assert fake_llm.requests[-1].path.endswith(":streamRawPredict")
    assert sensor.events("post_call")[0]["streaming"]["final_outcome"] == "completed"


async def test_async_vertex_client_is_reported(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    client = anthropic.AsyncAnthropicVertex(region="us-east5", project_id="proj",
                                            access_token="tok", base_url=fake_llm.url)
    await client.messages.create(**ARGS)
    assert _pairs(sensor) == ["pre_call", "post_call"]


def test_client_built_before_patch_is_reported(sensor: Any, fake_llm: Any) -> None:
    # given a client (and its resources) built while the SDK was not patched
    flightdeck_sensor.unpatch()
    client = sync_client(fake_llm)
    messages = client.messages
    # when the sensor starts afterwards
    sensor.init()
    messages.create(**ARGS)
    # then
    assert _pairs(sensor) == ["pre_call", "post_call"]


def test_unpatch_restores_the_original_entry_points(sensor: Any, fake_llm: Any) -> None:
    # given a patched SDK
    sensor.init()
    patched = (Messages.create, AsyncMessages.stream, BetaMessages.parse)
    # when
    flightdeck_sensor.unpatch()
    # then the class attributes are the SDK's functions again, and calls are silent
    for name in ("create", "stream", "parse"):
        for cls in (Messages, AsyncMessages, BetaMessages):
            assert type(cls.__dict__[name]).__name__ == "function", (cls, name)
    assert Messages.create is not patched[0]
    client = sync_client(fake_llm)
    client.messages.create(**ARGS)
    with client.messages.stream(**ARGS) as stream:
        stream.until_done()
    assert _pairs(sensor) == []
    # and patching again works
    flightdeck_sensor.patch()
    client.messages.create(**ARGS)
    assert _pairs(sensor) == ["pre_call", "post_call"]


def _bodies_sent(fake: Any, client: Any) -> list[Any]:
    fake.reset()
    client.messages.create(**ARGS, tools=TOOLS, system="Be brief")
    for _ in client.messages.create(**ARGS, stream=True):
        pass
    with client.messages.stream(**ARGS) as stream:
        stream.until_done()
    client.messages.parse(**ARGS)
    client.beta.messages.create(**ARGS)
    return [(r.path, r.body) for r in fake.requests]


def test_arguments_reach_the_provider_unchanged(sensor: Any, fake_llm: Any) -> None:
    flightdeck_sensor.unpatch()
    client = sync_client(fake_llm)
    without_sensor = _bodies_sent(fake_llm, client)
    sensor.init()
    with_sensor = _bodies_sent(fake_llm, client)
    assert with_sensor == without_sensor
    assert len(sensor.events("post_call")) == 5
    assert not any("count_tokens" in path for path, _ in with_sensor)


def test_with_raw_response_is_recorded_when_parsed(sensor: Any, fake_llm: Any) -> None:
    # given the raw-response route LangChain takes for every call
    sensor.init()
    raw = sync_client(fake_llm).messages.with_raw_response.create(**ARGS)
    assert isinstance(raw, APIResponse)
    assert _pairs(sensor) == ["pre_call"]
    # when the caller parses it (twice: the SDK caches the result)
    message = raw.parse()
    assert raw.parse() is message
    # then
    assert isinstance(message, Message)
    post = sensor.events("post_call")[0]
    assert post["provider_metadata"]["request_id"] == raw.headers["request-id"]
    assert post["tokens_output"] == message.usage.output_tokens
    assert _pairs(sensor) == ["pre_call", "post_call"]


def test_raw_response_never_parsed_is_recorded_from_its_headers(sensor: Any,
                                                                fake_llm: Any) -> None:
    sensor.init()
    raw = sync_client(fake_llm).messages.with_raw_response.create(**ARGS)
    request_id = raw.headers["request-id"]
    del raw
    post = sensor.events("post_call")[0]
    assert post["provider_metadata"]["request_id"] == request_id
    assert post["usage_source"] == "absent"


def test_raw_streamed_response_is_timed_when_parsed(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    raw = sync_client(fake_llm).messages.with_raw_response.create(**ARGS, stream=True)
    stream = raw.parse()
    assert isinstance(stream, anthropic.Stream)
    assert [e.type for e in stream][-1] == "message_stop"
    post = sensor.events("post_call")[0]
    assert post["streaming"]["final_outcome"] == "completed"
    assert post["tokens_output"] is not None


async def test_async_raw_response_is_recorded_when_parsed(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    raw = await async_client(fake_llm).messages.with_raw_response.create(**ARGS)
    message = await raw.parse()
    assert isinstance(message, Message)
    assert sensor.events("post_call")[0]["tokens_output"] == message.usage.output_tokens


def test_with_streaming_response_is_passed_through_and_recorded(sensor: Any,
                                                                fake_llm: Any) -> None:
    sensor.init()
    with sync_client(fake_llm).messages.with_streaming_response.create(**ARGS) as response:
        message = response.parse()
    assert isinstance(message, Message)
    assert _pairs(sensor) == ["pre_call", "post_call"]
    assert sensor.events("post_call")[0]["usage_source"] == "reported"


def test_no_prompt_content_without_capture(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    client = sync_client(fake_llm)
    client.messages.create(**ARGS, system="SYSTEM-SECRET", tools=TOOLS)
    with client.messages.stream(**ARGS) as stream:
        stream.until_done()
    for event in sensor.events():
        assert not event.get("has_content")
        assert event.get("content") is None
        assert "SYSTEM-SECRET" not in str(event)
        assert "capital of France" not in str(event)


def test_prompt_capture_sends_request_response_and_tool_arguments(sensor: Any,
                                                                  fake_llm: Any) -> None:
    sensor.init(capture_prompts=True)
    sync_client(fake_llm).messages.create(**ARGS, system="Be brief", tools=TOOLS[:1])
    pre, post, tool = sensor.call_events()
    assert pre["has_content"] is True
    assert pre["content"]["request"]["system"] == "Be brief"
    assert pre["content"]["request"]["messages"] == MESSAGES
    assert pre["content"]["request"]["tools"] == TOOLS[:1]
    assert post["content"]["response"][1]["input"] == {"city": "What is the capital of France"}
    assert tool["content"]["arguments"] == {"city": "What is the capital of France"}


def test_prompt_capture_of_a_stream_keeps_text_and_tool_input(sensor: Any, fake_llm: Any) -> None:
    sensor.init(capture_prompts=True)
    with sync_client(fake_llm).messages.stream(**ARGS, tools=TOOLS[:1]) as stream:
        stream.until_done()
    _, post, tool = sensor.call_events()
    assert post["content"]["response"] == [
        {"type": "text", "text": "Using tools."},
        {"type": "tool_use", "name": "get_weather",
         "input": {"city": "What is the capital of France"}}]
    assert tool["tool_name"] == "get_weather"
    assert tool["content"]["arguments"] == {"city": "What is the capital of France"}


async def test_async_sensor_off_passes_calls_through(fake_llm: Any) -> None:
    # no sensor at all: the patched SDK behaves as the plain SDK
    message = await async_client(fake_llm).messages.create(**ARGS)
    assert message.content[0].text == "You said: What is the capital of France"
    assert routes.request_id(fake_llm.requests[-1].json) == message._request_id
