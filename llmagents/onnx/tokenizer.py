"""Byte-level BPE tokenizers (GPT-2 style) built with the ``tokenizers`` library.

The GGUF converter builds SmolLM2's tokenizer from the vocabulary and merges in the GGUF
metadata; the tiny test model trains one on a few sentences. Both get the same pipeline,
the one llama.cpp applies to ``tokenizer.ggml.pre = smollm``: every digit on its own, then
GPT-2's regex split and byte-to-unicode mapping, with control tokens matched whole.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers


def _pipeline(tokenizer: Tokenizer, special_tokens: Iterable[str]) -> Tokenizer:
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in special_tokens]
    )
    return tokenizer


def byte_level_bpe(
    vocab: dict[str, int], merges: list[tuple[str, str]], special_tokens: Iterable[str]
) -> Tokenizer:
    """A tokenizer from an existing vocabulary (byte-level strings) and merge list."""
    model = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False)
    return _pipeline(Tokenizer(model), special_tokens)


def train_byte_level_bpe(
    corpus: Iterable[str], *, vocab_size: int, special_tokens: list[str]
) -> Tokenizer:
    """A small tokenizer trained on ``corpus``; ``special_tokens`` take the first ids."""
    tokenizer = _pipeline(Tokenizer(models.BPE()), [])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return _pipeline(tokenizer, special_tokens)
