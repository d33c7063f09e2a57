"""Sender benchmark: delivery rate to the real collector on loopback, sender CPU
and wire bytes per event, memory with the server down, and time to exit.

    .venv/bin/python -m benchmarks.sender [--quick] [--out .bench/sender.json]

Events are real ones (``Session.build`` of a post_call); they go through the
real queue, sender thread, httpx and gzip to a ``flightdeck-sensor collect``
subprocess. The figures are for this machine at the time of the run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    CALL_FIELDS,
    ROOT,
    TOKEN,
    Collector,
    clean_env,
    run_main,
    stop_process,
    write_report,
)
from fakes.ingest_server import IngestServer, Reply
from flightdeck_sensor._config import Config, resolve_config
from flightdeck_sensor._session import Session
from flightdeck_sensor.transport import Transport
from flightdeck_sensor.transport._wire import complete_event


def config_for(server: str, spool_dir: str, compression: str = "auto") -> Config:
    """``compression``: auto sends uncompressed to these loopback endpoints; gzip
    does what a remote server gets."""
    config, _ = resolve_config({}, server=server, token=TOKEN)
    return config.replace(spool_dir=spool_dir, compression=compression)


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def thread_cpu(thread: threading.Thread | None) -> float:
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


# -- the collector ----------------------------------------------------------------------
SINK_PROGRAM = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = b'{"status":"ok","rejected":[],"directive":null,"attached":false}'
class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body, written apart, wait on delayed ACKs
    def log_message(self, *args): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Sink:
    """An endpoint that accepts everything at once: measures the sender alone."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SINK_PROGRAM],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.ingest_url = f"http://127.0.0.1:{self.process.stdout.readline().strip()}/ingest"

    def stop(self) -> None:
        stop_process(self.process)


# -- 1. rate and CPU ---------------------------------------------------------------------
def measure_throughput(collector: Collector | Sink, events: int, runs: int,
                       spool: str, compression: str = "auto") -> dict[str, Any]:
    rates, cpu_per_event = [], []
    for _ in range(runs):
        config = config_for(collector.ingest_url, spool, compression)
        session = Session(config)
        transport = Transport(config)
        cap = config.max_queue_events * 0.8
        started = time.perf_counter()
        for _ in range(events):
            while len(transport._queue) > cap:  # stay under the bound: measure delivery
                time.sleep(0.0005)
            transport.submit(session.build("post_call", CALL_FIELDS))
        delivered = transport.flush(120)
        elapsed = time.perf_counter() - started
        sender_cpu = thread_cpu(transport._thread)
        status = transport.status()
        transport.close(5)
        assert delivered and status["sent"] == events, status
        rates.append(events / elapsed)
        cpu_per_event.append(sender_cpu / events * 1e6)
    return {"events": events, "runs": runs, "compression": compression,
            "events_per_s": round(statistics.median(rates)),
            "events_per_s_min": round(min(rates)), "events_per_s_max": round(max(rates)),
            "sender_cpu_us_per_event": round(statistics.median(cpu_per_event), 2),
            "sender_cpu_us_per_event_min": round(min(cpu_per_event), 2),
            "sender_cpu_us_per_event_max": round(max(cpu_per_event), 2),
            "sender_capacity_events_per_cpu_s": round(1e6 / statistics.median(cpu_per_event))}


# -- 2. bytes on the wire ------------------------------------------------------------------
def measure_wire_bytes(events: int, spool: str) -> dict[str, Any]:
    with IngestServer() as server:
        config = config_for(server.url, spool, compression="gzip")  # as to a remote server
        session, transport = Session(config), Transport(config)
        raw_sizes = []
        for _ in range(events):
            event = session.build("post_call", CALL_FIELDS)
            whole = complete_event(event)  # as the sender writes it: every field, once
            raw_sizes.append(len(json.dumps(whole, separators=(",", ":"), ensure_ascii=False)))
            transport.submit(event)
        transport.flush(60)
        transport.close(5)
        wire = sum(len(r.raw_body) for r in server.requests)
        requests = len(server.requests)
    return {"events": events, "requests": requests,
            "body_bytes_per_event": round(wire / events, 1),
            "json_bytes_per_event": round(statistics.mean(raw_sizes), 1),
            "compression_ratio": round(statistics.mean(raw_sizes) * events / wire, 1)}


# -- 3. memory with the server down ------------------------------------------------------
def measure_memory_down(events: int, spool: str) -> dict[str, Any]:
    dead = IngestServer()
    dead.stop()
    config = config_for(dead.url, spool)
    session, transport = Session(config), Transport(config)
    samples = []
    step = events // 10
    gc.collect()
    before = rss_mib()
    for n in range(events):
        transport.submit(session.build("post_call", CALL_FIELDS))
        if n % step == step - 1:
            samples.append(round(rss_mib(), 1))
    status = transport.status()
    transport.close(2)
    start, end = samples[0], samples[-1]
    return {"events": events, "rss_before_mib": round(before, 1), "rss_start_mib": start,
            "rss_end_mib": end, "rss_max_mib": max(samples), "growth_mib": round(end - start, 1),
            "samples_mib": samples, "queued_at_end": status["queued"],
            "dropped": status["dropped"], "spooled": status["spooled"],
            "note": "RSS sampled every 10% of the events; growth = last sample - first "
                    "(the first sample is taken once the queue is full)"}


# -- 4. time to exit ----------------------------------------------------------------------
EXIT_PROGRAM = """
import time, flightdeck_sensor, os
from flightdeck_sensor import _sensor
if os.environ["BENCH_SERVER"] == "httpx":  # baseline: what importing httpx costs at exit
    import httpx
    client = httpx.Client()
elif os.environ["BENCH_SERVER"]:
    flightdeck_sensor.init(server=os.environ["BENCH_SERVER"], token="{token}")
    sensor = _sensor.current()
    for _ in range(1000):
        sensor.record("post_call", {fields!r})
print(time.time(), flush=True)
"""


def exit_seconds(server: str, spool: str) -> float:
    """From the program's last statement to its process's end ("" : no sensor)."""
    env = clean_env(BENCH_SERVER=server, FLIGHTDECK_SPOOL_DIR=spool)
    program = EXIT_PROGRAM.format(token=TOKEN, fields=CALL_FIELDS)
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                          text=True, timeout=60)
    ended = time.time()
    return ended - float(done.stdout.strip().splitlines()[-1])


def measure_exit(collector: Collector, runs: int, spool: str) -> dict[str, Any]:
    dead = IngestServer()
    dead.stop()
    results: dict[str, Any] = {}
    with IngestServer([Reply(never_answer=True)]) as hanging:
        for state, url in (("no_sensor_baseline", ""), ("no_sensor_httpx_baseline", "httpx"),
                           ("up", collector.ingest_url),
                           ("down", dead.url), ("not_answering", hanging.url)):
            times = [exit_seconds(url, spool) for _ in range(runs)]
            results[state] = {"median_s": round(statistics.median(times), 3),
                              "min_s": round(min(times), 3), "max_s": round(max(times), 3),
                              "runs": runs}
    results["budget_s"] = 2.0
    results["pending_events"] = 1000
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench" / "sender.json")
    args = parser.parse_args()
    quick = args.quick
    with tempfile.TemporaryDirectory() as work:
        spool = str(Path(work) / "spool")
        collector = Collector(Path(work))
        try:
            sink = Sink()
            try:
                sender_alone = measure_throughput(sink, 20_000 if quick else 100_000,
                                                  1 if quick else 3, spool)
                sender_alone_gzip = measure_throughput(sink, 20_000 if quick else 100_000,
                                                       1 if quick else 3, spool, "gzip")
            finally:
                sink.stop()
            result: dict[str, Any] = {
                "throughput": measure_throughput(collector, 20_000 if quick else 100_000,
                                                 1 if quick else 3, spool),
                "throughput_null_endpoint": sender_alone,
                "throughput_null_endpoint_gzip": sender_alone_gzip,
                "wire": measure_wire_bytes(5_000, spool),
                "memory": measure_memory_down(200_000 if quick else 1_000_000, spool),
                "exit": measure_exit(collector, 1 if quick else 3, spool),
            }
        finally:
            collector.stop()
    result["load_average_at_end"] = list(os.getloadavg())
    result["cpus"] = os.cpu_count()
    write_report(result, args.out)
    print_table(result)
    return 0


def print_table(result: dict[str, Any]) -> None:
    t, w, m, e = result["throughput"], result["wire"], result["memory"], result["exit"]
    rows = [
        ("delivered to the collector (loopback)",
         f"{t['events_per_s']:,} events/s (min {t['events_per_s_min']:,}, "
         f"max {t['events_per_s_max']:,})"),
        ("delivered to a null endpoint (sender alone)",
         f"{result['throughput_null_endpoint']['events_per_s']:,} events/s"),
        ("the same, bodies gzipped (as to a remote server)",
         f"{result['throughput_null_endpoint_gzip']['events_per_s']:,} events/s"),
        ("sender thread CPU per event",
         f"{t['sender_cpu_us_per_event']} us (one core: "
         f"{t['sender_capacity_events_per_cpu_s']:,} events/s)"),
        ("bytes on the wire per event",
         f"{w['body_bytes_per_event']} B gzip (JSON {w['json_bytes_per_event']} B)"),
        (f"memory, server down, {m['events']:,} events",
         f"{m['rss_start_mib']} -> {m['rss_end_mib']} MiB RSS (growth {m['growth_mib']} MiB)"),
        ("exit with 1,000 pending, server up", f"{e['up']['median_s']} s"),
        ("exit with 1,000 pending, server down", f"{e['down']['median_s']} s"),
        ("exit with 1,000 pending, never answers", f"{e['not_answering']['median_s']} s"),
        ("exit of the same program without the sensor",
         f"{e['no_sensor_baseline']['median_s']} s "
         f"(with httpx imported: {e['no_sensor_httpx_baseline']['median_s']} s)"),
    ]
    rows.append(("machine load average (1 min) / CPUs",
                 f"{result['load_average_at_end'][0]:.1f} / {result['cpus']}"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(run_main(main))
