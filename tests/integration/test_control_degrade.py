"""Degrade: after a degrade directive every later call is sent to the cheaper
model, swapped on a copy of the call's arguments, on every provider; the
events record the model asked for and the one served. A model of another
provider's family is refused with one WARNING and a directive_result error."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fixtures import anthropic_sdk as ant
from fixtures import openai_sdk as oai
from fixtures.control import ControlledSensor
from fixtures.litellm_calls import MESSAGES as LITELLM_MESSAGES
from fixtures.litellm_calls import OPENAI as LITELLM_OPENAI
from fixtures.litellm_calls import call_kwargs, litellm


def _degraded(controlled: ControlledSensor, fake: FakeLLM, to: str) -> str:
    controlled.init()
    oai.sync_client(fake).embeddings.create(model=oai.EMBEDDING_MODEL, input="warm up")
    return controlled.deliver("degrade", degrade_to=to, reason="over budget")


def _sent_models(fake: FakeLLM, path: str) -> list[str]:
    return [r.json["model"] for r in fake.requests if r.path.endswith(path)]


def test_openai_calls_go_to_the_degraded_model_and_the_program_s_arguments_stay_as_they_were(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    # given
    directive_id = _degraded(controlled, fake_llm, "gpt-fake-mini")
    params: dict[str, Any] = {"model": oai.MODEL, "messages": oai.MESSAGES}

    # when
    oai.sync_client(fake_llm).chat.completions.create(**params)
    with oai.sync_client(fake_llm).chat.completions.stream(**params) as stream:
        stream.get_final_completion()

    # then: sent to the cheaper model, the program's dict untouched
    assert _sent_models(fake_llm, "/chat/completions") == ["gpt-fake-mini", "gpt-fake-mini"]
    assert params["model"] == oai.MODEL
    calls = controlled.events("post_call")
    assert [(e["model_requested"], e["model"]) for e in calls] == [
        (oai.MODEL, "gpt-fake-mini-2025-01-01")] * 2  # the fake serves the model dated
    [_warm_up, pre_call, _] = controlled.events("pre_call")
    assert pre_call["model"] == oai.MODEL  # as the program asked
    [degrade] = controlled.events("policy_degrade")
    assert (degrade["from_model"], degrade["to_model"]) == (oai.EMBEDDING_MODEL, "gpt-fake-mini")
    assert all(isinstance(degrade["policy_decision"][key], str) and degrade["policy_decision"][key]
               for key in ("policy_id", "scope", "decision", "reason"))
    [ack] = [e for e in controlled.events("directive_result") if e["directive_id"] == directive_id]
    assert (ack["directive_status"], ack["result"]["to_model"]) == ("acknowledged", "gpt-fake-mini")


def test_anthropic_create_and_stream_manager_go_to_the_degraded_model(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    _degraded(controlled, fake_llm, "claude-fake-haiku")
    client = ant.sync_client(fake_llm)

    client.messages.create(model=ant.MODEL, max_tokens=16, messages=ant.MESSAGES)
    with client.messages.stream(model=ant.MODEL, max_tokens=16, messages=ant.MESSAGES) as stream:
        stream.get_final_message()

    assert _sent_models(fake_llm, "/v1/messages") == ["claude-fake-haiku"] * 2
    calls = controlled.events("post_call")
    assert [e["model_requested"] for e in calls] == [ant.MODEL] * 2


@pytest.mark.parametrize("positional", [False, True], ids=["model=", "positional model"])
def test_litellm_calls_go_to_the_degraded_model(
        controlled: ControlledSensor, fake_llm: FakeLLM, positional: bool) -> None:
    _degraded(controlled, fake_llm, "openai/gpt-fake-nano")
    kwargs = call_kwargs(fake_llm, LITELLM_OPENAI)
    if positional:
        model = kwargs.pop("model")
        kwargs.pop("messages")
        litellm.completion(model, LITELLM_MESSAGES, **kwargs)
    else:
        litellm.completion(**kwargs)

    assert _sent_models(fake_llm, "/chat/completions") == ["gpt-fake-nano"]
    [call] = controlled.events("post_call")
    assert call["model_requested"] == LITELLM_OPENAI.model


def test_a_model_of_another_provider_is_refused_once_and_the_call_keeps_its_model(
        controlled: ControlledSensor, fake_llm: FakeLLM, caplog: pytest.LogCaptureFixture) -> None:
    # given: an Anthropic model as the degrade target of OpenAI calls
    directive_id = _degraded(controlled, fake_llm, "claude-3-5-haiku-latest")

    # when: two calls
    with caplog.at_level(logging.WARNING, logger="flightdeck_sensor"):
        for _ in range(2):
            oai.sync_client(fake_llm).chat.completions.create(model=oai.MODEL,
                                                              messages=oai.MESSAGES)

    # then: sent as asked, one warning, one directive_result error
    assert _sent_models(fake_llm, "/chat/completions") == [oai.MODEL, oai.MODEL]
    refusals = [r for r in caplog.records if "cannot degrade" in r.getMessage()]
    assert len(refusals) == 1
    errors = [e for e in controlled.events("directive_result")
              if e["directive_id"] == directive_id and e["directive_status"] == "error"]
    assert len(errors) == 1 and "claude-3-5-haiku-latest" in errors[0]["error"]


def test_a_degrade_without_a_model_is_refused_and_changes_nothing(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    controlled.init()
    oai.sync_client(fake_llm).embeddings.create(model=oai.EMBEDDING_MODEL, input="warm up")
    directive_id = controlled.deliver("degrade")

    oai.sync_client(fake_llm).chat.completions.create(model=oai.MODEL, messages=oai.MESSAGES)

    assert _sent_models(fake_llm, "/chat/completions") == [oai.MODEL]
    [result] = [e for e in controlled.events("directive_result")
                if e["directive_id"] == directive_id]
    assert result["directive_status"] == "error"
