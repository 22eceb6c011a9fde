"""The model directory the sidecar serves, in the layout Hugging Face exports use.

```
<dir>/model.onnx               decoder graph (required)
<dir>/tokenizer.json           tokenizers' JSON (required)
<dir>/tokenizer_config.json    chat_template, bos_token, eos_token (optional)
<dir>/generation_config.json   eos_token_id (int or list), temperature, top_p (optional)
<dir>/config.json              _name_or_path, max_position_embeddings (optional)
```

A directory exported by other tools in this layout loads as well; what is optional has a
documented fallback. Reading validates everything cheap to validate, so a wrong mount
fails at start with a message that names the file, not deep inside onnxruntime.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmagents.errors import ConfigError

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
CONFIG_FILE = "config.json"

DEFAULT_CONTEXT_LENGTH = 2048
"""Context assumed when ``config.json`` does not say."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the sidecar needs to know about a model besides its graph."""

    path: Path
    name: str
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    eos_token_ids: frozenset[int]
    context_length: int
    temperature: float
    top_p: float

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def tokenizer_file(self) -> Path:
        return self.path / TOKENIZER_FILE


def read_model_dir(path: Path) -> ModelInfo:
    """Validate ``path`` and read its metadata; raises ``ConfigError`` naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(
            f"model directory {path} does not exist; convert one with "
            "`llmagents onnx-convert --out DIR` or mount it there"
        )
    for required in (MODEL_FILE, TOKENIZER_FILE):
        if not (path / required).is_file():
            raise ConfigError(
                f"model directory {path} has no {required}; expected {MODEL_FILE} and "
                f"{TOKENIZER_FILE} (see docs/onnx.md)"
            )
    tokenizer_config = _json(path / TOKENIZER_CONFIG_FILE)
    generation = _json(path / GENERATION_CONFIG_FILE)
    config = _json(path / CONFIG_FILE)
    eos_ids = generation.get("eos_token_id", config.get("eos_token_id", []))
    eos_ids = [eos_ids] if isinstance(eos_ids, int) else eos_ids
    if not isinstance(eos_ids, list) or not all(isinstance(i, int) for i in eos_ids):
        raise ConfigError(f"{path / GENERATION_CONFIG_FILE}: eos_token_id must be ints")
    return ModelInfo(
        path=path,
        name=str(config.get("_name_or_path") or path.name),
        chat_template=_str_or_none(tokenizer_config.get("chat_template")),
        bos_token=_token_text(tokenizer_config.get("bos_token")),
        eos_token=_token_text(tokenizer_config.get("eos_token")),
        eos_token_ids=frozenset(eos_ids),
        context_length=int(config.get("max_position_embeddings", DEFAULT_CONTEXT_LENGTH)),
        temperature=float(generation.get("temperature", 1.0)),
        top_p=float(generation.get("top_p", 1.0)),
    )


def write_metadata(
    path: Path,
    *,
    name: str,
    chat_template: str,
    bos_token: str | None,
    eos_token: str,
    eos_token_ids: list[int],
    context_length: int,
    temperature: float,
    top_p: float,
    architecture: dict[str, Any],
) -> None:
    """Write the three JSON files beside ``model.onnx`` and ``tokenizer.json``."""
    path.mkdir(parents=True, exist_ok=True)
    _write(
        path / TOKENIZER_CONFIG_FILE,
        {
            "chat_template": chat_template,
            "bos_token": bos_token,
            "eos_token": eos_token,
            "add_bos_token": False,
        },
    )
    _write(
        path / GENERATION_CONFIG_FILE,
        {
            "eos_token_id": eos_token_ids,
            "temperature": temperature,
            "top_p": top_p,
        },
    )
    _write(
        path / CONFIG_FILE,
        {
            "_name_or_path": name,
            "max_position_embeddings": context_length,
            **architecture,
        },
    )


def _json(file: Path) -> dict[str, Any]:
    if not file.exists():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file} must hold a JSON object")
    return data


def _write(file: Path, data: dict[str, Any]) -> None:
    file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _token_text(value: object) -> str | None:
    # tokenizer_config.json writes tokens either as strings or as {"content": ...}
    if isinstance(value, dict):
        value = value.get("content")
    return _str_or_none(value)
