"""The chart's alerts: valid rules, each with its runbook and a promtool test that fires it.

``promtool test rules`` evaluates each alert over synthetic series, checking when it fires,
when it must not, and the exact labels and annotations it carries. Needs Debian's
``prometheus`` package (promtool); skips without it, fails under CI=true.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from alert_rules import (
    RULES_DIR,
    RUNBOOK_BASE,
    RUNBOOKS,
    alert_files,
    load_rules,
    require_tool,
    write_rule_file,
)

PROMTOOL_TESTS = Path(__file__).parent / "promtool"
ALERTS = [path.stem for path in alert_files()]
SEVERITIES = {"critical", "warning", "info"}


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rule_file(tmp_path_factory.mktemp("rules") / "llmagents.rules.yaml")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_the_issue_s_alerts_are_all_there():
    assert set(ALERTS) == {
        "LLMAgentProviderCircuitOpen",
        "LLMAgentAllProvidersUnavailable",
        "LLMAgentHighFallbackRate",
        "LLMAgentBudgetBurnRateHigh",
        "LLMAgentBudgetExhausted",
        "LLMAgentCheckpointStale",
        "LLMAgentSpendJournalFailing",
        "LLMAgentNotReady",
        "LLMAgentsOperatorDown",
    }


@pytest.mark.parametrize("name", ALERTS)
def test_each_file_holds_one_alert_named_after_it_with_severity_and_runbook(name: str):
    rule = yaml.safe_load((RULES_DIR / f"{name}.yaml").read_text())
    assert rule["alert"] == name
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"
    runbook = (RUNBOOKS / f"{name}.md").read_text()
    assert runbook.startswith(f"# {name}\n")
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
        assert section in runbook, f"{name}.md lacks {section}"


def test_every_runbook_belongs_to_an_alert():
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(ALERTS)


def test_promtool_accepts_the_rules(promtool: str, rule_file: Path):
    result = _run([promtool, "check", "rules", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in result.stdout


@pytest.mark.parametrize("name", ALERTS)
def test_promtool_fires_the_alert_exactly_as_its_test_expects(
    name: str, promtool: str, rule_file: Path, tmp_path: Path
):
    spec = yaml.safe_load((PROMTOOL_TESTS / f"{name}.yaml").read_text())
    tested = {case["alertname"] for test in spec["tests"] for case in test["alert_rule_test"]}
    assert tested == {name}, "each promtool file tests its own alert"
    assert any(
        case.get("exp_alerts") for test in spec["tests"] for case in test["alert_rule_test"]
    ), "the test must see the alert fire"
    spec["rule_files"] = [str(rule_file)]
    test_file = tmp_path / f"{name}.test.yaml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = _run([promtool, "test", "rules", str(test_file)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_expectation_makes_promtool_fail(promtool: str, rule_file: Path, tmp_path: Path):
    # Guards the harness itself: promtool must report a mismatch, not pass silently.
    spec = yaml.safe_load((PROMTOOL_TESTS / "LLMAgentNotReady.yaml").read_text())
    spec["rule_files"] = [str(rule_file)]
    firing = spec["tests"][0]["alert_rule_test"][1]["exp_alerts"][0]
    firing["exp_labels"]["agent"] = "reader"
    test_file = tmp_path / "broken.test.yaml"
    test_file.write_text(yaml.safe_dump(spec))
    result = _run([promtool, "test", "rules", str(test_file)])
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_the_runbook_index_lists_every_alert_with_its_severity():
    rows = {}
    for line in (RUNBOOKS / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("["):
            rows[cells[0][1 : cells[0].index("]")]] = cells[1]
    severities = {
        name: yaml.safe_load((RULES_DIR / f"{name}.yaml").read_text())["labels"]["severity"]
        for name in ALERTS
    }
    assert rows == severities
