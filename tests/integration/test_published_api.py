"""The published sensor's API (flightdeck-sensor 0.5.2): its names import and
behave as its documentation says, so that its users switch without changing
code. Its own examples run here as written, but for where the clients point
(the fake provider) and where the events go (the real collector).

In-process tests use the ``published`` fixture: a clean slate (no sensor, no
patch) before and a ``teardown()`` after. Tests that need an interpreter of
their own (teardown then init again, a fork after teardown, the Temporal
example's two runs) run a script in a fresh process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import flightdeck_sensor
import flightdeck_sensor as fd
from fakes.fake_llm import FakeLLM
from fakes.ingest_server import IngestServer, Received, Reply
from fakes.sensor_program import program_env
from fixtures.anthropic_sdk import MESSAGES, MODEL, async_client, sync_client
from fixtures.collector import CollectorProcess
from fixtures.litellm_calls import litellm
from flightdeck_sensor import _sensor

OPENAI_MESSAGES: list[Any] = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def published(sensor_collector: CollectorProcess) -> Iterator[CollectorProcess]:
    """The shared collector, with no sensor and no patch before the test and
    none left after it (without teardown(), which has tests of its own)."""
    clean_slate()
    yield sensor_collector
    clean_slate()


def clean_slate() -> None:
    sensor = _sensor.current()
    if sensor is not None:
        sensor.shutdown(5)
    _sensor.process_sensor = None
    fd.unpatch()


def init_here(collector: CollectorProcess, **options: Any) -> None:
    fd.init(collector.ingest_url, collector.token, spool=False, **options)


def stored(collector: CollectorProcess, *event_types: str) -> list[dict[str, Any]]:
    """This test's session's events, as the collector stored them."""
    assert fd.flush(15), f"events not delivered: {fd.get_status()}"
    status = fd.get_status()
    assert not status["dropped"], f"the collector rejected events: {status}"
    events = collector.events(session_id=status.session_id)
    return [e for e in events if not event_types or e["event_type"] in event_types]


def ask_anthropic(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES)


def openai_client(fake: FakeLLM) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test", max_retries=0)


def ask_openai(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=OPENAI_MESSAGES)


def providers_recorded(collector: CollectorProcess) -> list[str]:
    return [e["provider"] for e in stored(collector, "post_call")]


def sensor_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "flightdeck_sensor" and r.levelno == logging.WARNING]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- the names ------------------------------------------------------------------------

PUBLISHED_NAMES = (
    "init", "wrap", "patch", "unpatch", "get_status", "teardown", "directive", "Parameter",
    "Provider", "BudgetExceededError", "ConfigurationError", "DirectiveError", "MCPPolicyBlocked",
    "patch_anthropic_classes", "unpatch_anthropic_classes", "patch_openai_classes",
    "unpatch_openai_classes", "patch_litellm_functions", "unpatch_litellm_functions",
)


def test_every_published_name_imports_from_the_package_and_is_listed_in_all() -> None:
    from flightdeck_sensor import (  # noqa: F401 - the import is the test
        BudgetExceededError,
        ConfigurationError,
        DirectiveError,
        MCPPolicyBlocked,
        Parameter,
        Provider,
        directive,
        get_status,
        init,
        patch,
        patch_anthropic_classes,
        patch_litellm_functions,
        patch_openai_classes,
        teardown,
        unpatch,
        unpatch_anthropic_classes,
        unpatch_litellm_functions,
        unpatch_openai_classes,
        wrap,
    )

    missing = [n for n in (*PUBLISHED_NAMES, "shutdown_requested", "flush", "shutdown",
                           "DirectiveParameter", "DirectiveContext") if n not in fd.__all__]
    assert missing == []
    assert all(hasattr(fd, name) for name in fd.__all__)


def test_provider_members_are_the_strings_of_the_published_enum() -> None:
    from flightdeck_sensor import Provider

    assert [Provider.ANTHROPIC, Provider.OPENAI, Provider.LITELLM] == [
        "anthropic", "openai", "litellm"]
    assert isinstance(Provider.OPENAI, str)
    assert {p.value for p in Provider} == {"anthropic", "openai", "litellm", "mcp", "crewai",
                                           "langgraph"}


def test_the_exceptions_are_the_ones_the_sensor_raises_and_carry_the_published_fields() -> None:
    stop = fd.DirectiveError("shutdown", "operator pressed stop")
    budget = fd.BudgetExceededError("sid", 1200, 1000)

    assert (stop.action, stop.reason) == ("shutdown", "operator pressed stop")
    assert (budget.session_id, budget.tokens_used, budget.token_limit) == ("sid", 1200, 1000)
    assert issubclass(fd.ConfigurationError, Exception)
    blocked = fd.MCPPolicyBlocked(server_url="stdio://x", server_name="x", fingerprint="f",
                                  policy_id="p", decision_path="mode_default")
    assert "MCP policy blocked tool call to x" in str(blocked)
    assert fd.Parameter is fd.DirectiveParameter


# -- init() ---------------------------------------------------------------------------


def test_readme_explicit_api_example_runs_as_written(published: CollectorProcess,
                                                      fake_llm: FakeLLM) -> None:
    fd.init(server=published.ingest_url, token=published.token, spool=False)
    fd.patch()
    ask_anthropic(sync_client(fake_llm))
    status = fd.get_status()
    assert fd.flush(timeout=5) is True
    fd.shutdown(timeout=2)
    fd.unpatch()

    for key in ("queued", "sent", "dropped", "spooled", "retries", "last_error", "mode",
                "session_id", "sender_errors", "spool_quarantined", "spool_foreign"):
        assert key in status
    types = [e["event_type"] for e in published.events(session_id=status.session_id)]
    assert types == ["session_start", "pre_call", "post_call", "session_end"]


def test_init_takes_server_and_token_positionally_as_the_published_one(
        published: CollectorProcess, fake_llm: FakeLLM) -> None:
    fd.init(published.ingest_url, published.token, spool=False)
    fd.patch()
    ask_anthropic(sync_client(fake_llm))

    assert providers_recorded(published) == ["anthropic"]


def test_init_without_a_server_warns_and_runs_on_where_the_published_one_raised(
        published: CollectorProcess, fake_llm: FakeLLM,
        caplog: pytest.LogCaptureFixture) -> None:
    fd.init()  # the published sensor: ConfigurationError("server URL is required")
    fd.patch()
    answer = ask_anthropic(sync_client(fake_llm))

    assert answer.content
    assert "init() got no server and FLIGHTDECK_SERVER is unset; the sensor stays off" in \
        " ".join(sensor_warnings(caplog))
    status = fd.get_status()
    assert status == {"enabled": False}
    assert (status.session_id, status.state, status.tokens_used) == (None, None, None)


def test_init_with_an_agent_type_the_published_one_refused_warns_and_uses_production(
        published: CollectorProcess, caplog: pytest.LogCaptureFixture) -> None:
    init_here(published, agent_type="autonomous")

    assert fd.get_status().agent_type == "production"
    assert any("'autonomous'" in m for m in sensor_warnings(caplog))


def test_a_second_init_warns_unless_quiet(published: CollectorProcess,
                                          caplog: pytest.LogCaptureFixture) -> None:
    init_here(published)
    first = fd.get_status().session_id
    init_here(published, quiet=True)
    quiet_warnings = sensor_warnings(caplog)
    init_here(published)

    assert quiet_warnings == []
    assert [m for m in sensor_warnings(caplog) if "init() called again" in m]
    assert fd.get_status().session_id == first


def test_init_passes_api_url_limit_and_warn_at_to_the_sensor(published: CollectorProcess) -> None:
    init_here(published, api_url="http://127.0.0.1:9/control", limit=5000, warn_at=0.5)

    sensor = _sensor.current()
    assert sensor is not None
    assert (sensor.config.api_url, sensor.config.token_limit, sensor.config.warn_at) == (
        "http://127.0.0.1:9/control", 5000, 0.5)


def test_init_takes_provider_members_for_the_providers_it_patches(
        published: CollectorProcess, fake_llm: FakeLLM) -> None:
    init_here(published, providers=[fd.Provider.OPENAI])
    fd.patch()
    ask_anthropic(sync_client(fake_llm))
    ask_openai(openai_client(fake_llm))

    assert providers_recorded(published) == ["openai"]


# -- get_status() -----------------------------------------------------------------------


def test_get_status_reads_by_attribute_and_by_key(published: CollectorProcess,
                                                  fake_llm: FakeLLM) -> None:
    init_here(published, limit=100_000, agent_name="billing-agent", agent_type="coding")
    fd.patch()
    ask_anthropic(sync_client(fake_llm))
    stored(published)  # the call's usage is counted once its post_call is recorded
    status = fd.get_status()

    assert status.session_id == status["session_id"] == stored(published)[0]["session_id"]
    assert status.flavor == status["flavor"] == "billing-agent"
    assert status.agent_type == "coding"
    assert status.state == status["state"] == "active"
    assert status.tokens_used == status["tokens_used_session"] > 0
    assert status.token_limit == 100_000
    assert status.pct_used == round(status.tokens_used * 100 / 100_000, 1)
    assert status["enabled"] is True and "queued" in status


def test_get_status_before_init_is_off_with_every_published_attribute_none(
        published: CollectorProcess) -> None:
    status = fd.get_status()  # the published sensor: ConfigurationError

    assert status == {"enabled": False}
    assert [getattr(status, name) for name in ("session_id", "flavor", "agent_type", "state",
                                               "tokens_used", "token_limit", "pct_used")] == \
        [None] * 7


def test_get_status_after_shutdown_says_closed(published: CollectorProcess) -> None:
    init_here(published)
    fd.shutdown(5)

    assert fd.get_status().state == "closed"


# -- patch() ----------------------------------------------------------------------------


def test_patch_with_provider_members_and_strings_mixed_patches_just_those(
        published: CollectorProcess, fake_llm: FakeLLM) -> None:
    from flightdeck_sensor import Provider

    init_here(published)
    fd.patch(providers=[Provider.ANTHROPIC, "openai"])  # the published docstring's example
    ask_anthropic(sync_client(fake_llm))
    ask_openai(openai_client(fake_llm))

    assert providers_recorded(published) == ["anthropic", "openai"]
    assert type(litellm.completion).__name__ != "SensorWrapper"


def test_patch_with_one_provider_leaves_the_others_alone(published: CollectorProcess,
                                                         fake_llm: FakeLLM) -> None:
    init_here(published)
    fd.patch(providers=[fd.Provider.OPENAI])
    ask_anthropic(sync_client(fake_llm))
    ask_openai(openai_client(fake_llm))

    assert providers_recorded(published) == ["openai"]


def test_patch_with_a_bool_first_means_quiet_as_in_the_published_signature(
        published: CollectorProcess, fake_llm: FakeLLM,
        caplog: pytest.LogCaptureFixture) -> None:
    init_here(published)
    fd.patch(True, ["openai", "no-such-sdk"])  # published order: patch(quiet, providers)
    fd.patch(True, providers=["anthropic", "no-such-sdk"])
    ask_anthropic(sync_client(fake_llm))
    ask_openai(openai_client(fake_llm))

    assert sensor_warnings(caplog) == []
    assert providers_recorded(published) == ["anthropic", "openai"]


def test_patch_warns_once_of_unknown_names_and_ignores_them(
        published: CollectorProcess, fake_llm: FakeLLM,
        caplog: pytest.LogCaptureFixture) -> None:
    init_here(published)
    fd.patch(providers=["anthropic", "no-such-sdk"])
    ask_anthropic(sync_client(fake_llm))

    assert [m for m in sensor_warnings(caplog) if "no-such-sdk" in m] == [
        "flightdeck_sensor.patch(): unknown provider(s) no-such-sdk ignored "
        "(known: anthropic, openai, litellm)"]
    assert providers_recorded(published) == ["anthropic"]


def test_patch_says_once_that_mcp_crewai_and_langgraph_are_not_instrumented(
        published: CollectorProcess, caplog: pytest.LogCaptureFixture) -> None:
    from flightdeck_sensor import _api

    _api._warned_not_instrumented.clear()
    init_here(published)
    fd.patch(providers=[fd.Provider.ANTHROPIC, fd.Provider.MCP, fd.Provider.CREWAI])
    fd.patch(providers=[fd.Provider.MCP, fd.Provider.LANGGRAPH])

    said = [m for m in sensor_warnings(caplog) if "does not instrument" in m]
    assert len(said) == 2
    assert "does not instrument crewai, mcp;" in said[0]
    assert "does not instrument langgraph;" in said[1]


# -- the published interceptors ------------------------------------------------------


def test_each_published_interceptor_patches_and_unpatches_its_provider_alone(
        published: CollectorProcess, fake_llm: FakeLLM) -> None:
    init_here(published)
    fd.patch_anthropic_classes()
    fd.patch_openai_classes(quiet=True)
    fd.patch_litellm_functions()
    patched_litellm = type(litellm.completion).__name__
    fd.unpatch_openai_classes()
    ask_anthropic(sync_client(fake_llm))
    ask_openai(openai_client(fake_llm))
    fd.unpatch_anthropic_classes()
    ask_anthropic(sync_client(fake_llm))
    fd.unpatch_litellm_functions()

    assert patched_litellm == "SensorWrapper"
    assert type(litellm.completion).__name__ != "SensorWrapper"
    assert providers_recorded(published) == ["anthropic"]


def test_published_interceptors_patch_an_sdk_imported_after_them(
        collector: CollectorProcess, fake_llm: FakeLLM, tmp_path: Path) -> None:
    result = run_script(collector, tmp_path, f"""
        import sys
        import flightdeck_sensor
        flightdeck_sensor.init(SERVER, TOKEN)
        flightdeck_sensor.patch_openai_classes()
        flightdeck_sensor.patch_anthropic_classes()
        flightdeck_sensor.unpatch_anthropic_classes()
        assert "openai" not in sys.modules and "anthropic" not in sys.modules
        import anthropic, openai
        openai.OpenAI(base_url={fake_llm.url + "/v1"!r}, api_key="k").chat.completions.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}])
        anthropic.Anthropic(base_url={fake_llm.url!r}, api_key="k").messages.create(
            model="claude-fake-latest", max_tokens=8,
            messages=[{{"role": "user", "content": "hi"}}])
        print(flightdeck_sensor.get_status().session_id)
        """)
    session_id = result.stdout.strip()

    calls = [e for e in collector.events(session_id) if e["event_type"] == "post_call"]
    assert [e["provider"] for e in calls] == ["openai"]


# -- wrap() ------------------------------------------------------------------------------


def test_wrap_returns_each_sdk_client_itself_and_instruments_it(
        published: CollectorProcess, fake_llm: FakeLLM) -> None:
    init_here(published)
    clients = [sync_client(fake_llm), async_client(fake_llm), openai_client(fake_llm),
               openai.AsyncOpenAI(base_url=fake_llm.url + "/v1", api_key="k", max_retries=0)]

    wrapped = [fd.wrap(client) for client in clients]
    ask_anthropic(wrapped[0])
    asyncio.run(wrapped[1].messages.create(model=MODEL, max_tokens=16, messages=MESSAGES))
    ask_openai(wrapped[2])
    asyncio.run(wrapped[3].chat.completions.create(model="gpt-4o-mini",
                                                    messages=OPENAI_MESSAGES))

    assert all(w is c for w, c in zip(wrapped, clients, strict=True))
    assert providers_recorded(published) == ["anthropic", "anthropic", "openai", "openai"]


def test_wrap_returns_anything_else_unchanged_with_a_warning_unless_quiet(
        published: CollectorProcess, caplog: pytest.LogCaptureFixture) -> None:
    class Hostile:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            raise RuntimeError("isinstance() of me raises")

    init_here(published)
    thing, hostile = object(), Hostile()

    assert fd.wrap(thing, quiet=True) is thing
    assert sensor_warnings(caplog) == []
    assert fd.wrap(thing) is thing
    assert fd.wrap(hostile) is hostile
    assert len(sensor_warnings(caplog)) == 2


# -- the kill switch, as the user's code sees it ------------------------------------------


def stop_after_first_post(reason: str) -> Callable[[Received], Reply | None]:
    """A server that answers its first events POST with a shutdown directive."""
    given = threading.Event()

    def respond(received: Received) -> Reply | None:
        if received.path.startswith("/ingest/") and not given.is_set():
            given.set()
            return Reply(200, {"status": "ok", "accepted": len(received.events),
                               "rejected": [], "attached": False,
                               "directive": {"id": str(uuid.uuid4()), "action": "shutdown",
                                             "reason": reason, "grace_period_ms": 5000}})
        return None

    return respond


def test_shutdown_requested_turns_true_after_a_shutdown_directive_so_a_loop_stops(
        published: CollectorProcess, fake_llm: FakeLLM,
        caplog: pytest.LogCaptureFixture) -> None:
    with IngestServer(responder=stop_after_first_post("operator pressed stop")) as server:
        fd.init(server.url, "tok", spool=False, quiet=True)
        fd.patch(quiet=True)
        client = sync_client(fake_llm)
        before = fd.shutdown_requested()
        ask_anthropic(client)
        fd.flush(5)
        assert wait_until(fd.shutdown_requested), fd.get_status()

        loops = 0
        while not fd.shutdown_requested():  # the loop the README shows
            loops += 1
        requests_before = len(fake_llm.requests)
        with pytest.raises(flightdeck_sensor.DirectiveError) as raised:
            ask_anthropic(client)
        status = fd.get_status()

    assert (before, loops) == (False, 0)
    assert raised.value.reason == "operator pressed stop"
    assert len(fake_llm.requests) == requests_before
    assert (status.state, status["shutdown_requested"]) == ("stopped", True)
    assert [m for m in sensor_warnings(caplog) if "stopped by the control plane" in m]


def test_shutdown_requested_is_false_before_init_and_with_the_sensor_off(
        published: CollectorProcess) -> None:
    assert fd.shutdown_requested() is False
    fd.init()
    assert fd.shutdown_requested() is False


# -- directive(): the published example -------------------------------------------------


def test_the_published_pause_directive_is_registered_and_runs_when_issued(
        published: CollectorProcess, fake_llm: FakeLLM) -> None:
    ran: list[tuple[Any, int]] = []

    @flightdeck_sensor.directive("pause", description="Pause the agent")
    def handle_pause(ctx: Any, duration: int = 30) -> None:
        ran.append((ctx, duration))

    from flightdeck_sensor import _directives

    fingerprint = _directives.find("pause").fingerprint  # type: ignore[union-attr]
    issued = threading.Event()

    def respond(received: Received) -> Reply | None:
        if received.path.endswith("/directives/sync"):
            return Reply(200, {"unknown_fingerprints": [fingerprint]})
        if received.path.startswith("/ingest/") and not issued.is_set():
            issued.set()
            return Reply(200, {"status": "ok", "accepted": len(received.events),
                               "rejected": [], "attached": False, "directive": {
                                   "id": str(uuid.uuid4()), "action": "custom", "reason": "",
                                   "grace_period_ms": 5000, "payload": {
                                       "directive_name": "pause", "fingerprint": fingerprint,
                                       "parameters": {"duration": 0}}}})
        return None

    with IngestServer(responder=respond) as server, forgotten_at_the_end("pause"):
        fd.init(server.url, "tok", spool=False)
        fd.patch()
        ask_anthropic(sync_client(fake_llm))
        assert wait_until(lambda: bool(ran)), server.paths()
        assert wait_until(lambda: bool(server.events("directive_result")))
        registered = [r for r in server.requests if r.path.endswith("/directives/register")]
        results = server.events("directive_result")

    assert handle_pause.__name__ == "handle_pause"  # the decorator returns the function
    context, duration = ran[0]
    assert (duration, context.session_id) == (0, fd.get_status().session_id)
    assert [d["name"] for d in json.loads(registered[0].raw_body)["directives"]] == ["pause"]
    assert results[0]["directive_name"] == "pause"
    assert results[0]["directive_status"] == "success"


@contextlib.contextmanager
def forgotten_at_the_end(directive_name: str) -> Iterator[None]:
    """The directive registry is the process's: later tests must not sync ours."""
    from flightdeck_sensor import _directives

    try:
        yield
    finally:
        with _directives._lock:
            _directives._registry.pop(directive_name, None)


# -- the seed's examples: litellm and Temporal ------------------------------------------


def test_the_published_litellm_example_reports_an_anthropic_model_through_litellm(
        published: CollectorProcess, fake_llm: FakeLLM) -> None:
    flightdeck_sensor.init(server=published.ingest_url, token=published.token, spool=False)
    flightdeck_sensor.patch()
    response = litellm.completion(
        model="claude-haiku-4-5-20251001",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        api_base=fake_llm.url, api_key="sk-test",  # ours: the fake provider
    )

    calls = stored(published, "post_call")
    assert response.choices[0].message.content
    assert [(c["provider"], c["model"]) for c in calls] == [
        ("anthropic", "claude-haiku-4-5-20251001")]


TEMPORAL_RUN = """
    import sys, uuid
    import anthropic
    import flightdeck_sensor as fd

    FLIGHTDECK_NS = uuid.UUID("00000000-0000-0000-0000-000000000001")
    workflow_id = "order-workflow-42"  # workflow.info().workflow_id in the example
    fd.init(
        server=SERVER,
        token=TOKEN,
        session_id=str(uuid.uuid5(FLIGHTDECK_NS, workflow_id)),
    )
    fd.patch()
    anthropic.Anthropic(base_url=FAKE, api_key="k").messages.create(
        model="claude-fake-latest", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    print(fd.get_status().session_id)
"""


def test_the_temporal_example_run_twice_attaches_the_second_run_to_the_first_session(
        collector: CollectorProcess, fake_llm: FakeLLM, tmp_path: Path) -> None:
    first = run_script(collector, tmp_path, TEMPORAL_RUN, FAKE=fake_llm.url)
    second = run_script(collector, tmp_path, TEMPORAL_RUN, FAKE=fake_llm.url)

    expected = str(uuid.uuid5(uuid.UUID("00000000-0000-0000-0000-000000000001"),
                              "order-workflow-42"))
    assert first.stdout.split() == second.stdout.split() == [expected]
    assert "Attached to existing session" not in first.stderr
    assert f"Attached to existing session {expected}." in second.stderr
    types = [e["event_type"] for e in collector.events(expected)]
    assert types.count("post_call") == 2 and types.count("session_start") == 2


# -- teardown(): a new sensor in the same process -------------------------------------


def run_script(collector: CollectorProcess, tmp_path: Path, body: str,
               **names: object) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter, SERVER and TOKEN (and ``names``) defined."""
    prelude = "import logging, sys\n" \
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n" \
        f"SERVER, TOKEN = {collector.ingest_url!r}, {collector.token!r}\n" + \
        "".join(f"{name} = {value!r}\n" for name, value in names.items())
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(body)],
                            env=program_env(collector.ingest_url, tmp_path / "spool"),
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr
    return result


TEARDOWN_THEN_INIT = """
    import threading, time
    import anthropic
    import flightdeck_sensor as fd
    from flightdeck_sensor import _sensor

    def sensor_threads():
        return sorted(t.name for t in threading.enumerate()
                      if t.name.startswith("flightdeck-sensor-") and "signal" not in t.name)

    def ask():
        anthropic.Anthropic(base_url=FAKE, api_key="k").messages.create(
            model="claude-fake-latest", max_tokens=8,
            messages=[{"role": "user", "content": "hi"}])

    fd.init(SERVER, TOKEN)
    fd.patch()
    ask()
    fd.flush(10)
    first, old = fd.get_status().session_id, _sensor.current()
    fd.teardown()
    for _ in range(500):               # the control thread ends on its own after close
        if not sensor_threads():
            break
        time.sleep(0.01)
    threads_after_teardown = sensor_threads()
    ask()                              # unpatched, no sensor: not reported
    fd.init(SERVER, TOKEN)
    fd.patch()
    ask()
    fd.flush(10)
    second = fd.get_status().session_id
    print(first, second, old is not _sensor.current(), threads_after_teardown,
          sensor_threads())
"""


def test_teardown_then_init_starts_a_new_sensor_and_session_and_leaves_no_thread_behind(
        collector: CollectorProcess, fake_llm: FakeLLM, tmp_path: Path) -> None:
    result = run_script(collector, tmp_path, TEARDOWN_THEN_INIT, FAKE=fake_llm.url)
    first, second, new_sensor, after_teardown, at_the_end = result.stdout.split(" ", 4)

    assert first != second
    assert new_sensor == "True"
    assert after_teardown == "[]"
    assert at_the_end.strip() == "['flightdeck-sensor-control', 'flightdeck-sensor-sender']"
    first_types = [e["event_type"] for e in collector.events(first)]
    second_types = [e["event_type"] for e in collector.events(second)]
    assert first_types == ["session_start", "pre_call", "post_call", "session_end"]
    assert second_types == ["session_start", "pre_call", "post_call", "session_end"]
    assert len(fake_llm.requests) == 3


FORK_AFTER_TEARDOWN = """
    import json, os
    import flightdeck_sensor as fd
    from flightdeck_sensor import _sensor

    fd.init(SERVER, TOKEN)
    old = _sensor.current()
    old.record("post_call", {"model": "m", "tokens_input": 1, "tokens_output": 1,
                             "tokens_total": 2, "latency_ms": 1, "provider": "openai"})
    fd.teardown()
    if NEW_INIT:
        fd.init(SERVER, TOKEN)
    new = _sensor.current()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        current = _sensor.current()
        facts = [old.transport._closed, old.accepting, current is new,
                 current.session.parent_session_id if current else None]
        os.write(write, json.dumps(facts).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(old.session.id, new.session.id if new else None, os.read(read, 1000).decode())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork")
@pytest.mark.parametrize("new_init", [False, True], ids=["no-new-init", "new-init"])
def test_a_fork_after_teardown_does_not_bring_the_old_sensor_back(
        collector: CollectorProcess, tmp_path: Path, new_init: bool) -> None:
    result = run_script(collector, tmp_path, FORK_AFTER_TEARDOWN, NEW_INIT=new_init)
    old_id, new_id, facts = result.stdout.split(" ", 2)

    closed, accepting, current_is_new, parent = json.loads(facts)
    assert (closed, accepting, current_is_new) == (True, False, True)
    assert parent == (new_id if new_init else None)
    assert [e["event_type"] for e in collector.events(old_id)] == [
        "session_start", "post_call", "session_end"]
