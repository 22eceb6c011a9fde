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

import aiohttp
from pydantic_core import from_json

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
    RequestRefused,
    ServerError,
)

Headers = Mapping[str, str]
"""Response headers, looked up by lower-case name (aiohttp's are case-insensitive)."""

_MAX_MESSAGE = 300
_GOOGLE_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")
REQUEST_STATUSES = frozenset({400, 413, 422})
"""Statuses by which a provider refuses a request's content (invalid, too large,
unprocessable): ``refused_request`` tells these from a configuration the provider refuses."""
# Some APIs answer 400 where the fault is the pool's, not the request's: OpenRouter names an
# unknown model so, Anthropic a credit balance too low. Their words are the only sign.
_MODEL_MISSING = re.compile(
    r"\bmodel\b.{0,120}\b(does not exist|not found|is unknown)"
    r"|\b(not a valid|invalid|unknown|no such) model\b",
    re.IGNORECASE,
)
_ACCOUNT = re.compile(r"credit balance|billing|insufficient (credits|quota|balance)", re.IGNORECASE)


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
    if status in REQUEST_STATUSES:
        return refused_request(message, provider=provider, status=status)
    return BadRequest(message, **kwargs)


def refused_request(message: str, *, provider: str, status: int | None) -> ProviderError:
    """A provider's refusal of a request's content (``RequestRefused``), unless its words
    say the pool is at fault: an unknown model (``ModelNotFound``) or an account without
    credit (``AuthFailed``), which mark the provider misconfigured. A body that says
    "invalid request" under another status (402, 409) is the configuration's too."""
    if status is not None and status not in REQUEST_STATUSES:
        return BadRequest(message, provider=provider, status_code=status)
    if _MODEL_MISSING.search(message):
        return ModelNotFound(message, provider=provider, status_code=status)
    if _ACCOUNT.search(message):
        return AuthFailed(message, provider=provider, status_code=status)
    return RequestRefused(message, provider=provider, status_code=status)


def transport_error(exc: Exception, *, provider: str) -> ProviderError:
    """Map an aiohttp failure (or the attempt deadline firing) to the taxonomy. Messages name
    the address and the reason, never a request's headers."""
    if isinstance(exc, TimeoutError):  # aiohttp's own timeouts are TimeoutErrors too
        return ProviderTimeout("no answer within the attempt's timeout", provider=provider)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        where = f"{exc.host}:{exc.port}"
        reason = getattr(exc.certificate_error, "verify_message", None) or "not trusted"
        return ConnectionFailed(
            f"cannot connect to {where}: TLS certificate not trusted ({reason})",
            provider=provider,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.strerror or type(exc.os_error).__name__
        return ConnectionFailed(f"cannot connect to {exc.host}:{exc.port}: {reason}",
                                provider=provider)  # fmt: skip
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp's parser refused the answer: a head line or header count over the limits,
        # or no HTTP at all.
        return MalformedResponse(f"malformed HTTP answer: {short(exc.message)}",
                                 provider=provider)  # fmt: skip
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError
                  | aiohttp.ClientOSError):  # fmt: skip
        return ConnectionFailed(f"connection broke off: {short(str(exc) or type(exc).__name__)}",
                                provider=provider)  # fmt: skip
    return ConnectionFailed(f"request failed: {type(exc).__name__}", provider=provider)


def decode_json(body: bytes | str, *, provider: str, what: str = "answer") -> Any:
    """Parse JSON or raise ``MalformedResponse`` saying where it broke, without the payload.

    pydantic-core's parser first (a few times faster than the standard library's on a chat
    answer); what it refuses goes to ``json.loads``, which also takes UTF-16 and UTF-32 and
    words the error as before."""
    try:
        return from_json(body)
    except ValueError:
        pass
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
