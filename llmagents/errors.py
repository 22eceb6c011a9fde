"""The project's error types, and the taxonomy every provider failure maps into.

Each external failure has exactly one name here and the engine reacts to the name, not to
HTTP details: retryable kinds are retried with backoff (honouring ``retry_after``), the
misconfiguration kinds move to the next provider at once and mark the provider misconfigured,
and a refused request (the request's content, not the provider's configuration) moves to
the next provider at once and marks nothing: another provider may accept it, and when none
does the request was at fault, not the pool. Messages never carry a credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from llmagents.chat import Usage
    from llmagents.routing.calls import AttemptRecord


class LLMAgentsError(Exception):
    """Base of every error llmagents raises on purpose."""


class ConfigError(LLMAgentsError):
    """A configuration that validated structurally still cannot be used."""


class InvalidApiKey(ConfigError):
    """An API key holds a character that cannot be sent in an HTTP header."""


class ErrorKind(StrEnum):
    """What went wrong with a provider call, as far as the engine's reaction is concerned."""

    RATE_LIMITED = "rate_limited"
    """The provider asked us to slow down (HTTP 429), possibly saying for how long."""
    OVERLOADED = "overloaded"
    """The provider is temporarily over capacity (Anthropic's 529)."""
    SERVER_ERROR = "server_error"
    """The provider failed on its side (5xx)."""
    TIMEOUT = "timeout"
    """No answer within the provider's timeout or the call's deadline."""
    CONNECTION_FAILED = "connection_failed"
    """The connection could not be made or broke before a full answer arrived."""
    AUTH = "auth"
    """The credential was missing, wrong or not allowed (401/403)."""
    BAD_REQUEST = "bad_request"
    """The provider refused a request it could never take from this configuration (a
    redirect, a precondition of the account or region): a misconfiguration."""
    REQUEST_REFUSED = "request_refused"
    """The provider refused this request's content (400/413/422: a schema keyword it does not
    support, a context too long, an image it cannot read): no evidence against the provider."""
    MODEL_NOT_FOUND = "model_not_found"
    """The configured model does not exist at this provider (404)."""
    MALFORMED_RESPONSE = "malformed_response"
    """The provider answered, but not in its documented shape."""
    CLIENT_BUSY = "client_busy"
    """No connection to the provider came free in time: the runner's own limit, not the
    provider's failure (no breaker or health evidence); the engine moves to the next one."""


RETRYABLE_KINDS: frozenset[ErrorKind] = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION_FAILED,
        ErrorKind.MALFORMED_RESPONSE,
    }
)
"""Kinds worth another try at the same provider."""

MISCONFIGURATION_KINDS: frozenset[ErrorKind] = frozenset(
    {ErrorKind.AUTH, ErrorKind.BAD_REQUEST, ErrorKind.MODEL_NOT_FOUND}
)
"""Kinds that no retry can fix: the engine moves on and marks the provider misconfigured."""


class ProviderError(LLMAgentsError):
    """A provider call failed; ``kind`` decides what the engine does next."""

    kind: ClassVar[ErrorKind]
    usage: Usage | None = None
    """Tokens the failed attempt consumed, when the provider answered before it failed
    (``AnswerRejected``): charged like any answer's, so the budget is never undercounted."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def detail(self) -> str:
        """The message without a leading copy of the kind: OpenAI-compatible servers often
        name their error type with the same word (``server_error: The engine is ...``)."""
        prefix = f"{self.kind.value}: "
        return self.message.removeprefix(prefix) or self.message

    @property
    def summary(self) -> str:
        """The kind and the detail, as status and Events show a failure."""
        return f"{self.kind.value}: {self.detail}"

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    @property
    def misconfiguration(self) -> bool:
        return self.kind in MISCONFIGURATION_KINDS

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        status = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{where}{self.kind.value}{status}: {self.detail}"


class RateLimited(ProviderError):
    """The provider rate-limited the call; ``retry_after`` holds its hint in seconds."""

    kind = ErrorKind.RATE_LIMITED


class Overloaded(ProviderError):
    """The provider is overloaded and asked for the call again later."""

    kind = ErrorKind.OVERLOADED


class ServerError(ProviderError):
    """The provider failed with a server-side error."""

    kind = ErrorKind.SERVER_ERROR


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""

    kind = ErrorKind.TIMEOUT


class ConnectionFailed(ProviderError):
    """The connection to the provider failed or broke off."""

    kind = ErrorKind.CONNECTION_FAILED


class AuthFailed(ProviderError):
    """The provider refused the credential; fix the Secret the pool references."""

    kind = ErrorKind.AUTH


class BadRequest(ProviderError):
    """The provider refused the request as invalid."""

    kind = ErrorKind.BAD_REQUEST


class RequestRefused(ProviderError):
    """The provider refused this request as invalid; another provider may take it."""

    kind = ErrorKind.REQUEST_REFUSED


class ModelNotFound(ProviderError):
    """The configured model is unknown to the provider; fix the pool's ``model``."""

    kind = ErrorKind.MODEL_NOT_FOUND


class MalformedResponse(ProviderError):
    """The provider's answer did not match its documented format."""

    kind = ErrorKind.MALFORMED_RESPONSE


class AnswerRejected(MalformedResponse):
    """The provider answered, but not in the form the request demanded (a task's JSON
    schema); retried and fallen back from like a malformed answer, its tokens charged."""

    def __init__(self, message: str, *, provider: str | None = None, usage: Usage) -> None:
        super().__init__(message, provider=provider)
        self.usage = usage


class ClientBusy(ProviderError):
    """Every connection the adapter may open to the provider stayed in use until the
    attempt's deadline; raise ``max_connections`` or lower the concurrency."""

    kind = ErrorKind.CLIENT_BUSY


ERROR_TYPES: dict[ErrorKind, type[ProviderError]] = {
    cls.kind: cls
    for cls in (
        RateLimited,
        Overloaded,
        ServerError,
        ProviderTimeout,
        ConnectionFailed,
        AuthFailed,
        BadRequest,
        RequestRefused,
        ModelNotFound,
        MalformedResponse,
        ClientBusy,
    )
}
"""One class per kind, for code that has a kind and needs the exception."""


class RequestNotEncodable(LLMAgentsError):
    """A request holds what strict JSON cannot (``NaN``, ``Infinity``, a lone surrogate); no
    provider was called. The request is at fault, never a provider."""


class CallFailed(LLMAgentsError):
    """No provider of the pool answered a call; ``attempts`` and ``reasons`` say why."""

    def __init__(
        self,
        message: str,
        *,
        attempts: Sequence[AttemptRecord] = (),
        last_errors: Mapping[str, ProviderError] | None = None,
        reasons: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = list(attempts)
        self.last_errors = dict(last_errors or {})
        self.reasons = dict(reasons or {})


class AllProvidersFailed(CallFailed):
    """Every provider the call could use failed, was misconfigured or had its breaker open."""


class AllProvidersRefused(CallFailed):
    """Every provider the call could use refused the request itself (``RequestRefused``),
    and none was passed over for a reason of its own (breaker, deadline): the request is the
    cause. The gateway answers 400 with each provider's reason; no provider is marked."""


class CapabilityUnavailable(CallFailed):
    """No provider the call may use supports what the request needs (tools, vision...).

    The request is the cause, not the providers: the gateway answers 400 and no provider is
    called, marked or blamed. ``capabilities`` are the ones missing, ``considered`` the
    providers looked at.
    """

    def __init__(
        self, message: str, *, capabilities: Sequence[str], considered: Sequence[str]
    ) -> None:
        super().__init__(message)
        self.capabilities = list(capabilities)
        self.considered = list(considered)


class DeadlineExceeded(CallFailed):
    """The call's deadline passed before any provider answered."""


class BudgetExhausted(LLMAgentsError):
    """The budget of the current period is spent; no further paid call is made."""

    def __init__(self, message: str, *, period: str, spent: float, limit: float) -> None:
        super().__init__(message)
        self.period = period
        self.spent = spent
        self.limit = limit
