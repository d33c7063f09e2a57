"""The OpenAI Agents SDK (openai-agents), as its users run it: ``Runner.run_streamed``
with the default Responses model streams through ``with_streaming_response``;
its Chat Completions model passes ``stream_options=omit``. Both against the
fake provider, every event through the real collector."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from fakes.fake_llm import openai_routes as routes
from fixtures.openai_sdk import (
    MODEL,
    PROMPT,
    SERVED_MODEL,
    async_client,
    last_body,
    response_event_count,
)

if importlib.util.find_spec("agents") is None:  # found, not imported (see the fixture)
    pytest.skip("openai-agents is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def sdk() -> Iterator[SimpleNamespace]:
    """The Agents SDK, imported for this module only: loaded, it is the process's
    framework, and other modules' tests expect theirs (langchain) or none."""
    import agents
    from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
    from agents.models.openai_provider import OpenAIProvider

    agents.set_tracing_disabled(True)  # it would export traces to OpenAI; only loopback here
    yield SimpleNamespace(agents=agents, chat_model=OpenAIChatCompletionsModel,
                          provider=OpenAIProvider)
    agents.set_tracing_disabled(False)
    for name in [name for name in sys.modules if name == "agents" or name.startswith("agents.")]:
        del sys.modules[name]


def _agent(sdk: SimpleNamespace, model: Any = MODEL) -> Any:
    return sdk.agents.Agent(name="assistant", instructions="Answer briefly", model=model)


async def _run_streamed(sdk: SimpleNamespace, fake: Any, agent: Any) -> Any:
    provider = sdk.provider(openai_client=async_client(fake))
    result = sdk.agents.Runner.run_streamed(
        agent, input=PROMPT, run_config=sdk.agents.RunConfig(model_provider=provider))
    async for _ in result.stream_events():
        pass
    return result


async def test_streamed_run_of_the_responses_model_is_recorded_as_a_stream(
        sdk: SimpleNamespace, sensor: Any, fake_llm: Any) -> None:
    # given
    sensor.init()

    # when
    result = await _run_streamed(sdk, fake_llm, _agent(sdk))

    # then: the answer came through; the call has usage, served model and stream timings
    assert result.final_output == f"You said: {PROMPT}"
    body = last_body(fake_llm, routes.RESPONSES_PATH)
    usage = routes.response_answer(body)["usage"]
    (post,) = sensor.events("post_call")
    assert post["model"] == SERVED_MODEL
    assert (post["tokens_input"], post["tokens_output"]) == (usage["input_tokens"],
                                                             usage["output_tokens"])
    assert post["streaming"]["final_outcome"] == "completed"
    assert post["streaming"]["chunk_count"] == response_event_count(body)
    assert 0 <= post["streaming"]["ttft_ms"] <= post["latency_ms"]
    assert post["framework"] == "openai_agents"


async def test_streamed_run_dropped_mid_stream_is_a_stream_error(
        sdk: SimpleNamespace, sensor: Any, fake_llm: Any) -> None:
    # given: the provider drops the connection after three events
    sensor.init()
    fake_llm.script_stream_drop(routes.RESPONSES_PATH, after_events=3)

    # when
    with pytest.raises(Exception) as raised:
        await _run_streamed(sdk, fake_llm, _agent(sdk))

    # then: the run failed, and so did the call, as a stream error
    assert not isinstance(raised.value, AssertionError)
    assert sensor.events("post_call") == []
    (error,) = sensor.events("llm_error")
    assert error["error"]["error_type"] == "stream_error"
    assert error["streaming"]["chunk_count"] == 3


async def test_chat_completions_model_gets_injected_stream_usage(
        sdk: SimpleNamespace, sensor: Any, fake_llm: Any) -> None:
    # given: the opt-in is on; the Agents SDK passes stream_options=omit
    sensor.init(inject_stream_usage=True)
    model = sdk.chat_model(model=MODEL, openai_client=async_client(fake_llm))

    # when
    result = await _run_streamed(sdk, fake_llm, _agent(sdk, model))

    # then: usage was asked for on the wire and recorded; the run saw its answer
    assert result.final_output == f"You said: {PROMPT}"
    body = last_body(fake_llm, routes.CHAT_PATH)
    assert body["stream_options"] == {"include_usage": True}
    (post,) = sensor.events("post_call")
    assert post["usage_source"] == "reported"
    assert post["tokens_output"] == routes.words(f"You said: {PROMPT}")


async def test_session_start_lists_openai_agents_with_its_version(
        sdk: SimpleNamespace, sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    await _run_streamed(sdk, fake_llm, _agent(sdk))
    (start,) = sensor.events("session_start")
    assert f"openai_agents/{sdk.agents.__version__}" in start["context"]["frameworks"]
