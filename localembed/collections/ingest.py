"""Indexing: sources read, chunked at the collection model's limit, embedded and stored, each
document in one transaction.

Incremental and resumable by construction: a document whose content hash (with the chunk
settings) is already stored is not embedded again; one that is gone from a folder indexed again
is dropped; a document is written whole or not at all, so a run killed at any moment is
finished by running it again, with no duplicate and no half-indexed document.

Chunks get the model's document prompt (EmbeddingGemma's ``title: <file name> | text: ...``)
and the chunk budget is what is left of the model's limit after that prompt, checked on the
exact prompt the engine will see: nothing is cut off silently.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from localembed.collections.chunking import Chunk, chunk_text
from localembed.collections.sources import (
    Document,
    ReadOptions,
    Skipped,
    content_hash,
    read_sources,
)
from localembed.collections.store import Binding, ChunkRow, Collection, CollectionError
from localembed.engine import EmbeddingResult, EmbedOptions, Engine, InputError, Kind
from localembed.models.store import model_sha256
from localembed.service.execute import EmbedRequest, Service

# A long model limit (Qwen3's 32k) makes chunks too broad to point at an answer: by default a
# chunk is at most this many tokens, or the model's limit when that is smaller.
DEFAULT_CHUNK_TOKENS = 512
# Documents with the engine at once: enough to fill its batches with short documents.
IN_FLIGHT = 16


class IndexCancelled(Exception):
    """The run was cancelled; documents written before stay, and a rerun goes on from there."""


@dataclass(frozen=True)
class IndexOptions:
    """What ``index`` may be told; None picks the collection's setting, else the default."""

    model: str | None = None
    chunk_tokens: int | None = None
    overlap: int | None = None
    rechunk: bool = False  # an existing collection may take other chunk settings
    read: ReadOptions = ReadOptions()


@dataclass
class IndexProgress:
    """A run's progress, for a bar: documents and chunks to embed are known once read."""

    collection: str
    status: str = "reading"  # reading, embedding, done, cancelled, error
    documents_read: int = 0
    documents_total: int = 0  # documents to embed (new or changed)
    documents_done: int = 0
    chunks_total: int = 0  # grows while embedding: documents are chunked as they are sent
    chunks_done: int = 0
    characters_total: int = 0  # of the documents to embed: what the bar and ETA go by
    characters_done: int = 0
    tokens: int = 0
    started: float = field(default_factory=time.monotonic)
    current: str | None = None

    @property
    def tokens_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.tokens / elapsed if elapsed > 0 else 0.0

    @property
    def fraction(self) -> float:
        """How much of the embedding is done, by the characters of the documents embedded."""
        if self.status == "done":
            return 1.0
        return self.characters_done / self.characters_total if self.characters_total else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, from the characters embedded so far; None before the first."""
        if not self.characters_done or self.status != "embedding":
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.characters_done * (self.characters_total - self.characters_done)


@dataclass
class IndexReport:
    """What a run did, for the final report."""

    collection: str
    model: str
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    tokens: int = 0
    seconds: float = 0.0
    skipped: list[Skipped] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Prepared:
    """A document ready to embed: its chunks, their prompt options and its stored hash."""

    document: Document
    chunks: list[Chunk]
    options: EmbedOptions
    stored_hash: str
    new: bool


def document_options(binding: Binding, document: Document) -> EmbedOptions:
    """The document prompt for one document: the collection's options, titled by the file."""
    options = EmbedOptions(**binding.document_options)  # type: ignore[arg-type]
    return replace(options, title=document.title, truncate="none")


def query_options(binding: Binding) -> EmbedOptions:
    return EmbedOptions(**binding.query_options)  # type: ignore[arg-type]


def bind(engine: Engine, chunk_tokens: int | None, overlap: int | None) -> Binding:
    """A new collection's binding to ``engine``'s model: the prompts similarity uses
    (documents get the document prompt, queries the query prompt) and chunk settings fitted
    to the model's limit."""
    if engine.kind != Kind.EMBEDDING:
        raise InputError(f"{engine.id} is a reranker: a collection needs an embedding model "
                         "to make its vectors (rerank its results with --rerank).",
                         param="model", code="wrong_model_kind")
    frame = len(engine.prepare("", EmbedOptions(task="document", title="x" * 32)))
    budget = engine.max_tokens - frame
    tokens = min(chunk_tokens or DEFAULT_CHUNK_TOKENS, budget)
    if chunk_tokens is not None and chunk_tokens > budget:
        raise InputError(f"--chunk-tokens {chunk_tokens} is more than {engine.id} takes with its "
                         f"document prompt ({budget} of its {engine.max_tokens} tokens).",
                         param="chunk_tokens")
    if tokens < 16:
        raise InputError(f"{engine.id} leaves only {budget} tokens for a chunk.",
                         param="chunk_tokens")
    overlap = tokens // 8 if overlap is None else overlap
    if not 0 <= overlap <= tokens // 2:
        raise InputError(f"--overlap must be between 0 and {tokens // 2} (half a chunk).",
                         param="overlap")
    return Binding(model=engine.id, sha256=model_sha256(engine.info.path),
                   dimensions=engine.dimensions,
                   document_options={"task": "document"}, query_options={"task": "query"},
                   chunk_tokens=tokens, overlap=overlap)


def open_collection(service: Service, name: str, options: IndexOptions) -> tuple[Collection,
                                                                                 Engine]:
    """The collection ``name`` (created on first use) and the engine of its model. An
    existing collection keeps its model, and its chunk settings unless ``rechunk``: then the
    new ones are recorded, and since a document's stored hash covers them every document of
    the run is embedded again (a run interrupted meanwhile goes on the same way)."""
    try:
        collection = Collection.open(name)
    except LookupError:
        engine = service.engine(options.model)
        # The store's own create-or-open: another process creating it meanwhile is no error
        # (and its binding is checked against this one).
        binding = bind(engine, options.chunk_tokens, options.overlap)
        return Collection.open_or_create(name, binding), engine
    binding = collection.binding
    if options.model is not None and service.registry.canonical(options.model) != binding.model:
        collection.close()
        raise CollectionError(f"collection {name!r} holds vectors of {binding.model}; it cannot "
                              f"take {options.model}'s (index into a new collection instead)")
    changed = [(setting, asked) for setting, asked in (("chunk_tokens", options.chunk_tokens),
                                                         ("overlap", options.overlap))
               if asked is not None and asked != getattr(binding, setting)]
    try:
        engine = model_engine(service, collection)
        if changed and not options.rechunk:
            setting, asked = changed[0]
            raise CollectionError(f"collection {name!r} was chunked with {setting} "
                                  f"{getattr(binding, setting)}; to use {asked}, re-chunk it "
                                  "(--rechunk: every document is embedded again)")
        if changed:
            fitted = bind(engine, options.chunk_tokens or binding.chunk_tokens, options.overlap)
            collection.set_chunking(fitted.chunk_tokens, fitted.overlap)
    except BaseException:
        collection.close()
        raise
    return collection, engine


def model_missing(name: str, model: str) -> CollectionError:
    """What a collection whose model is not installed says: which model to get back."""
    return CollectionError(f"collection {name!r} was built with {model}, which is not "
                           f"installed: pull it (`localembed pull {model}`) or import the same "
                           "file")


def model_engine(service: Service, collection: Collection) -> Engine:
    """The engine of a collection's model, which must be the very file its vectors came from."""
    binding = collection.binding
    try:
        engine = service.engine(binding.model)
    except LookupError as exc:
        raise model_missing(collection.name, binding.model) from exc
    if model_sha256(engine.info.path) != binding.sha256:
        raise CollectionError(f"{binding.model} is not the file collection {collection.name!r} "
                              "was built with (its sha256 differs): its vectors would not be "
                              "comparable; index into a new collection")
    return engine


def stored_hash(document: Document, binding: Binding) -> str:
    """What decides whether a document is embedded again: its content, and how it is cut and
    prompted."""
    prompt = sorted(binding.document_options.items())
    settings = f"{binding.chunk_tokens}|{binding.overlap}|{prompt}"
    return hashlib.sha256(f"{content_hash(document)}|{settings}".encode()).hexdigest()


def prepare(engine: Engine, binding: Binding, document: Document, stored: str,
            new: bool) -> Prepared:
    """A document's chunks, each checked to fit the model with its prompt."""
    options = document_options(binding, document)
    frame = len(engine.prepare("", options))
    limit = min(binding.chunk_tokens, engine.max_tokens - frame)
    chunks = chunk_text(document.text, engine.count, limit, min(binding.overlap, limit // 2),
                        line_based=document.line_based)
    for chunk in chunks:  # the exact prompt: InputError (too long) if a cut was wrong
        engine.prepare(chunk.text, options)
    return Prepared(document, chunks, options, stored, new)


def _owned(source: str, roots: Sequence[Path]) -> bool:
    """Whether a stored document came from one of this run's roots (so it is dropped when it
    is no longer there)."""
    path = Path(source)
    return any(path == root or root in path.parents for root in roots)


def check_paths(paths: Sequence[str | Path]) -> list[Path]:
    """The paths to index, resolved; when none of them exists it is a typo, refused at once
    rather than run into an empty collection (one missing among others is reported skipped)."""
    roots = [Path(p).expanduser().resolve() for p in paths]
    if not roots:
        raise InputError("give at least one file or folder to index", param="paths")
    if not any(root.exists() for root in roots):
        raise InputError(f"{paths[0]} does not exist", param="paths")
    return roots


def index(service: Service, name: str, paths: Sequence[str | Path],
          options: IndexOptions = IndexOptions(),
          progress: Callable[[IndexProgress], None] | None = None,
          cancel: threading.Event | None = None) -> IndexReport:
    """Index ``paths`` into collection ``name``; see the module's docstring for the rules."""
    roots = check_paths(paths)
    return _run(service, name, options, read_sources(paths, options.read), roots, progress,
                cancel)


def upsert(service: Service, name: str, documents: Sequence[Document],
           model: str | None = None) -> IndexReport:
    """Add or replace documents an app feeds itself (by id): only new or changed ones are
    embedded, and no other document is dropped."""
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        raise InputError("document ids must be unique within a request", param="documents")
    return _run(service, name, IndexOptions(model=model), iter(documents), [], None, None)


def _run(service: Service, name: str, options: IndexOptions,
         items: Iterable[Document | Skipped], roots: Sequence[Path],
         progress: Callable[[IndexProgress], None] | None,
         cancel: threading.Event | None) -> IndexReport:
    """Plan (read, hash, chunk), drop what is gone from ``roots``, then embed and write."""
    started = time.monotonic()
    collection, engine = open_collection(service, name, options)
    state = IndexProgress(name)
    report = IndexReport(name, collection.binding.model)
    tell = progress or (lambda _p: None)
    try:
        stored = collection.documents()
        seen: set[str] = set()
        todo: list[tuple[Document, str, bool]] = []  # (document, its stored hash, new)
        for item in items:
            _check(cancel)
            if isinstance(item, Skipped):
                report.skipped.append(item)
                seen.add(item.path)  # an unreadable file is not a deleted one
                continue
            seen.add(item.id)
            state.documents_read += 1
            state.current = item.id
            digest = stored_hash(item, collection.binding)
            old = stored.get(item.id)
            if old is not None and old.hash == digest:
                report.unchanged += 1
                continue
            todo.append((item, digest, old is None))
            state.documents_total += 1
            state.characters_total += len(item.text)
            tell(state)  # reading is long work too: a bar that moves
        gone = [doc_id for doc_id, doc in stored.items()
                if doc_id not in seen and doc.source not in seen and _owned(doc.source, roots)]
        report.removed = collection.delete_documents(gone)
        state.status = "embedding"
        state.started = time.monotonic()
        tell(state)
        _embed_all(service, engine, collection, todo, state, report, tell, cancel)
        state.status = "done"
        state.current = None
        tell(state)
    except IndexCancelled:
        state.status = "cancelled"
        tell(state)
        raise
    finally:
        collection.close()
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise IndexCancelled("indexing was cancelled; run it again to go on")


def embedded(service: Service, engine: Engine, binding: Binding,
             todo: Iterable[tuple[Document, str, bool]], state: IndexProgress,
             cancel: threading.Event | None) -> Iterator[tuple[Prepared, EmbeddingResult]]:
    """Each (document, stored hash, new) of ``todo`` chunked as it is sent, IN_FLIGHT of
    them with the engine (``Service.embed_stream``: it packs their chunks into shared batches
    and takes the next document as soon as one is done, so chunking overlaps embedding),
    yielded with its vectors as they come back. ``state.chunks_total`` grows as they are
    chunked; a cancel raises IndexCancelled."""
    def planned() -> Iterator[tuple[Prepared, EmbedRequest]]:
        for document, digest, new in todo:
            _check(cancel)
            item = prepare(engine, binding, document, digest, new)
            state.chunks_total += len(item.chunks)
            yield item, EmbedRequest([c.text for c in item.chunks], item.options, engine.id,
                                     field="chunks")

    return service.embed_stream(planned(), engine, IN_FLIGHT)


def _embed_all(service: Service, engine: Engine, collection: Collection,
               todo: Sequence[tuple[Document, str, bool]], state: IndexProgress,
               report: IndexReport, tell: Callable[[IndexProgress], None],
               cancel: threading.Event | None) -> None:
    """Embed ``todo`` (``embedded``) and write each document as soon as its vectors are back,
    in this thread: SQLite has one writer, and each document is its own transaction."""
    for item, result in embedded(service, engine, collection.binding, todo, state, cancel):
        _check(cancel)
        rows = [ChunkRow(c.number, c.text, c.start_line, c.end_line, c.tokens)
                for c in item.chunks]
        collection.replace_document(item.document.id, item.document.source, item.stored_hash,
                                    item.document.metadata, rows, result.vectors)
        state.documents_done += 1
        state.chunks_done += len(rows)
        state.characters_done += len(item.document.text)
        state.tokens += result.total_tokens
        state.current = item.document.id
        report.chunks += len(rows)
        report.tokens += result.total_tokens
        if item.new:
            report.added += 1
        else:
            report.changed += 1
        tell(state)
