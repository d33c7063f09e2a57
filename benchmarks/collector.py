"""Collector benchmark: the local collector's own ingest rate, on loopback.

    .venv/bin/python -m benchmarks.collector [--quick] [--out .bench/collector.json]

Starts the real ``flightdeck-sensor collect`` as a subprocess, pre-builds
batch bodies of real post_call events (``Session.build``, then the sender's own
batch encoder; uncompressed, as the sensor sends to a server on loopback), then
POSTs them sequentially over one keep-alive connection as fast as the collector
answers. Reports events/s (median, min and max over the runs), the collector
process's CPU per event (utime + stime from /proc/PID/stat) and this client's
CPU per event, and checks at the end that the database holds every event sent.
The figures are for this machine at the time of the run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import CALL_FIELDS, TOKEN, Collector, run_main, write_report
from flightdeck_sensor._config import Config, resolve_config
from flightdeck_sensor._session import Session
from flightdeck_sensor._version import __version__
from flightdeck_sensor.transport import Transport
from flightdeck_sensor.transport._wire import complete_event

BATCH_PATH = "/ingest/v1/events/batch"
# The sender's serialisation before it spliced identities in (the fallback below).
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, ensure_ascii=False)


def build_bodies(events: int, batch: int, spool_dir: str) -> list[bytes]:
    """Batch bodies holding ``events`` fresh post_call events of one new session,
    made by the sender's own batch encoder (as it sends them: same text, same key order)."""
    config, _ = resolve_config({}, server="http://127.0.0.1:1/ingest", token=TOKEN)
    session = Session(config.replace(spool_dir=spool_dir))
    encode = sender_batch_encoder(config.replace(spool_dir=spool_dir))
    bodies = []
    for start in range(0, events, batch):
        chunk = [session.build("post_call", CALL_FIELDS)
                 for _ in range(min(batch, events - start))]
        bodies.append(encode(chunk))  # uncompressed: transport/_http.py, compression=auto
    return bodies


def sender_batch_encoder(config: Config) -> Callable[[list[dict[str, Any]]], bytes]:
    """The sender's ``_batch_body`` (a Transport starts no thread until its first event);
    if it has moved, the plain form it produces: complete events, compact JSON."""
    sender = getattr(Transport(config), "_sender", None)
    batch_body = getattr(sender, "_batch_body", None)
    if batch_body is not None:
        return lambda events: batch_body(events)[1]
    return lambda events: _ENCODER.encode(
        {"events": [complete_event(event) for event in events]}).encode()


def post_all(port: int, bodies: list[bytes], batch_sizes: list[int]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
               "User-Agent": f"flightdeck-sensor/{__version__}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for body, size in zip(bodies, batch_sizes, strict=True):
            conn.request("POST", BATCH_PATH, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"collector answered {response.status}: {answer[:200]!r}")
            envelope = json.loads(answer)
            if envelope.get("accepted") != size or envelope.get("rejected"):
                raise RuntimeError(f"collector did not accept the whole batch: {answer[:300]!r}")
    finally:
        conn.close()


def stored_events(db: Path) -> int:
    with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as conn:
        count: int = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    return count


def run(events: int, runs: int, batch: int) -> dict[str, Any]:
    rates, collector_cpu, client_cpu = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as workdir:
        collector = Collector(Path(workdir))
        try:
            post_all(collector.port, build_bodies(batch, batch, workdir), [batch])  # warm-up
            sent = batch
            for _ in range(runs):
                bodies = build_bodies(events, batch, workdir)
                sizes = [min(batch, events - start) for start in range(0, events, batch)]
                cpu_before = collector.cpu_seconds()
                client_before = time.process_time()
                started = time.perf_counter()
                post_all(collector.port, bodies, sizes)
                elapsed = time.perf_counter() - started
                client_cpu.append((time.process_time() - client_before) / events * 1e6)
                collector_cpu.append((collector.cpu_seconds() - cpu_before) / events * 1e6)
                rates.append(events / elapsed)
                sent += events
        finally:
            collector.stop()
        stored = stored_events(collector.db)
    return {"benchmark": "collector", "events_per_s": round(statistics.median(rates)),
            "events_per_s_min": round(min(rates)), "events_per_s_max": round(max(rates)),
            "collector_cpu_us_per_event": round(statistics.median(collector_cpu), 2),
            "collector_cpu_us_per_event_min": round(min(collector_cpu), 2),
            "collector_cpu_us_per_event_max": round(max(collector_cpu), 2),
            "client_cpu_us_per_event": round(statistics.median(client_cpu), 2),
            "batch_events": batch, "runs": runs, "events": events,
            "events_sent": sent, "events_stored": stored, "all_stored": stored == sent,
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer events per run")
    parser.add_argument("--events", type=int, help="events per run (100,000; --quick 20,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs (%(default)s)")
    parser.add_argument("--batch", type=int, default=500,
                        help="events per request, as the sender batches (%(default)s)")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    args = parser.parse_args()
    events = args.events or (20_000 if args.quick else 100_000)
    result = {"quick": args.quick, **run(events, max(1, args.runs), args.batch)}
    result = {"benchmark": result.pop("benchmark"), **result}
    print(f"collector ingest: {result['events_per_s']:,} events/s median "
          f"({result['events_per_s_min']:,}-{result['events_per_s_max']:,}) over "
          f"{result['runs']} runs of {events:,} events in batches of {args.batch}; "
          f"collector CPU {result['collector_cpu_us_per_event']} us/event, "
          f"client CPU {result['client_cpu_us_per_event']} us/event; "
          f"all stored: {result['all_stored']} ({result['events_stored']:,} of "
          f"{result['events_sent']:,})")
    if args.out:
        write_report(result, args.out)
    return 0 if result["all_stored"] else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
