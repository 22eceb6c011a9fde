"""The runner's spend across restarts: restored, journaled, marked in checkpoints, checked.

Spend is the one figure a runner must never lose or reset (docs/exactly-once.md).
``SpendKeeper`` is the runner's side of that promise:

- **Restore.** The engine's state comes back from the checkpoint exactly; then the spend
  journal's charges that checkpoint does not include are counted again (``spend_journal``).
  A claim that has to read the checkpoint again restores again from scratch, so a charge
  is never counted twice.
- **Charge.** Every charge the engine makes is journaled at once, and a paid one asks for a
  checkpoint (coalesced by the ``Checkpointer``).
- **Checkpoint.** Each checkpoint records how far into the journal its spend reaches
  (``marks``); once it landed, the journal drops what it holds (``landed``).
- **Status.** If the agent's status shows more spend in the current budget period than the
  restored state (spend the status reported but no checkpoint or journal kept, e.g. a pod
  deleted while the API server was unreachable), the difference is charged to the budget, so
  the budget is never under-counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from llmagents.api.status import RunnerAgentStatus
from llmagents.chat import Usage
from llmagents.errors import ConfigError
from llmagents.routing import ProviderManager
from llmagents.runner.checkpoint import Checkpoint, CheckpointCorrupt
from llmagents.runner.spend_journal import SpendJournal, marks_with

logger = logging.getLogger(__name__)


class SpendKeeper:
    """The runner's spend bookkeeping around the engine; see the module docstring."""

    def __init__(
        self,
        manager: ProviderManager,
        *,
        journal: SpendJournal | None,
        request_checkpoint: Callable[[], int],
        agent: str = "-",
    ) -> None:
        self.manager = manager
        self.journal = journal
        self.agent = agent
        self._request_checkpoint = request_checkpoint
        self._fresh = manager.snapshot()  # what a runner without a checkpoint starts from
        self._marks: dict[str, int] = {}  # the restored checkpoint's, for other journals
        self._through: dict[int, int] = {}  # checkpoint sequence -> journal entry it holds

    def open(self) -> None:
        """Lock the journal and read it (``SpendJournalBusy`` if another runner has it)."""
        if self.journal is not None:
            self.journal.open()

    def restore(self, checkpoint: Checkpoint | None) -> None:
        """The checkpoint's spend (None: none), then the journal's charges it lacks.

        ``CheckpointCorrupt`` when the checkpoint's engine state cannot be restored.
        """
        engine = checkpoint.engine if checkpoint is not None else None
        if engine is None and self.journal is not None:
            engine = self._fresh  # a claim read again must not count the journal twice
        if engine is not None:
            try:
                self.manager.restore(engine)
            except (KeyError, TypeError, ValueError, AttributeError, ConfigError) as error:
                # Nothing restored is used: the runner refuses to start and writes nothing.
                where = f"checkpoint {checkpoint.sequence}" if checkpoint else "the fresh state"
                raise CheckpointCorrupt(
                    f"{where} cannot be restored: the engine state has a bad or missing "
                    f"field ({type(error).__name__}: {error})"
                ) from None
        self._marks = dict(checkpoint.spend_journals) if checkpoint is not None else {}
        if self.journal is None:
            return
        missing = self.journal.pending(self._marks)
        for charge in missing:
            self.manager.replay_charge(
                charge.provider, charge.usage, charge.cost, period_start=charge.period_start
            )
        if missing:
            logger.info(
                "agent %s: %d charge(s) of $%.6f in the spend journal were not in the "
                "checkpoint; counted again",
                self.agent,
                len(missing),
                sum(charge.cost for charge in missing),
            )

    def charged(self, provider: str, usage: Usage, cost: float) -> None:
        """The engine charged a call (called in the same step as its ledger took it)."""
        if self.journal is not None:
            budget = self.manager.budget
            period = budget.period_start_text if budget is not None else None
            self.journal.append(provider, usage, cost, period)
        if cost > 0:
            self._request_checkpoint()

    def marks(self, sequence: int) -> dict[str, int]:
        """The journal marks of checkpoint ``sequence``, which is being built now, in the
        same step as the engine's snapshot."""
        if self.journal is None:
            return dict(self._marks)
        through = self.journal.last
        self._through[sequence] = through
        return marks_with(self._marks, self.journal.id, through)

    def landed(self, sequence: int) -> None:
        """Checkpoint ``sequence`` is in the store: the journal drops what it holds."""
        through = self._through.pop(sequence, None)
        self._through = {n: t for n, t in self._through.items() if n > sequence}
        if through is not None and self.journal is not None:
            self.journal.compact(through)

    @property
    def failure(self) -> str | None:
        """Why charges are not journaled now (the disk is full...), else None."""
        return self.journal.failure if self.journal is not None else None

    def reconcile(self, previous: RunnerAgentStatus) -> None:
        """Charge the budget what the previous status shows beyond the restored spend."""
        budget = self.manager.budget
        reported = previous.cost
        if budget is None or reported is None or reported.period_start != budget.period_start:
            return
        missing = reported.spent_usd - budget.spent
        if missing > 1e-9:
            logger.warning(
                "agent %s: status shows $%.6f spent in this period, the checkpoint "
                "$%.6f; counting the difference against the budget",
                self.agent,
                reported.spent_usd,
                budget.spent,
            )
            budget.charge(missing)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
