"""With FLIGHTDECK_EXPORT=otlp every intercepted call arrives at an OTLP
receiver as one CLIENT span named ``{operation} {model}``, described by the
OpenTelemetry GenAI semantic conventions, every attribute name checked
against the ``opentelemetry-semantic-conventions`` package. Real SDK calls
(openai, anthropic, litellm) against the fake provider; the receiver decodes
with the official OTLP protobuf definitions."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

from fakes.ingest_server import IngestServer
from fakes.otlp_receiver import Span, unknown_attribute_names
from fixtures import anthropic_sdk
from fixtures.litellm_calls import ANTHROPIC, OPENAI, call_kwargs, litellm
from fixtures.openai_sdk import CHAT_TOOLS, EMBEDDING_MODEL, MESSAGES, MODEL, SERVED_MODEL
from fixtures.openai_sdk import sync_client as openai_client

SPAN_KIND_CLIENT = 3


def attribute_names(spans: list[Span]) -> set[str]:
    names = {name for span in spans for name in (*span.attributes, *span.resource)}
    return names | {name for span in spans for _, attrs in span.events for name in attrs}


def test_an_openai_chat_call_is_one_client_span_with_the_conventions_attributes(
        otlp: Any, fake_llm: Any) -> None:
    sensor = otlp.init()

    openai_client(fake_llm).chat.completions.create(model=MODEL, messages=MESSAGES)
    [span] = otlp.spans(1)

    assert (span.name, span.kind) == (f"chat {MODEL}", SPAN_KIND_CLIENT)
    assert span.end_ns > span.start_ns > 0
    attributes = span.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == MODEL
    assert attributes["gen_ai.response.model"] == SERVED_MODEL
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert attributes["session.id"] == sensor.session.id
    assert span.resource["service.instance.id"] == sensor.session.id
    assert span.resource["gen_ai.agent.name"] == sensor.config.agent_name
    assert span.resource["flightdeck.flavor"] == sensor.session.flavor
    assert span.resource["host.name"] == sensor.config.hostname
    assert "gen_ai.input.messages" not in attributes  # no content unless opted in
    assert unknown_attribute_names(attribute_names([span])) == []


def test_every_attribute_name_of_every_kind_of_span_is_the_conventions(
        otlp: Any, fake_llm: Any) -> None:
    otlp.init(capture_prompts=True)
    client = openai_client(fake_llm)

    client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=CHAT_TOOLS)
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True}):
        pass
    client.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"])
    client.completions.create(model=MODEL, prompt="Say hello")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=MESSAGES)
    anthropic_sdk.sync_client(fake_llm).messages.create(
        model=anthropic_sdk.MODEL, max_tokens=50,
        messages=[{"role": "user", "content": anthropic_sdk.PROMPT}])
    spans = otlp.spans(6)

    assert len(spans) == 6
    assert unknown_attribute_names(attribute_names(spans)) == []


def test_operations_streams_embeddings_errors_and_tool_calls(otlp: Any, fake_llm: Any) -> None:
    otlp.init()
    client = openai_client(fake_llm)

    client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=CHAT_TOOLS)
    for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        pass
    client.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"])
    client.completions.create(model=MODEL, prompt="Say hello")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-error-429", messages=MESSAGES)
    tools, stream, embeddings, legacy, failed = otlp.spans(5)

    assert [e[0] for e in tools.events] == ["gen_ai.tool.call"]
    assert tools.events[0][1]["gen_ai.tool.name"] == "get_weather"
    assert "gen_ai.tool.call.arguments" not in tools.events[0][1]  # content: opt-in
    assert tools.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert stream.attributes["gen_ai.request.stream"] is True
    assert stream.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert (embeddings.name, embeddings.attributes["gen_ai.operation.name"]) == (
        f"embeddings {EMBEDDING_MODEL}", "embeddings")
    assert embeddings.attributes["gen_ai.embeddings.dimension.count"] == 8
    assert legacy.attributes["gen_ai.operation.name"] == "text_completion"
    assert failed.name == "chat fake-error-429"
    assert failed.attributes["error.type"] == "rate_limit"
    assert failed.status_code == 2  # STATUS_CODE_ERROR
    assert "gen_ai.response.model" not in failed.attributes


def test_anthropic_and_litellm_calls_name_their_provider(otlp: Any, fake_llm: Any) -> None:
    otlp.init()

    anthropic_sdk.sync_client(fake_llm).messages.create(
        model=anthropic_sdk.MODEL, max_tokens=50,
        messages=[{"role": "user", "content": anthropic_sdk.PROMPT}])
    litellm.completion(**call_kwargs(fake_llm, OPENAI))
    litellm.completion(**call_kwargs(fake_llm, ANTHROPIC))
    claude, via_openai, via_anthropic = otlp.spans(3)

    assert claude.attributes["gen_ai.provider.name"] == "anthropic"
    assert claude.attributes["gen_ai.response.id"].startswith("msg_")
    assert claude.attributes["gen_ai.usage.input_tokens"] > 0
    assert via_openai.attributes["gen_ai.provider.name"] == "openai"
    assert via_anthropic.attributes["gen_ai.provider.name"] == "anthropic"
    assert via_openai.attributes["gen_ai.usage.output_tokens"] == OPENAI.tokens_output
    assert via_anthropic.attributes["gen_ai.response.model"] == ANTHROPIC.served_model


def test_captured_content_goes_in_the_opt_in_attributes(otlp: Any, fake_llm: Any) -> None:
    otlp.init(capture_prompts=True)
    client = openai_client(fake_llm)

    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=CHAT_TOOLS)
    answer, tools = otlp.spans(2)

    assert '"role": "user"' in answer.attributes["gen_ai.input.messages"]
    assert MESSAGES[0]["content"] in answer.attributes["gen_ai.input.messages"]
    assert "You said" in answer.attributes["gen_ai.output.messages"]
    assert "city" in tools.events[0][1]["gen_ai.tool.call.arguments"]


def test_a_call_under_the_applications_span_is_its_child(otlp: Any, fake_llm: Any) -> None:
    otlp.init()
    tracer = TracerProvider().get_tracer("the-application")
    client = openai_client(fake_llm)

    with tracer.start_as_current_span("handle request") as outer:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    first, second, alone = otlp.spans(3)

    context = outer.get_span_context()
    for child in (first, second):
        assert child.trace_id == f"{context.trace_id:032x}"
        assert child.parent_span_id == f"{context.span_id:016x}"
    assert first.span_id != second.span_id
    assert alone.parent_span_id == ""
    assert alone.trace_id not in (first.trace_id, f"{0:032x}")


def test_calls_without_an_application_span_are_each_their_own_trace(
        otlp: Any, fake_llm: Any) -> None:
    sensor = otlp.init()
    client = openai_client(fake_llm)

    for _ in range(3):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    spans = otlp.spans(3)

    assert len({span.trace_id for span in spans}) == 3
    assert {span.parent_span_id for span in spans} == {""}
    assert {span.attributes["session.id"] for span in spans} == {sensor.session.id}


def test_http_json_protocol_carries_the_same_span(otlp: Any, fake_llm: Any) -> None:
    otlp.init(env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    tracer = TracerProvider().get_tracer("the-application")

    with tracer.start_as_current_span("outer") as outer:
        openai_client(fake_llm).chat.completions.create(model=MODEL, messages=MESSAGES)
    [span] = otlp.spans(1)

    assert otlp.receiver.requests[0].headers["Content-Type"] == "application/json"
    assert span.name == f"chat {MODEL}"
    assert span.parent_span_id == f"{outer.get_span_context().span_id:016x}"
    assert span.attributes["gen_ai.usage.input_tokens"] > 0


def test_headers_and_service_name_come_from_the_otel_variables(otlp: Any, fake_llm: Any) -> None:
    otlp.init(env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=s3cr%3Dt,x-tenant=blue",
                   "OTEL_SERVICE_NAME": "checkout-agent",
                   "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,"
                                               "service.name=ignored"})

    openai_client(fake_llm).chat.completions.create(model=MODEL, messages=MESSAGES)
    [span] = otlp.spans(1)

    headers = otlp.receiver.requests[0].headers
    assert (headers["x-api-key"], headers["x-tenant"]) == ("s3cr=t", "blue")
    assert span.resource["service.name"] == "checkout-agent"
    assert span.resource["deployment.environment.name"] == "prod"


def test_the_name_check_flags_a_replaced_or_unknown_name() -> None:
    problems = unknown_attribute_names({"gen_ai.system", "gen_ai.usage.prompt_tokens",
                                        "gen_ai.usage.input_token", "flightdeck.flavor"})

    assert [problem.split(":")[0] for problem in problems] == [
        "gen_ai.system", "gen_ai.usage.input_token", "gen_ai.usage.prompt_tokens"]


def test_a_degraded_call_is_named_by_the_model_asked_for_and_answered_by_the_other(
        otlp: Any, fake_llm: Any) -> None:
    with IngestServer() as flightdeck:
        sensor = otlp.init(env={"FLIGHTDECK_EXPORT": "both", "FLIGHTDECK_SERVER": flightdeck.url,
                                "FLIGHTDECK_TOKEN": "tok"})
        sensor.control.on_envelope({"directive": {
            "id": str(uuid.uuid4()), "action": "degrade", "degrade_to": "gpt-fake-mini",
            "reason": "over budget", "grace_period_ms": 0}})
        assert flightdeck.wait_for(lambda _: sensor.gate is not None
                                   and sensor.gate.degrade is not None)

        openai_client(fake_llm).chat.completions.create(model=MODEL, messages=MESSAGES)
        [span] = otlp.spans(1)

    assert span.name == f"chat {MODEL}"
    assert span.attributes["gen_ai.response.model"] == "gpt-fake-mini-2025-01-01"
