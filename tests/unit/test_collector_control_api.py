"""The control plane's request readers on arbitrary JSON: each answers checked values or
a 400, never another exception, and what they pass on is storable."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightdeck_sensor.collector import _control_api
from flightdeck_sensor.collector._http_body import HttpError
from flightdeck_sensor.collector._store import EventStore

# Text with lone surrogates too: JSON's \ud800 escapes arrive as such.
_TEXT = st.text(st.characters(codec=None), max_size=12) | st.sampled_from(
    ["", "bot", "fp-1", "integer", "\ud800", "x" * 300])
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                  allow_infinity=False) | _TEXT
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=12)
# Mostly well-formed, with any field now and then of the wrong kind: the readers'
# every branch, and bodies that pass them with hostile strings.
_PARAMETER = st.fixed_dictionaries(
    {"name": _TEXT, "type": _TEXT},
    optional={"description": _TEXT | _JSON, "options": st.lists(_SCALARS, max_size=3) | _JSON,
              "required": st.booleans() | _JSON, "default": _SCALARS | _JSON})
_DIRECTIVE = st.fixed_dictionaries(
    {"name": _TEXT, "fingerprint": _TEXT},
    optional={"description": _TEXT | _JSON,
              "parameters": st.lists(_PARAMETER, max_size=3) | _JSON})
_BODY = st.fixed_dictionaries(
    {"flavor": _TEXT, "directives": st.lists(_DIRECTIVE | _JSON, min_size=1, max_size=3)},
    optional={"session_id": _TEXT | st.just(str(uuid.uuid4()))}) | _JSON

READERS: list[Callable[[object], Any]] = [
    _control_api.heartbeat_session, _control_api.sync_request, _control_api.register_request]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    opened = EventStore(Path(tmp_path_factory.mktemp("control")) / "c.db")
    yield opened
    opened.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_BODY)
def test_a_body_is_read_or_refused_with_a_400_and_what_is_read_is_stored(
        store: EventStore, body: Any) -> None:
    body = json.loads(json.dumps(body))  # as the server gets it
    for reader in READERS:
        try:
            read = reader(body)
        except HttpError as refused:
            assert refused.status == 400 and refused.message
            continue
        if reader is _control_api.register_request:
            flavor, definitions = read
            store.register_directives(flavor, definitions)
            # The last definition of a name is the one kept.
            kept = {d["name"]: d["fingerprint"] for d in definitions}
            assert store.unknown_fingerprints(flavor, list(kept.values())) == []
        elif reader is _control_api.sync_request:
            store.unknown_fingerprints(*read)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.binary(max_size=60).map(lambda raw: raw.decode("latin-1")))
def test_a_policy_query_is_read_or_refused_with_a_400(query: str) -> None:
    try:
        flavor, session_id = _control_api.policy_query(query)
    except HttpError as refused:
        assert refused.status == 400
        return
    assert flavor is None or isinstance(flavor, str)
    assert session_id is None or session_id == session_id.lower()
