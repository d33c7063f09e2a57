"""What an SDK entry point returned: its kind (a stream, a raw response, the
response itself), decided once per class, and the proxy of a raw response
whose body is still unread when the entry point returns.

The Anthropic and OpenAI SDKs share one layout (``<sdk>._streaming``'s
``Stream`` / ``AsyncStream``, ``<sdk>._response.BaseAPIResponse``,
``<sdk>._legacy_response.LegacyAPIResponse``), so both read it here.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any

import wrapt

from ._call import Call

# Result classes whose kind is remembered per SDK: a bound, since a response
# class per user-made pydantic model (e.g. ``parse`` with a model built per
# call) must not be kept alive forever.
RESULT_KINDS_KEPT = 256

ResultKind = Callable[[type], "str | None"]


@functools.cache
def stream_classes(sdk: str) -> tuple[type, type]:
    """``(Stream, AsyncStream)`` of ``sdk`` ("openai", "anthropic"), imported on
    first use, from the submodule: patching may run while the SDK is still
    being imported."""
    streaming = importlib.import_module(f"{sdk}._streaming")
    return streaming.Stream, streaming.AsyncStream


@functools.cache
def raw_response_classes(sdk: str) -> tuple[type, ...]:
    """The SDK's raw response classes (``with_raw_response``, ``with_streaming_response``)."""
    classes = []
    for module_name, class_name in ((f"{sdk}._response", "BaseAPIResponse"),
                                    (f"{sdk}._legacy_response", "LegacyAPIResponse")):
        try:
            classes.append(getattr(importlib.import_module(module_name), class_name))
        except (ImportError, AttributeError):
            continue
    return tuple(classes)


def result_kinds(sdk: str) -> ResultKind:
    """A function telling what an entry point's result of a class is, once per
    class (two ``isinstance`` checks per call cost more than the cache):
    ``"stream"``, ``"async_stream"``, ``"raw"``, ``"response"``, or None when
    the SDK's raw response classes could not be imported and only the object
    itself can tell (see :func:`looks_raw`)."""

    @functools.lru_cache(maxsize=RESULT_KINDS_KEPT)
    def result_kind(result_type: type) -> str | None:
        stream, async_stream = stream_classes(sdk)
        if issubclass(result_type, async_stream):
            return "async_stream"
        if issubclass(result_type, stream):
            return "stream"
        raw_classes = raw_response_classes(sdk)
        if not raw_classes:
            return None
        return "raw" if issubclass(result_type, raw_classes) else "response"

    return result_kind


def looks_raw(result: Any) -> bool:
    """A raw response by its shape, for an SDK whose raw classes moved."""
    return hasattr(result, "http_response") and callable(getattr(result, "parse", None))


class RawResponseProxy(wrapt.ObjectProxy):  # type: ignore[misc,type-arg,unused-ignore]
    """A raw response (``with_raw_response`` / ``with_streaming_response``)
    whose body is unread when the entry point returns: ``parse()`` finishes the
    call (the response recorded, a stream given its timing proxy); never
    parsed (the user read the bytes), it is finished from what is known when
    dropped. A provider says how: ``_self_on_parsed(parsed)`` returns what the
    user gets from ``parse()``; ``_self_on_unread(result)`` records the call
    from what is known and returns ``result``."""

    def __init__(self, wrapped: Any, call: Call, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_args = args
        self._self_kwargs = kwargs
        self._self_parsed: tuple[Any, Any] | None = None  # (SDK's result, what the user got)
        self._self_call = call  # last: __del__ acts only on a fully built proxy

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_then(self.__wrapped__.parse(*args, **kwargs), self._self_parse_once)

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
            self._self_call.sensor.note_internal_error(
                f"{self._self_call.adapter.provider} raw response")
            return result

    def _self_parse_once(self, parsed: Any) -> Any:
        seen = self._self_parsed
        if seen is not None:  # the SDK caches parse(); so do we
            return seen[1] if seen[0] is parsed else parsed
        user_value = self._self_on_parsed(parsed)
        self._self_parsed = (parsed, user_value)
        return user_value

    def _self_on_parsed(self, parsed: Any) -> Any:
        raise NotImplementedError

    def _self_on_unread(self, result: Any) -> Any:
        raise NotImplementedError

    def __del__(self) -> None:
        call = getattr(self, "_self_call", None)
        if call is not None and self._self_parsed is None:
            self._self_guarded(self._self_on_unread, None)
