"""HTTP to the ingest endpoint: one keep-alive connection of the standard
library's ``http.client``.

Not httpx: importing it cost every process that imported an SDK about 25 ms
(openai 3.x and anthropic 2.x speak through httpx2, so httpx was ours alone),
its import on the sender thread raced openai 3.x's ``sys.modules["httpx"]``
look-ups, and a POST through it costs several times the CPU of one through
``http.client``. The sensor needs one connection, one method and two headers.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._config import is_loopback_host
from .._version import __version__

if TYPE_CHECKING:
    import ssl

REQUEST_TIMEOUT = 5.0
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


class IngestClient:
    def __init__(self, server: str, token: str | None, compression: str = "auto") -> None:
        url = urllib.parse.urlsplit(server)
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        # To a server on this machine gzip saves no bandwidth and costs a fifth
        # of the sender's CPU per event (and the server's to inflate).
        self._gzip = compression == "gzip" or (
            compression == "auto" and not is_loopback_host(self._host))
        self._port = url.port
        self._base_path = url.path.rstrip("/")
        self._headers = {"Content-Type": "application/json",
                         "User-Agent": f"flightdeck-sensor/{__version__}"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._connection: http.client.HTTPConnection | None = None
        self._reused = False  # the connection has carried a request already
        self._request: tuple[str, bytes, dict[str, str], float] = ("", b"", {}, REQUEST_TIMEOUT)
        self._tls: ssl.SSLContext | None = None

    def post(self, path: str, body: bytes, timeout: float = REQUEST_TIMEOUT) -> Answer:
        """POST ``body`` (gzipped above 1 KiB where compression is on); never raises.
        ``timeout`` bounds each step (connect, send, each read), as httpx's did."""
        return self.begin(path, body, timeout) or self.finish()

    def begin(self, path: str, body: bytes, timeout: float = REQUEST_TIMEOUT) -> Answer | None:
        """Send the request; the answer is read by :meth:`finish`, so the caller
        can work while the server does. Returns an Answer only when sending
        failed (then there is nothing to finish). Never raises."""
        headers = dict(self._headers)
        if self._gzip and len(body) > GZIP_ABOVE:
            body = gzip.compress(body, compresslevel=1)  # 3x cheaper than 6, ~10% larger
            headers["Content-Encoding"] = "gzip"
        timeout = max(0.05, min(timeout, REQUEST_TIMEOUT))
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
                if not reused:
                    raise
                return step(True)
        except TimeoutError as exc:  # socket.timeout is TimeoutError since 3.10
            return Answer(0, error=f"timeout ({type(exc).__name__})")
        except (OSError, http.client.HTTPException) as exc:
            return Answer(0, error=f"{type(exc).__name__}: {_first_line(exc)}")
        except Exception as exc:  # a broken TLS setup or codec must not kill the sender
            return Answer(0, error=f"{type(exc).__name__}")

    def _send_request(self, again: bool) -> None:
        path, body, headers, timeout = self._request
        connection = self._connection
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
            response = connection.getresponse()
            answer = response.read(MAX_ANSWER_BYTES)
            if response.will_close or not response.isclosed():  # closing, or a flood left unread
                self.close()
            else:
                self._reused = True
        except BaseException:
            self.close()
            raise
        return Answer(response.status, answer, response.getheader("Retry-After"))

    def _open(self, timeout: float) -> http.client.HTTPConnection:
        if not self._https:
            return http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        if self._tls is None:
            import ssl

            # Loading the system's certificates costs ~0.2 s: only for https.
            self._tls = ssl.create_default_context()
        return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                           context=self._tls)

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._reused = False
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()
    return text[0][:200] if text else ""
