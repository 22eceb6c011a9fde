"""Leader election on a coordination.k8s.io Lease, so two operator replicas are safe.

Only the holder of the Lease runs kopf; the others wait, ready to take over. The rules are
client-go's: a Lease is free when it has no holder or when its record has not changed for
``lease_seconds`` as observed on this replica's own clock (so clock skew between replicas
does not matter); the holder renews every ``renew_seconds``; every change goes through the
Lease's resourceVersion, so two candidates can never both win. A leader that cannot renew
for ``lease_seconds`` stops leading, and the process exits so that it restarts as a
candidate. On a clean shutdown the leader releases the Lease for a fast handover.

The renewals are the only writes of a converged operator (one per ``renew_seconds``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger(__name__)


class LeadershipLost(Exception):
    """The Lease could not be renewed in time; another replica may lead now."""


class LeaseElector:
    """Acquires, keeps and releases one Lease for one identity."""

    def __init__(
        self,
        api: client.CoordinationV1Api,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 30,
        renew_seconds: float = 10.0,
        retry_seconds: float = 2.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self.leading = False
        self._observed: tuple[Any, float] | None = None  # (record, monotonic time seen)

    async def acquire(self) -> None:
        """Return once this identity holds the Lease."""
        logger.info("waiting to lead: Lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not await asyncio.to_thread(self._try_acquire_or_renew):
            await asyncio.sleep(self.retry_seconds)
        self.leading = True
        logger.info("leading: Lease %s/%s held by %s", self.namespace, self.name, self.identity)

    async def keep(self) -> None:
        """Renew until cancelled; raises ``LeadershipLost`` when renewal fails too long."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                renewed = await asyncio.to_thread(self._try_acquire_or_renew)
            except Exception as exc:
                logger.warning("renewing Lease %s/%s failed: %s", self.namespace, self.name, exc)
                renewed = False
            if renewed:
                last_renewed = time.monotonic()
            elif time.monotonic() - last_renewed >= self.lease_seconds:
                self.leading = False
                raise LeadershipLost(f"Lease {self.namespace}/{self.name} not renewed in time")

    async def release(self) -> None:
        """Give the Lease up (best effort) so that a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        try:
            await asyncio.to_thread(self._release)
        except Exception as exc:
            logger.warning("releasing Lease %s/%s failed: %s", self.namespace, self.name, exc)

    def _try_acquire_or_renew(self) -> bool:
        now = _micro_now()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(now)
        spec = lease.spec
        record = (spec.holder_identity, spec.renew_time, spec.lease_transitions)
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, time.monotonic())
        holder = spec.holder_identity
        expired = time.monotonic() - self._observed[1] >= (
            spec.lease_duration_seconds or self.lease_seconds
        )
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec.lease_transitions = (spec.lease_transitions or 0) + 1
            spec.acquire_time = now
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = self.lease_seconds
        spec.renew_time = now
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:  # someone else changed it first
                return False
            raise
        return True

    def _create(self, now: datetime) -> bool:
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=self.lease_seconds,
                acquire_time=now,
                renew_time=now,
                lease_transitions=0,
            ),
        )
        try:
            self.api.create_namespaced_lease(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def _release(self) -> None:
        lease = self.api.read_namespaced_lease(self.name, self.namespace)
        if lease.spec.holder_identity != self.identity:
            return
        lease.spec.holder_identity = None
        lease.spec.lease_duration_seconds = 1
        self.api.replace_namespaced_lease(self.name, self.namespace, lease)


def _micro_now() -> datetime:
    # The client writes isoformat(), which drops a zero fraction; the API server's MicroTime
    # parser then refuses the value. A microsecond never matters to a Lease.
    now = datetime.now(UTC)
    return now if now.microsecond else now.replace(microsecond=1)
