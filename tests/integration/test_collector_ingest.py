"""The collector as a sensor (or a curl user) sees it: a real subprocess on loopback."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from typing import Any

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import INVALID_CASES, valid_event

SINGLE = "/ingest/v1/events"
BATCH = "/ingest/v1/events/batch"
MIB = 1024 * 1024


def batch(*events: Any) -> dict[str, Any]:
    return {"events": list(events)}


# health and routes

@pytest.mark.parametrize("path", ["/health", "/ingest/health", "/ingest/health/"])
def test_health_answers_without_a_token(module_collector: CollectorProcess, path: str) -> None:
    import urllib.request

    with urllib.request.urlopen(module_collector.url + path, timeout=5) as answer:
        assert answer.status == 200
        assert json.loads(answer.read()) == {"status": "ok", "service": "ingestion"}


@pytest.mark.parametrize("path", ["/v1/events", "/ingest/v1/events"])
def test_single_event_is_accepted_at_root_and_under_ingest(
        collector: CollectorProcess, path: str) -> None:
    event = valid_event("pre_call")

    status, answer = collector.post(path, event)

    assert (status, answer) == (200, {"status": "ok", "directive": None, "attached": False})
    assert collector.events() == [event]


@pytest.mark.parametrize("path", ["/v1/events/batch", "/ingest/v1/events/batch"])
def test_batch_is_accepted_at_root_and_under_ingest(collector: CollectorProcess, path: str) -> None:
    session = str(uuid.uuid4())
    events = [valid_event(t, session_id=session)
              for t in ("session_start", "pre_call", "post_call", "session_end")]

    status, answer = collector.post(path, batch(*events))

    assert status == 200
    assert answer == {"status": "ok", "accepted": 4, "rejected": [], "directive": None,
                      "attached": False}
    assert collector.events(session) == events


def test_unknown_path_is_404_and_wrong_method_405(module_collector: CollectorProcess) -> None:
    assert module_collector.post("/v2/events", valid_event())[0] == 404
    assert module_collector.post("/health", b"")[0] == 405
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(module_collector.url + "/v1/events", timeout=5)
    assert answer.value.code == 405


# authentication

@pytest.mark.parametrize(("case", "headers", "token"), [
    ("no header", {}, None),
    ("wrong token", {}, "not-the-token"),
    ("token prefix", {}, "test-token"),
    ("basic scheme", {"Authorization": "Basic dGVzdA=="}, None),
    ("lower-case bearer", {"Authorization": "bearer test-token-0123456789"}, None),
])
def test_missing_or_wrong_token_is_401_and_stores_nothing(
        module_collector: CollectorProcess, case: str, headers: dict[str, str],
        token: str | None) -> None:
    stored_before = len(module_collector.events())
    for path in (SINGLE, BATCH):
        body = valid_event() if path == SINGLE else batch(valid_event())
        status, answer = module_collector.post(path, body, headers=headers, token=token)
        assert status == 401
        assert "token" in answer["error"]
        assert module_collector.token not in json.dumps(answer)
    assert len(module_collector.events()) == stored_before


# validation

@pytest.mark.parametrize(("event", "fragment"), [(event, fragment) for _, event, fragment in
                                                  INVALID_CASES],
                         ids=[case for case, _, _ in INVALID_CASES])
def test_invalid_single_event_is_400_naming_the_rule(
        module_collector: CollectorProcess, event: Any, fragment: str) -> None:
    stored_before = len(module_collector.events())

    status, answer = module_collector.post(SINGLE, event)

    assert status == 400
    assert set(answer) == {"error"}
    assert fragment in answer["error"]
    assert len(module_collector.events()) == stored_before


def test_batch_rejects_invalid_events_by_index_and_stores_the_rest(
        collector: CollectorProcess) -> None:
    good = [valid_event("pre_call"), valid_event("post_call")]
    bad = [event for _, event, _ in INVALID_CASES]
    events = [good[0], *bad, good[1]]

    status, answer = collector.post(BATCH, batch(*events))

    assert status == 200
    assert answer["accepted"] == 2
    assert [r["index"] for r in answer["rejected"]] == list(range(1, len(bad) + 1))
    for rejection, (_, _, fragment) in zip(answer["rejected"], INVALID_CASES, strict=True):
        assert fragment in rejection["error"]
    assert collector.events() == good


@pytest.mark.parametrize(("body", "fragment"), [
    (b"", "empty"),
    (b"   \r\n", "empty"),
    (b"not json at all", "invalid JSON"),
    (b"<html><body>502 Bad Gateway</body></html>", "invalid JSON"),
    (b'{"events": [', "invalid JSON"),
    (b"\xff\xfe\x00garbage", "invalid JSON"),
    (b'{"a": NaN}', "invalid JSON"),
    (b"[" * 100_000, "invalid JSON"),
])
def test_garbage_bodies_are_400(module_collector: CollectorProcess, body: bytes,
                                fragment: str) -> None:
    for path in (SINGLE, BATCH):
        status, answer = module_collector.post(path, body)
        assert status == 400, path
        assert fragment in answer["error"]


@pytest.mark.parametrize("payload", [
    [], "events", 42, None, {"events": "x"}, {"events": {"0": {}}}, {"evts": []},
])
def test_batch_body_of_the_wrong_shape_is_400(module_collector: CollectorProcess,
                                              payload: Any) -> None:
    status, answer = module_collector.post(BATCH, json.dumps(payload).encode())

    assert status == 400
    assert "events" in answer["error"]


@pytest.mark.parametrize("payload", [[], "event", 42, None, [{"id": 1}]])
def test_single_event_that_is_not_an_object_is_400(
        module_collector: CollectorProcess, payload: Any) -> None:
    status, answer = module_collector.post(SINGLE, json.dumps(payload).encode())

    assert status == 400
    assert "JSON object" in answer["error"]


def test_batch_of_non_object_events_rejects_each_by_index(collector: CollectorProcess) -> None:
    status, answer = collector.post(BATCH, batch(1, "x", None, [], valid_event()))

    assert status == 200
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [0, 1, 2, 3]


def test_empty_batch_is_accepted(module_collector: CollectorProcess) -> None:
    assert module_collector.post(BATCH, batch()) == (200, {
        "status": "ok", "accepted": 0, "rejected": [], "directive": None, "attached": False})


# size limits and encoding

def test_batch_of_1000_events_is_accepted_and_1001_is_413(collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    thousand = [valid_event("pre_call", session_id=session, agent_name="a") for _ in range(1000)]

    assert collector.post(BATCH, batch(*thousand))[1]["accepted"] == 1000
    status, answer = collector.post(BATCH, batch(*thousand, valid_event()))

    assert status == 413
    assert "1000" in answer["error"]
    assert len(collector.events()) == 1000


def test_gzip_body_is_decompressed(collector: CollectorProcess) -> None:
    events = [valid_event("post_call") for _ in range(50)]

    status, answer = collector.post(BATCH, gzip.compress(json.dumps(batch(*events)).encode()),
                                    headers={"Content-Encoding": "gzip"})

    assert (status, answer["accepted"]) == (200, 50)
    assert collector.events() == events


def test_single_event_may_be_gzipped(collector: CollectorProcess) -> None:
    event = valid_event()

    status, _ = collector.post(SINGLE, gzip.compress(json.dumps(event).encode()),
                               headers={"Content-Encoding": "gzip"})

    assert status == 200
    assert collector.events() == [event]


def test_body_over_1_mib_is_413(collector: CollectorProcess) -> None:
    padding = "x" * (MIB + 10)

    status, answer = collector.post(BATCH, batch(valid_event(padding=padding)))

    assert status == 413
    assert "larger than" in answer["error"]
    assert collector.events() == []


def test_body_of_almost_1_mib_is_accepted(collector: CollectorProcess) -> None:
    event = valid_event(padding="")
    room = MIB - len(json.dumps(batch(event)).encode()) - 10
    event["padding"] = "x" * room

    status, answer = collector.post(BATCH, batch(event))

    assert (status, answer["accepted"]) == (200, 1)


def gzip_bomb(inflated_mib: int) -> bytes:
    """A valid gzip stream of ``inflated_mib`` MiB of JSON whitespace, built without holding it."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    spaces = b" " * MIB
    parts = [deflate.compress(b"[")]
    parts += [deflate.compress(spaces) for _ in range(inflated_mib)]
    parts += [deflate.compress(b"]"), deflate.flush()]
    return b"".join(parts)


def test_gzip_bomb_is_413_without_inflating_it(collector: CollectorProcess) -> None:
    bomb = gzip_bomb(inflated_mib=64)
    assert len(bomb) < MIB

    status, answer = collector.post(BATCH, bomb, headers={"Content-Encoding": "gzip"})

    assert status == 413
    assert "decompressed" in answer["error"]
    assert collector.post("/ingest/v1/events", valid_event())[0] == 200  # still serving


@pytest.mark.parametrize(("body", "encoding", "status"), [
    (b"definitely not gzip", "gzip", 400),
    (gzip.compress(b'{"events": []}', mtime=0)[:-10], "gzip", 400),
    (b'{"events": []}', "br", 415),
], ids=["not gzip", "truncated gzip", "brotli"])
def test_bad_encodings_are_refused(module_collector: CollectorProcess, body: bytes, encoding: str,
                                   status: int) -> None:
    assert module_collector.post(BATCH, body, headers={"Content-Encoding": encoding})[0] == status


# idempotency and attachment

def test_duplicate_event_ids_are_stored_once(collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    events = [valid_event("post_call", session_id=session) for _ in range(3)]

    first = collector.post(BATCH, batch(*events))
    again = collector.post(BATCH, batch(*events, events[0]))
    single_again = collector.post(SINGLE, events[1])

    assert first[1]["accepted"] == 3 and again[1]["accepted"] == 4
    assert single_again[0] == 200
    assert collector.events() == events
    [row] = collector.sessions()
    assert (row["calls"], row["tokens_in"], row["tokens_out"]) == (3, 36, 15)


def test_duplicate_ids_differing_only_in_case_are_one_event(collector: CollectorProcess) -> None:
    event = valid_event()
    shouted = {**event, "id": event["id"].upper()}

    collector.post(SINGLE, event)
    collector.post(SINGLE, shouted)

    assert collector.events() == [event]


def test_second_session_start_for_a_session_is_attached(collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    first_run = [valid_event("session_start", session_id=session),
                 valid_event("session_end", session_id=session)]
    second_start = valid_event("session_start", session_id=session)

    first = collector.post(BATCH, batch(*first_run))
    second = collector.post(SINGLE, second_start)

    assert first[1]["attached"] is False
    assert second == (200, {"status": "ok", "directive": None, "attached": True})
    [row] = collector.sessions()
    assert row["attachments"] == 1
    assert row["state"] == "active"  # the attached run reopened it
    assert row["last_attached_at"] is not None
    assert [a["event_id"] for a in collector.attachments()] == [second_start["id"]]


def test_attachment_is_reported_in_the_batch_envelope(collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    collector.post(SINGLE, valid_event("session_start", session_id=session))

    status, answer = collector.post(BATCH, batch(
        valid_event("session_start", session_id=session),
        valid_event("pre_call", session_id=session)))

    assert (status, answer["attached"]) == (200, True)


def test_resent_session_start_gets_the_answer_its_first_delivery_got(
        collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    original = valid_event("session_start", session_id=session)

    assert collector.post(SINGLE, original)[1]["attached"] is False
    assert collector.post(SINGLE, original)[1]["attached"] is False  # a retry, not a new run
    assert collector.attachments() == []


# aggregates

def test_sessions_aggregate_calls_tokens_errors_and_state(collector: CollectorProcess) -> None:
    session = str(uuid.uuid4())
    events = [
        valid_event("session_start", session_id=session),
        valid_event("pre_call", session_id=session, tokens_input=100),
        valid_event("post_call", session_id=session, tokens_input=100, tokens_output=20),
        valid_event("embeddings", session_id=session, tokens_input=7, tokens_output=0),
        valid_event("llm_error", session_id=session),
        valid_event("tool_call", session_id=session),
    ]
    collector.post(BATCH, batch(*events))
    [open_row] = collector.sessions()
    collector.post(SINGLE, valid_event("session_end", session_id=session,
                                       close_reason="normal_exit"))
    [closed_row] = collector.sessions()

    assert open_row["state"] == "active"
    assert (open_row["calls"], open_row["tokens_in"], open_row["tokens_out"],
            open_row["errors"]) == (3, 107, 20, 1)
    assert (closed_row["state"], closed_row["close_reason"]) == ("closed", "normal_exit")
    assert closed_row["events"] == 7
    assert closed_row["agent_name"] == "tester@testhost"
    assert closed_row["sensor_version"] == "0.1.0"


def test_counts_beyond_64_bits_are_400_and_huge_sums_are_stored(
        collector: CollectorProcess) -> None:
    # Given a count SQLite cannot hold, and two that fit but whose sum does not
    session = str(uuid.uuid4())
    too_big = valid_event("post_call", session_id=session, tokens_input=2**63)
    big = [valid_event("post_call", session_id=session, tokens_input=2**62 + 1,
                       tokens_total=2**62 + 1) for _ in range(2)]

    # When they are sent in one batch
    status, answer = collector.post(BATCH, batch(too_big, *big))

    # Then the first is rejected as invalid (not a 500 the sender would retry forever)
    assert status == 200, answer
    assert [r["index"] for r in answer["rejected"]] == [0]
    assert "tokens_input" in answer["rejected"][0]["error"]
    assert answer["accepted"] == 2
    assert [s["tokens_in"] for s in collector.sessions()] == [2**63 - 1]
