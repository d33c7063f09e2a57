"""The project's benchmarks and the outage soak; ``scripts/bench`` and ``scripts/soak``
run them (``python -m benchmarks`` runs every benchmark and writes BENCHMARKS.md;
``python -m benchmarks.calls`` one of them).

Set up on the package's import: the tests' fakes and fixtures importable, and
litellm's price list read locally (importing litellm otherwise fetches one from
the internet). Each benchmark's ``main`` runs through ``_common.run_main``, which also
drops the caller's FLIGHTDECK_* variables first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
