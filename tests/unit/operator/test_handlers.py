"""kopf wiring: settings that keep the operator quiet and scoped, and views over indexes."""

from __future__ import annotations

import logging

import kopf
from kopf._cogs.structs.references import Selector

from llmagents.operator.handlers import CHILD_RESOURCES, KopfViews, configure_kopf


def test_children_are_watched_only_through_the_operators_label():
    settings = kopf.OperatorSettings()
    configure_kopf(settings)
    for group, version, plural in CHILD_RESOURCES.values():
        selector = settings.watching.label_selectors[Selector(group, version, plural)]
        assert selector == "app.kubernetes.io/managed-by=llmagents-operator"


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
                ("other-ns", "d"): [{"metadata": {"name": "d"}, "spec": {"poolRef": {"name": "pool"}}}],
            },
            "pools": {},
            **{f"children_{kind.lower()}": {} for kind in CHILD_RESOURCES},
            "children_deployment": {("Deployment", "ns", "a"): ["0123456789abcdef"]},
        }
    )
    assert views.agent(("ns", "a"))["metadata"] == {"name": "a"}
    assert views.pool(("ns", "pool")) is None
    assert views.agents_of_pool(("ns", "pool")) == [("ns", "a"), ("ns", "b")]
    assert views.child_hash(("Deployment", "ns", "a")) == "0123456789abcdef"
    assert views.child_hash(("ConfigMap", "ns", "a-config")) is None
