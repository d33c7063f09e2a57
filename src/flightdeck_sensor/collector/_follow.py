"""``events SESSION --follow``: a session's timeline as it grows, like ``tail -f``.

Prints what is stored (in time order), then polls the database read-only and
prints each new event as it arrives (in arrival order), one line each at fixed
column widths (``--json``: one JSON object a line). Once the session has ended
(its ``session_end`` stored) it prints a last line saying so and exits 0; Ctrl-C
exits 0 too. A session that already ended prints once and exits.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._printable import printable
from ._report import (
    CELL_LIMIT,
    TIMELINE_HEADERS,
    TIMELINE_RIGHT_ALIGNED,
    lookup_session,
    open_for_reading,
    render_session_header,
    stored_events,
    timeline_cells,
)

POLL_SECONDS = 0.25
# Column widths of a followed timeline (the rows to come are unknown); DETAIL is last.
_WIDTHS = (12, 16, 32, 9, 9, 10, 10, 0)
_TIME_FORMAT = "%H:%M:%S.%f"


def follow_events(db: Path | None, session_prefix: str, as_json: bool,
                  poll_seconds: float = POLL_SECONDS) -> int:
    conn = open_for_reading(db)
    if conn is None:
        return 1
    try:
        return _follow(conn, session_prefix.strip().lower(), as_json, poll_seconds)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # the reader (head, a pager) went away
        sys.stderr.close()  # nothing left to say, and no traceback about the pipe
        return 0
    finally:
        conn.close()


def _follow(conn: sqlite3.Connection, prefix: str, as_json: bool, poll_seconds: float) -> int:
    session, problem = lookup_session(conn, prefix)
    if session is None:
        print(f"flightdeck-sensor events: {problem}", file=sys.stderr)
        return 1
    session_id = session["session_id"]
    if not as_json:
        print(render_session_header(session))
        print()
        print(_line(TIMELINE_HEADERS), flush=True)
    last_seq = _print_rows(stored_events(conn, session_id), as_json, 0)
    while True:
        ended = _ended(conn, session_id)  # asked first: no event of before its end is missed
        last_seq = _print_rows(stored_events(conn, session_id, after=last_seq), as_json,
                               last_seq)
        if ended:
            if not as_json:
                print(f"-- session ended ({printable(str(ended), 40)})", flush=True)
            return 0
        time.sleep(poll_seconds)


def _print_rows(rows: Sequence[dict[str, Any]], as_json: bool, last_seq: int) -> int:
    for row in rows:
        if as_json:
            print(json.dumps(row["event"], separators=(",", ":")))
        else:
            print(_line(timeline_cells(row["event"], bool(row["attached"]), _TIME_FORMAT)))
        last_seq = max(last_seq, row["seq"])
    if rows:
        sys.stdout.flush()
    return last_seq


def _ended(conn: sqlite3.Connection, session_id: str) -> str | None:
    """The close reason once the session ended, else None."""
    row = conn.execute("SELECT state, close_reason FROM sessions WHERE session_id = ?",
                       (session_id,)).fetchone()
    if row is None or row["state"] != "closed":
        return None
    return str(row["close_reason"] or "closed")


def _line(cells: Sequence[str]) -> str:
    shown = [printable(cell, CELL_LIMIT) for cell in cells]
    padded = [cell if not width else
              cell.rjust(width) if index in TIMELINE_RIGHT_ALIGNED else cell.ljust(width)
              for index, (cell, width) in enumerate(zip(shown, _WIDTHS, strict=True))]
    return "  ".join(padded).rstrip()
