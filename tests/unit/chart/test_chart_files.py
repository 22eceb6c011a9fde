"""The chart's files on their own (no helm): single-source CRDs, documented values, schema.

The chart's CRDs are the generated files: ``charts/llmagents/files/crds/`` must hold the
same bytes as ``crds/`` (which ``make crds`` regenerates and tests/unit/api checks against
the models).
"""

from __future__ import annotations

import json
import re

import yaml
from helm_tool import CHART, REPO

GENERATED = REPO / "crds"
CHART_CRDS = CHART / "files" / "crds"


def test_the_chart_s_crds_are_byte_identical_to_the_generated_ones():
    generated = {p.name: p.read_bytes() for p in GENERATED.glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    assert set(shipped) == set(generated), "run `make crds`"
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert not stale, f"charts/llmagents/files/crds/ is stale for {stale}: run `make crds`"


def _keys_without_comment(lines: list[str], chart_keys: set[str]) -> list[str]:
    """Chart keys (dotted paths) of values.yaml whose line has no comment line above it.

    Keys inside free-form values (resources, security contexts) are Kubernetes' own.
    """
    missing = []
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)([A-Za-z][\w-]*):", line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [m.group(2)])
        stack.append((indent, m.group(2)))
        above = lines[i - 1].strip() if i else ""
        if path in chart_keys and not above.startswith("#"):
            missing.append(path)
    return missing


def test_every_key_of_values_yaml_has_a_comment():
    lines = (CHART / "values.yaml").read_text().splitlines()
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert _keys_without_comment(lines, _schema_paths(schema)) == []


def test_the_comment_check_finds_an_undocumented_key():
    lines = ["# documented", "a:", "  # documented", "  b: 1", "  c: 2", "d:", "  e: 1"]
    assert _keys_without_comment(lines, {"a", "a.b", "a.c", "d"}) == ["a.c", "d"]


def _schema_paths(schema: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        if sub.get("type") == "object" and "properties" in sub:
            paths |= _schema_paths(sub, path + ".")
    return paths


def _value_paths(values: dict, prefix: str = "", schema: dict | None = None) -> set[str]:
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.add(path)
        sub = (schema or {}).get("properties", {}).get(key, {})
        if isinstance(value, dict) and "properties" in sub:
            paths |= _value_paths(value, path + ".", sub)
    return paths


def test_the_schema_describes_exactly_the_keys_of_values_yaml_and_closes_every_object():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert _value_paths(values, schema=schema) == _schema_paths(schema)

    def closed(node: dict, where: str) -> None:
        if "properties" in node:
            assert node.get("additionalProperties") is False, f"{where or 'root'} is open"
            for key, sub in node["properties"].items():
                closed(sub, f"{where}.{key}".lstrip("."))

    closed(schema, "")


def test_the_schema_lists_exactly_the_chart_s_alerts_as_excludable():
    schema = json.loads((CHART / "values.schema.json").read_text())
    rule = schema["properties"]["metrics"]["properties"]["prometheusRule"]
    names = rule["properties"]["excludeRules"]["items"]["enum"]
    assert sorted(names) == sorted(p.stem for p in (CHART / "prometheus_rules").glob("*.yaml"))


def test_the_dashboard_is_json_with_a_stable_uid():
    dashboard = json.loads((CHART / "dashboards" / "llmagents.json").read_text())
    assert dashboard["uid"] == "llmagents-overview"
    assert dashboard["title"] == "llmagents"
