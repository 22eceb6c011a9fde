"""The decoder graph computes what a Llama computes, with and without its KV cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy_llama import last_logits

from llmagents.onnx.decoder import Decoder, DecodeState
from llmagents.onnx.graph import BlockLinear, FloatLinear, build_decoder, concat_linears
from llmagents.onnx.tiny import tiny_config, tiny_weights

TOKENS = [1, 40, 7, 99, 250, 3, 17, 64, 2, 120]


@pytest.fixture(scope="module")
def exact_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object, object]:
    config = tiny_config(vocab_size=320)
    weights = tiny_weights(config, seed=3)
    path = tmp_path_factory.mktemp("graph") / "model.onnx"
    onnx.save(build_decoder(config, weights, accuracy_level=0), str(path))
    return path, config, weights


def test_block_linear_dequantizes_like_q4_1() -> None:
    # One block of 32 weights: w = (code - 8) * scale + offset, low nibble first.
    codes = np.arange(32, dtype=np.uint8) % 16
    packed = (codes[0::2] | (codes[1::2] << 4)).reshape(1, 1, 16)
    linear = BlockLinear(
        codes=packed,
        scales=np.array([[0.5]], np.float32),
        offsets=np.array([[1.0]], np.float32),
        bits=4,
    )
    np.testing.assert_allclose(linear.dequantize()[0], (codes.astype(np.float32) - 8) * 0.5 + 1.0)


def test_concat_linears_stacks_outputs_and_refuses_mixed_kinds() -> None:
    a, b = FloatLinear(np.ones((2, 4), np.float32)), FloatLinear(np.zeros((3, 4), np.float32))
    assert concat_linears([a, b]).out_features == 5
    block = BlockLinear(
        codes=np.zeros((1, 1, 16), np.uint8),
        scales=np.ones((1, 1), np.float32),
        offsets=None,
        bits=4,
    )
    with pytest.raises(TypeError):
        concat_linears([a, block])


def test_prefill_logits_match_the_numpy_llama(exact_model) -> None:
    path, config, weights = exact_model
    decoder = Decoder(path, threads=1)
    logits = decoder.step(DecodeState(), TOKENS)
    np.testing.assert_allclose(logits, last_logits(config, weights, TOKENS), rtol=1e-3, atol=1e-3)


def test_cached_decode_steps_match_a_full_recomputation(exact_model) -> None:
    path, config, weights = exact_model
    decoder = Decoder(path, threads=1)
    state = DecodeState()
    decoder.step(state, TOKENS[:4])
    for i in range(4, len(TOKENS)):
        logits = decoder.step(state, [TOKENS[i]])
        expected = last_logits(config, weights, TOKENS[: i + 1])
        np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)
    assert state.tokens == TOKENS


def test_int8_activations_keep_the_greedy_choice(tmp_path: Path, exact_model) -> None:
    _, config, weights = exact_model
    path = tmp_path / "model.onnx"
    onnx.save(build_decoder(config, weights, accuracy_level=4), str(path))
    logits = Decoder(path, threads=1).step(DecodeState(), TOKENS)
    expected = last_logits(config, weights, TOKENS)
    assert int(np.argmax(logits)) == int(np.argmax(expected))
    assert np.max(np.abs(logits - expected)) < 0.05 * np.max(np.abs(expected))
