"""The example manifests users copy are valid for the models (the cluster tests apply them)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmagents.api.agent import LLMAgentSpec
from llmagents.api.pool import ProviderPoolSpec

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


def test_the_four_documented_examples_exist():
    assert {p.name for p in EXAMPLES} >= {
        "quickstart.yaml",
        "cost-optimized.yaml",
        "24x7.yaml",
        "budget.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_specs_validate_and_agents_reference_a_pool_of_the_same_file(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    pools = {d["metadata"]["name"] for d in docs if d["kind"] == "ProviderPool"}
    agents = [d for d in docs if d["kind"] == "LLMAgent"]
    assert agents and pools
    for doc in docs:
        if doc["kind"] == "ProviderPool":
            ProviderPoolSpec.model_validate(doc["spec"])
    for doc in agents:
        spec = LLMAgentSpec.model_validate(doc["spec"])
        assert spec.pool_ref.name in pools
