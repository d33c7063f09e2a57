"""``flightdeck-sensor collect / sessions / events`` as a user at a terminal sees them."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import valid_event

BATCH = "/ingest/v1/events/batch"
StartCollect = Callable[..., tuple["subprocess.Popen[str]", dict[str, Any]]]


@pytest.fixture
def demo_session(collector: CollectorProcess) -> str:
    """One finished session with a streamed call, an error and an embeddings call."""
    session = str(uuid.uuid4())
    events = [
        valid_event("session_start", session_id=session, sensor_version="9.8.7"),
        valid_event("pre_call", session_id=session, tokens_input=1200),
        valid_event("post_call", session_id=session, model="gpt-4o-mini-2024-07-18",
                    tokens_input=1234, tokens_output=56, latency_ms=1500,
                    streaming={"ttft_ms": 120, "chunk_count": 14, "inter_chunk_ms": None,
                               "final_outcome": "completed", "abort_reason": None}),
        valid_event("llm_error", session_id=session, retry_attempt=2,
                    error={"error_type": "overloaded", "http_status": 529,
                           "is_retryable": True}, terminal=False),
        valid_event("embeddings", session_id=session),
        valid_event("session_end", session_id=session, close_reason="normal_exit"),
    ]
    assert collector.post(BATCH, {"events": events})[1]["accepted"] == 6
    return session


def test_sessions_table_shows_one_row_per_session(collector: CollectorProcess,
                                                  demo_session: str) -> None:
    other = str(uuid.uuid4())
    collector.post(BATCH, {"events": [valid_event("session_start", session_id=other,
                                                  agent_name="bot@ci")]})

    result = collector.cli("sessions")

    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["SESSION", "AGENT", "STARTED", "LAST", "SEEN", "STATE", "CALLS",
                              "TOKENS", "IN", "TOKENS", "OUT", "COST", "ERRORS"]
    demo_row = next(row for row in rows if row.startswith(demo_session[:8]))
    other_row = next(row for row in rows if row.startswith(other[:8]))
    assert "tester@testhost" in demo_row and "bot@ci" in other_row
    *demo_cells, demo_cost, demo_errors = demo_row.split()[-6:]
    assert demo_cells == ["closed", "3", "1,242", "56"] and demo_errors == "1"
    # The post_call priced; the embeddings call names no provider, whose model the price
    # database cannot place: unpriced, "+?"
    assert demo_cost.startswith("$0.") and demo_cost.endswith("+?")
    assert other_row.split()[-6:] == ["active", "0", "0", "0", "$0", "0"]
    assert "2 sessions" in result.stdout


def test_sessions_columns_line_up(collector: CollectorProcess, demo_session: str) -> None:
    collector.post(BATCH, {"events": [valid_event("post_call", tokens_input=7)]})

    lines = collector.cli("sessions").stdout.splitlines()[:3]

    ends = {line.index("ERRORS") + len("ERRORS") if "ERRORS" in line else len(line)
            for line in lines}
    assert len(ends) == 1  # right-aligned numbers end under their header


def test_sessions_json_has_the_aggregates(collector: CollectorProcess, demo_session: str) -> None:
    result = collector.cli("sessions", "--json")

    [row] = json.loads(result.stdout)
    assert row["session_id"] == demo_session
    assert {k: row[k] for k in ("state", "close_reason", "calls", "tokens_in", "tokens_out",
                                "errors", "sensor_version")} == {
        "state": "closed", "close_reason": "normal_exit", "calls": 3, "tokens_in": 1242,
        "tokens_out": 56, "errors": 1, "sensor_version": "9.8.7"}


def test_events_timeline_reads_at_a_glance(collector: CollectorProcess, demo_session: str) -> None:
    result = collector.cli("events", demo_session)

    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert demo_session in text
    assert "closed (normal_exit)" in text
    timeline = text[text.index("TIME"):].splitlines()
    assert [line.split()[1] for line in timeline[1:]] == [
        "session_start", "pre_call", "post_call", "llm_error", "embeddings", "session_end"]
    post_call = timeline[3]
    assert "gpt-4o-mini-2024-07-18" in post_call and "1,234" in post_call
    assert "1,500 ms" in post_call
    assert "stream: ttft 120 ms, 14 chunks, completed" in post_call
    assert "~1,200" in timeline[2]
    assert "overloaded, HTTP 529, attempt 2, retryable" in timeline[4]
    assert "2 x 1536 dims" in timeline[5]
    assert "sensor 9.8.7" in timeline[1]


def test_events_accepts_a_unique_prefix_in_any_case(collector: CollectorProcess,
                                                    demo_session: str) -> None:
    result = collector.cli("events", demo_session[:6].upper())

    assert result.returncode == 0, result.stderr
    assert demo_session in result.stdout


def test_events_json_is_the_stored_events(collector: CollectorProcess, demo_session: str) -> None:
    result = collector.cli("events", demo_session, "--json")

    shown = json.loads(result.stdout)
    costs = [event.pop("cost_usd") for event in shown]
    assert shown == collector.events(demo_session)
    # Only the post_call is priced (the error has no usage; the embeddings call no provider)
    assert [cost is not None for cost in costs] == [False, False, True, False, False, False]


def test_events_shows_an_attachment(collector: CollectorProcess, demo_session: str) -> None:
    collector.post(BATCH, {"events": [valid_event("session_start", session_id=demo_session)]})

    text = collector.cli("events", demo_session).stdout

    assert "attached to the existing session" in text
    assert "attached   1 time(s)" in text


def test_events_with_an_ambiguous_or_unknown_prefix_fails_clearly(
        collector: CollectorProcess) -> None:
    first, second = ("abcd0000-0000-4000-8000-000000000001", "abcd0000-0000-4000-8000-000000000002")
    collector.post(BATCH, {"events": [valid_event(session_id=first),
                                      valid_event(session_id=second)]})

    ambiguous = collector.cli("events", "abcd")
    unknown = collector.cli("events", "ffff")
    nonsense = collector.cli("events", "%")

    assert ambiguous.returncode == 1 and first in ambiguous.stderr and second in ambiguous.stderr
    assert unknown.returncode == 1 and "no session" in unknown.stderr
    assert nonsense.returncode == 1 and "not a session id" in nonsense.stderr


def test_empty_database_has_no_sessions_yet(collector: CollectorProcess) -> None:
    assert collector.cli("sessions").stdout.strip() == "No sessions yet."
    assert json.loads(collector.cli("sessions", "--json").stdout) == []


def test_reading_a_missing_database_says_how_to_start_one(tmp_path: Path) -> None:
    result = run_cli("sessions", "--db", str(tmp_path / "absent.db"))

    assert result.returncode == 1
    assert "flightdeck-sensor collect" in result.stderr
    assert not (tmp_path / "absent.db").exists()


# collect


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightdeck_sensor", *args],
                          capture_output=True, text=True, timeout=30, env=env)


@pytest.fixture
def bare_collect(tmp_path: Path) -> Iterator[StartCollect]:
    """Start ``collect`` with only the given arguments; answer (process, ready-file dict)."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
        ready = tmp_path / f"ready-{len(processes)}.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "flightdeck_sensor", "collect", "--port", "0",
             "--ready-file", str(ready), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        processes.append(process)
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        return process, json.loads(ready.read_text())

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=10)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    env.update(extra)
    return env


def test_collect_without_a_token_prints_the_two_export_lines_but_not_the_token(
        bare_collect: StartCollect, tmp_path: Path) -> None:
    process, ready = bare_collect("--db", str(tmp_path / "c.db"), env=clean_env())

    banner = [process.stdout.readline().rstrip("\n") for _ in range(4)]
    exports = dict(line.removeprefix("export ").split("=", 1) for line in banner
                   if line.startswith("export "))
    assert exports["FLIGHTDECK_SERVER"] == f"{ready['url']}/ingest"
    token = (tmp_path / "c.token").read_text().strip()
    assert exports["FLIGHTDECK_TOKEN"] == f'"$(cat {tmp_path / "c.token"})"'
    assert len(token) >= 32
    assert token not in (tmp_path / "ready-0.json").read_text() + "\n".join(banner)

    client = CollectorProcess(tmp_path, token=token, port=ready["port"])
    assert client.post(BATCH, {"events": [valid_event()]})[0] == 200
    assert client.post(BATCH, {"events": [valid_event()]}, token="guess")[0] == 401


def test_collect_takes_the_token_from_the_environment(
        bare_collect: StartCollect, tmp_path: Path) -> None:
    process, ready = bare_collect("--db", str(tmp_path / "c.db"),
                                  env=clean_env(FLIGHTDECK_TOKEN="from-env"))
    client = CollectorProcess(tmp_path, token="from-env", port=ready["port"])

    assert client.post(BATCH, {"events": [valid_event()]})[0] == 200
    process.terminate()
    out, err = process.communicate(timeout=10)
    assert "from-env" not in out + err  # neither the banner nor a note nor a log line


def test_collect_stores_in_the_user_data_dir_privately_by_default(
        bare_collect: StartCollect, tmp_path: Path) -> None:
    data_home = tmp_path / "data"
    _, ready = bare_collect(env=clean_env(XDG_DATA_HOME=str(data_home), FLIGHTDECK_TOKEN="t"))

    db = data_home / "flightdeck-sensor" / "collector.db"
    assert ready["db"] == str(db)
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_collect_on_a_busy_port_fails_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = run_cli("collect", "--port", str(port), "--db", str(tmp_path / "c.db"),
                         env=clean_env(FLIGHTDECK_TOKEN="t"))

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


# the fixture itself


def test_collector_fixture_serves_and_reads_back(collector: CollectorProcess) -> None:
    event = valid_event()

    assert collector.ingest_url == f"http://127.0.0.1:{collector.port}/ingest"
    assert collector.env() == {"FLIGHTDECK_SERVER": collector.ingest_url,
                               "FLIGHTDECK_TOKEN": collector.token}
    assert collector.post("/ingest/v1/events", event)[0] == 200
    assert collector.wait_for_events(1) == [event]
    assert collector.events(event["session_id"].upper()) == [event]
    assert collector.sessions()[0]["session_id"] == event["session_id"]


def test_collector_fixture_restart_and_kill(collector: CollectorProcess) -> None:
    port = collector.port
    collector.post("/ingest/v1/events", valid_event())

    collector.kill()
    assert not collector.running
    collector.restart()

    assert collector.running and collector.port == port
    assert len(collector.events()) == 1


def test_collector_fixture_ignores_the_sensors_environment(
        collector_factory: Callable[..., CollectorProcess],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTDECK_SERVER", "http://127.0.0.1:9/ingest")
    monkeypatch.setenv("FLIGHTDECK_TOKEN", "other")

    collector = collector_factory(token="mine")

    assert collector.post("/ingest/v1/events", valid_event())[0] == 200


def test_wait_for_events_fails_with_what_it_saw(collector: CollectorProcess) -> None:
    collector.post("/ingest/v1/events", valid_event("pre_call"))

    with pytest.raises(AssertionError, match="stored 1"):
        collector.wait_for_events(2, timeout=0.2)


# text from events is untrusted

HOSTILE = "evil\x1b]0;owned\x07\x1b[2J\x1b[31m\r\nFAKE 00000000  line\x9b\x7f"


def test_escape_sequences_and_line_breaks_in_event_fields_are_shown_inert(
        collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    events = [valid_event("session_start", session_id=session, agent_name=HOSTILE,
                          sensor_version=HOSTILE),
              valid_event("post_call", session_id=session, model=HOSTILE, stop_reason=HOSTILE),
              valid_event("tool_call", session_id=session, tool_name=HOSTILE * 50),
              valid_event("session_end", session_id=session, close_reason=HOSTILE)]
    answer = collector.post(BATCH, {"events": events})[1]
    assert answer["accepted"] >= 3, answer

    sessions = collector.cli("sessions")
    timeline = collector.cli("events", session[:8])

    for result in (sessions, timeline):
        assert result.returncode == 0, result.stderr
        assert not any(c in result.stdout for c in "\x1b\x07\r\x9b\x7f")
        assert not any(line.startswith("FAKE") for line in result.stdout.splitlines())
        assert "evil\\x1b]0;owned\\x07" in result.stdout
    assert max(len(line) for line in timeline.stdout.splitlines()) < 600
