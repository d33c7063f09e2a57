"""Heartbeats: an idle session (started, making no calls) posts its id to the
heartbeat endpoint once per interval, so that it still receives the control
plane's directives; never while events flow, never without a session, never
once the server said it has no such endpoint; a failing heartbeat holds no
event back and no exit up.

Each test runs an unmodified agent (the OpenAI SDK against the fake provider,
the sensor configured by environment variables only) in a subprocess,
against tests/fakes/ingest_server.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fakes.ingest_server import HEARTBEAT_PATH, DirectiveOnce, IngestServer, Received, Reply
from fakes.sensor_program import TOKEN, program_env

AGENT = """
import json, os, sys, threading, time
import openai
import flightdeck_sensor
from flightdeck_sensor._exceptions import DirectiveError

client = openai.OpenAI()

def ask():
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": "hi"}])

def wait_for_go():  # the test's go-ahead: a file it creates
    end = time.monotonic() + 60
    while not os.path.exists(os.environ["TEST_GO"]) and time.monotonic() < end:
        time.sleep(0.02)

def print_status():
    print(json.dumps(flightdeck_sensor.get_status()), flush=True)
"""

BATCH_PATH = "/ingest/v1/events/batch"
BUDGET = 1.0  # the exit budget where exit is tested
MARGIN = 3.0  # generous (interpreter teardown on a loaded machine): proves "does not hang"


class Agent:
    """The agent's process, started with ``body`` after AGENT."""

    def __init__(self, body: str, server: IngestServer, fake_llm: FakeLLM, tmp_path: Path,
                 **env: str) -> None:
        self.go = tmp_path / "go"
        settings = {"FLIGHTDECK_SERVER": server.url, "FLIGHTDECK_TOKEN": TOKEN,
                    "FLIGHTDECK_HEARTBEAT_INTERVAL": "1", "FLIGHTDECK_LOG_LEVEL": "INFO",
                    "OPENAI_BASE_URL": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test",
                    "TEST_GO": str(self.go)}
        settings.update(env)
        self.spool = tmp_path / "spool"
        self.process = subprocess.Popen([sys.executable, "-c", AGENT + body],
                                        env=program_env(server.url, self.spool, **settings),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self) -> tuple[str, str]:
        stdout, stderr = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, stderr
        return stdout, stderr

    def status(self, stdout: str) -> dict[str, Any]:
        status: dict[str, Any] = json.loads(stdout.splitlines()[-1])
        return status

    def spooled_files(self) -> list[Path]:
        return list(self.spool.rglob("*.batch"))


@pytest.fixture
def start_agent(fake_llm: FakeLLM, tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    agents: list[Agent] = []

    def start(body: str, server: IngestServer, **env: str) -> Agent:
        agent = Agent(body, server, fake_llm, tmp_path, **env)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.communicate()


def heartbeats_answered_with(reply: Reply) -> Callable[[Received], Reply | None]:
    return lambda received: reply if received.path == HEARTBEAT_PATH else None


def event_types(server: IngestServer) -> Counter[str]:
    return Counter(e["event_type"] for e in server.events())


def request_positions(server: IngestServer) -> tuple[list[int], list[int]]:
    """The positions, in arrival order, of the heartbeats and of the event posts."""
    paths = server.paths()
    beats = [n for n, path in enumerate(paths) if path == HEARTBEAT_PATH]
    return beats, [n for n, path in enumerate(paths) if path != HEARTBEAT_PATH]


# -- when heartbeats are sent ---------------------------------------------------------
def test_an_idle_session_beats_about_once_per_interval_with_its_session_id(
        start_agent: Callable[..., Agent]) -> None:
    with IngestServer() as server:
        agent = start_agent("ask()\ntime.sleep(4.5)\nprint_status()", server)
        stdout, _ = agent.finish()

    session_id = server.events("session_start")[0]["session_id"]
    beats = server.heartbeats()
    # About four in 4.5 s idle at one a second; slack for a loaded machine
    assert 2 <= len(beats) <= 6, server.paths()
    assert all(json.loads(beat.raw_body) == {"session_id": session_id} for beat in beats)
    assert all(beat.headers["Authorization"] == f"Bearer {TOKEN}" for beat in beats)
    assert all(beat.headers["User-Agent"].startswith("flightdeck-sensor/") for beat in beats)
    positions, posts = request_positions(server)
    assert positions[0] > posts[0]  # none before the session_start was posted
    status = agent.status(stdout)
    assert status["heartbeats"] >= 2
    assert status["heartbeats_failed"] == 0
    assert status["sent"] == 3  # heartbeats are not events (session_end is sent at exit)
    assert event_types(server) == {"session_start": 1, "pre_call": 1, "post_call": 1,
                                   "session_end": 1}


def test_no_heartbeat_while_events_flow_only_once_idle(
        start_agent: Callable[..., Agent]) -> None:
    # Given an interval of 2 s: longer than the 1 s between event posts of a busy agent
    busy_then_idle = """
end = time.monotonic() + 4
while time.monotonic() < end:
    ask()
    time.sleep(0.1)
time.sleep(4.5)
"""
    with IngestServer() as server:
        agent = start_agent(busy_then_idle, server, FLIGHTDECK_HEARTBEAT_INTERVAL="2")
        agent.finish()

    beats, posts = request_positions(server)
    calls = [n for n, request in enumerate(server.requests)
             if any(e["event_type"] == "post_call" for e in request.events)]
    assert beats, server.paths()
    assert not [n for n in beats if n < calls[-1]], server.paths()  # none while busy
    assert posts[-1] > beats[-1]  # then session_end


def test_interval_0_sends_no_heartbeat(start_agent: Callable[..., Agent]) -> None:
    with IngestServer() as server:
        agent = start_agent("ask()\ntime.sleep(3)\nprint_status()", server,
                            FLIGHTDECK_HEARTBEAT_INTERVAL="0")
        stdout, _ = agent.finish()

    assert not server.heartbeats()
    assert agent.status(stdout)["heartbeats"] == 0
    assert event_types(server)["session_end"] == 1


def test_a_process_with_no_session_has_no_sender_thread_and_sends_nothing(
        start_agent: Callable[..., Agent]) -> None:
    # Given a program that readies a client (the sensor is created) and makes no call
    no_call = """
from flightdeck_sensor import _sensor
client.chat.completions  # loads the hooked module
time.sleep(3)
print(json.dumps({"sensor": _sensor.current() is not None,
                  "threads": [t.name for t in threading.enumerate()]}))
"""
    with IngestServer() as server:
        agent = start_agent(no_call, server)
        stdout, _ = agent.finish()

    seen = json.loads(stdout.splitlines()[-1])
    assert seen["sensor"]
    assert "flightdeck-sensor-sender" not in seen["threads"]
    assert "flightdeck-sensor-control" not in seen["threads"]
    assert server.requests == []


# -- what their answers do --------------------------------------------------------------
def test_a_server_without_the_heartbeat_endpoint_gets_one_then_none(
        start_agent: Callable[..., Agent]) -> None:
    with IngestServer(responder=heartbeats_answered_with(Reply(404))) as server:
        agent = start_agent("ask()\ntime.sleep(3.5)\nprint_status()", server)
        stdout, stderr = agent.finish()

    assert len(server.heartbeats()) == 1, server.paths()
    assert stderr.count("no heartbeat endpoint") == 1, stderr
    status = agent.status(stdout)
    assert status["heartbeats_failed"] == 1
    assert status["server_state"] == "ok"
    assert event_types(server)["session_end"] == 1


@pytest.mark.parametrize("reply", [
    Reply(200, body=b"<html>not an envelope</html>"),
    Reply(500),
    Reply(401),
    Reply(429, headers={"Retry-After": "60"}),
], ids=["garbage", "500", "401", "429"])
def test_failing_heartbeats_hold_no_event_back(start_agent: Callable[..., Agent],
                                               reply: Reply) -> None:
    with IngestServer(responder=heartbeats_answered_with(reply)) as server:
        agent = start_agent("ask()\nwait_for_go()\nask()\nprint_status()", server)
        # When two heartbeats failed (the first did not stop them)
        assert server.wait_for(lambda s: len(s.heartbeats()) >= 2), server.paths()
        agent.go.touch()
        stdout, stderr = agent.finish()

    # Then the calls after them, and the session's end, were delivered, unhindered
    assert event_types(server) == {"session_start": 1, "pre_call": 2, "post_call": 2,
                                   "session_end": 1}
    status = agent.status(stdout)
    assert status["heartbeats"] == 0
    assert status["heartbeats_failed"] >= 2
    assert status["server_state"] == "ok"
    assert status["retries"] == 0
    assert "cannot deliver" not in stderr and "refused the token" not in stderr
    assert not agent.spooled_files()


def test_a_heartbeat_left_unanswered_delays_neither_the_exit_nor_its_events(
        start_agent: Callable[..., Agent]) -> None:
    with IngestServer(responder=heartbeats_answered_with(Reply(never_answer=True))) as server:
        agent = start_agent("ask()\nwait_for_go()\nprint(time.time(), flush=True)", server,
                            FLIGHTDECK_SHUTDOWN_TIMEOUT=str(BUDGET))
        # When the program exits while a heartbeat waits for its answer
        assert server.wait_for(lambda s: bool(s.heartbeats())), server.paths()
        agent.go.touch()
        stdout, _ = agent.finish()
        ended = time.time()

    # Then it exits within its budget, and its session_end was delivered, not spooled
    assert ended - float(stdout.splitlines()[-1]) < BUDGET + MARGIN
    assert event_types(server)["session_end"] == 1
    assert not agent.spooled_files()


# -- a directive in a heartbeat's answer ------------------------------------------------
STOPPABLE = """
ask()
wait_for_go()
try:
    ask()
    print("the call went through")
except DirectiveError as error:
    print("DirectiveError", error.action, error.reason)
"""


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_a_shutdown_in_a_heartbeat_answer_stops_an_idle_agent(
        start_agent: Callable[..., Agent], fake_llm: FakeLLM, mode: str) -> None:
    directive = DirectiveOnce({"id": "d-1", "action": "shutdown", "reason": "operator-stop",
                               "grace_period_ms": 5000}, paths=(HEARTBEAT_PATH,))

    def responder(received: Received) -> Reply | None:
        if mode == "single" and received.path == BATCH_PATH:
            return Reply(404)  # a plain Flightdeck ingestion: events one by one
        return directive(received)

    with IngestServer(responder=responder) as server:
        agent = start_agent(STOPPABLE, server)
        # Given an agent that made a call and is now idle
        assert server.wait_for(lambda s: bool(s.events("post_call")))
        # When the operator stops it: the next heartbeat's answer carries the directive
        directive.arm()
        assert server.wait_for(lambda s: bool(s.events("directive_result")), timeout=15)
        agent.go.touch()
        stdout, _ = agent.finish()

    assert directive.handed_to is not None and directive.handed_to.path == HEARTBEAT_PATH
    # Then its next call raised before reaching the provider, and the server heard why
    assert "DirectiveError shutdown operator-stop" in stdout
    assert len([r for r in fake_llm.requests if r.path.endswith("/chat/completions")]) == 1
    result = server.events("directive_result")[0]
    assert result["directive_status"] == "acknowledged"
    assert result["directive_action"] == "shutdown"
    assert server.events("session_end")[0]["close_reason"] == "directive_shutdown"
    if mode == "single":
        assert BATCH_PATH in server.paths() and "/ingest/v1/events" in server.paths()
