"""The sender's HTTP client against a raw loopback server: keep-alive reuse, a
connection the server closed while idle, and answers it must not read whole."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from flightdeck_sensor.transport._http import (
    MAX_ANSWER_BYTES,
    REQUEST_TIMEOUT,
    Answer,
    IngestClient,
)

OK = b'{"status":"ok","accepted":1,"rejected":[]}'


def post(client: IngestClient, body: bytes, timeout: float = REQUEST_TIMEOUT) -> Answer:
    """One batch request, as the sender makes it: send, then read the answer."""
    return client.begin("/v1/events/batch", body, timeout) or client.finish()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head


class RawServer:
    """Accepts connections one at a time; ``serve(conn)`` answers on each."""

    def __init__(self, serve: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._serve = serve
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._serve(conn)

    def close(self) -> None:
        self.listener.close()


def answer(status: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(serve: Callable[[socket.socket], None]) -> RawServer:
        servers.append(RawServer(serve))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_requests_share_one_kept_alive_connection(raw_server: Callable[..., RawServer]) -> None:
    def serve(conn: socket.socket) -> None:
        while _read_request(conn):
            conn.sendall(answer(b"200 OK", OK))

    server = raw_server(serve)
    client = IngestClient(f"http://127.0.0.1:{server.port}", "tok")

    answers = [post(client, b'{"events":[]}') for _ in range(3)]

    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].body == OK
    assert server.connections == 1
    client.close()


def test_a_connection_the_server_closed_while_idle_is_reopened_once(
        raw_server: Callable[..., RawServer]) -> None:
    # Given a server that answers one request per connection, then closes it
    # without saying so (no "Connection: close"), as an idle timeout does
    def serve(conn: socket.socket) -> None:
        if _read_request(conn):
            conn.sendall(answer(b"200 OK", OK))

    server = raw_server(serve)
    client = IngestClient(f"http://127.0.0.1:{server.port}", "tok")

    # When the client posts twice
    first = post(client, b'{"events":[]}')
    second = post(client, b'{"events":[]}')

    # Then the second post went through on a fresh connection, not as an error
    assert (first.status, second.status) == (200, 200), second.error
    assert server.connections == 2
    client.close()


def test_a_flood_of_an_answer_is_read_only_up_to_the_cap(
        raw_server: Callable[..., RawServer]) -> None:
    flood = b"x" * (MAX_ANSWER_BYTES + 4096)

    def serve(conn: socket.socket) -> None:
        if _read_request(conn):
            with contextlib.suppress(OSError):  # the client hangs up after its cap
                conn.sendall(answer(b"500 Internal Server Error", flood))

    server = raw_server(serve)
    client = IngestClient(f"http://127.0.0.1:{server.port}", "tok")

    result = post(client, b'{"events":[]}')

    assert result.status == 500
    assert len(result.body) == MAX_ANSWER_BYTES
    client.close()


def test_no_answer_within_the_timeout_is_status_0(raw_server: Callable[..., RawServer]) -> None:
    release = threading.Event()

    def serve(conn: socket.socket) -> None:
        _read_request(conn)
        release.wait(5)

    server = raw_server(serve)
    client = IngestClient(f"http://127.0.0.1:{server.port}", "tok")

    result = post(client, b'{"events":[]}', timeout=0.2)
    release.set()

    assert result.status == 0
    assert result.error.startswith("timeout")
    client.close()


def test_a_garbled_status_line_is_status_0_not_an_exception(
        raw_server: Callable[..., RawServer]) -> None:
    def serve(conn: socket.socket) -> None:
        if _read_request(conn):
            conn.sendall(b"HTTQ/9 two hundred\r\n\r\n")

    server = raw_server(serve)
    client = IngestClient(f"http://127.0.0.1:{server.port}", "tok")

    result = post(client, b'{"events":[]}')

    assert result.status == 0
    assert "BadStatusLine" in result.error or "RemoteDisconnected" in result.error
    client.close()
