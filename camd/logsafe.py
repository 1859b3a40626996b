"""Client-controlled text made safe for one log line: control characters escaped, length bounded.

A request path, a user name or a header value goes into the log through
``clean`` (or ``quoted``, for a value in quotes), so that ``%0a`` in a path or a
newline in a user name cannot start a forged line, and an escape sequence
cannot repaint a terminal. The HTTP front (its request lines) and the web app use it.
"""

from __future__ import annotations

MAX_CHARS = 200


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean(text: str | bytes | None, limit: int = MAX_CHARS) -> str:
    """``text`` with every non-printable character (and backslash) escaped, cut at ``limit`` characters."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    cut = len(text) > limit
    out = "".join(char if char.isprintable() and char != "\\" else ("\\\\" if char == "\\" else _escape(char))
                  for char in text[:limit])  # fmt: skip
    return out + "..." if cut else out


def quoted(text: str | bytes | None, limit: int = MAX_CHARS) -> str:
    """``clean(text)`` in single quotes, with any quote inside escaped: the closing quote is always camd's."""
    return "'" + clean(text, limit).replace("'", "\\x27") + "'"
