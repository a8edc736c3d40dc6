"""Routes declared once: one decorator registers a view's flask rule and records its OpenAPI
operation (summary, request and response types, error statuses and error shape).

``/openapi.json`` is generated from these records, read from the app's own URL map
(``operations``), so it cannot describe a route the app does not serve; ``undeclared`` names the
served routes that have no record, and ``create_app`` refuses an app with any.

    bp = Blueprint("openai", __name__)

    @bp.operation("post", "/v1/embeddings", "Create embeddings", openai.EmbeddingResponse,
                  openai.EmbeddingRequest)
    def embeddings() -> Response: ...

``request``, ``response`` and ``error`` may each be a tuple of types: a path two dialects share
(``/rerank``) takes and answers either one's shape (``anyOf``). A response given as a string is
the media type of a non-JSON answer (``text/html``, ``text/event-stream``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import flask
from flask import Flask

from localembed.server.errors import error_shape

# The statuses a route can answer with an error: any body (ERRORS), or none (READ_ERRORS).
ERRORS = (400, 401, 403, 404, 409, 413, 500, 503, 504)
READ_ERRORS = (401, 403, 500)

F = TypeVar("F", bound=Callable[..., Any])
_VARIABLE = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>\w+)>")
_PARAMETER_TYPES = {"int": "integer", "float": "number"}


@dataclass(frozen=True)
class Operation:
    """One route: method, flask rule, what it takes and what it answers."""

    method: str  # lower case: "get", "post", "delete"
    rule: str  # flask's spelling: "/v1/models/<model_id>"
    summary: str
    response: Any  # a msgspec type (or tuple), or a media type string for non-JSON answers
    request: Any = None
    errors: tuple[int, ...] = ERRORS
    error: Any = None  # the error type (or tuple); None: the path's dialect's (error_shape)
    query: tuple[tuple[str, str], ...] = ()  # (name, JSON type)
    ok: tuple[int, ...] = (200,)  # the success statuses

    def __post_init__(self) -> None:
        if self.error is None:
            object.__setattr__(self, "error", error_shape(self.rule))

    @property
    def path(self) -> str:
        """OpenAPI's spelling of the rule: "/v1/models/{model_id}"."""
        return _VARIABLE.sub(lambda m: "{" + m["name"] + "}", self.rule)

    @property
    def path_parameters(self) -> list[tuple[str, str]]:
        """(name, JSON type) of each variable in the path, in order."""
        return [(m["name"], _PARAMETER_TYPES.get(m["converter"] or "", "string"))
                for m in _VARIABLE.finditer(self.rule)]


class Blueprint(flask.Blueprint):
    """A flask blueprint whose routes are declared with ``operation`` (documented) or
    ``unlisted`` (served, deliberately left out of the document: static files)."""

    def __init__(self, name: str, import_name: str) -> None:
        super().__init__(name, import_name)
        self.operations: dict[tuple[str, str, str], Operation] = {}  # (endpoint, method, rule)
        self.unlisted_rules: set[tuple[str, str, str]] = set()

    def operation(self, method: str, rule: str, summary: str, response: Any,
                  request: Any = None, *, errors: tuple[int, ...] = ERRORS, error: Any = None,
                  query: tuple[tuple[str, str], ...] = (),
                  ok: tuple[int, ...] = (200,)) -> Callable[[F], F]:
        """Serve the view at ``method rule`` and describe it in the OpenAPI document.

        ``errors``: the statuses it may fail with; ``error``: their body's type (or a tuple of
        types), by default the one its path's dialect answers with (``errors.error_shape``)."""
        record = Operation(method.lower(), rule, summary, response, request, errors, error,
                           query, ok)

        def decorate(view: F) -> F:
            self.operations[(self._endpoint(view), record.method, rule)] = record
            self.add_url_rule(rule, view_func=view, methods=[method.upper()])
            return view

        return decorate

    def unlisted(self, method: str, rule: str) -> Callable[[F], F]:
        """Serve the view at ``method rule``, left out of the OpenAPI document."""

        def decorate(view: F) -> F:
            self.unlisted_rules.add((self._endpoint(view), method.lower(), rule))
            self.add_url_rule(rule, view_func=view, methods=[method.upper()])
            return view

        return decorate

    def _endpoint(self, view: Callable) -> str:
        return f"{self.name}.{view.__name__}"


def _served(app: Flask) -> Iterator[tuple[str, str, str]]:
    """(endpoint, method, rule) of every route the app serves (HEAD and OPTIONS are flask's)."""
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method.lower(), rule.rule


def _declared(app: Flask) -> tuple[dict[tuple[str, str, str], Operation], set]:
    operations: dict[tuple[str, str, str], Operation] = {}
    unlisted: set[tuple[str, str, str]] = set()
    for bp in app.iter_blueprints():
        if isinstance(bp, Blueprint):
            operations.update(bp.operations)
            unlisted |= bp.unlisted_rules
    return operations, unlisted


def operations(app: Flask) -> list[Operation]:
    """The operations of every route the app serves, in the order the app registered them."""
    declared, _ = _declared(app)
    return [declared[key] for key in _served(app) if key in declared]


def undeclared(app: Flask) -> list[str]:
    """"METHOD rule" of each route the app serves that was declared by neither ``operation``
    nor ``unlisted`` (a plain ``bp.get``, or a blueprint mounted under a prefix)."""
    declared, unlisted = _declared(app)
    known = declared.keys() | unlisted
    return [f"{key[1].upper()} {key[2]}" for key in _served(app) if key not in known]
