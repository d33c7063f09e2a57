"""OpenAI SDK interceptor: chat completions, responses, embeddings, legacy completions.

Everything here is OpenAI-specific data: where the request names its model
and content, where a response keeps its usage, how each stream reports its
end. Recording, timing and stream finalization live in :mod:`._core`.

Entry points and the one-report rule (decision 5):

- ``create`` of each resource reports the call. ``chat.completions.stream()``
  and ``responses.stream()`` call ``create(stream=True)`` when their manager is
  entered, so ``create`` reports them too; the managers are proxied only to end
  the stream's record when the ``with`` block is left early.
- ``chat.completions.parse()`` and ``responses.parse()`` post by themselves and
  are wrapped as entry points of their own.
- ``with_raw_response`` / ``with_streaming_response`` call the patched
  ``create``. A body the SDK has already read (``with_raw_response``, not
  streamed) is decoded for usage at once. A body still unread (every
  ``with_streaming_response``, a stream asked for ``with_raw_response``: the
  path openai-agents takes for every streamed run) is proxied, never read by
  us: ``parse()`` of a stream gives the usual stream proxy, so the call is
  recorded as any stream is (usage, served model, time to first token, chunk
  counts, ``stream_error`` when it breaks); a body read through ``parse()``,
  ``read()``, ``text()`` or ``json()`` is decoded then; one closed or dropped
  unread is recorded from the headers (an embeddings call keeps its
  ``embeddings`` type only if the request tells the vectors' dimension).
- A stream without usage (no ``stream_options.include_usage``) reports
  ``usage_source: "absent"`` and no token numbers: we never invent them.
  ``inject_stream_usage`` (opt-in) asks for usage and hides the extra
  usage-only chunk from the caller.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import importlib
import inspect
import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import wrapt

from .. import _sensor
from ._core import (
    _IN_CALL,
    RESULT_KINDS_KEPT,
    AsyncStreamProxy,
    Call,
    FieldReader,
    Outcome,
    StreamRecorder,
    SyncStreamProxy,
    as_count,
    as_text,
    async_wrapper,
    field_reader,
    sync_wrapper,
)
from ._errors import ErrorFacts, classify

PROVIDER = "openai"

# Recorders of the streams created while a .stream() manager is being entered,
# so the manager proxy can end them when its ``with`` block is left.
_STREAM_SINK: contextvars.ContextVar[list[StreamRecorder] | None] = contextvars.ContextVar(
    "flightdeck_openai_stream_sink", default=None)


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


# --------------------------------------------------------------------------
# Adapters: what differs between the four OpenAI endpoints.

def _capture_on() -> bool:
    sensor = _sensor.active()
    return bool(sensor is not None and sensor.config.capture_prompts)


def _picked(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: kwargs[name] for name in names if name in kwargs}


class OpenAIAdapter:
    """One OpenAI endpoint: the request fields that make its content, and how
    its responses and stream chunks are read."""

    provider = PROVIDER

    def __init__(self, content_fields: tuple[str, ...],
                 outcome_of: Callable[[Any], Outcome],
                 accumulator: Callable[[], Any] | None = None) -> None:
        self.content_fields = content_fields
        self.response_outcome = outcome_of  # the function itself: one call fewer per call
        self.accumulator = accumulator

    def request_model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        model = kwargs.get("model")  # as_text's check written in: on every call
        return model if isinstance(model, str) and model else None

    def request_content(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _picked(kwargs, self.content_fields)

    def new_accumulator(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.accumulator is None:
            raise TypeError(f"no stream accumulator for {self.content_fields}")
        return self.accumulator()

    def error_facts(self, exc: BaseException) -> ErrorFacts:
        return classify(exc, PROVIDER)


CHAT = OpenAIAdapter(("messages", "tools", "functions"), chat_outcome,
                     lambda: ChatStreamAccumulator(_capture_on()))
TEXT_COMPLETION = OpenAIAdapter(("prompt", "suffix"), text_completion_outcome,
                                lambda: ChatStreamAccumulator(_capture_on(), legacy=True))
RESPONSES = OpenAIAdapter(("instructions", "input", "tools"), responses_outcome,
                          ResponsesStreamAccumulator)
EMBEDDINGS = OpenAIAdapter(("input",), embeddings_outcome)  # never streamed


# --------------------------------------------------------------------------
# What the user gets back: the SDK's object, a stream proxy, or a raw response.

class _InjectedStreamOptions(dict):  # type: ignore[type-arg]
    """``stream_options`` we added (``inject_stream_usage``): its usage chunk is ours."""


def _is_usage_only(chunk: Any) -> bool:
    return not chunk.choices and chunk.usage is not None


class _UsageHidingSyncStream(SyncStreamProxy):
    def __iter__(self) -> Iterator[Any]:
        for chunk in SyncStreamProxy.__iter__(self):
            if not _is_usage_only(chunk):
                yield chunk

    def __next__(self) -> Any:
        while True:
            chunk = SyncStreamProxy.__next__(self)
            if not _is_usage_only(chunk):
                return chunk


class _UsageHidingAsyncStream(AsyncStreamProxy):
    async def __anext__(self) -> Any:
        while True:
            chunk = await AsyncStreamProxy.__anext__(self)
            if not _is_usage_only(chunk):
                return chunk


@functools.lru_cache(maxsize=RESULT_KINDS_KEPT)
def _result_kind(result_type: type) -> str:
    """What a ``create`` / ``parse`` result of this class is, decided once per
    class (two ``isinstance`` checks cost 2.4 µs a call): ``"stream"``,
    ``"async_stream"``, ``"raw"`` or ``"response"``. The SDK's classes are
    imported here, from submodules, so this works even mid ``import openai``."""
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import BaseAPIResponse
    from openai._streaming import AsyncStream, Stream

    if issubclass(result_type, AsyncStream):
        return "async_stream"
    if issubclass(result_type, Stream):
        return "stream"
    if issubclass(result_type, (LegacyAPIResponse, BaseAPIResponse)):
        return "raw"
    return "response"


def _finish(call: Call, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """ResultHandler for every ``create`` / ``parse``: record, or proxy a stream
    or a raw response whose body is still to be read."""
    kind = _result_kind(result.__class__)
    if kind == "response":
        call.succeed(call.adapter.response_outcome(result))
    elif kind == "raw":
        raw: Any = result
        body = None if kwargs.get("stream") is True else _read_body(raw.http_response)
        if body is None:
            return _RawResponseProxy(raw, call, args, kwargs)
        call.succeed(_body_outcome(call, raw.http_response, body))
    else:
        return _proxy_stream(call, result, args, kwargs, kind == "async_stream")
    return result


def _proxy_stream(call: Call, stream: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  is_async: bool) -> Any:
    accumulator: Any = call.adapter.new_accumulator(args, kwargs)
    # Stream chunks carry no request id; the response headers do.
    accumulator.request_id = stream.response.headers.get("x-request-id")
    recorder = StreamRecorder(call, accumulator)
    sink = _STREAM_SINK.get()
    if sink is not None:
        sink.append(recorder)
    injected = isinstance(kwargs.get("stream_options"), _InjectedStreamOptions)
    if is_async:
        return (_UsageHidingAsyncStream if injected else AsyncStreamProxy)(stream, recorder)
    return (_UsageHidingSyncStream if injected else SyncStreamProxy)(stream, recorder)


def _read_body(http_response: Any) -> bytes | None:
    """The body the SDK has read, or None while it is unread (a streamed response)."""
    try:
        body = http_response.content  # raises while the body is unread
    except Exception:
        return None
    return body if isinstance(body, bytes) else None


def _body_outcome(call: Call, http_response: Any, body: bytes) -> Outcome:
    """What a raw response's JSON body tells, read as the SDK's models are."""
    outcome = _headers_outcome(http_response)
    try:
        decoded = json.loads(body)
    except ValueError:
        return outcome
    if not isinstance(decoded, dict):
        return outcome
    parsed = call.adapter.response_outcome(as_attributes(decoded))
    parsed.request_id = parsed.request_id or outcome.request_id
    return parsed


def _headers_outcome(http_response: Any) -> Outcome:
    outcome = Outcome()
    outcome.request_id = as_text(http_response.headers.get("x-request-id"))
    return outcome


def _unread_outcome(call: Call, http_response: Any, kwargs: dict[str, Any]) -> Outcome:
    """What is known of a call whose body nobody read through the SDK: the
    request id and, for embeddings, the vectors asked for (one per input, the
    ``dimensions`` requested), so the event stays valid when it can be."""
    body = _read_body(http_response)  # the user may have read it as bytes
    if body is not None and kwargs.get("stream") is not True:
        outcome = _body_outcome(call, http_response, body)
    else:
        outcome = _headers_outcome(http_response)
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


class _RawResponseProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A raw response (``with_streaming_response``, or a stream asked for with
    ``with_raw_response``) whose body is unread when ``create`` returns. The
    call ends as it would without the raw layer: ``parse()`` of a stream gives
    the stream's timing proxy, whose end records the call; ``parse()``,
    ``read()``, ``text()`` or ``json()`` of a body records it from the body.
    Closed or dropped unread, it is recorded from what is known then."""

    def __init__(self, wrapped: Any, call: Call, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_args = args
        self._self_kwargs = kwargs
        self._self_parsed: tuple[Any, Any] | None = None  # (the SDK's stream, our proxy)
        self._self_call = call  # last: __del__ acts only on a fully built proxy

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.parse(*args, **kwargs), self._self_on_parsed)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.read(*args, **kwargs), self._self_on_read)

    def text(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.text(*args, **kwargs), self._self_on_read)

    def json(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.json(*args, **kwargs), self._self_on_read)

    def close(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.__wrapped__.close(*args, **kwargs)
        except BaseException:
            self._self_on_closed(None)
            raise
        return self._self_then(result, self._self_on_closed)

    def _self_then(self, result: Any, finish: Callable[[Any], Any]) -> Any:
        """``finish(result)`` now, or once the async client's coroutine gave it."""
        if inspect.isawaitable(result):
            return self._self_when_done(result, finish)
        return self._self_guarded(finish, result)

    async def _self_when_done(self, awaitable: Any, finish: Callable[[Any], Any]) -> Any:
        return self._self_guarded(finish, await awaitable)

    def _self_guarded(self, finish: Callable[[Any], Any], result: Any) -> Any:
        try:
            return finish(result)
        except Exception:
            self._self_call.sensor.note_internal_error(f"{PROVIDER} raw response")
            return result

    def _self_on_parsed(self, parsed: Any) -> Any:
        seen = self._self_parsed
        if seen is not None:  # the SDK caches parse(); so do we
            return seen[1] if seen[0] is parsed else parsed
        kind = _result_kind(parsed.__class__)
        if kind not in ("stream", "async_stream"):
            return self._self_on_read(parsed)
        proxy = _proxy_stream(self._self_call, parsed, self._self_args, self._self_kwargs,
                              kind == "async_stream")
        self._self_parsed = (parsed, proxy)
        return proxy

    def _self_on_read(self, result: Any) -> Any:
        self._self_call.succeed(_unread_outcome(self._self_call, self.__wrapped__.http_response,
                                                self._self_kwargs))
        return result

    def _self_on_closed(self, result: Any) -> Any:
        """Leaving ``with_streaming_response``'s block: a stream still read ends
        as a stream closed early does; an unread body as what is known."""
        parsed = self._self_parsed
        if parsed is not None:
            parsed[1]._self_recorder.abort()
            return result
        return self._self_on_read(result)

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and self._self_parsed is None:
            self._self_guarded(self._self_on_read, None)


# --------------------------------------------------------------------------
# inject_stream_usage (opt-in): ask for the usage chunk the caller did not.

# The SDK's sentinels for an argument not given (``omit``, ``NOT_GIVEN``), by
# class name: the same in every SDK version that has them, and no import here.
_NOT_GIVEN = frozenset(("Omit", "NotGiven"))


def _with_injected_usage(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``prepare`` hook of the create wrappers (runs for recorded calls only)."""
    if kwargs.get("stream") is not True:
        return kwargs
    sensor = _sensor.active()
    if sensor is None or not sensor.config.inject_stream_usage:
        return kwargs
    options = kwargs.get("stream_options")
    if type(options).__name__ in _NOT_GIVEN:
        options = None  # the SDK's "not given" (openai-agents always passes one)
    if isinstance(options, dict) and "include_usage" in options:
        return kwargs
    if options is not None and not isinstance(options, dict):
        return kwargs  # something we do not understand: leave it
    injected = _InjectedStreamOptions(options or {})
    injected["include_usage"] = True
    return {**kwargs, "stream_options": injected}


# --------------------------------------------------------------------------
# .stream() managers: the inner create() reports; the proxy ends that record
# when the ``with`` block is left before the stream was read to its end.

class _SyncStreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[misc,type-arg,unused-ignore]
    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._self_recorders: list[StreamRecorder] = []

    def __enter__(self) -> Any:
        token = _STREAM_SINK.set(self._self_recorders)
        try:
            stream = self.__wrapped__.__enter__()
        finally:
            _STREAM_SINK.reset(token)
        return _closing_ends(stream, self._self_recorders, _SyncHelperStreamProxy)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            _end_recorders(self._self_recorders, exc)


class _AsyncStreamManagerProxy(wrapt.ObjectProxy):  # type: ignore[misc,type-arg,unused-ignore]
    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)
        self._self_recorders: list[StreamRecorder] = []

    async def __aenter__(self) -> Any:
        token = _STREAM_SINK.set(self._self_recorders)
        try:
            stream = await self.__wrapped__.__aenter__()
        finally:
            _STREAM_SINK.reset(token)
        return _closing_ends(stream, self._self_recorders, _AsyncHelperStreamProxy)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            _end_recorders(self._self_recorders, exc)


class _SyncHelperStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc,type-arg,unused-ignore]
    """The helper's stream (``ChatCompletionStream``, ``ResponseStream``): its
    ``close()`` closes the HTTP response itself, past the raw stream's proxy,
    so the record is ended here."""

    def __init__(self, wrapped: Any, recorders: list[StreamRecorder]) -> None:
        super().__init__(wrapped)
        self._self_recorders = recorders

    def __next__(self) -> Any:  # wrapt proxies __iter__, not the iterator's methods
        return self.__wrapped__.__next__()

    def __aiter__(self) -> Any:
        return self.__wrapped__.__aiter__()

    def __anext__(self) -> Any:
        return self.__wrapped__.__anext__()

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            _end_recorders(self._self_recorders, None)


class _AsyncHelperStreamProxy(_SyncHelperStreamProxy):
    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            _end_recorders(self._self_recorders, None)


def _closing_ends(stream: Any, recorders: list[StreamRecorder],
                  proxy: type[_SyncHelperStreamProxy]) -> Any:
    if not recorders:  # the inner create() was not recorded: nothing to end
        return stream
    try:
        return proxy(stream, recorders)
    except Exception:
        return stream


def _end_recorders(recorders: list[StreamRecorder], exc: BaseException | None) -> None:
    import asyncio

    for recorder in recorders:
        if exc is not None and not isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
            recorder.error(exc)
        else:
            recorder.abort()


def _stream_manager_wrapper(proxy: type[wrapt.ObjectProxy[Any]]) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        if _IN_CALL.get() or _sensor.active() is None:
            return manager
        try:
            return proxy(manager)
        except Exception:
            return manager

    return wrapper


# --------------------------------------------------------------------------
# Patching.

_PLAN: dict[str, list[tuple[str, str, Callable[..., Any]]]] = {
    "openai.resources.chat.completions.completions": [
        ("Completions", "create",
         sync_wrapper(CHAT, handler=_finish, prepare=_with_injected_usage)),
        ("Completions", "parse", sync_wrapper(CHAT, handler=_finish)),
        ("Completions", "stream", _stream_manager_wrapper(_SyncStreamManagerProxy)),
        ("AsyncCompletions", "create",
         async_wrapper(CHAT, handler=_finish, prepare=_with_injected_usage)),
        ("AsyncCompletions", "parse", async_wrapper(CHAT, handler=_finish)),
        ("AsyncCompletions", "stream", _stream_manager_wrapper(_AsyncStreamManagerProxy)),
    ],
    "openai.resources.responses.responses": [
        ("Responses", "create", sync_wrapper(RESPONSES, handler=_finish)),
        ("Responses", "parse", sync_wrapper(RESPONSES, handler=_finish)),
        ("Responses", "stream", _stream_manager_wrapper(_SyncStreamManagerProxy)),
        ("AsyncResponses", "create", async_wrapper(RESPONSES, handler=_finish)),
        ("AsyncResponses", "parse", async_wrapper(RESPONSES, handler=_finish)),
        ("AsyncResponses", "stream", _stream_manager_wrapper(_AsyncStreamManagerProxy)),
    ],
    "openai.resources.embeddings": [
        ("Embeddings", "create", sync_wrapper(EMBEDDINGS, "embeddings", _finish)),
        ("AsyncEmbeddings", "create", async_wrapper(EMBEDDINGS, "embeddings", _finish)),
    ],
    "openai.resources.completions": [
        ("Completions", "create",
         sync_wrapper(TEXT_COMPLETION, handler=_finish, prepare=_with_injected_usage)),
        ("AsyncCompletions", "create",
         async_wrapper(TEXT_COMPLETION, handler=_finish, prepare=_with_injected_usage)),
    ],
}
# Older openai (1.40 checked) defines the chat classes in this module, not a package.
_PLAN["openai.resources.chat.completions"] = _PLAN["openai.resources.chat.completions.completions"]

_originals: dict[tuple[type, str], Any] = {}


def patch_module(module_name: str) -> None:
    """Wrap the entry points ``module_name`` defines (idempotent)."""
    module = importlib.import_module(module_name)
    for class_name, attribute, wrapper in _PLAN.get(module_name, ()):
        cls = getattr(module, class_name, None)
        if cls is None or (cls, attribute) in _originals or attribute not in vars(cls):
            continue
        _originals[(cls, attribute)] = vars(cls)[attribute]
        wrapt.wrap_function_wrapper(cls, attribute, wrapper)


def unpatch() -> None:
    """Put every original entry point back."""
    for (cls, attribute), original in list(_originals.items()):
        setattr(cls, attribute, original)
        del _originals[(cls, attribute)]
