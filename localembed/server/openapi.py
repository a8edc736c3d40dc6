"""The OpenAPI 3.1 description of every route, served at /openapi.json.

Generated, never written by hand: each view declares its operation where it is registered
(``localembed.server.routes``), and the document lists the operations of the routes the app
serves. Request and response schemas come from the msgspec models that validate the bodies and
build the answers (``localembed.dialects``, the error shapes of ``localembed.server.errors``),
so the document cannot drift from the code. Schemathesis runs against it in CI.
"""

from __future__ import annotations

from typing import Any

import msgspec
from flask import Flask

from localembed import __version__
from localembed.server.routes import Operation, operations


def _content(schema: object, media: str = "application/json") -> dict:
    return {media: {"schema": schema}}


def _types(value: Any) -> tuple:
    """The types of a route's request, response or error (one, or a tuple of them)."""
    if value is None or isinstance(value, str):
        return ()
    return value if isinstance(value, tuple) else (value,)


# One server-sent event of long work's progress: its data is the progress as JSON.
EVENT = {"type": "object", "properties": {"data": {"type": "string"},
                                          "event": {"type": "string"}}}


def _operation(route: Operation, schema: Any) -> dict:
    if route.response == "text/event-stream":
        ok = _content(EVENT, route.response)
    elif isinstance(route.response, str):
        ok = _content({"type": "string"}, route.response)
    else:
        ok = _content(schema(route.response))
    responses = {str(status): {"description": "OK", "content": ok} for status in route.ok}
    for status in route.errors:
        responses[str(status)] = {"description": "Error", "content": _content(schema(route.error))}
    operation: dict = {"summary": route.summary, "responses": responses}
    if route.request is not None:
        operation["requestBody"] = {"required": True, "content": _content(schema(route.request))}
    parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": kind}}
                  for name, kind in route.path_parameters]
    parameters += [{"name": name, "in": "query", "required": False, "schema": {"type": kind}}
                   for name, kind in route.query]
    if parameters:
        operation["parameters"] = parameters
    return operation


def openapi_document(app: Flask) -> dict:
    """The document for ``app``'s routes (built once per app)."""
    cached = app.extensions.get("localembed.openapi")
    if cached is None:
        cached = app.extensions["localembed.openapi"] = _document(operations(app))
    return cached


def _document(routes: list[Operation]) -> dict:
    types = {t for r in routes for v in (r.response, r.request, r.error) for t in _types(v)}
    ordered = sorted(types, key=lambda t: getattr(t, "__name__", str(t)))
    schemas, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}")
    by_type = dict(zip(ordered, schemas, strict=True))

    def schema(value: Any) -> dict:
        found = [by_type[t] for t in _types(value)]
        return found[0] if len(found) == 1 else {"anyOf": found}

    paths: dict[str, dict] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method] = _operation(route, schema)
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
