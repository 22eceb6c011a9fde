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
TIE_LOGITS = 1.5
MAX_RMS = 0.5
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
    return llama_cpp.Llama(
        model_path=str(find_smollm2_gguf()),
        n_ctx=1024,
        n_threads=2,
        n_threads_batch=2,
        n_batch=512,
        verbose=False,
    )


def last_logits(llama: object) -> np.ndarray:
    """The logits of the last token llama.cpp evaluated (its C API: ``Llama.scores`` holds
    them only with ``logits_all``)."""
    row = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
    return np.ctypeslib.as_array(row, shape=(llama.n_vocab(),)).astype(np.float32)


def reference_greedy(llama: object, prompt: list[int]) -> tuple[list[int], list[np.ndarray]]:
    """llama.cpp's greedy tokens and the logits each was chosen from."""
    llama.reset()
    llama.eval(prompt)
    tokens, logits = [], []
    for _ in range(GREEDY_TOKENS):
        row = last_logits(llama)
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
    assert smollm2.format.encode(text) == llama.tokenize(text.encode(), add_bos=False, special=True)


@pytest.mark.parametrize("question", PROMPTS)
def test_greedy_choices_agree_with_llama_cpp_except_at_near_ties(
    smollm2: TextGenerator, llama: object, question: str
) -> None:
    """Exact equality of 32 greedy tokens is out of reach: both engines quantise activations
    (llama.cpp to Q8_1/Q8_0, MatMulNBits to int8 blocks) and each deviates from the exact
    float64 computation on the same weights by up to 1.6 logits at these positions, so a
    near-tie goes either way and the sequences part there. The test therefore follows
    llama.cpp's greedy sequence (teacher forcing) and requires at every step: our choice is
    llama.cpp's, or one llama.cpp itself ranks within ``TIE_LOGITS`` of its own; at least 90%
    of choices identical; logits within ``MAX_RMS`` of llama.cpp's (logits' spread is ~3.4)."""
    prompt = smollm2.format.prompt([{"role": "user", "content": question}])
    expected, reference = reference_greedy(llama, prompt)
    ours = onnx_along(smollm2, prompt, expected)
    choices = [int(np.argmax(o)) for o in ours]
    gaps = [float(r[t] - r[c]) for r, t, c in zip(reference, expected, choices, strict=False)]
    agreement = float(np.mean([c == t for c, t in zip(choices, expected, strict=False)]))
    rms = float(
        np.sqrt(np.mean([np.mean((o - r) ** 2) for o, r in zip(ours, reference, strict=False)]))
    )
    greedy = onnx_greedy(smollm2, prompt)
    same = next(
        (i for i, (a, b) in enumerate(zip(greedy, expected, strict=False)) if a != b), GREEDY_TOKENS
    )
    print(
        f"\n{question!r}: top-1 agreement {agreement:.3f}, largest gap {max(gaps):.3f}, "
        f"logits RMS error {rms:.3f}, identical greedy prefix {same}/{GREEDY_TOKENS}"
    )
    assert max(gaps) < TIE_LOGITS
    assert agreement >= 0.9
    assert rms < MAX_RMS
