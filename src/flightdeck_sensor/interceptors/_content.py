"""Prompt/response content for capture mode: JSON-safe and capped in size."""

from __future__ import annotations

import json
from typing import Any


def capped_content(content: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """A JSON-safe copy of ``content``; over ``max_bytes`` it is cut and marked truncated."""
    text = json.dumps(content, default=_jsonable, ensure_ascii=False)
    if len(text.encode("utf-8")) <= max_bytes:
        parsed: dict[str, Any] = json.loads(text)
        return parsed
    cut = text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")
    return {"truncated": True, "original_bytes": len(text.encode("utf-8")), "text": cut}


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            pass
    return repr(value)
