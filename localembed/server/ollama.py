"""Ollama-compatible routes for tools that speak Ollama's API (/api/embed, /api/tags, ...)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from flask import Blueprint, Response

from localembed import __version__
from localembed.dialects import ollama
from localembed.models.store import describe, installed
from localembed.server.body import body, client_gone, reply
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


@bp.post("/api/embed")
def embed() -> Response:
    request = body(ollama.OllamaEmbedRequest)
    result, started, loaded = _embed(request, request.to_request())
    return reply(ollama.OllamaEmbedResponse(
        model=request.model or result.model, embeddings=result.vectors.tolist(),
        total_duration=int((time.perf_counter() - started) * 1e9),
        load_duration=int((loaded - started) * 1e9), prompt_eval_count=result.total_tokens))


@bp.post("/api/embeddings")
def embeddings() -> Response:
    """Ollama's legacy single-prompt form."""
    request = body(ollama.OllamaEmbeddingsRequest)
    result, _, _ = _embed(request, request.to_request())
    return reply(ollama.OllamaEmbeddingsResponse(result.vectors[0].tolist()))


@bp.get("/api/tags")
def tags() -> Response:
    models = []
    for model_id in installed():
        try:
            d = describe(model_id)
        except LookupError:
            continue
        if "error" in d:
            continue
        modified = datetime.fromtimestamp(d["modified"], tz=timezone.utc)
        models.append(ollama.OllamaTag(
            name=f"{model_id}:latest", model=f"{model_id}:latest",
            modified_at=modified.isoformat(), size=d["size_bytes"], digest="",
            details=ollama.OllamaTagDetails("gguf", d["architecture"], [d["architecture"]], "",
                                      d["quantization"])))
    return reply(ollama.OllamaTags(models))


@bp.get("/api/version")
def version() -> Response:
    return reply(ollama.OllamaVersion(__version__))
