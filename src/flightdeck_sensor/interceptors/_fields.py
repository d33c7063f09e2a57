"""What a response tells (:class:`Outcome`), the protocols a provider
implements (:class:`Adapter`, :class:`Accumulator`), and the cheap readers
extractors use on SDK objects.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ._errors import ErrorFacts

ToolCall = tuple[str, Any]  # (tool name, arguments as the response gave them)


class Outcome:
    """What a finished response tells us. Every field optional: extractors set
    what they find and leave the rest at the defaults ``__init__`` gives.
    The token fields hold what :func:`as_count` let through: the event takes
    them as they are.

    Slots, every field set in ``__init__``, no arguments: CPython 3.12 does not
    specialize reads and writes of an attribute that shadows a class-level
    default (each cost about four times a slot's), and a class called with
    keyword arguments builds a dict for them (a dataclass costs several times more
    to make; docs/decisions.md).
    """

    __slots__ = ("content", "model", "output_dimensions", "provider_metadata", "request_id",
                 "stop_reason", "tokens_cache_creation", "tokens_cache_read", "tokens_input",
                 "tokens_output", "tool_calls", "usage_source")

    def __init__(self) -> None:
        self.model: str | None = None
        self.tokens_input: int | None = None  # includes cached tokens
        self.tokens_output: int | None = None
        self.tokens_cache_read: int | None = None
        self.tokens_cache_creation: int | None = None
        self.usage_source = "absent"  # reported | estimated | absent
        self.stop_reason: str | None = None
        self.request_id: str | None = None
        self.provider_metadata: dict[str, Any] = {}
        self.tool_calls: Sequence[ToolCall] = ()
        self.content: Any = None  # response content, sent only with prompt capture
        self.output_dimensions: tuple[int, int] | None = None  # embeddings: (count, dimension)

    def __repr__(self) -> str:
        found = ", ".join(f"{name}={getattr(self, name)!r}" for name in _OUTCOME_FIELDS)
        return f"Outcome({found})"


_OUTCOME_FIELDS = ("model", "tokens_input", "tokens_output", "tokens_cache_read",
                   "tokens_cache_creation", "usage_source", "stop_reason", "request_id",
                   "provider_metadata", "tool_calls", "content", "output_dimensions")


class Accumulator(Protocol):
    """Folds stream chunks into an Outcome; provider-specific."""

    def add(self, chunk: Any) -> None: ...

    def outcome(self) -> Outcome: ...


class Adapter(Protocol):
    """Everything provider-specific a :class:`Call` needs: providers are data over
    the core. A stream's :class:`Accumulator` is made by the provider's result
    handler, which knows the stream (the core never asks the adapter for one)."""

    provider: str

    def request_model(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None: ...

    def request_content(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    def with_model(self, args: tuple[Any, ...], kwargs: dict[str, Any],
                   model: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Copies of the call's arguments with ``model`` in place of the one asked
        for (a degrade); the program's own objects are never changed."""
        ...

    def response_outcome(self, response: Any) -> Outcome: ...

    def error_facts(self, exc: BaseException) -> ErrorFacts: ...


def as_count(value: Any) -> int | None:
    """``value`` if it is a count (an int, not a bool, not negative), else None."""
    return value if type(value) is int and value >= 0 else None


def as_text(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


FieldReader = Callable[[Any], tuple[Any, ...]]


def field_reader(*names: str) -> FieldReader:
    """A function reading ``names`` off a response object, in that order, each
    as ``getattr(obj, name, None)`` reads it, except a private ``_name`` (the
    SDKs' ``_request_id``), read from the instance dict only: unset, it is not
    there, and a ``getattr`` miss goes through pydantic's ``__getattr__`` and
    raises inside it (slowly).

    Why not ``getattr``: the SDKs' pydantic models define ``__getattr__``, so
    CPython 3.12 cannot specialize reads of their attributes, and each costs
    several times a pick from the instance dict in C; the reader has a fixed
    cost (the call, fetching the instance dict, the tuple), so it pays from
    about four names (callgrind's counts: docs/decisions.md). An object where a name is
    not in the dict (a field pydantic keeps in ``__pydantic_extra__``, a model
    of an older SDK, a model without ``_request_id``, no ``__dict__`` at all)
    is read carefully, name by name. Only a class attribute shadowing the
    instance dict (a property of the same name) would read differently; the
    SDKs' response models have none."""
    if len(names) < 2:  # itemgetter of one name gives the value, not a tuple
        raise ValueError("field_reader needs two names or more; use getattr for one")
    pick = operator.itemgetter(*names)

    def read(obj: Any) -> tuple[Any, ...]:
        try:
            found: tuple[Any, ...] = pick(obj.__dict__)
        except Exception:
            return _read_carefully(obj, names)
        return found

    return read


def _read_carefully(obj: Any, names: tuple[str, ...]) -> tuple[Any, ...]:
    instance = getattr(obj, "__dict__", None)
    fields = instance if isinstance(instance, dict) else {}
    return tuple(fields[name] if name in fields
                 else None if name[0] == "_" else getattr(obj, name, None)
                 for name in names)
