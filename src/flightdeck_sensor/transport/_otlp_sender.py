"""The sender of the OTLP destination: the Flightdeck sender's loop, queue,
retries, Retry-After, spool, bounded exit and counters, with OTLP/HTTP's
request and answers (``POST`` of an ``ExportTraceServiceRequest`` to the
traces endpoint; partial success; the specification's retryable statuses).

The spool holds the events, not the spans, as the Flightdeck spool does: a
replayed event becomes its span when it is sent, in its own directory (one
per endpoint).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._printable import printable
from ._answers import UNAUTHORIZED, Answers
from ._otlp import Converter, makes_span
from ._sender import BATCH_BYTES, Sender

if TYPE_CHECKING:
    from ._http import Answer

logger = logging.getLogger("flightdeck_sensor")

# OTLP/HTTP: only these are retryable (and no answer at all); any other error
# status means the data was refused and is not to be sent again.
RETRYABLE = frozenset((0, 408, 429, 502, 503, 504))
CONTENT_TYPES = {"http/protobuf": "application/x-protobuf", "http/json": "application/json"}

Event = dict[str, Any]


def is_retryable(answer: Answer) -> bool:
    return answer.status in RETRYABLE or 300 <= answer.status < 400


class OtlpAnswers(Answers):
    """The Flightdeck sender's reading of answers, with OTLP's retryable set,
    and its partial success instead of Flightdeck's envelope."""

    def note(self, answer: Answer) -> bool:
        if answer.status >= 500 and not is_retryable(answer):
            # Refused, not unreachable: no outage, no backoff (the batch is dropped).
            answer = dataclasses.replace(answer, status=400)
        return super().note(answer)

    def accept_spans(self, count: int, answer: Answer, json_body: bool) -> None:
        rejected, message = partial_success(answer.body, json_body)
        rejected = min(max(rejected, 0), count)
        if rejected or message:
            text = printable(message or "no reason given", 200)
            self._warn_dropped(f"the OTLP endpoint rejected {rejected} of {count} span(s): "
                               f"{text}" if rejected else f"the OTLP endpoint says: {text}")
        self.stats.drop("rejected", rejected)
        self.stats.sent += count - rejected


def partial_success(body: bytes, json_body: bool) -> tuple[int, str]:
    """``(rejected spans, error message)`` of an ``ExportTraceServiceResponse``;
    ``(0, "")`` for an empty or unreadable one (a success)."""
    if not body:
        return 0, ""
    try:
        if json_body:
            import json

            document = json.loads(body)
            partial = document.get("partialSuccess") if isinstance(document, dict) else None
            if not isinstance(partial, dict):
                return 0, ""
            rejected = partial.get("rejectedSpans", 0)
            message = partial.get("errorMessage", "")
            return (int(rejected) if isinstance(rejected, (int, str)) else 0,
                    message if isinstance(message, str) else "")
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        response = trace_service_pb2.ExportTraceServiceResponse()
        response.ParseFromString(body)
        return response.partial_success.rejected_spans, response.partial_success.error_message
    except Exception:  # untrusted: an answer we cannot read is not a rejection
        return 0, ""


class OtlpSender(Sender):
    """Delivers the calls' spans to ``config.otlp_endpoint``."""

    _converter: Converter | None = None
    _unavailable = False

    def _make_answers(self, url: str,
                      on_envelope: Callable[[dict[str, Any]], None] | None) -> Answers:
        return OtlpAnswers(url, self.stats, None)

    def _connect(self) -> None:
        if self._client is not None:
            return
        try:
            from ._http import IngestClient

            config = self._config
            self._client = IngestClient(config.otlp_endpoint, None, config.compression,
                                        CONTENT_TYPES[config.otlp_protocol], config.otlp_headers)
        finally:
            self.ready.set()

    def _converted(self) -> Converter | None:
        """The converter, made on first use (it imports the protobuf definitions)."""
        if self._converter is None and not self._unavailable:
            try:
                config = self._config
                self._converter = Converter(config.otlp_resource, config.capture_prompts,
                                            config.otlp_protocol)
            except ImportError:
                self._unavailable = True
                self.stats.server_state = "unauthorized"  # sends nothing; the spool keeps all
                self.stats.last_error = "opentelemetry-proto is not installed"
                logger.error("flightdeck-sensor: FLIGHTDECK_EXPORT asks for OTLP, which needs "
                             "pip install 'flightdeck-sensor[otlp]'; spans are kept in the spool")
        return self._converter

    def _batch_body(self, events: list[Event]) -> tuple[list[Event], bytes]:
        spans = [event for event in events if makes_span(event)]
        converter = self._converted()
        if converter is None or not spans:
            return spans, b""
        return spans, converter.body(spans)

    def _send(self, events: list[Event], body: bytes | None = None,
              prefetch: bool = False) -> list[Event]:
        """One attempt; returns the events to retry (empty when settled)."""
        if body is None:
            events, body = self._batch_body(events)
        if not events:
            return []
        if self._converter is None:
            return events  # the extra is missing: kept (see _converted)
        if len(body) > BATCH_BYTES and len(events) > 1:
            middle = len(events) // 2
            return self._send(events[:middle]) + self._send(events[middle:])
        answer = self._post("", body, self._prefetch if prefetch else None)
        status = answer.status
        if 200 <= status < 300:
            assert isinstance(self._answers, OtlpAnswers)
            self._answers.accept_spans(len(events), answer, self._converter.json)
            return []
        if status in (404, 405):
            self._answers.stop_sending(status, "has no OTLP traces endpoint at this URL")
            return events
        if is_retryable(answer) or status in UNAUTHORIZED:
            return events
        if status == 413 and len(events) > 1:
            middle = len(events) // 2
            return self._send(events[:middle]) + self._send(events[middle:])
        self._answers.reject(len(events), status, answer)
        return []

    def to_spool(self, events: list[Event], reason: str) -> None:
        """Only the events that make a span: the others are Flightdeck's."""
        super().to_spool([event for event in events if makes_span(event)], reason)
