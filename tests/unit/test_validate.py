"""The collector's event rules (Flightdeck's, per PROTOCOL.md), checked in-process."""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from fixtures.collector_events import INVALID_CASES, VALID_VARIANTS, valid_event
from flightdeck_sensor.collector._server import CollectorServer
from flightdeck_sensor.collector._store import EventStore
from flightdeck_sensor.collector._validate import (
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
