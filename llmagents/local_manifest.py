"""The agent of a manifest for ``llmagents run``: its LLMAgent, ProviderPool, Secrets and keys.

``llmagents run -f FILE`` reads a multi-document manifest as ``kubectl apply`` would take it:
the LLMAgent (the one named, or the only one), the ProviderPool it uses from the same
namespace and the Secrets beside them. An agent without Kubernetes still needs a stable
uid (so that a later run resumes its checkpoint): it is derived from namespace and name.

API keys, first found wins, per provider: ``LLMAGENTS_API_KEY_<NAME>`` (the runner's own
variable), the vendor's usual variable by provider type (``ANTHROPIC_API_KEY``,
``GEMINI_API_KEY``, ``OPENAI_API_KEY``), then a Secret in the manifest under the provider's
``secretRef``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from llmagents.api.pool import ProviderType
from llmagents.api.runner_config import api_key_env
from llmagents.api.status import API_VERSION
from llmagents.errors import ConfigError
from llmagents.operator.objects import AgentObject, PoolObject
from llmagents.providers import check_api_key

VENDOR_KEY_ENV = {
    ProviderType.ANTHROPIC: "ANTHROPIC_API_KEY",
    ProviderType.GEMINI: "GEMINI_API_KEY",
    ProviderType.OPENAI: "OPENAI_API_KEY",
}
"""The variable each vendor's own tools read its key from."""


@dataclass(frozen=True, slots=True)
class LocalAgent:
    """An LLMAgent of a manifest with its ProviderPool and the manifest's Secrets."""

    agent: AgentObject
    pool: PoolObject
    secrets: Mapping[str, Mapping[str, str]]
    """Secret name -> key -> value, from the agent's namespace."""


def _namespace(doc: Mapping[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("namespace") or "default")


def _local_uid(namespace: str, name: str) -> str:
    # Stable across runs, so that the checkpoint of an earlier run is this agent's.
    return "local-" + hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:16]


def _secret_data(doc: Mapping[str, Any]) -> dict[str, str]:
    data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return data


def load_manifest(text: str, *, agent_name: str | None = None) -> LocalAgent:
    """The LLMAgent (the one named, or the only one) of a multi-document manifest, its pool
    and Secrets; ``ConfigError`` says what is missing or invalid."""
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    agents = [
        d for d in docs
        if d.get("kind") == "LLMAgent" and d.get("apiVersion") == API_VERSION
        and (agent_name is None or (d.get("metadata") or {}).get("name") == agent_name)
    ]  # fmt: skip
    if len(agents) != 1:
        which = f"named {agent_name!r}" if agent_name else "(pass --agent NAME to pick one)"
        raise ConfigError(f"the manifest has {len(agents)} LLMAgents {which}; need exactly one")
    body = agents[0]
    namespace = _namespace(body)
    meta = {**(body.get("metadata") or {}), "namespace": namespace}
    meta.setdefault("uid", _local_uid(namespace, str(meta.get("name"))))
    agent = AgentObject.from_body({**body, "metadata": meta})
    if agent.spec is None:
        raise ConfigError(f"LLMAgent {agent.name}: {agent.error}")
    pools = [
        d for d in docs
        if d.get("kind") == "ProviderPool" and _namespace(d) == namespace
        and (d.get("metadata") or {}).get("name") == agent.pool_name
    ]  # fmt: skip
    if not pools:
        raise ConfigError(
            f"LLMAgent {agent.name} uses ProviderPool {agent.pool_name!r}, which is not in "
            "the manifest; put both in one file (separated by ---)"
        )
    pool = PoolObject.from_body(
        {**pools[0], "metadata": {**pools[0]["metadata"], "namespace": namespace}}
    )
    if pool.spec is None:
        raise ConfigError(f"ProviderPool {pool.name}: {pool.error}")
    secrets = {
        str(d["metadata"]["name"]): _secret_data(d)
        for d in docs
        if d.get("kind") == "Secret" and _namespace(d) == namespace
    }
    return LocalAgent(agent, pool, secrets)


def local_keys(local: LocalAgent, environ: Mapping[str, str]) -> dict[str, str | None]:
    """Provider name -> API key (see the module docstring for the order); None = no key.

    Surrounding whitespace is dropped, as the runner does; a key holding a character that
    cannot go in a header is an ``InvalidApiKey`` naming the variable or Secret it came from.
    """
    assert local.pool.spec is not None
    keys: dict[str, str | None] = {}
    for provider in local.pool.spec.providers:
        ref = provider.secret_ref
        if ref is None:
            continue
        vendor = VENDOR_KEY_ENV.get(provider.type)
        sources = [
            (f"environment variable {api_key_env(provider.name)}",
             environ.get(api_key_env(provider.name))),
            (f"environment variable {vendor}", environ.get(vendor) if vendor else None),
            (f"the manifest's Secret {ref.name!r}, key {ref.key!r}",
             local.secrets.get(ref.name, {}).get(ref.key)),
        ]  # fmt: skip
        source, value = next(((s, v.strip()) for s, v in sources if v and v.strip()), ("", ""))
        if value:
            check_api_key(value, provider=provider.name, secret_ref=ref, source=source)
        keys[provider.name] = value or None
    return keys
