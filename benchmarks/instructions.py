"""Instructions the sensor adds per intercepted call, per streamed chunk, and the
sender's instructions per event, counted by valgrind's callgrind.

Why instructions: this host's cores run at two speeds about 2x apart and switch
within a run, so the timed figures of benchmarks/calls.py move by 2x from run
to run; an instruction count does not depend on the CPU's speed, so it is the
figure to compare between runs and commits (two runs agree within about 1 %,
with PYTHONHASHSEED=0). The budgets themselves are in microseconds and are judged on
the timed rows.

How: each measuring process runs this script (``--child``) under ``valgrind
--tool=callgrind --instr-atstart=no``, so its set-up (importing the SDKs takes
about a minute under valgrind) runs uninstrumented. For each phase the child
prepares its loop and writes a flag file; the parent switches instrumentation
on (``callgrind_control -i on PID``), lets the loop run, switches it off and
dumps the counters (``callgrind_control -d``): one dump per phase, so only the
measured loop is counted.

- Per call: calls.isolated_cases() (the sensor's real wrapper around a
  stand-in for the SDK function returning a prebuilt SDK response), N calls
  "on" (through the wrapper) and "off" (the stand-in alone); (Ir_on - Ir_off)
  / N. The sender thread is not started (``transport._start_sender`` replaced)
  and the queue is cleared every 200 calls, so only the caller's thread counts.
- Per chunk: the streamed isolated cases at 4 and 64 deltas, each stream
  drained as calls.measure_isolated does; the slope of the added count
  between the two.
- In a real SDK call: calls.build_cases() (the real SDKs on an in-process
  transport answering with the fake provider's replies), sensor on (``patch()``)
  and off (``unpatch()``), the sender not started: what the sensor adds to the
  caller's thread inside the SDK's own work, where the timed SDK-level rows of
  benchmarks/calls.py cannot resolve it (an SDK call costs millions of
  instructions and varies between blocks by more than the sensor's share).
- Sender per event: batches of 500 pending events (``Session.stamp``'d
  post_call events, built before counting) turned into the body the sender
  sends: its own ``_batch_body``, alone (to a server on loopback) and then
  ``gzip.compress(body, 1)`` as transport/_http.py does for a remote server.

Processes run in parallel, two at a time. Without valgrind the report says
{"skipped": ...} and the script exits 0.

    .venv/bin/python -m benchmarks.instructions [--quick] [--out .bench/instructions.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._common import CALL_FIELDS, ROOT, TOKEN, run_main, write_report

CLEAR_EVERY = 200  # calls between queue clears (the sender thread is not running)
WARM_CALLS = 50
SENDER_BATCH = 500  # events per batch body (the sender's BATCH_EVENTS)
PROCESS_TIMEOUT = 1500  # seconds, per valgrind process
# calls.build_cases() cases counted in a real SDK call: (name, stream deltas or 0).
# OpenAI's 64-delta streams cost ~75 M instructions a call in the SDK: left out.
SDK_CASES = [("openai.chat", 0), ("openai.embeddings", 0), ("anthropic.messages", 0),
             ("openai.chat", 4), ("anthropic.messages", 4), ("anthropic.messages", 64)]


# -- the child: runs under callgrind ----------------------------------------------------

def _wait_for(path: Path) -> None:
    while not path.exists():
        time.sleep(0.02)


def _run_phases(flags: Path, phases: list[tuple[Any, ...]]) -> None:
    """For each phase (name, loop, count[, setup]): run ``setup()`` uncounted, signal
    ready, run ``loop(count)`` once the parent has switched instrumentation on,
    signal done, wait until it has dumped."""
    for index, (_, loop, count, *setup) in enumerate(phases):
        for step in setup:
            step()
        gc.collect()
        (flags / f"ready.{index}").touch()
        _wait_for(flags / f"go.{index}")
        loop(count)
        (flags / f"done.{index}").touch()
        _wait_for(flags / f"ack.{index}")


def _sensor_without_sender() -> Any:
    """Start the sensor with its sender thread never started; its event queue (the
    loops clear it, so only the caller's thread is counted)."""
    import flightdeck_sensor
    from flightdeck_sensor import _sensor

    flightdeck_sensor.init(server="http://127.0.0.1:9/ingest", token=TOKEN, spool="off")
    sensor = _sensor.current()
    assert sensor is not None
    # A thread that has already finished stands in for the sender: the transport
    # sees a sender started (as after a program's first event) and never starts
    # one, and at exit delivers inline as it does when its sender has died.
    finished = threading.Thread(target=lambda: None, name="not-the-sender")
    finished.start()
    finished.join()
    sensor.transport._thread = finished
    return sensor.transport._queue


def _call_phases(modes: list[tuple[int, str]], calls: int,
                 stream_calls: int) -> list[tuple[str, Any, int]]:
    """Loops calling isolated case ``index`` through the sensor ("on") or not ("off")."""
    from benchmarks._provider import Provider
    from benchmarks.calls import drain, isolated_cases, isolated_entry

    queue = _sensor_without_sender()
    cases = isolated_cases(Provider())
    phases = []
    for index, mode in modes:
        case = cases[index]
        entry = isolated_entry(case)
        if entry is None:
            raise RuntimeError(f"{case.label} is not wrapped by the sensor")
        stand_in, bound = entry
        fn = bound if mode == "on" else stand_in
        kwargs = case.kwargs
        streamed = case.stream_class is not None

        if not streamed:
            # ``before``: the agent's conversation grows a round a call, on and off alike.
            def loop(count: int, fn: Any = fn, kwargs: Any = kwargs,
                     before: Any = case.before) -> None:
                for i in range(count):
                    if before is not None:
                        before()
                    fn(**kwargs)
                    if i % CLEAR_EVERY == 0:
                        queue.clear()
        else:
            def loop(count: int, fn: Any = fn, kwargs: Any = kwargs,
                     before: Any = case.before) -> None:
                for i in range(count):
                    drain(fn(**kwargs))
                    if i % CLEAR_EVERY == 0:
                        queue.clear()
        loop(WARM_CALLS)
        queue.clear()
        phases.append((f"{index}:{mode}", loop, stream_calls if streamed else calls))
    return phases


def _sdk_phases(wanted: list[tuple[str, int]], calls: int) -> list[tuple[Any, ...]]:
    """Loops of real SDK calls (calls.build_cases()) with the sensor patched in or not."""
    import flightdeck_sensor
    from benchmarks._provider import Provider
    from benchmarks.calls import build_cases

    queue = _sensor_without_sender()
    cases = {(c.name, c.deltas): c for c in build_cases(Provider(), with_litellm=False)}
    phases: list[tuple[Any, ...]] = []
    for key in wanted:
        case = cases[tuple(key)]  # type: ignore[index]
        for mode in ("off", "on"):
            switch = flightdeck_sensor.patch if mode == "on" else flightdeck_sensor.unpatch

            def setup(switch: Any = switch, call: Any = case.call) -> None:
                switch()
                for _ in range(3):  # the SDK builds its validators on first use
                    call()
                queue.clear()

            def loop(count: int, call: Any = case.call) -> None:
                for _ in range(count):
                    call()

            phases.append((f"{case.name}:{case.deltas}:{mode}", loop, calls, setup))
    return phases


def _sender_phases(batches: int,
                   workdir: str) -> tuple[list[tuple[str, Any, int]], Any]:
    """One loop turning ``batches`` batches of fresh pending events into gzip'd bodies."""
    import gzip

    from benchmarks.collector import sender_batch_encoder
    from flightdeck_sensor._config import resolve_config
    from flightdeck_sensor._session import Session

    config, _ = resolve_config({}, server="http://127.0.0.1:9/ingest", token=TOKEN)
    config = config.replace(spool_dir=workdir)
    session = Session(config)
    encode = sender_batch_encoder(config)

    def fresh(count: int) -> list[list[dict[str, Any]]]:
        return [[session.stamp("post_call", dict(CALL_FIELDS)) for _ in range(SENDER_BATCH)]
                for _ in range(count)]

    for batch in fresh(2):  # warm-up
        gzip.compress(encode(batch), 1)
    plain, zipped = fresh(batches), fresh(batches)
    sizes: list[int] = []

    def encode_only(count: int) -> None:  # what a server on loopback gets
        for batch in plain[:count]:
            encode(batch)

    def encode_and_gzip(count: int) -> None:  # what a remote server gets
        for batch in zipped[:count]:
            sizes.append(len(gzip.compress(encode(batch), 1)))

    def report() -> None:
        print(json.dumps({"body_bytes": sum(sizes)}), flush=True)

    return [("encode", encode_only, batches), ("encode + gzip", encode_and_gzip, batches)], report


def child(spec: dict[str, Any]) -> None:
    flags = Path(spec["flags"])
    phases: list[tuple[Any, ...]]
    if spec["kind"] == "sender":
        phases, report = _sender_phases(spec["batches"], spec["workdir"])
    elif spec["kind"] == "sdk":
        phases, report = _sdk_phases(spec["cases"], spec["calls"]), None
    else:
        phases = _call_phases([tuple(m) for m in spec["modes"]], spec["calls"],
                              spec["stream_calls"])
        report = None
    _run_phases(flags, phases)
    if report is not None:
        report()  # after the last dump: not counted
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown (callgrind writes its final file regardless)


# -- the parent ------------------------------------------------------------------------

def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_file(path: Path, process: subprocess.Popen[bytes], deadline: float) -> None:
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"child exited ({process.returncode}) before {path.name}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {path.name}")
        time.sleep(0.05)


def run_group(name: str, spec: dict[str, Any], phases: int, workdir: Path) -> dict[str, Any]:
    """One valgrind process; the instructions counted in each of its ``phases``."""
    flags = workdir / name
    flags.mkdir()
    out = flags / "callgrind.out"
    spec = spec | {"flags": str(flags), "workdir": str(flags)}
    env = os.environ | {"PYTHONHASHSEED": "0"}
    started = time.monotonic()
    deadline = started + PROCESS_TIMEOUT
    with open(flags / "log", "wb") as log:
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={out}", sys.executable, "-m", "benchmarks.instructions",
             "--child",
             json.dumps(spec)], stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT)
        try:
            for index in range(phases):
                _wait_file(flags / f"ready.{index}", process, deadline)
                _control(process.pid, "-i", "on")
                (flags / f"go.{index}").touch()
                _wait_file(flags / f"done.{index}", process, deadline)
                _control(process.pid, "-i", "off")
                _control(process.pid, "-d")
                (flags / f"ack.{index}").touch()
            stdout, _ = process.communicate(timeout=max(10, deadline - time.monotonic()))
        except BaseException:
            process.kill()
            process.wait()
            tail = (flags / "log").read_text(errors="replace")[-1500:]
            print(f"  {name}: failed; valgrind's log ends:\n{tail}", file=sys.stderr)
            raise
    if process.returncode != 0:
        raise RuntimeError(f"{name}: exit status {process.returncode}")
    counts = []
    for index in range(1, phases + 1):
        totals = [line for line in (flags / f"callgrind.out.{index}").read_text().splitlines()
                  if line.startswith("totals:")]
        counts.append(int(totals[0].split()[1]))
    took = time.monotonic() - started
    print(f"  {name}: {phases} phases in {took:.0f} s", file=sys.stderr)
    return {"counts": counts, "seconds": took, "stdout": stdout.decode()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, for a smoke run")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "instructions.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        print(f"skipped: {' and '.join(missing)} not installed", file=sys.stderr)
        write_report({"benchmark": "instructions", "skipped": "valgrind not installed"},
                     args.out)
        return 0

    calls = 500 if args.quick else 2000
    stream_calls = calls // 4  # a 64-delta stream costs ~20 non-streamed calls
    batches = 2 if args.quick else 8
    started = time.monotonic()

    from benchmarks._provider import N_LONG, N_SHORT, Provider
    from benchmarks.calls import isolated_cases

    cases = isolated_cases(Provider())  # labels and which indexes are streamed
    streamed = [i for i, c in enumerate(cases) if c.stream_class is not None]
    non_streamed = [i for i, c in enumerate(cases) if c.stream_class is None]
    by_provider: dict[str, list[int]] = {}
    for index in (*non_streamed, *streamed):
        by_provider.setdefault(cases[index].name.split(".")[0], []).append(index)
    groups: dict[str, tuple[dict[str, Any], list[tuple[int, str]]]] = {}
    for provider, indexes in by_provider.items():
        modes = [(i, mode) for i in indexes for mode in ("off", "on")]
        groups[provider] = ({"kind": "calls", "modes": modes, "calls": calls,
                             "stream_calls": stream_calls}, modes)
    groups["sender"] = ({"kind": "sender", "batches": batches, "phases": 2}, [])
    sdk_calls = 10 if args.quick else 30
    groups["sdk"] = ({"kind": "sdk", "cases": SDK_CASES, "calls": sdk_calls,
                      "phases": 2 * len(SDK_CASES)}, [])

    with tempfile.TemporaryDirectory(prefix="fd-bench-ir-") as tmp, \
            ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_group, name, spec, len(modes) or spec["phases"],
                                           Path(tmp))
                   for name, (spec, modes) in groups.items()}
        results = {name: future.result() for name, future in futures.items()}

    counted: dict[tuple[int, str], int] = {}
    for name, (_, modes) in groups.items():
        if name == "sdk":
            continue
        counted.update(zip(modes, results[name]["counts"], strict=False))

    def added(index: int) -> float:
        n = stream_calls if cases[index].stream_class is not None else calls
        return (counted[(index, "on")] - counted[(index, "off")]) / n

    per_call = {cases[i].name: {"call": cases[i].label,
                                "added_instructions": round(added(i)),
                                "off_instructions": round(counted[(i, "off")] / calls),
                                "on_instructions": round(counted[(i, "on")] / calls)}
                for i in non_streamed}
    per_chunk: dict[str, dict[str, Any]] = {}
    for i in streamed:
        if cases[i].deltas != N_SHORT:
            continue
        long = next(j for j in streamed
                    if cases[j].name == cases[i].name and cases[j].deltas == N_LONG)
        per_chunk[cases[i].name] = {
            "call": cases[i].label,
            "added_instructions_per_chunk": round((added(long) - added(i)) / (N_LONG - N_SHORT)),
            f"added_per_call_{N_SHORT}_deltas": round(added(i)),
            f"added_per_call_{N_LONG}_deltas": round(added(long)),
        }
    sdk_counts = results["sdk"]["counts"]
    labels = {case.name: case.label for case in cases}  # the same names as build_cases'
    in_sdk: dict[str, dict[str, Any]] = {}
    for position, (name, deltas) in enumerate(SDK_CASES):
        off, on = sdk_counts[2 * position], sdk_counts[2 * position + 1]
        label = labels.get(name, name) + (f", streamed, {deltas} deltas" if deltas else "")
        in_sdk[label] = {"off_instructions": round(off / sdk_calls),
                         "added_instructions": round((on - off) / sdk_calls)}
    events = batches * SENDER_BATCH
    sender = results["sender"]
    body_bytes = json.loads(sender["stdout"].strip().splitlines()[-1])["body_bytes"]
    report = {
        "benchmark": "instructions", "quick": args.quick,
        "counted": "instructions executed (valgrind callgrind Ir), instrumentation on only "
                   "for the measured loop; PYTHONHASHSEED=0",
        "calls_per_mode": calls, "streamed_calls_per_mode": stream_calls,
        "stream_deltas": [N_SHORT, N_LONG],
        "sender_events": events, "sender_batch_events": SENDER_BATCH,
        "per_call": per_call,
        "per_chunk": per_chunk,
        "sdk_calls_per_mode": sdk_calls,
        "in_a_real_sdk_call": in_sdk,
        "sender_per_event": {
            "encode (uncompressed, to a server on loopback)": {
                "instructions": round(sender["counts"][0] / events)},
            "encode + gzip level 1": {
                "instructions": round(sender["counts"][1] / events),
                "body_bytes": round(body_bytes / events, 1)}},
        "process_seconds": {name: round(r["seconds"]) for name, r in results.items()},
        "wall_seconds": round(time.monotonic() - started),
    }
    print("instructions added per call (sensor on - off):")
    for row in per_call.values():
        print(f"  {row['call']:34} {row['added_instructions']:>9,}")
    for row in per_chunk.values():
        print(f"  {row['call']:34} {row['added_instructions_per_chunk']:>9,} per streamed chunk")
    for label, row in in_sdk.items():
        print(f"  in a real SDK call, {label}: {row['added_instructions']:,}"
              f" (the call itself {row['off_instructions']:,})")
    for what, row in report["sender_per_event"].items():
        print(f"sender, per event, {what}: {row['instructions']:,}")
    print(f"took {report['wall_seconds']} s")
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
