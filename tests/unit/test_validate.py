"""The collector's event rules (Flightdeck's, per docs/protocol.md), checked in-process."""

from __future__ import annotations

import gzip
import hmac
import json
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.collector_events import INVALID_CASES, VALID_VARIANTS, now_rfc3339, valid_event
from flightdeck_sensor.collector import _http_body
from flightdeck_sensor.collector._batch import validate_batch
from flightdeck_sensor.collector._http_body import decode_body, split_batch
from flightdeck_sensor.collector._server import CollectorServer
from flightdeck_sensor.collector._store import EventStore
from flightdeck_sensor.collector._validate import (
    Event,
    InvalidEvent,
    is_canonical_uuid,
    parse_rfc3339,
    validate_event,
)


@pytest.mark.parametrize(("event", "fragment"), [(event, fragment) for _, event, fragment in
                                                  INVALID_CASES],
                         ids=[case for case, _, _ in INVALID_CASES])
def test_event_breaking_a_rule_is_rejected_naming_the_rule(event: Any, fragment: str) -> None:
    with pytest.raises(InvalidEvent) as rejected:
        validate_event(event)

    assert fragment in str(rejected.value)


@pytest.mark.parametrize("event", [event for _, event in VALID_VARIANTS],
                         ids=[case for case, _ in VALID_VARIANTS])
def test_valid_event_is_accepted(event: dict[str, Any]) -> None:
    accepted = validate_event(event)

    assert accepted.raw is event
    assert accepted.event_type == event["event_type"]


def test_ids_are_normalised_to_lower_case_for_storage() -> None:
    session_id = str(uuid.uuid4())
    event = valid_event(id=str(uuid.uuid4()).upper(), session_id=session_id.upper())

    accepted = validate_event(event)

    assert accepted.session_id == session_id
    assert accepted.id == event["id"].lower()
    assert accepted.raw["session_id"] == session_id.upper()  # stored as sent


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=timezone.utc)),
    ("2026-03-01T10:00:00.5+02:00", datetime(2026, 3, 1, 8, 0, 0, 500000, tzinfo=timezone.utc)),
    ("2026-03-01T10:00:00.123456789-01:30",
     datetime(2026, 3, 1, 11, 30, 0, 123456, tzinfo=timezone.utc)),
])
def test_rfc3339_timestamps_parse_to_utc(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", [
    "2026-03-01T10:00:00", "2026-03-01 10:00:00Z", "2026-03-01t10:00:00z", "2026-13-01T10:00:00Z",
    "2026-03-01T24:00:00Z", "2026-03-01T10:00:60Z", "2026-03-01T10:00:00+24:00",
    "2026-03-01T10:00:00Z\n", "", "yesterday",
])
def test_non_rfc3339_timestamps_are_refused(text: str) -> None:
    assert parse_rfc3339(text) is None


@pytest.mark.parametrize("value", [
    "00000000-0000-0000-0000-000000000000", "ABCDEF01-2345-6789-abcd-ef0123456789",
])
def test_canonical_uuids(value: str) -> None:
    assert is_canonical_uuid(value)


@pytest.mark.parametrize("value", [
    "ABCDEF01-2345-6789-abcd-ef012345678", "abcdef0123456789abcdef0123456789",
    "urn:uuid:abcdef01-2345-6789-abcd-ef0123456789", "gbcdef01-2345-6789-abcd-ef0123456789",
    None, 5,
])
def test_non_canonical_uuids(value: object) -> None:
    assert not is_canonical_uuid(value)


def test_token_check_compares_in_constant_time(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    server = CollectorServer(("127.0.0.1", 0), "s3cret", store)
    try:
        with mock.patch("hmac.compare_digest", wraps=hmac.compare_digest) as compare:
            results = [server.is_authorized(header) for header in
                       ("Bearer s3cret", "Bearer s3cre", "bearer s3cret", "s3cret")]
            assert compare.call_count == 4
        assert results == [True, False, False, False]
        assert server.is_authorized(None) is False
        assert server.is_authorized("Bearer s3cr\u00e9t") is False
    finally:
        server.server_close()
        store.close()


# -- the batch fast path agrees with the reference ------------------------------------------
def _reference_answer(event: object, now: datetime) -> tuple[str, Any]:
    try:
        accepted = validate_event(event, now)
    except InvalidEvent as invalid:
        return "rejected", str(invalid)
    return "accepted", accepted[:5]


def _batch_answers(events: list[Any], now: datetime) -> list[tuple[str, Any]]:
    accepted, rejected = validate_batch(events, now, [f"text {i}" for i in range(len(events))])
    answers: dict[int, tuple[str, Any]] = {index: ("rejected", error) for index, error in rejected}
    kept = iter(accepted)
    for index in range(len(events)):
        if index not in answers:
            event = next(kept)
            assert event.raw is events[index]
            assert event.body in (None, f"text {index}")  # the text travels with the event
            answers[index] = ("accepted", event[:5])
    assert next(kept, None) is None
    return [answers[index] for index in range(len(events))]


def test_batch_validation_gives_the_reference_answer_for_every_table_case() -> None:
    now = datetime.now(timezone.utc)
    events = [event for _, event, _ in INVALID_CASES] + [event for _, event in VALID_VARIANTS]

    assert _batch_answers(events, now) == [_reference_answer(event, now) for event in events]


def _stamp(moment: datetime, form: str) -> str:
    if form == "sensor":
        return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if form == "z":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if form == "offset":
        return moment.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


_NOW = datetime.now(timezone.utc)
_TIMESTAMPS = st.one_of(
    st.builds(_stamp, st.datetimes(min_value=(_NOW - timedelta(days=3)).replace(tzinfo=None),
                                   max_value=(_NOW + timedelta(hours=1)).replace(tzinfo=None),
                                   timezones=st.just(timezone.utc)),
              st.sampled_from(["sensor", "z", "offset", "seconds"])),
    # right at the edges of the window, and days some months lack
    st.builds(lambda edge, micros, form: _stamp(edge + timedelta(microseconds=micros), form),
              st.sampled_from([_NOW - timedelta(hours=48), _NOW + timedelta(minutes=5)]),
              st.integers(-3, 3), st.sampled_from(["sensor", "z"])),
    st.sampled_from([_NOW.strftime("%Y-02-30T10:00:00.000000+00:00"),
                     _NOW.strftime("%Y-%m-%dT1\u0665:00:00.000000+00:00"),
                     _NOW.strftime("%Y-%m-%dT10:00:00.000000-00:00"),
                     _NOW.strftime("%Y-%m-%dT10:00:00.000000+00:00 "),
                     _NOW.strftime("%Y-%m-%dt10:00:00.000000+00:00")]),
    st.text(max_size=40),
)
_JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**70), st.floats(),
                          st.text(max_size=300),
                          st.sampled_from(["production", "coding", "flightdeck_sensor",
                                           "post_call", "session_start", "rate_limit"]),
                          st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()))
_JSON_VALUES = st.recursive(_JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)),
    max_leaves=6)
_FIELDS = st.sampled_from([
    "id", "session_id", "event_type", "agent_type", "client_type", "timestamp", "agent_id",
    "model", "tokens_input", "tokens_output", "tokens_total", "tokens_used_session",
    "latency_ms", "has_content", "parent_session_id", "agent_role", "provider_metadata",
    "sensor_version", "close_reason", "error", "retry_attempt", "output_dimensions",
    "policy_decision", "capture_prompts", "framework", "content", "extra_field",
])


@st.composite
def _mutated_events(draw: st.DrawFn) -> object:
    event_type = draw(st.sampled_from(["post_call", "pre_call", "session_start", "session_end",
                                       "llm_error", "embeddings", "policy_warn", "tool_call"]))
    event: dict[str, Any] = valid_event(event_type, timestamp=draw(_TIMESTAMPS))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(_FIELDS)
        action = draw(st.sampled_from(["set", "delete", "role"]))
        if action == "delete":
            event.pop(field, None)
        elif action == "role":
            event["parent_session_id"] = str(uuid.uuid4())
            event["agent_role"] = draw(st.text(min_size=60, max_size=260))
        else:
            event[field] = draw(_JSON_VALUES)
    if draw(st.booleans()):  # the key order must not matter either
        event = dict(sorted(event.items()))
    return event if draw(st.integers(0, 30)) else draw(_JSON_VALUES)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutated_events(), min_size=1, max_size=4))
def test_batch_validation_agrees_with_the_reference_on_generated_events(
        events: list[Any]) -> None:
    now = datetime.now(timezone.utc)
    # Through JSON, as the server gets them (tuples, NaN and the like cannot arrive).
    events = [json.loads(json.dumps(event)) for event in events]

    assert _batch_answers(events, now) == [_reference_answer(event, now) for event in events]


def _one_batch(events: list[Any]) -> list[Any]:
    """The events as split_batch gives them: parsed in one call, so equal keys are one object."""
    parsed: list[Any] = json.loads(json.dumps(events))
    return parsed


def _shape_changes(base: dict[str, Any]) -> dict[str, list[Any]]:
    """Batches whose neighbouring events differ in one thing the fast path carries over."""
    session = base["session_id"]
    def event(**fields: Any) -> dict[str, Any]:
        return valid_event("post_call", session_id=session, **fields)
    return {
        "type changes, same keys": [event(tokens_input=3), event(tokens_input="3"),
                                    event(tokens_input=True), event(tokens_input=3.0)],
        "null then value": [event(agent_role=None), event(agent_role=7), event(agent_role="r")],
        "count out of range, same shape": [event(tokens_input=3), event(tokens_input=-1),
                                           event(tokens_input=2**63),
                                           event(tokens_input=2**63 - 1)],
        "key order differs": [event(), dict(reversed(list(event().items()))), event()],
        "key added, key dropped": [event(), event(extra=1), _without_key(event(), "model"),
                                   _without_key(event(), "session_id")],
        "session changes": [event(), valid_event("post_call", session_id=session.upper()),
                            valid_event("post_call", session_id=session + "0"),
                            valid_event("post_call", session_id=session[:-1] + "g"),
                            event(), valid_event("post_call")],
        "event type changes": [event(), valid_event("session_end", session_id=session),
                               valid_event("session_end", session_id=session, close_reason="x"),
                               valid_event("llm_error", session_id=session, retry_attempt=0)],
        "not objects between": [event(), [event()], None, event()],
    }


def _without_key(event: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != field}


@pytest.mark.parametrize("case", list(_shape_changes(valid_event())))
def test_batch_validation_carries_nothing_wrong_from_one_event_to_the_next(case: str) -> None:
    """The fast path reuses what an event shares with the one before it; an event that
    differs in its value types, keys, counts, session or type gets its own answer."""
    now = datetime.now(timezone.utc)
    events = _one_batch(_shape_changes(valid_event())[case])

    assert _batch_answers(events, now) == [_reference_answer(event, now) for event in events]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_mutated_events(), min_size=2, max_size=6), st.integers(0, 5))
def test_batch_validation_agrees_with_the_reference_on_batches_parsed_in_one_call(
        events: list[Any], repeats: int) -> None:
    """As split_batch parses a batch: one scanner call, key strings shared by the events;
    each event also repeated (equal shape, equal session) to exercise what is carried over."""
    now = datetime.now(timezone.utc)
    batch = _one_batch([event for event in events for _ in range(1 + repeats % 3)])

    assert _batch_answers(batch, now) == [_reference_answer(event, now) for event in batch]


def test_fast_path_takes_the_sensors_events() -> None:
    """The fast path is not silently dead: a sensor-made event comes out with its text."""
    event = valid_event("post_call")

    accepted, rejected = validate_batch([event], datetime.now(timezone.utc), ["{...}"])

    assert rejected == [] and accepted[0].body == "{...}"
    assert accepted[0].when == event["timestamp"]


# -- the batch body splitter agrees with json.loads ----------------------------------------
def _check_split(body: bytes) -> None:
    split = split_batch(body)
    if split is None:
        return
    events, texts = split
    payload = json.loads(body)
    assert list(payload) == ["events"] and payload["events"] == events
    assert [json.loads(text) for text in texts] == events


@pytest.mark.parametrize("body", [
    b'{"events":[]}', b' {\n"events" : [ ] } \r\n', b'{"events":[{"a":1},{"b":[1,2]}]}',
    b'{"events":[1 , 2\t,3]}', b'{"events":[1,]}', b'{"events":[,1]}', b'{"events":[1]}x',
    b'{"events":[1]', b'{"events":[1]]}', b'{"events":[NaN]}', b'{"events":[1e999]}',
    b'{"events":[1],"events":[2]}', b'{"events":[1],"x":2}', b'\xef\xbb\xbf{"events":[1]}',
    '{"events":[1]}'.encode("utf-16"), b'{"events":["\xed\xa0\x80"]}',
    b'{"events":["\\ud800"]}', b'{"events":[' + b"[" * 100_000 + b"]}", b"",
    b'{"events":[{"a":"\x01"}]}', b'{"\\u0065vents":[1]}', b'{"events":[-]}',
    b'{"events":[{"a":"},{"},{"b":1}]}', b'{"events":[{"a":"},{"}, {"b":1}]}',
    b'{"events":[{"a":[{},{}]},{"b":1}]}', b'{"events":[{"a":1} ,{"b":"} ,{"}]}',
])
def test_batch_splitter_returns_what_json_loads_gives_or_nothing(body: bytes) -> None:
    _check_split(body)


def test_batch_splitter_takes_the_senders_body() -> None:
    events = [valid_event("post_call", model="gpt-\u00e9"), valid_event("session_end")]
    body = json.dumps({"events": events}, separators=(",", ":"), ensure_ascii=False).encode()

    split = split_batch(decode_body(gzip.compress(body, 1), "gzip"))

    assert split is not None and split[0] == events
    assert split[1] == [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in events]


@settings(max_examples=400, deadline=None)
@given(st.lists(_JSON_VALUES, max_size=5),
       st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", "\t:\r")]),
       st.booleans(), st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=3)),
                               max_size=2))
def test_batch_splitter_agrees_with_json_loads_on_generated_bodies(
        events: list[Any], separators: tuple[str, str], ascii_only: bool,
        edits: list[tuple[int, bytes]]) -> None:
    body = json.dumps({"events": events}, separators=separators,
                      ensure_ascii=ascii_only).encode()
    for offset, replacement in edits:  # damage it here and there
        at = offset % (len(body) + 1)
        body = body[:at] + replacement + body[at + len(replacement):]
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        assert split_batch(body) is None  # only json.loads may answer a broken body
        return
    _check_split(body)


# -- the store: dedupe and attachment across the batch shapes it optimises --------------------
def _events_of(store_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(store_path) as conn:
        return conn.execute("SELECT id, body FROM events ORDER BY rowid").fetchall()


def test_store_keeps_the_first_of_each_id_within_and_across_batches(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    now = datetime.now(timezone.utc)
    session = str(uuid.uuid4())
    first = [valid_event("session_start", session_id=session), valid_event(session_id=session)]
    accepted, _ = validate_batch(first, now, ["start", "call"])
    try:
        assert store.ingest(accepted) is False
        again = valid_event("session_start", session_id=session)
        # Re-sent: as it was, with ids in upper case, with the same instant at another offset.
        upper = {**first[1], "id": first[1]["id"].upper(), "session_id": session.upper()}
        moved = {**first[1], "timestamp": _at_offset(first[1]["timestamp"], hours=2)}
        repeat = [first[1], upper, again, moved, again]
        accepted, _ = validate_batch(repeat, now,
                                     ["dup", "dup upper", "second start", "dup moved", "same"])
        assert store.ingest(accepted) is True  # a second session_start attaches
        accepted, _ = validate_batch(first[:1], now, ["start resent"])
        assert store.ingest(accepted) is False  # the first start was no attachment

        assert [body for _, body in _events_of(tmp_path / "c.db")] == [
            "start", "call", "second start"]
        with sqlite3.connect(tmp_path / "c.db") as conn:
            events, calls, attachments = conn.execute(
                "SELECT events, calls, attachments FROM sessions").fetchone()
        assert (events, calls, attachments) == (3, 1, 1)
    finally:
        store.close()


def _at_offset(stamp: str, hours: int) -> str:
    """The same instant written with a +hh:00 offset."""
    moment = datetime.fromisoformat(stamp).astimezone(timezone(timedelta(hours=hours)))
    return moment.isoformat(timespec="microseconds")


def test_store_keeps_an_id_reused_with_another_time_or_session_as_another_event(
        tmp_path: Path) -> None:
    """Not a re-send (that carries the same session and time): a sender bug, stored as
    sent, with the session rows counting what the events table holds and no error."""
    store = EventStore(tmp_path / "c.db")
    now = datetime.now(timezone.utc)
    session, other = str(uuid.uuid4()), str(uuid.uuid4())
    start = valid_event("session_start", session_id=session)
    call = valid_event(session_id=session)
    try:
        store.ingest(validate_batch([start, call], now, ["start", "call"])[0])
        later = now_rfc3339(timedelta(seconds=1))
        reused = [{**call, "timestamp": later}, {**call, "session_id": other},
                  {**start, "timestamp": later}, {**start, "timestamp": later}]
        accepted, _ = validate_batch(reused, now, ["later", "other", "restart", "restart"])
        assert store.ingest(accepted) is True  # the restart attached to its started session
        accepted, _ = validate_batch(reused[2:3], now, ["restart resent"])
        assert store.ingest(accepted) is True  # and its re-send gets the same answer
        again = {**start, "timestamp": now_rfc3339(timedelta(seconds=2))}
        accepted, _ = validate_batch([again], now, ["restart again"])
        assert store.ingest(accepted) is True  # its id has an attachment row already

        assert [body for _, body in _events_of(tmp_path / "c.db")] == [
            "start", "call", "later", "other", "restart", "restart again"]
        with sqlite3.connect(tmp_path / "c.db") as conn:
            counted = dict(conn.execute("SELECT session_id, events FROM sessions"))
            stored = dict(conn.execute(
                "SELECT session_id, count(*) FROM events GROUP BY session_id"))
            attachments = conn.execute(
                "SELECT sum(attachments), (SELECT count(*) FROM attachments) FROM sessions")
            assert attachments.fetchone() == (1, 1)
        assert counted == stored == {session: 5, other: 1}
    finally:
        store.close()


def test_store_serialises_events_that_came_without_their_text(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "c.db")
    event = valid_event(model="caf\u00e9")
    try:
        store.ingest([validate_event(event)])
        [(_, body)] = _events_of(tmp_path / "c.db")
    finally:
        store.close()

    assert json.loads(body) == event
    assert isinstance(validate_event(event), Event)


def test_batch_splitter_scans_the_senders_compact_body_in_one_pass() -> None:
    """The compact route is not silently dead: one scanner call for the whole list."""
    events = [valid_event("post_call", provider_metadata={"a": {"b": 1}}) for _ in range(3)]
    body = json.dumps({"events": events}, separators=(",", ":")).encode()

    with mock.patch("flightdeck_sensor.collector._http_body._scan_value",
                    wraps=_http_body._scan_value) as scan:
        split = split_batch(body)

    assert scan.call_count == 1
    assert split is not None and split[1] == [json.dumps(e, separators=(",", ":"))
                                              for e in events]


# Strings full of what separates the events: "},{" inside a value, and spaces around it.
_TRICKY_TEXT = st.text(alphabet='{}[],: \t"x\\', max_size=12)
_TRICKY_VALUES = st.recursive(
    st.one_of(_TRICKY_TEXT, st.integers(0, 9), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(_TRICKY_TEXT, inner, max_size=3)),
    max_leaves=6)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.dictionaries(_TRICKY_TEXT, _TRICKY_VALUES, max_size=4), max_size=5),
       st.lists(st.sampled_from([",", ", ", " ,", " , ", ",\n", "\t,"]), min_size=5,
                max_size=5),
       st.sampled_from([(",", ":"), (", ", ": ")]))
def test_batch_splitter_finds_each_objects_text_whatever_its_strings_hold(
        events: list[dict[str, Any]], between: list[str], separators: tuple[str, str]) -> None:
    texts = [json.dumps(event, separators=separators) for event in events]
    body = ('{"events":[' + "".join(
        text + (between[i] if i < len(texts) - 1 else "") for i, text in enumerate(texts))
        + "]}").encode()

    split = split_batch(body)

    assert split is not None and split == (events, texts)
