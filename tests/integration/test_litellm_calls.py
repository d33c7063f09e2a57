"""litellm entry points report exactly one event pair per user call, with the
numbers the provider answered, and hand back litellm's own objects.

litellm runs against the fake provider: ``openai/`` models through the OpenAI
SDK, ``anthropic/`` models through litellm's own httpx client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import flightdeck_sensor
from fakes.fake_llm import FakeLLM
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
from flightdeck_sensor.interceptors import _litellm, _registry

by_name = pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
sync_async = pytest.mark.parametrize("mode", ["sync", "async"])


def complete(mode: str, **kwargs: Any) -> Any:
    if mode == "sync":
        return litellm.completion(**kwargs)
    return asyncio.run(litellm.acompletion(**kwargs))


def consume(mode: str, **kwargs: Any) -> list[Any]:
    """A streamed call read to the end; the chunks the caller got."""
    if mode == "sync":
        return list(litellm.completion(stream=True, **kwargs))

    async def read() -> list[Any]:
        stream = await litellm.acompletion(stream=True, **kwargs)
        return [chunk async for chunk in stream]

    return asyncio.run(read())


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


# ---------------------------------------------------------------- completion

@by_name
@sync_async
def test_completion_reports_one_pair_with_the_providers_numbers(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target, mode: str) -> None:
    sensor.init()

    response = complete(mode, **call_kwargs(fake_llm, target))

    events = sensor.call_events()
    assert types_of(events) == ["pre_call", "post_call"]
    pre, post = events
    assert pre["model"] == target.model
    assert pre["provider"] == target.name
    assert pre["estimated_via"] == "heuristic"
    assert post["provider"] == target.name
    assert post["model_requested"] == target.model
    assert post["model"] == target.served_model == response.model
    assert (post["tokens_input"], post["tokens_output"]) == (target.tokens_input,
                                                             target.tokens_output)
    assert post["tokens_total"] == target.tokens_input + target.tokens_output
    assert post["usage_source"] == "reported"
    assert post["stop_reason"] == "stop" == response.choices[0].finish_reason
    assert post["provider_metadata"]["via"] == "litellm"
    assert post["provider_metadata"]["request_id"]
    assert "streaming" not in post
    assert isinstance(response, litellm.ModelResponse)
    assert sensor.sensor is not None and sensor.sensor.internal_errors == 0


@sync_async
def test_anthropic_cache_tokens_are_reported_and_included_in_input(
        sensor: SensorHarness, fake_llm: FakeLLM, mode: str) -> None:
    sensor.init()
    cached = [{"role": "user", "content": [
        {"type": "text", "text": "a long shared context", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "and a question"}]}]

    complete(mode, **call_kwargs(fake_llm, ANTHROPIC, messages=cached))

    post = sensor.events("post_call")[0]
    assert post["tokens_cache_read"] == 4
    assert post["tokens_input"] == 4 + 3  # input includes cached tokens


def test_positional_model_and_messages_are_understood(sensor: SensorHarness,
                                                      fake_llm: FakeLLM) -> None:
    sensor.init()

    litellm.completion(ANTHROPIC.model, MESSAGES, api_base=ANTHROPIC.api_base(fake_llm),
                       api_key="sk-test")

    pre, post = sensor.call_events()
    assert pre["model"] == post["model_requested"] == ANTHROPIC.model
    assert pre["tokens_input"] > 0


def test_tool_calls_give_one_tool_call_event_each(sensor: SensorHarness,
                                                  fake_llm: FakeLLM) -> None:
    sensor.init()
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]

    response = litellm.completion(**call_kwargs(fake_llm, ANTHROPIC, tools=tools))

    assert types_of(sensor.call_events()) == ["pre_call", "post_call", "tool_call"]
    assert sensor.events("tool_call")[0]["tool_name"] == "get_weather"
    assert response.choices[0].message.tool_calls[0].function.name == "get_weather"


# ---------------------------------------------------------------- streams

@by_name
@sync_async
def test_streamed_completion_reports_one_pair_with_a_streaming_block(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target, mode: str) -> None:
    sensor.init()

    chunks = consume(mode, **call_kwargs(fake_llm, target))

    events = sensor.call_events()
    assert types_of(events) == ["pre_call", "post_call"]
    post = events[1]
    assert post["model"] == target.served_model
    assert post["stop_reason"] == "stop"
    streaming = post["streaming"]
    assert streaming["final_outcome"] == "completed"
    assert streaming["abort_reason"] is None
    assert streaming["chunk_count"] == len(chunks) > 1
    assert streaming["ttft_ms"] is not None and streaming["ttft_ms"] >= 0
    assert streaming["inter_chunk_ms"]["max"] >= streaming["inter_chunk_ms"]["p50"] >= 0
    assert post["provider_metadata"]["request_id"]
    assert sensor.sensor is not None and sensor.sensor.internal_errors == 0


@sync_async
def test_anthropic_stream_reports_the_usage_the_provider_sent(
        sensor: SensorHarness, fake_llm: FakeLLM, mode: str) -> None:
    sensor.init()

    consume(mode, **call_kwargs(fake_llm, ANTHROPIC))

    post = sensor.events("post_call")[0]
    assert (post["tokens_input"], post["tokens_output"]) == (3, 5)
    assert post["usage_source"] == "reported"


@sync_async
def test_openai_stream_without_usage_reports_litellms_estimate(
        sensor: SensorHarness, fake_llm: FakeLLM, mode: str) -> None:
    sensor.init()

    consume(mode, **call_kwargs(fake_llm, OPENAI))

    post = sensor.events("post_call")[0]
    assert post["usage_source"] == "estimated"  # litellm's tokenizer count at the end
    assert post["tokens_output"] > 0


@sync_async
def test_openai_stream_with_include_usage_reports_the_providers_usage(
        sensor: SensorHarness, fake_llm: FakeLLM, mode: str) -> None:
    sensor.init()

    chunks = consume(mode, **call_kwargs(fake_llm, OPENAI,
                                         stream_options={"include_usage": True}))

    post = sensor.events("post_call")[0]
    assert post["usage_source"] == "reported"
    assert (post["tokens_input"], post["tokens_output"]) == (OPENAI.tokens_input,
                                                             OPENAI.tokens_output)
    assert post["streaming"]["chunk_count"] == len(chunks)


def test_stream_is_litellms_stream_wrapper_to_the_caller(sensor: SensorHarness,
                                                         fake_llm: FakeLLM) -> None:
    from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

    sensor.init()

    stream = litellm.completion(stream=True, **call_kwargs(fake_llm, ANTHROPIC))

    assert isinstance(stream, CustomStreamWrapper)
    assert stream.model == stream.__wrapped__.model
    assert {type(chunk).__name__ for chunk in stream} == {"ModelResponseStream"}


# ---------------------------------------------------------------- prompt capture

@pytest.mark.parametrize("stream", [False, True])
def test_no_content_leaves_the_process_without_prompt_capture(
        sensor: SensorHarness, fake_llm: FakeLLM, stream: bool) -> None:
    sensor.init()

    result = litellm.completion(stream=stream, **call_kwargs(fake_llm, ANTHROPIC))
    if stream:
        list(result)

    for event in sensor.call_events():
        assert not event.get("has_content")
        assert event.get("content") is None
        assert "hello there world" not in str(event)


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_capture_sends_the_request_and_the_response(
        sensor: SensorHarness, fake_llm: FakeLLM, stream: bool) -> None:
    sensor.init(capture_prompts=True)

    result = litellm.completion(stream=stream, **call_kwargs(fake_llm, ANTHROPIC))
    if stream:
        list(result)

    pre, post = sensor.call_events()
    assert pre["has_content"] is True
    assert pre["content"]["request"]["messages"] == MESSAGES
    assert post["has_content"] is True
    response = post["content"]["response"]
    text = response["text"] if stream else response
    assert text == "You said: hello there world"


# ---------------------------------------------------------------- embeddings

@sync_async
def test_embedding_reports_an_embeddings_event_with_dimensions(
        sensor: SensorHarness, fake_llm: FakeLLM, mode: str) -> None:
    sensor.init()
    kwargs = {"model": "openai/text-embedding-3-small", "input": ["one", "two words"],
              "api_base": OPENAI.api_base(fake_llm), "api_key": "sk-test"}

    if mode == "sync":
        response = litellm.embedding(**kwargs)
    else:
        response = asyncio.run(litellm.aembedding(**kwargs))

    events = sensor.call_events()
    assert types_of(events) == ["pre_call", "embeddings"]
    embeddings = events[1]
    assert embeddings["provider"] == "openai"
    assert embeddings["output_dimensions"] == {"count": 2,
                                               "dimension": len(response.data[0]["embedding"])}
    assert embeddings["tokens_output"] == 0
    assert embeddings["tokens_input"] == response.usage.prompt_tokens > 0
    assert embeddings["tokens_total"] == embeddings["tokens_input"]


# ---------------------------------------------------------------- text_completion

@sync_async
def test_text_completion_reports_one_pair_not_one_per_layer(
        sensor: SensorHarness, fake_llm: FakeLLM, mode: str) -> None:
    # litellm's text_completion runs the OpenAI SDK's Completions.create underneath.
    sensor.init()
    kwargs = {"model": "openai/gpt-3.5-turbo-instruct", "prompt": "say hello there",
              "api_base": OPENAI.api_base(fake_llm), "api_key": "sk-test"}

    if mode == "sync":
        response = litellm.text_completion(**kwargs)
    else:
        response = asyncio.run(litellm.atext_completion(**kwargs))

    events = sensor.call_events()
    assert types_of(events) == ["pre_call", "post_call"]
    post = events[1]
    assert post["provider"] == "openai"
    assert post["model_requested"] == "openai/gpt-3.5-turbo-instruct"
    assert post["tokens_output"] == response.usage.completion_tokens > 0
    assert post["provider_metadata"]["via"] == "litellm"


@sync_async
def test_streamed_text_completion_reports_one_pair(sensor: SensorHarness, fake_llm: FakeLLM,
                                                   mode: str) -> None:
    # litellm makes the OpenAI SDK request lazily here, on the first chunk read.
    sensor.init()
    kwargs = {"model": "openai/gpt-3.5-turbo-instruct", "prompt": "say hello there",
              "api_base": OPENAI.api_base(fake_llm), "api_key": "sk-test", "stream": True}

    if mode == "sync":
        chunks = list(litellm.text_completion(**kwargs))
    else:
        async def read() -> list[Any]:
            stream = await litellm.atext_completion(**kwargs)
            return [chunk async for chunk in stream]
        chunks = asyncio.run(read())

    events = sensor.call_events()
    assert types_of(events) == ["pre_call", "post_call"]
    post = events[1]
    assert post["model_requested"] == "openai/gpt-3.5-turbo-instruct"
    assert post["stop_reason"] == "stop"
    assert post["streaming"]["final_outcome"] == "completed"
    assert post["streaming"]["chunk_count"] == len(chunks)


def test_the_openai_sdk_under_litellm_is_instrumented_yet_silent(sensor: SensorHarness,
                                                                  fake_llm: FakeLLM) -> None:
    import openai

    sensor.init()
    client = openai.OpenAI(base_url=OPENAI.api_base(fake_llm), api_key="sk-test")
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hello")
    assert types_of(sensor.call_events()) == ["pre_call", "post_call"]  # the SDK layer reports

    litellm.text_completion(model="openai/gpt-3.5-turbo-instruct", prompt="say hello",
                            api_base=OPENAI.api_base(fake_llm), api_key="sk-test")
    litellm.completion(**call_kwargs(fake_llm, OPENAI))

    events = sensor.call_events()
    assert types_of(events) == ["pre_call", "post_call"] * 3
    assert [e["model"] for e in events if e["event_type"] == "pre_call"] == [
        "gpt-3.5-turbo-instruct", "openai/gpt-3.5-turbo-instruct", OPENAI.model]


# ---------------------------------------------------------------- Router

def router_for(fake: FakeLLM, target: Target) -> Any:
    return litellm.Router(model_list=[{
        "model_name": "my-model",
        "litellm_params": {"model": target.model, "api_base": target.api_base(fake),
                           "api_key": "sk-test"}}])


@by_name
@pytest.mark.parametrize("mode", ["sync", "async", "async-stream"])
def test_router_call_reports_one_pair(sensor: SensorHarness, fake_llm: FakeLLM,
                                      target: Target, mode: str) -> None:
    sensor.init()
    router = router_for(fake_llm, target)

    if mode == "sync":
        router.completion(model="my-model", messages=MESSAGES)
    elif mode == "async":
        asyncio.run(router.acompletion(model="my-model", messages=MESSAGES))
    else:
        async def read() -> None:
            stream = await router.acompletion(model="my-model", messages=MESSAGES, stream=True)
            async for _ in stream:
                pass
        asyncio.run(read())

    events = sensor.call_events()
    assert types_of(events) == ["pre_call", "post_call"]
    assert events[1]["model_requested"] == target.model  # the deployment, not the alias
    assert events[1]["provider"] == target.name


def test_router_retry_reports_each_attempt_it_made(sensor: SensorHarness,
                                                   fake_llm: FakeLLM) -> None:
    # Router retries go through litellm.acompletion again: each attempt is a
    # provider request of its own, and is reported as such (known limit: the
    # failed attempt says terminal: true although the Router went on).
    from fakes.fake_llm import anthropic_routes

    sensor.init()
    router = litellm.Router(model_list=[{
        "model_name": "my-model",
        "litellm_params": {"model": ANTHROPIC.model, "api_base": ANTHROPIC.api_base(fake_llm),
                           "api_key": "sk-test"}}], num_retries=1, retry_after=0)
    fake_llm.script(ANTHROPIC.path, anthropic_routes.error_reply(500))

    asyncio.run(router.acompletion(model="my-model", messages=MESSAGES))

    assert len(fake_llm.requests) == 2
    assert types_of(sensor.call_events()) == ["pre_call", "llm_error", "pre_call", "post_call"]


# ---------------------------------------------------------------- transparency

def request_bodies(fake: FakeLLM) -> list[Any]:
    return [request.body for request in fake.requests]


@by_name
@pytest.mark.parametrize("stream", [False, True])
def test_arguments_reach_the_provider_unchanged(sensor: SensorHarness, fake_llm: FakeLLM,
                                                target: Target, stream: bool) -> None:
    def call() -> None:
        result = litellm.completion(stream=stream, temperature=0.5,
                                    **call_kwargs(fake_llm, target))
        if stream:
            list(result)

    call()  # the sensor is not running yet
    without_sensor = request_bodies(fake_llm)
    fake_llm.reset()
    sensor.init()
    call()

    assert request_bodies(fake_llm) == without_sensor
    assert "stream_options" not in str(without_sensor)


def test_reference_taken_after_the_patch_is_instrumented(sensor: SensorHarness,
                                                         fake_llm: FakeLLM) -> None:
    sensor.init()
    from litellm import completion

    completion(**call_kwargs(fake_llm, ANTHROPIC))

    assert types_of(sensor.call_events()) == ["pre_call", "post_call"]


def test_unpatch_restores_the_original_functions(sensor: SensorHarness,
                                                 fake_llm: FakeLLM) -> None:
    sensor.init()
    assert isinstance(litellm.completion, _registry.SensorWrapper)
    originals = {(module, name): getattr(module, name).__wrapped__
                 for module in (litellm, litellm.main)
                 for name in ("completion", "acompletion", "embedding", "text_completion")}

    flightdeck_sensor.unpatch()
    try:
        for (module, name), original in originals.items():
            assert getattr(module, name) is original
        litellm.completion(**call_kwargs(fake_llm, ANTHROPIC))
        assert sensor.call_events() == []
    finally:
        flightdeck_sensor.patch()
    assert isinstance(litellm.completion, _registry.SensorWrapper)


def test_patching_twice_wraps_once(sensor: SensorHarness, fake_llm: FakeLLM) -> None:
    sensor.init()

    _registry.patch(litellm, "completion", _litellm.WRAPPERS["completion"])
    litellm.completion(**call_kwargs(fake_llm, ANTHROPIC))

    assert not isinstance(litellm.completion.__wrapped__, _registry.SensorWrapper)
    assert types_of(sensor.call_events()) == ["pre_call", "post_call"]
