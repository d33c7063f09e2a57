"""What the agent-sized case of the per-call benchmark sends: an agent's request
ten tool rounds in, and its conversation growing a round a call."""

from __future__ import annotations

from typing import Any


def _agent_round(i: int) -> list[dict[str, Any]]:
    """One tool round of an agent's conversation: the user's turn, the assistant's
    tool call, the tool's result."""
    return [
        {"role": "user", "content": f"Round {i}: look up the record and summarise it. " * 4},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": "tool_1", "arguments": f'{{"id": "r{i}", "limit": 3}}'}}]},
        {"role": "tool", "tool_call_id": f"call_{i}",
         "content": f'{{"record": "r{i}", "text": "the record\'s long text"}}' * 3}]


def _agent_request() -> dict[str, Any]:
    """An agent's request ten tool rounds in: a system prompt, 30 messages (user,
    assistant tool call, tool result) and 5 tool definitions, ~5,300 characters
    of text in ~280 strings, lists and dicts. The sensor's pre_call estimate
    walks the request, so its cost grows with it; MESSAGES alone hides that.
    Given tools, the fake provider answers with a tool call, so the call also
    records a ``tool_call`` event, as an agent's turn does."""
    tools = [{"type": "function", "function": {
        "name": f"tool_{i}", "description": f"Look up record kind {i} by its id and return it.",
        "parameters": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "description": "the record's id"},
            "limit": {"type": "integer", "description": "how many to return"},
            "filter": {"type": "object", "properties": {"kind": {"type": "string"}}}}}}}
        for i in range(5)]
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful agent. Use the tools. " * 5}]
    for i in range(10):
        messages += _agent_round(i)
    return {"messages": messages, "tools": tools}


class Conversation:
    """AGENT_REQUEST's messages as an agent sends them: one list, a round appended
    before each call, from 10 rounds (31 messages) to 20 (61); then cut back to
    10 rounds, as an agent that trims its history does, and grown again. The
    sensor counts an appended round alone (its estimate keeps what it counted of
    a list), so a request sent again unchanged would flatter it; a cut-back list
    is counted whole again, once in ten calls."""

    FIRST, LAST = 10, 20

    def __init__(self) -> None:
        self.messages = list(AGENT_REQUEST["messages"])
        self._base = len(self.messages)
        self._rounds = [_agent_round(i) for i in range(self.FIRST, self.LAST)]
        self._next = 0

    def step(self) -> None:
        if self._next == len(self._rounds):
            del self.messages[self._base:]
            self._next = 0
        self.messages += self._rounds[self._next]
        self._next += 1


AGENT_REQUEST = _agent_request()
