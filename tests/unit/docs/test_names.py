"""The names the documents tell users to grep for, query or alert on are the code's own:
metric names, Event reasons and condition types. A rename in the code fails here instead
of leaving a runbook's query empty or a grep finding nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmagents.operator.cluster_api import WRITES
from llmagents.operator.metrics import OPERATOR_METRIC_NAMES
from llmagents.runner.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "charts/llmagents/README.md"]
    + [p for p in (ROOT / "docs").rglob("*.md") if p.name != "reference.md"]
)
_METRIC = re.compile(r"\bllmagents_[a-z0-9_]+\b")
_SERIES = ("_bucket", "_sum", "_count", "_total", "_created")
CODE = "\n".join(p.read_text() for p in (ROOT / "llmagents").rglob("*.py"))


def _exported() -> set[str]:
    names = set(METRIC_NAMES) | set(OPERATOR_METRIC_NAMES) | {WRITES._name}
    return names | {n.removesuffix("_total") for n in names}


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_metric_a_document_names_is_exported(path: Path) -> None:
    exported = _exported()
    unknown = set()
    for name in _METRIC.findall(path.read_text()):
        base = next((name.removesuffix(s) for s in _SERIES if name.endswith(s)), name)
        if name not in exported and base not in exported:
            unknown.add(name)
    assert not unknown, f"{path.name} names metrics the code does not export: {unknown}"


def _reasons_to_grep() -> set[str]:
    text = (ROOT / "README.md").read_text()
    paragraph = text[text.index("Reasons to grep:") :].split("\n\n")[0]
    return set(re.findall(r"`([A-Z][A-Za-z]+)`", paragraph))


def test_the_readmes_event_reasons_are_recorded_by_the_code() -> None:
    reasons = _reasons_to_grep()
    assert {"FellBack", "CircuitOpened", "TasksCompleted"} <= reasons
    missing = {r for r in reasons if not re.search(rf'(\(|reason=)\s*"{r}"', CODE)}
    assert not missing, f"README lists Event reasons no code records: {missing}"


def test_the_readmes_conditions_are_set_by_the_code() -> None:
    text = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"`([A-Z][A-Za-z]+)`", text[text.index("Conditions: `Ready`") :][:200]))
    assert {"Ready", "PoolResolved", "BudgetAvailable"} <= listed
    missing = {c for c in listed if f'"{c}"' not in CODE}
    assert not missing, f"README lists conditions the code never sets: {missing}"


# Names from outside the project that the documents quote.
FOREIGN = {"TraceService", "CreateContainerConfigError"}
_CAMEL = re.compile(r"`([A-Z][a-z]+(?:[A-Z][a-z0-9]+)+)`")
CHART = "\n".join(p.read_text() for p in (ROOT / "charts").rglob("*") if p.is_file())


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_reason_condition_or_kind_a_document_quotes_is_in_the_code(path: Path) -> None:
    quoted = set(_CAMEL.findall(path.read_text())) - FOREIGN
    missing = sorted(n for n in quoted if not re.search(rf"\b{n}\b", CODE + CHART))
    assert not missing, f"{path.name} quotes names the code does not have: {missing}"
