"""The control plane's cost and speed.

1. The gate on the caller's thread: the sensor's isolated path (benchmarks/calls.py)
   with no gate (no budget, no directive: one attribute test), against the same
   path with a server budget in force (integer comparisons), and with a degrade
   in force (the model swapped on a copy of the arguments), in interleaved ABBA
   blocks of one run.
2. Issue to enforcement: the local collector, an unmodified agent run with the
   environment variables only, and `flightdeck-sensor stop --agent NAME`; the time
   from the command to the agent's first DirectiveError while it is busy (batch
   and single-event servers), and to the sensor acting while it is idle (the
   heartbeat).

    python -m benchmarks.control [--quick] [--out .bench/control.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import (
    ROOT,
    TOKEN,
    Collector,
    clean_env,
    measure_abba,
    run_main,
    write_report,
)
from benchmarks._provider import Provider
from benchmarks.calls import IDLE_SENDER_CALLS, isolated_cases, isolated_entry

GATE_CASES = ("openai.chat", "anthropic.messages")


# -- 1. the gate -----------------------------------------------------------------------

def _gates(sensor: Any) -> dict[str, Any]:
    from flightdeck_sensor._gate import Budget, Degrade, Gate

    budget = Gate()
    budget.set_server_budget(Budget("server", "bench", "flavor:bench", 10**12))
    degrade = Gate()
    degrade.degrade = Degrade("model-degraded", "bench")  # a family no rule knows: swapped
    return {"budget": budget, "degrade": degrade}


def measure_gate(blocks: int, calls: int) -> list[dict[str, Any]]:
    """Per case and gate: the added time of the gate over no gate (the 'off' side)."""
    from flightdeck_sensor import _sensor

    sensor = _sensor.current()
    assert sensor is not None
    rows = []
    for case in isolated_cases(Provider()):
        if case.name not in GATE_CASES or case.stream_class is not None:
            continue
        entry = isolated_entry(case)
        if entry is None:
            continue
        _, bound = entry
        for name, gate in _gates(sensor).items():
            def switch(on: bool, gate: Any = gate) -> None:
                sensor.gate = gate if on else None

            def call(bound: Any = bound, kwargs: Any = case.kwargs) -> Any:
                return bound(**kwargs)

            def drained() -> None:
                sensor.flush(60)

            result = measure_abba(call, blocks, calls, switch, before_block=drained)
            rows.append({"case": case.name, "label": case.label, "gate": name,
                         "cpu": result["cpu"], "wall": result["wall"]})
            print(f"  {case.label:32} {name:8} added {result['cpu']['added_median_us']:6.2f} us"
                  f" over no gate (cpu)", file=sys.stderr)
    sensor.gate = None
    return rows


# -- 2. issue to enforcement ---------------------------------------------------------------

def _stop(collector: Collector, agent: str) -> float:
    """Run `flightdeck-sensor stop --agent`; the wall time it was issued."""
    issued = time.time()
    subprocess.run([sys.executable, "-m", "flightdeck_sensor", "stop", "--agent", agent,
                    "--db", str(collector.db), "--reason", "benchmark"],
                   env=clean_env(), check=True, capture_output=True, timeout=60)
    return issued


def _wait_for_session(collector: Collector, agent: str) -> None:
    """Until the collector stored the agent's session (its events ship on a 1 s tick):
    `stop --agent` reaches only the sessions the collector knows."""
    import sqlite3

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{collector.db}?mode=ro", uri=True) as conn:
                if conn.execute("SELECT 1 FROM sessions WHERE agent_name = ?",
                                (agent,)).fetchone():
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the session of {agent} never reached the collector")


def _agent(collector: Collector, name: str, mode: str, out: Path,
           heartbeat: float) -> subprocess.Popen[bytes]:
    env = clean_env(FLIGHTDECK_SERVER=collector.ingest_url, FLIGHTDECK_TOKEN=TOKEN,
                    FLIGHTDECK_AGENT_NAME=name, FLIGHTDECK_SPOOL="off",
                    FLIGHTDECK_HEARTBEAT_INTERVAL=str(heartbeat),
                    PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    # -m, not the file: run from benchmarks/, its http.py would shadow the stdlib's
    return subprocess.Popen([sys.executable, "-m", "benchmarks._control_agent", mode, str(out)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def enforcement_latency(mode: str, rounds: int, heartbeat: float,
                        no_batch: bool = False) -> dict[str, Any]:
    """Seconds from `stop` to enforcement, over ``rounds`` fresh agents.
    ``mode``: ``busy`` (the agent calls back to back: its first DirectiveError) or
    ``idle`` (a session started, no call: shutdown_requested() turns true)."""
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="fd-bench-control-") as tmp:
        workdir = Path(tmp)
        collector = Collector(workdir, *(["--no-batch"] if no_batch else []))
        try:
            for round_ in range(rounds):
                name = f"bench-{mode}-{round_}"
                out = workdir / f"{name}.json"
                ready = workdir / f"{name}.json.ready"
                agent = _agent(collector, name, mode, out, heartbeat)
                deadline = time.monotonic() + 60
                while not ready.exists():
                    if agent.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"agent did not start: {agent.stderr.read()!r}"
                                           if agent.stderr else "agent did not start")
                    time.sleep(0.05)
                _wait_for_session(collector, name)
                time.sleep(0.5 if mode == "busy" else min(heartbeat, 3.0) * 0.37)
                issued = _stop(collector, name)
                agent.wait(timeout=max(60, 3 * heartbeat))
                enforced = json.loads(out.read_text())["enforced_at"]
                latencies.append(enforced - issued)
        finally:
            collector.stop()
    return {"mode": mode, "server": "single-event" if no_batch else "batch",
            "heartbeat_interval_s": heartbeat, "rounds": rounds,
            "median_s": statistics.median(latencies), "max_s": max(latencies),
            "min_s": min(latencies), "latencies_s": [round(x, 3) for x in latencies]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few blocks and rounds")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "control.json"))
    args = parser.parse_args()
    blocks, rounds = (4, 2) if args.quick else (10, 5)

    import flightdeck_sensor

    with tempfile.TemporaryDirectory(prefix="fd-bench-gate-") as workdir:
        collector = Collector(Path(workdir))
        try:
            flightdeck_sensor.init(server=collector.ingest_url, token=TOKEN, spool="off",
                                   heartbeat_interval=0)
            gate = measure_gate(2 * blocks, IDLE_SENDER_CALLS)
            flightdeck_sensor.shutdown(5)
        finally:
            collector.stop()
    latency = [enforcement_latency("busy", rounds, heartbeat=30),
               enforcement_latency("busy", rounds, heartbeat=30, no_batch=True),
               enforcement_latency("idle", rounds, heartbeat=5)]
    for row in latency:
        print(f"  {row['mode']:5} {row['server']:12} median {row['median_s']:.2f} s, "
              f"max {row['max_s']:.2f} s", file=sys.stderr)
    write_report({"benchmark": "control", "quick": args.quick, "gate": gate,
                  "issue_to_enforcement": latency, "load_average": list(os.getloadavg())},
                 args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
