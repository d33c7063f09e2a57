"""The collector's prices are the price database's own: for every model it knows, at
usages big and small, with and without cached tokens, the cost the collector stores
equals genai-prices' ``calc_price`` for the same usage and time."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flightdeck_sensor.collector._cost import Pricer, cost_text, dollars, event_cost_text
from flightdeck_sensor.collector._validate import Event, utc_text

genai_prices = pytest.importorskip("genai_prices")
from genai_prices import data_snapshot  # noqa: E402

# (input with cache, output, cache read, cache write): plain, cached, above 200k tokens
# (a tier's threshold), and an odd mix.
USAGES = [(1_200, 80, 0, 0), (50_000, 900, 30_000, 5_000), (250_000, 4_000, 100_000, 0),
          (7, 3, 2, 1)]
NOW = datetime.now(timezone.utc)


def _call(provider: str | None, model: str, usage: tuple[int, int, int, int],
          when: datetime = NOW) -> Event:
    tokens_in, tokens_out, cache_read, cache_write = usage
    raw: dict[str, Any] = {"model": model, "provider": provider, "tokens_input": tokens_in,
                           "tokens_output": tokens_out, "tokens_cache_read": cache_read,
                           "tokens_cache_creation": cache_write}
    return Event(str(uuid.uuid4()), str(uuid.uuid4()), "post_call", utc_text(when), raw)


def _database_price(provider: str | None, model: str, usage: tuple[int, int, int, int],
                    when: datetime = NOW) -> float | None:
    """calc_price's answer; a model the database does not know under this provider's name
    is looked up by its own name (as the collector does); None: no price."""
    tokens_in, tokens_out, cache_read, cache_write = usage
    for provider_id in dict.fromkeys((provider, None)):
        try:
            return float(genai_prices.calc_price(
                genai_prices.Usage(input_tokens=tokens_in, output_tokens=tokens_out,
                                   cache_read_tokens=cache_read, cache_write_tokens=cache_write),
                model, provider_id=provider_id, genai_request_timestamp=when).total_price)
        except LookupError:
            continue
        except Exception:
            return None
    return None


def _every_model() -> list[tuple[str, str]]:
    snapshot = data_snapshot.get_snapshot()
    return [(provider.id, model.id) for provider in snapshot.providers
            for model in provider.models]


def test_every_model_of_the_database_costs_what_the_database_says() -> None:
    # Given one pricer, as the collector keeps one (its per-model rates cached)
    pricer = Pricer()
    mismatches = []
    # When every model of every provider is priced at each usage, twice (cached rates)
    for provider, model in _every_model():
        for usage in USAGES * 2:
            stored = pricer.cost(_call(provider, model, usage))
            expected = _database_price(provider, model, usage)
            if stored != expected:
                mismatches.append((provider, model, usage, stored, expected))
    # Then each equals the database's own calculation (None where it has no price)
    assert mismatches == []


def test_a_price_that_changed_is_taken_at_the_time_of_the_call() -> None:
    # Given models whose price in force depends on the time (a start date, off-peak hours)
    snapshot = data_snapshot.get_snapshot()
    timed = [(provider.id, model.id) for provider in snapshot.providers
             for model in provider.models if isinstance(model.prices, list)]
    assert timed, "the database has no model with a price that changes over time"
    pricer = Pricer()
    times = [NOW - timedelta(hours=hours) for hours in (0, 5, 11, 17, 23, 47)]
    # When each is priced at calls spread over two days, Then at the price of each time
    for provider, model in timed:
        for when in times:
            usage = USAGES[1]
            assert pricer.cost(_call(provider, model, usage, when)) == \
                _database_price(provider, model, usage, when), (provider, model, when)


def test_an_unknown_model_or_contradicting_counts_have_no_cost() -> None:
    pricer = Pricer()
    assert pricer.cost(_call("openai", "no-such-model-anywhere", USAGES[0])) is None
    assert pricer.cost(_call("openai", "gpt-4o-mini", (10, 5, 8, 8))) is None  # cache > input
    assert pricer.cost(_call("openai", "gpt-4o-mini", USAGES[0])) == \
        _database_price("openai", "gpt-4o-mini", USAGES[0])


def test_a_model_served_under_another_provider_is_priced_by_its_name() -> None:
    # An OpenAI-compatible gateway (the openai SDK, provider "openai") serving Claude
    usage = USAGES[0]
    with pytest.raises(LookupError):
        genai_prices.calc_price(genai_prices.Usage(input_tokens=1, output_tokens=1),
                                "claude-3-5-sonnet-20241022", provider_id="openai")
    stored = Pricer().cost(_call("openai", "claude-3-5-sonnet-20241022", usage))
    assert stored is not None
    assert stored == _database_price("anthropic", "claude-3-5-sonnet-20241022", usage)


@pytest.mark.parametrize(("known", "unpriced", "shown"), [
    (0.0123, 0, "$0.0123"), (0.0123, 2, "$0.0123+?"), (0.0, 3, "?"), (0.0, 0, "$0"),
    (12.345, 0, "$12.35"), (0.0000042, 0, "$0.000004"), (1e-9, 0, "<$0.000001"),
])
def test_a_session_cost_reads_as_dollars_and_unknown_is_never_zero(
        known: float, unpriced: int, shown: str) -> None:
    assert cost_text(known, unpriced) == shown


def test_an_event_cost_is_question_mark_only_for_a_call() -> None:
    assert event_cost_text("post_call", {}, None) == "?"
    assert event_cost_text("llm_error", {"tokens_input": 3}, None) == "?"
    assert event_cost_text("llm_error", {}, None) == ""
    assert event_cost_text("tool_call", {}, None) == ""
    assert event_cost_text("post_call", {}, 0.5) == dollars(0.5) == "$0.5000"
