"""Every stream finalizes exactly once, whatever ends it, on every provider and
entry point: read to its end, a break then ``close()``, leaving a ``with``
block early, garbage collection, asyncio cancellation, a dropped connection.

Each test runs once per row of ``ROWS``: one way a user opens a stream
(provider x entry point x sync/async), against the fake provider. A new
entry point gets every lifecycle test by adding one :class:`EntryPoint` to
``ENTRY_POINTS`` (it is run sync and async); a new provider adds one
:class:`Provider` too. For instance, ``with_streaming_response`` would be::

    EntryPoint(OPENAI_CHAT, "chat.completions.with_streaming_response.create",
               lambda c: c.chat.completions.with_streaming_response.create(
                   **CHAT, stream=True),
               (openai.APIResponse, openai.AsyncAPIResponse),
               manager=True, items=lambda response: response.parse())

``manager=True`` says the call returns what the user enters with ``with``;
``items`` is what they iterate on what they entered (an awaitable of it is
awaited on async rows, as ``await response.parse()`` must be); the user's
``close()`` is called on what they entered. A test the entry point is known
to fail goes in its ``gaps``: it then runs as a strict xfail, so the fix
shows up as a failure until the gap is struck off.

Each test is written once, as the user's steps, against a :class:`SyncUser`
or an :class:`AsyncUser`; the async one runs every step on one event loop,
as a single coroutine awaiting them in turn would.

Provider-specific stream behaviour (OpenAI usage injection, Anthropic's
``MessageStream`` helpers, litellm's routing and estimates) stays in
``test_{openai,anthropic,litellm}_streams.py``.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.lib.streaming import (
    AsyncMessageStream,
    BetaAsyncMessageStream,
    BetaMessageStream,
    MessageStream,
)
from litellm.exceptions import MidStreamFallbackError
from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper
from openai.lib.streaming.chat import AsyncChatCompletionStream, ChatCompletionStream
from openai.lib.streaming.responses import AsyncResponseStream, ResponseStream

from fakes.fake_llm import FakeLLM, anthropic_routes
from fakes.fake_llm import openai_routes as openai_wire
from fixtures import anthropic_sdk, litellm_calls, openai_sdk
from fixtures.litellm_calls import litellm
from fixtures.sensor import SensorHarness

# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Provider:
    """A provider as the fake serves it: where its streams land (faults are
    scripted there), how a user gets a client, and what a whole stream carries."""

    name: str
    reported_as: str  # the ``provider`` of the sensor's events
    path: str
    sync_client: Callable[[FakeLLM], Any]
    async_client: Callable[[FakeLLM], Any]
    tokens: Callable[[FakeLLM], tuple[int, int]]  # (input, output) of a whole stream
    # Chunks the SDK yields for a whole stream, or None when only the reads tell.
    chunks: Callable[[FakeLLM], int] | None
    # What the SDK raises when the connection drops mid-stream (exact classes).
    drop_raises: tuple[type[BaseException], ...]
    # The first chunk tells the input tokens (Anthropic's message_start), so
    # a stream ended early still reports them.
    input_tokens_first: bool = False
    async_close: str = "close"  # the async stream's close method


def _itself(stream: Any) -> Any:
    return stream


@dataclass(frozen=True)
class EntryPoint:
    """One way to open a stream. ``call`` takes the provider's client, sync or
    async alike (an async client's coroutine is awaited)."""

    provider: Provider
    name: str
    call: Callable[[Any], Any]
    # The classes (sync, async) of what the user iterates or enters: the SDK's own.
    returns: tuple[type, type]
    manager: bool = False  # the call returns a manager the user enters with ``with``
    items: Callable[[Any], Any] = _itself  # what the user iterates on what they hold
    # Each item the user takes is one chunk the sensor counts (not so for
    # helpers that turn chunks into events or text).
    items_are_chunks: bool = True
    # (test name, why): a lifecycle test known to fail on this entry point.
    gaps: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Row:
    entry: EntryPoint
    is_async: bool

    @property
    def provider(self) -> Provider:
        return self.entry.provider

    @property
    def returns(self) -> type:
        return self.entry.returns[self.is_async]

    @property
    def id(self) -> str:
        mode = "async" if self.is_async else "sync"
        return f"{self.provider.name}-{self.entry.name}-{mode}"


def _chat_body(fake: FakeLLM) -> dict[str, Any]:
    body: dict[str, Any] = openai_sdk.last_body(fake, openai_wire.CHAT_PATH)
    return body


def _response_body(fake: FakeLLM) -> dict[str, Any]:
    body: dict[str, Any] = openai_sdk.last_body(fake, openai_wire.RESPONSES_PATH)
    return body


def _responses_tokens(fake: FakeLLM) -> tuple[int, int]:
    usage = openai_wire.response_answer(_response_body(fake))["usage"]
    return usage["input_tokens"], usage["output_tokens"]


def _anthropic_tokens(fake: FakeLLM) -> tuple[int, int]:
    usage = anthropic_sdk.expected_usage(anthropic_sdk.last_message_body(fake))
    return usage["tokens_input"], usage["tokens_output"]


def _litellm_provider(target: litellm_calls.Target, **extra: Any) -> Provider:
    """litellm to ``target``: the "client" is litellm's function, bound to the fake."""
    def bound(name: str) -> Callable[[FakeLLM], Any]:
        def client(fake: FakeLLM) -> Callable[..., Any]:
            # Looked up at call time: the sensor patches the module attribute.
            return lambda **kwargs: getattr(litellm, name)(
                **litellm_calls.call_kwargs(fake, target, **extra), **kwargs)
        return client

    # litellm re-raises a stream's dropped connection as MidStreamFallbackError.
    return Provider(f"litellm/{target.name}", target.name, target.path, bound("completion"),
                    bound("acompletion"), lambda _: (target.tokens_input, target.tokens_output),
                    None, (MidStreamFallbackError,), async_close="aclose")


OPENAI_CHAT = Provider(
    "openai", "openai", openai_wire.CHAT_PATH, openai_sdk.sync_client, openai_sdk.async_client,
    lambda fake: openai_sdk.chat_tokens(_chat_body(fake)),
    lambda fake: openai_sdk.chat_chunk_count(_chat_body(fake)),
    (openai.APIConnectionError,))
OPENAI_RESPONSES = Provider(
    "openai", "openai", openai_wire.RESPONSES_PATH, openai_sdk.sync_client,
    openai_sdk.async_client, _responses_tokens,
    lambda fake: openai_sdk.response_event_count(_response_body(fake)),
    (openai.APIConnectionError,))
# anthropic 2.17 wraps the dropped connection in APIConnectionError; earlier
# 2.x let httpx2's RemoteProtocolError through.
ANTHROPIC = Provider(
    "anthropic", "anthropic", anthropic_routes.MESSAGES_PATH, anthropic_sdk.sync_client,
    anthropic_sdk.async_client, _anthropic_tokens,
    lambda fake: anthropic_sdk.expected_chunk_count(anthropic_sdk.last_message_body(fake)),
    (anthropic.APIConnectionError, httpx2.RemoteProtocolError), input_tokens_first=True)
# include_usage: the chat rows report the provider's usage, as the others do.
LITELLM_OPENAI = _litellm_provider(litellm_calls.OPENAI, stream_options={"include_usage": True})
LITELLM_ANTHROPIC = _litellm_provider(litellm_calls.ANTHROPIC)

CHAT: dict[str, Any] = {"model": openai_sdk.MODEL, "messages": openai_sdk.MESSAGES,
                        "stream_options": {"include_usage": True}}
RESPONSE: dict[str, Any] = {"model": openai_sdk.MODEL, "input": openai_sdk.PROMPT}
MESSAGE: dict[str, Any] = {"model": anthropic_sdk.MODEL, "max_tokens": 64,
                           "messages": anthropic_sdk.MESSAGES}

# openai's stream helpers close the HTTP response in close(), not the raw
# stream the sensor proxies: their record ends only when the with block is
# left or the helper is collected.
ENTRY_POINTS = [
    EntryPoint(OPENAI_CHAT, "chat.completions.create",
               lambda c: c.chat.completions.create(**CHAT, stream=True),
               (openai.Stream, openai.AsyncStream)),
    EntryPoint(OPENAI_CHAT, "chat.completions.stream",
               lambda c: c.chat.completions.stream(**CHAT),
               (ChatCompletionStream, AsyncChatCompletionStream), manager=True,
               items_are_chunks=False),
    EntryPoint(OPENAI_RESPONSES, "responses.create",
               lambda c: c.responses.create(**RESPONSE, stream=True),
               (openai.Stream, openai.AsyncStream)),
    EntryPoint(OPENAI_RESPONSES, "responses.stream",
               lambda c: c.responses.stream(**RESPONSE),
               (ResponseStream, AsyncResponseStream), manager=True,
               items_are_chunks=False),
    EntryPoint(ANTHROPIC, "messages.create",
               lambda c: c.messages.create(**MESSAGE, stream=True),
               (anthropic.Stream, anthropic.AsyncStream)),
    # MessageStream's iteration adds text events to the SDK's chunks.
    EntryPoint(ANTHROPIC, "messages.stream",
               lambda c: c.messages.stream(**MESSAGE),
               (MessageStream, AsyncMessageStream), manager=True, items_are_chunks=False),
    EntryPoint(ANTHROPIC, "messages.stream.text_stream",
               lambda c: c.messages.stream(**MESSAGE),
               (MessageStream, AsyncMessageStream), manager=True,
               items=lambda stream: stream.text_stream, items_are_chunks=False),
    EntryPoint(ANTHROPIC, "beta.messages.create",
               lambda c: c.beta.messages.create(**MESSAGE, stream=True),
               (anthropic.Stream, anthropic.AsyncStream)),
    EntryPoint(ANTHROPIC, "beta.messages.stream",
               lambda c: c.beta.messages.stream(**MESSAGE),
               (BetaMessageStream, BetaAsyncMessageStream), manager=True,
               items_are_chunks=False),
    # The async rows call acompletion: the "client" is the function itself.
    EntryPoint(LITELLM_OPENAI, "completion", lambda complete: complete(stream=True),
               (CustomStreamWrapper, CustomStreamWrapper)),
    EntryPoint(LITELLM_ANTHROPIC, "completion", lambda complete: complete(stream=True),
               (CustomStreamWrapper, CustomStreamWrapper)),
]

ROWS = [Row(entry, is_async) for entry in ENTRY_POINTS for is_async in (False, True)]
each_row = pytest.mark.parametrize("row", ROWS, ids=lambda row: row.id)
each_async_row = pytest.mark.parametrize("row", [r for r in ROWS if r.is_async],
                                         ids=lambda row: row.id)


# ---------------------------------------------------------------- the user


@dataclass
class Opened:
    """What the user holds: the stream they read, and the manager they entered."""

    stream: Any
    manager: Any = None


class SyncUser:
    """A user's steps on a sync row, in plain sync code."""

    def __init__(self, row: Row, fake: FakeLLM) -> None:
        self.row = row
        self.client = row.provider.sync_client(fake)

    def open(self) -> Opened:
        """Call; enter the manager, if the call returned one, and stay in it."""
        returned = self.row.entry.call(self.client)
        if self.row.entry.manager:
            return Opened(returned.__enter__(), returned)
        return Opened(returned)

    @contextmanager
    def block(self) -> Iterator[Any]:
        """``with <call> as stream``: streams and managers alike."""
        with self.row.entry.call(self.client) as stream:
            yield stream

    def take(self, stream: Any, count: int) -> list[Any]:
        """A for loop that breaks after ``count`` items."""
        taken: list[Any] = []
        for item in self.row.entry.items(stream):
            taken.append(item)
            if len(taken) == count:
                break
        return taken

    def read_to_end(self, stream: Any) -> list[Any]:
        """The first item by ``next()``, the rest by a loop on the same object."""
        items = self.row.entry.items(stream)
        first = next(items)
        return [first, *items]

    def read_into(self, stream: Any, received: list[Any]) -> None:
        for item in self.row.entry.items(stream):
            received.append(item)

    def close(self, stream: Any) -> None:
        stream.close()

    def collect_garbage(self) -> None:
        gc.collect()

    def leave(self, opened: Opened) -> None:
        if opened.manager is not None:
            opened.manager.__exit__(None, None, None)


class AsyncUser:
    """A user's steps on an async row: each runs on the row's event loop."""

    def __init__(self, row: Row, fake: FakeLLM, loop: asyncio.AbstractEventLoop) -> None:
        self.row = row
        self.loop = loop
        self.client = row.provider.async_client(fake)

    def run(self, step: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(step)

    async def called(self) -> Any:
        returned = self.row.entry.call(self.client)
        return await returned if inspect.isawaitable(returned) else returned

    async def items(self, stream: Any) -> Any:
        items = self.row.entry.items(stream)
        return await items if inspect.isawaitable(items) else items

    async def aopen(self) -> Opened:
        returned = await self.called()
        if self.row.entry.manager:
            return Opened(await returned.__aenter__(), returned)
        return Opened(returned)

    def open(self) -> Opened:
        result: Opened = self.run(self.aopen())
        return result

    @contextmanager
    def block(self) -> Iterator[Any]:
        """``async with <awaited call> as stream``, a step at a time."""
        manager = self.run(self.called())
        stream = self.run(manager.__aenter__())
        try:
            yield stream
        except BaseException as exc:
            if not self.run(manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self.run(manager.__aexit__(None, None, None))

    async def _take(self, stream: Any, count: int) -> list[Any]:
        taken: list[Any] = []
        async for item in await self.items(stream):
            taken.append(item)
            if len(taken) == count:
                break
        return taken

    def take(self, stream: Any, count: int) -> list[Any]:
        taken: list[Any] = self.run(self._take(stream, count))
        return taken

    async def _read_to_end(self, stream: Any) -> list[Any]:
        items = await self.items(stream)
        first = await items.__anext__()
        return [first, *[item async for item in items]]

    def read_to_end(self, stream: Any) -> list[Any]:
        read: list[Any] = self.run(self._read_to_end(stream))
        return read

    async def _read_into(self, stream: Any, received: list[Any]) -> None:
        async for item in await self.items(stream):
            received.append(item)

    def read_into(self, stream: Any, received: list[Any]) -> None:
        self.run(self._read_into(stream, received))

    def close(self, stream: Any) -> None:
        self.run(getattr(stream, self.row.provider.async_close)())

    async def _collect_garbage(self) -> None:
        gc.collect()
        await asyncio.sleep(0)
        gc.collect()

    def collect_garbage(self) -> None:
        self.run(self._collect_garbage())

    def leave(self, opened: Opened) -> None:
        if opened.manager is not None:
            self.run(opened.manager.__aexit__(None, None, None))


User = SyncUser | AsyncUser


@pytest.fixture
def user(row: Row, fake_llm: FakeLLM) -> Iterator[User]:
    if not row.is_async:
        yield SyncUser(row, fake_llm)
        return
    loop = asyncio.new_event_loop()
    try:
        yield AsyncUser(row, fake_llm, loop)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(autouse=True)
def _known_gaps_expected_to_fail(request: pytest.FixtureRequest, row: Row) -> None:
    for test_name, why in row.entry.gaps:
        if request.node.originalname == test_name:
            request.applymarker(pytest.mark.xfail(reason=why, strict=True))


@pytest.fixture(scope="module")
def _shared_fake() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake_llm(_shared_fake: FakeLLM) -> FakeLLM:
    """One fake provider for the module (starting one per test is most of a
    test's cost), with no script or request left from the test before."""
    _shared_fake.reset()
    return _shared_fake


@pytest.fixture(scope="module", autouse=True)
def _objects_from_before_frozen() -> Iterator[None]:
    # gc.collect() then walks only what this module made, not every object
    # importing the SDKs and litellm left: walking those was most of a test.
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


# ---------------------------------------------------------------- the checks


def the_terminal_event(sensor: SensorHarness, row: Row) -> dict[str, Any]:
    """The call's one post_call or llm_error, after its one pre_call."""
    events = sensor.call_events()
    types = [event["event_type"] for event in events]
    assert types in (["pre_call", "post_call"], ["pre_call", "llm_error"]), types
    terminal: dict[str, Any] = events[1]
    assert terminal["provider"] == row.provider.reported_as
    return terminal


def assert_still_open(sensor: SensorHarness) -> None:
    assert [event["event_type"] for event in sensor.call_events()] == ["pre_call"]


def assert_partial_data(event: dict[str, Any], row: Row, fake: FakeLLM,
                        items_read: list[Any]) -> None:
    """What arrived before the end is reported: the chunks, the input tokens if told."""
    chunk_count = event["streaming"]["chunk_count"]
    if row.entry.items_are_chunks:
        assert chunk_count == len(items_read)
    assert chunk_count >= 1
    if row.provider.input_tokens_first:
        assert event["tokens_input"] == row.provider.tokens(fake)[0]


def assert_client_aborted(event: dict[str, Any], row: Row, fake: FakeLLM,
                          items_read: list[Any]) -> None:
    assert event["event_type"] == "post_call"
    assert event["streaming"]["final_outcome"] == "aborted"
    assert event["streaming"]["abort_reason"] == "client_aborted"
    assert_partial_data(event, row, fake, items_read)


# ---------------------------------------------------------------- the lifecycle


@each_row
def test_stream_read_to_its_end_reports_completed_with_usage_once(
        sensor: SensorHarness, fake_llm: FakeLLM, row: Row, user: User) -> None:
    # given
    sensor.init()

    # when: the user reads every item, closes the finished stream, leaves the block
    with user.block() as stream:
        read = user.read_to_end(stream)
        user.close(stream)

    # then
    post = the_terminal_event(sensor, row)
    assert post["event_type"] == "post_call"
    assert post["streaming"]["final_outcome"] == "completed"
    assert post["streaming"]["abort_reason"] is None
    assert post["usage_source"] == "reported"
    assert (post["tokens_input"], post["tokens_output"]) == row.provider.tokens(fake_llm)
    if row.entry.items_are_chunks:
        assert post["streaming"]["chunk_count"] == len(read)
    if row.provider.chunks is not None:
        assert post["streaming"]["chunk_count"] == row.provider.chunks(fake_llm)


@each_row
def test_break_then_close_reports_client_aborted_once(
        sensor: SensorHarness, fake_llm: FakeLLM, row: Row, user: User) -> None:
    # given
    sensor.init()
    opened = user.open()

    # when: the user breaks out of the loop after two items and closes twice
    read = user.take(opened.stream, 2)
    user.close(opened.stream)
    user.close(opened.stream)

    # then: close() ended the record; leaving the manager adds nothing
    assert_client_aborted(the_terminal_event(sensor, row), row, fake_llm, read)
    user.leave(opened)
    assert_client_aborted(the_terminal_event(sensor, row), row, fake_llm, read)


@each_row
def test_leaving_the_with_block_early_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, row: Row, user: User) -> None:
    # given
    sensor.init()

    # when: the user leaves the block after the first item
    with user.block() as stream:
        assert isinstance(stream, row.returns)  # the SDK's own object
        read = user.take(stream, 1)

    # then
    assert_client_aborted(the_terminal_event(sensor, row), row, fake_llm, read)


@each_row
def test_stream_abandoned_to_the_garbage_collector_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, row: Row, user: User) -> None:
    # given: a stream read for one item, never closed (a manager never left)
    sensor.init()
    opened = user.open()
    read = user.take(opened.stream, 1)
    assert_still_open(sensor)  # the break alone ends nothing

    # when
    del opened
    user.collect_garbage()

    # then
    assert_client_aborted(the_terminal_event(sensor, row), row, fake_llm, read)


async def cancel_after_the_first_item(user: AsyncUser, opened: Opened) -> list[Any]:
    """Read in a task; cancel the task once it has an item."""
    read: list[Any] = []
    got_one = asyncio.Event()

    async def reader() -> None:
        async for item in await user.items(opened.stream):
            read.append(item)
            got_one.set()

    task = asyncio.create_task(reader())
    await asyncio.wait_for(got_one.wait(), timeout=30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return read


@each_async_row
def test_cancelling_the_task_that_reads_reports_client_aborted(
        sensor: SensorHarness, fake_llm: FakeLLM, row: Row, user: AsyncUser) -> None:
    # given: a slow stream, opened
    sensor.init()
    fake_llm.script_stream_delay(row.provider.path, chunk_delay=0.05)
    opened = user.open()

    # when: the task reading it is cancelled mid-stream
    read = user.run(cancel_after_the_first_item(user, opened))

    # then: the cancellation ended the record; leaving the manager adds nothing
    assert_client_aborted(the_terminal_event(sensor, row), row, fake_llm, read)
    user.leave(opened)
    assert_client_aborted(the_terminal_event(sensor, row), row, fake_llm, read)


@each_row
def test_connection_dropped_mid_stream_reports_a_stream_error_and_reraises(
        sensor: SensorHarness, fake_llm: FakeLLM, row: Row, user: User) -> None:
    # given: the provider drops the connection after four events
    sensor.init()
    fake_llm.script_stream_drop(row.provider.path, after_events=4)
    received: list[Any] = []

    # when
    with pytest.raises(row.provider.drop_raises) as raised, user.block() as stream:
        user.read_into(stream, received)

    # then: the SDK's own exception reached the user, after the items before the drop
    assert type(raised.value) in row.provider.drop_raises
    assert received
    error = the_terminal_event(sensor, row)
    assert error["event_type"] == "llm_error"
    assert error["error"]["error_type"] == "stream_error"
    assert error["error"]["provider"] == row.provider.reported_as
    assert error["streaming"]["final_outcome"] == "aborted"
    assert_partial_data(error, row, fake_llm, received)
