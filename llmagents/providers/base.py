"""The adapter contract every provider protocol shares.

An adapter turns a provider-neutral ``ChatRequest`` into one HTTP call and the answer back into
a ``ChatResponse`` (or a stream of ``StreamChunk``), and every way that can fail into exactly
one error of ``llmagents.errors``. Subclasses only describe their wire format: endpoint,
headers, payload, answer parsing, stream decoding and error bodies. The HTTP client (aiohttp,
with its limits, proxy and retry rules) is ``transport.Transport``; timeouts and the
translation of transport failures live here, once.

Timeouts: the ``timeout`` of each call bounds the whole attempt, waiting for a free connection
included, with one asyncio deadline, so a server that trickles bytes cannot stretch an attempt
past it; the transport has its own connect timeout within it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import aiohttp
from pydantic_core import to_json
from yarl import URL

from llmagents.chat import ChatRequest, ChatResponse, StreamChunk
from llmagents.embeddings import EmbeddingRequest, Embeddings
from llmagents.errors import BadRequest, ProviderError, RequestNotEncodable
from llmagents.providers.embeddings import embeddings_call, parse_embeddings
from llmagents.providers.mapping import Headers, decode_json, missing, transport_error
from llmagents.providers.sse import SseEvent, iter_lines, iter_sse
from llmagents.providers.transport import Deadline, Transport

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to establish a connection; a provider that cannot be reached fails fast."""
DEFAULT_MAX_CONNECTIONS = 32
"""Requests one adapter has in flight to its provider at most (one connection each)."""
DEFAULT_MAX_BODY = 32 * 1024 * 1024
"""Bytes of one answer's body, streamed or not, beyond which it is refused as malformed:
ample for any chat answer (inline images included), far below what would hurt the runner."""


def _json(document: Any) -> bytes:
    """Strict JSON (no ``NaN`` or ``Infinity``, no lone surrogates), or ``RequestNotEncodable``:
    the front doors refuse such requests first; this is the last line, for every caller.

    pydantic-core's encoder first (a few times faster than the standard library's); it writes
    ``NaN`` and ``Infinity`` where strict JSON has none, so a document showing either word
    (or one it cannot encode) goes to ``json.dumps``, which refuses them."""
    try:
        encoded = to_json(document)
    except ValueError:  # PydanticSerializationError, a lone surrogate say
        pass
    else:
        if b"NaN" not in encoded and b"Infinity" not in encoded:
            return encoded
    try:
        return json.dumps(
            document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (ValueError, UnicodeEncodeError) as exc:
        raise RequestNotEncodable(f"the request cannot be sent as strict JSON: {exc}") from None


def _is_success(status: int) -> bool:
    return 200 <= status < 300


class StreamDecoder(Protocol):
    """Per-stream state that turns one protocol's events into chunks."""

    done: bool
    """True once the protocol's terminal event arrived; nothing after it is read."""

    def feed(self, event: SseEvent) -> StreamChunk | None:
        """A chunk for the caller, ``None`` for bookkeeping events; raises ``ProviderError``."""
        ...

    def finish(self) -> StreamChunk:
        """The final chunk (usage, finish reason); ``MalformedResponse`` if the answer was cut."""
        ...


class ProviderAdapter(ABC):
    """Calls one model at one provider over a pooled HTTP client.

    Use as an async context manager or call ``aclose()``. The client session is opened by the
    first call, on the running event loop, so an adapter may be built outside one.
    ``stream()`` is an async generator: its first chunk comes only after the HTTP status was
    checked, so a refused call raises the taxonomy error from the first ``__anext__``; a
    stream that breaks mid-answer raises from the iterator after the chunks already yielded;
    the last chunk has no text and carries ``usage`` and ``finish_reason``. Close it early
    with ``contextlib.aclosing``. Finish reasons are normalised to OpenAI's words (``stop``,
    ``length``, ``content_filter``, ``tool_calls``) so that every consumer reads one vocabulary.
    """

    protocol: ClassVar[str]

    def __init__(
        self,
        *,
        name: str,
        model: str,
        base_url: str,
        api_key: str | None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_body: int = DEFAULT_MAX_BODY,
        agent: str | None = None,
    ) -> None:
        self.name = name
        self.agent = agent
        """The agent whose calls these are, for log lines (``None`` outside a runner)."""
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.max_connections = max_connections
        self.max_body = max_body
        # Absolute URLs parsed once, not on every request.
        self._chat_urls = {
            stream: URL(self.base_url + self._endpoint(stream=stream)) for stream in (False, True)
        }
        self._http = Transport(
            provider=name, base_url=self.base_url, headers=self._auth_headers(api_key),
            connect_timeout=connect_timeout, max_connections=max_connections, max_body=max_body,
        )  # fmt: skip

    # -- the wire format, per protocol -------------------------------------------------

    @abstractmethod
    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers sent with every request: credential, API version."""

    @abstractmethod
    def _endpoint(self, *, stream: bool) -> str:
        """Path of the chat call, relative to the base URL."""

    @abstractmethod
    def _payload(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body of the chat call."""

    @abstractmethod
    def _parse_answer(self, data: Any) -> ChatResponse:
        """A complete answer from its JSON; ``MalformedResponse`` when the shape is wrong."""

    def _answer_of(self, body: bytes) -> ChatResponse:
        """A complete answer from its body; a protocol may read it in one pass instead."""
        return self._parse_answer(decode_json(body, provider=self.name))

    @abstractmethod
    def _stream_decoder(self) -> StreamDecoder:
        """Fresh state for decoding one stream."""

    @abstractmethod
    def _map_error(self, status: int, headers: Headers, body: bytes) -> ProviderError:
        """The taxonomy error for a non-2xx answer, read from the protocol's error body."""

    @abstractmethod
    def _models_endpoint(self) -> str:
        """Path of the model listing."""

    def _parse_models(self, data: Any) -> list[str]:
        """Model names from the listing's JSON: ``data[].id`` in OpenAI's and Anthropic's."""
        try:
            return [str(m["id"]) for m in data["data"]]
        except (KeyError, TypeError):
            raise missing("data[].id", provider=self.name) from None

    # -- calls ------------------------------------------------------------------------

    async def complete(self, request: ChatRequest, *, timeout: float) -> ChatResponse:
        """One non-streaming chat call, bounded by ``timeout`` seconds in total."""
        payload = _json(self._payload(request, stream=False))
        body = await self._send("POST", self._chat_urls[False], timeout=timeout, body=payload)
        return self._answer_of(body)

    async def stream(self, request: ChatRequest, *, timeout: float) -> AsyncIterator[StreamChunk]:
        """One streaming chat call; ``timeout`` bounds the whole stream, not each read."""
        deadline = asyncio.get_running_loop().time() + timeout
        payload = _json(self._payload(request, stream=True))
        decoder = self._stream_decoder()
        slots = await self._http.slot(deadline)
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.callback(slots.release)
                with Deadline(deadline):
                    response = await stack.enter_async_context(
                        self._http.request("POST", self._chat_urls[True], payload)
                    )
                    if not _is_success(response.status):
                        body = await self._http.read(response)
                        raise self._refused(response.status, response.headers, body)
                events = await stack.enter_async_context(
                    contextlib.aclosing(iter_sse(iter_lines(self._http.chunks(response))))
                )
                while not decoder.done:
                    # The deadline never spans a yield: a slow consumer is not the provider.
                    with Deadline(deadline):
                        event = await anext(events, None)
                    if event is None:
                        break
                    chunk = decoder.feed(event)
                    if chunk is not None:
                        yield chunk
                yield decoder.finish()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(exc, provider=self.name) from None

    async def embed(self, request: EmbeddingRequest, *, model: str, timeout: float) -> Embeddings:
        """One embeddings call of ``model`` (the spec's ``embeddings.model``); ``ConfigError``
        for a protocol that has none."""
        path, payload = embeddings_call(self, request, model)
        body = await self._send("POST", URL(self.base_url + path), timeout=timeout,
                                body=_json(payload))  # fmt: skip
        return parse_embeddings(self, decode_json(body, provider=self.name), request, model)

    async def list_models(self, *, timeout: float = 10.0) -> list[str]:
        """Names of the models the credential may use: a cheap check of URL and key."""
        url = URL(self.base_url + self._models_endpoint())
        body = await self._send("GET", url, timeout=timeout, body=None)
        return self._parse_models(decode_json(body, provider=self.name))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )

    # -- machinery --------------------------------------------------------------------

    def _refused(self, status: int, headers: Headers, body: bytes) -> ProviderError:
        """The taxonomy error for a non-2xx answer; a redirect is a misconfiguration.

        Redirects are never followed: the request carries the API key, and a base URL that
        redirects sends it wherever the answer says. The error names where it pointed
        (without its query, which may hold anything) so that the base URL can be fixed.
        """
        if 300 <= status < 400:
            location = URL(headers.get("location", ""))
            where = str(location.with_query(None).with_fragment(None)) or "nowhere"
            return BadRequest(
                f"the provider answered with a redirect (HTTP {status}) to {where}; redirects "
                "are never followed, since the request carries the API key: set baseURL to "
                "where the API really is",
                provider=self.name,
                status_code=status,
            )
        return self._map_error(status, headers, body)

    async def _send(self, method: str, url: URL, *, timeout: float, body: bytes | None) -> bytes:
        """The body of a 2xx answer; the taxonomy error for anything else."""
        deadline = asyncio.get_running_loop().time() + timeout
        slots = await self._http.slot(deadline)
        try:
            with Deadline(deadline):
                async with self._http.request(method, url, body) as response:
                    data = await self._http.read(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = transport_error(exc, provider=self.name)
            logger.debug("provider %s: %s", self.name, error)
            raise error from None
        finally:
            slots.release()
        if not _is_success(response.status):
            error = self._refused(response.status, response.headers, data)
            logger.debug("provider %s: %s", self.name, error)
            raise error
        return data
