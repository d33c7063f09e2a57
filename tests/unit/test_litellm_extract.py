"""The litellm extractors read whatever shape they are given without raising,
and never report negative tokens (issue 4, rule 9)."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.litellm_calls import litellm
from flightdeck_sensor.interceptors import _litellm
from flightdeck_sensor.interceptors._core import Outcome

CHAT = _litellm._ENTRIES[0]
EMBEDDING = _litellm._ENTRIES[2]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["usage", "choices", "model", "id", "data", "message", "delta",
                         "finish_reason", "prompt_tokens", "completion_tokens", "tool_calls",
                         "function", "name", "embedding", "prompt_tokens_details",
                         "cached_tokens", "cache_read_input_tokens", "text"]),
        inner, max_size=6),
    max_leaves=20)

token_counts = st.integers(min_value=0, max_value=10**7)


def assert_sane(outcome: Outcome) -> None:
    for value in (outcome.tokens_input, outcome.tokens_output, outcome.tokens_cache_read,
                  outcome.tokens_cache_creation):
        assert value is None or (isinstance(value, int) and value >= 0)
    assert outcome.usage_source in ("reported", "estimated", "absent")


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_response_shape_gives_an_outcome(response: Any) -> None:
    for entry in (CHAT, EMBEDDING):
        assert_sane(_litellm.LiteLLMAdapter("openai", entry).response_outcome(response))


@settings(max_examples=100, deadline=None)
@given(prompt=token_counts, completion=token_counts, cached=token_counts)
def test_model_response_tokens_are_read_as_reported(prompt: int, completion: int,
                                                    cached: int) -> None:
    response = litellm.ModelResponse(
        model="gpt-4o-mini", choices=[{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "hi"}}],
        usage={"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion,
               "prompt_tokens_details": {"cached_tokens": cached}})

    outcome = _litellm.LiteLLMAdapter("openai", CHAT).response_outcome(response)

    assert (outcome.tokens_input, outcome.tokens_output) == (prompt, completion)
    assert outcome.tokens_cache_read == cached
    assert outcome.usage_source == "reported"
    assert outcome.stop_reason == "stop"


def test_negative_or_missing_usage_is_dropped_not_reported() -> None:
    response = {"model": "m", "usage": {"prompt_tokens": -3, "completion_tokens": None}}

    outcome = _litellm.LiteLLMAdapter("openai", CHAT).response_outcome(response)

    assert (outcome.tokens_input, outcome.tokens_output) == (None, None)
    assert outcome.usage_source == "absent"


@settings(max_examples=200, deadline=None)
@given(st.lists(json_values, max_size=6))
def test_any_chunk_sequence_gives_an_outcome(chunks: list[Any]) -> None:
    accumulator = _litellm.StreamAccumulator(capture=True)
    for chunk in chunks:
        # a chunk of the wrong shape may raise: the core counts it and goes on
        with contextlib.suppress(Exception):
            accumulator.add(chunk)

    assert_sane(accumulator.outcome())


def test_stream_chunks_give_model_stop_reason_tools_and_usage() -> None:
    from litellm.types.utils import ModelResponseStream

    accumulator = _litellm.StreamAccumulator(capture=True)
    tool = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": '}}
    for chunk in (
        ModelResponseStream(id="c1", model="m", choices=[
            {"index": 0, "delta": {"role": "assistant", "tool_calls": [tool]}}]),
        ModelResponseStream(id="c1", model="m", choices=[
            {"index": 0, "delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": '"x"}'}}]}}]),
        ModelResponseStream(id="c1", model="m", choices=[
            {"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        ModelResponseStream(id="c1", model="m", choices=[],
                            usage={"prompt_tokens": 7, "completion_tokens": 2,
                                   "total_tokens": 9}),
    ):
        accumulator.add(chunk)

    outcome = accumulator.outcome()

    assert outcome.model == "m"
    assert outcome.stop_reason == "tool_calls"
    assert outcome.tool_calls == [("lookup", '{"q": "x"}')]
    assert (outcome.tokens_input, outcome.tokens_output, outcome.usage_source) == (
        7, 2, "reported")
    assert outcome.provider_metadata == {"via": "litellm", "response_id": "c1"}


@settings(max_examples=300, deadline=None)
@given(model=json_values, provider=st.none() | st.text(max_size=12))
def test_provider_resolution_never_raises(model: Any, provider: str | None) -> None:
    kwargs = {} if provider is None else {"custom_llm_provider": provider}

    resolved = _litellm.resolve_provider(model, kwargs)

    assert isinstance(resolved, str) and resolved


def test_provider_is_the_vendor_litellm_routes_to() -> None:
    assert _litellm.resolve_provider("openai/gpt-4o-mini", {}) == "openai"
    assert _litellm.resolve_provider("anthropic/claude-x", {}) == "anthropic"
    assert _litellm.resolve_provider("gpt-4o-mini", {}) == "openai"
    assert _litellm.resolve_provider("claude-sonnet-4-5", {}) == "anthropic"
    assert _litellm.resolve_provider("gpt-3.5-turbo-instruct", {}) == "openai"
    assert _litellm.resolve_provider("my-model", {"custom_llm_provider": "azure"}) == "azure"
    assert _litellm.resolve_provider("no-such-model", {}) == "litellm"
    assert _litellm.resolve_provider("not-a-provider/model", {}) == "litellm"


class OddError(Exception):
    def __init__(self, **attributes: Any) -> None:
        super().__init__("odd")
        for name, value in attributes.items():
            setattr(self, name, value)


@settings(max_examples=200, deadline=None)
@given(status_code=json_values, code=json_values, body=json_values, headers=json_values,
       llm_provider=json_values)
def test_error_facts_from_any_exception_shape(status_code: Any, code: Any, body: Any,
                                              headers: Any, llm_provider: Any) -> None:
    exc = OddError(status_code=status_code, code=code, body=body,
                   litellm_response_headers=headers, llm_provider=llm_provider)

    facts = _litellm.litellm_error_facts(exc, "litellm")

    assert facts.error_type
    assert facts.retry_after is None or facts.retry_after >= 0


def test_litellm_rate_limit_error_facts() -> None:
    import httpx

    exc = litellm.RateLimitError(
        message="slow down", llm_provider="anthropic", model="claude-x",
        response=httpx.Response(429, request=httpx.Request("POST", "http://x"),
                                headers={"retry-after": "3", "request-id": "req_9"}))

    facts = _litellm.litellm_error_facts(exc, "anthropic")

    assert (facts.error_type, facts.http_status, facts.retry_after, facts.request_id) == (
        "rate_limit", 429, 3.0, "req_9")
    assert facts.provider_error_code is None or not facts.provider_error_code.isdigit()
