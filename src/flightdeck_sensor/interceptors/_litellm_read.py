"""Reading litellm's responses and stream chunks into an :class:`Outcome`."""

from __future__ import annotations

from typing import Any

from ._core import Outcome, as_count, as_text

# The provider of a call whose model litellm does not know.
UNRESOLVED = "litellm"

# --------------------------------------------------------------------------
# Reading litellm's objects cheaply. Its response types keep most fields in
# pydantic's ``__pydantic_extra__``; a plain ``getattr`` of a missing name goes
# through pydantic's ``__getattr__`` and costs microseconds (litellm 1.110).

def get_field(obj: Any, name: str) -> Any:
    """``obj.name`` / ``obj[name]`` for litellm's pydantic objects and dicts; None if absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra and name in extra:
        return extra[name]
    fields = getattr(obj, "__dict__", None)
    if fields is not None and name in fields:
        return fields[name]
    return None


def hidden_params(obj: Any) -> dict[str, Any]:
    """litellm's ``_hidden_params`` of a response, chunk or stream wrapper."""
    private = getattr(obj, "__pydantic_private__", None)
    if isinstance(private, dict):
        hidden = private.get("_hidden_params")
    else:  # litellm's stream wrappers are plain classes
        hidden = get_field(obj, "_hidden_params")
    return hidden if isinstance(hidden, dict) else {}


def first_choice(response: Any) -> Any:
    choices = get_field(response, "choices")
    return choices[0] if isinstance(choices, list) and choices else None


def request_id_in(hidden: dict[str, Any]) -> str | None:
    headers = hidden.get("additional_headers")
    if not isinstance(headers, dict):
        return None
    for name in ("llm_provider-x-request-id", "llm_provider-request-id", "x-request-id",
                 "request-id"):
        found = as_text(headers.get(name))
        if found:
            return found
    return None


def apply_usage(outcome: Outcome, usage: Any, source: str) -> None:
    """Token fields from litellm's ``Usage`` (its ``prompt_tokens`` already includes
    cached tokens, for Anthropic too)."""
    outcome.tokens_input = as_count(get_field(usage, "prompt_tokens"))
    outcome.tokens_output = as_count(get_field(usage, "completion_tokens"))
    details = get_field(usage, "prompt_tokens_details")
    outcome.tokens_cache_read = as_count(get_field(usage, "cache_read_input_tokens")) or as_count(
        get_field(details, "cached_tokens"))
    outcome.tokens_cache_creation = (as_count(get_field(usage, "cache_creation_input_tokens"))
                                     or as_count(get_field(details, "cache_creation_tokens")))
    if outcome.tokens_input is not None or outcome.tokens_output is not None:
        outcome.usage_source = source


def is_unreported(usage: Any) -> bool:
    # litellm marks a stream that carried no usage with UnreportedUsage(0, 0, 0).
    return usage is None or type(usage).__name__ == "UnreportedUsage"


def tool_calls_of(message: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for tool_call in get_field(message, "tool_calls") or ():
        function = get_field(tool_call, "function")
        name = as_text(get_field(function, "name"))
        if name:
            found.append((name, get_field(function, "arguments")))
    return found


def metadata_of(provider: str, response: Any, hidden: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"via": "litellm"}
    response_id = as_text(get_field(response, "id"))
    if response_id:
        metadata["response_id"] = response_id
    cost = hidden.get("response_cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0:
        metadata["response_cost_usd"] = cost
    if provider == UNRESOLVED:
        resolved = as_text(hidden.get("custom_llm_provider"))
        if resolved:
            metadata["litellm_provider"] = resolved
    return metadata


# --------------------------------------------------------------------------
# Streams.

class StreamAccumulator:
    """Folds litellm's ``ModelResponseStream`` chunks (chat and text completion).

    Usage comes from a chunk's ``usage`` (the caller asked for
    ``stream_options.include_usage``) or from the usage litellm hides on the
    finishing chunk: reported by the provider (Anthropic), or counted by litellm
    with a tokenizer once the stream ends (``usage_source: estimated``)."""

    __slots__ = ("_capture", "_finish_chunk", "_model", "_reported_at_finish", "_response_id",
                 "_started", "_stop_reason", "_text", "_tools", "_usage", "stream")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._started = False
        self._model: Any = None
        self._response_id: Any = None
        self._stop_reason: str | None = None
        self._usage: Any = None
        self._finish_chunk: Any = None
        self._reported_at_finish: Any = None
        self._tools: dict[int, list[str]] = {}  # index -> [name, arguments so far]
        self._text: list[str] = []
        self.stream: Any = None  # litellm's stream wrapper: its response headers

    def add(self, chunk: Any) -> None:
        if not self._started:
            self._started = True
            self._model = chunk.model
            self._response_id = chunk.id
        extra = chunk.__pydantic_extra__
        if extra:
            usage = extra.get("usage")
            if usage is not None:
                self._usage = usage
        choices = chunk.choices
        if not choices:
            return
        choice = choices[0].__pydantic_extra__
        finish = choice.get("finish_reason")
        if finish is not None:
            self._stop_reason = finish
            self._finish_chunk = chunk
            self._reported_at_finish = hidden_params(chunk).get("usage")
        delta = choice.get("delta")
        if delta is None:  # text completion chunks
            if self._capture:
                self._text.append(choice.get("text") or "")
            return
        delta_fields = delta.__pydantic_extra__
        tool_calls = delta_fields.get("tool_calls")
        if tool_calls:
            self._add_tool_deltas(tool_calls)
        if self._capture:
            self._text.append(delta_fields.get("content") or "")

    def _add_tool_deltas(self, tool_calls: Any) -> None:
        for tool_call in tool_calls:
            index = get_field(tool_call, "index")
            slot = self._tools.setdefault(index if isinstance(index, int) else len(self._tools),
                                          ["", ""])
            function = get_field(tool_call, "function")
            slot[0] = as_text(get_field(function, "name")) or slot[0]
            slot[1] += get_field(function, "arguments") or ""

    def outcome(self) -> Outcome:
        hidden = hidden_params(self._finish_chunk)
        metadata: dict[str, Any] = {"via": "litellm"}
        if as_text(self._response_id):
            metadata["response_id"] = self._response_id
        model = as_text(hidden.get("provider_response_model")) or as_text(self._model)
        outcome = Outcome()
        outcome.model = model
        outcome.stop_reason = as_text(self._stop_reason)
        outcome.request_id = request_id_in(hidden_params(self.stream))
        outcome.provider_metadata = metadata
        if self._usage is not None:
            apply_usage(outcome, self._usage, "reported")
        elif not is_unreported(self._reported_at_finish):
            apply_usage(outcome, self._reported_at_finish, "reported")
        elif not is_unreported(hidden.get("usage")):
            apply_usage(outcome, hidden.get("usage"), "estimated")
        else:
            apply_usage(outcome, self._partial_usage(), "estimated")
        outcome.tool_calls = [(name, arguments) for name, arguments in self._tools.values() if name]
        if self._capture:
            tools = [{"name": name, "arguments": args} for name, args in outcome.tool_calls]
            outcome.content = {"text": "".join(self._text), "tool_calls": tools}
        return outcome

    def _partial_usage(self) -> Any:
        """A stream cut short (error, break, close) carries no usage: litellm's own
        recovery counts the chunks delivered so far (it bills them the same way)."""
        partial_response = getattr(self.stream, "partial_response", None)
        if not callable(partial_response):
            return None
        try:
            return get_field(partial_response(), "usage")
        except Exception:
            return None




def embedding_dimensions(data: Any) -> tuple[int, int] | None:
    if not isinstance(data, list) or not data:
        return None
    vector = get_field(data[0], "embedding")
    # base64-encoded vectors arrive as a string: their dimension is unknown.
    if not isinstance(vector, list) or not vector:
        return None
    return len(data), len(vector)
