"""The fork matrix with real SDK calls: a gunicorn-style pre-fork worker pool,
``multiprocessing`` fork and spawn, and a fork while the sender is mid-send.
Every child reports its own calls under its own session, nothing twice, no hang.

(tests/integration/test_fork_children.py covers the same shapes through
``record()``; these go through the OpenAI and Anthropic SDKs, imported and
patched in the parent, with the sensor's sender running when it forks.)
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fakes.ingest_server import IngestServer, Reply
from reliability.sdk_agent import AgentResult, agent_env, agent_source, run_agent

# Subprocesses importing both SDKs: slow on a loaded shared machine; the
# limits only prove that nothing hangs.
pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

# A child imports httpx inside its exit budget; on a loaded machine that can
# exceed the default 2 s. Still far below the subprocess timeout ("no hang").
CHILD_BUDGET = {"FLIGHTDECK_SHUTDOWN_TIMEOUT": "10"}


def sessions_of(events: list[dict[str, Any]]) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {}
    for event in events:
        found.setdefault(event["session_id"], Counter())[event["event_type"]] += 1
    return found


def session(calls: int) -> Counter[str]:
    return Counter({"session_start": 1, "pre_call": calls, "post_call": calls, "session_end": 1})


def assert_no_duplicates(events: list[dict[str, Any]]) -> None:
    ids = Counter(e["id"] for e in events)
    assert [i for i, n in ids.items() if n > 1] == []


def test_prefork_worker_pool_each_worker_reports_its_own_calls(
        collector: Any, fake_llm: FakeLLM) -> None:
    # Given a parent that imported the SDKs, made a call (sender running) and
    # then forked 4 workers, each making 3 OpenAI and 3 Anthropic calls
    result = run_agent("""
        chat()
        workers = []
        for number in range(4):
            pid = os.fork()
            if pid == 0:
                # Own clients: a keep-alive connection inherited from the parent
                # would be one socket shared by five processes (an httpx hazard).
                oai, ant = openai_client(), anthropic_client()
                for _ in range(3):
                    chat(oai)
                    message(ant)
                report(**{f"worker{number}": [SENSOR.session.id,
                                              SENSOR.session.parent_session_id]})
                sys.exit(0)
            workers.append(pid)
        codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in workers]
        report(parent=SENSOR.session.id, codes=codes)
    """, collector.ingest_url, collector.token, fake_llm.url, timeout=120, **CHILD_BUDGET)

    # Then every process exited cleanly
    assert result.returncode == 0, result.stderr
    report = result.report
    assert report["codes"] == [0, 0, 0, 0]
    # and each worker has its own complete session, child of the parent's
    events = collector.wait_for_events(4 + 4 * 14)
    sessions = sessions_of(events)
    parent = report["parent"]
    assert sessions.pop(parent) == session(1)
    workers = [report[f"worker{n}"] for n in range(4)]
    assert {child for child, _ in workers} == set(sessions)
    assert all(parent_id == parent for _, parent_id in workers)
    assert list(sessions.values()) == [session(6)] * 4
    assert_no_duplicates(events)


MULTIPROCESSING_BODY = """
import multiprocessing

def work(count):
    oai, ant = openai_client(), anthropic_client()
    for _ in range(count):
        chat(oai)
        message(ant)

if __name__ == "__main__":
    multiprocessing.set_start_method(METHOD)
    chat()
    children = [multiprocessing.Process(target=work, args=(2,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    report(parent=SENSOR.session.id, codes=[child.exitcode for child in children])
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children_report_their_sdk_calls(
        method: str, tmp_path: Path, collector: Any, fake_llm: FakeLLM) -> None:
    # Given a parent making one call and two children (fork / spawn) making four each
    script = tmp_path / "agent.py"
    script.write_text(agent_source(MULTIPROCESSING_BODY.replace("METHOD", repr(method))))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=200, env=agent_env(collector.ingest_url, collector.token,
                                                     fake_llm.url, **CHILD_BUDGET))
    assert done.returncode == 0, done.stderr
    report = AgentResult(done.returncode, done.stdout, done.stderr).report

    # Then each child's calls are in its own session, once
    assert report["codes"] == [0, 0]
    events = collector.wait_for_events(4 + 2 * 10)
    sessions = sessions_of(events)
    assert sessions.pop(report["parent"]) == session(1)
    assert list(sessions.values()) == [session(4)] * 2
    assert_no_duplicates(events)


def test_fork_while_the_sender_is_mid_send_child_and_parent_report_once(
        tmp_path: Path, fake_llm: FakeLLM) -> None:
    # Given an ingest server whose first answer takes 3 s
    with IngestServer([Reply(200, delay=3.0), Reply(200)]) as server:
        # When the parent forks while its sender waits on that answer
        result = run_agent("""
            oai = openai_client()
            for _ in range(3):
                chat(oai)
            time.sleep(1.5)  # the batch window passed: the first POST is in flight
            pid = os.fork()
            if pid == 0:
                chat(openai_client())
                message()
                report(child=SENSOR.session.id)
                sys.exit(0)
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            report(parent=SENSOR.session.id, code=code)
        """, server.url, "tok-fork-test", fake_llm.url, timeout=90, **CHILD_BUDGET)

        # Then neither hangs, and each session arrives complete, once
        assert result.returncode == 0, result.stderr
        report = result.report
        assert report["code"] == 0
        events = server.events()
        sessions = sessions_of(events)
        assert sessions == {report["parent"]: session(3), report["child"]: session(2)}
        assert_no_duplicates(events)
