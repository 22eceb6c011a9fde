"""One onnxruntime session over a decoder graph, fed the way its inputs ask.

The session reads the graph's inputs once: ``input_ids`` and ``attention_mask`` always,
``position_ids`` when present, and ``past_key_values.{i}.key/value`` when the model has a KV
cache. A model without a cache gets the whole sequence every step. ``logits`` may hold every
position or only the last; only the last is used.

The cache is kept one of two ways:

- graphs built by ``llmagents.onnx.graph`` declare (model metadata ``SHARED_KV_KEY``) that
  their attention, onnxruntime's ``GroupQueryAttention``, can write the new keys and values
  into the past buffer itself. Each request then owns one buffer per cache tensor, longer
  than the sequence, bound through IO binding as both the past input and the present output:
  a decode step writes one position instead of copying the whole cache (which
  ``GroupQueryAttention`` otherwise does once per query head). Buffers start at
  ``KV_GROWTH`` positions and double when full, so a request holds at most twice the
  cache it needs.
- any other graph: the ``present.{i}.*`` outputs are fed back as the next step's past, as
  onnxruntime values, never copied through numpy.

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

SHARED_KV_KEY = "llmagents.past_present_share_buffer"
"""Model metadata: "1" when every past input may be bound to its present output, with a
buffer longer than the sequence (``attention_mask`` then gives the valid length)."""

KV_GROWTH = 256
"""Positions a shared cache buffer grows by at least (it doubles), and its first length."""

_PAST_PREFIX = "past_key_values."
_PRESENT_PREFIX = "present."
_DTYPES: dict[str, type[np.generic]] = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(slots=True)
class DecodeState:
    """One sequence's progress: its tokens so far and, with a cache, the cached keys/values.

    ``past`` holds onnxruntime values: the last step's present outputs, or for a shared
    cache the buffers themselves (``buffers``, the same memory as numpy arrays, bound to
    ``binding``)."""

    tokens: list[int] = field(default_factory=list)
    past: dict[str, ort.OrtValue] = field(default_factory=dict)
    buffers: dict[str, np.ndarray] = field(default_factory=dict)
    binding: ort.IOBinding | None = None


@dataclass(frozen=True, slots=True)
class _CacheTensor:
    past: str
    present: str
    heads: int
    head_dim: int
    dtype: type[np.generic]


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
        except Exception as exc:
            raise ConfigError(f"onnxruntime cannot load {model_file}: {exc}") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - inputs.keys()
        if missing:
            raise ConfigError(
                f"{model_file} is not a decoder in the expected layout: no input "
                f"{', '.join(sorted(missing))}"
            )
        self._has_positions = "position_ids" in inputs
        self._cache: list[_CacheTensor] = []
        for name in sorted(n for n in inputs if n.startswith(_PAST_PREFIX)):
            shape, kind = inputs[name].shape, inputs[name].type
            if len(shape) != 4 or not all(isinstance(d, int) for d in (shape[1], shape[3])):
                raise ConfigError(f"{model_file}: {name} must be [batch, heads, seq, head_dim]")
            if kind not in _DTYPES:
                raise ConfigError(f"{model_file}: {name} has unsupported type {kind}")
            present = _PRESENT_PREFIX + name.removeprefix(_PAST_PREFIX)
            self._cache.append(_CacheTensor(name, present, shape[1], shape[3], _DTYPES[kind]))
        self._output_names = ["logits"] + [c.present for c in self._cache]
        outputs = {o.name for o in self.session.get_outputs()}
        absent = set(self._output_names) - outputs
        if absent:
            raise ConfigError(f"{model_file} lacks outputs {', '.join(sorted(absent))}")
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.shared_kv = self.has_cache and metadata.get(SHARED_KV_KEY) == "1"
        self._empty_past = {c.past: _ortvalue(_kv_buffer(c, 0)) for c in self._cache}
        logger.info(
            "loaded %s (%d cache tensors%s, %d threads)",
            model_file,
            len(self._cache),
            ", shared buffers" if self.shared_kv else "",
            threads,
        )

    @property
    def has_cache(self) -> bool:
        return bool(self._cache)

    def step(self, state: DecodeState, new_tokens: list[int]) -> np.ndarray:
        """Feed ``new_tokens`` after ``state.tokens``; returns float32 logits (vocab,)."""
        if self.shared_kv:
            logits = self._shared_step(state, new_tokens)
        else:
            logits = self._plain_step(state, new_tokens)
        state.tokens.extend(new_tokens)
        return np.asarray(logits[0, -1], dtype=np.float32)

    def _plain_step(self, state: DecodeState, new_tokens: list[int]) -> np.ndarray:
        if self.has_cache:
            fed, start, past = new_tokens, len(state.tokens), state.past or self._empty_past
        else:
            fed, start, past = state.tokens + new_tokens, 0, {}
        total = len(state.tokens) + len(new_tokens)
        feed = {
            "input_ids": _ortvalue(np.asarray([fed], dtype=np.int64)),
            "attention_mask": _ortvalue(np.ones((1, total), dtype=np.int64)),
            **past,
        }
        if self._has_positions:
            feed["position_ids"] = _ortvalue(np.arange(start, total, dtype=np.int64)[None, :])
        results = self.session.run_with_ort_values(self._output_names, feed)
        if self.has_cache:
            state.past = {c.past: value for c, value in zip(self._cache, results[1:], strict=False)}
        return np.asarray(results[0].numpy())

    def _shared_step(self, state: DecodeState, new_tokens: list[int]) -> np.ndarray:
        total = len(state.tokens) + len(new_tokens)
        binding = state.binding
        if binding is None or next(iter(state.buffers.values())).shape[2] < total:
            binding = self._grow(state, total)
        ids = np.asarray([new_tokens], dtype=np.int64)
        mask = np.ones((1, total), dtype=np.int64)
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        if self._has_positions:
            positions = np.arange(len(state.tokens), total, dtype=np.int64)[None, :]
            binding.bind_cpu_input("position_ids", positions)
        self.session.run_with_iobinding(binding)
        # A copy: onnxruntime writes the next step's logits into this output's memory.
        return np.array(binding.get_outputs()[0].numpy())

    def _grow(self, state: DecodeState, total: int) -> ort.IOBinding:
        """New, longer buffers holding the cached positions, bound as past and present."""
        current = next(iter(state.buffers.values())).shape[2] if state.buffers else 0
        length = -(-max(total, 2 * current, KV_GROWTH) // KV_GROWTH) * KV_GROWTH
        cached = len(state.tokens)
        binding = self.session.io_binding()
        binding.bind_output("logits")  # first: get_outputs() lists outputs in binding order
        for c in self._cache:
            buffer = _kv_buffer(c, length)
            if c.past in state.buffers:
                buffer[:, :, :cached] = state.buffers[c.past][:, :, :cached]
            value = _ortvalue(buffer)
            binding.bind_ortvalue_input(c.past, value)
            binding.bind_ortvalue_output(c.present, value)
            state.buffers[c.past], state.past[c.past] = buffer, value
        state.binding = binding
        return binding


def _kv_buffer(tensor: _CacheTensor, length: int) -> np.ndarray:
    return np.zeros((1, tensor.heads, length, tensor.head_dim), dtype=tensor.dtype)


def _ortvalue(array: np.ndarray) -> ort.OrtValue:
    return ort.OrtValue.ortvalue_from_numpy(array)
