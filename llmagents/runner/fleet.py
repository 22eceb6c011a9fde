"""The fleet's view of provider health, taken into this runner's breakers.

Every runner reports its breakers in its LLMAgent's status; the operator folds those into
the ProviderPool's status (per provider: agents reporting it, open breakers among them).
That status is the fleet's shared memory, with no extra service: each runner watches its
pool and, when a provider becomes open for at least half of the agents reporting it, opens
its own breaker for that provider for the pool's ``recoveryTime`` (``force_open``). After
that the breaker is half-open as after any opening, so probes still find out whether the
provider is back. A new or restarted agent thus skips a provider the fleet already knows
is down instead of failing ``maxFailures`` times to learn it.

Only changes count: the view is taken when a provider turns fleet-open (or is first seen
open), not re-applied on every update of the pool, so a runner whose own probe found the
provider back is not pushed open again by a pool status that has not caught up yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from llmagents.api.pool_status import ProviderPoolStatus
from llmagents.api.status import API_VERSION
from llmagents.kube import KubeClient, KubeError, custom_path
from llmagents.retrying import Backoff
from llmagents.routing import BreakerState, ProviderManager
from llmagents.routing import clock as clocks

logger = logging.getLogger(__name__)

WATCH_SECONDS = 240
"""Server-side length of one watch request; it is renewed from the last resourceVersion."""
_RETRY = Backoff(first=1.0, cap=30.0)


class FleetBreaker:
    """Applies pool status updates to one engine's breakers."""

    def __init__(
        self,
        manager: ProviderManager,
        *,
        wall_clock: clocks.WallClock = clocks.utc_now,
        agent: str = "-",
    ) -> None:
        self.manager = manager
        self._wall_clock = wall_clock
        self._recovery = manager.pool.circuit_breaker.recovery_time
        self._fleet_open: dict[str, bool] = {}
        self.agent = agent

    def apply(self, raw_status: Mapping[str, Any] | None) -> list[str]:
        """Take one pool status; returns the providers whose breaker it opened here."""
        try:
            status = ProviderPoolStatus.model_validate(raw_status or {})
        except ValidationError as error:
            logger.warning(
                "agent %s: ignoring a pool status that does not validate: %s", self.agent, error
            )
            return []
        local = self.manager.status()
        opened = []
        for provider in status.providers or []:
            fleet_open = provider.open_breakers > 0 and 2 * provider.open_breakers >= max(
                provider.agents, 1
            )
            was_open = self._fleet_open.get(provider.name, False)
            self._fleet_open[provider.name] = fleet_open
            mine = local.get(provider.name)
            if (
                not fleet_open
                or was_open
                or mine is None
                or mine.breaker is not BreakerState.CLOSED
            ):
                continue
            until = self._wall_clock() + timedelta(seconds=self._recovery.total_seconds())
            reason = (
                f"{provider.open_breakers} of {provider.agents} agents of the pool have it open"
            )
            self.manager.force_open(provider.name, reason=reason, until=until)
            logger.warning(
                "agent %s: provider %s opened from the fleet's view: %s",
                self.agent,
                provider.name,
                reason,
            )
            opened.append(provider.name)
        return opened


async def read_pool(
    kube: KubeClient, *, namespace: str, pool: str, fleet: FleetBreaker, timeout: float = 5.0
) -> bool:
    """Apply the pool's current status once, before the first call; False if unreadable.

    The watch that follows starts concurrently with the work, so without this a restarted
    runner's first calls could still go to a provider the fleet knows is down.
    """
    try:
        async with asyncio.timeout(timeout):
            body = await kube.get(custom_path(API_VERSION, namespace, "providerpools", pool))
    except (KubeError, TimeoutError) as error:
        logger.info(
            "agent %s: pool %s not read before starting (%s); the watch catches up",
            fleet.agent,
            pool,
            error,
        )
        return False
    fleet.apply(body.get("status"))
    return True


async def watch_pool(
    kube: KubeClient,
    *,
    namespace: str,
    pool: str,
    fleet: FleetBreaker,
    stop: asyncio.Event,
) -> None:
    """List and watch the ProviderPool, feeding its status to ``fleet``, until ``stop``."""
    path = custom_path(API_VERSION, namespace, "providerpools")
    selector = f"metadata.name={pool}"
    failures = 0
    while not stop.is_set():
        try:
            listing = await kube.request("GET", path, params={"fieldSelector": selector})
            for item in listing.get("items", []):
                fleet.apply(item.get("status"))
            version = listing["metadata"]["resourceVersion"]
            failures = 0
            async for event in kube.watch(path, params={"fieldSelector": selector},
                                          timeout_seconds=WATCH_SECONDS,
                                          resource_version=version):  # fmt: skip
                if stop.is_set():
                    return
                if event.get("type") in ("ADDED", "MODIFIED"):
                    fleet.apply(event["object"].get("status"))
        except KubeError as error:
            if error.status == 410:  # the resourceVersion expired: list again, at once
                continue
            failures = await _pause(fleet, pool, error, failures, stop)
        except (ValueError, KeyError) as error:
            failures = await _pause(fleet, pool, error, failures, stop)


async def _pause(
    fleet: FleetBreaker, pool: str, error: Exception, failures: int, stop: asyncio.Event
) -> int:
    """Waits before the next try (or until ``stop``); the new count of failures."""
    delay = _RETRY.delay(failures)
    failures += 1
    if failures in (1, 5) or failures % 50 == 0:
        logger.warning("agent %s: cannot watch ProviderPool %s (retrying in %gs): %s",
                       fleet.agent, pool, delay, error)  # fmt: skip
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    return failures
