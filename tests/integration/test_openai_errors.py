"""OpenAI API errors: an llm_error with the classified facts, and the SDK's
exception reaching the user exactly as without the sensor."""

from __future__ import annotations

import asyncio
import traceback
from typing import Any

import openai
import pytest

from fakes.fake_llm import openai_routes as routes
from fixtures.openai_sdk import MESSAGES, async_client, sync_client

CASES = {
    # model -> (exception class, error_type, http_status, retry_after, is_retryable)
    "fake-error-429": (openai.RateLimitError, "rate_limit", 429, 7.0, True),
    "fake-error-429-insufficient_quota": (openai.RateLimitError, "quota_exceeded", 429, 7.0,
                                          False),
    "fake-error-401": (openai.AuthenticationError, "authentication", 401, None, False),
    "fake-error-404": (openai.NotFoundError, "not_found", 404, None, False),
    "fake-error-400-context_length_exceeded": (openai.BadRequestError, "context_overflow", 400,
                                               None, False),
    "fake-error-500": (openai.InternalServerError, "api_error", 500, None, True),
}


def _call(fake: Any, model: str, mode: str) -> None:
    if mode == "sync":
        sync_client(fake).chat.completions.create(model=model, messages=MESSAGES)
    else:
        asyncio.run(async_client(fake).chat.completions.create(model=model, messages=MESSAGES))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("model", list(CASES))
def test_api_error_is_reported_classified_and_reraised(
        sensor: Any, fake_llm: Any, model: str, mode: str) -> None:
    exc_type, error_type, status, retry_after, retryable = CASES[model]
    # given
    sensor.init()

    # when
    with pytest.raises(exc_type) as raised:
        _call(fake_llm, model, mode)

    # then: the SDK's exception, and one pre_call + llm_error
    assert type(raised.value) is exc_type
    assert raised.value.status_code == status
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "llm_error"]
    error = events[1]
    assert error["model"] == model
    assert error["retry_attempt"] == 1
    assert error["error"]["error_type"] == error_type
    assert error["error"]["http_status"] == status
    assert error["error"]["retry_after"] == retry_after
    assert error["error"]["is_retryable"] is retryable
    assert error["error"]["request_id"] == f"req_error_{status}"
    assert error["error"]["error_message"] == exc_type.__name__  # no message text: capture off


def test_sdk_retries_are_one_call_reporting_the_attempt_that_failed(
        sensor: Any, fake_llm: Any) -> None:
    # given: a client that retries once, and a 500 each time (no wait between tries)
    sensor.init()
    fake_llm.script(routes.CHAT_PATH, routes.error_reply(500, headers={"retry-after-ms": "1"}),
                    times=2)

    # when
    with pytest.raises(openai.InternalServerError):
        sync_client(fake_llm, max_retries=1).chat.completions.create(
            model="gpt-fake", messages=MESSAGES)

    # then: two requests went out, one call was reported
    assert len([r for r in fake_llm.requests if r.path == routes.CHAT_PATH]) == 2
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "llm_error"]
    assert events[1]["retry_attempt"] == 2


def _user_frames(exc: BaseException) -> list[tuple[str, str]]:
    """(function, line) of each traceback frame in this test file: the user's code."""
    return [(frame.name, frame.line or "") for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename == __file__]


def test_exception_is_identical_with_and_without_the_sensor(sensor: Any, fake_llm: Any) -> None:
    # given: the same failing call, first without the sensor, then with it
    with pytest.raises(openai.RateLimitError) as without:
        _call(fake_llm, "fake-error-429", "sync")
    sensor.init()
    with pytest.raises(openai.RateLimitError) as with_sensor:
        _call(fake_llm, "fake-error-429", "sync")

    # then: same type, message, body, and the same frames of the user's code
    assert type(with_sensor.value) is type(without.value)
    assert str(with_sensor.value) == str(without.value)
    assert with_sensor.value.body == without.value.body
    assert _user_frames(with_sensor.value) == _user_frames(without.value)


def test_error_message_is_sent_only_with_prompt_capture(sensor: Any, fake_llm: Any) -> None:
    sensor.init(capture_prompts=True)
    with pytest.raises(openai.RateLimitError):
        _call(fake_llm, "fake-error-429", "sync")
    error = sensor.events("llm_error")[0]
    assert "Fake error 429" in error["error"]["error_message"]


def test_connection_refused_is_reported_and_reraised(sensor: Any) -> None:
    # given: nothing listens on that port
    sensor.init()
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0)

    # when
    with pytest.raises(openai.APIConnectionError):
        client.embeddings.create(model="text-embedding-fake", input="hello")

    # then
    events = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "llm_error"]
    assert events[1]["error"]["http_status"] is None
    assert events[1]["error"]["is_retryable"] is True
