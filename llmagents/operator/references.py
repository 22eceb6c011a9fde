"""What an agent refers to, resolved: its pool, and the Secret key of each of the pool's providers.

An agent is only as ready as what it names: the ProviderPool must exist and be valid, and
every provider's ``secretRef`` must point at a Secret that holds the key, with a value that
can be sent as an API key. The outcome is a ``Resolution`` the phase logic turns into the
``PoolResolved`` condition. Secrets are not watched (the operator may not list them all);
their key names are fetched on demand and cached briefly, one request per Secret however
many agents ask at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.operator.phase import RESOLVED, Resolution

SECRET_REASONS = frozenset({"SecretNotFound", "SecretKeyMissing", "SecretKeyInvalid"})
"""Resolutions that a Secret created or fixed later can clear (they are retried on a timer)."""

SecretLookup = Callable[[str, str], Awaitable[dict[str, str | None] | None]]
"""(namespace, name) -> each key of the Secret with what is wrong with its value (None if
nothing), or None when the Secret does not exist."""


class SecretKeys:
    """A Secret's key names, cached for ``ttl`` seconds; concurrent askers share one request."""

    def __init__(self, lookup: SecretLookup, *, ttl: float) -> None:
        self.lookup = lookup
        self.ttl = ttl
        self._cached: dict[
            tuple[str, str], tuple[float, asyncio.Future[dict[str, str | None] | None]]
        ] = {}

    async def get(self, namespace: str, name: str) -> dict[str, str | None] | None:
        loop = asyncio.get_running_loop()
        cached = self._cached.get((namespace, name))
        if cached is not None and cached[0] > loop.time():
            return await asyncio.shield(cached[1])
        future: asyncio.Future[dict[str, str | None] | None] = loop.create_future()
        self._cached[(namespace, name)] = (loop.time() + self.ttl, future)
        try:
            result = await self.lookup(namespace, name)
        except Exception as exc:
            self._cached.pop((namespace, name), None)
            future.set_exception(exc)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        future.set_result(result)
        return result


async def resolve(agent: AgentObject, pool: PoolObject | None, secrets: SecretKeys) -> Resolution:
    """The first thing missing or wrong among the agent's pool and its providers' keys."""
    if pool is None:
        return Resolution(
            "PoolNotFound", f"ProviderPool {agent.pool_name!r} does not exist in this namespace"
        )
    if pool.spec is None:
        return Resolution("PoolInvalid", f"ProviderPool {pool.name!r}: {pool.error}")
    for provider in pool.spec.providers:
        ref = provider.secret_ref
        if ref is None:
            continue
        keys = await secrets.get(agent.namespace, ref.name)
        if keys is None:
            return Resolution(
                "SecretNotFound",
                f"Secret {ref.name!r} for provider {provider.name!r} does not exist",
            )
        if ref.key not in keys:
            return Resolution(
                "SecretKeyMissing",
                f"Secret {ref.name!r} has no key {ref.key!r} for provider {provider.name!r}",
            )
        problem = keys[ref.key]
        if problem is not None:
            return Resolution(
                "SecretKeyInvalid",
                f"the API key of provider {provider.name!r} in Secret {ref.name!r}, key "
                f"{ref.key!r} {problem}; store the key without it",
            )
    return RESOLVED
