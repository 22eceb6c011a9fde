"""The demo's manifest: examples/quickstart.yaml pointed at the demo's fakes or real services.

``make demo`` itself is run end to end by hand (README's first screen shows the table it
printed); it needs SmolLM2 and a minute, too much for the suite. What it applies is
checked here.
"""

from __future__ import annotations

import yaml

from llmagents.local_manifest import load_manifest
from tooling.demo import QUICKSTART, quickstart_docs

FAKES = {"anthropic": "http://127.0.0.1:41001", "openai": "http://127.0.0.1:41002"}


def _providers(docs: list[dict]) -> dict[str, dict]:
    pool = next(d for d in docs if d["kind"] == "ProviderPool")
    return {p["name"]: p for p in pool["spec"]["providers"]}


def test_the_quickstart_points_at_the_fakes_and_keeps_the_local_model_in_the_pod():
    docs = quickstart_docs(QUICKSTART.read_text(), fakes=FAKES, real={})
    providers = _providers(docs)
    assert providers["claude"]["baseURL"] == "http://127.0.0.1:41001"
    assert providers["gpt"]["baseURL"] == "http://127.0.0.1:41002/v1"
    assert "baseURL" not in providers["local"]  # the runner pod's ONNX sidecar
    assert [d["kind"] for d in docs] == ["Secret", "ProviderPool", "LLMAgent"]


def test_real_keys_replace_the_fakes_of_their_providers_only():
    real = {"anthropic": "sk-ant-real-0123456789", "gemini": "gm-real-0123456789"}
    docs = quickstart_docs(QUICKSTART.read_text(), fakes={"openai": FAKES["openai"]}, real=real)
    providers = _providers(docs)
    assert "baseURL" not in providers["claude"]
    assert "baseURL" not in providers["gemini"]
    assert providers["gpt"]["baseURL"] == "http://127.0.0.1:41002/v1"
    secret = docs[0]["stringData"]
    assert secret["anthropic"] == real["anthropic"] and secret["gemini"] == real["gemini"]
    # The result is still a valid manifest: the pool and its Secret resolve for the runner.
    local = load_manifest(yaml.safe_dump_all(docs))
    assert {p.name for p in local.pool.spec.providers} == {"claude", "gemini", "gpt", "local"}
