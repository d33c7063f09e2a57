"""Servers that answer too slowly to ever finish: for checks that need a whole deadline.

``DripServer`` reads a request, then sends its answer one byte at a time,
``interval`` seconds apart, until stopped: every single read a client makes
succeeds well within any per-read timeout, yet the answer never completes.

    with DripServer() as server:
        ... point a client at server.url ...
"""

from __future__ import annotations

import contextlib
import socket
import threading


class DripServer:
    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/ingest"
        self.connections = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> DripServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(connection,), daemon=True).start()

    def _drip(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            connection.settimeout(5)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                received += chunk
            answer = b"HTTP/1.1 200 OK\r\nX-Drip: " + b"." * 100_000
            for index in range(len(answer)):
                if self._stopped.wait(self.interval):
                    return
                connection.sendall(answer[index:index + 1])
