"""Ollama-compatible routes for tools that speak Ollama's API (/api/embed, /api/tags, ...)."""

from __future__ import annotations

import time

from flask import Response

from localembed import __version__
from localembed.dialects import ollama
from localembed.server.body import body, client_gone, reply
from localembed.server.routes import READ_ERRORS, Blueprint
from localembed.server.state import state

bp = Blueprint("ollama", __name__)


def _embed(request: ollama.OllamaFields, core) -> tuple:  # type: ignore[no-untyped-def]
    """Run one Ollama request, then apply its keep_alive to the model it used."""
    st = state()
    keep_alive = request.keep_alive_seconds()
    started = time.perf_counter()
    engine = st.service.engine(request.model)
    loaded = time.perf_counter()
    result = st.service.embed(core, engine, client_gone())
    st.metrics.count_work(len(result.tokens), result.total_tokens)
    if keep_alive is not None:
        st.registry.keep(result.model, keep_alive)
    return result, started, loaded


@bp.operation("post", "/api/embed", "Create embeddings (Ollama)", ollama.OllamaEmbedResponse,
              ollama.OllamaEmbedRequest)
def embed() -> Response:
    request = body(ollama.OllamaEmbedRequest)
    result, started, loaded = _embed(request, request.to_request())
    return reply(ollama.OllamaEmbedResponse(
        model=request.model or result.model, embeddings=result.vectors.tolist(),
        total_duration=int((time.perf_counter() - started) * 1e9),
        load_duration=int((loaded - started) * 1e9), prompt_eval_count=result.total_tokens))


@bp.operation("post", "/api/embeddings", "Create one embedding (Ollama's legacy form)",
              ollama.OllamaEmbeddingsResponse, ollama.OllamaEmbeddingsRequest)
def embeddings() -> Response:
    """Ollama's legacy single-prompt form."""
    request = body(ollama.OllamaEmbeddingsRequest)
    result, _, _ = _embed(request, request.to_request())
    return reply(ollama.OllamaEmbeddingsResponse(result.vectors[0].tolist()))


@bp.operation("get", "/api/tags", "Installed models (Ollama)", ollama.OllamaTags,
              errors=READ_ERRORS)
def tags() -> Response:
    """Installed models whose files can be served (a loaded model whose file is gone, or an
    unreadable file, is not Ollama's to list)."""
    models = [ollama.OllamaTag.of(m) for m in state().service.models()
              if m.error is None and not m.missing]
    return reply(ollama.OllamaTags(models))


@bp.operation("get", "/api/version", "Server version (Ollama)", ollama.OllamaVersion,
              errors=READ_ERRORS)
def version() -> Response:
    return reply(ollama.OllamaVersion(__version__))
