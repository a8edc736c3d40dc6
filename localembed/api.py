"""In-process embeddings and reranking with the HTTP API's options, in the shapes vLLM and
mistral.rs users know (``LLM.embed``, ``LLM.score``, ``LLM.rerank``, ``Runner``), without
starting a server.

Bodies are validated by the same request models as the HTTP routes and run by the same core
service, so a field behaves identically in-process and over HTTP. Failures are the core's own
exceptions (``InputError`` with ``param`` and ``code``, ``ModelNotFound``, ...), not HTTP errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgspec

from localembed.collections.ingest import index, upsert
from localembed.collections.search import SearchResult, search
from localembed.collections.store import list_collections
from localembed.dialects import collections as wire
from localembed.dialects import local, openai, rerank
from localembed.dialects.common import convert
from localembed.dialects.tokenids import local_cl100k
from localembed.engine import InputError, Kind, RunnerOptions
from localembed.service.execute import Limits, Service, ranking
from localembed.service.registry import Registry


@dataclass(frozen=True)
class EmbeddingOutput:
    embedding: list


@dataclass(frozen=True)
class EmbeddingRequestOutput:
    """One input's result, shaped like vLLM's (``.outputs.embedding``)."""

    index: int
    prompt: object
    outputs: EmbeddingOutput


@dataclass(frozen=True)
class ScoringOutput:
    score: float


@dataclass(frozen=True)
class ScoringRequestOutput:
    index: int
    outputs: ScoringOutput


@dataclass(frozen=True)
class RerankOutput:
    """One document's relevance to the query: its position in the input, its score in 0..1
    and its text (Cohere's and Jina's result, with ``relevance_score`` as they name it)."""

    index: int
    score: float
    document: str

    @property
    def relevance_score(self) -> float:
        return self.score


# The rerank body's fields LLM.rerank takes as options (query, documents and top_n are its
# arguments; its results always carry their text).
_RERANK_FIELDS = {f.name for f in msgspec.structs.fields(rerank.RerankRequest)} - {
    "query", "documents", "top_n", "return_documents"}


class LLM:
    """A loaded model; ``LLM("embeddinggemma-300m").embed(["hello"])``, or with a reranker
    ``LLM("qwen3-reranker-0.6b").rerank("query", ["doc", ...])``.

    Options are the /v1/embeddings body fields (``dimensions``, ``task``, ``output_dtype``,
    ``truncate_prompt_tokens``, ``embed_dtype``, ``use_activation``, ...). Bad options raise
    ``InputError`` (a ``ValueError`` with ``param`` and ``code``); so does asking a reranker
    for embeddings or an embedding model to rerank (``code`` "wrong_model_kind").
    """

    def __init__(self, model: str | None = None, **runner_options: object) -> None:
        self.registry = Registry(model, RunnerOptions(**runner_options))  # type: ignore[arg-type]
        self.service = Service(self.registry, Limits())
        cl100k = local_cl100k()
        self._decoder = cl100k.decode if cl100k is not None else None

    @property
    def model(self) -> str:
        return self.registry.default_id

    def create_embeddings(self, **body: object) -> dict:
        """Exactly the /v1/embeddings response for the same body."""
        request = convert(dict(body), openai.EmbeddingRequest)
        return msgspec.to_builtins(openai.create_embeddings(request, self.service, self._decoder))

    def embed(self, prompts: str | Sequence, **options: object) -> list[EmbeddingRequestOutput]:
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        response = self.create_embeddings(input=items, **options)
        return [EmbeddingRequestOutput(d["index"], items[d["index"]],
                                       EmbeddingOutput(d["embedding"]))
                for d in response["data"]]

    @property
    def kind(self) -> Kind:
        """Which of ``embed`` and ``rerank`` the model answers."""
        return self.registry.default.kind

    def score(self, text_1: str | Sequence[str], text_2: str | Sequence[str],
              **options: object) -> list[ScoringRequestOutput]:
        """vLLM's ``LLM.score``: one text against many, or two lists pairwise; exactly the
        scores ``POST /score`` answers for the same body.

        An embedding model scores by cosine similarity; a reranker scores each pair with its
        cross-encoder (0..1, as ``rerank``), as vLLM does for cross-encoder models. A reranker
        also takes ``instruction`` (Qwen3-Reranker); an embedding model refuses it.
        """
        request = convert({"text_1": text_1, "text_2": text_2, **options}, local.ScoreRequest)
        scores = self.service.score(request.to_request()).scores
        return [ScoringRequestOutput(i, ScoringOutput(float(s))) for i, s in enumerate(scores)]

    def rerank(self, query: str, documents: Sequence[str | Mapping[str, object]],
               top_n: int | None = None, **options: object) -> list[RerankOutput]:
        """Documents ordered by relevance to ``query``, most relevant first (the best
        ``top_n`` when given); each keeps its input ``index``. The same ranking ``POST
        /v1/rerank`` answers for the same body.

        Documents are strings or objects with a ``text`` (the Cohere and Jina shape). Options
        are the rerank body's fields: ``instruction`` (Qwen3-Reranker's task), ``truncate``
        ("end" or true cuts a long document's end, never the query; "none" or false refuses
        it; or Voyage's ``truncation``), ``max_tokens_per_doc``, ``model`` (another installed
        reranker); and, in-process only, ``max_tokens`` (a tighter limit on each (query,
        document) pair).
        """
        max_tokens = options.pop("max_tokens", None)
        unknown = sorted(set(options) - _RERANK_FIELDS)
        if unknown:
            raise InputError(f"unknown rerank option '{unknown[0]}'; the options are "
                             + ", ".join(sorted(_RERANK_FIELDS | {"max_tokens"})),
                             param=unknown[0])
        if max_tokens is not None and (isinstance(max_tokens, bool)
                                       or not isinstance(max_tokens, int) or max_tokens < 1):
            raise InputError("'max_tokens' must be a positive integer.", param="max_tokens")
        if isinstance(documents, Sequence) and not isinstance(documents, str):
            documents = list(documents)
        request = convert({"query": query, "documents": documents, "top_n": top_n, **options},
                          rerank.RerankRequest)
        core = request.to_request(max_tokens)
        if core.model is None:  # this LLM's own model, which refuses if it is no reranker
            core = dataclasses.replace(core, model=self.model)
        scores = self.service.rerank(core).scores
        return [RerankOutput(i, float(scores[i]), core.documents[i])
                for i in ranking(scores, top_n)]

    # -- collections ---------------------------------------------------------------------------

    def index(self, collection: str, paths: str | Sequence[str], **options: object) -> dict:
        """Index files, folders and JSONL/CSV records into ``collection`` (created on first use,
        with this LLM's model unless ``model`` says otherwise); the same run as
        ``localembed index`` and ``POST /v1/collections/{name}/index``. Options are that body's
        fields (``glob``, ``text_field``, ``id_field``, ``chunk_tokens``, ``overlap``,
        ``rechunk``)."""
        items = [paths] if isinstance(paths, str) else list(paths)
        request = convert({"paths": items, **options}, wire.IndexRequest)
        if request.model is None and collection not in list_collections():
            request = msgspec.structs.replace(request, model=self.model)
        report = index(self.service, collection, request.paths, request.options())
        return msgspec.to_builtins(wire.IndexSummary.of(report))

    def upsert(self, collection: str, documents: Sequence[Mapping[str, object]]) -> dict:
        """Add or replace documents (``id``, ``text``, optional ``title`` and ``metadata``)."""
        request = convert({"upsert": list(documents)}, wire.DocumentsRequest)
        model = None if collection in list_collections() else self.model
        report = upsert(self.service, collection, [d.document() for d in request.upsert], model)
        return msgspec.to_builtins(wire.IndexSummary.of(report))

    def search(self, collection: str, query: str, top_k: int = 10,
               **options: object) -> list[SearchResult]:
        """The best chunks of ``collection`` for ``query``, as ``POST
        /v1/collections/{name}/search`` answers them; options are that body's fields
        (``where``, ``path``, ``rerank``, ``hybrid``, ``candidates``)."""
        request = convert({"query": query, "top_k": top_k, **options}, wire.SearchRequest)
        return search(self.service, collection, request.to_query()).results

    def collections(self) -> list[str]:
        return list_collections()

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Runner = LLM  # the name mistral.rs users reach for
APIError = InputError  # the name earlier releases raised

__all__ = ["APIError", "InputError", "LLM", "RerankOutput", "Runner"]
