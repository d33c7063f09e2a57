"""The soak's fault-injecting HTTP proxy: in front of the collector, it answers
each request as its mode says (``down``: port closed; ``up``: forward; ``slow``:
forward late; ``500``; ``429`` with ``Retry-After``)."""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ProxyStats:
    requests: dict[str, int] = field(default_factory=dict)
    forwarded_events: int = 0


class FaultProxy:
    """In front of the collector; ``mode`` decides each answer."""

    def __init__(self, upstream_port: int, slow_seconds: float, retry_after: int) -> None:
        self.upstream_port = upstream_port
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.mode = "up"
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ingest"

    def set_mode(self, mode: str) -> None:
        if mode == "down":
            self._close()
        elif self._server is None:
            self._listen()
        self.mode = mode

    def stop(self) -> None:
        self._close()

    def _listen(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True, name="soak-proxy").start()
        self._server = server

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def _count(self, mode: str) -> None:
        with self._lock:
            self.stats.requests[mode] = self.stats.requests.get(mode, 0) + 1

    def _forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            conn.request("POST", path.replace("/ingest", "", 1), body=body, headers=headers)
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each answer waits on a delayed ACK

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                mode = proxy.mode
                proxy._count(mode)
                if mode == "500":
                    return self._reply(500, b'{"error":"injected"}')
                if mode == "429":
                    return self._reply(429, b'{"error":"slow down"}',
                                       [("Retry-After", str(proxy.retry_after))])
                if mode == "slow":
                    time.sleep(proxy.slow_seconds)
                keep = ("content-type", "content-encoding", "authorization", "user-agent")
                headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
                try:
                    status, data = proxy._forward(self.path, headers, body)
                except OSError:
                    return self._reply(502, b'{"error":"upstream"}')
                with contextlib.suppress(ValueError):
                    proxy.stats.forwarded_events += json.loads(data).get("accepted", 0)
                with contextlib.suppress(OSError):
                    self._reply(status, data)

            def _reply(self, status: int, data: bytes,
                       headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
