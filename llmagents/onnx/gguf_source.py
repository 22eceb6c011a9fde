"""Reading a Llama-architecture GGUF file: shape, weights, tokenizer and chat template.

Quantised tensors keep their codes. GGUF's Q4_0, Q4_1 and Q8_0 blocks hold 32 weights
along the input dimension, exactly MatMulNBits' block, so only the byte order changes:

- Q4_1 block = f16 ``d``, f16 ``m``, 16 bytes; byte j holds weight j (low nibble) and
  weight j + 16 (high nibble); ``w = d * q + m``.
- Q4_0 block = f16 ``d``, 16 bytes laid out the same; ``w = d * (q - 8)``.
- Q8_0 block = f16 ``d``, 32 signed bytes; ``w = d * q``.

Other types (and every tensor with ``weights="fp32"``) are dequantised to float32 by the
``gguf`` package. Q and K need no un-permuting: llama.cpp's converter stores their rows so
that rotary pairs are adjacent, and the graph rotates interleaved pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, ReaderTensor
from gguf.quants import dequantize
from tokenizers import Tokenizer

from llmagents.errors import ConfigError
from llmagents.onnx.tokenizer import byte_level_bpe
from llmagents.onnx.weights import (
    BLOCK_SIZE,
    BlockLinear,
    FloatLinear,
    LayerWeights,
    Linear,
    LlamaConfig,
    LlamaWeights,
)

logger = logging.getLogger(__name__)

WeightFormat = Literal["q4", "fp32"]
"""``q4``: GGUF's 4-bit (and 8-bit) blocks as MatMulNBits; ``fp32``: everything float32."""

_CONTROL_TOKEN_TYPES = (3, 4)  # llama.cpp's CONTROL and USER_DEFINED: matched whole, never split


@dataclass(slots=True)
class GgufModel:
    config: LlamaConfig
    weights: LlamaWeights
    tokenizer: Tokenizer
    chat_template: str
    bos_token: str | None
    eos_token: str
    eos_token_id: int


def read_gguf(path: Path, *, weights: WeightFormat = "q4") -> GgufModel:
    """Everything the converter needs from ``path``; ``ConfigError`` if it is not a Llama."""
    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable GGUF file: {exc}") from None
    meta = _Metadata(reader, path)
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise ConfigError(f"{path}: architecture {arch!r} is not supported, only 'llama'")
    heads = int(meta.get("llama.attention.head_count"))
    hidden = int(meta.get("llama.embedding_length"))
    tokens = [str(t) for t in meta.get("tokenizer.ggml.tokens")]
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=hidden,
        intermediate_size=int(meta.get("llama.feed_forward_length")),
        num_layers=int(meta.get("llama.block_count")),
        num_heads=heads,
        num_kv_heads=int(meta.get("llama.attention.head_count_kv", heads)),
        rope_theta=float(meta.get("llama.rope.freq_base", 10000.0)),
        rms_eps=float(meta.get("llama.attention.layer_norm_rms_epsilon")),
        max_positions=int(meta.get("llama.context_length")),
    )
    rope_dims = int(meta.get("llama.rope.dimension_count", config.head_dim))
    if rope_dims != config.head_dim:
        raise ConfigError(
            f"{path}: partial rotary ({rope_dims} of {config.head_dim}) is not supported"
        )
    tensors = {t.name: t for t in reader.tensors}
    llama_weights = _weights(tensors, config, weights, path)
    eos_id = int(meta.get("tokenizer.ggml.eos_token_id"))
    bos_id = meta.get("tokenizer.ggml.bos_token_id", None)
    return GgufModel(
        config=config,
        weights=llama_weights,
        tokenizer=_tokenizer(meta, tokens, path),
        chat_template=str(meta.get("tokenizer.chat_template")),
        bos_token=tokens[int(bos_id)] if bos_id is not None else None,
        eos_token=tokens[eos_id],
        eos_token_id=eos_id,
    )


class _Metadata:
    _MISSING = object()

    def __init__(self, reader: GGUFReader, path: Path) -> None:
        self._fields = reader.fields
        self._path = path

    def get(self, key: str, default: object = _MISSING) -> Any:
        field = self._fields.get(key)
        if field is None:
            if default is self._MISSING:
                raise ConfigError(f"{self._path} lacks the metadata key {key}")
            return default
        return field.contents()


def _pair(merge: str) -> tuple[str, str]:
    left, _, right = merge.partition(" ")
    return left, right


def _tokenizer(meta: _Metadata, tokens: list[str], path: Path) -> Tokenizer:
    if meta.get("tokenizer.ggml.model") != "gpt2":
        raise ConfigError(f"{path}: only GPT-2 style BPE tokenizers are supported")
    types = list(meta.get("tokenizer.ggml.token_type"))
    merges = [_pair(str(m)) for m in meta.get("tokenizer.ggml.merges")]
    special = [t for t, kind in zip(tokens, types, strict=False) if kind in _CONTROL_TOKEN_TYPES]
    vocab = {token: i for i, token in enumerate(tokens)}
    return byte_level_bpe(vocab, merges, special)


def _weights(
    tensors: dict[str, ReaderTensor], config: LlamaConfig, fmt: WeightFormat, path: Path
) -> LlamaWeights:
    def tensor(name: str) -> ReaderTensor:
        if name not in tensors:
            raise ConfigError(f"{path} has no tensor {name}")
        return tensors[name]

    def norm(name: str) -> np.ndarray:
        return np.asarray(_dequantized(tensor(name)), dtype=np.float32).reshape(-1)

    def linear(name: str) -> Linear:
        return _linear(tensor(name), fmt)

    layers = []
    for i in range(config.num_layers):
        p = f"blk.{i}"
        layers.append(
            LayerWeights(
                attn_norm=norm(f"{p}.attn_norm.weight"),
                q=linear(f"{p}.attn_q.weight"),
                k=linear(f"{p}.attn_k.weight"),
                v=linear(f"{p}.attn_v.weight"),
                o=linear(f"{p}.attn_output.weight"),
                ffn_norm=norm(f"{p}.ffn_norm.weight"),
                gate=linear(f"{p}.ffn_gate.weight"),
                up=linear(f"{p}.ffn_up.weight"),
                down=linear(f"{p}.ffn_down.weight"),
            )
        )
    embedding = tensor("token_embd.weight")
    # Without output.weight the LM head is the embedding (tied), as in SmolLM2.
    head = tensors.get("output.weight", embedding)
    # An 8-bit table stays 8-bit (GatherBlockQuantized): a quarter of float32's memory.
    table = _linear(embedding, fmt)
    return LlamaWeights(
        embedding=table
        if isinstance(table, BlockLinear) and table.bits == 8 and table.offsets is None
        else _dequantized(embedding),
        layers=layers,
        final_norm=norm("output_norm.weight"),
        lm_head=_linear(head, fmt),
    )


def _dequantized(t: ReaderTensor) -> np.ndarray:
    return np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)


def _linear(t: ReaderTensor, fmt: WeightFormat) -> Linear:
    kind = t.tensor_type
    if fmt == "fp32" or kind not in _BLOCK_READERS:
        if fmt == "q4" and kind not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            logger.warning("%s is %s: kept as float32", t.name, kind.name)
        return FloatLinear(_dequantized(t))
    return _BLOCK_READERS[kind](np.asarray(t.data))


def _blocks(raw: np.ndarray, block_bytes: int) -> np.ndarray:
    """(rows, bytes) -> (rows, blocks, block_bytes)."""
    return raw.reshape(raw.shape[0], -1, block_bytes)


def _f16(blocks: np.ndarray, offset: int) -> np.ndarray:
    return blocks[..., offset : offset + 2].copy().view(np.float16)[..., 0].astype(np.float32)


def _nibbles_low_first(qs: np.ndarray) -> np.ndarray:
    """GGUF's (j, j + 16) nibble pairs -> MatMulNBits' (2j, 2j + 1) pairs."""
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # weight order 0..31
    return np.asarray(codes[..., 0::2] | (codes[..., 1::2] << 4), dtype=np.uint8)


def _q4_1(raw: np.ndarray) -> BlockLinear:
    blocks = _blocks(raw, 4 + BLOCK_SIZE // 2)
    d, m = _f16(blocks, 0), _f16(blocks, 2)
    # d * q + m == d * (q - 8) + (m + 8 d): MatMulNBits' default zero point is 8.
    return BlockLinear(
        codes=_nibbles_low_first(blocks[..., 4:]),
        scales=d,
        offsets=(m + 8.0 * d).astype(np.float32),
        bits=4,
    )


def _q4_0(raw: np.ndarray) -> BlockLinear:
    blocks = _blocks(raw, 2 + BLOCK_SIZE // 2)
    return BlockLinear(
        codes=_nibbles_low_first(blocks[..., 2:]), scales=_f16(blocks, 0), offsets=None, bits=4
    )


def _q8_0(raw: np.ndarray) -> BlockLinear:
    blocks = _blocks(raw, 2 + BLOCK_SIZE)
    signed = blocks[..., 2:].view(np.int8).astype(np.int16)
    # MatMulNBits' default 8-bit zero point is 128.
    return BlockLinear(
        codes=(signed + 128).astype(np.uint8), scales=_f16(blocks, 0), offsets=None, bits=8
    )


_BLOCK_READERS = {
    GGMLQuantizationType.Q4_1: _q4_1,
    GGMLQuantizationType.Q4_0: _q4_0,
    GGMLQuantizationType.Q8_0: _q8_0,
}
