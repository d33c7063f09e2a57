"""The application's own OpenTelemetry span, when one is active as an LLM call
starts: the call's span becomes its child (same trace, parent span id).

Read on the caller's thread, so as cheaply as possible: one look-up in
``sys.modules`` when the application never imported ``opentelemetry.trace``
(the sensor never imports it, and never requires it), else the current span's
context, three integers.
"""

from __future__ import annotations

import sys

_modules = sys.modules

Parent = tuple[int, int, int]  # trace id, span id, trace flags


def active_parent() -> Parent | None:
    """The active span's ``(trace_id, span_id, trace_flags)``, or None."""
    trace = _modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return (context.trace_id, context.span_id, int(context.trace_flags))
    except Exception:  # an API of another shape: no parent, never an error for the call
        pass
    return None
