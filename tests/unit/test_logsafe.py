"""Client-controlled text cannot forge or hide a log line."""

from __future__ import annotations

import pytest

from camd.logsafe import MAX_CHARS, clean, quoted


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("/stills/", "/stills/"),
        ("/x\nINFO camd: forged", "/x\\x0aINFO camd: forged"),
        ("/x\r\n", "/x\\x0d\\x0a"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\\x0a", "a\\\\x0a"),
        ("bob\u2028x", "bob\\u2028x"),
        ("\x85", "\\x85"),
        ("zoë 🐶", "zoë 🐶"),
        (b"/p\xff\n", "/p\\\\xff\\x0a"),
        (None, ""),
    ],
)
def test_clean(text: str | bytes | None, shown: str) -> None:
    assert clean(text) == shown
    assert "\n" not in clean(text) and "\r" not in clean(text)


def test_long_text_is_cut() -> None:
    assert clean("a" * 1000) == "a" * MAX_CHARS + "..."


def test_quoted_keeps_the_closing_quote_camds() -> None:
    assert quoted("bob") == "'bob'"
    assert quoted("x' from 198.51.100.7") == "'x\\x27 from 198.51.100.7'"
    assert quoted("a\nb").count("'") == 2
