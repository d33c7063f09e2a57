"""The sender against a misbehaving server: one test per row of docs/protocol.md's
status table, plus batching, the single-event fallback and garbage answers.

The transport runs in-process (the real one: queue, sender thread, httpx)
against tests/fakes/ingest_server.py on loopback.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from fakes.ingest_server import IngestServer, Reply
from flightdeck_sensor._config import resolve_config
from flightdeck_sensor.transport import Transport, spool_summary

TOKEN = "tok-secret-4f1c9e"


def make_event(number: int = 0, **fields: Any) -> dict[str, Any]:
    event = {"id": str(uuid.uuid4()), "session_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
             "event_type": "post_call", "timestamp": "2030-01-01T00:00:00+00:00",
             "tokens_total": 10, "number": number}
    event.update(fields)
    return event


class Harness:
    def __init__(self, server_url: str, spool_dir: Path, **options: Any) -> None:
        config, _ = resolve_config({}, server=server_url, token=TOKEN, **options)
        self.config = config.replace(spool_dir=str(spool_dir))
        self.envelopes: list[dict[str, Any]] = []
        self.transport = Transport(self.config, on_envelope=self.envelopes.append)

    def submit(self, count: int, start: int = 0) -> list[dict[str, Any]]:
        events = [make_event(start + n) for n in range(count)]
        for event in events:
            self.transport.submit(event)
        return events

    def spooled_events(self) -> list[dict[str, Any]]:
        directory = Path(spool_summary(self.config)["directory"])  # type: ignore[arg-type]
        events = []
        for path in sorted(directory.glob("*.batch")):
            events += [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        return events


@pytest.fixture(autouse=True)
def _sensor_logs_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flightdeck_sensor")


@pytest.fixture
def server() -> Iterator[IngestServer]:
    with IngestServer() as fake:
        yield fake


@pytest.fixture
def harness(server: IngestServer, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(server.url, tmp_path / "spool")
    yield h
    h.transport.close(0.5)


def wait_until(condition: Any, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def numbers(events: list[dict[str, Any]]) -> list[int]:
    return [e["number"] for e in events]


def flightdeck_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "flightdeck_sensor" and r.levelno == level]


# -- 200, batching ------------------------------------------------------------------
def test_events_are_batched_and_authenticated(server: IngestServer, harness: Harness) -> None:
    sent = harness.submit(1200)

    assert harness.transport.flush(10)

    assert numbers(server.events()) == numbers(sent)
    assert [len(r.events) for r in server.requests] == [500, 500, 200]
    first = server.requests[0]
    assert first.path == "/ingest/v1/events/batch"
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.headers["User-Agent"].startswith("flightdeck-sensor/")
    assert harness.transport.status()["sent"] == 1200


def test_bodies_to_a_loopback_server_are_not_compressed(server: IngestServer,
                                                         harness: Harness) -> None:
    harness.submit(600)

    assert harness.transport.flush(10)

    assert [r.headers.get("Content-Encoding") for r in server.requests] == [None, None]
    assert len(server.events()) == 600


def _ship_600(server_url: str, tmp_path: Path, **options: Any) -> list[dict[str, Any]]:
    """600 events (two batches) through a transport of their own, flushed and closed."""
    harness = Harness(server_url, tmp_path / "spool", **options)
    try:
        sent = harness.submit(600)
        assert harness.transport.flush(10)
    finally:
        harness.transport.close(0.5)
    return sent


def test_compression_gzip_compresses_even_on_loopback(server: IngestServer,
                                                      tmp_path: Path) -> None:
    sent = _ship_600(server.url, tmp_path, compression="gzip")

    assert [r.headers.get("Content-Encoding") for r in server.requests] == ["gzip", "gzip"]
    assert numbers(server.events()) == numbers(sent)


def _non_loopback_address() -> str | None:
    """An address of this machine that is not loopback, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the outgoing interface
            address: str = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_bodies_to_a_server_off_loopback_are_gzipped(tmp_path: Path) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    with IngestServer(host=address) as server:
        sent = _ship_600(server.url, tmp_path, allow_insecure=True)

    assert [r.headers.get("Content-Encoding") for r in server.requests] == ["gzip", "gzip"]
    assert numbers(server.events()) == numbers(sent)


def test_compression_none_never_compresses(tmp_path: Path) -> None:
    address = _non_loopback_address() or "127.0.0.1"
    with IngestServer(host=address) as server:
        _ship_600(server.url, tmp_path, compression="none", allow_insecure=True)

    assert [r.headers.get("Content-Encoding") for r in server.requests] == [None, None]


def test_small_bodies_are_not_compressed(server: IngestServer, tmp_path: Path) -> None:
    harness = Harness(server.url, tmp_path / "spool", compression="gzip")
    try:
        harness.transport.submit({"id": str(uuid.uuid4()), "event_type": "post_call"})
        assert harness.transport.flush(10)
    finally:
        harness.transport.close(0.5)

    assert "Content-Encoding" not in server.requests[0].headers


# -- 404 / 405: single-event fallback ------------------------------------------------
@pytest.mark.parametrize("status", [404, 405])
def test_server_without_batch_endpoint_gets_single_events_in_order(
        server: IngestServer, harness: Harness, status: int) -> None:
    server.script(Reply(status, {"error": "not found"}, paths=("/ingest/v1/events/batch",)),
                  Reply(200, {"status": "ok", "directive": None, "attached": False}))
    sent = harness.submit(5)
    assert harness.transport.flush(10)
    sent += harness.submit(3, start=5)

    assert harness.transport.flush(10)

    assert numbers(server.events()) == numbers(sent)
    assert server.paths() == ["/ingest/v1/events/batch"] + ["/ingest/v1/events"] * 8
    assert harness.transport.status()["mode"] == "single"


# -- transient answers: retried ---------------------------------------------------------
@pytest.mark.parametrize("first_answer", [
    Reply(503), Reply(500, b"<html>oops</html>"), Reply(408), Reply(close_connection=True)],
    ids=["503", "500-html", "408", "connection-closed"])
def test_transient_failure_is_retried_and_warned_once(
        server: IngestServer, harness: Harness, caplog: pytest.LogCaptureFixture,
        first_answer: Reply) -> None:
    server.script(first_answer, first_answer, Reply(200))
    sent = harness.submit(10)

    assert harness.transport.flush(15)

    assert numbers(server.events()) == numbers(sent)
    status = harness.transport.status()
    assert status["retries"] == 2 and status["sent"] == 10 and not status["dropped"]
    assert len(flightdeck_records(caplog, logging.WARNING)) == 1
    assert any("recovered" in m for m in flightdeck_records(caplog, logging.INFO))


def test_connection_refused_is_retried_until_the_server_comes_up(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture
                                                                  ) -> None:
    down = IngestServer()
    url, port = down.url, down.port
    down.stop()
    harness = Harness(url, tmp_path / "spool")
    sent = harness.submit(4)
    time.sleep(1.5)  # a few refused attempts happen meanwhile

    assert harness.transport.status()["server_state"] == "unreachable"
    assert len(flightdeck_records(caplog, logging.WARNING)) == 1
    with IngestServer.on_port(port) as server:
        assert harness.transport.flush(40)
        assert numbers(server.events()) == numbers(sent)
    harness.transport.close(0.5)


# -- 429 -------------------------------------------------------------------------------
def test_429_retry_after_seconds_pauses_then_resumes(server: IngestServer,
                                                     harness: Harness) -> None:
    server.script(Reply(429, {"error": "rate limited"}, {"Retry-After": "1"}), Reply(200))
    sent = harness.submit(5)

    assert harness.transport.flush(15)

    assert numbers(server.events()) == numbers(sent)
    first, second = server.requests
    assert second.at - first.at >= 0.9  # the sender waited as told


def test_429_retry_after_http_date_is_honoured(server: IngestServer, harness: Harness) -> None:
    soon = formatdate(time.time() + 2, usegmt=True)
    server.script(Reply(429, {"error": "rate limited"}, {"Retry-After": soon}), Reply(200))
    sent = harness.submit(5)

    assert harness.transport.flush(15)

    assert numbers(server.events()) == numbers(sent)
    first, second = server.requests
    assert second.at - first.at >= 0.5


def test_429_without_retry_after_pauses_the_sender_and_exit_spools(
        server: IngestServer, harness: Harness) -> None:
    server.script(Reply(429, {"error": "rate limited"}), Reply(200))
    sent = harness.submit(5)
    assert server.wait_for(lambda s: len(s.requests) == 1)

    assert not harness.transport.flush(2)  # paused for the default 60 s
    assert len(server.requests) == 1
    assert harness.transport.status()["server_state"] == "paused"
    harness.transport.close(1.0)

    assert numbers(harness.spooled_events()) == numbers(sent)


# -- 413: split -------------------------------------------------------------------------
def test_413_splits_the_batch_until_it_fits(server: IngestServer, tmp_path: Path) -> None:
    def too_large_above_100(received: Any) -> Reply | None:
        return Reply(413, {"error": "too large"}) if len(received.events) > 100 else None

    with IngestServer(responder=too_large_above_100) as strict:
        harness = Harness(strict.url, tmp_path / "spool")
        sent = harness.submit(500)

        assert harness.transport.flush(15)

        assert sorted(numbers(strict.events())) == numbers(sent)
        assert max(len(r.events) for r in strict.requests if r.status == 200) <= 100
        assert not harness.transport.status()["dropped"]
        harness.transport.close(0.5)


# -- 400: drop only the offending events --------------------------------------------------
def test_batch_rejections_drop_only_those_events_and_warn_once_per_batch(
        server: IngestServer, harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    server.script(Reply(200, {"status": "ok", "accepted": 7, "rejected": [
        {"index": 1, "error": "invalid model"}, {"index": 4, "error": "invalid model"},
        {"index": 6, "error": "tokens_input must be >= 0"}, {"index": 99, "error": "bogus"},
        {"index": "2", "error": "wrong type"}]}), Reply(200))
    harness.submit(10)

    assert harness.transport.flush(10)

    status = harness.transport.status()
    assert status["dropped"] == {"rejected": 3}
    assert status["sent"] == 7
    (warning,) = flightdeck_records(caplog, logging.WARNING)
    assert "invalid model" in warning and "tokens_input must be >= 0" in warning


def test_single_mode_400_drops_that_event_only(server: IngestServer,
                                                 harness: Harness) -> None:
    def reject_number_2(received: Any) -> Reply | None:
        if received.path.endswith("/batch"):
            return Reply(404)
        if received.events and received.events[0]["number"] == 2:
            return Reply(400, {"error": "invalid event_type"})
        return Reply(200, {"status": "ok"})

    with IngestServer(responder=reject_number_2) as single:
        harness_single = Harness(single.url, harness.config.spool_dir and Path(
            harness.config.spool_dir))
        harness_single.submit(5)

        assert harness_single.transport.flush(10)

        assert numbers(single.events()) == [0, 1, 3, 4]
        assert harness_single.transport.status()["dropped"] == {"rejected": 1}
        harness_single.transport.close(0.5)


def test_batch_400_without_detail_is_narrowed_to_the_bad_event(tmp_path: Path) -> None:
    def reject_batches_holding_7(received: Any) -> Reply | None:
        if any(e.get("number") == 7 for e in received.events):
            return Reply(400, {"error": "invalid JSON"})
        return None

    with IngestServer(responder=reject_batches_holding_7) as server:
        harness = Harness(server.url, tmp_path / "spool")
        harness.submit(20)

        assert harness.transport.flush(10)

        assert sorted(numbers(server.events())) == [n for n in range(20) if n != 7]
        assert harness.transport.status()["dropped"] == {"rejected": 1}
        harness.transport.close(0.5)


# -- 401 / 403 ----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_stops_sending_with_one_error_and_spools(
        server: IngestServer, harness: Harness, caplog: pytest.LogCaptureFixture,
        status: int) -> None:
    server.script(Reply(status, {"error": "invalid token"}))
    sent = harness.submit(5)
    harness.transport.flush(3)
    sent += harness.submit(5, start=5)
    harness.transport.flush(3)

    harness.transport.close(1.0)

    assert len(server.requests) == 1
    errors = flightdeck_records(caplog, logging.ERROR)
    assert len(errors) == 1
    assert sorted(numbers(harness.spooled_events())) == numbers(sent)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


# -- garbage answers ----------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"", b"<html><body>OK</body></html>", b"[1, 2, 3]",
                                  b'{"status": "ok", "attached": "yes", "rejected": "none", '
                                  b'"directive": 7}', b"\xff\xfe\x00garbage"],
                         ids=["empty", "html", "list", "wrong-types", "binary"])
def test_garbage_success_bodies_do_not_break_the_sender(server: IngestServer,
                                                         harness: Harness, body: bytes) -> None:
    server.script(Reply(200, body))
    sent = harness.submit(3)
    assert harness.transport.flush(10)
    sent += harness.submit(3, start=3)

    assert harness.transport.flush(10)

    assert numbers(server.events()) == numbers(sent)
    assert harness.transport.status()["sent"] == 6


def test_envelopes_reach_the_handler(server: IngestServer, harness: Harness) -> None:
    server.script(Reply(200, {"status": "ok", "accepted": 1, "rejected": [],
                              "directive": {"id": "d1", "action": "warn"}, "attached": True}))
    harness.submit(1)

    assert harness.transport.flush(10)

    assert harness.envelopes[0]["attached"] is True
    assert harness.envelopes[0]["directive"]["action"] == "warn"


# -- never answers --------------------------------------------------------------------------
def test_server_that_never_answers_does_not_hold_close_beyond_its_budget(
        server: IngestServer, harness: Harness) -> None:
    server.script(Reply(never_answer=True))
    sent = harness.submit(50)
    assert server.wait_for(lambda s: len(s.requests) == 1)

    started = time.monotonic()
    harness.transport.close(1.0)

    assert time.monotonic() - started < 2.5
    assert numbers(harness.spooled_events()) == numbers(sent)
    assert harness.transport.status()["spooled"] == 50


# -- outage: the queue's overflow goes to the spool ---------------------------------------
def test_during_an_outage_the_queue_overflow_is_spooled_not_dropped(tmp_path: Path) -> None:
    down = IngestServer()
    down.stop()
    harness = Harness(down.url, tmp_path / "spool")
    harness.transport = Transport(harness.config.replace(max_queue_events=100))
    sent = harness.submit(1, start=-1)
    assert wait_until(lambda: harness.transport.status()["server_state"] == "unreachable")
    for round_number in range(4):
        sent += harness.submit(90, start=round_number * 90)
        time.sleep(0.6)  # the sender, between retries, moves the excess to disk

    status = harness.transport.status()
    assert status["spooled"] > 0 and not status["dropped"]
    harness.transport.close(0.5)
    assert sorted(numbers(harness.spooled_events())) == numbers(sent)
