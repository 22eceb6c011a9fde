"""Provider adapters: one async HTTP client per provider, one error taxonomy for all of them.

``build_adapter`` turns a pool's ``ProviderSpec`` and its resolved API key into the adapter
for the provider's wire protocol. The engine calls ``complete``/``stream`` with the attempt's
timeout and reacts to the ``llmagents.errors`` type it may raise.
"""

from __future__ import annotations

from llmagents.api.pool import ProviderSpec, ProviderType, SecretKeyRef
from llmagents.errors import ConfigError, InvalidApiKey
from llmagents.keys import key_problem
from llmagents.providers.anthropic import AnthropicAdapter
from llmagents.providers.base import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    ProviderAdapter,
)
from llmagents.providers.gemini import GeminiAdapter
from llmagents.providers.openai import OpenAIAdapter

ONNX_SIDECAR_DEFAULT_PORT = 8090
"""Port of the ONNX sidecar's OpenAI-compatible server inside the agent's pod."""

DEFAULT_BASE_URLS: dict[ProviderType, str] = {
    ProviderType.ANTHROPIC: "https://api.anthropic.com",
    ProviderType.GEMINI: "https://generativelanguage.googleapis.com",
    ProviderType.OPENAI: "https://api.openai.com/v1",
    ProviderType.ONNX: f"http://127.0.0.1:{ONNX_SIDECAR_DEFAULT_PORT}/v1",
}
"""Where each provider type lives when its spec names no ``baseURL``."""

ADAPTER_TYPES: dict[ProviderType, type[ProviderAdapter]] = {
    ProviderType.ANTHROPIC: AnthropicAdapter,
    ProviderType.GEMINI: GeminiAdapter,
    ProviderType.OPENAI: OpenAIAdapter,
    ProviderType.ONNX: OpenAIAdapter,
}


def check_api_key(
    value: str, *, provider: str, secret_ref: SecretKeyRef | None, source: str | None = None
) -> None:
    """Refuse a key that cannot go in an HTTP header (``llmagents.keys``), naming where it
    came from: ``source`` when given, else the Secret key the provider's ``secretRef`` names.
    """
    # Callers strip surrounding whitespace first (the runner, run -f); a key that still has
    # some would reach the header as it is.
    problem = key_problem(value) if value == value.strip() else "has whitespace around it"
    if problem is None:
        return
    where = source or (
        f"Secret {secret_ref.name!r}, key {secret_ref.key!r}"
        if secret_ref is not None
        else "its API key variable"
    )
    raise InvalidApiKey(f"provider {provider!r}: the API key in {where} {problem}; "
                        "store the key without it")  # fmt: skip


def build_adapter(
    spec: ProviderSpec,
    *,
    api_key: str | None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    agent: str | None = None,
) -> ProviderAdapter:
    """The adapter for ``spec``; ``api_key`` is the value its ``secretRef`` resolved to,
    ``agent`` the agent it calls for (named in its log lines).

    Every type except ``onnx`` needs a key: failing here names the provider to fix instead
    of letting every call come back 401.
    """
    if not api_key and spec.type is not ProviderType.ONNX:
        raise ConfigError(
            f"provider {spec.name!r} ({spec.type.value}) has no API key: "
            "check the Secret its secretRef names"
        )
    if api_key:
        check_api_key(api_key, provider=spec.name, secret_ref=spec.secret_ref)
    return ADAPTER_TYPES[spec.type](
        name=spec.name,
        model=spec.model,
        base_url=spec.base_url or DEFAULT_BASE_URLS[spec.type],
        api_key=api_key,
        connect_timeout=connect_timeout,
        max_connections=max_connections,
        agent=agent,
    )


__all__ = [
    "ADAPTER_TYPES",
    "DEFAULT_BASE_URLS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "ONNX_SIDECAR_DEFAULT_PORT",
    "AnthropicAdapter",
    "GeminiAdapter",
    "OpenAIAdapter",
    "ProviderAdapter",
    "build_adapter",
    "check_api_key",
]
