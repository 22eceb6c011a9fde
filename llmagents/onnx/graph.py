"""The Llama decoder as an ONNX graph, built node by node from plain numpy weights.

Both the GGUF converter (the real SmolLM2 model) and the tiny test model go through
``build_decoder``, so the fast unit tests exercise the very graph the sidecar serves.

The graph is onnxruntime's usual decoder layout with a KV cache:

- inputs ``input_ids`` int64 [batch, seq], ``attention_mask`` int64 [batch, past + seq],
  ``past_key_values.{i}.key`` / ``.value`` float32 [batch, kv_heads, past, head_dim];
- outputs ``logits`` float32 [batch, 1, vocab] (the last position only: generation needs
  nothing else, and projecting every prompt position onto a 49152-word vocabulary would
  dominate prefill), ``present.{i}.key`` / ``.value`` [batch, kv_heads, past + seq, head_dim];
- model metadata ``SHARED_KV_KEY`` = "1": a past input may be bound to its present output
  with a buffer longer than the sequence (``GroupQueryAttention`` then writes only the new
  positions); the decoder relies on it.

The weights it is built from (``LlamaConfig``, ``LlamaWeights`` and its projections) are
plain numpy data in ``weights``.

Each layer is ``x += Attention(RMSNorm(x)); x += MLP(RMSNorm(x))`` (each residual add fused
into the next norm, ``SkipSimplifiedLayerNormalization``) with

- attention: one fused QKV projection, packed into onnxruntime's ``GroupQueryAttention``,
  which applies the rotary embedding itself (interleaved pairs, the layout llama.cpp's
  converter gives Llama's Q and K weights), keeps the KV cache in BNSH and masks causally;
- MLP: SwiGLU, ``down(silu(gate(x)) * up(x))`` with gate and up fused in one projection.

A projection is either a float matrix (``MatMul``) or 4/8-bit blocks (``MatMulNBits``). GGUF's
Q4_1 stores ``w = d * q + m`` per block of 32; ``MatMulNBits`` computes ``(q - 8) * d``, so the
missing ``(m + 8 d)`` per block becomes a second, tiny matmul over the input's block sums.
That keeps the GGUF codes bit for bit instead of quantising a second time.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from llmagents.onnx.decoder import SHARED_KV_KEY
from llmagents.onnx.weights import (
    BLOCK_SIZE,
    BlockLinear,
    FloatLinear,
    Linear,
    LlamaConfig,
    LlamaWeights,
    concat_linears,
)

OPSET = 17
MS_DOMAIN = "com.microsoft"


def rope_tables(config: LlamaConfig) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin caches (max_positions, head_dim / 2) for ``GroupQueryAttention``."""
    inv_freq = 1.0 / config.rope_theta ** (
        np.arange(0, config.head_dim, 2, dtype=np.float64) / config.head_dim
    )
    angles = np.outer(np.arange(config.max_positions, dtype=np.float64), inv_freq)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


class _Graph:
    """Collects nodes and initializers; every helper returns the name of its output."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self._count = 0
        self._shared: dict[str, str] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    @overload
    def op(
        self,
        op_type: str,
        inputs: list[str],
        *,
        name: str = ...,
        domain: str = ...,
        outputs: Literal[1] = ...,
        **attrs: Any,
    ) -> str: ...

    @overload
    def op(
        self,
        op_type: str,
        inputs: list[str],
        *,
        name: str = ...,
        domain: str = ...,
        outputs: int | list[str],
        **attrs: Any,
    ) -> list[str]: ...

    def op(
        self,
        op_type: str,
        inputs: list[str],
        *,
        name: str = "",
        domain: str = "",
        outputs: int | list[str] = 1,
        **attrs: Any,
    ) -> str | list[str]:
        """One node; its output's name, or the names of its several outputs."""
        self._count += 1
        base = name or f"{op_type.lower()}_{self._count}"
        names = (
            outputs
            if isinstance(outputs, list)
            else ([base] if outputs == 1 else [f"{base}/out{i}" for i in range(outputs)])
        )
        self.nodes.append(
            helper.make_node(op_type, inputs, names, name=base, domain=domain, **attrs)
        )
        return str(names[0]) if len(names) == 1 else [str(n) for n in names]

    def linear(self, x: str, w: Linear, name: str, *, accuracy_level: int) -> str:
        if isinstance(w, FloatLinear):
            weight_t = self.const(f"{name}.weight_t", w.weight.T)
            return self.op("MatMul", [x, weight_t], name=name)
        n, blocks = w.scales.shape
        y = self.op(
            "MatMulNBits",
            [x, self.const(f"{name}.codes", w.codes), self.const(f"{name}.scales", w.scales)],
            name=name,
            domain=MS_DOMAIN,
            K=blocks * BLOCK_SIZE,
            N=n,
            bits=w.bits,
            block_size=BLOCK_SIZE,
            accuracy_level=accuracy_level,
        )
        if w.offsets is None:
            return y
        # sum_i x_i * offset_b over each block b == (block sums of x) @ offsets.T, and the
        # block sums are x @ a 0/1 matrix (one MatMul is cheaper than Reshape + ReduceSum).
        sums = self.op("MatMul", [x, self._block_summer(blocks)], name=f"{name}/block_sums")
        offsets_t = self.const(f"{name}.offsets_t", w.offsets.T.astype(np.float32))
        correction = self.op("MatMul", [sums, offsets_t], name=f"{name}/offset")
        return self.op("Add", [y, correction], name=f"{name}/sum")

    def embed(self, ids: str, table: np.ndarray | BlockLinear) -> str:
        if isinstance(table, np.ndarray):
            return self.op("Gather", [self.const("embed.weight", table), ids], name="embed", axis=0)
        if table.bits != 8 or table.offsets is not None:
            raise ValueError("a block-quantised embedding must be 8-bit without offsets")
        # The same codes as an 8-bit MatMulNBits weight, one row per token.
        codes = self.const("embed.codes", table.unpacked_codes())
        return self.op(
            "GatherBlockQuantized",
            [codes, ids, self.const("embed.scales", table.scales)],
            name="embed",
            domain=MS_DOMAIN,
            bits=8,
            block_size=BLOCK_SIZE,
            gather_axis=0,
            quantize_axis=1,
        )

    def _block_summer(self, blocks: int) -> str:
        name = f"block_sums.{blocks}"
        if name not in self._shared:
            summer = np.repeat(np.eye(blocks, dtype=np.float32), BLOCK_SIZE, axis=0)
            self._shared[name] = self.const(name, summer)
        return self._shared[name]

    def skip_rms_norm(
        self, x: str, residual: str, weight: np.ndarray, name: str, eps: float
    ) -> tuple[str, str]:
        """``RMSNorm(residual + x)`` and ``residual + x`` in one node."""
        scale = self.const(f"{name}.weight", weight.astype(np.float32))
        normed, _, _, total = self.op(
            "SkipSimplifiedLayerNormalization",
            [x, residual, scale],
            name=name,
            domain=MS_DOMAIN,
            outputs=[name, "", "", f"{name}/residual"],
            epsilon=eps,
        )
        return normed, total

    def rms_norm(self, x: str, weight: np.ndarray, name: str, eps: float) -> str:
        scale = self.const(f"{name}.weight", weight.astype(np.float32))
        return self.op(
            "SimplifiedLayerNormalization",
            [x, scale],
            name=name,
            axis=-1,
            epsilon=eps,
            stash_type=1,
        )


def build_decoder(
    config: LlamaConfig,
    weights: LlamaWeights,
    *,
    accuracy_level: int = 4,
    kv_cache: bool = True,
) -> onnx.ModelProto:
    """The decoder graph; ``accuracy_level`` 4 lets MatMulNBits compute in int8 (as llama.cpp
    does for quantised weights), 0 keeps float32 activations. Without ``kv_cache`` the
    graph has no past inputs nor present outputs and must be fed the whole sequence."""
    g = _Graph()
    g.const("axes_last", np.array([-1], np.int64))
    cos, sin = rope_tables(config)
    g.const("rope.cos", cos)
    g.const("rope.sin", sin)

    # GroupQueryAttention wants each sequence's last index and the padded total length.
    mask_sum = g.op("ReduceSum", ["attention_mask", "axes_last"], name="mask_sum", keepdims=0)
    one = g.const("one_i64", np.array(1, np.int64))
    last_index = g.op("Sub", [mask_sum, one], name="last_index")
    seqlens_k = g.op("Cast", [last_index], name="seqlens_k", to=TensorProto.INT32)
    mask_shape = g.op("Shape", ["attention_mask"], name="mask_shape")
    total = g.op("Gather", [mask_shape, one], name="total_len_i64", axis=0)
    total_len = g.op("Cast", [total], name="total_len", to=TensorProto.INT32)

    x = g.embed("input_ids", weights.embedding)
    h = g.rms_norm(x, weights.layers[0].attn_norm, "layers.0.attn_norm", config.rms_eps)
    inputs, outputs = [], []
    for i, layer in enumerate(weights.layers):
        p = f"layers.{i}"
        past_k, past_v = f"past_key_values.{i}.key", f"past_key_values.{i}.value"
        present_k, present_v = f"present.{i}.key", f"present.{i}.value"
        if kv_cache:
            inputs += [past_k, past_v]
            outputs += [present_k, present_v]
        else:
            past_k = past_v = ""  # GroupQueryAttention's past inputs are optional

        qkv = g.linear(
            h,
            concat_linears([layer.q, layer.k, layer.v]),
            f"{p}.qkv",
            accuracy_level=accuracy_level,
        )
        # Packed QKV: GroupQueryAttention splits it itself (key and value inputs left empty).
        attn, _, _ = g.op(
            "GroupQueryAttention",
            [qkv, "", "", past_k, past_v, seqlens_k, total_len, "rope.cos", "rope.sin"],
            name=f"{p}.attn",
            domain=MS_DOMAIN,
            outputs=[f"{p}.attn", present_k, present_v],
            num_heads=config.num_heads,
            kv_num_heads=config.num_kv_heads,
            scale=1.0 / math.sqrt(config.head_dim),
            do_rotary=1,
            rotary_interleaved=1,
        )
        o = g.linear(attn, layer.o, f"{p}.o_proj", accuracy_level=accuracy_level)
        h, x = g.skip_rms_norm(o, x, layer.ffn_norm, f"{p}.ffn_norm", config.rms_eps)
        gate_up = g.linear(
            h, concat_linears([layer.gate, layer.up]), f"{p}.gate_up", accuracy_level=accuracy_level
        )
        gate, up = g.op("Split", [gate_up], name=f"{p}.gate_up_split", axis=-1, outputs=2)
        silu = g.op("Mul", [gate, g.op("Sigmoid", [gate], name=f"{p}.sigmoid")], name=f"{p}.silu")
        down = g.linear(
            g.op("Mul", [silu, up], name=f"{p}.swiglu"),
            layer.down,
            f"{p}.down_proj",
            accuracy_level=accuracy_level,
        )
        if i + 1 < len(weights.layers):
            next_norm = weights.layers[i + 1].attn_norm
            h, x = g.skip_rms_norm(down, x, next_norm, f"layers.{i + 1}.attn_norm", config.rms_eps)
        else:
            x = g.op("Add", [x, down], name=f"{p}.ffn_residual")

    last = g.op(
        "Slice",
        [
            x,
            g.const("last_start", np.array([-1], np.int64)),
            g.const("last_end", np.array([np.iinfo(np.int64).max], np.int64)),
            g.const("seq_axis", np.array([1], np.int64)),
        ],
        name="last_position",
    )
    h = g.rms_norm(last, weights.final_norm, "final_norm", config.rms_eps)
    logits = g.linear(h, weights.lm_head, "lm_head", accuracy_level=accuracy_level)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))

    return _model(g, config, inputs, outputs)


def _model(
    g: _Graph, config: LlamaConfig, inputs: list[str], outputs: list[str]
) -> onnx.ModelProto:
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64

    def kv(name: str, seq: str) -> Any:
        return helper.make_tensor_value_info(
            name, f32, ["batch", config.num_kv_heads, seq, config.head_dim]
        )

    graph = helper.make_graph(
        g.nodes,
        "llama_decoder",
        [
            helper.make_tensor_value_info("input_ids", i64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", i64, ["batch", "total_sequence"]),
            *[kv(name, "past_sequence") for name in inputs],
        ],
        [
            helper.make_tensor_value_info("logits", f32, ["batch", 1, config.vocab_size]),
            *[kv(name, "total_sequence") for name in outputs],
        ],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="llmagents",
    )
    model.ir_version = 8
    if outputs:  # GroupQueryAttention writes new positions into a bound past buffer itself
        helper.set_model_props(model, {SHARED_KV_KEY: "1"})
    return model
