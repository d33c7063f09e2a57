"""Events to OTLP spans: one span per LLM call, named and described by the
OpenTelemetry GenAI semantic conventions (docs/protocol.md, "OTLP export").

Runs on the sender thread only, in batches, and imports the official OTLP
protobuf definitions (``opentelemetry-proto``, the ``[otlp]`` extra) when the
first batch is converted: the caller's thread never pays for it.

A span is made from a call's terminal event (``post_call``, ``embeddings``,
``llm_error``), from the event's own fields and what ``TracedCall`` put under
:data:`OTEL_KEY`. Other events (``pre_call``, ``tool_call``, the session's)
make no span: a call's tool calls are its span's events.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from ._wire import OTEL_KEY, identity_fields

SPAN_EVENTS = frozenset(("post_call", "embeddings", "llm_error"))
SCOPE_NAME = "flightdeck_sensor"
# The GenAI semantic conventions this mapping follows (docs/protocol.md).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
MAX_ATTRIBUTE_CHARS = 64 * 1024  # a captured message or tool argument, cut beyond this
SPAN_KIND_CLIENT = 3
STATUS_CODE_ERROR = 2
OPERATIONS = frozenset(("chat", "embeddings", "text_completion"))
# The resource attributes made from the session's identity.
_RESOURCE_FROM_IDENTITY = (
    ("service.instance.id", "session_id"), ("host.name", "hostname"),
    ("gen_ai.agent.name", "agent_name"), ("gen_ai.agent.id", "agent_id"),
    ("flightdeck.flavor", "flavor"), ("flightdeck.agent_type", "agent_type"),
    ("flightdeck.parent_session_id", "parent_session_id"),
    ("flightdeck.agent_role", "agent_role"),
)

Event = dict[str, Any]


def makes_span(event: Event) -> bool:
    return event.get("event_type") in SPAN_EVENTS


class Converter:
    """Builds ``ExportTraceServiceRequest`` bodies; one per OTLP sender."""

    def __init__(self, resource: Iterable[tuple[str, str]], capture: bool,
                 protocol: str = "http/protobuf") -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        from opentelemetry.proto.common.v1 import common_pb2
        from opentelemetry.proto.trace.v1 import trace_pb2

        self._service = trace_service_pb2
        self._common = common_pb2
        self._trace = trace_pb2
        self._resource = tuple(resource)
        self._capture = capture
        self.json = protocol == "http/json"
        self._resources: dict[tuple[Any, ...], Any] = {}

    # -- the request ---------------------------------------------------------
    def body(self, events: list[Event]) -> bytes:
        """The request for ``events`` (each one :func:`makes_span`), serialized."""
        request = self._service.ExportTraceServiceRequest()
        by_identity: dict[Any, Any] = {}
        ids = os.urandom(24 * len(events))  # each span's trace and span ids: one read
        for index, event in enumerate(events):
            identity = identity_fields(event)
            # A session's identity is one dict (its events share it); a spooled
            # event carries its own copy, so its values are the key.
            key: Any = (id(identity) if identity is not event else
                        tuple(identity.get(name) for _, name in _RESOURCE_FROM_IDENTITY))
            scope_spans = by_identity.get(key)
            if scope_spans is None:
                resource_spans = request.resource_spans.add()
                _add_attributes(resource_spans.resource.attributes,
                                self._resource_attributes(identity))
                resource_spans.schema_url = SCHEMA_URL
                scope_spans = by_identity[key] = resource_spans.scope_spans.add()
                scope_spans.scope.name = SCOPE_NAME
                scope_spans.scope.version = _sensor_version()
                scope_spans.schema_url = SCHEMA_URL
            self._fill_span(scope_spans.spans.add(), event, identity,
                            ids[24 * index:24 * index + 24])
        if self.json:
            return _otlp_json(request)
        data: bytes = request.SerializeToString()
        return data

    def _resource_attributes(self, identity: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = dict(self._resource)
        for attribute, field in _RESOURCE_FROM_IDENTITY:
            value = identity.get(field)
            if value:
                values.setdefault(attribute, value)
        values.setdefault("service.name", identity.get("flavor") or "flightdeck_sensor")
        return values

    # -- one span ------------------------------------------------------------
    def _fill_span(self, span: Any, event: Event, identity: dict[str, Any],
                   ids: bytes) -> None:
        """``ids``: 24 random bytes, the span's trace id (when it has no parent) and id."""
        kind, parent, tool_calls, request_content = _traced(event)
        operation = _operation(event, kind)
        requested = event.get("model_requested") or event.get("model")
        span.name = f"{operation} {requested}" if requested else operation
        span.kind = SPAN_KIND_CLIENT
        if parent is not None:
            trace_id, parent_id, flags = parent
            span.trace_id = trace_id.to_bytes(16, "big")
            span.parent_span_id = parent_id.to_bytes(8, "big")
            span.flags = 0x100 | (flags & 0xFF)  # the parent is known, and not remote
        else:
            span.trace_id = ids[:16]  # one trace per call: docs/decisions.md
            span.flags = 0x100 | 1
        span.span_id = ids[16:]
        end = _seconds(event.get("timestamp"))
        latency = event.get("latency_ms") or 0
        span.end_time_unix_nano = int(end * 1e9)
        span.start_time_unix_nano = int(end * 1e9) - int(latency) * 1_000_000
        attributes = self._attributes(event, operation, requested, identity)
        if request_content is not None or event.get("content") is not None:
            attributes.update(_content_attributes(request_content, event.get("content"),
                                                  self._capture))
        _add_attributes(span.attributes, attributes)
        for name, arguments in tool_calls or ():
            self._tool_call_event(span, event, end, name, arguments)
        error = event.get("error")
        if event.get("event_type") == "llm_error":
            span.status.code = STATUS_CODE_ERROR
            if isinstance(error, dict) and error.get("error_message"):
                span.status.message = _cut(str(error["error_message"]), 1024)

    def _attributes(self, event: Event, operation: str, requested: Any,
                    identity: dict[str, Any]) -> dict[str, Any]:
        metadata = event.get("provider_metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        streaming = event.get("streaming")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": event.get("provider"),
            "gen_ai.request.model": requested,
            "session.id": identity.get("session_id"),
        }
        if event.get("event_type") != "llm_error":
            attributes["gen_ai.response.model"] = event.get("model")
            attributes["gen_ai.response.id"] = (metadata.get("response_id")
                                                or metadata.get("message_id"))
            stop = event.get("stop_reason")
            if stop:
                attributes["gen_ai.response.finish_reasons"] = [str(stop)]
        else:
            error = event.get("error")
            attributes["error.type"] = (error.get("error_type") if isinstance(error, dict)
                                        else None) or "_OTHER"
        attributes["gen_ai.usage.input_tokens"] = event.get("tokens_input")
        attributes["gen_ai.usage.output_tokens"] = event.get("tokens_output")
        attributes["gen_ai.usage.cache_read.input_tokens"] = event.get("tokens_cache_read")
        attributes["gen_ai.usage.cache_creation.input_tokens"] = event.get(
            "tokens_cache_creation")
        if isinstance(streaming, dict):
            attributes["gen_ai.request.stream"] = True
            ttft = streaming.get("ttft_ms")
            if isinstance(ttft, (int, float)) and not isinstance(ttft, bool):
                attributes["gen_ai.response.time_to_first_chunk"] = ttft / 1000.0
        dimensions = event.get("output_dimensions")
        if isinstance(dimensions, dict):
            attributes["gen_ai.embeddings.dimension.count"] = dimensions.get("dimension")
        return attributes

    def _tool_call_event(self, span: Any, event: Event, end: float, name: Any,
                         arguments: Any) -> None:
        """A tool call the model asked for: a span event (the conventions carry it in
        the output messages, which are opt-in; the event is not)."""
        span_event = span.events.add()
        span_event.name = "gen_ai.tool.call"
        span_event.time_unix_nano = int(end * 1e9)
        described: dict[str, Any] = {"gen_ai.tool.name": str(name), "gen_ai.tool.type": "function"}
        if self._capture and arguments is not None:
            described["gen_ai.tool.call.arguments"] = _as_text(arguments)
        _add_attributes(span_event.attributes, described)



def _add_attributes(target: Any, attributes: dict[str, Any]) -> None:
    """Each attribute that has a value, added in place (no message made and copied)."""
    add = target.add
    for key, value in attributes.items():
        if value is None:
            continue
        pair = add()
        pair.key = key
        if type(value) is str:  # most of them
            pair.value.string_value = value if len(value) <= MAX_ATTRIBUTE_CHARS else _cut(
                value, MAX_ATTRIBUTE_CHARS)
        elif type(value) is int:
            pair.value.int_value = value
        else:
            _set_value(pair.value, value)


def _set_value(target: Any, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, (list, tuple)):
        for item in value:
            _set_value(target.array_value.values.add(), item)
    else:
        target.string_value = _cut(str(value), MAX_ATTRIBUTE_CHARS)


def _traced(event: Event) -> tuple[str | None, Any, Any, Any]:
    """``(kind, parent, tool calls, request content)`` from the event's
    :data:`OTEL_KEY`: the operation alone, or a tuple of the four (a list
    after the spool)."""
    traced = event.get(OTEL_KEY)
    if isinstance(traced, str):
        return traced, None, (), None
    if not isinstance(traced, (tuple, list)) or len(traced) != 4:
        return None, None, (), None
    kind, parent, tool_calls, request_content = traced
    if not (isinstance(parent, (tuple, list)) and len(parent) == 3
            and all(isinstance(part, int) for part in parent)
            and 0 < parent[0] < 1 << 128 and 0 < parent[1] < 1 << 64):
        parent = None
    calls = [tuple(call) for call in tool_calls if isinstance(call, (tuple, list))
             and len(call) == 2] if isinstance(tool_calls, (tuple, list)) else []
    return kind if isinstance(kind, str) else None, parent, calls, request_content


def _operation(event: Event, kind: str | None) -> str:
    if kind in OPERATIONS:
        return kind
    return "embeddings" if event.get("event_type") == "embeddings" else "chat"


def _seconds(stamp: Any) -> float:
    """An event's time: a float on the live path, RFC 3339 text after the spool."""
    if isinstance(stamp, (int, float)):
        return float(stamp)
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        import time

        return time.time()


def _content_attributes(request: Any, response: Any, capture: bool) -> dict[str, Any]:
    """The opt-in content attributes (``gen_ai.input.messages``,
    ``gen_ai.output.messages``, ``gen_ai.system_instructions``): JSON text, only
    with FLIGHTDECK_CAPTURE_PROMPTS (the content is not in the event otherwise)."""
    if not capture:
        return {}
    attributes: dict[str, Any] = {}
    request = request.get("request") if isinstance(request, dict) else None
    if isinstance(response, dict):
        response = response.get("response")
    if isinstance(request, dict):
        system = request.get("system") or request.get("instructions")
        if system:
            attributes["gen_ai.system_instructions"] = _as_text(_parts(system))
        messages = request.get("messages") or request.get("input") or request.get("prompt")
        if messages is not None:
            attributes["gen_ai.input.messages"] = _as_text(_messages(messages, "user"))
    if response is not None:
        attributes["gen_ai.output.messages"] = _as_text(_messages(response, "assistant"))
    return attributes


def _messages(value: Any, role: str) -> list[dict[str, Any]]:
    """Messages in the conventions' shape (``role`` and ``parts``), from a
    provider's own: a list of ``{role, content}``, or a text."""
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return [{"role": str(m["role"]), "parts": _parts(m.get("content"))} for m in value]
    return [{"role": role, "parts": _parts(value)}]


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append({"type": "text", "content": item["text"]})
            else:
                parts.append({"type": "text", "content": _as_text(item)})
        return parts
    return [{"type": "text", "content": _as_text(content)}]


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return _cut(value, MAX_ATTRIBUTE_CHARS)
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        text = str(value)
    return _cut(text, MAX_ATTRIBUTE_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


def _otlp_json(request: Any) -> bytes:
    """The OTLP/JSON encoding: protobuf's JSON mapping, except that trace and
    span ids are hex, not base64, and enums are integers (the specification's
    two exceptions)."""
    import base64

    from google.protobuf.json_format import MessageToDict

    document = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document, separators=(",", ":")).encode()


def _sensor_version() -> str:
    from .._version import __version__

    return __version__
