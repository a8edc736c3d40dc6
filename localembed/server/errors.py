"""Errors in each dialect's own shape, for every failure the server can meet.

OpenAI clients parse ``{"error": {"message", "type", "param", "code"}}``; Ollama clients parse
``{"error": "..."}``; Cohere's ``{"id", "message"}``; Hugging Face TEI's ``{"error",
"error_type"}``. Which one a request gets depends on its path, so even a 404 for an unknown
route or a 413 for a huge body is answered in the shape its client understands, and no failure
ever reaches the client as an HTML page or a stack trace. The one path two dialects share,
``/rerank``, is told apart by its body: a view that recognises TEI's marks the request with
``use_error_shape("tei")``.
"""

from __future__ import annotations

import errno
import logging
import uuid

import msgspec
from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from localembed.collections.store import CollectionError, CollectionNotFound
from localembed.engine import EngineClosed, InputError, ModelLoadError, NonFiniteOutput, Overloaded
from localembed.models.store import ModelNotFound, StoreError
from localembed.service.execute import RequestAbandoned, RequestTimeout

log = logging.getLogger("localembed.server")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    499: "invalid_request_error",
}
_CODES = {404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}
_encoder = msgspec.json.Encoder()


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


ErrorShape = Error | OllamaError | CohereError | TEIError


class APIError(Exception):
    """A request failure to report to the client; never logged as a server fault."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, type_: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_ or _TYPES.get(status, "server_error" if status >= 500 else
                                        "invalid_request_error")


def body_too_large() -> APIError:
    """A body over the size limit, refused by flask or, from its Content-Length, by waitress."""
    return APIError(413, "Request body too large", code="request_too_large")


def printable(text: str, limit: int = 200) -> str:
    """User-controlled text made safe for a log line: control characters escaped, so a
    request cannot forge log entries with newlines."""
    return text[:limit].encode("unicode_escape").decode("ascii")


def is_ollama_path(path: str) -> bool:
    return path.startswith("/api/")


def error_shape(path: str) -> type[Error | OllamaError | CohereError]:
    """The error type of the dialect a path belongs to: Ollama's (/api/*), Cohere's (/v2/*),
    else OpenAI's. The answers and the OpenAPI document both follow it."""
    if is_ollama_path(path):
        return OllamaError
    if path.startswith("/v2/"):
        return CohereError
    return Error


# TEI's error_type for a status: its clients read the message and the type.
_TEI_TYPES = {503: "Overloaded", 429: "Overloaded"}


def use_error_shape(shape: str) -> None:
    """Answer this request's errors in ``shape`` ("tei") rather than its path's."""
    g.error_shape = shape


def error_body(path: str, error: APIError, shape: str | None = None) -> ErrorShape:
    """The error in the shape the dialect of ``path`` (or the request's ``shape``) uses."""
    if shape == "tei":
        kind = _TEI_TYPES.get(error.status, "Backend" if error.status >= 500 else "Validation")
        return TEIError(error.message, kind)
    kind = error_shape(path)
    if kind is OllamaError:
        return OllamaError(error.message)
    if kind is CohereError:
        return CohereError(str(uuid.uuid4()), error.message)
    return Error(ErrorBody(error.message, error.type, error.param, error.code))


def error_json(path: str, error: APIError, shape: str | None = None) -> bytes:
    return _encoder.encode(error_body(path, error, shape))


def error_response(error: APIError) -> Response:
    body = error_json(request.path, error, g.get("error_shape"))
    response = Response(body, status=error.status, mimetype="application/json")
    response.headers.update(error.headers)
    return response


def _from_http(exc: HTTPException) -> APIError:
    status = exc.code or 500
    if status == 404:
        message = f"Unknown request URL: {request.method} {request.path}"
    elif status == 405:
        message = f"Method {request.method} is not allowed for {request.path}"
    elif status == 413:
        return body_too_large()
    else:
        message = exc.description or exc.name
    return APIError(status, message, code=_CODES.get(status))


def from_core(exc: Exception) -> APIError:
    """The HTTP status and code of a core failure: the one place they are decided."""
    if isinstance(exc, Overloaded):
        return APIError(503, f"{exc}.", code="overloaded", type_="server_error",
                        headers={"Retry-After": str(int(exc.retry_after + 0.999))})
    if isinstance(exc, RequestAbandoned):
        return APIError(499, "The client closed the request.", code="client_closed_request")
    if isinstance(exc, RequestTimeout):
        return APIError(504, str(exc), code="timeout", type_="server_error")
    if isinstance(exc, InputError):
        return APIError(400, str(exc), param=exc.param, code=exc.code)
    if isinstance(exc, ModelNotFound):
        return APIError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, ModelLoadError):
        return APIError(500, f"The model could not be loaded: {exc}", param="model",
                        code="model_load_failed", type_="server_error")
    if isinstance(exc, NonFiniteOutput):
        return APIError(500, f"The model failed: {exc}.", code="model_output_invalid",
                        type_="server_error")
    if isinstance(exc, EngineClosed):
        return APIError(503, f"{exc}; retry the request.", code="model_unloaded",
                        type_="server_error")
    if isinstance(exc, StoreError):
        return APIError(409, str(exc), param="model", code="model_in_use")
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):  # disk: what, where
        where = f" ({exc.filename})" if exc.filename else ""
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return APIError(507, f"Not enough disk space{where}: {reason}. Nothing was changed.",
                            code="insufficient_storage", type_="server_error")
        return APIError(500, f"A file operation failed{where}: {reason}. Nothing was changed.",
                        code="disk_error", type_="server_error")
    # After OSError: a collection's full disk (CollectionDiskError) is a 507 like any other.
    if isinstance(exc, CollectionNotFound):
        return APIError(404, str(exc), param="name", code="collection_not_found")
    if isinstance(exc, CollectionError):
        return APIError(409, str(exc), param="name", code="collection_conflict")
    return APIError(500, f"Internal server error: {type(exc).__name__}", code="internal_error",
                    type_="server_error")


# The core's failures, each answered by ``from_core``.
CORE_ERRORS = (Overloaded, RequestAbandoned, RequestTimeout, InputError, ModelNotFound,
               ModelLoadError, NonFiniteOutput, EngineClosed, StoreError, CollectionError,
               OSError)


def api_error(exc: Exception, method: str, path: str) -> APIError:
    """What any failure of a request tells its client: the one mapping for flask's handler
    and the embeddings lane (server.lane). A failure nobody foresaw is logged with its
    traceback and answered without it."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, CORE_ERRORS):
        return from_core(exc)
    log.error("internal error on %s %s", method, printable(path), exc_info=exc)
    return APIError(500, f"Internal server error: {type(exc).__name__}",
                    code="internal_error", type_="server_error")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = error_response(_from_http(exc))
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def failed(exc: Exception) -> Response:
        return error_response(api_error(exc, request.method, request.path))
