"""The Anthropic extractors never raise and never report negative tokens,
whatever shape a response or stream event has."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import anthropic
from hypothesis import given
from hypothesis import strategies as st

from flightdeck_sensor.interceptors._anthropic import StreamAccumulator, message_outcome

_scalars = st.one_of(st.none(), st.integers(min_value=-10**6, max_value=10**9), st.text(max_size=8),
                     st.booleans(), st.floats(allow_nan=True))
_usage = st.builds(SimpleNamespace, **{name: _scalars for name in (
    "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")})
_blocks = st.lists(st.one_of(_scalars, st.builds(
    SimpleNamespace, type=st.sampled_from(["text", "tool_use", "server_tool_use", "other", None]),
    name=_scalars, input=st.one_of(_scalars, st.dictionaries(st.text(max_size=4), _scalars)),
    text=_scalars)), max_size=4)
_messages = st.one_of(
    _scalars,
    st.builds(SimpleNamespace, usage=st.one_of(st.none(), _usage, _scalars), model=_scalars,
              stop_reason=_scalars, id=_scalars, content=st.one_of(_blocks, _scalars)),
)
_events = st.one_of(
    _scalars,
    st.builds(SimpleNamespace, type=st.sampled_from([
        "message_start", "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop", "ping", "text", None]),
        message=_messages, index=st.one_of(st.integers(0, 3), _scalars, st.lists(st.integers())),
        content_block=st.one_of(_blocks, _scalars, st.builds(
            SimpleNamespace, type=st.sampled_from(["text", "tool_use", None]), name=_scalars)),
        delta=st.one_of(_scalars, st.builds(SimpleNamespace, text=_scalars,
                                            partial_json=_scalars, stop_reason=_scalars)),
        usage=st.one_of(_usage, _scalars)),
)


def _assert_sane(outcome: Any) -> None:
    for value in (outcome.tokens_input, outcome.tokens_output, outcome.tokens_cache_read,
                  outcome.tokens_cache_creation):
        assert value is None or (isinstance(value, int) and value >= 0)
    assert outcome.model is None or isinstance(outcome.model, str)
    for name, _ in outcome.tool_calls:
        assert isinstance(name, str)


@given(_messages)
def test_message_outcome_never_raises_nor_goes_negative(message: Any) -> None:
    _assert_sane(message_outcome(message))


@given(st.lists(_events, max_size=12), st.booleans())
def test_stream_accumulator_never_raises_nor_goes_negative(events: list[Any],
                                                           capture: bool) -> None:
    accumulator = StreamAccumulator(capture=capture)
    for event in events:
        accumulator.add(event)
    _assert_sane(accumulator.outcome())


def test_message_outcome_reads_a_real_message() -> None:
    message = anthropic.types.Message.model_validate({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-served",
        "content": [{"type": "text", "text": "hi"},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": 1}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 20}})
    outcome = message_outcome(message)
    assert (outcome.tokens_input, outcome.tokens_output) == (130, 5)
    assert (outcome.tokens_cache_read, outcome.tokens_cache_creation) == (100, 20)
    assert outcome.tool_calls == [("lookup", {"q": 1})]
    assert outcome.stop_reason == "tool_use"
    assert outcome.usage_source == "reported"


def test_message_without_usage_reports_usage_absent() -> None:
    outcome = message_outcome(SimpleNamespace(usage=None, model="m"))
    assert outcome.usage_source == "absent"
    assert outcome.tokens_input is None


def test_cumulative_message_delta_usage_wins_over_message_start() -> None:
    # the API's message_delta usage is cumulative and may repeat the input counts
    accumulator = StreamAccumulator(capture=False)
    accumulator.add(SimpleNamespace(type="message_start", message=SimpleNamespace(
        model="m", id="msg", usage=SimpleNamespace(input_tokens=10, output_tokens=1,
                                                   cache_read_input_tokens=3))))
    accumulator.add(SimpleNamespace(type="message_delta",
                                    delta=SimpleNamespace(stop_reason="end_turn"),
                                    usage=SimpleNamespace(output_tokens=7, input_tokens=12,
                                                          cache_read_input_tokens=None)))
    accumulator.add(SimpleNamespace(type="message_stop"))
    outcome = accumulator.outcome()
    assert (outcome.tokens_input, outcome.tokens_output, outcome.tokens_cache_read) == (15, 7, 3)
    assert "stream_incomplete" not in outcome.provider_metadata


def test_stream_without_message_stop_is_marked_incomplete() -> None:
    accumulator = StreamAccumulator(capture=False)
    accumulator.add(SimpleNamespace(type="message_start", message=SimpleNamespace(
        model="m", id="msg", usage=SimpleNamespace(input_tokens=4, output_tokens=1))))
    assert accumulator.outcome().provider_metadata["stream_incomplete"] is True
