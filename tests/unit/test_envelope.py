"""Reading the server's answers defensively: envelopes, rejections, Retry-After."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from flightdeck_sensor.transport._answers import (
    error_message,
    parse_json_object,
    rejections,
    retry_after_seconds,
)


@pytest.mark.parametrize("body", [b"", b"<html>", b"[1]", b"null", b"\xff\xfe", b"42",
                                  b'"text"', b"{"])
def test_anything_but_a_json_object_is_no_envelope(body: bytes) -> None:
    assert parse_json_object(body) is None


def test_a_json_object_is_an_envelope() -> None:
    assert parse_json_object(b'{"status":"ok","attached":true}') == {
        "status": "ok", "attached": True}


def test_rejections_keep_only_well_formed_in_range_indices() -> None:
    envelope = {"rejected": [
        {"index": 0, "error": "bad model"}, {"index": 5, "error": "out of range"},
        {"index": -1, "error": "negative"}, {"index": "1", "error": "string"},
        {"index": True, "error": "bool"}, "junk", {"index": 2}]}

    assert rejections(envelope, batch_size=3) == {0: "bad model", 2: "rejected"}


@pytest.mark.parametrize("envelope", [None, {}, {"rejected": None}, {"rejected": "x"},
                                      {"rejected": {"index": 0}}])
def test_missing_or_malformed_rejections_mean_none(envelope: dict[str, object] | None) -> None:
    assert rejections(envelope, batch_size=3) == {}


def test_error_message_comes_from_the_error_field() -> None:
    assert error_message(b'{"error": "invalid event_type"}') == "invalid event_type"
    assert error_message(b"<html>") == ""


@pytest.mark.parametrize(("header", "expected"), [
    ("5", 5.0), ("0", 0.0), ("2.5", 2.5), ("3600", 60.0), ("-4", 0.0),
    (None, 60.0), ("", 60.0), ("soon", 60.0), ("nan", 60.0)])
def test_retry_after_seconds_are_capped_at_60(header: str | None, expected: float) -> None:
    assert retry_after_seconds(header) == expected


def test_retry_after_http_date_is_seconds_from_now() -> None:
    header = formatdate(time.time() + 30, usegmt=True)

    assert 25 <= retry_after_seconds(header) <= 30


def test_retry_after_http_date_in_the_past_means_now() -> None:
    assert retry_after_seconds(formatdate(time.time() - 300, usegmt=True)) == 0.0
