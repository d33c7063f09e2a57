"""The OpenAI extractors read real SDK objects exactly, and never raise or
produce negative numbers on shapes they do not know (rule 9)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from fakes.fake_llm import openai_routes as routes
from flightdeck_sensor.interceptors._core import Outcome
from flightdeck_sensor.interceptors._openai_read import (
    ChatStreamAccumulator,
    ResponsesStreamAccumulator,
    as_attributes,
    chat_outcome,
    embeddings_outcome,
    responses_outcome,
    text_completion_outcome,
)

BODY: dict[str, Any] = {"model": "gpt-fake", "prompt_cache_key": "k", "messages": [
    {"role": "system", "content": "Be brief"}, {"role": "user", "content": "hello there"}]}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}}]


def test_chat_completion_numbers_are_read_from_the_sdk_object() -> None:
    completion = ChatCompletion.model_validate(routes.chat_completion(BODY))
    outcome = chat_outcome(completion)
    assert (outcome.model, outcome.tokens_input, outcome.tokens_output) == (
        "gpt-fake-2025-01-01", 4, 4)
    assert outcome.tokens_cache_read == 2
    assert outcome.usage_source == "reported"
    assert outcome.stop_reason == "stop"
    assert outcome.content == "You said: hello there"


def test_chat_completion_dict_from_a_raw_body_reads_the_same() -> None:
    body = routes.chat_completion({**BODY, "tools": TOOLS})
    from_object = chat_outcome(ChatCompletion.model_validate(body))
    from_dict = chat_outcome(as_attributes(body))
    assert from_dict.tool_calls == from_object.tool_calls == [("lookup", '{"q": "hello there"}')]
    assert (from_dict.tokens_input, from_dict.tokens_output) == (
        from_object.tokens_input, from_object.tokens_output)


def test_chat_stream_chunks_fold_into_usage_and_tool_calls() -> None:
    body = {**BODY, "tools": TOOLS, "stream": True, "stream_options": {"include_usage": True}}
    accumulator = ChatStreamAccumulator(capture=False)
    for _, data in routes.chat_stream_events(body)[:-1]:
        accumulator.add(ChatCompletionChunk.model_validate(data))
    outcome = accumulator.outcome()
    assert outcome.tool_calls == [("lookup", '{"q": "hello there"}')]
    assert outcome.stop_reason == "tool_calls"
    assert (outcome.tokens_input, outcome.tokens_output) == (4, 3)


def test_chat_stream_without_usage_reports_absent_not_zero() -> None:
    accumulator = ChatStreamAccumulator(capture=True)
    for _, data in routes.chat_stream_events({**BODY, "stream": True})[:-1]:
        accumulator.add(ChatCompletionChunk.model_validate(data))
    outcome = accumulator.outcome()
    assert outcome.usage_source == "absent"
    assert outcome.tokens_input is None and outcome.tokens_output is None
    assert outcome.content == "You said: hello there"


def test_responses_stream_takes_usage_from_the_completed_event() -> None:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    body = {"model": "gpt-fake", "input": "hi you", "instructions": "be nice", "stream": True}
    accumulator = ResponsesStreamAccumulator()
    for _, data in routes.response_stream_events(body):
        accumulator.add(adapter.validate_python(data))
    outcome = accumulator.outcome()
    assert (outcome.tokens_input, outcome.tokens_output) == (4, 4)
    assert outcome.stop_reason == "completed"


def test_responses_incomplete_reports_its_reason() -> None:
    body = {"model": "gpt-fake", "input": "hi you there", "max_output_tokens": 2}
    outcome = responses_outcome(Response.model_validate(routes.response_answer(body)))
    assert outcome.stop_reason == "max_output_tokens"
    assert outcome.tokens_output == 2


def test_embeddings_dimensions_from_floats_and_from_raw_base64() -> None:
    raw = routes.embeddings(routes.Request("POST", routes.EMBEDDINGS_PATH, {}, {
        "model": "e", "input": ["a b", "c"], "dimensions": 5, "encoding_format": "base64"})).body
    assert embeddings_outcome(as_attributes(raw)).output_dimensions == (2, 5)
    floats = {**raw, "data": [{**item, "embedding": [0.0] * 5} for item in raw["data"]]}
    assert embeddings_outcome(CreateEmbeddingResponse.model_validate(floats)).output_dimensions == (
        2, 5)
    assert embeddings_outcome(as_attributes(raw)).tokens_input == 3


def test_legacy_completion_reads_text_and_usage() -> None:
    body = {"model": "gpt-fake", "prompt": "say this", "max_tokens": 2}
    text, finish = routes.text_completion(body)
    completion = Completion.model_validate({
        "id": "c", "object": "text_completion", "created": 0, "model": "gpt-fake",
        "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}})
    outcome = text_completion_outcome(completion)
    assert (outcome.stop_reason, outcome.tokens_output, outcome.content) == ("length", 2, text)


# --------------------------------------------------------------------------
# Random and missing shapes.

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**6, max_value=10**6),
                    st.floats(allow_nan=True), st.text(max_size=8))
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from([
                                "model", "usage", "choices", "message", "content", "tool_calls",
                                "function", "name", "arguments", "finish_reason", "prompt_tokens",
                                "completion_tokens", "input_tokens", "output_tokens",
                                "prompt_tokens_details", "input_tokens_details", "cached_tokens",
                                "cache_write_tokens", "output", "type", "data", "embedding",
                                "status", "incomplete_details", "reason", "id", "text"]),
                                inner, max_size=6)),
    max_leaves=25)


def _assert_sane(outcome: Outcome) -> None:
    for value in (outcome.tokens_input, outcome.tokens_output, outcome.tokens_cache_read,
                  outcome.tokens_cache_creation):
        assert value is None or (isinstance(value, int) and value >= 0)
    if outcome.output_dimensions is not None:
        assert all(n > 0 for n in outcome.output_dimensions)
    assert outcome.usage_source in ("reported", "absent")


@settings(max_examples=300, deadline=None)
@given(json_like)
def test_extractors_never_raise_on_random_shapes(shape: Any) -> None:
    for extract in (chat_outcome, responses_outcome, embeddings_outcome, text_completion_outcome):
        _assert_sane(extract(shape))
        _assert_sane(extract(as_attributes(shape)))  # also: an SDK model with odd fields
