"""Delivery to an OTLP endpoint has the Flightdeck destination's guarantees:
retries, Retry-After, partial success counted, the bounded exit, the spool
(replayed by the next run), and with FLIGHTDECK_EXPORT=both, one destination
that is down does not hold the other back. Unmodified agents configured by
the environment only, against the fake provider and the minimal receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fakes.ingest_server import IngestServer, Reply
from fakes.otlp_receiver import OtlpReceiver, partial_success
from fakes.sensor_program import TOKEN
from fixtures.collector import CollectorProcess
from fixtures.openai_sdk import CHAT_TOOLS, MESSAGES, MODEL
from fixtures.openai_sdk import sync_client as openai_client

AGENT = """
import json, openai
import flightdeck_sensor
client = openai.OpenAI(max_retries=0)
for n in range(3):
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": f"question {n}"}])
print(json.dumps(flightdeck_sensor.get_status()))
"""


def run_agent(fake_llm: Any, spool: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("FLIGHTDECK_", "OTEL_", "AGENT_"))}
    environment.update(OPENAI_BASE_URL=f"{fake_llm.url}/v1", OPENAI_API_KEY="sk-test",
                       FLIGHTDECK_SPOOL_DIR=str(spool), PYTHONUNBUFFERED="1", **env)
    return subprocess.run([sys.executable, "-c", AGENT], env=environment, capture_output=True,
                          text=True, timeout=90)


def chat(fake_llm: Any, times: int = 1) -> None:
    client = openai_client(fake_llm)
    for _ in range(times):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)


def test_an_unmodified_agent_exports_with_the_environment_only(
        fake_llm: Any, otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    result = run_agent(fake_llm, tmp_path, FLIGHTDECK_EXPORT="otlp",
                       OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url)

    assert result.returncode == 0, result.stderr
    assert otlp_receiver.wait_for(lambda r: len(r.spans()) == 3)
    assert [s.name for s in otlp_receiver.spans()] == ["chat gpt-4o-mini"] * 3
    assert {r.path for r in otlp_receiver.requests} == {"/v1/traces"}
    assert "FLIGHTDECK_TOKEN" not in result.stderr  # no Flightdeck, so no token to ask for


def test_partial_success_counts_the_rejected_spans(otlp: Any, fake_llm: Any) -> None:
    otlp.receiver.script(partial_success(1, "span too old"), Reply(200, b""))
    otlp.init()

    chat(fake_llm, 3)
    otlp.sensor.flush(15)

    status = otlp.status()["destinations"]["otlp"]
    assert (status["sent"], status["dropped"]) == (2, {"rejected": 1})


def test_a_retryable_answer_is_retried_after_its_retry_after(otlp: Any, fake_llm: Any) -> None:
    otlp.receiver.script(Reply(503, b"", headers={"Retry-After": "0"}), Reply(200, b""))
    otlp.init()

    chat(fake_llm)
    otlp.spans(1)

    status = otlp.status()
    assert (status["sent"], status["retries"], status["dropped"]) == (1, 1, {})
    assert len(otlp.receiver.requests) == 2


def test_a_refused_batch_is_dropped_and_counted_not_retried(otlp: Any, fake_llm: Any) -> None:
    otlp.receiver.script(Reply(500, b""), Reply(200, b""))  # OTLP: 500 is not retryable
    otlp.init()

    chat(fake_llm)
    otlp.sensor.flush(15)

    status = otlp.status()
    assert (status["sent"], status["retries"], status["dropped"]) == (0, 0, {"rejected": 1})
    assert status["server_state"] == "ok"


def test_with_both_a_flightdeck_server_that_hangs_does_not_hold_spans_back(
        otlp: Any, fake_llm: Any) -> None:
    with IngestServer([Reply(never_answer=True)]) as flightdeck:
        otlp.init(env={"FLIGHTDECK_EXPORT": "both", "FLIGHTDECK_SERVER": flightdeck.url,
                       "FLIGHTDECK_TOKEN": TOKEN})

        chat(fake_llm, 2)

        # the Flightdeck side is stuck on its first request (unanswered; under load a
        # retry may follow it), and the spans arrive all the same
        assert flightdeck.wait_for(lambda server: len(server.requests) >= 1)
        assert otlp.receiver.wait_for(lambda r: len(r.spans()) == 2)
        assert flightdeck.events() == []
        status = otlp.status()["destinations"]
        assert status["otlp"]["sent"] == 2 and status["flightdeck"]["sent"] == 0


def test_with_both_an_otlp_endpoint_that_hangs_does_not_hold_events_back(
        fake_llm: Any, tmp_path: Path) -> None:
    with IngestServer() as flightdeck, OtlpReceiver(Reply(never_answer=True)) as otlp_down:
        result = run_agent(fake_llm, tmp_path, FLIGHTDECK_EXPORT="both",
                           FLIGHTDECK_SERVER=flightdeck.url, FLIGHTDECK_TOKEN=TOKEN,
                           OTEL_EXPORTER_OTLP_ENDPOINT=otlp_down.url,
                           FLIGHTDECK_SHUTDOWN_TIMEOUT="1")

        assert result.returncode == 0, result.stderr
        types = [e["event_type"] for e in flightdeck.events()]
        assert types == ["session_start"] + ["pre_call", "post_call"] * 3 + ["session_end"]
        assert len(otlp_down.requests) == 1
        assert "3 spans spooled" in result.stderr


def test_at_exit_undelivered_spans_are_spooled_and_the_next_run_sends_them(
        fake_llm: Any, tmp_path: Path) -> None:
    with OtlpReceiver(Reply(503, b"")) as down:
        endpoint = down.url
        first = run_agent(fake_llm, tmp_path, FLIGHTDECK_EXPORT="otlp",
                          OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, FLIGHTDECK_SHUTDOWN_TIMEOUT="1")
    status = json.loads(first.stdout.splitlines()[-1])

    assert first.returncode == 0, first.stderr
    assert status["destinations"]["otlp"]["sent"] == 0
    assert "3 spans spooled" in first.stderr
    with OtlpReceiver(port=down.port) as back:
        second = run_agent(fake_llm, tmp_path, FLIGHTDECK_EXPORT="otlp",
                           OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)

        assert second.returncode == 0, second.stderr
        assert back.wait_for(lambda r: len(r.spans()) == 6)  # 3 replayed, 3 of its own
        assert len({span.span_id for span in back.spans()}) == 6


def test_with_both_the_collector_accepts_every_event_and_the_receiver_gets_the_spans(
        otlp: Any, sensor_collector: CollectorProcess, fake_llm: Any) -> None:
    sensor = otlp.init(env={"FLIGHTDECK_EXPORT": "both",
                            "FLIGHTDECK_SERVER": sensor_collector.ingest_url,
                            "FLIGHTDECK_TOKEN": sensor_collector.token})

    openai_client(fake_llm).chat.completions.create(model=MODEL, messages=MESSAGES,
                                                    tools=CHAT_TOOLS)
    chat(fake_llm)
    [with_tool, plain] = otlp.spans(2)

    destinations = otlp.status()["destinations"]
    assert destinations["flightdeck"]["dropped"] == {} == destinations["otlp"]["dropped"]
    events = sensor_collector.events(session_id=sensor.session.id)
    assert [e["event_type"] for e in events] == [
        "session_start", "pre_call", "post_call", "tool_call", "pre_call", "post_call"]
    assert all("_otel" not in event for event in events)
    assert [name for name, _ in with_tool.events] == ["gen_ai.tool.call"]
    assert plain.events == []


@pytest.mark.parametrize(("first", "sent", "dropped", "state", "requests"), [
    (Reply(200, b""), 2, {}, "ok", 1),
    (Reply(429, b"", headers={"Retry-After": "0"}), 2, {}, "ok", 2),
    (Reply(close_connection=True), 2, {}, "ok", 2),
    (Reply(413, b""), 2, {}, "ok", 3),  # halved
    (Reply(400, b""), 0, {"rejected": 2}, "ok", 1),
    # sending stops; the spans go to the spool (off here: counted)
    (Reply(401, b""), 0, {"undeliverable": 2}, "unauthorized", 1),
    (Reply(404, b""), 0, {"undeliverable": 2}, "unauthorized", 1),
], ids=["200", "429", "no-answer", "413", "400", "401", "404"])
def test_each_row_of_the_otlp_status_table(otlp: Any, fake_llm: Any, first: Reply, sent: int,
                                           dropped: dict[str, int], state: str,
                                           requests: int) -> None:
    otlp.receiver.script(first, Reply(200, b""))
    otlp.init()

    chat(fake_llm, 2)
    otlp.sensor.flush(5 if state == "unauthorized" else 15)

    status = otlp.status()
    assert (status["sent"], status["dropped"], status["server_state"]) == (sent, dropped, state)
    assert len(otlp.receiver.requests) == requests


FORKING_AGENT = """
import os, openai
client = openai.OpenAI(max_retries=0)
client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
pid = os.fork()
if pid == 0:
    client.chat.completions.create(model="gpt-4o-mini",
                                   messages=[{"role": "user", "content": "b"}])
    import flightdeck_sensor
    flightdeck_sensor.shutdown()
    os._exit(0)
os.waitpid(pid, 0)
"""


def test_a_forked_child_sends_its_own_spans_under_its_own_session(
        fake_llm: Any, otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("FLIGHTDECK_", "OTEL_", "AGENT_"))}
    environment.update(OPENAI_BASE_URL=f"{fake_llm.url}/v1", OPENAI_API_KEY="sk-test",
                       FLIGHTDECK_SPOOL_DIR=str(tmp_path), FLIGHTDECK_EXPORT="otlp",
                       OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url)

    result = subprocess.run([sys.executable, "-c", FORKING_AGENT], env=environment,
                            capture_output=True, text=True, timeout=90)

    assert result.returncode == 0, result.stderr
    assert otlp_receiver.wait_for(lambda r: len(r.spans()) == 2)
    parent, child = sorted(otlp_receiver.spans(), key=lambda span: span.start_ns)
    assert parent.attributes["session.id"] != child.attributes["session.id"]
    assert child.resource["flightdeck.parent_session_id"] == parent.attributes["session.id"]
