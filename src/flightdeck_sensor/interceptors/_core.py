"""The shared call-recording core: one place for pre/post/error events, timing,
the re-entrancy guard and stream finalization. Providers supply only data and
extractors (an :class:`Adapter`); nothing here knows an SDK.
"""

from __future__ import annotations

import contextvars
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import wrapt

from .. import _sensor
from ._errors import ErrorFacts

# True while an instrumented call is running in this context: inner layers
# (litellm -> openai SDK, openai .stream() -> create) stay silent (decision 5).
_IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "flightdeck_in_llm_call", default=False)

ToolCall = tuple[str, Any]  # (tool name, arguments as the response gave them)
# Result classes whose kind (stream, raw response, message) is remembered per
# provider: a bound, since a response class per user-made pydantic model (e.g.
# ``parse`` with a model built per call) must not be kept alive forever.
RESULT_KINDS_KEPT = 256


class Outcome:
    """What a finished response tells us. Every field optional: extractors set
    what they find and leave the rest at the defaults ``__init__`` gives.
    The token fields hold what :func:`as_count` let through: the event takes
    them as they are.

    Slots, every field set in ``__init__``, no arguments: CPython 3.12 does not
    specialize reads and writes of an attribute that shadows a class-level
    default (each cost about four times a slot's), and a class called with
    keyword arguments builds a dict for them (a dataclass cost 1.7 µs to make).
    """

    __slots__ = ("content", "model", "output_dimensions", "provider_metadata", "request_id",
                 "stop_reason", "tokens_cache_creation", "tokens_cache_read", "tokens_input",
                 "tokens_output", "tool_calls", "usage_source")

    def __init__(self) -> None:
        self.model: str | None = None
        self.tokens_input: int | None = None  # includes cached tokens
        self.tokens_output: int | None = None
        self.tokens_cache_read: int | None = None
        self.tokens_cache_creation: int | None = None
        self.usage_source = "absent"  # reported | estimated | absent
        self.stop_reason: str | None = None
        self.request_id: str | None = None
        self.provider_metadata: dict[str, Any] = {}
        self.tool_calls: Sequence[ToolCall] = ()
        self.content: Any = None  # response content, sent only with prompt capture
        self.output_dimensions: tuple[int, int] | None = None  # embeddings: (count, dimension)

    def __repr__(self) -> str:
        found = ", ".join(f"{name}={getattr(self, name)!r}" for name in _OUTCOME_FIELDS)
        return f"Outcome({found})"


_OUTCOME_FIELDS = ("model", "tokens_input", "tokens_output", "tokens_cache_read",
                   "tokens_cache_creation", "usage_source", "stop_reason", "request_id",
                   "provider_metadata", "tool_calls", "content", "output_dimensions")


class Accumulator(Protocol):
    """Folds stream chunks into an Outcome; provider-specific."""

    def add(self, chunk: Any) -> None: ...

    def outcome(self) -> Outcome: ...


class Adapter(Protocol):
    """Everything provider-specific the core needs (see STYLE.md: providers are data)."""

    provider: str

    def request_model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None: ...

    def request_content(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    def response_outcome(self, response: Any) -> Outcome: ...

    def new_accumulator(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Accumulator: ...

    def error_facts(self, exc: BaseException) -> ErrorFacts: ...


_CHARS_PER_TOKEN = 4  # the estimate's rule of thumb: ~4 characters a token


def _char_count(value: Any, depth: int) -> int:
    """Characters of text in a JSON-like request, an int counted as a token's
    worth (on the hot path: exact type checks and one loop, no
    generator per level; a call only for a container, never for a None,
    number or bool)."""
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return 0
    if depth > 6:
        return 0
    total = 0
    for item in items:
        kind = type(item)
        if kind is str:
            total += len(item)
        elif kind is dict:  # a message: its strings counted here, one call fewer each
            for part in item.values():
                kind = type(part)
                if kind is str:
                    total += len(part)
                elif kind is list or kind is dict or kind is tuple:
                    total += _char_count(part, depth + 2)
                elif kind is int:
                    total += _CHARS_PER_TOKEN
        elif kind is list or kind is tuple:
            total += _char_count(item, depth + 1)
        elif kind is int:  # a token id (embeddings' pre-tokenized input), a number: a token
            total += _CHARS_PER_TOKEN
    return total


# A ``tools`` list is counted once, then its count reused while the same list,
# of the same length, comes back: an agent passes one list to every call, and
# its JSON schemas are about half of what a walk of an agent's request visits.
# Kept with the list itself (so its id cannot pass to another list), at most
# _TOOLS_KEPT of them. A tool edited in place keeps the count it had: this is
# an estimate.
_TOOLS_KEPT = 8
_tools_counted: dict[int, tuple[list[Any], int, int]] = {}


# A conversation is counted once per message while the same list comes back
# longer: an agent appends each round to one list and sends it again, so a walk
# of the whole list would cost more at every turn (a call's cost growing with
# the conversation, the conversation's cost with its square). Kept with the
# list: a copy of the items counted and their count. When the list still
# starts with those items (the same objects, or equal ones), only what was
# appended is walked; otherwise it is all walked again. A message edited in
# place keeps its count: this is an estimate. Only a ``messages`` or ``input``
# list of _HISTORY_MIN items or more (shorter ones cost little to walk), an
# ``input`` not of strings, token ids or lists of them (an embeddings batch:
# not to be kept alive), at most _HISTORIES_KEPT of them: each keeps its
# request's messages alive until another list takes its place.
_HISTORY_MIN = 8
_HISTORIES_KEPT = 4
_histories_counted: dict[int, tuple[list[Any], list[Any], int]] = {}


def _request_chars(content: Any) -> int:
    """_char_count of a request's content fields, a ``tools`` list counted once
    and a long conversation counted from where it was last counted (the top
    level of _char_count, written for a dict of fields)."""
    if type(content) is not dict:
        return _char_count(content, 0)
    total = 0
    for name, value in content.items():
        kind = type(value)
        if kind is str:
            total += len(value)
        elif kind is list:
            if name == "tools":
                total += _tools_chars(value)
            elif name == "messages":  # first: the common case costs one test more
                total += (_history_chars(value) if len(value) >= _HISTORY_MIN
                          else _char_count(value, 1))
            else:
                first = type(value[0]) if value else str
                if first is int or first is list:
                    total += _token_ids_chars(value)
                elif first is not str and name == "input" and len(value) >= _HISTORY_MIN:
                    total += _history_chars(value)  # the Responses API's input items
                else:
                    total += _char_count(value, 1)
        elif kind is dict or kind is tuple:
            total += _char_count(value, 1)
    return total


def _tools_chars(tools: list[Any]) -> int:
    seen = _tools_counted.get(id(tools))
    if seen is not None and seen[0] is tools and seen[1] == len(tools):
        return seen[2]
    chars = _char_count(tools, 1)
    if len(_tools_counted) >= _TOOLS_KEPT:
        _tools_counted.clear()
    _tools_counted[id(tools)] = (tools, len(tools), chars)
    return chars


def _token_ids_chars(ids: list[Any]) -> int:
    """A list of token ids (embeddings' pre-tokenized input) or a batch of such
    lists, one token an id, counted by their lengths when the first and last
    items say so: a walk of every id cost ~65 ms for 2,048 inputs of 512 ids.
    Anything else is walked."""
    first, last = ids[0], ids[-1]
    if type(first) is int and type(last) is int:
        return len(ids) * _CHARS_PER_TOKEN
    if (type(first) is list and type(last) is list and first and last
            and type(first[0]) is int and type(last[0]) is int):
        try:
            return sum(map(len, ids)) * _CHARS_PER_TOKEN
        except TypeError:  # an item without a length among the lists: walk them
            pass
    return _char_count(ids, 1)


def _history_chars(messages: list[Any]) -> int:
    seen = _histories_counted.get(id(messages))
    if seen is not None and seen[0] is messages:
        counted, chars = seen[1], seen[2]
        known = len(counted)
        try:
            # A C loop over the items: identity first, == only for a replaced one.
            unchanged = len(messages) >= known and messages[:known] == counted
        except Exception:  # an item whose == raises (an array): walk it all
            unchanged = False
        if unchanged:
            if len(messages) == known:
                return chars
            added = messages[known:]
            chars += _char_count(added, 1)
            # A new entry, not the old one extended: the items and their count
            # stay consistent for another thread reading them meanwhile.
            _histories_counted[id(messages)] = (messages, counted + added, chars)
            return chars
    chars = _char_count(messages, 1)
    if len(_histories_counted) >= _HISTORIES_KEPT:
        _histories_counted.clear()
    _histories_counted[id(messages)] = (messages, messages[:], chars)
    return chars


def as_count(value: Any) -> int | None:
    """``value`` if it is a count (an int, not a bool, not negative), else None."""
    return value if type(value) is int and value >= 0 else None


def as_text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


FieldReader = Callable[[Any], tuple[Any, ...]]


def field_reader(*names: str) -> FieldReader:
    """A function reading ``names`` off a response object, in that order, each
    as ``getattr(obj, name, None)`` reads it, except a private ``_name`` (the
    SDKs' ``_request_id``), read from the instance dict only: unset, it is not
    there, and a ``getattr`` miss goes through pydantic's ``__getattr__`` and
    raises inside it (3 µs).

    Why not ``getattr``: the SDKs' pydantic models define ``__getattr__``, so
    CPython 3.12 cannot specialize reads of their attributes and each costs
    about 720 instructions (callgrind); the reader costs about 1,000 (the call,
    fetching the instance dict, the tuple) plus about 220 a name picked from
    the dict in C, so it pays from about four names. An object where a name is
    not in the dict (a field pydantic keeps in ``__pydantic_extra__``, a model
    of an older SDK, a model without ``_request_id``, no ``__dict__`` at all)
    is read carefully, name by name. Only a class attribute shadowing the
    instance dict (a property of the same name) would read differently; the
    SDKs' response models have none."""
    if len(names) < 2:  # itemgetter of one name gives the value, not a tuple
        raise ValueError("field_reader needs two names or more; use getattr for one")
    pick = operator.itemgetter(*names)

    def read(obj: Any) -> tuple[Any, ...]:
        try:
            found: tuple[Any, ...] = pick(obj.__dict__)
        except Exception:
            return _read_carefully(obj, names)
        return found

    return read


def _read_carefully(obj: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    instance = getattr(obj, "__dict__", None)
    fields = instance if isinstance(instance, dict) else {}
    return tuple(fields[name] if name in fields
                 else None if name[0] == "_" else getattr(obj, name, None)
                 for name in names)


class Call:
    """One intercepted LLM call. ``pre_call`` is recorded at construction; exactly
    one terminal event (post_call / embeddings / llm_error) follows, whatever path
    ends the call (``_done`` guards it)."""

    __slots__ = ("_done", "adapter", "kind", "model_requested", "sensor", "started_ns")

    def __init__(self, sensor: _sensor.Sensor, adapter: Adapter, kind: str,
                 args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.sensor = sensor
        self.adapter = adapter
        self.kind = kind  # "chat" or "embeddings"
        self._done = False
        self.model_requested = adapter.request_model(args, kwargs)
        content = adapter.request_content(args, kwargs)
        fields: dict[str, Any] = {
            "model": self.model_requested,
            "provider": adapter.provider,
            # A cheap local estimate of the input: ~4 characters a token.
            "tokens_input": _request_chars(content) // _CHARS_PER_TOKEN,
            "estimated_via": "heuristic",
        }
        if sensor.config.capture_prompts:
            _attach_content(sensor, fields, {"request": content})
        sensor.record("pre_call", fields)
        self.started_ns = time.perf_counter_ns()

    def latency_ms(self) -> int:
        return (time.perf_counter_ns() - self.started_ns) // 1_000_000

    def succeed(self, outcome: Outcome, streaming: dict[str, Any] | None = None) -> None:
        if self._done:
            return
        self._done = True
        fields = self._outcome_fields(outcome)
        if streaming is not None:
            fields["streaming"] = streaming
        if self.kind == "embeddings" and outcome.output_dimensions:
            fields["tokens_output"] = 0
            fields["tokens_total"] = fields["tokens_input"] or 0
            count, dimension = outcome.output_dimensions
            fields["output_dimensions"] = {"count": count, "dimension": dimension}
            self.sensor.record("embeddings", fields)
        else:
            # An embeddings call whose vectors nobody saw (a raw body left
            # unread) is a post_call: an embeddings event without
            # output_dimensions is rejected, and the call would be lost.
            self.sensor.record("post_call", fields)
        for name, arguments in outcome.tool_calls:
            tool = {"tool_name": name, "model": fields["model"], "provider": self.adapter.provider}
            if self.sensor.config.capture_prompts:
                _attach_content(self.sensor, tool, {"arguments": arguments})
            self.sensor.record("tool_call", tool)

    def _outcome_fields(self, outcome: Outcome) -> dict[str, Any]:
        tokens_in = outcome.tokens_input  # counts already (see Outcome)
        tokens_out = outcome.tokens_output
        total = (tokens_in or 0) + (tokens_out or 0) if (tokens_in or tokens_out) else None
        metadata = outcome.provider_metadata  # the outcome is this call's own: taken over
        if outcome.request_id:
            metadata["request_id"] = outcome.request_id
        fields: dict[str, Any] = {
            "model": outcome.model or self.model_requested,
            "model_requested": self.model_requested,
            "provider": self.adapter.provider,
            "tokens_input": tokens_in,
            "tokens_output": tokens_out,
            "tokens_total": total,
            "tokens_cache_read": outcome.tokens_cache_read,
            "tokens_cache_creation": outcome.tokens_cache_creation,
            "latency_ms": (time.perf_counter_ns() - self.started_ns) // 1_000_000,  # latency_ms()
            "stop_reason": outcome.stop_reason,
            "estimated_via": "none",
            "usage_source": outcome.usage_source,
            "provider_metadata": metadata,
        }
        if self.sensor.config.capture_prompts and outcome.content is not None:
            _attach_content(self.sensor, fields, {"response": outcome.content})
        return fields

    def fail(self, exc: BaseException, partial: Outcome | None = None,
             streaming: dict[str, Any] | None = None, stream_error: bool = False) -> None:
        if self._done:
            return
        self._done = True
        facts = self.adapter.error_facts(exc)
        if stream_error:
            facts.error_type = "stream_error"
        fields: dict[str, Any] = {
            "model": self.model_requested,
            "provider": self.adapter.provider,
            "latency_ms": self.latency_ms(),
            "retry_attempt": facts.attempt or 1,
            "terminal": True,
            "error": facts.as_event_field(self.sensor.config.capture_prompts),
        }
        if partial is not None:
            partial_fields = self._outcome_fields(partial)
            for key in ("tokens_input", "tokens_output", "tokens_total",
                        "tokens_cache_read", "tokens_cache_creation", "usage_source"):
                fields[key] = partial_fields[key]
        if streaming is not None:
            fields["streaming"] = streaming
        self.sensor.record("llm_error", fields)


def _attach_content(sensor: _sensor.Sensor, fields: dict[str, Any],
                    content: dict[str, Any]) -> None:
    from ._content import capped_content

    fields["has_content"] = True
    fields["content"] = capped_content(content, sensor.config.max_content_bytes)


# --------------------------------------------------------------------------
# Wrappers: the (wrapped, instance, args, kwargs) shape of wrapt.

ResultHandler = Callable[[Call, Any, tuple[Any, ...], dict[str, Any]], Any]


def _finish_plain(call: Call, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    call.succeed(call.adapter.response_outcome(result))
    return result


def _begin(adapter: Adapter, kind: str, args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Call | None:
    if _IN_CALL.get():
        return None
    sensor = _sensor._sensor  # _sensor.active(), inlined: this runs on every call
    if sensor is None or not sensor.accepting:
        return None
    try:
        return Call(sensor, adapter, kind, args, kwargs)
    except Exception:
        sensor.note_internal_error(f"{adapter.provider} pre_call")
        return None


def _record_failure(call: Call, exc: BaseException) -> None:
    try:
        call.fail(exc)
    except Exception:
        call.sensor.note_internal_error(f"{call.adapter.provider} llm_error")


KwargsHook = Callable[[dict[str, Any]], dict[str, Any]]


def _prepared(prepare: KwargsHook, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        return prepare(kwargs)
    except Exception:  # an opt-in must never break the call
        return kwargs


def sync_wrapper(adapter: Adapter, kind: str = "chat", handler: ResultHandler = _finish_plain,
                 prepare: KwargsHook | None = None) -> Callable[..., Any]:
    """A wrapt wrapper for a synchronous entry point.

    ``handler(call, result, args, kwargs)`` finishes the call from the SDK's
    return value and returns what the user gets (the value itself, or a
    transparent proxy for streams). ``prepare(kwargs)``, for a recorded call
    only, gives the arguments the SDK gets (an opt-in's, e.g. stream usage)."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = _begin(adapter, kind, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        if prepare is not None:
            kwargs = _prepared(prepare, kwargs)
        token = _IN_CALL.set(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _record_failure(call, exc)
            raise
        finally:
            _IN_CALL.reset(token)
        try:
            return handler(call, result, args, kwargs)
        except Exception:
            call.sensor.note_internal_error(f"{call.adapter.provider} post_call")
            return result

    return wrapper


def async_wrapper(adapter: Adapter, kind: str = "chat", handler: ResultHandler = _finish_plain,
                  prepare: KwargsHook | None = None) -> Callable[..., Any]:
    """The same for an ``async def`` entry point."""

    async def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:
        call = _begin(adapter, kind, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        if prepare is not None:
            kwargs = _prepared(prepare, kwargs)
        token = _IN_CALL.set(True)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _record_failure(call, exc)
            raise
        finally:
            _IN_CALL.reset(token)
        try:
            return handler(call, result, args, kwargs)
        except Exception:
            call.sensor.note_internal_error(f"{call.adapter.provider} post_call")
            return result

    return wrapper


# --------------------------------------------------------------------------
# Streams.

def _percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index] / 1_000_000


class StreamRecorder:
    """Chunk timing and accumulation for one streamed call; finalizes once.

    ``on_chunk`` is the per-chunk hot path (budget: 2 µs): it only notes the
    chunk's arrival time; gaps, percentiles and time to first chunk are worked
    out from those times once, when the stream ends."""

    __slots__ = ("accumulator", "call", "chunk_times", "finished")

    def __init__(self, call: Call, accumulator: Accumulator) -> None:
        self.call = call
        self.accumulator = accumulator
        self.chunk_times: list[int] = []  # time.perf_counter_ns() as each chunk arrived
        self.finished = False

    def on_chunk(self, chunk: Any) -> None:
        self.chunk_times.append(time.perf_counter_ns())
        try:
            self.accumulator.add(chunk)
        except Exception:
            self.call.sensor.note_internal_error(f"{self.call.adapter.provider} stream chunk")

    def streaming_field(self, outcome: str, abort_reason: str | None) -> dict[str, Any]:
        times = self.chunk_times
        gaps = sorted(map(operator.sub, times[1:], times))  # from each chunk to the next
        inter = ({"p50": _percentile(gaps, 0.5), "p95": _percentile(gaps, 0.95),
                  "max": gaps[-1] / 1_000_000} if gaps else None)
        ttft = (times[0] - self.call.started_ns) // 1_000_000 if times else None
        return {"ttft_ms": ttft, "chunk_count": len(times), "inter_chunk_ms": inter,
                "final_outcome": outcome, "abort_reason": abort_reason}

    def _outcome(self) -> Outcome:
        try:
            return self.accumulator.outcome()
        except Exception:
            self.call.sensor.note_internal_error(f"{self.call.adapter.provider} stream outcome")
            return Outcome()

    def complete(self) -> None:
        if not self.finished:
            self.finished = True
            self._safely(lambda: self.call.succeed(self._outcome(),
                                                   self.streaming_field("completed", None)))

    def abort(self, reason: str = "client_aborted") -> None:
        if not self.finished:
            self.finished = True
            self._safely(lambda: self.call.succeed(self._outcome(),
                                                   self.streaming_field("aborted", reason)))

    def error(self, exc: BaseException) -> None:
        if not self.finished:
            self.finished = True
            self._safely(lambda: self.call.fail(exc, self._outcome(),
                                                self.streaming_field("aborted", None),
                                                stream_error=True))

    def _safely(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:
            self.call.sensor.note_internal_error(f"{self.call.adapter.provider} stream end")


class SyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """Transparent proxy of an SDK's sync stream: iteration is timed, ``close()``,
    ``with`` and GC finalize. Everything else goes to the SDK object."""

    def __init__(self, wrapped: Any, recorder: StreamRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder

    def __iter__(self) -> Iterator[Any]:
        # A generator, not ``self``: a for loop resumes a generator for a
        # fraction of what calling a proxy's ``__next__`` costs per chunk.
        # ``next()`` on the proxy itself still works, as on the SDK's stream.
        recorder = self._self_recorder
        try:
            for chunk in self.__wrapped__:
                recorder.on_chunk(chunk)
                yield chunk
        except GeneratorExit:
            raise  # the loop was left early: close(), ``with`` or GC end the record
        except BaseException as exc:
            recorder.error(exc)
            raise
        recorder.complete()

    def __next__(self) -> Any:
        recorder = self._self_recorder
        try:
            chunk = next(self.__wrapped__)
        except StopIteration:
            recorder.complete()
            raise
        except BaseException as exc:
            recorder.error(exc)
            raise
        recorder.on_chunk(chunk)
        return chunk

    def __enter__(self) -> Any:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_end_after_exit(exc)

    def _self_end_after_exit(self, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, GeneratorExit):
            self._self_recorder.error(exc)
        else:
            self._self_recorder.abort()

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_recorder.abort()

    def __del__(self) -> None:
        recorder = getattr(self, "_self_recorder", None)
        if recorder is not None and not recorder.finished:
            recorder.abort()


class AsyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """The async twin of :class:`SyncStreamProxy`; cancellation counts as an abort."""

    def __init__(self, wrapped: Any, recorder: StreamRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        recorder = self._self_recorder
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            recorder.complete()
            raise
        except BaseException as exc:
            if _is_cancellation(exc):
                recorder.abort()
            else:
                recorder.error(exc)
            raise
        recorder.on_chunk(chunk)
        return chunk

    async def __aenter__(self) -> Any:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            if exc is not None and not _is_cancellation(exc):
                self._self_recorder.error(exc)
            else:
                self._self_recorder.abort()

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_recorder.abort()

    def __del__(self) -> None:
        recorder = getattr(self, "_self_recorder", None)
        if recorder is not None and not recorder.finished:
            recorder.abort()


def _is_cancellation(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, (asyncio.CancelledError, GeneratorExit))
