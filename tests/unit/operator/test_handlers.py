"""kopf wiring: settings that keep the operator quiet and scoped, and views over indexes."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pytest

from llmagents.operator.handlers import (
    KopfViews,
    OperatorState,
    _snapshot,
    configure_kopf,
    register,
)
from llmagents.operator.objects import AgentObject
from llmagents.operator.ownership import applied_conditions
from llmagents.operator.settings import OperatorSettings


def test_deployments_are_watched_only_through_the_operators_label():
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    selectors = {(s.group, s.version, s.plural or s.any_name): labels
                 for s, labels in settings.watching.label_selectors.items()}  # fmt: skip
    assert selectors == {
        ("apps", "v1", "deployments"): "app.kubernetes.io/managed-by=llmagents-operator"
    }


def test_of_the_children_only_deployments_are_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    watched: list[str] = []
    indexed: list[str] = []

    def spy(real: Any, seen: list[str]) -> Any:
        def decorator(*resource: str, **options: Any) -> Any:
            seen.append(resource[-1])
            return real(*resource, **options)

        return decorator

    monkeypatch.setattr(kopf.on, "event", spy(kopf.on.event, watched))
    monkeypatch.setattr(kopf, "index", spy(kopf.index, indexed))
    register(kopf.OperatorRegistry(), OperatorState(settings=OperatorSettings()))
    assert sorted(watched) == ["deployments", "llmagents", "providerpools"]
    assert sorted(indexed) == ["llmagents", "providerpools"]


def test_kopf_keeps_its_names_under_ours_and_posts_only_warnings():
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    assert settings.persistence.finalizer == "llmagents.dev/finalizer"
    assert settings.posting.level == logging.WARNING
    assert settings.peering.standalone is True


def test_views_read_the_one_object_each_index_key_holds():
    views = KopfViews()
    views.bind(
        {
            "agents": {
                ("ns", "b"): [{"metadata": {"name": "b"}, "spec": {"poolRef": {"name": "pool"}}}],
                ("ns", "a"): [{"metadata": {"name": "a"}, "spec": {"poolRef": {"name": "pool"}}}],
                ("ns", "c"): [{"metadata": {"name": "c"}, "spec": {"poolRef": {"name": "other"}}}],
                ("other-ns", "d"): [
                    {"metadata": {"name": "d"}, "spec": {"poolRef": {"name": "pool"}}}
                ],
            },
            "pools": {},
        }
    )
    assert views.agent(("ns", "a"))["metadata"] == {"name": "a"}
    assert views.pool(("ns", "pool")) is None
    assert views.agents_of_pool(("ns", "pool")) == [("ns", "a"), ("ns", "b")]


def test_the_index_keeps_what_the_reconciler_reads_and_not_every_writer_s_field_tree():
    managed = [
        {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {"f:poolRef": {}}}},
        {"manager": "llmagents-operator", "operation": "Apply", "subresource": "status",
         "fieldsV1": {"f:status": {"f:phase": {}, "f:conditions": {
             'k:{"type":"Ready"}': {".": {}, "f:status": {}}}}}},
        {"manager": "llmagents-runner", "operation": "Apply", "subresource": "status",
         "fieldsV1": {"f:status": {"f:conditions": {'k:{"type":"CheckpointTooLarge"}': {}}}}},
    ]  # fmt: skip
    meta = {"namespace": "ns", "name": "a", "uid": "u", "generation": 3,
            "creationTimestamp": "2030-01-01T00:00:00Z", "resourceVersion": "7",
            "labels": {"x": "y"}, "annotations": {"big": "x" * 1000}, "managedFields": managed}  # fmt: skip
    body = {"metadata": meta, "spec": {"poolRef": {"name": "p"}}, "status": {"phase": "Running"}}
    kept = _snapshot(body)
    assert set(kept["metadata"]) == {
        "namespace", "name", "uid", "generation", "creationTimestamp", "managedFields"
    }  # fmt: skip
    assert kept["spec"] is body["spec"] and kept["status"] is body["status"]
    whole, slim = AgentObject.from_body(body), AgentObject.from_body(kept)
    assert (slim.namespace, slim.name, slim.uid, slim.generation, slim.created) == (
        whole.namespace, whole.name, whole.uid, whole.generation, whole.created
    )  # fmt: skip
    assert applied_conditions(kept["metadata"]["managedFields"], "llmagents-operator") == {"Ready"}
