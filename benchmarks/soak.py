"""The outage soak: an agent making real SDK calls while the ingest server is
down, then up, slow, answering 500, answering 429 with Retry-After.

Parts, all real and on loopback:

- the fake LLM provider (``tests/fakes/fake_llm``) as a subprocess;
- the project's collector as a subprocess (SQLite: the ids it stored);
- a fault-injecting HTTP proxy in this process in front of the collector,
  switched from phase to phase: ``down`` (port closed: connection refused),
  ``up`` (forward), ``slow`` (forward after ``slow_seconds``, longer than the
  sender's 5 s request timeout: the sender gives up and resends, so the
  collector sees the batch twice and must keep it once), ``500``, ``429``
  (with ``Retry-After``);
- the agent, a subprocess: OpenAI chat and Anthropic messages calls in a
  loop, the sensor configured from the environment (``init()`` + ``patch()``),
  alternating blocks with the sensor on and off (``unpatch()``) so call
  latency is compared within one process. It logs every event id the sensor
  submits (a wrapper around ``transport.submit``), its RSS and the sensor's
  status every second.

Afterwards the spool is shipped (``flightdeck-sensor spool flush``) and the
ids the agent submitted are compared with the ids the collector stored.

    scripts/soak [--quick] [--out .bench/soak.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import (
    ROOT,
    Collector,
    clean_env,
    run_main,
    stop_process,
    wait_for_ready_file,
    write_report,
)
from benchmarks._fault_proxy import FaultProxy
from benchmarks._schedstat import SchedSampler

TOKEN = "soak-token-0123456789"
QUEUE_CAP = 2000  # small, so a minute of outage fills it: memory must stay flat there
WARNING_MARK = "cannot deliver events"

FULL_PHASES = (("down", 60), ("up", 40), ("slow", 45), ("up", 40), ("500", 40), ("up", 40),
               ("429", 40), ("up", 40))
QUICK_PHASES = (("down", 4), ("up", 3), ("slow", 8), ("up", 3), ("500", 3), ("up", 3),
                ("429", 3), ("up", 4))

AGENT = r'''
import atexit, gc, json, logging, os, sys, threading, time, uuid
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(created).3f %(levelname)s %(name)s %(message)s")
import anthropic, openai
import flightdeck_sensor
from flightdeck_sensor import _sensor

flightdeck_sensor.init()
flightdeck_sensor.patch()
SENSOR = _sensor.current()
IDS = open(os.environ["SOAK_IDS"], "a", buffering=1)
_submit = SENSOR.transport.submit


def submit(event):
    # The sensor may stamp ids on its sender thread; one stamped here is kept.
    event.setdefault("id", str(uuid.uuid4()))
    IDS.write(event["id"] + "\n")
    _submit(event)


SENSOR.transport.submit = submit
atexit.register(IDS.flush)  # registered first: runs after the sensor's own exit flush

fake = os.environ["SOAK_LLM"]
oai = openai.OpenAI(base_url=fake + "/v1", api_key="sk-soak", max_retries=0)
ant = anthropic.Anthropic(base_url=fake, api_key="sk-ant-soak", max_retries=0)
MESSAGES = [{"role": "user", "content": "What is the capital of France"}]
STOP = os.environ["SOAK_STOP"]
PAUSE = float(os.environ.get("SOAK_PAUSE", "0.01"))
BLOCK = 10  # calls per on/off block


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    return 0


stats = open(os.environ["SOAK_STATS"], "a", buffering=1)
samples = {"on": [], "off": [], "on_gc": [], "off_gc": []}
# Time the garbage collector takes (any generation), to tell a slow call's GC
# pause from the sensor's own work.
gc_ms = 0.0
gc_started = 0.0


def on_gc(phase, info):
    global gc_ms, gc_started
    if phase == "start":
        gc_started = time.perf_counter()
    else:
        gc_ms += (time.perf_counter() - gc_started) * 1000


gc.callbacks.append(on_gc)
# --trace-slow: faulthandler's watchdog (a C thread: it runs even while another
# thread holds the GIL) writes every thread's stack when a call passes 40 ms.
TRACE = open(os.environ["SOAK_TRACE"], "a") if os.environ.get("SOAK_TRACE") else None
if TRACE is not None:
    import faulthandler
errors = 0
calls = 0
# One uncounted call of each SDK first, sensor off: an SDK's first call loads its
# resources and opens its connection (~80 ms for openai), whichever mode it falls in.
flightdeck_sensor.unpatch()
oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
ant.messages.create(model="claude-3-5-haiku-latest", max_tokens=32, messages=MESSAGES)
last = time.monotonic()
on = True
while not os.path.exists(STOP):
    if calls % BLOCK == 0:
        on = (calls // BLOCK) % 2 == 0
        (flightdeck_sensor.patch if on else flightdeck_sensor.unpatch)()
    gc_before = gc_ms
    if TRACE is not None:
        TRACE.write(f"--- call {calls} at {time.time():.3f}, sensor {'on' if on else 'off'}\n")
        TRACE.flush()
        faulthandler.dump_traceback_later(0.04, file=TRACE)
    start = time.perf_counter()
    try:
        if calls % 2:
            ant.messages.create(model="claude-3-5-haiku-latest", max_tokens=32, messages=MESSAGES)
        else:
            oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    except Exception as exc:
        errors += 1
        print(f"CALL ERROR {type(exc).__name__}: {exc}", file=sys.stderr)
    took = (time.perf_counter() - start) * 1000
    if TRACE is not None:
        faulthandler.cancel_dump_traceback_later()
    in_gc = gc_ms - gc_before
    samples["on" if on else "off"].append(took)
    samples["on_gc" if on else "off_gc"].append(in_gc)
    if took > 30:
        print(f"{time.time():.3f} SLOW CALL {took:.1f} ms, sensor {'on' if on else 'off'}, "
              f"GC {in_gc:.1f} ms in it", file=sys.stderr)
    calls += 1
    now = time.monotonic()
    if now - last >= 1.0:
        status = SENSOR.status()
        stats.write(json.dumps({"t": time.time(), "calls": calls, "errors": errors,
                                "rss_kib": rss_kib(), "on_ms": samples["on"],
                                "off_ms": samples["off"], "on_gc_ms": samples["on_gc"],
                                "off_gc_ms": samples["off_gc"],
                                "full_gcs": gc.get_stats()[2]["collections"],
                                "queued": status["queued"],
                                "sent": status["sent"], "spooled": status["spooled"],
                                "dropped": status["dropped"],
                                "server_state": status.get("server_state")}) + "\n")
        samples = {"on": [], "off": [], "on_gc": [], "off_gc": []}
        last = now
    time.sleep(PAUSE)
flightdeck_sensor.patch()
stats.write(json.dumps({"final": True, "t": time.time(), "calls": calls, "errors": errors,
                        "session_id": SENSOR.session.id}) + "\n")
exit_started = time.monotonic()
flightdeck_sensor.shutdown()
status = SENSOR.status()
stats.write(json.dumps({"exit": True, "exit_seconds": time.monotonic() - exit_started,
                        "status": status}) + "\n")
'''


# -- processes ----------------------------------------------------------------------------

def _clean_env(**extra: str) -> dict[str, str]:
    """A child's environment: no FLIGHTDECK_* or AGENT_* of the caller's, unbuffered output."""
    env = clean_env(PYTHONUNBUFFERED="1", **extra)
    return {k: v for k, v in env.items() if not k.startswith("AGENT_") or k in extra}


def start_fake_llm(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = workdir / "fake_llm.json"
    # --no-record: its log of every request grew until its first full garbage
    # collection (at ~14,000 requests, in the 500 phase) took ~70 ms, and the
    # call waiting on it as long: the soak's slow call of six runs in a row.
    process = subprocess.Popen([sys.executable, "-m", "fakes.fake_llm", "--port", "0",
                                "--ready-file", str(ready), "--no-record"],
                               env=_clean_env(PYTHONPATH=str(ROOT / "tests")),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, str(wait_for_ready_file(ready, process, "fake LLM")["url"])


# -- the run ------------------------------------------------------------------------------

@dataclass
class SoakResult:
    phases: list[dict[str, Any]]
    submitted: int
    stored: int
    missing: int
    unexpected: int
    duplicate_submissions: int
    dropped: dict[str, int]
    warnings: list[dict[str, Any]]
    call_errors: int
    calls: int
    exit_seconds: float | None
    spool_flush: str
    proxy_requests: dict[str, int]
    forwarded_events: int
    rss_kib: list[int]
    queue_cap: int
    max_queued: int
    agent_stderr_tail: str
    slow_calls: list[dict[str, Any]] = field(default_factory=list)
    summary_lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_soak(phases: tuple[tuple[str, float], ...], workdir: Path, slow_seconds: float = 10.0,
             retry_after: int = 3, pause: float = 0.01,
             trace_to: Path | None = None) -> SoakResult:
    llm, llm_url = start_fake_llm(workdir)
    collector = Collector(workdir, token=TOKEN, PYTHONUNBUFFERED="1")
    proxy = FaultProxy(collector.port, slow_seconds, retry_after)
    agent: subprocess.Popen[bytes] | None = None
    files = {name: workdir / f"agent.{name}" for name in ("ids", "stats", "stderr", "stop")}
    spool_dir = workdir / "spool"
    sensor_env = {"FLIGHTDECK_SERVER": proxy.url, "FLIGHTDECK_TOKEN": TOKEN,
                  "FLIGHTDECK_SPOOL_DIR": str(spool_dir),
                  "FLIGHTDECK_MAX_QUEUE_EVENTS": str(QUEUE_CAP)}
    timeline: list[tuple[str, float, float]] = []
    sampler = SchedSampler()
    sampler.pids.update({"fake_llm": llm.pid, "collector": collector.process.pid,
                         "proxy_and_driver": os.getpid()})
    try:
        proxy.set_mode(phases[0][0])
        with open(files["stderr"], "wb") as stderr:
            agent = subprocess.Popen(
                [sys.executable, "-c", AGENT],
                env=_clean_env(**sensor_env, SOAK_LLM=llm_url, SOAK_IDS=str(files["ids"]),
                               SOAK_STATS=str(files["stats"]), SOAK_STOP=str(files["stop"]),
                               SOAK_PAUSE=str(pause),
                               **({"SOAK_TRACE": str(trace_to)} if trace_to else {})),
                stdout=subprocess.DEVNULL, stderr=stderr)
            sampler.pids["agent"] = agent.pid
            sampler.start()
            _wait_until(lambda: files["stats"].exists(), 60, "the agent's first stats line")
            for mode, seconds in phases:
                proxy.set_mode(mode)
                started = time.time()
                print(f"  phase {mode:5} {seconds:5.0f} s", file=sys.stderr)
                time.sleep(seconds)
                timeline.append((mode, started, time.time()))
            proxy.set_mode("up")
            files["stop"].touch()
            agent.wait(60)
        sampler.stop()
        flush = subprocess.run([sys.executable, "-m", "flightdeck_sensor", "spool", "flush",
                                "--timeout", "60"], env=_clean_env(**sensor_env),
                               capture_output=True, text=True, timeout=120)
        spool_flush = (flush.stdout + flush.stderr).strip()[-500:] or f"exit {flush.returncode}"
        return _result(files, collector.db, timeline, proxy, spool_flush,
                       sampler)
    finally:
        sampler.stop()
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait(5)
        proxy.stop()
        collector.stop()
        stop_process(llm)


def _wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _result(files: dict[str, Path], db: Path, timeline: list[tuple[str, float, float]],
            proxy: FaultProxy, spool_flush: str, sampler: SchedSampler) -> SoakResult:
    lines: list[dict[str, Any]] = [json.loads(line) for line
                                   in files["stats"].read_text().splitlines() if line]
    seconds = [line for line in lines if "rss_kib" in line]
    final: dict[str, Any] = next((line for line in lines if line.get("final")), {})
    exit_line: dict[str, Any] = next((line for line in lines if line.get("exit")), {})
    submitted_list = files["ids"].read_text().split()
    submitted = set(submitted_list)
    stored = _stored_ids(db, final.get("session_id"))
    stderr = files["stderr"].read_text(errors="replace")
    warnings: list[dict[str, Any]] = [{"at": float(line.split()[0]), "message": line[:200]}
                for line in stderr.splitlines() if WARNING_MARK in line]
    phases = []
    for mode, start, end in timeline:
        inside = [s for s in seconds if start <= s["t"] < end]
        # Full collections since the last sample before the phase (its first
        # second's included), or since the agent's first sample.
        before = [s for s in seconds if s["t"] < start] or seconds[:1]
        on = [x for s in inside for x in s["on_ms"]]
        off = [x for s in inside for x in s["off_ms"]]
        phases.append({
            "mode": mode, "seconds": round(end - start, 1),
            "calls_on": len(on), "calls_off": len(off),
            "on_median_ms": statistics.median(on) if on else None,
            "off_median_ms": statistics.median(off) if off else None,
            "on_max_ms": max(on) if on else None, "off_max_ms": max(off) if off else None,
            "on_max_gc_ms": max((x for s in inside for x in s.get("on_gc_ms", ())), default=0.0),
            "off_max_gc_ms": max((x for s in inside for x in s.get("off_gc_ms", ())),
                                 default=0.0),
            "full_gcs": (inside[-1].get("full_gcs", 0) - before[-1].get("full_gcs", 0)
                         if inside else 0),
            "rss_kib_first_last": [inside[0]["rss_kib"], inside[-1]["rss_kib"]] if inside else [],
            "max_queued": max((s["queued"] for s in inside), default=0),
            "warnings": sum(1 for w in warnings if start <= w["at"] < end),
        })
    status = exit_line.get("status", {})
    result = SoakResult(
        phases=phases, submitted=len(submitted), stored=len(stored),
        missing=len(submitted - stored), unexpected=len(stored - submitted),
        duplicate_submissions=len(submitted_list) - len(submitted),
        dropped=status.get("dropped", {}), warnings=warnings,
        call_errors=final.get("errors", -1), calls=final.get("calls", 0),
        exit_seconds=exit_line.get("exit_seconds"), spool_flush=spool_flush,
        proxy_requests=dict(proxy.stats.requests), forwarded_events=proxy.stats.forwarded_events,
        rss_kib=[s["rss_kib"] for s in seconds], queue_cap=QUEUE_CAP,
        max_queued=max((s["queued"] for s in seconds), default=0),
        agent_stderr_tail=stderr[-3000:], slow_calls=_slow_calls(stderr, timeline, sampler))
    result.summary_lines = summarize(result)
    return result


def _slow_calls(stderr: str, timeline: list[tuple[str, float, float]],
                sampler: SchedSampler) -> list[dict[str, Any]]:
    """The agent's calls over 30 ms (its SLOW CALL lines, written as each
    ended), with their phase and what each process did meanwhile."""
    found = []
    for line in stderr.splitlines():
        words = line.split()
        if len(words) < 7 or words[1:3] != ["SLOW", "CALL"]:
            continue
        with contextlib.suppress(ValueError):
            end, took = float(words[0]), float(words[3])
            phase = next((mode for mode, start, stop in timeline if start <= end < stop), "-")
            found.append({"at": end, "ms": took, "sensor": words[6].rstrip(","),
                          "phase": phase, "around": sampler.window(end - took / 1000, end)})
    return found


def _stored_ids(db: Path, session_id: str | None) -> set[str]:
    if session_id is None or not db.exists():
        return set()
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("SELECT id FROM events WHERE session_id = ?", (session_id.lower(),))
        return {row[0] for row in rows}
    finally:
        conn.close()


def summarize(r: SoakResult) -> list[str]:
    dropped = sum(r.dropped.values())
    lines = [
        f"- {r.calls} SDK calls (OpenAI chat and Anthropic messages alternating, real HTTP to "
        f"the fake provider), {r.call_errors} raised in the agent.",
        f"- events submitted {r.submitted}, stored by the collector {r.stored}, missing "
        f"{r.missing} (dropped and counted by the sensor: {dropped} {r.dropped or ''}), "
        f"stored but never submitted {r.unexpected}; the collector acknowledged "
        f"{r.forwarded_events} events through the proxy (more than stored = resent after a "
        f"timeout, kept once).",
        f"- queue cap {r.queue_cap} events: highest queue length seen {r.max_queued}; agent RSS "
        f"{min(r.rss_kib, default=0) // 1024}-{max(r.rss_kib, default=0) // 1024} MiB over "
        f"the run.",
        f"- '{WARNING_MARK}' warnings: {len(r.warnings)} in total; exit took "
        f"{r.exit_seconds if r.exit_seconds is None else round(r.exit_seconds, 2)} s; spool "
        f"flush: {r.spool_flush.splitlines()[-1] if r.spool_flush else ''}",
        "",
        "| phase | s | calls on/off | median ms on / off | max ms on / off | GC in a call, "
        "max ms on / off | full GCs | RSS MiB first-last | max queued | warnings |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in r.phases:
        rss = "-".join(str(k // 1024) for k in p["rss_kib_first_last"])
        lines.append(
            f"| {p['mode']} | {p['seconds']} | {p['calls_on']}/{p['calls_off']} | "
            f"{_ms(p['on_median_ms'])} / {_ms(p['off_median_ms'])} | {_ms(p['on_max_ms'])} / "
            f"{_ms(p['off_max_ms'])} | {_ms(p.get('on_max_gc_ms'))} / "
            f"{_ms(p.get('off_max_gc_ms'))} | {p.get('full_gcs', '-')} | {rss} | "
            f"{p['max_queued']} | {p['warnings']} |")
    if r.slow_calls:
        names = ("agent", "fake_llm", "collector", "proxy_and_driver")
        lines += [
            "",
            f"Calls over 30 ms: {len(r.slow_calls)}. For each, every process's CPU time and "
            "time spent runnable but waiting for a core (ms, all its threads, from "
            "/proc/PID/task/*/schedstat sampled every 25 ms; the window is the samples "
            "around the call, so a little longer than it; a thread that ends inside the "
            "window takes its time with it, so a figure can read low, even negative):",
            "",
            "| phase | sensor | call ms | window ms | " + " | ".join(
                f"{name} CPU / wait" for name in names) + " |",
            "|---|---|---|---|" + "---|" * len(names),
        ]
        for call in r.slow_calls[:20]:
            around = call["around"] or {}
            used = around.get("cpu_wait_ms", {})
            window = (around["to"] - around["from"]) * 1000 if around else None
            lines.append(
                f"| {call['phase']} | {call['sensor']} | {call['ms']:.1f} | {_ms(window)} | "
                + " | ".join("{} / {}".format(*used[name]) if name in used else "-"
                             for name in names) + " |")
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~35 s instead of ~6 minutes")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "soak.json"))
    parser.add_argument("--trace-slow", metavar="FILE",
                        help="write every thread's stack to FILE whenever an agent call passes "
                             "40 ms (a diagnosis run: the watchdog adds to every call's time)")
    args = parser.parse_args()
    phases = QUICK_PHASES if args.quick else FULL_PHASES
    slow = 6.0 if args.quick else 10.0
    with tempfile.TemporaryDirectory(prefix="fd-soak-") as workdir:
        result = run_soak(phases, Path(workdir), slow_seconds=slow,
                          trace_to=Path(args.trace_slow).resolve() if args.trace_slow else None)
    data = result.as_dict() | {"quick": args.quick, "slow_seconds": slow,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print("\n".join(result.summary_lines))
    write_report(data, args.out)
    ok = result.missing <= sum(result.dropped.values()) and result.unexpected == 0 \
        and result.call_errors == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_main(main))
