"""pre_call's token estimate: the characters of text in the request's content
fields, a ``tools`` list counted once and its count reused while the same
list, of the same length, comes back."""

from __future__ import annotations

import json
from typing import Any

from flightdeck_sensor.interceptors import _core
from flightdeck_sensor.interceptors._core import _request_chars


def text_chars(value: Any) -> int:
    """The reference: every string value in the JSON, however deep (no keys)."""
    if isinstance(value, str):
        return len(value)
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
    _core._tools_counted.clear()


def test_counts_every_string_of_an_agent_request() -> None:
    request = agent_request()
    assert _request_chars(request) == text_chars(request) > 0


def test_numbers_none_and_bools_count_nothing() -> None:
    request = {"input": [[1, 2, 3], [4, None, True]], "messages": [{"content": None, "n": 3}]}
    assert _request_chars(request) == 0
    assert _request_chars({"input": "four"}) == 4
    assert _request_chars({"input": ["ab", ("cd", 5)]}) == 4


def test_the_same_tools_list_is_counted_once() -> None:
    listed = tools(4)
    request = {"messages": [{"role": "user", "content": "hi"}], "tools": listed}
    first = _request_chars(request)
    # Changed in place without changing its length: the kept count is reused
    # (this is what the memo trades for walking the schemas again).
    listed[0]["function"]["description"] = "x" * 1000
    assert _request_chars(request) == first
    listed.append(tools(1)[0])  # a new length: counted again
    assert _request_chars(request) == text_chars(request)
    other = tools(4)  # an equal list, not the same one: counted on its own
    assert _request_chars({"tools": other}) == text_chars(other)


def test_kept_tools_lists_are_bounded() -> None:
    lists = [tools(1) for _ in range(3 * _core._TOOLS_KEPT)]
    for listed in lists:
        assert _request_chars({"tools": listed}) == text_chars(listed)
    assert 0 < len(_core._tools_counted) <= _core._TOOLS_KEPT


def test_a_deeply_nested_request_is_cut_off_not_walked_forever() -> None:
    nested: Any = "deep"
    for _ in range(200):
        nested = [nested]
    assert _request_chars({"messages": nested}) == 0
    cyclic: list[Any] = ["ab"]
    cyclic.append(cyclic)
    assert _request_chars({"messages": cyclic}) > 0
