"""``printable``: text from a server or an event, safe for a terminal and a log line."""

from __future__ import annotations

import pytest

from flightdeck_sensor._printable import printable


@pytest.mark.parametrize(("text", "shown"), [
    ("plain text", "plain text"),
    ("a\x1b[2Jb", "a\\x1b[2Jb"),
    ("line\r\nFAKE", "line\\x0d\\x0aFAKE"),
    ("del\x7f c1\x9b", "del\\x7f c1\\x9b"),
    ("tab\there", "tab\\x09here"),
    ("rtl\u202eoverride", "rtl\\u202eoverride"),
    ("isolate\u2066x", "isolate\\u2066x"),
    ("sep\u2028arator", "sep\\u2028arator"),
    ("nul\x00 bell\x07", "nul\\x00 bell\\x07"),
    (b"\x1b", "b'\\x1b'"),
    ("caf\u00e9 \u4e2d\u6587", "caf\u00e9 \u4e2d\u6587"),
    (None, "None"),
    (413, "413"),
])
def test_control_characters_become_visible_escapes(text: object, shown: str) -> None:
    assert printable(text) == shown


def test_long_text_is_cut_with_an_ellipsis_at_the_limit() -> None:
    assert printable("x" * 1_000_000, 10) == "x" * 9 + "\u2026"
    assert printable("\x1b" * 1_000_000, 10) == "\\x1b\\x1b\\\u2026"
    assert printable("x" * 10, 10) == "x" * 10


def test_an_object_whose_str_fails_is_still_shown() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert printable(Broken()) == "<Broken>"
