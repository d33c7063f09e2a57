"""HTTP to the ingest endpoint: one keep-alive connection of the standard
library's ``http.client``.

Not httpx (docs/decisions.md): importing it cost every process that imported
an SDK (openai 3.x and anthropic 2.x speak through httpx2, so httpx was ours
alone), its import on the sender thread raced openai 3.x's
``sys.modules["httpx"]`` look-ups, and a POST through it costs more CPU than
one through ``http.client``. The sensor needs one connection, one method and two headers.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import io
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._url import is_loopback_host
from .._version import __version__

if TYPE_CHECKING:
    import ssl

REQUEST_TIMEOUT = 5.0  # each step: connect, send, one read
REQUEST_DEADLINE = 10.0  # the whole request, however the server paces its answer
GZIP_ABOVE = 1024
MAX_ANSWER_BYTES = 1024 * 1024  # an envelope is a few hundred bytes; never read a flood
# A kept-alive connection the server closed while idle fails on its next use
# with one of these: the request is sent again, once, on a fresh connection.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                     ConnectionAbortedError)


@dataclass(frozen=True)
class Answer:
    """A server's answer; ``status`` 0 means no answer (connection error, timeout)."""

    status: int
    body: bytes = b""
    retry_after: str | None = None
    error: str = ""
    location: str | None = None  # a redirect's target (never followed)


def request(url: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None, *, timeout: float = REQUEST_TIMEOUT,
            deadline: float = REQUEST_DEADLINE, max_bytes: int = MAX_ANSWER_BYTES,
            tls: ssl.SSLContext | None = None) -> Answer:
    """One request to ``url`` on a fresh connection, bounded as a whole: each
    step (connect, send, one read) within ``timeout`` seconds and everything
    within ``deadline`` seconds, however the server paces its answer. Reads at
    most ``max_bytes`` of the body; follows no redirect; never raises (status
    0 and ``error`` when there is no answer)."""
    parts = urllib.parse.urlsplit(url)
    ends = time.monotonic() + max(0.0, deadline)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection | None = None
    try:
        connection = _connection(parts.scheme == "https", parts.hostname or "", parts.port,
                                 _step_timeout(timeout, ends), tls)
        connection.request(method, path, body=body, headers=headers or {})
        return _read_response(connection, ends, timeout, max_bytes)[0]
    except Exception as exc:
        return _failure(exc)
    finally:
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


class IngestClient:
    def __init__(self, server: str, token: str | None, compression: str = "auto",
                 content_type: str = "application/json",
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        """``headers``: more headers for every request (an OTLP endpoint's,
        which may hold a secret: never logged)."""
        url = urllib.parse.urlsplit(server)
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        # To a server on this machine gzip saves no bandwidth and costs the
        # sender's CPU per event (and the server's to inflate): docs/decisions.md.
        self._gzip = compression == "gzip" or (
            compression == "auto" and not is_loopback_host(self._host))
        self._port = url.port
        self._base_path = url.path.rstrip("/")
        self._headers = {**dict(headers), "Content-Type": content_type,
                         "User-Agent": f"flightdeck-sensor/{__version__}"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._connection: http.client.HTTPConnection | None = None
        self._reused = False  # the connection has carried a request already
        self._request: tuple[str, bytes, dict[str, str], float] = ("", b"", {}, REQUEST_TIMEOUT)
        self._tls: ssl.SSLContext | None = None
        self._ends = 0.0  # the monotonic time the current request must be over by
        self._aborted = False  # abort() ended the current request: it is not sent again

    def begin(self, path: str, body: bytes, timeout: float = REQUEST_TIMEOUT,
              deadline: float = REQUEST_DEADLINE) -> Answer | None:
        """POST ``body`` (gzipped above 1 KiB where compression is on); the answer
        is read by :meth:`finish`, so the caller can work while the server does.
        ``timeout`` bounds each step (connect, send, each read), ``deadline`` the
        whole request (at most :data:`REQUEST_DEADLINE`). Returns an Answer only
        when sending failed (then there is nothing to finish). Never raises."""
        headers = dict(self._headers)
        if self._gzip and len(body) > GZIP_ABOVE:
            body = gzip.compress(body, compresslevel=1)  # cheapest level: docs/decisions.md
            headers["Content-Encoding"] = "gzip"
        self._ends = time.monotonic() + max(0.05, min(deadline, REQUEST_DEADLINE))
        self._aborted = False
        timeout = max(0.05, min(timeout, deadline, REQUEST_TIMEOUT))
        self._request = (path, body, headers, timeout)
        return self._guarded(self._send_request)

    def finish(self) -> Answer:
        """The answer to the request :meth:`begin` sent. Never raises."""
        return self._guarded(self._read_answer) or Answer(0, error="no request was sent")

    def _guarded(self, step: Callable[[bool], Answer | None]) -> Answer | None:
        """Run ``step``; a kept-alive connection found closed by the server is
        re-opened and the request sent again, once; errors become status 0."""
        try:
            reused = self._reused
            try:
                return step(False)
            except _STALE_CONNECTION:
                if not reused or self._aborted:
                    raise
                return step(True)
        except Exception as exc:
            return _failure(exc)

    def _send_request(self, again: bool) -> None:
        path, body, headers, timeout = self._request
        connection = self._connection
        timeout = _step_timeout(timeout, self._ends)
        if connection is None:
            connection = self._connection = self._open(timeout)
            self._reused = False
        else:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
        try:
            connection.request("POST", self._base_path + path, body=body, headers=headers)
        except BaseException:
            self.close()
            raise

    def _read_answer(self, again: bool) -> Answer:
        if again:  # the connection was stale: send the request again first
            self._send_request(again)
        connection = self._connection
        if connection is None:
            raise http.client.NotConnected("no connection")
        try:
            answer, reusable = _read_response(connection, self._ends, self._request[3],
                                              MAX_ANSWER_BYTES)
            if reusable:
                self._reused = True
            else:  # closing, or a flood left unread
                self.close()
        except BaseException:
            self.close()
            raise
        return answer

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        if self._https and self._tls is None:
            self._tls = _default_tls()
        return _connection(self._https, self._host, self._port, timeout, self._tls)

    def abort(self) -> None:
        """From another thread: end the request in progress now (its answer is
        lost and it is not sent again); the next request opens a new connection.
        The socket is shut down, not closed: the thread reading it owns it."""
        self._aborted = True
        connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                # socket.socket's own shutdown, also for TLS: SSLSocket.shutdown
                # would drop the TLS state under the reading thread.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._reused = False
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


def _default_tls() -> ssl.SSLContext:
    import ssl

    # Loading the system's certificates is costly: only for https.
    return ssl.create_default_context()


def _connection(https: bool, host: str, port: int | None, timeout: float,
                tls: ssl.SSLContext | None) -> http.client.HTTPConnection:
    connection: http.client.HTTPConnection
    if https:
        connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                 context=tls or _default_tls())
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    return connection


def _step_timeout(timeout: float, ends: float) -> float:
    """``timeout``, shortened to what is left of the request's whole deadline."""
    left = ends - time.monotonic()
    if left <= 0:
        raise TimeoutError("the request's deadline passed")
    return max(0.01, min(timeout, left))


def _read_response(connection: http.client.HTTPConnection, ends: float, timeout: float,
                   max_bytes: int) -> tuple[Answer, bool]:
    """Status, headers and at most ``max_bytes`` of the body, every read within
    ``timeout`` and all of them before ``ends`` (a server dripping its answer a
    byte at a time never times out a read); and whether the connection can
    carry another request."""
    def response_class(sock: socket.socket, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
        return http.client.HTTPResponse(_DeadlineSocket(sock, ends, timeout),  # type: ignore[arg-type]
                                        *args, **kwargs)

    connection.response_class = response_class  # type: ignore[assignment]
    response = connection.getresponse()
    body = response.read(max_bytes)
    reusable = not response.will_close and response.isclosed()  # else a flood was left unread
    return Answer(response.status, body, response.getheader("Retry-After"),
                  location=response.getheader("Location")), reusable


class _DeadlineSocket:
    """What ``HTTPResponse`` reads from (it only calls ``makefile``): a reader
    whose every read is bounded by the per-read timeout and the deadline."""

    def __init__(self, sock: socket.socket, ends: float, timeout: float) -> None:
        self._reader = _DeadlineReader(sock, ends, timeout)

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(self._reader)


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: socket.socket, ends: float, timeout: float) -> None:
        self._sock, self._ends, self._timeout = sock, ends, timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_step_timeout(self._timeout, self._ends))
        return self._sock.recv_into(buffer)


def _failure(exc: BaseException) -> Answer:
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since 3.10
        return Answer(0, error=f"timeout ({type(exc).__name__})")
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return Answer(0, error=f"{type(exc).__name__}: {_first_line(exc)}")
    # a broken TLS setup or codec must not kill the sender
    return Answer(0, error=f"{type(exc).__name__}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()
    return text[0][:200] if text else ""
