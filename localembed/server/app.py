"""The flask app factory and the waitress server around it.

``create_app`` builds the whole HTTP API over a ``Registry`` of loaded models; tests pass their
own registry and config, the CLI passes the user's. ``serve`` runs it under waitress.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec
from flask import Flask, Response, current_app, g, request

from localembed import __version__
from localembed.config.network import url_host
from localembed.config.settings import ServerConfig
from localembed.dialects.tokenids import Decoder, local_cl100k
from localembed.engine.families import TASK_LABELS
from localembed.server import (
    cohere,
    collections,
    local,
    manage,
    ollama,
    openai,
    rerank,
    security,
    vector_stores,
    webui,
)
from localembed.server.body import reply
from localembed.server.errors import register_error_handlers
from localembed.server.lane import EmbeddingsLane
from localembed.server.metrics import Metrics
from localembed.server.openapi import openapi_document
from localembed.server.routes import READ_ERRORS, Blueprint, undeclared
from localembed.server.serving import Server, make_waitress_server
from localembed.server.state import ServerState, state
from localembed.service.registry import Registry

log = logging.getLogger("localembed.server")

misc = Blueprint("misc", __name__)


class Task(msgspec.Struct):
    """A task the embedding routes take (``"task"``), with what a person reads for it."""

    id: str
    label: str


class Info(msgspec.Struct):
    name: str
    version: str
    openapi: str
    embeddings: str
    playground: str
    tasks: list[Task]


class Health(msgspec.Struct):
    status: str
    version: str
    model: str
    backend: str
    loaded: list[str]


@misc.operation("get", "/v1/info", "Server name, pointers and the tasks it knows", Info,
                errors=READ_ERRORS)
def info() -> Response:
    tasks = [Task(task, label) for task, label in TASK_LABELS.items()]
    return reply(Info("localembed", __version__, "/openapi.json", "/v1/embeddings", "/", tasks))


@misc.operation("get", "/health", "Liveness: default model and backend (no API key needed); "
                "503 with status \"loading\" while the model loads (requests wait for it), "
                "\"failed\" if it could not be loaded", Health, errors=(403, 500),
                ok=(200, 503))
def health() -> Response:
    registry = state().registry
    loaded = [e.id for e in registry.loaded()]
    if not registry.ready:
        status = "failed" if registry.failure is not None else "loading"
        response = reply(Health(status, __version__, registry.default_id, "", loaded), 503)
        response.headers["Retry-After"] = "1"
        return response
    engine = registry.default
    return reply(Health("ok", __version__, engine.id, engine.backend, loaded))


@misc.operation("get", "/metrics", "Prometheus metrics", "text/plain", errors=READ_ERRORS)
def metrics() -> Response:
    st = state()
    text = st.metrics.render(st.registry.loaded(), st.registry.cache)
    return Response(text, mimetype="text/plain; version=0.0.4")


@misc.operation("get", "/openapi.json", "This document", dict, errors=READ_ERRORS)
def openapi() -> Response:
    return reply(openapi_document(current_app))


def create_app(config: ServerConfig | None = None, registry: Registry | None = None,
               decoder: Decoder | None | Callable[[], Decoder | None] = local_cl100k) -> Flask:
    """The localembed HTTP API.

    ``registry`` defaults to one loading ``config.model``; ``decoder`` reads token-id input
    (tiktoken's cl100k_base when cached locally).
    """
    config = config or ServerConfig()
    if registry is None:
        registry = Registry.from_config(config)
    app = Flask("localembed", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["localembed"] = ServerState(config, registry, decoder, Metrics())
    security.install(app, config)
    register_error_handlers(app)
    app.register_blueprint(misc)
    app.register_blueprint(openai.bp)
    app.register_blueprint(local.bp)
    app.register_blueprint(ollama.bp)
    app.register_blueprint(manage.bp)
    app.register_blueprint(cohere.bp)
    app.register_blueprint(rerank.bp)
    app.register_blueprint(collections.bp)
    app.register_blueprint(vector_stores.bp)
    app.register_blueprint(webui.bp)
    app.wsgi_app = EmbeddingsLane(app)  # type: ignore[method-assign]
    missing = undeclared(app)
    if missing:  # each route is declared once, with its operation (server/routes.py)
        raise RuntimeError(f"routes served but not declared: {', '.join(missing)}")

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
    return f"http://{url_host(server.effective_host)}:{server.effective_port}"
