"""A tiny random Llama model directory, built in milliseconds, for tests and demos.

It goes through the same graph builder as the converted SmolLM2 (block-quantised
projections with per-block offsets, an 8-bit LM head tied to the embedding, GQA with
rotary embeddings, a KV cache) and gets a byte-level BPE tokenizer trained on a few
sentences plus SmolLM2's ChatML tokens, so every code path of the sidecar runs. Its
answers are deterministic noise: other engineers' tests use it to prove the plumbing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from llmagents.onnx.graph import build_decoder
from llmagents.onnx.model_dir import MODEL_FILE, TOKENIZER_FILE, write_metadata
from llmagents.onnx.tokenizer import train_byte_level_bpe
from llmagents.onnx.weights import BLOCK_SIZE, BlockLinear, LayerWeights, LlamaConfig, LlamaWeights

TINY_MODEL_NAME = "tiny-llama"

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
"""SmolLM2's first three tokens, with the same ids (0, 1, 2)."""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "The agent keeps answering while every paid provider is down.",
    "A budget is spent one token at a time; the local model costs nothing.",
    "Hello! How can I help you today? The weather is fine and the queue is short.",
    "Numbers like 12345 and 2026 are split into digits before merging.",
]


def tiny_config(vocab_size: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        rope_theta=10000.0,
        rms_eps=1e-5,
        max_positions=512,
    )


def build_tiny_model(
    directory: Path, *, seed: int = 0, accuracy_level: int = 4, kv_cache: bool = True
) -> Path:
    """Write a complete model directory (graph, tokenizer, metadata) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = train_byte_level_bpe(_CORPUS, vocab_size=384, special_tokens=SPECIAL_TOKENS)
    tokenizer.save(str(directory / TOKENIZER_FILE))
    config = tiny_config(tokenizer.get_vocab_size())
    weights = tiny_weights(config, seed=seed)
    model = build_decoder(config, weights, accuracy_level=accuracy_level, kv_cache=kv_cache)
    onnx.save(model, str(directory / MODEL_FILE))
    write_metadata(
        directory,
        name=TINY_MODEL_NAME,
        chat_template=CHATML_TEMPLATE,
        bos_token=None,
        eos_token="<|im_end|>",
        eos_token_ids=[2],
        context_length=config.max_positions,
        temperature=1.0,
        top_p=1.0,
        architecture={"model_type": "llama", "num_hidden_layers": config.num_layers},
    )
    return directory


def tiny_weights(config: LlamaConfig, *, seed: int) -> LlamaWeights:
    """Random weights shaped like a GGUF Q4_1 model: 4-bit projections, 8-bit tied head."""
    rng = np.random.default_rng(seed)
    h, kv = config.hidden_size, config.num_kv_heads * config.head_dim

    def q4(out: int, inp: int) -> BlockLinear:
        blocks = inp // BLOCK_SIZE
        codes = rng.integers(0, 256, size=(out, blocks, BLOCK_SIZE // 2), dtype=np.uint8)
        scales = rng.uniform(0.01, 0.05, size=(out, blocks)).astype(np.float32)
        offsets = rng.normal(0.0, 0.02, size=(out, blocks)).astype(np.float32)
        return BlockLinear(codes=codes, scales=scales, offsets=offsets, bits=4)

    def norm() -> np.ndarray:
        return rng.uniform(0.8, 1.2, size=h).astype(np.float32)

    layers = [
        LayerWeights(
            attn_norm=norm(),
            q=q4(h, h),
            k=q4(kv, h),
            v=q4(kv, h),
            o=q4(h, h),
            ffn_norm=norm(),
            gate=q4(config.intermediate_size, h),
            up=q4(config.intermediate_size, h),
            down=q4(h, config.intermediate_size),
        )
        for _ in range(config.num_layers)
    ]
    head = BlockLinear(
        codes=rng.integers(
            0, 256, size=(config.vocab_size, h // BLOCK_SIZE, BLOCK_SIZE), dtype=np.uint8
        ),
        scales=rng.uniform(0.005, 0.02, size=(config.vocab_size, h // BLOCK_SIZE)).astype(
            np.float32
        ),
        offsets=None,
        bits=8,
    )
    return LlamaWeights(embedding=head, layers=layers, final_norm=norm(), lm_head=head)
