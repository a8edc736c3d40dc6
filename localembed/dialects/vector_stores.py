"""OpenAI's files and vector stores API, answered by localembed's collections: the bodies and
answers of ``/v1/files`` and ``/v1/vector_stores``, OpenAI's attribute filters, and a store's
search translated into collection searches (``localembed.collections.search``).

Every object has the exact fields the OpenAI SDKs parse (``openai/types/vector_store.py``,
``vector_stores/*.py``, ``file_object.py``), so file search works by changing the base URL.

Search, and why it is built this way:

* A store is one collection and a file one document, so a search is the collection's own
  cosine search, each result one chunk (OpenAI's results are chunks too).
* Filters follow OpenAI's semantics exactly (``eq`` ``ne`` ``gt`` ``gte`` ``lt`` ``lte`` ``in``
  ``nin``, ``and`` ``or``) and are evaluated on the documents' attributes first, which is
  cheap (one row a file): no file matching needs no embedding, every file matching is an
  unfiltered search, and otherwise the search is the collection's, over the chunks of the
  matching files only (its ``documents`` filter), whatever the size of the store.
* ``ranking_options.ranker``: ``"none"`` is the vector order; ``"auto"`` reranks with the
  installed reranker when there is one, else it is the vector order; OpenAI's named ranker
  (``default-2024-11-15``) asks for a rerank, and without a reranker that is a 400; any other
  value names a reranker model (localembed's extension). A rerank's score is the reranker's.
* ``query`` as a list: each query is searched and a chunk keeps its best score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Literal

import msgspec

from localembed.collections.search import SearchQuery, search
from localembed.engine import InputError
from localembed.service.execute import Service

# -- shared fields --------------------------------------------------------------------------------

Key = Annotated[str, msgspec.Meta(max_length=64)]
Metadata = Annotated[dict[Key, Annotated[str, msgspec.Meta(max_length=512)]], msgspec.Meta(
    max_length=16, description="Up to 16 pairs: keys up to 64 characters, string values up to "
                               "512.")]
AttributeValue = Annotated[str, msgspec.Meta(max_length=512)] | int | float | bool
Attributes = Annotated[dict[Key, AttributeValue], msgspec.Meta(
    max_length=16, description="Up to 16 pairs a search can filter on: keys up to 64 "
                               "characters, values strings (up to 512), numbers or booleans. "
                               "'filename' is the file's name.")]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
# The document metadata key that holds the file's name, beside its attributes.
FILENAME = "filename"
RANKERS = ("auto", "none", "default-2024-11-15")
COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
MAX_QUERIES = 16


class Page(msgspec.Struct, kw_only=True):
    """OpenAI's cursor page: ``first_id``, ``last_id`` and ``has_more`` around ``data``."""

    object: Literal["list"] = "list"
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


# -- files ----------------------------------------------------------------------------------------

class FileObject(msgspec.Struct, kw_only=True):
    """An uploaded file (``POST /v1/files``)."""

    id: str
    bytes: int
    created_at: int
    filename: str
    purpose: Literal["assistants", "user_data"]
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None
    object: Literal["file"] = "file"


class FileList(Page, kw_only=True):
    data: list[FileObject]


class FileDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["file"] = "file"


# -- vector stores --------------------------------------------------------------------------------

class VectorStoreStaticChunking(msgspec.Struct, kw_only=True):
    max_chunk_size_tokens: Annotated[int, msgspec.Meta(ge=100, le=4096)]
    chunk_overlap_tokens: NonNegative


class VectorStoreChunkingParam(msgspec.Struct, kw_only=True):
    """OpenAI's ``chunking_strategy``: ``auto`` (the collection's default, fitted to the model)
    or ``static`` sizes, which a store takes when it is created and keeps for every file."""

    type: Literal["auto", "static"]
    static: VectorStoreStaticChunking | None = None

    def sizes(self) -> tuple[int, int] | None:
        """(chunk tokens, overlap) asked for; None for ``auto``."""
        if self.type == "auto":
            return None
        if self.static is None:
            raise InputError("chunking_strategy of type 'static' needs 'static': "
                             "{max_chunk_size_tokens, chunk_overlap_tokens}.",
                             param="chunking_strategy", code="missing_required_parameter")
        size, overlap = self.static.max_chunk_size_tokens, self.static.chunk_overlap_tokens
        if overlap > size // 2:
            raise InputError(f"chunk_overlap_tokens ({overlap}) must not exceed half of "
                             f"max_chunk_size_tokens ({size}).", param="chunking_strategy")
        return size, overlap


class VectorStoreChunking(msgspec.Struct, kw_only=True):
    """The chunk sizes a store's files are cut at (its collection's)."""

    static: VectorStoreStaticChunking
    type: Literal["static"] = "static"


class VectorStoreExpiresAfter(msgspec.Struct, kw_only=True):
    """Accepted and ignored: stores on this machine never expire (``expires_at`` is null)."""

    anchor: Literal["last_active_at"]
    days: Annotated[int, msgspec.Meta(ge=1, le=365)]


class VectorStoreCreate(msgspec.Struct, kw_only=True):
    """``POST /v1/vector_stores``: a new, empty collection (its id is the collection's name),
    with the given files attached in the background."""

    name: str | None = None
    description: str | None = None
    metadata: Metadata | None = None
    file_ids: Annotated[list[str], msgspec.Meta(max_length=500)] = msgspec.field(
        default_factory=list)
    chunking_strategy: VectorStoreChunkingParam | None = None
    expires_after: VectorStoreExpiresAfter | None = None
    model: Annotated[str, msgspec.Meta(
        description="The embedding model of the store's collection (default: the default "
                    "model; localembed extension).")] | None = None


class VectorStoreUpdate(msgspec.Struct, kw_only=True):
    """``POST /v1/vector_stores/{id}``: a new name and metadata (null or absent: unchanged)."""

    name: str | None = None
    metadata: Metadata | None = None
    expires_after: VectorStoreExpiresAfter | None = None


class VectorStoreFileCounts(msgspec.Struct, kw_only=True):
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    total: int = 0

    @classmethod
    def of(cls, statuses: Iterable[str]) -> VectorStoreFileCounts:
        counts = cls()
        for status in statuses:
            setattr(counts, status, getattr(counts, status) + 1)
            counts.total += 1
        return counts


class VectorStoreObject(msgspec.Struct, kw_only=True):
    """A vector store: a collection, with its display name and metadata beside it."""

    id: str
    created_at: int
    name: str
    usage_bytes: int
    file_counts: VectorStoreFileCounts
    status: Literal["expired", "in_progress", "completed"]
    last_active_at: int | None
    metadata: dict[str, str] | None
    expires_after: VectorStoreExpiresAfter | None = None
    expires_at: int | None = None
    object: Literal["vector_store"] = "vector_store"


class VectorStoreList(Page, kw_only=True):
    data: list[VectorStoreObject]


class VectorStoreDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["vector_store.deleted"] = "vector_store.deleted"


# -- a store's files ------------------------------------------------------------------------------

MAX_BATCH_FILES = 2000  # OpenAI's limit on one file batch

class VectorStoreFileCreate(msgspec.Struct, kw_only=True):
    """``POST /v1/vector_stores/{id}/files``: attach an uploaded file (embedded in the
    background; poll the file until its status is no longer ``in_progress``)."""

    file_id: Annotated[str, msgspec.Meta(min_length=1)]
    attributes: Attributes | None = None
    chunking_strategy: VectorStoreChunkingParam | None = None


class VectorStoreFileUpdate(msgspec.Struct, kw_only=True):
    """``POST /v1/vector_stores/{id}/files/{file_id}``: new attributes (null: none)."""

    attributes: Attributes | None


class VectorStoreLastError(msgspec.Struct, kw_only=True):
    code: Literal["server_error", "unsupported_file", "invalid_file"]
    message: str


class VectorStoreFileObject(msgspec.Struct, kw_only=True):
    """A file attached to a store: one document of its collection (id = the file's id)."""

    id: str
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    usage_bytes: int
    last_error: VectorStoreLastError | None = None
    attributes: dict[str, AttributeValue] | None = None
    chunking_strategy: VectorStoreChunking | None = None
    object: Literal["vector_store.file"] = "vector_store.file"


class VectorStoreFileList(Page, kw_only=True):
    data: list[VectorStoreFileObject]


class VectorStoreFileDeleted(msgspec.Struct, kw_only=True):
    id: str
    deleted: bool = True
    object: Literal["vector_store.file.deleted"] = "vector_store.file.deleted"


class VectorStoreFileBatchCreate(msgspec.Struct, kw_only=True):
    """``POST /v1/vector_stores/{id}/file_batches``: attach several uploaded files at once,
    as ``file_ids`` (with shared ``attributes`` and ``chunking_strategy``) or as ``files``
    (each with its own), each embedded in the background as a single attach is."""

    file_ids: Annotated[list[Annotated[str, msgspec.Meta(min_length=1)]],
                        msgspec.Meta(min_length=1, max_length=MAX_BATCH_FILES)] | None = None
    files: Annotated[list[VectorStoreFileCreate],
                     msgspec.Meta(min_length=1, max_length=MAX_BATCH_FILES)] | None = None
    attributes: Attributes | None = None
    chunking_strategy: VectorStoreChunkingParam | None = None

    def entries(self) -> list[VectorStoreFileCreate]:
        """Each file with what it is attached with (a file named twice: its last entry)."""
        if (self.file_ids is None) == (self.files is None):
            raise InputError("Give either 'file_ids' or 'files' (exactly one of them).",
                             param="file_ids")
        entries = self.files if self.files is not None else [
            VectorStoreFileCreate(file_id=f, attributes=self.attributes,
                                  chunking_strategy=self.chunking_strategy)
            for f in self.file_ids or ()]
        return list({e.file_id: e for e in entries}.values())


class VectorStoreFileBatchObject(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    vector_store_id: str
    status: Literal["in_progress", "completed", "cancelled", "failed"]
    file_counts: VectorStoreFileCounts
    object: Literal["vector_store.files_batch"] = "vector_store.files_batch"


class VectorStoreText(msgspec.Struct, kw_only=True):
    text: str
    type: Literal["text"] = "text"


class VectorStoreFileContent(msgspec.Struct, kw_only=True):
    """``GET /v1/vector_stores/{id}/files/{file_id}/content``: the file's text as read."""

    data: list[VectorStoreText]
    has_more: bool = False
    next_page: str | None = None
    object: Literal["vector_store.file_content.page"] = "vector_store.file_content.page"


# -- filters --------------------------------------------------------------------------------------

FilterValue = str | int | float | bool | list[str | int | float]


class VectorStoreFilter(msgspec.Struct, kw_only=True):
    """OpenAI's ``ComparisonFilter`` (``key``, ``type``, ``value``) or ``CompoundFilter``
    (``type`` ``and``/``or``, ``filters``), in one shape: the two differ by ``type`` only."""

    type: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "and", "or"]
    key: str | None = None
    value: FilterValue | None = None
    filters: list[VectorStoreFilter] | None = None

    def check(self, where: str = "filters") -> None:
        """Refuse a filter that cannot be evaluated, saying which part and why (a 400)."""
        if self.type in ("and", "or"):
            if not self.filters:
                raise InputError(f"{where}: a filter of type '{self.type}' needs a non-empty "
                                 "'filters' list.", param="filters")
            for i, inner in enumerate(self.filters):
                inner.check(f"{where}.filters[{i}]")
            return
        if self.key is None or self.value is None:
            raise InputError(f"{where}: a filter of type '{self.type}' needs 'key' and "
                             "'value'.", param="filters")
        listed = isinstance(self.value, list)
        if self.type in ("in", "nin") and not listed:
            raise InputError(f"{where}: '{self.type}' compares with a list of values.",
                             param="filters")
        if self.type not in ("in", "nin") and listed:
            raise InputError(f"{where}: only 'in' and 'nin' take a list of values, not "
                             f"'{self.type}'.", param="filters")
        if self.type in ("gt", "gte", "lt", "lte") and isinstance(self.value, bool):
            raise InputError(f"{where}: '{self.type}' compares numbers (or strings), not "
                             "booleans.", param="filters")

    def matches(self, attributes: Mapping[str, object]) -> bool:
        """Whether a file's attributes pass: a comparison with an attribute the file lacks (or
        of another type) is false, and its negation (``ne``, ``nin``) true."""
        if self.type == "and":
            return all(f.matches(attributes) for f in self.filters or ())
        if self.type == "or":
            return any(f.matches(attributes) for f in self.filters or ())
        have = attributes.get(self.key or "")
        value = self.value
        if self.type == "eq":
            return _equal(have, value)
        if self.type == "ne":
            return not _equal(have, value)
        if self.type in ("in", "nin"):
            found = any(_equal(have, v) for v in value or ())  # type: ignore[union-attr]
            return found if self.type == "in" else not found
        if _kind(have) != _kind(value) or _kind(have) not in ("number", "string"):
            return False
        return _ORDER[self.type](have, value)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _equal(have: object, value: object) -> bool:
    """Equal values of the same kind: true is not 1, "2" is not 2, 2 is 2.0."""
    return _kind(have) == _kind(value) and _kind(have) != "other" and have == value


_ORDER: dict[str, Callable[[object, object], bool]] = {
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "gte": lambda a, b: a >= b,  # type: ignore[operator]
    "lt": lambda a, b: a < b,  # type: ignore[operator]
    "lte": lambda a, b: a <= b,  # type: ignore[operator]
}


# -- search ---------------------------------------------------------------------------------------

class VectorStoreRankingOptions(msgspec.Struct, kw_only=True):
    ranker: Annotated[str, msgspec.Meta(
        description="'auto' (rerank when a reranker is installed), 'none' (vector order), "
                    "'default-2024-11-15' (rerank), or a reranker model's id (localembed "
                    "extension).")] = "auto"
    score_threshold: Annotated[float, msgspec.Meta(
        description="Results scoring below this are left out.")] | None = None


class VectorStoreSearchRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/vector_stores/{id}/search``."""

    query: Annotated[str, msgspec.Meta(min_length=1)] | Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1)]],
        msgspec.Meta(min_length=1, max_length=MAX_QUERIES)]
    filters: VectorStoreFilter | None = None
    max_num_results: Annotated[int, msgspec.Meta(ge=1, le=50)] = 10
    ranking_options: VectorStoreRankingOptions | None = None
    rewrite_query: Annotated[bool, msgspec.Meta(
        description="Accepted and ignored: the query is searched as given.")] = False

    @property
    def queries(self) -> list[str]:
        return [self.query] if isinstance(self.query, str) else list(self.query)


class VectorStoreSearchResult(msgspec.Struct, kw_only=True):
    """One chunk found, in the file it belongs to."""

    file_id: str
    filename: str
    score: float
    attributes: dict[str, AttributeValue] | None
    content: list[VectorStoreText]


class VectorStoreSearchPage(msgspec.Struct, kw_only=True):
    search_query: list[str]
    data: list[VectorStoreSearchResult]
    has_more: bool = False
    next_page: str | None = None
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"


def attributes_of(metadata: Mapping[str, object]) -> dict[str, AttributeValue]:
    """A file's attributes from its document's metadata: all of it but the file name."""
    return {k: v for k, v in metadata.items()  # type: ignore[misc]
            if k != FILENAME and isinstance(v, str | int | float | bool)}


def document_metadata(attributes: Mapping[str, object] | None,
                      filename: str) -> dict[str, object]:
    """A file's document metadata: its attributes and its name (which a filter can use)."""
    return {**(attributes or {}), FILENAME: filename}


@dataclass(frozen=True)
class Rerank:
    """Whether and with which reranker a search reranks (``ranker`` None: the registry's)."""

    wanted: bool
    ranker: str | None = None


def rerank_choice(options: VectorStoreRankingOptions | None,
                  reranker_installed: Callable[[], bool]) -> Rerank:
    """``ranking_options.ranker`` as a rerank or not; see the module's docstring."""
    ranker = "auto" if options is None else options.ranker
    if ranker == "none":
        return Rerank(False)
    if ranker == "auto":
        return Rerank(reranker_installed())
    if ranker in RANKERS:
        if not reranker_installed():
            raise InputError(f"ranking_options.ranker {ranker!r} asks for a rerank, and no "
                             "reranker is installed: pull one (`localembed pull ...`), or use "
                             "'auto' or 'none'.", param="ranking_options",
                             code="reranker_not_installed")
        return Rerank(True)
    return Rerank(True, ranker)


@dataclass(frozen=True)
class Hit:
    chunk: str
    document: str
    text: str
    score: float
    metadata: Mapping[str, object]


def search_store(service: Service, name: str, request: VectorStoreSearchRequest,
                 documents: Callable[[], Mapping[str, Mapping[str, object]]],
                 reranker_installed: Callable[[], bool]) -> tuple[list[Hit], int]:
    """The best chunks of store ``name`` for the request, best first, and the tokens it
    took. ``documents`` gives each file's metadata (read only when the request filters)."""
    choice = rerank_choice(request.ranking_options, reranker_installed)
    wanted = request.max_num_results
    base = SearchQuery("", top_k=wanted, rerank=choice.wanted, reranker=choice.ranker)
    flt = request.filters
    if flt is not None:
        flt.check()
        metadata = documents()
        allowed = frozenset(doc for doc, meta in metadata.items() if flt.matches(meta))
        if not allowed:
            return [], 0
        if len(allowed) < len(metadata):
            base = replace(base, documents=allowed)
    best: dict[str, Hit] = {}
    tokens = 0
    for query in request.queries:
        answer = search(service, name, replace(base, query=query))
        tokens += answer.tokens
        _keep_best(best, [Hit(r.id, r.document, r.text, r.score, r.metadata)
                          for r in answer.results])
    threshold = None if request.ranking_options is None else (
        request.ranking_options.score_threshold)
    hits = sorted(best.values(), key=lambda h: -h.score)
    if threshold is not None:
        hits = [h for h in hits if h.score >= threshold]
    return hits[:wanted], tokens


def _keep_best(best: dict[str, Hit], hits: Iterable[Hit]) -> None:
    for hit in hits:
        if not math.isfinite(hit.score):
            continue
        old = best.get(hit.chunk)
        if old is None or hit.score > old.score:
            best[hit.chunk] = hit


def search_page(queries: list[str], hits: Sequence[Hit]) -> VectorStoreSearchPage:
    """OpenAI's search answer: one result per chunk, with its file's name and attributes."""
    return VectorStoreSearchPage(search_query=queries, data=[
        VectorStoreSearchResult(
            file_id=h.document, filename=str(h.metadata.get(FILENAME, h.document)),
            score=h.score, attributes=attributes_of(h.metadata),
            content=[VectorStoreText(text=h.text)]) for h in hits])
