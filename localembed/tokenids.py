"""Token-id inputs: whose vocabulary are they in?

LangChain's ``OpenAIEmbeddings`` sends arrays of tiktoken ``cl100k_base`` ids by default.
Embedding those as the model's own ids gives silent garbage, so by default they are decoded back
to text with tiktoken, which only works when the encoding is available locally (tiktoken
downloads it on first use and caches it). The server can instead treat ids as the model's own
(what ``/tokenize`` returns).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

TIKTOKEN_MODE = "tiktoken"
MODEL_MODE = "model"
TOKEN_ID_MODES = (TIKTOKEN_MODE, MODEL_MODE)

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"

UNAVAILABLE = (
    "this request sends token ids, which OpenAI clients compute with tiktoken's cl100k_base "
    "encoding, and that encoding is not available on this machine to decode them. Send text "
    "instead: with LangChain set OpenAIEmbeddings(check_embedding_ctx_length=False). Or start "
    "the server with --token-ids model if the ids come from this model's /tokenize."
)


class Decoder(Protocol):
    def decode(self, tokens: Sequence[int]) -> str: ...


def tiktoken_cache_path(url: str = CL100K_URL) -> Path:
    """Where tiktoken caches a downloaded encoding (its own rule: sha1 of the URL)."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    root = Path(cache) if cache else Path(tempfile.gettempdir()) / "data-gym-cache"
    return root / hashlib.sha1(url.encode()).hexdigest()


def local_cl100k() -> Decoder | None:
    """tiktoken's cl100k_base if it is cached locally; never touches the network."""
    if not tiktoken_cache_path().exists():
        return None
    try:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception:  # corrupt cache, missing package: treat as unavailable
        return None
