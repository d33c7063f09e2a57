"""``transport._http.request``: one request bounded as a whole, for the
sender's checks and ``doctor``'s, against the fake ingest server; and
``IngestClient.abort``, which ends the sender's request from another thread."""

from __future__ import annotations

import threading

from fakes.ingest_server import IngestServer, Reply
from flightdeck_sensor.transport._http import IngestClient, request


def test_a_drip_fed_answer_ends_at_the_whole_deadline_without_an_answer() -> None:
    with IngestServer([Reply(200, drip=0.2)]) as server:
        answer = request(server.url + "/v1/events", "POST", b"{}", deadline=1.0, timeout=5.0)

    assert answer.status == 0 and "timeout" in answer.error


def test_a_prompt_answer_is_read_whole_and_no_redirect_is_followed() -> None:
    with IngestServer([Reply(302, b"", {"Location": "http://127.0.0.1:1/elsewhere"})]) as server:
        answer = request(server.url + "/v1/events", "POST", b"{}")
        assert len(server.requests) == 1

    assert answer.status == 302


def test_an_unreachable_server_is_an_answer_not_an_exception() -> None:
    down = IngestServer()
    url = down.url
    down.stop()

    answer = request(url)

    assert answer.status == 0 and answer.error


def test_an_aborted_request_ends_without_an_answer_and_is_not_sent_again() -> None:
    # Given a kept-alive connection (a request was answered on it) and a
    # second request that the server never answers
    with IngestServer([Reply(200), Reply(never_answer=True), Reply(200)]) as server:
        client = IngestClient(server.url, "token")
        assert client.begin("/v1/heartbeat", b"{}") is None
        assert client.finish().status == 200
        assert client.begin("/v1/heartbeat", b"{}", deadline=10.0) is None

        # When another thread aborts it once the server has it
        def abort_when_received() -> None:
            if server.wait_for(lambda s: len(s.requests) == 2):
                client.abort()

        aborter = threading.Thread(target=abort_when_received)
        aborter.start()
        answer = client.finish()
        aborter.join()

        # Then it ends without an answer, and is not retried as a stale connection would be
        assert answer.status == 0 and "timeout" not in answer.error  # ended, not timed out
        assert len(server.requests) == 2
        assert client.begin("/v1/heartbeat", b"{}") is None  # a new connection serves the next
        assert client.finish().status == 200
