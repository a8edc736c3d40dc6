"""Read and validate a GGUF file's metadata before llama.cpp sees it.

llama.cpp aborts the whole process on some malformed inputs and silently mis-computes on others
(an EmbeddingGemma file without its dense layers), so everything that can be checked from the
file's header is checked here, in Python, where a bad file becomes a clear exception.

Only the header is read (``localembed.ggufheader``): the vocabulary's arrays are stepped over,
so inspecting a model takes milliseconds whatever its vocabulary size.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import gguf

from localembed.families import Family, family_for
from localembed.ggufheader import GGUFHeaderError, read_header
from localembed.ggufwrite import MAX_SEQ_LENGTH_KEY

# llama.cpp's pooling types by value: 0 none, 1 mean, 2 cls, 3 last, 4 rank.
POOLING_NAMES = {int(p): p.name.lower() for p in gguf.PoolingType}


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
        })

    @classmethod
    def from_json(cls, text: str) -> GGUFInfo:
        """The description ``to_json`` wrote, without opening the file again."""
        data = json.loads(text)
        return cls(path=Path(data.pop("path")), family=family_for(data["arch"]), **data)


def _file_type_name(value: object) -> str:
    try:
        return gguf.LlamaFileType(int(value)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (TypeError, ValueError):
        return "unknown"


def inspect_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Validate ``path`` as a servable GGUF embedding model and describe it."""
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
    if pooling == gguf.PoolingType.RANK:
        raise ModelLoadError(f"{path.name} is a reranker (rank pooling), not an embedding model")
    if family.required_tensors:
        problem = family.tensor_problem(path.name, {t.name for t in header.tensors})
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
    )
