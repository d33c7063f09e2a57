"""What the benchmarks share: the request and event they send, the collector
subprocess, the ABBA block timing of sensor on against sensor off, percentiles,
and writing a benchmark's JSON."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".bench"
TOKEN = "bench-token-0123456789"
MESSAGES: Any = [{"role": "user", "content": "What is the capital of France"}]
# A post_call event's fields as an OpenAI chat call records them.
CALL_FIELDS = {"model": "gpt-4o-mini", "model_requested": "gpt-4o-mini", "provider": "openai",
               "tokens_input": 812, "tokens_output": 96, "tokens_total": 908,
               "latency_ms": 412, "stop_reason": "stop", "estimated_via": "none",
               "provider_metadata": {"request_id": "req_0123456789abcdef"}}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- processes --------------------------------------------------------------------------

def run_main(main: Callable[[], int]) -> int:
    """A benchmark's ``main``, with no FLIGHTDECK_* variable of the caller's shell in
    this process (the sensor it starts is configured by the benchmark alone)."""
    for name in [n for n in os.environ if n.startswith("FLIGHTDECK_")]:
        del os.environ[name]
    return main()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without FLIGHTDECK_*, litellm's price list local,
    plus ``extra``: what a child process of a benchmark gets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env.update(extra)
    return env


def wait_for_ready_file(path: Path, process: subprocess.Popen[Any], what: str,
                        timeout: float = 30) -> dict[str, Any]:
    """The JSON a child writes once it listens; RuntimeError if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value: dict[str, Any] = json.loads(path.read_text())
            return value
        except (OSError, ValueError):  # not there yet, or half written
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.02)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, and SIGKILL if it has not ended within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Collector:
    """``flightdeck-sensor collect`` on 127.0.0.1, any free port, a fresh database:
    the sensor's real sink."""

    def __init__(self, workdir: Path, *options: str, token: str = TOKEN, **env: str) -> None:
        ready = workdir / "collector-ready.json"
        self.db = workdir / "collector.db"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flightdeck_sensor", "collect", "--host", "127.0.0.1",
             "--port", "0", "--db", str(self.db), "--ready-file", str(ready), *options],
            env=clean_env(FLIGHTDECK_TOKEN=token, **env),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        info = wait_for_ready_file(ready, self.process, "the collector")
        self.port = int(info["port"])
        self.ingest_url = str(info["ingest_url"])

    def cpu_seconds(self) -> float:
        """The collector's user + system CPU so far (/proc/PID/stat fields 14 and 15)."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def stop(self) -> None:
        stop_process(self.process)


# -- statistics and timing ----------------------------------------------------------------

CLOCKS = ("cpu", "wall")


def percentile(values: list[float], fraction: float) -> float:
    """The sample nearest the ``fraction`` rank (0.1: p10), no interpolation."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def time_block(call: Callable[[], Any], calls: int,
               pause: float = 0.0) -> tuple[list[int], list[int], int]:
    """Per-call thread CPU and wall times (ns), and the process CPU of the whole block.
    ``pause``: seconds slept after each call (not timed), as between an agent's calls."""
    cpu, wall = [], []
    thread_clock, wall_clock = time.thread_time_ns, time.perf_counter_ns
    process_start = time.process_time_ns()
    for _ in range(calls):
        cpu_start, wall_start = thread_clock(), wall_clock()
        call()
        wall.append(wall_clock() - wall_start)
        cpu.append(thread_clock() - cpu_start)
        if pause:
            time.sleep(pause)
    return cpu, wall, time.process_time_ns() - process_start


def summarize(on_ns: list[int], off_ns: list[int], block_added: list[float]) -> dict[str, Any]:
    """Medians and p90 of both modes (us), their differences, and the spread of the
    per-block differences ``block_added`` (us)."""
    on = [v / 1000 for v in on_ns]
    off = [v / 1000 for v in off_ns]
    on_med, off_med = statistics.median(on), statistics.median(off)
    on_p90, off_p90 = percentile(on, 0.9), percentile(off, 0.9)
    return {
        "on_median_us": on_med, "off_median_us": off_med,
        "on_p90_us": on_p90, "off_p90_us": off_p90,
        "added_median_us": on_med - off_med, "added_p90_us": on_p90 - off_p90,
        "ratio_median": on_med / off_med if off_med else None,
        "added_block_p10_us": percentile(block_added, 0.1),
        "added_block_p90_us": percentile(block_added, 0.9),
        "added_block_min_us": min(block_added), "added_block_max_us": max(block_added),
        "block_added_us": block_added,
    }


def abba_order(block: int) -> tuple[bool, bool]:
    """Which mode goes first in ``block``: on, off, off, on, on, off... so a drift of a
    busy machine hits both modes alike."""
    return (True, False) if block % 2 == 0 else (False, True)


def measure_abba(call: Callable[[], Any], blocks: int, calls: int,
                 switch: Callable[[bool], None],
                 before_block: Callable[[], None] | None = None,
                 pause: float = 0.0) -> dict[str, Any]:
    """``calls`` calls per block and mode, ``switch(True)`` (sensor on) and
    ``switch(False)`` (off) in interleaved ABBA blocks; per clock (``cpu``: the calling
    thread's CPU time, what the sensor adds to the caller, unaffected by other
    processes taking the cores; ``wall``: adds scheduling noise and the sender
    thread's GIL share), the :func:`summarize` of both modes' per-call samples and of
    the per-block differences of medians. Process CPU per call (both threads, whole
    block / calls) beside them. Ends with the sensor off."""
    samples: dict[str, dict[bool, list[int]]] = {c: {True: [], False: []} for c in CLOCKS}
    block_added: dict[str, list[float]] = {c: [] for c in CLOCKS}
    process_cpu: dict[bool, int] = {True: 0, False: 0}
    for _ in range(3):  # warm both paths
        switch(True)
        call()
        switch(False)
        call()
    for block in range(blocks):
        if before_block is not None:
            before_block()
        medians: dict[str, dict[bool, float]] = {c: {} for c in CLOCKS}
        for enabled in abba_order(block):
            switch(enabled)
            gc.collect()
            cpu, wall, process = time_block(call, calls, pause)
            process_cpu[enabled] += process
            for clock, values in (("cpu", cpu), ("wall", wall)):
                samples[clock][enabled].extend(values)
                medians[clock][enabled] = statistics.median(values)
        for clock in CLOCKS:
            block_added[clock].append((medians[clock][True] - medians[clock][False]) / 1000)
    switch(False)
    result: dict[str, Any] = {
        "calls_per_mode": blocks * calls, "blocks": blocks,
        "process_cpu_per_call_us": {"on": process_cpu[True] / blocks / calls / 1000,
                                    "off": process_cpu[False] / blocks / calls / 1000},
    }
    for clock in CLOCKS:
        result[clock] = summarize(samples[clock][True], samples[clock][False], block_added[clock])
    return result


# -- output ---------------------------------------------------------------------------------

def write_report(report: dict[str, Any], out: str | Path) -> None:
    """Write a benchmark's JSON to ``out`` (directories made) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
