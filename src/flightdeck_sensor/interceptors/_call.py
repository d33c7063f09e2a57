"""One recorded call (:class:`Call`: its pre_call, then exactly one of
post_call / embeddings / llm_error) and the wrappers that run an SDK entry
point as one: the re-entrancy guard, the sensor's "never raise" boundary.
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable
from typing import Any

from .. import _sensor
from .._exceptions import BudgetExceededError, DirectiveError
from ..transport._wire import OTEL_KEY
from ._estimate import CHARS_PER_TOKEN, request_chars
from ._fields import Adapter, Outcome
from ._trace import active_parent

_modules = sys.modules

# True while an instrumented call is running in this context: inner layers
# (litellm -> openai SDK, openai .stream() -> create) stay silent: the user
# made one call, and one is reported.
IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "flightdeck_in_llm_call", default=False)

class Call:
    """One intercepted LLM call. ``pre_call`` is recorded at construction; exactly
    one terminal event (post_call / embeddings / llm_error) follows, whatever path
    ends the call (``_done`` guards it)."""

    __slots__ = ("_done", "adapter", "kind", "model_requested", "parent", "request_content",
                 "sensor", "started_ns")

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
            "tokens_input": request_chars(content) // CHARS_PER_TOKEN,
            "estimated_via": "heuristic",
        }
        if sensor.traced:  # its span goes to OTLP: note the span it is made under
            trace = _modules.get("opentelemetry.trace")  # only if the application traces
            self.parent = None if trace is None else active_parent(trace)
            self.request_content = None
        if sensor.config.capture_prompts:
            _attach_content(sensor, fields, {"request": content})
            self.request_content = fields["content"]
        sensor.record("pre_call", fields)
        sensor.last_model = self.model_requested
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
        if self.sensor.traced:  # what its OTLP span needs beyond the event
            fields[OTEL_KEY] = _traced(self, outcome.tool_calls)
        return fields

    def fail(self, exc: BaseException, partial: Outcome | None = None,
             streaming: dict[str, Any] | None = None, stream_error: bool = False) -> None:
        if self._done:
            return
        self._done = True
        self.sensor.record("llm_error", self._failure_fields(exc, partial, streaming,
                                                             stream_error))

    def _failure_fields(self, exc: BaseException, partial: Outcome | None,
                        streaming: dict[str, Any] | None, stream_error: bool) -> dict[str, Any]:
        facts = self.adapter.error_facts(exc)
        if stream_error:
            facts.error_type = "stream_error"
        fields: dict[str, Any] = {
            "model": self._sent_model(),
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
        if self.sensor.traced:
            fields[OTEL_KEY] = _traced(self, ())
        return fields

    def _sent_model(self) -> str | None:
        return self.model_requested


class DegradedCall(Call):
    """A call the control plane sent to another model than the one asked for:
    its events record ``model_requested`` (the program's) and ``model`` (the
    one served, or sent when the answer does not say)."""

    __slots__ = ("model_sent",)

    def __init__(self, sensor: _sensor.Sensor, adapter: Adapter, kind: str,
                 args: tuple[Any, ...], kwargs: dict[str, Any], model_sent: str) -> None:
        self.model_sent = model_sent
        super().__init__(sensor, adapter, kind, args, kwargs)

    def _outcome_fields(self, outcome: Outcome) -> dict[str, Any]:
        if outcome.model is None:
            outcome.model = self.model_sent
        return super()._outcome_fields(outcome)

    def _sent_model(self) -> str | None:
        return self.model_sent


def _traced(call: Call, tool_calls: Any) -> str | tuple[Any, ...]:
    """What a call's OTLP span needs beyond its terminal event: the operation
    alone (a string: no object made, none kept alive in the queue) for the
    common call, with no parent span, no tool call and no captured content."""
    parent, content = call.parent, call.request_content
    if parent is None and not tool_calls and content is None:
        return call.kind
    return (call.kind, parent, tool_calls, content)


class Swap(Exception):
    """Raised by :func:`begin` for a degraded call: the wrapper sends the call
    with these arguments (a copy of the program's, the model swapped). An
    exception rather than a second return value: an ordinary call pays nothing
    for it (a ``try`` costs nothing until something is raised)."""

    def __init__(self, call: Call | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.call = call
        self.args = args
        self.kwargs = kwargs


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


def begin(adapter: Adapter, kind: str, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> Call | None:
    """The call's record, its pre_call sent; None when nothing is to be recorded
    (inside another recorded call, or no sensor running)."""
    if IN_CALL.get():
        return None
    sensor = _sensor.process_sensor  # active(), inlined: a call more on every call's path
    if sensor is None or not sensor.accepting:
        return None
    if sensor.gate is not None:  # the control plane's one test on an ordinary call
        return _gated(sensor, adapter, kind, args, kwargs)
    try:
        return Call(sensor, adapter, kind, args, kwargs)
    except Exception:
        sensor.note_internal_error(f"{adapter.provider} pre_call")
        return None


def _gated(sensor: _sensor.Sensor, adapter: Adapter, kind: str, args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Call | None:
    """:func:`begin` under the control plane's gate: raises DirectiveError or
    BudgetExceededError when the call may not go out (before the provider is
    called, with no pre_call), :class:`Swap` when it goes to another model."""
    target = admit(sensor, adapter, args, kwargs)
    call: Call | None = None
    try:
        call = (Call(sensor, adapter, kind, args, kwargs) if target is None
                else DegradedCall(sensor, adapter, kind, args, kwargs, target))
    except Exception:
        sensor.note_internal_error(f"{adapter.provider} pre_call")
    if target is None:
        return call
    try:
        swapped_args, swapped_kwargs = adapter.with_model(args, kwargs, target)
    except Exception:
        sensor.note_internal_error(f"{adapter.provider} degrade")
        return call
    raise Swap(call, swapped_args, swapped_kwargs)


def admit(sensor: _sensor.Sensor, adapter: Adapter, args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> str | None:
    """The gate's verdict on a call: raises the two exceptions an operator or a
    budget asked for; else the model to send it to instead, or None. A failure
    of the sensor's own lets the call through unchanged."""
    gate = sensor.gate
    if gate is None:
        return None
    try:
        model = adapter.request_model(args, kwargs)
        estimate = request_chars(adapter.request_content(args, kwargs)) // CHARS_PER_TOKEN
        return gate.admit(sensor, adapter.provider, model, estimate)
    except (DirectiveError, BudgetExceededError):
        raise
    except Exception:
        sensor.note_internal_error(f"{adapter.provider} control plane check")
        return None


def with_keyword_model(args: tuple[Any, ...], kwargs: dict[str, Any],
                       model: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of a call whose model is a keyword, with ``model`` instead:
    a new dict (the program's, which a ``**params`` call hands over as it is,
    stays untouched)."""
    return args, {**kwargs, "model": model}


def _record_failure(call: Call, exc: BaseException) -> None:
    try:
        call.fail(exc)
    except Exception:
        call.sensor.note_internal_error(f"{call.adapter.provider} llm_error")


KwargsHook = Callable[[Call, dict[str, Any]], dict[str, Any]]


def _prepared(prepare: KwargsHook, call: Call, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        return prepare(call, kwargs)
    except Exception:  # an opt-in must never break the call
        return kwargs


def sync_wrapper(adapter: Adapter, kind: str = "chat", handler: ResultHandler = _finish_plain,
                 prepare: KwargsHook | None = None) -> Callable[..., Any]:
    """A wrapt wrapper for a synchronous entry point.

    ``handler(call, result, args, kwargs)`` finishes the call from the SDK's
    return value and returns what the user gets (the value itself, or a
    transparent proxy for streams). ``prepare(call, kwargs)``, for a recorded call
    only, gives the arguments the SDK gets (an opt-in's, e.g. stream usage)."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            call = begin(adapter, kind, args, kwargs)
        except Swap as swap:  # degraded: the model swapped on a copy of the arguments
            call, args, kwargs = swap.call, swap.args, swap.kwargs
        if call is None:
            return wrapped(*args, **kwargs)
        if prepare is not None:
            kwargs = _prepared(prepare, call, kwargs)
        token = IN_CALL.set(True)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            _record_failure(call, exc)
            raise
        finally:
            IN_CALL.reset(token)
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
        try:
            call = begin(adapter, kind, args, kwargs)
        except Swap as swap:  # degraded: the model swapped on a copy of the arguments
            call, args, kwargs = swap.call, swap.args, swap.kwargs
        if call is None:
            return await wrapped(*args, **kwargs)
        if prepare is not None:
            kwargs = _prepared(prepare, call, kwargs)
        token = IN_CALL.set(True)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _record_failure(call, exc)
            raise
        finally:
            IN_CALL.reset(token)
        try:
            return handler(call, result, args, kwargs)
        except Exception:
            call.sensor.note_internal_error(f"{call.adapter.provider} post_call")
            return result

    return wrapper


def silenced(read: Callable[[Any], Any], stream: Any) -> Any:
    """``read(stream)`` with inner layers silent, as inside an entry point: for a
    stream whose SDK sends its request lazily, on the first read (litellm)."""
    token = IN_CALL.set(True)
    try:
        return read(stream)
    finally:
        IN_CALL.reset(token)


async def silenced_async(read: Callable[[Any], Any], stream: Any) -> Any:
    """:func:`silenced` for an async stream's first read."""
    token = IN_CALL.set(True)
    try:
        return await read(stream)
    finally:
        IN_CALL.reset(token)


def manager_wrapper(proxy: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any],
                    adapter: Adapter, swaps_model: bool) -> Callable[..., Any]:
    """The wrapper of a ``.stream()`` helper, which returns a manager that sends
    the request when entered: the manager, as ``proxy(manager, args, kwargs)``
    gives it (outside another recorded call; the manager itself if that fails).

    Under the control plane's gate the call is checked here, as the stream is
    made: a stopped agent's ``.stream()`` raises. ``swaps_model``: a degrade
    is applied here, to the arguments the manager is made with (an Anthropic
    manager keeps them for its request); OpenAI's helper sends through
    ``create``, whose own wrapper swaps the model."""

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:
        if IN_CALL.get():
            return wrapped(*args, **kwargs)
        sensor = _sensor.process_sensor
        if sensor is not None and sensor.gate is not None and sensor.accepting:
            target = admit(sensor, adapter, args, kwargs)
            if target is not None and swaps_model:
                sent_args, sent_kwargs = adapter.with_model(args, kwargs, target)
                return _proxied(proxy, wrapped(*sent_args, **sent_kwargs), args, kwargs)
        return _proxied(proxy, wrapped(*args, **kwargs), args, kwargs)

    return wrapper


def _proxied(proxy: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any], manager: Any,
             args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The manager as ``proxy`` gives it, made with the program's own arguments
    (the call is recorded from them); the manager itself if that fails."""
    try:
        return proxy(manager, args, kwargs)
    except Exception:
        return manager
