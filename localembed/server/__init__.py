"""The HTTP API: flask views over the dialects and the service, served by waitress; each route
is declared once (routes.py), for flask and the OpenAPI document."""

from localembed.server.app import create_app, make_server, server_url

__all__ = ["create_app", "make_server", "server_url"]
