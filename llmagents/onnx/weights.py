"""The weights of a Llama decoder as plain numpy data, before any graph is built.

The GGUF reader (``gguf_source``) and the tiny test model (``tiny``) both produce these;
``graph.build_decoder`` turns them into the ONNX graph. A projection is either a float
matrix (``FloatLinear``) or block-quantised codes with a scale and an optional offset per
block of ``BLOCK_SIZE`` weights (``BlockLinear``, MatMulNBits' layout); both can be
dequantised to check a graph against a plain numpy forward pass. This module needs numpy
only, not the ``convert`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK_SIZE = 32
"""Weights per quantisation block along the input dimension (GGUF's and MatMulNBits')."""


@dataclass(frozen=True, slots=True)
class LlamaConfig:
    """Shape of a Llama-architecture decoder."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    rope_theta: float
    rms_eps: float
    max_positions: int

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


@dataclass(slots=True)
class FloatLinear:
    """``y = x @ weight.T`` with a float32 ``weight`` of shape (out, in)."""

    weight: np.ndarray

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def dequantize(self) -> np.ndarray:
        return self.weight


@dataclass(slots=True)
class BlockLinear:
    """Block-quantised ``y = x @ W.T``: ``W[n, 32b + i] = (code - 2**(bits-1)) * scale + offset``.

    ``codes`` is MatMulNBits' packed layout (out, in/32, 32*bits/8), low nibble first;
    ``scales`` and the optional ``offsets`` are (out, in/32).
    """

    codes: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray | None
    bits: int

    @property
    def out_features(self) -> int:
        return int(self.codes.shape[0])

    def unpacked_codes(self) -> np.ndarray:
        """Codes as one uint8 per weight, shape (out, in)."""
        if self.bits == 8:
            return self.codes.reshape(self.codes.shape[0], -1)
        low, high = self.codes & 0x0F, self.codes >> 4
        return np.stack([low, high], axis=-1).reshape(self.codes.shape[0], -1)

    def dequantize(self) -> np.ndarray:
        n, blocks = self.scales.shape
        centred = self.unpacked_codes().astype(np.float32) - 2 ** (self.bits - 1)
        w = centred.reshape(n, blocks, BLOCK_SIZE) * self.scales[..., None]
        if self.offsets is not None:
            w = w + self.offsets[..., None]
        return np.asarray(w.reshape(n, blocks * BLOCK_SIZE))


Linear = FloatLinear | BlockLinear


@dataclass(slots=True)
class LayerWeights:
    attn_norm: np.ndarray
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    ffn_norm: np.ndarray
    gate: Linear
    up: Linear
    down: Linear


@dataclass(slots=True)
class LlamaWeights:
    """All weights; ``embedding`` is (vocab, hidden), float32 or 8-bit blocks, and the
    ``lm_head`` may hold the same values (tied)."""

    embedding: np.ndarray | BlockLinear
    layers: list[LayerWeights]
    final_norm: np.ndarray
    lm_head: Linear


def concat_linears(parts: list[Linear]) -> Linear:
    """Stack projections that read the same input into one (along the output dimension)."""
    first = parts[0]
    if isinstance(first, FloatLinear):
        return FloatLinear(np.concatenate([_as_float(p).weight for p in parts], axis=0))
    blocks = [_as_block(p, first.bits) for p in parts]
    offsets = None
    if any(b.offsets is not None for b in blocks):
        offsets = np.concatenate(
            [b.offsets if b.offsets is not None else np.zeros_like(b.scales) for b in blocks]
        )
    return BlockLinear(
        codes=np.concatenate([b.codes for b in blocks]),
        scales=np.concatenate([b.scales for b in blocks]),
        offsets=offsets,
        bits=first.bits,
    )


def _as_float(part: Linear) -> FloatLinear:
    if not isinstance(part, FloatLinear):
        raise TypeError("cannot fuse float and block-quantised projections")
    return part


def _as_block(part: Linear, bits: int) -> BlockLinear:
    if not isinstance(part, BlockLinear) or part.bits != bits:
        raise TypeError("fused projections need the same quantisation")
    return part
