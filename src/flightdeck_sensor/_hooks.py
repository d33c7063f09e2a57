"""PLACEHOLDER: replaced by the foundation work (issue 2): the sys.meta_path finder."""

from __future__ import annotations


def install(providers: frozenset[str]) -> None:
    pass


def uninstall() -> None:
    pass
