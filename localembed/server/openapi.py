"""The OpenAPI 3.1 description of every route, served at /openapi.json.

Generated: request and response schemas come from the same msgspec models that validate the
bodies and build the answers (``localembed.dialects``), and a test checks that every flask route
appears here, so the document cannot drift from the code. Schemathesis runs against it in CI.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec

from localembed import __version__
from localembed.dialects import cohere, local, manage, ollama, openai, rerank


class Error(msgspec.Struct):
    """OpenAI's error object (every route but /api/* and /v2/*)."""

    error: ErrorBody


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class OllamaError(msgspec.Struct):
    error: str


class CohereError(msgspec.Struct):
    id: str
    message: str


class TEIError(msgspec.Struct):
    """Hugging Face TEI's error (/rerank with a TEI body)."""

    error: str
    error_type: str


class Health(msgspec.Struct):
    status: str
    version: str
    model: str
    backend: str
    loaded: list[str]


class Info(msgspec.Struct):
    name: str
    version: str
    openapi: str
    embeddings: str
    playground: str


ERRORS = (400, 401, 403, 404, 409, 413, 500, 503, 504)
READ_ERRORS = (401, 403, 500)


@dataclass(frozen=True)
class Route:
    """One operation: method, path, what it takes and what it answers.

    ``request``, ``response`` and ``error`` may be a tuple of types: a path two dialects share
    (``/rerank``) takes and answers either one's shape (``anyOf``).
    """

    method: str
    path: str
    summary: str
    response: Any  # a msgspec type (or tuple), or a media type string for non-JSON answers
    request: Any = None
    errors: tuple[int, ...] = ERRORS
    error: Any = Error
    query: tuple[tuple[str, str], ...] = ()  # (name, JSON type)

    @property
    def status(self) -> str:
        return "202" if self.path == "/v1/pull" and self.method == "post" else "200"


def _routes() -> list[Route]:
    mid = "/v1/models/{model_id}"
    routes = [
        Route("get", "/", "The browser playground", "text/html", errors=(403, 500)),
        Route("get", "/v1/info", "Server name and pointers", Info, errors=READ_ERRORS),
        Route("get", "/health", "Liveness: default model and backend (no API key needed)",
              Health, errors=(403, 500)),
        Route("get", "/metrics", "Prometheus metrics", "text/plain", errors=READ_ERRORS),
        Route("get", "/openapi.json", "This document", dict, errors=READ_ERRORS),
        Route("post", "/tokenize", "The model's token ids for texts (prompt and specials "
              "included)", local.TokenizeResponse, local.TokenizeRequest),
        Route("post", "/v1/similarity", "Rank documents by similarity to a query",
              local.SimilarityResponse, local.SimilarityRequest),
        Route("post", "/v1/similarity/matrix", "The cosine of every text with every text",
              local.MatrixResponse, local.MatrixRequest),
        Route("get", "/v1/catalog", "Models that can be pulled, and the starter model",
              manage.Catalog, errors=READ_ERRORS),
        Route("post", "/v1/pull", "Start downloading a catalog model (202; 200 if already "
              "running)", manage.Progress, manage.PullBody),
        Route("get", "/v1/pull", "Pulls started in this session", manage.ProgressList,
              errors=READ_ERRORS),
        Route("get", "/v1/pull/{model_id}", "One pull's progress", manage.Progress,
              errors=(401, 403, 404, 500)),
        Route("delete", "/v1/pull/{model_id}", "Cancel a pull (the partial file is kept)",
              manage.Progress, errors=(401, 403, 404, 500)),
        Route("get", "/v1/pull/{model_id}/events", "Server-sent events with the pull's "
              "progress until it ends", "text/event-stream", errors=(401, 403, 404, 500)),
        Route("get", mid, "One installed model", openai.ModelCard, errors=(401, 403, 404, 500)),
        Route("delete", mid, "Remove an installed model (force=true unloads it first)",
              manage.Deleted, errors=(401, 403, 404, 409, 500), query=(("force", "boolean"),)),
        Route("post", mid + "/load", "Load an installed model", openai.ModelCard),
        Route("post", mid + "/unload", "Unload a model (queued requests finish first)",
              openai.ModelCard),
        Route("post", "/v1/default", "Serve another installed model as the default",
              openai.ModelCard, manage.DefaultBody),
        Route("post", "/v1/models/import", "Install a .gguf file or sentence-transformers "
              "folder from a path on this machine", openai.ModelCard, manage.ImportBody),
        Route("post", "/api/embed", "Create embeddings (Ollama)", ollama.OllamaEmbedResponse,
              ollama.OllamaEmbedRequest, error=OllamaError),
        Route("post", "/api/embeddings", "Create one embedding (Ollama's legacy form)",
              ollama.OllamaEmbeddingsResponse, ollama.OllamaEmbeddingsRequest,
              error=OllamaError),
        Route("get", "/api/tags", "Installed models (Ollama)", ollama.OllamaTags,
              errors=READ_ERRORS, error=OllamaError),
        Route("get", "/api/version", "Server version (Ollama)", ollama.OllamaVersion,
              errors=READ_ERRORS, error=OllamaError),
        Route("post", "/v2/embed", "Create embeddings (Cohere Embed v2)",
              cohere.CohereEmbedResponse, cohere.CohereEmbedRequest, error=CohereError),
    ]
    for prefix in ("/v1", ""):
        routes += [
            Route("post", f"{prefix}/embeddings", "Create embeddings (OpenAI, Mistral and vLLM "
                  "fields)", openai.EmbeddingResponse, openai.EmbeddingRequest),
            Route("get", f"{prefix}/models", "Installed models", openai.ModelList,
                  errors=READ_ERRORS),
        ]
    for path in ("/score", "/v1/score"):
        routes.append(Route("post", path, "Scores of text pairs (vLLM): cosine with an "
                            "embedding model, the cross-encoder's with a reranker",
                            local.ScoreResponse, local.ScoreRequest))
    routes += [
        Route("post", "/v1/rerank", "Rank documents with a reranker (Cohere, Jina)",
              rerank.RerankResponse, rerank.RerankRequest),
        Route("post", "/v2/rerank", "Rank documents with a reranker (Cohere v2)",
              rerank.RerankResponse, rerank.RerankRequest, error=CohereError),
        Route("post", "/rerank", "Rank documents with a reranker: Jina's and Cohere's body "
              "(documents) or Hugging Face TEI's (texts), each answered in its own shape",
              (rerank.RerankResponse, rerank.TEIRerankResponse),
              (rerank.RerankRequest, rerank.TEIRerankRequest), error=(Error, TEIError)),
    ]
    return routes


ROUTES = _routes()


def _content(schema: object, media: str = "application/json") -> dict:
    return {media: {"schema": schema}}


def _types(value: Any) -> tuple:
    """The types of a route's request, response or error (one, or a tuple of them)."""
    if value is None or isinstance(value, str):
        return ()
    return value if isinstance(value, tuple) else (value,)


@cache
def openapi_document() -> dict:
    types = {t for r in ROUTES for v in (r.response, r.request, r.error) for t in _types(v)}
    ordered = sorted(types, key=lambda t: getattr(t, "__name__", str(t)))
    schemas, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}")
    by_type = dict(zip(ordered, schemas, strict=True))

    def schema(value: Any) -> dict:
        found = [by_type[t] for t in _types(value)]
        return found[0] if len(found) == 1 else {"anyOf": found}

    paths: dict[str, dict] = {}
    for route in ROUTES:
        if isinstance(route.response, str):
            ok = _content({"type": "string"}, route.response)
        else:
            ok = _content(schema(route.response))
        responses = {route.status: {"description": "OK", "content": ok}}
        for status in route.errors:
            responses[str(status)] = {"description": "Error",
                                      "content": _content(schema(route.error))}
        operation: dict = {"summary": route.summary, "responses": responses}
        if route.request is not None:
            operation["requestBody"] = {"required": True,
                                        "content": _content(schema(route.request))}
        parameters = [{"name": name, "in": "query", "required": False,
                       "schema": {"type": kind}} for name, kind in route.query]
        if "{model_id}" in route.path:
            parameters.insert(0, {"name": "model_id", "in": "path", "required": True,
                                  "schema": {"type": "string"}})
        if parameters:
            operation["parameters"] = parameters
        paths.setdefault(route.path, {})[route.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "localembed", "version": __version__,
                 "description": "A local, OpenAI-compatible embeddings and reranking "
                                "server."},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearerAuth": []}],
        "paths": paths,
    }
