"""Fixtures for tests on the real SmolLM2 model, converted once and cached outside the repo."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmagents.onnx import TextGenerator
from llmagents.onnx.convert import ensure_smollm2

# The numpy Llama of the unit tests is the yardstick here too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "onnx"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return ensure_smollm2()


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: Path) -> TextGenerator:
    return TextGenerator(smollm2_dir, threads=2)
