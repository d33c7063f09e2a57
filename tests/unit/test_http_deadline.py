"""``transport._http.request``: one request bounded as a whole, for the
sender's checks and ``doctor``'s, against the fake ingest server."""

from __future__ import annotations

from fakes.ingest_server import IngestServer, Reply
from flightdeck_sensor.transport._http import request


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
