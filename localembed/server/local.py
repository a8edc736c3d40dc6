"""localembed's own routes (/v1/similarity, /v1/similarity/matrix, /tokenize) and vLLM's
/score: thin views over ``localembed.dialects.local`` and the service."""

from __future__ import annotations

import time

from flask import Response

from localembed.dialects import local
from localembed.server.body import body, client_gone, reply
from localembed.server.routes import Blueprint
from localembed.server.state import state

bp = Blueprint("local", __name__)

SCORE = ("Scores of text pairs (vLLM): cosine with an embedding model, the cross-encoder's "
         "with a reranker")


@bp.operation("post", "/v1/similarity", "Rank documents by similarity to a query",
              local.SimilarityResponse, local.SimilarityRequest)
def similarity() -> Response:
    """Documents ranked by cosine similarity to a query (query/document prompts)."""
    st = state()
    started = time.perf_counter()
    request = body(local.SimilarityRequest).to_request()
    result = st.service.compare(request, abandoned=client_gone())
    st.metrics.count_work(result.inputs, result.total_tokens)
    return reply(local.similarity_response(request, result, started))


@bp.operation("post", "/v1/similarity/matrix", "The cosine of every text with every text",
              local.MatrixResponse, local.MatrixRequest)
def similarity_matrix() -> Response:
    """The N x N cosine matrix of texts (the playground's heatmap, the CLI's --matrix)."""
    st = state()
    request = body(local.MatrixRequest).to_request()
    result = st.service.compare(request, abandoned=client_gone())
    st.metrics.count_work(result.inputs, result.total_tokens)
    return reply(local.matrix_response(request, result))


@bp.operation("post", "/score", SCORE, local.ScoreResponse, local.ScoreRequest)
@bp.operation("post", "/v1/score", SCORE, local.ScoreResponse, local.ScoreRequest)
def score() -> Response:
    """vLLM's scores of text pairs: cosine with an embedding model, the cross-encoder's score
    with a reranker (``Service.score`` decides)."""
    st = state()
    result = st.service.score(body(local.ScoreRequest).to_request(), client_gone())
    st.metrics.count_work(result.inputs, result.total_tokens)
    return reply(local.score_response(result))


@bp.operation("post", "/tokenize", "The model's token ids for texts (prompt and specials "
              "included)", local.TokenizeResponse, local.TokenizeRequest)
def tokenize() -> Response:
    """The model's own token ids for a text (what the model will see, specials included)."""
    request = body(local.TokenizeRequest)
    texts, single = request.texts()
    model_id, tokens = state().service.tokenize(texts, request.options(), request.model)
    return reply(local.TokenizeResponse(model_id, tokens[0] if single else tokens,
                                        sum(len(t) for t in tokens)))
