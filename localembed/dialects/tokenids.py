"""Token-id inputs: whose vocabulary are they in?

LangChain's ``OpenAIEmbeddings`` sends arrays of tiktoken ``cl100k_base`` ids by default.
Embedding those as the model's own ids gives silent garbage, so by default they are decoded back
to text with tiktoken. The cl100k_base ranks ship with the package (``bundled/``, written by
``installer/build_cl100k.py``) so that this works offline on a fresh machine: tiktoken would
otherwise download them on first use. The server can instead treat ids as the model's own
(what ``/tokenize`` returns).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Protocol

TIKTOKEN_MODE = "tiktoken"
MODEL_MODE = "model"
TOKEN_ID_MODES = (TIKTOKEN_MODE, MODEL_MODE)

# tiktoken's definition of cl100k_base (tiktoken_ext/openai_public.py), so the encoding built
# here is the one clients encode with, without going through tiktoken's downloading registry.
CL100K_FILE = "cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_PAT_STR = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                  r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
CL100K_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}

UNAVAILABLE = (
    "this request sends token ids, which OpenAI clients compute with tiktoken's cl100k_base "
    "encoding, and this installation cannot decode them (its bundled cl100k_base.tiktoken is "
    "missing or damaged: reinstall localembed). Send text instead: with LangChain set "
    "OpenAIEmbeddings(check_embedding_ctx_length=False). Or start the server with "
    "--token-ids model if the ids come from this model's /tokenize."
)


class Decoder(Protocol):
    def decode(self, tokens: Sequence[int]) -> str: ...


def cl100k_ranks() -> dict[bytes, int] | None:
    """The bundled cl100k_base ranks, or None if the file is missing or not tiktoken's.

    This parses the file the way ``tiktoken.load.load_tiktoken_bpe`` does but reads it
    directly: that function goes through tiktoken's cache even for a local path (it writes a
    copy there, and fails if ``TIKTOKEN_CACHE_DIR`` names something unusable), and the point
    of bundling is not to depend on that cache. Reading through ``importlib.resources`` also
    works when the package is not a plain folder (a zip, a frozen app).
    """
    try:
        data = (resources.files("localembed") / "bundled" / CL100K_FILE).read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != CL100K_SHA256:
        return None
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.cache
def local_cl100k() -> Decoder | None:
    """tiktoken's cl100k_base built from the bundled ranks; never touches the network or
    tiktoken's cache. Built once per process (it takes a moment and ~100k ranks of memory).

    None only if the bundled file is missing or damaged, or tiktoken is not importable; the
    server then answers token-id requests with ``UNAVAILABLE``.
    """
    ranks = cl100k_ranks()
    if ranks is None:
        return None
    try:
        import tiktoken

        return tiktoken.Encoding(name="cl100k_base", pat_str=CL100K_PAT_STR,
                                 mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL_TOKENS)
    except Exception:  # tiktoken missing or broken: treat as unavailable
        return None
