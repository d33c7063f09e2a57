"""The outage soak in miniature (~40 s; ``scripts/soak`` runs the ~6 minute
form): an agent making real SDK calls while the ingest server is down, up,
slow, answering 500, answering 429 with Retry-After.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SLOW_ANSWER = 6.0  # seconds: beyond the sender's 5 s request timeout


def load_soak() -> ModuleType:
    """benchmarks/soak.py, the long soak's own code (benchmarks/ is not on the tests' path)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("benchmarks.soak")


def test_outage_soak_in_miniature(tmp_path: Path) -> None:
    soak = load_soak()
    # Given an agent calling in a loop through phases of ingest failures
    result = soak.run_soak(soak.QUICK_PHASES, tmp_path, slow_seconds=SLOW_ANSWER)
    summary = "\n".join(result.summary_lines) + "\n" + result.agent_stderr_tail

    # Then no call failed, and none waited on the ingest server
    assert result.call_errors == 0, summary
    slowest = max(p["on_max_ms"] or 0 for p in result.phases)
    assert slowest < SLOW_ANSWER * 1000, summary
    # and the queue stayed within its cap
    assert result.max_queued <= result.queue_cap, summary
    # and each outage warned once at most, not once per batch
    outages = sum(1 for mode, _ in soak.QUICK_PHASES if mode in ("down", "slow", "500"))
    assert 1 <= len(result.warnings) <= outages, summary
    # and after recovery every event arrived, once (the collector keeps ids unique)
    assert result.submitted > 0
    assert result.missing <= sum(result.dropped.values()), summary
    assert result.missing == 0, summary  # the spool is on: nothing needed dropping
    assert result.unexpected == 0, summary
