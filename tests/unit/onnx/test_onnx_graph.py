"""The decoder graph computes what a Llama computes, with and without its KV cache, with
the cache in shared buffers or fed back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy_llama import last_logits

from llmagents.onnx import decoder as decoder_module
from llmagents.onnx.decoder import Decoder, DecodeState
from llmagents.onnx.graph import build_decoder
from llmagents.onnx.tiny import tiny_config, tiny_weights
from llmagents.onnx.weights import BlockLinear, FloatLinear, concat_linears

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


def test_cached_decode_steps_match_a_full_recomputation(
    exact_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, config, weights = exact_model
    monkeypatch.setattr(decoder_module, "KV_GROWTH", 3)  # the cache buffers grow twice
    decoder = Decoder(path, threads=1)
    assert decoder.shared_kv
    state = DecodeState()
    decoder.step(state, TOKENS[:4])
    for i in range(4, len(TOKENS)):
        logits = decoder.step(state, [TOKENS[i]])
        expected = last_logits(config, weights, TOKENS[: i + 1])
        np.testing.assert_allclose(logits, expected, rtol=1e-3, atol=1e-3)
    assert state.tokens == TOKENS
    assert {b.shape[2] for b in state.buffers.values()} == {12}


def test_shared_cache_buffers_give_the_logits_of_fed_back_presents(
    tmp_path: Path, exact_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, _ = exact_model
    model = onnx.load(str(path))
    del model.metadata_props[:]  # a graph that does not declare shared buffers
    plain_path = tmp_path / "plain.onnx"
    onnx.save(model, str(plain_path))
    monkeypatch.setattr(decoder_module, "KV_GROWTH", 4)
    shared, plain = Decoder(path, threads=1), Decoder(plain_path, threads=1)
    assert shared.shared_kv and not plain.shared_kv and plain.has_cache
    shared_state, plain_state = DecodeState(), DecodeState()
    # A prompt, single tokens, then several tokens at once after a cache (a second prompt).
    for fed in (TOKENS[:3], TOKENS[3:4], TOKENS[4:5], TOKENS[5:9], TOKENS[9:]):
        np.testing.assert_array_equal(shared.step(shared_state, fed), plain.step(plain_state, fed))


def test_interleaved_requests_on_one_decoder_keep_their_own_caches(exact_model) -> None:
    path, _, _ = exact_model
    decoder = Decoder(path, threads=1)
    feeds_a = [TOKENS[:3], TOKENS[3:4], TOKENS[4:5]]
    feeds_b = [TOKENS[5:8], TOKENS[8:9], TOKENS[9:10]]

    def alone(feeds: list[list[int]]) -> list[np.ndarray]:
        state = DecodeState()
        return [decoder.step(state, fed) for fed in feeds]

    expected_a, expected_b = alone(feeds_a), alone(feeds_b)
    state_a, state_b = DecodeState(), DecodeState()
    for fed_a, fed_b, want_a, want_b in zip(feeds_a, feeds_b, expected_a, expected_b, strict=False):
        np.testing.assert_array_equal(decoder.step(state_a, fed_a), want_a)
        np.testing.assert_array_equal(decoder.step(state_b, fed_b), want_b)


def test_logits_of_a_step_stay_as_they_were_after_the_next_step(exact_model) -> None:
    path, _, _ = exact_model
    decoder, state = Decoder(path, threads=1), DecodeState()
    first = decoder.step(state, TOKENS[:3])
    kept = first.copy()
    decoder.step(state, TOKENS[3:4])
    np.testing.assert_array_equal(first, kept)


def test_int8_activations_keep_the_greedy_choice(tmp_path: Path, exact_model) -> None:
    _, config, weights = exact_model
    path = tmp_path / "model.onnx"
    onnx.save(build_decoder(config, weights, accuracy_level=4), str(path))
    logits = Decoder(path, threads=1).step(DecodeState(), TOKENS)
    expected = last_logits(config, weights, TOKENS)
    assert int(np.argmax(logits)) == int(np.argmax(expected))
    assert np.max(np.abs(logits - expected)) < 0.05 * np.max(np.abs(expected))
