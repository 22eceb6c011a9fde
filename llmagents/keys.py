"""What an API key may hold: one rule for everyone who reads a key before it goes into a
header — the operator reading the Secret, the runner building its adapters, and
``llmagents run -f``.

Visible ASCII only. RFC 9110 also admits spaces, tabs and Latin-1 bytes inside a field value,
but no provider's key holds them: one that does is a copy-paste accident (a byte-order mark
from a file saved "UTF-8 with BOM", a non-breaking space, a line break, a NUL), and an HTTP
client would send it mangled or fail mid-request with the header in its error. Surrounding
whitespace is not the key's (``echo key | base64`` adds a newline) and is dropped first.

The problems it names give a character's code point and position, enough to find it, and
nothing of the key itself.
"""

from __future__ import annotations


def key_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an API key, or ``None`` when nothing is."""
    key = value.strip()
    if not key:
        return "is empty"
    for position, char in enumerate(key):
        if not "\x21" <= char <= "\x7e":
            return (
                "holds a character that cannot go in an HTTP header "
                f"(U+{ord(char):04X} at position {position})"
            )
    return None


def secret_value_problem(data: bytes) -> str | None:
    """``key_problem`` of a Secret's decoded value, which may not even be text."""
    try:
        return key_problem(data.decode("utf-8"))
    except UnicodeDecodeError:
        return "is not UTF-8 text"
