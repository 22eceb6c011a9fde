"""Translation of HTTP-level failures into the error taxonomy, shared by every adapter.

Each protocol module reads its own error body first (the body says more than the status);
what it cannot name falls back to ``error_for_status``. Transport failures (the HTTP
client's exceptions, the attempt deadline) and undecodable JSON are protocol-independent and are mapped
here once.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from llmagents.errors import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    MalformedResponse,
    ModelNotFound,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from llmagents.providers.http_client import CannotConnect, ConnectionBroke

Headers = Mapping[str, str]
"""Response headers, looked up by lower-case name (``http_client`` lower-cases them)."""

_MAX_MESSAGE = 300
_GOOGLE_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def retry_after_seconds(headers: Headers) -> float | None:
    """The server's wait hint: ``retry-after-ms`` (OpenAI), else ``Retry-After`` in seconds or
    as an HTTP date. ``None`` when absent or unreadable; never negative."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            value = float(raw_ms) / 1000.0
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            return max(0.0, value)
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())
    return max(0.0, value) if math.isfinite(value) else None


def google_duration_seconds(value: object) -> float | None:
    """Read a protobuf Duration in JSON form ("37s", "1.5s"), as Gemini's RetryInfo sends it."""
    if not isinstance(value, str):
        return None
    match = _GOOGLE_DURATION.match(value.strip())
    return float(match.group(1)) if match else None


def error_for_status(
    status: int, message: str, *, provider: str, retry_after: float | None = None
) -> ProviderError:
    """The taxonomy error for an HTTP status when the body named nothing more precise."""
    kwargs: dict[str, Any] = {"provider": provider, "status_code": status}
    if status == 429:
        return RateLimited(message, retry_after=retry_after, **kwargs)
    if status == 529:
        return Overloaded(message, retry_after=retry_after, **kwargs)
    if status in (401, 403):
        return AuthFailed(message, **kwargs)
    if status == 404:
        return ModelNotFound(message, **kwargs)
    if status in (408, 504):
        return ProviderTimeout(message, **kwargs)
    if status >= 500:
        return ServerError(message, retry_after=retry_after, **kwargs)
    return BadRequest(message, **kwargs)


def transport_error(exc: Exception, *, provider: str) -> ProviderError:
    """Map an HTTP client failure (or the attempt deadline firing) to the taxonomy."""
    if isinstance(exc, TimeoutError):
        return ProviderTimeout("no answer within the attempt's timeout", provider=provider)
    if isinstance(exc, CannotConnect):
        return ConnectionFailed(short(str(exc)), provider=provider)
    if isinstance(exc, ConnectionBroke):
        return ConnectionFailed(f"connection broke off: {short(str(exc))}", provider=provider)
    return ConnectionFailed(f"request failed: {type(exc).__name__}", provider=provider)


def token_count(value: object) -> int:
    """A token count from a provider's JSON: a whole number of at least 0, else ``ValueError``
    (which each adapter reports as a malformed answer). A whole float (``12.0``) is taken;
    ``int()`` alone would turn ``Infinity`` into an ``OverflowError`` and ``-5`` into a refund."""
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        count = int(value)
    else:
        raise ValueError(f"token count {value!r} is not a whole number")
    if count < 0:
        raise ValueError(f"token count {count} is negative")
    return count


def decode_json(body: bytes | str, *, provider: str, what: str = "answer") -> Any:
    """Parse JSON or raise ``MalformedResponse`` saying where it broke, without the payload."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"{what} is not valid JSON ({exc})", provider=provider) from None


def body_json(body: bytes) -> Any:
    """An error body as JSON, or ``None`` when it is not JSON (a proxy's HTML page, say)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def body_excerpt(body: bytes) -> str:
    """A short, printable piece of a body that was not in the expected shape."""
    return short(body.decode("utf-8", errors="replace")) or "empty body"


def missing(what: str, *, provider: str) -> MalformedResponse:
    return MalformedResponse(f"answer lacks {what}", provider=provider)


def short(text: object) -> str:
    """A provider-supplied message on one line, bounded so that logs stay readable."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 1] + "…"
