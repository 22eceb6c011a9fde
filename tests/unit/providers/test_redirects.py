"""A provider's redirect is refused, never followed: the request carries the API key.

The redirect points at a real fake provider of the same protocol, which would answer a
client that followed it; that it sees no request at all is the point.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from llmagents.errors import BadRequest

from .conftest import API_KEY, REQUEST, Pair


@pytest.fixture(params=[301, 302, 303, 307, 308])
async def redirector(pair: Pair, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A server answering every request with a redirect to the same path at the fake."""
    status: int = request.param
    target = pair.fake.url

    async def redirect(incoming: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": target + incoming.path_qs})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}{pair.fake.api_prefix}"
    finally:
        await runner.cleanup()


async def test_a_redirect_is_refused_and_the_key_never_follows_it(
    pair: Pair, redirector: str
) -> None:
    adapter = pair.adapter_with(base_url=redirector)
    try:
        with pytest.raises(BadRequest, match="redirect") as plain:
            await adapter.complete(REQUEST, timeout=5)
        with pytest.raises(BadRequest, match="redirect"):
            async for _ in adapter.stream(REQUEST, timeout=5):
                pass
        with pytest.raises(BadRequest, match="redirect"):
            await adapter.list_models(timeout=5)
    finally:
        await adapter.aclose()
    message = str(plain.value)
    assert "never followed" in message and pair.fake.url in message
    assert API_KEY not in message
    assert pair.fake.stats.requests == 0
