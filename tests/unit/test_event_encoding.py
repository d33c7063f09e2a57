"""Events leave the caller pending and are finished by the sender: the batch
body (identity and missing defaults spliced in as text) must say exactly what
the whole event says."""

from __future__ import annotations

import gc
import json
import re
import sys
import types
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck_sensor._config import resolve_config
from flightdeck_sensor._session import Session
from flightdeck_sensor.transport._queue import EventQueue
from flightdeck_sensor.transport._sender import ENCODE_CHUNK, Sender
from flightdeck_sensor.transport._wire import _KEY_ORDERS_KEPT, complete_event, utc_timestamp

SERVER = "http://127.0.0.1:9"


def session(**env: str) -> Session:
    config, _ = resolve_config({"FLIGHTDECK_SERVER": SERVER, "FLIGHTDECK_TOKEN": "t",
                                "USER": "omria", "FLIGHTDECK_HOSTNAME": "Omri-PC", **env})
    return Session(config)


def sender() -> Sender:
    config, _ = resolve_config({"FLIGHTDECK_SERVER": SERVER, "FLIGHTDECK_TOKEN": "t"})
    return Sender(config, EventQueue(100, 1 << 20), None, None)


def body_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept, body = sender()._batch_body(events)
    assert kept == events
    decoded: list[dict[str, Any]] = json.loads(body)["events"]
    return decoded


def test_the_batch_body_holds_each_whole_event_once() -> None:
    one = session()
    events = [one.build("pre_call", {"model": "gpt-4o", "tokens_input": 3}),
              one.build("post_call", {"model": "gpt-4o", "tokens_total": 9,
                                      "provider_metadata": {"request_id": "req_1"}}),
              one.build("tool_call", {"tool_name": "lookup"})]

    decoded = body_events(events)

    assert decoded == [complete_event(e) for e in events]
    for event in decoded:
        assert event["session_id"] == one.id and event["user"] == "omria"
        assert event["tokens_cache_read"] is None and event["has_content"] is False
        assert "_flightdeck_common" not in event
    assert decoded[1]["tokens_used_session"] == 9
    assert len({e["id"] for e in decoded}) == 3


def test_a_pending_event_of_plain_values_is_not_tracked_by_the_garbage_collector() -> None:
    # Events wait in the queue for seconds, in an outage for minutes: were they
    # tracked, they would be promoted into the oldest generation and set off
    # full collections of the user's whole heap.
    one = session()
    event = one.build("pre_call", {"model": "gpt-4o", "provider": "openai",
                                   "tokens_input": 3, "estimated_via": "heuristic"})

    assert not gc.is_tracked(event)
    assert body_events([event])[0]["session_id"] == one.id


def test_a_pending_event_keeps_its_identity_after_its_session_is_gone() -> None:
    first = session(FLIGHTDECK_AGENT_NAME="first")
    first_id = first.id
    event = first.build("post_call", {"model": "m"})
    del first
    gc.collect()
    session(FLIGHTDECK_AGENT_NAME="second")

    decoded = body_events([event])[0]

    assert decoded["session_id"] == first_id and decoded["agent_name"] == "first"
    assert complete_event(event)["agent_name"] == "first"


def test_ids_and_times_stay_the_same_when_a_batch_is_encoded_again() -> None:
    events = [session().build("pre_call", {"model": "m"}) for _ in range(3)]

    first, second = body_events(events), body_events(events)

    assert first == second
    assert all(e["timestamp"].endswith("+00:00") for e in first)


def test_two_sessions_in_one_batch_each_keep_their_identity() -> None:
    parent = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
    root = session()
    child = session(FLIGHTDECK_PARENT_SESSION_ID=parent, FLIGHTDECK_AGENT_ROLE="researcher")
    events = [root.build("pre_call", {}), child.build("pre_call", {}), root.build("pre_call", {})]

    decoded = body_events(events)

    assert [e["session_id"] for e in decoded] == [root.id, child.id, root.id]
    assert decoded[1]["agent_role"] == "researcher" and decoded[0]["agent_role"] is None


def test_content_that_looks_like_the_placeholder_is_left_alone() -> None:
    one = session()
    forged = '"_flightdeck_common":"00112233445566778899aabb"'
    event = one.build("post_call", {"has_content": True,
                                    "content": {"response": forged,
                                                "_flightdeck_common": "00112233445566778899aabb"}})

    decoded = body_events([event])

    assert decoded[0]["content"] == {"response": forged,
                                     "_flightdeck_common": "00112233445566778899aabb"}
    assert decoded[0]["session_id"] == one.id


def test_an_event_setting_an_identity_field_itself_is_not_given_it_twice() -> None:
    one = session()
    event = one.build("pre_call", {"flavor": "special"})

    _, body = sender()._batch_body([event])

    assert body.count(b'"flavor"') == 1
    assert json.loads(body)["events"][0]["flavor"] == "special"
    assert json.loads(body)["events"][0]["session_id"] == one.id


def test_an_unserializable_value_is_sent_as_its_text() -> None:
    event = session().build("post_call", {"provider_metadata": {"when": object}})

    decoded = body_events([event])

    assert decoded[0]["provider_metadata"]["when"] == str(object)


@given(st.floats(min_value=1.6e9, max_value=2.1e9, allow_nan=False, allow_infinity=False))
def test_event_times_are_what_datetime_would_write(seconds: float) -> None:
    text = utc_timestamp(seconds)

    expected = datetime.fromtimestamp(seconds, timezone.utc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", text)
    assert abs(datetime.fromisoformat(text) - expected) <= timedelta(microseconds=1)


def test_an_event_that_cannot_be_encoded_is_dropped_counted_and_the_rest_sent() -> None:
    one = session()
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    good = one.build("pre_call", {"model": "m"})
    bad = one.build("post_call", {"provider_metadata": cyclic})
    shipping = sender()

    kept, body = shipping._batch_body([good, bad])

    assert kept == [good]
    assert [e["id"] for e in json.loads(body)["events"]] == [good["id"]]
    assert shipping.stats.dropped == {"unserializable": 1}


def test_a_batch_encoded_in_chunks_reads_as_one_list_in_order() -> None:
    one = session()
    events = [one.build("pre_call", {"tokens_input": n}) for n in range(ENCODE_CHUNK * 2 + 7)]
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    events.insert(ENCODE_CHUNK + 3, one.build("post_call", {"provider_metadata": cyclic}))

    kept, body = sender()._batch_body(events)

    decoded = json.loads(body)["events"]
    assert [e["tokens_input"] for e in decoded] == list(range(ENCODE_CHUNK * 2 + 7))
    assert [e["id"] for e in decoded] == [e["id"] for e in kept]


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key written twice: {keys}"
    return dict(pairs)


def test_each_event_gets_the_defaults_it_lacks_once_whichever_it_sets() -> None:
    # The defaults an event lacks are spliced in as text (per shape): an event
    # that sets one must not get it twice, one that lacks it must get it.
    one = session()
    events = [one.build("pre_call", {"model": "m", "tokens_input": 3}),
              one.build("post_call", {"model": "m", "tokens_input": 3, "tokens_output": 4,
                                      "tokens_total": 7, "latency_ms": 12}),
              one.build("llm_error", {"error_type": "RateLimitError"}),
              one.build("post_call", {"has_content": True, "content": {"response": "hi"}}),
              one.build("tool_call", {"framework": "mine", "tool_name": "lookup"}),
              one.build("pre_call", {"model": "m", "tokens_input": 5})]

    _, body = sender()._batch_body(events)

    decoded = json.loads(body, object_pairs_hook=_no_repeated_keys)["events"]
    assert decoded == [complete_event(e) for e in events]
    for event in decoded:
        assert {"framework", "model", "tokens_total", "tokens_cache_read", "latency_ms",
                "has_content", "content"} <= event.keys()
    assert decoded[0]["model"] == "m" and decoded[0]["tokens_output"] is None
    assert decoded[2]["model"] is None and decoded[2]["has_content"] is False
    assert decoded[3]["has_content"] is True and decoded[3]["content"] == {"response": "hi"}
    assert decoded[4]["framework"] == "mine"
    assert decoded[5]["tokens_input"] == 5


def test_events_of_more_key_orders_than_are_remembered_are_all_encoded_whole() -> None:
    one = session()
    events = [one.build("custom", {f"key_{n}": n}) for n in range(200)]

    _, body = sender()._batch_body(events)

    decoded = json.loads(body, object_pairs_hook=_no_repeated_keys)["events"]
    assert decoded == [complete_event(e) for e in events]
    assert [e[f"key_{n}"] for n, e in enumerate(decoded)] == list(range(200))
    assert all(e["session_id"] == one.id and e["content"] is None for e in decoded)
    assert len(one._identity.by_keys) == _KEY_ORDERS_KEPT  # what is remembered is bounded


def test_the_framework_is_the_one_loaded_when_the_batch_is_encoded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    one = session()
    before = body_events([one.build("pre_call", {"model": "m"})])[0]["framework"]
    monkeypatch.setitem(sys.modules, "crewai", types.ModuleType("crewai"))

    loaded = body_events([one.build("pre_call", {"model": "m"})])[0]["framework"]
    monkeypatch.delitem(sys.modules, "crewai")
    after = body_events([one.build("pre_call", {"model": "m"})])[0]["framework"]

    assert loaded == "crewai"
    assert before == after != "crewai"
