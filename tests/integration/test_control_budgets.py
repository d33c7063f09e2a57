"""Token budgets: a server policy warns once, degrades once (the calls that
follow go to the cheaper model), then blocks before the limit is passed by
more than one call, raising BudgetExceededError before the provider is
called; a local budget only warns. The count they use, tokens_used_session,
includes streams and errors with partial usage."""

from __future__ import annotations

import logging
from typing import Any

import anthropic
import httpx2
import pytest

from fakes.fake_llm import FakeLLM, anthropic_routes
from fixtures import anthropic_sdk as ant
from fixtures import openai_sdk as oai
from fixtures.control import ControlledSensor
from flightdeck_sensor._exceptions import BudgetExceededError

POLICY = {"id": "pol-1", "scope": "flavor", "scope_value": "research", "token_limit": 100,
          "warn_at_pct": 50, "degrade_at_pct": 70, "degrade_to": "gpt-fake-mini",
          "block_at_pct": 90}


def _chat(fake: FakeLLM) -> Any:
    return oai.sync_client(fake).chat.completions.create(model=oai.MODEL, messages=oai.MESSAGES)


def _with_policy(controlled: ControlledSensor, fake: FakeLLM) -> None:
    controlled.init()
    oai.sync_client(fake).embeddings.create(model=oai.EMBEDDING_MODEL, input="x")
    controlled.deliver("policy_update", payload=POLICY)


def _policy_events(controlled: ControlledSensor) -> list[dict[str, Any]]:
    return controlled.events("policy_warn", "policy_degrade", "policy_block")


def test_a_server_budget_warns_once_degrades_once_then_blocks_before_the_provider(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    # given
    _with_policy(controlled, fake_llm)
    sent_before = len(fake_llm.requests)

    # when: calls until the budget blocks
    completed = 0
    with pytest.raises(BudgetExceededError) as blocked:
        for _ in range(20):
            _chat(fake_llm)
            completed += 1

    # then: warned at 50 %, degraded at 70 %, blocked at 90 % (the estimate of
    # the next call's input counts), the limit not passed
    used = controlled.sensor.status()["tokens_used_session"] if controlled.sensor else 0
    assert (blocked.value.tokens_used, blocked.value.token_limit) == (used, 100)
    assert used < 100 and completed >= 5
    sent = [r.json["model"] for r in fake_llm.requests[sent_before:]]
    first_degraded = sent.index("gpt-fake-mini")
    assert 0 < first_degraded < completed
    assert sent == [oai.MODEL] * first_degraded + ["gpt-fake-mini"] * (completed - first_degraded)
    events = _policy_events(controlled)
    assert [(e["event_type"], e["threshold_pct"]) for e in events] == [
        ("policy_warn", 50), ("policy_degrade", 70), ("policy_block", 90)]
    assert events[0]["tokens_used"] < events[1]["tokens_used"] < events[2]["tokens_used"] == used
    for event in _policy_events(controlled):
        decision = event["policy_decision"]
        assert (decision["policy_id"], decision["scope"]) == ("pol-1", "flavor:research")
        assert decision["decision"] in event["event_type"] and decision["reason"]
        assert event["source"] == "server" and event["token_limit"] == 100
    [block] = controlled.events("policy_block")
    assert block["intended_model"] == oai.MODEL  # what the program asked for

    # and the calls that follow raise the same, without reaching the provider
    sent_before = len(fake_llm.requests)
    with pytest.raises(BudgetExceededError):
        _chat(fake_llm)
    assert len(fake_llm.requests) == sent_before
    assert len(controlled.events("policy_block")) == 1

    # and the session ends as blocked
    assert controlled.sensor is not None
    controlled.sensor.shutdown(5)
    assert [e["close_reason"] for e in controlled.events("session_end")] == ["policy_block"]


def test_a_policy_update_raising_the_limit_lets_calls_through_again(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    _with_policy(controlled, fake_llm)
    with pytest.raises(BudgetExceededError):
        for _ in range(20):
            _chat(fake_llm)

    controlled.deliver("policy_update", payload={**POLICY, "token_limit": 10_000})

    _chat(fake_llm)
    assert fake_llm.requests[-1].json["model"] == oai.MODEL  # the degrade was cleared too


def test_a_local_budget_only_warns_once(
        controlled: ControlledSensor, fake_llm: FakeLLM,
        caplog: pytest.LogCaptureFixture) -> None:
    controlled.init(limit=50, warn_at=0.5)

    with caplog.at_level(logging.WARNING, logger="flightdeck_sensor"):
        for _ in range(8):  # 112 tokens: past the limit, never blocked
            _chat(fake_llm)

    [warn] = _policy_events(controlled)
    assert (warn["event_type"], warn["source"], warn["threshold_pct"]) == ("policy_warn",
                                                                          "local", 50)
    assert (warn["policy_decision"]["policy_id"], warn["policy_decision"]["scope"]) == (
        "local", "local_failsafe")
    assert sum("budget warning" in r.getMessage() for r in caplog.records) == 1


def test_streams_and_errors_with_partial_usage_count_toward_the_budget(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    sensor = controlled.init()
    client = ant.sync_client(fake_llm)
    arguments: dict[str, Any] = {"model": ant.MODEL, "max_tokens": 16, "messages": ant.MESSAGES}

    for _ in client.messages.create(**arguments, stream=True):
        pass
    fake_llm.script_stream_drop(anthropic_routes.MESSAGES_PATH, after_events=3)
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        for _ in client.messages.create(**arguments, stream=True):
            pass

    [streamed] = controlled.events("post_call")
    [failed] = controlled.events("llm_error")
    assert streamed["tokens_total"] > 0 and failed["tokens_total"] > 0
    assert sensor.status()["tokens_used_session"] == (streamed["tokens_total"]
                                                      + failed["tokens_total"])
    assert failed["tokens_used_session"] == sensor.status()["tokens_used_session"]


def test_a_policy_whose_thresholds_are_null_gets_the_default_thresholds(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    # given: a policy as a server sends one with no thresholds set (null: the defaults)
    controlled.init()
    oai.sync_client(fake_llm).embeddings.create(model=oai.EMBEDDING_MODEL, input="x")
    controlled.deliver("policy_update", payload={
        "id": "pol-2", "scope": "flavor", "scope_value": "x", "token_limit": 60,
        "warn_at_pct": None, "degrade_at_pct": None, "degrade_to": None, "block_at_pct": None})

    # then: it warns at 80 % and blocks at 100 %
    with pytest.raises(BudgetExceededError):
        for _ in range(20):
            _chat(fake_llm)
    assert [(e["event_type"], e["threshold_pct"]) for e in _policy_events(controlled)] == [
        ("policy_warn", 80), ("policy_block", 100)]
