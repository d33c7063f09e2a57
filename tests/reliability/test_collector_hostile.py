"""Hostile clients of the collector, beyond tests/integration/test_collector_resilience.py
(one stalled client, fuzzed bodies, gzip bombs, wrong tokens): an unauthenticated
client cannot make it read a huge body, and a crowd of stalled clients does not
lock out a legitimate one.

The token comparison is ``hmac.compare_digest`` (collector/_server.py); its
timing is not asserted here: a wall-clock test of it would be flaky, not proof.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import valid_event

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

SINGLE = "/ingest/v1/events"


def connect(collector: CollectorProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", collector.port), timeout=15)
    sock.settimeout(15)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and data.endswith(b"}"):
                break
    return data


def test_unauthenticated_huge_body_is_refused_before_it_is_read(
        collector: CollectorProcess) -> None:
    # Given a client with a wrong token announcing a 200 MB body and sending none of it
    sock = connect(collector)
    sock.sendall(b"POST " + SINGLE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                 b"Authorization: Bearer not-the-token\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n")
    # When it waits for an answer
    started = time.monotonic()
    answer = read_answer(sock)
    sock.close()
    # Then it is told 401 at once (the collector did not wait for the body)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert time.monotonic() - started < 10
    assert collector.events() == []


def test_fifty_stalled_clients_do_not_lock_out_a_legitimate_one(
        collector: CollectorProcess) -> None:
    # Given 50 clients that sent half a request each and then went quiet
    stalled = []
    for number in range(50):
        sock = connect(collector)
        if number % 2:
            sock.sendall(b"POST /ingest/v1/ev")  # half a request line
        else:
            sock.sendall(b"POST " + SINGLE.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: Bearer " + collector.token.encode() +
                         b"\r\nContent-Length: 5000\r\n\r\n{\"id\":")  # half a body
        stalled.append(sock)
    try:
        # When a legitimate client posts an event
        status, answer = collector.post(SINGLE, valid_event(), timeout=15)
        # Then it is stored, and the collector still answers health checks
        assert status == 200, answer
        assert len(collector.events()) == 1
        health = connect(collector)
        health.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(health).startswith(b"HTTP/1.1 200")
        health.close()
    finally:
        for sock in stalled:
            sock.close()


def test_wrong_token_never_appears_in_the_answer_or_the_log(
        collector: CollectorProcess) -> None:
    presented = "Bearer leaked-" + uuid.uuid4().hex
    status, answer = collector.post(SINGLE, valid_event(), token=None,
                                    headers={"Authorization": presented})
    assert status == 401
    assert presented.split()[1] not in json.dumps(answer)
    assert presented.split()[1] not in collector.output()
    assert collector.token not in collector.output()
