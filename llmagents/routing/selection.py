"""Which providers a call may use: the request's ``model`` and the capabilities it needs.

A gateway client names a ``model``. It selects, in this order: a provider by its name, the
providers serving a model of that name, the providers of an alias in the pool's ``models``
(``smart: [claude, gpt]``), and otherwise the pool's ``defaultModel`` (an alias or a
provider), or the whole pool when that is unset, so that an agent written for
``gpt-4o`` still runs on a pool without it.

A provider's capabilities (tools, vision, JSON schema, streaming) are its pool entry's
``capabilities`` where set, else the default for its type and model: the remote protocols
translate all four; a few older OpenAI models lack some; the ONNX sidecar (a small local
text model) only streams. The engine skips a provider lacking what a request needs.
"""

from __future__ import annotations

from llmagents.api.pool import ProviderPoolSpec, ProviderSpec, ProviderType
from llmagents.chat import Capability

ALL = frozenset(Capability)
ONNX_CAPABILITIES = frozenset({Capability.STREAMING})
"""What the ONNX sidecar can do; it declares the same on its ``/v1/models``."""

_MODEL_LACKS: tuple[tuple[str, frozenset[Capability]], ...] = (
    # OpenAI models that predate image input and structured outputs.
    ("gpt-3.5", frozenset({Capability.VISION, Capability.JSON_SCHEMA})),
    ("gpt-4-0613", frozenset({Capability.VISION, Capability.JSON_SCHEMA})),
    # The first reasoning previews took neither tools, images, schemas nor streams.
    ("o1-mini", ALL),
    ("o1-preview", ALL),
)


def default_capabilities(kind: ProviderType, model: str) -> frozenset[Capability]:
    """What a provider of this type serving this model can do when its spec says nothing."""
    if kind is ProviderType.ONNX:
        return ONNX_CAPABILITIES
    lacks: frozenset[Capability] = frozenset()
    if kind is ProviderType.OPENAI:
        name = model.rsplit("/", 1)[-1]  # OpenRouter's "openai/gpt-3.5-turbo"
        for prefix, missing in _MODEL_LACKS:
            if name.startswith(prefix):
                lacks = missing
                break
    return ALL - lacks


def capabilities(spec: ProviderSpec) -> frozenset[Capability]:
    """The provider's capabilities: its spec's where stated, the defaults elsewhere."""
    have = set(default_capabilities(spec.type, spec.model))
    stated = spec.capabilities
    if stated is not None:
        for capability, value in (
            (Capability.TOOLS, stated.tools),
            (Capability.VISION, stated.vision),
            (Capability.JSON_SCHEMA, stated.json_schema),
            (Capability.STREAMING, stated.streaming),
        ):
            if value is True:
                have.add(capability)
            elif value is False:
                have.discard(capability)
    return frozenset(have)


def providers_for(pool: ProviderPoolSpec, model: str | None) -> frozenset[str] | None:
    """The providers a request naming ``model`` may use; ``None`` means the whole pool."""
    if model:
        names = [p.name for p in pool.providers]
        if model in names:
            return frozenset({model})
        serving = frozenset(p.name for p in pool.providers if p.model == model)
        if serving:
            return serving
        if pool.models and model in pool.models:
            return frozenset(pool.models[model])
    default = pool.default_model
    if default is None:
        return None
    if pool.models and default in pool.models:
        return frozenset(pool.models[default])
    return frozenset({default})


def askable_models(pool: ProviderPoolSpec) -> list[tuple[str, str]]:
    """``(name, owner)`` of everything a client may send as ``model``: each provider's model
    (owned by the provider), each provider's name, and each alias (owned by ``alias``)."""
    seen: set[str] = set()
    listed: list[tuple[str, str]] = []
    for name, owner in (
        *((p.model, p.name) for p in pool.providers),
        *((p.name, p.name) for p in pool.providers),
        *((alias, "alias") for alias in pool.models or {}),
    ):
        if name not in seen:
            seen.add(name)
            listed.append((name, owner))
    return listed
