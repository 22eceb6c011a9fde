"""The conditions a runner reports beside its phase, from its own state.

Each is true while its cause lasts and gone once it passed; ``since`` gives the time it
became true (kept by the runner, so that a report repeating a condition changes nothing):

- ``TracingMisconfigured``: the tracing settings were refused (``tracing_refused``).
- ``CheckpointTooLarge``: the checkpoint does not fit its store; saved without custom
  state, or not saved at all.
- ``ResultsNotStored``: task results that did not fit the results ConfigMaps.
- ``SpendJournalFailing``: charges cannot be journaled (disk full, I/O error); a kill may
  lose the spend since the last checkpoint until the journal is written again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from llmagents.api.status import Condition, ConditionStatus
from llmagents.runner.checkpoint_writer import Checkpointer

CHECKPOINT_TOO_LARGE = "CheckpointTooLarge"
TRACING_MISCONFIGURED = "TracingMisconfigured"
RESULTS_NOT_STORED = "ResultsNotStored"
SPEND_JOURNAL_FAILING = "SpendJournalFailing"


def state_conditions(
    *,
    checkpointer: Checkpointer,
    tracing_refused: str | None,
    not_stored: list[str],
    journal_failure: str | None,
    since: Callable[[str], datetime],
) -> list[Condition]:
    """The conditions true now (see the module docstring)."""
    conditions = []
    if tracing_refused is not None:
        conditions.append(
            Condition(
                type=TRACING_MISCONFIGURED,
                status=ConditionStatus.TRUE,
                reason="TracingRefused",
                message=tracing_refused,
                last_transition_time=since(TRACING_MISCONFIGURED),
            )
        )
    too_large = checkpointer.too_large
    if too_large is not None:
        saved = "saved without custom state" if checkpointer.saved_partially else "not saved"
        conditions.append(
            Condition(
                type=CHECKPOINT_TOO_LARGE,
                status=ConditionStatus.TRUE,
                reason=CHECKPOINT_TOO_LARGE,
                message=f"{too_large}; {saved}",
                last_transition_time=since(CHECKPOINT_TOO_LARGE),
            )
        )
    if not_stored:
        names = ", ".join(not_stored[:5]) + (", ..." if len(not_stored) > 5 else "")
        conditions.append(
            Condition(
                type=RESULTS_NOT_STORED,
                status=ConditionStatus.TRUE,
                reason="ResultsConfigMapsFull",
                message=f"the results of {len(not_stored)} task(s) did not fit in the "
                f"agent's results ConfigMaps and were not stored ({names}); their "
                "outcomes are counted in status and the checkpoint",
                last_transition_time=since(RESULTS_NOT_STORED),
            )
        )
    if journal_failure is not None:
        conditions.append(
            Condition(
                type=SPEND_JOURNAL_FAILING,
                status=ConditionStatus.TRUE,
                reason="JournalWriteFailed",
                message=f"{journal_failure}; calls are served and their spend goes into the "
                "next checkpoint, but a kill now loses the spend since the last checkpoint",
                last_transition_time=since(SPEND_JOURNAL_FAILING),
            )
        )
    return conditions
