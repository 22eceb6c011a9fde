"""SmolLM2 through onnxruntime against an independent reference: llama.cpp on the same GGUF.

llama-cpp-python compiles llama.cpp from source (about 8 minutes on two idle cores, much
longer beside the control plane's Go build), so ``make test`` skips this file unless it is
installed; ``make test-reference`` builds it with the CPU flags that work here and runs it.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmagents.onnx import TextGenerator
from llmagents.onnx.convert import find_smollm2_gguf
from llmagents.onnx.decoder import DecodeState

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed; `make test-reference` builds it"
)

pytestmark = pytest.mark.model

GREEDY_TOKENS = 32
PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Give me three tips for staying focused while working from home.",
    "Explain in simple words what a Kubernetes operator does.",
    "Translate 'good morning, my friend' into Spanish.",
    "What is 12 times 7? Answer briefly.",
]


@pytest.fixture(scope="module")
def llama() -> object:
    return llama_cpp.Llama(model_path=str(find_smollm2_gguf()), n_ctx=1024, n_threads=2,
                           n_threads_batch=2, n_batch=512, verbose=False)


def reference_greedy(llama: object, prompt: list[int]) -> tuple[list[int], list[np.ndarray]]:
    """llama.cpp's greedy tokens and the logits each was chosen from."""
    llama.reset()
    llama.eval(prompt)
    tokens, logits = [], []
    for _ in range(GREEDY_TOKENS):
        row = np.array(llama.scores[llama.n_tokens - 1], dtype=np.float32)
        logits.append(row)
        tokens.append(int(np.argmax(row)))
        llama.eval([tokens[-1]])
    return tokens, logits


def onnx_along(generator: TextGenerator, prompt: list[int], tokens: list[int]) -> list[np.ndarray]:
    """Our logits at each step when fed the reference's tokens (teacher forcing)."""
    state = DecodeState()
    logits = [generator.decoder.step(state, prompt)]
    for token in tokens[:-1]:
        logits.append(generator.decoder.step(state, [token]))
    return logits


def onnx_greedy(generator: TextGenerator, prompt: list[int]) -> list[int]:
    state, tokens = DecodeState(), []
    logits = generator.decoder.step(state, prompt)
    for _ in range(GREEDY_TOKENS):
        tokens.append(int(np.argmax(logits)))
        logits = generator.decoder.step(state, [tokens[-1]])
    return tokens


@pytest.mark.parametrize("question", PROMPTS)
def test_prompts_tokenize_exactly_as_llama_cpp_does(
    smollm2: TextGenerator, llama: object, question: str
) -> None:
    text = smollm2.format.render([{"role": "user", "content": question}])
    assert smollm2.format.encode(text) == llama.tokenize(
        text.encode(), add_bos=False, special=True
    )


@pytest.mark.parametrize("question", PROMPTS)
def test_the_first_32_greedy_tokens_match_llama_cpp(
    smollm2: TextGenerator, llama: object, question: str
) -> None:
    prompt = smollm2.format.prompt([{"role": "user", "content": question}])
    expected, reference_logits = reference_greedy(llama, prompt)
    ours = onnx_along(smollm2, prompt, expected)
    agreement = np.mean([int(np.argmax(o)) == t for o, t in zip(ours, expected)])
    error = max(float(np.max(np.abs(o - r))) for o, r in zip(ours, reference_logits))
    print(f"\n{question!r}: top-1 agreement {agreement:.3f}, max |logit error| {error:.3f}")
    assert onnx_greedy(smollm2, prompt) == expected
