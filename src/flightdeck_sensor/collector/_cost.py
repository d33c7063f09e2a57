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
from decimal import Decimal
from typing import Any

from ._validate import Event

PRICES_PACKAGE = "genai_prices"
INSTALL_HINT = ("cost in dollars needs the price database: pip install "
                "'flightdeck-sensor[collector]' (until then every cost shows '?')")

# The events whose tokens were billed: every answered call, and a failed one that
# still reported usage (a stream cut off after it began, say).
_ALWAYS_BILLED = frozenset({"post_call", "embeddings"})
_BILLED_WITH_USAGE = frozenset({"llm_error"})
_NOT_LOOKED_UP = object()  # a (provider, model) pair not asked of the database yet
# Model names come from whoever posts events: the lookups kept are bounded.
MAX_CACHED_PAIRS = 4096

Calculate = Callable[..., Any]
Counts = tuple[int, int, int, int]  # input (all of it), output, cache read, cache write
_PROBE = 1_000_000
# A usage unlike any probe: a model's linear rates must price it as the database does.
_CHECK: Counts = (123_457, 7_919, 1_013, 211)


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
    """Prices calls with the database, which is looked up once per (provider, model)
    pair (an unknown pair included: its lookup is the slow part)."""

    def __init__(self) -> None:
        self._loaded = False
        self._calculate: Calculate | None = None
        self._usage: Callable[..., Any] | None = None
        self._models: dict[tuple[str | None, str], _Model | None] = {}

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
        counts = (tokens_in or 0, tokens_out or 0, raw.get("tokens_cache_read") or 0,
                  raw.get("tokens_cache_creation") or 0)
        if counts[2] + counts[3] > counts[0]:
            return None  # cached tokens are part of the input: these counts contradict
        when = event.timestamp
        key = (provider if isinstance(provider, str) else None, model)
        found = self._models.get(key, _NOT_LOOKED_UP)
        if found is _NOT_LOOKED_UP:
            found = self._look_up(key, when)
            if len(self._models) >= MAX_CACHED_PAIRS:
                self._models.clear()
            self._models[key] = found
        if not isinstance(found, _Model):
            return None
        try:
            return float(found.cost(counts, when))
        except Exception:  # counts the database refuses (cache above the input, say)
            return None

    def _look_up(self, key: tuple[str | None, str], when: datetime) -> _Model | None:
        """The model as the database knows it: under the sensor's provider name, else by
        its own name alone (litellm's "fireworks_ai", a gateway serving Claude through the
        openai SDK); None when unknown, or when there is no database."""
        if not self._loaded:
            self._load()
        if self._calculate is None or self._usage is None:
            return None
        provider, model = key
        for candidate in dict.fromkeys((provider, None)):
            try:
                calculation = self._calculate(_usage(self._usage, (0, 0, 0, 0)), model,
                                              provider_id=candidate,
                                              genai_request_timestamp=when)
            except LookupError:
                continue
            except Exception:
                return None
            return _Model(calculation, self._usage)
        return None

    def load(self) -> None:
        """Import the price database now (the collector does it before it serves): its
        import takes a few tenths of a second, which the first priced batch would
        otherwise wait for, with the store locked."""
        if not self._loaded:
            self._load()

    def _load(self) -> None:
        self._loaded = True
        try:
            import genai_prices
        except Exception:  # not installed (plain install), or broken: every cost is "?"
            return
        self._calculate, self._usage = genai_prices.calc_price, genai_prices.Usage


def _usage(make: Callable[..., Any], counts: Counts) -> Any:
    tokens_in, tokens_out, cache_read, cache_write = counts
    return make(input_tokens=tokens_in, output_tokens=tokens_out, cache_read_tokens=cache_read,
                cache_write_tokens=cache_write)


class _Model:
    """One model of one provider, as the database prices it.

    The database's price of a call is linear in its four token counts while the model
    has no tiered price (and only then): a constant plus a rate per count. Those rates
    are the database's own answers for a few probe usages, taken once per price in
    force (a price changes at a date, or off-peak), and checked against it on one more
    usage: pricing a call is then four multiplications, not the database's
    decomposition of the usage (several times the collector's whole cost of storing
    an event). A tiered price, or rates that miss the check, go to the database for
    every call.
    """

    def __init__(self, calculation: Any, make_usage: Callable[..., Any]) -> None:
        self._info, self._provider, self._make_usage = (calculation.model,
                                                        calculation.provider, make_usage)
        self._rates: dict[int, tuple[Any, tuple[Decimal, ...] | None]] = {}

    def cost(self, counts: Counts, when: datetime) -> Decimal:
        price = self._info.get_prices(when)
        known = self._rates.get(id(price))
        if known is None or known[0] is not price:
            known = (price, self._linear_rates(price))  # the price kept: its id stays its
            self._rates[id(price)] = known
        rates = known[1]
        if rates is None:
            return Decimal(self._info.calc_price(_usage(self._make_usage, counts),
                                                 self._provider,
                                                 genai_request_timestamp=when).total_price)
        return _linear_cost(rates, counts)

    def _linear_rates(self, price: Any) -> tuple[Decimal, ...] | None:
        if any(not isinstance(value, (Decimal, type(None)))
               for name, value in vars(price).items() if not name.startswith("_")):
            return None  # tiered: the rate depends on the size of the call
        try:
            def total(counts: Counts) -> Decimal:
                return Decimal(price.calc_price(_usage(self._make_usage, counts))["total_price"])

            base = total((0, 0, 0, 0))
            rates = (base,
                     (total((_PROBE, 0, 0, 0)) - base) / _PROBE,
                     (total((0, _PROBE, 0, 0)) - base) / _PROBE,
                     (total((_PROBE, 0, _PROBE, 0)) - total((_PROBE, 0, 0, 0))) / _PROBE,
                     (total((_PROBE, 0, 0, _PROBE)) - total((_PROBE, 0, 0, 0))) / _PROBE)
            return rates if _linear_cost(rates, _CHECK) == total(_CHECK) else None
        except Exception:  # a probe the database refuses: it prices each call itself
            return None


def _linear_cost(rates: tuple[Decimal, ...], counts: Counts) -> Decimal:
    base, per_input, per_output, per_cache_read, per_cache_write = rates
    tokens_in, tokens_out, cache_read, cache_write = counts
    return (base + per_input * tokens_in + per_output * tokens_out
            + per_cache_read * cache_read + per_cache_write * cache_write)


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
