"""The loopback HTTP server shared by every fake provider: fault injection, counters, admin.

A protocol subclass says how its API reads a request and writes answers, streams and errors;
this base carries out the ``FaultCore``'s decision for each call the same way for all of them:
latency, hangs, connection resets, error statuses, broken, malformed or truncated bodies and
streams. The admin endpoints under ``/_fake/`` let another process (the demo, an e2e test)
read the counters and change the faults of a running fake.

Run it inside a test's event loop (``async with FakeAnthropic(...) as fake``) or beside
synchronous code in its own thread (``fake.start_in_thread()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from email.utils import formatdate
from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import web
from pydantic import ValidationError

from llmagents.testing.fake_providers.behaviour import Answer, ReceivedCall, make_answer
from llmagents.testing.fake_providers.faults import (
    FakeStats,
    Fault,
    FaultCore,
    FaultKind,
    FaultPlan,
)
from llmagents.testing.fake_providers.threaded import ThreadedFake

logger = logging.getLogger(__name__)


class Reject(Exception):
    """The fake refuses a request the way the real API would (auth, model, body)."""

    def __init__(self, status: int, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


class FakeProviderServer(ABC):
    """One fake provider on 127.0.0.1; see the module docstring for how to run it."""

    protocol: ClassVar[str]
    default_models: ClassVar[tuple[str, ...]]
    api_prefix: ClassVar[str] = ""
    """Path that ``base_url`` adds to the server root (``/v1`` for OpenAI)."""
    overload_status: ClassVar[int] = 503
    tool_id_prefix: ClassVar[str] = ""
    """How the protocol's tool-call ids begin; empty: its calls carry no id."""

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        models: Iterable[str] | None = None,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        access_log: bool = False,
    ) -> None:
        self.api_key = api_key
        self.models = tuple(models) if models else self.default_models
        self.core = FaultCore(faults)
        self.host = host
        self.port = port
        self._access_log = access_log
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._ids = 0
        self.last_call: ReceivedCall | None = None
        """What the latest chat request that was read asked for."""

    # -- protocol hooks ----------------------------------------------------------------

    @abstractmethod
    def _routes(self) -> list[web.RouteDef]:
        """The protocol's chat and model-listing routes."""

    @abstractmethod
    async def _parse(self, request: web.Request) -> ReceivedCall:
        """Validate a chat request as the real API does; ``Reject`` when it would refuse it."""

    @abstractmethod
    def _error_body(
        self, status: int, message: str | None, *, reason: str | None, fault: Fault | None
    ) -> Any:
        """The protocol's error JSON for ``status``: ``message`` overrides the default text,
        ``reason`` names a protocol-specific refinement (an error code, a detail reason),
        ``fault`` is the injected fault that caused it, if any."""

    @abstractmethod
    def _answer_body(self, call: ReceivedCall, answer: Answer) -> Any:
        """A complete answer in the protocol's shape."""

    @abstractmethod
    def _stream_events(self, call: ReceivedCall, answer: Answer) -> list[tuple[bytes, bool]]:
        """Encoded SSE events of a streamed answer, each flagged if it carries text."""

    @abstractmethod
    def _sse(self, event: str, data: str) -> bytes:
        """One SSE event in the protocol's framing."""

    @abstractmethod
    def _stream_error_event(self) -> bytes:
        """The in-stream error the protocol sends when it fails mid-answer."""

    def _error_headers(self, fault: Fault | None) -> dict[str, str]:
        if fault is None or fault.retry_after is None:
            return {}
        if fault.retry_after_http_date:
            return {"retry-after": formatdate(time.time() + fault.retry_after, usegmt=True)}
        return {"retry-after": f"{fault.retry_after:g}"}

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root URL of the server (admin endpoints live under ``/_fake/``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client configures as the provider's base URL."""
        return self.url + self.api_prefix

    @property
    def faults(self) -> FaultPlan:
        return self.core.plan

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        self.core.plan = plan

    @property
    def stats(self) -> FakeStats:
        return self.core.stats

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(self._routes())
        app.add_routes(
            [
                web.get("/_fake/stats", self._admin_stats),
                web.get("/_fake/faults", self._admin_get_faults),
                web.put("/_fake/faults", self._admin_put_faults),
                web.post("/_fake/faults", self._admin_post_faults),
                web.post("/_fake/reset", self._admin_reset),
            ]
        )
        self._closing = asyncio.Event()
        kwargs: dict[str, Any] = {} if self._access_log else {"access_log": None}
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, **kwargs)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        logger.info("fake %s provider listening on %s", self.protocol, self.base_url)

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_in_thread(self) -> ThreadedFake:
        """Serve from a daemon thread with its own event loop, for synchronous callers."""
        return ThreadedFake(self)

    # -- the chat call -----------------------------------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _make_answer(self, call: ReceivedCall) -> Answer:
        return make_answer(call, protocol=self.protocol, id_prefix=self.tool_id_prefix)

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        """Run one chat call, the route handler of every protocol's chat endpoint."""
        core = self.core
        core.stats.requests += 1
        call: ReceivedCall | None = None
        if not core.outage_active():
            try:
                call = self.last_call = await self._parse(request)
            except Reject as rejected:
                core.stats.outcomes[f"rejected_{rejected.status}"] += 1
                return self._error_response(
                    rejected.status, rejected.message, reason=rejected.reason
                )
        fault, label = core.decide()
        delay = core.delay()
        if delay:
            await asyncio.sleep(delay)
        core.stats.outcomes[label] += 1
        if call is not None and call.stream:
            core.stats.streams += 1
        kind = fault.kind if fault is not None else FaultKind.OK
        if kind is FaultKind.HANG:
            await self._hang()
            return self._abort(request)
        if kind is FaultKind.RESET:
            return self._abort(request)
        if kind is FaultKind.STATUS:
            assert fault is not None and fault.status is not None
            return self._error_response(fault.status, None, fault)
        if call is None or (kind is FaultKind.STREAM_ERROR and not call.stream):
            return self._error_response(self.overload_status, None)
        answer = self._make_answer(call)
        if kind is FaultKind.OK:
            core.stats.input_tokens += call.input_tokens
            core.stats.output_tokens += answer.output_tokens
        if call.stream:
            return await self._send_stream(request, call, answer, kind)
        return await self._send_plain(request, call, answer, kind)

    async def _send_plain(
        self, request: web.Request, call: ReceivedCall, answer: Answer, kind: FaultKind
    ) -> web.StreamResponse:
        if kind is FaultKind.WRONG_SHAPE:
            return web.json_response({"unexpected": "shape"})
        body = json.dumps(self._answer_body(call, answer)).encode()
        if kind is FaultKind.MALFORMED:
            body = b'{"id": fake, <html>upstream error</html>'
        elif kind is FaultKind.TRUNCATED:
            body = body[: len(body) // 2]
        elif kind is FaultKind.BREAK:
            response = web.StreamResponse(
                headers={"content-type": "application/json", "content-length": str(len(body))}
            )
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
            return self._abort(request, response)
        return web.Response(body=body, content_type="application/json")

    async def _send_stream(
        self, request: web.Request, call: ReceivedCall, answer: Answer, kind: FaultKind
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
            }
        )
        await response.prepare(request)
        pause = self.core.plan.chunk_delay_ms / 1000.0
        cut_after = self.core.plan.stream_break_after
        sent = 0
        for data, has_text in self._stream_events(call, answer):
            if has_text and sent >= cut_after and kind is not FaultKind.OK:
                if kind is FaultKind.BREAK:
                    return self._abort(request, response)
                if kind is FaultKind.STREAM_ERROR:
                    await response.write(self._stream_error_event())
                elif kind is FaultKind.MALFORMED:
                    await response.write(self._sse("content_block_delta", "{not json"))
                elif kind is FaultKind.TRUNCATED:
                    await response.write(data[: len(data) // 2])
                elif kind is FaultKind.WRONG_SHAPE:
                    await response.write(self._sse("content_block_delta", '{"unexpected": 1}'))
                break
            await response.write(data)
            if has_text:
                sent += 1
                if pause:
                    await asyncio.sleep(pause)
        await response.write_eof()
        return response

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.core.plan.hang_seconds)

    def _abort(
        self, request: web.Request, response: web.StreamResponse | None = None
    ) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        return response if response is not None else web.Response()

    def _error_response(
        self,
        status: int,
        message: str | None,
        fault: Fault | None = None,
        *,
        reason: str | None = None,
    ) -> web.Response:
        return web.json_response(
            self._error_body(status, message, reason=reason, fault=fault),
            status=status,
            headers=self._error_headers(fault),
        )

    # -- admin -------------------------------------------------------------------------

    async def _admin_stats(self, request: web.Request) -> web.Response:
        body = self.core.stats.to_dict() | {
            "protocol": self.protocol,
            "uptime_s": round(self.core.elapsed(), 3),
            "outage_active": self.core.outage_active(),
        }
        return web.json_response(body)

    async def _admin_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.core.plan.model_dump(mode="json"))

    async def _admin_put_faults(self, request: web.Request) -> web.Response:
        return await self._admin_change(request, replace=True)

    async def _admin_post_faults(self, request: web.Request) -> web.Response:
        return await self._admin_change(request, replace=False)

    async def _admin_change(self, request: web.Request, *, replace: bool) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise TypeError("the body must be a JSON object of FaultPlan fields")
            if replace:
                self.core.plan = FaultPlan.model_validate(changes)
            else:
                self.core.update(changes)
        except (TypeError, ValueError, ValidationError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        logger.info(
            "fake %s provider: faults now %s",
            self.protocol,
            self.core.plan.model_dump_json(exclude_defaults=True),
        )
        return web.json_response(self.core.plan.model_dump(mode="json"))

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.core.reset_stats()
        return web.json_response(self.core.stats.to_dict())
