"""The web console, served by the collector on its own port: the page at ``/``, its
files under ``/console/``, and its JSON API under ``/console/api/v1/``.

Authentication: the collector's token, presented once to ``POST .../login``, buys a
random session id in an HttpOnly, SameSite=Strict cookie (the page's script never
holds the token after login); the API also takes the token as a bearer header, for
scripts. A token in a query string is refused: query strings land in logs and
history. State-changing requests made with the cookie must also carry the header
``X-Flightdeck-Console`` (a cross-site page cannot send it without a CORS
preflight, which is never granted) and, when the browser sends an ``Origin``, it
must be this server's. The operator's buttons call the same functions as the
command line's ``stop``, ``degrade``, ``budget set`` and ``directive run``.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import _console_api as api
from ._http_body import HttpError
from ._store import open_for_commands, open_readonly

CONSOLE_PREFIX = "/console"
API_PREFIX = "/console/api/v1"
COOKIE_NAME = "flightdeck_console"
CSRF_HEADER = "X-Flightdeck-Console"
LOGIN_SECONDS = 12 * 3600
MAX_LOGINS = 64
READ_CONNECTIONS = 4
READ_WAIT_SECONDS = 10.0
FLEET_CACHE_SECONDS = 10.0
_STATIC_DIR = Path(__file__).with_name("console")
_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/index.html": ("index.html", "text/html; charset=utf-8"),
           "/console/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/console/app.css": ("app.css", "text/css; charset=utf-8"),
           "/console/favicon.svg": ("favicon.svg", "image/svg+xml")}
# The page's own files only; no inline script or style, no other origin, no framing.
_PAGE_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self';"
                                " img-src 'self' data:; connect-src 'self';"
                                " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"), ("Cache-Control", "no-cache")]
_API_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "no-referrer")]
_TOKEN_WORDS = ("token", "access_token", "auth", "authorization", "bearer", "key")
MAX_REASON = 1000


@dataclass
class Reply:
    """An answer: status, body and its type, extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def is_console_path(path: str) -> bool:
    return path in _STATIC or path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


class Console:
    """The console's state in the collector: logins, read connections, the command
    connection the buttons write through."""

    def __init__(self, token: str, db_path: Path) -> None:
        self._token = token.encode()
        self._db_path = db_path
        self._logins: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._logins_lock = threading.Lock()
        self._reads: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._opened = 0
        self._reads_lock = threading.Lock()
        self._commands: sqlite3.Connection | None = None
        self._commands_lock = threading.Lock()
        self._fleet_cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._charts = api.UsageCharts()
        self._files: dict[str, bytes] = {}

    def close(self) -> None:
        while True:
            try:
                self._reads.get_nowait().close()
            except queue.Empty:
                break
        with self._commands_lock:
            if self._commands is not None:
                self._commands.close()
                self._commands = None

    # --- requests -------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Message,
               bearer_ok: bool, read_json: Callable[[], Any]) -> Reply:
        """One request to a console path. ``bearer_ok``: the Authorization header carried
        the collector's token."""
        split = urlsplit(target)
        path = split.path.rstrip("/") or "/"
        try:
            params = parse_qs(split.query, keep_blank_values=True, max_num_fields=50,
                              errors="strict")
        except (ValueError, UnicodeDecodeError):
            raise HttpError(400, "query string: at most 50 fields, UTF-8") from None
        if any(word in key.lower() for key in params for word in _TOKEN_WORDS):
            raise HttpError(400, "a token never goes in a URL query (it lands in logs): log in "
                                 "with POST /console/api/v1/login, or send Authorization: "
                                 "Bearer")
        if path in _STATIC:
            if method not in ("GET", "HEAD"):
                raise HttpError(405, f"{path} accepts GET only")
            return self._static(path)
        if not path.startswith(API_PREFIX + "/"):
            raise HttpError(404, f"no such path: {path[:100]}")
        route = path[len(API_PREFIX) + 1:]
        if route == "login":
            return self._login(method, headers, read_json)
        by_cookie = self._cookie_login(headers) is not None
        if not (bearer_ok or by_cookie):
            raise HttpError(401, "log in first (POST /console/api/v1/login with the token)")
        if method == "POST":
            if not bearer_ok:
                _check_same_origin(headers)
            if route == "logout":
                return self._logout(headers)
            return self._act(route, read_json())
        if method not in ("GET", "HEAD"):
            raise HttpError(405, f"{path} accepts GET or POST only")
        return _json(200, self._read(route, params))

    def _static(self, path: str) -> Reply:
        name, content_type = _STATIC[path]
        body = self._files.get(name)
        if body is None:
            body = (_STATIC_DIR / name).read_bytes()
            self._files[name] = body
        return Reply(200, body, content_type, list(_PAGE_HEADERS))

    # --- login ----------------------------------------------------------------------------

    def _login(self, method: str, headers: Message, read_json: Callable[[], Any]) -> Reply:
        if method == "GET":  # is this browser logged in?
            if self._cookie_login(headers) is None:
                raise HttpError(401, "not logged in")
            return _json(200, {"status": "ok"})
        if method != "POST":
            raise HttpError(405, "login accepts GET or POST only")
        _check_same_origin(headers)
        body = read_json()
        presented = body.get("token") if isinstance(body, dict) else None
        if not isinstance(presented, str) or not presented.isascii() or len(presented) > 512 \
                or not hmac.compare_digest(presented.strip().encode(), self._token):
            raise HttpError(401, "wrong token")
        login = secrets.token_urlsafe(32)
        with self._logins_lock:
            self._logins[login] = time.monotonic() + LOGIN_SECONDS
            while len(self._logins) > MAX_LOGINS:
                self._logins.popitem(last=False)
        cookie = (f"{COOKIE_NAME}={login}; HttpOnly; SameSite=Strict; Path=/;"
                  f" Max-Age={LOGIN_SECONDS}")
        return _json(200, {"status": "ok"}, [("Set-Cookie", cookie)])

    def _logout(self, headers: Message) -> Reply:
        login = self._cookie_login(headers)
        if login is not None:
            with self._logins_lock:
                self._logins.pop(login, None)
        expired = f"{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        return _json(200, {"status": "ok"}, [("Set-Cookie", expired)])

    def _cookie_login(self, headers: Message) -> str | None:
        """The cookie's login id when it is a live one."""
        raw = headers.get("Cookie")
        if not raw or len(raw) > 8192:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(COOKIE_NAME)
        if morsel is None:
            return None
        login = morsel.value
        with self._logins_lock:
            expires = self._logins.get(login)
            if expires is None:
                return None
            if expires < time.monotonic():
                del self._logins[login]
                return None
        return login

    # --- reads ----------------------------------------------------------------------------

    def _read(self, route: str, params: Mapping[str, list[str]]) -> dict[str, Any]:
        parts = route.split("/")
        with self._read_connection() as conn:
            try:
                return self._read_route(conn, parts, params)
            except api.BadQuery as bad:
                raise HttpError(400, str(bad)) from None

    def _read_route(self, conn: sqlite3.Connection, parts: list[str],
                    params: Mapping[str, list[str]]) -> dict[str, Any]:
        if parts == ["sessions"]:
            return api.sessions_page(conn, params)
        if parts == ["fleet"]:
            return self._fleet(conn, params)
        if parts == ["directives"]:
            return api.directives_page(conn, params)
        if parts == ["agents"]:
            return api.agents(conn)
        if parts == ["changes"]:
            return api.changes(conn)
        if len(parts) in (2, 3) and parts[0] == "sessions":
            session_id = api.checked_session_id(unquote(parts[1]))
            detail = api.session_detail(conn, session_id)
            if detail is None:
                raise HttpError(404, "no such session")
            if len(parts) == 2:
                return detail
            if parts[2] == "timeline":
                return api.timeline(conn, session_id, params)
            if parts[2] == "usage":
                return self._charts.usage(conn, detail)
            if parts[2] == "event":
                event = api.event_detail(conn, session_id, params)
                if event is None:
                    raise HttpError(404, "no such event")
                return event
        raise HttpError(404, f"no such path: {'/'.join(parts)[:100]}")

    def _fleet(self, conn: sqlite3.Connection,
               params: Mapping[str, list[str]]) -> dict[str, Any]:
        """The fleet's figures, kept a few seconds: every open page polls them."""
        key = repr(sorted(params.items()))
        cached = self._fleet_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        answer = api.fleet(conn, params)
        if len(self._fleet_cache) > 16:
            self._fleet_cache.clear()
        self._fleet_cache[key] = (time.monotonic() + FLEET_CACHE_SECONDS, answer)
        return answer

    @contextlib.contextmanager
    def _read_connection(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of a small pool: the console's queries never take the
        ingest's connection or its lock (WAL: readers do not block the writer)."""
        conn = self._take_read_connection()
        try:
            yield conn
        finally:
            self._reads.put(conn)

    def _take_read_connection(self) -> sqlite3.Connection:
        try:
            return self._reads.get_nowait()
        except queue.Empty:
            pass
        with self._reads_lock:
            if self._opened < READ_CONNECTIONS:
                self._opened += 1
                conn = open_readonly(self._db_path, shared=True)
                conn.execute("PRAGMA busy_timeout=5000")
                return conn
        try:
            return self._reads.get(timeout=READ_WAIT_SECONDS)
        except queue.Empty:
            raise HttpError(503, "console busy; retry") from None

    # --- the operator's buttons -----------------------------------------------------------

    def _act(self, route: str, body: Any) -> Reply:
        from . import _control_commands as commands

        if not isinstance(body, dict):
            raise HttpError(400, "body: a JSON object")
        action = _ACTIONS.get(route)
        if action is None:
            raise HttpError(404, f"no such action: {route[:100]}")
        with self._commands_lock:
            if self._commands is None:
                self._commands = open_for_commands(self._db_path, shared=True)
            try:
                return _json(200, action(self._commands, body))
            except commands.CommandError as refusal:
                raise HttpError(400, str(refusal)) from None


def _target(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(session, agent) of an action's body: exactly one of them, a bounded string."""
    session, agent = body.get("session"), body.get("agent")
    for name, value in (("session", session), ("agent", agent)):
        if value is not None and (not isinstance(value, str) or not value or len(value) > 1024):
            raise HttpError(400, f"{name}: a non-empty string")
    if (session is None) == (agent is None):
        raise HttpError(400, "give a session or an agent (one of them)")
    return session, agent


def _text_field(body: dict[str, Any], name: str, default: str = "",
                limit: int = MAX_REASON) -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > limit:
        raise HttpError(400, f"{name}: a string of at most {limit} characters")
    return value


def _int_field(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**62:
        raise HttpError(400, f"{name}: a whole number")
    return value


def _stop(conn: sqlite3.Connection, body: dict[str, Any]) -> dict[str, Any]:
    from . import _control_commands as commands

    session, agent = _target(body)
    return commands.stop(conn, session, agent, _text_field(body, "reason")).as_json()


def _degrade(conn: sqlite3.Connection, body: dict[str, Any]) -> dict[str, Any]:
    from . import _control_commands as commands

    session, agent = _target(body)
    return commands.degrade(conn, session, agent, _text_field(body, "to", limit=256),
                            _text_field(body, "reason")).as_json()


def _budget(conn: sqlite3.Connection, body: dict[str, Any]) -> dict[str, Any]:
    from . import _control
    from . import _control_commands as commands

    session, agent = _target(body)
    limit = _int_field(body, "limit", None)
    if limit is None:
        raise HttpError(400, "limit: a positive number of tokens")
    to = _text_field(body, "to", limit=256).strip() or None
    budget = commands.checked_budget(
        limit, _int_field(body, "warn", _control.DEFAULT_WARN_AT_PCT) or 0,
        _int_field(body, "degrade", None), to,
        _int_field(body, "block", _control.DEFAULT_BLOCK_AT_PCT) or 0)
    policy, issued = commands.set_budget(conn, session, agent, budget)
    return {"policy": policy, **issued.as_json()}


def _directive(conn: sqlite3.Connection, body: dict[str, Any]) -> dict[str, Any]:
    """A registered custom directive; its parameters as text, coerced as the command
    line's ``--param KEY=VALUE`` are."""
    from . import _control_commands as commands

    session, agent = _target(body)
    name = _text_field(body, "name", limit=256)
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict) or len(parameters) > 100:
        raise HttpError(400, "parameters: an object of at most 100 entries")
    pairs = []
    for key, value in parameters.items():
        if not isinstance(value, (str, int, float, bool)) or len(str(value)) > 10_000:
            raise HttpError(400, f"parameter {key[:100]!r}: a string, number or boolean")
        if value == "":
            continue  # left empty in the form: the registered default, if any
        pairs.append(f"{key}={str(value).lower() if isinstance(value, bool) else value}")
    issued, values = commands.run_custom(conn, name, session, agent, pairs)
    return {"parameters": values, **issued.as_json()}


_ACTIONS: dict[str, Callable[[sqlite3.Connection, dict[str, Any]], dict[str, Any]]] = {
    "actions/stop": _stop, "actions/degrade": _degrade, "actions/budget": _budget,
    "actions/directive": _directive,
}


def _check_same_origin(headers: Message) -> None:
    """CSRF: the page's own header, and when the browser names the origin, ours."""
    if headers.get(CSRF_HEADER) is None:
        raise HttpError(403, f"missing {CSRF_HEADER} header (the console page sets it)")
    origin, host = headers.get("Origin"), headers.get("Host")
    if origin is not None and (host is None or origin not in (f"http://{host}",
                                                              f"https://{host}")):
        raise HttpError(403, "cross-origin request refused")


def _json(status: int, answer: dict[str, Any],
          headers: list[tuple[str, str]] | None = None) -> Reply:
    import json

    return Reply(status, json.dumps(answer).encode(), "application/json",
                 [*_API_HEADERS, *(headers or [])])
