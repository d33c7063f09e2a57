"""The application's own OpenTelemetry span, when one is active as an LLM call
starts: the call's span becomes its child (same trace, parent span id).

Read on the caller's thread, so as cheaply as possible. The caller looks
``opentelemetry.trace`` up in ``sys.modules`` (the sensor never imports it,
and never requires it). When it is there (the application traces, or a
library imported it: anthropic 2.x does whenever the API package is
installed), the current span is read straight from the context variable
where OpenTelemetry's default runtime context keeps it: the public
``get_current_span()`` goes through five Python calls, which cost a call
several times what the sensor's own recording of it does. Any other runtime
context, or a change of those internals, falls back to the public API.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

Parent = tuple[int, int, int]  # trace id, span id, trace flags

_modules = sys.modules
_current_span: Callable[[], Any] | None = None


def active_parent(trace: ModuleType) -> Parent | None:
    """The active span's ``(trace_id, span_id, trace_flags)``, or None; ``trace``
    is ``opentelemetry.trace``, which the caller found in ``sys.modules``."""
    try:
        span = (_current_span or _span_reader(trace))()
        if span is None:
            return None
        context = span.get_span_context()
        if context.is_valid:
            return (context.trace_id, context.span_id, int(context.trace_flags))
    except Exception:  # an API of another shape: no parent, never an error for the call
        pass
    return None


def _span_reader(trace: ModuleType) -> Callable[[], Any]:
    """A function returning the current span (or None), made once."""
    global _current_span
    reader = _direct_reader() or _public_reader(trace)
    _current_span = reader
    return reader


def _direct_reader() -> Callable[[], Any] | None:
    """The default runtime context's variable and the span's key in it."""
    from contextvars import ContextVar

    context = _modules.get("opentelemetry.context")
    propagation = _modules.get("opentelemetry.trace.propagation")
    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    key = getattr(propagation, "_SPAN_KEY", None)
    if not isinstance(variable, ContextVar) or not isinstance(key, str):
        return None
    current = variable.get

    def read() -> Any:
        return current().get(key)

    try:
        read()
    except Exception:  # not a mapping: not the context this module knows
        return None
    return read


def _public_reader(trace: ModuleType) -> Callable[[], Any]:
    get_current_span = trace.get_current_span

    def read() -> Any:
        return get_current_span()

    return read
