"""The ``kubectl get llmagents`` table, computed without a cluster.

``llmagents run`` shows an agent exactly as ``kubectl get llmagents`` would: the same columns
(the CRD's printer columns), the phase the operator would decide from the runner's status
(``operator.phase.decide``), numbers printed the way kubectl prints JSON numbers and the age
the way kubectl prints ages. Rows stream like ``kubectl get -w``: a header once, then one
row per change, with fixed column widths so they stay aligned (``TableSink``, the status sink
of a local run).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from llmagents.api.status import LLMAgentStatus, RunnerAgentStatus
from llmagents.operator.objects import AgentObject
from llmagents.operator.phase import RESOLVED, decide
from llmagents.runner.status import RunnerReport

COLUMNS = ("NAME", "PHASE", "PROVIDER", "HEALTHY", "COST", "BUDGET", "TASKS", "AGE")
_MIN_WIDTHS = {"PHASE": len("BudgetExhausted"), "COST": 10, "TASKS": 7}


def human_duration(seconds: float) -> str:
    """An age as kubectl prints it (``HumanDuration`` of k8s.io/apimachinery)."""
    total = int(seconds)
    if total < -1:
        return "<invalid>"
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes = total // 60
    if minutes < 10:
        rest = total % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = divmod(hours // 24, 365)
    if hours < 24 * 365 * 8 and days:
        return f"{years}y{days}d"
    return f"{years}y"


def json_number(value: float | None) -> str:
    """A JSON number as kubectl prints a ``number`` column: shortest form, no trailing .0."""
    if value is None:
        return ""
    text = repr(float(value))
    return text.removesuffix(".0")


def agent_row(agent: AgentObject, status: RunnerAgentStatus, now: datetime) -> dict[str, str]:
    """One table row: the runner's status as the operator would complete it."""
    full = LLMAgentStatus.model_validate(status.to_wire())
    verdict = decide(dataclasses.replace(agent, status=full), RESOLVED, now)
    assert agent.spec is not None
    budget = agent.spec.budget
    started = status.started_at or agent.created
    return {
        "NAME": agent.name,
        "PHASE": verdict.phase.value,
        "PROVIDER": status.current_provider or "",
        "HEALTHY": status.healthy or "",
        "COST": status.cost.display if status.cost else "",
        "BUDGET": json_number(budget.limit if budget else None),
        "TASKS": status.tasks.summary if status.tasks else "",
        "AGE": human_duration((now - started).total_seconds()),
    }


class Table:
    """Formats rows under a header with widths fixed at the first line, like ``kubectl -w``."""

    def __init__(self, *, name_width: int, provider_width: int) -> None:
        self.widths = {c: max(len(c), _MIN_WIDTHS.get(c, 0)) for c in COLUMNS}
        self.widths["NAME"] = max(self.widths["NAME"], name_width)
        self.widths["PROVIDER"] = max(self.widths["PROVIDER"], provider_width)

    def _line(self, values: dict[str, str]) -> str:
        cells = [values[c].ljust(self.widths[c]) for c in COLUMNS[:-1]]
        return "   ".join([*cells, values[COLUMNS[-1]]]).rstrip()

    def header(self) -> str:
        return self._line({c: c for c in COLUMNS})

    def row(self, values: dict[str, str]) -> str:
        return self._line(values)


class TableSink:
    """A ``StatusSink`` that prints a ``kubectl get llmagents -w`` row per visible change."""

    def __init__(self, agent: AgentObject, providers: list[str], *, quiet: bool = False) -> None:
        self.agent = agent
        self.quiet = quiet
        """Only remember rows; ``show(force=True)`` prints the latest."""
        self.table = Table(name_width=len(agent.name),
                           provider_width=max(map(len, providers), default=0))  # fmt: skip
        self.latest: dict[str, str] | None = None
        self._printed: dict[str, str] | None = None

    async def write(self, report: RunnerReport) -> None:
        self.latest = agent_row(self.agent, report.status, datetime.now(UTC))
        if not self.quiet:
            self.show()

    def show(self, *, force: bool = False) -> None:
        """Print the latest row if more than its age changed (or ``force``)."""
        row = self.latest
        if row is None:
            return
        if self._printed is None:
            print(self.table.header())
        elif not force and {**row, "AGE": ""} == {**self._printed, "AGE": ""}:
            return
        print(self.table.row(row), flush=True)
        self._printed = row
