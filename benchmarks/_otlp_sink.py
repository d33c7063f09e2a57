"""A loopback OTLP/HTTP traces sink for the benchmarks, in a process of its own
(its CPU is not the measured process's): answers every POST 200 with an empty
ExportTraceServiceResponse and counts the spans it received (decoded with the
official definitions).

    python -m benchmarks._otlp_sink READY_FILE
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SPANS = {"count": 0}
_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # the count, for the benchmark to wait on
        self._answer(json.dumps(SPANS).encode())

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        count = sum(len(scope.spans) for resource in request.resource_spans
                    for scope in resource.scope_spans)
        with _LOCK:
            SPANS["count"] += count
        self._answer(b"")

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    Path(sys.argv[1]).write_text(json.dumps({"port": server.server_address[1]}))
    server.serve_forever()


if __name__ == "__main__":
    main()
