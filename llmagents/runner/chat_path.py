"""The gateway's protocol-neutral path: a ``ChatRequest`` in, a ``ChatResponse`` or a stream out.

Every front door of the gateway (OpenAI's ``/v1/chat/completions``, Anthropic's
``/v1/messages``, OpenAI's ``/v1/responses``) hands ``serve`` here how to read its
protocol's request into a ``ChatCall`` and how to write the outcome in its protocol's
shape: a whole answer, a stream through its ``StreamWriter``, or a ``Refusal`` in its error
shape; ``serve`` does the rest. What happens in between is the same for all of them: the
agent must be taking calls, the request's ``model`` selects the providers it may use, the
engine skips providers that lack a capability the request needs and refuses with a 400
naming it when none is left, and engine failures become refusals with one status each
(exhausted budget 429, a request every provider refused for its content 400 with their
reasons, no provider answering 503, passed deadline 504).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Protocol

from llmagents.api.work import Complexity
from llmagents.chat import ChatRequest, ChatResponse, StreamChunk, Usage
from llmagents.errors import (
    AllProvidersRefused,
    BudgetExhausted,
    CallFailed,
    CapabilityUnavailable,
    DeadlineExceeded,
    LLMAgentsError,
    ProviderError,
    RequestNotEncodable,
)
from llmagents.routing import CallTask
from llmagents.runner.web import Request, Response, StreamingResponse

if TYPE_CHECKING:
    from llmagents.runner.lifecycle import Runner
    from llmagents.runner.pool_client import OpenStream

logger = logging.getLogger(__name__)


class RefusalKind(StrEnum):
    """Why the gateway refuses a call; each front door names it in its protocol's words."""

    INVALID_REQUEST = "invalid_request"
    """The request itself is wrong (400): no provider was called."""
    NOT_FOUND = "not_found"
    """No such route or model (404)."""
    BUDGET = "budget"
    """The agent's budget is spent (429, not worth retrying)."""
    UNAVAILABLE = "unavailable"
    """No provider answered, or the agent stopped taking calls (503)."""
    DEADLINE = "deadline"
    """The call's deadline passed (504)."""


LOGPROBS_UNSERVED = ("token log probabilities are not served by the gateway: no provider's "
                     "answer carries them through it")  # fmt: skip
"""Why a front door refuses a request for log probabilities (the neutral answer has none)."""


class Refusal(LLMAgentsError):
    """A call the gateway refuses; ``retry`` False means a client should not try it again."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: RefusalKind = RefusalKind.INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        retry: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.retry = retry


@dataclass(slots=True)
class ChatCall:
    """A front door's request, read: the neutral request and how to route and answer it."""

    request: ChatRequest
    model: str | None = None
    """The client's ``model``: a provider name, a model of the pool, an alias, or anything
    else for the pool's default."""
    stream: bool = False
    complexity: Complexity | None = None


@dataclass(slots=True)
class Answered:
    """A whole answer, who gave it and what it cost."""

    response: ChatResponse
    provider: str
    cost: float


def complexity_from_header(value: str | None) -> Complexity | None:
    """The ``x-llmagents-complexity`` header's value; ``Refusal`` when it names none."""
    if not value:
        return None
    try:
        return Complexity(value.strip().lower())
    except ValueError:
        raise Refusal(
            400, "x-llmagents-complexity must be simple, medium or complex", param="headers"
        ) from None


def check_accepting(runner: Runner) -> None:
    """``Refusal`` (503, not worth retrying) when the agent has stopped taking calls."""
    if not runner.accepting:
        raise Refusal(
            503,
            f"agent {runner.agent} is not taking calls: {runner.message or runner.phase.value}",
            kind=RefusalKind.UNAVAILABLE,
            code="agent_stopped",
            retry=False,
        )


def _task(runner: Runner, call: ChatCall) -> CallTask:
    check_accepting(runner)
    request = call.request
    return CallTask.from_messages(
        request.messages,
        complexity=call.complexity,
        max_output_tokens=request.max_tokens,
        providers=runner.engine.providers_for(call.model),
        capabilities=request.required_capabilities(stream=call.stream),
    )


async def answer(runner: Runner, call: ChatCall) -> Answered:
    """One whole answer through the engine; ``Refusal`` when there is none to give."""
    task = _task(runner, call)
    try:
        result = await runner.engine.complete(call.request, task)
    except (BudgetExhausted, CallFailed) as failed:
        raise refusal_of(runner, failed) from None
    except RequestNotEncodable as invalid:
        raise Refusal(400, str(invalid)) from None
    return Answered(result.value, result.provider, result.cost)


async def open_stream(runner: Runner, call: ChatCall) -> OpenStream:
    """A stream that one provider has begun (fallback happens before its first chunk)."""
    task = _task(runner, call)
    try:
        return await runner.engine.open_stream(call.request, task)
    except (BudgetExhausted, CallFailed) as failed:
        raise refusal_of(runner, failed) from None
    except RequestNotEncodable as invalid:
        raise Refusal(400, str(invalid)) from None


def refusal_of(runner: Runner, failed: BudgetExhausted | CallFailed) -> Refusal:
    """The refusal an engine failure becomes, its message redacted."""
    message = runner.redact(str(failed))
    if isinstance(failed, BudgetExhausted):
        return Refusal(429, message, kind=RefusalKind.BUDGET, code="budget_exhausted", retry=False)
    if isinstance(failed, CapabilityUnavailable):
        return Refusal(400, message, code="capability_unavailable", param="model")
    if isinstance(failed, AllProvidersRefused):
        # Every provider refused the request's content: the client's to fix, and futile to
        # send again as it is.
        return Refusal(400, message, code="request_refused", retry=False)
    if isinstance(failed, DeadlineExceeded):
        return Refusal(504, message, kind=RefusalKind.DEADLINE, code="deadline_exceeded")
    return Refusal(503, message, kind=RefusalKind.UNAVAILABLE, code="all_providers_failed")


class StreamWriter(Protocol):
    """How a front door encodes one stream's events; each method returns the bytes to send
    (``b""`` for nothing)."""

    def start(self) -> bytes:
        """Sent before the first chunk."""
        ...

    def chunk(self, chunk: StreamChunk) -> bytes:
        """A piece of text and/or of tool calls."""
        ...

    def end(self, finish_reason: str | None, usage: Usage | None) -> bytes:
        """The stream ended well."""
        ...

    def error(self, message: str) -> bytes:
        """The provider failed mid-answer: the protocol's in-stream error, so that the
        client raises instead of taking a cut answer for a whole one."""
        ...


@dataclass(slots=True)
class FrontCall:
    """A front door's request, read, with how that door writes a stream and a whole answer."""

    call: ChatCall
    writer: Callable[[str], StreamWriter]
    """The door's stream writer, given the model that answers."""
    body: Callable[[ChatResponse], bytes]
    """A whole answer in the door's shape."""


class RefusalWriter(Protocol):
    """A front door's refusal in its protocol's error shape (it also counts the request)."""

    def __call__(self, runner: Runner, refusal: Refusal, *, stream: bool) -> Response: ...


async def serve(
    runner: Runner,
    request: Request,
    read: Callable[[bytes, Complexity | None], FrontCall],
    refuse: RefusalWriter,
) -> Response | StreamingResponse:
    """One front door's request, end to end: the ``x-llmagents-complexity`` header, then the
    body ``read`` by the door (either a ``Refusal`` if wrong), answered whole or as a stream;
    a refusal written by ``refuse``."""
    stream = False
    try:
        complexity = complexity_from_header(request.headers.get("x-llmagents-complexity"))
        front = read(request.body, complexity)
        stream = front.call.stream
        if stream:
            opened = await open_stream(runner, front.call)
            return streaming_response(runner, opened, front.writer(opened.model))
        answered = await answer(runner, front.call)
    except Refusal as refusal:
        return refuse(runner, refusal, stream=stream)
    runner.later(partial(runner.metrics.gateway_request, stream=False, code=200))
    return Response(200, front.body(answered.response), headers=answer_headers(answered))


def streaming_response(
    runner: Runner, stream: OpenStream, writer: StreamWriter
) -> StreamingResponse:
    """The server-sent events of one stream, with the answering provider in a header."""
    return StreamingResponse(
        _relay(runner, stream, writer),
        headers={"cache-control": "no-cache", "x-llmagents-provider": stream.provider},
    )


async def _relay(runner: Runner, stream: OpenStream, writer: StreamWriter) -> AsyncIterator[bytes]:
    """Closed at a ``yield`` if the client leaves; the call is then settled with what the
    provider sent so far."""
    code = 499  # unless the stream runs to its end: the client went away
    try:
        yield writer.start()
        try:
            async for chunk in stream:
                data = writer.chunk(chunk)
                if data:
                    yield data
        except ProviderError as broke:
            code = 502
            runner.metrics.stream_failed(stream.provider, broke.kind.value)
            message = runner.redact(f"provider {stream.provider} failed mid-answer: {broke}")
            logger.warning("agent %s: gateway stream: %s", runner.agent, message)
            yield writer.error(message)
            return
        yield writer.end(stream.finish_reason, stream.usage)
        code = 200
    finally:
        if code == 499:
            await stream.aclose()
        runner.metrics.gateway_request(stream=True, code=code)


def answer_headers(answered: Answered) -> dict[str, str]:
    """``x-llmagents-provider`` and ``x-llmagents-cost-usd`` of a whole answer."""
    return {
        "x-llmagents-provider": answered.provider,
        "x-llmagents-cost-usd": f"{answered.cost:.8f}",
    }
