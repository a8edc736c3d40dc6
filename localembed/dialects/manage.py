"""Model management bodies and answers (catalog, pulls, default, import), for the web UI, the
tray and scripts."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

# Checked by the store (letters, digits, '.', '_', '-', ':'; no paths), which says why.
ModelId = Annotated[str, msgspec.Meta(description="a model id, not a path")]


class PullBody(msgspec.Struct, kw_only=True):
    model: ModelId


class DefaultBody(msgspec.Struct, kw_only=True):
    model: ModelId
    persist: bool = True


class ImportBody(msgspec.Struct, kw_only=True):
    path: str
    id: ModelId | None = None


class CatalogEntry(msgspec.Struct, kw_only=True):
    id: str
    family: str
    dimensions: int | None  # None for rerankers: they make no vectors
    context: int
    license: str
    description: str
    quantization: str
    installed: bool
    repo: str | None = None
    filename: str | None = None
    size_bytes: int | None = None
    pinned: bool = False
    recommended: bool = False
    builtin: bool = False
    aliases: list[str] = msgspec.field(default_factory=list)
    kind: Literal["embedding", "reranker"] = "embedding"


class Catalog(msgspec.Struct):
    data: list[CatalogEntry]
    object: Literal["list"] = "list"


class Progress(msgspec.Struct, kw_only=True):
    model: str
    status: str
    downloaded: int
    percent: float
    total: int | None = None
    speed: float = 0.0
    eta: float | None = None
    resumed_from: int = 0
    error: str | None = None
    source: str | None = None
    notice: str | None = None
    started: float | None = None
    finished: float | None = None


class ProgressList(msgspec.Struct):
    data: list[Progress]
    object: Literal["list"] = "list"


class Deleted(msgspec.Struct):
    id: str
    deleted: bool = True
    object: Literal["model"] = "model"
