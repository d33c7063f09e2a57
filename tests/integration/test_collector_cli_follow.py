"""``flightdeck-sensor events SESSION --follow``: a session tailed like ``tail -f``,
against the real collector, with events posted while it runs."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fixtures.collector import CollectorProcess, _collector_env
from fixtures.collector_events import valid_event

BATCH = "/ingest/v1/events/batch"
LINE_TIMEOUT = 15.0


class Follower:
    """``events SESSION --follow`` as a subprocess, its output read line by line."""

    def __init__(self, collector: CollectorProcess, session: str, *flags: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flightdeck_sensor", "events", session, "--follow", *flags,
             "--db", str(collector.db_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_collector_env())
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def read_until(self, fragment: str) -> list[str]:
        """Lines up to and including the first that contains ``fragment``."""
        lines = []
        while True:
            line = self._lines.get(timeout=LINE_TIMEOUT)
            assert line is not None, f"output ended before {fragment!r}: {lines}"
            lines.append(line)
            if fragment in line:
                return lines

    def rest(self) -> list[str]:
        """Every line still to come, once the process has exited."""
        self.process.wait(LINE_TIMEOUT)
        lines = []
        while (line := self._lines.get(timeout=LINE_TIMEOUT)) is not None:
            lines.append(line)
        return lines

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def followers() -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for follower in started:
        follower.stop()


def _started_session(collector: CollectorProcess) -> tuple[str, dict[str, Any]]:
    session = str(uuid.uuid4())
    start = valid_event("session_start", session_id=session)
    call = valid_event(session_id=session, model="gpt-4o-mini", tokens_input=1_000)
    collector.post(BATCH, {"events": [start, call]})
    return session, call


def test_follow_prints_new_events_as_they_arrive_and_stops_at_the_end(
        collector: CollectorProcess, followers: list[Follower]) -> None:
    # Given a running session with one call, followed
    session, _ = _started_session(collector)
    follower = Follower(collector, session[:8])
    followers.append(follower)
    before = follower.read_until("post_call")
    assert any(line.startswith("TIME") and "COST" in line for line in before)
    # When a call of an unknown model, then a tool call, then the end arrive
    collector.post(BATCH, {"events": [valid_event(session_id=session, model="in-house-llm-7")]})
    [unknown_call] = follower.read_until("in-house-llm-7")[-1:]
    collector.post(BATCH, {"events": [valid_event("tool_call", session_id=session,
                                                  tool_name="lookup")]})
    assert "tool lookup" in follower.read_until("tool_call")[-1]
    collector.post(BATCH, {"events": [valid_event("session_end", session_id=session)]})
    # Then each is printed as it came (the unknown model's cost "?"), then the end, and
    # the command exits 0 by itself
    assert unknown_call.split()[1] == "post_call" and " ? " in unknown_call
    ending = follower.read_until("session ended")
    assert "session_end" in ending[0] and ending[-1] == "-- session ended (normal_exit)"
    assert follower.rest() == []
    assert follower.process.returncode == 0


def test_follow_json_prints_one_event_object_a_line_with_its_cost(
        collector: CollectorProcess, followers: list[Follower]) -> None:
    session, call = _started_session(collector)
    follower = Follower(collector, session, "--json")
    followers.append(follower)
    first = [json.loads(line) for line in follower.read_until(call["id"])]
    assert [event["event_type"] for event in first] == ["session_start", "post_call"]
    assert first[1]["cost_usd"] > 0 and first[0]["cost_usd"] is None

    later = valid_event(session_id=session, model="gpt-4o-mini", tokens_input=2_000)
    collector.post(BATCH, {"events": [later, valid_event("session_end", session_id=session)]})

    rest = [json.loads(line) for line in follower.read_until('"session_end"') + follower.rest()]
    assert rest[0]["id"] == later["id"]
    assert [event["event_type"] for event in rest] == ["post_call", "session_end"]
    assert rest[0]["cost_usd"] > first[1]["cost_usd"]
    assert follower.process.returncode == 0


def test_follow_exits_cleanly_on_ctrl_c(collector: CollectorProcess,
                                        followers: list[Follower]) -> None:
    session, _ = _started_session(collector)
    follower = Follower(collector, session)
    followers.append(follower)
    follower.read_until("post_call")

    follower.process.send_signal(signal.SIGINT)

    assert follower.rest() == []
    assert follower.process.returncode == 0
    assert follower.stderr() == ""  # no traceback


def test_follow_of_an_ended_session_prints_it_and_exits(collector: CollectorProcess) -> None:
    session, _ = _started_session(collector)
    collector.post(BATCH, {"events": [valid_event("session_end", session_id=session,
                                                  close_reason="directive_shutdown")]})

    result = collector.cli("events", session, "--follow")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line[:2].isdigit()] == [
        "session_start", "post_call", "session_end"]
    assert lines[-1] == "-- session ended (directive_shutdown)"


def test_follow_of_an_unknown_session_says_so(collector: CollectorProcess) -> None:
    _started_session(collector)
    result = collector.cli("events", "0000", "--follow")
    assert result.returncode == 1
    assert "no session starts with '0000'" in result.stderr
