"""Which sessions a reader asks for: by agent, by state, seen since a time.

A session's state is one word, from what the collector stored:

- ``stopped`` / ``blocked``: the control plane stopped it (a shutdown directive
  acknowledged, or ended by one) or a budget blocked it, ended or not;
- ``closed`` (also asked for as ``ended``): it sent ``session_end``;
- ``idle``: open, but no event for ``IDLE_AFTER`` (it may be waiting, beating its
  heartbeat, or gone without a ``session_end``: a heartbeat is not an event);
- ``active``: open, with an event within ``IDLE_AFTER``.

As filters, ``ended`` matches every session that ended, stopped and blocked
ones included; the other words match the shown state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from ._validate import utc_text

IDLE_AFTER = timedelta(seconds=60)
STATES = ("active", "idle", "ended", "closed", "stopped", "blocked")
_DURATION = re.compile(r"(\d{1,9})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

_OPEN = "state != 'closed' AND control_state IS NULL"
_LAST_EVENT = "coalesce(last_event_at, last_seen_at)"
_STATE_SQL = {
    "active": f"({_OPEN} AND {_LAST_EVENT} >= :idle_cutoff)",
    "idle": f"({_OPEN} AND {_LAST_EVENT} < :idle_cutoff)",
    "ended": "state = 'closed'",
    "closed": "state = 'closed'",
    "stopped": "control_state = 'stopped'",
    "blocked": "control_state = 'blocked'",
}


def session_state(row: dict[str, Any], now: datetime) -> str:
    """The session's one-word state (see the module's docstring)."""
    control = row.get("control_state")
    if control:
        return str(control)
    if row.get("state") == "closed":
        return "closed"
    last_event = row.get("last_event_at") or row.get("last_seen_at")
    if isinstance(last_event, str) and last_event < utc_text(now - IDLE_AFTER):
        return "idle"
    return "active"


def parse_since(text: str, now: datetime) -> datetime:
    """``10m``, ``2h``, ``1d``, ``30s``, ``1w`` ago, or an ISO 8601 time (local time
    when it names no offset); ValueError with a message that says what is accepted."""
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        amount, unit = duration.groups()
        return now - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: {text[:40]!r} is neither a duration (10m, 2h, 1d) nor an"
                         " ISO time (2026-05-01T09:30)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the reader's local time
    return moment.astimezone(timezone.utc)


def session_filter(agent: str | None, states: Sequence[str], since: datetime | None,
                   now: datetime) -> tuple[str, dict[str, Any]]:
    """A WHERE clause (with its named parameters) for the sessions table: the agent
    by name or flavor, any of the states, last seen at or after ``since``."""
    unknown = [state for state in states if state not in _STATE_SQL]
    if unknown:
        raise ValueError(f"--state: {unknown[0]!r} is not one of {', '.join(STATES)}")
    clauses, params = [], {}
    if agent is not None:
        clauses.append("(agent_name = :agent OR flavor = :agent)")
        params["agent"] = agent
    if states:
        clauses.append("(" + " OR ".join(_STATE_SQL[state] for state in dict.fromkeys(states))
                       + ")")
        params["idle_cutoff"] = utc_text(now - IDLE_AFTER)
    if since is not None:
        clauses.append("last_seen_at >= :since")
        params["since"] = utc_text(since)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
