"""Cost in dollars, computed by the collector at ingest from the stored tokens and the
served model, with pydantic's ``genai-prices`` database (the ``[collector]`` extra).

The sensor never prices anything: it stays light. The price database is imported
here lazily, on the first call that needs a price; without it every call is
unpriced. Unpriced is not free: a call the database cannot price has a cost of
NULL (shown "?"), never 0, and a session counts its unpriced calls beside the sum
of its priced ones (``cost_usd_known``, ``calls_unpriced``; see :func:`cost_text`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ._validate import Event

PRICES_PACKAGE = "genai_prices"
INSTALL_HINT = ("cost in dollars needs the price database: pip install "
                "'flightdeck-sensor[collector]' (until then every cost shows '?')")

# The events whose tokens were billed: every answered call, and a failed one that
# still reported usage (a stream cut off after it began, say).
_ALWAYS_BILLED = frozenset({"post_call", "embeddings"})
_BILLED_WITH_USAGE = frozenset({"llm_error"})
_UNKNOWN = object()  # a (provider, model) pair the database does not price
# Model names come from whoever posts events: the lookups kept are bounded.
MAX_CACHED_PAIRS = 4096

Calculate = Callable[..., Any]


def prices_installed() -> bool:
    """Whether the price database can be imported (looked up, not imported: it is large)."""
    return importlib.util.find_spec(PRICES_PACKAGE) is not None


def is_billed(event_type: str, raw: dict[str, Any]) -> bool:
    """Whether this event is a call that has (or should have) a cost."""
    if event_type in _ALWAYS_BILLED:
        return True
    return event_type in _BILLED_WITH_USAGE and (
        raw.get("tokens_input") is not None or raw.get("tokens_output") is not None)


class Pricer:
    """Prices calls; which provider id the database knows a (provider, model) pair by is
    looked up once per pair, an unknown pair included (its lookup is the slow part)."""

    def __init__(self, calculate: Calculate | None = None) -> None:
        self._calculate = calculate
        self._loaded = calculate is not None
        self._usage: Callable[..., Any] | None = None
        self._provider_ids: dict[tuple[str | None, str], object] = {}

    def cost(self, event: Event) -> float | None:
        """The call's cost in US dollars, at the prices of its time; None when it is not a
        billed call or cannot be priced (no price database, an unknown model, no tokens)."""
        raw = event.raw
        if not is_billed(event.event_type, raw):
            return None
        model, provider = raw.get("model"), raw.get("provider")
        tokens_in, tokens_out = raw.get("tokens_input"), raw.get("tokens_output")
        if not isinstance(model, str) or not model or (tokens_in is None and tokens_out is None):
            return None
        if not self._loaded:
            self._load()
        if self._calculate is None or self._usage is None:
            return None
        usage = self._usage(
            input_tokens=tokens_in or 0, output_tokens=tokens_out or 0,
            cache_read_tokens=raw.get("tokens_cache_read") or 0,
            cache_write_tokens=raw.get("tokens_cache_creation") or 0)
        when = event.timestamp
        key = (provider if isinstance(provider, str) else None, model)
        provider_id = self._provider_ids.get(key)
        if provider_id is None and key not in self._provider_ids:
            provider_id = self._resolve(key, usage, when)
            if len(self._provider_ids) >= MAX_CACHED_PAIRS:
                self._provider_ids.clear()
            self._provider_ids[key] = provider_id
        if provider_id is _UNKNOWN:
            return None
        try:
            total = self._calculate(usage, model, provider_id=provider_id,
                                    genai_request_timestamp=when).total_price
            return float(total)
        except Exception:  # a count the database refuses (cache above the input, say)
            return None

    def _resolve(self, key: tuple[str | None, str], usage: Any, when: datetime) -> object:
        """The provider id to ask for this pair: the sensor's provider when the database
        knows it by that name, else none (the database matches the model's name to a
        provider: litellm's "vertex_ai", an OpenAI-compatible server), else unknown."""
        assert self._calculate is not None
        provider, model = key
        for candidate in dict.fromkeys((provider, None)):
            try:
                self._calculate(usage, model, provider_id=candidate, genai_request_timestamp=when)
            except LookupError:
                continue
            except Exception:  # this usage's fault, not the pair's: priced per call
                return candidate
            return candidate
        return _UNKNOWN

    def _load(self) -> None:
        self._loaded = True
        try:
            import genai_prices
        except Exception:  # not installed (plain install), or broken: every cost is "?"
            return
        self._calculate, self._usage = genai_prices.calc_price, genai_prices.Usage


def session_cost_usd(known: float | None, unpriced: int | None) -> float | None:
    """A session's cost when every call of it was priced, else None (unknown)."""
    if unpriced:
        return None
    return float(known or 0.0)


def cost_text(known: float | None, unpriced: int | None = 0) -> str:
    """"$0.0123"; "$0.0123+?" when some calls could not be priced; "?" when none could
    (or the cost is unknown): never "$0" for a cost nobody knows."""
    known = float(known or 0.0)
    if unpriced and known <= 0:
        return "?"
    return dollars(known) + ("+?" if unpriced else "")


def event_cost_text(event_type: str, raw: dict[str, Any], cost: float | None) -> str:
    """A billed call's cost, "?" when it could not be priced; "" for other events."""
    if cost is not None:
        return dollars(cost)
    return "?" if is_billed(event_type, raw) else ""


def dollars(amount: float) -> str:
    """Dollars at a precision a call's cost is readable in: "$12.35", "$0.0123",
    "$0.000042"."""
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount >= 0.01:
        return f"${amount:.4f}"
    if amount >= 0.000001:
        return f"${amount:.6f}"
    return "<$0.000001"
