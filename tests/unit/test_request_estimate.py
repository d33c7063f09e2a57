"""pre_call's token estimate: the characters of text in the request's content
fields, a ``tools`` list counted once and its count reused while the same
list, of the same length, comes back, and a long conversation counted from
where it was last counted while the same list comes back longer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flightdeck_sensor.interceptors import _estimate
from flightdeck_sensor.interceptors._estimate import request_chars


def text_chars(value: Any) -> int:
    """The reference: every string value in the JSON, however deep (no keys),
    and 4 characters (a token) for an int."""
    if isinstance(value, str):
        return len(value)
    if type(value) is int:
        return 4
    if isinstance(value, dict):
        return sum(text_chars(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(text_chars(v) for v in value)
    return 0


def tools(count: int) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {
        "name": f"tool_{i}", "description": "Look a record up by its id.",
        "parameters": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "description": "the record's id"},
            "limit": {"type": "integer"}}}}} for i in range(count)]


def agent_request() -> dict[str, Any]:
    messages: list[Any] = [{"role": "system", "content": "Be careful."}]
    for i in range(3):
        messages += [
            {"role": "user", "content": [{"type": "text", "text": f"question {i}"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{i}", "type": "function",
                 "function": {"name": "tool_0", "arguments": json.dumps({"id": i})}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "a result", "extra": (1, "tup")}]
    return {"messages": messages, "tools": tools(3)}


def setup_function() -> None:
    _estimate._tools_counted.clear()
    _estimate._histories_counted.clear()


def a_round(i: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"question {i} " * (i + 1)},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{i}", "type": "function",
                 "function": {"name": "tool_0", "arguments": json.dumps({"id": i})}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": "a result " * i}]


def conversation(rounds: int) -> list[Any]:
    messages: list[Any] = [{"role": "system", "content": "Be careful."}]
    for i in range(rounds):
        messages += a_round(i)
    return messages


def test_counts_every_string_of_an_agent_request() -> None:
    request = agent_request()
    assert request_chars(request) == text_chars(request) > 0


def test_none_bools_and_floats_count_nothing_a_token_id_one_token() -> None:
    request = {"messages": [{"content": None, "t": 0.5, "b": False}], "input": [None, True, 1.5]}
    assert request_chars(request) == 0
    assert request_chars({"messages": [{"index": 3}], "input": {"n": [1]}}) == 8
    assert request_chars({"input": "four"}) == 4
    assert request_chars({"input": ["ab", ("cd", 5.0)]}) == 4
    # Pre-tokenized embeddings input: each id is one token (4 characters' worth).
    ids = list(range(100))
    assert request_chars({"input": ids}) == 400
    assert request_chars({"input": [ids, ids[:10]]}) == 440
    assert not _estimate._histories_counted  # a batch of token ids is not kept


def test_the_same_tools_list_is_counted_once() -> None:
    listed = tools(4)
    request = {"messages": [{"role": "user", "content": "hi"}], "tools": listed}
    first = request_chars(request)
    # Changed in place without changing its length: the kept count is reused
    # (this is what the memo trades for walking the schemas again).
    listed[0]["function"]["description"] = "x" * 1000
    assert request_chars(request) == first
    listed.append(tools(1)[0])  # a new length: counted again
    assert request_chars(request) == text_chars(request)
    other = tools(4)  # an equal list, not the same one: counted on its own
    assert request_chars({"tools": other}) == text_chars(other)


def test_kept_tools_lists_are_bounded() -> None:
    lists = [tools(1) for _ in range(3 * _estimate._TOOLS_KEPT)]
    for listed in lists:
        assert request_chars({"tools": listed}) == text_chars(listed)
    assert 0 < len(_estimate._tools_counted) <= _estimate._TOOLS_KEPT


def test_a_deeply_nested_request_is_cut_off_not_walked_forever() -> None:
    nested: Any = "deep"
    for _ in range(200):
        nested = [nested]
    assert request_chars({"messages": nested}) == 0
    cyclic: list[Any] = ["ab"]
    cyclic.append(cyclic)
    assert request_chars({"messages": cyclic}) > 0


def test_only_what_was_appended_is_walked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[Any] = []
    walk = _estimate._char_count

    def spy(value: Any, depth: int) -> int:
        walked.append(value)
        return walk(value, depth)

    monkeypatch.setattr(_estimate, "_char_count", spy)
    # Messages of strings only: a walk of the list counts them without a call each.
    messages = [{"role": "user", "content": f"message {i}"} for i in range(_estimate._HISTORY_MIN)]
    request = {"messages": messages}
    assert request_chars(request) == text_chars(request)
    assert walked == [messages]
    walked.clear()
    messages.append({"role": "user", "content": "one more"})
    assert request_chars(request) == text_chars(request)
    assert walked == [[{"role": "user", "content": "one more"}]]  # the new message alone
    walked.clear()
    assert request_chars(request) == text_chars(request)
    assert walked == []  # unchanged: nothing walked


def test_a_replaced_removed_or_reordered_message_is_counted_again() -> None:
    messages = conversation(4)
    request = {"messages": messages}
    assert request_chars(request) == text_chars(request)
    messages[2] = {"role": "assistant", "content": "x" * 500}  # replaced, same length
    assert request_chars(request) == text_chars(request)
    messages[3] = dict(messages[3])  # an equal copy: the same text, reused
    assert request_chars(request) == text_chars(request)
    del messages[1:4]  # shorter
    assert request_chars(request) == text_chars(request)
    messages.reverse()
    assert request_chars(request) == text_chars(request)
    messages.pop(0)  # a sliding window: one out, one in, the same length
    messages.append({"role": "user", "content": "y" * 300})
    assert request_chars(request) == text_chars(request)


def test_an_item_whose_comparison_raises_is_walked_again() -> None:
    class Unequal:
        def __eq__(self, other: object) -> bool:
            raise ValueError("truth value ambiguous")

        __hash__ = object.__hash__

    messages: list[Any] = conversation(3)
    messages.insert(1, Unequal())
    request = {"messages": messages}
    assert request_chars(request) == text_chars(request)
    messages[1] = Unequal()  # not the same object: == is asked, and raises
    messages.append({"role": "user", "content": "later"})
    assert request_chars(request) == text_chars(request)


def test_kept_conversations_are_bounded_and_short_ones_not_kept() -> None:
    short = conversation(1)
    assert len(short) < _estimate._HISTORY_MIN
    assert request_chars({"messages": short}) == text_chars(short)
    assert not _estimate._histories_counted
    lists = [conversation(3) for _ in range(3 * _estimate._HISTORIES_KEPT)]
    for messages in lists:
        assert request_chars({"input": messages}) == text_chars(messages)
    assert 0 < len(_estimate._histories_counted) <= _estimate._HISTORIES_KEPT
    _estimate._histories_counted.clear()
    batch = [f"text {i}" for i in range(3 * _estimate._HISTORY_MIN)]  # an embeddings input
    assert request_chars({"input": batch}) == text_chars(batch)
    assert not _estimate._histories_counted


def test_a_message_edited_in_place_keeps_its_count() -> None:
    # What the memo trades for not walking the history again: documented.
    messages = conversation(3)
    first = request_chars({"messages": messages})
    messages[1]["content"] = "z" * 1000
    assert request_chars({"messages": messages}) == first


def test_token_ids_are_counted_by_their_lengths_and_mixed_lists_walked() -> None:
    ids = list(range(512))
    batch = [ids] * 2048  # 2,048 inputs of 512 ids: counted without a walk of each id
    assert request_chars({"input": batch}) == 2048 * 512 * 4 == text_chars(batch)
    assert request_chars({"input": ids}) == 512 * 4
    # Not ids all through: walked, and counted as the reference counts them.
    for mixed in ([[1, 2], 5, [3]], [[1], [], [2]], [["a"], [1]], [[], [1]], ["a", 1]):
        assert request_chars({"input": mixed}) == text_chars(mixed), mixed
    # What the shortcut trades: only the ends are looked at (this is an estimate).
    assert request_chars({"input": [1, "a long string", 3]}) == 3 * 4
    assert request_chars({"input": [[1], ["a long string"], [2]]}) == 3 * 4
    assert request_chars({"input": []}) == 0
