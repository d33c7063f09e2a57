"""The ingest HTTP server: Flightdeck's ingestion paths (events, heartbeat), plus our
batch endpoint, and the control-plane API under ``/api`` (policy, directive registration).

The ingestion paths are served both under ``/ingest`` (where Flightdeck's reverse
proxy puts them) and at the root; every answer to an events POST or a heartbeat
carries the session's next directive. Every request ends in a JSON answer or a
closed connection: a bad body is a 4xx, never a crash. A connection holds one thread, and only
``max_connections`` are served at once (more are answered 503 and closed at
once); a client has ``request_timeout`` seconds for a whole request, however
slowly it drips it, so slow clients cannot hold the threads for long.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import socket
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .._version import __version__
from . import _control_api
from ._batch import validate_batch
from ._console import Console, Reply, is_console_path
from ._http_body import MAX_BODY_BYTES, HttpError, decode_body, parse_json, split_batch
from ._store import EventStore
from ._validate import InvalidEvent, validate_event

logger = logging.getLogger("flightdeck_sensor.collector")

MAX_BATCH_EVENTS = 1000
SOCKET_TIMEOUT_SECONDS = 10.0       # silence between two reads (an idle keep-alive connection)
REQUEST_TIMEOUT_SECONDS = 30.0      # a whole request: request line, headers and body
MAX_CONNECTIONS = 256
_BUSY_ANSWER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: 40\r\n\r\n"
                b'{"error": "too many connections; retry"}')
# After an early answer that closes the connection: how long, and how much of
# what the client is still sending, to read and drop first (see _linger).
LINGER_SECONDS, LINGER_BYTES = 2.0, 8 * 1024 * 1024

HEALTH_PATH = "/health"
SINGLE_PATH = "/v1/events"
BATCH_PATH = "/v1/events/batch"
HEARTBEAT_PATH = "/v1/heartbeat"
_KNOWN_PATHS = {HEALTH_PATH: "GET", SINGLE_PATH: "POST", BATCH_PATH: "POST",
                HEARTBEAT_PATH: "POST"}
# The control-plane API: Flightdeck serves it under /api (the sensor's ingest URL with
# /ingest replaced by /api), and so do we, and only there.
API_PREFIX = "/api"
POLICY_PATH = "/api/v1/policy"
SYNC_PATH = "/api/v1/directives/sync"
REGISTER_PATH = "/api/v1/directives/register"
_API_PATHS = {POLICY_PATH: "GET", SYNC_PATH: "POST", REGISTER_PATH: "POST"}


class CollectorServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the token and the event store."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], token: str, store: EventStore,
                 batch_endpoint: bool = True, max_connections: int = MAX_CONNECTIONS,
                 request_timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.expected_authorization = f"Bearer {token}".encode()
        self.store = store
        self.console = Console(token, store.path)
        # False: behave as Flightdeck's ingestion, which has no batch endpoint.
        self.batch_endpoint = batch_endpoint
        self.request_timeout = request_timeout
        self.refused_busy = 0
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, IngestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection while a slot is free; else 503 and close, at once."""
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_busy(self, request: socket.socket) -> None:
        """Never blocks the accepting thread: whatever of the answer fits is sent."""
        self.refused_busy += 1
        if self.refused_busy in (1, 100) or self.refused_busy % 10_000 == 0:
            logger.warning("collector: %d connection(s) refused so far: all %d connections busy "
                           "(--max-connections)", self.refused_busy, self.max_connections)
        try:
            request.setblocking(False)
            request.send(_BUSY_ANSWER)
        except OSError:
            pass
        self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        self.console.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that broke (reset, timeout): one DEBUG line, not a traceback on stderr."""
        logger.debug("collector: connection from %s failed", client_address, exc_info=True)

    def is_authorized(self, header: str | None) -> bool:
        """Constant-time comparison of the whole ``Authorization`` header."""
        if header is None:
            return False
        try:
            presented = header.encode("latin-1")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(presented, self.expected_authorization)


def ingest_path(raw_path: str) -> str:
    """The route for a request path: query dropped, ``/ingest`` prefix and trailing '/' removed."""
    path = urlsplit(raw_path).path
    if path == "/ingest" or path.startswith("/ingest/"):
        path = path[len("/ingest"):]
    return path.rstrip("/") or "/"


class IngestHandler(BaseHTTPRequestHandler):
    """One connection: keep-alive HTTP/1.1, every answer JSON with a Content-Length."""

    server: CollectorServer
    protocol_version = "HTTP/1.1"
    server_version = f"flightdeck-collector/{__version__}"
    timeout = SOCKET_TIMEOUT_SECONDS
    # TCP_NODELAY: an answer goes out as two writes (head, body); with Nagle on, the body
    # waits for the client's delayed ACK of the head (docs/decisions.md, 'Collector').
    disable_nagle_algorithm = True
    error_content_type = "application/json"
    error_message_format = '{"error": "%(code)d %(message)s"}'

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def setup(self) -> None:
        super().setup()
        self._reader = DeadlineReader(self.connection, self.rfile)
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        """One request (the wait for it included) within the server's request timeout."""
        self._reader.start(self.server.request_timeout)
        super().handle_one_request()

    def _handle(self, method: str) -> None:
        self._body_read = False  # the handler lives as long as the keep-alive connection
        try:
            if is_console_path(urlsplit(self.path).path):
                reply = self.server.console.handle(
                    method, self.path, self.headers,
                    self.server.is_authorized(self.headers.get("Authorization")),
                    self._read_json_body)
                self._send_reply(reply)
                return
            status, answer = self._route(method, ingest_path(self.path))
        except HttpError as error:
            logger.info("%s %s -> %d %s", method, self.path[:100], error.status, error.message)
            self._discard_body_or_close(error)
            self._send_json(error.status, {"error": error.message}, close=error.close)
            if error.status == 413 and error.close:  # a body left unread, too large
                self._linger()
            return
        except TimeoutError:
            self._send_json(408, {"error": "request body not received in time"}, close=True)
            return
        except OSError:  # the client reset the connection mid-request
            logger.debug("collector: client went away", exc_info=True)
            self.close_connection = True
            return
        except Exception:
            logger.exception("collector: request failed")
            self._send_json(500, {"error": "internal error"}, close=True)
            return
        self._send_json(status, answer)

    def _route(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        api_path = urlsplit(self.path).path.rstrip("/")
        if api_path == API_PREFIX or api_path.startswith(API_PREFIX + "/"):
            return self._route_api(method, api_path)
        allowed = _KNOWN_PATHS.get(path)
        if allowed is None or (path == BATCH_PATH and not self.server.batch_endpoint):
            raise HttpError(404, f"no such path: {path[:100]}")
        if method != allowed:
            raise HttpError(405, f"{path} accepts {allowed} only")
        if path == HEALTH_PATH:
            return 200, {"status": "ok", "service": "ingestion"}
        if not self.server.is_authorized(self.headers.get("Authorization")):
            raise HttpError(401, "missing or invalid token")
        body = decode_body(self._read_body(), self.headers.get("Content-Encoding"))
        if path == BATCH_PATH:
            split = split_batch(body)
            if split is not None:
                return 200, self._ingest_events(*split)
            return 200, self._ingest_batch(parse_json(body))
        if path == HEARTBEAT_PATH:
            session_id = _control_api.heartbeat_session(parse_json(body))
            # Flightdeck's heartbeat answer has no "attached".
            return 200, {"status": "ok", "directive": self.server.store.heartbeat(session_id)}
        return 200, self._ingest_single(parse_json(body))

    def _route_api(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        allowed = _API_PATHS.get(path)
        if allowed is None:
            raise HttpError(404, f"no such path: {path[:100]}")
        if method != allowed:
            raise HttpError(405, f"{path} accepts {allowed} only")
        if not self.server.is_authorized(self.headers.get("Authorization")):
            raise HttpError(401, "missing or invalid token")
        body = decode_body(self._read_body(), self.headers.get("Content-Encoding"))
        store = self.server.store
        if path == POLICY_PATH:
            flavor, session_id = _control_api.policy_query(urlsplit(self.path).query)
            policy = store.effective_policy(flavor, session_id)
            if policy is None:
                raise HttpError(404, "no policy")
            return 200, policy
        if path == SYNC_PATH:
            flavor, fingerprints = _control_api.sync_request(parse_json(body))
            return 200, {"unknown_fingerprints": store.unknown_fingerprints(flavor, fingerprints)}
        flavor, definitions = _control_api.register_request(parse_json(body))
        store.register_directives(flavor, definitions)
        return 200, {"status": "ok", "registered": len(definitions)}

    def _ingest_single(self, payload: object) -> dict[str, Any]:
        try:
            event = validate_event(payload, _now())
        except InvalidEvent as invalid:
            raise HttpError(400, str(invalid)) from None
        attached, directive = self.server.store.ingest_and_hand_out([event], event.session_id)
        return {"status": "ok", "directive": directive, "attached": attached}

    def _ingest_batch(self, payload: object) -> dict[str, Any]:
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list):
            raise HttpError(400, 'batch body must be {"events": [...]}')
        return self._ingest_events(events)

    def _ingest_events(self, events: list[Any], texts: list[str] | None = None) -> dict[str, Any]:
        """``texts``: each event's JSON text, when split_batch parsed the body."""
        if len(events) > MAX_BATCH_EVENTS:
            raise HttpError(413, f"batch of {len(events)} events; at most {MAX_BATCH_EVENTS}")
        accepted, rejected = validate_batch(events, _now(), texts)
        for index, error in rejected:
            logger.info("rejected event %d of a batch: %s", index, error)
        # The directive for the session of the batch's last accepted event (a sensor's
        # batch is one session's; Flightdeck answers each event for its own session).
        session_id = accepted[-1].session_id if accepted else None
        attached, directive = self.server.store.ingest_and_hand_out(accepted, session_id)
        return {"status": "ok", "accepted": len(accepted),
                "rejected": [{"index": index, "error": error} for index, error in rejected],
                "directive": directive, "attached": attached}

    def _read_json_body(self) -> Any:
        return parse_json(decode_body(self._read_body(), self.headers.get("Content-Encoding")))

    def _read_body(self) -> bytes:
        self._body_read = True
        if self.headers.get("Transfer-Encoding") is not None:
            return self._read_chunked_body()
        length = self._content_length()
        body = self.rfile.read(length)
        if len(body) < length:
            raise HttpError(400, "body shorter than Content-Length", close=True)
        return body

    def _content_length(self) -> int:
        header = self.headers.get("Content-Length")
        if header is None:
            return 0  # RFC 9112: no length and no transfer coding means an empty body
        header = header.strip()
        if not (header.isascii() and header.isdigit()):
            raise HttpError(400, "invalid Content-Length", close=True)
        length = int(header)
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"body larger than {MAX_BODY_BYTES} bytes", close=True)
        return length

    def _read_chunked_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").strip().lower() != "chunked":
            raise HttpError(400, "unsupported Transfer-Encoding", close=True)
        body = bytearray()
        while True:
            size_line = self.rfile.readline(100).split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise HttpError(400, "malformed chunked body", close=True) from None
            if size == 0:
                self._skip_trailers()
                return bytes(body)
            if size < 0:
                raise HttpError(400, "malformed chunked body", close=True)
            if len(body) + size > MAX_BODY_BYTES:
                raise HttpError(413, f"body larger than {MAX_BODY_BYTES} bytes", close=True)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise HttpError(400, "malformed chunked body", close=True)
            body += chunk

    def _skip_trailers(self) -> None:
        for _ in range(100):
            if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                return
        raise HttpError(400, "too many trailer lines", close=True)

    def _discard_body_or_close(self, error: HttpError) -> None:
        """Keep the connection usable after an early answer, unless its body is unbounded."""
        if error.close or self._body_read or self.command in ("GET", "HEAD"):
            return
        try:
            if self.headers.get("Transfer-Encoding") is not None:
                error.close = True
                return
            length = self._content_length()
            if length:
                self.rfile.read(length)
        except HttpError:
            error.close = True

    def _linger(self) -> None:
        """After answering early and before closing, read and drop what the client
        is still sending, within bounds. Closing with its body unread makes the
        kernel reset the connection, and a client still writing its body then
        gets a broken pipe instead of our answer (a 413 for a body over 1 MiB)."""
        deadline = time.monotonic() + LINGER_SECONDS  # in all, however slow the client
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)  # the answer is complete: FIN
            left = LINGER_BYTES
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.connection.settimeout(remaining)
                received = self.connection.recv(min(left, 65536))
                if not received:
                    return
                left -= len(received)
        except OSError:
            pass

    def _send_json(self, status: int, answer: dict[str, Any], close: bool = False) -> None:
        self._send_reply(Reply(status, json.dumps(answer).encode()), close)

    def _send_reply(self, reply: Reply, close: bool = False) -> None:
        body = reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        try:
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client went away before reading its answer
            self.close_connection = True


class DeadlineReader(io.RawIOBase):
    """The connection's reads, each allowed only until the current request's deadline
    (the socket's own timeout bounds one read, not a client dripping a byte at a time)."""

    def __init__(self, connection: socket.socket, raw: Any) -> None:
        super().__init__()
        self._connection = connection
        self._raw = raw  # the handler's own socket file, unbuffered use only through us
        self._deadline = float("inf")
        self._shortened = False

    def start(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds
        if self._shortened:
            self._connection.settimeout(SOCKET_TIMEOUT_SECONDS)
            self._shortened = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request not received in time")
        if remaining < SOCKET_TIMEOUT_SECONDS:
            self._connection.settimeout(remaining)
            self._shortened = True
        received: int = self._raw.raw.readinto(buffer)
        return received

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _now() -> datetime:
    return datetime.now(timezone.utc)
