"""Vector search over a collection (``collections.search.find``) against exact cosine in numpy:
the int8 index only chooses candidates, the scores and order it returns are exact, and
filters hold over the whole collection, not over its best chunks."""

from __future__ import annotations

import numpy as np
import pytest

from localembed.collections.search import SearchQuery, find
from localembed.collections.store import Binding, ChunkRow, Collection

DIMS = 96
PER_DOCUMENT = 500


def binding(dims: int = DIMS) -> Binding:
    return Binding(model="m", sha256="0" * 64, dimensions=dims,
                   document_options={"task": "document"}, query_options={"task": "query"},
                   chunk_tokens=256, overlap=32)


def unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


@pytest.fixture
def random_collection():  # type: ignore[no-untyped-def]
    """20,000 random unit vectors (the hard case for quantization: neighbours barely nearer
    than the rest) in 40 documents, doc0 .. doc39; yields (collection, vectors in rowid
    order)."""
    rng = np.random.default_rng(3)
    given = unit(rng.standard_normal((40 * PER_DOCUMENT, DIMS)).astype(np.float32))
    with Collection.create("random", binding()) as collection:
        for d in range(40):
            part = given[d * PER_DOCUMENT:(d + 1) * PER_DOCUMENT]
            collection.replace_document(
                f"doc{d}", f"/r/doc{d}", "h", {"even": str(d % 2 == 0).lower()},
                [ChunkRow(n, f"chunk {d}.{n}", None, None, 3) for n in range(PER_DOCUMENT)],
                part)
        yield collection, given


def exact_top(given: np.ndarray, query: np.ndarray, k: int,
              rows: np.ndarray | None = None) -> list[int]:
    """Positions (in rowid order) of the k best, by numpy's exact cosine."""
    rows = np.arange(len(given)) if rows is None else rows
    scores = given[rows] @ query
    return [int(rows[i]) for i in np.argsort(-scores, kind="stable")[:k]]


def test_the_top_10_of_random_vectors_is_the_exact_top_10(random_collection) -> None:  # type: ignore[no-untyped-def]
    collection, given = random_collection
    rowids = collection.vectors()[0]
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(20):
        query = unit(rng.standard_normal(DIMS).astype(np.float32))
        found = find(collection, query, SearchQuery("q", top_k=10))
        expected = {int(rowids[i]) for i in exact_top(given, query, 10)}
        hits += len(expected & {c.rowid for c in found.chunks})
    assert hits / 200 >= 0.99


def test_the_scores_returned_are_exact_cosines_in_order(random_collection) -> None:  # type: ignore[no-untyped-def]
    collection, given = random_collection
    rowids = collection.vectors()[0].tolist()
    query = unit(np.random.default_rng(5).standard_normal(DIMS).astype(np.float32))
    found = find(collection, query, SearchQuery("q", top_k=10))
    scores = [found.vector[c.rowid] for c in found.chunks]
    exact = [float(given[rowids.index(c.rowid)] @ query) for c in found.chunks]
    np.testing.assert_allclose(scores, exact, atol=1e-6)
    assert scores == sorted(scores, reverse=True)


def test_a_document_filter_finds_its_best_chunks_however_low_they_rank_overall(
        random_collection) -> None:  # type: ignore[no-untyped-def]
    collection, given = random_collection
    rowids = collection.vectors()[0]
    query = unit(np.random.default_rng(6).standard_normal(DIMS).astype(np.float32))
    overall = given @ query
    worst = min(range(40), key=lambda d: overall[d * PER_DOCUMENT:(d + 1) * PER_DOCUMENT].max())
    rows = np.arange(worst * PER_DOCUMENT, (worst + 1) * PER_DOCUMENT)
    found = find(collection, query, SearchQuery("q", top_k=5,
                                                documents=frozenset({f"doc{worst}"})))
    assert [c.rowid for c in found.chunks] == [int(rowids[i]) for i in exact_top(given, query, 5,
                                                                                 rows)]


def test_a_where_filter_keeps_its_documents_exactly(random_collection) -> None:  # type: ignore[no-untyped-def]
    collection, given = random_collection
    rowids = collection.vectors()[0]
    query = unit(np.random.default_rng(7).standard_normal(DIMS).astype(np.float32))
    even = np.concatenate([np.arange(d * PER_DOCUMENT, (d + 1) * PER_DOCUMENT)
                           for d in range(0, 40, 2)])
    found = find(collection, query, SearchQuery("q", top_k=10, where={"even": "true"}))
    assert {c.document for c in found.chunks} <= {f"doc{d}" for d in range(0, 40, 2)}
    expected = {int(rowids[i]) for i in exact_top(given, query, 10, even)}
    assert len(expected & {c.rowid for c in found.chunks}) >= 9


def test_a_collection_with_fewer_chunks_than_candidates_is_searched_exactly() -> None:
    rng = np.random.default_rng(8)
    given = unit(rng.standard_normal((60, 16)).astype(np.float32))
    with Collection.create("small", binding(16)) as collection:
        collection.replace_document("a", "/a", "h", {},
                                    [ChunkRow(n, f"c{n}", None, None, 1) for n in range(60)],
                                    given)
        rowids = collection.vectors()[0]
        for seed in range(10):
            query = unit(np.random.default_rng(seed).standard_normal(16).astype(np.float32))
            found = find(collection, query, SearchQuery("q", top_k=60))
            assert [c.rowid for c in found.chunks] == [
                int(rowids[i]) for i in exact_top(given, query, 60)]
