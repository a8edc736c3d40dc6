"""Search: the query embedded with the collection's own model and query prompt, exact cosine
over the collection's vectors, optionally fused with keyword search and reranked.

Exact names and codes are where pure vectors miss, so ``hybrid`` adds SQLite FTS5's keyword
ranking, fused with the vector ranking by reciprocal rank (each list contributes
1 / (RRF_K + rank)), which needs no tuning between scores of different scales. A rerank
scores the best candidates with a reranker through the same service as ``/v1/rerank``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
# Hybrid search fuses this many of each ranking (at least): fusing only the top k would let a
# chunk first in one list and absent from the other tie with the other list's first.
FUSION_POOL = 50


@dataclass(frozen=True)
class SearchQuery:
    query: str
    top_k: int = 10
    where: Mapping[str, str] | None = None  # document metadata key == value, all of them
    path: str | None = None  # a glob over document ids (paths relative to what was indexed)
    rerank: bool = False
    reranker: str | None = None  # which reranker; None: the registry's choice
    hybrid: bool = False
    candidates: int | None = None  # how many a rerank scores (default top_k * RERANK_FACTOR)


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
        found = find(collection, embedded.vectors[0], request)
    tokens = embedded.total_tokens
    reranker = None
    chunks = found.chunks
    if request.rerank and chunks:
        ranked = service.rerank(RerankRequest(request.query, [c.text for c in chunks],
                                              model=request.reranker, field="documents"))
        reranker, tokens = ranked.model, tokens + ranked.total_tokens
        found.rerank = {c.rowid: float(s) for c, s in zip(chunks, ranked.scores, strict=True)}
        chunks = [chunks[i] for i in ranking(ranked.scores)]
    results = [found.result(c) for c in chunks[:request.top_k]]
    return SearchAnswer(name, collection.binding.model, reranker, results, tokens)


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
    """The candidates for an embedded query, before any rerank: exact cosine over the
    collection's vectors within the filters, fused with keyword hits when hybrid. What a
    search costs beyond embedding its query (``benchmarks/collections_bench.py`` times it)."""
    rowids, matrix = collection.vectors()
    allowed = collection.filter_rowids(request.where, request.path)
    cosine = matrix @ vector.astype(np.float32) if len(rowids) else np.empty(0)
    if allowed is not None:
        keep = np.isin(rowids, allowed)
        rowids, cosine = rowids[keep], cosine[keep]
    wanted = request.top_k
    if request.rerank:
        wanted = request.candidates or max(request.top_k * RERANK_FACTOR, RERANK_MIN)
    pool = max(wanted, request.top_k, FUSION_POOL if request.hybrid else 0)
    vector_order = _top(cosine, pool)
    vector_rank = {int(rowids[i]): r for r, i in enumerate(vector_order, 1)}
    vector_score = {int(rowids[i]): float(cosine[i]) for i in vector_order}
    order = [int(rowids[i]) for i in vector_order][:max(wanted, request.top_k)]
    fused: dict[int, float] = {}
    keyword: dict[int, float] = {}
    if request.hybrid:
        hits = collection.keyword(request.query, pool, within=allowed)
        keyword = dict(hits)
        for rank, i in enumerate(vector_order, 1):
            fused[int(rowids[i])] = 1 / (RRF_K + rank)
        for rank, (rowid, _) in enumerate(hits, 1):
            fused[rowid] = fused.get(rowid, 0.0) + 1 / (RRF_K + rank)
        order = sorted(fused, key=lambda r: -fused[r])[:max(wanted, request.top_k)]
    chunks = collection.chunks(order)
    for chunk in chunks:  # a keyword-only hit still says its cosine
        if chunk.rowid not in vector_score:
            at = int(np.searchsorted(rowids, chunk.rowid))  # rowids come sorted
            if at < len(rowids) and rowids[at] == chunk.rowid:
                vector_score[chunk.rowid] = float(cosine[at])
    return Found(chunks, vector_score, vector_rank, keyword, fused, {})


def _top(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` highest scores, highest first (ties by position)."""
    if len(scores) <= k:
        return ranking(scores)
    best = np.argpartition(-scores, k - 1)[:k]
    return [int(best[i]) for i in ranking(scores[best])]
