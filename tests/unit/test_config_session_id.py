"""The session-id hint, as the original documentation describes it, sent canonically.

FLIGHTDECK_SESSION_ID beats init(session_id=); the value must parse as a UUID
(any version); a non-UUID gets a WARNING and a fresh uuid4; every UUID
spelling is sent in the canonical lowercase 8-4-4-4-12 form the server checks.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import flightdeck_sensor as fd
from flightdeck_sensor import _sensor
from flightdeck_sensor._config import resolve_config
from flightdeck_sensor._env_values import canonical_uuid
from flightdeck_sensor._session import Session

CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
BASE = {"FLIGHTDECK_SERVER": "http://127.0.0.1:9", "FLIGHTDECK_TOKEN": "t"}
ENV_ID = "0b3d5a4e-8f1c-4e52-9a7b-1c2d3e4f5a6b"
KWARG_ID = "7d444840-9dc0-11d1-b245-5ffdce74fad2"


def session_id_of(env: dict[str, str], **kwargs: object) -> tuple[str, bool, list[str]]:
    config, warnings = resolve_config({**BASE, **env}, **kwargs)
    session = Session(config)
    return session.id, session.custom_id, warnings


def test_environment_hint_beats_the_keyword() -> None:
    session_id, custom, warnings = session_id_of({"FLIGHTDECK_SESSION_ID": ENV_ID},
                                                 session_id=KWARG_ID)

    assert (session_id, custom, warnings) == (ENV_ID, True, [])


def test_keyword_hint_is_used_without_the_variable() -> None:
    assert session_id_of({}, session_id=KWARG_ID) == (KWARG_ID, True, [])


def test_no_hint_means_a_fresh_uuid4_per_process_start() -> None:
    first, custom, _ = session_id_of({})
    second, _, _ = session_id_of({})

    assert first != second and not custom
    assert uuid.UUID(first).version == 4


def test_invalid_hint_gets_a_warning_and_a_fresh_uuid4() -> None:
    session_id, custom, warnings = session_id_of({"FLIGHTDECK_SESSION_ID": "nightly-run-42"},
                                                 session_id=KWARG_ID)

    assert custom is False
    assert uuid.UUID(session_id).version == 4 and session_id != KWARG_ID
    assert warnings == ["flightdeck-sensor: FLIGHTDECK_SESSION_ID='nightly-run-42' is not a UUID; "
                        "using a fresh session id instead (hash string identifiers with "
                        "uuid.uuid5)"]


@pytest.mark.parametrize("spelling", [
    "0B3D5A4E-8F1C-4E52-9A7B-1C2D3E4F5A6B",
    "0b3d5a4e8f1c4e529a7b1c2d3e4f5a6b",
    "{0b3d5a4e-8f1c-4e52-9a7b-1c2d3e4f5a6b}",
    "urn:uuid:0b3d5a4e-8f1c-4e52-9a7b-1c2d3e4f5a6b",
    "  0b3d5a4e-8f1c-4e52-9a7b-1c2d3e4f5a6b\n",
])
def test_non_canonical_spellings_are_sent_canonically(spelling: str) -> None:
    assert session_id_of({"FLIGHTDECK_SESSION_ID": spelling}) == (ENV_ID, True, [])


@given(st.uuids(), st.sampled_from(["{}", "urn:uuid:{}", "{{{}}}", "hex", "upper"]))
def test_every_uuid_spelling_round_trips(value: uuid.UUID, form: str) -> None:
    spelled = (value.hex if form == "hex" else str(value).upper() if form == "upper"
               else form.format(value))

    assert canonical_uuid(spelled) == str(value)


@given(st.text(max_size=50))
def test_canonical_uuid_never_accepts_what_uuid_rejects(text: str) -> None:
    canonical = canonical_uuid(text)
    if canonical is not None:
        assert CANONICAL.match(canonical)
        assert canonical == str(uuid.UUID(text))


# -- through init(), as the original documentation shows it ------------------------


@pytest.fixture
def no_sensor(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("FLIGHTDECK_SERVER", "FLIGHTDECK_TOKEN", "FLIGHTDECK_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    _sensor.process_sensor = None
    yield
    sensor = _sensor.current()
    if sensor is not None:
        sensor.accepting = False
    _sensor.process_sensor = None


def test_documented_uuid5_example_round_trips_and_warns_once(
        no_sensor: None, caplog: pytest.LogCaptureFixture) -> None:
    namespace = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
    workflow_id = "billing-reconcile-2026-11-27"
    expected = str(uuid.uuid5(namespace, workflow_id))

    with caplog.at_level(logging.WARNING, logger="flightdeck_sensor"):
        fd.init(server="http://127.0.0.1:9", token="t",
                session_id=str(uuid.uuid5(namespace, workflow_id)))
        fd.init(server="http://127.0.0.1:9", token="t",
                session_id=str(uuid.uuid5(namespace, workflow_id)))

    assert fd.get_status()["session_id"] == expected
    custom_warnings = [r for r in caplog.records if "Custom session_id" in r.getMessage()]
    assert len(custom_warnings) == 1
    assert expected in custom_warnings[0].getMessage()


def test_init_with_the_variable_set_uses_the_variable(
        no_sensor: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTDECK_SESSION_ID", ENV_ID.upper())

    fd.init(server="http://127.0.0.1:9", token="t", session_id=KWARG_ID)

    assert fd.get_status()["session_id"] == ENV_ID
