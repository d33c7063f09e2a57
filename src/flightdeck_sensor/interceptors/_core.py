"""The recording core's public surface: everything a provider module may use,
and nothing else (a provider imports from here only).

The core records calls; providers supply only data and extractors (an
:class:`Adapter`, its stream :class:`Accumulator`) and say which wrapper each
row of their table in ``flightdeck_sensor._providers`` gets (``WRAPPERS``).
Its parts, one job each: ``_fields`` (what a response tells, and cheap readers),
``_estimate`` (the input estimate), ``_call`` (one recorded call and the entry
point wrappers), ``_streams`` (stream timing and the stream proxies),
``_results`` (what an entry point returned, raw responses), ``_errors`` (an
exception's facts), ``_content`` (captured prompt content).
"""

from ._call import (
    IN_CALL,
    Call,
    KwargsHook,
    ResultHandler,
    Swap,
    async_wrapper,
    begin,
    manager_wrapper,
    silenced,
    silenced_async,
    sync_wrapper,
    with_keyword_model,
)
from ._errors import ErrorFacts, classify, error_code, header, retry_after
from ._fields import (
    Accumulator,
    Adapter,
    FieldReader,
    Outcome,
    ToolCall,
    as_count,
    as_text,
    field_reader,
)
from ._results import RawResponseProxy, looks_raw, result_kinds, stream_classes
from ._streams import AsyncStreamProxy, StreamRecorder, SyncStreamProxy, end_record

__all__ = [
    "IN_CALL",
    "Accumulator",
    "Adapter",
    "AsyncStreamProxy",
    "Call",
    "ErrorFacts",
    "FieldReader",
    "KwargsHook",
    "Outcome",
    "RawResponseProxy",
    "ResultHandler",
    "StreamRecorder",
    "Swap",
    "SyncStreamProxy",
    "ToolCall",
    "as_count",
    "as_text",
    "async_wrapper",
    "begin",
    "classify",
    "end_record",
    "error_code",
    "field_reader",
    "header",
    "looks_raw",
    "manager_wrapper",
    "result_kinds",
    "retry_after",
    "silenced",
    "silenced_async",
    "stream_classes",
    "sync_wrapper",
    "with_keyword_model",
]
