"""OpenAI-compatible routes (/v1/embeddings with the Mistral and vLLM extensions, /v1/models):
thin views over the dialect models and the service."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, request

from localembed.dialects import openai
from localembed.dialects.common import decode
from localembed.server.body import client_gone, encode, reply
from localembed.server.errors import APIError
from localembed.server.routes import READ_ERRORS, Blueprint
from localembed.server.state import ServerState, state

bp = Blueprint("openai", __name__)

EMBED = "Create embeddings (OpenAI, Mistral and vLLM fields)"
# Also answered by server.lane, ahead of flask.
EMBEDDING_PATHS = ("/v1/embeddings", "/embeddings")


def embed_body(data: bytes, st: ServerState, abandoned: Callable[[], bool] | None) -> bytes:
    """A /v1/embeddings request body in, the JSON answer out: the flask view's and the
    lane's one implementation."""
    response = openai.create_embeddings(decode(data, openai.EmbeddingRequest), st.service,
                                        st.token_decoder(), abandoned)
    st.metrics.count_work(len(response.data), response.usage.total_tokens)
    return encode(response)


@bp.operation("post", EMBEDDING_PATHS[0], EMBED, openai.EmbeddingResponse,
              openai.EmbeddingRequest)
@bp.operation("post", EMBEDDING_PATHS[1], EMBED, openai.EmbeddingResponse,
              openai.EmbeddingRequest)
def embeddings() -> Response:
    return Response(embed_body(request.get_data(cache=True), state(), client_gone()),
                    mimetype="application/json")


@bp.operation("get", "/v1/models", "Installed models", openai.ModelList, errors=READ_ERRORS)
@bp.operation("get", "/models", "Installed models", openai.ModelList, errors=READ_ERRORS)
def models() -> Response:
    return reply(openai.ModelList([openai.ModelCard.of(m) for m in state().service.models()]))


@bp.operation("get", "/v1/models/<model_id>", "One installed model", openai.ModelCard,
              errors=(401, 403, 404, 500))
def model(model_id: str) -> Response:
    try:
        described = state().service.describe(model_id)
    except LookupError as exc:
        raise APIError(404, f"The model '{model_id}' does not exist or is not installed.",
                       param="model", code="model_not_found") from exc
    return reply(openai.ModelCard.of(described))
