"""The generated CRDs: current, structural, documented, and shaped for kubectl."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmagents.api import crd

REPO = Path(__file__).resolve().parents[3]


def _nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    if isinstance(node, dict):
        yield path, node
        for name, sub in node.get("properties", {}).items():
            yield from _nodes(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from _nodes(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _schema(resource: crd.Resource) -> dict:
    return crd.crd(resource)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_crd_files_in_the_repository_match_the_models():
    assert crd.stale_files(REPO / "crds") == [], "crds/ is stale: run `make crds`"


def test_crds_check_command_reports_a_stale_file(tmp_path):
    crd.write(tmp_path)
    assert crd.main(argparse.Namespace(out=tmp_path, check=True)) == 0
    (tmp_path / crd.LLM_AGENT.file_name).write_text("# edited by hand\n")
    assert crd.main(argparse.Namespace(out=tmp_path, check=True)) == 1


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_schema_is_structural(resource):
    for path, node in _nodes(_schema(resource)):
        assert "$ref" not in node, path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "anyOf" not in node and "allOf" not in node and "oneOf" not in node, path
        assert "type" in node, f"{path} has no type"
        assert not (node.get("properties") and "additionalProperties" in node), path
        assert set(node.get("required", [])) <= set(node.get("properties", {})), path


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_every_field_is_described_for_kubectl_explain(resource):
    undocumented = [
        path
        for path, node in _nodes(_schema(resource))
        if path.startswith((".spec", ".status"))
        and not path.endswith(("[]", "{}"))
        and not node.get("description")
    ]
    assert undocumented == []


# A task's JSON Schema is arbitrary JSON by nature; the runner's model checks it is a schema.
FREE_FORM = {"LLMAgent": [".spec.work.tasks[].responseFormat.schema"]}


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_only_the_metadata_keeps_unknown_fields(resource):
    preserving = [
        path
        for path, node in _nodes(_schema(resource))
        if node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert preserving == FREE_FORM.get(resource.kind, [])


def test_durations_default_as_users_write_them_and_are_bounded_for_cel():
    breaker = _schema(crd.PROVIDER_POOL)["properties"]["spec"]["properties"]["circuitBreaker"]
    recovery = breaker["properties"]["recoveryTime"]
    assert recovery["default"] == "30s"
    assert recovery["maxLength"] == 64
    assert breaker["properties"]["maxRecoveryTime"]["default"] == "10m"


def test_nested_objects_default_to_their_whole_default_value():
    spec = _schema(crd.PROVIDER_POOL)["properties"]["spec"]["properties"]
    breaker = spec["circuitBreaker"]["default"]
    assert breaker["recoveryTime"] == "30s" and breaker["maxFailures"] == 5
    assert "failureRate" not in breaker
    assert spec["retry"]["default"]["initialDelay"] == "500ms"
    assert spec["circuitBreaker"]["properties"]["maxFailures"]["default"] == 5


def test_enum_descriptions_explain_every_value():
    strategy = _schema(crd.PROVIDER_POOL)["properties"]["spec"]["properties"]["strategy"]
    assert strategy["enum"] == [
        "priority",
        "cost-optimized",
        "performance-optimized",
        "round-robin",
    ]
    for value in strategy["enum"]:
        assert f"{value}: " in strategy["description"]
    assert "``" not in strategy["description"]


def test_status_has_no_defaults_the_server_would_invent():
    status = _schema(crd.LLM_AGENT)["properties"]["status"]
    assert [path for path, node in _nodes(status) if "default" in node] == []


def test_optional_fields_are_not_required_and_not_nullable():
    spec = _schema(crd.LLM_AGENT)["properties"]["spec"]
    assert spec["required"] == ["poolRef", "work"]
    assert "nullable" not in spec["properties"]["budget"]
    assert spec["properties"]["budget"]["required"] == ["limit"]


def test_cel_rules_cover_what_the_schema_cannot_say():
    text = "\n".join(crd.render(r) for r in crd.RESOURCES)
    for rule in (
        "self.providers.all(p, self.providers.exists_one(q, q.name == p.name))",
        "self.type == 'onnx' || has(self.secretRef)",
        "duration(self.recoveryTime) > duration('0s')",
        "self.limit > 0.0",
        "has(self.tasks) != has(self.agent)",
        "size(self.metadata.name) <= 47",
    ):
        assert rule in text


def test_lists_keyed_by_name_are_list_maps():
    spec = _schema(crd.PROVIDER_POOL)["properties"]["spec"]["properties"]
    assert spec["providers"]["x-kubernetes-list-type"] == "map"
    assert spec["providers"]["x-kubernetes-list-map-keys"] == ["name"]
    status = _schema(crd.LLM_AGENT)["properties"]["status"]["properties"]
    assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert status["providers"]["x-kubernetes-list-map-keys"] == ["name"]


def test_resources_are_quantities_as_in_a_pod_spec():
    resources = _schema(crd.LLM_AGENT)["properties"]["spec"]["properties"]["resources"]
    quantity = resources["properties"]["limits"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert "pattern" in quantity


def test_agent_columns_are_the_ones_kubectl_get_shows():
    columns = crd.crd(crd.LLM_AGENT)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns if "priority" not in c] == [
        "Phase",
        "Provider",
        "Healthy",
        "Cost",
        "Budget",
        "Tasks",
        "Age",
    ]
    assert [c["name"] for c in columns if c.get("priority") == 1] == [
        "Strategy",
        "Last-Checkpoint",
    ]


def test_pool_columns_are_the_ones_kubectl_get_shows():
    columns = crd.crd(crd.PROVIDER_POOL)["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in columns] == [
        "Strategy",
        "Providers",
        "Healthy",
        "Open-Breakers",
        "Age",
    ]


@pytest.mark.parametrize("resource", crd.RESOURCES, ids=lambda r: r.kind)
def test_names_subresource_and_category(resource):
    doc = yaml.safe_load(crd.render(resource))
    names = doc["spec"]["names"]
    assert names["categories"] == ["llm"]
    assert names["shortNames"] == resource.short_names
    assert doc["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert doc["metadata"]["name"] == f"{resource.plural}.llmagents.dev"
