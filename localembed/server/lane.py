"""The embeddings lane: ``POST /v1/embeddings`` answered without flask's per-request machinery.

One short text is a 4-6 ms decode on a small model, and flask's request and app contexts, URL
matching, hooks and response object cost about 0.3 ms of Python more per request (measured:
0.57 ms for a bare WSGI answer over waitress, 0.90 ms through flask). Under 32 concurrent
clients on two cores that Python competes with the decodes for the CPU. So the hottest route
is answered here, by the same rules flask's routes use (``security.refusal`` and
``cors_headers``, the dialect's ``openai.embed_body``, ``errors.api_error`` and the metrics),
read straight off the WSGI environment; every other request, and any request this lane does
not expect (no Host header, no Content-Length), goes to flask unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from localembed.server import openai, security
from localembed.server.errors import api_error, body_too_large, error_json
from localembed.server.state import ServerState

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


def _header(environ: dict) -> Callable[[str], str | None]:
    def get(name: str) -> str | None:
        return environ.get("HTTP_" + name.upper().replace("-", "_"))
    return get


class EmbeddingsLane:
    """A WSGI app in front of flask's (``app.wsgi_app``), so flask's test client and waitress
    both go through it."""

    def __init__(self, app: Flask) -> None:
        self.flask_app: WSGIApp = app.wsgi_app
        self.state: ServerState = app.extensions["localembed"]
        self.app_config = app.config  # its MAX_CONTENT_LENGTH: flask's limit is this one

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        host = environ.get("HTTP_HOST")
        length = environ.get("CONTENT_LENGTH")
        if (path not in openai.EMBEDDING_PATHS or environ.get("REQUEST_METHOD") != "POST"
                or not host or not (length or "").isdigit() or environ.get("QUERY_STRING")):
            return self.flask_app(environ, start_response)
        started = time.perf_counter()
        st = self.state
        header = _header(environ)
        status, headers = 200, security.cors_headers(header("Origin"), st.config)
        try:
            refused = security.refusal("POST", path, host, header, st.config)
            if refused is not None:
                raise refused
            size = int(length)
            if size > self.app_config["MAX_CONTENT_LENGTH"]:
                raise body_too_large()
            body = openai.embed_body(environ["wsgi.input"].read(size), st,
                                     environ.get("waitress.client_disconnected"))
        except Exception as exc:  # noqa: BLE001 (every failure is answered in OpenAI's shape)
            error = api_error(exc, "POST", path)
            status, body = error.status, error_json(path, error)
            headers += list(error.headers.items())
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", headers)
        st.metrics.observe(path, status, time.perf_counter() - started)
        return [body]
