"""litellm: ``completion``, ``acompletion``, ``embedding``, ``aembedding``,
``text_completion``, ``atext_completion`` (plain and streamed), and therefore
``litellm.Router``, which looks these functions up on the ``litellm`` module at
call time (litellm 1.110: ``router_python_host.PythonHost.invoke``).

They are module functions, not methods: we replace the attributes of
``litellm`` and ``litellm.main`` with wrapt wrappers. Code that took a
reference (``from litellm import completion``) *before* the patch keeps the
original; the import hook patches as soon as ``litellm`` finishes importing,
before user code can take one.

``provider`` in the events is the provider litellm routes to (``openai``,
``anthropic``, ...), so a Claude call reads the same through litellm as through
the Anthropic SDK; ``provider_metadata.via`` says ``litellm``. litellm calls the
OpenAI SDK underneath for ``openai/`` models and ``text_completion``: the core's
re-entrancy guard keeps that inner layer silent.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import wrapt

from ._core import (
    _IN_CALL,
    AsyncStreamProxy,
    Call,
    Outcome,
    ResultHandler,
    StreamRecorder,
    SyncStreamProxy,
    as_count,
    as_text,
    async_wrapper,
    sync_wrapper,
)
from ._errors import ErrorFacts, _error_code, _header, _retry_after, classify

logger = logging.getLogger("flightdeck_sensor")

_PATCHED_MODULES = ("litellm", "litellm.main")


@dataclass(frozen=True)
class _Entry:
    """Where one entry point keeps its model and input, and what kind of call it is."""

    name: str
    kind: str  # "chat" or "embeddings"
    is_async: bool
    model_at: int  # positional index of ``model``
    input_name: str  # "messages", "input" or "prompt"
    input_at: int


_ENTRIES = (
    _Entry("completion", "chat", False, 0, "messages", 1),
    _Entry("acompletion", "chat", True, 0, "messages", 1),
    _Entry("embedding", "embeddings", False, 0, "input", 1),
    _Entry("aembedding", "embeddings", True, 0, "input", 1),
    _Entry("text_completion", "chat", False, 1, "prompt", 0),
    _Entry("atext_completion", "chat", True, 1, "prompt", 0),
)

# litellm provider names that are an API flavour of a vendor, not a vendor.
_PROVIDER_ALIASES = {"text-completion-openai": "openai", "azure_text": "azure",
                     "text-completion-codestral": "codestral"}
_UNRESOLVED = "litellm"


# --------------------------------------------------------------------------
# Reading litellm's objects cheaply. Its response types keep most fields in
# pydantic's ``__pydantic_extra__``; a plain ``getattr`` of a missing name goes
# through pydantic's ``__getattr__`` and costs microseconds (litellm 1.110).

def _get(obj: Any, name: str) -> Any:
    """``obj.name`` / ``obj[name]`` for litellm's pydantic objects and dicts; None if absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra and name in extra:
        return extra[name]
    fields = getattr(obj, "__dict__", None)
    if fields is not None and name in fields:
        return fields[name]
    return None


def _hidden_params(obj: Any) -> dict[str, Any]:
    """litellm's ``_hidden_params`` of a response, chunk or stream wrapper."""
    private = getattr(obj, "__pydantic_private__", None)
    if isinstance(private, dict):
        hidden = private.get("_hidden_params")
    else:  # litellm's stream wrappers are plain classes
        hidden = _get(obj, "_hidden_params")
    return hidden if isinstance(hidden, dict) else {}


def _first_choice(response: Any) -> Any:
    choices = _get(response, "choices")
    return choices[0] if isinstance(choices, list) and choices else None


def _request_id(hidden: dict[str, Any]) -> str | None:
    headers = hidden.get("additional_headers")
    if not isinstance(headers, dict):
        return None
    for name in ("llm_provider-x-request-id", "llm_provider-request-id", "x-request-id",
                 "request-id"):
        found = as_text(headers.get(name))
        if found:
            return found
    return None


def _apply_usage(outcome: Outcome, usage: Any, source: str) -> None:
    """Token fields from litellm's ``Usage`` (its ``prompt_tokens`` already includes
    cached tokens, for Anthropic too)."""
    outcome.tokens_input = as_count(_get(usage, "prompt_tokens"))
    outcome.tokens_output = as_count(_get(usage, "completion_tokens"))
    details = _get(usage, "prompt_tokens_details")
    outcome.tokens_cache_read = as_count(_get(usage, "cache_read_input_tokens")) or as_count(
        _get(details, "cached_tokens"))
    outcome.tokens_cache_creation = (as_count(_get(usage, "cache_creation_input_tokens"))
                                     or as_count(_get(details, "cache_creation_tokens")))
    if outcome.tokens_input is not None or outcome.tokens_output is not None:
        outcome.usage_source = source


def _is_unreported(usage: Any) -> bool:
    # litellm marks a stream that carried no usage with UnreportedUsage(0, 0, 0).
    return usage is None or type(usage).__name__ == "UnreportedUsage"


def _tool_calls(message: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for tool_call in _get(message, "tool_calls") or ():
        function = _get(tool_call, "function")
        name = as_text(_get(function, "name"))
        if name:
            found.append((name, _get(function, "arguments")))
    return found


def _metadata(provider: str, response: Any, hidden: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"via": "litellm"}
    response_id = as_text(_get(response, "id"))
    if response_id:
        metadata["response_id"] = response_id
    cost = hidden.get("response_cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost >= 0:
        metadata["response_cost_usd"] = cost
    if provider == _UNRESOLVED:
        resolved = as_text(hidden.get("custom_llm_provider"))
        if resolved:
            metadata["litellm_provider"] = resolved
    return metadata


# --------------------------------------------------------------------------
# Streams.

class _StreamAccumulator:
    """Folds litellm's ``ModelResponseStream`` chunks (chat and text completion).

    Usage comes from a chunk's ``usage`` (the caller asked for
    ``stream_options.include_usage``) or from the usage litellm hides on the
    finishing chunk: reported by the provider (Anthropic), or counted by litellm
    with a tokenizer once the stream ends (``usage_source: estimated``)."""

    __slots__ = ("_capture", "_finish_chunk", "_model", "_reported_at_finish", "_response_id",
                 "_started", "_stop_reason", "_text", "_tools", "_usage", "stream")

    def __init__(self, capture: bool) -> None:
        self._capture = capture
        self._started = False
        self._model: Any = None
        self._response_id: Any = None
        self._stop_reason: str | None = None
        self._usage: Any = None
        self._finish_chunk: Any = None
        self._reported_at_finish: Any = None
        self._tools: dict[int, list[str]] = {}  # index -> [name, arguments so far]
        self._text: list[str] = []
        self.stream: Any = None  # litellm's stream wrapper: its response headers

    def add(self, chunk: Any) -> None:
        if not self._started:
            self._started = True
            self._model = chunk.model
            self._response_id = chunk.id
        extra = chunk.__pydantic_extra__
        if extra:
            usage = extra.get("usage")
            if usage is not None:
                self._usage = usage
        choices = chunk.choices
        if not choices:
            return
        choice = choices[0].__pydantic_extra__
        finish = choice.get("finish_reason")
        if finish is not None:
            self._stop_reason = finish
            self._finish_chunk = chunk
            self._reported_at_finish = _hidden_params(chunk).get("usage")
        delta = choice.get("delta")
        if delta is None:  # text completion chunks
            if self._capture:
                self._text.append(choice.get("text") or "")
            return
        delta_fields = delta.__pydantic_extra__
        tool_calls = delta_fields.get("tool_calls")
        if tool_calls:
            self._add_tool_deltas(tool_calls)
        if self._capture:
            self._text.append(delta_fields.get("content") or "")

    def _add_tool_deltas(self, tool_calls: Any) -> None:
        for tool_call in tool_calls:
            index = _get(tool_call, "index")
            slot = self._tools.setdefault(index if isinstance(index, int) else len(self._tools),
                                          ["", ""])
            function = _get(tool_call, "function")
            slot[0] = as_text(_get(function, "name")) or slot[0]
            slot[1] += _get(function, "arguments") or ""

    def outcome(self) -> Outcome:
        hidden = _hidden_params(self._finish_chunk)
        metadata: dict[str, Any] = {"via": "litellm"}
        if as_text(self._response_id):
            metadata["response_id"] = self._response_id
        model = as_text(hidden.get("provider_response_model")) or as_text(self._model)
        outcome = Outcome()
        outcome.model = model
        outcome.stop_reason = as_text(self._stop_reason)
        outcome.request_id = _request_id(_hidden_params(self.stream))
        outcome.provider_metadata = metadata
        if self._usage is not None:
            _apply_usage(outcome, self._usage, "reported")
        elif not _is_unreported(self._reported_at_finish):
            _apply_usage(outcome, self._reported_at_finish, "reported")
        elif not _is_unreported(hidden.get("usage")):
            _apply_usage(outcome, hidden.get("usage"), "estimated")
        else:
            _apply_usage(outcome, self._partial_usage(), "estimated")
        outcome.tool_calls = [(name, arguments) for name, arguments in self._tools.values() if name]
        if self._capture:
            tools = [{"name": name, "arguments": args} for name, args in outcome.tool_calls]
            outcome.content = {"text": "".join(self._text), "tool_calls": tools}
        return outcome

    def _partial_usage(self) -> Any:
        """A stream cut short (error, break, close) carries no usage: litellm's own
        recovery counts the chunks delivered so far (it bills them the same way)."""
        partial_response = getattr(self.stream, "partial_response", None)
        if not callable(partial_response):
            return None
        try:
            return _get(partial_response(), "usage")
        except Exception:
            return None


class _SyncLiteLLMStreamProxy(SyncStreamProxy):
    """litellm may make the provider request lazily, on the first ``next()``
    (``text_completion(stream=True)`` calls the OpenAI SDK then): that inner call
    is part of this one and must stay silent, so reading up to the first chunk
    runs under the guard (later chunks skip the contextvar: per-chunk budget)."""

    def __iter__(self) -> Iterator[Any]:
        return self  # every read through the guarded __next__, not the core's generator

    def __next__(self) -> Any:
        if self._self_recorder.chunk_times:
            return SyncStreamProxy.__next__(self)
        token = _IN_CALL.set(True)
        try:
            return SyncStreamProxy.__next__(self)
        finally:
            _IN_CALL.reset(token)


class _AsyncLiteLLMStreamProxy(AsyncStreamProxy):
    """The async twin, guarded the same way. litellm's stream wrapper closes with
    a *sync* ``close()`` and an async ``aclose()``, unlike the SDK streams the
    core's proxy models."""

    async def __anext__(self) -> Any:
        if self._self_recorder.chunk_times:
            return await AsyncStreamProxy.__anext__(self)
        token = _IN_CALL.set(True)
        try:
            return await AsyncStreamProxy.__anext__(self)
        finally:
            _IN_CALL.reset(token)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_recorder.abort()

    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._self_recorder.abort()


def _is_stream(result: Any) -> bool:
    kind = type(result)
    return hasattr(kind, "__next__") or hasattr(kind, "__anext__")


def _stream_handler(is_async: bool) -> ResultHandler:
    def handle(call: Call, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not _is_stream(result):
            call.succeed(call.adapter.response_outcome(result))
            return result
        accumulator = _StreamAccumulator(capture=call.sensor.config.capture_prompts)
        accumulator.stream = result
        recorder = StreamRecorder(call, accumulator)
        if is_async and hasattr(type(result), "__anext__"):
            return _AsyncLiteLLMStreamProxy(result, recorder)
        return _SyncLiteLLMStreamProxy(result, recorder)

    return handle


# --------------------------------------------------------------------------
# The adapter: one per (entry point, provider), built on first use.

class LiteLLMAdapter:
    def __init__(self, provider: str, entry: _Entry) -> None:
        self.provider = provider
        self.entry = entry

    def request_model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        return as_text(_argument(args, kwargs, "model", self.entry.model_at))

    def request_content(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        entry = self.entry
        content: dict[str, Any] = {
            entry.input_name: _argument(args, kwargs, entry.input_name, entry.input_at)}
        if kwargs.get("tools"):
            content["tools"] = kwargs["tools"]
        return content

    def response_outcome(self, response: Any) -> Outcome:
        hidden = _hidden_params(response)
        outcome = Outcome()
        outcome.model = as_text(_get(response, "model"))
        outcome.request_id = _request_id(hidden)
        outcome.provider_metadata = _metadata(self.provider, response, hidden)
        _apply_usage(outcome, _get(response, "usage"), "reported")
        if self.entry.kind == "embeddings":
            outcome.output_dimensions = _embedding_dimensions(_get(response, "data"))
            return outcome
        choice = _first_choice(response)
        outcome.stop_reason = as_text(_get(choice, "finish_reason"))
        message = _get(choice, "message")
        outcome.tool_calls = _tool_calls(message)
        outcome.content = _get(message, "content") if message is not None else _get(choice, "text")
        return outcome

    def new_accumulator(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _StreamAccumulator:
        from .. import _sensor

        sensor = _sensor.active()
        return _StreamAccumulator(capture=bool(sensor and sensor.config.capture_prompts))

    def error_facts(self, exc: BaseException) -> ErrorFacts:
        return litellm_error_facts(exc, self.provider)


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, position: int) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def _embedding_dimensions(data: Any) -> tuple[int, int] | None:
    if not isinstance(data, list) or not data:
        return None
    vector = _get(data[0], "embedding")
    # base64-encoded vectors arrive as a string: their dimension is unknown.
    if not isinstance(vector, list) or not vector:
        return None
    return len(data), len(vector)


def litellm_error_facts(exc: BaseException, provider: str) -> ErrorFacts:
    """The generic classification, completed from what litellm's exceptions carry:
    the provider's response headers in ``litellm_response_headers`` (its httpx
    routes leave ``exc.response`` empty) and the HTTP status echoed as ``code``."""
    facts = classify(exc, provider)
    try:
        if provider == _UNRESOLVED:
            facts.provider = as_text(getattr(exc, "llm_provider", None)) or provider
        headers = getattr(exc, "litellm_response_headers", None)
        facts.retry_after = facts.retry_after if facts.retry_after is not None else _retry_after(
            _header(headers, "retry-after"))
        facts.request_id = facts.request_id or _header(headers, "x-request-id") or _header(
            headers, "request-id")
        if facts.provider_error_code and facts.provider_error_code.isdigit():
            facts.provider_error_code = _error_code(getattr(exc, "body", None), None)
    except Exception:
        pass
    return facts


# --------------------------------------------------------------------------
# Which provider litellm will route to, cheaply (litellm.get_llm_provider costs
# ~20 µs and prints to stdout for an unknown model).

_known_providers: frozenset[str] | None = None


def _provider_names() -> frozenset[str]:
    global _known_providers
    if _known_providers is None:
        litellm = sys.modules.get("litellm")
        names = getattr(litellm, "provider_list", ()) or ()
        _known_providers = frozenset(getattr(name, "value", name) for name in names)
    return _known_providers


def _normalized(provider: str) -> str:
    return _PROVIDER_ALIASES.get(provider, provider)


def resolve_provider(model: Any, kwargs: dict[str, Any]) -> str:
    """The provider litellm routes ``model`` to, or ``"litellm"`` when unknown."""
    explicit = kwargs.get("custom_llm_provider")
    if isinstance(explicit, str) and explicit:
        return _normalized(explicit)
    if not isinstance(model, str):
        return _UNRESOLVED
    prefix, slash, _ = model.partition("/")
    if slash and prefix in _provider_names():
        return _normalized(prefix)
    litellm = sys.modules.get("litellm")
    known = getattr(litellm, "model_cost", None)
    entry = known.get(model) if isinstance(known, dict) else None
    provider = entry.get("litellm_provider") if isinstance(entry, dict) else None
    return _normalized(provider) if isinstance(provider, str) and provider else _UNRESOLVED


# --------------------------------------------------------------------------
# Patching.

class _LiteLLMFunction(wrapt.FunctionWrapper):  # type: ignore[misc,type-arg,unused-ignore]
    """Marks the functions we replaced, so patching is idempotent and unpatch exact."""


def _entry_wrapper(entry: _Entry) -> Callable[..., Any]:
    by_provider: dict[str, Callable[..., Any]] = {}
    factory = async_wrapper if entry.is_async else sync_wrapper
    handler = _stream_handler(entry.is_async)

    def for_provider(provider: str) -> Callable[..., Any]:
        wrapper = by_provider.get(provider)
        if wrapper is None:
            wrapper = by_provider[provider] = factory(LiteLLMAdapter(provider, entry), entry.kind,
                                                      handler)
        return wrapper

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            provider = resolve_provider(_argument(args, kwargs, "model", entry.model_at), kwargs)
        except Exception:
            provider = _UNRESOLVED
        return for_provider(provider)(wrapped, instance, args, kwargs)

    return wrapper


_wrappers: dict[str, Callable[..., Any]] = {}
# (module, attribute, original) for every attribute we replaced.
_replaced: list[tuple[Any, str, Any]] = []


def patch_module(module_name: str) -> None:
    """Wrap litellm's entry points in ``litellm`` and ``litellm.main`` (idempotent)."""
    for name in _PATCHED_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            _patch_functions(module)


def _patch_functions(module: Any) -> None:
    for entry in _ENTRIES:
        original = getattr(module, entry.name, None)
        if original is None or isinstance(original, _LiteLLMFunction):
            continue
        wrapper = _wrappers.get(entry.name)
        if wrapper is None:
            wrapper = _wrappers[entry.name] = _entry_wrapper(entry)
        setattr(module, entry.name, _LiteLLMFunction(original, wrapper))
        _replaced.append((module, entry.name, original))


def unpatch() -> None:
    """Put back every litellm function we replaced."""
    while _replaced:
        module, name, original = _replaced.pop()
        if isinstance(getattr(module, name, None), _LiteLLMFunction):
            setattr(module, name, original)
        else:
            logger.warning("flightdeck-sensor could not restore litellm.%s: it was replaced "
                           "after the sensor patched it", name)
