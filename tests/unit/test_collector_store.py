"""The collector's store across schema versions: a database from an older collector."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path

from fixtures.collector_events import valid_event
from flightdeck_sensor.collector._batch import validate_batch
from flightdeck_sensor.collector._store import SCHEMA_VERSION, EventStore

# Schema 1's events table: keyed by its id (the sessions and attachments tables are unchanged).
_EVENTS_1 = """
CREATE TABLE events_1 (
    id            TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    timestamp     TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    model         TEXT,
    tokens_input  INTEGER,
    tokens_output INTEGER,
    latency_ms    INTEGER,
    body          TEXT NOT NULL
);
INSERT INTO events_1 SELECT id, session_id, event_type, timestamp, received_at, model,
    tokens_input, tokens_output, latency_ms, body FROM events ORDER BY rowid;
DROP TABLE events;
ALTER TABLE events_1 RENAME TO events;
CREATE INDEX events_by_session ON events (session_id, timestamp);
PRAGMA user_version = 1;
"""


def _rows(path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT rowid, id, body FROM events ORDER BY rowid").fetchall()


def _schema_1_database(path: Path, batches: list[list[dict[str, object]]]) -> None:
    """The events a collector stored, in the table as schema 1 had it."""
    store = EventStore(path)
    now = datetime.now(timezone.utc)
    try:
        for batch in batches:
            store.ingest(validate_batch(batch, now, [f"{e['event_type']} {e['id']}"
                                                     for e in batch])[0])
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.executescript(_EVENTS_1)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                            " AND tbl_name = 'events'").fetchone() == (2,)


def test_a_schema_1_database_is_migrated_keeping_its_events_and_their_order(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    session = str(uuid.uuid4())
    start = valid_event("session_start", session_id=session)
    call = valid_event(session_id=session)
    restart = valid_event("session_start", session_id=session)
    _schema_1_database(path, [[start, call], [restart]])
    before = _rows(path)
    now = datetime.now(timezone.utc)

    store = EventStore(path)
    try:
        assert _rows(path) == before
        # Re-sent after the upgrade: stored once still, with the answers of the first delivery.
        assert store.ingest(validate_batch([restart], now)[0]) is True
        assert store.ingest(validate_batch([start, call], now)[0]) is False
        assert _rows(path) == before
        later = valid_event(session_id=session)
        store.ingest(validate_batch([later], now, ["later"])[0])
    finally:
        store.close()

    rows = _rows(path)
    assert rows[:3] == before and [body for _, _, body in rows[3:]] == ["later"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT events, attachments FROM sessions").fetchone() == (4, 1)
        indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                               " AND tbl_name = 'events'").fetchall()
    assert indexes == [("events_by_key", "CREATE UNIQUE INDEX events_by_key ON events"
                                         " (session_id, timestamp, id)")]



def _schema_2_database(path: Path, session: str) -> None:
    """A database as a schema-2 collector left it: no control-plane tables, no
    sessions.control_state."""
    store = EventStore(path)
    try:
        store.ingest(validate_batch([valid_event("session_start", session_id=session)],
                                    datetime.now(timezone.utc))[0])
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            DROP TABLE directives; DROP TABLE policies; DROP TABLE custom_directives;
            ALTER TABLE sessions DROP COLUMN control_state;
            PRAGMA user_version = 2;
        """ + _SCHEMA_4_COLUMNS_DROPPED)


def test_a_schema_2_database_gets_the_control_plane_and_keeps_its_sessions(
        tmp_path: Path) -> None:
    path = tmp_path / "schema2.db"
    session = str(uuid.uuid4())
    _schema_2_database(path, session)

    store = EventStore(path)
    try:
        end = valid_event("session_end", session_id=session, close_reason="directive_shutdown")
        store.ingest(validate_batch([end], datetime.now(timezone.utc))[0])
    finally:
        store.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT session_id, state, control_state, events FROM sessions"
                            ).fetchall() == [(session, "closed", "stopped", 2)]
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"directives", "policies", "custom_directives"} <= tables


# What schema 4 added: cost, and the last event's time.
_SCHEMA_4_COLUMNS_DROPPED = """
    ALTER TABLE events DROP COLUMN cost_usd;
    ALTER TABLE sessions DROP COLUMN cost_usd_known;
    ALTER TABLE sessions DROP COLUMN calls_unpriced;
    ALTER TABLE sessions DROP COLUMN last_event_at;
"""


def _schema_3_database(path: Path, batch: list[dict[str, object]]) -> None:
    """A database as a schema-3 collector left it: nothing priced."""
    store = EventStore(path)
    try:
        store.ingest(validate_batch(batch, datetime.now(timezone.utc))[0])
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        conn.executescript(_SCHEMA_4_COLUMNS_DROPPED + "PRAGMA user_version = 3;")


def test_a_schema_3_database_shows_its_earlier_calls_unpriced_and_prices_new_ones(
        tmp_path: Path) -> None:
    # Given a session whose two calls (and an error with no usage) a schema-3 collector stored
    path = tmp_path / "schema3.db"
    session = str(uuid.uuid4())
    _schema_3_database(path, [valid_event("session_start", session_id=session),
                              valid_event(session_id=session), valid_event(session_id=session),
                              valid_event("llm_error", session_id=session)])

    # When this collector opens it and stores one more call
    store = EventStore(path)
    try:
        store.ingest(validate_batch([valid_event(session_id=session)],
                                    datetime.now(timezone.utc))[0])
    finally:
        store.close()

    # Then the two earlier calls count as unpriced (their cost is unknown, not $0), the new
    # one is priced, and the session's last event is known
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        known, unpriced, last_event = conn.execute(
            "SELECT cost_usd_known, calls_unpriced, last_event_at FROM sessions").fetchone()
        costs = [cost for (cost,) in conn.execute(
            "SELECT cost_usd FROM events WHERE event_type = 'post_call' ORDER BY rowid")]
    assert unpriced == 2 and last_event is not None
    assert costs[:2] == [None, None] and costs[2] is not None and costs[2] > 0
    assert known == costs[2]


def test_the_hand_out_lookup_searches_the_undelivered_index(tmp_path: Path) -> None:
    # Every ingest answer runs this query: it must not scan the directives table.
    EventStore(tmp_path / "c.db").close()
    with sqlite3.connect(tmp_path / "c.db") as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT seq, id, action, reason, grace_period_ms, degrade_to,"
            " payload FROM directives WHERE session_id = ? AND delivered_at IS NULL"
            " ORDER BY seq LIMIT 1", (str(uuid.uuid4()),)).fetchall()
    assert [row[-1] for row in plan] == [
        "SEARCH directives USING INDEX directives_undelivered (session_id=?)"]
