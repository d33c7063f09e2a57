"""Custom directives, directives of the wrong shape, and what a fork child keeps."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fakes.ingest_server import Received, Reply
from fixtures import openai_sdk as oai
from fixtures.control import ControlledSensor
from flightdeck_sensor import _directives
from flightdeck_sensor._directives import DirectiveContext, Parameter, directive
from flightdeck_sensor._exceptions import DirectiveError

RAN: list[tuple[DirectiveContext, dict[str, Any]]] = []
RELEASE = threading.Event()


@directive("set_temperature", description="Set the sampling temperature",
           parameters=[Parameter("value", "float", "new temperature", required=True)])
def set_temperature(context: DirectiveContext, **parameters: Any) -> dict[str, Any]:
    RAN.append((context, parameters))
    return {"applied": parameters["value"]}


@directive("explode", description="A handler that fails")
def explode(context: DirectiveContext) -> None:
    raise RuntimeError("handler bug")


@directive("hang", description="A handler that never returns (until the test ends)")
def hang(context: DirectiveContext) -> None:
    RELEASE.wait(60)


def _custom(name: str, parameters: dict[str, Any] | None = None,
            fingerprint: str | None = None) -> dict[str, Any]:
    registration = _directives.find(name)
    return {"directive_name": name, "parameters": parameters or {},
            "fingerprint": fingerprint or (registration.fingerprint if registration else "x")}


def _result(controlled: ControlledSensor, directive_id: str) -> dict[str, Any]:
    [result] = [e for e in controlled.events("directive_result")
                if e["directive_id"] == directive_id]
    return result


def _started(controlled: ControlledSensor, fake: FakeLLM) -> None:
    controlled.init()
    oai.sync_client(fake).chat.completions.create(model=oai.MODEL, messages=oai.MESSAGES)


def test_a_custom_directive_runs_its_handler_with_the_context_and_reports_the_result(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    _started(controlled, fake_llm)
    RAN.clear()

    directive_id = controlled.deliver("custom", payload=_custom("set_temperature", {"value": 0.2}))

    [(context, parameters)] = RAN
    sensor = controlled.sensor
    assert sensor is not None
    assert (context.session_id, context.model) == (sensor.session.id, oai.MODEL)
    assert context.tokens_used == sensor.status()["tokens_used_session"] > 0
    assert parameters == {"value": 0.2}
    result = _result(controlled, directive_id)
    assert (result["directive_name"], result["directive_action"], result["directive_status"],
            result["result"]) == ("set_temperature", "custom", "success", {"applied": 0.2})


@pytest.mark.parametrize(("payload", "error"), [
    (_custom("no_such_handler"), "handler not found"),
    (_custom("set_temperature", {"value": 1}, fingerprint="stale"), "fingerprint mismatch"),
    (_custom("explode"), "RuntimeError"),
])
def test_a_custom_directive_that_cannot_run_reports_why(
        controlled: ControlledSensor, fake_llm: FakeLLM, payload: dict[str, Any],
        error: str) -> None:
    _started(controlled, fake_llm)
    directive_id = controlled.deliver("custom", payload=payload)
    result = _result(controlled, directive_id)
    assert (result["directive_status"], result["error"]) == ("error", error)


def test_a_handler_that_hangs_times_out_and_stops_neither_delivery_nor_later_directives(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    _started(controlled, fake_llm)
    try:
        hung = controlled.desk.issue("custom", payload=_custom("hang"))
        # while the handler hangs, calls are still delivered
        oai.sync_client(fake_llm).chat.completions.create(model=oai.MODEL, messages=oai.MESSAGES)
        assert controlled.sensor is not None and controlled.sensor.flush(5)
        assert len(controlled.events("post_call")) == 2
        # and a later directive is acted on once the hung one timed out
        controlled.deliver("shutdown", until=lambda s: s["state"] == "stopped")
        assert _result(controlled, hung)["error"] == "timeout"
    finally:
        RELEASE.set()


@pytest.mark.parametrize("bad", [
    "not an object", {"action": "shutdown"}, {"id": "d1", "action": "explode"},
    {"id": "d2", "action": "custom", "payload": ["not", "an", "object"]},
    {"id": "d3", "action": "shutdown", "reason": 42},
    {"id": "d4", "action": "degrade", "degrade_to": "\x1b[31mred"},
])
def test_a_directive_of_the_wrong_shape_gets_one_warning_and_the_sensor_goes_on(
        controlled: ControlledSensor, fake_llm: FakeLLM, bad: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    # given a server that answers with a malformed directive, then a good one
    _started(controlled, fake_llm)
    with caplog.at_level(logging.WARNING, logger="flightdeck_sensor"):
        controlled.desk.issue("placeholder")
        controlled.desk._pending[-1] = bad  # exactly what the server sends
        controlled.deliver("shutdown", until=lambda s: s["state"] == "stopped")

    # then: one warning for the bad one, none of it acted on, the good one acted on
    warnings = [r.getMessage() for r in caplog.records if "wrong shape" in r.getMessage()]
    assert len(warnings) == 1 and "\x1b" not in warnings[0]
    assert controlled.sensor is not None
    assert controlled.sensor.status()["degraded_to"] is None


def test_unknown_actions_throttle_and_checkpoint_are_warned_about_and_ignored(
        controlled: ControlledSensor, fake_llm: FakeLLM,
        caplog: pytest.LogCaptureFixture) -> None:
    _started(controlled, fake_llm)
    with caplog.at_level(logging.WARNING, logger="flightdeck_sensor"):
        controlled.desk.issue("throttle")
        controlled.deliver("warn", reason="slow down",
                           until=lambda s: any("slow down" in r.getMessage()
                                               for r in caplog.records))
    assert any("throttle" in r.getMessage() for r in caplog.records)
    [warn] = controlled.events("policy_warn")
    assert (warn["source"], warn["policy_decision"]["reason"]) == ("server", "slow down")
    oai.sync_client(fake_llm).chat.completions.create(model=oai.MODEL, messages=oai.MESSAGES)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_fork_child_of_a_stopped_agent_is_stopped_too(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    _started(controlled, fake_llm)
    controlled.deliver("shutdown", reason="stop all", until=lambda s: s["state"] == "stopped")

    pid = os.fork()
    if pid == 0:  # the child
        code = 3
        try:
            oai.sync_client(fake_llm).chat.completions.create(model=oai.MODEL,
                                                              messages=oai.MESSAGES)
        except DirectiveError as stopped:
            code = 0 if stopped.reason == "stop all" else 4
        except BaseException:
            code = 5
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_registered_directives_are_synced_and_the_unknown_ones_registered(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    # given a control plane that knows none of this agent's fingerprints
    seen: list[Received] = []

    def api(received: Received) -> Reply | None:
        if received.path == "/api/v1/directives/sync":
            seen.append(received)
            return Reply(200, {"unknown_fingerprints": [
                r.fingerprint for r in _directives.registered() if r.name == "explode"]})
        if received.path == "/api/v1/directives/register":
            seen.append(received)
            return Reply(200, {"status": "ok"})
        return controlled.desk(received)

    controlled.server._responder = api

    # when the session starts
    _started(controlled, fake_llm)
    end = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < end:
        time.sleep(0.05)

    # then: every registration was synced, the unknown one registered with its schema
    import json

    sync, register = (json.loads(r.raw_body) for r in seen)
    assert {d["name"] for d in sync["directives"]} >= {"set_temperature", "explode", "hang"}
    assert sync["flavor"] == controlled.sensor.session.flavor  # type: ignore[union-attr]
    [registered] = register["directives"]
    assert (registered["name"], registered["description"]) == ("explode",
                                                               "A handler that fails")
    assert seen[0].headers["Authorization"] == "Bearer tok-test"


def _call_in_worker(base_url: str) -> str:
    import openai

    openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0).chat.completions.create(
        model=oai.MODEL, messages=oai.MESSAGES)
    return "called"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_pool_worker_of_a_stopped_agent_raises_directive_error_in_the_parent(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    import multiprocessing

    _started(controlled, fake_llm)
    controlled.deliver("shutdown", reason="pool stop", until=lambda s: s["state"] == "stopped")

    with multiprocessing.get_context("fork").Pool(1) as pool, \
            pytest.raises(DirectiveError) as raised:
        pool.apply(_call_in_worker, (fake_llm.url + "/v1",))
    assert raised.value.reason == "pool stop"


class _Misbehaving:
    """A control-plane API on loopback that hangs (accepts, never answers) or
    answers garbage to every request."""

    def __init__(self, garbage: bool) -> None:
        import socket

        self._garbage = garbage
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/api"
        self.requests = 0
        self._held: list[Any] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.requests += 1
            connection.recv(65536)
            if self._garbage:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{not json")
                connection.close()
            else:
                self._held.append(connection)  # never answered

    def close(self) -> None:
        self._listener.close()
        for connection in self._held:
            connection.close()


@pytest.mark.parametrize("garbage", [False, True], ids=["hangs", "answers garbage"])
def test_a_control_plane_api_that_hangs_or_answers_garbage_changes_nothing_for_the_program(
        controlled: ControlledSensor, fake_llm: FakeLLM, garbage: bool) -> None:
    api = _Misbehaving(garbage)
    try:
        sensor = controlled.init(api_url=api.url)
        for _ in range(5):
            oai.sync_client(fake_llm).chat.completions.create(model=oai.MODEL,
                                                              messages=oai.MESSAGES)
        end = time.monotonic() + 10
        while api.requests < 2 and time.monotonic() < end:  # the policy and the sync
            time.sleep(0.05)
        assert api.requests >= 2
        assert len(controlled.events("post_call")) == 5
        assert sensor.status()["state"] == "active" and sensor.gate is None
        assert sensor.status()["internal_errors"] == 0
    finally:
        api.close()


def test_a_stop_whose_reason_is_long_or_multi_line_still_stops_with_the_reason_escaped(
        controlled: ControlledSensor, fake_llm: FakeLLM) -> None:
    _started(controlled, fake_llm)
    controlled.deliver("shutdown", reason="budget overrun\nsee ticket 42" + "!" * 5000,
                       until=lambda s: s["state"] == "stopped")
    with pytest.raises(DirectiveError) as raised:
        oai.sync_client(fake_llm).chat.completions.create(model=oai.MODEL,
                                                          messages=oai.MESSAGES)
    assert raised.value.reason.startswith("budget overrun\\x0asee ticket 42")
    assert len(raised.value.reason) <= 1000 and "\n" not in raised.value.reason
