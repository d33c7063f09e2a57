"""``printable``: what a server, a file or an event gives us is shown as one
short, harmless line."""

from __future__ import annotations

import pytest

from flightdeck_sensor._log import printable


@pytest.mark.parametrize("hostile", [
    "a\x1b[2J\x1b[31mred", "line\r\nFAKE ERROR", "bell\x07", "nul\x00", "del\x7f",
    "c1\x9b31m", "sep\u2028arator", "bidi\u202eevil"])
def test_control_characters_never_reach_the_line(hostile: str) -> None:
    shown = printable(hostile)

    assert shown.isprintable() and shown.replace("?", "")


def test_long_text_is_cut_to_the_limit_with_an_ellipsis() -> None:
    shown = printable("x" * 10_000, limit=50)

    assert len(shown) == 50 and shown.endswith("\u2026")


def test_plain_text_and_non_strings_pass_through() -> None:
    assert printable("invalid model: gpt-9 (tokens_input < 0)") == (
        "invalid model: gpt-9 (tokens_input < 0)")
    assert printable({"error": 5}) == "{'error': 5}"
    assert printable(b"\x1b") == "b'\\x1b'"


def test_an_object_whose_str_raises_is_named_not_raised() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert printable(Hostile()) == "<Hostile>"
