"""Structural contracts: which layer may import which, stated once (``LAYERS``) and enforced over
every module under localembed/; one execute path per operation; and an OpenAPI document that
describes exactly the routes the app serves.

Imports are read with ``ast``, those inside functions (lazy imports) and under TYPE_CHECKING
included: a lazy import is still a dependency. ``from X import name`` depends on ``X.name`` when
that is a module, else on ``X``. Importing ``a.b.c`` also runs ``a/__init__.py`` and
``a/b/__init__.py``; those implicit edges are not in the graph (the packages' own imports are).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "localembed"
CORE, FACE, HELPER = "core", "face", "helper"
BELOW_FACES = ("dialects", "collections", "service", "models", "engine", "config", "gguf")
WEB = ("flask", "werkzeug", "click")
# The engine's execute methods; in a layer that runs operations only through the service, such
# a call's receiver is the service (``service.embed(...)``, ``self.service.rerank(...)``).
EXECUTE = ("submit", "submit_rerank", "rerank", "embed", "similarity", "matrix", "prepare_pair")


@dataclass(frozen=True)
class Layer:
    files: tuple[str, ...]  # under localembed/: a folder ("engine/") or a file ("api.py")
    may_import: tuple[str, ...]  # the layers below that it may import (its own always)
    kind: str = CORE
    web: bool = False  # may import flask, werkzeug or click
    via_service: bool = False  # runs operations only through the service
    faces: dict[str, str] = field(default_factory=dict)  # another face it may import: why


# The layers, bottom up. A core layer imports only the layers it lists; a face imports the
# dialects and below, and another face only where its ``faces`` says why; the test helpers
# import anything but a face, and nothing imports them.
LAYERS: dict[str, Layer] = {
    # ground floor
    "config": Layer(("config/",), ()),
    "gguf": Layer(("gguf/",), ("config",)),  # config.imports: gguf's constants alone
    # the core
    "engine": Layer(("engine/",), ("config", "gguf")),
    "models": Layer(("models/",), ("engine", "config", "gguf")),
    "service": Layer(("service/",), ("models", "engine", "config", "gguf")),
    # the corpus pipeline: read, chunk, embed (through the service), store, search
    "collections": Layer(("collections/",), ("service", "models", "engine", "config", "gguf"),
                         via_service=True),
    "dialects": Layer(("dialects/",), ("collections", "service", "models", "engine", "config",
                                       "gguf"), via_service=True),
    # the faces
    "server": Layer(("server/",), BELOW_FACES, FACE, web=True, via_service=True, faces={
        "root": "the package's version, in /health, /v1/info, /api/version, the OpenAPI info",
    }),
    "cli": Layer(("cli/", "__main__.py"), BELOW_FACES, FACE, web=True, via_service=True,
                 faces={
        "server": "`localembed serve` runs the HTTP server",
        "desktop": "`localembed app` starts the desktop app",
        "ray": "`embed-corpus --ray` runs the corpus pipeline on a Ray cluster",
        "root": "the package's version: --version, `serve`'s banner, `localembed info`",
    }),
    "desktop": Layer(("desktop/",), BELOW_FACES, FACE, web=True, via_service=True, faces={
        "server": "the desktop app runs the HTTP server in-process",
        "root": "the package's version, said when the app starts",
    }),
    "api": Layer(("api.py",), BELOW_FACES, FACE, via_service=True),
    # localembed.ray: the corpus pipeline as Ray Data stages, and ``Embedder`` for users' own
    "ray": Layer(("ray.py",), BELOW_FACES, FACE, via_service=True),
    # localembed/__init__.py: ``localembed.load`` and the engine's names, the version
    "root": Layer(("__init__.py",), BELOW_FACES, FACE, via_service=True, faces={
        "api": "`from localembed import LLM, Runner` loads the Python API lazily",
    }),
    # localembed.testing: writers of test models, for tests and benchmarks only
    "testing": Layer(("testing/",), BELOW_FACES, HELPER),
}


def allowed(name: str) -> set[str]:
    """The layers that layer ``name`` may import, its own included."""
    layer = LAYERS[name]
    return {name, *layer.may_import, *layer.faces}


# -- reading the package -------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module under localembed/, by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layers_of(module: str) -> list[str]:
    """The layers whose files hold ``module``."""
    rel = modules()[module].relative_to(PACKAGE).as_posix()
    return [name for name, layer in LAYERS.items()
            if any(rel == f or (f.endswith("/") and rel.startswith(f)) for f in layer.files)]


def home(module: str) -> str | None:
    """The layer of ``module``, if exactly one holds it."""
    found = layers_of(module)
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Import:
    module: str  # the localembed module imported
    line: int


@cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(), str(path))


@cache
def imports(module: str) -> tuple[Import, ...]:
    """Every localembed module that ``module`` imports, anywhere in it."""
    known = modules()
    package = module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found += [Import(t, node.lineno) for t in targets
                  if t == "localembed" or t.startswith("localembed.")]
    return tuple(dict.fromkeys(found))


def third_party_imports(module: str) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            yield from ((alias.name.partition(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0], node.lineno


def graph() -> dict[str, set[str]]:
    """Module -> the localembed modules it imports (itself left out)."""
    return {m: {i.module for i in imports(m) if i.module in modules() and i.module != m}
            for m in modules()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One import circle (a -> ... -> a) through each group of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    found = []
    for group in groups:  # the shortest way from the group's first module back to it
        start = min(group)
        paths = {start: [start]}
        todo = [start]
        while todo:
            v = todo.pop(0)
            if start in edges[v]:
                found.append([*paths[v], start])
                break
            for w in sorted(edges[v] & group):
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    todo.append(w)
    return found


def where(module: str, line: int) -> str:
    return f"{modules()[module].relative_to(ROOT)}:{line}"


# -- the layers ----------------------------------------------------------------------------------

def test_every_module_under_localembed_belongs_to_exactly_one_layer() -> None:
    homes = {m: layers_of(m) for m in modules()}
    assert {m: found for m, found in homes.items() if len(found) != 1} == {}


@pytest.mark.parametrize("module", list(modules()))
def test_a_module_imports_only_its_own_layer_and_those_the_table_allows(module: str) -> None:
    layer = home(module)
    assert layer is not None, f"{module} is in no layer, or in more than one"
    bad = []
    for imp in imports(module):
        target = home(imp.module) if imp.module in modules() else "no module"
        if target not in allowed(layer):
            bad.append(f"{where(module, imp.line)} imports {imp.module} ({target}); "
                       f"{layer} may import only {sorted(allowed(layer))}")
    assert bad == []


def test_only_a_face_imports_another_face_and_only_by_a_listed_edge() -> None:
    edges = {(name, other) for name, layer in LAYERS.items() for other in layer.faces}
    faces = {name for name, layer in LAYERS.items() if layer.kind == FACE}
    assert {(a, b) for a, b in edges if a not in faces or b not in faces} == set()
    below = {name: set(layer.may_import) for name, layer in LAYERS.items()}
    assert {name: sorted(reach & faces) for name, reach in below.items() if reach & faces} == {}


def test_every_listed_face_to_face_edge_is_one_the_code_has() -> None:
    used = {(home(m), home(i.module)) for m in modules() for i in imports(m)
            if i.module in modules()}
    listed = {(name, other) for name, layer in LAYERS.items() for other in layer.faces}
    assert listed - used == set()


def test_no_runtime_module_imports_localembed_testing() -> None:
    bad = [f"{where(m, i.line)} imports {i.module}" for m in modules()
           if home(m) != "testing" for i in imports(m)
           if i.module == "localembed.testing" or i.module.startswith("localembed.testing.")]
    assert bad == []


def test_localembed_has_no_import_circle() -> None:
    assert [" -> ".join(circle) for circle in cycles(graph())] == []


def _modules_where(rule: str) -> list[str]:
    return [m for m in modules() if (layer := home(m)) and getattr(LAYERS[layer], rule)]


@pytest.mark.parametrize("module", [m for m in modules() if m not in _modules_where("web")])
def test_only_the_server_cli_and_desktop_import_flask_werkzeug_or_click(module: str) -> None:
    bad = [f"{where(module, line)} imports {name}" for name, line in third_party_imports(module)
           if name in WEB]
    assert bad == []


@pytest.mark.parametrize("module", _modules_where("via_service"))
def test_dialects_and_faces_run_operations_only_through_the_service(module: str) -> None:
    """One execute path per operation: a dialect or a face asks the service, never an engine
    (or anything else), to embed, rerank, score or frame."""
    bad = []
    for node in ast.walk(tree(module)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in EXECUTE):
            receiver = node.func.value
            if not ((isinstance(receiver, ast.Name) and receiver.id == "service")
                    or (isinstance(receiver, ast.Attribute) and receiver.attr == "service")):
                bad.append(f"{where(module, node.lineno)}: {ast.unparse(node.func)}(...)")
    assert bad == []


# -- the OpenAPI document ------------------------------------------------------------------------

def test_the_openapi_document_describes_every_route_and_only_those(client) -> None:
    app = client.application
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.rule.startswith("/ui/") or rule.rule == "/favicon.ico":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
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
