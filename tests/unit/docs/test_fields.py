"""Every `.spec...` / `.status...` field the documents name, and every field a `kubectl
... -o jsonpath=` they show reads, is a field of the generated CRDs (whose schemas come from
the models the operator and the runner write). A renamed status field otherwise leaves a
runbook's command printing nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "charts/llmagents/README.md"]
    + [p for p in (ROOT / "docs").rglob("*.md") if p.name != "reference.md"]
    + list((ROOT / "examples").glob("*.yaml"))
)
_FIELD = re.compile(r"(?<![\w/.-])\.?((?:status|spec)(?:\.[a-zA-Z]\w*|\[[^\]]*\])+)")
_JSONPATH = re.compile(r"jsonpath='([^']*)'")
_RANGE = re.compile(r"\{range \.([^}]*)\}(.*?)\{end\}")
_RELATIVE = re.compile(r"\{\.([a-zA-Z][\w.]*)")


def _paths(crd: str) -> set[str]:
    schema = yaml.safe_load((ROOT / "crds" / crd).read_text())["spec"]["versions"][0]
    found: set[str] = set()

    def walk(node: dict[str, Any], path: str) -> None:
        found.add(path)
        if node.get("type") == "array" and "items" in node:
            walk(node["items"], path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}" if path else key)
        if isinstance(node.get("additionalProperties"), dict):
            found.add(f"{path}.*")

    walk(schema["schema"]["openAPIV3Schema"], "")
    return found


FIELDS = _paths("llmagents.dev_llmagents.yaml") | _paths("llmagents.dev_providerpools.yaml")


def _known(path: str) -> bool:
    if path in FIELDS:
        return True
    parent, _, _ = path.rpartition(".")  # a key of a map, such as resources.limits.memory
    return f"{parent}.*" in FIELDS


def named_fields(text: str) -> set[str]:
    names = {m.group(1) for m in _FIELD.finditer(text)}
    for expression in _JSONPATH.findall(text):
        for base, body in _RANGE.findall(expression):
            names |= {f"{base}.{rel}" for rel in _RELATIVE.findall(body)}
        names |= {m for m in _RELATIVE.findall(_RANGE.sub("", expression))}
    names = {re.sub(r"\[[^\]]*\]", "", n) for n in names}
    return {n for n in names if n.startswith(("status", "spec"))}


def test_jsonpath_ranges_are_read_relative_to_their_list() -> None:
    text = "kubectl get llmagent A -o jsonpath='{range .status.providers[*]}{.name}{\"\\t\"}{end}'"
    assert named_fields(text) == {"status.providers", "status.providers.name"}
    assert not _known("status.providers.nmae")
    assert _known("spec.resources.limits.memory")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_field_a_document_names_is_in_the_crds(path: Path) -> None:
    unknown = sorted(f for f in named_fields(path.read_text()) if not _known(f))
    assert not unknown, f"{path.name} names fields the CRDs do not have: {unknown}"


def _values(node: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for key, child in node.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(child, dict):
            keys |= _values(child, f"{path}.")
    return keys


VALUES = _values(yaml.safe_load((ROOT / "charts/llmagents/values.yaml").read_text()))
_VALUE = re.compile(r"`([a-z][a-zA-Z]*(?:\.[a-zA-Z][a-zA-Z0-9]*)+)`|--set ([a-zA-Z.]+)=")
_FILE = re.compile(r"\.(py|json|yaml|md|txt)$")


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_chart_value_a_document_names_is_in_values_yaml(path: Path) -> None:
    tops = {key.split(".")[0] for key in VALUES}
    named = {a or b for a, b in _VALUE.findall(path.read_text())}
    unknown = sorted(
        n for n in named if n.split(".")[0] in tops and not _FILE.search(n) and n not in VALUES
    )
    assert not unknown, f"{path.name} names chart values values.yaml lacks: {unknown}"
