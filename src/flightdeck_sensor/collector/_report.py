"""The read side for people: the sessions table and one session's timeline, as plain text.

Every value shown comes from an event some process sent: each goes through
``printable`` (control characters escaped, length capped), so a stored escape
sequence or line break cannot rewrite the reader's terminal or forge a line.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._printable import printable
from ._cost import cost_text, event_cost_text, session_cost_usd
from ._session_query import session_filter, session_state
from ._store import default_db_path, open_readonly

_SESSION_PREFIX = re.compile(r"[0-9a-f-]{1,36}")
_SHORT_ID = 8
CELL_LIMIT = 120


def print_sessions(db: Path | None, as_json: bool, limit: int, agent: str | None = None,
                   states: Sequence[str] = (), since: datetime | None = None) -> int:
    conn = open_for_reading(db)
    if conn is None:
        return 1
    now = datetime.now(timezone.utc)
    where, params = session_filter(agent, states, since, now)
    try:
        with conn:
            total = conn.execute("SELECT count(*) AS n FROM sessions" + where,
                                 params).fetchone()["n"]
            query = f"SELECT * FROM sessions{where} ORDER BY started_at DESC, session_id"
            rows = conn.execute(query + (" LIMIT :limit" if limit > 0 else ""),
                                {**params, "limit": limit}).fetchall()
    except sqlite3.OperationalError as error:  # a database an older collector still writes
        print(f"flightdeck-sensor sessions: cannot filter this database ({error}); "
              "restart its collector with this version to upgrade it", file=sys.stderr)
        return 1
    for row in rows:
        with_cost(row)
        row["status"] = session_state(row, now)
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("No sessions match." if where else "No sessions yet.")
        return 0
    print(render_sessions(rows, now))
    plural = "s" if total != 1 else ""
    shown = f"{len(rows)} of {total} session{plural} (--limit 0 shows all)" \
        if len(rows) < total else f"{total} session{plural}"
    print(f"\n{shown}{' matching' if where else ''}. Timeline of one: "
          "flightdeck-sensor events SESSION")
    return 0


def with_cost(session: dict[str, Any]) -> dict[str, Any]:
    """The session with ``cost_usd`` (None unless every call was priced) and the cost as
    shown (``cost``); a database from before cost (read-only, not migrated) is unpriced."""
    if "calls_unpriced" not in session:
        session["cost_usd_known"], session["calls_unpriced"] = 0.0, session["calls"]
    known, unpriced = session["cost_usd_known"], session["calls_unpriced"]
    session["cost_usd"] = session_cost_usd(known, unpriced)
    session["cost"] = cost_text(known, unpriced)
    return session


def render_sessions(rows: Sequence[dict[str, Any]], now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return _table(
        ["SESSION", "AGENT", "STARTED", "LAST SEEN", "STATE", "CALLS", "TOKENS IN", "TOKENS OUT",
         "COST", "ERRORS"],
        [[row["session_id"][:_SHORT_ID], _clip(row["agent_name"] or "-", 32),
          _local(row["started_at"], "%Y-%m-%d %H:%M:%S"),
          _local(row["last_seen_at"], "%Y-%m-%d %H:%M:%S"), shown_state(row, now),
          _count(row["calls"]), _count(row["tokens_in"]), _count(row["tokens_out"]),
          with_cost(dict(row))["cost"], _count(row["errors"])] for row in rows],
        right_aligned={5, 6, 7, 8, 9},
    )


def shown_state(session: dict[str, Any], now: datetime | None = None) -> str:
    """active, idle or closed; stopped or blocked (by a directive, by a budget) instead,
    with the close reason once the session ended."""
    control = session.get("control_state")
    if not control:
        return session_state(session, now or datetime.now(timezone.utc))
    if session["state"] == "closed":
        return f"{control} ({session.get('close_reason') or 'closed'})"
    return str(control)


def print_events(db: Path | None, session_prefix: str, as_json: bool) -> int:
    conn = open_for_reading(db)
    if conn is None:
        return 1
    with conn:
        session = _find_session(conn, session_prefix.strip().lower())
        if session is None:
            return 1
        rows = stored_events(conn, session["session_id"])
    events = [row["event"] for row in rows]
    if as_json:
        print(json.dumps(events, indent=2))
        return 0
    attached = [bool(row["attached"]) for row in rows]
    print(render_session_header(session))
    print()
    print(render_timeline(events, attached))
    return 0


def stored_events(conn: sqlite3.Connection, session_id: str, after: int | None = None,
                  ) -> list[dict[str, Any]]:
    """The session's events, each ``{"seq": rowid, "event": the event as sent plus its
    ``cost_usd``, "attached": bool}``: in time order, or in arrival order after rowid
    ``after``."""
    cost = "e.cost_usd" if _has_column(conn, "events", "cost_usd") else "NULL"
    rows = conn.execute(
        f"SELECT e.rowid AS seq, e.body, {cost} AS cost_usd,"
        " a.event_id IS NOT NULL AS attached FROM events e"
        " LEFT JOIN attachments a ON a.event_id = e.id AND a.session_id = e.session_id"
        " WHERE e.session_id = ?" + (" AND e.rowid > ? ORDER BY e.rowid" if after is not None
                                     else " ORDER BY e.timestamp, e.rowid"),
        (session_id, after) if after is not None else (session_id,),
    ).fetchall()
    for row in rows:
        event = json.loads(row.pop("body"))
        event["cost_usd"] = row.pop("cost_usd")
        row["event"] = event
    return rows


def _has_column(conn: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row["name"] == column for row in conn.execute(f"PRAGMA table_info({table})"))


def _find_session(conn: sqlite3.Connection, prefix: str) -> dict[str, Any] | None:
    session, problem = lookup_session(conn, prefix)
    if session is None:
        print(f"flightdeck-sensor events: {problem}", file=sys.stderr)
    return session


def lookup_session(conn: sqlite3.Connection, prefix: str) -> tuple[dict[str, Any] | None, str]:
    """The one session whose id starts with ``prefix``, else None and why not."""
    if not _SESSION_PREFIX.fullmatch(prefix):
        return None, f"{printable(prefix, 60)!r} is not a session id or a prefix of one"
    matches = conn.execute("SELECT * FROM sessions WHERE session_id LIKE ? ORDER BY started_at"
                           " LIMIT 6", (prefix + "%",)).fetchall()
    if len(matches) == 1:
        found: dict[str, Any] = matches[0]
        return found, ""
    if not matches:
        return None, f"no session starts with {prefix!r}"
    listed = ", ".join(row["session_id"] for row in matches[:5])
    return None, f"{prefix!r} is ambiguous: {listed}{', ...' if len(matches) > 5 else ''}"


def render_session_header(stored: dict[str, Any]) -> str:
    session = {key: value if isinstance(value, (int, float)) or value is None
               else printable(value, CELL_LIMIT) for key, value in stored.items()}
    state = str(session["state"])
    if session.get("control_state"):
        state = f"{session['control_state']}, {state}"
    if session["close_reason"]:
        state += f" ({session['close_reason']})"
    agent = f"{session['agent_name'] or '-'} ({session['agent_type'] or '-'})"
    lines = [
        f"session    {session['session_id']}",
        f"agent      {agent}   sensor {session['sensor_version'] or '-'}",
        f"state      {state}   started {_local(session['started_at'], '%Y-%m-%d %H:%M:%S')}"
        f"   last seen {_local(session['last_seen_at'], '%Y-%m-%d %H:%M:%S')}",
        f"calls      {_count(session['calls'])}   tokens {_count(session['tokens_in'])} in / "
        f"{_count(session['tokens_out'])} out   cost {with_cost(dict(stored))['cost']}"
        f"   errors {_count(session['errors'])}",
    ]
    if session["parent_session_id"]:
        lines.insert(1, f"parent     {session['parent_session_id']}"
                        f"   role {session['agent_role'] or '-'}")
    if session["attachments"]:
        lines.append(f"attached   {session['attachments']} time(s), last at "
                     f"{_local(session['last_attached_at'], '%Y-%m-%d %H:%M:%S')}")
    return "\n".join(lines)


TIMELINE_HEADERS = ("TIME", "EVENT", "MODEL", "IN", "OUT", "COST", "LATENCY", "DETAIL")
TIMELINE_RIGHT_ALIGNED = frozenset({3, 4, 5, 6})


def render_timeline(events: Sequence[dict[str, Any]], attached: Sequence[bool]) -> str:
    if not events:
        return "(no events)"
    dates = {_local(event.get("timestamp"), "%Y-%m-%d") for event in events}
    time_format = "%H:%M:%S.%f" if len(dates) == 1 else "%m-%d %H:%M:%S.%f"
    rows = [timeline_cells(event, was_attached, time_format)
            for event, was_attached in zip(events, attached, strict=True)]
    return _table(TIMELINE_HEADERS, rows, right_aligned=set(TIMELINE_RIGHT_ALIGNED))


def timeline_cells(event: dict[str, Any], was_attached: bool, time_format: str) -> list[str]:
    """One event's cells under TIMELINE_HEADERS (not yet made printable)."""
    cost = event.get("cost_usd")
    return [_local(event.get("timestamp"), time_format)[:-3], str(event.get("event_type")),
            _clip(str(event.get("model") or ""), 32), *_token_cells(event),
            event_cost_text(str(event.get("event_type")), event,
                            cost if isinstance(cost, (int, float)) else None),
            _latency(event.get("latency_ms")), _detail(event, was_attached)]


def _token_cells(event: dict[str, Any]) -> list[str]:
    tokens_in, tokens_out = event.get("tokens_input"), event.get("tokens_output")
    if event.get("event_type") == "pre_call":
        return [f"~{tokens_in:,}" if isinstance(tokens_in, int) else "", ""]
    return [_count(tokens_in) if tokens_in is not None else "",
            _count(tokens_out) if tokens_out is not None else ""]


def _latency(value: object) -> str:
    return f"{value:,} ms" if isinstance(value, int) else ""


def _detail(event: dict[str, Any], was_attached: bool) -> str:
    describe = _DETAILS.get(str(event.get("event_type")))
    return describe(event, was_attached) if describe else ""


def _start_detail(event: dict[str, Any], was_attached: bool) -> str:
    text = f"sensor {event.get('sensor_version')}"
    return text + ", attached to the existing session" if was_attached else text


def _end_detail(event: dict[str, Any], was_attached: bool) -> str:
    return str(event.get("close_reason"))


def _pre_call_detail(event: dict[str, Any], was_attached: bool) -> str:
    via = event.get("estimated_via")
    return f"estimate via {via}" if via else ""


def _post_call_detail(event: dict[str, Any], was_attached: bool) -> str:
    parts = []
    dimensions = event.get("output_dimensions")
    if isinstance(dimensions, dict):
        parts.append(f"{dimensions.get('count')} x {dimensions.get('dimension')} dims")
    streaming = event.get("streaming")
    if isinstance(streaming, dict):
        parts.append(_stream_summary(streaming))
    elif event.get("stop_reason"):
        parts.append(f"stop: {event['stop_reason']}")
    return ", ".join(parts)


def _stream_summary(streaming: dict[str, Any]) -> str:
    outcome = str(streaming.get("final_outcome") or "?")
    if streaming.get("abort_reason"):
        outcome += f" ({streaming['abort_reason']})"
    ttft = streaming.get("ttft_ms")
    ttft_text = f"ttft {ttft:,} ms" if isinstance(ttft, (int, float)) else "ttft ?"
    return f"stream: {ttft_text}, {streaming.get('chunk_count', '?')} chunks, {outcome}"


def _error_detail(event: dict[str, Any], was_attached: bool) -> str:
    error = event.get("error") if isinstance(event.get("error"), dict) else {}
    assert isinstance(error, dict)
    parts = [str(error.get("error_type"))]
    if error.get("http_status"):
        parts.append(f"HTTP {error['http_status']}")
    parts.append(f"attempt {event.get('retry_attempt')}")
    if event.get("terminal"):
        parts.append("terminal")
    elif error.get("is_retryable"):
        parts.append("retryable")
    return ", ".join(parts)


def _tool_detail(event: dict[str, Any], was_attached: bool) -> str:
    return f"tool {event.get('tool_name')}"


def _policy_detail(event: dict[str, Any], was_attached: bool) -> str:
    """What was decided and why, against which budget: the threshold and the tokens used of
    the limit; the models of a degrade or a block."""
    decision = event.get("policy_decision")
    decision = decision if isinstance(decision, dict) else {}
    parts = [f"{decision.get('decision')}: {decision.get('reason')}"]
    models = _models_text(event)
    if models:
        parts.append(models)
    used, limit, threshold = (event.get("tokens_used"), event.get("token_limit"),
                              event.get("threshold_pct"))
    if isinstance(used, int) and isinstance(limit, int):
        budget = f"{used:,} of {limit:,} tokens"
        if isinstance(threshold, (int, float)):
            budget += f" (threshold {threshold}%)"
        parts.append(budget)
    parts.append(f"policy {decision.get('policy_id')}, {decision.get('scope')}"
                 + (f", {event['source']}" if event.get("source") else ""))
    return "; ".join(parts)


def _models_text(event: dict[str, Any]) -> str:
    if event.get("from_model") or event.get("to_model"):
        return f"{event.get('from_model') or '?'} -> {event.get('to_model') or '?'}"
    if event.get("intended_model"):
        return f"intended {event['intended_model']}"
    return ""


def _directive_result_detail(event: dict[str, Any], was_attached: bool) -> str:
    """Which directive, what became of it, and what the agent said."""
    name, action = event.get("directive_name"), event.get("directive_action")
    text = f"{name}" + (f" ({action})" if action and action != name else "")
    text += f" {event.get('directive_status')}"
    said = event.get("error") if event.get("error") is not None else event.get("result")
    if said is not None:
        text += ": " + (said if isinstance(said, str) else json.dumps(said, default=str))
    return text


_DETAILS: dict[str, Callable[[dict[str, Any], bool], str]] = {
    "session_start": _start_detail,
    "session_end": _end_detail,
    "pre_call": _pre_call_detail,
    "post_call": _post_call_detail,
    "embeddings": _post_call_detail,
    "llm_error": _error_detail,
    "tool_call": _tool_detail,
    "policy_warn": _policy_detail,
    "policy_degrade": _policy_detail,
    "policy_block": _policy_detail,
    "directive_result": _directive_result_detail,
}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right_aligned: set[int]) -> str:
    rows = [[printable(cell, CELL_LIMIT) for cell in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in rows)) for i, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
                  for i, cell in enumerate(cells)]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def open_for_reading(db: Path | None) -> sqlite3.Connection | None:
    path = db or default_db_path()
    try:
        return open_readonly(path)
    except (FileNotFoundError, sqlite3.Error) as error:
        print(f"flightdeck-sensor: no collector database at {path} ({error}). "
              "Start one with: flightdeck-sensor collect", file=sys.stderr)
        return None


def _local(utc_text: object, fmt: str) -> str:
    """A stored UTC timestamp in the reader's local time."""
    if not isinstance(utc_text, str):
        return "-"
    try:
        moment = datetime.fromisoformat(utc_text.replace("Z", "+00:00"))
    except ValueError:
        return printable(utc_text, 40)
    return moment.astimezone().strftime(fmt)


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _clip(text: str, width: int) -> str:
    return printable(text, width)


def printable_line(text: str) -> str:
    return printable(text, 1000)


def directive_state(row: dict[str, Any]) -> str:
    """issued, delivered, then what the agent reported: acknowledged, success or error."""
    if row.get("status"):
        return str(row["status"])
    return "delivered" if row.get("delivered_at") else "issued"


def render_directives(rows: Sequence[dict[str, Any]]) -> str:
    return _table(
        ["ISSUED", "DIRECTIVE", "SESSION", "ACTION", "STATE", "SINCE", "DETAIL"],
        [[_local(row["issued_at"], "%Y-%m-%d %H:%M:%S"), row["id"][:_SHORT_ID],
          row["session_id"][:_SHORT_ID], _action_text(row), row["state"],
          _local(row.get("status_at") or row.get("delivered_at") or row["issued_at"],
                 "%H:%M:%S"),
          _clip(_directive_detail(row), 80)] for row in rows],
        right_aligned=set(),
    )


def _action_text(row: dict[str, Any]) -> str:
    if row["action"] == "custom":
        return f"custom:{row['name']}"
    if row["action"] == "degrade" and row.get("degrade_to"):
        return f"degrade -> {row['degrade_to']}"
    return str(row["action"])


def _directive_detail(row: dict[str, Any]) -> str:
    """The agent's answer when it gave one, else what was asked."""
    for key in ("error", "result"):
        if row.get(key) is not None:
            value = row[key]
            return f"{key}: " + (value if isinstance(value, str) else json.dumps(value))
    payload = row.get("payload")
    if row["action"] == "custom" and isinstance(payload, dict):
        return f"parameters {json.dumps(payload.get('parameters'), sort_keys=True)}"
    if row["action"] == "policy_update" and isinstance(payload, dict):
        return f"limit {payload.get('token_limit')}"
    return f"reason: {row['reason']}" if row.get("reason") else ""


def render_registered(rows: Sequence[dict[str, Any]]) -> str:
    """Each registered directive, then its parameters, one line each."""
    lines = []
    for row in rows:
        lines.append(printable_line(f"{row['name']}  (agent {row['flavor']!r}, fingerprint "
                                    f"{str(row['fingerprint'])[:16]})"))
        if row["description"]:
            lines.append("    " + printable_line(row["description"]))
        for parameter in row["parameters"]:
            flags = "required" if parameter.get("required") else \
                f"default {json.dumps(parameter.get('default'))}"
            options = f", one of {json.dumps(parameter['options'])}" \
                if parameter.get("options") else ""
            described = f": {parameter['description']}" if parameter.get("description") else ""
            lines.append("    --param " + printable_line(
                f"{parameter.get('name')}=<{parameter.get('type')}>  ({flags}{options})"
                f"{described}"))
    return "\n".join(lines)
