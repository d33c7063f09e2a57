"""The kill switch: after a shutdown directive every intercepted call raises
DirectiveError before the provider is called, on every provider and entry
point (sync, async, stream creation), with no pre_call recorded; a stream
already running finishes; the session ends with directive_shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import flightdeck_sensor
from fakes.fake_llm import FakeLLM
from fixtures import anthropic_sdk as ant
from fixtures import openai_sdk as oai
from fixtures.control import ControlledSensor
from fixtures.litellm_calls import OPENAI as LITELLM_OPENAI
from fixtures.litellm_calls import call_kwargs, litellm
from flightdeck_sensor._exceptions import DirectiveError


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def _openai_async(fake: FakeLLM) -> Any:
    return await oai.async_client(fake).chat.completions.create(model=oai.MODEL,
                                                                messages=oai.MESSAGES)


async def _anthropic_async(fake: FakeLLM) -> Any:
    return await ant.async_client(fake).messages.create(model=ant.MODEL, max_tokens=16,
                                                        messages=ant.MESSAGES)


async def _anthropic_async_stream_manager(fake: FakeLLM) -> Any:
    async with ant.async_client(fake).messages.stream(model=ant.MODEL, max_tokens=16,
                                                      messages=ant.MESSAGES) as stream:
        return await stream.get_final_message()


async def _litellm_async(fake: FakeLLM) -> Any:
    return await litellm.acompletion(**call_kwargs(fake, LITELLM_OPENAI))


ENTRY_POINTS: dict[str, Callable[[FakeLLM], Any]] = {
    "openai chat": lambda fake: oai.sync_client(fake).chat.completions.create(
        model=oai.MODEL, messages=oai.MESSAGES),
    "openai chat async": lambda fake: _run(_openai_async(fake)),
    "openai chat stream=True": lambda fake: oai.sync_client(fake).chat.completions.create(
        model=oai.MODEL, messages=oai.MESSAGES, stream=True),
    "openai chat .stream()": lambda fake: oai.sync_client(fake).chat.completions.stream(
        model=oai.MODEL, messages=oai.MESSAGES),
    "openai responses": lambda fake: oai.sync_client(fake).responses.create(
        model=oai.MODEL, input="hi"),
    "openai embeddings": lambda fake: oai.sync_client(fake).embeddings.create(
        model=oai.EMBEDDING_MODEL, input="hi"),
    "openai legacy completion": lambda fake: oai.sync_client(fake).completions.create(
        model=oai.MODEL, prompt="hi"),
    "anthropic create": lambda fake: ant.sync_client(fake).messages.create(
        model=ant.MODEL, max_tokens=16, messages=ant.MESSAGES),
    "anthropic create async": lambda fake: _run(_anthropic_async(fake)),
    "anthropic stream=True": lambda fake: ant.sync_client(fake).messages.create(
        model=ant.MODEL, max_tokens=16, messages=ant.MESSAGES, stream=True),
    "anthropic .stream()": lambda fake: ant.sync_client(fake).messages.stream(
        model=ant.MODEL, max_tokens=16, messages=ant.MESSAGES),
    "anthropic async .stream()": lambda fake: _run(_anthropic_async_stream_manager(fake)),
    "litellm completion": lambda fake: litellm.completion(**call_kwargs(fake, LITELLM_OPENAI)),
    "litellm acompletion": lambda fake: _run(_litellm_async(fake)),
    "litellm stream": lambda fake: litellm.completion(
        **call_kwargs(fake, LITELLM_OPENAI, stream=True)),
}


def _stopped(controlled: ControlledSensor, fake: FakeLLM, **directive: Any) -> str:
    controlled.init()
    oai.sync_client(fake).chat.completions.create(model=oai.MODEL, messages=oai.MESSAGES)
    # waits for the acknowledgement, which the sensor sends once its gate is shut
    return controlled.deliver("shutdown", **directive)


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_a_stopped_agent_s_calls_raise_before_the_provider_is_called(
        controlled: ControlledSensor, fake_llm: FakeLLM, entry_point: str) -> None:
    # given: an agent stopped by the operator
    _stopped(controlled, fake_llm, reason="runaway loop")
    requests_before = len(fake_llm.requests)
    pre_calls_before = len(controlled.events("pre_call"))

    # when / then: the call raises, with the operator's reason
    with pytest.raises(DirectiveError) as raised:
        ENTRY_POINTS[entry_point](fake_llm)
    assert raised.value.action == "shutdown"
    assert raised.value.reason == "runaway loop"

    # and nothing reached the provider, no pre_call was recorded
    assert len(fake_llm.requests) == requests_before
    assert len(controlled.events("pre_call")) == pre_calls_before


def test_the_shutdown_is_acknowledged_and_the_session_ends_with_directive_shutdown(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    # given
    directive_id = _stopped(controlled, fake_llm, reason="maintenance")
    sensor = controlled.sensor
    assert sensor is not None

    # then: the program can ask, and the acknowledgement reached the server
    assert flightdeck_sensor.get_status()["state"] == "stopped"
    assert sensor.shutdown_requested()
    acknowledged = [e for e in controlled.events("directive_result")
                    if e["directive_id"] == directive_id]
    assert [(e["directive_action"], e["directive_status"], e["result"]["reason"])
            for e in acknowledged] == [("shutdown", "acknowledged", "maintenance")]

    # when the process ends
    sensor.shutdown(5)

    # then
    ends = controlled.events("session_end")
    assert [e["close_reason"] for e in ends] == ["directive_shutdown"]


def test_a_stream_already_running_finishes_normally(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    # given: a stream started before the stop
    controlled.init()
    stream = oai.sync_client(fake_llm).chat.completions.create(
        model=oai.MODEL, messages=oai.MESSAGES, stream=True)
    first = next(iter(stream))

    # when the operator stops the agent mid-stream
    controlled.deliver("shutdown", until=lambda s: s["state"] == "stopped")

    # then the stream runs to its end and is recorded as completed
    rest = list(stream)
    assert first is not None and rest
    post_calls = controlled.events("post_call")
    assert [e["streaming"]["final_outcome"] for e in post_calls] == ["completed"]


def test_shutdown_flavor_stops_the_agent_and_says_so(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    directive_id = _stopped_flavor(controlled, fake_llm)
    with pytest.raises(DirectiveError) as raised:
        ENTRY_POINTS["anthropic create"](fake_llm)
    assert raised.value.action == "shutdown_flavor"
    [ack] = [e for e in controlled.events("directive_result")
             if e["directive_id"] == directive_id]
    assert "every session of the agent" in ack["result"]["message"]


def _stopped_flavor(controlled: ControlledSensor, fake: FakeLLM) -> str:
    controlled.init()
    oai.sync_client(fake).chat.completions.create(model=oai.MODEL, messages=oai.MESSAGES)
    return controlled.deliver("shutdown_flavor", reason="fleet stop")
