"""The corpus pipeline as a table (``localembed embed-corpus``): documents read, chunked and
prompted exactly as ``index`` does, embedded, and written as a Parquet dataset that any data
tool reads (pyarrow, pandas, DuckDB, Spark), one row per chunk.

The dataset is a folder of ``part-<digest>.parquet`` files. Each part holds whole documents,
is written under a temporary name and renamed into place, and is named by the digest of the
(document, hash) pairs it holds: a part written again (a retried Ray task) replaces itself
with the same rows, and a run killed at any moment leaves only whole parts. A rerun reads the
pairs already written and embeds only documents not written yet (or changed, whose old rows
are then dropped), so every chunk is in the dataset once.

The schema's metadata (key ``localembed``) is the binding a collection would have: the model's
id and file sha256, the dimensions, the document and query prompts and the chunk settings.
``index`` loads such a dataset into a collection without embedding again (``load_corpus``).

pyarrow comes with the ``ray`` extra; without it this module imports, and says what to install
when used.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from localembed.collections.ingest import (
    IndexOptions,
    IndexProgress,
    Prepared,
    bind,
    embedded,
    model_engine,
    stored_hash,
)
from localembed.collections.sources import Document, Skipped, read_sources
from localembed.collections.store import Binding, ChunkRow, Collection, CollectionError
from localembed.engine import InputError
from localembed.service.execute import Service

META_KEY = b"localembed"
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
# Documents per part: enough that a part is not tiny, few enough that a retried or rerun
# part costs little.
DOCUMENTS_PER_PART = 16
EXTRA_HINT = 'pip install "localembed[ray]"'


def pyarrow_modules() -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet), or an InputError naming the extra."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise InputError(f"Parquet needs pyarrow, which comes with the ray extra: "
                         f"{EXTRA_HINT}", param="output") from exc
    return pa, pq


def arrow_schema(binding: Binding) -> Any:
    pa, _ = pyarrow_modules()
    return pa.schema([
        ("id", pa.string()), ("document", pa.string()), ("number", pa.int32()),
        ("text", pa.string()), ("source", pa.string()), ("start_line", pa.int32()),
        ("end_line", pa.int32()), ("tokens", pa.int32()), ("title", pa.string()),
        ("metadata", pa.string()),  # the document's metadata, as JSON
        ("document_hash", pa.string()),  # what decides whether it is embedded again
        ("chunks", pa.int32()),  # how many chunks the document has (all in one part)
        ("embedding", pa.list_(pa.float32(), binding.dimensions)),
    ], metadata={META_KEY: binding.to_json().encode()})


def document_record(document: Document, digest: str) -> dict[str, Any]:
    """A document as a plain row, for a Ray stage to carry (and back: ``record_document``)."""
    return {"id": document.id, "text": document.text, "source": document.source,
            "title": document.title, "metadata": json.dumps(document.metadata),
            "line_based": document.line_based, "document_hash": digest}


def record_document(record: dict[str, Any]) -> tuple[Document, str]:
    return (Document(str(record["id"]), str(record["text"]), str(record["source"]),
                     None if record["title"] is None else str(record["title"]),
                     json.loads(record["metadata"]), bool(record["line_based"])),
            str(record["document_hash"]))


def chunk_rows(prepared: Prepared, vectors: np.ndarray | None = None) -> list[dict[str, Any]]:
    """A prepared document's chunks as rows (with their vectors once embedded)."""
    document = prepared.document
    title = prepared.options.title
    metadata = json.dumps(document.metadata, sort_keys=True)
    return [{"id": f"{document.id}#{c.number}", "document": document.id, "number": c.number,
             "text": c.text, "source": document.source, "start_line": c.start_line,
             "end_line": c.end_line, "tokens": c.tokens, "title": title, "metadata": metadata,
             "document_hash": prepared.stored_hash, "chunks": len(prepared.chunks),
             "embedding": None if vectors is None else vectors[i]}
            for i, c in enumerate(prepared.chunks)]


def part_name(rows: Sequence[dict[str, Any]]) -> str:
    pairs = sorted({(r["document"], r["document_hash"]) for r in rows})
    digest = hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:32]
    return f"{PART_PREFIX}{digest}{PART_SUFFIX}"


def write_part(out: Path, binding: Binding, rows: Sequence[dict[str, Any]]) -> Path | None:
    """Whole documents' chunk rows as one part, written atomically; None when there are none."""
    if not rows:
        return None
    pa, pq = pyarrow_modules()
    schema = arrow_schema(binding)
    columns = {name: [r[name] for r in rows] for name in schema.names if name != "embedding"}
    vectors = np.asarray(np.stack([np.asarray(r["embedding"], np.float32) for r in rows]),
                         dtype=np.float32)
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(
        pa.array(vectors.reshape(-1), pa.float32()), binding.dimensions)
    table = pa.table(columns, schema=schema)
    out.mkdir(parents=True, exist_ok=True)
    target = out / part_name(rows)
    temporary = out / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def parts(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir()
                  if p.name.startswith(PART_PREFIX) and p.name.endswith(PART_SUFFIX))


def dataset_binding(out: Path) -> Binding | None:
    """The binding a dataset's parts were written with, None when it has none yet (or is not
    one)."""
    found = parts(out)
    if not found:
        return None
    _, pq = pyarrow_modules()
    meta = pq.read_schema(found[0]).metadata or {}
    if META_KEY not in meta:
        return None
    return Binding.from_dict(json.loads(meta[META_KEY]))


def written(out: Path) -> dict[str, set[tuple[str, Path]]]:
    """What a dataset holds: document -> its (hash, part) pairs (one, unless a run was killed
    between writing a changed document and dropping its old rows)."""
    _, pq = pyarrow_modules()
    held: dict[str, set[tuple[str, Path]]] = {}
    for part in parts(out):
        table = pq.read_table(part, columns=["document", "document_hash"])
        for document, digest in zip(table.column("document").to_pylist(),
                                    table.column("document_hash").to_pylist(), strict=True):
            held.setdefault(document, set()).add((digest, part))
    return held


def drop_documents(out: Path, binding: Binding, gone: dict[Path, set[str]]) -> None:
    """Rewrite the parts holding old versions of documents without those documents."""
    _, pq = pyarrow_modules()
    for part, documents in gone.items():
        if not part.exists():
            continue
        rows = [r for r in pq.read_table(part).to_pylist() if r["document"] not in documents]
        kept = write_part(out, binding, rows)
        if kept != part:
            part.unlink(missing_ok=True)


def check_dataset(out: Path, binding: Binding) -> None:
    """Refuse to add vectors of another model, or of other chunk settings, to a dataset."""
    theirs = dataset_binding(out)
    if theirs is None:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InputError(f"{out} exists and is not a dataset written by embed-corpus: "
                             "give an empty or new folder", param="output")
        return
    if (theirs.model, theirs.sha256) != (binding.model, binding.sha256):
        raise CollectionError(f"{out} holds vectors of {theirs.model} (sha256 "
                              f"{theirs.sha256[:12]}), not of {binding.model}: write into "
                              "another folder")
    if (theirs.chunk_tokens, theirs.overlap) != (binding.chunk_tokens, binding.overlap):
        raise CollectionError(f"{out} was chunked at {theirs.chunk_tokens} tokens with "
                              f"{theirs.overlap} overlap: keep those settings, or write into "
                              "another folder")


@dataclass
class CorpusReport:
    """What an ``embed-corpus`` run did."""

    output: str
    model: str
    written: int = 0  # documents embedded and written
    unchanged: int = 0  # already in the dataset
    chunks: int = 0
    tokens: int = 0  # of the chunks written (their prompts not counted)
    skipped: list[Skipped] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def chunk_settings(out: Path, options: IndexOptions) -> tuple[int | None, int | None]:
    """(chunk_tokens, overlap) of a run into ``out``: those asked, else the dataset's own
    (None: the model's defaults, for ``bind``)."""
    theirs = dataset_binding(out)
    chunk_tokens = options.chunk_tokens or (theirs.chunk_tokens if theirs else None)
    overlap = options.overlap if options.overlap is not None else (
        theirs.overlap if theirs else None)
    return chunk_tokens, overlap


def version(document: Document, binding: Binding,
            held: Mapping[str, Iterable[tuple[str, str | Path]]]) -> tuple[str, bool, list[Path]]:
    """(the document's hash, whether the dataset holds it with that hash, the parts holding
    an older version: to drop once the new one is written), ``held`` being ``written``'s."""
    digest = stored_hash(document, binding)
    versions = list(held.get(document.id, ()))
    stale = [Path(part) for old, part in versions if old != digest]
    return digest, any(old == digest for old, _ in versions), stale


def plan(items: Iterable[Document | Skipped], binding: Binding,
         held: Mapping[str, Iterable[tuple[str, Path]]], report: CorpusReport,
         stale: dict[Path, set[str]]) -> Iterator[tuple[Document, str, bool]]:
    """The documents to embed (new or changed), as ``ingest.embedded`` takes them, noting
    skips, unchanged ones and stale rows."""
    for item in items:
        if isinstance(item, Skipped):
            report.skipped.append(item)
            continue
        digest, done, older = version(item, binding, held)
        for part in older:
            stale.setdefault(part, set()).add(item.id)
        if done:
            report.unchanged += 1
        else:
            yield item, digest, True


def embed_corpus(service: Service, inputs: Sequence[str | Path], out: str | Path,
                 options: IndexOptions | None = None,
                 progress: Callable[[IndexProgress], None] | None = None,
                 cancel: threading.Event | None = None) -> CorpusReport:
    """``embed-corpus`` in this process: see the module's docstring."""
    options = options or IndexOptions()
    out = Path(out).expanduser()
    pyarrow_modules()
    engine = service.engine(options.model)
    binding = bind(engine, *chunk_settings(out, options))
    check_dataset(out, binding)
    report = CorpusReport(str(out), binding.model)
    state = IndexProgress(str(out), status="embedding")
    tell = progress or (lambda _p: None)
    stale: dict[Path, set[str]] = {}

    def counted() -> Iterator[tuple[Document, str, bool]]:  # streamed: the total grows
        for todo in plan(read_sources(list(inputs), options.read), binding, written(out),
                         report, stale):
            state.documents_total += 1
            yield todo

    pending: list[dict[str, Any]] = []
    documents = 0
    for item, result in embedded(service, engine, binding, counted(), state, cancel):
        pending += chunk_rows(item, result.vectors)
        documents += 1
        report.written += 1
        report.chunks += len(item.chunks)
        report.tokens += sum(c.tokens for c in item.chunks)
        state.documents_done += 1
        state.chunks_done += len(item.chunks)
        state.tokens += result.total_tokens
        tell(state)
        if documents == DOCUMENTS_PER_PART:
            write_part(out, binding, pending)
            pending, documents = [], 0
    write_part(out, binding, pending)
    drop_documents(out, binding, stale)
    state.status = "done"
    tell(state)
    return report


def corpus_documents(out: Path) -> Iterator[tuple[dict[str, Any], list[ChunkRow], np.ndarray]]:
    """Each document of a dataset: (its first row, its chunk rows, its vectors), by part."""
    _, pq = pyarrow_modules()
    for part in parts(out):
        table = pq.read_table(part)
        rows = table.drop_columns(["embedding"]).to_pylist()
        flat = table.column("embedding").combine_chunks()
        vectors = flat.values.to_numpy(zero_copy_only=False).reshape(len(rows), -1)
        by_document: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_document.setdefault(row["document"], []).append(i)
        for indices in by_document.values():
            indices.sort(key=lambda i: rows[i]["number"])
            chunks = [ChunkRow(rows[i]["number"], rows[i]["text"], rows[i]["start_line"],
                               rows[i]["end_line"], rows[i]["tokens"]) for i in indices]
            yield rows[indices[0]], chunks, vectors[indices]


def load_corpus(service: Service, name: str, out: Path) -> CorpusReport:
    """A dataset's vectors into collection ``name``, embedding nothing: its model must be the
    collection's (and installed here, for the queries), and a document already stored with
    the same hash is left as it is."""
    binding = dataset_binding(out)
    if binding is None:
        raise InputError(f"{out} is not a dataset written by embed-corpus", param="paths")
    report = CorpusReport(str(out), binding.model)
    collection = Collection.open_or_create(name, binding)
    try:
        model_engine(service, collection)  # the very file, installed here
        stored = collection.document_hashes()
        for first, chunks, vectors in corpus_documents(out):
            if stored.get(first["document"]) == first["document_hash"]:
                report.unchanged += 1
                continue
            collection.replace_document(first["document"], first["source"],
                                        first["document_hash"], json.loads(first["metadata"]),
                                        chunks, vectors)
            report.written += 1
            report.chunks += len(chunks)
    finally:
        collection.close()
    return report
