"""The flask app factory and the waitress server around it.

``create_app`` builds the whole HTTP API over a ``Registry`` of loaded models; tests pass their
own registry and config, the CLI passes the user's. ``serve`` runs it under waitress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Blueprint, Flask, Response, g, request

from localembed import __version__
from localembed.config.settings import ServerConfig
from localembed.dialects.tokenids import Decoder, local_cl100k
from localembed.server import cohere, manage, ollama, openai, rerank, security, webui
from localembed.server.errors import register_error_handlers
from localembed.server.metrics import Metrics
from localembed.server.openapi import openapi_document
from localembed.server.serving import Server, make_waitress_server
from localembed.server.state import ServerState, state
from localembed.service.registry import Registry

log = logging.getLogger("localembed.server")

misc = Blueprint("misc", __name__)


@misc.get("/v1/info")
def info() -> dict:
    return {"name": "localembed", "version": __version__, "openapi": "/openapi.json",
            "embeddings": "/v1/embeddings", "playground": "/"}


@misc.get("/health")
def health() -> dict:
    registry = state().registry
    engine = registry.default
    return {"status": "ok", "version": __version__, "model": engine.id,
            "backend": engine.backend, "loaded": [e.id for e in registry.loaded()]}


@misc.get("/metrics")
def metrics() -> Response:
    st = state()
    text = st.metrics.render(st.registry.loaded())
    return Response(text, mimetype="text/plain; version=0.0.4")


@misc.get("/openapi.json")
def openapi() -> dict:
    return openapi_document()


def create_app(config: ServerConfig | None = None, registry: Registry | None = None,
               decoder: Decoder | None | Callable[[], Decoder | None] = local_cl100k) -> Flask:
    """The localembed HTTP API.

    ``registry`` defaults to one loading ``config.model``; ``decoder`` reads token-id input
    (tiktoken's cl100k_base when cached locally).
    """
    config = config or ServerConfig()
    if registry is None:
        registry = Registry.from_config(config)
    if callable(decoder) and not hasattr(decoder, "decode"):
        decoder = decoder()
    app = Flask("localembed", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["localembed"] = ServerState(config, registry, decoder, Metrics())
    security.install(app, config)
    register_error_handlers(app)
    app.register_blueprint(misc)
    app.register_blueprint(openai.bp)
    app.register_blueprint(ollama.bp)
    app.register_blueprint(manage.bp)
    app.register_blueprint(cohere.bp)
    app.register_blueprint(rerank.bp)
    app.register_blueprint(webui.bp)

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule else "unmatched"
        state().metrics.observe(rule, response.status_code,
                                time.perf_counter() - g.get("started", time.perf_counter()))
        return response

    return app


def make_server(app: Flask, config: ServerConfig) -> Server:
    """The HTTP server for ``app`` bound to config.host:config.port (port 0 picks a free one);
    ``run()`` serves until ``stop()``, which finishes requests already received first
    (``localembed.server.serving`` says what it adds to waitress)."""
    return make_waitress_server(app, config.host, config.port, config.http_threads,
                                config.max_body_bytes)


def server_url(server) -> str:  # type: ignore[no-untyped-def]
    host = server.effective_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{server.effective_port}"
