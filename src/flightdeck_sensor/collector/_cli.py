"""Commands ``collect`` (run the local ingest collector), ``sessions`` and ``events`` (read it).

Building the parsers imports nothing heavy: the server and the database code
load when a command runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import secrets
import shlex
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from .._token_file import (
    TokenError,
    add_token_options,
    checked_token,
    read_token_file,
    token_option_refused,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
GENERATED_TOKEN_PREFIX = "ftd_local_"
DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_REQUEST_TIMEOUT = 30.0


def add_parser(subparsers: Any) -> None:
    collect = subparsers.add_parser(
        "collect", help="run the local ingest collector",
        description="A local Flightdeck-compatible ingest server storing events in SQLite.")
    collect.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    collect.add_argument("--port", type=int, default=DEFAULT_PORT,
                         help="port to listen on, 0 for any free one (%(default)s)")
    add_token_options(collect, "read the bearer token sensors must present from PATH "
                               "(default: $FLIGHTDECK_TOKEN, else the token file beside the "
                               "database, made with a new token if missing)")
    collect.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                         metavar="N", help="connections served at once; more are answered 503 "
                                           "and closed (%(default)s)")
    collect.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT,
                         metavar="SECONDS", help="time a client has to send one whole request, "
                                                 "headers and body (%(default)s)")
    collect.add_argument("--db", type=Path, help=_db_help())
    collect.add_argument("--ready-file", type=Path, metavar="PATH",
                         help='once listening, write {"url", "ingest_url", "port", "pid", "db"} '
                              "as JSON to PATH (for scripts and tests using --port 0)")
    collect.add_argument("-v", "--verbose", action="store_true", help="log every request")
    collect.add_argument("--no-batch", action="store_true",
                         help="answer the batch path 404, as Flightdeck's ingestion does "
                              "(sensors then send one event per request)")
    collect.set_defaults(func=run_collect)

    sessions = subparsers.add_parser("sessions", help="list the sessions the collector received")
    sessions.add_argument("--db", type=Path, help=_db_help())
    sessions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sessions.add_argument("--limit", type=int, default=50,
                          help="newest N sessions, 0 for all (%(default)s)")
    sessions.add_argument("--agent", metavar="NAME",
                          help="only the sessions of this agent (its name or flavor)")
    sessions.add_argument("--state", action="append", default=[], metavar="STATE",
                          choices=["active", "idle", "ended", "closed", "stopped", "blocked"],
                          help="only sessions in this state: active, idle (open, no event for "
                               "a minute), ended (or closed), stopped, blocked; repeatable")
    sessions.add_argument("--since", metavar="WHEN",
                          help="only sessions seen since WHEN: 30s, 10m, 2h, 1d, 1w ago, or an "
                               "ISO time (local unless it has an offset)")
    sessions.set_defaults(func=run_sessions)

    events = subparsers.add_parser("events", help="show one session's timeline")
    events.add_argument("session_id", metavar="SESSION_ID",
                        help="the session id, or a unique prefix of it")
    events.add_argument("--db", type=Path, help=_db_help())
    events.add_argument("--json", action="store_true",
                        help="print the stored events as JSON (with --follow: one a line)")
    events.add_argument("-f", "--follow", action="store_true",
                        help="keep printing new events as they arrive, until the session "
                             "ends or Ctrl-C")
    events.set_defaults(func=run_events)


def _db_help() -> str:
    return ("collector database (default: $FLIGHTDECK_COLLECTOR_DB, else "
            "$XDG_DATA_HOME/flightdeck-sensor/collector.db)")


def run_collect(args: argparse.Namespace) -> int:
    from ._server import CollectorServer
    from ._store import EventStore, default_db_path

    _configure_logging(args.verbose)
    if token_option_refused(args, "collect"):
        return 2
    if args.max_connections < 1 or not 0 < args.request_timeout < float("inf"):
        print("flightdeck-sensor collect: --max-connections and --request-timeout must be "
              "positive", file=sys.stderr)
        return 2
    db_path: Path = args.db or default_db_path()
    try:
        token, token_source = _resolve_token(args.token_file, token_file_beside(db_path))
    except TokenError as error:
        print(f"flightdeck-sensor collect: {error}", file=sys.stderr)
        return 1
    try:
        store = EventStore(db_path)
    except Exception as error:  # OSError, sqlite3.Error: unwritable path, not a database
        print(f"flightdeck-sensor collect: cannot open database {db_path}: {error}",
              file=sys.stderr)
        return 1
    try:
        server = CollectorServer((args.host, args.port), token, store,
                                 batch_endpoint=not args.no_batch,
                                 max_connections=args.max_connections,
                                 request_timeout=args.request_timeout)
    except OSError as error:
        store.close()
        print(f"flightdeck-sensor collect: cannot listen on {args.host}:{args.port}: "
              f"{error.strerror or error}", file=sys.stderr)
        return 1
    url = _base_url(args.host, server.server_address[1])
    _print_banner(url, db_path, token_source)
    _hint_without_prices()
    store.load_prices()
    if args.ready_file:
        _write_ready_file(args.ready_file, url, server.server_address[1], db_path)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _defer_cyclic_gc()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        store.close()
    return 0


# A batch's parsed events (a dict each, their nested objects) live until it is stored:
# more containers than CPython's first-generation threshold, so every batch set off
# collections walking them all (docs/decisions.md, Collector). They are freed by
# reference count; cycles are still collected, after this many allocations.
GC_THRESHOLD = 20_000


def _defer_cyclic_gc() -> None:
    """This process only runs the collector: a first-generation threshold above a batch."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, older, oldest)


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("flightdeck_sensor.collector")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def token_file_beside(db_path: Path) -> Path:
    """Where a generated token is kept: next to the database, in its private directory."""
    return db_path.with_name(db_path.stem + ".token")


def _resolve_token(token_file: Path | None, default_file: Path) -> tuple[str, str]:
    """The token and where it came from, as the banner names it: --token-file, else
    $FLIGHTDECK_TOKEN, else the default token file (a new token written to it if missing).
    Never from the command line itself: every user of the machine can read that."""
    if token_file is not None:
        return read_token_file(token_file), f"file:{token_file}"
    from_env = os.environ.get("FLIGHTDECK_TOKEN", "").strip()
    if from_env:
        return checked_token(from_env, "$FLIGHTDECK_TOKEN"), "$FLIGHTDECK_TOKEN"
    if os.path.lexists(default_file):
        return read_token_file(default_file), f"file:{default_file}"
    token = GENERATED_TOKEN_PREFIX + secrets.token_urlsafe(24)
    _write_private(default_file, token)
    return token, f"file:{default_file}"


def _write_private(path: Path, token: str) -> None:
    """Create ``path`` (0600) holding ``token``; never through an existing file or link."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise TokenError(f"cannot write the token file {path}: {error.strerror or error}") from None
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")


def _base_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _print_banner(url: str, db_path: Path, token_source: str) -> None:
    """The two export lines to paste; the token itself is never printed, only where it is."""
    lines = [f"flightdeck-sensor collector listening on {url} (database: {db_path})",
             "Paste these two lines into the shell that runs your agent:",
             f"export FLIGHTDECK_SERVER={url}/ingest"]
    if token_source.startswith("file:"):
        path = shlex.quote(str(Path(token_source.removeprefix("file:")).resolve()))
        lines.append(f'export FLIGHTDECK_TOKEN="$(cat {path})"')
    else:
        lines.append(f"(FLIGHTDECK_TOKEN: the one already in {token_source})")
    where = ("in " + str(Path(token_source.removeprefix("file:")).resolve())
             if token_source.startswith("file:") else f"in {token_source}")
    lines.append(f"Web console: {url}/  (log in with the token: it is {where})")
    print("\n".join(lines), flush=True)


def _hint_without_prices() -> None:
    """One line when costs cannot be computed (a plain install, without the extra)."""
    from ._cost import INSTALL_HINT, prices_installed

    if not prices_installed():
        print(f"Note: {INSTALL_HINT}", file=sys.stderr, flush=True)


def _write_ready_file(path: Path, url: str, port: int, db_path: Path) -> None:
    """Atomically, so a reader never sees half a file. The token is deliberately not in it."""
    info = {"url": url, "ingest_url": f"{url}/ingest", "port": port, "pid": os.getpid(),
            "db": str(db_path)}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(info))
    os.replace(temporary, path)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_sessions(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from ._report import print_sessions
    from ._session_query import parse_since

    try:
        since = parse_since(args.since, datetime.now(timezone.utc)) if args.since else None
    except ValueError as error:
        print(f"flightdeck-sensor sessions: {error}", file=sys.stderr)
        return 2
    return print_sessions(args.db, as_json=args.json, limit=args.limit, agent=args.agent,
                          states=args.state, since=since)


def run_events(args: argparse.Namespace) -> int:
    if args.follow:
        from ._follow import follow_events

        return follow_events(args.db, args.session_id, as_json=args.json)
    from ._report import print_events

    return print_events(args.db, args.session_id, as_json=args.json)
