"""One onnxruntime session over a decoder graph, fed the way its inputs ask.

The session reads the graph's inputs once: ``input_ids`` and ``attention_mask`` always,
``position_ids`` when present, and ``past_key_values.{i}.key/value`` when the model has a KV
cache (their ``present.{i}.*`` outputs are fed back on the next step as onnxruntime values,
never copied through numpy). A model without a cache gets the whole sequence every step.
``logits`` may hold every position or only the last; only the last is used.

A session is shared by all requests (``InferenceSession.run`` is thread-safe); each
request owns a ``DecodeState``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from llmagents.errors import ConfigError

logger = logging.getLogger(__name__)

_PAST_PREFIX = "past_key_values."
_PRESENT_PREFIX = "present."
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(slots=True)
class DecodeState:
    """One sequence's progress: its tokens so far and, with a cache, the cached keys/values."""

    tokens: list[int] = field(default_factory=list)
    past: dict[str, ort.OrtValue] = field(default_factory=dict)


class Decoder:
    """Runs prefill and decode steps; ``step`` returns the next-token logits."""

    def __init__(self, model_file: Path, *, threads: int = 2) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # A serving process keeps one model; the arena only grows the resident set.
        options.enable_cpu_mem_arena = False
        try:
            self.session = ort.InferenceSession(
                os.fspath(model_file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors
            raise ConfigError(f"onnxruntime cannot load {model_file}: {exc}") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs.keys()
        if missing:
            raise ConfigError(
                f"{model_file} is not a decoder in the expected layout: no input "
                f"{', '.join(sorted(missing))}"
            )
        self._has_positions = "position_ids" in inputs
        self._past_names = sorted(n for n in inputs if n.startswith(_PAST_PREFIX))
        self._empty_past: dict[str, ort.OrtValue] = {}
        for name in self._past_names:
            shape, kind = inputs[name].shape, inputs[name].type
            if len(shape) != 4 or not all(isinstance(d, int) for d in (shape[1], shape[3])):
                raise ConfigError(f"{model_file}: {name} must be [batch, heads, seq, head_dim]")
            if kind not in _DTYPES:
                raise ConfigError(f"{model_file}: {name} has unsupported type {kind}")
            empty = np.zeros((1, shape[1], 0, shape[3]), dtype=_DTYPES[kind])
            self._empty_past[name] = ort.OrtValue.ortvalue_from_numpy(empty)
        self._output_names = ["logits"] + [
            _PRESENT_PREFIX + n.removeprefix(_PAST_PREFIX) for n in self._past_names
        ]
        outputs = {o.name for o in self.session.get_outputs()}
        absent = set(self._output_names) - outputs
        if absent:
            raise ConfigError(f"{model_file} lacks outputs {', '.join(sorted(absent))}")
        logger.info(
            "loaded %s (%d cache tensors, %d threads)",
            model_file,
            len(self._past_names),
            threads,
        )

    @property
    def has_cache(self) -> bool:
        return bool(self._past_names)

    def step(self, state: DecodeState, new_tokens: list[int]) -> np.ndarray:
        """Feed ``new_tokens`` after ``state.tokens``; returns float32 logits (vocab,)."""
        if self.has_cache:
            fed = new_tokens
            start = len(state.tokens)
            past = state.past or self._empty_past
        else:
            fed = state.tokens + new_tokens
            start = 0
            past = {}
        total = len(state.tokens) + len(new_tokens)
        feed = {
            "input_ids": _ids(np.asarray([fed], dtype=np.int64)),
            "attention_mask": _ids(np.ones((1, total), dtype=np.int64)),
            **past,
        }
        if self._has_positions:
            positions = np.arange(start, total, dtype=np.int64)[None, :]
            feed["position_ids"] = _ids(positions)
        results = self.session.run_with_ort_values(self._output_names, feed)
        state.tokens.extend(new_tokens)
        if self.has_cache:
            state.past = {
                past_name: value for past_name, value in zip(self._past_names, results[1:])
            }
        logits = results[0].numpy()
        return logits[0, -1].astype(np.float32, copy=False)


def _ids(array: np.ndarray) -> ort.OrtValue:
    return ort.OrtValue.ortvalue_from_numpy(array)
