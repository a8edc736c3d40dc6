"""What every face says about a model: one struct, built where the model is inspected.

``/v1/models``, Ollama's ``/api/tags``, ``localembed ls`` and the web UI all render a
``ModelDescription``; none reads a GGUF or a catalog entry itself, so a fact (a kind, a
Matryoshka rule, an error) is worded once. The file's facts come from its header
(``engine.inspect``), the catalog's from the catalog; a server adds what only a loaded model
knows (its resident memory, its input limit).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from localembed.engine.inspect import GGUFInfo, Kind


class ModelDescription(msgspec.Struct, kw_only=True):
    """One model. Matryoshka sizes read as a rule: a request may ask for any of
    ``matryoshka_dimensions`` (the sizes the model was trained for) or, where
    ``min_dimensions`` is set, any size from it up to ``dimensions``."""

    id: str
    kind: Kind | None = None  # None: the file could not be read (see ``error``)
    family: str | None = None
    architecture: str | None = None
    quantization: str | None = None
    dimensions: int | None = None  # None for rerankers: they make no vectors
    matryoshka_dimensions: list[int] | None = None
    min_dimensions: int | None = None
    context_length: int | None = None
    max_seq_length: int | None = None
    size_bytes: int | None = None
    modified: float | None = None  # the file's mtime
    path: str | None = None
    description: str | None = None
    license: str | None = None
    repo: str | None = None
    source: dict | None = None  # an imported model's record (where it came from, when)
    error: str | None = None
    # What a server knows: whether it has the model loaded, serves it by default, and what
    # loading it cost; ``missing`` is a loaded model whose file has since gone.
    loaded: bool = False
    default: bool = False
    missing: bool = False
    max_tokens: int | None = None
    rss_bytes: int | None = None

    @classmethod
    def of(cls, model_id: str, info: GGUFInfo, **facts: object) -> ModelDescription:
        """The file's facts from its inspected header; ``facts`` add the rest."""
        embedding = info.kind == Kind.EMBEDDING
        return cls(id=model_id, kind=info.kind, family=info.family.name,
                   architecture=info.arch, quantization=info.file_type,
                   dimensions=info.hidden if embedding else None,
                   matryoshka_dimensions=(info.family.trained_dimensions(info.hidden)
                                          if embedding else None),
                   min_dimensions=info.family.matryoshka_min if embedding else None,
                   context_length=info.context, max_seq_length=info.max_seq_length,
                   size_bytes=info.size, path=str(info.path), **facts)  # type: ignore[arg-type]

    def file_modified(self) -> int | None:
        """The file's mtime as whole seconds (OpenAI's ``created``), None when unknown."""
        return None if self.modified is None else int(self.modified)


def modified(path: Path) -> float | None:
    """A model file's mtime, or None once it is gone (a loaded model outlives its file)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return None
