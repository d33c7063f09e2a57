"""Added time per call in context: real SDK calls over loopback HTTP, sensor on vs off.

The isolated figures of benchmarks/calls.py run the sensor's path thousands of times
in a row, with its code and data hot in the CPU's caches. In a real program the
path runs once between two SDK calls of several milliseconds each, which evict
it. This measures that: the OpenAI and Anthropic SDKs calling the project's fake
provider (``tests/fakes/fake_llm``) over loopback HTTP, the sensor on
(``patch()``) and off (``unpatch()``) in alternating blocks of calls, the
calling thread's CPU time and wall time per call. The sensor delivers to a real
collector subprocess.

    .venv/bin/python -m benchmarks.http [--quick] [--out .bench/http.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._common import (
    MESSAGES,
    ROOT,
    TOKEN,
    Collector,
    measure_abba,
    run_main,
    write_report,
)
from fakes.fake_llm import FakeLLM

PAUSE_SECONDS = 0.001  # after each call, as between a real agent's calls


def switch_sensor(on: bool) -> None:
    import flightdeck_sensor

    (flightdeck_sensor.patch if on else flightdeck_sensor.unpatch)()


def measure(call: Any, blocks: int, per_block: int) -> dict[str, Any]:
    """``call`` in interleaved ABBA blocks of sensor on and off, a pause after each call."""
    return measure_abba(call, blocks, per_block, switch_sensor, pause=PAUSE_SECONDS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "http.json"))
    args = parser.parse_args()
    blocks, per_block = (4, 50) if args.quick else (20, 100)

    import anthropic
    import openai

    import flightdeck_sensor

    with tempfile.TemporaryDirectory(prefix="fd-bench-http-") as workdir, FakeLLM() as fake:
        collector = Collector(Path(workdir))
        try:
            flightdeck_sensor.init(server=collector.ingest_url, token=TOKEN, spool="off")
            oai = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-bench", max_retries=0)
            ant = anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-bench", max_retries=0)
            cases = {
                "OpenAI chat.completions.create": lambda: oai.chat.completions.create(
                    model="gpt-4o-mini", messages=MESSAGES),
                "Anthropic messages.create": lambda: ant.messages.create(
                    model="claude-3-5-haiku-latest", max_tokens=32, messages=MESSAGES),
            }
            rows = []
            for label, call in cases.items():
                row = {"label": label} | measure(call, blocks, per_block)
                rows.append(row)
                print(f"  {label:32} cpu off {row['cpu']['off_median_us']:8.1f} added "
                      f"{row['cpu']['added_median_us']:7.1f} | wall added "
                      f"{row['wall']['added_median_us']:7.1f} us", file=sys.stderr)
            flightdeck_sensor.unpatch()
            delivered = flightdeck_sensor.flush(15)
            flightdeck_sensor.shutdown(5)
        finally:
            collector.stop()
    report = {"benchmark": "http", "quick": args.quick, "calls": rows,
              "pause_between_calls_ms": PAUSE_SECONDS * 1000, "all_delivered": delivered,
              "load_average": list(os.getloadavg())}
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
