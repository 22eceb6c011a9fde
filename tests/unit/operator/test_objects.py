"""Typed views of agents and pools, and the cache that parses each spec once per generation."""

from __future__ import annotations

import copy

from operator_samples import agent_body, pool_body

from llmagents.api.agent import LLMAgentSpec
from llmagents.operator.objects import AgentObject, PoolObject, SpecCache


def test_an_unchanged_generation_reuses_the_parsed_spec():
    specs = SpecCache()
    first = AgentObject.from_body(agent_body(), specs)
    report = copy.deepcopy(agent_body())
    report["status"] = {"phase": "Running"}  # a status event: same generation
    again = AgentObject.from_body(report, specs)
    assert again.spec is first.spec
    assert again.status.phase is not None and again.status.phase.value == "Running"


def test_a_new_generation_or_a_recreated_object_is_parsed_again():
    specs = SpecCache()
    first = PoolObject.from_body(pool_body(strategy="priority"), specs)
    changed = PoolObject.from_body(pool_body(strategy="round-robin", generation=2), specs)
    assert changed.spec is not None and changed.spec.strategy.value == "round-robin"
    recreated = pool_body(strategy="cost-optimized")
    recreated["metadata"]["uid"] = "another-uid"  # generation 1 again, a different object
    assert PoolObject.from_body(recreated, specs).spec.strategy.value == "cost-optimized"
    assert first.spec is not None and first.spec.strategy.value == "priority"


def test_an_invalid_spec_is_kept_as_an_error_and_cached_like_a_valid_one():
    specs = SpecCache()
    body = agent_body(budget={"limit": -1})
    first = AgentObject.from_body(body, specs)
    assert first.spec is None and first.error and "budget" in first.error
    assert AgentObject.from_body(body, specs).error == first.error


def test_forgetting_an_agent_parses_its_spec_afresh():
    specs = SpecCache()
    first = AgentObject.from_body(agent_body(), specs)
    specs.forget(LLMAgentSpec, first.key)
    assert AgentObject.from_body(agent_body(), specs).spec is not first.spec
