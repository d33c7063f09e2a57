"""An unmodified agent for benchmarks/control.py: no line about the sensor but the
two that report when it was stopped. Run with the FLIGHTDECK_* environment.

    python _control_agent.py busy|idle OUT.json

busy: OpenAI calls back to back (the in-process fake provider) until one raises;
idle: one call (the session starts), then none, polling shutdown_requested().
Writes ``{"enforced_at": <time.time()>}`` to OUT.json; ``OUT.json.ready`` once
the session started.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks._provider import Provider, openai_client

MESSAGES = [{"role": "user", "content": "hello"}]


def main() -> int:
    mode, out = sys.argv[1], Path(sys.argv[2])
    client = openai_client(Provider(), 0)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    Path(f"{out}.ready").touch()
    import flightdeck_sensor

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if mode == "busy":
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            except flightdeck_sensor.DirectiveError:
                break
        else:
            if flightdeck_sensor.get_status().get("shutdown_requested"):
                break
            time.sleep(0.005)
    else:
        return 1
    out.write_text(json.dumps({"enforced_at": time.time()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
