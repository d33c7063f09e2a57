"""Process pools: every worker's calls arrive, in a session of its own, linked
to the parent's, however the pool ends (``with`` = ``terminate()``, which
SIGTERMs the workers; ``close(); join()``; ``ProcessPoolExecutor``) and
whatever the start method (``spawn`` and ``forkserver`` workers are linked
through ``FLIGHTDECK_PARENT_SESSION_ID``, which the program sets).

A real program run as a subprocess, the sensor booted from the environment
(the ``.pth``), real OpenAI SDK calls against the fake provider, delivered to
the collector subprocess. Each program run makes one call, maps a one-call
task over ``range(4)`` on a pool of two workers, then makes one more call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fakes.fake_llm import FakeLLM
from fakes.sensor_program import program_env

pytestmark = pytest.mark.timeout(600)

POOL_PROGRAM = """
import concurrent.futures, json, multiprocessing, os, sys
import openai
import flightdeck_sensor


def call(_=None):
    openai.OpenAI(max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    return os.getpid(), flightdeck_sensor.get_status()["session_id"]


def run_pool(shape, context):
    if shape == "with":  # leaving the block terminates the workers: SIGTERM
        with context.Pool(2) as pool:
            return pool.map(call, range(4))
    if shape == "close":
        pool = context.Pool(2)
        results = pool.map(call, range(4))
        pool.close()
        pool.join()
        return results
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as executor:
        return list(executor.map(call, range(4)))


if __name__ == "__main__":
    shape, method, link = sys.argv[1:4]
    _, parent = call()
    if link == "link":  # the documented way to link spawned workers
        os.environ["FLIGHTDECK_PARENT_SESSION_ID"] = parent
    workers = run_pool(shape, multiprocessing.get_context(method))
    call()
    print(json.dumps({"parent": parent, "workers": workers}), flush=True)
"""


@dataclass
class PoolRun:
    parent: str
    tasks_per_worker: Counter[str]  # worker session id -> tasks it ran


def run_pool_program(tmp_path: Path, collector: Any, fake_llm: FakeLLM, shape: str,
                     method: str, link: bool = False) -> PoolRun:
    script = tmp_path / "pool_program.py"
    script.write_text(POOL_PROGRAM)
    env = program_env(collector.ingest_url, tmp_path / "spool", token=collector.token,
                      **collector.env(), OPENAI_BASE_URL=f"{fake_llm.url}/v1",
                      OPENAI_API_KEY="sk-test")
    done = subprocess.run([sys.executable, str(script), shape, method,
                           "link" if link else "-"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return PoolRun(report["parent"], Counter(session for _, session in report["workers"]))


def stored_sessions(collector: Any, run: PoolRun) -> dict[str, list[dict[str, Any]]]:
    """The run's sessions as stored: the parent's, and every session naming it
    or named by a worker (so a lost or a stray session both show)."""
    wanted = {run.parent, *run.tasks_per_worker}
    found: dict[str, list[dict[str, Any]]] = {}
    for event in collector.events():
        if event["session_id"] in wanted or event.get("parent_session_id") == run.parent:
            found.setdefault(event["session_id"], []).append(event)
    return found


def session_of(calls: int) -> Counter[str]:
    return Counter({"session_start": 1, "pre_call": calls, "post_call": calls,
                    "session_end": 1})


def problems_of(collector: Any, run: PoolRun, linked: bool = True) -> list[str]:
    """What is wrong with the run's stored sessions (empty: nothing lost, all linked)."""
    stored = stored_sessions(collector, run)
    counts = {session: Counter(e["event_type"] for e in events)
              for session, events in stored.items()}
    expected = {run.parent: session_of(2)}
    expected.update({worker: session_of(tasks)
                     for worker, tasks in run.tasks_per_worker.items()})
    found = []
    if counts != expected:
        found.append(f"stored {counts}, expected {expected}")
    post_calls = sum(c["post_call"] for c in counts.values())
    if post_calls != 6:
        found.append(f"{post_calls} post_call events, expected 6")
    if linked:
        parents = {e.get("parent_session_id") for worker in run.tasks_per_worker
                   for e in stored.get(worker, [])}
        if parents != {run.parent}:
            found.append(f"workers' parent_session_id {parents}, expected {run.parent}")
    return found


@pytest.mark.reliability
@pytest.mark.slow
def test_a_fork_pool_left_by_its_with_block_loses_nothing_in_20_runs(
        tmp_path: Path, collector: Any, fake_llm: FakeLLM) -> None:
    # Given the most common pool idiom: `with Pool(2) as pool: pool.map(...)`,
    # whose exit SIGTERMs the workers, some of them still flushing at exit
    runs = [run_pool_program(tmp_path, collector, fake_llm, "with", "fork")
            for _ in range(20)]

    # Then every run stored a session per worker that ran a task (two, unless
    # one worker took all four), with its calls, linked to the parent's session
    assert {run_number: problems for run_number, run in enumerate(runs)
            if (problems := problems_of(collector, run))} == {}
    assert sum(len(run.tasks_per_worker) == 2 for run in runs) >= 1


@pytest.mark.parametrize(("shape", "method"), [
    ("close", "fork"),
    ("executor", "fork"),
])
def test_forked_pool_workers_report_every_call_linked_to_the_parent(
        shape: str, method: str, tmp_path: Path, collector: Any, fake_llm: FakeLLM) -> None:
    # Given a pool ended by close(); join(), or a ProcessPoolExecutor
    run = run_pool_program(tmp_path, collector, fake_llm, shape, method)

    # Then each worker's session holds its calls and names the parent's
    assert problems_of(collector, run) == []


@pytest.mark.parametrize(("shape", "method"), [
    ("with", "spawn"),
    ("with", "forkserver"),
    ("close", "spawn"),
    ("executor", "forkserver"),
])
def test_spawned_pool_workers_report_every_call_linked_through_the_environment(
        shape: str, method: str, tmp_path: Path, collector: Any, fake_llm: FakeLLM) -> None:
    # Given workers that start a fresh interpreter (the sensor boots there from
    # the environment they inherit), and a parent that put its session id in
    # FLIGHTDECK_PARENT_SESSION_ID before it started the pool
    run = run_pool_program(tmp_path, collector, fake_llm, shape, method, link=True)

    # Then each worker's calls arrive in a session of its own naming the parent's
    assert problems_of(collector, run) == []


def test_spawned_pool_workers_without_the_variable_have_unlinked_sessions(
        tmp_path: Path, collector: Any, fake_llm: FakeLLM) -> None:
    # Given a spawn pool and no FLIGHTDECK_PARENT_SESSION_ID: nothing carries
    # the parent's session id into a fresh interpreter (docs/decisions.md)
    run = run_pool_program(tmp_path, collector, fake_llm, "with", "spawn")

    # Then nothing is lost, and the workers' sessions name no parent
    assert problems_of(collector, run, linked=False) == []
    stored = stored_sessions(collector, run)
    assert {e.get("parent_session_id") for worker in run.tasks_per_worker
            for e in stored[worker]} == {None}
