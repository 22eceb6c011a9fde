"""Sample LLMAgent and ProviderPool bodies, as the API server would send them."""

from __future__ import annotations

from typing import Any

NAMESPACE = "team-a"


def pool_body(*, onnx: bool = True, strategy: str = "priority", generation: int = 1) -> dict:
    providers: list[dict[str, Any]] = [
        {
            "name": "claude",
            "type": "anthropic",
            "model": "claude-sonnet-4-5",
            "secretRef": {"name": "llm-keys", "key": "anthropic"},
            "priority": 10,
        },
        {
            "name": "router",
            "type": "openai",
            "model": "meta-llama/llama-3.1-8b-instruct",
            "baseURL": "http://127.0.0.1:18081/v1",
            "secretRef": {"name": "llm-keys", "key": "openrouter"},
            "priority": 20,
        },
    ]
    if onnx:
        providers.append({"name": "local", "type": "onnx", "model": "smollm2-135m", "priority": 90})
    return {
        "apiVersion": "llmagents.dev/v1alpha1",
        "kind": "ProviderPool",
        "metadata": {
            "name": "pool",
            "namespace": NAMESPACE,
            "uid": "pool-uid",
            "generation": generation,
        },
        "spec": {"providers": providers, "strategy": strategy},
    }


def agent_body(**spec: Any) -> dict:
    base: dict[str, Any] = {
        "poolRef": {"name": "pool"},
        "work": {"tasks": [{"name": "t1", "prompt": "one"}, {"name": "t2", "prompt": "two"}]},
    }
    base.update(spec)
    return {
        "apiVersion": "llmagents.dev/v1alpha1",
        "kind": "LLMAgent",
        "metadata": {
            "name": "writer",
            "namespace": NAMESPACE,
            "uid": "agent-uid",
            "generation": 1,
            "creationTimestamp": "2030-01-01T00:00:00Z",
        },
        "spec": base,
        "status": {},
    }
