"""What the benchmark scripts set up before anything else: the tests' fakes
importable, no FLIGHTDECK_* variable from the caller's shell, and litellm's
price list read locally (importing it otherwise fetches one from the internet)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
for _name in [n for n in os.environ if n.startswith("FLIGHTDECK_")]:
    del os.environ[_name]


def write_report(report: dict[str, Any], out: str) -> None:
    """Write a benchmark's JSON to ``out`` (directories made) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)
