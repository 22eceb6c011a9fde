"""Known prices on the real control plane: a pool whose model no price table knows says so at
once, on the pool and on its agents, before any runner has started, and pricing it clears it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_operator import (  # noqa: F401 (fixtures)
    agent,
    conditions,
    crds,
    get,
    operator,
    start_operator,
)

from tooling.cluster import Kubectl
from tooling.polling import eventually

pytestmark = pytest.mark.cluster

POOL = """
apiVersion: llmagents.dev/v1alpha1
kind: ProviderPool
metadata: {name: pool}
spec:
  providers:
    - {name: claude, type: anthropic, model: claude-sonnet-4-5,
       secretRef: {name: llm-keys, key: anthropic}}
    - {name: house, type: openai, model: house-model-7b, baseURL: "https://llm.internal.example/v1",
       secretRef: {name: llm-keys, key: house}}
    - {name: local, type: onnx, model: smollm2}
"""


def pool_condition(kubectl: Kubectl, type_: str) -> dict[str, Any] | None:
    status = (get(kubectl, "providerpool", "pool") or {}).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


@pytest.mark.usefixtures("operator")
def test_a_price_no_table_knows_shows_on_the_pool_and_its_pending_agents_at_once(
    kubectl: Kubectl,
) -> None:
    kubectl.apply(POOL)
    # No Secret: the agents stay Pending and no pod is made, yet they say it.
    kubectl.apply(agent("frugal", budget={"limit": 5}))
    kubectl.apply(agent("open-ended"))

    unknown = eventually(lambda: pool_condition(kubectl, "PriceUnknown"), timeout=30,
                         what="PriceUnknown on the pool")  # fmt: skip
    assert (unknown["status"], unknown["reason"]) == ("True", "NoPriceForModel")
    assert "house: genai-prices" in unknown["message"]
    assert "'house-model-7b' at base URL https://llm.internal.example/v1" in unknown["message"]
    assert "claude" not in unknown["message"]
    print(unknown["message"])
    prices = {
        p["name"]: p["price"] for p in get(kubectl, "providerpool", "pool")["status"]["providers"]
    }
    assert prices["house"] == {"source": "unknown"} and prices["local"]["source"] == "local"
    assert prices["claude"]["source"].startswith("genai-prices ")
    assert prices["claude"]["inputPerMillion"] > 0

    for name, rule in (("frugal", "never calls them"), ("open-ended", "counted at $0")):
        held = eventually(lambda n=name: conditions(kubectl, n).get("PriceUnknown"), timeout=30,
                          what=f"PriceUnknown on {name}")  # fmt: skip
        assert held["status"] == "True" and rule in held["message"], held
        assert get(kubectl, "llmagent", name)["status"]["phase"] == "Pending"
        assert conditions(kubectl, name)["PoolResolved"]["reason"] == "SecretNotFound"
        assert get(kubectl, "deployment", name) is None
    described = eventually(lambda: (lambda t: t if "PriceUnknown" in t[t.index("Events:"):]
                                    else None)(kubectl("describe", "providerpool", "pool").stdout),
                           timeout=30, what="the PriceUnknown Event on the pool")  # fmt: skip
    print(described)
    assert "Warning  PriceUnknown" in described[described.index("Events:") :]
    print(kubectl("describe", "llmagent", "frugal").stdout)

    # Pricing the provider clears it on the pool and on the agents.
    patch = [{"op": "add", "path": "/spec/providers/1/pricing",
              "value": {"inputPerMillion": 0.2, "outputPerMillion": 0.4}}]  # fmt: skip
    kubectl("patch", "providerpool", "pool", "--type=json", "-p", json.dumps(patch))
    # As docs/pricing.md says a deployment pipeline may wait for it:
    waited = kubectl("wait", "--for=condition=PriceUnknown=false", "providerpool/pool",
                     "--timeout=30s", check=False)  # fmt: skip
    assert waited.returncode == 0, waited.stderr
    eventually(lambda: "PricesKnown" in kubectl("describe", "providerpool", "pool").stdout.split(
        "Events:")[1], timeout=30, what="the PricesKnown Event")  # fmt: skip
    for name in ("frugal", "open-ended"):
        eventually(lambda n=name: conditions(kubectl, n)["PriceUnknown"]["reason"] == "PricesKnown",
                   timeout=30, what=f"PriceUnknown False on {name}")  # fmt: skip
