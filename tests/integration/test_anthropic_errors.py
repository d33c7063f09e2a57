"""Anthropic API errors: the SDK's exception reaches the user unchanged, after
one llm_error event that classifies it."""

from __future__ import annotations

import socket
import traceback
from typing import Any

import anthropic
import httpx2
import pytest

import flightdeck_sensor
from fakes.fake_llm import Reply
from fakes.fake_llm import anthropic_routes as routes
from fixtures.anthropic_sdk import MESSAGES, MODEL, async_client, sync_client

ARGS: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": MESSAGES}


# A connection dropped mid-stream reaches the caller as httpx2's RemoteProtocolError
# (anthropic < 2.17) or wrapped in the SDK's APIConnectionError (2.17 on).
CONNECTION_DROPPED = (httpx2.RemoteProtocolError, anthropic.APIConnectionError)


def _error_events(sensor: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = sensor.call_events()
    assert [e["event_type"] for e in events] == ["pre_call", "llm_error"]
    return events


@pytest.mark.parametrize(("status", "exception", "error_type", "retryable"), [
    (429, anthropic.RateLimitError, "rate_limit", True),
    (529, anthropic.OverloadedError, "overloaded", True),
    (500, anthropic.InternalServerError, "api_error", True),
    (401, anthropic.AuthenticationError, "authentication", False),
    (400, anthropic.BadRequestError, "invalid_request", False),
])
def test_api_error_is_reported_then_reraised(sensor: Any, fake_llm: Any, status: int,
                                             exception: type[anthropic.APIStatusError],
                                             error_type: str,
                                             retryable: bool) -> None:
    # given
    sensor.init()
    fake_llm.script(routes.MESSAGES_PATH, routes.error_reply(
        status, "secret prompt words in the message", retry_after="7", request_id="req_err_1"))
    client = sync_client(fake_llm)
    # when
    with pytest.raises(exception) as raised:
        client.messages.create(**ARGS)
    # then
    assert raised.value.status_code == status
    _, error_event = _error_events(sensor)
    error = error_event["error"]
    assert error == {
        "error_type": error_type, "provider": "anthropic", "http_status": status,
        "provider_error_code": routes.ERROR_TYPES[status], "error_message": exception.__name__,
        "request_id": "req_err_1", "retry_after": 7.0, "is_retryable": retryable,
    }
    assert error_event["model"] == MODEL
    assert error_event["retry_attempt"] == 1
    assert error_event["terminal"] is True
    assert "secret" not in str(error_event)


async def test_async_rate_limit_is_reported_then_reraised(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    fake_llm.script(routes.MESSAGES_PATH, routes.error_reply(429, retry_after="3"))
    with pytest.raises(anthropic.RateLimitError):
        await async_client(fake_llm).messages.create(**ARGS)
    _, error_event = _error_events(sensor)
    assert error_event["error"]["error_type"] == "rate_limit"
    assert error_event["error"]["retry_after"] == 3.0


def test_error_message_is_sent_only_with_prompt_capture(sensor: Any, fake_llm: Any) -> None:
    sensor.init(capture_prompts=True)
    fake_llm.script(routes.MESSAGES_PATH, routes.error_reply(400, "prompt is too long"))
    with pytest.raises(anthropic.BadRequestError):
        sync_client(fake_llm).messages.create(**ARGS)
    _, error_event = _error_events(sensor)
    assert "prompt is too long" in error_event["error"]["error_message"]


def test_sdk_retries_are_one_call_reporting_the_final_attempt(sensor: Any, fake_llm: Any) -> None:
    # given the SDK's default of two retries, and a provider that keeps refusing
    sensor.init()
    fake_llm.script(routes.MESSAGES_PATH, routes.error_reply(429, retry_after="0.01"), times=3)
    client = anthropic.Anthropic(base_url=fake_llm.url, api_key="sk-ant-test")
    # when
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(**ARGS)
    # then the user made one call: one pair, reporting the third attempt that gave up
    assert len([r for r in fake_llm.requests if r.path == routes.MESSAGES_PATH]) == 3
    _, error_event = _error_events(sensor)
    assert error_event["retry_attempt"] == 3
    assert error_event["terminal"] is True


def test_sdk_retry_that_succeeds_is_one_successful_call(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    fake_llm.script(routes.MESSAGES_PATH, routes.error_reply(529, retry_after="0.01"))
    client = anthropic.Anthropic(base_url=fake_llm.url, api_key="sk-ant-test")
    client.messages.create(**ARGS)
    assert len([r for r in fake_llm.requests if r.path == routes.MESSAGES_PATH]) == 2
    assert [e["event_type"] for e in sensor.call_events()] == ["pre_call", "post_call"]


def test_unreachable_server_is_a_connection_error(sensor: Any) -> None:
    sensor.init()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{dead_port}", api_key="k",
                                 max_retries=0)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(**ARGS)
    _, error_event = _error_events(sensor)
    assert error_event["error"]["error_type"] == "api_error"
    assert error_event["error"]["http_status"] is None


def test_timeout_is_reported_as_timeout(sensor: Any, fake_llm: Any) -> None:
    sensor.init()
    fake_llm.script(routes.MESSAGES_PATH, Reply(delay=1.0, body={}))
    client = sync_client(fake_llm, timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(**ARGS)
    _, error_event = _error_events(sensor)
    assert error_event["error"]["error_type"] == "timeout"


@pytest.mark.parametrize("entry_point", ["create_stream", "stream_text_stream"])
def test_connection_dropped_mid_stream_is_a_stream_error_with_partial_usage(
        sensor: Any, fake_llm: Any, entry_point: str) -> None:
    # given a stream cut after message_start, content_block_start and one delta
    sensor.init()
    fake_llm.script_stream_drop(routes.MESSAGES_PATH, after_events=3)
    client = sync_client(fake_llm)
    # when
    with pytest.raises(CONNECTION_DROPPED):
        if entry_point == "create_stream":
            for _ in client.messages.create(**ARGS, stream=True):
                pass
        else:
            with client.messages.stream(**ARGS) as stream:
                for _ in stream.text_stream:
                    pass
    # then
    _, error_event = _error_events(sensor)
    assert error_event["error"]["error_type"] == "stream_error"
    assert error_event["error"]["is_retryable"] is True  # a dropped connection, either way
    assert error_event["streaming"]["final_outcome"] == "aborted"
    assert error_event["streaming"]["chunk_count"] == 3
    body = routes.input_usage(fake_llm.requests[-1].json)
    assert error_event["tokens_input"] == body["input_tokens"]  # from message_start
    assert error_event["usage_source"] == "reported"


async def test_async_connection_dropped_mid_stream_is_a_stream_error(sensor: Any,
                                                                     fake_llm: Any) -> None:
    sensor.init()
    fake_llm.script_stream_drop(routes.MESSAGES_PATH, after_events=2)
    client = async_client(fake_llm)
    with pytest.raises(CONNECTION_DROPPED):
        async with client.messages.stream(**ARGS) as stream:
            async for _ in stream:
                pass
    _, error_event = _error_events(sensor)
    assert error_event["error"]["error_type"] == "stream_error"
    assert error_event["streaming"]["chunk_count"] == 2


def test_error_event_mid_stream_is_a_stream_error(sensor: Any, fake_llm: Any) -> None:
    # given the API's `error` event after the stream started (overloaded mid-answer)
    sensor.init()
    body = {**ARGS, "stream": True}
    events = [*routes.message_events(body, MODEL)[:4], routes.stream_error_event()]
    fake_llm.script(routes.MESSAGES_PATH, routes.stream_reply(events))
    client = sync_client(fake_llm)
    with pytest.raises(anthropic.APIStatusError) as raised:
        for _ in client.messages.create(**ARGS, stream=True):
            pass
    assert "overloaded_error" in str(raised.value)
    _, error_event = _error_events(sensor)
    assert error_event["error"]["error_type"] == "stream_error"
    assert error_event["error"]["provider_error_code"] == "overloaded_error"


def _user_frames(exc: BaseException) -> list[tuple[str, str]]:
    """Traceback frames outside the sensor's wrapping layer (ours and wrapt's)."""
    return [(frame.filename, frame.name) for frame in traceback.extract_tb(exc.__traceback__)
            if "flightdeck_sensor" not in frame.filename and "wrapt" not in frame.filename]


def _raise_rate_limit(fake: Any) -> anthropic.RateLimitError:
    fake.script(routes.MESSAGES_PATH, routes.error_reply(429))
    try:
        sync_client(fake).messages.create(**ARGS)
    except anthropic.RateLimitError as exc:
        return exc
    raise AssertionError("no exception")


def test_exception_is_the_sdks_own_with_the_same_traceback(sensor: Any, fake_llm: Any) -> None:
    # given the exception the SDK raises without the sensor
    flightdeck_sensor.unpatch()
    without = _raise_rate_limit(fake_llm)
    # when the same call fails with the sensor on
    sensor.init()
    with_sensor = _raise_rate_limit(fake_llm)
    # then same type, same message, same body, same frames of user and SDK code
    assert type(with_sensor) is type(without)
    assert str(with_sensor) == str(without)
    assert with_sensor.body == without.body
    assert _user_frames(with_sensor) == _user_frames(without)
    assert len(sensor.events("llm_error")) == 1
