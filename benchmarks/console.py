"""Console benchmark: the web console at the size the issue names, and the collector's
ingest rate with the page open.

    .venv/bin/python -m benchmarks.console [--quick] [--out .bench/console.json]

Starts the real ``flightdeck-sensor collect``, fills its database through the
batch endpoint (the real ingest path, prices included) with 10,000 sessions
(20 agents, one in ten a sub-session) and one session of 100,000 events, then:

- times each console API query at that size (median and max of several, over
  HTTP on loopback, as the page asks them);
- opens the page in Debian's chromium (Playwright) and times, from navigation
  start, the first contentful paint and the moment the data is on screen (the
  first row of the sessions table; the first rows of the big session's timeline);
- measures the collector's ingest rate (batches of 500 post_call events, one
  connection, as fast as it answers) in blocks alternating page closed and page
  open (two tabs: the sessions view, and the timeline of the session being
  written, following it live), so both sides share the machine's state.

Needs /usr/bin/chromium; without it the browser figures are left out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchmarks._common import CALL_FIELDS, TOKEN, Collector, run_main, write_report

BATCH_PATH = "/ingest/v1/events/batch"
API = "/console/api/v1"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
AGENTS = 20
# Records, in the page, when the data first shows (a row with data in the table).
_MARK_SCRIPT = """
new MutationObserver((_, observer) => {
  if (document.querySelector('#sessions tbody tr[data-session], #timeline tbody tr[data-type]')) {
    window.__data_shown_ms = performance.now();
    observer.disconnect();
  }
}).observe(document, {subtree: true, childList: true});
"""


class Client:
    """One keep-alive connection to the collector, bearer token."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> dict[str, Any]:
        self.conn.request("POST", path, body=body, headers=self.headers)
        return self._answer()

    def get(self, path: str) -> dict[str, Any]:
        self.conn.request("GET", path, headers=self.headers)
        return self._answer()

    def _answer(self) -> dict[str, Any]:
        response = self.conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise RuntimeError(f"collector answered {response.status}: {raw[:200]!r}")
        answer: dict[str, Any] = json.loads(raw)
        return answer


def event(kind: str, session_id: str, agent: str, when: datetime,
          parent: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "session_id": session_id, "event_type": kind,
            "agent_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, agent)), "agent_type": "production",
            "client_type": "flightdeck_sensor", "agent_name": agent, "user": "bench",
            "hostname": "bench-host", "host": "bench-host", "flavor": agent, "framework": None,
            "timestamp": when.isoformat(timespec="microseconds"), "tokens_used_session": 0,
            "has_content": False, "content": None, "parent_session_id": parent,
            "agent_role": "worker" if parent else None, **fields}


def call_fields(index: int) -> dict[str, Any]:
    fields = dict(CALL_FIELDS, model="gpt-4o-2024-08-06", model_requested="gpt-4o")
    fields["latency_ms"] = 100 + index % 900
    return fields


def fill(client: Client, sessions: int, big_events: int) -> str:
    """``sessions`` sessions (a start and two calls each) and one of ``big_events``
    events; the big session's id."""
    start = datetime.now(timezone.utc) - timedelta(hours=20)
    batch: list[dict[str, Any]] = []

    def flush(force: bool = False) -> None:
        if batch and (force or len(batch) >= 999):
            client.post(BATCH_PATH, json.dumps({"events": batch}).encode())
            batch.clear()

    roots: list[str] = []
    for index in range(sessions):
        agent = f"agent-{index % AGENTS:02d}"
        session_id = str(uuid.uuid4())
        parent = roots[-1] if index % 10 == 9 and roots else None
        if parent is None:
            roots.append(session_id)
        when = start + timedelta(seconds=index * 6)
        batch.append(event("session_start", session_id, agent, when, parent,
                           sensor_version="0.6.0", context={"pid": index}))
        for call in range(2):
            batch.append(event("post_call", session_id, agent,
                               when + timedelta(seconds=call + 1), parent, **call_fields(index)))
        flush()
    flush(force=True)
    big = str(uuid.uuid4())
    when = datetime.now(timezone.utc) - timedelta(hours=10)
    batch.append(event("session_start", big, "big-agent", when, sensor_version="0.6.0",
                       context={"pid": 1}))
    for index in range(big_events - 1):
        batch.append(event("post_call", big, "big-agent",
                           when + timedelta(milliseconds=300 * (index + 1)), **call_fields(index)))
        flush()
    flush(force=True)
    return big


def time_queries(client: Client, big: str, repeats: int) -> dict[str, Any]:
    """Each console query at this size: the first, median and max of ``repeats`` (ms; the
    first of the chart is its cold one: later ones catch up from the calls it summed)."""
    last = client.get(f"{API}/sessions/{big}/timeline?before=end&limit=200")
    middle = quote(last["first"], safe="")
    queries = {
        "sessions page (default sort)": f"{API}/sessions",
        "sessions page sorted by cost": f"{API}/sessions?sort=cost&order=desc",
        "sessions page 200 at offset 9,000": f"{API}/sessions?limit=200&offset=9000",
        "sessions of one agent, ended": f"{API}/sessions?agent=agent-07&state=ended",
        "big session's detail": f"{API}/sessions/{big}",
        "big session's first 200 events": f"{API}/sessions/{big}/timeline?limit=200",
        "big session's last 200 events": f"{API}/sessions/{big}/timeline?before=end&limit=200",
        "big session's 200 events before those": f"{API}/sessions/{big}/timeline?before="
                                                 f"{middle}&limit=200",
        "big session's cumulative tokens (100,000 calls)": f"{API}/sessions/{big}/usage",
        "fleet, last 24 h (uncached)": f"{API}/fleet?since=24h&n=",
        "changes cursor": f"{API}/changes",
    }
    timings: dict[str, Any] = {}
    for name, path in queries.items():
        samples = []
        for repeat in range(repeats):
            target = path + str(repeat) if path.endswith("n=") else path
            started = time.perf_counter()
            client.get(target)
            samples.append((time.perf_counter() - started) * 1000)
        timings[name] = {"first_ms": round(samples[0], 1),
                         "median_ms": round(statistics.median(samples), 1),
                         "max_ms": round(max(samples), 1)}
    return timings


def launch_chromium(profile: Path) -> Any:
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    context = driver.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 900})
    context.add_init_script(_MARK_SCRIPT)
    return driver, context


def time_paint(context: Any, url: str, route: str, selector: str,
               repeats: int) -> dict[str, Any]:
    """From navigation start: first contentful paint, and the data on screen (ms)."""
    paint, shown = [], []
    page = context.new_page()
    for _ in range(repeats):
        page.goto(f"{url}/#/{route}")
        page.reload()  # a full load of the page, logged in by its cookie
        page.wait_for_selector(selector, timeout=60_000)
        page.wait_for_function("window.__data_shown_ms !== undefined")
        shown.append(page.evaluate("window.__data_shown_ms"))
        paint.append(page.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null"))
    page.close()
    return {"first_contentful_paint_ms": round(statistics.median(p for p in paint if p), 1),
            "data_shown_ms_median": round(statistics.median(shown), 1),
            "data_shown_ms_max": round(max(shown), 1)}


def ingest_rate(port: int, batches: int, batch_size: int) -> float:
    """Events per second of ``batches`` batches to a new session, on a new connection (the
    collector closes one left idle while the page was being opened)."""
    client = Client(port)
    session_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    bodies = [json.dumps({"events": [event(
        "post_call", session_id, "rate-agent", now + timedelta(microseconds=b * batch_size + i),
        **call_fields(i)) for i in range(batch_size)]}).encode() for b in range(batches)]
    started = time.perf_counter()
    for body in bodies:
        client.post(BATCH_PATH, body)
    return batches * batch_size / (time.perf_counter() - started)


def ingest_with_page(port: int, context: Any | None, url: str, big: str,
                     blocks: int, batches: int) -> dict[str, Any]:
    """Blocks alternating page closed and open (the order swapped each pair)."""
    rates: dict[str, list[float]] = {"closed": [], "open": []}
    for block in range(blocks):
        for page_open in ((False, True) if block % 2 == 0 else (True, False)):
            pages = []
            if page_open and context is not None:
                for route in ("sessions", f"session/{big}"):
                    page = context.new_page()
                    page.goto(f"{url}/#/{route}")
                    page.wait_for_selector("#sessions tbody tr, #timeline tbody tr",
                                           timeout=60_000)
                    pages.append(page)
            elif page_open:
                continue
            rates["open" if page_open else "closed"].append(
                ingest_rate(port, batches, 500))
            for page in pages:
                page.close()
    result: dict[str, Any] = {side: {"median_events_per_s": round(statistics.median(values)),
                                     "blocks": [round(v) for v in values]}
                              for side, values in rates.items() if values}
    if rates["open"] and rates["closed"]:
        result["open_over_closed"] = round(statistics.median(rates["open"])
                                           / statistics.median(rates["closed"]), 3)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller database, fewer runs")
    parser.add_argument("--out", default=".bench/console.json")
    args = parser.parse_args()
    sessions, big_events = (1000, 10_000) if args.quick else (10_000, 100_000)
    repeats = 3 if args.quick else 7
    with tempfile.TemporaryDirectory(prefix="console-bench-") as work:
        collector = Collector(Path(work))
        url = f"http://127.0.0.1:{collector.port}"
        driver = None
        try:
            client = Client(collector.port)
            started = time.perf_counter()
            big = fill(client, sessions, big_events)
            report: dict[str, Any] = {
                "quick": args.quick, "sessions": sessions + 1, "big_session_events": big_events,
                "fill_seconds": round(time.perf_counter() - started, 1),
                "database_mib": round(os.path.getsize(collector.db) / 2**20, 1),
                "api_query": time_queries(client, big, repeats)}
            context = None
            if os.path.exists(CHROMIUM):
                driver, context = launch_chromium(Path(work) / "profile")
                login = context.new_page()
                login.goto(f"{url}/#token={TOKEN}")
                login.wait_for_selector("#sessions tbody tr[data-session]", timeout=60_000)
                login.close()
                report["page"] = {
                    "sessions view": time_paint(context, url, "sessions",
                                                "#sessions tbody tr[data-session]", repeats),
                    "big session's timeline": time_paint(
                        context, url, f"session/{big}", "#timeline tbody tr[data-type]", repeats)}
            else:
                report["page"] = {"error": f"no {CHROMIUM}"}
            report["ingest_with_page"] = ingest_with_page(
                collector.port, context, url, big, blocks=2 if args.quick else 4,
                batches=10 if args.quick else 40)
        finally:
            if driver is not None:
                driver.stop()
            collector.stop()
    write_report(report, args.out)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
