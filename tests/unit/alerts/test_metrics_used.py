"""Every metric and label the dashboard and the alerts query is one the code exports.

A renamed metric or label would otherwise leave a panel empty and an alert silent, with
nothing failing. The names come from ``llmagents.runner.metrics`` (``METRIC_NAMES`` and the
label names of ``RunnerMetrics``) and ``llmagents.operator.metrics`` (the operator's
gauges of every agent); ``up`` is made by Prometheus for every scrape target.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_rules import CHART, load_rules, require_tool
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from llmagents.operator.cluster_api import WRITES
from llmagents.operator.metrics import OPERATOR_METRIC_NAMES, AgentGauges
from llmagents.runner.metrics import METRIC_NAMES as RUNNER_METRIC_NAMES
from llmagents.runner.metrics import RunnerMetrics

METRIC_NAMES = RUNNER_METRIC_NAMES | OPERATOR_METRIC_NAMES

DASHBOARD = CHART / "dashboards" / "llmagents.json"
PROMETHEUS_MADE = {"up"}
# Labels the scrape adds to every series (ServiceMonitor target labels), and the
# histogram bucket label.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container", "le"}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
_METRIC = re.compile(r"\b(llmagents_[a-z0-9_]+|up)\b(?!\s*\()")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")


def _all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside a collapsed row (which Grafana keeps in the row) included."""
    return [q for p in dashboard["panels"] for q in (p, *p.get("panels", []))]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in _all_panels(dashboard) for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def _alert_exprs() -> list[str]:
    return [rule["expr"] for rule in load_rules()]


def _family(series: str) -> str:
    for suffix in HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and base in METRIC_NAMES:
            return base
    return series


def _exported_labels() -> dict[str, set[str]]:
    """Label names per exported family, read from a RunnerMetrics and an AgentGauges."""
    metrics = RunnerMetrics("probe")
    gauges = AgentGauges(CollectorRegistry())
    labels: dict[str, set[str]] = {}
    for value in [*vars(metrics).values(), gauges.phase, gauges.checkpoint, WRITES]:
        if isinstance(value, MetricWrapperBase):
            family = value._name + ("_total" if value._type == "counter" else "")
            labels[family] = set(value._labelnames)
    return labels


def _metrics_in(expr: str) -> set[str]:
    # Label values inside quotes are not metric names.
    return {_family(m) for m in _METRIC.findall(re.sub(r'"[^"]*"', '""', expr))}


def _labels_in(expr: str) -> set[str]:
    names = set(_MATCHER.findall(expr))
    for group in _GROUPING.findall(expr):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    # label_values(metric, label) in dashboard variables.
    names |= set(re.findall(r"label_values\([^,]*,\s*([a-zA-Z_]+)\)", expr))
    return names


EXPRS: list[tuple[str, str]] = [("dashboard", e) for e in _dashboard_exprs()] + [
    ("alert", e) for e in _alert_exprs()
]


def test_the_runner_and_operator_export_every_family_they_list():
    assert set(_exported_labels()) == METRIC_NAMES


def test_the_dashboard_and_alerts_query_something():
    used = set().union(*(_metrics_in(e) for _, e in EXPRS))
    # The panels: requests, errors, fallbacks, latency, breakers, cost, budget,
    # tokens and checkpoints.
    assert {
        "llmagents_requests_total",
        "llmagents_provider_failures_total",
        "llmagents_fallbacks_total",
        "llmagents_request_duration_seconds",
        "llmagents_breaker_state",
        "llmagents_cost_usd_total",
        "llmagents_budget_remaining_usd",
        "llmagents_tokens_total",
        "llmagents_checkpoint_age_seconds",
    } <= used


@pytest.mark.parametrize(("where", "expr"), EXPRS)
def test_every_metric_queried_is_exported(where: str, expr: str):
    unknown = _metrics_in(expr) - METRIC_NAMES - PROMETHEUS_MADE
    assert not unknown, f"{where} queries {sorted(unknown)}, which no code exports: {expr}"


@pytest.mark.parametrize(("where", "expr"), EXPRS)
def test_every_label_queried_exists_on_a_metric_of_the_query(where: str, expr: str):
    exported = _exported_labels()
    available: set[str] = set(TARGET_LABELS)
    for family in _metrics_in(expr):
        available |= exported.get(family, set())
    if "up" in _metrics_in(expr):
        available.add("agent")  # the runners' ServiceMonitor copies it from the Service
    missing = _labels_in(expr) - available
    assert not missing, f"{where} uses labels {sorted(missing)} that its metrics lack: {expr}"


def test_panels_inside_a_collapsed_row_are_checked_too():
    row = {"type": "row", "collapsed": True, "panels": [
        {"type": "timeseries", "targets": [{"expr": "rate(llmagents_request_total[5m])"}]}]}  # fmt: skip
    (expr,) = [t["expr"] for p in _all_panels({"panels": [row]}) for t in p.get("targets", [])]
    assert _metrics_in(expr) - METRIC_NAMES == {"llmagents_request_total"}


def test_the_label_check_catches_a_misspelled_label():
    # Guards the parser: a grouping label that no metric has must be found.
    expr = "sum by (namespace, agnet) (rate(llmagents_requests_total[5m]))"
    assert _labels_in(expr) - TARGET_LABELS - _exported_labels()["llmagents_requests_total"] == {
        "agnet"
    }


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in _all_panels(dashboard) if p["type"] != "row"]


def test_every_dashboard_panel_uses_the_datasource_variable_and_has_a_description():
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace", "agent", "provider"} <= variables
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'agent=~"$agent"' in target["expr"], panel["title"]


def test_dashboard_panels_do_not_overlap():
    cells: set[tuple[int, int]] = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        area = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & area, f"panel {panel['title']!r} overlaps another"
        cells |= area


# Grafana's variables, as a query is sent: the template ones are regexes (multi-value,
# "All"), the rate interval a duration.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$agent": ".*",
                     "$provider": ".*"}  # fmt: skip


def _as_sent(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def _promtool_check(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` of each expression as a recording rule: the PromQL parser
    Prometheus itself uses."""
    rules = [{"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    return subprocess.run([require_tool("promtool"), "check", "rules", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip


def test_every_dashboard_query_parses_as_promql_once_grafana_fills_its_variables(
    tmp_path: Path,
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in _all_panels(dashboard) for t in p.get("targets", [])]
    leftover = {v for e in map(_as_sent, exprs) for v in re.findall(r"\$\{?\w+\}?", e)}
    assert not leftover, f"variables this test does not fill: {leftover}"
    result = _promtool_check([_as_sent(e) for e in exprs], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promql_check_catches_a_broken_query(tmp_path: Path) -> None:
    broken = 'sum by (agent) (rate(llmagents_requests_total{agent=~"$agent"}[$__rate_interval])'
    assert _promtool_check([_as_sent(broken)], tmp_path).returncode != 0
