"""Structural contracts: the core knows nothing of its faces, and the OpenAPI document
describes exactly the routes the app serves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORE = ["engine", "models", "service", "dialects", "config", "gguf", "api.py"]
FACES = ("localembed.server", "localembed.cli", "localembed.desktop", "localembed.testing")


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def core_files() -> list[Path]:
    files: list[Path] = []
    for name in CORE:
        path = ROOT / "localembed" / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_face(path: Path) -> None:
    bad = sorted(name for name in imports_of(path) if name.startswith(FACES))
    assert bad == [], f"{path.name} imports {bad}"


def test_no_core_module_imports_flask_or_click() -> None:
    for path in core_files():
        bad = {n for n in imports_of(path) if n.split(".")[0] in ("flask", "werkzeug", "click")}
        assert bad == set(), f"{path.name} imports {bad}"


def test_the_openapi_document_describes_every_route_and_only_those(client) -> None:
    app = client.application
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/ui/") or rule.rule == "/favicon.ico":
            continue
        path = rule.rule.replace("<model_id>", "{model_id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((method.lower(), path))
    document = client.get("/openapi.json").get_json()
    described = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert served == described


def test_every_request_schema_is_generated_from_the_request_models(client) -> None:
    from localembed.dialects import cohere, ollama, openai

    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    for model in (openai.EmbeddingRequest, cohere.CohereEmbedRequest,
                  ollama.OllamaEmbedRequest):
        fields = set(model.__struct_fields__)
        assert set(schemas[model.__name__]["properties"]) == fields
