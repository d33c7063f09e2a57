"""Driver of scripts/demo (run with the project's virtualenv Python)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
PY = sys.executable
TOKEN = "demo-" + uuid.uuid4().hex[:16]
# What an orchestrator would do for a re-run workflow: uuid5 of its workflow id.
WORKFLOW_SESSION = str(uuid.uuid5(uuid.UUID("00000000-0000-0000-0000-000000000001"),
                                  "nightly-research"))
processes: list[subprocess.Popen[bytes]] = []


def banner(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def start(name: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, object]:
    ready = WORK / f"{name}.ready"
    ready.unlink(missing_ok=True)
    with open(WORK / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([*args, "--ready-file", str(ready)], stdout=log, stderr=log,
                                env=env, cwd=ROOT, start_new_session=True)
    processes.append(proc)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"demo: {name} did not start; see {WORK / (name + '.log')}")
        time.sleep(0.05)
    info: dict[str, object] = json.loads(ready.read_text())
    info["proc"] = proc
    return info


def stop(proc: object) -> None:
    assert isinstance(proc, subprocess.Popen)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def agent_env(server: str, fake_url: str, **extra: str) -> dict[str, str]:
    """The agent's whole environment: FLIGHTDECK_* and the providers' endpoints."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "FLIGHTDECK_SERVER": server,
        "FLIGHTDECK_TOKEN": TOKEN,
        "FLIGHTDECK_AGENT_NAME": "research-agent",
        "FLIGHTDECK_SPOOL_DIR": str(WORK / "spool"),
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "OPENAI_API_KEY": "sk-demo",
        "ANTHROPIC_BASE_URL": fake_url,
        "ANTHROPIC_API_KEY": "sk-ant-demo",
        # litellm fetches a price list from the internet at import unless told not to.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    env.update(extra)
    return env


def run_agent(env: dict[str, str]) -> float:
    started = time.monotonic()
    result = subprocess.run([PY, str(ROOT / "examples" / "agent.py")], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    for line in (result.stdout + result.stderr).splitlines():
        print(f"   | {line}")
    if result.returncode != 0:
        sys.exit(f"demo: the agent failed with exit status {result.returncode}")
    return elapsed


def cli(*args: str) -> None:
    subprocess.run([PY, "-m", "flightdeck_sensor", *args, "--db", str(WORK / "collector.db")],
                   cwd=ROOT, check=True)


def latest_session() -> str:
    out = subprocess.run([PY, "-m", "flightdeck_sensor", "sessions", "--json", "--db",
                          str(WORK / "collector.db")], capture_output=True, text=True, check=True)
    sessions = json.loads(out.stdout)
    return str(max(sessions, key=lambda s: s.get("started") or "")["session_id"])


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    fake_env = dict(os.environ, PYTHONPATH=str(ROOT / "tests"))
    fake = start("fake-llm", [PY, "-m", "fakes.fake_llm", "--port", "0"], env=fake_env)
    collector_args = [PY, "-m", "flightdeck_sensor", "collect", "--host", "127.0.0.1",
                      "--db", str(WORK / "collector.db")]
    collector_env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    collector_env["FLIGHTDECK_TOKEN"] = TOKEN  # not --token: every user can read a command line
    collector = start("collector", [*collector_args, "--port", "0"], env=collector_env)
    server = f"http://127.0.0.1:{collector['port']}"
    fake_url = str(fake["url"])
    print(f"collector: {server}   fake LLM provider: {fake_url}   work dir: {WORK}")
    print_console_url(server)

    banner("1. The agent runs with FLIGHTDECK_SERVER and FLIGHTDECK_TOKEN set (no code changes)")
    first = run_agent(agent_env(server, fake_url, FLIGHTDECK_SESSION_ID=WORKFLOW_SESSION))
    print(f"   agent ran for {first:.1f} s (collector up)")
    cli("sessions")
    banner(f"   Timeline of session {WORKFLOW_SESSION}")
    cli("events", WORKFLOW_SESSION)

    banner("2. A re-run of the same workflow (same FLIGHTDECK_SESSION_ID) attaches to its session")
    run_agent(agent_env(server, fake_url, FLIGHTDECK_SESSION_ID=WORKFLOW_SESSION,
                        FLIGHTDECK_LOG_LEVEL="INFO"))
    cli("sessions")

    banner("3. The collector is down: the agent still runs, exits on time, spools its events")
    stop(collector["proc"])
    elapsed = run_agent(agent_env(server, fake_url))
    spooled = sum(f.stat().st_size for f in (WORK / "spool").rglob("*") if f.is_file())
    print(f"   agent ran for {elapsed:.1f} s with the collector down ({first:.1f} s with it up; "
          f"the exit flush is bounded by FLIGHTDECK_SHUTDOWN_TIMEOUT, 2 s)")
    print(f"   spool holds {spooled} bytes")

    banner("4. The collector is back: the next run ships the spool first")
    collector = start("collector", [*collector_args, "--port", str(collector["port"])],
                      env=collector_env)
    run_agent(agent_env(server, fake_url))
    cli("sessions")
    left = sum(f.stat().st_size for f in (WORK / "spool").rglob("*") if f.is_file())
    print(f"   spool now holds {left} bytes")
    control_plane(server, fake_url)
    console_step(server, fake_url)
    banner("Done. Explore: .venv/bin/flightdeck-sensor sessions --db .demo/collector.db")


def print_console_url(server: str) -> None:
    """The console's address. With the demo's own throwaway token in the fragment (the
    page logs in with it and takes it out of the address bar; a fragment is never sent
    to a server). A real collector's banner prints the address only: you log in with the
    token from its file."""
    print(f"web console: {server}/#token={TOKEN}\n"
          "   (the demo's throwaway token is in the link's fragment: open it in a browser)")


# A model the price database knows, and the fake provider serves under its own name:
# the console shows the demo's costs in dollars.
PRICED_MODEL = "gpt-4o-2024-08-06"
CONSOLE_WAIT_SECONDS = 600


def console_step(server: str, fake_url: str) -> None:
    """A worker left running for a person at the console: its session appears, its
    timeline grows, and "Stop session" stops it. Waits (at a terminal) until it ends."""
    banner("7. The web console: watch a running worker, and press \"Stop session\"")
    log = WORK / "console-worker.log"
    worker = start_worker(agent_env(server, fake_url, FLIGHTDECK_AGENT_NAME="console-worker"),
                          tasks=3000, pause=0.2, model=PRICED_MODEL, log=log)
    wait_for_session("console-worker")
    print_console_url(server)
    if not sys.stdin.isatty():
        print("   (not at a terminal: the worker is stopped now instead of waiting for you)")
        cli("stop", "--agent", "console-worker", "--reason", "demo over")
    else:
        print(f"   The worker 'console-worker' runs for up to {CONSOLE_WAIT_SECONDS // 60} "
              "minutes. Open the link, click its session and press \"Stop session\" "
              "(Ctrl-C ends the demo).")
        try:
            worker.wait(CONSOLE_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            print("   time is up: the demo stops the worker")
            cli("stop", "--agent", "console-worker", "--reason", "demo over")
        except KeyboardInterrupt:
            print("   interrupted")
            return
    worker.wait(60)
    for line in log.read_text(errors="replace").strip().splitlines()[-2:]:
        print(f"   | {line}")


def start_worker(env: dict[str, str], tasks: int, pause: float, model: str = "gpt-4o",
                 log: Path | None = None) -> subprocess.Popen[str]:
    """``log``: the worker's output goes there (a long run would fill a pipe nobody reads)."""
    output: Any = subprocess.PIPE if log is None else open(log, "w")  # noqa: SIM115
    worker = subprocess.Popen([PY, str(ROOT / "examples" / "worker.py"), str(tasks), str(pause),
                               model],
                              env=env, cwd=ROOT, stdout=output,
                              stderr=subprocess.STDOUT if log else subprocess.PIPE, text=True)
    if log is not None:
        output.close()  # the child has its own descriptor
    processes.append(worker)  # type: ignore[arg-type]
    return worker


def wait_for_session(agent: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = subprocess.run([PY, "-m", "flightdeck_sensor", "sessions", "--json", "--db",
                              str(WORK / "collector.db")], capture_output=True, text=True)
        found = [s for s in json.loads(out.stdout or "[]") if s.get("agent_name") == agent]
        if found:
            return str(found[0]["session_id"])
        time.sleep(0.2)
    sys.exit(f"demo: the session of {agent} never reached the collector")


def show_end(worker: subprocess.Popen[str], stopped_at: float | None = None) -> None:
    stdout, stderr = worker.communicate(timeout=120)
    lines = stdout.splitlines()
    for line in lines[-3:]:
        print(f"   | {line}")
    last = (stderr.strip().splitlines() or ["(no error)"])[-1]
    print(f"   | {last}")
    if stopped_at is not None:
        print(f"   the worker stopped {time.monotonic() - stopped_at:.1f} s after the command "
              f"(exit status {worker.returncode})")


def control_plane(server: str, fake_url: str) -> None:
    banner("5. The operator stops a running agent: `flightdeck-sensor stop --agent NAME`")
    worker = start_worker(agent_env(server, fake_url, FLIGHTDECK_AGENT_NAME="research-worker"),
                          tasks=1000, pause=0.2, model=PRICED_MODEL)
    wait_for_session("research-worker")
    time.sleep(1.0)
    stopped_at = time.monotonic()
    cli("stop", "--agent", "research-worker", "--reason", "demo: the operator pressed stop")
    show_end(worker, stopped_at)
    cli("directives", "--agent", "research-worker")

    banner("6. A token budget warns, moves the agent to a cheaper model, then blocks it")
    cli("budget", "set", "--agent", "budgeted-worker", "--limit", "300", "--warn", "50",
        "--degrade", "70", "--to", "gpt-4o-mini", "--block", "90")
    worker = start_worker(agent_env(server, fake_url, FLIGHTDECK_AGENT_NAME="budgeted-worker"),
                          tasks=200, pause=0.05)
    show_end(worker)
    cli("events", wait_for_session("budgeted-worker"))


if __name__ == "__main__":
    try:
        main()
    finally:
        for process in processes:
            stop(process)
