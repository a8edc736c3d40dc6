"""Serves the browser playground (webui/) from the same app as the API it calls."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from flask import Response, abort, send_file

from localembed.server.routes import Blueprint

bp = Blueprint("webui", __name__)

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Scripts only from this server: pasted HTML can never run, even if a bug rendered it.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")


def webui_dir() -> Path:
    return Path(str(resources.files("localembed.webui")))


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _send(name: str) -> Response:
    if not _NAME.match(name):  # also keeps NUL and newlines out of paths and logs
        abort(404)
    path = (webui_dir() / name).resolve()
    if path.parent != webui_dir().resolve() or path.suffix not in TYPES or not path.is_file():
        abort(404)
    response = send_file(path, mimetype=TYPES[path.suffix], max_age=0)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.operation("get", "/", "The browser playground", "text/html", errors=(403, 500))
def index() -> Response:
    return _send("index.html")


@bp.unlisted("get", "/ui/<name>")  # static files, no API
def asset(name: str) -> Response:
    return _send(name)


@bp.unlisted("get", "/favicon.ico")
def favicon() -> Response:
    return _send("favicon.svg")
