"""Writing checkpoints: when, how often, and never over a newer runner's.

The ``Checkpointer`` owns the runner's relation to its ``CheckpointStore``:

- **Claim.** On start it reads the stored checkpoint, lets the runner restore from it, and
  writes it back under the next epoch, compare-and-swapped on the version it read. If
  anyone wrote in between, it reads and restores again: the claim always starts from the
  newest state, and each epoch belongs to exactly one runner.
- **Fencing.** Every later write is compare-and-swapped too. A conflict is re-read: a
  higher epoch means a newer runner took over, and this one is fenced (``fenced`` is set,
  nothing is written again); the same epoch means only the object's metadata changed (the
  operator re-applied it), and the write is retried on the new version.
- **When.** Every ``interval``; soon after ``request()`` (a paid call, custom state),
  coalesced to at most one write per ``min_spacing``; and at once for ``save()``, which
  waits (bounded) until a write that began after the call has landed. Writes are serial,
  so a burst of requests costs one write with the latest state.
- **Too large.** A document over the store's limit is retried without the custom state
  (spend and progress matter more) and ``too_large`` says so; only if even that does not
  fit is nothing written. Either way the runner reports the condition instead of failing.

A failed write (store unreachable) is retried with backoff, always with the latest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from llmagents.retrying import Backoff
from llmagents.routing import clock as clocks
from llmagents.runner.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointFenced,
    CheckpointTooLarge,
    Encoded,
    VersionConflict,
    encode,
)
from llmagents.runner.checkpoint_store import CheckpointStore

logger = logging.getLogger(__name__)

BuildCheckpoint = Callable[[int, int, bool], Checkpoint]
"""(epoch, sequence, with custom state) -> the runner's current state as a checkpoint."""

_RETRY = Backoff(first=0.5, cap=10.0)
_CLAIM_ATTEMPTS = 20


class Checkpointer:
    """Claims the store, then keeps it up to date; see the module docstring."""

    def __init__(
        self,
        store: CheckpointStore,
        build: BuildCheckpoint,
        *,
        interval: float,
        min_spacing: float = 1.0,
        clock: clocks.Clock = clocks.monotonic,
        wall_clock: clocks.WallClock = clocks.utc_now,
        redact: Callable[[str], str] | None = None,
        agent: str = "-",
    ) -> None:
        self.store = store
        self._redact = redact
        self._build = build
        self.interval = interval
        self.min_spacing = min_spacing
        self._clock = clock
        self._wall_clock = wall_clock
        self.agent = agent
        self.epoch = 0
        self.sequence = 0
        self.version = ""
        self.last_success: datetime | None = None
        """Wall time of the last checkpoint that landed."""
        self.last_size = 0
        self.too_large: CheckpointTooLarge | None = None
        """Set while the full checkpoint does not fit (custom state dropped or nothing saved)."""
        self.saved_partially = False
        """While ``too_large``: True if checkpoints are saved without custom state, False
        if nothing can be saved."""
        self.fenced: CheckpointFenced | None = None
        self.failures = 0
        self.on_change: Callable[[], None] | None = None
        """Called after each landed write and each change of ``too_large`` or ``fenced``."""
        self.on_failure: Callable[[], None] | None = None
        """Called after each write attempt that failed (the store unreachable or refusing)."""
        self._requested = 0  # generation of the latest request
        self._covered = 0  # generation the latest landed write included
        self._last_attempt = -1e18
        self._last_write = -1e18
        self._retry_at = -1e18
        self._asleep_until = -1e18  # when the writer loop wakes by itself next
        self._wake = asyncio.Event()
        self._landed = asyncio.Event()
        self._closed = False
        self._claimed = False
        self._attempts = 0  # write attempts of the loop so far
        self._last_failed = 0  # number of the latest attempt that failed

    # -- claim --------------------------------------------------------------------------

    async def claim(self, restore: Callable[[Checkpoint | None], None]) -> Checkpoint | None:
        """Read, restore and claim the store under a new epoch; returns what was restored.

        Raises ``StoreUnavailable`` (the caller retries the start) and ``CheckpointCorrupt``.
        """
        for _ in range(_CLAIM_ATTEMPTS):
            stored = await self.store.read()
            restore(stored.checkpoint)
            self.epoch = stored.epoch + 1
            self.sequence = stored.checkpoint.sequence if stored.checkpoint else 0
            self.version = stored.version
            try:
                await self._write_current()
            except VersionConflict:
                logger.info(
                    "agent %s: checkpoint changed while claiming it; reading again", self.agent
                )
                continue
            self._claimed = True
            logger.info(
                "agent %s: claimed the checkpoint as epoch %d (sequence %d)",
                self.agent,
                self.epoch,
                self.sequence,
            )
            return stored.checkpoint
        raise CheckpointError(
            f"could not claim the checkpoint in {_CLAIM_ATTEMPTS} attempts: another runner "
            "keeps writing it; is a second runner of this agent running?"
        )

    # -- requests -------------------------------------------------------------------------

    def request(self) -> int:
        """Ask for a write soon (coalesced, at most one per ``min_spacing``); never blocks.

        Returns the request's generation: the state as of now is in the store once
        ``covered`` reaches it.
        """
        self._requested += 1
        # Every paid call asks; waking the writer only to find it must wait out min_spacing
        # anyway would cost each call a loop iteration and a timer.
        if self._last_attempt + self.min_spacing < self._asleep_until:
            self._wake.set()
        return self._requested

    @property
    def covered(self) -> int:
        """The generation of the latest request the store's checkpoint includes."""
        return self._covered

    async def save(self, timeout: float | None = None) -> bool:
        """Write the current state now and wait until it landed.

        False when the attempt failed (the store is unreachable: the write stays pending and
        is retried in the background, but the caller need not wait for that), on timeout,
        and when fenced.
        """
        self._requested += 1
        wanted = self._requested
        first_attempt = self._attempts + 1
        self._last_attempt = -1e18  # a save does not wait for min_spacing
        self._retry_at = min(self._retry_at, self._clock())
        self._wake.set()
        try:
            async with asyncio.timeout(timeout):
                while (
                    self._covered < wanted
                    and self._last_failed < first_attempt
                    and self.fenced is None
                    and not self._closed
                ):
                    self._landed.clear()
                    await self._landed.wait()
        except TimeoutError:
            return False
        return self._covered >= wanted

    # -- the writer loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Write as requested and every ``interval`` until ``close()`` or fencing."""
        while not self._closed and self.fenced is None:
            due = self._due()
            delay = due - self._clock()
            if delay > 0:
                self._wake.clear()
                # Exactly the time ``request`` compares with: read from the clock again, it
                # would lie a little later than ``_last_attempt + min_spacing``, and every
                # request would wake the writer for nothing.
                self._asleep_until = due
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                self._asleep_until = -1e18
                continue
            await self._attempt()

    def _due(self) -> float:
        """When the next write is due (the clock's time)."""
        due = self._last_write + self.interval
        if self._requested > self._covered:
            due = min(due, self._last_attempt + self.min_spacing)
        return max(due, self._retry_at)

    async def _attempt(self) -> None:
        self._last_attempt = self._clock()
        self._attempts += 1
        number = self._attempts
        try:
            await self._write_current()
        except CheckpointFenced as fenced:
            self.fenced = fenced
            logger.error("agent %s: %s", self.agent, fenced)
            self._notify()
        except CheckpointError as error:
            delay = _RETRY.delay(self.failures)
            self.failures += 1
            self._retry_at = self._clock() + delay
            self._last_failed = number
            if self.on_failure is not None:
                self.on_failure()
            if self.failures == 1 or self.failures % 20 == 0:
                logger.warning(
                    "agent %s: checkpoint write failed (%d in a row), retrying in %gs: %s",
                    self.agent,
                    self.failures,
                    delay,
                    error,
                )
        except Exception:
            # Not a store failure but a bug or unforeseen input: whoever waits in save() hears
            # at once, and the runner's supervisor logs, reports and restarts the writer.
            self._last_failed = number
            raise
        finally:
            self._landed.set()

    async def _write_current(self) -> None:
        covered = self._requested
        sequence = self.sequence + 1
        encoded = self._encode(sequence)
        if encoded is None:
            return
        try:
            self.version = await self.store.write(
                encoded, epoch=self.epoch, expected_version=self.version
            )
        except VersionConflict:
            if not self._claimed:
                raise  # claiming: the caller reads and restores again
            stored = await self.store.read()
            if stored.epoch > self.epoch:
                raise CheckpointFenced(self.epoch, stored.epoch) from None
            self.version = stored.version  # metadata changed under us: same epoch, retry
            self.version = await self.store.write(
                encoded, epoch=self.epoch, expected_version=self.version
            )
        self.sequence = sequence
        self._covered = max(self._covered, covered)
        if self.failures:
            logger.info(
                "agent %s: checkpoint written again after %d failed attempts",
                self.agent,
                self.failures,
            )
        self.failures = 0
        self._retry_at = -1e18
        self._last_write = self._clock()
        self.last_success = self._wall_clock()
        self.last_size = encoded.size
        self._notify()

    def _encode(self, sequence: int) -> Encoded | None:
        limit = self.store.limit
        try:
            encoded = encode(
                self._build(self.epoch, sequence, True), limit=limit, redact=self._redact
            )
        except CheckpointTooLarge as full:
            if self.too_large is None:
                logger.error("agent %s: %s; saving without custom state", self.agent, full)
            self.too_large = full
            self.saved_partially = True
            try:
                return encode(
                    self._build(self.epoch, sequence, False), limit=limit, redact=self._redact
                )
            except CheckpointTooLarge as still:
                self.too_large = still
                self.saved_partially = False
                logger.error(
                    "agent %s: even without custom state, %s; not saved", self.agent, still
                )
                self._notify()
                return None
        if self.too_large is not None:
            logger.info("agent %s: checkpoint fits again (%d bytes)", self.agent, encoded.size)
            self.too_large = None
        return encoded

    def _notify(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def age(self) -> float | None:
        """Seconds since the last landed checkpoint, by the wall clock."""
        if self.last_success is None:
            return None
        return (self._wall_clock() - self.last_success).total_seconds()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._landed.set()
