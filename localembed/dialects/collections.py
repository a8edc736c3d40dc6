"""Collections over HTTP: the bodies and answers of /v1/collections, translated into the
collection code's own requests (``localembed.collections``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from localembed.collections.ingest import IndexOptions, IndexProgress, IndexReport
from localembed.collections.search import SearchAnswer, SearchQuery, SearchResult
from localembed.collections.sources import Document, ReadOptions
from localembed.collections.store import Collection
from localembed.dialects.common import PositiveInt, Usage

# Checked by the store (the model-id rule), which says why.
CollectionName = Annotated[str, msgspec.Meta(description="a collection name (the model-id "
                                                         "rule: no paths)")]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class CollectionCreate(msgspec.Struct, kw_only=True):
    """``POST /v1/collections``: an empty collection bound to a model."""

    name: CollectionName
    model: str | None = None
    chunk_tokens: Annotated[int, msgspec.Meta(ge=16)] | None = None
    overlap: NonNegative | None = None


class IndexState(msgspec.Struct, kw_only=True):
    """An index run's progress (and, once it ended, its report or error)."""

    collection: str
    status: Literal["reading", "embedding", "done", "cancelled", "error"]
    documents_read: int
    documents_total: int
    documents_done: int
    chunks_total: int  # so far: documents are chunked as they are sent to the model
    chunks_done: int
    fraction: float  # of the embedding done, by the characters of the documents embedded
    tokens: int
    tokens_per_second: float
    eta: float | None = None
    current: str | None = None
    error: str | None = None
    report: IndexSummary | None = None

    @classmethod
    def of(cls, progress: IndexProgress, report: IndexReport | None = None,
           error: str | None = None) -> IndexState:
        return cls(collection=progress.collection, status=progress.status,  # type: ignore[arg-type]
                   documents_read=progress.documents_read,
                   documents_total=progress.documents_total,
                   documents_done=progress.documents_done, chunks_total=progress.chunks_total,
                   chunks_done=progress.chunks_done, fraction=round(progress.fraction, 4),
                   tokens=progress.tokens,
                   tokens_per_second=round(progress.tokens_per_second, 1), eta=progress.eta,
                   current=progress.current, error=error,
                   report=None if report is None else IndexSummary.of(report))


class SkippedFile(msgspec.Struct):
    path: str
    reason: str


class IndexSummary(msgspec.Struct, kw_only=True):
    """What an index run (or a documents upsert) did."""

    collection: str
    model: str
    added: int
    changed: int
    unchanged: int
    removed: int
    chunks: int
    tokens: int
    seconds: float
    skipped: list[SkippedFile]

    @classmethod
    def of(cls, report: IndexReport) -> IndexSummary:
        return cls(collection=report.collection, model=report.model, added=report.added,
                   changed=report.changed, unchanged=report.unchanged, removed=report.removed,
                   chunks=report.chunks, tokens=report.tokens, seconds=report.seconds,
                   skipped=[SkippedFile(s.path, s.reason) for s in report.skipped])


class CollectionInfo(msgspec.Struct, kw_only=True):
    name: str
    model: str
    dimensions: int
    chunk_tokens: int
    overlap: int
    documents: int
    chunks: int
    tokens: int
    bytes: int
    indexing: IndexState | None = None
    object: Literal["collection"] = "collection"

    @classmethod
    def of(cls, name: str, indexing: IndexState | None = None) -> CollectionInfo:
        """Collection ``name`` as every face lists it: its model, settings and size."""
        with Collection.open(name) as collection:
            stats, binding = collection.stats(), collection.binding
        return cls(name=name, model=binding.model, dimensions=binding.dimensions,
                   chunk_tokens=binding.chunk_tokens, overlap=binding.overlap,
                   documents=stats.documents, chunks=stats.chunks, tokens=stats.tokens,
                   bytes=stats.bytes, indexing=indexing)


class CollectionList(msgspec.Struct):
    data: list[CollectionInfo]
    object: Literal["list"] = "list"


class Removed(msgspec.Struct):
    name: str
    deleted: bool = True
    object: Literal["collection"] = "collection"


class IndexRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/collections/{name}/index``: index paths on this machine, in the background
    (a management action: the playground's page or the API key)."""

    paths: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]
    model: str | None = None
    glob: str | None = None
    text_field: str | None = None
    id_field: str | None = None
    chunk_tokens: Annotated[int, msgspec.Meta(ge=16)] | None = None
    overlap: NonNegative | None = None
    rechunk: Annotated[bool, msgspec.Meta(
        description="Let an existing collection take new chunk_tokens/overlap (its documents "
                    "are embedded again).")] = False

    def options(self) -> IndexOptions:
        return IndexOptions(model=self.model, chunk_tokens=self.chunk_tokens,
                            overlap=self.overlap, rechunk=self.rechunk,
                            read=ReadOptions(glob=self.glob, text_field=self.text_field,
                                             id_field=self.id_field))


class DocumentIn(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1)]
    text: Annotated[str, msgspec.Meta(min_length=1)]
    title: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)

    def document(self) -> Document:
        return Document(id=self.id, text=self.text, source=f"api:{self.id}", title=self.title,
                        metadata=self.metadata, line_based=False)


class DocumentsRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/collections/{name}/documents``: documents an app feeds itself, upserted by
    id (only new or changed ones are embedded), and ids to delete."""

    upsert: list[DocumentIn] = msgspec.field(default_factory=list)
    delete: list[str] = msgspec.field(default_factory=list)
    model: Annotated[str, msgspec.Meta(description="The model of a collection created by this "
                                                   "request (default: the default model).")
                     ] | None = None


class DocumentsResponse(msgspec.Struct, kw_only=True):
    collection: str
    added: int
    changed: int
    unchanged: int
    deleted: int
    chunks: int
    usage: Usage


class SearchRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/collections/{name}/search``."""

    query: Annotated[str, msgspec.Meta(min_length=1)]
    top_k: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    where: Annotated[dict[str, str], msgspec.Meta(
        description="Only documents whose metadata has each key with that value.")] | None = None
    path: Annotated[str, msgspec.Meta(
        description="Only documents whose id (path) matches this glob.")] | None = None
    rerank: Annotated[bool | str, msgspec.Meta(
        description="true: rerank the best candidates with the installed reranker; a model "
                    "id: with that reranker.")] = False
    hybrid: Annotated[bool, msgspec.Meta(
        description="Fuse keyword (FTS5) matches with the vector ranking.")] = False
    candidates: Annotated[PositiveInt, msgspec.Meta(
        description="How many candidates a rerank scores (default 4 x top_k, at least "
                    "20).")] | None = None
    include_vectors: Annotated[bool, msgspec.Meta(
        description="Also return the query's vector and each result's stored vector "
                    "(query_embedding, embeddings).")] = False

    def to_query(self) -> SearchQuery:
        reranker = (self.rerank or None) if isinstance(self.rerank, str) else None
        return SearchQuery(self.query, top_k=self.top_k, where=self.where, path=self.path,
                           rerank=self.rerank is not False, reranker=reranker,
                           hybrid=self.hybrid, candidates=self.candidates,
                           include_vectors=self.include_vectors)


class SearchResponse(msgspec.Struct, kw_only=True):
    collection: str
    model: str
    reranker: str | None
    results: list[SearchResult]
    usage: Usage
    object: Literal["list"] = "list"
    # With include_vectors only: the query's vector, and each result's (in results' order).
    query_embedding: list[float] | msgspec.UnsetType = msgspec.UNSET
    embeddings: list[list[float]] | msgspec.UnsetType = msgspec.UNSET

    @classmethod
    def of(cls, answer: SearchAnswer) -> SearchResponse:
        vectors: dict[str, object] = {}
        if answer.vectors is not None and answer.query_vector is not None:
            vectors = {"query_embedding": answer.query_vector.tolist(),
                       "embeddings": answer.vectors.tolist()}
        return cls(collection=answer.collection, model=answer.model, reranker=answer.reranker,
                   results=answer.results, usage=Usage.of(answer.tokens),
                   **vectors)  # type: ignore[arg-type]
