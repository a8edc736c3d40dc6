"""Request guards: DNS-rebinding protection, CORS and the optional API key.

A server on 127.0.0.1 is still reachable from any web page the user visits: a page can POST to
localhost (CSRF) or rebind its own hostname to 127.0.0.1 (DNS rebinding). So requests must name
a local Host (or a configured one), requests from foreign browser origins are refused outright
rather than merely left without CORS headers, and an API key can be required on top.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, request

from localembed.config.network import is_loopback, is_wildcard, machine_names, names_this_server
from localembed.config.settings import ServerConfig
from localembed.server.errors import APIError

# Liveness checks and the playground's static files (no data in them) never need the key;
# the playground asks for it and sends it with every API call.
OPEN_PATHS = ("/health", "/", "/favicon.ico")
OPEN_PREFIXES = ("/ui/",)
# Routes that change what is installed or served: a browser may call them only from the
# playground's own origin, never from another local page (another dev server, say).
MANAGEMENT_PREFIXES = ("/v1/pull", "/v1/default", "/v1/models/")


def is_management(method: str, path: str) -> bool:
    """Installing, switching or removing models; removing a collection, or indexing a path on
    this machine into one (it reads the user's files). Searching and feeding documents are an
    app's ordinary calls."""
    if path.startswith(("/v1/collections/", "/v1/vector_stores/")):
        return method == "DELETE" or (method == "POST" and path.endswith("/index"))
    return method in ("POST", "DELETE") and path.startswith(MANAGEMENT_PREFIXES)


def same_origin(origin: str, host_header: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host_header.lower()


def _hostname(host_header: str) -> str:
    """The host part of a Host header: 'a:1' -> 'a', '[::1]:1' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def names_server(host_header: str, config: ServerConfig) -> bool:
    """The Host names this server: a loopback name or address, a name or address it is bound
    to and reachable at (every interface of this machine for a wildcard bind), or an
    --allowed-host given by name."""
    name = _hostname(host_header)
    return (is_loopback(name) or name in {h.lower() for h in config.allowed_hosts}
            or names_this_server(name, config.host))


def host_allowed(host_header: str, config: ServerConfig) -> bool:
    return "*" in config.allowed_hosts or names_server(host_header, config)


def own_page(origin: str, host_header: str, config: ServerConfig) -> bool:
    """A page this server served (the playground opened at a LAN address, say): the same
    origin as the request, at a Host that names the server. ``--allowed-host '*'`` does not
    make every Host a name of the server, or a rebinding page would count as its own."""
    return same_origin(origin, host_header) and names_server(host_header, config)


def origin_allowed(origin: str, config: ServerConfig) -> bool:
    if origin in config.cors_origins or "*" in config.cors_origins:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")


def api_key(header: Callable[[str], str | None]) -> str | None:
    """The key a request carries: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    auth = header("Authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return header("X-API-Key")


def refusal(method: str, path: str, host: str, header: Callable[[str], str | None],
            config: ServerConfig) -> APIError | None:
    """Why a request must be refused (a foreign Host or Origin, a missing key), or None: the
    one rule for flask's routes and the embeddings lane (server.lane), which reads the same
    headers off the WSGI environment."""
    if not host_allowed(host, config):
        return APIError(403, f"Host '{host}' is not allowed; add it with --allowed-host to "
                             "serve it.", code="host_not_allowed")
    origin = header("Origin")
    if origin and not (origin_allowed(origin, config) or own_page(origin, host, config)):
        return APIError(403, f"Origin '{origin}' is not allowed; add it with --cors-origin to "
                             "serve it.", code="origin_not_allowed")
    if origin and is_management(method, path) and not same_origin(origin, host):
        return APIError(403, "Model management is only allowed from the playground's own "
                             "page.", code="origin_not_allowed")
    if method == "OPTIONS" and origin:  # a CORS preflight: answered before the key is asked
        return None
    if config.api_key and not (path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)):
        given = api_key(header)
        if given is None or not hmac.compare_digest(given.encode(), config.api_key.encode()):
            return APIError(401, "Missing or invalid API key: send "
                                 "'Authorization: Bearer <key>'.", code="invalid_api_key")
    return None


def cors_headers(origin: str | None, config: ServerConfig) -> list[tuple[str, str]]:
    """The headers every answer carries: CORS for an allowed origin, and ``Vary: Origin``."""
    headers = [("Vary", "Origin")]
    if origin and origin_allowed(origin, config):
        headers += [("Access-Control-Allow-Origin", origin),
                    ("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS"),
                    ("Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Key"),
                    ("Access-Control-Max-Age", "600")]
    return headers


def install(app: Flask, config: ServerConfig) -> None:
    if is_wildcard(config.host):
        machine_names()  # the FQDN may cost a DNS lookup: at start, not in a first request

    @app.before_request
    def guard() -> Response | None:
        refused = refusal(request.method, request.path, request.host, request.headers.get,
                          config)
        if refused is not None:
            raise refused
        if request.method == "OPTIONS" and request.headers.get("Origin"):
            return Response(status=204)  # CORS preflight: answered here
        return None

    @app.after_request
    def cors(response: Response) -> Response:
        for name, value in cors_headers(request.headers.get("Origin"), config):
            if name == "Vary":
                response.headers.add(name, value)
            else:
                response.headers[name] = value
        return response
