"""Reading a request body as its dialect's model, and writing a response model as JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
from flask import Response, request

from localembed.dialects.common import decode

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def body(model: type[T]) -> T:
    """The request's JSON body validated as ``model``; InputError (a 400) otherwise."""
    return decode(request.get_data(cache=True), model)


def client_gone() -> Callable[[], bool] | None:
    """Whether the client has disconnected (waitress tells when its request lookahead is on),
    so that work it abandoned is dropped from the queue instead of computed for nobody."""
    return request.environ.get("waitress.client_disconnected")


def encode(value: object) -> bytes:
    """A response model (or plain data) as JSON, encoded by msgspec in one pass."""
    return _encoder.encode(value)


def reply(value: object, status: int = 200) -> Response:
    return Response(encode(value), status=status, mimetype="application/json")
