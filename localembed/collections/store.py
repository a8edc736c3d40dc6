"""A collection on disk: documents, their chunks and vectors, bound to one embedding model.

Storage, and why:

* The standard library's ``sqlite3``, one database file per collection
  (``<home>/collections/<name>.sqlite``), in WAL mode: the index job writes while searches in
  other threads or processes read, and a reader never waits for it. Each document is written
  in ONE transaction (its old chunks out, its new ones in, its row upserted), so a crash, a
  kill -9 or a full disk at any moment leaves every document whole: as it was before, or as
  it is after. ``synchronous=NORMAL``: a power cut may lose the last few documents (never
  half of one, never the database), and the next index run embeds them again because their
  hashes are missing.
* Vectors as little-endian float32 BLOBs (unit length) in an ordinary table, so a collection
  can be read with the ``sqlite3`` command line or any SQLite binding, with no extension.
* Keyword search with SQLite's FTS5: an external-content table over the chunks' text, kept in
  sync by triggers inside the same transactions. A Python whose SQLite lacks FTS5 still
  creates, indexes and searches collections by vector; only ``keyword()`` is refused (a
  collection opened there loses its triggers, which would fail every write, and its index
  is rebuilt from the chunks' text when a Python with FTS5 opens it again).
* Search scans an in-memory index of int8 codes (``vectorindex``), then rescores its
  candidates with the stored float32 vectors. The index is the process's, not a
  connection's (a search may open the collection per request), and is keyed by the
  collection's creation id and a change counter in the meta table that every write
  transaction raises: a write from any connection, in this process or another, is seen by
  the next ``vector_index()``, and a collection removed and made again under the same name is
  never taken for the old one. While an index job writes, the first search after a commit
  reads only the rows added since (rowids only grow) and drops those gone.

Not sqlite-vec: it is a loadable extension, and Pythons built without
``enable_load_extension`` (pyenv's by default, macOS's system Python, the Python 3.11 this
project is developed with) cannot load it. Not apsw, which bundles its own SQLite: it adds
8.9 MB to a default install that must stay under 300 MiB.

Chunk rowids are AUTOINCREMENT, so a rowid is never reused: a rowid from an index loaded
before a document was replaced names the old chunk (gone) and never a different one.

One connection per ``Collection``, shared by threads (``check_same_thread=False``) and guarded
by a lock; ``snapshot()`` holds one read transaction across several reads.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from types import TracebackType
from typing import NoReturn
from urllib.parse import quote

import numpy as np

from localembed.collections.vectorindex import VectorIndex, quantize
from localembed.config.paths import collections_dir
from localembed.models.store import valid_id

SCHEMA_VERSION = 1
SUFFIX = ".sqlite"
SIDE_FILES = ("-wal", "-shm", "-journal")
# 16 KiB pages: a chunk row (a 1,536-byte vector for 384 dimensions plus ~500 characters) is
# about 2.1 KB, so a 4 KiB page holds one and wastes half of it; 16 KiB pages hold seven.
PAGE_SIZE = 16384
BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's write to end
WAL_LIMIT = 64 * 1024 * 1024  # the WAL file is cut back to this after a checkpoint
# The vector indexes loaded in this process, by database path: ((uid, generation), index).
_INDEXES: dict[str, tuple[tuple[str, int], VectorIndex]] = {}
_INDEXES_LOCK = threading.Lock()
INDEX_PAGE_ROWS = 8192  # rows read at a time when an index is built
# The keyword index's SQLite module: a name so that a test can stand in for a SQLite without it.
FTS_MODULE = "fts5"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    hash TEXT NOT NULL,
    metadata TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE chunks (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    document TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    text TEXT NOT NULL,
    start_line INTEGER,
    end_line INTEGER,
    tokens INTEGER NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX chunks_document ON chunks (document, number);
"""

_FTS_TRIGGERS = ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update")
_FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING {module} (text, content='chunks',
    content_rowid='rowid');
CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO chunks_fts (rowid, text) VALUES (new.rowid, new.text);
END;
"""

# A metadata value compared as text: a string as itself, anything else as its JSON text.
_META_VALUE = ("CASE j.type WHEN 'text' THEN j.value WHEN 'true' THEN 'true' "
               "WHEN 'false' THEN 'false' WHEN 'null' THEN 'null' "
               "ELSE CAST(j.value AS TEXT) END")

# Python 3.10's sqlite3 errors carry no error code: their messages are SQLite's fixed texts.
_ERROR_TEXTS = {
    "database or disk is full": "SQLITE_FULL",
    "disk I/O error": "SQLITE_IOERR",
    "database is locked": "SQLITE_BUSY",
    "attempt to write a readonly database": "SQLITE_READONLY",
    "file is not a database": "SQLITE_NOTADB",
    "database disk image is malformed": "SQLITE_CORRUPT",
}


class CollectionError(Exception):
    """A collection operation that cannot be done; the message says what to do."""


class CollectionNotFound(CollectionError, LookupError):
    """No collection has that name."""


class CollectionExists(CollectionError):
    """A collection of that name is already there."""


class CollectionDiskError(CollectionError, OSError):
    """A write the disk refused (full, read-only, failing): nothing of it was written.

    An OSError too, with errno and the database's path, so that the server answers it as it
    answers any disk error (507 for a full disk)."""


# -- names and paths ------------------------------------------------------------------------------

def valid_name(name: str) -> bool:
    """True for a collection name: the model-id rule, so no name can walk out of the folder."""
    return valid_id(name)


def check_name(name: str) -> str:
    if not valid_name(name):
        raise CollectionError(f"invalid collection name {name!r}: use letters, digits, '.', '_', "
                              "'-', ':' (no paths, no '..')")
    return name


def collection_path(name: str) -> Path:
    return collections_dir() / f"{check_name(name)}{SUFFIX}"


def list_collections() -> list[str]:
    return sorted(p.name[:-len(SUFFIX)] for p in collections_dir().glob(f"*{SUFFIX}")
                  if valid_name(p.name[:-len(SUFFIX)]))


def remove_collection(name: str) -> None:
    """Delete a collection's database and its -wal/-shm files. The database goes first: once it
    is gone the collection is no longer listed, whatever happens to the others."""
    path = collection_path(name)
    if not path.exists():
        raise _not_found(name)
    path.unlink()
    for side in SIDE_FILES:
        Path(f"{path}{side}").unlink(missing_ok=True)
    with _INDEXES_LOCK:
        _INDEXES.pop(str(path), None)


def _not_found(name: str) -> CollectionNotFound:
    existing = ", ".join(list_collections()) or "none"
    return CollectionNotFound(f"no collection named {name!r} (collections: {existing}); "
                              "index documents into it to create it")


# -- what is stored -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Binding:
    """What a collection's vectors depend on; a search or index with another model is refused."""

    model: str  # model id
    sha256: str  # the model file's sha256
    dimensions: int
    document_options: dict[str, object]  # the EmbedOptions fields used for chunks
    query_options: dict[str, object]
    chunk_tokens: int
    overlap: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Binding:
        """The binding as stored (unknown keys, from a later version, are left out)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChunkRow:
    """What the index job writes for one chunk (its vector is passed beside it)."""

    number: int
    text: str
    start_line: int | None
    end_line: int | None
    tokens: int


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as search reads it back, with its document's source and metadata."""

    rowid: int
    id: str
    document: str
    number: int
    text: str
    source: str
    start_line: int | None
    end_line: int | None
    metadata: dict[str, object]


@dataclass(frozen=True)
class StoredDocument:
    """A document's row: what the index job compares to decide what to embed again."""

    id: str
    source: str
    hash: str
    metadata: dict[str, object]
    chunks: int
    indexed_at: float


@dataclass(frozen=True)
class Stats:
    documents: int
    chunks: int
    tokens: int
    bytes: int  # the database files on disk (with -wal and -shm)


# -- SQLite ---------------------------------------------------------------------------------------

def _connect(path: Path, read_only: bool = False,
             page_size: int | None = None) -> sqlite3.Connection:
    """A connection to an existing file (``mode=rw``: never creates one by accident);
    ``page_size`` for a new, empty one (it is fixed by the first page written)."""
    mode = "ro" if read_only else "rw"
    db = sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True,
                         timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
        if page_size is not None:
            db.execute(f"PRAGMA page_size = {int(page_size)}")
        if not read_only:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT}")
    except BaseException:
        db.close()
        raise
    return db


def fts5_available(db: sqlite3.Connection) -> bool:
    """Whether this SQLite can make FTS5 tables (tried in the temp schema: the file is not
    touched)."""
    try:
        db.execute(f"CREATE VIRTUAL TABLE temp.fts_probe USING {FTS_MODULE} (x)")
    except sqlite3.OperationalError:
        return False
    db.execute("DROP TABLE temp.fts_probe")
    return True


def _error_name(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    if name:
        return str(name)
    return next((code for text, code in _ERROR_TEXTS.items() if text in str(exc)), "")


def _vector_blob(row: np.ndarray) -> bytes:
    return row.astype("<f4", copy=False).tobytes()


def _quote_term(term: str) -> str:
    """A word as an FTS5 string: whatever it holds (AND, *, quotes, ':'), it is only text."""
    return '"' + term.replace('"', '""') + '"'


# -- the collection -------------------------------------------------------------------------------

class Collection:
    """An open collection; see the module's docstring. Use it as a context manager."""

    def __init__(self, name: str, path: Path, db: sqlite3.Connection, binding: Binding,
                 fts: bool) -> None:
        self.name = name
        self.path = path
        self.binding = binding
        self._db = db
        self._fts = fts
        self._lock = threading.RLock()

    # -- opening --

    @classmethod
    def create(cls, name: str, binding: Binding) -> Collection:
        """A new, empty collection. The file is claimed with O_EXCL, so of two processes
        creating the same name one wins and the other is told it exists; a failed creation
        leaves no file behind."""
        path = collection_path(name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private documents
        except FileExistsError:
            raise CollectionExists(f"collection {name!r} already exists: open it, or remove it "
                                   "first") from None
        os.close(fd)
        db: sqlite3.Connection | None = None
        try:
            db = _connect(path, page_size=PAGE_SIZE)
            fts = fts5_available(db)
            db.execute("BEGIN IMMEDIATE")
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            if fts:
                for statement in _statements(_FTS_SCHEMA.format(module=FTS_MODULE)):
                    db.execute(statement)
            meta = {"schema": SCHEMA_VERSION, "created": time.time(), "uid": uuid.uuid4().hex,
                    "generation": 0, "binding": json.loads(binding.to_json()), "fts": fts}
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                           [(k, json.dumps(v)) for k, v in meta.items()])
            db.execute("COMMIT")
        except BaseException as exc:
            if db is not None:
                db.close()
            path.unlink(missing_ok=True)
            for side in SIDE_FILES:
                Path(f"{path}{side}").unlink(missing_ok=True)
            if isinstance(exc, sqlite3.Error):
                _raise(exc, name, path, "creating it")
            raise
        return cls(name, path, db, binding, fts)

    @classmethod
    def open(cls, name: str) -> Collection:
        path = collection_path(name)
        if not path.is_file():
            raise _not_found(name)
        if path.stat().st_size == 0:  # claimed by create(), its schema not yet written
            raise _unfinished(name, path)
        try:
            db = _connect(path)
        except sqlite3.Error as exc:
            _raise(exc, name, path, "opening it")
        try:
            meta = _read_meta(db, name, path)
            if meta.get("schema") != SCHEMA_VERSION:
                raise CollectionError(f"collection {name!r} has storage version "
                                      f"{meta.get('schema')}, this localembed reads "
                                      f"{SCHEMA_VERSION}: use the localembed that made it, or "
                                      "index it again into a new collection")
            binding = Binding.from_dict(meta["binding"])  # type: ignore[arg-type]
            stored, available = bool(meta.get("fts")), fts5_available(db)
            collection = cls(name, path, db, binding, stored and available)
        except BaseException:
            db.close()
            raise
        if stored != available:  # made by a Python with(out) FTS5, opened by one without (with)
            collection._switch_keyword_index(available)
        return collection

    @classmethod
    def open_or_create(cls, name: str, binding: Binding) -> Collection:
        """The collection ``name``, created with ``binding`` if absent. An existing one must
        hold vectors of the same model file (and dimensions, document options and chunk
        settings: a re-chunk is ``set_chunking``). Query options are the stored ones: the
        vectors were made for them."""
        try:
            collection = cls.open(name)
        except CollectionNotFound:
            try:
                return cls.create(name, binding)
            except CollectionExists:  # another process created it meanwhile
                collection = cls.open(name)
        try:
            collection.check_binding(binding)
        except BaseException:
            collection.close()
            raise
        return collection

    def check_binding(self, binding: Binding) -> None:
        """Refuse vectors of another model (or model file) for this collection, naming both."""
        mine = self.binding
        if (binding.model, binding.sha256) != (mine.model, mine.sha256):
            raise CollectionError(
                f"collection {self.name!r} holds vectors of {mine.model} (sha256 "
                f"{mine.sha256[:12]}), not of {binding.model} (sha256 {binding.sha256[:12]}): "
                f"use {mine.model}'s very file, or index into a new collection")
        if binding.dimensions != mine.dimensions:
            raise CollectionError(
                f"collection {self.name!r} holds {mine.dimensions}-dimensional vectors, not "
                f"{binding.dimensions}: index into a new collection for other dimensions")
        if binding.document_options != mine.document_options:
            raise CollectionError(
                f"collection {self.name!r} was embedded with document options "
                f"{mine.document_options}, not {binding.document_options}: index into a new "
                "collection for other options")
        chunking = (binding.chunk_tokens, binding.overlap)
        if chunking != (mine.chunk_tokens, mine.overlap):
            raise CollectionError(
                f"collection {self.name!r} was chunked at {mine.chunk_tokens} tokens with "
                f"{mine.overlap} overlap, not {binding.chunk_tokens} with {binding.overlap}: "
                "keep its settings, or re-chunk it (--rechunk: every document is embedded "
                "again)")

    def set_chunking(self, chunk_tokens: int, overlap: int) -> None:
        """Record new chunk settings (a re-chunk: documents are embedded again as the next
        index run finds their stored hashes, which cover these settings, out of date)."""
        binding = replace(self.binding, chunk_tokens=chunk_tokens, overlap=overlap)
        with self._writing("writing its chunk settings"):
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'binding'",
                             (binding.to_json(),))
        self.binding = binding

    def _switch_keyword_index(self, on: bool) -> None:
        """Fit the keyword index to this SQLite. Without FTS5 its triggers are dropped (else
        every write would fail on them) and the collection is marked as having none; with
        FTS5 again, the index is made or rebuilt from the chunks' text. Best effort: if it
        cannot be done now (busy, full disk), keyword search stays refused."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if on:
                        for statement in _statements(_FTS_SCHEMA.format(module=FTS_MODULE)):
                            self._db.execute(statement)
                        self._db.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')")
                    else:
                        for trigger in _FTS_TRIGGERS:
                            self._db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
                    self._db.execute("UPDATE meta SET value = ? WHERE key = 'fts'",
                                     (json.dumps(on),))
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error:
                return
            self._fts = on

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, model={self.binding.model!r})"

    # -- transactions --

    @contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """One write transaction; any failure rolls it back whole, and a disk's refusal is a
        CollectionDiskError naming the collection."""
        with self._lock:
            if self._db.in_transaction:
                raise RuntimeError("a collection cannot be written inside snapshot()")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield
                    self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                                     "WHERE key = 'generation'")
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may have rolled back already
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                _raise(exc, self.name, self.path, what)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """One read transaction (a consistent view), or the snapshot already open."""
        with self._lock:
            if self._db.in_transaction:
                yield
                return
            try:
                self._db.execute("BEGIN")
                try:
                    yield
                finally:
                    if self._db.in_transaction:
                        self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                _raise(exc, self.name, self.path, "reading it")

    @contextmanager
    def snapshot(self) -> Iterator[Collection]:
        """Reads in this block see one state of the collection (a matrix and the chunks it
        points at, say), whatever another process writes meanwhile. Other threads using this
        Collection wait for the block to end."""
        with self._reading():
            yield self

    # -- writing --

    def replace_document(self, document_id: str, source: str, content_hash: str,
                         metadata: Mapping[str, object], chunks: Sequence[ChunkRow],
                         vectors: np.ndarray) -> None:
        """Store a document with its chunks, in ONE transaction: its old chunks out, the new
        ones in, its row upserted. ``vectors`` (one row per chunk) are stored at unit length."""
        rows = list(chunks)
        matrix = np.asarray(vectors, dtype=np.float32)
        if not rows and matrix.size == 0:
            matrix = np.zeros((0, self.binding.dimensions), dtype=np.float32)
        if matrix.shape != (len(rows), self.binding.dimensions):
            raise ValueError(f"{len(rows)} chunks of {self.binding.dimensions} dimensions need "
                             f"vectors of shape ({len(rows)}, {self.binding.dimensions}), "
                             f"not {matrix.shape}")
        if not np.isfinite(matrix).all():
            raise ValueError(f"the vectors of {document_id!r} are not all finite")
        numbers = [r.number for r in rows]
        if len(set(numbers)) != len(numbers):
            raise ValueError(f"the chunk numbers of {document_id!r} repeat: {numbers}")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
        try:
            meta = json.dumps(dict(metadata), ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the metadata of {document_id!r} is not JSON: {exc}") from exc
        values = [(f"{document_id}#{r.number}", document_id, r.number, r.text, r.start_line,
                   r.end_line, r.tokens, _vector_blob(unit[i])) for i, r in enumerate(rows)]
        with self._writing(f"writing document {document_id!r}"):
            self._db.execute("DELETE FROM chunks WHERE document = ?", (document_id,))
            self._db.execute(
                "INSERT INTO documents (id, source, hash, metadata, chunks, indexed_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "source = excluded.source, hash = excluded.hash, metadata = excluded.metadata, "
                "chunks = excluded.chunks, indexed_at = excluded.indexed_at",
                (document_id, source, content_hash, meta, len(rows), time.time()))
            self._db.executemany(
                "INSERT INTO chunks (id, document, number, text, start_line, end_line, tokens, "
                "embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)

    def delete_documents(self, document_ids: Iterable[str]) -> int:
        """Remove documents and their chunks, in one transaction; how many were there."""
        ids = [(d,) for d in dict.fromkeys(document_ids)]
        if not ids:
            return 0
        with self._writing(f"removing {len(ids)} documents"):
            self._db.executemany("DELETE FROM chunks WHERE document = ?", ids)
            cursor = self._db.executemany("DELETE FROM documents WHERE id = ?", ids)
            return cursor.rowcount

    # -- reading --

    def documents(self) -> dict[str, StoredDocument]:
        with self._reading():
            rows = self._db.execute("SELECT id, source, hash, metadata, chunks, indexed_at "
                                    "FROM documents").fetchall()
        return {r[0]: StoredDocument(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5])
                for r in rows}

    def document_hashes(self) -> dict[str, str]:
        with self._reading():
            return dict(self._db.execute("SELECT id, hash FROM documents").fetchall())

    def stats(self) -> Stats:
        with self._reading():
            documents = self._db.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks, tokens = self._db.execute(
                "SELECT count(*), coalesce(sum(tokens), 0) FROM chunks").fetchone()
        files = [self.path, *(Path(f"{self.path}{side}") for side in SIDE_FILES)]
        size = sum(p.stat().st_size for p in files if p.exists())
        return Stats(documents, chunks, tokens, size)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(rowids int64, unit vectors float32 N x D) of every chunk, in rowid order, as
        stored. Searches scan ``vector_index()`` instead, which is kept in memory."""
        with self._reading():
            rows = self._db.execute("SELECT rowid, embedding FROM chunks ORDER BY rowid"
                                    ).fetchall()
        return self._unpack(rows)

    def embeddings(self, rowids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rowids, float32 vectors) of those chunks still stored, in rowid order: the exact
        vectors a search rescores its candidates with."""
        wanted = sorted({int(r) for r in rowids})
        if not wanted:
            return self._unpack([])
        with self._reading():
            rows = self._db.execute(
                "SELECT rowid, embedding FROM chunks WHERE rowid IN "
                "(SELECT value FROM json_each(?)) ORDER BY rowid", (json.dumps(wanted),)
            ).fetchall()
        return self._unpack(rows)

    def vector_index(self) -> VectorIndex:
        """What a search scans (see ``vectorindex``), shared by every ``Collection`` of this
        process and brought up to date when the collection has changed (see the module's
        docstring): only rows added since are read, those gone are dropped."""
        with self._reading():
            meta = dict(self._db.execute(
                "SELECT key, value FROM meta WHERE key IN ('uid', 'generation')").fetchall())
            key = (json.loads(meta["uid"]), int(meta["generation"]))
            with _INDEXES_LOCK:
                cached = _INDEXES.get(str(self.path))
            if cached is not None and cached[0] == key:
                return cached[1]
            if cached is not None and cached[0][0] == key[0] and cached[0][1] < key[1]:
                old = cached[1]
                present = np.sort(np.fromiter((r for (r,) in self._db.execute(
                    # no ORDER BY: SQLite then reads the small document index, not every row
                    "SELECT rowid FROM chunks")), dtype=np.int64))
                since = int(old.rowids[-1]) if len(old.rowids) else 0
                rowids, vectors = self._unpack(self._db.execute(
                    "SELECT rowid, embedding FROM chunks WHERE rowid > ? ORDER BY rowid",
                    (since,)).fetchall())
                index = old.refreshed(present, rowids, vectors)
            else:
                index = self._build_index()
        with _INDEXES_LOCK:
            cached = _INDEXES.get(str(self.path))
            if cached is None or cached[0][0] != key[0] or cached[0][1] <= key[1]:
                _INDEXES[str(self.path)] = (key, index)
        return index

    def _build_index(self) -> VectorIndex:
        """The whole index, read a page at a time: a float32 copy of every vector is never
        held at once (3 GB at 1M x 768)."""
        dims = self.binding.dimensions
        count = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        rowids = np.empty(count, np.int64)
        codes = np.empty((count, dims), np.int8)
        scales = np.empty(count, np.float32)
        cursor = self._db.execute("SELECT rowid, embedding FROM chunks ORDER BY rowid")
        done = 0
        while rows := cursor.fetchmany(INDEX_PAGE_ROWS):
            ids, vectors = self._unpack(rows)
            end = done + len(ids)
            rowids[done:end] = ids
            codes[done:end], scales[done:end] = quantize(vectors)
            done = end
        return VectorIndex(rowids[:done], codes[:done], scales[:done])

    def _unpack(self, rows: Sequence[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        dims = self.binding.dimensions
        rowids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        flat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
        if flat.size != len(rows) * dims:
            raise CollectionError(f"collection {self.name!r} is damaged: its vectors are not "
                                  f"all {dims}-dimensional; index it again into a new one")
        return rowids, flat.reshape(len(rows), dims).astype(np.float32)  # native order

    def chunks(self, rowids: Sequence[int] | np.ndarray) -> list[StoredChunk]:
        """The chunks of these rowids, in the order asked; a rowid whose chunk is gone (its
        document was replaced or deleted since) is left out."""
        wanted = [int(r) for r in rowids]
        if not wanted:
            return []
        with self._reading():
            rows = self._db.execute(
                "SELECT c.rowid, c.id, c.document, c.number, c.text, d.source, c.start_line, "
                "c.end_line, d.metadata FROM chunks c JOIN documents d ON d.id = c.document "
                "WHERE c.rowid IN (SELECT value FROM json_each(?))",
                (json.dumps(sorted(set(wanted))),)).fetchall()
        metadata: dict[str, dict[str, object]] = {}
        found = {}
        for r in rows:
            meta = metadata.setdefault(r[2], json.loads(r[8]))
            found[r[0]] = StoredChunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7],
                                      dict(meta))  # each its own: a caller may add to it
        return [found[r] for r in wanted if r in found]

    def keyword(self, query: str, limit: int,
                within: Sequence[int] | np.ndarray | None = None) -> list[tuple[int, float]]:
        """Chunks matching any word of ``query`` by FTS5's bm25, best first, as (rowid, score)
        with higher better; ``within`` keeps only those rowids. Every word is quoted, so FTS5's
        syntax (AND, NEAR, *, quotes, column:) is searched as plain words and is never an
        error; a word within one (C++, ERR_CONN_4021) is a phrase of its parts."""
        if not self._fts:
            raise CollectionError(f"collection {self.name!r} has no keyword index: hybrid "
                                  "search needs SQLite with FTS5, which this Python's sqlite3 "
                                  "lacks; search without hybrid, or use a Python whose SQLite "
                                  "has FTS5")
        terms = query.split()
        if not terms or limit <= 0:
            return []
        sql = ("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?")
        params: list[object] = [" OR ".join(_quote_term(t) for t in terms)]
        if within is not None:
            sql += " AND rowid IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([int(r) for r in within]))
        sql += " ORDER BY bm25(chunks_fts) LIMIT ?"
        params.append(int(limit))
        with self._reading():
            rows = self._db.execute(sql, params).fetchall()
        return [(int(rowid), -float(score)) for rowid, score in rows]

    def filter_rowids(self, where: Mapping[str, str] | None = None,
                      path_glob: str | None = None,
                      documents: Iterable[str] | None = None) -> np.ndarray | None:
        """Rowids (sorted) of the chunks whose document has every ``where`` pair in its
        metadata (a number or boolean compared as its JSON text: 2024 matches "2024"), whose
        id matches ``path_glob`` (SQLite's GLOB: case-sensitive, '*' crosses '/') and is one
        of ``documents``; None when there is nothing to filter by."""
        if not where and not path_glob and documents is None:
            return None
        conditions: list[str] = []
        params: list[str] = []
        for key, value in (where or {}).items():
            conditions.append(f"EXISTS (SELECT 1 FROM json_each(d.metadata) j WHERE j.key = ? "
                              f"AND {_META_VALUE} = ?)")
            params += [str(key), str(value)]
        if path_glob:
            conditions.append("d.id GLOB ?")
            params.append(path_glob)
        if documents is not None:
            conditions.append("d.id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(sorted(documents)))
        with self._reading():
            rows = self._db.execute(  # the documents first: each one's metadata read once
                "SELECT rowid FROM chunks WHERE document IN (SELECT d.id FROM documents d "
                f"WHERE {' AND '.join(conditions)}) ORDER BY rowid", params).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def export(self) -> Iterator[dict[str, object]]:
        """Every chunk, by document and number, as a dict: id, document, text, embedding (a
        list of floats) and metadata (the document's, with source, start_line, end_line and
        number). Read on a connection of its own in one read transaction: a consistent copy
        that holds no lock, however slowly it is consumed."""
        try:
            db = _connect(self.path, read_only=True)
        except sqlite3.Error as exc:
            _raise(exc, self.name, self.path, "exporting it")
        try:
            db.execute("BEGIN")
            cursor = db.execute(
                "SELECT c.id, c.document, c.text, c.embedding, d.metadata, d.source, "
                "c.start_line, c.end_line, c.number FROM chunks c "
                "JOIN documents d ON d.id = c.document ORDER BY c.document, c.number")
            last: tuple[str, dict[str, object]] | None = None
            for chunk_id, document, text, blob, meta, source, start, end, number in cursor:
                if last is None or last[0] != document:
                    last = (document, json.loads(meta))
                yield {"id": chunk_id, "document": document, "text": text,
                       "embedding": np.frombuffer(blob, dtype="<f4").tolist(),
                       "metadata": {**last[1], "source": source, "start_line": start,
                                    "end_line": end, "number": number}}
        finally:
            db.close()


def _statements(script: str) -> list[str]:
    """The statements of a script, for ``execute`` inside a transaction (``executescript``
    commits first). Split at ';' + newline: trigger bodies end with ';' then 'END;'."""
    out: list[str] = []
    current: list[str] = []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            out.append(text)
            current = []
    return out


def _read_meta(db: sqlite3.Connection, name: str, path: Path) -> dict[str, object]:
    try:
        rows = db.execute("SELECT key, value FROM meta").fetchall()
    except sqlite3.DatabaseError as exc:
        if "no such table" in str(exc):
            raise _unfinished(name, path) from exc
        _raise(exc, name, path, "opening it")
    return {k: json.loads(v) for k, v in rows}


def _unfinished(name: str, path: Path) -> CollectionError:
    return CollectionError(f"collection {name!r} is being created, or its creation was "
                           f"interrupted: try again, or remove it ({path})")


def _raise(exc: sqlite3.Error, name: str, path: Path, doing: str) -> NoReturn:
    """Raise an SQLite failure as what a person can act on (unknown ones as they are)."""
    translated = _translate(exc, name, path, doing)
    if translated is exc:
        raise exc
    raise translated from exc


def _translate(exc: sqlite3.Error, name: str, path: Path, doing: str) -> Exception:
    code = _error_name(exc)
    failed = f"collection {name!r}: {doing} failed"
    if code == "SQLITE_FULL":
        return CollectionDiskError(errno.ENOSPC, f"{failed}, the disk is full; nothing of it was "
                                   "written and the collection is as it was (free some space "
                                   "and run it again)", str(path))
    if code.startswith("SQLITE_IOERR"):
        return CollectionDiskError(errno.EIO, f"{failed}, the disk failed ({exc}); its "
                                   "transaction was rolled back", str(path))
    if code.startswith("SQLITE_READONLY"):
        return CollectionDiskError(errno.EROFS, f"{failed}, its files cannot be written "
                                   f"({exc}); nothing was written", str(path))
    if code.startswith("SQLITE_CANTOPEN"):
        return CollectionDiskError(errno.EACCES, f"{failed}, its files cannot be opened "
                                   f"({exc})", str(path))
    if code.startswith("SQLITE_BUSY") or code.startswith("SQLITE_LOCKED"):
        return CollectionError(f"{failed}: it waited {BUSY_TIMEOUT_S:g} s for another "
                               "process's write to end; try again when that is done")
    if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return CollectionError(f"collection {name!r} is damaged ({exc}): remove it and index "
                               f"again ({path})")
    if "no such module" in str(exc):
        return CollectionError(f"{failed}: it keeps a keyword index (FTS5) that this Python's "
                               "SQLite lacks, so it can be searched by vector but not written; "
                               "use a Python whose SQLite has FTS5")
    return exc
