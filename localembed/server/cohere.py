"""Cohere Embed v2 (`POST /v2/embed`) over the core service."""

from __future__ import annotations

from flask import Response

from localembed.dialects import cohere
from localembed.server.body import body, client_gone, reply
from localembed.server.routes import Blueprint
from localembed.server.state import state

bp = Blueprint("cohere", __name__)


@bp.operation("post", "/v2/embed", "Create embeddings (Cohere Embed v2)",
              cohere.CohereEmbedResponse, cohere.CohereEmbedRequest)
def embed() -> Response:
    st = state()
    request = body(cohere.CohereEmbedRequest)
    core = request.to_request()
    result = st.service.embed(core, abandoned=client_gone())
    st.metrics.count_work(len(result.tokens), result.total_tokens)
    return reply(cohere.embed_response(request, list(core.inputs), result))  # type: ignore[arg-type]
