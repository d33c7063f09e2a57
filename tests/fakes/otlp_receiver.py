"""A minimal OTLP/HTTP traces receiver: the scriptable :class:`IngestServer`
(same replies, same faults), whose requests are decoded with the official
OTLP protobuf definitions (``opentelemetry-proto``), not with our code.

    with OtlpReceiver() as receiver:
        ... run a sensor with OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url ...
        receiver.spans()   # every span of a request answered 2xx, flattened

:func:`unknown_attribute_names` checks attribute names against the
``opentelemetry-semantic-conventions`` package: a name it does not define,
or defines as replaced by another, is reported (so a renamed convention fails
the tests that call it).
"""

from __future__ import annotations

import ast
import base64
import gzip
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from fakes.ingest_server import IngestServer, Received, Reply

TRACES_PATH = "/v1/traces"
OUR_NAMESPACE = "flightdeck."  # the only attributes that are not the conventions'


@dataclass
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status_code: int = 0
    scope: str = ""


class OtlpReceiver(IngestServer):
    """An OTLP/HTTP receiver on 127.0.0.1; ``url`` is the base URL the sensor
    gets as OTEL_EXPORTER_OTLP_ENDPOINT (it appends /v1/traces)."""

    def __init__(self, *replies: Reply, port: int = 0) -> None:
        super().__init__(replies, port=port)
        self.url = f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[Span]:
        with self._lock:
            received = [r for r in self.requests if 200 <= r.status < 300]
        return [span for request in received for span in decode(request)]

    def span_count(self) -> int:
        return len(self.spans())


def partial_success(rejected: int, message: str) -> Reply:
    """A 200 whose ExportTraceServiceResponse says ``rejected`` spans were refused."""
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.partial_success.rejected_spans = rejected
    response.partial_success.error_message = message
    return Reply(200, response.SerializeToString(),
                 headers={"Content-Type": "application/x-protobuf"})


def decode(received: Received) -> list[Span]:
    """The spans of one request, decoded by the official definitions."""
    raw = received.raw_body
    if received.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    request = trace_service_pb2.ExportTraceServiceRequest()
    if received.headers.get("Content-Type") == "application/json":
        json_format.Parse(json.dumps(_ids_to_base64(json.loads(raw))), request)
    else:
        request.ParseFromString(raw)
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(Span(
                    span.name, span.kind, span.trace_id.hex(), span.span_id.hex(),
                    span.parent_span_id.hex(), span.start_time_unix_nano,
                    span.end_time_unix_nano, _attributes(span.attributes), resource,
                    [(e.name, _attributes(e.attributes)) for e in span.events],
                    span.status.code, scope_spans.scope.name))
    return spans


def _ids_to_base64(document: dict[str, Any]) -> dict[str, Any]:
    """OTLP/JSON writes ids in hex; protobuf's JSON mapping reads bytes as base64."""
    for resource_spans in document.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return document


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    return getattr(value, which) if which else None


# -- the semantic conventions ---------------------------------------------------

@cache
def _conventions() -> dict[str, str]:
    """Every attribute name the semantic-conventions package defines, with the
    note that follows it (where a rename is written: "Replaced by ...")."""
    import opentelemetry.semconv as semconv

    root = Path(semconv.__file__).parent
    names: dict[str, str] = {}
    for path in [*root.glob("attributes/*.py"), *root.glob("_incubating/attributes/*.py")]:
        body = ast.parse(path.read_text()).body
        for statement, after in zip(body, [*body[1:], None], strict=False):
            if not (isinstance(statement, ast.AnnAssign | ast.Assign)
                    and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)):
                continue
            note = (after.value.value if isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) else "")
            names.setdefault(statement.value.value, str(note))
    return names


def unknown_attribute_names(names: set[str]) -> list[str]:
    """The names the conventions do not define, or define as replaced by another
    (``flightdeck.*``, ours, excepted)."""
    conventions = _conventions()
    problems = []
    for name in sorted(names):
        if name.startswith(OUR_NAMESPACE):
            continue
        if name not in conventions:
            problems.append(f"{name}: not in opentelemetry-semantic-conventions")
        elif "Replaced by" in conventions[name]:
            problems.append(f"{name}: {conventions[name].strip().splitlines()[0]}")
    return problems
