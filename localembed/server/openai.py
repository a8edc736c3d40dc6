"""OpenAI-compatible routes (/v1/embeddings with the Mistral and vLLM extensions, /v1/models):
thin views over the dialect models and the service."""

from __future__ import annotations

from flask import Response

from localembed.dialects import openai
from localembed.server.body import body, client_gone, reply
from localembed.server.errors import APIError
from localembed.server.routes import READ_ERRORS, Blueprint
from localembed.server.state import state

bp = Blueprint("openai", __name__)

EMBED = "Create embeddings (OpenAI, Mistral and vLLM fields)"


@bp.operation("post", "/v1/embeddings", EMBED, openai.EmbeddingResponse, openai.EmbeddingRequest)
@bp.operation("post", "/embeddings", EMBED, openai.EmbeddingResponse, openai.EmbeddingRequest)
def embeddings() -> Response:
    st = state()
    response = openai.create_embeddings(body(openai.EmbeddingRequest), st.service,
                                        st.token_decoder(), client_gone())
    st.metrics.count_work(len(response.data), response.usage.total_tokens)
    return reply(response)


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
