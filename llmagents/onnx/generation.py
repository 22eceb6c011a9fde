"""Text generation over a model directory: chat template, decode loop, sampling, stops.

``TextGenerator`` is synchronous and thread-safe; the HTTP server runs it in worker
threads. ``stream`` yields text as it becomes final: a token that ends inside a UTF-8
character, or text that may be the start of a stop string, is held back until it is
decided, so a client never receives text it must later retract.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from llmagents.errors import ConfigError
from llmagents.onnx.decoder import Decoder, DecodeState
from llmagents.onnx.model_dir import ModelInfo, read_model_dir

logger = logging.getLogger(__name__)

_PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n"
    "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"
)
"""For models without a chat template: a readable transcript the model can continue."""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick tokens; ``temperature`` 0 means greedy (argmax)."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delta:
    """New final text; ``completion_tokens`` counts every token sampled so far (a stop
    token included), ``finish_reason`` is set on the last delta only."""

    text: str
    completion_tokens: int
    finish_reason: str | None = None


def sample(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    """Greedy, or temperature then nucleus (top-p) sampling."""
    if params.temperature <= 0.0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs)
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]
        kept = probs[keep] / probs[keep].sum()
        return int(keep[rng.choice(len(keep), p=kept)])
    return int(rng.choice(len(probs), p=probs))


class ChatFormat:
    """A model's tokenizer, chat template and stop tokens: text in, token ids out."""

    def __init__(self, info: ModelInfo) -> None:
        try:
            self.tokenizer = Tokenizer.from_file(str(info.tokenizer_file))
        except Exception as exc:
            raise ConfigError(f"{info.tokenizer_file} is not a tokenizers file: {exc}") from None
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        try:
            self._template = env.from_string(info.chat_template or _PLAIN_TEMPLATE)
        except TemplateError as exc:
            raise ConfigError(f"{info.path}: chat template does not parse: {exc}") from None
        self._info = info
        stop_ids = set(info.eos_token_ids)
        eos = self.tokenizer.token_to_id(info.eos_token) if info.eos_token else None
        if eos is not None:
            stop_ids.add(eos)
        self.stop_token_ids = frozenset(stop_ids)

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text for ``messages`` ({"role", "content"} dicts) per the template."""
        try:
            return self._template.render(
                messages=list(messages),
                add_generation_prompt=True,
                bos_token=self._info.bos_token or "",
                eos_token=self._info.eos_token or "",
            )
        except TemplateError as exc:
            raise ValueError(f"chat template rejected the messages: {exc}") from None

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return self.encode(self.render(messages))

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


class TextGenerator:
    """A loaded model: chat format and decoder, ready to answer chats."""

    def __init__(self, model_dir: Path, *, threads: int = 2) -> None:
        self.info: ModelInfo = read_model_dir(model_dir)
        self.format = ChatFormat(self.info)
        self.decoder = Decoder(self.info.model_file, threads=threads)

    def stream(self, prompt: list[int], params: SamplingParams) -> Iterator[Delta]:
        """Generate after ``prompt``; the last ``Delta`` carries ``stop`` or ``length``."""
        rng = np.random.default_rng(params.seed)
        state = DecodeState()
        logits = self.decoder.step(state, prompt)
        generated: list[int] = []
        emitted = ""
        while True:
            token = sample(logits, params, rng)
            generated.append(token)
            if token in self.format.stop_token_ids:
                rest = self.format.decode(generated[:-1])[len(emitted) :]
                yield Delta(rest, len(generated), "stop")
                return
            text = self.format.decode(generated)
            cut = _first_stop(text, params.stop)
            if cut is not None:
                yield Delta(text[len(emitted) : cut], len(generated), "stop")
                return
            if len(generated) >= params.max_tokens:
                yield Delta(text[len(emitted) :], len(generated), "length")
                return
            final = _final_length(text, params.stop)
            if final > len(emitted):
                yield Delta(text[len(emitted) : final], len(generated))
                emitted = text[:final]
            logits = self.decoder.step(state, [token])


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None


def _final_length(text: str, stops: tuple[str, ...]) -> int:
    """How much of ``text`` cannot change any more: not a partial UTF-8 character at the
    end (decoded as U+FFFD), not a suffix that could grow into a stop string."""
    end = len(text)
    while end and text[end - 1] == "\ufffd":
        end -= 1
    for stop in stops:
        for size in range(min(len(stop) - 1, end), 0, -1):
            if text[end - size : end] == stop[:size]:
                end -= size
                break
    return end


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)
