"""Streams: chunk timing and the end of a streamed call's record
(:class:`StreamRecorder`), and the transparent proxies that time an SDK's
stream and end its record however the user leaves it.
"""

from __future__ import annotations

import asyncio
import operator
import time
from collections.abc import Callable, Iterator
from typing import Any

import wrapt

from ._call import Call
from ._fields import Accumulator, Outcome


def _percentile(sorted_values: list[int], fraction: float) -> float:
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index] / 1_000_000


class StreamRecorder:
    """Chunk timing and accumulation for one streamed call; finalizes once.

    ``on_chunk`` is the per-chunk hot path (its budget: BENCHMARKS.md): it only notes the
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


class _RecordedStream(wrapt.ObjectProxy):  # type: ignore[type-arg]
    """A stream with its recorder: one that is garbage-collected unfinished
    was abandoned by its caller."""

    def __init__(self, wrapped: Any, recorder: StreamRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder

    def __del__(self) -> None:
        recorder = getattr(self, "_self_recorder", None)
        if recorder is not None and not recorder.finished:
            recorder.abort()


class SyncStreamProxy(_RecordedStream):
    """Transparent proxy of an SDK's sync stream: iteration is timed, ``close()``,
    ``with`` and GC finalize. Everything else goes to the SDK object."""

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
            end_record(self._self_recorder, exc)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_recorder.abort()


class AsyncStreamProxy(_RecordedStream):
    """The async twin of :class:`SyncStreamProxy`; cancellation counts as an abort."""


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
            end_record(recorder, exc)
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
            end_record(self._self_recorder, exc)

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_recorder.abort()


def end_record(recorder: StreamRecorder, exc: BaseException | None) -> None:
    """End a stream's record when the stream is left before its end: left with
    an exception, it broke (``stream_error``); left without one, or by
    cancellation or a generator's close, the user stopped reading (an abort).
    The one rule for every way out: ``with``, ``async with``, a cancelled
    ``__anext__``, a ``.stream()`` helper's manager."""
    if exc is None or isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
        recorder.abort()
    else:
        recorder.error(exc)
