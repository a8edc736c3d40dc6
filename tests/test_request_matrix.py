"""Every route that takes inputs, against every limit and every class of bad input: the right
status, in the dialect's own error shape, with the offending field named where the dialect
has a place for it. Limits are checked once in the core, so each route gets all of them."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from localembed.config.settings import ServerConfig

MAX_INPUTS = 4
MAX_TOKENS = 300
MAX_BODY = 64 * 1024
LONG = "word " * 2000  # past the 512-token context
MEDIUM = "word " * 100  # ~100 tokens: four of them exceed MAX_TOKENS


@dataclass(frozen=True)
class Route:
    path: str
    field: str  # the dialect's name for the inputs
    build: Callable[[list[str]], dict]
    shape: str  # openai, cohere or ollama
    no_truncation: dict | None = None  # the fields that turn truncation off
    bad_enum: tuple[str, object] | None = None
    many: bool = True  # takes a list of inputs
    extra: dict = field(default_factory=dict)


ROUTES = [
    Route("/v1/embeddings", "input", lambda t: {"input": t}, "openai", {"truncate": "none"},
          ("encoding_format", "hex")),
    Route("/embeddings", "input", lambda t: {"input": t}, "openai", {"truncate": "none"},
          ("output_dtype", "int4")),
    Route("/v2/embed", "texts", lambda t: {"texts": t}, "cohere", {"truncate": "NONE"},
          ("input_type", "poems")),
    Route("/api/embed", "input", lambda t: {"input": t}, "ollama", {"truncate": False}),
    Route("/api/embeddings", "prompt", lambda t: {"prompt": t[0]}, "ollama", many=False),
    Route("/v1/similarity", "documents", lambda t: {"query": "q", "documents": t}, "openai",
          {"truncate": "none"}, ("truncate", "middle")),
    Route("/score", "text_2", lambda t: {"text_1": "q", "text_2": t}, "openai"),
    Route("/v1/score", "text_2", lambda t: {"text_1": "q", "text_2": t}, "openai"),
    Route("/tokenize", "content", lambda t: {"content": t}, "openai", {"truncate": "none"},
          ("truncate", "middle")),
]
IDS = [r.path for r in ROUTES]


@pytest.fixture(scope="module")
def limited(app_factory):
    return app_factory(ServerConfig(max_inputs=MAX_INPUTS, max_request_tokens=MAX_TOKENS,
                                    max_body_bytes=MAX_BODY))


def check(response, status: int, route: Route, param: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    if route.shape == "ollama":
        assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    elif route.shape == "cohere":
        assert set(body) == {"id", "message"} and body["message"]
    else:
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        if param is not None:
            assert error["param"] == param, error


def post(client, route: Route, body: object):  # type: ignore[no-untyped-def]
    return client.post(route.path, json=body)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_valid_request_is_served(limited, route: Route) -> None:
    response = post(limited, route, route.build(["a", "b"]))
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_missing_inputs_are_a_400(limited, route: Route) -> None:
    body = route.build(["a"])
    del body[route.field]
    check(post(limited, route, body), 400, route, route.field)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_inputs_of_the_wrong_type_are_a_400(limited, route: Route) -> None:
    check(post(limited, route, {**route.build(["a"]), route.field: {"not": "text"}}), 400,
          route, route.field)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.many], ids=[r.path for r in ROUTES
                                                                      if r.many])
def test_an_empty_input_list_is_a_400(limited, route: Route) -> None:
    check(post(limited, route, route.build([])), 400, route, route.field)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.many], ids=[r.path for r in ROUTES
                                                                      if r.many])
def test_more_inputs_than_the_limit_are_a_400(limited, route: Route) -> None:
    assert post(limited, route, route.build(["a"] * MAX_INPUTS)).status_code == 200
    check(post(limited, route, route.build(["a"] * (MAX_INPUTS + 1))), 400, route, route.field)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.many and r.path != "/tokenize"],
                         ids=[r.path for r in ROUTES if r.many and r.path != "/tokenize"])
def test_more_tokens_than_the_request_limit_are_a_400(limited, route: Route) -> None:
    check(post(limited, route, route.build([MEDIUM] * MAX_INPUTS)), 400, route)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.no_truncation],
                         ids=[r.path for r in ROUTES if r.no_truncation])
def test_a_text_too_long_with_truncation_off_is_a_400(limited, route: Route) -> None:
    body = {**route.build([LONG]), **(route.no_truncation or {})}
    check(post(limited, route, body), 400, route)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.path != "/tokenize"],
                         ids=[r.path for r in ROUTES if r.path != "/tokenize"])
def test_a_long_text_is_truncated_by_default(client, route: Route) -> None:
    assert post(client, route, route.build([LONG])).status_code == 200


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_an_unknown_model_is_a_404(limited, route: Route) -> None:
    check(post(limited, route, {**route.build(["a"]), "model": "no-such-model"}), 404, route,
          "model")


@pytest.mark.parametrize("route", [r for r in ROUTES if r.bad_enum],
                         ids=[r.path for r in ROUTES if r.bad_enum])
def test_an_unknown_enum_value_is_a_400(limited, route: Route) -> None:
    name, value = route.bad_enum  # type: ignore[misc]
    response = post(limited, route, {**route.build(["a"]), name: value})
    check(response, 400, route, name)
    text = response.get_data(as_text=True)
    assert name in text


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_body_over_the_size_limit_is_a_413(limited, route: Route) -> None:
    check(post(limited, route, route.build(["x" * (MAX_BODY + 10)])), 413, route)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_malformed_json_is_a_400(limited, route: Route) -> None:
    response = limited.post(route.path, data=b"{nope", content_type="application/json")
    check(response, 400, route)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_a_body_that_is_not_an_object_is_a_400(limited, route: Route) -> None:
    check(post(limited, route, ["a"]), 400, route)


@pytest.mark.parametrize("route", ROUTES, ids=IDS)
def test_deeply_nested_json_is_a_400(limited, route: Route) -> None:
    depth = 1000
    raw = b'{"x": ' + b"[" * depth + b"]" * depth + b"}"
    body = raw.replace(b'"x"', f'"{route.field}"'.encode())
    check(limited.post(route.path, data=body, content_type="application/json"), 400, route)


# The rerank routes read their bodies through the same decoder; they join the routes above for
# bodies that fail before any model is chosen. /rerank cannot tell TEI's body from Cohere's in
# a body it cannot read, so it answers those in its Cohere/Jina (OpenAI-style) shape.
RERANK_ROUTES = [
    Route("/v1/rerank", "documents", lambda t: {"query": "q", "documents": t}, "openai"),
    Route("/v2/rerank", "documents", lambda t: {"query": "q", "documents": t}, "cohere"),
    Route("/rerank", "documents", lambda t: {"query": "q", "documents": t}, "openai"),
    Route("/v1/similarity/matrix", "texts", lambda t: {"texts": t}, "openai"),
]
DECODED_ROUTES = ROUTES + RERANK_ROUTES


@pytest.mark.parametrize("route", DECODED_ROUTES, ids=[r.path for r in DECODED_ROUTES])
def test_deep_nesting_in_an_unknown_field_is_a_400(limited, route: Route) -> None:
    depth = 1000
    junk = b"[" * depth + b"]" * depth
    body = route.build(["a"])
    raw = json.dumps(body).encode()[:-1] + b', "junk": ' + junk + b"}"
    response = limited.post(route.path, data=raw, content_type="application/json")
    check(response, 400, route)
    assert "nested too deeply" in response.get_data(as_text=True)
