"""The control plane end to end: an unmodified agent, run with the environment
variables only, against the real local collector; the operator acts with the
command line (`flightdeck-sensor stop / budget set / directive run`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fixtures.collector import CollectorProcess

# An agent that knows nothing of the sensor: OpenAI calls until something stops it.
AGENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import openai

    client = openai.OpenAI(base_url=sys.argv[1], api_key="sk-test", max_retries=0)
    progress = Path(sys.argv[2])
    for call in range(int(sys.argv[3])):
        client.chat.completions.create(model="gpt-fake",
                                       messages=[{"role": "user", "content": "hello world"}])
        progress.write_text(str(call + 1))
        time.sleep(float(sys.argv[4]))
""")

# The same agent with a custom directive of its own (the one line it needs for it).
AGENT_WITH_DIRECTIVE = textwrap.dedent("""
    import flightdeck_sensor
    from flightdeck_sensor import Parameter

    STATE = {"temperature": 1.0}

    @flightdeck_sensor.directive("set_temperature", description="Set the temperature",
                                 parameters=[Parameter("value", "float", required=True)])
    def set_temperature(context, value):
        STATE["temperature"] = value
        return {"temperature": value, "session": context.session_id}
""") + AGENT


def _agent(collector: CollectorProcess, fake: FakeLLM, tmp_path: Path, name: str,
           calls: int = 10_000, pause: float = 0.02, program: str = AGENT,
           **env: str) -> subprocess.Popen[str]:
    progress = tmp_path / f"{name}.progress"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    environment.update(collector.env(), FLIGHTDECK_AGENT_NAME=name, FLIGHTDECK_SPOOL="off",
                       **env)
    process = subprocess.Popen(
        [sys.executable, "-c", program, fake.url + "/v1", str(progress), str(calls), str(pause)],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process


def _wait(condition: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _known(collector: CollectorProcess, name: str) -> bool:
    """Whether the collector has the agent's session (its events ship on a 1 s tick)."""
    return any(s["agent_name"] == name for s in collector.sessions())


def _session(collector: CollectorProcess, name: str) -> dict[str, Any]:
    [session] = [s for s in json.loads(collector.cli("sessions", "--json").stdout)
                 if s["agent_name"] == name]
    return session


@pytest.mark.parametrize("server", ["batch", "single-event"])
def test_a_busy_agent_is_stopped_by_the_stop_command(
        collector_factory: Callable[..., CollectorProcess], fake_llm: FakeLLM,
        tmp_path: Path, server: str) -> None:
    # given: an agent busy calling, against a collector (or one that speaks only
    # Flightdeck's single-event API)
    collector = collector_factory(extra_args=("--no-batch",) if server != "batch" else ())
    agent = _agent(collector, fake_llm, tmp_path, "busy-agent")
    _wait(lambda: _known(collector, "busy-agent"), what="the agent's session")

    # when the operator stops it
    stopped = collector.cli("stop", "--agent", "busy-agent", "--reason", "runaway")
    assert stopped.returncode == 0, stopped.stderr

    # then: its next call raises DirectiveError and, uncaught, ends the agent
    _, stderr = agent.communicate(timeout=60)
    assert agent.returncode != 0
    assert "DirectiveError: Directive shutdown_flavor: runaway" in stderr
    session = _session(collector, "busy-agent")
    assert (session["state"], session["close_reason"]) == ("closed", "directive_shutdown")
    directives = json.loads(collector.cli("directives", "--agent", "busy-agent",
                                          "--json").stdout)
    assert [d["state"] for d in directives] == ["acknowledged"]


def test_a_budget_warns_once_degrades_once_then_blocks(
        collector: CollectorProcess, fake_llm: FakeLLM, tmp_path: Path) -> None:
    # given: a budget for the agent, set before it runs (the policy is fetched
    # when its session starts), each call ~15 tokens
    budget = collector.cli("budget", "set", "--agent", "budgeted", "--limit", "150", "--warn",
                           "40", "--degrade", "60", "--to", "gpt-fake-mini", "--block", "80")
    assert budget.returncode == 0, budget.stderr

    # when the agent calls, slowly enough for the policy to arrive first
    agent = _agent(collector, fake_llm, tmp_path, "budgeted", calls=40, pause=0.05,
                             FLIGHTDECK_LOG_LEVEL="WARNING")
    _, stderr = agent.communicate(timeout=120)

    # then: it ended on BudgetExceededError, before the limit was passed
    assert "BudgetExceededError: Token budget exceeded" in stderr
    session = _session(collector, "budgeted")
    events = json.loads(collector.cli("events", session["session_id"], "--json").stdout)
    policy = [e["event_type"] for e in events if e["event_type"].startswith("policy_")]
    assert policy == ["policy_warn", "policy_degrade", "policy_block"]
    calls = [e for e in events if e["event_type"] == "post_call"]
    assert sum(e["tokens_total"] for e in calls) <= 150
    degraded_at = next(i for i, e in enumerate(events) if e["event_type"] == "policy_degrade")
    sent = [e["model"] for e in events[degraded_at:] if e["event_type"] == "post_call"]
    assert sent and all(model.startswith("gpt-fake-mini") for model in sent)
    assert session["close_reason"] == "policy_block"


def test_a_custom_directive_registered_by_the_agent_runs_from_the_command_line(
        collector: CollectorProcess, fake_llm: FakeLLM, tmp_path: Path) -> None:
    # given: a running agent that registered a directive
    agent = _agent(collector, fake_llm, tmp_path, "tunable", calls=600, pause=0.05,
                             program=AGENT_WITH_DIRECTIVE)
    try:
        _wait(lambda: "set_temperature" in collector.cli("directive", "list", "--agent",
                                                         "tunable").stdout,
              what="the registration")
        _wait(lambda: _known(collector, "tunable"), what="the agent's session")

        # when the operator runs it
        ran = collector.cli("directive", "run", "set_temperature", "--agent", "tunable",
                            "--param", "value=0.3")
        assert ran.returncode == 0, ran.stderr

        # then its result is stored
        def result() -> dict[str, Any] | None:
            found = json.loads(collector.cli("directives", "--agent", "tunable",
                                             "--json").stdout)
            return found[0] if found and found[0]["state"] == "success" else None

        _wait(lambda: result() is not None, what="the directive's result")
        stored = result()
        assert stored is not None
        assert stored["result"]["temperature"] == 0.3
    finally:
        agent.kill()
        agent.communicate()


def test_an_idle_agent_is_stopped_through_the_heartbeat(
        collector: CollectorProcess, fake_llm: FakeLLM, tmp_path: Path) -> None:
    # given: an agent that made one call, then waits (no events to carry a directive)
    agent = _agent(collector, fake_llm, tmp_path, "idle-agent", calls=2, pause=60,
                             FLIGHTDECK_HEARTBEAT_INTERVAL="1")
    try:
        _wait(lambda: _known(collector, "idle-agent"), what="the agent's session")
        time.sleep(1.5)  # the first call's events delivered: idle from now on

        # when the operator stops it
        assert collector.cli("stop", "--agent", "idle-agent").returncode == 0

        # then: the directive arrives in a heartbeat's answer and is acknowledged
        def acknowledged() -> bool:
            found = json.loads(collector.cli("directives", "--agent", "idle-agent",
                                             "--json").stdout)
            return bool(found) and found[0]["state"] == "acknowledged"

        _wait(acknowledged, timeout=30, what="the acknowledgement")
    finally:
        agent.kill()
        agent.communicate()


def test_the_session_id_of_an_agent_is_enough_to_stop_it(
        collector: CollectorProcess, fake_llm: FakeLLM, tmp_path: Path) -> None:
    session_id = str(uuid.uuid4())
    agent = _agent(collector, fake_llm, tmp_path, "by-session",
                             FLIGHTDECK_SESSION_ID=session_id)
    _wait(lambda: _known(collector, "by-session"), what="the agent's session")

    assert collector.cli("stop", session_id[:8], "--reason", "done").returncode == 0

    _, stderr = agent.communicate(timeout=60)
    assert "DirectiveError: Directive shutdown: done" in stderr
