"""Driver of scripts/screenshots: a demo-like run (the fake provider, the collector,
unmodified agents: a planner with two sub-sessions, a budgeted worker, a failing one,
examples/tunable_worker.py with its custom directive), then a screenshot of each console view in
docs/ (run with the project's virtualenv Python; needs /usr/bin/chromium)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import _demo

from fixtures.browser import close, ensure_chromium, launch

DOCS = _demo.ROOT / "docs"


def run_agents(server: str, fake_url: str) -> dict[str, Any]:
    env = _demo.agent_env
    planner = str(uuid.uuid4())
    model = _demo.PRICED_MODEL
    runs = [
        _demo.start_worker(env(server, fake_url, FLIGHTDECK_AGENT_NAME="planner",
                               FLIGHTDECK_SESSION_ID=planner), tasks=6, pause=0.05, model=model)]
    runs[0].communicate(timeout=120)
    for role in ("searcher", "summarizer"):
        runs.append(_demo.start_worker(env(
            server, fake_url, FLIGHTDECK_AGENT_NAME="research-worker",
            FLIGHTDECK_PARENT_SESSION_ID=planner, FLIGHTDECK_AGENT_ROLE=role),
            tasks=8, pause=0.05, model=model))
    _demo.cli("budget", "set", "--agent", "budgeted-worker", "--limit", "400", "--warn", "50",
              "--degrade", "70", "--to", "gpt-4o-mini-2024-07-18", "--block", "90")
    runs.append(_demo.start_worker(env(server, fake_url, FLIGHTDECK_AGENT_NAME="budgeted-worker"),
                                   tasks=200, pause=0.1, model=model))
    runs.append(_demo.start_worker(env(server, fake_url, FLIGHTDECK_AGENT_NAME="flaky-worker"),
                                   tasks=1, pause=0.0, model="fake-error-429"))
    for run in runs:
        run.communicate(timeout=120)
    tunable_env = env(server, fake_url, FLIGHTDECK_AGENT_NAME="tunable-worker",
                      FLIGHTDECK_CAPTURE_PROMPTS="true")
    import subprocess
    tunable = subprocess.Popen([_demo.PY, str(_demo.ROOT / "examples" / "tunable_worker.py"),
                                "2000", "0.3", model],
                               env=tunable_env, cwd=_demo.ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _demo.processes.append(tunable)  # type: ignore[arg-type]
    _demo.wait_for_session("tunable-worker")
    time.sleep(4)
    return {"planner": planner}


def shoot(server: str) -> None:
    context = launch(Path(tempfile.mkdtemp()), viewport={"width": 1400, "height": 860})
    try:
        page = context.new_page()
        page.goto(f"{server}/#token={_demo.TOKEN}")
        page.locator("#sessions tbody tr", has_text="tunable-worker").wait_for()
        page.screenshot(path=str(DOCS / "console-sessions.png"))
        page.locator("#sessions tbody tr", has_text="budgeted-worker").get_by_role("link").click()
        page.locator("#timeline tbody tr[data-type=policy_degrade]").wait_for()
        page.locator("#timeline tbody tr[data-type=policy_degrade]").scroll_into_view_if_needed()
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(DOCS / "console-timeline.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1400, "height": 1560})
        page.goto(f"{server}/#/fleet")
        page.locator("#fleet-agents").wait_for()
        page.screenshot(path=str(DOCS / "console-fleet.png"), full_page=True,
                        clip={"x": 0, "y": 0, "width": 1400, "height": 1250})
        page.goto(f"{server}/#/sessions")
        page.locator("#sessions tbody tr", has_text="tunable-worker").get_by_role("link").click()
        page.get_by_role("button", name="Operator actions…").click()
        page.locator("#dialog form", has_text="set_temperature").wait_for()
        page.get_by_label("value (float, required)").fill("0.2")
        page.get_by_role("button", name="Run set_temperature").click()
        page.locator("#operator-status.notice").wait_for()
        time.sleep(2.5)
        page.screenshot(path=str(DOCS / "console-operator.png"))
    finally:
        close(context)


def main() -> None:
    if ensure_chromium() is None:
        sys.exit("screenshots: no /usr/bin/chromium (apt-get install chromium)")
    _demo.WORK = _demo.ROOT / ".screenshots"
    shutil.rmtree(_demo.WORK, ignore_errors=True)
    _demo.WORK.mkdir()
    fake_env = dict(os.environ, PYTHONPATH=str(_demo.ROOT / "tests"))
    fake = _demo.start("fake-llm", [_demo.PY, "-m", "fakes.fake_llm", "--port", "0"],
                       env=fake_env)
    collector_env = {k: v for k, v in os.environ.items() if not k.startswith("FLIGHTDECK_")}
    collector_env["FLIGHTDECK_TOKEN"] = _demo.TOKEN
    collector = _demo.start("collector", [
        _demo.PY, "-m", "flightdeck_sensor", "collect", "--host", "127.0.0.1", "--port", "0",
        "--db", str(_demo.WORK / "collector.db")], env=collector_env)
    server = f"http://127.0.0.1:{collector['port']}"
    run_agents(server, str(fake["url"]))
    shoot(server)
    print("screenshots written: " + ", ".join(sorted(p.name for p in DOCS.glob("console-*.png"))))


if __name__ == "__main__":
    try:
        main()
    finally:
        for process in _demo.processes:
            _demo.stop(process)
