"""Shared fixtures live in tests/fixtures/<part>.py, one module per owner."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytest_plugins = [
    "fixtures.collector",
    "fixtures.fake_llm",
    "fixtures.venvs",
    "fixtures.sensor",
    "fixtures.control",
    "fixtures.otlp",
    "fixtures.phoenix",
    "fixtures.browser",
]
