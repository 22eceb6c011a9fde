"""The agent's one engine: the ``ProviderManager`` and an adapter per provider, built once.

Task mode and gateway mode both call models through the ``PoolClient`` of their process,
so spend, budget, breakers and health are one whichever mode (or both) sends the call. The
engine never calls an adapter itself: each call is an ``async (Attempt) -> answer`` function
made here, and ``ProviderManager.execute`` decides who gets it.

Streams: ``open_stream`` lets the manager fall back until one provider has produced its first
chunk, so a client never receives a byte from a provider that then turns out to be down.
The returned ``OpenStream`` owes the manager exactly one settlement, which it makes itself
when the stream ends, breaks, or is closed early.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmagents.api.pool import ProviderSpec, ProviderType
from llmagents.api.runner_config import RunnerConfig
from llmagents.chat import ChatRequest, ChatResponse, StreamChunk, Usage
from llmagents.errors import AnswerRejected, MalformedResponse, ProviderError
from llmagents.pricing import KnownPrice, prices, resolve_pool
from llmagents.providers import ProviderAdapter, build_adapter
from llmagents.routing import (
    Attempt,
    CallResult,
    CallTask,
    EngineListener,
    ProviderManager,
    selection,
)
from llmagents.routing import clock as clocks
from llmagents.routing.costs import usage_problem
from llmagents.routing.pool_state import Defer
from llmagents.runner.tracing import CallTracer

logger = logging.getLogger(__name__)

AnswerCheck = Callable[[ChatResponse], str | None]
"""Why an answer is unacceptable, or None when it is fine."""

PROBE_TIMEOUT = 10.0
"""Seconds an active health probe (a model listing) may take."""


def resolve_pool_urls(config: RunnerConfig) -> RunnerConfig:
    """The configuration with each onnx provider lacking a baseURL pointed at the sidecar.

    The sidecar serves OpenAI's API under ``/v1`` of ``onnxUrl``; the pod's environment has
    already set ``onnxUrl`` (``RunnerConfig.with_env``).
    """
    if config.onnx_url is None:
        return config
    base = config.onnx_url.rstrip("/") + "/v1"
    providers = [
        p.model_copy(update={"base_url": base})
        if p.type is ProviderType.ONNX and p.base_url is None
        else p
        for p in config.pool.providers
    ]
    return config.model_copy(
        update={"pool": config.pool.model_copy(update={"providers": providers})}
    )


def _limited(request: ChatRequest, attempt: Attempt) -> ChatRequest:
    """The request with the output limit the budget allows this attempt (never higher than
    the request's own)."""
    limit = attempt.max_output_tokens
    if limit is None or limit == request.max_tokens:
        return request
    return dataclasses.replace(request, max_tokens=limit)


@dataclass(slots=True)
class _FirstChunk:
    """A stream one provider has started: its iterator and its first chunk, not yet settled."""

    chunks: AsyncIterator[StreamChunk]
    first: StreamChunk
    usage: Usage | None = None


class OpenStream:
    """A started stream: iterate it for chunks of text and tool calls; it settles by itself.

    Iteration yields the chunks that carry text, tool-call deltas or reasoning; a ``ProviderError``
    raised from it means the provider failed mid-answer (already recorded against it).
    ``usage`` and ``finish_reason`` are known once iteration ended. ``aclose()`` ends it early (the client
    went away): the provider is counted as fine and charged for what it produced.
    """

    def __init__(
        self,
        manager: ProviderManager,
        result: CallResult[_FirstChunk],
        task: CallTask,
        model: str,
        *,
        tracer: CallTracer | None = None,
        span: Any = None,
    ) -> None:
        self.manager = manager
        self.result = result
        self._tracer = tracer
        self._span = span
        self.provider = result.provider
        self.model = model
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.cost = 0.0
        self._task = task
        self._text_chars = 0
        self._iterated = False

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._iterated:
            raise RuntimeError("an OpenStream can be iterated once")
        self._iterated = True
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[StreamChunk]:
        opened = self.result.value
        chunk: StreamChunk | None = opened.first
        try:
            while chunk is not None:
                if chunk.usage is not None:
                    self.usage = chunk.usage
                if chunk.finish_reason is not None:
                    self.finish_reason = chunk.finish_reason
                if chunk.text or chunk.tool_calls or chunk.reasoning or chunk.reasoning_end:
                    self._text_chars += (
                        len(chunk.text)
                        + len(chunk.reasoning)
                        + sum(len(d.arguments) + len(d.name or "") for d in chunk.tool_calls)
                    )
                    yield chunk
                chunk = await anext(opened.chunks, None)
        except ProviderError as error:
            self._settle_broken(error)
            self._end_span(error)
            raise
        self._settle_ok()

    def _estimate(self) -> Usage:
        """What the provider charges for this stream as far as we can tell without its usage:
        the prompt's estimate and the text received, at four characters a token."""
        return Usage(self._task.budget_input_tokens, max(1, math.ceil(self._text_chars / 4)))

    def _settle_broken(self, error: ProviderError) -> None:
        # The provider charges for what it generated before the break: never $0. Usage it
        # reported on the way (Anthropic sends input tokens first) counts where it says more.
        estimate = self._estimate()
        usage = estimate
        if self.usage is not None and usage_problem(self.usage) is None:
            usage = Usage(max(estimate.input_tokens, self.usage.input_tokens),
                          max(estimate.output_tokens, self.usage.output_tokens))  # fmt: skip
        self.usage = usage
        self.cost = self.manager.record_stream_failure(self.result, error, usage)
        logger.warning("provider %s: stream broke after %d characters; charged %d input and %d "
                       "output tokens ($%.6f)", self.provider, self._text_chars,
                       usage.input_tokens, usage.output_tokens, self.cost)  # fmt: skip

    def _settle_ok(self) -> None:
        if self.result.settled:
            return
        usage = self.usage
        if usage is None:
            # A server that streams no usage: charge an estimate rather than nothing, so that
            # the budget is never silently undercounted.
            usage = self._estimate()
            logger.warning(
                "provider %s streamed no usage; charging an estimate of %d tokens",
                self.provider,
                usage.total_tokens,
            )
            self.usage = usage
        try:
            self.cost = self.manager.record_usage(self.result, usage)
        except MalformedResponse as error:
            self.usage = None
            self._settle_broken(error)
            self._end_span(error)
            raise
        self._end_span(None)

    def _end_span(self, error: BaseException | None) -> None:
        if self._tracer is not None and self._span is not None:
            self._tracer.end_call(self._span, self.result, error=error)
            self._span = None

    async def aclose(self) -> None:
        """Stop reading; settle as a success with the tokens produced so far if not settled."""
        with contextlib.suppress(ProviderError):
            await self.result.value.chunks.aclose()  # type: ignore[attr-defined]
        if not self.result.settled:
            if self.usage is None:
                self.usage = self._estimate()
            with contextlib.suppress(MalformedResponse):  # settled as broken: nothing to tell
                self._settle_ok()


@dataclass(slots=True)
class PoolClient:
    """The manager and its adapters; ``complete`` and ``open_stream`` are the two calls."""

    manager: ProviderManager
    adapters: Mapping[str, ProviderAdapter]
    known_prices: Mapping[str, KnownPrice] = field(default_factory=dict)
    """Each provider's price and where it came from (spec, local, the price table)."""
    tracer: CallTracer | None = None
    """Spans of calls and attempts, when tracing is on (``runner.tracing``)."""
    _probing: set[str] = field(default_factory=set)

    def providers_for(self, model: str | None) -> frozenset[str] | None:
        """The providers a gateway request naming ``model`` may use (None: all of them)."""
        return selection.providers_for(self.manager.pool, model)

    @classmethod
    def build(
        cls,
        config: RunnerConfig,
        *,
        api_keys: Mapping[str, str | None],
        listener: EngineListener | None = None,
        clock: clocks.Clock = clocks.monotonic,
        wall_clock: clocks.WallClock = clocks.utc_now,
        sleep: clocks.Sleep = clocks.sleep,
        tracer: CallTracer | None = None,
        defer: Defer | None = None,
    ) -> PoolClient:
        """Adapters for every provider of the (URL-resolved) pool and a manager over them.

        Raises ``ConfigError`` when a remote provider has no key in the environment.
        """
        config = resolve_pool_urls(config)
        known = resolve_pool(config.pool, at=wall_clock())
        for name, price in known.items():
            if not price.known:
                logger.warning(
                    "agent %s: provider %s has no known price (%s); %s",
                    config.agent.name,
                    name,
                    price.detail,
                    "it is never called: the agent has a budget"
                    if config.budget is not None
                    else "its calls count at $0: the agent has no budget",
                )
        adapters = {
            spec.name: build_adapter(spec, api_key=api_keys.get(spec.name), agent=config.agent.name)
            for spec in config.pool.providers
        }
        manager = ProviderManager(
            config.pool,
            budget=config.budget,
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleep,
            listener=listener,
            agent=config.agent.name,
            prices=prices(known),
            defer=defer,
        )
        return cls(manager, adapters, known, tracer)

    async def complete(
        self, request: ChatRequest, task: CallTask, *, check: AnswerCheck | None = None
    ) -> CallResult[ChatResponse]:
        """One complete answer through the pool (fallback, retries, breakers, budget).

        ``check`` returns why an answer is unacceptable (or None): such an answer is an
        ``AnswerRejected`` of its provider, retried and fallen back from, its tokens charged.
        """

        tracer = self.tracer

        async def call(attempt: Attempt) -> ChatResponse:
            spec = attempt.provider
            limited = _limited(request, attempt)
            if tracer is None:
                answer = await self._adapter(spec).complete(limited, timeout=attempt.timeout)
                return _checked(spec.name, answer)
            with tracer.attempt(attempt) as span:
                answer = await self._adapter(spec).complete(limited, timeout=attempt.timeout)
                tracer.answered(span, answer.usage, answer.model)
                return _checked(spec.name, answer)

        def _checked(provider: str, answer: ChatResponse) -> ChatResponse:
            reason = check(answer) if check is not None else None
            if reason is not None:
                raise AnswerRejected(reason, provider=provider, usage=answer.usage)
            return answer

        if tracer is None:
            return await self.manager.execute(task, call)
        span = tracer.start_call(request, task, stream=False)
        result = await tracer.run_call(span, lambda: self.manager.execute(task, call))
        tracer.end_call(span, result)
        return result

    async def open_stream(self, request: ChatRequest, task: CallTask) -> OpenStream:
        """A stream from the first provider that produces a first chunk."""
        tracer = self.tracer

        async def call(attempt: Attempt) -> _FirstChunk:
            if tracer is None:
                return await first_chunk(attempt)
            with tracer.attempt(attempt) as span:
                opened = await first_chunk(attempt)
                tracer.answered(span, opened.first.usage)
                return opened

        async def first_chunk(attempt: Attempt) -> _FirstChunk:
            chunks = self._adapter(attempt.provider).stream(
                _limited(request, attempt), timeout=attempt.timeout
            )
            try:
                first = await anext(chunks)
            except BaseException:
                await chunks.aclose()  # type: ignore[attr-defined]
                raise
            return _FirstChunk(chunks, first)

        if tracer is None:
            result = await self.manager.execute(task, call)
            return OpenStream(self.manager, result, task, self.adapters[result.provider].model)
        span = tracer.start_call(request, task, stream=True)
        result = await tracer.run_call(span, lambda: self.manager.execute(task, call))
        return OpenStream(self.manager, result, task, self.adapters[result.provider].model,
                          tracer=tracer, span=span)  # fmt: skip

    async def run_due_probes(self) -> int:
        """Probe the providers whose health is stale (``health.probeInterval``); returns how many.

        A probe lists the provider's models: it proves URL, reachability and key without
        spending tokens.
        """
        due = [s for s in self.manager.due_probes() if s.name not in self._probing]
        if due:
            await asyncio.gather(*(self._probe(spec) for spec in due))
        return len(due)

    async def _probe(self, spec: ProviderSpec) -> None:
        self._probing.add(spec.name)
        began = time.monotonic()
        try:
            await self._adapter(spec).list_models(
                timeout=min(PROBE_TIMEOUT, spec.timeout.total_seconds())
            )
        except ProviderError as error:
            self.manager.record_probe(
                spec.name, ok=False, latency=time.monotonic() - began, error=error
            )
        else:
            self.manager.record_probe(spec.name, ok=True, latency=time.monotonic() - began)
        finally:
            self._probing.discard(spec.name)

    def _adapter(self, spec: ProviderSpec) -> ProviderAdapter:
        return self.adapters[spec.name]

    async def aclose(self) -> None:
        await asyncio.gather(*(a.aclose() for a in self.adapters.values()))
