"""Read and validate a GGUF file's metadata before llama.cpp sees it.

llama.cpp aborts the whole process on some malformed inputs and silently mis-computes on others
(an EmbeddingGemma file without its dense layers), so everything that can be checked from the
file's header is checked here, in Python, where a bad file becomes a clear exception.

Only the header is read (``localembed.gguf.header``): the vocabulary's arrays are stepped over,
so inspecting a model takes milliseconds whatever its vocabulary size.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from localembed.engine.families import Family, family_for
from localembed.gguf.header import (
    MAX_SEQ_LENGTH_KEY,
    SEGMENT_B_KEY,
    GGUFHeader,
    GGUFHeaderError,
    gguf,
    read_header,
)

# llama.cpp's pooling types by value: 0 none, 1 mean, 2 cls, 3 last, 4 rank.
POOLING_NAMES = {int(p): p.name.lower() for p in gguf.PoolingType}


class Kind(str, Enum):
    """What a model answers: vectors (``/v1/embeddings``) or a relevance score per (query,
    document) pair (``/v1/rerank``). Decided from the file (rank pooling makes a reranker), so
    every list, check and error names the same two kinds; a ``str`` so it is its own JSON."""

    EMBEDDING = "embedding"
    RERANKER = "reranker"

    def __str__(self) -> str:
        return self.value


class ModelLoadError(Exception):
    """A model file cannot be served; the message tells the user what to do."""


@dataclass(frozen=True)
class GGUFInfo:
    """What localembed needs to know about a GGUF before loading it."""

    path: Path
    arch: str
    name: str
    family: Family
    pooling: int
    context: int
    hidden: int
    file_type: str
    size: int
    # The input limit the model was trained and published with (sentence-transformers'
    # max_seq_length), when it is shorter than the position table; None if not recorded.
    max_seq_length: int | None = None
    vocab_size: int | None = None  # tokens in the vocabulary (None: not recorded)
    kind: Kind = Kind.EMBEDDING
    rerank_template: str | None = None  # the GGUF's own pair prompt ({query}, {document})
    tokenizer_pre: str | None = None  # the pre-tokenizer llama.cpp applies ("qwen2", ...)
    # A cross-encoder converted by localembed: the document's token ids are shifted by this
    # (its token-type-1 embedding folded into a second copy of the vocabulary).
    segment_b_offset: int | None = None

    @property
    def default_max_tokens(self) -> int:
        """The longest input served by default: the model's own limit, else its context."""
        return min(self.max_seq_length or self.context, self.context)

    def to_json(self) -> str:
        """This description as JSON, for a child process (``probe``) to rebuild unread."""
        return json.dumps({
            "path": str(self.path), "arch": self.arch, "name": self.name,
            "pooling": self.pooling, "context": self.context, "hidden": self.hidden,
            "file_type": self.file_type, "size": self.size,
            "max_seq_length": self.max_seq_length, "vocab_size": self.vocab_size,
            "kind": self.kind.value, "rerank_template": self.rerank_template,
            "tokenizer_pre": self.tokenizer_pre, "segment_b_offset": self.segment_b_offset,
        })

    @classmethod
    def from_json(cls, text: str) -> GGUFInfo:
        """The description ``to_json`` wrote, without opening the file again."""
        data = json.loads(text)
        data["kind"] = Kind(data["kind"])
        return cls(path=Path(data.pop("path")), family=family_for(data["arch"]), **data)


def _file_type_name(value: object) -> str:
    try:
        return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (TypeError, ValueError):
        return "unknown"


def inspect_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Validate ``path`` as a servable GGUF embedding model or reranker and describe it."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if magic != b"GGUF":
        raise ModelLoadError(f"{path.name} is not a GGUF file")
    try:
        # Only the header: metadata arrays (the vocabulary) are stepped over, not read.
        header = read_header(path)
    except GGUFHeaderError as exc:
        raise ModelLoadError(f"{path.name} is corrupt or truncated: {exc}") from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    for tensor in header.tensors:
        if tensor.data_offset + tensor.n_bytes > size:
            raise ModelLoadError(
                f"{path.name} is truncated (tensor {tensor.name} ends past the end of the file); "
                "download it again"
            )
    arch = header.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelLoadError(f"{path.name} has no general.architecture: not a model file")
    family = family_for(arch)
    pooling = header.get(f"{arch}.pooling_type")
    pooling = int(pooling) if isinstance(pooling, int) else None
    name = header.get("general.name")
    name = name if isinstance(name, str) else path.stem
    tensor_names = {t.name for t in header.tensors}
    if "cls.output.weight" in tensor_names and pooling != gguf.PoolingType.RANK:
        # A classification head makes a cross-encoder whatever the metadata says: llama.cpp's
        # converter writes BERT ones with no pooling type at all.
        pooling = int(gguf.PoolingType.RANK)
    looks_like_embedder = (
        family.embedding_only
        or pooling not in (None, gguf.PoolingType.NONE)
        or "embed" in name.lower()
    )
    if not looks_like_embedder:
        raise ModelLoadError(
            f"{path.name} is a {arch} model without a pooling type: it is not an embedding "
            "model (localembed serves embedding GGUFs such as EmbeddingGemma or "
            "Qwen3-Embedding)"
        )
    if pooling in (None, gguf.PoolingType.NONE):
        pooling = (family.default_pooling if family.default_pooling is not None
                   else int(gguf.PoolingType.MEAN))
    kind = Kind.EMBEDDING
    if pooling == gguf.PoolingType.RANK:
        reranker_problem = rerank_head_problem(path.name, arch, header, tensor_names)
        if reranker_problem is not None:
            raise ModelLoadError(reranker_problem)
        kind = Kind.RERANKER
    if family.required_tensors:
        problem = family.tensor_problem(path.name, tensor_names)
        if problem is not None:
            raise ModelLoadError(problem)
    context = header.get(f"{arch}.context_length")
    hidden = header.get(f"{arch}.embedding_length")
    if not isinstance(context, int) or not isinstance(hidden, int):
        raise ModelLoadError(f"{path.name} lacks context_length or embedding_length metadata")
    max_seq_length = header.get(MAX_SEQ_LENGTH_KEY)
    return GGUFInfo(
        path=path, arch=arch, name=name, family=family, pooling=pooling, context=context,
        hidden=hidden,
        file_type=_file_type_name(header.get("general.file_type")), size=size,
        max_seq_length=max_seq_length if isinstance(max_seq_length, int) and max_seq_length > 0
        else None,
        vocab_size=header.array_length("tokenizer.ggml.tokens"),
        kind=kind,
        rerank_template=template if isinstance(template := header.get(RERANK_TEMPLATE_KEY), str)
        else None,
        tokenizer_pre=pre if isinstance(pre := header.get("tokenizer.ggml.pre"), str) else None,
        segment_b_offset=offset if isinstance(offset := header.get(SEGMENT_B_KEY), int)
        and offset > 0 else None,
    )


RERANK_TEMPLATE_KEY = "tokenizer.chat_template.rerank"
# Rerankers whose scores llama.cpp computes as the original model does (verified against
# independent forward passes): Qwen3-Reranker's yes/no head, and cross-encoders of the BERT
# architecture with a single token type (XLM-RoBERTa, e.g. bge-reranker-v2-m3) and their
# dense + tanh head.
RERANK_ARCHITECTURES = ("qwen3", "bert")


def rerank_head_problem(file_name: str, arch: str, header: GGUFHeader,
                        tensor_names: set[str]) -> str | None:
    """Why a rank-pooling GGUF would give wrong scores, or None when it is served.

    A silently wrong reranker is worse than none: it reorders results plausibly.
    """
    if "cls.output.weight" not in tensor_names and "cls.weight" not in tensor_names:
        return (f"{file_name} is a reranker without its classification head (no cls.output "
                "tensor): it would score about the same for every document. Some published "
                "conversions lost it (llama.cpp issue #25447); use a GGUF converted with the "
                "head, e.g. `localembed pull qwen3-reranker-0.6b`")
    if arch not in RERANK_ARCHITECTURES:
        return (f"{file_name} is a {arch} reranker; localembed serves Qwen3-Reranker and "
                "XLM-RoBERTa-style cross-encoders (such as bge-reranker-v2-m3), whose scores "
                "llama.cpp computes correctly")
    if arch == "qwen3":
        labels = header.array_length(f"{arch}.classifier.output_labels") or 1
        if labels < 2:
            return (f"{file_name} is a Qwen3 reranker with a single output: its yes/no head is "
                    "missing, and every document would score 1.0")
        return None
    token_types = header.get("tokenizer.ggml.token_type_count")
    if isinstance(token_types, int) and token_types > 1:
        pooler = ("" if "cls.weight" in tensor_names else
                  " and has lost BERT's pooler (llama.cpp's converter drops it: upstream PR "
                  "#21729)")
        return (f"{file_name} is a BERT cross-encoder (a reranker) with {token_types} token "
                "types: llama.cpp reads the document as the query's segment (it has no token "
                f"type 1){pooler}, so its scores would not be the model's (about 1 logit off, "
                "in a different order). Instead, import the model's original Hugging Face folder "
                "(`localembed import FOLDER`: localembed's converter keeps the pooler and the "
                "document's segment), or use Qwen3-Reranker (`localembed pull "
                "qwen3-reranker-0.6b`) or bge-reranker-v2-m3 (`localembed pull "
                "bge-reranker-v2-m3`)")
    if "cls.weight" not in tensor_names:
        return (f"{file_name} is a cross-encoder without its dense head (no cls tensor): "
                "its scores would be wrong")
    return None
