"""OpenAI-compatible routes (/v1/embeddings with the Mistral and vLLM extensions, /v1/models)
and localembed's /v1/similarity, /score and /tokenize: thin views over the dialect models and
the core service."""

from __future__ import annotations

import time

from flask import Blueprint, Response

from localembed.dialects import local, openai, rerank
from localembed.models.store import describe, installed
from localembed.server.body import body, client_gone, reply
from localembed.server.errors import APIError
from localembed.server.state import state

bp = Blueprint("openai", __name__)


@bp.post("/v1/embeddings")
@bp.post("/embeddings")
def embeddings() -> Response:
    st = state()
    response = openai.create_embeddings(body(openai.EmbeddingRequest), st.service,
                                        st.token_decoder(), client_gone())
    st.metrics.count_work(len(response.data), response.usage.total_tokens)
    return reply(response)


def model_card(model_id: str) -> openai.ModelCard:
    """A /v1/models entry; a loaded model whose file vanished is still listed."""
    st = state()
    loaded = {e.id: e for e in st.registry.loaded()}
    card = openai.ModelCard(id=model_id, loaded=model_id in loaded,
                            default=model_id == st.registry.default_id)
    if model_id in loaded:
        d = loaded[model_id].describe()
        path = loaded[model_id].info.path
        card.created = int(path.stat().st_mtime) if path.exists() else None
        card.missing = not path.exists()
        card.size_bytes, card.dimensions = d["size_bytes"], d["dimensions"]
        card.rss_bytes = d["rss_bytes"]
        card.context_length, card.max_seq_length = d["context_length"], d["max_seq_length"]
        card.max_tokens, card.family, card.kind = d["max_tokens"], d["family"], d["kind"]
        card.matryoshka_dimensions = d["matryoshka_dimensions"]
        return card
    try:
        d = describe(model_id)
    except LookupError:
        return card
    if "error" in d:
        card.error = d["error"]
        return card
    card.created, card.size_bytes = int(d["modified"]), d["size_bytes"]
    card.dimensions, card.context_length = d["dimensions"], d["context_length"]
    card.max_seq_length, card.family, card.kind = d["max_seq_length"], d["family"], d["kind"]
    card.matryoshka_dimensions = d["matryoshka_dimensions"]
    return card


@bp.get("/v1/models")
@bp.get("/models")
def models() -> Response:
    ids = sorted(set(installed()) | {e.id for e in state().registry.loaded()})
    return reply(openai.ModelList([model_card(i) for i in ids]))


@bp.get("/v1/models/<model_id>")
def model(model_id: str) -> Response:
    ids = set(installed()) | {e.id for e in state().registry.loaded()}
    if model_id not in ids:
        raise APIError(404, f"The model '{model_id}' does not exist or is not installed.",
                       param="model", code="model_not_found")
    return reply(model_card(model_id))


@bp.post("/v1/similarity")
def similarity() -> Response:
    """Documents ranked by cosine similarity to a query (query/document prompts)."""
    st = state()
    started = time.perf_counter()
    request = body(local.SimilarityRequest).to_request()
    result = st.service.compare(request, abandoned=client_gone())
    st.metrics.count_work(result.inputs, result.total_tokens)
    return reply(local.similarity_response(request, result, started))


@bp.post("/v1/similarity/matrix")
def similarity_matrix() -> Response:
    """The N x N cosine matrix of texts (the playground's heatmap, the CLI's --matrix)."""
    st = state()
    request = body(local.MatrixRequest).to_request()
    result = st.service.compare(request, abandoned=client_gone())
    st.metrics.count_work(result.inputs, result.total_tokens)
    return reply(local.matrix_response(request, result))


@bp.post("/score")
@bp.post("/v1/score")
def score() -> Response:
    """vLLM's scores of text pairs: cosine with an embedding model, the cross-encoder's score
    with a reranker."""
    st = state()
    request = body(local.ScoreRequest)
    engine = st.service.engine(request.model)
    if engine.kind != "reranker":
        result = st.service.compare(request.to_request(), engine, abandoned=client_gone())
        st.metrics.count_work(result.inputs, result.total_tokens)
        return reply(local.score_response(result))
    options = rerank.score_options(engine, request.dimensions, request.truncate_prompt_tokens,
                                   request.instruction)
    pairs = request.to_request(reranker=True)
    model, scores, tokens = rerank.cross_scores(st.service, engine, pairs, options,
                                                client_gone())
    st.metrics.count_work(len(pairs.pairs), tokens)
    return reply(rerank.score_response(model, scores, tokens))


@bp.post("/tokenize")
def tokenize() -> Response:
    """The model's own token ids for a text (what the model will see, specials included)."""
    request = body(local.TokenizeRequest)
    texts, single = request.texts()
    model_id, tokens = state().service.tokenize(texts, request.options(), request.model)
    return reply(local.TokenizeResponse(model_id, tokens[0] if single else tokens,
                                        sum(len(t) for t in tokens)))
