"""Event validation: Flightdeck ingestion's rules, as docs/protocol.md lists them.

The collector is the sensor's test oracle as much as a server: whatever it
accepts, a real Flightdeck deployment must accept too, so the rules here are
at least as strict as Flightdeck's (a Go service that decodes into typed
structs: a field of the wrong JSON type is a 400 there as well).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

EVENT_TYPES = frozenset({
    "session_start", "session_end", "pre_call", "post_call", "embeddings", "llm_error",
    "tool_call", "policy_warn", "policy_degrade", "policy_block", "directive_result",
})
AGENT_TYPES = frozenset({"production", "coding"})
CLIENT_TYPE = "flightdeck_sensor"
CLOSE_REASONS = frozenset({
    "normal_exit", "directive_shutdown", "policy_block", "orphan_timeout",
    "sigkill_detected", "unknown",
})
ERROR_TYPES = frozenset({
    "rate_limit", "quota_exceeded", "context_overflow", "content_filter", "invalid_request",
    "authentication", "permission", "not_found", "request_too_large", "api_error",
    "overloaded", "timeout", "stream_error", "other",
})
POLICY_EVENT_TYPES = frozenset({"policy_warn", "policy_degrade", "policy_block"})
POLICY_DECISION_FIELDS = ("policy_id", "scope", "decision", "reason")

MAX_AGE = timedelta(hours=48)
MAX_SKEW_AHEAD = timedelta(minutes=5)
MAX_AGENT_ROLE_BYTES = 256

UUID_PATTERN = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Go's time.Parse(time.RFC3339, ...): upper-case T and Z, optional fraction.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))"
)
# What datetime.fromisoformat reads the same way on 3.10 (the sensor's own format): fast path.
_FROMISOFORMAT_SAFE = re.compile(r"[^.]{19}(?:\.\d{6})?[+-](?:[01]\d|2[0-3]):[0-5]\d")

# Top-level fields Flightdeck decodes into typed struct fields; null is always allowed.
_STRING_FIELDS = (
    "agent_id", "agent_name", "user", "hostname", "host", "flavor", "framework", "model",
    "model_requested", "provider", "stop_reason", "estimated_via", "sensor_version",
    "close_reason", "tool_name", "agent_role", "parent_session_id",
)
_BOOL_FIELDS = ("has_content", "capture_prompts", "terminal")
_OBJECT_FIELDS = (
    "context", "provider_metadata", "streaming", "error", "output_dimensions",
    "policy_decision", "interceptor_versions",
)
_COUNT_FIELDS = (
    "tokens_input", "tokens_output", "tokens_total", "tokens_cache_read",
    "tokens_cache_creation", "tokens_used_session", "latency_ms",
)
FIELD_KINDS: dict[str, tuple[type, str]] = {
    **{field: (str, "a string") for field in _STRING_FIELDS},
    **{field: (bool, "a boolean") for field in _BOOL_FIELDS},
    **{field: (dict, "an object") for field in _OBJECT_FIELDS},
    **{field: (int, "a non-negative integer below 2**63") for field in _COUNT_FIELDS},
}


class InvalidEvent(ValueError):
    """The event breaks a rule; the message names the field and the rule."""


class Event(NamedTuple):
    """A validated event: the normalised keys the store needs, and the event as sent.

    ``when`` is the timestamp as fixed-width UTC text (:func:`utc_text`);
    ``body`` the event's JSON text exactly as it came in the request, when the
    server kept it (the store then saves it instead of serialising ``raw``).
    A tuple: built once per event on the collector's hot path.
    """

    id: str
    session_id: str
    event_type: str
    when: str
    raw: dict[str, Any]
    body: str | None = None

    @property
    def timestamp(self) -> datetime:
        return datetime.fromisoformat(self.when)


def utc_text(moment: datetime) -> str:
    """Fixed-width UTC ISO text: sorts as it compares."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def is_canonical_uuid(value: object) -> bool:
    return isinstance(value, str) and UUID_PATTERN.fullmatch(value) is not None


def parse_rfc3339(value: str) -> datetime | None:
    """The timestamp as an aware datetime, or None when it is not RFC 3339 with an offset."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return None
    if _FROMISOFORMAT_SAFE.fullmatch(value):
        try:
            return datetime.fromisoformat(value).astimezone(timezone.utc)
        except ValueError:  # February 30th and friends
            return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                          micros, tzinfo=timezone(offset))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc)


def validate_event(raw: object, now: datetime | None = None) -> Event:
    """Check ``raw`` against the ingestion rules; raise InvalidEvent naming the first broken one."""
    if not isinstance(raw, dict):
        raise InvalidEvent("event must be a JSON object")
    event_id = _required_uuid(raw, "id")
    session_id = _required_uuid(raw, "session_id")
    event_type = raw.get("event_type")
    if not _one_of(event_type, EVENT_TYPES):
        raise InvalidEvent(f"event_type: {_shown(event_type)} is not a known event type")
    _check_identity(raw)
    _check_field_types(raw)
    timestamp = _checked_timestamp(raw.get("timestamp"), now or datetime.now(timezone.utc))
    _check_agent_role(raw)
    TYPE_RULES.get(str(event_type), _no_rule)(raw)
    return Event(event_id.lower(), session_id.lower(), str(event_type), utc_text(timestamp), raw)


def _required_uuid(raw: dict[str, Any], field: str) -> str:
    value = raw.get(field)
    if not is_canonical_uuid(value):
        raise InvalidEvent(
            f"{field}: must be a canonical UUID (8-4-4-4-12 hex), got {_shown(value)}")
    assert isinstance(value, str)
    return value


def _check_identity(raw: dict[str, Any]) -> None:
    if not _one_of(raw.get("agent_type"), AGENT_TYPES):
        raise InvalidEvent(
            f"agent_type: must be 'production' or 'coding', got {_shown(raw.get('agent_type'))}")
    if raw.get("client_type") != CLIENT_TYPE:
        raise InvalidEvent(
            f"client_type: must be '{CLIENT_TYPE}', got {_shown(raw.get('client_type'))}")
    parent = raw.get("parent_session_id")
    if parent is not None and not is_canonical_uuid(parent):
        raise InvalidEvent(
            f"parent_session_id: must be null or a canonical UUID, got {_shown(parent)}")


def _check_field_types(raw: dict[str, Any]) -> None:
    # Walks the event's own keys (one dict lookup each): this is the collector's hot loop.
    for field, value in raw.items():
        if value is None:
            continue
        kind = FIELD_KINDS.get(field)
        if kind is None:
            continue
        expected, described = kind
        if not (_is_count(value) if expected is int else isinstance(value, expected)):
            if _is_directive_error_text(raw, field, value):
                continue
            raise InvalidEvent(f"{field}: must be {described} or null, got {_shown(value)}")


def _is_directive_error_text(raw: dict[str, Any], field: str, value: object) -> bool:
    # A directive_result's "error" is the handler's failure as text ("timeout",
    # "handler not found", ...): Flightdeck stores it as sent; only llm_error's is an object.
    return field == "error" and isinstance(value, str) and raw.get("event_type") == \
        "directive_result"


def _one_of(value: object, vocabulary: frozenset[str]) -> bool:
    # A JSON list or object is unhashable: test the type before the membership.
    return isinstance(value, str) and value in vocabulary


# Counts are 64-bit signed integers, as on Flightdeck's server and in SQLite (a larger
# one raised OverflowError in the store: a 500 the sender would retry forever).
MAX_COUNT = 2**63 - 1


def _is_count(value: object, minimum: int = 0) -> bool:
    # bool is an int subclass; JSON true is not a token count.
    return (isinstance(value, int) and not isinstance(value, bool)
            and minimum <= value <= MAX_COUNT)


def _checked_timestamp(value: object, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(f"timestamp: must be an RFC 3339 string, got {_shown(value)}")
    moment = parse_rfc3339(value)
    if moment is None:
        raise InvalidEvent(f"timestamp: {_shown(value)} is not RFC 3339 with an offset")
    if moment < now - MAX_AGE:
        raise InvalidEvent("timestamp: more than 48 h old")
    if moment > now + MAX_SKEW_AHEAD:
        raise InvalidEvent("timestamp: more than 5 min in the future")
    return moment


def _check_agent_role(raw: dict[str, Any]) -> None:
    role = raw.get("agent_role")
    if isinstance(role, str) and len(role.encode("utf-8", "surrogatepass")) > MAX_AGENT_ROLE_BYTES:
        raise InvalidEvent(f"agent_role: at most {MAX_AGENT_ROLE_BYTES} bytes")


def _check_session_start(raw: dict[str, Any]) -> None:
    version = raw.get("sensor_version")
    if not isinstance(version, str) or not version:
        raise InvalidEvent("sensor_version: required on session_start (a non-empty string)")


def _check_session_end(raw: dict[str, Any]) -> None:
    reason = raw.get("close_reason")
    if not _one_of(reason, CLOSE_REASONS):
        raise InvalidEvent(f"close_reason: {_shown(reason)} is not a known close reason")


def _check_llm_error(raw: dict[str, Any]) -> None:
    error = raw.get("error")
    if not isinstance(error, dict):
        raise InvalidEvent("error: required on llm_error (an object)")
    if not _one_of(error.get("error_type"), ERROR_TYPES):
        raise InvalidEvent(
            f"error.error_type: {_shown(error.get('error_type'))} is not a known error type")
    attempt = raw.get("retry_attempt")
    if not _is_count(attempt, minimum=1):
        raise InvalidEvent(f"retry_attempt: must be an integer >= 1, got {_shown(attempt)}")


def _check_embeddings(raw: dict[str, Any]) -> None:
    dimensions = raw.get("output_dimensions")
    if not isinstance(dimensions, dict):
        raise InvalidEvent("output_dimensions: required on embeddings ({count, dimension})")
    for key in ("count", "dimension"):
        value = dimensions.get(key)
        if not _is_count(value, minimum=1):
            raise InvalidEvent(
                f"output_dimensions.{key}: must be an integer > 0, got {_shown(value)}")


def _check_policy(raw: dict[str, Any]) -> None:
    decision = raw.get("policy_decision")
    if not isinstance(decision, dict):
        raise InvalidEvent(f"policy_decision: required on {raw['event_type']}")
    for key in POLICY_DECISION_FIELDS:
        value = decision.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidEvent(f"policy_decision.{key}: must be a non-empty string")


def _no_rule(raw: dict[str, Any]) -> None:
    pass


TYPE_RULES = {
    "session_start": _check_session_start,
    "session_end": _check_session_end,
    "llm_error": _check_llm_error,
    "embeddings": _check_embeddings,
    "policy_warn": _check_policy,
    "policy_degrade": _check_policy,
    "policy_block": _check_policy,
}


def _shown(value: object) -> str:
    """A short, safe rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
