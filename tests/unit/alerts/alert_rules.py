"""The chart's alert rules as Prometheus rule files, and where promtool is.

The chart keeps one alert per file under ``charts/llmagents/prometheus_rules/``; its
PrometheusRule template puts them in one group named ``llmagents``. The tests build the same
group from the same files, so promtool checks exactly what the chart ships.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "llmagents"
RULES_DIR = CHART / "prometheus_rules"
RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/llmagents/llmagents/blob/main/docs/runbooks/"
GROUP = "llmagents"


def alert_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yaml"))


def load_rules() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in alert_files()]


def write_rule_file(path: Path) -> Path:
    """Write the chart's alerts as one Prometheus rule file (one group), as the chart does."""
    path.write_text(yaml.safe_dump({"groups": [{"name": GROUP, "rules": load_rules()}]}))
    return path


def require_tool(name: str) -> str:
    """The tool's path; skip when it is missing, except under CI=true where that fails."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not installed (Debian: apt-get install -y prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run the alert tests", pytrace=False)
        pytest.skip(reason)
    return found
