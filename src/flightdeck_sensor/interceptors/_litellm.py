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

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._core import (
    AsyncStreamProxy,
    Call,
    ErrorFacts,
    Outcome,
    ResultHandler,
    StreamRecorder,
    SyncStreamProxy,
    as_text,
    async_wrapper,
    classify,
    error_code,
    header,
    retry_after,
    silenced,
    silenced_async,
    sync_wrapper,
    with_keyword_model,
)
from ._litellm_read import (
    UNRESOLVED,
    StreamAccumulator,
    apply_usage,
    embedding_dimensions,
    first_choice,
    get_field,
    hidden_params,
    metadata_of,
    request_id_in,
    tool_calls_of,
)


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
    _Entry("text_completion", "text_completion", False, 1, "prompt", 0),
    _Entry("atext_completion", "text_completion", True, 1, "prompt", 0),
)

# litellm provider names that are an API flavour of a vendor, not a vendor.
_PROVIDER_ALIASES = {"text-completion-openai": "openai", "azure_text": "azure",
                     "text-completion-codestral": "codestral"}


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
        return silenced(SyncStreamProxy.__next__, self)


class _AsyncLiteLLMStreamProxy(AsyncStreamProxy):
    """The async twin, guarded the same way. litellm's stream wrapper closes with
    a *sync* ``close()`` and an async ``aclose()``, unlike the SDK streams the
    core's proxy models."""

    async def __anext__(self) -> Any:
        if self._self_recorder.chunk_times:
            return await AsyncStreamProxy.__anext__(self)
        return await silenced_async(AsyncStreamProxy.__anext__, self)

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
        accumulator = StreamAccumulator(capture=call.sensor.config.capture_prompts)
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

    def with_model(self, args: tuple[Any, ...], kwargs: dict[str, Any],
                   model: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``model=``, or the positional model (``completion("gpt-4o", ...)``), swapped
        on copies of the arguments."""
        at = self.entry.model_at
        if "model" not in kwargs and len(args) > at:
            return (*args[:at], model, *args[at + 1:]), kwargs
        return with_keyword_model(args, kwargs, model)

    def request_content(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        entry = self.entry
        content: dict[str, Any] = {
            entry.input_name: _argument(args, kwargs, entry.input_name, entry.input_at)}
        if kwargs.get("tools"):
            content["tools"] = kwargs["tools"]
        return content

    def response_outcome(self, response: Any) -> Outcome:
        hidden = hidden_params(response)
        outcome = Outcome()
        outcome.model = as_text(get_field(response, "model"))
        outcome.request_id = request_id_in(hidden)
        outcome.provider_metadata = metadata_of(self.provider, response, hidden)
        apply_usage(outcome, get_field(response, "usage"), "reported")
        if self.entry.kind == "embeddings":
            outcome.output_dimensions = embedding_dimensions(get_field(response, "data"))
            return outcome
        choice = first_choice(response)
        outcome.stop_reason = as_text(get_field(choice, "finish_reason"))
        message = get_field(choice, "message")
        outcome.tool_calls = tool_calls_of(message)
        outcome.content = (get_field(message, "content") if message is not None
                           else get_field(choice, "text"))
        return outcome

    def error_facts(self, exc: BaseException) -> ErrorFacts:
        return litellm_error_facts(exc, self.provider)


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, position: int) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[position] if len(args) > position else None


def litellm_error_facts(exc: BaseException, provider: str) -> ErrorFacts:
    """The generic classification, completed from what litellm's exceptions carry:
    the provider's response headers in ``litellm_response_headers`` (its httpx
    routes leave ``exc.response`` empty) and the HTTP status echoed as ``code``."""
    facts = classify(exc, provider)
    try:
        if provider == UNRESOLVED:
            facts.provider = as_text(getattr(exc, "llm_provider", None)) or provider
        headers = getattr(exc, "litellm_response_headers", None)
        facts.retry_after = facts.retry_after if facts.retry_after is not None else retry_after(
            header(headers, "retry-after"))
        facts.request_id = facts.request_id or header(headers, "x-request-id") or header(
            headers, "request-id")
        if facts.provider_error_code and facts.provider_error_code.isdigit():
            facts.provider_error_code = error_code(getattr(exc, "body", None), None)
    except Exception:
        pass
    return facts


# --------------------------------------------------------------------------
# Which provider litellm will route to, cheaply (litellm.get_llm_provider costs
# more than our whole call, and prints to stdout for an unknown model).

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
        return UNRESOLVED
    prefix, slash, _ = model.partition("/")
    if slash and prefix in _provider_names():
        return _normalized(prefix)
    litellm = sys.modules.get("litellm")
    known = getattr(litellm, "model_cost", None)
    entry = known.get(model) if isinstance(known, dict) else None
    provider = entry.get("litellm_provider") if isinstance(entry, dict) else None
    return _normalized(provider) if isinstance(provider, str) and provider else UNRESOLVED


# --------------------------------------------------------------------------
# The wrappers: an entry point's provider is known only from each call's model.

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
            provider = UNRESOLVED
        return for_provider(provider)(wrapped, instance, args, kwargs)

    return wrapper


# The wrapper of each row of this provider's table (flightdeck_sensor._providers):
# a function's own name.
WRAPPERS: dict[str, Callable[..., Any]] = {entry.name: _entry_wrapper(entry) for entry in _ENTRIES}
