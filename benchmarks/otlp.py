"""OTLP export: what it costs the caller, what it costs the sender, and what
OpenTelemetry's own OpenAI instrumentation costs for the same calls.

All in ONE process run, on the isolated path of ``benchmarks.calls`` (the
sensor's real wrapper around a stand-in for the SDK function that returns a
prebuilt SDK response: the sensor's few microseconds, without the SDK's
milliseconds around them):

1. Per call, on the caller's thread, with FLIGHTDECK_EXPORT ``flightdeck``,
   ``otlp`` and ``both`` (three sensors, each made the process's in turn),
   each in ABBA blocks against the stand-in alone.
2. The sender: its CPU per span and spans per second to a loopback OTLP sink
   (a process of its own), 5,000 calls' events queued before its thread
   starts; the Flightdeck sender's CPU per event beside it.
3. Ours against theirs: ``opentelemetry-instrumentation-openai-v2`` with the
   OpenTelemetry SDK's ``BatchSpanProcessor`` and OTLP/HTTP exporter to the
   same sink, its wrapper around the same stand-in: added time per call on the
   caller's thread (ABBA), and CPU per call of the whole process, background
   export included (N calls then a flush, against N calls of the stand-in).

    .venv/bin/python -m benchmarks.otlp [--quick] [--out .bench/otlp.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    CALL_FIELDS,
    MESSAGES,
    ROOT,
    TOKEN,
    Collector,
    clean_env,
    run_main,
    stop_process,
    wait_for_ready_file,
    write_report,
)
from benchmarks._provider import N_SHORT, Provider, openai_client
from benchmarks.calls import (
    IDLE_SENDER_CALLS,
    Case,
    isolated_cases,
    isolated_entry,
    measure,
)

EXPORTS = ("flightdeck", "otlp", "both")
SENDER_EVENTS = 5000
CPU_ROUNDS = 5


class Sink:
    """benchmarks._otlp_sink in a process of its own."""

    def __init__(self, workdir: Path) -> None:
        ready = workdir / "sink-ready.json"
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks._otlp_sink",
                                         str(ready)], env=clean_env(), cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = wait_for_ready_file(ready, self.process, "the OTLP sink")["port"]
        self.url = f"http://127.0.0.1:{port}"

    def spans(self) -> int:
        with urllib.request.urlopen(self.url, timeout=5) as answer:
            count: int = json.load(answer)["count"]
            return count

    def stop(self) -> None:
        stop_process(self.process)


def make_sensor(export: str, server: str, sink: str) -> Any:
    from flightdeck_sensor import _sensor
    from flightdeck_sensor._config import resolve_config

    config, warnings = resolve_config({
        "FLIGHTDECK_EXPORT": export, "FLIGHTDECK_SERVER": server, "FLIGHTDECK_TOKEN": TOKEN,
        "FLIGHTDECK_SPOOL": "off", "OTEL_EXPORTER_OTLP_ENDPOINT": sink})
    assert not warnings, warnings
    return _sensor.Sensor(config, [], "init")


def use(sensor: Any) -> None:
    from flightdeck_sensor import _sensor

    _sensor.process_sensor = sensor


# -- 1. per call, by export ------------------------------------------------------------

def per_call_by_export(sensors: dict[str, Any], provider: Provider, blocks: int,
                       calls: int) -> list[dict[str, Any]]:
    rows = []
    for case in isolated_cases(provider)[:3]:  # the plain calls: chat, embeddings, messages
        row: dict[str, Any] = {"case": case.name, "label": case.label}
        for export in EXPORTS:
            use(sensors[export])
            entry = isolated_entry(case)
            assert entry is not None, f"{case.name} is not wrapped"
            row[export] = measure(_toggled(case.name, case.label, entry, case.kwargs),
                                  blocks, calls, switch=_switch)
        rows.append(row)
        print(f"  per call {case.label:32} cpu added "
              + "  ".join(f"{e} {row[e]['cpu']['added_median_us']:6.2f}" for e in EXPORTS)
              + " us", file=sys.stderr)
    return rows


_ON = {"on": True}


def _switch(on: bool) -> None:
    _ON["on"] = on


def _toggled(name: str, label: str, entry: tuple[Callable[..., Any], Callable[..., Any]],
             kwargs: dict[str, Any]) -> Case:
    stand_in, bound = entry

    def call() -> Any:
        return (bound if _ON["on"] else stand_in)(**kwargs)

    return Case(name, label, False, 0, call)


# -- 2. the sender -----------------------------------------------------------------------

def sender_cost(sensor: Any, events: int) -> dict[str, Any]:
    """``events`` calls' terminal events queued before the sender starts; then the
    sender's CPU (the process's less the waiting main thread's) and wall time
    until all are delivered."""
    from flightdeck_sensor.transport import Transport

    transport = Transport(sensor.config)
    session = sensor.session
    traced: tuple[str, None, list[Any], None] = ("chat", None, [], None)
    for _ in range(events):
        fields = dict(CALL_FIELDS)
        fields["_otel"] = traced
        transport._queue.put(session.stamp("post_call", fields))
    process, main, wall = time.process_time(), time.thread_time(), time.perf_counter()
    transport._start_sender()
    delivered = transport.flush(120)
    wall = time.perf_counter() - wall
    sender_cpu = (time.process_time() - process) - (time.thread_time() - main)
    status = transport.status()
    transport.close(5)
    return {"events": events, "delivered": delivered, "sent": status["sent"],
            "sender_cpu_per_event_us": sender_cpu / events * 1e6,
            "wall_seconds": wall, "per_second": events / wall}


# -- 3. ours against theirs ----------------------------------------------------------------

def their_pipeline(sink: str) -> tuple[Any, Callable[[], None]]:
    """openai-v2 with the SDK's BatchSpanProcessor and OTLP/HTTP exporter: its
    wrapper of ``Completions.create``, and the flush of its pipeline."""
    import wrapt
    from openai.resources.chat.completions.completions import Completions
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import flightdeck_sensor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(f"{sink}/v1/traces")))
    flightdeck_sensor.unpatch()  # theirs alone on the entry point
    instrumentor = OpenAIInstrumentor()  # type: ignore[no-untyped-call]
    instrumentor.instrument(tracer_provider=provider)
    patched = Completions.__dict__["create"]
    assert isinstance(patched, wrapt.FunctionWrapper)
    wrapper = patched._self_wrapper
    instrumentor.uninstrument()
    flightdeck_sensor.patch()

    def flush() -> None:
        provider.force_flush()

    return wrapper, flush


def ours_against_theirs(sensor: Any, provider: Provider, sink: str, blocks: int,
                        calls: int) -> dict[str, Any]:
    import wrapt

    chat = isolated_cases(provider)[0]
    use(sensor)
    entry = isolated_entry(chat)
    assert entry is not None
    stand_in, ours = entry
    wrapper, their_flush = their_pipeline(sink)
    theirs: Callable[..., Any] = wrapt.FunctionWrapper(stand_in, wrapper).__get__(
        chat.instance, type(chat.instance))
    result: dict[str, Any] = {"case": chat.name, "label": chat.label}
    for name, bound in (("ours", ours), ("theirs", theirs)):
        result[name] = measure(_toggled(chat.name, chat.label, (stand_in, bound), chat.kwargs),
                               blocks, calls, switch=_switch)
    flushes: dict[str, Callable[[], None]] = {
        "off": lambda: None, "ours": lambda: sensor.flush(60), "theirs": their_flush}
    entries: dict[str, Callable[..., Any]] = {"off": stand_in, "ours": ours, "theirs": theirs}
    cpu: dict[str, list[float]] = {name: [] for name in entries}
    for _ in range(CPU_ROUNDS):
        for name, bound in entries.items():
            flushes[name]()
            start = time.process_time()
            for _ in range(calls * 10):
                bound(**chat.kwargs)
            flushes[name]()
            cpu[name].append((time.process_time() - start) / (calls * 10) * 1e6)
    off = statistics.median(cpu["off"])
    result["process_cpu_per_call_us"] = {name: statistics.median(v) for name, v in cpu.items()}
    result["process_cpu_added_us"] = {name: statistics.median(v) - off
                                      for name, v in cpu.items() if name != "off"}
    result["calls_per_cpu_round"] = calls * 10
    print(f"  ours vs theirs: caller cpu added ours "
          f"{result['ours']['cpu']['added_median_us']:.2f} theirs "
          f"{result['theirs']['cpu']['added_median_us']:.2f} us; process cpu added ours "
          f"{result['process_cpu_added_us']['ours']:.2f} theirs "
          f"{result['process_cpu_added_us']['theirs']:.2f} us", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few blocks, for a smoke run")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "otlp.json"))
    args = parser.parse_args()
    blocks, calls = (4, 40) if args.quick else (12, IDLE_SENDER_CALLS // 3)
    events = SENDER_EVENTS // 5 if args.quick else SENDER_EVENTS

    import flightdeck_sensor

    with tempfile.TemporaryDirectory(prefix="fd-bench-otlp-") as workdir:
        collector, sink = Collector(Path(workdir)), Sink(Path(workdir))
        try:
            flightdeck_sensor.init(server=collector.ingest_url, token=TOKEN, spool="off")
            sensors = {export: make_sensor(export, collector.ingest_url, sink.url)
                       for export in EXPORTS}
            provider = Provider()
            openai_client(provider, N_SHORT).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES)  # the SDK's first-call work, once
            by_export = per_call_by_export(sensors, provider, blocks, calls)
            senders = {export: sender_cost(sensors[export], events)
                       for export in ("otlp", "flightdeck")}
            for export, figures in senders.items():
                print(f"  sender {export:10} cpu {figures['sender_cpu_per_event_us']:6.1f} "
                      f"us/event, {figures['per_second']:8.0f}/s", file=sys.stderr)
            versus = ours_against_theirs(sensors["otlp"], provider, sink.url, blocks, calls)
            for sensor in sensors.values():
                sensor.flush(30)
            spans = sink.spans()
            for sensor in sensors.values():
                sensor.shutdown(5)
            use(None)
        finally:
            collector.stop()
            sink.stop()
    write_report({
        "benchmark": "otlp", "quick": args.quick, "blocks": blocks, "calls_per_block": calls,
        "threads": threading.active_count(),
        "clocks": {"cpu": "calling thread's CPU time (time.thread_time_ns)",
                   "wall": "wall time (time.perf_counter_ns)"},
        "sinks": "Flightdeck: the collector subprocess; OTLP: benchmarks._otlp_sink subprocess",
        "per_call": by_export, "sender": senders, "ours_vs_theirs": versus,
        "sink_spans": spans,
    }, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
