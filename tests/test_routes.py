"""Routes declared once (``localembed.server.routes``): one decorator serves a view and
describes it, and what is served is the struct the document describes."""

from __future__ import annotations

import json

import msgspec
import pytest
from flask import Flask

from localembed.engine.families import TASK_LABELS, TASKS, canonical_task
from localembed.models.pull import Progress, PullTask
from localembed.server.app import Health, Info
from localembed.server.errors import CohereError, Error, OllamaError, TEIError
from localembed.server.openapi import openapi_document
from localembed.server.routes import READ_ERRORS, Blueprint, operations, undeclared


class Thing(msgspec.Struct):
    name: str


class NewThing(msgspec.Struct):
    name: str
    size: int = 0


def small_app() -> Flask:
    bp = Blueprint("things", __name__)

    @bp.operation("post", "/v1/things/<thing_id>", "Make a thing", Thing, NewThing,
                  errors=(400, 404), query=(("dry", "boolean"),))
    def make(thing_id: str) -> dict:
        return {"name": thing_id}

    @bp.operation("get", "/api/things", "Things (Ollama's shape)", Thing, errors=READ_ERRORS)
    def things() -> dict:
        return {"name": "a"}

    @bp.unlisted("get", "/ui/<name>")
    def asset(name: str) -> str:
        return name

    app = Flask("things", static_folder=None)
    app.register_blueprint(bp)
    return app


def test_a_route_declared_once_is_served_and_described() -> None:
    app = small_app()
    rules = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods or ()}
    assert {("/v1/things/<thing_id>", "POST"), ("/api/things", "GET"),
            ("/ui/<name>", "GET")} <= rules
    assert app.test_client().post("/v1/things/x").get_json() == {"name": "x"}
    document = openapi_document(app)
    assert set(document["paths"]) == {"/v1/things/{thing_id}", "/api/things"}  # not /ui/
    made = document["paths"]["/v1/things/{thing_id}"]["post"]
    assert made["summary"] == "Make a thing"
    assert set(made["responses"]) == {"200", "400", "404"}
    assert made["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"}
    assert made["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewThing"}
    assert made["parameters"] == [
        {"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "dry", "in": "query", "required": False, "schema": {"type": "boolean"}}]
    # the error shape follows the path's dialect unless the route says otherwise
    errors = {path: ops[m]["responses"]["401" if path == "/api/things" else "400"]
              for path, ops in document["paths"].items() for m in ops}
    assert errors["/api/things"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OllamaError"}
    assert errors["/v1/things/{thing_id}"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert undeclared(app) == []


def test_a_route_served_without_a_declaration_is_named() -> None:
    app = small_app()

    @app.get("/v1/secret")
    def secret() -> str:
        return "hidden"

    assert undeclared(app) == ["GET /v1/secret"]
    assert "/v1/secret" not in openapi_document(app)["paths"]  # documented only when declared


def test_create_app_refuses_a_route_that_is_not_declared(app_factory, monkeypatch) -> None:
    from localembed.server import app as app_module

    monkeypatch.setattr(app_module, "undeclared", lambda app: ["GET /v1/stray"])
    with pytest.raises(RuntimeError, match="GET /v1/stray"):
        app_factory()


def test_every_served_route_is_declared_and_the_document_lists_exactly_them(client) -> None:
    app = client.application
    assert undeclared(app) == []
    described = {(m, p) for p, ops in client.get("/openapi.json").get_json()["paths"].items()
                 for m in ops}
    assert described == {(op.method, op.path) for op in operations(app)}


def test_health_and_info_are_the_structs_the_document_describes(client) -> None:
    document = client.get("/openapi.json").get_json()
    _, components = msgspec.json.schema_components(
        [Health, Info], ref_template="#/components/schemas/{name}")
    for path, struct in (("/health", Health), ("/v1/info", Info)):
        answer = client.get(path)
        assert answer.status_code == 200
        msgspec.json.decode(answer.data, type=struct)  # exactly its fields, each of its type
        schema = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert schema["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{struct.__name__}"}
        assert document["components"]["schemas"][struct.__name__] == components[struct.__name__]


def test_info_lists_the_tasks_the_engine_accepts_with_their_labels(client) -> None:
    tasks = client.get("/v1/info").get_json()["tasks"]
    assert [t["id"] for t in tasks] == list(TASKS)
    assert {t["id"]: t["label"] for t in tasks} == dict(TASK_LABELS)
    labels = {t["id"]: t["label"] for t in tasks}
    assert labels["qa"] == "question answering" and labels["fact_check"] == "fact checking"
    assert labels["query"] == "query"
    for task in tasks:
        assert canonical_task(task["id"]) == task["id"]
        answer = client.post("/v1/embeddings", json={"input": "a text", "task": task["id"]})
        assert answer.status_code == 200, (task, answer.get_json())


def test_error_bodies_are_the_structs_the_document_describes(client) -> None:
    document = client.get("/openapi.json").get_json()
    shapes = {"/v1/embeddings": Error, "/api/embed": OllamaError, "/v2/embed": CohereError}
    for path, struct in shapes.items():
        answer = client.post(path, data="not json", content_type="application/json")
        assert answer.status_code == 400
        msgspec.json.decode(answer.data, type=struct)
        schema = document["paths"][path]["post"]["responses"]["400"]["content"]
        assert schema["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{struct.__name__}"}
    rerank = document["paths"]["/rerank"]["post"]["responses"]["400"]["content"]
    assert rerank["application/json"]["schema"] == {"anyOf": [
        {"$ref": f"#/components/schemas/{s.__name__}"} for s in (Error, TEIError)]}


# The fields of a pull's progress as the API served them before Progress was a struct.
PROGRESS_KEYS = ["model", "status", "downloaded", "total", "resumed_from", "speed", "eta",
                 "error", "source", "notice", "started", "finished", "percent"]


def test_pull_progress_is_served_as_the_struct_the_document_describes(client) -> None:
    pulls = client.application.extensions["localembed"].pulls
    task = PullTask("some-model")
    pulls._tasks["some-model"] = task
    try:
        task.update(status="downloading", total=200, downloaded=50, speed=10.0, eta=15.0)
        answer = client.get("/v1/pull/some-model")
        assert answer.status_code == 200
        assert list(answer.get_json()) == PROGRESS_KEYS
        assert answer.get_json() == msgspec.to_builtins(task.progress)
        assert answer.get_json()["percent"] == 25.0
        listed = client.get("/v1/pull").get_json()
        assert listed["object"] == "list" and answer.get_json() in listed["data"]
        task.update(status="done", downloaded=200)
        events = client.get("/v1/pull/some-model/events").data.decode()
        # the event is the struct in json.dumps' spelling, as before
        assert events == f"data: {json.dumps(msgspec.to_builtins(task.progress))}\n\n"
        assert '"status": "done"' in events and '"percent": 100.0' in events
    finally:
        pulls._tasks.pop("some-model")
    document = client.get("/openapi.json").get_json()
    _, components = msgspec.json.schema_components(
        [Progress], ref_template="#/components/schemas/{name}")
    assert document["components"]["schemas"]["Progress"] == components["Progress"]
    for method in ("get", "delete"):
        ok = document["paths"]["/v1/pull/{model_id}"][method]["responses"]["200"]["content"]
        assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/Progress"}


def test_a_pull_that_starts_is_answered_202_and_one_already_running_200(client) -> None:
    statuses = client.get("/openapi.json").get_json()["paths"]["/v1/pull"]["post"]["responses"]
    assert {"200", "202"} <= set(statuses)


def test_the_size_limit_is_refused_in_the_same_words_by_flask_and_waitress(client,
                                                                          synthetic) -> None:
    """waitress refuses a body from its Content-Length; flask one it was handed (the test
    client has no waitress in front)."""
    from localembed.config.settings import ServerConfig
    from localembed.server.errors import body_too_large
    from tests.fixtures.server import call, running

    expected = body_too_large()
    with running(ServerConfig(max_body_bytes=1024), synthetic("bert")) as (url, _):
        status, body, _ = call(url, "/v1/embeddings", {"input": "word " * 1000})
    assert status == 413 and body["error"]["message"] == expected.message
    assert body["error"]["code"] == expected.code
    app = client.application
    limit = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 16
    try:
        answer = client.post("/v1/embeddings", json={"input": "x" * 64})
    finally:
        app.config["MAX_CONTENT_LENGTH"] = limit
    assert answer.status_code == 413
    assert answer.get_json()["error"]["message"] == expected.message
    assert answer.get_json()["error"]["code"] == expected.code
