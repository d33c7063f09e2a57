"""The console's read side: the JSON answers its page asks for, each bounded.

Functions on a read-only connection whose rows are dicts (``_store.open_readonly``).
Every list is a page or a window chosen on the server (a limit, a keyset cursor, a
bucketed series), never a whole table, so the page stays usable with tens of
thousands of sessions and a session of a hundred thousand events. Query
parameters are checked here: anything out of bounds or unknown is a
:class:`BadQuery` (a 400), never an error from the database.

Cost: ``events.cost_usd`` (NULL: a call the price database could not price) and
each session's ``cost_usd_known`` and ``calls_unpriced``, shown as the command
line shows them (``_cost.cost_text``): "?" when nothing could be priced, "$x+?"
when some calls could not, never "$0" for a cost nobody knows.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from . import _control
from ._cost import cost_text, event_cost_text
from ._report import directive_state
from ._session_query import IDLE_AFTER, session_filter
from ._validate import is_canonical_uuid, utc_text

PAGE_DEFAULT, PAGE_MAX = 50, 200
OFFSET_MAX = 1_000_000
TIMELINE_DEFAULT, TIMELINE_MAX = 200, 500
CHART_POINTS = 400
CHART_SESSIONS = 32
FLEET_BUCKETS = 30
FLEET_MAX_ROWS = 200_000
SLOWEST_CALLS = 10
CHILDREN_MAX = 200
NESTING_DEPTH = 4
DIRECTIVES_MAX = 200
MAX_TEXT = 200
WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400,
           "30d": 30 * 86400}
STATES = ("active", "idle", "ended", "stopped", "blocked")  # "ended": stopped, blocked too
# The state shown: stopped or blocked (the control plane's word), ended, idle or active.
# Idle is measured from the last event: a heartbeat says the process lives, not that it works.
_STATE_SQL = ("CASE WHEN control_state IS NOT NULL THEN control_state"
              " WHEN state = 'closed' THEN 'ended'"
              " WHEN coalesce(last_event_at, last_seen_at) < :idle_before THEN 'idle'"
              " ELSE 'active' END")
_SORTS = {"session": "session_id", "agent": "agent_name", "flavor": "flavor",
          "host": "hostname", "state": "shown_state", "started": "started_at",
          "last_seen": "last_seen_at", "calls": "calls", "tokens": "(tokens_in + tokens_out)",
          "cost": "cost_sort", "errors": "errors"}
_CALL_TYPES = ("post_call", "embeddings", "llm_error")
_CALLS_SQL = "('post_call', 'embeddings', 'llm_error')"
_EVENT_KEY = "|"


class BadQuery(ValueError):
    """A query parameter out of bounds, unknown or malformed (answered 400)."""


# --- parameters -------------------------------------------------------------------------------


def _one(params: Mapping[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadQuery(f"{name}: given more than once")
    if len(values[0]) > MAX_TEXT:
        raise BadQuery(f"{name}: longer than {MAX_TEXT} characters")
    return values[0]


def _int(params: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    text = _one(params, name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()):
        raise BadQuery(f"{name}: a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise BadQuery(f"{name}: a whole number from {low} to {high}")
    return value


def _choice(params: Mapping[str, list[str]], name: str, choices: Any, default: str) -> str:
    text = _one(params, name)
    if text is None or text == "":
        return default
    if text not in choices:
        raise BadQuery(f"{name}: one of {', '.join(sorted(choices))}")
    return text


def _window_start(params: Mapping[str, list[str]], now: datetime) -> datetime | None:
    """``since``: one of WINDOWS, or "all" (None)."""
    name = _choice(params, "since", {*WINDOWS, "all"}, "all")
    return None if name == "all" else now - timedelta(seconds=WINDOWS[name])


def _idle_before() -> str:
    return utc_text(datetime.now(timezone.utc) - IDLE_AFTER)


# --- sessions ---------------------------------------------------------------------------------


def sessions_page(conn: sqlite3.Connection, params: Mapping[str, list[str]]) -> dict[str, Any]:
    """A page of sessions, sorted and filtered. Unfiltered, the page is of top-level
    sessions, each with its sub-sessions (``parent_session_id``) nested as ``children``;
    filtered, the matching sessions are listed flat (each names its parent)."""
    limit = _int(params, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    offset = _int(params, "offset", 0, 0, OFFSET_MAX)
    sort = _choice(params, "sort", _SORTS, "started")
    order = _choice(params, "order", {"asc", "desc"}, "desc")
    agent = _one(params, "agent") or None
    state = _choice(params, "state", {*STATES, ""}, "")
    now = _now()
    # The command line's filter (sessions --agent --state --since), the same words.
    condition, values = session_filter(agent, [state] if state else [],
                                       _window_start(params, now), now)
    values["idle_before"] = _idle_before()
    filtered = bool(condition)
    if not filtered:
        condition = (" WHERE (parent_session_id IS NULL OR parent_session_id NOT IN"
                     " (SELECT session_id FROM sessions))")
    base = _sessions_select(conn)
    total = conn.execute(f"SELECT count(*) AS n FROM ({base}){condition}", values).fetchone()["n"]
    # NULLs (an unknown cost) sort last whichever the order.
    sort_sql = _SORTS[sort]
    rows = conn.execute(
        f"SELECT * FROM ({base}){condition} ORDER BY {sort_sql} IS NULL, {sort_sql} {order},"
        f" session_id {order} LIMIT :limit OFFSET :offset",
        {**values, "limit": limit, "offset": offset}).fetchall()
    sessions = [_session_json(row) for row in rows]
    if not filtered:
        _nest_children(conn, base, sessions, values)
    return {"total": total, "offset": offset, "limit": limit, "sort": sort, "order": order,
            "nested": not filtered, "sessions": sessions, "now": utc_text(_now())}


def _sessions_select(conn: sqlite3.Connection) -> str:
    # cost_sort: a cost nobody knows (no call priced) is NULL, sorted last.
    return ("SELECT session_id, agent_name, agent_type, hostname, flavor, parent_session_id,"
            " agent_role, sensor_version, started_at, last_seen_at, last_event_at, state,"
            " close_reason, control_state, events, calls, tokens_in, tokens_out, errors,"
            " cost_usd_known, calls_unpriced, CASE WHEN calls_unpriced > 0 AND"
            " cost_usd_known <= 0 THEN NULL ELSE cost_usd_known END AS cost_sort,"
            f" {_STATE_SQL} AS shown_state FROM sessions")


def _session_json(row: dict[str, Any]) -> dict[str, Any]:
    session = dict(row)
    session["state_shown"] = session.pop("shown_state")
    session["cost_usd"] = session.pop("cost_sort")
    session["cost_text"] = cost_text(session["cost_usd_known"], session["calls_unpriced"])
    session["tokens"] = (session["tokens_in"] or 0) + (session["tokens_out"] or 0)
    return session


def _nest_children(conn: sqlite3.Connection, base: str, parents: list[dict[str, Any]],
                   values: dict[str, Any]) -> None:
    """Each session's sub-sessions under it, oldest first, a few levels deep, bounded."""
    level = parents
    left = CHILDREN_MAX
    for _ in range(NESTING_DEPTH):
        if not level or left <= 0:
            return
        by_id = {session["session_id"]: session for session in level}
        for session in level:
            session["children"] = []
        marks = ", ".join(f":p{index}" for index in range(len(by_id)))
        rows = conn.execute(
            f"SELECT * FROM ({base}) WHERE parent_session_id IN ({marks})"
            f" ORDER BY started_at, session_id LIMIT :left",
            {**values, **{f"p{index}": key for index, key in enumerate(by_id)},
             "left": left}).fetchall()
        left -= len(rows)
        level = []
        for row in rows:
            child = _session_json(row)
            by_id[child["parent_session_id"]]["children"].append(child)
            level.append(child)


def session_detail(conn: sqlite3.Connection, session_id: str) -> dict[str, Any] | None:
    """One session with its policy in force, its children's ids, the custom directives
    its agent registered and the directives issued to it."""
    row = conn.execute(f"SELECT * FROM ({_sessions_select(conn)}) WHERE session_id = :id",
                       {"id": session_id, "idle_before": _idle_before()}).fetchone()
    if row is None:
        return None
    session = _session_json(row)
    session["policy"] = _control.effective_policy(conn, session["flavor"], session_id)
    session["children"] = [child["session_id"] for child in conn.execute(
        "SELECT session_id FROM sessions WHERE parent_session_id = ? ORDER BY started_at"
        " LIMIT ?", (session_id, CHILDREN_MAX))]
    session["registered"] = registered_directives(conn, session["flavor"] or "")
    session["directives"] = directives_of(conn, session_id=session_id)
    session["now"] = utc_text(_now())
    return session


def checked_session_id(text: str) -> str:
    if not is_canonical_uuid(text):
        raise BadQuery("not a session id")
    return text.lower()


# --- one session's timeline -------------------------------------------------------------------


def timeline(conn: sqlite3.Connection, session_id: str,
             params: Mapping[str, list[str]]) -> dict[str, Any]:
    """A window of the session's events in time order (the pre_call of each call left
    out: its post_call or llm_error carries the call), by keyset: ``after`` or
    ``before`` a cursor (``TIMESTAMP|ID`` of an event), ``before=end`` for the last page."""
    limit = _int(params, "limit", TIMELINE_DEFAULT, 1, TIMELINE_MAX)
    after, before = _one(params, "after"), _one(params, "before")
    if after is not None and before is not None:
        raise BadQuery("after and before: one of them")
    columns = ("id, event_type, timestamp, model, tokens_input, tokens_output, latency_ms,"
               " cost_usd, body")
    query = (f"SELECT {columns} FROM events WHERE session_id = :session"
             " AND event_type != 'pre_call'")
    values: dict[str, Any] = {"session": session_id, "limit": limit + 1}
    if after is not None:
        values["t"], values["i"] = _cursor(after)
        rows = conn.execute(query + " AND (timestamp, id) > (:t, :i) ORDER BY timestamp, id"
                            " LIMIT :limit", values).fetchall()
        more_before, more_after = True, len(rows) > limit
        rows = rows[:limit]
    elif before is not None:
        if before != "end":
            values["t"], values["i"] = _cursor(before)
            query += " AND (timestamp, id) < (:t, :i)"
        rows = conn.execute(query + " ORDER BY timestamp DESC, id DESC LIMIT :limit",
                            values).fetchall()
        more_before, more_after = len(rows) > limit, before != "end"
        rows = rows[:limit][::-1]
    else:
        rows = conn.execute(query + " ORDER BY timestamp, id LIMIT :limit", values).fetchall()
        more_before, more_after = False, len(rows) > limit
        rows = rows[:limit]
    total = conn.execute("SELECT count(*) AS n FROM events WHERE session_id = ?",
                         (session_id,)).fetchone()["n"]
    events = [_timeline_event(row) for row in rows]
    return {"events": events, "total_events": total, "more_before": more_before,
            "more_after": more_after,
            "first": _cursor_of(rows[0]) if rows else None,
            "last": _cursor_of(rows[-1]) if rows else None}


def _cursor(text: str) -> tuple[str, str]:
    when, sep, event_id = text.partition(_EVENT_KEY)
    if not sep or not when or not event_id or len(when) > 40:
        raise BadQuery("cursor: TIMESTAMP|ID of an event")
    return when, event_id


def _cursor_of(row: dict[str, Any]) -> str:
    return f"{row['timestamp']}{_EVENT_KEY}{row['id']}"


def _timeline_event(row: dict[str, Any]) -> dict[str, Any]:
    """What a row of the timeline shows; the captured content is left out (see
    :func:`event_detail`)."""
    try:
        raw = json.loads(row["body"])
    except ValueError:
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    event: dict[str, Any] = {
        "id": row["id"], "type": row["event_type"], "timestamp": row["timestamp"],
        "model": row["model"], "model_requested": _str(raw.get("model_requested")),
        "provider": _str(raw.get("provider")), "tokens_in": row["tokens_input"],
        "tokens_out": row["tokens_output"], "tokens_cached": _int_or_none(
            raw.get("tokens_cache_read")), "cost_usd": row["cost_usd"],
        "cost_text": event_cost_text(row["event_type"], raw, row["cost_usd"]),
        "latency_ms": row["latency_ms"], "stop_reason": _str(raw.get("stop_reason")),
        "has_content": raw.get("has_content") is True,
        "cursor": _cursor_of(row),
    }
    streaming = raw.get("streaming")
    if isinstance(streaming, dict):
        event["stream"] = {"ttft_ms": _number(streaming.get("ttft_ms")),
                           "chunks": _int_or_none(streaming.get("chunk_count")),
                           "outcome": _str(streaming.get("final_outcome")),
                           "abort_reason": _str(streaming.get("abort_reason"))}
    error = raw.get("error")
    if isinstance(error, dict):
        event["error"] = {"class": _str(error.get("error_type")),
                          "message": _str(error.get("error_message") or error.get("message")),
                          "http_status": _int_or_none(error.get("http_status"))}
    event.update(_type_details(row["event_type"], raw))
    return event


def _type_details(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    if kind == "tool_call":
        return {"tool_name": _str(raw.get("tool_name"))}
    if kind.startswith("policy_"):
        decision = raw.get("policy_decision")
        decision = decision if isinstance(decision, dict) else {}
        return {"policy": {"decision": _str(decision.get("decision")),
                           "reason": _str(decision.get("reason")),
                           "tokens_used": _int_or_none(raw.get("tokens_used")),
                           "token_limit": _int_or_none(raw.get("token_limit")),
                           "threshold_pct": _number(raw.get("threshold_pct")),
                           "from_model": _str(raw.get("from_model")),
                           "to_model": _str(raw.get("to_model"))}}
    if kind == "directive_result":
        said = raw.get("error") if raw.get("error") is not None else raw.get("result")
        return {"directive": {"name": _str(raw.get("directive_name")),
                              "action": _str(raw.get("directive_action")),
                              "status": _str(raw.get("directive_status")),
                              "said": _short_json(said)}}
    if kind == "session_end":
        return {"close_reason": _str(raw.get("close_reason"))}
    return {}


def event_detail(conn: sqlite3.Connection, session_id: str,
                 params: Mapping[str, list[str]]) -> dict[str, Any] | None:
    """One event as stored (its captured content included), named by its ``cursor``
    (``TIMESTAMP|ID``: the events key), and for a call, the request its pre_call
    captured (the latest pre_call before it)."""
    cursor = _one(params, "cursor")
    if cursor is None:
        raise BadQuery("cursor: TIMESTAMP|ID of an event")
    when, event_id = _cursor(cursor)
    row = conn.execute("SELECT event_type, timestamp, body FROM events WHERE session_id = ?"
                       " AND timestamp = ? AND id = ?", (session_id, when, event_id)).fetchone()
    if row is None:
        return None
    answer: dict[str, Any] = {"event": json.loads(row["body"])}
    if row["event_type"] in _CALL_TYPES:
        pre = conn.execute("SELECT body FROM events WHERE session_id = ? AND timestamp <= ?"
                           " AND event_type = 'pre_call' ORDER BY timestamp DESC LIMIT 1",
                           (session_id, row["timestamp"])).fetchone()
        if pre is not None:
            answer["request"] = json.loads(pre["body"]).get("content")
    return answer


class UsageCharts:
    """Each session's cumulative tokens and cost over its calls, kept between requests
    (the CHART_SESSIONS asked for last) and brought up to date with the calls stored since,
    read from the events key after the last one summed: a page following a session of
    100,000 calls costs a few rows a refresh, not a pass over them all. A call stored out
    of order (before the last one summed) shows as a count short of the session's, and the
    session's chart is made again."""

    def __init__(self) -> None:
        self._charts: OrderedDict[str, _Chart] = OrderedDict()
        self._lock = threading.Lock()

    def usage(self, conn: sqlite3.Connection, session: dict[str, Any]) -> dict[str, Any]:
        """The chart's points (at most about CHART_POINTS), the budget in force and its
        thresholds in tokens, the session's cost as the command line writes it."""
        session_id, calls = session["session_id"], session["calls"]
        with self._lock:
            chart = self._charts.pop(session_id, None)
            if chart is not None:
                chart.catch_up(conn, session_id)
            # Fewer than the session counts: one came in before the last summed. (More is
            # a call stored since the session's row was read.)
            if chart is None or chart.calls < calls:
                chart = _Chart(calls)
                chart.catch_up(conn, session_id)
            self._charts[session_id] = chart
            while len(self._charts) > CHART_SESSIONS:
                self._charts.popitem(last=False)
            points = chart.drawn()
        return {"points": points, **budget_lines(conn, session["flavor"], session_id),
                "cost_text": session["cost_text"]}


class _Chart:
    """Running sums of one session's calls in time order, a point every ``step`` calls."""

    def __init__(self, expected_calls: int) -> None:
        self.calls = 0
        self.tokens = 0
        self.cost = 0.0
        self.cursor = ("", "")
        self.step = max(1, -(-expected_calls // CHART_POINTS))
        self.points: list[list[Any]] = []
        self.last: list[Any] | None = None

    def catch_up(self, conn: sqlite3.Connection, session_id: str) -> None:
        rows = conn.execute(
            "SELECT timestamp, id, coalesce(tokens_input, 0) + coalesce(tokens_output, 0)"
            " AS tokens, coalesce(cost_usd, 0) AS cost FROM events WHERE session_id = ?"
            f" AND (timestamp, id) > (?, ?) AND event_type IN {_CALLS_SQL}"
            " ORDER BY timestamp, id", (session_id, *self.cursor))
        for row in rows:
            self.calls += 1
            self.tokens += row["tokens"]
            self.cost += row["cost"]
            self.last = [row["timestamp"], self.tokens, round(self.cost, 6)]
            self.cursor = (row["timestamp"], row["id"])
            if self.calls % self.step == 0 or self.calls == 1:
                self.points.append(self.last)
                if len(self.points) > 2 * CHART_POINTS:
                    self.step *= 2
                    self.points = [self.points[0], *self.points[2::2]]

    def drawn(self) -> list[list[Any]]:
        if self.last is not None and (not self.points or self.points[-1] is not self.last):
            return [*self.points, self.last]
        return list(self.points)


def budget_lines(conn: sqlite3.Connection, flavor: str | None,
                 session_id: str) -> dict[str, Any]:
    """The policy in force and its thresholds in tokens (None without a policy)."""
    policy = _control.effective_policy(conn, flavor, session_id)
    thresholds = None
    if policy is not None:
        limit = policy["token_limit"]
        thresholds = {name: limit * pct // 100 for name, pct in (
            ("warn", policy["warn_at_pct"]), ("degrade", policy["degrade_at_pct"]),
            ("block", policy["block_at_pct"])) if pct is not None}
        thresholds["limit"] = limit
    return {"policy": policy, "thresholds": thresholds}


# --- the fleet --------------------------------------------------------------------------------


def fleet(conn: sqlite3.Connection, params: Mapping[str, list[str]]) -> dict[str, Any]:
    """Calls, tokens, cost and errors per agent and per model, in FLEET_BUCKETS buckets
    over the window; the slowest calls; the error mix. Only the window's events are read
    (the first of them found by rowid, arrival order, with a binary search), and SQLite
    sums them: what reaches Python is one row per (agent, model, bucket)."""
    name = _choice(params, "since", WINDOWS, "1h")
    end = _now()
    start = end - timedelta(seconds=WINDOWS[name])
    window = {"first": _first_rowid_since(conn, utc_text(start)), "start": utc_text(start),
              "bucket": WINDOWS[name] / FLEET_BUCKETS, "rows": FLEET_MAX_ROWS}
    calls = ("SELECT e.*, coalesce(s.flavor, s.agent_name, '?') AS agent FROM events e"
             " LEFT JOIN sessions s ON s.session_id = e.session_id WHERE e.rowid >= :first"
             f" AND e.event_type IN {_CALLS_SQL} AND e.timestamp >= :start LIMIT :rows")
    per_agent: dict[str, _Series] = defaultdict(_Series)
    per_model: dict[str, _Series] = defaultdict(_Series)
    scanned = 0
    for row in conn.execute(
            "SELECT agent, coalesce(model, '?') AS model, min(:buckets - 1, max(0, CAST("
            "(julianday(timestamp) - julianday(:start)) * 86400 / :bucket AS INTEGER))) AS b,"
            " count(*) AS calls, sum(coalesce(tokens_input, 0) + coalesce(tokens_output, 0))"
            " AS tokens, sum(coalesce(cost_usd, 0)) AS cost,"
            " sum(event_type = 'llm_error') AS errors, sum(cost_usd IS NULL AND"
            " (event_type != 'llm_error' OR tokens_input IS NOT NULL"
            " OR tokens_output IS NOT NULL)) AS unpriced"
            f" FROM ({calls}) GROUP BY agent, model, b",
            {**window, "buckets": FLEET_BUCKETS}):
        scanned += row["calls"]
        for series in (per_agent[row["agent"]], per_model[row["model"]]):
            series.add(row)
    slowest = conn.execute(
        "SELECT session_id, id AS event_id, agent, model, latency_ms, event_type AS type,"
        f" timestamp FROM ({calls}) WHERE latency_ms IS NOT NULL"
        " ORDER BY latency_ms DESC, id LIMIT :slowest", {**window, "slowest": SLOWEST_CALLS}
    ).fetchall()
    errors = conn.execute(
        "SELECT coalesce(json_extract(body, '$.error.error_type'), 'unknown') AS class,"
        f" count(*) AS count FROM ({calls}) WHERE event_type = 'llm_error'"
        " GROUP BY 1 ORDER BY count DESC, class LIMIT 20", window).fetchall()
    return {"since": name, "start": window["start"], "end": utc_text(end),
            "bucket_seconds": window["bucket"], "buckets": FLEET_BUCKETS,
            "agents": _series_json(per_agent), "models": _series_json(per_model),
            "slowest": slowest, "errors": errors,
            "scanned": scanned, "truncated": scanned >= FLEET_MAX_ROWS}


class _Series:
    __slots__ = ("calls", "cost", "cost_unknown", "errors", "tokens")

    def __init__(self) -> None:
        self.calls = [0] * FLEET_BUCKETS
        self.tokens = [0] * FLEET_BUCKETS
        self.errors = [0] * FLEET_BUCKETS
        self.cost = [0.0] * FLEET_BUCKETS
        self.cost_unknown = 0

    def add(self, row: dict[str, Any]) -> None:
        """One (agent, model, bucket) group's sums."""
        bucket = row["b"]
        self.calls[bucket] += row["calls"]
        self.tokens[bucket] += row["tokens"]
        self.errors[bucket] += row["errors"]
        self.cost[bucket] += row["cost"]
        self.cost_unknown += row["unpriced"]


def _series_json(series: dict[str, _Series]) -> list[dict[str, Any]]:
    """Busiest first, at most 20 (the rest summed as "others")."""
    ranked = sorted(series.items(), key=lambda item: (-sum(item[1].calls), item[0]))
    shown = ranked[:20]
    if len(ranked) > 20:
        others = _Series()
        for _, each in ranked[20:]:
            for index in range(FLEET_BUCKETS):
                others.calls[index] += each.calls[index]
                others.tokens[index] += each.tokens[index]
                others.errors[index] += each.errors[index]
                others.cost[index] += each.cost[index]
            others.cost_unknown += each.cost_unknown
        shown.append((f"({len(ranked) - 20} others)", others))
    return [{"name": name, "calls": each.calls, "tokens": each.tokens, "errors": each.errors,
             "cost": [round(value, 6) for value in each.cost],
             "total_calls": sum(each.calls), "total_tokens": sum(each.tokens),
             "total_errors": sum(each.errors),
             "total_cost": round(sum(each.cost), 6), "cost_unknown_calls": each.cost_unknown,
             "cost_text": cost_text(sum(each.cost), each.cost_unknown)}
            for name, each in shown]


def _first_rowid_since(conn: sqlite3.Connection, start_text: str) -> int:
    """The smallest rowid received at or after ``start_text`` (rowids follow arrival), by
    binary search; an event's own timestamp is filtered on after."""
    bounds = conn.execute("SELECT min(rowid) AS lo, max(rowid) AS hi FROM events").fetchone()
    low, high = bounds["lo"], bounds["hi"]
    if low is None:
        return 0
    while low < high:
        middle = (low + high) // 2
        row = conn.execute("SELECT rowid, received_at FROM events WHERE rowid >= ?"
                           " ORDER BY rowid LIMIT 1", (middle,)).fetchone()
        if row is None or row["received_at"] >= start_text:
            high = middle
        else:
            low = row["rowid"] + 1
    return int(low)


# --- directives, agents, changes --------------------------------------------------------------


def directives_of(conn: sqlite3.Connection, session_id: str | None = None,
                  agent: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest directives (of a session, or of an agent's sessions), each with its state:
    issued, delivered, acknowledged, success or error."""
    query = ("SELECT d.seq, d.id, d.session_id, d.flavor, d.action, d.name, d.reason,"
             " d.degrade_to, d.payload, d.issued_at, d.delivered_at, d.status, d.result,"
             " d.error, d.status_at, s.flavor AS session_flavor FROM directives d"
             " LEFT JOIN sessions s ON s.session_id = d.session_id")
    values: tuple[Any, ...] = ()
    if session_id is not None:
        query, values = query + " WHERE d.session_id = ?", (session_id,)
    elif agent is not None:
        query, values = query + " WHERE s.flavor = ?", (agent,)
    rows = conn.execute(query + " ORDER BY d.seq DESC LIMIT ?", (*values, limit)).fetchall()
    for row in rows:
        row["state"] = directive_state(row)
        row["payload"] = _control.read_back(row["payload"])
        del row["seq"]
    return rows


def directives_page(conn: sqlite3.Connection, params: Mapping[str, list[str]]) -> dict[str, Any]:
    limit = _int(params, "limit", 50, 1, DIRECTIVES_MAX)
    session = _one(params, "session")
    return {"directives": directives_of(
        conn, session_id=checked_session_id(session) if session else None,
        agent=_one(params, "agent"), limit=limit)}


def registered_directives(conn: sqlite3.Connection, flavor: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT name, description, parameters, fingerprint FROM"
                        " custom_directives WHERE flavor = ? ORDER BY name LIMIT 100",
                        (flavor,)).fetchall()
    for row in rows:
        row["parameters"] = _control.read_back(row["parameters"]) or []
    return rows


def agents(conn: sqlite3.Connection) -> dict[str, Any]:
    """Each agent (flavor) with its session counts, its budget and its registered custom
    directives: what the operator's dialog offers."""
    rows = conn.execute(
        "SELECT coalesce(flavor, '') AS flavor, count(*) AS sessions,"
        " sum(state != 'closed') AS running FROM sessions GROUP BY coalesce(flavor, '')"
        " ORDER BY running DESC, flavor LIMIT 500").fetchall()
    for row in rows:
        row["policy"] = _control.effective_policy(conn, row["flavor"], None)
        row["registered"] = registered_directives(conn, row["flavor"])
    return {"agents": rows}


def changes(conn: sqlite3.Connection) -> dict[str, Any]:
    """A cursor that moves whenever anything the page shows may have changed: an event
    stored, a directive issued or answered, a budget set. Cheap: maxima and a count."""
    events = conn.execute("SELECT max(rowid) AS n FROM events").fetchone()["n"] or 0
    row = conn.execute("SELECT max(seq) AS seq, count(delivered_at) AS delivered,"
                       " count(status_at) AS answered FROM directives").fetchone()
    policies = conn.execute("SELECT max(updated_at) AS at, count(*) AS n FROM policies"
                            ).fetchone()
    cursor = (f"{events}.{row['seq'] or 0}.{row['delivered']}.{row['answered']}."
              f"{policies['n']}.{policies['at'] or ''}")
    return {"cursor": cursor, "now": utc_text(_now())}


# --- helpers ----------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _str(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value[:MAX_TEXT * 5]


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _short_json(value: object) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:2000]
