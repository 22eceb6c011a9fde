"""kopf wiring: settings that keep the operator quiet and scoped, and views over indexes."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import pytest

from llmagents.operator.handlers import KopfViews, OperatorState, configure_kopf, register
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
