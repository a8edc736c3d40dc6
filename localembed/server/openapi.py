"""The OpenAPI 3.1 description of every route, served at /openapi.json.

Written by hand next to the routes it describes; the test suite runs schemathesis against it,
so a route that drifts from its description fails CI.
"""

from __future__ import annotations

from localembed import __version__
from localembed.encoding import EMBED_DTYPES, ENCODING_FORMATS, ENDIANNESS, OUTPUT_DTYPES
from localembed.engine.core import TRUNCATE_MODES
from localembed.families import TASKS

STRING = {"type": "string"}
INT = {"type": "integer"}
NUMBER = {"type": "number"}
BOOL = {"type": "boolean"}
TOKEN = {"type": "integer", "minimum": 0}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def array(items: dict, min_items: int = 0) -> dict:
    schema: dict = {"type": "array", "items": items}
    if min_items:
        schema["minItems"] = min_items
    return schema


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


OPENAI_ERRORS = (400, 401, 403, 404, 409, 413, 500, 503, 504)


def responses(ok: dict, errors: tuple[int, ...] = OPENAI_ERRORS, error_schema: str = "Error",
              media: str = "application/json") -> dict:
    out = {"200": {"description": "OK", "content": {media: {"schema": ok}}}}
    for status in errors:
        out[str(status)] = {"description": "Error", "content": json_content(ref(error_schema))}
    return out


def post(summary: str, body: dict, ok: dict, error_schema: str = "Error") -> dict:
    return {"post": {"summary": summary,
                     "requestBody": {"required": True, "content": json_content(body)},
                     "responses": responses(ok, error_schema=error_schema)}}


def get(summary: str, ok: dict, errors: tuple[int, ...] = (401, 403, 500),
        error_schema: str = "Error", media: str = "application/json") -> dict:
    return {"get": {"summary": summary, "responses": responses(ok, errors, error_schema,
                                                               media)}}


EXTENSIONS = {
    "task": {"type": "string", "description": f"Task prompt: {', '.join(TASKS)}."},
    "instruction": {"type": "string", "description": "Custom instruction (Qwen3, Gemma)."},
    "title": {"type": "string", "description": "Document title (EmbeddingGemma)."},
    "normalize": {"type": "boolean", "description": "L2-normalise (default true)."},
    "truncate": {"anyOf": [{"type": "string", "enum": list(TRUNCATE_MODES)}, BOOL],
                 "description": "Long inputs: cut the end (default), the start, or refuse."},
    "dimensions": {"type": "integer", "minimum": 1,
                   "description": "Matryoshka size, for models trained for it."},
}

SCHEMAS = {
    "Error": obj({"error": obj({"message": STRING,
                                "type": STRING,
                                "param": {"type": ["string", "null"]},
                                "code": {"type": ["string", "null"]}},
                               ("message", "type", "param", "code"))}, ("error",)),
    "OllamaError": obj({"error": STRING}, ("error",)),
    "EmbeddingRequest": obj({
        "input": {"anyOf": [STRING, array(STRING, 1), array(TOKEN, 1),
                            array(array(TOKEN), 1)],
                  "description": "Text, texts, token ids, or arrays of token ids."},
        "model": STRING,
        "encoding_format": {"type": "string", "enum": list(ENCODING_FORMATS)},
        "output_dtype": {"type": "string", "enum": list(OUTPUT_DTYPES)},
        "output_dimension": {"type": "integer", "minimum": 1,
                             "description": "Mistral's name for dimensions."},
        "embed_dtype": {"type": "string", "enum": list(EMBED_DTYPES)},
        "endianness": {"type": "string", "enum": list(ENDIANNESS)},
        "truncate_prompt_tokens": {"type": "integer", "minimum": -1},
        "truncation_side": {"type": "string", "enum": ["left", "right"]},
        "use_activation": BOOL,
        "add_special_tokens": BOOL,
        "messages": array(obj({"role": STRING, "content": {"anyOf": [STRING, array(
            obj({"type": STRING, "text": STRING}))]}}, ("role", "content"))),
        "user": STRING,
        **EXTENSIONS,
    }),
    "CohereError": obj({"id": STRING, "message": STRING}, ("message",)),
    "CohereEmbedRequest": obj({
        "model": STRING, "texts": array(STRING, 1),
        "inputs": array(obj({"content": array(obj({"type": STRING, "text": STRING}))})),
        "input_type": {"type": "string", "enum": ["search_query", "search_document",
                                                  "classification", "clustering"]},
        "embedding_types": array({"type": "string",
                                  "enum": [*OUTPUT_DTYPES, "base64"]}),
        "output_dimension": {"type": "integer", "minimum": 1},
        "max_tokens": {"type": "integer", "minimum": 1},
        "truncate": {"type": "string", "enum": ["NONE", "START", "END"]},
    }),
    "CohereEmbedResponse": obj({
        "id": STRING, "embeddings": {"type": "object"}, "texts": array(STRING),
        "meta": {"type": "object"}, "response_type": STRING}, ("id", "embeddings")),
    "ScoreRequest": obj({"model": STRING,
                         "text_1": {"anyOf": [STRING, array(STRING, 1)]},
                         "text_2": {"anyOf": [STRING, array(STRING, 1)]},
                         "dimensions": {"type": "integer", "minimum": 1}},
                        ("text_1", "text_2")),
    "ScoreResponse": obj({"id": STRING, "object": STRING, "created": INT, "model": STRING,
                          "data": array(obj({"index": INT, "object": STRING,
                                             "score": NUMBER})),
                          "usage": {"type": "object"}}, ("data", "model")),
    "EmbeddingResponse": obj({
        "object": {"const": "list"},
        "data": array(obj({"object": {"const": "embedding"}, "index": INT,
                           "embedding": {"anyOf": [array(NUMBER), STRING]}},
                          ("object", "index", "embedding"))),
        "model": STRING,
        "usage": obj({"prompt_tokens": INT, "total_tokens": INT, "completion_tokens": INT},
                     ("prompt_tokens", "total_tokens")),
        "id": STRING,
    }, ("object", "data", "model", "usage")),
    "Model": obj({"id": STRING, "object": {"const": "model"}, "owned_by": STRING,
                  "created": INT, "loaded": BOOL, "default": BOOL, "dimensions": INT,
                  "context_length": INT, "max_tokens": INT, "family": STRING,
                  "max_seq_length": {"type": ["integer", "null"]},
                  "matryoshka_dimensions": {"type": ["array", "null"], "items": INT},
                  "size_bytes": INT},
                 ("id", "object", "owned_by")),
    "SimilarityRequest": obj({"query": STRING, "documents": array(STRING, 1),
                              "model": STRING, **EXTENSIONS}, ("query", "documents")),
    "SimilarityResponse": obj({
        "object": {"const": "list"}, "model": STRING,
        "data": array(obj({"object": STRING, "index": INT, "score": NUMBER,
                           "document": STRING}, ("index", "score"))),
        "usage": obj({"prompt_tokens": INT, "total_tokens": INT}),
        "duration_ms": NUMBER,
    }, ("object", "model", "data")),
    "TokenizeRequest": obj({"content": {"anyOf": [STRING, array(STRING)]}, "model": STRING,
                            "task": STRING, "instruction": STRING,
                            "truncate": {"type": "string", "enum": list(TRUNCATE_MODES)}},
                           ("content",)),
    "TokenizeResponse": obj({"model": STRING,
                             "tokens": {"anyOf": [array(INT), array(array(INT))]},
                             "count": INT}, ("model", "tokens", "count")),
    "Progress": obj({"model": STRING, "status": STRING, "downloaded": INT,
                     "total": {"type": ["integer", "null"]}, "percent": NUMBER,
                     "speed": NUMBER, "eta": {"type": ["number", "null"]},
                     "resumed_from": INT, "error": {"type": ["string", "null"]},
                     "source": {"type": ["string", "null"]},
                     "notice": {"type": ["string", "null"]}},
                    ("model", "status", "downloaded", "percent")),
    "OllamaEmbedRequest": obj({"model": STRING,
                               "input": {"anyOf": [STRING, array(STRING, 1)]},
                               "truncate": BOOL, "dimensions": {"type": "integer", "minimum": 1},
                               "keep_alive": {"anyOf": [STRING, NUMBER]},
                               "options": {"type": "object"}}, ("input",)),
    "OllamaEmbedResponse": obj({"model": STRING, "embeddings": array(array(NUMBER)),
                                "total_duration": INT, "load_duration": INT,
                                "prompt_eval_count": INT}, ("model", "embeddings")),
    "OllamaEmbeddingsRequest": obj({"model": STRING, "prompt": STRING,
                                    "options": {"type": "object"},
                                    "keep_alive": {"anyOf": [STRING, NUMBER]}}, ("prompt",)),
}


def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "localembed", "version": __version__,
                 "description": "A local, OpenAI-compatible embeddings server."},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearerAuth": []}],
        "paths": {
            "/": get("The browser playground", STRING, errors=(403, 500), media="text/html"),
            "/v1/info": get("Server name and pointers", {"type": "object"}),
            "/health": get("Liveness: the default model and backend (no API key needed)",
                           obj({"status": STRING, "model": STRING, "backend": STRING,
                                "version": STRING, "loaded": array(STRING)}, ("status",)),
                           errors=(403, 500)),
            "/metrics": get("Prometheus metrics", STRING, media="text/plain"),
            "/openapi.json": get("This document", {"type": "object"}),
            "/v1/embeddings": post("Create embeddings (OpenAI-compatible)",
                                   ref("EmbeddingRequest"), ref("EmbeddingResponse")),
            "/embeddings": post("Create embeddings (the same, without /v1)",
                                ref("EmbeddingRequest"), ref("EmbeddingResponse")),
            "/models": get("Installed models (the same, without /v1)",
                           obj({"object": STRING, "data": array(ref("Model"))},
                               ("object", "data"))),
            "/v2/embed": post("Create embeddings (Cohere Embed v2)", ref("CohereEmbedRequest"),
                              ref("CohereEmbedResponse"), error_schema="CohereError"),
            "/score": post("Cosine scores of text pairs (vLLM-style)", ref("ScoreRequest"),
                           ref("ScoreResponse")),
            "/v1/score": post("Cosine scores of text pairs (vLLM-style)", ref("ScoreRequest"),
                              ref("ScoreResponse")),
            "/v1/models": get("Installed models",
                              obj({"object": STRING, "data": array(ref("Model"))},
                                  ("object", "data"))),
            "/v1/models/{model_id}": {
                "parameters": [{"name": "model_id", "in": "path", "required": True,
                                "schema": STRING}],
                "get": {"summary": "One installed model",
                        "responses": responses(ref("Model"), (401, 403, 404, 500))},
                "delete": {"summary": "Remove an installed model (?force=true unloads it)",
                           "parameters": [{"name": "force", "in": "query", "required": False,
                                           "schema": BOOL}],
                           "responses": responses(
                               obj({"id": STRING, "object": STRING, "deleted": BOOL}),
                               (401, 403, 404, 409, 500))}},
            "/v1/similarity": post("Rank documents by similarity to a query",
                                   ref("SimilarityRequest"), ref("SimilarityResponse")),
            "/tokenize": post("The model's token ids for texts", ref("TokenizeRequest"),
                              ref("TokenizeResponse")),
            "/v1/catalog": get("Models that can be pulled, and the starter model",
                               obj({"object": STRING, "data": array({"type": "object"})},
                                   ("data",))),
            "/v1/pull": {
                **post("Start downloading a catalog model (202; 200 if already running)",
                       obj({"model": STRING}, ("model",)), ref("Progress")),
                **get("Pulls started in this session",
                      obj({"object": STRING, "data": array(ref("Progress"))}, ("data",))),
            },
            "/v1/pull/{model_id}": {
                "parameters": [{"name": "model_id", "in": "path", "required": True,
                                "schema": STRING}],
                **get("One pull's progress", ref("Progress"), errors=(401, 403, 404, 500)),
                "delete": {"summary": "Cancel a pull (the partial file is kept for resume)",
                           "responses": responses(ref("Progress"), (401, 403, 404, 500))},
            },
            "/v1/pull/{model_id}/events": {
                "get": {"summary": "Server-sent events with the pull's progress",
                        "parameters": [{"name": "model_id", "in": "path", "required": True,
                                        "schema": STRING}],
                        "responses": responses(STRING, (401, 403, 404, 500),
                                               media="text/event-stream")}},
            "/v1/models/{model_id}/load": {
                "post": {"summary": "Load an installed model",
                         "parameters": [{"name": "model_id", "in": "path", "required": True,
                                         "schema": STRING}],
                         "responses": responses(ref("Model"))}},
            "/v1/models/{model_id}/unload": {
                "post": {"summary": "Unload a model (queued requests finish first)",
                         "parameters": [{"name": "model_id", "in": "path", "required": True,
                                         "schema": STRING}],
                         "responses": responses(ref("Model"))}},
            "/v1/default": post("Serve another installed model as the default",
                                obj({"model": STRING, "persist": BOOL}, ("model",)),
                                ref("Model")),
            "/v1/models/import": post("Install a .gguf file or sentence-transformers folder",
                                      obj({"path": STRING, "id": STRING}, ("path",)),
                                      ref("Model")),
            "/api/embed": post("Create embeddings (Ollama-compatible)",
                               ref("OllamaEmbedRequest"), ref("OllamaEmbedResponse"),
                               error_schema="OllamaError"),
            "/api/embeddings": post("Create one embedding (Ollama legacy)",
                                    ref("OllamaEmbeddingsRequest"),
                                    obj({"embedding": array(NUMBER)}, ("embedding",)),
                                    error_schema="OllamaError"),
            "/api/tags": get("Installed models (Ollama-compatible)",
                             obj({"models": array({"type": "object"})}, ("models",)),
                             errors=(401, 403, 500), error_schema="OllamaError"),
            "/api/version": get("Server version (Ollama-compatible)",
                                obj({"version": STRING}, ("version",)),
                                errors=(401, 403, 500), error_schema="OllamaError"),
        },
    }
