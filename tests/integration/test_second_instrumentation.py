"""Beside another instrumentation of the same SDK (OpenTelemetry's
openai-v2, which wraps ``Completions.create`` with wrapt as ddtrace, Sentry and
Langfuse do): whichever patched first, both record each call, and each one's
unpatch leaves the other working and the SDK as it was."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import anthropic.resources.messages.messages as messages_module
import openai.resources.chat.completions.completions as chat_module
import pytest
import wrapt
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import flightdeck_sensor
from fixtures import anthropic_sdk
from fixtures.openai_sdk import MESSAGES, MODEL, sync_client
from flightdeck_sensor.interceptors._registry import SensorWrapper


class OpenTelemetry:
    """OpenTelemetry's OpenAI instrumentation, its spans kept in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.instrumentor = OpenAIInstrumentor()

    def instrument(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.provider)

    def uninstrument(self) -> None:
        self.instrumentor.uninstrument()

    def span_count(self) -> int:
        return len(self.spans.get_finished_spans())


@pytest.fixture
def otel() -> Iterator[OpenTelemetry]:
    other = OpenTelemetry()
    yield other
    if other.instrumentor.is_instrumented_by_opentelemetry:
        other.uninstrument()
    flightdeck_sensor.patch()  # leave the process as the other tests expect it


def chat(fake_llm: Any) -> None:
    sync_client(fake_llm).chat.completions.create(model=MODEL, messages=MESSAGES)


def types_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["event_type"] for event in events]


def instrument_both(order: str, sensor: Any, otel: OpenTelemetry) -> None:
    sensor.init()
    if order == "theirs first":
        flightdeck_sensor.unpatch()
        otel.instrument()
        flightdeck_sensor.patch()
    else:
        otel.instrument()


ORDERS = ["theirs first", "ours first"]


@pytest.mark.parametrize("order", ORDERS)
def test_both_instrumentations_record_the_same_call(order: str, sensor: Any, fake_llm: Any,
                                                    otel: OpenTelemetry) -> None:
    # given both instrumentations, in either order
    original = vars(chat_module.Completions)["create"]
    flightdeck_sensor.unpatch()
    original = vars(chat_module.Completions)["create"]
    instrument_both(order, sensor, otel)
    # when the user makes one call
    chat(fake_llm)
    # then we report one pair and they record one span
    assert types_of(sensor.call_events()) == ["pre_call", "post_call"]
    assert otel.span_count() == 1
    # and with both removed, the SDK's own method is back
    flightdeck_sensor.unpatch()
    otel.uninstrument()
    assert vars(chat_module.Completions)["create"] is original


@pytest.mark.parametrize("order", ORDERS)
def test_after_our_unpatch_their_spans_still_come_and_our_events_stop(
        order: str, sensor: Any, fake_llm: Any, otel: OpenTelemetry) -> None:
    # given both instrumentations
    instrument_both(order, sensor, otel)
    # when we unpatch, and the user makes a call
    flightdeck_sensor.unpatch()
    chat(fake_llm)
    # then their span comes, our events do not, and no layer of ours is left
    assert otel.span_count() == 1
    assert sensor.call_events() == []
    assert not _our_layer_in(vars(chat_module.Completions)["create"])


@pytest.mark.parametrize("order", ORDERS)
def test_after_their_unpatch_our_events_still_come(order: str, sensor: Any, fake_llm: Any,
                                                   otel: OpenTelemetry) -> None:
    # given both instrumentations
    instrument_both(order, sensor, otel)
    # when they unpatch, and the user makes a call
    otel.uninstrument()
    chat(fake_llm)
    # then our pair comes, and their span does not
    assert types_of(sensor.call_events()) == ["pre_call", "post_call"]
    assert otel.span_count() == 0
    # and our unpatch then leaves the SDK's own method
    flightdeck_sensor.unpatch()
    assert not _our_layer_in(vars(chat_module.Completions)["create"])
    assert inspect.isfunction(vars(chat_module.Completions)["create"])


def test_an_anthropic_method_another_tool_wrapped_first_is_recorded_and_restored(
        sensor: Any, fake_llm: Any) -> None:
    # given a tool that wrapped Messages.create with wrapt before the sensor patched
    sensor.init()
    flightdeck_sensor.unpatch()
    seen: list[str] = []

    def their_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(kwargs["model"])
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(messages_module, "Messages.create", their_wrapper)
    theirs = vars(messages_module.Messages)["create"]
    try:
        flightdeck_sensor.patch()
        # when the user makes one call
        anthropic_sdk.sync_client(fake_llm).messages.create(
            model=anthropic_sdk.MODEL, max_tokens=16, messages=anthropic_sdk.MESSAGES)
        # then both saw it, and our unpatch leaves their layer as it was
        assert types_of(sensor.call_events()) == ["pre_call", "post_call"]
        assert seen == [anthropic_sdk.MODEL]
        flightdeck_sensor.unpatch()
        assert vars(messages_module.Messages)["create"] is theirs
        assert not _our_layer_in(theirs)
    finally:
        flightdeck_sensor.unpatch()
        messages_module.Messages.create = theirs.__wrapped__
        flightdeck_sensor.patch()


def _our_layer_in(method: Any) -> bool:
    layer = method
    for _ in range(8):
        if isinstance(layer, SensorWrapper) or getattr(layer, "_self_parent", None) is not None:
            return True
        layer = getattr(layer, "__wrapped__", None)
        if layer is None:
            return False
    return False
