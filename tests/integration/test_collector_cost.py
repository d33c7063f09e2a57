"""Cost in dollars, as the real collector computes it at ingest: the price database's own
figure for the served model and the stored tokens, cached tokens at their price, an
unknown model "?" (never $0), and each session's sum, in the database and on the CLI."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime
from typing import Any

import pytest

from fixtures.anthropic_sdk import sync_client
from fixtures.collector import CollectorProcess
from fixtures.collector_events import valid_event

genai_prices = pytest.importorskip("genai_prices")

BATCH = "/ingest/v1/events/batch"


def expected_cost(event: dict[str, Any]) -> float:
    """genai-prices' own price of the event's usage for its served model, at its time."""
    usage = genai_prices.Usage(
        input_tokens=event["tokens_input"], output_tokens=event["tokens_output"],
        cache_read_tokens=event.get("tokens_cache_read") or 0,
        cache_write_tokens=event.get("tokens_cache_creation") or 0)
    when = datetime.fromisoformat(event["timestamp"])
    return float(genai_prices.calc_price(usage, event["model"], provider_id=event["provider"],
                                         genai_request_timestamp=when).total_price)


def stored_costs(collector: CollectorProcess, session: str) -> dict[str, float | None]:
    with sqlite3.connect(collector.db_path) as conn:
        return dict(conn.execute("SELECT id, cost_usd FROM events WHERE session_id = ?",
                                 (session,)).fetchall())


def session_json(collector: CollectorProcess, session: str) -> dict[str, Any]:
    result = collector.cli("sessions", "--json", "--limit", "0")
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return next(row for row in rows if row["session_id"] == session)


def events_json(collector: CollectorProcess, session: str) -> list[dict[str, Any]]:
    result = collector.cli("events", session, "--json")
    assert result.returncode == 0, result.stderr
    events: list[dict[str, Any]] = json.loads(result.stdout)
    return events


def test_a_known_model_costs_what_the_price_database_says(collector: CollectorProcess) -> None:
    # Given calls of two providers' models, the Anthropic one writing and reading its cache
    session = str(uuid.uuid4())
    openai_call = valid_event(session_id=session, model="gpt-4o-mini-2024-07-18",
                              provider="openai", tokens_input=2_000, tokens_output=300)
    claude_call = valid_event(session_id=session, model="claude-sonnet-4-20250514",
                              provider="anthropic", tokens_input=9_000, tokens_output=700,
                              tokens_cache_read=5_000, tokens_cache_creation=3_000)
    # When the collector receives them
    status, answer = collector.post(BATCH, {"events": [openai_call, claude_call]})
    assert status == 200, answer
    # Then each call's stored cost, and the one `events --json` shows, is the database's own
    costs = stored_costs(collector, session)
    assert costs[openai_call["id"]] == expected_cost(openai_call)
    assert costs[claude_call["id"]] == expected_cost(claude_call)
    shown = {event["id"]: event["cost_usd"] for event in events_json(collector, session)}
    assert shown == costs


def test_the_served_model_is_priced_not_the_requested_one(collector: CollectorProcess) -> None:
    # Given a call that asked for gpt-4o and was served (degraded to) gpt-4o-mini
    session = str(uuid.uuid4())
    call = valid_event(session_id=session, model_requested="gpt-4o", model="gpt-4o-mini",
                       provider="openai", tokens_input=10_000, tokens_output=1_000)
    collector.post(BATCH, {"events": [call]})
    # Then its cost is gpt-4o-mini's
    cost = stored_costs(collector, session)[call["id"]]
    assert cost == expected_cost(call)
    assert cost != expected_cost({**call, "model": "gpt-4o"})


def test_cached_input_tokens_are_priced_as_cached(collector: CollectorProcess) -> None:
    # Given the same call twice, once with 6,000 of its 8,000 input tokens read from the cache
    session = str(uuid.uuid4())
    fields = {"session_id": session, "model": "gpt-4o", "provider": "openai",
              "tokens_input": 8_000, "tokens_output": 400}
    uncached = valid_event(**fields)
    cached = valid_event(**fields, tokens_cache_read=6_000)
    collector.post(BATCH, {"events": [uncached, cached]})
    # Then the cached call costs what the database prices it at, less than the uncached one
    costs = stored_costs(collector, session)
    assert costs[cached["id"]] == expected_cost(cached)
    assert costs[uncached["id"]] == expected_cost(uncached)
    cost_cached, cost_uncached = costs[cached["id"]], costs[uncached["id"]]
    assert cost_cached is not None and cost_uncached is not None
    assert cost_cached < cost_uncached


def test_an_unknown_model_costs_question_mark_never_zero(collector: CollectorProcess) -> None:
    # Given a session whose only call is of a model no price database knows
    session = str(uuid.uuid4())
    call = valid_event(session_id=session, model="in-house-llm-7", provider="openai")
    collector.post(BATCH, {"events": [valid_event("session_start", session_id=session), call]})
    # Then the call's cost is null, shown "?", and so is the session's
    assert stored_costs(collector, session)[call["id"]] is None
    [event] = [e for e in events_json(collector, session) if e["id"] == call["id"]]
    assert event["cost_usd"] is None
    row = session_json(collector, session)
    assert (row["cost_usd"], row["cost"], row["calls_unpriced"]) == (None, "?", 1)
    timeline = collector.cli("events", session).stdout
    call_line = next(line for line in timeline.splitlines() if "in-house-llm-7" in line)
    assert " ? " in call_line and "$" not in call_line
    assert "cost ?" in timeline  # the header
    sessions_line = next(line for line in collector.cli("sessions").stdout.splitlines()
                         if line.startswith(session[:8]))
    assert sessions_line.split()[-2:] == ["?", "0"]  # COST, ERRORS


def test_the_session_cost_sums_its_calls_once_each(collector: CollectorProcess) -> None:
    # Given a session's calls over two batches, one batch re-sent (a retry), and an unknown
    # model among them
    session = str(uuid.uuid4())
    first = [valid_event(session_id=session, tokens_input=1_000 * n, tokens_output=100 * n)
             for n in (1, 2, 3)]
    second = [valid_event("embeddings", session_id=session, provider="openai",
                          tokens_input=5_000),
              valid_event(session_id=session, model="in-house-llm-7")]
    for batch in (first, second, first):
        collector.post(BATCH, {"events": batch})
    # Then the known part is the sum of the priced calls, each counted once, plus "?"
    priced = [*first, second[0]]
    total = sum(expected_cost(event) for event in priced)
    row = session_json(collector, session)
    assert row["cost_usd_known"] == pytest.approx(total, rel=1e-12)
    assert row["calls_unpriced"] == 1 and row["cost_usd"] is None
    assert row["cost"].endswith("+?") and row["cost"].startswith("$")
    # And without the unknown call the session's cost is the sum
    other = str(uuid.uuid4())
    collector.post(BATCH, {"events": [{**event, "session_id": other} for event in first]})
    assert session_json(collector, other)["cost_usd"] == pytest.approx(
        sum(expected_cost(event) for event in first), rel=1e-12)


def test_a_failed_call_costs_nothing_unless_it_reported_usage(
        collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    plain = valid_event("llm_error", session_id=session, provider="openai")
    cut_short = valid_event("llm_error", session_id=session, provider="openai",
                            tokens_input=900, tokens_output=40)
    collector.post(BATCH, {"events": [plain, cut_short]})
    costs = stored_costs(collector, session)
    assert costs[plain["id"]] is None
    assert costs[cut_short["id"]] == expected_cost(cut_short)
    assert session_json(collector, session)["calls_unpriced"] == 0


def test_a_real_agents_calls_are_priced_by_their_served_model(sensor: Any,
                                                             fake_llm: Any) -> None:
    # Given an agent's Anthropic call that writes and reads the prompt cache
    sensor.init()
    client = sync_client(fake_llm)
    client.messages.create(
        model="claude-sonnet-4-20250514", max_tokens=64,
        system=[{"type": "text", "text": "You are a terse geography tutor",
                 "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "Long shared context here",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "What is the capital of France"}]}])
    # When the collector stores it
    [post] = sensor.events("post_call")
    assert post["tokens_cache_read"] and post["tokens_cache_creation"]
    # Then its cost is the database's for the served model and those tokens
    collector = sensor.collector
    assert stored_costs(collector, post["session_id"])[post["id"]] == expected_cost(post)
