"""Hostile ingest answers fed to the real sender, fuzzed: odd status codes,
weird Retry-After values, garbage / HTML / huge / wrongly typed / truncated
gzip bodies, slow and never-finished answers. The program never sees an
exception, the sender never dies of one, and close() keeps its time budget.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes.ingest_server import IngestServer, Reply
from fakes.sensor_program import run_program
from flightdeck_sensor._config import resolve_config
from flightdeck_sensor._session import Session
from flightdeck_sensor.transport import Transport

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

CLOSE_BUDGET = 1.0
CLOSE_MARGIN = 1.5  # thread join granularity and a loaded machine; proves "no hang"

STATUSES = st.sampled_from([200, 201, 202, 204, 206, 299, 301, 302, 307, 400, 401, 403, 404,
                            405, 408, 409, 413, 415, 422, 429, 431, 500, 501, 502, 503, 504,
                            507, 599])
RETRY_AFTER = st.one_of(
    st.sampled_from(["0", "-5", "1e309", "nan", "inf", "-inf", "1.5", "99999999999999999999",
                     "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
                     "Mon, 32 Foo 2020 25:61:61 GMT", "", " 1 ", "0x10", "١٢"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
JSON_BODIES: st.SearchStrategy[Any] = st.sampled_from([
    None, [], 123, "ok", True,
    {"status": "ok", "accepted": "all", "rejected": "none"},
    {"rejected": [{"index": "0", "error": 5}]},
    {"rejected": [{"index": 10**20}, {"index": -1}, {"index": True}, None, "x", 0]},
    {"rejected": [{"index": 0, "error": {"nested": ["x" * 1000]}}]},
    {"attached": "yes", "directive": {"action": ["shutdown"]}},
    {"error": None}, {"error": ["a", "b"]}, {"accepted": -1, "rejected": {}},
])


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    kind = draw(st.sampled_from(["json", "garbage", "html", "huge", "truncated_gzip",
                                 "empty", "bad_utf8"]))
    if kind == "json":
        return json.dumps(draw(JSON_BODIES)).encode(), {"Content-Type": "application/json"}
    if kind == "garbage":
        return draw(st.binary(max_size=2000)), {}
    if kind == "html":
        return b"<html><body><h1>502 Bad Gateway</h1></body></html>", {
            "Content-Type": "text/html"}
    if kind == "huge":
        return b"{" + b" " * draw(st.integers(1_000_000, 4_000_000)), {}
    if kind == "truncated_gzip":
        packed = gzip.compress(json.dumps({"status": "ok", "rejected": []}).encode())
        return packed[:draw(st.integers(0, len(packed) - 1))], {"Content-Encoding": "gzip"}
    if kind == "bad_utf8":
        return b'{"error": "\xff\xfe\xfa"}', {"Content-Type": "application/json"}
    return b"", {}


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    body, headers = draw(bodies())
    if draw(st.booleans()):
        headers["Retry-After"] = draw(RETRY_AFTER)
    if draw(st.integers(0, 9)) == 0:
        headers["Content-Length-Ignored"] = "x" * 8000  # an oversized header
    return Reply(draw(STATUSES), body=body, headers=headers,
                 delay=draw(st.sampled_from([0.0, 0.0, 0.0, 0.2])),
                 never_answer=draw(st.integers(0, 14)) == 0,
                 close_connection=draw(st.integers(0, 14)) == 0)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def sensor_log() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("flightdeck_sensor")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def events(count: int, server: str) -> list[dict[str, Any]]:
    config, _ = resolve_config({"FLIGHTDECK_SPOOL": "off"}, server=server, token="tok-hostile")
    session = Session(config)
    return [session.build("post_call", {"model": "gpt-test", "provider": "openai",
                                        "tokens_input": 3, "tokens_output": 2,
                                        "tokens_total": 5, "latency_ms": 1})
            for _ in range(count)]


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(script=st.lists(replies(), min_size=1, max_size=4))
def test_hostile_answers_never_raise_never_kill_the_sender_and_exit_stays_bounded(
        script: list[Reply], sensor_log: Records) -> None:
    sensor_log.records.clear()
    with IngestServer(script) as server:
        # Given a transport delivering to a server that answers with the script
        config, _ = resolve_config({"FLIGHTDECK_SPOOL": "off"}, server=server.url,
                                   token="tok-hostile")
        transport = Transport(config)
        # When events are submitted, flushed and the transport closes
        for event in events(5, server.url):
            transport.submit(event)
        transport.flush(0.5)
        started = time.monotonic()
        transport.close(CLOSE_BUDGET)
        took = time.monotonic() - started
        status = transport.status()

    # Then close kept its budget, and nothing escaped or killed the sender
    assert took < CLOSE_BUDGET + CLOSE_MARGIN, (took, script)
    assert isinstance(status["dropped"], dict)
    died = [r.getMessage() for r in sensor_log.records if "internal error" in r.getMessage()
            or (r.exc_info and r.levelno >= logging.WARNING)]
    assert died == [], (died, script)
    assert "Bearer" not in " ".join(r.getMessage() for r in sensor_log.records)


def test_sender_thread_ends_after_close_even_if_the_server_never_answers() -> None:
    # Given a server that reads every request and never answers
    with IngestServer([Reply(200, never_answer=True)]) as server:
        config, _ = resolve_config({"FLIGHTDECK_SPOOL": "off"}, server=server.url,
                                   token="tok-hostile")
        transport = Transport(config)
        for event in events(3, server.url):
            transport.submit(event)
        time.sleep(1.2)  # the batch window passed: the POST hangs on the server
        # When the transport closes with a 1 s budget
        started = time.monotonic()
        transport.close(CLOSE_BUDGET)
        took = time.monotonic() - started
        # Then close returns within the budget and the sender thread is gone soon after
        senders = [t for t in threading.enumerate() if t.name == "flightdeck-sensor-sender"]
        deadline = time.monotonic() + 6
        while any(t.is_alive() for t in senders) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert took < CLOSE_BUDGET + CLOSE_MARGIN
    assert not any(t.is_alive() for t in senders)
    assert sum(transport.status()["dropped"].values()) == 3  # spool off: counted, not silent


# -- single hostile inputs, each aimed at one defect ---------------------------------------
TOKEN = "tok-hostile"


def transport_to(server_url: str, spool_dir: Path | None = None) -> Transport:
    config, _ = resolve_config({} if spool_dir else {"FLIGHTDECK_SPOOL": "off"},
                               server=server_url, token=TOKEN)
    if spool_dir is not None:
        config = config.replace(spool_dir=str(spool_dir))
    return Transport(config)


def ids(found: list[dict[str, Any]]) -> list[str]:
    return [str(e["id"]) for e in found]


def warnings_of(log: Records) -> list[str]:
    return [r.getMessage() for r in log.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("retry_after", [
    "0", "-5", formatdate(time.time() - 3600, usegmt=True)], ids=["zero", "negative", "past"])
def test_429_asking_to_retry_at_once_is_backed_off_not_looped(retry_after: str) -> None:
    # Given a server that answers every request 429 with a Retry-After of no time
    with IngestServer([Reply(429, {"error": "slow down"},
                             {"Retry-After": retry_after})]) as server:
        transport = transport_to(server.url)
        for event in events(5, server.url):
            transport.submit(event)
        # When the sender has been retrying for a while
        assert server.wait_for(lambda s: len(s.requests) >= 1)
        flooded = server.wait_for(lambda s: len(s.requests) > 10, timeout=2.0)
        transport.close(0.5)
    # Then it waited between attempts, backing off, instead of looping
    assert not flooded, len(server.requests)


def test_an_answer_of_deeply_nested_json_neither_kills_the_sender_nor_resends(
        tmp_path: Path, sensor_log: Records) -> None:
    # Given a server whose first answer is accepted but nested 100,000 deep
    deep = b"[" * 100_000 + b"]" * 100_000
    with IngestServer([Reply(200, deep), Reply(200)]) as server:
        transport = transport_to(server.url, tmp_path)
        first, later = events(3, server.url), events(3, server.url)
        # When events are sent before and after that answer
        for event in first:
            transport.submit(event)
        assert transport.flush(10)
        for event in later:
            transport.submit(event)
        delivered = transport.flush(10)
        transport.close(2.0)
        status = transport.status()
    # Then the later events arrived too, each event once, and nothing waits to be resent
    assert delivered
    assert sorted(ids(server.events())) == sorted(ids(first + later))
    assert status["spooled"] == 0 and not list(tmp_path.rglob("*.batch"))
    assert warnings_of(sensor_log) == []


def test_a_server_dripping_its_answer_is_given_up_on_and_later_events_arrive() -> None:
    # Given a server that dribbles its first answer out a byte every half second
    with IngestServer([Reply(200, drip=0.5), Reply(200)]) as server:
        transport = transport_to(server.url)
        first = events(3, server.url)
        for event in first:
            transport.submit(event)
        # When the sender has sent that request
        assert server.wait_for(lambda s: len(s.requests) >= 1)
        # Then it gives up on the answer within its whole-request deadline and sends again
        retried = server.wait_for(lambda s: len(s.requests) >= 2, timeout=30.0)
        later = events(2, server.url)
        for event in later:
            transport.submit(event)
        delivered = transport.flush(20)
        transport.close(0.5)
    assert retried
    assert delivered
    assert set(ids(first + later)) <= set(ids(server.events()))


HOSTILE_TEXT = "bad\x1b[31m red\r\nFAKE flightdeck_sensor ERROR injected\x07" + "x" * 5000


def test_rejection_messages_reach_the_log_sanitized_capped_and_rate_limited(
        sensor_log: Records) -> None:
    # Given a server that rejects every event with a message full of control characters
    with IngestServer([Reply(400, {"error": HOSTILE_TEXT})]) as server:
        transport = transport_to(server.url)
        # When many batches of events are rejected
        for _ in range(5):
            for event in events(4, server.url):
                transport.submit(event)
            assert transport.flush(10)
        transport.close(0.5)
        status = transport.status()
    # Then one warning says so, in one short printable line; every drop is counted
    assert status["dropped"] == {"rejected": 20}
    (warning,) = warnings_of(sensor_log)
    assert "bad" in warning and len(warning) < 500
    assert not any(ch in warning for ch in "\x1b\r\n\x07")
    assert not any(ch in str(status["last_error"]) for ch in "\x1b\r\n\x07")


def test_a_hostile_directive_gets_one_short_printable_warning(tmp_path: Path) -> None:
    # Given a server whose every answer carries a huge directive full of control characters
    answer = {"status": "ok", "attached": False,
              "directive": {"id": "d-1", "action": HOSTILE_TEXT, "reason": HOSTILE_TEXT}}
    with IngestServer([Reply(200, answer)]) as server:
        # When a program delivers events in several posts
        result = run_program("for _ in range(3):\n    call()\n    flightdeck_sensor.flush(10)",
                             server.url, tmp_path)
    # Then the directive is refused with one warning, one short printable line
    lines = [line for line in result.stderr.splitlines() if "directive" in line]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "wrong shape" in lines[0] and "bad" in lines[0] and len(lines[0]) < 500
    assert not any(ch in lines[0] for ch in "\x1b\r\x07")
    assert result.returncode == 0


def test_a_flapping_server_gives_one_warning_not_one_per_outage(sensor_log: Records) -> None:
    # Given a server that fails every other request
    with IngestServer([Reply(503), Reply(200)] * 4 + [Reply(200)]) as server:
        transport = transport_to(server.url)
        # When batches go out through four short outages
        for _ in range(4):
            for event in events(2, server.url):
                transport.submit(event)
            assert transport.flush(15)
        transport.close(0.5)
    # Then the first outage is warned about and the next ones are held back
    assert len(server.events()) == 8
    assert len(warnings_of(sensor_log)) == 1


@pytest.mark.parametrize("budget", [1e10, float("inf")], ids=str)
def test_close_with_an_absurd_budget_neither_raises_nor_loses_events(budget: float) -> None:
    # Given a transport with events queued for a server that answers
    with IngestServer() as server:
        transport = transport_to(server.url)
        sent = events(3, server.url)
        for event in sent:
            transport.submit(event)
        # When it is closed with a budget no clock can wait for
        transport.close(budget)
        # Then the events were delivered or spooled, and counted either way
        status = transport.status()
    assert status["sent"] + status["spooled"] + sum(status["dropped"].values()) == 3
