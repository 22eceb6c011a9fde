"""Level-triggered reconciliation of LLMAgents, and folding of ProviderPool status.

Whatever event arrives (an agent's spec or runner status, a pool change, a Deployment edited
or deleted, a deadline, a resync that found a child missing), the reconciler recomputes the
whole desired state of the agent from what is known now and writes only the difference:

- children are compared by the hash stamped on each manifest (builders.children) against
  what is known of them (children.Children), so a converged agent costs no request at all,
  and a restarted operator writes nothing that is already right;
- the operator's half of the status is compared with its own share of the live one and
  with what this process last wrote (status_writes).

Agents and pools are read from kopf's indexes (``Views``), which kopf fills completely
before the first handler runs; children are listed once before the first write and again
every resync period; the only GET is a Secret (its key names, and whether each value can
be an API key), cached briefly (references). Per-agent locks serialise the several
triggers of one agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from pydantic import ValidationError

from llmagents.api.agent import LLMAgentSpec
from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.pool_status import ProviderPoolStatus
from llmagents.operator.builders import children
from llmagents.operator.children import (
    CHILD_KINDS,
    ChildKey,
    Children,
    Desired,
    child_key,
    is_subset,
    owner,
)
from llmagents.operator.cluster_api import Api
from llmagents.operator.events import OperatorEvents
from llmagents.operator.metrics import AgentGauges
from llmagents.operator.objects import AgentKey, AgentObject, PoolKey, PoolObject, SpecCache
from llmagents.operator.ownership import own_conditions
from llmagents.operator.phase import RESOLVED, CondSpec, Verdict, decide
from llmagents.operator.pool_status import pool_status, providers_report
from llmagents.operator.prices import PoolPrices, price_condition, unknown_prices
from llmagents.operator.references import SECRET_REASONS, SecretKeys, resolve
from llmagents.operator.scheduler import Scheduler
from llmagents.operator.settings import OperatorSettings
from llmagents.operator.status_writes import StatusWrites, agent_status
from llmagents.retrying import Backoff

logger = logging.getLogger(__name__)

SECRET_RETRY = 15.0
POOL_FOLD_DELAY = 1.0
RESYNC_SECONDS = 300.0
_RETRY = Backoff(first=1.0, cap=60.0)


class Views(Protocol):
    """Read access to the watched objects, as kopf's indexes hold them."""

    def agent(self, key: AgentKey) -> Mapping[str, Any] | None: ...

    def pool(self, key: PoolKey) -> Mapping[str, Any] | None: ...

    def agents_of_pool(self, key: PoolKey) -> list[AgentKey]: ...


class Reconciler:
    """Turns the known state of agents and pools into the fewest writes that realise it."""

    def __init__(
        self,
        api: Api,
        views: Views,
        settings: OperatorSettings,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        secret_ttl: float = 10.0,
        namespaces: Sequence[str] = (),
        resync_seconds: float = RESYNC_SECONDS,
        events: OperatorEvents | None = None,
        gauges: AgentGauges | None = None,
    ) -> None:
        self.api = api
        self.events = events
        self.gauges = gauges
        self.views = views
        self.settings = settings
        self.clock = clock
        self.resync_seconds = resync_seconds
        self.children = Children(api, namespaces=namespaces)
        self._locks: dict[AgentKey, asyncio.Lock] = {}
        # Per agent: the inputs its children were built from, and the children.
        self._built: dict[AgentKey, tuple[tuple[Any, ...], dict[ChildKey, Desired]]] = {}
        self.secrets = SecretKeys(api.secret_keys, ttl=secret_ttl)
        self.statuses = StatusWrites(api)
        self._failures: dict[AgentKey, int] = {}
        self._pool_generations: dict[PoolKey, int] = {}
        self._specs = SpecCache()
        self._prices = PoolPrices()
        self._agents = Scheduler(self._scheduled_agent)
        self._pools = Scheduler(self._scheduled_pool)
        self._resyncs = Scheduler(self._scheduled_resync)
        self._resyncing = False
        self._preload: asyncio.Task[None] | None = None

    def start(self) -> None:
        """List the children now, while kopf lists the agents, instead of when the first
        reconcile needs them: after a restart that is every agent at once, each waiting
        for the listing while holding its objects. A failed listing is tried again by the
        first reconcile."""
        self._preload = asyncio.create_task(self._preload_children())

    async def _preload_children(self) -> None:
        try:
            await self._children_known()
        except Exception as exc:
            logger.warning("listing the children failed, retrying on the first reconcile: %s",
                           exc)  # fmt: skip

    # -- agents ---------------------------------------------------------------------------

    async def reconcile_agent(self, key: AgentKey) -> None:
        """Bring one agent's children and status in line; reschedules itself on failure."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            body = self.views.agent(key)
            if body is None:
                self.forget_agent(key)
                return
            agent = AgentObject.from_body(body, self._specs)
            try:
                delay = await self._reconcile(agent)
            except Exception as exc:
                failures = self._failures.get(key, 0)
                self._failures[key] = failures + 1
                delay = _RETRY.delay(failures)
                logger.warning(
                    "agent %s/%s: reconcile failed, retrying in %.0fs: %s",
                    key[0], key[1], delay, exc,
                )  # fmt: skip
            else:
                self._failures.pop(key, None)
            if delay is not None:
                self._agents.schedule(key, delay)
            if agent.pool_name:
                self._pools.schedule((agent.namespace, agent.pool_name), POOL_FOLD_DELAY)

    async def _reconcile(self, agent: AgentObject) -> float | None:
        pool = self._pool_object(agent)
        resolution = await resolve(agent, pool, self.secrets) if agent.spec else RESOLVED
        now = self.clock()
        verdict = decide(agent, resolution, now, price=self._price_condition(agent, pool))
        if self.gauges is not None:
            self.gauges.observe(agent.namespace, agent.name, verdict.phase,
                                agent.status.last_checkpoint)  # fmt: skip
        if verdict.replicas is not None and pool is not None:
            desired = self._build(agent, pool, verdict.replicas)
            await self._children_known()
            await self.children.apply_all(desired.values())
        await self._write_agent_status(agent, pool, verdict, now)
        if resolution.reason in SECRET_REASONS:
            return SECRET_RETRY
        return verdict.requeue_after

    def _build(
        self, agent: AgentObject, pool: PoolObject, replicas: int
    ) -> dict[ChildKey, Desired]:
        # Most events (runner reports, children's status) change nothing the manifests
        # depend on; building them is the costliest step of a reconcile, so reuse them.
        inputs = (agent.uid, agent.generation, pool.uid, pool.generation, replicas)
        cached = self._built.get(agent.key)
        if cached is not None and cached[0] == inputs:
            return cached[1]
        built = (Desired.of(m) for m in children(agent, pool, self.settings, replicas=replicas))
        desired = {child.key: child for child in built}
        self._built[agent.key] = (inputs, desired)
        return desired

    def _price_condition(self, agent: AgentObject, pool: PoolObject | None) -> CondSpec | None:
        """The pool's ``PriceUnknown`` as it applies to ``agent`` (whose budget decides the
        rule); None while the pool is missing or invalid."""
        known = self._prices.of(pool) if pool is not None else None
        if known is None or agent.spec is None:
            return None
        return price_condition(unknown_prices(known), budget=agent.spec.budget is not None)

    def _pool_object(self, agent: AgentObject) -> PoolObject | None:
        if agent.pool_name is None:
            return None
        body = self.views.pool((agent.namespace, agent.pool_name))
        return PoolObject.from_body(body, self._specs) if body is not None else None

    async def _write_agent_status(
        self, agent: AgentObject, pool: PoolObject | None, verdict: Verdict, now: datetime
    ) -> None:
        desired, current = agent_status(agent, pool, verdict, now)
        if await self.statuses.write("LLMAgent", agent.key, desired, current):
            logger.info("agent %s/%s: phase %s", agent.namespace, agent.name, verdict.phase.value)
            if self.events is not None:
                self.events.agent_phase(agent, agent.status.phase, verdict.phase)

    def forget_agent(self, key: AgentKey) -> None:
        """Drop what is remembered of a deleted agent; its children go by garbage collection."""
        self._agents.cancel(key)
        if self.gauges is not None:
            self.gauges.forget(*key)
        self._locks.pop(key, None)
        self._failures.pop(key, None)
        self.statuses.forget("LLMAgent", key)
        self._specs.forget(LLMAgentSpec, key)
        _, desired = self._built.pop(key, ((), {}))
        self.children.forget(desired)

    async def _scheduled_agent(self, key: Hashable) -> None:
        await self.reconcile_agent(cast(AgentKey, key))

    # -- children -------------------------------------------------------------------------

    async def _children_known(self) -> None:
        """Learn what children exist before the first write; then start the resyncs."""
        await self.children.load()
        if not self._resyncing and self.resync_seconds > 0:
            self._resyncing = True
            # One kind at a time, spread over the period, so that no moment lists them all.
            for i, kind in enumerate(CHILD_KINDS):
                self._resyncs.schedule(kind, self._resync_delay() * (i + 1) / len(CHILD_KINDS))

    def _resync_delay(self) -> float:
        # Jittered, so that replicas and restarts do not fall into step.
        return self.resync_seconds * random.uniform(0.9, 1.1)

    async def _scheduled_resync(self, key: Hashable) -> None:
        kind = cast(str, key)
        desired = {
            key: (agent, child)
            for agent, (_, built) in self._built.items()
            for key, child in built.items()
            if key[0] == kind
        }
        try:
            repair = await self.children.audit(kind, desired)
        except Exception as exc:
            logger.warning("resync of %s failed, retrying: %s", kind, exc)
            repair = set()
        self._resyncs.schedule(kind, self._resync_delay())
        for agent in repair:
            self._agents.schedule(agent, 0)

    async def child_changed(self, body: Mapping[str, Any], event_type: str | None) -> None:
        """A watched child changed or went away: repair it if it drifted from the desired."""
        agent = owner(body)
        key = child_key(body)
        if event_type == "DELETED":
            self.children.seen(key, None)
            if self.views.agent(agent) is not None:
                logger.info("agent %s/%s: %s %s was deleted", *agent, key[0], key[2])
                await self.reconcile_agent(agent)
            return
        self.children.seen(key, body)
        if self.views.agent(agent) is None:
            return
        if agent not in self._built:
            await self.reconcile_agent(agent)
        desired = self._built[agent][1].get(key) if agent in self._built else None
        if desired is not None and not is_subset(desired.manifest(), body):
            logger.info("agent %s/%s: %s %s drifted; repairing", *agent, key[0], key[2])
            self.children.drifted(key)
            await self.reconcile_agent(agent)

    # -- pools ----------------------------------------------------------------------------

    def pool_changed(self, key: PoolKey, generation: int | None) -> None:
        """A pool appeared, changed or went away: re-reconcile its agents if its spec did."""
        if self._pool_generations.get(key) != generation:
            if generation is None:
                self._specs.forget(ProviderPoolSpec, key)
                self._prices.forget(key)
                self._pool_generations.pop(key, None)
                self.statuses.forget("ProviderPool", key)
            else:
                self._pool_generations[key] = generation
            for agent in self.views.agents_of_pool(key):
                self._agents.schedule(agent, 0)
        if generation is not None:
            self._pools.schedule(key, POOL_FOLD_DELAY)

    def agent_gone(self, key: AgentKey, pool: str | None) -> None:
        self.forget_agent(key)
        if pool:
            self._pools.schedule((key[0], pool), POOL_FOLD_DELAY)

    async def fold_pool(self, key: PoolKey) -> None:
        body = self.views.pool(key)
        if body is None:
            self.statuses.forget("ProviderPool", key)
            return
        pool = PoolObject.from_body(body, self._specs)
        agents = self.views.agents_of_pool(key)
        reports = [providers_report(self.views.agent(a)) for a in agents]
        try:
            live = ProviderPoolStatus.model_validate(pool.raw_status)
        except ValidationError:
            live = ProviderPoolStatus()
        desired = pool_status(
            pool.spec,
            pool.error,
            generation=pool.generation,
            agents=len(agents),
            reports=reports,
            previous=live.conditions,
            now=self.clock(),
            prices=self._prices.of(pool),
        )
        current = live.model_copy(
            update={"conditions": own_conditions(live.conditions, pool.managed_fields)}
        )
        if await self.statuses.write("ProviderPool", key, desired, current) and self.events:
            self.events.pool_providers(pool, live.providers, desired.providers or [])
            self.events.pool_prices(pool, live.conditions, desired.conditions)

    async def _scheduled_pool(self, key: Hashable) -> None:
        pool = cast(PoolKey, key)
        try:
            await self.fold_pool(pool)
        except Exception as exc:
            logger.warning("pool %s/%s: status update failed, retrying: %s", *pool, exc)
            self._pools.schedule(pool, 5.0)

    async def close(self) -> None:
        if self._preload is not None:
            self._preload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._preload
        await self._agents.close()
        await self._pools.close()
        await self._resyncs.close()
