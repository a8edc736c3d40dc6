"""The embeddings lane (server.lane) answers POST /v1/embeddings ahead of flask, by the same rules:
what a client gets must not depend on which of the two answered."""

from __future__ import annotations

import base64

import pytest
from flask.testing import FlaskClient
from werkzeug.test import Client

from localembed.config.settings import ServerConfig

KEY = "sekrit-key"

# (path, JSON body or raw bytes, headers): answered, refused, malformed, CORS.
CASES = [
    ("/v1/embeddings", {"input": ["hello world", "a second text"]}, {}),
    ("/embeddings", {"input": "hello", "encoding_format": "base64"}, {}),
    ("/v1/embeddings", {"input": "hello", "dimensions": 1_000_000}, {}),
    ("/v1/embeddings", {"input": "hello", "model": "no-such-model"}, {}),
    ("/v1/embeddings", {"input": []}, {}),
    ("/v1/embeddings", {"inputs": "misspelt field"}, {}),
    ("/v1/embeddings", b"{not json", {}),
    ("/v1/embeddings", b"", {}),
    ("/v1/embeddings", {"input": "hello"}, {"Host": "evil.example"}),
    ("/v1/embeddings", {"input": "hello"}, {"Origin": "https://evil.example"}),
    ("/v1/embeddings", {"input": "hello"}, {"Origin": "http://localhost:3000"}),
]


def _answer(client: Client | FlaskClient, path: str, body: object,
            headers: dict[str, str]) -> tuple[int, object, dict[str, str]]:
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = client.post(path, headers=headers, content_type="application/json", **kwargs)
    data = response.get_json(silent=True)
    if isinstance(data, dict):
        data.pop("id", None)  # a fresh id per answer
    kept = {k: v for k, v in response.headers.items()
            if k in ("Content-Type", "Vary", "Retry-After") or k.startswith("Access-Control")}
    return response.status_code, data, kept


def _flask_only(client: FlaskClient) -> Client:
    """The same app with the lane taken out of the way: flask's own route answers."""
    lane = client.application.wsgi_app
    return Client(lane.flask_app, response_wrapper=type(client.post("/health")))


@pytest.mark.parametrize("config", [ServerConfig(), ServerConfig(api_key=KEY)],
                         ids=["open", "api-key"])
def test_the_lane_and_flask_give_the_same_answer(app_factory, config: ServerConfig) -> None:
    client = app_factory(config)
    flask_only = _flask_only(client)
    for path, body, headers in CASES:
        for extra in ({}, {"Authorization": f"Bearer {KEY}"}):
            sent = {**headers, **extra}
            lane = _answer(client, path, body, sent)
            flask = _answer(flask_only, path, body, sent)
            assert lane == flask, (path, body, sent)


def test_the_lane_answers_embeddings_without_flask(client) -> None:
    lane = client.application.wsgi_app

    def no_flask(environ, start_response):  # type: ignore[no-untyped-def]
        raise AssertionError(f"flask was asked for {environ['PATH_INFO']}")

    original, lane.flask_app = lane.flask_app, no_flask
    try:
        answer = client.post("/v1/embeddings", json={"input": "hello",
                                                     "encoding_format": "base64"})
    finally:
        lane.flask_app = original
    assert answer.status_code == 200
    packed = base64.b64decode(answer.get_json()["data"][0]["embedding"])
    floats = client.post("/v1/embeddings", json={"input": "hello"}).get_json()
    assert len(packed) == 4 * len(floats["data"][0]["embedding"])


def test_what_the_lane_does_not_expect_goes_to_flask(client) -> None:
    """A query string, another method or another path: flask's routing answers them."""
    assert client.post("/v1/embeddings?x=1", json={"input": "hello"}).status_code == 200
    answer = client.get("/v1/embeddings")
    assert answer.status_code == 405 and "POST" in answer.headers["Allow"]
    assert client.options("/v1/embeddings",
                          headers={"Origin": "http://localhost:3000"}).status_code == 204


def test_the_lane_counts_its_requests_in_the_metrics(app_factory) -> None:
    client = app_factory()
    client.post("/v1/embeddings", json={"input": ["one", "two"]})
    client.post("/v1/embeddings", json={"input": "x"}, headers={"Host": "evil.example"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'localembed_requests_total{route="/v1/embeddings",status="200"} 1' in text
    assert 'localembed_requests_total{route="/v1/embeddings",status="403"} 1' in text
    assert "localembed_inputs_total 2" in text
