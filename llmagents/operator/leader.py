"""Leader election on a coordination.k8s.io Lease, so two operator replicas are safe.

Only the holder of the Lease runs kopf; the others wait, ready to take over. The rules are
client-go's: a Lease is free when it has no holder or when its record has not changed for
its ``leaseDurationSeconds`` as observed on this replica's own clock (so clock skew between
replicas does not matter); the holder renews every ``renew_seconds``; every change goes
through the Lease's resourceVersion, so two candidates can never both win.

A leader that has not renewed for ``renew_deadline`` seconds stops leading, and the process
exits so that it restarts as a candidate. The deadline is shorter than the Lease's duration,
so the old leader has stopped before a standby may take over; it is enforced around the
renewal itself, so a call that hangs (an API server that accepts the connection and never
answers) cannot keep a leader leading past it.

The deadline counts from when the last successful renewal was sent (the new renew time
landed no earlier), not from its answer, so however late an answer arrives the old leader
stops at least ``lease_seconds - renew_deadline`` before a standby may lead.

A renewal is one request, as client-go's fast path does it: the leader writes back the
Lease as its own last write returned it, with a new renew time (the resourceVersion in it
makes the write fail if anyone wrote since; then it reads the Lease and writes again). And
a renewal's requests may take until the deadline: an API server starved of CPU that
answers in 6 s is slow, not gone, and giving up on each answer after a shorter request
timeout (5 s, as renewals did, for a GET and then a PUT) would turn it into a lost Lease
and an operator restart. Candidates, which wait anyway, and the release keep the short
``request_timeout``. On a clean shutdown the leader releases the Lease for a fast handover.

The renewals are the only writes of a converged operator (one per ``renew_seconds``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime
from typing import Any

from llmagents.kube import KubeClient, KubeConflict, KubeError, KubeNotFound

logger = logging.getLogger(__name__)


class LeadershipLost(Exception):
    """The Lease could not be renewed in time; another replica may lead now."""


class LeaseElector:
    """Acquires, keeps and releases one Lease for one identity."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: int = 30,
        renew_seconds: float = 10.0,
        retry_seconds: float = 2.0,
        renew_deadline: float | None = None,
        request_timeout: float | None = None,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.retry_seconds = retry_seconds
        self.renew_deadline = (
            renew_deadline if renew_deadline is not None else lease_seconds * 2 / 3
        )
        self.request_timeout = (
            request_timeout if request_timeout is not None else min(5.0, self.renew_deadline / 3)
        )
        if not (0 < self.request_timeout < self.renew_deadline < lease_seconds
                and renew_seconds < self.renew_deadline):  # fmt: skip
            raise ValueError(
                f"need 0 < request timeout ({self.request_timeout:g}s) < renew deadline "
                f"({self.renew_deadline:g}s) < lease duration ({lease_seconds}s), and renewals "
                f"(every {renew_seconds:g}s) more often than the deadline"
            )
        self.leading = False
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        self._observed: tuple[Any, float] | None = None  # (record, loop time seen)
        self._held: dict[str, Any] | None = None  # the Lease as this leader's last write left it

    async def acquire(self) -> None:
        """Return once this identity holds the Lease."""
        logger.info("waiting to lead: Lease %s/%s as %s", self.namespace, self.name, self.identity)
        while True:
            try:
                if await self._try_acquire_or_renew(self.request_timeout):
                    break
            except KubeError as exc:
                logger.warning("acquiring Lease %s/%s failed: %s", self.namespace, self.name, exc)
            await asyncio.sleep(self.retry_seconds)
        self.leading = True
        logger.info("leading: Lease %s/%s held by %s", self.namespace, self.name, self.identity)

    async def keep(self) -> None:
        """Renew until cancelled; raises ``LeadershipLost`` once renewal has failed for
        ``renew_deadline`` seconds, however long a call hangs."""
        loop = asyncio.get_running_loop()
        last_renewed = loop.time()
        wait = self.renew_seconds
        while True:
            await asyncio.sleep(wait)
            deadline = last_renewed + self.renew_deadline
            renewed = False
            # The Lease's new renew time landed no earlier than this: standbys cannot take
            # over before it plus the Lease's duration, whenever the answer comes back.
            started = loop.time()
            try:
                async with asyncio.timeout_at(deadline):
                    renewed = await self._renew(deadline)
            except TimeoutError:
                pass
            except KubeError as exc:
                logger.warning("renewing Lease %s/%s failed: %s", self.namespace, self.name, exc)
            now = loop.time()
            if renewed:
                if now - started > self.request_timeout:  # a candidate would have given up
                    logger.info("renewed Lease %s/%s; the API server took %.1fs to answer",
                                self.namespace, self.name, now - started)  # fmt: skip
                last_renewed = started
                wait = max(last_renewed + self.renew_seconds - now, 0.0)
            elif now >= deadline:
                self.leading = False
                self._held = None
                raise LeadershipLost(
                    f"Lease {self.namespace}/{self.name} not renewed for "
                    f"{now - last_renewed:.1f}s (deadline {self.renew_deadline:g}s)"
                )
            else:
                wait = min(self.retry_seconds, max(deadline - now, 0.0))

    async def release(self) -> None:
        """Give the Lease up (best effort) so that a standby takes over at once."""
        if not self.leading:
            return
        self.leading = False
        self._held = None
        try:
            lease = await self._call("GET", self._path)
            spec = lease.setdefault("spec", {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = None
            spec["leaseDurationSeconds"] = 1
            await self._call("PUT", self._path, body=lease)
        except KubeError as exc:
            logger.warning("releasing Lease %s/%s failed: %s", self.namespace, self.name, exc)

    async def _call(
        self, method: str, path: str, *, body: Any = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self.kube.request(
            method, path, body=body, timeout=timeout or self.request_timeout
        )

    async def _renew(self, deadline: float) -> bool:
        """One renewal by the leader, its requests bounded by the deadline only."""
        loop = asyncio.get_running_loop()

        def left() -> float:
            return max(deadline - loop.time(), 0.001)

        if self._held is not None:
            lease = copy.deepcopy(self._held)
            lease.setdefault("spec", {})["renewTime"] = _micro_now()
            try:
                self._held = await self._call("PUT", self._path, body=lease, timeout=left())
                return True
            except (KubeConflict, KubeNotFound):  # written or deleted since: read it first
                self._held = None
        return await self._try_acquire_or_renew(left())

    async def _try_acquire_or_renew(self, timeout: float) -> bool:
        now = _micro_now()
        try:
            lease = await self._call("GET", self._path, timeout=timeout)
        except KubeNotFound:
            return await self._create(now, timeout)
        spec = lease.setdefault("spec", {})
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        seen_at = asyncio.get_running_loop().time()
        if self._observed is None or self._observed[0] != record:
            self._observed = (record, seen_at)
        holder = spec.get("holderIdentity")
        duration = spec.get("leaseDurationSeconds") or self.lease_seconds
        expired = seen_at - self._observed[1] >= duration
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
            spec["acquireTime"] = now
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = self.lease_seconds
        spec["renewTime"] = now
        try:  # carries the resourceVersion
            self._held = await self._call("PUT", self._path, body=lease, timeout=timeout)
        except KubeConflict:  # someone else changed it first
            return False
        return True

    async def _create(self, now: str, timeout: float) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_seconds,
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
        }  # fmt: skip
        try:
            self._held = await self._call(
                "POST", self._path.rsplit("/", 1)[0], body=body, timeout=timeout
            )
        except KubeConflict:
            return False
        return True


def _micro_now() -> str:
    """Now as the API server's MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
