"""The provider-neutral embeddings call: texts in, one vector per text out.

The gateway's ``/v1/embeddings`` reads OpenAI's request into an ``EmbeddingRequest``; the
engine sends it to a provider of the pool that has an embedding model (``embeddings`` in
its spec), whose adapter speaks its protocol (OpenAI's ``/embeddings``, Gemini's
``batchEmbedContents``); the answer's ``usage`` is charged at the embedding model's price.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmagents.chat import Usage


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """Texts to embed; ``dimensions`` asks for shorter vectors where the model can."""

    inputs: tuple[str, ...]
    dimensions: int | None = None


@dataclass(slots=True)
class Embeddings:
    """One vector per input, in order, and the tokens the provider counted (the gateway's
    estimate when the provider reports none, as Gemini does)."""

    vectors: list[list[float]]
    usage: Usage
    model: str
