"""OpenAI SDK interceptor: chat completions, responses, embeddings, legacy completions.

Everything here is OpenAI-specific data: where the request names its model
and content, where a response keeps its usage, how each stream reports its
end. Recording, timing and stream finalization live in :mod:`._core`.

Entry points and the one-report rule (the user made one call: one is reported):

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

import contextvars
from collections.abc import Callable, Iterator
from typing import Any, cast

import wrapt

from ._core import (
    Accumulator,
    AsyncStreamProxy,
    Call,
    ErrorFacts,
    Outcome,
    RawResponseProxy,
    StreamRecorder,
    SyncStreamProxy,
    async_wrapper,
    classify,
    end_record,
    looks_raw,
    manager_wrapper,
    result_kinds,
    sync_wrapper,
    with_keyword_model,
)
from ._openai_read import (
    ChatStreamAccumulator,
    ResponsesStreamAccumulator,
    body_outcome,
    chat_outcome,
    embeddings_outcome,
    read_body,
    responses_outcome,
    text_completion_outcome,
    unread_outcome,
)

PROVIDER = "openai"

# Recorders of the streams created while a .stream() manager is being entered,
# so the manager proxy can end them when its ``with`` block is left.
_STREAM_SINK: contextvars.ContextVar[list[StreamRecorder] | None] = contextvars.ContextVar(
    "flightdeck_openai_stream_sink", default=None)


# --------------------------------------------------------------------------
# Adapters: what differs between the four OpenAI endpoints.

def _picked(kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: kwargs[name] for name in names if name in kwargs}


class OpenAIAdapter:
    """One OpenAI endpoint: the request fields that make its content, and how
    its responses and stream chunks are read."""

    provider = PROVIDER

    def __init__(self, content_fields: tuple[str, ...],
                 outcome_of: Callable[[Any], Outcome],
                 accumulator: Callable[[bool], Accumulator] | None = None) -> None:
        self.content_fields = content_fields
        self.response_outcome = outcome_of  # the function itself: one call fewer per call
        self.stream_accumulator = accumulator  # (capture prompts?) -> a stream's accumulator

    with_model = staticmethod(with_keyword_model)

    def request_model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        model = kwargs.get("model")  # as_text's check written in: on every call
        return model if isinstance(model, str) and model else None

    def request_content(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _picked(kwargs, self.content_fields)

    def error_facts(self, exc: BaseException) -> ErrorFacts:
        return classify(exc, PROVIDER)


CHAT = OpenAIAdapter(("messages", "tools", "functions"), chat_outcome, ChatStreamAccumulator)
TEXT_COMPLETION = OpenAIAdapter(("prompt", "suffix"), text_completion_outcome,
                                lambda capture: ChatStreamAccumulator(capture, legacy=True))
RESPONSES = OpenAIAdapter(("instructions", "input", "tools"), responses_outcome,
                          lambda capture: ResponsesStreamAccumulator())
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


_result_kind = result_kinds(PROVIDER)


def _finish(call: Call, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """ResultHandler for every ``create`` / ``parse``: record, or proxy a stream
    or a raw response whose body is still to be read."""
    kind = _result_kind(result.__class__)
    if kind is None:
        kind = "raw" if looks_raw(result) else "response"
    if kind == "response":
        call.succeed(call.adapter.response_outcome(result))
    elif kind == "raw":
        raw: Any = result
        body = None if kwargs.get("stream") is True else read_body(raw.http_response)
        if body is None:
            return _RawBodyResponse(raw, call, args, kwargs)
        call.succeed(body_outcome(call, raw.http_response, body))
    else:
        return _proxy_stream(call, result, args, kwargs, kind == "async_stream")
    return result


def _proxy_stream(call: Call, stream: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  is_async: bool) -> Any:
    adapter = cast(OpenAIAdapter, call.adapter)
    if adapter.stream_accumulator is None:
        raise TypeError(f"no stream accumulator for {adapter.content_fields}")
    accumulator: Any = adapter.stream_accumulator(call.sensor.config.capture_prompts)
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


class _RawBodyResponse(RawResponseProxy):
    """A raw response (``with_streaming_response``, or a stream asked for with
    ``with_raw_response``) whose body is unread when ``create`` returns. The
    call ends as it would without the raw layer: ``parse()`` of a stream gives
    the stream's timing proxy, whose end records the call; ``parse()``,
    ``read()``, ``text()`` or ``json()`` of a body records it from the body.
    Closed or dropped unread, it is recorded from what is known then."""

    def read(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.read(*args, **kwargs), self._self_on_unread)

    def text(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.text(*args, **kwargs), self._self_on_unread)

    def json(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.json(*args, **kwargs), self._self_on_unread)

    def close(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.__wrapped__.close(*args, **kwargs)
        except BaseException:
            self._self_on_closed(None)
            raise
        return self._self_then(result, self._self_on_closed)

    def _self_on_parsed(self, parsed: Any) -> Any:
        kind = _result_kind(parsed.__class__)
        if kind not in ("stream", "async_stream"):
            return self._self_on_unread(parsed)
        return _proxy_stream(self._self_call, parsed, self._self_args, self._self_kwargs,
                             kind == "async_stream")

    def _self_on_unread(self, result: Any) -> Any:
        """The body was read (by the SDK's parse or by the user), or never will be."""
        self._self_call.succeed(unread_outcome(self._self_call, self.__wrapped__.http_response,
                                                self._self_kwargs))
        return result

    def _self_on_closed(self, result: Any) -> Any:
        """Leaving ``with_streaming_response``'s block: a stream still read ends
        as a stream closed early does; an unread body as what is known."""
        parsed = self._self_parsed
        if parsed is None:
            return self._self_on_unread(result)
        recorder = getattr(parsed[1], "_self_recorder", None)
        if recorder is not None:
            end_record(recorder, None)
        return result


# --------------------------------------------------------------------------
# inject_stream_usage (opt-in): ask for the usage chunk the caller did not.

# The SDK's sentinels for an argument not given (``omit``, ``NOT_GIVEN``), by
# class name: the same in every SDK version that has them, and no import here.
_NOT_GIVEN = frozenset(("Omit", "NotGiven"))


def _with_injected_usage(call: Call, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``prepare`` hook of the create wrappers (runs for recorded calls only)."""
    if kwargs.get("stream") is not True or not call.sensor.config.inject_stream_usage:
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

class _EndsRecordsOnExit(wrapt.ObjectProxy):  # type: ignore[misc,type-arg,unused-ignore]
    """A ``.stream()`` manager: the streams its entry creates (through the
    recorded ``create``) are ended when its ``with`` block is left."""

    def __init__(self, wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_recorders: list[StreamRecorder] = []

    def __enter__(self) -> Any:
        token = _STREAM_SINK.set(self._self_recorders)
        try:
            stream = self.__wrapped__.__enter__()
        finally:
            _STREAM_SINK.reset(token)
        return _closing_ends(stream, self._self_recorders, _HelperStream)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            _end_all(self._self_recorders, exc)


class _AsyncEndsRecordsOnExit(_EndsRecordsOnExit):
    async def __aenter__(self) -> Any:
        token = _STREAM_SINK.set(self._self_recorders)
        try:
            stream = await self.__wrapped__.__aenter__()
        finally:
            _STREAM_SINK.reset(token)
        return _closing_ends(stream, self._self_recorders, _AsyncHelperStream)

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            _end_all(self._self_recorders, exc)


class _HelperStream(wrapt.ObjectProxy):  # type: ignore[misc,type-arg,unused-ignore]
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
            _end_all(self._self_recorders, None)


class _AsyncHelperStream(_HelperStream):
    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            _end_all(self._self_recorders, None)


def _closing_ends(stream: Any, recorders: list[StreamRecorder],
                  proxy: type[_HelperStream]) -> Any:
    if not recorders:  # the inner create() was not recorded: nothing to end
        return stream
    try:
        return proxy(stream, recorders)
    except Exception:
        return stream


def _end_all(recorders: list[StreamRecorder], exc: BaseException | None) -> None:
    for recorder in recorders:
        end_record(recorder, exc)


# The wrapper of each row of this provider's table (flightdeck_sensor._providers).
WRAPPERS: dict[str, Callable[..., Any]] = {
    "chat_create": sync_wrapper(CHAT, handler=_finish, prepare=_with_injected_usage),
    "async_chat_create": async_wrapper(CHAT, handler=_finish, prepare=_with_injected_usage),
    "chat_parse": sync_wrapper(CHAT, handler=_finish),
    "async_chat_parse": async_wrapper(CHAT, handler=_finish),
    "responses": sync_wrapper(RESPONSES, handler=_finish),
    "async_responses": async_wrapper(RESPONSES, handler=_finish),
    "embeddings": sync_wrapper(EMBEDDINGS, "embeddings", _finish),
    "async_embeddings": async_wrapper(EMBEDDINGS, "embeddings", _finish),
    "text_completion": sync_wrapper(TEXT_COMPLETION, "text_completion", _finish,
                                    prepare=_with_injected_usage),
    "async_text_completion": async_wrapper(TEXT_COMPLETION, "text_completion", _finish,
                                           prepare=_with_injected_usage),
    "stream": manager_wrapper(_EndsRecordsOnExit, CHAT, swaps_model=False),
    "async_stream": manager_wrapper(_AsyncEndsRecordsOnExit, CHAT, swaps_model=False),
}
