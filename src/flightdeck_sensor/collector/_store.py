"""The collector's database: events, per-session aggregates and attachments, in SQLite.

One connection shared by the server's threads behind a lock: SQLite serialises
writers anyway, and a batch is one transaction. WAL with synchronous=NORMAL
survives a killed collector (only a power cut can lose the last commits).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import _control
from ._cost import Pricer, is_billed
from ._validate import MAX_COUNT, Event, utc_text

# 3: the control plane's tables (_control.py) and sessions.control_state.
# 4: cost (events.cost_usd; sessions.cost_usd_known, calls_unpriced) and
#    sessions.last_event_at (what "idle" is measured from: a heartbeat does not move it).
SCHEMA_VERSION = 4
WAL_CHECKPOINT_PAGES = 10_000  # 4 KiB pages
CACHE_KIB = 64 * 1024

# The events table is keyed by (session_id, timestamp, id), not by id: a re-sent event
# carries the same three (ids lower-cased, timestamps as normalised UTC text), so INSERT OR
# IGNORE still drops every repeat, and as a session's timestamps grow its new keys land at
# the end of its range. An index on the random uuid4 id alone had every 500-event batch
# rewrite ~500 scattered pages: it cost more than everything else the collector does.
# (Schema 1 had that id primary key; _migrate_events copies such a table into this one.)
_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id            TEXT NOT NULL,
    session_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    timestamp     TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    model         TEXT,
    tokens_input  INTEGER,
    tokens_output INTEGER,
    latency_ms    INTEGER,
    body          TEXT NOT NULL,
    cost_usd      REAL
)"""
_EVENTS_KEY = ("CREATE UNIQUE INDEX IF NOT EXISTS events_by_key"
               " ON events (session_id, timestamp, id)")
# Schema 1's columns: what _migrate_events copies.
_EVENT_COLUMNS = ("id, session_id, event_type, timestamp, received_at, model, tokens_input,"
                  " tokens_output, latency_ms, body")
_OTHER_TABLES = (
    """CREATE TABLE IF NOT EXISTS sessions (
    session_id        TEXT PRIMARY KEY,
    agent_name        TEXT,
    agent_type        TEXT,
    agent_id          TEXT,
    hostname          TEXT,
    flavor            TEXT,
    parent_session_id TEXT,
    agent_role        TEXT,
    sensor_version    TEXT,
    started_at        TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    has_start         INTEGER NOT NULL DEFAULT 0,
    state             TEXT NOT NULL DEFAULT 'active',
    close_reason      TEXT,
    events            INTEGER NOT NULL DEFAULT 0,
    calls             INTEGER NOT NULL DEFAULT 0,
    tokens_in         INTEGER NOT NULL DEFAULT 0,
    tokens_out        INTEGER NOT NULL DEFAULT 0,
    errors            INTEGER NOT NULL DEFAULT 0,
    attachments       INTEGER NOT NULL DEFAULT 0,
    last_attached_at  TEXT,
    control_state     TEXT,
    cost_usd_known    REAL NOT NULL DEFAULT 0,
    calls_unpriced    INTEGER NOT NULL DEFAULT 0,
    last_event_at     TEXT
)""",
    """CREATE TABLE IF NOT EXISTS attachments (
    event_id    TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL,
    attached_at TEXT NOT NULL
)""",
)

CALL_EVENT_TYPES = frozenset({"post_call", "embeddings", "llm_error"})
_USAGE_EVENT_TYPES = frozenset({"post_call", "embeddings"})


def default_db_path() -> Path:
    """``$FLIGHTDECK_COLLECTOR_DB``, else ``flightdeck-sensor/collector.db`` in the user's
    data dir (``$XDG_DATA_HOME``, default ``~/.local/share``)."""
    explicit = os.environ.get("FLIGHTDECK_COLLECTOR_DB")
    if explicit:
        return Path(explicit).expanduser()
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "flightdeck-sensor" / "collector.db"


@dataclass
class _SessionDelta:
    """What one batch adds to one session's aggregate row."""

    first: Event
    started_at: str
    last_seen_at: str
    events: int = 0
    calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    calls_unpriced: int = 0
    state: str | None = None
    close_reason: str | None = None
    has_start: bool = False
    sensor_version: str | None = None
    attachments: int = 0
    attached: bool = False
    last_attached_at: str | None = None
    control_changed: bool = False
    control_state: str | None = None  # "stopped", "blocked"; None: neither (see _control_word)


class EventStore:
    """Stores validated events idempotently and keeps the sessions table up to date."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pricer = Pricer()
        _create_private_file(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        # Checkpoint every ~40 MiB of WAL instead of SQLite's 4 MiB. A checkpoint copies a
        # page once however many commits rewrote it and syncs twice, which costs the request
        # that runs it the same whatever the amount: a tenth as many checkpoints
        # (docs/decisions.md, 'Collector'). Commits stay as durable as before.
        self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        # Room for the indexes of a large database; the cache grows only as used.
        self._conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        _create_or_migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def ingest(self, events: Iterable[Event]) -> bool:
        """Store the events in one transaction, each (session, timestamp, id) once: a
        re-sent event is ignored.

        Returns whether a ``session_start`` among them attached to a session
        that had already started (for a re-sent session_start, the answer its
        first delivery got).
        """
        return self.ingest_and_hand_out(events, None)[0]

    def ingest_and_hand_out(self, events: Iterable[Event], session_id: str | None,
                            ) -> tuple[bool, dict[str, Any] | None]:
        """:meth:`ingest`, and in the same transaction the oldest undelivered directive
        of ``session_id`` (None: none asked), marked delivered: ``(attached, directive)``."""
        received_at = utc_text(datetime.now(timezone.utc))
        events = list(events)
        with self._lock, write_transaction(self._conn) as conn:
            attached = self._ingest_locked(conn, events, received_at)
            directive = None if session_id is None else \
                _control.take_directive(conn, session_id, received_at)
        return attached, directive

    def heartbeat(self, session_id: str) -> dict[str, Any] | None:
        """The session seen now (when known), and its oldest undelivered directive, marked
        delivered; None when it has none."""
        now = utc_text(datetime.now(timezone.utc))
        with self._lock, write_transaction(self._conn) as conn:
            conn.execute("UPDATE sessions SET last_seen_at = max(last_seen_at, ?)"
                         " WHERE session_id = ?", (now, session_id))
            return _control.take_directive(conn, session_id, now)

    def effective_policy(self, flavor: str | None, session_id: str | None,
                         ) -> dict[str, Any] | None:
        with self._lock:
            return _control.effective_policy(self._conn, flavor, session_id)

    def unknown_fingerprints(self, flavor: str, fingerprints: list[str]) -> list[str]:
        with self._lock:
            return _control.unknown_fingerprints(self._conn, flavor, fingerprints)

    def register_directives(self, flavor: str, directives: list[dict[str, Any]]) -> None:
        with self._lock, write_transaction(self._conn) as conn:
            _control.register(conn, flavor, directives)

    def _ingest_locked(self, conn: sqlite3.Connection, events: list[Event],
                       received_at: str) -> bool:
        # Every event is offered to the table; INSERT OR IGNORE keeps the first of each key.
        # The rows this batch added are the fresh events: usually all of them, which
        # total_changes tells without asking the index a second time.
        (newest_rowid,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
        changes_before = conn.total_changes
        costs = self._costs(events)
        conn.executemany(_INSERT_EVENT, [_event_row(event, received_at, costs.get(id(event)))
                                         for event in events])
        repeated: list[Event] = []
        if conn.total_changes - changes_before == len(events):
            fresh = events
        else:
            fresh, repeated = _split_new_events(conn, events, newest_rowid)
        attached = False
        for event in repeated:
            if event.event_type == "session_start":
                attached |= _was_attachment(conn, event.id)
        by_session: dict[str, list[Event]] = {}
        for event in fresh:
            group = by_session.get(event.session_id)
            if group is None:
                by_session[event.session_id] = [event]
            else:
                group.append(event)
        for session_id, group in by_session.items():
            delta = _session_delta(conn, group, received_at)
            if costs:
                _cost_delta(delta, group, costs)
            attached |= delta.attached
            _apply_delta(conn, session_id, delta)
        return attached

    def load_prices(self) -> None:
        self._pricer.load()

    def _costs(self, events: list[Event]) -> dict[int, float | None]:
        """Each call's cost, keyed by the event object's id (``events`` holds every one
        alive until the batch is stored): calls only, most events are not."""
        price = self._pricer.cost
        return {id(event): price(event) for event in events
                if event.event_type in CALL_EVENT_TYPES}


def _cost_delta(delta: _SessionDelta, events: list[Event],
                costs: dict[int, float | None]) -> None:
    """What the session's fresh calls cost: the sum of those priced, the count of the
    billed ones that could not be."""
    for event in events:
        if event.event_type not in CALL_EVENT_TYPES:
            continue
        cost = costs.get(id(event))
        if cost is not None:
            delta.cost_usd += cost
        elif is_billed(event.event_type, event.raw):
            delta.calls_unpriced += 1


def _session_delta(conn: sqlite3.Connection, events: list[Event],
                   received_at: str) -> _SessionDelta:
    """One session's fresh events of a batch, summed; attachments recorded as found."""
    whens = [event.when for event in events]
    delta = _SessionDelta(events[0], min(whens), max(whens), events=len(events))
    counts = Counter(event.event_type for event in events)
    delta.calls = sum(counts[kind] for kind in CALL_EVENT_TYPES)
    delta.errors = counts["llm_error"]
    if counts["post_call"] or counts["embeddings"]:
        usage = [event.raw for event in events if event.event_type in _USAGE_EVENT_TYPES]
        # Each count fits 64 bits (validated); their sum is held there too.
        delta.tokens_in = min(MAX_COUNT, sum(raw.get("tokens_input") or 0 for raw in usage))
        delta.tokens_out = min(MAX_COUNT, sum(raw.get("tokens_output") or 0 for raw in usage))
    if counts["session_start"] or counts["session_end"]:
        for event in events:  # in order: a start after an end reopens, the last word wins
            if event.event_type == "session_start":
                if delta.has_start or _has_started(conn, event.session_id):
                    # OR IGNORE: another session_start of this id (with another session or
                    # time: not a re-send) already attached; it answers for both.
                    recorded = conn.execute(
                        "INSERT OR IGNORE INTO attachments (event_id, session_id, attached_at)"
                        " VALUES (?, ?, ?)", (event.id, event.session_id, received_at)).rowcount
                    delta.attachments += recorded
                    delta.attached = True
                    delta.last_attached_at = received_at
                delta.state, delta.has_start = "active", True
                delta.sensor_version = _text(event.raw.get("sensor_version"))
            elif event.event_type == "session_end":
                delta.state, delta.close_reason = "closed", _text(event.raw.get("close_reason"))
    if counts["directive_result"] or counts["policy_block"] or counts["session_end"] \
            or counts["session_start"]:
        _control_delta(delta, events)
    if counts["directive_result"]:
        _control.record_results(conn, events[0].session_id, (
            event for event in events if event.event_type == "directive_result"), received_at)
    return delta


_SHUTDOWN_ACTIONS = frozenset({"shutdown", "shutdown_flavor"})
_CLOSE_REASON_STATES = {"directive_shutdown": "stopped", "policy_block": "blocked"}


def _control_delta(delta: _SessionDelta, events: list[Event]) -> None:
    """What the session's events say of the control plane, the last word winning:
    stopped (a shutdown acknowledged, or ended by one), blocked (a policy_block, or ended
    by one); a session_start (a new process attaching) clears it."""
    for event in events:
        word = _control_word(event)
        if word is not None:
            delta.control_changed = True
            delta.control_state = word or None


def _control_word(event: Event) -> str | None:
    """"stopped" or "blocked"; "" to clear; None: this event says nothing of it."""
    kind, raw = event.event_type, event.raw
    if kind == "session_start":
        return ""
    if kind == "policy_block":
        return "blocked"
    if kind == "session_end":
        return _CLOSE_REASON_STATES.get(str(raw.get("close_reason")))
    if kind == "directive_result" and raw.get("directive_action") in _SHUTDOWN_ACTIONS \
            and raw.get("directive_status") == "acknowledged":
        return "stopped"
    return None


def _split_new_events(conn: sqlite3.Connection, events: list[Event],
                      newest_rowid: int) -> tuple[list[Event], list[Event]]:
    """The events this batch's insert stored (rowids past ``newest_rowid``: the first of
    each key not stored before), and the repeats."""
    added = set(conn.execute("SELECT session_id, timestamp, id FROM events WHERE rowid > ?",
                             (newest_rowid,)))
    fresh, repeated = [], []
    for event in events:
        key = (event.session_id, event.when, event.id)
        if key in added:
            added.discard(key)
            fresh.append(event)
        else:
            repeated.append(event)
    return fresh, repeated


def _was_attachment(conn: sqlite3.Connection, event_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM attachments WHERE event_id = ?", (event_id,)).fetchone()
    return row is not None


def _has_started(conn: sqlite3.Connection, session_id: str) -> bool:
    row = conn.execute("SELECT has_start FROM sessions WHERE session_id = ?",
                       (session_id,)).fetchone()
    return bool(row and row[0])


_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_INSERT_EVENT = (f"INSERT OR IGNORE INTO events ({_EVENT_COLUMNS}, cost_usd)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _event_row(event: Event, received_at: str, cost: float | None) -> tuple[Any, ...]:
    event_id, session_id, event_type, when, raw, body = event  # cheaper than six attributes
    model = raw.get("model")
    return (event_id, session_id, event_type, when, received_at,
            model if type(model) is str and model.isascii() else _text(model),
            raw.get("tokens_input"), raw.get("tokens_output"), raw.get("latency_ms"),
            body if body is not None else _COMPACT_JSON.encode(raw), cost)


def _apply_delta(conn: sqlite3.Connection, session_id: str, delta: _SessionDelta) -> None:
    raw = delta.first.raw
    conn.execute(
        "INSERT OR IGNORE INTO sessions (session_id, agent_name, agent_type, agent_id, hostname,"
        " flavor, parent_session_id, agent_role, started_at, last_seen_at, last_event_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (session_id, _text(raw.get("agent_name")), _text(raw.get("agent_type")),
         _text(raw.get("agent_id")), _text(raw.get("hostname")), _text(raw.get("flavor")),
         _lower(raw.get("parent_session_id")), _text(raw.get("agent_role")),
         delta.started_at, delta.last_seen_at, delta.last_seen_at),
    )
    conn.execute(
        "UPDATE sessions SET started_at = min(started_at, ?), last_seen_at = max(last_seen_at, ?),"
        " last_event_at = max(coalesce(last_event_at, ''), ?),"
        " cost_usd_known = cost_usd_known + ?, calls_unpriced = calls_unpriced + ?,"
        " events = events + ?, calls = calls + ?, tokens_in = tokens_in + ?,"
        " tokens_out = tokens_out + ?, errors = errors + ?, state = coalesce(?, state),"
        " close_reason = CASE WHEN ? = 'active' THEN NULL ELSE coalesce(?, close_reason) END,"
        " has_start = max(has_start, ?), sensor_version = coalesce(?, sensor_version),"
        " attachments = attachments + ?, last_attached_at = coalesce(?, last_attached_at),"
        " control_state = CASE WHEN ? THEN ? ELSE control_state END"
        " WHERE session_id = ?",
        (delta.started_at, delta.last_seen_at, delta.last_seen_at, delta.cost_usd,
         delta.calls_unpriced, delta.events, delta.calls, delta.tokens_in,
         delta.tokens_out, delta.errors, delta.state, delta.state, delta.close_reason,
         int(delta.has_start), delta.sensor_version, delta.attachments, delta.last_attached_at,
         int(delta.control_changed), delta.control_state, session_id),
    )


def _text(value: Any) -> str | None:
    """A column-safe string: JSON may carry lone surrogates SQLite cannot encode."""
    if not isinstance(value, str):
        return None
    if value.isascii():
        return value
    return value.encode("utf-8", "replace").decode("utf-8")


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text is not None else None


def _create_or_migrate(conn: sqlite3.Connection) -> None:
    """The tables, created or brought to SCHEMA_VERSION in one transaction: a collector
    killed mid-way leaves the database as it was, and the next start does it again."""
    conn.execute("BEGIN IMMEDIATE")  # another collector on the same file waits, then sees 2
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        has_events = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                  " AND name = 'events'").fetchone() is not None
        if has_events and version < 2:
            _migrate_events(conn)
        conn.execute(_EVENTS_TABLE.format(name="events"))
        conn.execute(_EVENTS_KEY)
        for table in _OTHER_TABLES:
            conn.execute(table)
        _add_missing_columns(conn)
        if has_events and version < 4:
            _count_unpriced_calls(conn)
        for statement in _control.CONTROL_TABLES:
            conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# Columns added to an existing table since schema 2: (table, column, declaration).
_ADDED_COLUMNS = (
    ("sessions", "control_state", "TEXT"),
    ("events", "cost_usd", "REAL"),
    ("sessions", "cost_usd_known", "REAL NOT NULL DEFAULT 0"),
    ("sessions", "calls_unpriced", "INTEGER NOT NULL DEFAULT 0"),
    ("sessions", "last_event_at", "TEXT"),
)


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """An older database's tables get the newer columns (ALTER TABLE is cheap: no rewrite)."""
    for table, column, declaration in _ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _count_unpriced_calls(conn: sqlite3.Connection) -> None:
    """A database from before schema 4 priced nothing: each session's billed calls are
    unpriced (its cost shows "?", not $0), and its last event is its last sighting."""
    conn.execute(
        "UPDATE sessions SET last_event_at = coalesce(last_event_at, last_seen_at),"
        " calls_unpriced = (SELECT count(*) FROM events e WHERE e.session_id ="
        " sessions.session_id AND (e.event_type IN ('post_call', 'embeddings') OR"
        " (e.event_type = 'llm_error' AND (e.tokens_input IS NOT NULL"
        " OR e.tokens_output IS NOT NULL))))")


def _migrate_events(conn: sqlite3.Connection) -> None:
    """Schema 1's events table (id primary key, index on session and time) copied into the
    keyed one, rowids kept (they are the arrival order); its ids are unique, so no row
    clashes. One pass over the table, once; the old one and its indexes are dropped."""
    conn.execute("DROP TABLE IF EXISTS events_v2")  # never left behind: same transaction
    conn.execute(_EVENTS_TABLE.format(name="events_v2"))
    conn.execute(f"INSERT INTO events_v2 (rowid, {_EVENT_COLUMNS})"
                 f" SELECT rowid, {_EVENT_COLUMNS} FROM events ORDER BY rowid")
    conn.execute("DROP TABLE events")
    conn.execute("ALTER TABLE events_v2 RENAME TO events")


def _create_private_file(path: Path) -> None:
    """The database may hold prompts (with capture on): directory 0700, file 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


def open_for_commands(path: Path, shared: bool = False) -> sqlite3.Connection:
    """A connection for the command line's writes (stop, budget, ...), beside a running
    collector: WAL lets both work, the busy timeout waits out the collector's transaction.
    The tables are brought to this version first. Rows come back as dicts. ``shared``:
    used by several threads, one at a time (the console's)."""
    if not path.exists():
        raise FileNotFoundError(str(path))
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=5.0,
                           check_same_thread=not shared)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        _create_or_migrate(conn)
    except BaseException:
        conn.close()
        raise
    conn.row_factory = _dict_row
    return conn


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_readonly(path: Path, shared: bool = False) -> sqlite3.Connection:
    """A read-only connection for the read side (CLI, console); rows come back as dicts.
    ``shared``: used by several threads, one at a time (the console's pool)."""
    if not path.exists():
        raise FileNotFoundError(str(path))
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                           check_same_thread=not shared)
    conn.row_factory = _dict_row
    return conn


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}
