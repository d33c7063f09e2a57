"""The collector under hostile or unlucky conditions: slow clients, many clients,
restarts and kills, odd framing, and fuzzed bodies. Never a 5xx, never a hang."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.collector import CollectorProcess
from fixtures.collector_events import valid_event
from flightdeck_sensor.collector._validate import InvalidEvent, validate_event

SINGLE = "/ingest/v1/events"
BATCH = "/ingest/v1/events/batch"


def raw_connection(collector: CollectorProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", collector.port), timeout=30)


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.mark.slow
def test_stalled_client_does_not_block_others_and_is_dropped(
        collector: CollectorProcess) -> None:
    stalled_body = raw_connection(collector)
    stalled_body.sendall(b"POST /ingest/v1/events HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + collector.token.encode() +
                         b"\r\nContent-Length: 1000\r\n\r\n{\"id\":")
    stalled_headers = raw_connection(collector)
    stalled_headers.sendall(b"POST /ingest/v1/ev")

    status, _ = collector.post(SINGLE, valid_event(), timeout=5)

    assert status == 200
    started = time.monotonic()
    assert read_until_closed(stalled_body).startswith(b"HTTP/1.1 408")  # timed out, told so
    assert read_until_closed(stalled_headers) == b""  # no request yet: just closed
    assert time.monotonic() - started < 25
    assert len(collector.events()) == 1


def test_many_concurrent_clients_lose_nothing(collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    answers: list[int] = []

    def client() -> None:
        for _ in range(10):
            events = [valid_event("post_call", session_id=session, tokens_input=3,
                                  tokens_output=2) for _ in range(20)]
            answers.append(collector.post(BATCH, {"events": events})[1]["accepted"])

    threads = [threading.Thread(target=client) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert answers == [20] * 160
    [row] = collector.sessions()
    assert (row["calls"], row["tokens_in"], row["tokens_out"]) == (3200, 9600, 6400)
    assert len(collector.events()) == 3200


def test_keep_alive_connection_survives_rejections(collector: CollectorProcess) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=10)
    auth = {"Authorization": f"Bearer {collector.token}"}
    requests = [
        (SINGLE, json.dumps(valid_event()), auth, 200),
        (SINGLE, "garbage", auth, 400),
        (SINGLE, json.dumps(valid_event()), {"Authorization": "Bearer nope"}, 401),
        ("/nowhere", json.dumps(valid_event()), auth, 404),
        (BATCH, json.dumps({"events": [valid_event()]}), auth, 200),
    ]
    sockets = set()
    for path, body, headers, expected in requests:
        conn.request("POST", path, body=body, headers=headers)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == expected, path
        sockets.add(id(conn.sock))
    conn.close()

    assert len(sockets) == 1
    assert len(collector.events()) == 2


def test_chunked_body_is_accepted(collector: CollectorProcess) -> None:
    body = json.dumps({"events": [valid_event()]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=10)

    conn.request("POST", BATCH, body=iter([body[:10], body[10:]]), encode_chunked=True,
                 headers={"Authorization": f"Bearer {collector.token}",
                          "Transfer-Encoding": "chunked"})
    answer = conn.getresponse()

    assert (answer.status, json.loads(answer.read())["accepted"]) == (200, 1)


@pytest.mark.parametrize("header", [b"Content-Length: -5", b"Content-Length: 12abc",
                                    b"Transfer-Encoding: gzip, chunked"])
def test_malformed_framing_is_400_and_closed(collector: CollectorProcess, header: bytes) -> None:
    sock = raw_connection(collector)
    sock.sendall(b"POST /ingest/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                 collector.token.encode() + b"\r\n" + header + b"\r\n\r\n{}")

    answer = read_until_closed(sock)

    assert answer.startswith(b"HTTP/1.1 400")


def test_body_shorter_than_its_content_length_is_answered_when_the_client_gives_up(
        collector: CollectorProcess) -> None:
    sock = raw_connection(collector)
    sock.sendall(b"POST /ingest/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                 collector.token.encode() + b"\r\nContent-Length: 500\r\n\r\n{}")
    sock.shutdown(socket.SHUT_WR)

    assert read_until_closed(sock).startswith(b"HTTP/1.1 400")
    assert collector.post(SINGLE, valid_event())[0] == 200


def test_clients_that_vanish_mid_request_leave_the_collector_serving_quietly(
        collector: CollectorProcess) -> None:
    request = (b"POST /ingest/v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               collector.token.encode() + b"\r\nContent-Length: 100000\r\n\r\n")
    for cut in (10, len(request), len(request) + 500):
        sock = raw_connection(collector)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall((request + b"{" * 1000)[:cut])
        sock.close()  # RST, not FIN
    gone_before_answer = raw_connection(collector)
    gone_before_answer.sendall(request.replace(b"100000", b"2") + b"{}")
    gone_before_answer.close()

    assert collector.post(SINGLE, valid_event())[0] == 200
    assert "Traceback" not in collector.output()


def test_negative_chunk_size_is_400(collector: CollectorProcess) -> None:
    sock = raw_connection(collector)
    sock.sendall(b"POST /ingest/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                 collector.token.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n")

    assert read_until_closed(sock).startswith(b"HTTP/1.1 400")


def test_restart_keeps_data_and_port(collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    before = [valid_event("session_start", session_id=session),
              valid_event("post_call", session_id=session)]
    collector.post(BATCH, {"events": before})
    port = collector.port

    collector.restart()
    after = valid_event("post_call", session_id=session)
    status, _ = collector.post(SINGLE, after)

    assert (collector.port, status) == (port, 200)
    assert collector.events(session) == [*before, after]
    assert collector.sessions()[0]["calls"] == 2


def test_killed_collector_keeps_every_acknowledged_event(collector: CollectorProcess) -> None:
    events = [valid_event() for _ in range(200)]
    for start in range(0, 200, 50):
        assert collector.post(BATCH, {"events": events[start:start + 50]})[0] == 200

    collector.kill()
    collector.start()

    assert collector.events() == events


def test_stop_is_graceful(collector: CollectorProcess) -> None:
    assert collector.stop() == 0
    assert not collector.running


# fuzzing

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=5),
    max_leaves=12,
)
EVENT_TYPES = st.sampled_from(["session_start", "session_end", "pre_call", "post_call",
                               "embeddings", "llm_error", "tool_call", "policy_block"])
FIELDS = st.sampled_from(["id", "session_id", "event_type", "agent_type", "client_type",
                          "timestamp", "tokens_input", "tokens_output", "latency_ms", "model",
                          "sensor_version", "close_reason", "retry_attempt", "error",
                          "output_dimensions", "policy_decision", "agent_role",
                          "parent_session_id", "has_content", "streaming", "extra"])


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    event = valid_event(draw(EVENT_TYPES))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(FIELDS)
        if draw(st.booleans()):
            event.pop(field, None)
        else:
            event[field] = draw(JSON_VALUES)
    return event


BODIES = st.one_of(
    st.binary(max_size=300),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    mutated_events().map(lambda event: json.dumps(event).encode()),
    st.lists(st.one_of(mutated_events(), JSON_VALUES), max_size=6).map(
        lambda events: json.dumps({"events": events}).encode()),
)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=BODIES, batch_path=st.booleans())
def test_fuzzed_bodies_get_a_clean_answer_and_only_valid_events_are_stored(
        collector: CollectorProcess, body: bytes, batch_path: bool) -> None:
    status, answer = collector.post(BATCH if batch_path else SINGLE, body, timeout=10)

    assert status in (200, 400, 413), (status, answer)
    assert isinstance(answer, dict)
    if not batch_path:
        assert (status == 200) == _locally_valid(body)


def _locally_valid(body: bytes) -> bool:
    try:
        validate_event(json.loads(body))
    except (InvalidEvent, ValueError):
        return False
    return True


def test_after_fuzzing_every_stored_event_is_valid(collector: CollectorProcess) -> None:
    collector.post(SINGLE, valid_event())

    @settings(max_examples=100, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(body=BODIES, batch_path=st.booleans())
    def fuzz(body: bytes, batch_path: bool) -> None:
        status, _ = collector.post(BATCH if batch_path else SINGLE, body, timeout=10)
        assert status in (200, 400, 413)

    fuzz()

    now = datetime.now(timezone.utc)
    stored = collector.events()
    assert stored
    for event in stored:
        validate_event(event, now)
