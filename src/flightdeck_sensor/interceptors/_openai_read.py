"""Reading OpenAI's responses: the SDK's models, raw bodies (seen through
:func:`as_attributes`) and stream chunks, into an :class:`Outcome`. Read
attributes, never ``model_dump``: this runs on every call.
"""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace
from typing import Any

from ._core import Call, FieldReader, Outcome, as_count, as_text, field_reader


def as_attributes(decoded: Any) -> Any:
    """A JSON-decoded response with attribute access, read like the SDK's models."""
    if isinstance(decoded, dict):
        return SimpleNamespace(**{str(k): as_attributes(v) for k, v in decoded.items()})
    if isinstance(decoded, list):
        return [as_attributes(item) for item in decoded]
    return decoded


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, list) and items else None


# --------------------------------------------------------------------------
# Reading responses (SDK models, or raw bodies seen through as_attributes).

# Readers of the objects read for four names or more (see field_reader), each
# giving what its outcome function unpacks, in that order; for fewer, getattr
# costs no more.
_CHAT = field_reader("model", "_request_id", "usage", "choices", "id", "system_fingerprint",
                     "service_tier")
_TEXT_COMPLETION = field_reader("model", "_request_id", "usage", "choices", "id",
                                "system_fingerprint")
_RESPONSE = field_reader("model", "_request_id", "usage", "id", "service_tier",
                         "incomplete_details", "status", "output")
_EMBEDDINGS = field_reader("model", "_request_id", "usage", "data")

# Usage readers, for _usage_outcome: (input, output, input details, output details).
_CHAT_USAGE = field_reader("prompt_tokens", "completion_tokens", "prompt_tokens_details",
                          "completion_tokens_details")
_RESPONSES_USAGE = field_reader("input_tokens", "output_tokens", "input_tokens_details",
                               "output_tokens_details")


def _usage_outcome(outcome: Outcome, usage: Any, read_usage: FieldReader) -> Outcome:
    """Fill tokens from a usage object. OpenAI's input tokens include cached ones.

    The checks of as_count are written out here and in _base_outcome: this runs
    on every call, and a call of the helper costs more than its check."""
    if usage is None:
        return outcome
    tokens_input, tokens_output, details, output_details = read_usage(usage)
    if type(tokens_input) is int and tokens_input >= 0:
        outcome.tokens_input = tokens_input
    if type(tokens_output) is int and tokens_output >= 0:
        outcome.tokens_output = tokens_output
    if details is not None:
        outcome.tokens_cache_read = as_count(getattr(details, "cached_tokens", None))
        outcome.tokens_cache_creation = as_count(getattr(details, "cache_write_tokens", None))
    if output_details is not None:  # getattr on None raises inside, slowly, even with a default
        reasoning = getattr(output_details, "reasoning_tokens", None)
        if type(reasoning) is int and reasoning > 0:
            outcome.provider_metadata["reasoning_tokens"] = reasoning
    if outcome.tokens_input is not None or outcome.tokens_output is not None:
        outcome.usage_source = "reported"
    return outcome


def _base_outcome(model: Any, request_id: Any, response_id: Any,
                  system_fingerprint: Any = None, service_tier: Any = None) -> Outcome:
    outcome = Outcome()
    # as_text spelled out, not called or looped: a call per field, or building
    # (key, value) pairs to loop over, costs more than the checks themselves.
    if isinstance(model, str) and model:
        outcome.model = model
    if isinstance(request_id, str) and request_id:
        outcome.request_id = request_id
    metadata = outcome.provider_metadata
    if isinstance(response_id, str) and response_id:
        metadata["response_id"] = response_id
    if isinstance(system_fingerprint, str) and system_fingerprint:
        metadata["system_fingerprint"] = system_fingerprint
    if isinstance(service_tier, str) and service_tier:
        metadata["service_tier"] = service_tier
    return outcome


def chat_outcome(response: Any) -> Outcome:
    """Outcome of a ChatCompletion (also ParsedChatCompletion)."""
    model, request_id, usage, choices, response_id, fingerprint, tier = _CHAT(response)
    outcome = _usage_outcome(_base_outcome(model, request_id, response_id, fingerprint, tier),
                             usage, _CHAT_USAGE)
    choice = choices[0] if isinstance(choices, list) and choices else None  # _first, written in
    if choice is not None:
        outcome.stop_reason = as_text(getattr(choice, "finish_reason", None))
        message = getattr(choice, "message", None)
        if message is not None:
            outcome.content = getattr(message, "content", None)
            tool_calls = getattr(message, "tool_calls", None)
            if tool_calls:
                outcome.tool_calls = _chat_tool_calls(tool_calls)
    return outcome


def _chat_tool_calls(tool_calls: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for tool_call in tool_calls if isinstance(tool_calls, list) else ():
        function = getattr(tool_call, "function", None)
        name = as_text(getattr(function, "name", None)) if function is not None else None
        if name:
            found.append((name, getattr(function, "arguments", None)))
    return found


def text_completion_outcome(response: Any) -> Outcome:
    """Outcome of a legacy Completion."""
    model, request_id, usage, choices, response_id, fingerprint = _TEXT_COMPLETION(response)
    outcome = _usage_outcome(_base_outcome(model, request_id, response_id, fingerprint),
                             usage, _CHAT_USAGE)
    choice = _first(choices)
    if choice is not None:
        outcome.stop_reason = as_text(getattr(choice, "finish_reason", None))
        outcome.content = getattr(choice, "text", None)
    return outcome


def responses_outcome(response: Any) -> Outcome:
    """Outcome of a Response (also ParsedResponse)."""
    model, request_id, usage, response_id, tier, details, status, output = _RESPONSE(response)
    outcome = _usage_outcome(_base_outcome(model, request_id, response_id, service_tier=tier),
                             usage, _RESPONSES_USAGE)
    outcome.stop_reason = as_text(getattr(details, "reason", None)) if details is not None else None
    outcome.stop_reason = outcome.stop_reason or as_text(status)
    if isinstance(output, list):
        outcome.content = output
        tool_calls = []
        for item in output:
            if getattr(item, "type", None) in ("function_call", "custom_tool_call"):
                name = as_text(getattr(item, "name", None))
                arguments = getattr(item, "arguments", None) or getattr(item, "input", None)
                if name:
                    tool_calls.append((name, arguments))
        outcome.tool_calls = tool_calls
    return outcome


def embeddings_outcome(response: Any) -> Outcome:
    """Outcome of a CreateEmbeddingResponse: input tokens and (count, dimension)."""
    model, request_id, usage, data = _EMBEDDINGS(response)
    outcome = _base_outcome(model, request_id, None)
    if usage is not None:  # input tokens only: embeddings' usage has no output fields
        outcome.tokens_input = as_count(getattr(usage, "prompt_tokens", None))
        if outcome.tokens_input is not None:
            outcome.usage_source = "reported"
    if isinstance(data, list) and data:
        dimension = _dimension(getattr(data[0], "embedding", None))
        if dimension:
            outcome.output_dimensions = (len(data), dimension)
    return outcome


def _dimension(embedding: Any) -> int | None:
    if isinstance(embedding, list):
        return len(embedding) or None
    if isinstance(embedding, str):  # base64 float32, as read from a raw body
        try:
            return len(base64.b64decode(embedding)) // 4 or None
        except ValueError:
            return None
    return None


# --------------------------------------------------------------------------
# Stream accumulators: read the few attributes each chunk carries (hot path).

class ChatStreamAccumulator:
    """Folds ChatCompletionChunk (or legacy Completion chunk) into an Outcome."""

    __slots__ = ("capture", "finish_reason", "legacy", "model", "request_id", "texts", "tools",
                 "usage")

    def __init__(self, capture: bool, legacy: bool = False) -> None:
        self.capture = capture
        self.legacy = legacy  # legacy completion chunks carry ``text``, not ``delta``
        self.model: Any = None
        self.request_id: Any = None
        self.usage: Any = None
        self.finish_reason: Any = None
        self.texts: list[str] = []
        self.tools: dict[int, list[Any]] = {}  # index -> [name, argument pieces...]

    def add(self, chunk: Any) -> None:
        if self.model is None:
            self.model = chunk.model
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
        choices = chunk.choices
        if not choices:
            return
        choice = choices[0]
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason
        if self.legacy:
            if self.capture:
                self.texts.append(choice.text or "")
            return
        delta = choice.delta
        if delta is None:
            return
        if delta.tool_calls:
            self._add_tool_calls(delta.tool_calls)
        if self.capture and delta.content:
            self.texts.append(delta.content)

    def _add_tool_calls(self, tool_calls: Any) -> None:
        for tool_call in tool_calls:
            function = tool_call.function
            slot = self.tools.setdefault(tool_call.index, [None])
            if function is None:
                continue
            if function.name:
                slot[0] = function.name
            if function.arguments:
                slot.append(function.arguments)

    def outcome(self) -> Outcome:
        outcome = Outcome()
        outcome.model = as_text(self.model)
        outcome.request_id = as_text(self.request_id)
        _usage_outcome(outcome, self.usage, _CHAT_USAGE)
        outcome.stop_reason = as_text(self.finish_reason)
        outcome.tool_calls = [(slot[0], "".join(slot[1:])) for _, slot in sorted(self.tools.items())
                              if isinstance(slot[0], str)]
        if self.capture and self.texts:
            outcome.content = "".join(self.texts)
        return outcome


_FINAL_RESPONSE_EVENTS = frozenset(("response.completed", "response.incomplete",
                                    "response.failed"))


class ResponsesStreamAccumulator:
    """Folds Responses API stream events; the final event carries the whole response."""

    __slots__ = ("final", "model", "request_id")

    def __init__(self) -> None:
        self.final: Any = None
        self.model: Any = None
        self.request_id: Any = None

    def add(self, event: Any) -> None:
        event_type = event.type
        if event_type in _FINAL_RESPONSE_EVENTS:
            self.final = event.response
        elif event_type == "response.created":
            self.model = getattr(event.response, "model", None)

    def outcome(self) -> Outcome:
        if self.final is not None:
            outcome = responses_outcome(self.final)
        else:
            outcome = Outcome()
            outcome.model = as_text(self.model)
        outcome.request_id = outcome.request_id or as_text(self.request_id)
        return outcome



def read_body(http_response: Any) -> bytes | None:
    """The body the SDK has read, or None while it is unread (a streamed response)."""
    try:
        body = http_response.content  # raises while the body is unread
    except Exception:
        return None
    return body if isinstance(body, bytes) else None


def body_outcome(call: Call, http_response: Any, body: bytes) -> Outcome:
    """What a raw response's JSON body tells, read as the SDK's models are."""
    outcome = headers_outcome(http_response)
    try:
        decoded = json.loads(body)
    except ValueError:
        return outcome
    if not isinstance(decoded, dict):
        return outcome
    parsed = call.adapter.response_outcome(as_attributes(decoded))
    parsed.request_id = parsed.request_id or outcome.request_id
    return parsed


def headers_outcome(http_response: Any) -> Outcome:
    outcome = Outcome()
    outcome.request_id = as_text(http_response.headers.get("x-request-id"))
    return outcome


def unread_outcome(call: Call, http_response: Any, kwargs: dict[str, Any]) -> Outcome:
    """What is known of a call whose body nobody read through the SDK: the
    request id and, for embeddings, the vectors asked for (one per input, the
    ``dimensions`` requested), so the event stays valid when it can be."""
    body = read_body(http_response)  # the user may have read it as bytes
    if body is not None and kwargs.get("stream") is not True:
        outcome = body_outcome(call, http_response, body)
    else:
        outcome = headers_outcome(http_response)
    if call.kind == "embeddings" and outcome.output_dimensions is None:
        dimension = as_count(kwargs.get("dimensions"))
        if dimension:
            outcome.output_dimensions = (_input_count(kwargs.get("input")), dimension)
    return outcome


def _input_count(value: Any) -> int:
    """Inputs of an embeddings request: a list of strings or of token lists is
    several; a string or one token list is one."""
    if isinstance(value, list) and value and not isinstance(value[0], int):
        return len(value)
    return 1
