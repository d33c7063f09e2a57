"""The control plane's tables: directives, token policies and registered custom directives.

Functions on an open ``sqlite3.Connection``, shared by the server (hand-out in
each ingest answer, results from ``directive_result`` events, the ``/api``
endpoints) and the command line (issuing directives and setting budgets while
a collector runs: both sides write with WAL and a busy timeout).

The rules are Flightdeck's: a directive goes to one session; one for a whole
flavor is fanned out when issued, one row per session of that flavor not ended
(Flightdeck's D058: otherwise only the first session to ask would get it).
Each answer hands out the session's oldest undelivered directive and marks it
delivered in the same transaction, so each is given exactly once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ._validate import Event, is_canonical_uuid, utc_text

if TYPE_CHECKING:  # the command line's parsers import this module for its defaults
    import sqlite3

ACTIONS = ("shutdown", "shutdown_flavor", "warn", "degrade", "policy_update", "custom")
RESULT_STATUSES = frozenset({"acknowledged", "success", "error"})
_FINAL_STATUSES = frozenset({"success", "error"})
DEFAULT_GRACE_PERIOD_MS = 5000
DEFAULT_WARN_AT_PCT, DEFAULT_DEGRADE_AT_PCT, DEFAULT_BLOCK_AT_PCT = 80, 90, 100
# What a directive_result may make us keep of its result or error (the event itself is
# stored whole in the events table).
MAX_RESULT_CHARS = 16 * 1024

# seq: the issue order, which "oldest first" follows (issued_at ties within a fan-out).
# name: the action, or a custom directive's name (what a directive_result names it by).
# flavor: set when issued to a whole flavor and fanned out to this session.
CONTROL_TABLES = (
    """CREATE TABLE IF NOT EXISTS directives (
    seq             INTEGER PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    session_id      TEXT NOT NULL,
    flavor          TEXT,
    action          TEXT NOT NULL,
    name            TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    grace_period_ms INTEGER NOT NULL DEFAULT 5000,
    degrade_to      TEXT,
    payload         TEXT,
    issued_at       TEXT NOT NULL,
    delivered_at    TEXT,
    status          TEXT,
    result          TEXT,
    error           TEXT,
    status_at       TEXT
)""",
    # The hand-out's lookup, on every ingest answer: only undelivered rows are in it.
    "CREATE INDEX IF NOT EXISTS directives_undelivered ON directives (session_id, seq)"
    " WHERE delivered_at IS NULL",
    "CREATE INDEX IF NOT EXISTS directives_by_session ON directives (session_id, action, seq)",
    """CREATE TABLE IF NOT EXISTS policies (
    id             TEXT PRIMARY KEY,
    scope          TEXT NOT NULL,
    scope_value    TEXT NOT NULL,
    token_limit    INTEGER NOT NULL,
    warn_at_pct    INTEGER,
    degrade_at_pct INTEGER,
    degrade_to     TEXT,
    block_at_pct   INTEGER,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (scope, scope_value)
)""",
    """CREATE TABLE IF NOT EXISTS custom_directives (
    flavor        TEXT NOT NULL,
    name          TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    parameters    TEXT NOT NULL DEFAULT '[]',
    registered_at TEXT NOT NULL,
    PRIMARY KEY (flavor, name)
)""",
    "CREATE INDEX IF NOT EXISTS custom_directives_by_fingerprint"
    " ON custom_directives (flavor, fingerprint)",
)
POLICY_FIELDS = ("id", "scope", "scope_value", "token_limit", "warn_at_pct", "degrade_at_pct",
                 "degrade_to", "block_at_pct")


def now_text() -> str:
    return utc_text(datetime.now(timezone.utc))


# --- issuing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectiveSpec:
    """What an operator asks for; ``issue`` makes one row of it per target session."""

    action: str
    reason: str = ""
    grace_period_ms: int = DEFAULT_GRACE_PERIOD_MS
    degrade_to: str | None = None
    payload: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        if self.action == "custom" and self.payload is not None:
            return str(self.payload.get("directive_name") or self.action)
        return self.action


def issue(conn: sqlite3.Connection, spec: DirectiveSpec, session_ids: Sequence[str],
          flavor: str | None = None) -> list[str]:
    """One directive per session (``flavor``: issued to that whole flavor); their ids."""
    issued_at = now_text()
    payload = None if spec.payload is None else json.dumps(spec.payload)
    ids = [str(uuid.uuid4()) for _ in session_ids]
    conn.executemany(
        "INSERT INTO directives (id, session_id, flavor, action, name, reason, grace_period_ms,"
        " degrade_to, payload, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(directive_id, session_id, flavor, spec.action, spec.name, spec.reason,
          spec.grace_period_ms, spec.degrade_to, payload, issued_at)
         for directive_id, session_id in zip(ids, session_ids, strict=True)])
    return ids


def running_sessions(conn: sqlite3.Connection, flavor: str) -> list[str]:
    """The sessions of ``flavor`` not ended, oldest first: a fan-out's targets."""
    rows = conn.execute("SELECT session_id FROM sessions WHERE flavor = ? AND state != 'closed'"
                        " ORDER BY started_at, session_id", (flavor,)).fetchall()
    return [_first(row) for row in rows]


def _first(row: Any) -> str:
    """The first column of a row, whatever the connection's row factory."""
    return str(row[0] if isinstance(row, tuple) else next(iter(row.values())))


# --- hand-out --------------------------------------------------------------------------------


def take_directive(conn: sqlite3.Connection, session_id: str,
                   delivered_at: str) -> dict[str, Any] | None:
    """The session's oldest undelivered directive as the envelope carries it, now marked
    delivered; None when there is none. Call inside the answer's write transaction."""
    row = conn.execute(
        "SELECT seq, id, action, reason, grace_period_ms, degrade_to, payload FROM directives"
        " WHERE session_id = ? AND delivered_at IS NULL ORDER BY seq LIMIT 1",
        (session_id,)).fetchone()
    if row is None:
        return None
    seq, directive_id, action, reason, grace_period_ms, degrade_to, payload = row
    conn.execute("UPDATE directives SET delivered_at = ? WHERE seq = ?", (delivered_at, seq))
    directive: dict[str, Any] = {"id": directive_id, "action": action, "reason": reason or "",
                                 "grace_period_ms": grace_period_ms}
    if degrade_to is not None:
        directive["degrade_to"] = degrade_to
    if payload is not None:
        directive["payload"] = json.loads(payload)
    return directive


# --- results ---------------------------------------------------------------------------------


def record_results(conn: sqlite3.Connection, session_id: str, events: Iterable[Event],
                   received_at: str) -> None:
    """Each ``directive_result`` sets the state of the directive it answers: the one its
    ``directive_id`` names (in this session), else the session's newest delivered one of
    the same action (and, for ``custom``, the same name). A final state (success, error)
    is not taken back by a later acknowledgement."""
    for event in events:
        raw = event.raw
        status = raw.get("directive_status")
        if not isinstance(status, str) or status not in RESULT_STATUSES:
            continue
        row = _answered_directive(conn, session_id, raw)
        if row is None:
            continue
        seq, current = row
        if current in _FINAL_STATUSES and status == "acknowledged":
            continue
        conn.execute("UPDATE directives SET status = ?, result = ?, error = ?, status_at = ?"
                     " WHERE seq = ?",
                     (status, _kept(raw.get("result")), _kept(raw.get("error")), received_at,
                      seq))


def _answered_directive(conn: sqlite3.Connection, session_id: str,
                        raw: dict[str, Any]) -> tuple[int, str | None] | None:
    directive_id = raw.get("directive_id")
    if directive_id is not None:
        if not is_canonical_uuid(directive_id):
            return None
        found = conn.execute("SELECT seq, status FROM directives WHERE id = ? AND session_id = ?",
                             (str(directive_id).lower(), session_id)).fetchone()
        return None if found is None else (found[0], found[1])
    action = raw.get("directive_action")
    if not isinstance(action, str):
        return None
    query = ("SELECT seq, status FROM directives WHERE session_id = ? AND action = ?"
             " AND delivered_at IS NOT NULL")
    params: tuple[Any, ...] = (session_id, action)
    if action == "custom":
        name = raw.get("directive_name")
        if not isinstance(name, str):
            return None
        query += " AND name = ?"
        params += (name,)
    found = conn.execute(query + " ORDER BY seq DESC LIMIT 1", params).fetchone()
    return None if found is None else (found[0], found[1])


def _kept(value: object) -> str | None:
    """A result or error as stored: a string as is, anything else as JSON; capped."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates in SQLite
    return text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + "..."


def read_back(text: str | None) -> Any:
    """A payload, result or error column as stored (see ``_kept``): the JSON value when
    it parses, the text itself otherwise."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


# --- policies --------------------------------------------------------------------------------


def effective_policy(conn: sqlite3.Connection, flavor: str | None,
                     session_id: str | None) -> dict[str, Any] | None:
    """The session's own policy, else its flavor's (Flightdeck's lookup order)."""
    for scope, value in (("session", session_id), ("flavor", flavor)):
        if not value:
            continue
        row = conn.execute(f"SELECT {', '.join(POLICY_FIELDS)} FROM policies"
                           " WHERE scope = ? AND scope_value = ?", (scope, value)).fetchone()
        if row is not None:
            return _as_policy(row)
    return None


def _as_policy(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return {field: row[field] for field in POLICY_FIELDS}
    return dict(zip(POLICY_FIELDS, row, strict=True))


def save_policy(conn: sqlite3.Connection, scope: str, scope_value: str,
                budget: dict[str, Any]) -> dict[str, Any]:
    """Create or replace the policy of (scope, scope_value); its id is kept on a change."""
    now = now_text()
    row = conn.execute("SELECT id FROM policies WHERE scope = ? AND scope_value = ?",
                       (scope, scope_value)).fetchone()
    policy_id = _first(row) if row is not None else str(uuid.uuid4())
    conn.execute(
        "INSERT INTO policies (id, scope, scope_value, token_limit, warn_at_pct, degrade_at_pct,"
        " degrade_to, block_at_pct, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (scope, scope_value) DO UPDATE SET token_limit = excluded.token_limit,"
        " warn_at_pct = excluded.warn_at_pct, degrade_at_pct = excluded.degrade_at_pct,"
        " degrade_to = excluded.degrade_to, block_at_pct = excluded.block_at_pct,"
        " updated_at = excluded.updated_at",
        (policy_id, scope, scope_value, budget["token_limit"], budget["warn_at_pct"],
         budget["degrade_at_pct"], budget["degrade_to"], budget["block_at_pct"], now, now))
    return {"id": policy_id, "scope": scope, "scope_value": scope_value, **budget}


# --- registered custom directives --------------------------------------------------------------


def unknown_fingerprints(conn: sqlite3.Connection, flavor: str,
                         fingerprints: Sequence[str]) -> list[str]:
    """Those of ``fingerprints`` this flavor has not registered, in the order given."""
    known = {_first(row) for row in conn.execute(
        "SELECT fingerprint FROM custom_directives WHERE flavor = ?", (flavor,))}
    unknown: list[str] = []
    for fingerprint in fingerprints:
        if fingerprint not in known and fingerprint not in unknown:
            unknown.append(fingerprint)
    return unknown


def register(conn: sqlite3.Connection, flavor: str,
             directives: Sequence[dict[str, Any]]) -> None:
    """Store each definition under (flavor, name); a new fingerprint replaces the old."""
    now = now_text()
    conn.executemany(
        "INSERT INTO custom_directives (flavor, name, fingerprint, description, parameters,"
        " registered_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (flavor, name) DO UPDATE SET"
        " fingerprint = excluded.fingerprint, description = excluded.description,"
        " parameters = excluded.parameters, registered_at = excluded.registered_at",
        [(flavor, directive["name"], directive["fingerprint"], directive["description"],
          json.dumps(directive["parameters"]), now) for directive in directives])
