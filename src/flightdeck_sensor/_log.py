"""PLACEHOLDER: replaced by the foundation work (issue 2)."""

from __future__ import annotations

from ._config import Config


def configure_logging(config: Config) -> None:
    pass
