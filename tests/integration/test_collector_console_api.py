"""The console's JSON API on the real collector: who may read and act (the token once,
then an HttpOnly SameSite=Strict cookie; never a token in a query string; a
state-changing request needs the page's header and our origin), bounded pages,
hostile input answered 4xx, and the operator's actions writing what the command
line writes."""

from __future__ import annotations

import http.client
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import now_rfc3339, valid_event

API = "/console/api/v1"
CONSOLE_HEADER = {"X-Flightdeck-Console": "1"}


def request(collector: CollectorProcess, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=15)
    try:
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers={**sent, **(headers or {})})
        answer = conn.getresponse()
        raw = answer.read()
    finally:
        conn.close()
    try:
        return answer.status, json.loads(raw), answer
    except ValueError:
        return answer.status, raw, answer


def login(collector: CollectorProcess) -> str:
    """The Cookie header value the login set."""
    status, _, answer = request(collector, "POST", f"{API}/login", {"token": collector.token},
                                CONSOLE_HEADER)
    assert status == 200
    return str(answer.getheader("Set-Cookie")).split(";")[0]


def seed(collector: CollectorProcess, *events: dict[str, Any]) -> None:
    status, answer = collector.post("/ingest/v1/events/batch", {"events": list(events)})
    assert status == 200 and answer["accepted"] == len(events), answer


def started(agent: str = "agent-a", parent: str | None = None,
            session_id: str | None = None) -> dict[str, Any]:
    return valid_event("session_start", session_id=session_id or str(uuid.uuid4()),
                       agent_name=agent, flavor=agent, parent_session_id=parent)


# --- authentication ---------------------------------------------------------------------------


def test_collect_prints_the_console_address_and_where_the_token_is_not_the_token(
        module_collector: CollectorProcess) -> None:
    output = module_collector.output()

    assert f"Web console: {module_collector.url}/" in output
    assert "$FLIGHTDECK_TOKEN" in output
    assert module_collector.token not in output


def test_the_page_itself_is_served_without_login_and_forbids_inline_script(
        module_collector: CollectorProcess) -> None:
    status, body, answer = request(module_collector, "GET", "/")

    assert status == 200
    assert b"/console/app.js" in body
    assert "script-src 'self'" in str(answer.getheader("Content-Security-Policy"))
    assert answer.getheader("X-Frame-Options") == "DENY"


@pytest.mark.parametrize("path", ["sessions", "fleet", "agents", "changes", "directives",
                                  "sessions/5b2c0f0e-8f0a-4d1e-9a53-2f9e1c7d0a11"])
def test_api_without_cookie_or_token_answers_401(module_collector: CollectorProcess,
                                                 path: str) -> None:
    status, answer, _ = request(module_collector, "GET", f"{API}/{path}")

    assert status == 401
    assert "log in" in answer["error"]


@pytest.mark.parametrize("query", ["token=SECRET", "access_token=SECRET", "Token=SECRET",
                                   "x=1&bearer=SECRET"])
def test_a_token_in_the_query_string_is_refused_even_when_right(
        module_collector: CollectorProcess, query: str) -> None:
    path = f"{API}/sessions?{query.replace('SECRET', module_collector.token)}"

    status, answer, _ = request(module_collector, "GET", path,
                                headers={"Authorization": f"Bearer {module_collector.token}"})

    assert status == 400
    assert "never goes in a URL query" in answer["error"]


def test_login_sets_an_httponly_samesite_strict_cookie_that_reads_the_api(
        module_collector: CollectorProcess) -> None:
    status, _, answer = request(module_collector, "POST", f"{API}/login",
                                {"token": module_collector.token}, CONSOLE_HEADER)
    cookie = str(answer.getheader("Set-Cookie"))

    assert status == 200
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert module_collector.token not in cookie
    status, page, _ = request(module_collector, "GET", f"{API}/sessions",
                              headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and "sessions" in page


@pytest.mark.parametrize("body", [{"token": "wrong"}, {"token": ""}, {"token": 5}, {},
                                  {"token": "x" * 100_000}, ["not", "an", "object"]])
def test_login_with_a_wrong_or_malformed_token_answers_401_without_a_cookie(
        module_collector: CollectorProcess, body: Any) -> None:
    status, _, answer = request(module_collector, "POST", f"{API}/login", body, CONSOLE_HEADER)

    assert status == 401
    assert answer.getheader("Set-Cookie") is None


@pytest.mark.parametrize("cookie", ["flightdeck_console=forged", "flightdeck_console=",
                                    "garbage;;;==\x7f", "a=" + "b" * 9000])
def test_a_forged_or_hostile_cookie_answers_401(module_collector: CollectorProcess,
                                                cookie: str) -> None:
    status, _, _ = request(module_collector, "GET", f"{API}/sessions",
                           headers={"Cookie": cookie})

    assert status == 401


def test_logout_ends_the_cookie_login(module_collector: CollectorProcess) -> None:
    cookie = login(module_collector)

    status, _, _ = request(module_collector, "POST", f"{API}/logout", {},
                           {"Cookie": cookie, **CONSOLE_HEADER})

    assert status == 200
    assert request(module_collector, "GET", f"{API}/sessions",
                   headers={"Cookie": cookie})[0] == 401


def test_an_action_with_the_cookie_but_without_the_console_header_is_refused(
        collector: CollectorProcess) -> None:
    session = started()
    seed(collector, session)
    cookie = login(collector)

    status, answer, _ = request(collector, "POST", f"{API}/actions/stop",
                                {"session": session["session_id"]}, {"Cookie": cookie})

    assert status == 403
    assert "X-Flightdeck-Console" in answer["error"]
    assert collector.cli("directives", "--json").stdout.strip() == "[]"


def test_an_action_from_another_origin_is_refused(collector: CollectorProcess) -> None:
    session = started()
    seed(collector, session)
    cookie = login(collector)

    status, answer, _ = request(
        collector, "POST", f"{API}/actions/stop", {"session": session["session_id"]},
        {"Cookie": cookie, "Origin": "http://evil.example", **CONSOLE_HEADER})

    assert status == 403
    assert "cross-origin" in answer["error"]


# --- pages and hostile input ------------------------------------------------------------------


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=-1", "limit=abc",
                                   "limit=1e3", "offset=-5", "offset=99999999999",
                                   "sort=password", "sort=started%3BDROP%20TABLE%20sessions",
                                   "order=sideways", "state=asleep", "since=forever",
                                   "limit=1&limit=2", "agent=" + "a" * 500,
                                   "&".join(f"f{i}=1" for i in range(60)), "agent=%ff%fe"])
def test_a_sessions_query_out_of_bounds_answers_400(module_collector: CollectorProcess,
                                                    query: str) -> None:
    status, answer, _ = request(module_collector, "GET", f"{API}/sessions?{query}",
                                headers={"Authorization": f"Bearer {module_collector.token}"})

    assert status == 400
    assert answer["error"]


# A fixed id: the parameters below must read the same in every xdist worker.
KNOWN = "0d6f3a52-7c1b-4e8a-b0a4-93c5e2f1d7b8"


@pytest.mark.parametrize("path", ["sessions/not-a-uuid", "sessions/..%2F..%2Fetc",
                                  f"sessions/{KNOWN}/timeline?after=no-cursor",
                                  f"sessions/{KNOWN}/timeline?after=a|b&before=end",
                                  f"sessions/{KNOWN}/timeline?before=" + "9" * 300 + "|x",
                                  f"sessions/{KNOWN}/event",
                                  f"sessions/{KNOWN}/event?cursor=%00|%00",
                                  "fleet?since=1y"])
def test_hostile_paths_and_cursors_answer_400(module_collector: CollectorProcess,
                                              path: str) -> None:
    seed(module_collector, started(session_id=KNOWN))

    status, answer, _ = request(module_collector, "GET", f"{API}/{path}",
                                headers={"Authorization": f"Bearer {module_collector.token}"})

    assert (status, "no such path" in str(answer)) == (400, False) or (
        "cursor=%00" in path and status == 404 and answer["error"] == "no such event")


def test_an_unknown_session_answers_404(module_collector: CollectorProcess) -> None:
    status, answer, _ = request(module_collector, "GET", f"{API}/sessions/{uuid.uuid4()}",
                                headers={"Authorization": f"Bearer {module_collector.token}"})

    assert (status, answer["error"]) == (404, "no such session")


def test_sessions_are_paged_on_the_server_and_sorted_by_any_column(
        collector: CollectorProcess) -> None:
    sessions = [started(f"agent-{index:02d}") for index in range(7)]
    seed(collector, *sessions)
    auth = {"Authorization": f"Bearer {collector.token}"}

    _, first, _ = request(collector, "GET", f"{API}/sessions?limit=3&sort=agent&order=asc",
                          headers=auth)
    _, last, _ = request(collector, "GET", f"{API}/sessions?limit=3&offset=6&sort=agent"
                                           "&order=asc", headers=auth)

    assert first["total"] == 7
    assert [s["agent_name"] for s in first["sessions"]] == ["agent-00", "agent-01", "agent-02"]
    assert [s["agent_name"] for s in last["sessions"]] == ["agent-06"]


def test_sub_sessions_are_nested_under_their_parent(collector: CollectorProcess) -> None:
    parent = started("orchestrator")
    child = started("worker", parent=parent["session_id"])
    grandchild = started("helper", parent=child["session_id"])
    seed(collector, parent, child, grandchild)

    _, page, _ = request(collector, "GET", f"{API}/sessions",
                         headers={"Authorization": f"Bearer {collector.token}"})

    assert page["total"] == 1
    [top] = page["sessions"]
    assert top["session_id"] == parent["session_id"]
    assert [c["session_id"] for c in top["children"]] == [child["session_id"]]
    assert [c["session_id"] for c in top["children"][0]["children"]] == \
        [grandchild["session_id"]]


def test_filters_by_agent_and_state_list_matching_sessions_flat(
        collector: CollectorProcess) -> None:
    parent = started("orchestrator")
    child = started("worker", parent=parent["session_id"])
    ended = started("worker")
    seed(collector, parent, child, ended,
         valid_event("session_end", session_id=ended["session_id"]))
    auth = {"Authorization": f"Bearer {collector.token}"}

    _, workers, _ = request(collector, "GET", f"{API}/sessions?agent=worker", headers=auth)
    _, done, _ = request(collector, "GET", f"{API}/sessions?state=ended", headers=auth)
    _, injected, _ = request(collector, "GET", f"{API}/sessions?agent=%27%20OR%201%3D1%20--",
                             headers=auth)

    assert {s["session_id"] for s in workers["sessions"]} == {child["session_id"],
                                                              ended["session_id"]}
    assert [s["session_id"] for s in done["sessions"]] == [ended["session_id"]]
    assert injected["total"] == 0


def test_the_timeline_is_a_window_with_keyset_cursors(collector: CollectorProcess) -> None:
    session = started()
    sid = session["session_id"]
    calls = [valid_event("post_call", session_id=sid,
                         timestamp=now_rfc3339(timedelta(seconds=i - 20))) for i in range(10)]
    seed(collector, session, *calls)
    auth = {"Authorization": f"Bearer {collector.token}"}

    _, last, _ = request(collector, "GET", f"{API}/sessions/{sid}/timeline?limit=4&before=end",
                         headers=auth)
    _, earlier, _ = request(collector, "GET", f"{API}/sessions/{sid}/timeline?limit=4&before="
                            + last["first"].replace("+", "%2B"), headers=auth)

    assert last["total_events"] == 11
    assert [e["type"] for e in last["events"]] == ["post_call"] * 3 + ["session_start"]
    assert last["more_before"] and not last["more_after"]
    assert len(earlier["events"]) == 4 and earlier["more_before"]
    assert earlier["events"][-1]["timestamp"] < last["events"][0]["timestamp"]


def test_captured_content_is_left_out_of_the_timeline_and_given_on_request(
        collector: CollectorProcess) -> None:
    session = started()
    sid = session["session_id"]
    call = valid_event("post_call", session_id=sid, has_content=True,
                       content={"response": "<script>alert(1)</script>"})
    seed(collector, session, call)
    auth = {"Authorization": f"Bearer {collector.token}"}

    _, window, _ = request(collector, "GET", f"{API}/sessions/{sid}/timeline", headers=auth)
    [shown] = [e for e in window["events"] if e["type"] == "post_call"]
    _, detail, _ = request(collector, "GET", f"{API}/sessions/{sid}/event?cursor="
                           + shown["cursor"].replace("+", "%2B"), headers=auth)

    assert shown["has_content"] is True
    assert "<script>" not in json.dumps(window)
    assert detail["event"]["content"] == {"response": "<script>alert(1)</script>"}


# --- the operator's actions -------------------------------------------------------------------


def test_stop_from_the_console_issues_the_directive_the_cli_would(
        collector: CollectorProcess) -> None:
    session = started()
    seed(collector, session)
    cookie = login(collector)

    status, answer, _ = request(collector, "POST", f"{API}/actions/stop",
                                {"session": session["session_id"], "reason": "maintenance"},
                                {"Cookie": cookie, **CONSOLE_HEADER})
    issued = json.loads(collector.cli("directives", "--json").stdout)

    assert status == 200
    assert [(d["id"], d["action"], d["reason"], d["state"]) for d in issued] == \
        [(answer["directives"][0]["directive_id"], "shutdown", "maintenance", "issued")]
    _, ingest = collector.post("/ingest/v1/events", valid_event(
        "post_call", session_id=session["session_id"]))
    assert ingest["directive"]["action"] == "shutdown"


@pytest.mark.parametrize(("path", "body", "error"), [
    ("actions/budget", {"agent": "agent-a", "limit": 0}, "--limit must be a positive"),
    ("actions/budget", {"agent": "agent-a", "limit": 100, "warn": 95, "block": 90},
     "warn <= degrade <= block"),
    ("actions/degrade", {"agent": "agent-a", "to": ""}, "a model name"),
    ("actions/stop", {"agent": "nobody"}, "no running session of agent 'nobody'"),
    ("actions/stop", {"session": "a", "agent": "b"}, "one of them"),
    ("actions/stop", {"session": 7}, "a non-empty string"),
    ("actions/directive", {"agent": "agent-a", "name": "missing"}, "registered no directive"),
    ("actions/explode", {}, "no such action"),
])
def test_a_refused_action_answers_with_the_command_lines_reason(
        collector: CollectorProcess, path: str, body: dict[str, Any], error: str) -> None:
    seed(collector, started("agent-a"))

    status, answer, _ = request(collector, "POST", f"{API}/{path}", body,
                                {"Authorization": f"Bearer {collector.token}"})

    assert 400 <= status < 500
    assert error in answer["error"]


def test_budget_and_custom_directive_from_the_console(collector: CollectorProcess) -> None:
    session = started("agent-a")
    seed(collector, session)
    status, _ = collector.post("/api/v1/directives/register", {"flavor": "agent-a", "directives": [
        {"name": "set_temperature", "description": "Set it", "fingerprint": "f" * 64,
         "parameters": [{"name": "value", "type": "float", "required": True}]}]})
    assert status == 200
    auth = {"Authorization": f"Bearer {collector.token}"}

    budget = request(collector, "POST", f"{API}/actions/budget",
                     {"agent": "agent-a", "limit": "1000", "to": "gpt-4o-mini"}, auth)
    custom = request(collector, "POST", f"{API}/actions/directive",
                     {"agent": "agent-a", "name": "set_temperature",
                      "parameters": {"value": "0.25"}}, auth)
    _, detail, _ = request(collector, "GET", f"{API}/sessions/{session['session_id']}",
                           headers=auth)

    assert budget[0] == 200 and budget[1]["policy"]["token_limit"] == 1000
    assert budget[1]["policy"]["degrade_at_pct"] == 90
    assert custom[0] == 200 and custom[1]["parameters"] == {"value": 0.25}
    assert [d["action"] for d in detail["directives"]] == ["custom", "policy_update"]
    assert detail["policy"]["token_limit"] == 1000
    assert [d["name"] for d in detail["registered"]] == ["set_temperature"]


# --- the fleet and the budget chart -----------------------------------------------------------


def test_the_fleet_sums_calls_tokens_cost_and_errors_per_agent_and_model(
        collector: CollectorProcess) -> None:
    a, b = started("agent-a"), started("agent-b")
    seed(collector, a, b,
         *[valid_event("post_call", session_id=a["session_id"], model="gpt-4o-2024-08-06",
                       tokens_input=100, tokens_output=10, latency_ms=100 + i)
           for i in range(3)],
         valid_event("post_call", session_id=b["session_id"], model="no-such-model",
                     tokens_input=5, tokens_output=5, latency_ms=9000),
         valid_event("llm_error", session_id=b["session_id"]),
         valid_event("llm_error", session_id=b["session_id"],
                     error={"error_type": "timeout", "is_retryable": True}))

    _, fleet, _ = request(collector, "GET", f"{API}/fleet?since=15m",
                          headers={"Authorization": f"Bearer {collector.token}"})

    agents = {row["name"]: row for row in fleet["agents"]}
    assert (agents["agent-a"]["total_calls"], agents["agent-a"]["total_tokens"],
            agents["agent-a"]["total_errors"]) == (3, 330, 0)
    assert agents["agent-a"]["cost_text"].startswith("$0.00")
    assert (agents["agent-b"]["total_calls"], agents["agent-b"]["total_errors"]) == (3, 2)
    assert agents["agent-b"]["cost_text"] == "?"  # an unknown model: never "$0"
    assert sum(agents["agent-a"]["calls"]) == 3 and agents["agent-a"]["calls"][-1] == 3
    assert {row["name"] for row in fleet["models"]} == {"gpt-4o-2024-08-06", "no-such-model",
                                                         "gpt-4o-mini"}
    assert [call["latency_ms"] for call in fleet["slowest"][:2]] == [9000, 102]
    assert fleet["errors"] == [{"class": "rate_limit", "count": 1},
                               {"class": "timeout", "count": 1}]


def test_the_budget_chart_is_thinned_to_its_points_and_shows_the_thresholds(
        collector: CollectorProcess) -> None:
    session = started("agent-a")
    sid = session["session_id"]
    calls = [valid_event("post_call", session_id=sid, tokens_input=10, tokens_output=0,
                         timestamp=now_rfc3339(timedelta(milliseconds=i - 2000)))
             for i in range(1000)]
    seed(collector, session)
    seed(collector, *calls)
    assert collector.cli("budget", "set", "--agent", "agent-a", "--limit", "20000",
                         "--warn", "50", "--block", "90").returncode == 0

    _, usage, _ = request(collector, "GET", f"{API}/sessions/{sid}/usage",
                          headers={"Authorization": f"Bearer {collector.token}"})

    tokens = [point[1] for point in usage["points"]]
    assert 300 <= len(tokens) <= 400
    assert tokens[0] == 10 and tokens[-1] == 10_000
    assert tokens == sorted(tokens)
    assert usage["thresholds"] == {"warn": 10_000, "block": 18_000, "limit": 20_000}


def test_the_budget_chart_follows_new_calls_and_a_late_one_stored_out_of_order(
        collector: CollectorProcess) -> None:
    session = started("agent-a")
    sid = session["session_id"]
    seed(collector, session, *[valid_event("post_call", session_id=sid, tokens_input=10,
                                           tokens_output=0) for _ in range(5)])
    auth = {"Authorization": f"Bearer {collector.token}"}
    first = request(collector, "GET", f"{API}/sessions/{sid}/usage", headers=auth)[1]

    seed(collector, valid_event("post_call", session_id=sid, tokens_input=100, tokens_output=0))
    later = request(collector, "GET", f"{API}/sessions/{sid}/usage", headers=auth)[1]
    seed(collector, valid_event("post_call", session_id=sid, tokens_input=1000, tokens_output=0,
                                timestamp=now_rfc3339(timedelta(seconds=-30))))
    late = request(collector, "GET", f"{API}/sessions/{sid}/usage", headers=auth)[1]

    assert [point[1] for point in first["points"]] == [10, 20, 30, 40, 50]
    assert [point[1] for point in later["points"]] == [10, 20, 30, 40, 50, 150]
    assert [point[1] for point in late["points"]] == [1000, 1010, 1020, 1030, 1040, 1050, 1150]


def test_directives_and_agents_list_what_the_operator_dialog_offers(
        collector: CollectorProcess) -> None:
    a, b = started("agent-a"), started("agent-b")
    seed(collector, a, b)
    assert collector.cli("stop", "--agent", "agent-a").returncode == 0
    assert collector.cli("budget", "set", "--agent", "agent-b", "--limit", "500").returncode == 0
    auth = {"Authorization": f"Bearer {collector.token}"}

    _, of_a, _ = request(collector, "GET", f"{API}/directives?agent=agent-a", headers=auth)
    _, every, _ = request(collector, "GET", f"{API}/directives?limit=1", headers=auth)
    _, agents, _ = request(collector, "GET", f"{API}/agents", headers=auth)

    assert [(d["action"], d["session_id"], d["state"]) for d in of_a["directives"]] == \
        [("shutdown_flavor", a["session_id"], "issued")]
    assert [d["action"] for d in every["directives"]] == ["policy_update"]
    by_name = {row["flavor"]: row for row in agents["agents"]}
    assert (by_name["agent-a"]["running"], by_name["agent-a"]["policy"]) == (1, None)
    assert by_name["agent-b"]["policy"]["token_limit"] == 500
