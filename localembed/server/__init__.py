"""The HTTP API: flask views over the engine, served by waitress."""

from localembed.server.app import create_app, make_server, server_url

__all__ = ["create_app", "make_server", "server_url"]
