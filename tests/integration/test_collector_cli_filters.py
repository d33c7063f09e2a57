"""``flightdeck-sensor sessions --agent / --state / --since`` against the real collector."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from fixtures.collector import CollectorProcess
from fixtures.collector_events import now_rfc3339, valid_event

BATCH = "/ingest/v1/events/batch"
BLOCK = {"policy_id": "p1", "scope": "flavor", "decision": "block", "reason": "budget spent"}


def _session(collector: CollectorProcess, agent: str, flavor: str, ago: timedelta,
             *last: dict[str, object]) -> str:
    """A session of ``agent`` whose events are ``ago`` old: a start, a call, then ``last``."""
    session = str(uuid.uuid4())
    when = now_rfc3339(-ago)
    identity = {"session_id": session, "agent_name": agent, "flavor": flavor, "timestamp": when}
    events = [valid_event("session_start", **identity), valid_event(**identity),
              *(valid_event(**{**identity, **fields}) for fields in last)]
    status, answer = collector.post(BATCH, {"events": events})
    assert status == 200 and answer["accepted"] == len(events), answer
    return session


@pytest.fixture
def fleet(collector: CollectorProcess) -> dict[str, str]:
    """Five sessions of two agents, one in each state."""
    now, minutes, hours = timedelta(0), timedelta(minutes=5), timedelta(hours=3)
    return {
        "active": _session(collector, "alpha@host", "alpha", now),
        "idle": _session(collector, "beta@host", "beta", minutes),
        "ended": _session(collector, "alpha@host", "alpha", hours,
                          {"event_type": "session_end", "close_reason": "normal_exit"}),
        "stopped": _session(collector, "beta@host", "beta", minutes,
                            {"event_type": "session_end", "close_reason": "directive_shutdown"}),
        "blocked": _session(collector, "gamma@host", "gamma", now,
                            {"event_type": "policy_block", "policy_decision": BLOCK}),
    }


def _listed(collector: CollectorProcess, fleet: dict[str, str], *flags: str) -> set[str]:
    """Which of the fleet's sessions ``sessions --json FLAGS`` lists, by their state names."""
    result = collector.cli("sessions", "--json", *flags)
    assert result.returncode == 0, result.stderr
    ids = {row["session_id"] for row in json.loads(result.stdout)}
    return {name for name, session in fleet.items() if session in ids}


def test_each_state_lists_its_sessions(collector: CollectorProcess,
                                       fleet: dict[str, str]) -> None:
    assert _listed(collector, fleet, "--state", "active") == {"active"}
    assert _listed(collector, fleet, "--state", "idle") == {"idle"}
    # ended: every session that ended, whatever ended it
    assert _listed(collector, fleet, "--state", "ended") == {"ended", "stopped"}
    assert _listed(collector, fleet, "--state", "closed") == {"ended", "stopped"}
    assert _listed(collector, fleet, "--state", "stopped") == {"stopped"}
    assert _listed(collector, fleet, "--state", "blocked") == {"blocked"}
    assert _listed(collector, fleet, "--state", "active", "--state", "idle") == {
        "active", "idle"}


def test_the_shown_state_is_the_one_word_filtered_on(collector: CollectorProcess,
                                                     fleet: dict[str, str]) -> None:
    rows = json.loads(collector.cli("sessions", "--json").stdout)
    status = {row["session_id"]: row["status"] for row in rows}
    assert {name: status[session] for name, session in fleet.items()} == {
        "active": "active", "idle": "idle", "ended": "closed", "stopped": "stopped",
        "blocked": "blocked"}
    table = collector.cli("sessions").stdout
    idle_line = next(line for line in table.splitlines() if line.startswith(fleet["idle"][:8]))
    assert " idle " in idle_line


def test_agent_matches_a_name_or_a_flavor(collector: CollectorProcess,
                                          fleet: dict[str, str]) -> None:
    assert _listed(collector, fleet, "--agent", "alpha@host") == {"active", "ended"}
    assert _listed(collector, fleet, "--agent", "beta") == {"idle", "stopped"}
    assert _listed(collector, fleet, "--agent", "alpha", "--state", "ended") == {"ended"}
    assert _listed(collector, fleet, "--agent", "nobody") == set()
    assert "No sessions match." in collector.cli("sessions", "--agent", "nobody").stdout


def test_since_takes_a_duration_or_an_iso_time(collector: CollectorProcess,
                                               fleet: dict[str, str]) -> None:
    recent = {"active", "idle", "stopped", "blocked"}
    assert _listed(collector, fleet, "--since", "1h") == recent
    assert _listed(collector, fleet, "--since", "2m") == {"active", "blocked"}
    assert _listed(collector, fleet, "--since", "1d") == set(fleet)
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    assert _listed(collector, fleet, "--since", an_hour_ago.isoformat()) == recent
    local_naive = an_hour_ago.astimezone().replace(tzinfo=None).isoformat(timespec="seconds")
    assert _listed(collector, fleet, "--since", local_naive) == recent


@pytest.mark.parametrize("flags", [("--since", "yesterday"), ("--since", "5 minutes"),
                                   ("--state", "running")])
def test_a_bad_filter_is_refused_with_a_message(collector: CollectorProcess,
                                                flags: tuple[str, str]) -> None:
    result = collector.cli("sessions", *flags)
    assert result.returncode == 2
    assert flags[0] in result.stderr and result.stdout == ""
