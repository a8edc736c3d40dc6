"""Search: the query embedded with the collection's own model and query prompt, the
collection's vector index scanned for candidates that are rescored by exact cosine (see
``vectorindex``), optionally fused with keyword search and reranked.

Exact names and codes are where pure vectors miss, so ``hybrid`` adds SQLite FTS5's keyword
ranking, fused with the vector ranking by reciprocal rank (each list contributes
1 / (RRF_K + rank)), which needs no tuning between scores of different scales. A rerank
scores the best candidates with a reranker through the same service as ``/v1/rerank``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

import msgspec
import numpy as np

from localembed.collections.ingest import model_engine, query_options
from localembed.collections.store import Collection, StoredChunk
from localembed.engine import InputError
from localembed.service.execute import EmbedRequest, RerankRequest, Service, ranking

# Reciprocal rank fusion's constant, as in its paper (Cormack et al., 2009).
RRF_K = 60
# A rerank scores this many candidates per result asked for (at least RERANK_MIN).
RERANK_FACTOR = 4
RERANK_MIN = 20
MAX_TOP_K = 1000
# The vector index's scan chooses this many candidates per result wanted (at least
# CANDIDATES_MIN), which are then rescored exactly: see ``vectorindex``.
CANDIDATE_FACTOR = 2
CANDIDATES_MIN = 100
# Hybrid search fuses this many of each ranking (at least): fusing only the top k would let a
# chunk first in one list and absent from the other tie with the other list's first.
FUSION_POOL = 50


@dataclass(frozen=True)
class SearchQuery:
    query: str
    _: KW_ONLY
    top_k: int = 10
    where: Mapping[str, str] | None = None  # document metadata key == value, all of them
    path: str | None = None  # a glob over document ids (paths relative to what was indexed)
    documents: frozenset[str] | None = None  # only these document ids
    rerank: bool = False
    reranker: str | None = None  # which reranker; None: the registry's choice
    hybrid: bool = False
    candidates: int | None = None  # how many a rerank scores (default top_k * RERANK_FACTOR)
    include_vectors: bool = False  # the answer carries the query's and the results' vectors


class SearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """One chunk found: ``score`` is what it was ranked by (the rerank score when reranked,
    else the fused score when hybrid, else the cosine); the others say where it came from."""

    id: str
    document: str
    score: float
    text: str
    source: str
    start_line: int | None
    end_line: int | None
    metadata: dict[str, Any]
    vector_score: float | None
    keyword_score: float | None = None
    rerank_score: float | None = None
    vector_rank: int | None = None  # 1-based place in the vector order (before the rerank)


@dataclass(frozen=True)
class SearchAnswer:
    collection: str
    model: str
    reranker: str | None
    results: list[SearchResult]
    tokens: int
    query_vector: np.ndarray | None = None  # with include_vectors: the query's, as searched
    vectors: np.ndarray | None = None  # with include_vectors: each result's, as stored


def search(service: Service, name: str, request: SearchQuery) -> SearchAnswer:
    """The best chunks of collection ``name`` for the query; see the module's docstring."""
    if not request.query.strip():
        raise InputError("the query is empty", param="query")
    if not 1 <= request.top_k <= MAX_TOP_K:
        raise InputError(f"top_k must be between 1 and {MAX_TOP_K}", param="top_k")
    with Collection.open(name) as collection:
        engine = model_engine(service, collection)
        embedded = service.embed(EmbedRequest([request.query], query_options(collection.binding),
                                              engine.id, field="query"), engine)
        query = embedded.vectors[0]
        found = find(collection, query, request)
    tokens = embedded.total_tokens
    reranker = None
    chunks = found.chunks
    if request.rerank and chunks:
        ranked = service.rerank(RerankRequest(request.query, [c.text for c in chunks],
                                              model=request.reranker, field="documents"))
        reranker, tokens = ranked.model, tokens + ranked.total_tokens
        found.rerank = {c.rowid: float(s) for c, s in zip(chunks, ranked.scores, strict=True)}
        chunks = [chunks[i] for i in ranking(ranked.scores)]
    chunks = chunks[:request.top_k]
    results = [found.result(c) for c in chunks]
    if not request.include_vectors:
        return SearchAnswer(name, collection.binding.model, reranker, results, tokens)
    with Collection.open(name) as collection:
        rowids, matrix = collection.embeddings([c.rowid for c in chunks])
    at = {int(r): i for i, r in enumerate(rowids)}
    kept = [i for i, c in enumerate(chunks) if c.rowid in at]  # a chunk replaced meanwhile
    vectors = matrix[[at[chunks[i].rowid] for i in kept]]
    return SearchAnswer(name, collection.binding.model, reranker, [results[i] for i in kept],
                        tokens, query_vector=query, vectors=vectors)


@dataclass
class Found:
    """The candidates of one search and every score each has so far."""

    chunks: list[StoredChunk]
    vector: dict[int, float]
    vector_rank: dict[int, int]
    keyword: dict[int, float]
    fused: dict[int, float]
    rerank: dict[int, float]

    def result(self, chunk: StoredChunk) -> SearchResult:
        rowid = chunk.rowid
        score = self.rerank.get(rowid, self.fused.get(rowid, self.vector.get(rowid, 0.0)))
        return SearchResult(
            id=chunk.id, document=chunk.document, score=score, text=chunk.text,
            source=chunk.source, start_line=chunk.start_line, end_line=chunk.end_line,
            metadata=chunk.metadata, vector_score=self.vector.get(rowid),
            keyword_score=self.keyword.get(rowid), rerank_score=self.rerank.get(rowid),
            vector_rank=self.vector_rank.get(rowid))


def find(collection: Collection, vector: np.ndarray, request: SearchQuery) -> Found:
    """The candidates for an embedded query, before any rerank: the collection's vector index
    scanned within the filters, its best rescored with the exact stored vectors, fused with
    keyword hits when hybrid. What a search costs beyond embedding its query
    (``benchmarks/collections_bench.py`` times it)."""
    with collection.snapshot():  # the index, the vectors and the chunks of one state
        index = collection.vector_index()
        allowed = collection.filter_rowids(request.where, request.path, request.documents)
        rowids, approximate = index.rowids, index.scores(vector)
        if allowed is not None:
            keep = np.isin(rowids, allowed, assume_unique=True)
            rowids, approximate = rowids[keep], approximate[keep]
        wanted = request.top_k
        if request.rerank:
            wanted = request.candidates or max(request.top_k * RERANK_FACTOR, RERANK_MIN)
        pool = max(wanted, request.top_k, FUSION_POOL if request.hybrid else 0)
        scanned = rowids[_best(approximate, max(pool * CANDIDATE_FACTOR, CANDIDATES_MIN))]
        keyword: dict[int, float] = {}
        if request.hybrid:
            keyword = dict(collection.keyword(request.query, pool, within=allowed))
        # Exact cosines for the candidates, and for keyword hits the scan did not keep.
        exact_ids, exact = collection.embeddings([*scanned.tolist(), *keyword])
        cosine = exact @ vector.astype(np.float32)
        score = dict(zip(exact_ids.tolist(), cosine.tolist(), strict=True))
        candidates = [r for r in scanned.tolist() if r in score]
        by_vector = sorted(candidates, key=lambda r: (-score[r], r))[:pool]
        vector_rank = {r: rank for rank, r in enumerate(by_vector, 1)}
        vector_score = {r: score[r] for r in by_vector}
        order = by_vector[:max(wanted, request.top_k)]
        fused: dict[int, float] = {}
        if request.hybrid:
            for rank, rowid in enumerate(by_vector, 1):
                fused[rowid] = 1 / (RRF_K + rank)
            for rank, rowid in enumerate(keyword, 1):
                fused[rowid] = fused.get(rowid, 0.0) + 1 / (RRF_K + rank)
            order = sorted(fused, key=lambda r: -fused[r])[:max(wanted, request.top_k)]
        chunks = collection.chunks(order)
    for chunk in chunks:  # a keyword-only hit still says its cosine
        if chunk.rowid not in vector_score and chunk.rowid in score:
            vector_score[chunk.rowid] = score[chunk.rowid]
    return Found(chunks, vector_score, vector_rank, keyword, fused, {})


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, in no particular order."""
    if len(scores) <= k:
        return np.arange(len(scores))
    return np.argpartition(scores, len(scores) - k)[-k:]
