"""The local collector as a control plane, as Flightdeck's server behaves: directives
issued from the command line and handed out once each, oldest first, in event and
heartbeat answers; the /api endpoints (policy, directive registration); directive
results; the stopped and blocked states. Raw HTTP stands in for the sensor."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import valid_event

BATCH = "/ingest/v1/events/batch"
SINGLE = "/ingest/v1/events"
HEARTBEAT = "/ingest/v1/heartbeat"
POLICY = "/api/v1/policy"
SYNC = "/api/v1/directives/sync"
REGISTER = "/api/v1/directives/register"
_DIRECTIVE_ID = re.compile(r"directive ([0-9a-f-]{36})")


def start_sessions(collector: CollectorProcess, count: int, flavor: str = "bot") -> list[str]:
    sessions = [str(uuid.uuid4()) for _ in range(count)]
    events = [valid_event("session_start", session_id=session, flavor=flavor)
              for session in sessions]
    assert collector.post(BATCH, {"events": events})[1]["accepted"] == count
    return sessions


def end_session(collector: CollectorProcess, session: str, close_reason: str = "normal_exit",
                flavor: str = "bot") -> None:
    event = valid_event("session_end", session_id=session, flavor=flavor,
                        close_reason=close_reason)
    assert collector.post(BATCH, {"events": [event]})[0] == 200


def issue(collector: CollectorProcess, *args: str) -> list[str]:
    """Run a command that issues directives; the directive ids it printed."""
    result = collector.cli(*args)
    assert result.returncode == 0, result.stderr
    return _DIRECTIVE_ID.findall(result.stdout)


def heartbeat(collector: CollectorProcess, session: str) -> Any:
    status, answer = collector.post(HEARTBEAT, {"session_id": session})
    assert status == 200, answer
    return answer["directive"]


def directives(collector: CollectorProcess, *args: str) -> list[dict[str, Any]]:
    result = collector.cli("directives", "--json", *args)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def post_result(collector: CollectorProcess, session: str, **fields: Any) -> None:
    event = valid_event("directive_result", session_id=session, flavor="bot", **fields)
    status, answer = collector.post(BATCH, {"events": [event]})
    assert (status, answer["accepted"]) == (200, 1), answer


# --- hand-out ----------------------------------------------------------------------------


def test_a_stop_is_handed_out_once_in_a_batch_answer(collector: CollectorProcess) -> None:
    # Given a running session stopped from the command line (by a prefix of its id)
    [session] = start_sessions(collector, 1)
    [directive_id] = issue(collector, "stop", session[:8], "--reason", "runaway loop")

    # When the agent posts two batches
    first = collector.post(BATCH, {"events": [valid_event(session_id=session, flavor="bot")]})
    second = collector.post(BATCH, {"events": [valid_event(session_id=session, flavor="bot")]})

    # Then the first answer carries the directive, in Flightdeck's shape, and the second not
    assert first[1]["directive"] == {"id": directive_id, "action": "shutdown",
                                     "reason": "runaway loop", "grace_period_ms": 5000}
    assert second[1]["directive"] is None


def test_directives_are_handed_out_oldest_first_each_once(collector: CollectorProcess) -> None:
    [session] = start_sessions(collector, 1)
    [stop] = issue(collector, "stop", session)
    [degrade] = issue(collector, "degrade", session, "--to", "gpt-4o-mini")
    [update] = issue(collector, "budget", "set", "--session", session, "--limit", "5000")

    answers = [heartbeat(collector, session) for _ in range(4)]

    assert [answer["id"] for answer in answers[:3]] == [stop, degrade, update]
    assert answers[3] is None
    assert answers[1]["degrade_to"] == "gpt-4o-mini" and "payload" not in answers[1]
    assert answers[2]["payload"]["token_limit"] == 5000 and "degrade_to" not in answers[2]
    assert "payload" not in answers[0] and "degrade_to" not in answers[0]


def test_a_batch_answer_carries_the_directive_of_its_last_accepted_events_session(
        collector: CollectorProcess) -> None:
    first, last = start_sessions(collector, 2)
    issue(collector, "stop", first)
    [for_last] = issue(collector, "stop", last)
    invalid = valid_event(session_id=first, agent_type="robot")

    _, answer = collector.post(BATCH, {"events": [valid_event(session_id=first),
                                                  valid_event(session_id=last), invalid]})

    assert answer["accepted"] == 2 and answer["directive"]["id"] == for_last
    assert heartbeat(collector, first)["action"] == "shutdown"


def test_a_single_event_answer_carries_the_directive(
        collector_factory: Callable[..., CollectorProcess]) -> None:
    # Given a collector that speaks only Flightdeck's single-event API
    collector = collector_factory(extra_args=("--no-batch",))
    [session] = start_sessions_single(collector)
    [directive_id] = issue(collector, "stop", session)

    first = collector.post(SINGLE, valid_event(session_id=session, flavor="bot"))
    second = collector.post(SINGLE, valid_event(session_id=session, flavor="bot"))

    assert first == (200, {"status": "ok", "attached": False, "directive": {
        "id": directive_id, "action": "shutdown", "reason": "stopped from the command line",
        "grace_period_ms": 5000}})
    assert second == (200, {"status": "ok", "directive": None, "attached": False})


def start_sessions_single(collector: CollectorProcess) -> list[str]:
    session = str(uuid.uuid4())
    assert collector.post(SINGLE, valid_event("session_start", session_id=session,
                                               flavor="bot"))[0] == 200
    return [session]


def test_a_heartbeat_answer_carries_the_directive_and_updates_last_seen(
        collector: CollectorProcess) -> None:
    [session] = start_sessions(collector, 1)
    seen_before = collector.sessions()[0]["last_seen_at"]
    [directive_id] = issue(collector, "stop", session)

    first = collector.post(HEARTBEAT, {"session_id": session.upper()})
    second = collector.post(HEARTBEAT, {"session_id": session})

    assert first == (200, {"status": "ok", "directive": {
        "id": directive_id, "action": "shutdown", "reason": "stopped from the command line",
        "grace_period_ms": 5000}})
    assert second == (200, {"status": "ok", "directive": None})
    assert collector.sessions()[0]["last_seen_at"] > seen_before


def test_an_agent_wide_stop_reaches_each_running_session_once_and_no_other(
        collector: CollectorProcess) -> None:
    running = start_sessions(collector, 2)
    [ended] = start_sessions(collector, 1)
    end_session(collector, ended)
    [other_agent] = start_sessions(collector, 1, flavor="other")

    result = collector.cli("stop", "--agent", "bot")

    assert result.returncode == 0, result.stderr
    assert "Issued shutdown_flavor to 2 running sessions of agent 'bot'" in result.stdout
    ids = _DIRECTIVE_ID.findall(result.stdout)
    handed = [heartbeat(collector, session) for session in running]
    assert sorted(directive["id"] for directive in handed) == sorted(ids)
    assert {directive["action"] for directive in handed} == {"shutdown_flavor"}
    assert [heartbeat(collector, session) for session in [*running, ended, other_agent]] == \
        [None] * 4


def test_an_agent_wide_degrade_reaches_each_running_session_with_its_model(
        collector: CollectorProcess) -> None:
    sessions = start_sessions(collector, 2)

    ids = issue(collector, "degrade", "--agent", "bot", "--to", "claude-haiku-4-5",
                "--reason", "cost")

    handed = [heartbeat(collector, session) for session in sessions]
    assert sorted(directive["id"] for directive in handed) == sorted(ids)
    assert [(d["action"], d["degrade_to"], d["reason"]) for d in handed] == \
        [("degrade", "claude-haiku-4-5", "cost")] * 2


def test_stop_refuses_an_ended_unknown_or_ambiguous_session_and_an_agent_not_running(
        collector: CollectorProcess) -> None:
    [ended] = start_sessions(collector, 1)
    end_session(collector, ended)
    twins = ["abcd" + str(uuid.uuid4())[4:] for _ in range(2)]
    collector.post(BATCH, {"events": [valid_event("session_start", session_id=twin)
                                      for twin in twins]})
    refusals = {
        (ended,): "has ended",
        ("0000",): "no session starts with",
        ("abcd",): "'abcd' is ambiguous",
        ("xyz",): "'xyz' is not a session id or a prefix of one",
        ("--agent", "nobody"): "no running session of agent 'nobody'",
        (): "give a SESSION or --agent NAME",
        (ended, "--agent", "bot"): "give a SESSION or --agent NAME",
    }

    for args, message in refusals.items():
        result = collector.cli("stop", *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
    assert directives(collector) == []


# --- the endpoints' guards -----------------------------------------------------------------


@pytest.mark.parametrize("path", [HEARTBEAT, SYNC, REGISTER])
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_control_endpoints_need_the_token(module_collector: CollectorProcess, path: str,
                                          token: str | None) -> None:
    status, answer = module_collector.post(path, {"session_id": str(uuid.uuid4())}, token=token)

    assert (status, answer) == (401, {"error": "missing or invalid token"})


def test_the_policy_endpoint_needs_the_token(module_collector: CollectorProcess) -> None:
    assert module_collector.get(f"{POLICY}?flavor=bot", token=None)[0] == 401


_LONG = "x" * 5000
_BAD_BODIES = [
    (HEARTBEAT, b"", "empty body"),
    (HEARTBEAT, b"\xff\xfe garbage", "invalid JSON"),
    (HEARTBEAT, b"[]", "heartbeat body"),
    (HEARTBEAT, b'{"session_id": 7}', "session_id"),
    (HEARTBEAT, b'{"session_id": "not-a-uuid"}', "session_id"),
    (HEARTBEAT, b'{"session_id": ["a"]}', "session_id"),
    (SYNC, b'{"flavor": "bot"}', "directives"),
    (SYNC, b'{"flavor": "bot", "directives": []}', "directives"),
    (SYNC, b'{"flavor": "", "directives": [{"fingerprint": "f"}]}', "flavor"),
    (SYNC, b'{"flavor": {"a": 1}, "directives": [{"fingerprint": "f"}]}', "flavor"),
    (SYNC, b'{"flavor": "bot", "directives": [1]}', "directives[0]"),
    (SYNC, b'{"flavor": "bot", "directives": [{"fingerprint": 5}]}', "fingerprint"),
    (SYNC, b'{"flavor": "\\ud800", "directives": [{"fingerprint": "f"}]}', "Unicode"),
    (SYNC, json.dumps({"flavor": "bot", "directives": [{"fingerprint": "f"}] * 300}).encode(),
     "at most"),
    (REGISTER, b'{"flavor": "bot", "directives": [{"fingerprint": "f"}]}', "name"),
    (REGISTER, json.dumps({"flavor": "bot", "directives": [
        {"name": _LONG, "fingerprint": "f"}]}).encode(), "at most 256"),
    (REGISTER, b'{"flavor": "bot", "directives": [{"name": "n", "fingerprint": "f",'
               b' "parameters": {"a": 1}}]}', "parameters"),
    (REGISTER, b'{"flavor": "bot", "directives": [{"name": "n", "fingerprint": "f",'
               b' "parameters": [{"name": "p", "type": "integer", "required": "yes"}]}]}',
     "required"),
    (REGISTER, b'{"flavor": "bot", "directives": [{"name": "n", "fingerprint": "f",'
               b' "parameters": [{"name": "p", "type": "string", "options": [[1]]}]}]}',
     "options[0]"),
    (REGISTER, b'{"flavor": "bot", "directives": [{"name": "n", "fingerprint": "f",'
               b' "parameters": [{"name": "p"}]}]}', "type"),
]


@pytest.mark.parametrize(("path", "body", "fragment"), _BAD_BODIES,
                         ids=[f"{path.rsplit('/', 1)[1]}-{i}"
                              for i, (path, _, _) in enumerate(_BAD_BODIES)])
def test_a_malformed_control_body_is_400_and_the_server_carries_on(
        module_collector: CollectorProcess, path: str, body: bytes, fragment: str) -> None:
    status, answer = module_collector.post(path, body)

    assert status == 400 and fragment in answer["error"], answer
    assert module_collector.post(HEARTBEAT, {"session_id": str(uuid.uuid4())})[0] == 200


@pytest.mark.parametrize("query", ["session_id=nope", "session_id=" + "1" * 40,
                                   "flavor=" + "f" * 2000, "&".join(["a=1"] * 40),
                                   "flavor=%ff%fe"])
def test_a_malformed_policy_query_is_400(module_collector: CollectorProcess,
                                         query: str) -> None:
    status, answer = module_collector.get(f"{POLICY}?{query}")

    assert status == 400 and "error" in answer
    assert module_collector.get(f"{POLICY}?flavor=bot-{uuid.uuid4()}")[0] == 404


def test_wrong_methods_and_paths_under_api(module_collector: CollectorProcess) -> None:
    assert module_collector.post(POLICY, {})[0] == 405
    assert module_collector.get(SYNC)[0] == 405
    assert module_collector.get("/api/v1/nothing")[0] == 404
    assert module_collector.get("/ingest/api/v1/policy?flavor=bot")[0] == 404
    assert module_collector.get("/ingest/v1/heartbeat")[0] == 405


# --- policy ----------------------------------------------------------------------------------


def test_policy_is_404_until_set_then_the_sessions_own_wins_over_its_agents(
        collector: CollectorProcess) -> None:
    mine, other = start_sessions(collector, 2)
    assert collector.get(f"{POLICY}?flavor=bot&session_id={mine}") == \
        (404, {"error": "no policy"})

    issue(collector, "budget", "set", "--agent", "bot", "--limit", "10000", "--warn", "70",
          "--degrade", "85", "--to", "gpt-4o-mini", "--block", "95")
    issue(collector, "budget", "set", "--session", mine[:8], "--limit", "500")

    status, flavor_policy = collector.get(f"{POLICY}?flavor=bot&session_id={other}")
    assert status == 200
    assert {key: value for key, value in flavor_policy.items() if key != "id"} == {
        "scope": "flavor", "scope_value": "bot", "token_limit": 10000, "warn_at_pct": 70,
        "degrade_at_pct": 85, "degrade_to": "gpt-4o-mini", "block_at_pct": 95}
    status, session_policy = collector.get(f"{POLICY}?flavor=bot&session_id={mine.upper()}")
    assert (status, session_policy["scope"], session_policy["scope_value"]) == \
        (200, "session", mine)
    assert (session_policy["token_limit"], session_policy["warn_at_pct"],
            session_policy["degrade_at_pct"], session_policy["block_at_pct"]) == \
        (500, 80, None, 100)
    assert collector.get(f"{POLICY}?flavor=b%6Ft")[1]["id"] == flavor_policy["id"]


def test_budget_set_updates_the_running_sessions_it_covers(collector: CollectorProcess) -> None:
    # Given two running sessions of an agent, one with a budget of its own, and one ended
    covered, own = start_sessions(collector, 2)
    [ended] = start_sessions(collector, 1)
    end_session(collector, ended)
    issue(collector, "budget", "set", "--session", own, "--limit", "100")
    heartbeat(collector, own)

    # When the agent's budget is set
    ids = issue(collector, "budget", "set", "--agent", "bot", "--limit", "2000", "--to",
                "gpt-4o-mini")

    # Then only the session it now governs gets a policy_update, with the whole policy
    update = heartbeat(collector, covered)
    assert [update["id"]] == ids and update["action"] == "policy_update"
    _, policy = collector.get(f"{POLICY}?flavor=bot")
    assert update["payload"] == policy
    assert heartbeat(collector, own) is None and heartbeat(collector, ended) is None


@pytest.mark.parametrize(("args", "message"), [
    (("--limit", "0"), "--limit must be a positive"),
    (("--limit", "10", "--warn", "0"), "--warn 0"),
    (("--limit", "10", "--block", "101"), "--block 101"),
    (("--limit", "10", "--degrade", "50"), "--degrade needs --to"),
    (("--limit", "10", "--warn", "90", "--block", "50"), "warn <= degrade <= block"),
    (("--limit", "10", "--degrade", "95", "--to", "m", "--block", "90"), "--degrade 95"),
])
def test_budget_set_refuses_thresholds_out_of_order(module_collector: CollectorProcess,
                                                     args: tuple[str, ...],
                                                     message: str) -> None:
    flavor = f"refused-{uuid.uuid4()}"
    result = module_collector.cli("budget", "set", "--agent", flavor, *args)

    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert module_collector.get(f"{POLICY}?flavor={flavor}")[0] == 404


def test_budget_show_and_clear(collector: CollectorProcess) -> None:
    issue(collector, "budget", "set", "--agent", "bot", "--limit", "1234")

    shown = collector.cli("budget", "show")
    cleared = collector.cli("budget", "clear", "--agent", "bot")
    again = collector.cli("budget", "clear", "--agent", "bot")

    assert "agent 'bot': limit 1,234 tokens, warn at 80%, block at 100%" in shown.stdout
    assert cleared.returncode == 0 and collector.get(f"{POLICY}?flavor=bot")[0] == 404
    assert again.returncode == 1 and "no budget set" in again.stderr


# --- registration and custom directives ----------------------------------------------------

_PARAMETERS = [
    {"name": "count", "type": "integer", "description": "how many", "options": None,
     "required": True, "default": None},
    {"name": "ratio", "type": "float", "description": "", "options": None, "required": False,
     "default": None},
    {"name": "verbose", "type": "boolean", "description": "", "options": None,
     "required": False, "default": False},
    {"name": "mode", "type": "string", "description": "", "options": ["fast", "slow"],
     "required": False, "default": "slow"},
]


def register(collector: CollectorProcess, name: str = "flush_cache",
             fingerprint: str = "fp-1", flavor: str = "bot") -> None:
    status, answer = collector.post(REGISTER, {"flavor": flavor, "directives": [
        {"name": name, "description": "Flush the cache", "fingerprint": fingerprint,
         "parameters": _PARAMETERS}]})
    assert (status, answer["status"]) == (200, "ok"), answer


def test_sync_reports_unknown_fingerprints_until_registered(collector: CollectorProcess) -> None:
    sync = {"flavor": "bot", "directives": [{"name": "flush_cache", "fingerprint": "fp-1"}]}
    assert collector.post(SYNC, sync) == (200, {"unknown_fingerprints": ["fp-1"]})

    register(collector)

    assert collector.post(SYNC, sync) == (200, {"unknown_fingerprints": []})
    other_flavor = {**sync, "flavor": "other"}
    assert collector.post(SYNC, other_flavor) == (200, {"unknown_fingerprints": ["fp-1"]})
    # A new signature of the same name replaces the old registration
    register(collector, fingerprint="fp-2")
    assert collector.post(SYNC, sync) == (200, {"unknown_fingerprints": ["fp-1"]})
    listed = json.loads(collector.cli("directive", "list", "--agent", "bot", "--json").stdout)
    assert [(row["name"], row["fingerprint"], row["parameters"]) for row in listed] == \
        [("flush_cache", "fp-2", _PARAMETERS)]
    assert "--param count=<integer>  (required)" in collector.cli("directive", "list").stdout


def test_directive_run_coerces_each_parameter_to_its_registered_type(
        collector: CollectorProcess) -> None:
    sessions = start_sessions(collector, 2)
    register(collector)

    ids = issue(collector, "directive", "run", "flush_cache", "--agent", "bot",
                "--param", "count=3", "--param", "ratio=0.25", "--param", "verbose=yes")

    handed = [heartbeat(collector, session) for session in sessions]
    assert sorted(directive["id"] for directive in handed) == sorted(ids)
    for directive in handed:
        assert directive["action"] == "custom"
        assert directive["payload"] == {"directive_name": "flush_cache", "fingerprint": "fp-1",
                                        "parameters": {"count": 3, "ratio": 0.25,
                                                       "verbose": True, "mode": "slow"}}


@pytest.mark.parametrize(("params", "message"), [
    (("count=x",), "'x' is not an integer"),
    (("count=1", "ratio=fast"), "not a finite number"),
    (("count=1", "verbose=perhaps"), "not a boolean"),
    (("count=1", "mode=medium"), "is not one of"),
    (("count=1", "colour=red"), "unknown parameter 'colour'"),
    (("count=1", "count=2"), "given twice"),
    (("count",), "expected KEY=VALUE"),
    ((), "missing required parameter 'count'"),
])
def test_directive_run_refuses_bad_parameters_and_issues_nothing(
        collector: CollectorProcess, params: tuple[str, ...], message: str) -> None:
    start_sessions(collector, 1)
    register(collector)
    args = [arg for param in params for arg in ("--param", param)]

    result = collector.cli("directive", "run", "flush_cache", "--agent", "bot", *args)

    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert directives(collector) == []


def test_directive_run_refuses_a_directive_the_agent_did_not_register(
        collector: CollectorProcess) -> None:
    start_sessions(collector, 1)
    register(collector)

    result = collector.cli("directive", "run", "reboot", "--agent", "bot")

    assert result.returncode == 1
    assert "registered no directive 'reboot' (it registered: flush_cache)" in result.stderr


# --- results and states --------------------------------------------------------------------


def test_directives_shows_issued_then_delivered_then_what_the_agent_reported(
        collector: CollectorProcess) -> None:
    [session] = start_sessions(collector, 1)
    [directive_id] = issue(collector, "stop", session)
    assert [row["state"] for row in directives(collector)] == ["issued"]

    heartbeat(collector, session)
    [delivered] = directives(collector, "--session", session[:8])
    post_result(collector, session, directive_id=directive_id, directive_name="shutdown",
                directive_action="shutdown", directive_status="acknowledged",
                result={"message": "shutting down", "reason": "stopped"})
    [acknowledged] = directives(collector, "--agent", "bot")

    assert (delivered["state"], delivered["delivered_at"] is not None) == ("delivered", True)
    assert (acknowledged["id"], acknowledged["state"], acknowledged["result"]) == \
        (directive_id, "acknowledged", {"message": "shutting down", "reason": "stopped"})
    table = collector.cli("directives").stdout
    assert "acknowledged" in table and 'result: {"message": "shutting down"' in table


def test_a_result_without_directive_id_goes_to_the_newest_delivered_of_that_name(
        collector: CollectorProcess) -> None:
    [session] = start_sessions(collector, 1)
    register(collector)
    register(collector, name="rotate_logs", fingerprint="fp-9")
    run = ("directive", "run", "--session", session, "--param", "count=1")
    older, newer = (issue(collector, run[0], run[1], "flush_cache", *run[2:])[0]
                    for _ in range(2))
    [rotate] = issue(collector, run[0], run[1], "rotate_logs", *run[2:])
    for _ in range(3):
        heartbeat(collector, session)

    # When the agent reports, as a sensor that sends no directive_id would
    post_result(collector, session, directive_name="flush_cache", directive_action="custom",
                directive_status="error", error="timeout")

    states = {row["id"]: (row["state"], row["error"]) for row in directives(collector)}
    assert states == {older: ("delivered", None), newer: ("error", "timeout"),
                      rotate: ("delivered", None)}


def test_a_final_result_is_not_taken_back_by_a_later_acknowledgement(
        collector: CollectorProcess) -> None:
    [session] = start_sessions(collector, 1)
    register(collector)
    [directive_id] = issue(collector, "directive", "run", "flush_cache", "--session", session,
                           "--param", "count=2")
    heartbeat(collector, session)
    common = {"directive_id": directive_id, "directive_name": "flush_cache",
              "directive_action": "custom"}

    post_result(collector, session, directive_status="success", result={"flushed": 2},
                **common)
    post_result(collector, session, directive_status="acknowledged", **common)

    [row] = directives(collector)
    assert (row["state"], row["result"]) == ("success", {"flushed": 2})


def test_a_result_naming_another_sessions_directive_changes_nothing(
        collector: CollectorProcess) -> None:
    mine, other = start_sessions(collector, 2)
    [directive_id] = issue(collector, "stop", mine)
    heartbeat(collector, mine)

    post_result(collector, other, directive_id=directive_id, directive_name="shutdown",
                directive_action="shutdown", directive_status="acknowledged")

    assert [row["state"] for row in directives(collector)] == ["delivered"]


def test_sessions_show_stopped_and_blocked_sessions(collector: CollectorProcess) -> None:
    stopped, blocked, ended_stopped, ended_blocked, plain = start_sessions(collector, 5)
    post_result(collector, stopped, directive_name="shutdown", directive_action="shutdown",
                directive_status="acknowledged")
    for session in (blocked, ended_blocked):
        collector.post(BATCH, {"events": [valid_event(
            "policy_block", session_id=session, flavor="bot", intended_model="gpt-4o",
            policy_decision={"policy_id": "p1", "scope": "flavor", "decision": "block",
                             "reason": "100% of budget"})]})
    end_session(collector, ended_stopped, close_reason="directive_shutdown")
    end_session(collector, ended_blocked, close_reason="policy_block")

    table = collector.cli("sessions").stdout
    rows = json.loads(collector.cli("sessions", "--json").stdout)

    shown = {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}
    expected = {stopped: "stopped", blocked: "blocked", plain: "active",
                ended_stopped: "stopped (directive_shutdown)",
                ended_blocked: "blocked (policy_block)"}
    for session, state in expected.items():
        assert f"  {state}  " in shown[session[:8]], shown[session[:8]]
    by_id = {row["session_id"]: row for row in rows}
    assert {session: (by_id[session]["state"], by_id[session]["control_state"])
            for session in expected} == {
        stopped: ("active", "stopped"), blocked: ("active", "blocked"), plain: ("active", None),
        ended_stopped: ("closed", "stopped"), ended_blocked: ("closed", "blocked")}


def test_a_new_process_attaching_to_a_stopped_session_clears_the_state(
        collector: CollectorProcess) -> None:
    [session] = start_sessions(collector, 1)
    end_session(collector, session, close_reason="directive_shutdown")

    collector.post(BATCH, {"events": [valid_event("session_start", session_id=session,
                                                  flavor="bot")]})

    assert [(row["state"], row["control_state"]) for row in collector.sessions()] == \
        [("active", None)]


def test_events_shows_what_the_control_plane_decided(collector: CollectorProcess) -> None:
    [session] = start_sessions(collector, 1)
    decision = {"policy_id": "p-42", "scope": "flavor", "decision": "degrade",
                "reason": "90% of budget"}
    collector.post(BATCH, {"events": [
        valid_event("policy_degrade", session_id=session, flavor="bot", source="server",
                    threshold_pct=90, tokens_used=9000, token_limit=10000,
                    from_model="gpt-4o", to_model="gpt-4o-mini", policy_decision=decision),
        valid_event("directive_result", session_id=session, flavor="bot",
                    directive_name="flush_cache", directive_action="custom",
                    directive_status="error", error="handler not found")]})

    timeline = collector.cli("events", session[:8]).stdout

    assert ("degrade: 90% of budget; gpt-4o -> gpt-4o-mini; 9,000 of 10,000 tokens "
            "(threshold 90%); policy p-42, flavor, server") in timeline
    assert "flush_cache (custom) error: handler not found" in timeline
