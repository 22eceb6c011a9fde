"""A Llama forward pass in plain numpy: the yardstick the ONNX graph is measured against.

Written from the architecture's definition, not from the graph builder: RMSNorm, rotary
embeddings on interleaved pairs, grouped-query causal attention, SwiGLU.
"""

from __future__ import annotations

import numpy as np

from llmagents.onnx.weights import LlamaConfig, LlamaWeights


def _rms(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _rotate(x: np.ndarray, theta: float) -> np.ndarray:
    """Rotate each (even, odd) pair of every head by position * frequency."""
    seq, _, dim = x.shape
    freq = 1.0 / theta ** (np.arange(0, dim, 2) / dim)
    angle = np.arange(seq)[:, None, None] * freq[None, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * np.cos(angle) - odd * np.sin(angle)
    out[..., 1::2] = even * np.sin(angle) + odd * np.cos(angle)
    return out


def last_logits(config: LlamaConfig, weights: LlamaWeights, tokens: list[int]) -> np.ndarray:
    """Logits after the last of ``tokens``, computed in float64."""
    seq, heads, kv_heads, dim = len(tokens), config.num_heads, config.num_kv_heads, config.head_dim
    table = weights.embedding
    table = table if isinstance(table, np.ndarray) else table.dequantize()
    x = table[np.asarray(tokens)].astype(np.float64)
    causal = np.triu(np.full((seq, seq), -np.inf), k=1)
    for layer in weights.layers:
        h = _rms(x, layer.attn_norm, config.rms_eps)
        q = (h @ layer.q.dequantize().T).reshape(seq, heads, dim)
        k = (h @ layer.k.dequantize().T).reshape(seq, kv_heads, dim)
        v = (h @ layer.v.dequantize().T).reshape(seq, kv_heads, dim)
        q, k = _rotate(q, config.rope_theta), _rotate(k, config.rope_theta)
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
        scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(dim) + causal
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        attn = np.einsum("hqk,khd->qhd", probs, v).reshape(seq, heads * dim)
        x = x + attn @ layer.o.dequantize().T
        h = _rms(x, layer.ffn_norm, config.rms_eps)
        gate = h @ layer.gate.dequantize().T
        up = h @ layer.up.dequantize().T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ layer.down.dequantize().T
    return _rms(x[-1], weights.final_norm, config.rms_eps) @ weights.lm_head.dequantize().T
