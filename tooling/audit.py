"""Auditing a run against the providers' own books: what the fakes charged versus what the
runner recorded, for the chaos tests (``tests/unit/test_chaos_local.py`` and the cluster one).

The fakes count the tokens of every call they answered in full (``/_fake/stats``); at the
pool's prices that is what a real provider would bill. A run is sound when every task has
exactly one result row, the checkpoint counts every task done, the recorded spend is never
above the bill, and below it by no more than the calls that were in flight when the runner
was killed (each at most the dearest call of the run); ``audit_spend`` checks the spend
alone, for gateway runs, which have no tasks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million input and output tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


@dataclass(slots=True)
class Audit:
    """The figures of one run and what is wrong with them (``problems`` empty when sound)."""

    tasks: int
    kills: int
    rows: int
    charged: float
    """What the fakes billed: their token counters at the pool's prices."""
    recorded: float
    """The spend in the runner's checkpoint."""
    answered: int
    """Calls the fakes answered in full (and billed)."""
    dearest_call: float
    problems: list[str] = field(default_factory=list)

    @property
    def lost(self) -> float:
        """Billed but not recorded: the calls in flight at the kills."""
        return self.charged - self.recorded

    def summary(self) -> str:
        return (f"{self.tasks} tasks, {self.kills} kills, {self.answered} calls answered, "
                f"charged ${self.charged:.6f}, recorded ${self.recorded:.6f} "
                f"(lost ${self.lost:.6f}, at most {self.kills} x ${self.dearest_call:.6f})")  # fmt: skip


def audit(
    *,
    tasks: Iterable[str],
    rows: list[Mapping[str, Any]],
    checkpoint: Mapping[str, Any],
    stats: Mapping[str, Mapping[str, Any]],
    prices: Mapping[str, Prices],
    kills: int,
) -> Audit:
    """Check a finished run: ``rows`` are the result rows as stored, ``checkpoint`` the
    checkpoint document, ``stats`` each fake's ``/_fake/stats`` by provider name."""
    names = list(tasks)
    charged = sum(
        prices[name].cost(int(s["input_tokens"]), int(s["output_tokens"]))
        for name, s in stats.items()
    )
    answered = sum(int(s["outcomes"].get("ok", 0)) for s in stats.values())
    recorded = float(checkpoint["engine"]["spend"]["total"]["cost"])
    dearest = max((float(r.get("costUSD") or 0.0) for r in rows), default=0.0)
    report = Audit(len(names), kills, len(rows), charged, recorded, answered, dearest)
    problems = report.problems
    counts = Counter(str(r["task"]) for r in rows)
    twice = sorted(t for t, n in counts.items() if n > 1)
    if twice:
        problems.append(f"tasks with more than one result row: {twice}")
    missing = sorted(set(names) - set(counts))
    if missing:
        problems.append(f"tasks without a result row: {missing}")
    failed = sorted(str(r["task"]) for r in rows if not r.get("ok"))
    if failed:
        problems.append(f"tasks that failed: {failed}")
    done = checkpoint.get("completed") or []
    if sorted(done) != sorted(names) or len(done) != len(set(done)):
        problems.append(f"the checkpoint's completed tasks are not the task list: {done}")
    # The rows hold the cost of each task's last run. A call answered and journaled whose
    # task was killed before its completion landed is recorded (the provider billed it) but
    # is in no row: its task ran again. At most one such call per kill.
    in_rows = sum(float(r.get("costUSD") or 0.0) for r in rows)
    if in_rows > recorded + 1e-9 * max(1.0, recorded):
        problems.append(f"result rows add up to ${in_rows:.9f}, more than the checkpoint's "
                        f"${recorded:.9f}")  # fmt: skip
    if recorded - in_rows > kills * dearest * 1.5 + 1e-9:
        problems.append(f"the checkpoint's ${recorded:.9f} is above the rows' ${in_rows:.9f} "
                        f"by more than {kills} call(s) of a task run again")  # fmt: skip
    if recorded > charged + 1e-9:
        problems.append(f"recorded ${recorded:.9f} is more than the providers charged "
                        f"(${charged:.9f})")  # fmt: skip
    if charged - recorded > kills * dearest * 1.5 + 1e-9:
        problems.append(f"recorded ${recorded:.9f} is below the charged ${charged:.9f} by more "
                        f"than {kills} call(s) in flight")  # fmt: skip
    if answered > len(names) + kills:
        problems.append(f"{answered} calls were answered (paid) for {len(names)} tasks with "
                        f"only {kills} kills: a completed task ran again")  # fmt: skip
    return report


def audit_spend(
    *,
    recorded: float,
    answered: float,
    stats: Mapping[str, Mapping[str, Any]],
    prices: Mapping[str, Prices],
    in_flight_at_kills: int,
    dearest_call: float,
) -> tuple[float, list[str]]:
    """Check a gateway run's spend, which has no tasks to hang it on: ``recorded`` is the
    checkpoint's, ``answered`` what the calls the clients received in full cost, and
    ``in_flight_at_kills`` how many calls the clients had sent and not yet received when
    the runner was killed, summed over the kills. Returns what the fakes billed and the
    problems (none when sound): recorded never above the bill, never below what was
    answered, and below the bill by no more than the calls in flight at the kills."""
    charged = sum(
        prices[name].cost(int(s["input_tokens"]), int(s["output_tokens"]))
        for name, s in stats.items()
    )
    margin = 1e-9 * max(1.0, charged)
    problems = []
    if recorded > charged + margin:
        problems.append(f"recorded ${recorded:.9f} is more than the providers charged "
                        f"(${charged:.9f})")  # fmt: skip
    if recorded < answered - margin:
        problems.append(f"recorded ${recorded:.9f} is less than the calls answered to the "
                        f"clients cost (${answered:.9f}): answered calls were lost")  # fmt: skip
    if charged - recorded > in_flight_at_kills * dearest_call + margin:
        problems.append(f"recorded ${recorded:.9f} is below the charged ${charged:.9f} by more "
                        f"than the {in_flight_at_kills} call(s) in flight at the kills")  # fmt: skip
    return charged, problems
