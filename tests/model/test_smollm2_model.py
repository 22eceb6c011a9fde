"""SmolLM2-135M-Instruct converted from its GGUF answers in English through the sidecar."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from aiohttp import web
from numpy_llama import last_logits

from llmagents.onnx import SamplingParams, ServerSettings, Sidecar, TextGenerator, convert
from llmagents.onnx.convert import SMOLLM2_NAME, find_smollm2_gguf
from llmagents.onnx.decoder import DecodeState
from llmagents.onnx.gguf_source import read_gguf

pytestmark = pytest.mark.model

SEA = [{"role": "user", "content": "Write one sentence about the sea."}]


def test_the_tokenizer_matches_smollm2s_vocabulary(smollm2: TextGenerator) -> None:
    # Digits split one by one, control tokens whole, GPT-2 byte-level spaces and newlines.
    ids = smollm2.format.encode("Hello world! 2026 <|im_start|>user\nHi<|im_end|>\n")
    assert ids == [19556, 905, 17, 216, 34, 32, 34, 38, 216, 1, 4093, 198, 26843, 2, 198]
    assert smollm2.format.tokenizer.decode(ids, skip_special_tokens=False) == (
        "Hello world! 2026 <|im_start|>user\nHi<|im_end|>\n"
    )


def test_the_chat_template_adds_the_default_system_prompt(smollm2: TextGenerator) -> None:
    prompt = smollm2.format.render(SEA)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert prompt.endswith(
        "<|im_start|>user\nWrite one sentence about the sea.<|im_end|>\n<|im_start|>assistant\n"
    )
    assert smollm2.format.stop_token_ids == {2}  # <|im_end|>


def test_a_greedy_answer_is_an_english_sentence_that_stops_by_itself(
    smollm2: TextGenerator,
) -> None:
    prompt = smollm2.format.prompt(SEA)
    deltas = list(smollm2.stream(prompt, SamplingParams(max_tokens=96)))
    text = "".join(d.text for d in deltas)
    assert deltas[-1].finish_reason == "stop"
    assert "<|im_end|>" not in text
    words = re.findall(r"[A-Za-z']+", text)
    assert len(words) >= 6 and "sea" in text.lower()
    assert text.strip()[-1] in ".!?"


def test_onnx_logits_match_a_float64_numpy_llama_on_the_gguf_weights(
    smollm2: TextGenerator,
) -> None:
    source = read_gguf(find_smollm2_gguf())
    tokens = smollm2.format.prompt(SEA)[:24]
    onnx_logits = smollm2.decoder.step(DecodeState(), tokens)
    expected = last_logits(source.config, source.weights, tokens)
    assert int(np.argmax(onnx_logits)) == int(np.argmax(expected))
    # int8 activations in MatMulNBits (accuracy level 4) against float64: a few percent.
    assert np.max(np.abs(onnx_logits - expected)) < 0.05 * np.ptp(expected)


async def test_the_sidecar_serves_smollm2_with_usage_and_stop(smollm2_dir: Path) -> None:
    sidecar = Sidecar(ServerSettings(model_dir=smollm2_dir))
    runner = web.AppRunner(sidecar.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await asyncio.wait_for(sidecar.loaded.wait(), timeout=120)
        assert sidecar.generator is not None
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            response = await client.post(
                "/v1/chat/completions",
                json={
                    "model": SMOLLM2_NAME,
                    "messages": SEA,
                    "temperature": 0,
                    "max_tokens": 96,
                },
            )
    finally:
        await runner.cleanup()
    answer = response.json()
    prompt = sidecar.generator.format.prompt(SEA)
    assert response.status_code == 200
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == len(prompt)
    assert 6 <= answer["usage"]["completion_tokens"] < 96
    assert "sea" in answer["choices"][0]["message"]["content"].lower()


async def test_a_sidecar_without_a_model_converts_smollm2_in_a_child_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty cache, so the sidecar converts; never in its own process, which would keep
    # the converter's memory for its whole life (twice what serving needs).
    monkeypatch.setenv("LLMAGENTS_CACHE_DIR", str(tmp_path))

    def not_here(*args: object, **kwargs: object) -> Path:
        raise AssertionError("converted in the sidecar's own process")

    monkeypatch.setattr(convert, "convert_gguf", not_here)
    sidecar = Sidecar(ServerSettings(model_dir=None))
    await sidecar.load()
    assert sidecar.load_error is None
    assert sidecar.generator is not None
    assert sidecar.generator.info.path.is_relative_to(tmp_path / "models")
