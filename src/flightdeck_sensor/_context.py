"""PLACEHOLDER: replaced by the foundation work (issue 2): session_start fields."""

from __future__ import annotations

import os
import sys
from typing import Any

from ._config import Config
from ._version import __version__


def session_start_fields(config: Config) -> dict[str, Any]:
    return {
        "sensor_version": __version__,
        "context": {"pid": os.getpid(), "python_version": sys.version.split()[0]},
        "capture_prompts": config.capture_prompts,
        "interceptor_versions": {},
    }
