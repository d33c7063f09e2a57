"""A scriptable, misbehaving ingest server for the sender's fault tests.

Stdlib ``http.server`` on 127.0.0.1:0, in a thread of the test process. Each
request takes the next scripted :class:`Reply` (the last one repeats), or the
default: 200 with an accepting envelope. It records every request, with the
events of its (gunzipped) body.

    with IngestServer([Reply(503), Reply(200)]) as server:
        ... run a sensor with server=server.url ...
        server.events()  # every event received with a 2xx answer

Heartbeats (``POST .../v1/heartbeat``) carry no events; by default they are
answered ``{"status":"ok","directive":null}``. :class:`DirectiveOnce` is a
responder that hands one directive out, in the first answer after it is armed.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEARTBEAT_PATH = "/ingest/v1/heartbeat"


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | None = None  # None: an accepting envelope
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    never_answer: bool = False  # read the request, then hold the connection open
    close_connection: bool = False  # read the request, then close without answering
    paths: tuple[str, ...] = ()  # only for these paths (empty: any path)
    drip: float = 0.0  # write the answer one byte every ``drip`` seconds


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    events: list[dict[str, Any]]
    status: int
    at: float


class IngestServer:
    def __init__(self, script: Sequence[Reply] = (),
                 responder: Callable[[Received], Reply | None] | None = None,
                 port: int = 0, host: str = "127.0.0.1") -> None:
        self._script = list(script)
        self._responder = responder
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self._release = threading.Event()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://{host}:{self.port}/ingest"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-ingest")

    @classmethod
    def on_port(cls, port: int, script: Sequence[Reply] = ()) -> IngestServer:
        """A server on a given port (to bring a "dead" server back up)."""
        return cls(script, port=port)

    def __enter__(self) -> IngestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._release.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script = list(replies)

    def _next_reply(self, received: Received) -> Reply:
        if self._responder is not None:
            reply = self._responder(received)
            if reply is not None:
                return reply
        with self._lock:
            for index, reply in enumerate(self._script):
                if not reply.paths or received.path in reply.paths:
                    if len(self._script) > 1:  # the last reply repeats
                        self._script.pop(index)
                    return reply
        return Reply()

    # -- what tests read ------------------------------------------------------
    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events of requests answered 2xx, in arrival order."""
        with self._lock:
            found = [e for r in self.requests if 200 <= r.status < 300 for e in r.events]
        return [e for e in found if event_type is None or e.get("event_type") == event_type]

    def heartbeats(self) -> list[Received]:
        """Every heartbeat request, whatever it was answered."""
        with self._lock:
            return [r for r in self.requests if r.path == HEARTBEAT_PATH]

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def wait_for(self, predicate: Callable[[IngestServer], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    # -- the handler --------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(Reply(200, {"status": "ok", "service": "ingestion"}), b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                events = [] if self.path == HEARTBEAT_PATH else _decode_events(
                    raw, self.headers.get("Content-Encoding"))
                received = Received("POST", self.path, dict(self.headers.items()), raw,
                                    events, 0, time.time())
                reply = server._next_reply(received)
                received.status = 0 if (reply.never_answer or reply.close_connection) \
                    else reply.status
                with server._lock:
                    server.requests.append(received)
                if reply.never_answer:
                    server._release.wait(60)
                    self.close_connection = True
                    return
                if reply.close_connection:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                self._answer(reply, raw, received)

            def _answer(self, reply: Reply, raw: bytes, received: Received | None = None) -> None:
                body = reply.body
                if body is None:
                    body = envelope(received)
                data = json.dumps(body).encode() if isinstance(body, dict) else body
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                if reply.drip:
                    self._headers_buffer.append(b"\r\n")
                    self._drip(b"".join(self._headers_buffer) + data, reply.drip)
                    self._headers_buffer = []
                    return
                self.end_headers()
                self.wfile.write(data)

            def _drip(self, answer: bytes, interval: float) -> None:
                """A byte at a time, until the answer is out, the client has gone
                or the server stops."""
                self.close_connection = True
                for byte in answer:
                    if server._release.wait(interval):
                        return
                    try:
                        self.wfile.write(bytes((byte,)))
                        self.wfile.flush()
                    except OSError:
                        return

        return Handler


def envelope(received: Received | None, directive: dict[str, Any] | None = None,
             ) -> dict[str, Any]:
    """The accepting answer to ``received``: a heartbeat's has no ``attached``."""
    if received is not None and received.path == HEARTBEAT_PATH:
        return {"status": "ok", "directive": directive}
    return {"status": "ok", "accepted": len(received.events) if received else 0,
            "rejected": [], "directive": directive, "attached": False}


class DirectiveOnce:
    """A responder that hands ``directive`` out once, as the server does: in the
    first answer (to one of ``paths``, or any) after :meth:`arm`. ``handed_to``
    is the request whose answer carried it."""

    def __init__(self, directive: dict[str, Any], paths: tuple[str, ...] = ()) -> None:
        self.directive = directive
        self.paths = paths
        self.handed_to: Received | None = None
        self._armed = False
        self._lock = threading.Lock()

    def arm(self) -> None:
        self._armed = True

    def __call__(self, received: Received) -> Reply | None:
        with self._lock:
            if not self._armed or self.handed_to is not None or (
                    self.paths and received.path not in self.paths):
                return None
            self.handed_to = received
        return Reply(200, envelope(received, self.directive))


def _decode_events(raw: bytes, encoding: str | None) -> list[dict[str, Any]]:
    try:
        if encoding == "gzip":
            raw = gzip.decompress(raw)
        value = json.loads(raw)
    except (ValueError, OSError, EOFError):
        return []
    if isinstance(value, dict) and isinstance(value.get("events"), list):
        return [e for e in value["events"] if isinstance(e, dict)]
    return [value] if isinstance(value, dict) else []
