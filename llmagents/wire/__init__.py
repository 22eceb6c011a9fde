"""One set of pydantic models per provider protocol, each shared by everything that speaks it.

``openai_chat`` (OpenAI's chat completions: the gateway's front door, the OpenAI-compatible
adapter, the ONNX sidecar and the fake OpenAI server), ``anthropic`` (the Messages API: its
adapter, its fake and the gateway's ``/v1/messages``) and ``gemini`` (generateContent: its
adapter and its fake), ``responses`` (OpenAI's Responses API: the gateway's
``/v1/responses``). Each holds the request, the answer, the stream's chunks or events and
the error body, in the protocol's own field names (``openai_chat`` and ``responses`` are
packages of one module for each part, imported from the package).

Requests are validated strictly (``max_tokens: true`` is not an integer, a temperature
outside its range or a non-finite number is refused), answers leniently (servers that
speak a protocol differ in what they fill in). Fields a model does not name are kept
(``extra="allow"``), so what a client sends that the gateway does not know passes through
to a provider of the same protocol unchanged.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A lenient protocol model: unknown fields kept, types coerced where JSON allows."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)


class StrictWireModel(WireModel):
    """A request model: types exactly as the protocol states them (no ``true`` for 1, no
    ``"1"`` for 1), unknown fields kept but required to be finite JSON."""

    model_config = ConfigDict(
        extra="allow", strict=True, populate_by_name=True, serialize_by_alias=True
    )


def finite_json(value: Any, *, depth: int = 0) -> bool:
    """Whether ``value`` (decoded JSON) holds only finite numbers and is at most 64 deep.

    Python's JSON reader accepts ``NaN`` and ``Infinity`` in fields no model names; the
    upstream JSON must be strict, so such a request is refused before any provider sees it.
    """
    if depth > 64:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_json(v, depth=depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(finite_json(v, depth=depth + 1) for v in value)
    return True


def extras(model: BaseModel) -> dict[str, Any]:
    """The fields a model kept without naming them (``extra="allow"``)."""
    return dict(model.__pydantic_extra__ or {})


__all__ = ["StrictWireModel", "WireModel", "extras", "finite_json"]
