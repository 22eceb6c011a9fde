"""Generation on the tiny model: greedy, sampling, stops, a model without a cache, bad dirs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmagents.errors import ConfigError
from llmagents.onnx import SamplingParams, TextGenerator, read_model_dir
from llmagents.onnx.generation import sample
from llmagents.onnx.model_dir import GENERATION_CONFIG_FILE
from llmagents.onnx.tiny import build_tiny_model

HELLO = [{"role": "user", "content": "Hello! How can I help you today?"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def generator(tiny_dir: Path) -> TextGenerator:
    return TextGenerator(tiny_dir, threads=1)


def run(generator: TextGenerator, params: SamplingParams) -> tuple[str, str | None, int]:
    deltas = list(generator.stream(generator.format.prompt(HELLO), params))
    return "".join(d.text for d in deltas), deltas[-1].finish_reason, deltas[-1].completion_tokens


def greedy_tokens(generator: TextGenerator, count: int) -> list[int]:
    from llmagents.onnx.decoder import DecodeState

    state, tokens = DecodeState(), []
    logits = generator.decoder.step(state, generator.format.prompt(HELLO))
    for _ in range(count):
        tokens.append(int(np.argmax(logits)))
        logits = generator.decoder.step(state, [tokens[-1]])
    return tokens


def test_the_chat_template_wraps_messages_in_chatml(generator: TextGenerator) -> None:
    assert generator.format.render(HELLO) == (
        "<|im_start|>user\nHello! How can I help you today?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_model_without_kv_cache_generates_the_same_greedy_text(
    tmp_path: Path, generator: TextGenerator
) -> None:
    uncached = TextGenerator(build_tiny_model(tmp_path, kv_cache=False), threads=1)
    assert not uncached.decoder.has_cache and generator.decoder.has_cache
    params = SamplingParams(max_tokens=16)
    assert run(uncached, params) == run(generator, params)


def test_a_stop_token_ends_the_answer_and_is_counted(tmp_path: Path) -> None:
    model = build_tiny_model(tmp_path)
    tokens = greedy_tokens(TextGenerator(model, threads=1), 20)
    first_new = next(i for i in range(1, 20) if tokens[i] not in tokens[:i])
    config = model / GENERATION_CONFIG_FILE
    config.write_text(
        json.dumps(
            {
                **json.loads(config.read_text()),
                "eos_token_id": [tokens[first_new]],
            }
        )
    )
    generator = TextGenerator(model, threads=1)
    text, finish, count = run(generator, SamplingParams(max_tokens=50))
    assert (finish, count) == ("stop", first_new + 1)
    assert text == generator.format.decode(tokens[:first_new])


def test_a_stop_string_cuts_the_text_before_it(generator: TextGenerator) -> None:
    full, _, _ = run(generator, SamplingParams(max_tokens=24))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    text, finish, _ = run(generator, SamplingParams(max_tokens=24, stop=(stop,)))
    assert finish == "stop"
    assert text == full[: full.index(stop)]


def test_streamed_text_never_contains_a_stop_string_prefix_it_later_retracts(
    generator: TextGenerator,
) -> None:
    full, _, _ = run(generator, SamplingParams(max_tokens=24))
    stop = full[-4:] + "never generated"
    deltas = list(
        generator.stream(
            generator.format.prompt(HELLO), SamplingParams(max_tokens=24, stop=(stop,))
        )
    )
    assert "".join(d.text for d in deltas) == full
    assert deltas[-1].finish_reason == "length"


def test_the_same_seed_samples_the_same_answer(generator: TextGenerator) -> None:
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    assert run(generator, params) == run(generator, params)


def test_a_tiny_top_p_keeps_only_the_most_likely_token() -> None:
    logits = np.array([0.1, 3.0, 2.9, -1.0], np.float32)
    rng = np.random.default_rng(0)
    params = SamplingParams(max_tokens=1, temperature=1.0, top_p=1e-6)
    assert {sample(logits, params, rng) for _ in range(50)} == {1}


def test_temperature_sampling_follows_the_softmax() -> None:
    logits = np.log(np.array([0.7, 0.2, 0.1]))
    rng = np.random.default_rng(1)
    params = SamplingParams(max_tokens=1, temperature=1.0)
    counts = np.bincount([sample(logits, params, rng) for _ in range(4000)], minlength=3)
    np.testing.assert_allclose(counts / 4000, [0.7, 0.2, 0.1], atol=0.03)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "tokenizer.json").unlink(), "has no tokenizer.json"),
        (lambda d: (d / "model.onnx").unlink(), "has no model.onnx"),
        (lambda d: (d / "config.json").write_text("{"), "config.json is not readable JSON"),
        (lambda d: (d / "model.onnx").write_bytes(b"\x00garbage"), "onnxruntime cannot load"),
        (lambda d: (d / "tokenizer.json").write_text("[]"), "is not a tokenizers file"),
    ],
)
def test_a_malformed_model_directory_is_named_in_the_error(
    tmp_path: Path, damage, message: str
) -> None:
    model = build_tiny_model(tmp_path)
    damage(model)
    with pytest.raises(ConfigError, match=message):
        TextGenerator(model, threads=1)


def test_metadata_is_read_from_the_hugging_face_files(tiny_dir: Path) -> None:
    info = read_model_dir(tiny_dir)
    assert (info.name, info.eos_token, info.eos_token_ids) == ("tiny-llama", "<|im_end|>", {2})
    assert info.context_length == 512 and info.chat_template
