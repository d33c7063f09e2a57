"""Forked and spawned children report their own calls, under their own
session, with no duplicates and no hang; the parent's queued events are
shipped by the parent only."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from fakes.ingest_server import IngestServer, Reply
from fakes.sensor_program import program_env, program_source, run_program


def sessions_of(events: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {}
    for event in events:
        found.setdefault(event["session_id"], Counter())[event["event_type"]] += 1
    return found


def assert_no_duplicates(events: list[dict[str, Any]]) -> None:
    ids = Counter(e["id"] for e in events)
    assert not [i for i, n in ids.items() if n > 1]


def complete(calls: int) -> Counter[str]:
    return Counter({"session_start": 1, "post_call": calls, "session_end": 1})


def test_os_fork_child_reports_its_own_session(tmp_path: Path, collector: Any) -> None:
    body = """
import os, sys
for _ in range(2): call()
flightdeck_sensor.flush(5)
for _ in range(3): call()   # queued in the parent when it forks
pid = os.fork()
if pid == 0:
    for _ in range(4): call()
    print("child", SENSOR.session.id, SENSOR.session.parent_session_id, flush=True)
    sys.exit(0)
os.waitpid(pid, 0)
call()
print("parent", SENSOR.session.id, flush=True)
"""
    result = run_program(body, collector.ingest_url, tmp_path / "spool",
                         TEST_TOKEN=collector.token, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    parent_id = lines["parent"].strip()
    child_id, child_parent = lines["child"].split()

    events = collector.wait_for_events(14)

    assert child_parent == parent_id
    assert sessions_of(events) == {parent_id: complete(6), child_id: complete(4)}
    assert_no_duplicates(events)


def test_fork_while_the_sender_is_mid_send_does_not_hang(tmp_path: Path) -> None:
    mid_send = tmp_path / "mid-send"

    def slow_first_answer(received: Any) -> Reply | None:
        if mid_send.exists():
            return None
        mid_send.touch()  # tells the program its sender is now waiting on us
        return Reply(200, delay=2.0)

    with IngestServer(responder=slow_first_answer) as server:
        body = f"""
import os, sys, time
for _ in range(3): call()
while not os.path.exists({str(mid_send)!r}):
    time.sleep(0.01)
pid = os.fork()
if pid == 0:
    call()
    sys.exit(0)
os.waitpid(pid, 0)
"""
        result = run_program(body, server.url, tmp_path / "spool", timeout=30)
        assert result.returncode == 0, result.stderr

        events = server.events()
        sessions = sessions_of(events)
        assert sorted(sum(c.values()) for c in sessions.values()) == [3, 5]
        assert_no_duplicates(events)


MULTIPROCESSING_PROGRAM = """
import multiprocessing

def work(n):
    for _ in range(n):
        call()

if __name__ == "__main__":
    multiprocessing.set_start_method(METHOD)
    call()
    children = [multiprocessing.Process(target=work, args=(3,)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join()  # bounded by the subprocess timeout below
    print(SENSOR.session.id, [child.exitcode for child in children], flush=True)
"""


def run_multiprocessing(method: str, tmp_path: Path, collector: Any) -> tuple[str, str]:
    script = tmp_path / "program.py"
    script.write_text(program_source(MULTIPROCESSING_PROGRAM.replace("METHOD", repr(method))))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=90, env=program_env(
                                collector.ingest_url, tmp_path / "spool",
                                TEST_TOKEN=collector.token))
    assert result.returncode == 0, result.stderr
    return result.stdout.split(" ", 1)[0], result.stdout


def test_multiprocessing_fork_children_report_their_calls(tmp_path: Path,
                                                           collector: Any) -> None:
    parent_id, output = run_multiprocessing("fork", tmp_path, collector)
    assert "[0, 0, 0]" in output

    events = collector.wait_for_events(18, timeout=30)

    sessions = sessions_of(events)
    assert sessions.pop(parent_id) == complete(1)
    assert list(sessions.values()) == [complete(3)] * 3
    children = {e["session_id"]: e["parent_session_id"] for e in events
                if e["session_id"] != parent_id}
    assert set(children.values()) == {parent_id}
    assert_no_duplicates(events)


def test_multiprocessing_spawn_children_report_their_calls(tmp_path: Path,
                                                            collector: Any) -> None:
    parent_id, output = run_multiprocessing("spawn", tmp_path, collector)
    assert "[0, 0, 0]" in output

    events = collector.wait_for_events(18, timeout=30)

    sessions = sessions_of(events)
    assert sessions.pop(parent_id) == complete(1)
    assert list(sessions.values()) == [complete(3)] * 3
    assert_no_duplicates(events)
