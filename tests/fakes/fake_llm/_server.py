"""A fake LLM provider on loopback: real HTTP, JSON and SSE, scripted faults.

Provider routes live beside this file (``openai_routes.py``,
``anthropic_routes.py``); each registers handlers with :func:`route`.
A handler takes a :class:`Request` and returns a :class:`Reply`.

Faults are scripted in-process (``FakeLLM.script(...)``) or over HTTP
(``POST /_control/script`` with the same fields as JSON), so tests that run
the agent in a subprocess can script them too. A scripted reply applies to
the next ``times`` requests whose path ends with ``path``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # without the query string
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, for non-streamed replies
    headers: dict[str, str] = field(default_factory=dict)
    sse: list[tuple[str | None, str]] | None = None  # (event name, data) pairs
    drop_after: int | None = None  # SSE: close the connection after this many events
    chunk_delay: float = 0.0  # SSE: seconds between events
    delay: float = 0.0  # seconds before answering at all
    drop: bool = False  # close the connection without any answer
    # SSE: Transfer-Encoding chunked, as real APIs send streams; a drop then
    # leaves the body incomplete and the client raises instead of seeing a clean end.
    chunked: bool = False


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, body=body, headers=headers or {})


def sse_reply(events: Iterable[tuple[str | None, Any]],
              headers: dict[str, str] | None = None) -> Reply:
    """SSE reply from (event name or None, data) pairs; data dicts are JSON-encoded."""
    encoded = [(name, data if isinstance(data, str) else json.dumps(data)) for name, data in events]
    return Reply(sse=encoded, headers=headers or {})


Handler = Callable[[Request], Reply]
ROUTES: dict[tuple[str, str], Handler] = {}


def route(method: str, path: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES[(method, path)] = handler
        return handler
    return register


@dataclass
class _Scripted:
    path: str
    reply: Reply
    times: int


def reply_from_json(spec: dict[str, Any]) -> Reply:
    return Reply(status=int(spec.get("status", 200)), body=spec.get("body"),
                 headers=dict(spec.get("headers") or {}), sse=None,
                 drop_after=spec.get("drop_after"), chunk_delay=float(spec.get("chunk_delay", 0)),
                 delay=float(spec.get("delay", 0)), drop=bool(spec.get("drop", False)))


class FakeLLM:
    """The server. ``with FakeLLM() as fake: fake.url`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, record: bool = True) -> None:
        _load_routes()
        # Every request, for tests to inspect; ``record=False`` for long runs
        # (the soak): a log of 14,000 requests made the process's first full
        # garbage collection take ~70 ms, and a call waiting on it as long.
        self.record = record
        self.requests: list[Request] = []
        self._scripted: list[_Scripted] = []
        self._stream_faults: list[_Scripted] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeLLM:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="fake-llm",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, path: str, reply: Reply, times: int = 1) -> None:
        """The next ``times`` requests to a path ending with ``path`` get ``reply``."""
        with self._lock:
            self._scripted.append(_Scripted(path, reply, times))

    def script_stream_drop(self, path: str, after_events: int, times: int = 1) -> None:
        """The next ``times`` streamed replies on ``path`` drop the connection mid-stream."""
        with self._lock:
            self._stream_faults.append(_Scripted(path, Reply(drop_after=after_events), times))

    def script_stream_delay(self, path: str, chunk_delay: float, times: int = 1) -> None:
        """The next ``times`` streamed replies on ``path`` wait ``chunk_delay`` seconds
        before each event: slow enough to act on a stream while it is still open."""
        with self._lock:
            self._stream_faults.append(_Scripted(path, Reply(chunk_delay=chunk_delay), times))

    def reset(self) -> None:
        with self._lock:
            self._scripted.clear()
            self._stream_faults.clear()
            self.requests.clear()

    def _take(self, queue: list[_Scripted], path: str) -> Reply | None:
        with self._lock:
            for item in queue:
                if path.endswith(item.path):
                    item.times -= 1
                    if item.times <= 0:
                        queue.remove(item)
                    return item.reply
        return None

    def answer(self, request: Request) -> Reply:
        if self.record:
            with self._lock:
                self.requests.append(request)
        scripted = self._take(self._scripted, request.path)
        if scripted is not None:
            return scripted
        handler = ROUTES.get((request.method, request.path))
        if handler is None:
            for (method, path), candidate in ROUTES.items():
                if method == request.method and request.path.endswith(path):
                    handler = candidate
                    break
        if handler is None:
            return json_reply({"error": {"message": f"no route {request.path}",
                                         "type": "not_found"}}, 404)
        reply = handler(request)
        if reply.sse is not None:
            fault = self._take(self._stream_faults, request.path)
            if fault is not None:
                reply.drop_after = fault.drop_after
                reply.chunk_delay = fault.chunk_delay or reply.chunk_delay
        return reply


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-stream (early break, close) are normal here."""

    # The default listen backlog (5) refuses connections when hundreds of
    # asyncio tasks connect at once, which real providers never do.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _make_handler(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # An answer goes out as two writes (head, body): with Nagle on, the body
        # waits for the client's delayed ACK, up to 40 ms a call on Linux.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _request(self) -> Request:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            return Request(self.command, self.path.split("?", 1)[0],
                           {k.lower(): v for k, v in self.headers.items()}, body)

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            request = self._request()
            if request.path == "/_control/script":
                spec = request.json
                fake.script(str(spec.get("path", "")), reply_from_json(spec.get("reply") or {}),
                            int(spec.get("times", 1)))
                self._send_json(json_reply({"ok": True}))
                return
            if request.path == "/_control/stream_drop":
                spec = request.json
                fake.script_stream_drop(str(spec.get("path", "")), int(spec.get("after_events", 1)),
                                        int(spec.get("times", 1)))
                self._send_json(json_reply({"ok": True}))
                return
            if request.path == "/_control/requests":
                self._send_json(json_reply([r.__dict__ for r in fake.requests]))
                return
            reply = fake.answer(request)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                self.connection.close()
                return
            if reply.sse is not None:
                self._send_sse(reply)
            else:
                self._send_json(reply)

        def _send_json(self, reply: Reply) -> None:
            data = json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_sse(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            if reply.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.close_connection = True
            for index, (name, data) in enumerate(reply.sse or []):
                if reply.drop_after is not None and index >= reply.drop_after:
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                if reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                frame = ((f"event: {name}\n" if name else "") + f"data: {data}\n\n").encode()
                if reply.chunked:
                    frame = b"%x\r\n%s\r\n" % (len(frame), frame)
                self.wfile.write(frame)
                self.wfile.flush()
            if reply.chunked:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

    return Handler


def _load_routes() -> None:
    """Import the provider route modules present (each registers its routes)."""
    import importlib

    for name in ("openai_routes", "anthropic_routes"):
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
