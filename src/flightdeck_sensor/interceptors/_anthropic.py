"""Anthropic SDK interceptor: ``messages.create`` / ``stream`` / ``parse``, sync
and async, on ``messages`` and ``beta.messages``.

Patched on the resource classes, so every client that builds them is covered
(Anthropic, AsyncAnthropic, AnthropicBedrock, AnthropicVertex, Foundry, and
clients created before the patch).

Two SDK traps (anthropic 2.x):

- ``messages.stream()`` and ``messages.parse()`` post the request themselves;
  they never go through ``create``, so each is wrapped on its own.
- ``MessageStream``'s ``text_stream``, iteration, ``until_done()`` and
  ``get_final_message()`` all drain the same private generator, which reads
  the raw SSE ``Stream`` in ``_raw_stream``. Proxying the ``MessageStream``
  would miss all but iteration, so the raw stream is proxied instead; if a
  future SDK drops ``_raw_stream``, the ``MessageStream`` itself is proxied
  (iteration only, documented degradation).

The SDK retries 429/5xx/connection errors inside one ``create`` call; the
user made one call, so one event pair is reported, with the final exception
and ``retry_attempt`` = the attempt that failed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import wrapt

from ._core import (
    AsyncStreamProxy,
    Call,
    ErrorFacts,
    Outcome,
    RawResponseProxy,
    StreamRecorder,
    SyncStreamProxy,
    ToolCall,
    as_text,
    async_wrapper,
    classify,
    field_reader,
    looks_raw,
    manager_wrapper,
    result_kinds,
    stream_classes,
    sync_wrapper,
    with_keyword_model,
)

logger = logging.getLogger("flightdeck_sensor")

PROVIDER = "anthropic"

# Content blocks in which the model asks for a tool: client tools, and tools
# the API runs itself (web search, code execution, MCP).
_TOOL_BLOCK_TYPES = frozenset(("tool_use", "server_tool_use", "mcp_tool_use"))

# Request arguments that make up the prompt (estimate, and capture when on).
_CONTENT_ARGUMENTS = ("system", "messages", "tools")


# --------------------------------------------------------------------------
# Extractors: response shapes -> Outcome. Read attributes, never model_dump.

_MESSAGE = field_reader("model", "stop_reason", "_request_id", "usage", "id", "content")
_USAGE = field_reader("input_tokens", "output_tokens", "cache_read_input_tokens",
                      "cache_creation_input_tokens")


class _Usage:
    """Token counts as the API reports them (``input_tokens`` excludes cache)."""

    __slots__ = ("cache_creation", "cache_read", "input", "output")

    def __init__(self) -> None:
        self.input: int | None = None
        self.output: int | None = None
        self.cache_read: int | None = None
        self.cache_creation: int | None = None

    def update(self, usage: Any) -> None:
        """Fold in a ``usage`` object; fields absent or ``None`` keep what was known
        (``message_delta`` usage is cumulative and may name only output tokens)."""
        if usage is None:
            return
        # Spelled out, not looped, as_count's check written in: this runs on every
        # call, and a call of the helper costs more than the check.
        tokens_input, tokens_output, cache_read, cache_creation = _USAGE(usage)
        if type(tokens_input) is int and tokens_input >= 0:
            self.input = tokens_input
        if type(tokens_output) is int and tokens_output >= 0:
            self.output = tokens_output
        if type(cache_read) is int and cache_read >= 0:
            self.cache_read = cache_read
        if type(cache_creation) is int and cache_creation >= 0:
            self.cache_creation = cache_creation

    def fill(self, outcome: Outcome) -> None:
        if self.input is None and self.output is None:
            return
        cached = (self.cache_read or 0) + (self.cache_creation or 0)
        outcome.tokens_input = (self.input or 0) + cached
        outcome.tokens_output = self.output
        outcome.tokens_cache_read = self.cache_read
        outcome.tokens_cache_creation = self.cache_creation
        outcome.usage_source = "reported"


def message_outcome(message: Any) -> Outcome:
    """Outcome of a ``Message`` / ``BetaMessage`` / ``ParsedMessage``; or, for a
    raw response (``with_raw_response`` / ``with_streaming_response``, body not
    read by us), only what its headers say."""
    outcome = Outcome()
    if not hasattr(message, "usage"):
        outcome.request_id = as_text(_header(message, "request-id"))
        return outcome
    model, stop_reason, request_id, usage, message_id, content = _MESSAGE(message)
    # as_text's check written in (see _Usage.update).
    if isinstance(model, str) and model:
        outcome.model = model
    if isinstance(stop_reason, str) and stop_reason:
        outcome.stop_reason = stop_reason
    if isinstance(request_id, str) and request_id:
        outcome.request_id = request_id
    tokens = _Usage()
    tokens.update(usage)
    tokens.fill(outcome)
    if isinstance(message_id, str) and message_id:
        outcome.provider_metadata["message_id"] = message_id
    if isinstance(content, list):
        outcome.tool_calls = [tool for tool in map(_tool_call, content) if tool is not None]
        outcome.content = content
    return outcome


def _tool_call(block: Any) -> ToolCall | None:
    if getattr(block, "type", None) not in _TOOL_BLOCK_TYPES:
        return None
    return (str(getattr(block, "name", None) or "unknown"), getattr(block, "input", None))


def _header(response: Any, name: str) -> Any:
    try:
        return response.headers.get(name)
    except Exception:
        return None


class _Block:
    __slots__ = ("name", "parts", "type")

    def __init__(self, block_type: str, name: str | None) -> None:
        self.type = block_type
        self.name = name
        self.parts: list[str] = []


class StreamAccumulator:
    """Folds raw stream events (``message_start`` ... ``message_stop``) into an
    Outcome. ``add`` is the per-chunk hot path: one attribute read for the
    common ``content_block_delta`` unless prompt capture wants the text."""

    __slots__ = ("_blocks", "_capture", "_message_id", "_model", "_stop_reason", "_stopped",
                 "_usage", "request_id")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._usage = _Usage()
        self._model: str | None = None
        self._message_id: str | None = None
        self._stop_reason: str | None = None
        self._stopped = False
        self._blocks: dict[int, _Block] = {}
        self.request_id: str | None = None

    def add(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            if self._capture:
                self._add_delta(event)
            return
        try:  # the rare events; an odd shape is skipped, never raised
            self._add_rare(kind, event)
        except Exception:
            return

    def _add_rare(self, kind: Any, event: Any) -> None:
        if kind == "message_start":
            message = event.message
            self._model = as_text(getattr(message, "model", None))
            self._message_id = as_text(getattr(message, "id", None))
            self._usage.update(getattr(message, "usage", None))
        elif kind == "content_block_start":
            block = event.content_block
            block_type = getattr(block, "type", None)
            if self._capture or block_type in _TOOL_BLOCK_TYPES:
                self._blocks[event.index] = _Block(str(block_type),
                                                   as_text(getattr(block, "name", None)))
        elif kind == "message_delta":
            self._stop_reason = (as_text(getattr(event.delta, "stop_reason", None))
                                 or self._stop_reason)
            self._usage.update(getattr(event, "usage", None))
        elif kind == "message_stop":
            self._stopped = True

    def _add_delta(self, event: Any) -> None:
        try:
            block = self._blocks.get(event.index)
            delta = event.delta
        except Exception:
            return
        if block is None:
            return
        text = getattr(delta, "text", None)
        if text is None:
            text = getattr(delta, "partial_json", None)
        if isinstance(text, str):
            block.parts.append(text)

    def outcome(self) -> Outcome:
        outcome = Outcome()
        outcome.model = self._model
        outcome.stop_reason = self._stop_reason
        outcome.request_id = self.request_id
        self._usage.fill(outcome)
        if self._message_id:
            outcome.provider_metadata["message_id"] = self._message_id
        if not self._stopped:
            # The stream ended without message_stop: the numbers are partial.
            outcome.provider_metadata["stream_incomplete"] = True
        outcome.tool_calls = [(block.name or "unknown", _json_or_text("".join(block.parts)))
                              for block in self._blocks.values()
                              if block.type in _TOOL_BLOCK_TYPES]
        if self._capture:
            outcome.content = [_captured_block(block) for block in self._blocks.values()]
        return outcome


def _json_or_text(text: str) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def _captured_block(block: _Block) -> dict[str, Any]:
    if block.type in _TOOL_BLOCK_TYPES:
        return {"type": block.type, "name": block.name,
                "input": _json_or_text("".join(block.parts))}
    return {"type": block.type, "text": "".join(block.parts)}


# --------------------------------------------------------------------------
# The adapter: what the core needs to know about Anthropic.

class AnthropicAdapter:
    provider = PROVIDER

    with_model = staticmethod(with_keyword_model)

    def request_model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        model = kwargs.get("model")  # as_text's check written in: on every call
        return model if isinstance(model, str) and model else None

    def request_content(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Only real values: the SDK's ``omit`` / ``NOT_GIVEN`` sentinels are skipped.
        # ``in`` first: a failing isinstance looks up ``__class__`` on the value,
        # which costs far more than the dict test.
        return {name: kwargs[name] for name in _CONTENT_ARGUMENTS
                if name in kwargs and isinstance(kwargs[name], (str, list, tuple, dict))}

    # The function itself, not a method calling it: one call fewer per call.
    response_outcome = staticmethod(message_outcome)

    def error_facts(self, exc: BaseException) -> ErrorFacts:
        return classify(exc, PROVIDER)


ADAPTER = AnthropicAdapter()


# --------------------------------------------------------------------------
# Result handlers: the SDK's return value -> what the user gets.

_result_kind = result_kinds(PROVIDER)


def _recorder(call: Call, raw_stream: Any) -> StreamRecorder:
    accumulator = StreamAccumulator(capture=call.sensor.config.capture_prompts)
    accumulator.request_id = as_text(_header(getattr(raw_stream, "response", None), "request-id"))
    return StreamRecorder(call, accumulator)


def _finish_create(call: Call, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``create`` / ``parse``: a Message is recorded now; an SSE stream gets a
    timing proxy; a raw response (``with_raw_response``, ``with_streaming_response``,
    which LangChain uses for every call) is finished when the user parses it."""
    kind = _result_kind(result.__class__)
    if kind is None:
        kind = "raw" if looks_raw(result) else "response"
    if kind == "response":
        call.succeed(message_outcome(result))
        return result
    if kind == "raw":
        return _RawMessageResponse(result, call, args, kwargs)
    if kind == "async_stream":
        return AsyncStreamProxy(result, _recorder(call, result))
    return SyncStreamProxy(result, _recorder(call, result))


class _RawMessageResponse(RawResponseProxy):
    """A raw response: ``parse()`` gives a Message (recorded) or a stream (timed);
    never parsed, the call is recorded from the headers when it is dropped."""

    def _self_on_parsed(self, parsed: Any) -> Any:
        return _finish_create(self._self_call, parsed, self._self_args, self._self_kwargs)

    def _self_on_unread(self, result: Any) -> Any:
        self._self_call.succeed(message_outcome(self.__wrapped__))
        return result


def _instrument_message_stream(call: Call, message_stream: Any,
                               proxy_type: type[SyncStreamProxy | AsyncStreamProxy]) -> Any:
    """Time the raw SSE stream under a ``MessageStream``; returns what ``__enter__``
    hands the user (the SDK's own object, unless the fallback applies)."""
    raw_stream = getattr(message_stream, "_raw_stream", None)
    if raw_stream is not None and isinstance(raw_stream, stream_classes(PROVIDER)):
        message_stream._raw_stream = proxy_type(raw_stream, _recorder(call, raw_stream))
        return message_stream
    logger.debug("anthropic MessageStream has no _raw_stream; proxying it instead")
    return proxy_type(message_stream, _recorder(call, message_stream))


def _finish_sync_stream(call: Call, message_stream: Any, args: tuple[Any, ...],
                        kwargs: dict[str, Any]) -> Any:
    return _instrument_message_stream(call, message_stream, SyncStreamProxy)


def _finish_async_stream(call: Call, message_stream: Any, args: tuple[Any, ...],
                         kwargs: dict[str, Any]) -> Any:
    return _instrument_message_stream(call, message_stream, AsyncStreamProxy)


# Entering a ``messages.stream(...)`` manager is the entry point: it sends the request.
_ENTER = sync_wrapper(ADAPTER, handler=_finish_sync_stream)
_AENTER = async_wrapper(ADAPTER, handler=_finish_async_stream)


class _CallOnEnterManager(wrapt.ObjectProxy):  # type: ignore[misc,type-arg,unused-ignore]
    """``messages.stream(...)`` returns a manager; the request is sent by
    ``__enter__``, so the call is recorded from there, with the arguments
    ``stream()`` was given."""

    def __init__(self, manager: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__(manager)
        self._self_args = args
        self._self_kwargs = kwargs

    def __enter__(self) -> Any:
        return _ENTER(self._self_enter, None, self._self_args, self._self_kwargs)

    def _self_enter(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self.__wrapped__.__exit__(exc_type, exc, tb)


class _AsyncCallOnEnterManager(_CallOnEnterManager):
    """The async manager (``AsyncMessages.stream``): ``__aenter__`` sends the request."""

    async def __aenter__(self) -> Any:
        return await _AENTER(self._self_aenter, None, self._self_args, self._self_kwargs)

    def _self_aenter(self, *args: Any, **kwargs: Any) -> Any:
        return self.__wrapped__.__aenter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return await self.__wrapped__.__aexit__(exc_type, exc, tb)


# The wrapper of each row of this provider's table (flightdeck_sensor._providers).
WRAPPERS: dict[str, Callable[..., Any]] = {
    "create": sync_wrapper(ADAPTER, handler=_finish_create),
    "async_create": async_wrapper(ADAPTER, handler=_finish_create),
    "stream": manager_wrapper(_CallOnEnterManager, ADAPTER, swaps_model=True),
    "async_stream": manager_wrapper(_AsyncCallOnEnterManager, ADAPTER, swaps_model=True),
}
