"""The collection store, for real: SQLite files on disk, other processes writing and reading
them, kill -9 in the middle of a write, a full tmpfs.

Crash and concurrency tests run the writer (or reader) as a child ``python -c`` process of its
own, so a kill is a real SIGKILL of a process holding the database open and its locks.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import localembed.collections.store as store
from localembed.collections.store import (
    Binding,
    ChunkRow,
    Collection,
    CollectionDiskError,
    CollectionError,
    CollectionExists,
    CollectionNotFound,
    collection_path,
    list_collections,
    remove_collection,
    valid_name,
)
from localembed.collections.vectorindex import VectorIndex
from localembed.config.paths import collections_dir
from localembed.models.store import valid_id
from tests.conftest import ROOT
from tests.test_disk_errors import fill, small_disk  # noqa: F401 (small_disk: a fixture)

DIMS = 8
BINDING = Binding(model="all-minilm-l6-v2", sha256="a" * 64, dimensions=DIMS,
                  document_options={"task": "document"}, query_options={"task": "query"},
                  chunk_tokens=256, overlap=32)


def vectors(n: int, seed: int = 0, dims: int = DIMS) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32) * 3


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def rows(texts: list[str]) -> list[ChunkRow]:
    return [ChunkRow(i, t, i * 10 + 1, i * 10 + 9, len(t.split())) for i, t in enumerate(texts)]


def add(collection: Collection, doc: str, texts: list[str], seed: int = 0,
        metadata: dict[str, object] | None = None) -> np.ndarray:
    """Write a document; returns the vectors given."""
    given = vectors(len(texts), seed)
    collection.replace_document(doc, f"/corpus/{doc}", f"hash-{doc}-{seed}", metadata or {},
                                rows(texts), given)
    return given


@pytest.fixture
def collection() -> Collection:
    with Collection.create("docs", BINDING) as opened:
        yield opened


def child(script: str, *args: str, **kwargs) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """A Python child in this repository with this test's app home."""
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


# -- documents, chunks, vectors -----------------------------------------------------------------

def test_documents_chunks_and_vectors_come_back_as_written(collection: Collection) -> None:
    given = add(collection, "a.md", ["alpha one", "alpha two"], seed=1, metadata={"lang": "en"})
    rowids, matrix = collection.vectors()
    chunks = collection.chunks(rowids)
    assert [(c.id, c.document, c.number, c.text, c.source, c.start_line, c.end_line, c.metadata)
            for c in chunks] == [
        ("a.md#0", "a.md", 0, "alpha one", "/corpus/a.md", 1, 9, {"lang": "en"}),
        ("a.md#1", "a.md", 1, "alpha two", "/corpus/a.md", 11, 19, {"lang": "en"})]
    np.testing.assert_allclose(matrix, unit(given), rtol=1e-6)
    assert collection.stats().documents == 1 and collection.stats().chunks == 2
    assert collection.stats().tokens == 4
    reopened = Collection.open("docs")
    assert reopened.binding == BINDING and reopened.document_hashes() == {"a.md": "hash-a.md-1"}
    reopened.close()


def test_replacing_a_document_leaves_none_of_its_old_chunks(collection: Collection) -> None:
    add(collection, "a.md", ["old one", "old two", "old three"], seed=1)
    add(collection, "b.md", ["other"], seed=2)
    given = add(collection, "a.md", ["new one"], seed=3)
    rowids, matrix = collection.vectors()
    texts = sorted(c.text for c in collection.chunks(rowids))
    assert texts == ["new one", "other"] and len(rowids) == 2
    assert collection.keyword("old", 10) == []
    assert collection.documents()["a.md"].chunks == 1
    mine = [i for i, c in enumerate(collection.chunks(rowids)) if c.document == "a.md"]
    np.testing.assert_allclose(matrix[mine], unit(given), rtol=1e-6)


def test_deleting_documents_removes_them_with_their_chunks_and_counts_them(
        collection: Collection) -> None:
    add(collection, "a.md", ["one", "two"])
    add(collection, "b.md", ["three"])
    assert collection.delete_documents(["a.md", "never-there.md", "a.md"]) == 1
    assert list(collection.document_hashes()) == ["b.md"]
    assert [c.text for c in collection.chunks(collection.vectors()[0])] == ["three"]
    assert collection.keyword("one two", 10) == []
    assert collection.delete_documents([]) == 0


def test_document_hashes_are_the_hashes_last_written(collection: Collection) -> None:
    add(collection, "a.md", ["x"], seed=1)
    add(collection, "b.md", ["y"], seed=2)
    add(collection, "a.md", ["x2"], seed=3)
    assert collection.document_hashes() == {"a.md": "hash-a.md-3", "b.md": "hash-b.md-2"}


def test_a_document_without_chunks_is_recorded_with_its_hash(collection: Collection) -> None:
    collection.replace_document("empty.md", "/corpus/empty.md", "h0", {}, [],
                                np.empty((0, DIMS), dtype=np.float32))
    assert collection.document_hashes() == {"empty.md": "h0"}
    assert collection.vectors()[1].shape == (0, DIMS)


def test_vectors_of_the_wrong_shape_or_not_finite_are_refused_and_nothing_is_written(
        collection: Collection) -> None:
    with pytest.raises(ValueError, match="shape"):
        collection.replace_document("a.md", "a", "h", {}, rows(["x", "y"]), vectors(1))
    bad = vectors(1)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        collection.replace_document("a.md", "a", "h", {}, rows(["x"]), bad)
    assert collection.document_hashes() == {}


def test_chunks_come_back_in_the_order_asked_without_those_gone(collection: Collection) -> None:
    add(collection, "a.md", ["one", "two", "three"])
    first, second, third = (int(r) for r in collection.vectors()[0])
    assert [c.text for c in collection.chunks([third, first, 10**9, second])] == [
        "three", "one", "two"]
    add(collection, "a.md", ["new"])
    assert collection.chunks([first, second, third]) == []  # rowids are never reused


# -- the matrix ---------------------------------------------------------------------------------

def test_the_matrix_holds_the_stored_vectors_at_unit_length(collection: Collection) -> None:
    given = add(collection, "a.md", ["one", "two", "three"], seed=5)
    rowids, matrix = collection.vectors()
    assert rowids.dtype == np.int64 and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(matrix, unit(given), rtol=1e-6)
    with sqlite3.connect(collection.path) as db:  # as a plain SQLite reader sees it
        blobs = [b for (b,) in db.execute("SELECT embedding FROM chunks ORDER BY rowid")]
    np.testing.assert_array_equal(np.frombuffer(b"".join(blobs), "<f4").reshape(3, DIMS), matrix)


def test_the_vector_index_is_loaded_once_per_process_until_the_collection_changes(
        collection: Collection) -> None:
    add(collection, "a.md", ["one"])
    first = collection.vector_index()
    assert collection.vector_index() is first
    with Collection.open("docs") as per_request:  # as a search that opens it each time
        assert per_request.vector_index() is first
        add(per_request, "b.md", ["two"])
    assert len(collection.vector_index()) == 2


def test_the_vector_index_after_a_change_equals_one_built_from_scratch(
        collection: Collection) -> None:
    add(collection, "a.md", ["one", "two"], seed=1)
    add(collection, "b.md", ["three"], seed=2)
    collection.vector_index()
    add(collection, "a.md", ["one again"], seed=3)  # two rows gone, one new
    add(collection, "c.md", ["four", "five"], seed=4)
    collection.delete_documents(["b.md"])
    updated = collection.vector_index()
    rowids, matrix = collection.vectors()
    fresh = VectorIndex.of(rowids, matrix)
    np.testing.assert_array_equal(updated.rowids, fresh.rowids)
    np.testing.assert_array_equal(updated.codes, fresh.codes)
    np.testing.assert_array_equal(updated.scales, fresh.scales)
    assert sorted(c.text for c in collection.chunks(updated.rowids)) == [
        "five", "four", "one again"]


def test_the_vector_index_scores_within_a_hundredth_of_the_exact_cosine(
        collection: Collection) -> None:
    given = unit(add(collection, "a.md", [f"chunk {i}" for i in range(40)], seed=7))
    query = unit(vectors(1, seed=8))[0]
    approximate = collection.vector_index().scores(query)
    np.testing.assert_allclose(approximate, given @ query, atol=0.01)


def test_exact_vectors_come_back_for_the_rowids_asked_that_are_still_stored(
        collection: Collection) -> None:
    given = unit(add(collection, "a.md", ["one", "two", "three"], seed=5))
    rowids = collection.vectors()[0]
    found, matrix = collection.embeddings([int(rowids[2]), 10**9, int(rowids[0])])
    assert found.tolist() == [int(rowids[0]), int(rowids[2])]
    np.testing.assert_allclose(matrix, given[[0, 2]], rtol=1e-6)


def test_a_collection_made_again_under_its_name_is_not_taken_for_the_old_one(
        collection: Collection) -> None:
    add(collection, "a.md", ["old"])
    assert len(collection.vector_index()) == 1
    collection.close()
    remove_collection("docs")
    with Collection.create("docs", BINDING) as again:
        assert again.vector_index().rowids.shape == (0,)
        add(again, "b.md", ["new one", "new two"])
        rowids = again.vector_index().rowids
        assert [c.text for c in again.chunks(rowids)] == ["new one", "new two"]


WRITE_ONE = """
import json, sys, numpy as np
from localembed.collections.store import ChunkRow, Collection
with Collection.open("docs") as c:
    c.replace_document("b.md", "/corpus/b.md", "hb", {}, [ChunkRow(0, "from a child", 1, 1, 3)],
                       np.array(json.loads(sys.argv[1]), dtype=np.float32))
"""


def test_the_vector_index_sees_a_write_made_by_another_process(collection: Collection) -> None:
    add(collection, "a.md", ["one"])
    assert len(collection.vector_index()) == 1
    theirs = vectors(1, seed=9)
    proc = child(WRITE_ONE, json.dumps(theirs.tolist()))
    assert proc.wait(timeout=60) == 0, proc.stderr.read()  # type: ignore[union-attr]
    index = collection.vector_index()
    assert len(index) == 2
    np.testing.assert_allclose(collection.embeddings(index.rowids[1:])[1][0], unit(theirs)[0],
                               rtol=1e-6)
    assert collection.chunks(index.rowids[1:])[0].text == "from a child"


# -- filters ------------------------------------------------------------------------------------

@pytest.fixture
def filed(collection: Collection) -> Collection:
    add(collection, "docs/guide.md", ["g1", "g2"], metadata={"lang": "en", "year": 2024})
    add(collection, "docs/api/ref.md", ["r1"], metadata={"lang": "de", "year": 2024})
    add(collection, "src/main.py", ["m1"], metadata={"lang": "en", "draft": True})
    return collection


def documents_of(collection: Collection, rowids: np.ndarray | None) -> list[str]:
    assert rowids is not None
    return sorted({c.document for c in collection.chunks(rowids)})


def test_no_filter_is_none(filed: Collection) -> None:
    assert filed.filter_rowids() is None and filed.filter_rowids({}, "") is None


def test_a_metadata_filter_keeps_documents_with_every_pair(filed: Collection) -> None:
    assert documents_of(filed, filed.filter_rowids({"lang": "en"})) == [
        "docs/guide.md", "src/main.py"]
    assert documents_of(filed, filed.filter_rowids({"lang": "en", "year": "2024"})) == [
        "docs/guide.md"]
    assert documents_of(filed, filed.filter_rowids({"draft": "true"})) == ["src/main.py"]
    assert len(filed.filter_rowids({"lang": "fr"})) == 0  # type: ignore[arg-type]


def test_a_path_glob_keeps_documents_whose_id_matches(filed: Collection) -> None:
    assert documents_of(filed, filed.filter_rowids(path_glob="docs/*")) == [
        "docs/api/ref.md", "docs/guide.md"]
    assert documents_of(filed, filed.filter_rowids({"lang": "en"}, "*.md")) == ["docs/guide.md"]
    rowids = filed.filter_rowids(path_glob="docs/*")
    assert rowids is not None and rowids.dtype == np.int64 and len(rowids) == 3


# -- keyword search -----------------------------------------------------------------------------

@pytest.fixture
def worded(collection: Collection) -> Collection:
    add(collection, "errors.md", ["the server answers ERR_CONN_4021 when the pool is empty",
                                  "retry after a while"])
    add(collection, "lang.md", ["C++ templates and a AND gate", 'say "hello" * 3 times'])
    add(collection, "code.py", ["def getUserById(user_id): return users[user_id]"])
    return collection


def test_keyword_search_finds_an_exact_code_or_name_first(worded: Collection) -> None:
    for query, text in [("ERR_CONN_4021", "ERR_CONN_4021"), ("getUserById", "getUserById")]:
        hits = worded.keyword(query, 5)
        assert hits and query in worded.chunks([hits[0][0]])[0].text, text
        assert all(score > 0 for _, score in hits)
    scores = [s for _, s in worded.keyword("the pool retry", 5)]
    assert scores == sorted(scores, reverse=True)


# A query with FTS5's syntax in it, and the chunk it finds first (None: it finds nothing).
SYNTAX = {"C++": "lang.md#0", "a AND": "lang.md#0", '"hello': "lang.md#1",
          'say "hello" *': "lang.md#1", "AND OR NOT": "lang.md#0", "gate:": "lang.md#0",
          "-retry": "errors.md#1", "^retry": "errors.md#1", "users[user_id]": "code.py#0",
          "*": None, "NEAR(": None, "(": None, "'": None, "{}": None, '""': None}


@pytest.mark.parametrize("query", SYNTAX)
def test_keyword_search_takes_fts_syntax_as_plain_words(worded: Collection, query: str) -> None:
    hits = worded.keyword(query, 5)  # never an SQL or FTS5 syntax error
    assert [c.id for c in worded.chunks([r for r, _ in hits[:1]])] == [
        SYNTAX[query]] if SYNTAX[query] else hits == []


def test_keyword_search_keeps_only_the_rowids_asked(worded: Collection) -> None:
    errors = worded.filter_rowids(path_glob="errors.md")
    assert worded.keyword("the", 10) and worded.keyword("C++", 10, within=errors) == []


def test_without_fts5_keyword_search_is_refused_and_the_rest_works(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "FTS_MODULE", "fts5_not_in_this_sqlite")
    with Collection.create("plain", BINDING) as plain:
        given = add(plain, "a.md", ["ERR_CONN_4021 here"], metadata={"lang": "en"})
        with pytest.raises(CollectionError, match="hybrid search needs SQLite with FTS5"):
            plain.keyword("ERR_CONN_4021", 5)
        rowids, matrix = plain.vectors()
        np.testing.assert_allclose(matrix, unit(given), rtol=1e-6)
        assert documents_of(plain, plain.filter_rowids({"lang": "en"})) == ["a.md"]
        assert [c["text"] for c in plain.export()] == ["ERR_CONN_4021 here"]
        assert plain.delete_documents(["a.md"]) == 1


def test_a_collection_made_without_fts5_gets_keyword_search_where_sqlite_has_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "FTS_MODULE", "fts5_not_in_this_sqlite")
    with Collection.create("plain", BINDING) as plain:
        add(plain, "a.md", ["ERR_CONN_4021 here"])
    monkeypatch.setattr(store, "FTS_MODULE", "fts5")
    with Collection.open("plain") as upgraded:
        hits = upgraded.keyword("ERR_CONN_4021", 5)
        assert [c.text for c in upgraded.chunks([r for r, _ in hits])] == ["ERR_CONN_4021 here"]


def test_a_collection_with_keyword_search_opened_without_fts5_is_written_and_rebuilt_later(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with Collection.create("docs", BINDING) as made:
        add(made, "a.md", ["first ERR_CONN_4021"])
    monkeypatch.setattr(store, "FTS_MODULE", "fts5_not_in_this_sqlite")
    with Collection.open("docs") as without:
        with pytest.raises(CollectionError, match="hybrid search needs SQLite with FTS5"):
            without.keyword("first", 5)
        with sqlite3.connect(without.path) as db:  # a SQLite without FTS5 could write it: no
            assert db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"
                              ).fetchall() == []  # trigger names the missing module
        add(without, "b.md", ["second ERR_CONN_4021"])
        without.delete_documents(["a.md"])
    monkeypatch.setattr(store, "FTS_MODULE", "fts5")
    with Collection.open("docs") as again:
        hits = again.keyword("ERR_CONN_4021", 5)
        assert [c.text for c in again.chunks([r for r, _ in hits])] == ["second ERR_CONN_4021"]
    assert assert_consistent(collection_path("docs")) == {"b.md": 1}


# -- export -------------------------------------------------------------------------------------

def test_export_yields_every_chunk_with_its_embedding_and_metadata(
        collection: Collection) -> None:
    given_b = add(collection, "b.md", ["bee"], seed=2, metadata={"lang": "en"})
    given_a = add(collection, "a.md", ["a0", "a1"], seed=1, metadata={"lang": "de"})
    exported = list(collection.export())
    assert [(e["id"], e["document"], e["text"]) for e in exported] == [
        ("a.md#0", "a.md", "a0"), ("a.md#1", "a.md", "a1"), ("b.md#0", "b.md", "bee")]
    assert exported[1]["metadata"] == {"lang": "de", "source": "/corpus/a.md",
                                       "start_line": 11, "end_line": 19, "number": 1}
    embeddings = np.array([e["embedding"] for e in exported], dtype=np.float32)
    np.testing.assert_allclose(embeddings, unit(np.vstack([given_a, given_b])), rtol=1e-6)
    json.dumps(exported)  # plain JSON types throughout


# -- names, existence, bindings -----------------------------------------------------------------

BAD_NAMES = ["../escape", "a/b", "/etc/passwd", "..", "a..b", "", ".hidden", "a\\b", "x" * 200,
             "a b", "-dash-first"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_a_model_id_could_not_have_is_refused(name: str) -> None:
    assert valid_name(name) is False and valid_id(name) is False
    for call in (collection_path, lambda n: Collection.create(n, BINDING), Collection.open,
                 remove_collection):
        with pytest.raises(CollectionError, match="invalid collection name"):
            call(name)
    assert list(collections_dir().iterdir()) == []


@pytest.mark.parametrize("name", ["docs", "team:wiki", "notes_v2.1", "A-b"])
def test_a_model_id_is_a_collection_name(name: str) -> None:
    assert valid_name(name) and collection_path(name).name == f"{name}.sqlite"


def test_creating_an_existing_collection_is_refused(collection: Collection) -> None:
    with pytest.raises(CollectionExists, match="already exists"):
        Collection.create("docs", BINDING)


def test_opening_a_missing_collection_says_which_exist(collection: Collection) -> None:
    with pytest.raises(CollectionNotFound, match=r"'nope'.*collections: docs") as missing:
        Collection.open("nope")
    assert isinstance(missing.value, LookupError)


def test_a_collection_whose_creation_was_cut_short_is_named_as_such() -> None:
    collection_path("cut").touch()  # what a create() killed before its schema leaves
    with pytest.raises(CollectionError, match="being created, or its creation was interrupted"):
        Collection.open("cut")
    remove_collection("cut")
    assert list_collections() == []


def test_collections_are_listed_and_removed_with_their_side_files(
        collection: Collection) -> None:
    add(collection, "a.md", ["x"])
    Collection.create("other", BINDING).close()
    assert list_collections() == ["docs", "other"]
    assert Path(f"{collection.path}-wal").exists()
    remove_collection("docs")
    assert list_collections() == ["other"]
    assert sorted(p.name for p in collections_dir().iterdir()) == ["other.sqlite"]
    with pytest.raises(CollectionNotFound):
        remove_collection("docs")


def test_another_model_is_refused_naming_both(collection: Collection) -> None:
    other = Binding(**{**BINDING.__dict__, "model": "nomic-embed-text", "sha256": "b" * 64})
    with pytest.raises(CollectionError, match=r"all-minilm-l6-v2.*nomic-embed-text"):
        Collection.open_or_create("docs", other)
    same_name = Binding(**{**BINDING.__dict__, "sha256": "c" * 64})
    with pytest.raises(CollectionError, match=r"a{12}.*c{12}"):
        Collection.open_or_create("docs", same_name)


def test_other_chunk_settings_are_refused_until_set_and_then_kept(
        collection: Collection) -> None:
    wider = Binding(**{**BINDING.__dict__, "chunk_tokens": 512})
    with pytest.raises(CollectionError, match="chunked at 256 tokens.*--rechunk"):
        Collection.open_or_create("docs", wider)
    collection.set_chunking(512, 32)
    assert Collection.open("docs").binding == wider
    Collection.open_or_create("docs", wider).close()


def test_open_or_create_creates_then_opens() -> None:
    with Collection.open_or_create("new", BINDING) as made:
        add(made, "a.md", ["x"])
    with Collection.open_or_create("new", BINDING) as opened:
        assert opened.document_hashes() == {"a.md": "hash-a.md-0"}


def test_threads_share_one_collection_while_one_of_them_writes(collection: Collection) -> None:
    stop = threading.Event()
    seen: list[str] = []

    def write() -> None:
        try:
            for g in range(80):
                add(collection, f"d{g % 5}", [f"g{g}"] * (g % 4 + 1), seed=g)
            seen.append("written")
        except Exception as exc:
            seen.append(f"writer: {exc!r}")
        finally:
            stop.set()

    def read() -> None:
        try:
            while not stop.is_set():
                with collection.snapshot():
                    documents = collection.documents()
                    chunks = collection.chunks(collection.vectors()[0])
                held = {d: sum(c.document == d for c in chunks) for d in documents}
                seen.append("whole" if held == {d: r.chunks for d, r in documents.items()}
                            else f"half: {held}")
        except Exception as exc:
            seen.append(f"reader: {exc!r}")

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read)
                                                   for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(seen) == {"whole", "written"}


# -- crashes and concurrency --------------------------------------------------------------------

WRITER = """
import sys, time, numpy as np
from localembed.collections.store import Binding, ChunkRow, Collection
seed, mode = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(seed)
binding = Binding("m", "0" * 64, 8, {}, {}, 256, 32)
collection = Collection.open_or_create(sys.argv[3], binding)
# A page cache of 256 KiB: a 1500-chunk document (700 KB) outgrows it, so its uncommitted pages
# are spilled into the WAL before its commit (as a large document does with the 2 MB default).
collection._db.execute("PRAGMA cache_size = -256")
# Even seeds stop inside a big document, past its 600th chunk (spilled pages in the WAL); odd
# ones at any chunk insert.
big_only = seed % 2 == 0
inserts, pause_at = 0, int(rng.integers(600, 1500) if big_only else rng.integers(1, 3000))

def trace(statement):
    # the writer says "mid" while inside replace_document, between two chunk inserts
    global inserts
    if statement.startswith("INSERT INTO chunks (") and (" of1500 " in statement
                                                          or not big_only):
        inserts += 1
        if inserts == pause_at:
            print("mid", flush=True)
            time.sleep(120)

if mode == "pause":
    collection._db.set_trace_callback(trace)
filler = "lorem ipsum dolor sit amet " * 16
sizes = [1, 5, 40, 200, 1500] if mode != "steady" else [1, 5, 20, 60, 150]
print("ready", flush=True)
generation = 0
while True:
    generation += 1
    doc = int(rng.integers(0, 12))
    n = int(rng.choice(sizes))
    chunks = [ChunkRow(k, f"gen{seed}x{generation} doc{doc} part{k} of{n} {filler}", k, k, 9)
              for k in range(n)]
    collection.replace_document(f"doc{doc}", f"/corpus/doc{doc}", f"h{generation}",
                                {"n": n}, chunks, rng.standard_normal((n, 8)))
    if rng.random() < 0.1:
        collection.delete_documents([f"doc{int(rng.integers(0, 12))}"])
"""


def assert_consistent(path: Path) -> dict[str, int]:
    """Every document row's chunk count is its rows in chunks, and the keyword index is
    exactly over the chunks; the documents' chunk counts."""
    with sqlite3.connect(path) as db:  # opening it recovers from a WAL a killed child left
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        counts = dict(db.execute("SELECT id, chunks FROM documents"))
        held = dict(db.execute("SELECT document, count(*) FROM chunks GROUP BY document"))
        assert {d: n for d, n in counts.items() if n} == held
        indexed = {r for (r,) in db.execute("SELECT id FROM chunks_fts_docsize")}
        assert indexed == {r for (r,) in db.execute("SELECT rowid FROM chunks")}
        for doc in counts:  # and it finds what it holds: every chunk of the document's own word
            found = {r for (r,) in db.execute(
                "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?", (f'"{doc}"',))}
            assert found == {r for (r,) in db.execute(
                "SELECT rowid FROM chunks WHERE document = ? AND instr(text, ?)",
                (doc, f"{doc} "))}
        return counts


def assert_every_document_whole(path: Path) -> int:
    """Beyond ``assert_consistent``: each of WRITER's documents holds the chunks of one write,
    all of them (each says "gen<write> doc<i> part<k> of<n>"); the number of documents."""
    counts = assert_consistent(path)
    with sqlite3.connect(path) as db:
        for doc, n in counts.items():
            words = [t.split()[:4] for (t,) in db.execute(
                "SELECT text FROM chunks WHERE document = ? ORDER BY number", (doc,))]
            assert [w[2] for w in words] == [f"part{k}" for k in range(n)]
            assert {(w[0], w[1], w[3]) for w in words} == {(words[0][0], doc, f"of{n}")}
    return len(counts)


def kill_writer(seed: int, mode: str, name: str = "crash") -> None:
    proc = child(WRITER, str(seed), mode, name)
    try:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()  # type: ignore[union-attr]
        if mode == "pause":
            assert proc.stdout.readline() == "mid\n", proc.stderr.read()  # type: ignore[union-attr]
        else:
            time.sleep(random.Random(seed).uniform(0.05, 0.6))
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_kill_9_in_the_middle_of_replace_document_leaves_every_document_whole() -> None:
    for seed in range(6):
        kill_writer(seed, "pause")
        assert_every_document_whole(collection_path("crash"))
    with Collection.open("crash") as survivor:  # and it goes on being written and searched
        rowids, _ = survivor.vectors()
        assert len(survivor.chunks(rowids)) == len(rowids) == survivor.stats().chunks
        assert survivor.keyword("lorem", 3)


@pytest.mark.slow
def test_kill_9_at_random_moments_of_a_writing_loop_leaves_every_document_whole() -> None:
    documents = 0
    for seed in range(100, 106):
        kill_writer(seed, "random")
        documents = assert_every_document_whole(collection_path("crash"))
    assert documents > 0


READER = """
import json, sys, time
from localembed.collections.store import Collection

def tag(chunk):  # (generation, "of<n>"): which write a chunk came from, of how many chunks
    words = chunk.text.split()
    return words[0], words[3]

def half(chunks, count):
    return (sorted(c.number for c in chunks) != list(range(count))
            or {tag(c) for c in chunks} != {(tag(chunks[0])[0], f"of{count}")})

collection = Collection.open(sys.argv[1])
checks, bad, versions = 0, [], set()
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    with collection.snapshot():  # one state: the rows, the matrix and its chunks
        documents = collection.documents()
        rowids, _ = collection.vectors()
        chunks = collection.chunks(rowids)
    by_document = {}
    for c in chunks:
        by_document.setdefault(c.document, []).append(c)
        versions.add(tag(c)[0])
    bad += [["snapshot", d, r.chunks, len(by_document.get(d, []))] for d, r in documents.items()
            if half(by_document.get(d, []), r.chunks)]
    bad += [["orphan", d] for d in by_document if d not in documents]
    # each call alone: chunks asked by a matrix read before a write are whole documents or none
    loose = {}
    for c in collection.chunks(collection.vectors()[0]):
        loose.setdefault(c.document, []).append(c)
    bad += [["loose", d, len(got)] for d, got in loose.items()
            if half(got, int(tag(got[0])[1][2:]))]
    checks += 1
print(json.dumps({"checks": checks, "bad": bad[:5], "versions": len(versions)}))
"""


@pytest.mark.slow
def test_readers_in_another_process_never_see_half_a_document() -> None:
    Collection.create("live", Binding("m", "0" * 64, 8, {}, {}, 256, 32)).close()
    writer = child(WRITER, "7", "steady", "live")
    try:
        assert writer.stdout.readline() == "ready\n"  # type: ignore[union-attr]
        reader = child(READER, "live", "4")
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        assert writer.poll() is None, writer.stderr.read()  # type: ignore[union-attr]
    finally:
        writer.kill()
        writer.wait()
    seen = json.loads(out)
    assert seen["bad"] == [] and seen["checks"] > 20
    assert seen["versions"] > 20  # it read while documents were being replaced
    assert_every_document_whole(collection_path("live"))


# -- the disk -----------------------------------------------------------------------------------

def test_a_full_disk_refuses_the_write_and_leaves_the_collection_intact_and_searchable(
        small_disk: Path) -> None:  # noqa: F811
    collection = Collection.create("docs", BINDING)
    given = add(collection, "a.md", ["ERR_CONN_4021 is kept", "second chunk"], seed=1)
    before = (collection.documents(), collection.stats().chunks)
    fill(small_disk)
    big = [f"chunk {k} " + "x" * 2000 for k in range(600)]  # far more than the WAL has room for
    with pytest.raises(CollectionDiskError, match="the disk is full") as full:
        collection.replace_document("a.md", "/corpus/a.md", "new", {}, rows(big),
                                    vectors(len(big)))
    assert full.value.errno == 28 and full.value.filename == str(collection.path)
    assert "'docs'" in str(full.value) and "'a.md'" in str(full.value)
    assert isinstance(full.value, OSError)
    for reader in (collection, Collection.open("docs")):
        assert (reader.documents(), reader.stats().chunks) == before
        rowids, matrix = reader.vectors()
        np.testing.assert_allclose(matrix, unit(given), rtol=1e-6)
        assert [c.text for c in reader.chunks(reader.keyword("ERR_CONN_4021", 5)[0][:1])] == [
            "ERR_CONN_4021 is kept"]
    assert assert_consistent(collection.path) == {"a.md": 2}
    (small_disk / "filler").unlink()
    add(collection, "b.md", ["room again"])  # once there is room, writing goes on
    assert sorted(collection.document_hashes()) == ["a.md", "b.md"]
    collection.close()


def test_a_full_disk_is_told_as_such_where_sqlite3_errors_carry_no_code() -> None:
    bare = sqlite3.OperationalError("database or disk is full")  # as Python 3.10 raises it
    assert getattr(bare, "sqlite_errorname", None) is None
    with pytest.raises(CollectionDiskError, match="the disk is full") as full:
        store._raise(bare, "docs", Path("/x/docs.sqlite"), "writing document 'a.md'")
    assert full.value.errno == 28 and full.value.filename == "/x/docs.sqlite"


def test_bytes_on_disk_per_chunk_of_384_dimensions_and_500_characters(
        capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(n)))
             for n in rng.integers(2, 10, 5000)]
    weights = 1 / np.arange(1, len(words) + 1)
    binding = Binding(**{**BINDING.__dict__, "dimensions": 384})
    with Collection.create("sized", binding) as sized:
        for d in range(100):
            texts = []
            for _ in range(20):
                picked = rng.choice(len(words), 120, p=weights / weights.sum())
                texts.append(" ".join(words[i] for i in picked)[:500])
            sized.replace_document(f"docs/file{d}.md", f"/home/me/docs/file{d}.md", "f" * 64,
                                   {"lang": "en"}, rows(texts), vectors(20, d, dims=384))
    with Collection.open("sized") as sized:  # the last close folded the WAL into the file
        stats = sized.stats()
    per_chunk = stats.bytes / stats.chunks
    with capsys.disabled():
        print(f"\n{stats.chunks} chunks of 384 dimensions and 500 characters: {stats.bytes} "
              f"bytes, {per_chunk:.0f} bytes per chunk")
    assert stats.chunks == 2000
    assert 384 * 4 + 500 < per_chunk < 3200
