"""OpenAI's error body, and the refusal of a request that failed validation, worded and
located (``param``) the way OpenAI names a request's fields."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from llmagents.wire import WireModel


class ErrorDetail(WireModel):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorBody(WireModel):
    """OpenAI's ``{"error": {...}}``; older vLLM puts the fields at the top with
    ``"object": "error"`` (read by the adapter, never written)."""

    error: ErrorDetail


def error_body(
    message: str, *, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An error answer as OpenAI writes it, ready for ``json.dumps``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def describe(invalid: ValidationError) -> tuple[str, str | None]:
    """A refusal's message and ``param`` (``messages[0].content``, as OpenAI names fields)
    for a request that failed validation: its most specific error, and how many more."""
    errors = invalid.errors(include_url=False)
    # Of a union's failed members, the one that got furthest says most.
    error = max(errors, key=lambda e: len(e["loc"]))
    if error["type"] == "json_invalid":
        return f"the request body is not valid JSON: {error['msg']}", None
    param = ""
    previous: str | int | None = None
    for part in error["loc"]:
        if isinstance(part, int):
            param += f"[{part}]"
        elif not _union_member(part, previous):
            param += f".{part}" if param else part
        previous = part
    count = invalid.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    where = f"'{param}': " if param else ""
    return f"Invalid request: {where}{error['msg']}{more}", param or None


def _union_member(part: str, previous: str | int | None) -> bool:
    """Whether a location part names the member of a union tried, not a field: unions add
    it (``messages.0.user.content.str``), and a client wants the path in its own request."""
    if part in ("str", "int", "float", "bool", "none", "list", "dict"):
        return True
    if part.startswith(("list[", "dict[", "literal[", "function-", "json-or-python")):
        return True
    if part[:1].isupper():  # a model's name: NamedToolChoice, TextPart...
        return True
    # A discriminated union's tag, right after the list index or field that holds it.
    return part in _TAGS and (isinstance(previous, int) or previous in _TAGGED_FIELDS)


_TAGS = frozenset({"system", "developer", "user", "assistant", "tool", "text", "image_url",
                   "refusal", "json_object", "json_schema"})  # fmt: skip
_TAGGED_FIELDS = frozenset({"response_format"})
