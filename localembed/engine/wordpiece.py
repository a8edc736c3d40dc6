"""BERT WordPiece tokenization exactly as the model's own Hugging Face tokenizer does it.

llama.cpp's WordPiece (WPM) tokenizer normalises text its own way: it does not decompose Hangul
syllables into jamo as Hugging Face's BertNormalizer does (NFD), so Korean text gets about half
the tokens the model was trained on (cosine 0.61-0.78 to the real vectors), and other scripts
are at the mercy of its Unicode tables. For BERT-family GGUFs the engine therefore tokenizes
with the ``tokenizers`` library (the Rust core of Hugging Face's tokenizers), rebuilt from the
vocabulary stored in the GGUF, and hands llama.cpp token ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

WORD_START = "\u2581"
# Part of the cached tokenizers' key: raise it when the way they are built changes.
TOKENIZER_VERSION = 1  # how GGUF BERT vocabularies mark a word's first piece


def hf_piece(gguf_token: str, control: bool) -> str:
    """The Hugging Face spelling of a GGUF WordPiece token.

    GGUF converters (llama.cpp's and ours) write word starts as ``▁word``, continuations
    (``##ing``) as bare ``ing``, and bracketed control tokens (``[CLS]``) as they are.
    """
    if control or (gguf_token.startswith("[") and gguf_token.endswith("]")):
        return gguf_token
    if gguf_token.startswith(WORD_START):
        return gguf_token[len(WORD_START):]
    return "##" + gguf_token


class WordPiece:
    """Uncased BERT tokenization (BertNormalizer + BertPreTokenizer + WordPiece), no specials."""

    def __init__(self, tokens: Sequence[str], control: Sequence[bool], unk_id: int,
                 tokenizer: Tokenizer | None = None) -> None:
        if tokenizer is not None:
            self._tokenizer = tokenizer
            return
        vocab: dict[str, int] = {}
        for i, (token, is_control) in enumerate(zip(tokens, control, strict=True)):
            vocab.setdefault(hf_piece(token, is_control), i)  # first id wins, as in HF
        unk = hf_piece(tokens[unk_id], True) if 0 <= unk_id < len(tokens) else "[UNK]"
        self._tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unk,
                                                     max_input_chars_per_word=100))
        self._tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
        self._tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()

    @classmethod
    def cached(cls, model: Path, vocabulary: Callable[[], tuple[list[str], list[bool], int]]
               ) -> WordPiece:
        """The tokenizer of ``model``'s vocabulary, from the home's cache when this file was
        seen before: building it from 30k tokens took 0.11 s of every start of the starter,
        reading it back 0.04 s. ``vocabulary`` gives (tokens, control flags, unk id)."""
        from localembed.config.paths import home_dir

        stat = model.stat()
        key = hashlib.blake2b(f"{TOKENIZER_VERSION}|{model.resolve()}|{stat.st_size}|"
                              f"{stat.st_mtime_ns}".encode(), digest_size=12).hexdigest()
        cache = home_dir() / "cache" / "tokenizers" / f"{key}.json"
        with contextlib.suppress(Exception):  # none yet, unreadable or damaged: build it
            return cls([], [], -1, Tokenizer.from_str(cache.read_text(encoding="utf-8")))
        built = cls(*vocabulary())
        with contextlib.suppress(OSError):  # a read-only home: built again next time
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(built._tokenizer.to_str(), encoding="utf-8")
            os.replace(partial, cache)
        return built

    def encode(self, text: str) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def ends(self, text: str) -> list[int]:
        """Where in ``text`` each token's characters end (a cut after token i is
        ``text[:ends[i]]``, and tokenizes to the first i + 1 tokens)."""
        return [end for _start, end in
                self._tokenizer.encode(text, add_special_tokens=False).offsets]
