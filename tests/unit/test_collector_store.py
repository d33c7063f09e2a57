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
INSERT INTO events_1 SELECT * FROM events ORDER BY rowid;
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

