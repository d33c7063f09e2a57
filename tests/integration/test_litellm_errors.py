"""litellm's exceptions reach the caller exactly as without the sensor, after an
``llm_error`` event that classifies them.
"""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM, Reply, anthropic_routes, openai_routes
from fixtures.litellm_calls import ANTHROPIC, OPENAI, TARGETS, Target, call_kwargs, litellm
from fixtures.sensor import SensorHarness

by_name = pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)


def error_reply(target: Target, status: int, retry_after: str | None = None) -> Reply:
    if target is OPENAI:
        reply = openai_routes.error_reply(status)
        if retry_after is not None:
            reply.headers["retry-after"] = retry_after
        else:
            reply.headers.pop("retry-after", None)
        return reply
    return anthropic_routes.error_reply(status, retry_after=retry_after,
                                        request_id="req_scripted")


def failed_call(fake: FakeLLM, target: Target, reply: Reply, mode: str = "sync",
                **extra: Any) -> BaseException:
    fake.script(target.path, reply)
    kwargs = call_kwargs(fake, target, **extra)
    with pytest.raises(Exception) as caught:
        if mode == "sync":
            litellm.completion(**kwargs)
        else:
            asyncio.run(litellm.acompletion(**kwargs))
    return caught.value


def the_error_event(sensor: SensorHarness) -> dict[str, Any]:
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "llm_error"]
    return events[1]


@by_name
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("status", "error_type"), [
    (429, "rate_limit"), (401, "authentication"), (500, "api_error"), (400, "invalid_request"),
])
def test_provider_error_is_reraised_unchanged_after_an_llm_error_event(
        sensor: SensorHarness, fake_llm: FakeLLM, target: Target, mode: str,
        status: int, error_type: str) -> None:
    without_sensor = failed_call(fake_llm, target, error_reply(target, status), mode)
    sensor.init()

    with_sensor = failed_call(fake_llm, target, error_reply(target, status), mode)

    assert type(with_sensor) is type(without_sensor)
    assert type(with_sensor).__module__ == "litellm.exceptions"
    assert with_sensor.status_code == without_sensor.status_code == status  # type: ignore[attr-defined]
    assert str(with_sensor) == str(without_sensor)
    event = the_error_event(sensor)
    assert event["provider"] == target.name
    assert event["model"] == target.model
    assert event["error"]["error_type"] == error_type
    assert event["error"]["http_status"] == status
    assert event["error"]["provider"] == target.name
    assert event["error"]["error_message"] == type(with_sensor).__name__  # no prompt capture
    assert event["terminal"] is True


@by_name
def test_rate_limit_reports_retry_after_and_request_id(sensor: SensorHarness,
                                                      fake_llm: FakeLLM, target: Target) -> None:
    sensor.init()

    failed_call(fake_llm, target, error_reply(target, 429, retry_after="7"))

    error = the_error_event(sensor)["error"]
    assert error["retry_after"] == 7.0
    assert error["is_retryable"] is True
    assert error["request_id"]
    assert not (error["provider_error_code"] or "x").isdigit()  # not litellm's echoed status


def test_context_window_error_is_classified_as_context_overflow(sensor: SensorHarness,
                                                                fake_llm: FakeLLM) -> None:
    sensor.init()

    raised = failed_call(fake_llm, OPENAI,
                         openai_routes.error_reply(
                             400, "context_length_exceeded",
                             "This model's maximum context length is 8192 tokens."))

    assert isinstance(raised, litellm.ContextWindowExceededError)
    assert the_error_event(sensor)["error"]["error_type"] == "context_overflow"


def test_traceback_still_shows_the_callers_frame(sensor: SensorHarness,
                                                 fake_llm: FakeLLM) -> None:
    sensor.init()

    raised = failed_call(fake_llm, ANTHROPIC, error_reply(ANTHROPIC, 500))

    frames = [frame.name for frame in traceback.extract_tb(raised.__traceback__)]
    assert "failed_call" in frames


def test_error_message_is_sent_only_with_prompt_capture(sensor: SensorHarness,
                                                        fake_llm: FakeLLM) -> None:
    sensor.init(capture_prompts=True)

    raised = failed_call(fake_llm, ANTHROPIC, error_reply(ANTHROPIC, 400))

    assert the_error_event(sensor)["error"]["error_message"] == str(raised)[:2000]


@by_name
def test_connection_refused_is_an_api_error_event(sensor: SensorHarness, target: Target) -> None:
    sensor.init()
    kwargs = {"model": target.model, "messages": [{"role": "user", "content": "hi"}],
              "api_base": "http://127.0.0.1:9" + target.base_suffix, "api_key": "sk-test",
              "max_retries": 0}

    with pytest.raises(Exception) as caught:
        litellm.completion(**kwargs)

    assert type(caught.value).__module__ == "litellm.exceptions"
    error = the_error_event(sensor)["error"]
    assert error["error_type"] == "api_error"
    assert error["is_retryable"] is True
